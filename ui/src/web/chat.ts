// The `chat` channel's messages (docs/protocol.md, section 3): `{"text": ...}`, 1 to 4,000
// bytes of UTF-8 after trimming, plain text.

export const CHAT_CHANNEL = "chat";
export const MAX_CHAT_BYTES = 4000;

/** The text of a chat message, trimmed; `null` for a message that is not one. */
export function chatText(data: unknown): string | null {
  if (typeof data !== "object" || data === null || !("text" in data) || typeof data.text !== "string") return null;
  const text = data.text.trim();
  const bytes = new TextEncoder().encode(text).length;
  return bytes >= 1 && bytes <= MAX_CHAT_BYTES ? text : null;
}
