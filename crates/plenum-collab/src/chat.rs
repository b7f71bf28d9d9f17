//! Chat: `{"text": "..."}` on channel `chat`.

use serde::{Deserialize, Serialize};

/// One chat message as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMsg {
    /// The text: plain UTF-8, never markup.
    pub text: String,
}

/// Why a chat message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// Not a JSON object with a string `text`.
    #[error("not a chat message: {0}")]
    Malformed(String),
    /// Nothing but whitespace.
    #[error("empty chat message")]
    Empty,
    /// Longer than [`ChatMsg::MAX_BYTES`].
    #[error("chat message of {0} bytes is longer than {max}", max = ChatMsg::MAX_BYTES)]
    TooLong(usize),
}

impl ChatMsg {
    /// The longest text accepted, in bytes of UTF-8.
    pub const MAX_BYTES: usize = 4000;

    /// A message to send; the text is trimmed of surrounding whitespace.
    pub fn new(text: &str) -> Result<Self, ChatError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ChatError::Empty);
        }
        if text.len() > Self::MAX_BYTES {
            return Err(ChatError::TooLong(text.len()));
        }
        Ok(Self {
            text: text.to_owned(),
        })
    }

    /// Decodes and validates a message from a peer.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChatError> {
        let msg: Self =
            serde_json::from_slice(bytes).map_err(|e| ChatError::Malformed(e.to_string()))?;
        Self::new(&msg.text)
    }

    /// The message as it travels.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of one string always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_trims() {
        let msg = ChatMsg::new("  hello  ").unwrap();
        assert_eq!(msg.text, "hello");
        assert_eq!(ChatMsg::decode(&msg.encode()).unwrap(), msg);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(
            ChatMsg::decode(b"hello"),
            Err(ChatError::Malformed(_))
        ));
        assert!(matches!(
            ChatMsg::decode(br#"{"text":5}"#),
            Err(ChatError::Malformed(_))
        ));
        assert!(matches!(
            ChatMsg::decode(&[0xff, 0xfe]),
            Err(ChatError::Malformed(_))
        ));
        assert_eq!(ChatMsg::decode(br#"{"text":"   "}"#), Err(ChatError::Empty));
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(ChatMsg::MAX_BYTES + 1));
        assert_eq!(
            ChatMsg::decode(long.as_bytes()),
            Err(ChatError::TooLong(4001))
        );
    }
}
