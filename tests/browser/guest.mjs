// Drives the guest page (ui/guest.html) in headless Chromium for the end-to-end tests and
// speaks JSON lines like `plenum join --json`.
//
//   node tests/browser/guest.mjs --url http://127.0.0.1:PORT/r/ROOM?name=Guest [--server ws://...] [--audio-file WAV]
//
// `--server` is handed to the page as its `?server=`; the fake microphone plays `--audio-file`
// (16-bit PCM WAV, looped) instead of Chromium's beeps. Once: `npm ci` in this folder.
// CHROMIUM names the browser (default /usr/bin/chromium).
//
// Events on stdout, read from the page's DOM as it changes:
//   {"event":"joined","peer":ID}
//   {"event":"peer","peer":ID,"name":N,"state":"connecting"|"connected"|"reconnecting"|"left","safety_code":C,"speaking":B}
//   {"event":"message","from":ID,"channel":"chat","data":{"text":T}}
//   {"event":"message","from":ID,"channel":C,"length":N}   on any other channel: N is the
//                                    length of the JSON string sent (or of the JSON text)
//   {"event":"password_asked","notice":T}   the room has a password: the page asks for it
//   {"event":"code_asked","notice":T}   the page asks for an access code (again, with the
//                                    refusal as the notice, when a presenter refused one)
//   {"event":"status","banner":T}    the call's banner changed ("" once it is hidden): the
//                                    server connection lost, links being made anew
//   {"event":"cursor","peer":ID,"x":X,"y":Y}   a peer's cursor over the whiteboard
//   {"event":"board","strokes":N}    the whiteboard now holds N strokes
//   {"event":"video","peer":ID}      a peer's video tile shows pictures
//   {"event":"stats","inbound":[{"kind","mid","packets_received","frames_decoded"}]}
//   {"event":"left"}
//   {"event":"error","message":M} (with "code" for a problem the page reports and carries on:
//   `note` for a line in the chat, `toast` for a notice)
// Commands on stdin, one JSON object a line:
//   {"cmd":"send","text":T}   types T into the chat and sends it
//   {"cmd":"microphone"}      turns the (fake) microphone on
//   {"cmd":"camera"}          turns the (fake) camera on
//   {"cmd":"hand"}            raises (or lowers) the hand, watching a presentation
//   {"cmd":"share"}           shares the (fake) screen
//   {"cmd":"cursor","x":X,"y":Y}          moves the pointer over the whiteboard (fractions)
//   {"cmd":"draw","points":[[X,Y],...]}   draws a stroke on the whiteboard
//   {"cmd":"stats"}           the inbound RTP of the page's connections
//   {"cmd":"payload","channel":C,"length":N[,"to":ID]}
//                             sends a JSON string of N bytes (N - 2 letters) through the
//                             room engine: {"event":"sent","reached":K}, or error `send_failed`
//   {"cmd":"password","text":P}   answers the room's password form
//   {"cmd":"code","text":C}   answers the access code form
//   {"cmd":"controls"}        which media buttons show:
//                             {"event":"controls","microphone":B,"camera":B,"share":B}
//   {"cmd":"media"}           pictures shown per tile, and who speaks:
//                             {"event":"media","frames":{TILE:N},"speaking":[ID]}
//   {"cmd":"leave"}           leaves the room and exits 0
// It exits, closing the browser and deleting its profile, when stdin closes (0), on SIGTERM
// or SIGINT (0), after a fatal error of the page (1) and on any failure of its own (1).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
  // A screen share takes Chromium's fake screen without asking.
  '--auto-select-desktop-capture-source=Entire screen',
];
/** The longest any step in the page may take. */
const STEP_TIMEOUT_MS = 10_000;
/** The longest closing the browser may take before the process leaves anyway. */
const CLOSE_TIMEOUT_MS = 5_000;

/** Runs in the page before its own scripts: keeps every RTCPeerConnection for `stats`, and
 * reports the page's state to the driver whenever its DOM changes. */
