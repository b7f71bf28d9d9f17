// Drives the guest page (ui/guest.html) in headless Chromium for the end-to-end tests and
// speaks JSON lines like `plenum join --json`.
//
//   node tests/browser/guest.mjs --url http://127.0.0.1:PORT/r/ROOM?name=Guest [--server ws://...]
//
// `--server` is handed to the page as its `?server=`. Once: `npm ci` in this folder.
// CHROMIUM names the browser (default /usr/bin/chromium).
//
// Events on stdout, read from the page's DOM as it changes:
//   {"event":"joined","peer":ID}
//   {"event":"peer","peer":ID,"name":N,"state":"connecting"|"connected"|"left","safety_code":C}
//   {"event":"message","from":ID,"channel":"chat","data":{"text":T}}
//   {"event":"stats","inbound":[{"kind","mid","packets_received","frames_decoded"}]}
//   {"event":"left"}
//   {"event":"error","message":M} (with "code" for a problem the page reports and carries on)
// Commands on stdin, one JSON object a line:
//   {"cmd":"send","text":T}   types T into the chat and sends it
//   {"cmd":"microphone"}      turns the (fake) microphone on
//   {"cmd":"camera"}          turns the (fake) camera on
//   {"cmd":"stats"}           the inbound RTP of the page's connections
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
    status: document.getElementById('guest-status')?.textContent ?? '',
    me: document.getElementById('guest-me')?.textContent ?? '',
    peers: [...document.querySelectorAll('#guest-peers li[data-peer]')].map((li) => ({
      peer: li.dataset.peer,
      name: li.dataset.name ?? '',
      state: li.dataset.state ?? '',
      safety_code: li.dataset.safetyCode ?? null,
    })),
    chat: fresh('#guest-chat-log li[data-from]').map((li) => ({
      from: li.dataset.from,
      text: li.querySelector('.guest-chat-text')?.textContent ?? '',
    })),
    notes: fresh('#guest-chat-log li[data-error]').map((li) => ({ code: li.dataset.error, message: li.textContent })),
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
  process.stderr.write(`guest.mjs: ${why}\nusage: guest.mjs --url http://HOST:PORT/r/ROOM?name=NAME [--server ws://HOST:PORT/]\n`);
  process.exit(2);
}

/** The page's address from the arguments. */
function pageUrl(argv) {
  const given = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!['--url', '--server'].includes(argv[i]) || argv[i + 1] === undefined) usage(`bad argument ${argv[i]}`);
    given[argv[i].slice(2)] = argv[i + 1];
  }
  if (!given.url) usage('--url is required');
  let url;
  try {
    url = new URL(given.url);
  } catch {
    usage(`not a URL: ${given.url}`);
  }
  if (given.server) url.searchParams.set('server', given.server);
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

  constructor(onFatal) {
    this.onFatal = onFatal;
  }

  report({ status, me, peers, chat, notes }) {
    if (status === 'joined' && me && this.me === null) {
      this.me = me;
      print({ event: 'joined', peer: me });
    }
    for (const peer of peers) this.peer(peer);
    for (const id of this.peers.keys()) {
      if (!peers.some((p) => p.peer === id)) this.peer({ peer: id, name: this.peers.get(id).name, state: 'left', safety_code: null });
    }
    for (const line of chat.filter((l) => l.from !== this.me)) {
      print({ event: 'message', from: line.from, channel: 'chat', data: { text: line.text } });
    }
    for (const { code, message } of notes) print({ event: 'error', code, message: message.replace(`${code}: `, '') });
    if (status.startsWith('error: ')) this.onFatal(status.slice('error: '.length));
  }

  peer(now) {
    const before = this.peers.get(now.peer);
    if (before && ['name', 'state', 'safety_code'].every((k) => before[k] === now[k])) return;
    if (now.state === 'left') this.peers.delete(now.peer);
    else this.peers.set(now.peer, now);
    print({ event: 'peer', ...now });
  }
}

const url = pageUrl(process.argv.slice(2));
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

  const commands = {
    send: async ({ text }) => {
      if (typeof text !== 'string') throw new Error('send takes a string "text"');
      await page.fill('#guest-chat-input', text);
      await page.click('#guest-chat-send');
    },
    microphone: () => page.click('#guest-mic'),
    camera: () => page.click('#guest-camera'),
    stats: async () => print({ event: 'stats', inbound: await page.evaluate(() => window.plenumInbound()) }),
    leave: async () => {
      await page.click('#guest-leave');
      await page.waitForFunction(() => document.getElementById('guest-status')?.textContent === 'left');
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

  await page.goto(url);
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
