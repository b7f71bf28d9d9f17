// How fast a browser guest gets into a call: headless Chromium opens the guest page of a
// real `plenum serve` beside a `plenum join` peer that sends a test pattern, a tone and a
// chat line to everyone who links; for each of `--runs` fresh page loads it measures, from
// the navigation's start, the page's bytes and first paint, `joined` (signaling), the link
// open, the first message, and the first picture of the peer drawn in the page; then the
// link's round trip both ways over the data channel (median of 20 pings from the page's
// room engine, and of 20 from the Rust peer). One JSON line per load, then a summary line
// (min, p50, max).
//
//   node bench/browser/guest-join.mjs --plenum target/debug/plenum [--runs 10]
//
// CHROMIUM names the browser (default /usr/bin/chromium). Loopback only.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) => (i % 2 ? pairs : [...pairs, [a.replace(/^--/, ''), all[i + 1]]]), []));
if (!args.plenum) {
  process.stderr.write('usage: guest-join.mjs --plenum PATH [--runs N]\n');
  process.exit(2);
}
const runs = Number(args.runs ?? 10);
const children = [];
const end = () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM'));
process.on('exit', end);

/** Starts a process speaking JSON lines; resolves with it once `ready` matches a line. */
function start(argv, ready) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines = createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`${argv[1]} exited ${code}`)));
    lines.on('line', (line) => {
      try {
        const event = JSON.parse(line);
        if (ready(event)) resolve({ child, event, lines });
      } catch {
        // Not a JSON line.
      }
    });
  });
}

const { event: listening } = await start([args.plenum, 'serve', '--bind', '127.0.0.1:0', '--json'], (e) => e.event === 'listening');
const http = listening.url.replace('ws://', 'http://');
const { child: peer, lines } = await start(
  [args.plenum, 'join', '--server', listening.url, '--room', 'bench', '--name', 'Ada', '--json', '--video', 'testsrc:640x360@30', '--audio', 'sine:440'],
  (e) => e.event === 'joined',
);
// Greets every peer that links, and hands its pongs to whoever waits for them.
let pongs = [];
lines.on('line', (line) => {
  const event = JSON.parse(line);
  if (event.event === 'peer_join') peer.stdin.write(`${JSON.stringify({ cmd: 'send', channel: 'chat', data: { text: 'welcome' }, to: event.peer })}\n`);
  if (event.event === 'pong') pongs.push(event.rtt_ms);
});
const median = (values) => (values.length ? [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] : null);
/** Milliseconds to the hundredth (a page's clock is coarser than that anyway). */
const ms = (value) => (value === null ? null : Math.round(value * 100) / 100);

/** The Rust peer's median round trip to `guest` over 20 pings, one at a time. */
async function rustPings(guest) {
  pongs = [];
  for (let n = 1; n <= 20; n++) {
    peer.stdin.write(`${JSON.stringify({ cmd: 'ping', peer: guest })}\n`);
    const deadline = Date.now() + 5_000;
    while (pongs.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }
  return median(pongs);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required'],
});
const results = [];
for (let i = 0; i < runs; i++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  let bytes = 0;
  let requests = 0;
  page.on('response', (r) => {
    requests += 1;
    bytes += Number(r.headers()['content-length'] ?? 0);
  });
  await page.goto(`${http}/r/bench?name=Guest${i}`);
  const at = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const since = () => Math.round(performance.now());
        const marks = {};
        const check = () => {
          const body = document.body;
          if (!marks.joined && body.dataset.guest === 'joined') marks.joined = since();
          const tile = [...document.querySelectorAll('.tile:not(.screen)[data-peer]')].find((t) => t.dataset.state !== 'me');
          if (!marks.linked && tile?.dataset.state === 'connected') marks.linked = since();
          if (!marks.message && document.querySelector('#chat-list .chat-msg[data-from]:not(.own)')) marks.message = since();
          if (!marks.picture && Number(tile?.dataset.frames ?? '0') > 0) marks.picture = since();
          if (marks.joined && marks.linked && marks.message && marks.picture) return resolve(marks);
          requestAnimationFrame(check);
        };
        check();
        setTimeout(() => resolve(marks), 30_000);
      }),
  );
  // The page's median round trip to the peer, over 20 pings from its room engine.
  const pageRtt = await page.evaluate(async () => {
    const tile = [...document.querySelectorAll('.tile:not(.screen)[data-peer]')].find((t) => t.dataset.state !== 'me');
    const times = [];
    for (let n = 0; n < 20 && tile; n++) times.push(await window.plenumRoom.ping(tile.dataset.peer).catch(() => null));
    const got = times.filter((t) => t !== null).sort((a, b) => a - b);
    return got.length ? got[Math.floor(got.length / 2)] : null;
  });
  const guestId = await page.evaluate(() => document.body.dataset.peer ?? null);
  const rustRtt = guestId ? await rustPings(guestId) : null;
  const paint = await page.evaluate(() => Math.round(performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? performance.getEntriesByType('paint')[0]?.startTime ?? -1));
  const line = { run: i, bytes, requests, first_paint_ms: paint, joined_ms: at.joined ?? null, linked_ms: at.linked ?? null, first_message_ms: at.message ?? null, first_picture_ms: at.picture ?? null, ping_page_to_rust_ms: ms(pageRtt), ping_rust_to_page_ms: ms(rustRtt) };
  results.push(line);
  process.stdout.write(`${JSON.stringify(line)}\n`);
  await context.close();
}
const summary = {};
for (const key of ['bytes', 'first_paint_ms', 'joined_ms', 'linked_ms', 'first_message_ms', 'first_picture_ms', 'ping_page_to_rust_ms', 'ping_rust_to_page_ms']) {
  const values = results.map((r) => r[key]).filter((v) => v !== null).sort((a, b) => a - b);
  summary[key] = { min: values[0] ?? null, p50: values[Math.floor(values.length / 2)] ?? null, max: values.at(-1) ?? null, n: values.length };
}
process.stdout.write(`${JSON.stringify({ summary, runs, chromium: browser.version(), date: new Date().toISOString().slice(0, 10) })}\n`);
await browser.close();
end();
