// Measures the two binary paths from the engine to the view with picture-sized packets: a
// Tauri channel (what the tiles use) and the token-guarded loopback WebSocket. Exposed as
// `window.plenumProbe(transport, count, bytes)` for the benchmark in the app's tests.
import type { Api } from "./ipc";

export interface ProbeResult {
  transport: "channel" | "socket";
  packets: number;
  bytes: number;
  ms: number;
}

/** Sends `count` packets of `bytes` over `transport`; the time until the last one arrived. */
export async function probe(api: Api, transport: "channel" | "socket", count: number, bytes: number): Promise<ProbeResult> {
  let received = 0;
  let done: () => void = () => {};
  const all = new Promise<void>((resolve) => (done = resolve));
  const got = (data: ArrayBuffer) => {
    if (data.byteLength !== bytes) return;
    received += 1;
    if (received === count) done();
  };
  let socket: WebSocket | null = null;
  if (transport === "socket") {
    const { url, token } = await api.pictureSocket();
    const ws = new WebSocket(`${url}?token=${token}`);
    socket = ws;
    ws.binaryType = "arraybuffer";
    // The app says hello once the socket is registered.
    await new Promise<void>((resolve, reject) => {
      ws.onmessage = () => resolve();
      ws.onerror = () => reject(new Error("the picture socket refused the view"));
    });
    ws.onmessage = (e) => got(e.data as ArrayBuffer);
  }
  const started = performance.now();
  await api.transportProbe(transport, count, bytes, got);
  await all;
  const ms = performance.now() - started;
  socket?.close();
  return { transport, packets: count, bytes, ms };
}