function watch() {
  const connections = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      connections.push(this);
    }
  };
  window.plenumInbound = async () => {
    const inbound = [];
    for (const pc of connections.filter((c) => c.connectionState !== 'closed')) {
      for (const s of (await pc.getStats()).values()) {
        if (s.type !== 'inbound-rtp') continue;
        inbound.push({ kind: s.kind, mid: s.mid ?? null, packets_received: s.packetsReceived ?? 0, frames_decoded: s.framesDecoded ?? null });
      }
    }
    return inbound;
  };
  const reported = new WeakSet();
  const fresh = (selector) => [...document.querySelectorAll(selector)].filter((el) => !reported.has(el) && reported.add(el));
  const snapshot = () => ({
    status: document.body.dataset.guest ?? '',
    reason: document.getElementById('guest-status')?.textContent ?? '',
    me: document.body.dataset.peer ?? '',
    peers: [...document.querySelectorAll('.tile:not(.screen)[data-peer]')]
      .filter((tile) => tile.dataset.state !== 'me')
      .map((tile) => ({
        peer: tile.dataset.peer,
        name: tile.querySelector('.tile-name')?.textContent ?? '',
        state: tile.dataset.state ?? '',
        safety_code: tile.querySelector('.tile-safety')?.dataset.code || null,
        speaking: tile.dataset.speaking === 'true',
      })),
    chat: fresh('#chat-list .chat-msg[data-from]:not(.own)').map((el) => ({
      from: el.dataset.from,
      text: el.querySelector('.chat-text')?.textContent ?? '',
    })),
    notes: fresh('#chat-list .chat-note').map((el) => ({ code: 'note', message: el.textContent })),
    toast: document.getElementById('toast')?.hidden === false ? document.getElementById('toast').textContent : '',
    banner: document.getElementById('banner')?.hidden === false ? document.getElementById('banner').textContent : '',
    asked: fresh('#guest-password').map(() => document.getElementById('guest-error')?.textContent ?? ''),
    codes: fresh('#guest-code').map(() => document.getElementById('guest-error')?.textContent ?? ''),
    strokes: Number(document.getElementById('board')?.dataset.strokes ?? '0'),
    cursors: [...document.querySelectorAll('.cursor[data-peer]')].map((el) => ({ peer: el.dataset.peer, x: Number(el.dataset.x), y: Number(el.dataset.y) })),
    videos: [...document.querySelectorAll('.tile[data-video="true"]')]
      .filter((tile) => tile.dataset.state !== 'me' && Number(tile.dataset.frames ?? '0') > 0)
      .map((tile) => tile.dataset.peer),
  });
  let queued = false;
  const report = () => {
    if (queued) return;
    queued = true;
    setTimeout(() => {
      queued = false;
      window.plenumGuestReport(snapshot());
    });
  };
  document.addEventListener('DOMContentLoaded', () => {
    new MutationObserver(report).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    report();
  });
}

function usage(why) {
  process.stderr.write(`guest.mjs: ${why}\nusage: guest.mjs --url http://HOST:PORT/r/ROOM?name=NAME [--server ws://HOST:PORT/] [--audio-file WAV]\n`);
  process.exit(2);
}

/** The page's address from the arguments (and the fake microphone's sound, if given). */
function parseArgs(argv) {
  const given = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!['--url', '--server', '--audio-file'].includes(argv[i]) || argv[i + 1] === undefined) usage(`bad argument ${argv[i]}`);
    given[argv[i].slice(2)] = argv[i + 1];
  }
  if (given['audio-file']) ARGS.push(`--use-file-for-fake-audio-capture=${given['audio-file']}`);
  if (!given.url) usage('--url is required');
  let url;
  try {
    url = new URL(given.url);
  } catch {
    usage(`not a URL: ${given.url}`);
  }
  if (given.server) url.searchParams.set('server', given.server);
  // The tests' servers use self-signed certificates.
  if (url.protocol === 'https:') ARGS.push('--ignore-certificate-errors');
  return url.href;
}

