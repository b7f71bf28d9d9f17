// Drives the guest page in headless Firefox (Debian's firefox-esr, over WebDriver BiDi with
// puppeteer-core: no geckodriver needed) for the end-to-end tests, speaking JSON lines like
// `plenum join --json`. Firefox's fake microphone plays a 1 kHz tone.
//
//   node tests/browser/firefox-guest.mjs --url http://127.0.0.1:PORT/r/ROOM?name=Guest
//
// FIREFOX names the browser (default /usr/bin/firefox-esr).
// Events on stdout:
//   {"event":"joined","peer":ID}
//   {"event":"peer","peer":ID,"state":"connected","safety_code":C}   a link opened
//   {"event":"message","from":ID,"channel":C,"data":D}                any channel
//   {"event":"stats","inbound":[{"kind","packets_received"}]}
//   {"event":"left"}
//   {"event":"error","message":M}
// Commands on stdin, one JSON object a line:
//   {"cmd":"send","text":T}   types T into the chat and sends it
//   {"cmd":"microphone"}      turns the (fake) microphone on
//   {"cmd":"stats"}           the inbound RTP of the page's connections
//   {"cmd":"leave"}           leaves the room and exits 0
// It exits, closing the browser and deleting its profile, when stdin closes (0), on SIGTERM
// or SIGINT (0), and on any failure (1).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import puppeteer from 'puppeteer-core';

const STEP_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 5_000;

function print(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

const argv = process.argv.slice(2);
if (argv.length !== 2 || argv[0] !== '--url') {
  process.stderr.write('usage: firefox-guest.mjs --url http://HOST:PORT/r/ROOM?name=NAME\n');
  process.exit(2);
}
const url = argv[1];
const profile = await mkdtemp(join(tmpdir(), 'plenum-firefox-'));
let browser = null;
let closing = null;

function exit(code) {
  closing ??= (async () => {
    await Promise.race([browser?.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS))]);
    // A browser that would not close is ended by its process id.
    const pid = browser?.process()?.pid;
    if (pid && browser?.process()?.exitCode === null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    await rm(profile, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
    process.exit(code);
  })();
  return closing;
}

function fail(message) {
  if (closing) return closing;
  print({ event: 'error', message });
  return exit(1);
}

async function main() {
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX ?? '/usr/bin/firefox-esr',
    headless: true,
    userDataDir: profile,
    timeout: 60_000,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
      // The tests' peers are on loopback: offer those candidates, by address.
      'media.peerconnection.ice.loopback': true,
      'media.peerconnection.ice.obfuscate_host_addresses': false,
    },
  });
  browser.on('disconnected', () => closing ?? fail('the browser closed'));
  const [page] = await browser.pages();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('console', (m) => process.stderr.write(`page: ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
  await page.exposeFunction('plenumReport', (event) => print(event));
  await page.evaluateOnNewDocument(() => {
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
          if (s.type === 'inbound-rtp') inbound.push({ kind: s.kind, packets_received: s.packetsReceived ?? 0 });
        }
      }
      return inbound;
    };
  });

  const commands = {
    send: async ({ text }) => {
      if (typeof text !== 'string') throw new Error('send takes a string "text"');
      await page.type('#chat-input', text);
      await page.click('#chat-send');
    },
    microphone: () => page.click('#mic-button'),
    stats: async () => print({ event: 'stats', inbound: await page.evaluate(() => window.plenumInbound()) }),
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
    queue = queue
      .then(async () => {
        const parsed = JSON.parse(line);
        const run = Object.hasOwn(commands, parsed?.cmd) ? commands[parsed.cmd] : null;
        if (!run) return print({ event: 'error', code: 'bad_command', message: `unknown command: ${line}` });
        await run(parsed);
      })
      .catch((e) => fail(e.message));
  });

  await page.goto(url);
  await page.waitForFunction(() => window.plenumRoom || document.body.dataset.guest === 'error', { timeout: 60_000 });
  const status = await page.evaluate(() => document.body.dataset.guest);
  if (status === 'error') return fail(await page.evaluate(() => document.getElementById('guest-status')?.textContent ?? 'error'));
  await page.evaluate(() => {
    const room = window.plenumRoom;
    window.plenumReport({ event: 'joined', peer: room.me });
    room.on('linked', ({ peer, safetyCode }) => window.plenumReport({ event: 'peer', peer, state: 'connected', safety_code: safetyCode }));
    room.on('message', ({ from, channel, data }) => window.plenumReport({ event: 'message', from, channel, data }));
    for (const p of room.peers().filter((p) => p.state === 'connected')) window.plenumReport({ event: 'peer', peer: p.peer, state: 'connected', safety_code: p.safetyCode });
  });
}

process.on('SIGTERM', () => exit(0));
process.on('SIGINT', () => exit(0));
process.on('uncaughtException', (e) => fail(String(e?.message ?? e)));
process.on('unhandledRejection', (e) => fail(String(e?.message ?? e)));
main().catch((e) => fail(String(e?.message ?? e)));