function print(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** Turns the page's reports into events: each change of a peer, each chat message from
 * someone else, each note, and the status. */
class Reporter {
  me = null;
  peers = new Map();
  toast = '';
  banner = '';
  strokes = 0;
  cursors = new Map();
  videos = new Set();

  constructor(onFatal) {
    this.onFatal = onFatal;
  }

  report({ status, reason, me, peers, chat, notes, toast, banner, asked, codes, strokes, cursors, videos }) {
    for (const notice of asked) print({ event: 'password_asked', notice });
    for (const notice of codes) print({ event: 'code_asked', notice });
    if (status === 'joined' && me && this.me === null) {
      this.me = me;
      print({ event: 'joined', peer: me });
    }
    for (const peer of peers) this.peer(peer);
    for (const id of this.peers.keys()) {
      if (!peers.some((p) => p.peer === id)) this.peer({ peer: id, name: this.peers.get(id).name, state: 'left', safety_code: null, speaking: false });
    }
    for (const line of chat) print({ event: 'message', from: line.from, channel: 'chat', data: { text: line.text } });
    for (const { code, message } of notes) print({ event: 'error', code, message });
    if (toast && toast !== this.toast) print({ event: 'error', code: 'toast', message: toast });
    this.toast = toast;
    if (status === 'joined' && banner !== this.banner) print({ event: 'status', banner });
    this.banner = banner;
    if (strokes !== this.strokes) print({ event: 'board', strokes });
    this.strokes = strokes;
    for (const c of cursors) {
      const key = `${c.x},${c.y}`;
      if (this.cursors.get(c.peer) !== key) print({ event: 'cursor', ...c });
      this.cursors.set(c.peer, key);
    }
    for (const peer of videos.filter((p) => !this.videos.has(p))) print({ event: 'video', peer });
    this.videos = new Set(videos);
    if (status === 'error') this.onFatal(reason.replace(/^error: /, ''));
  }

  peer(now) {
    const before = this.peers.get(now.peer);
    if (before && ['name', 'state', 'safety_code', 'speaking'].every((k) => before[k] === now[k])) return;
    if (now.state === 'left') this.peers.delete(now.peer);
    else this.peers.set(now.peer, now);
    print({ event: 'peer', ...now });
  }
}

const url = parseArgs(process.argv.slice(2));
const profile = await mkdtemp(join(tmpdir(), 'plenum-guest-'));
let context = null;
let closing = null;

/** Closes the page (which leaves the room, as a closed tab does) and the browser, or gives
 * up on them; deletes the profile and exits with `code`. */
function exit(code) {
  closing ??= (async () => {
    const closed = (async () => {
      for (const page of context?.pages() ?? []) await page.close().catch(() => undefined);
      await context?.close().catch(() => undefined);
    })();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS))]);
    await rm(profile, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
    process.exit(code);
  })();
  return closing;
}

/** Reports a failure and exits 1; a failure while closing (a step cut short) is no news. */
function fail(message) {
  if (closing) return closing;
  print({ event: 'error', message });
  return exit(1);
}

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    // --headless=new is among the arguments; Playwright's own switch would mute audio.
    headless: false,
    args: ARGS,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    timeout: 30_000,
  });
  context.on('close', () => closing ?? fail('the browser closed'));
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('console', (m) => process.stderr.write(`page: ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
  page.on('crash', () => fail('the page crashed'));
  const reporter = new Reporter(fail);
  await page.exposeFunction('plenumGuestReport', (state) => reporter.report(state));
  await page.addInitScript(watch);

  /** A point of the whiteboard, in fractions of its area, as page coordinates. */
  const onBoard = async (x, y) => {
    const box = await page.locator('#board').boundingBox();
    if (!box) throw new Error('the whiteboard is not shown');
    return [box.x + x * box.width, box.y + y * box.height];
  };
  const fraction = (v) => typeof v === 'number' && v >= 0 && v <= 1;
  const commands = {
    send: async ({ text }) => {
      if (typeof text !== 'string') throw new Error('send takes a string "text"');
      if (await page.locator('#chat').isHidden()) await page.click('#chat-button');
      await page.fill('#chat-input', text);
      await page.click('#chat-send');
    },
    microphone: () => page.click('#mic-button'),
    camera: () => page.click('#camera-button'),
    hand: () => page.click('#hand-button'),
    share: async () => {
      await page.click('#share-button');
      await page.click('#share-start');
    },
    cursor: async ({ x, y }) => {
      if (!fraction(x) || !fraction(y)) throw new Error('cursor takes "x" and "y" in 0..=1');
      await page.mouse.move(...(await onBoard(x, y)));
    },
    draw: async ({ points }) => {
      if (!Array.isArray(points) || points.length < 2 || !points.every((p) => Array.isArray(p) && fraction(p[0]) && fraction(p[1]))) {
        throw new Error('draw takes "points": at least two [x, y] in 0..=1');
      }
      await page.mouse.move(...(await onBoard(...points[0])));
      await page.mouse.down();
      for (const p of points.slice(1)) await page.mouse.move(...(await onBoard(...p)), { steps: 4 });
      await page.mouse.up();
    },
    stats: async () => print({ event: 'stats', inbound: await page.evaluate(() => window.plenumInbound()) }),
    payload: async ({ channel, length, to }) => {
      if (typeof channel !== 'string' || !Number.isInteger(length) || length < 2) throw new Error('payload takes "channel" and "length" (bytes of JSON, at least 2)');
      const sent = await page.evaluate(
        ({ channel, length, to }) => {
          try {
            return { reached: window.plenumRoom.send(channel, 'a'.repeat(length - 2), to ?? undefined) };
          } catch (e) {
            return { error: String(e?.message ?? e) };
          }
        },
        { channel, length, to },
      );
      print(sent.error === undefined ? { event: 'sent', reached: sent.reached } : { event: 'error', code: 'send_failed', message: sent.error });
    },
    password: async ({ text }) => {
      if (typeof text !== 'string') throw new Error('password takes a string "text"');
      await page.fill('#guest-password', text);
      await page.click('#guest-join');
    },
    code: async ({ text }) => {
      if (typeof text !== 'string') throw new Error('code takes a string "text"');
      await page.fill('#guest-code', text);
      await page.click('#guest-join');
    },
    controls: async () => {
      const shown = (selector) => page.locator(selector).isVisible();
      print({ event: 'controls', microphone: await shown('#mic-button'), camera: await shown('#camera-button'), share: await shown('#share-button') });
    },
    media: async () => {
      const tiles = await page.evaluate(() =>
        [...document.querySelectorAll('.tile[data-peer]')].map((t) => ({ peer: t.dataset.peer, frames: Number(t.dataset.frames ?? '0'), speaking: t.dataset.speaking === 'true' })),
      );
      print({ event: 'media', frames: Object.fromEntries(tiles.map((t) => [t.peer, t.frames])), speaking: tiles.filter((t) => t.speaking).map((t) => t.peer) });
    },
    leave: async () => {
      await page.click('#leave-button');
      await page.waitForFunction(() => document.body.dataset.guest === 'left');
      print({ event: 'left' });
      await exit(0);
    },
  };
  const lines = createInterface({ input: process.stdin });
  lines.on('close', () => exit(0));
  let queue = Promise.resolve();
  lines.on('line', (line) => {
    if (!line.trim()) return;
    queue = queue.then(() => command(commands, line)).catch((e) => fail(e.message));
  });

  // Messages on channels the call view does not show, as `message` events with their length.
  await page.exposeFunction('plenumGuestMessage', (m) => print({ event: 'message', ...m }));
  await page.goto(url);
  await page.waitForFunction(() => window.plenumRoom, null, { timeout: 60_000 }).catch(() => undefined);
  await page.evaluate(() =>
    window.plenumRoom?.on('message', ({ from, channel, data }) => {
      if (['chat', 'cursor', 'board'].includes(channel)) return;
      window.plenumGuestMessage({ from, channel, length: typeof data === 'string' ? data.length : JSON.stringify(data).length });
    }),
  );
}

/** Runs one stdin line; a line that is not a command is reported, not fatal. */
async function command(commands, line) {
  let parsed;
  try {
    parsed = JSON.parse(line);
  } catch {
    return print({ event: 'error', code: 'bad_command', message: `not JSON: ${line}` });
  }
  const run = Object.hasOwn(commands, parsed?.cmd) ? commands[parsed.cmd] : null;
  if (!run) return print({ event: 'error', code: 'bad_command', message: `unknown command: ${line}` });
  await run(parsed);
}

process.on('SIGTERM', () => exit(0));
process.on('SIGINT', () => exit(0));
process.on('uncaughtException', (e) => fail(String(e?.message ?? e)));
process.on('unhandledRejection', (e) => fail(String(e?.message ?? e)));
main().catch((e) => fail(String(e?.message ?? e)));
