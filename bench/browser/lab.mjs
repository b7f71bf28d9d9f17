// Two headless Chromium peers in a call through the network lab, measured as the project's
// own lab measures its peers (docs/benchmarks.md, "Calls through the network lab"): A sends
// a 720p30 camera (the fake device) and a 440 Hz tone over VP8 and Opus, B receives. A's
// side of the veth pair is shaped with tbf and its bytes counted by nftables before the
// shaper, as in tests/src/cli.rs (`NetNs::shape`). Samples both sides' getStats and the
// counter once a second and prints one JSON object on stdout; progress goes to stderr.
//
// Run through run.sh, which makes the two namespaces (A with `va`, B with `vb`), a
// Chromium wrapper for each, and removes it all afterwards. It passes, in the environment:
//   LAB_NS_A, LAB_NS_B            the namespaces
//   LAB_CHROMIUM_A, LAB_CHROMIUM_B the wrappers (`ip netns exec NS /usr/bin/chromium "$@"`)
//   LAB_DIR                       a scratch directory (profiles, the tone)
//
// Scenarios (--scenario):
//   narrow  one rate (--rate, 600 kbit/s) for --duration s (40), the last --measure s (20)
//   step    2000 kbit/s, 300 from 10 s, 2000 again from 25 s; measured throughout (60 s)
//   loss    1000 kbit/s and 5 % random loss of UDP (--loss), --loss-at b-in (B's input, as
//           the project's lab) or a-out (the egress of A's va, before the shaper); the last
//           20 of 40 s
// The call's time 0 is when A has B's answer; the figures are over the measured seconds.

import { execFile } from 'node:child_process';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const run = promisify(execFile);
const here = new URL('.', import.meta.url).pathname;

const SCENARIOS = {
  narrow: { rate: 600, duration: 40, measure: 20 },
  step: { rate: 2000, narrow: 300, downAt: 10, upAt: 25, duration: 60 },
  loss: { rate: 1000, loss: 5, lossAt: 'b-in', duration: 40, measure: 20 },
};

/** Reads `--name value` options over the scenario's defaults. */
function options(argv) {
  const given = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '').replace(/-(.)/g, (_, c) => c.toUpperCase());
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) usage(`bad argument ${argv[i]}`);
    given[name] = argv[i + 1];
  }
  const scenario = given.scenario ?? 'narrow';
  if (!SCENARIOS[scenario]) usage(`no scenario ${scenario}`);
  const o = { loss: 0, lossAt: 'b-in', measure: 20, ...SCENARIOS[scenario], scenario };
  for (const [name, value] of Object.entries(given)) {
    if (name === 'scenario') continue;
    if (!(name in o)) usage(`--${name} does not apply to ${scenario}`);
    o[name] = name === 'lossAt' ? value : Number(value);
    if (name !== 'lossAt' && !Number.isFinite(o[name])) usage(`--${name} takes a number`);
  }
  // The step scenario is measured throughout; the others over their last seconds.
  o.measure = scenario === 'step' ? o.duration : Math.min(o.measure, o.duration);
  if (!['b-in', 'a-out'].includes(o.lossAt)) usage(`--loss-at is b-in or a-out`);
  return o;
}

function usage(why) {
  console.error(`lab.mjs: ${why}
usage: lab.mjs [--scenario narrow|step|loss] [--rate KBIT] [--duration S] [--measure S]
               [--narrow KBIT --down-at S --up-at S] [--loss PERCENT --loss-at b-in|a-out]`);
  process.exit(2);
}

function env(name) {
  const value = process.env[name];
  if (!value) usage(`${name} is not set (run through run.sh)`);
  return value;
}

/** Runs a command inside a namespace; its stdout. */
async function inNs(ns, ...command) {
  const { stdout } = await run('ip', ['netns', 'exec', ns, ...command]);
  return stdout;
}

// --- The path -------------------------------------------------------------------------

/**
 * Shapes A's side at `o.rate`, counts what A hands `va` and, if asked, loses some of it.
 * The loss is a rule no sender can see: on B's input (as tests/src/cli.rs `NetNs::lose`),
 * or at `va`'s egress, after the counter and before the shaper. A drop in A's output hook
 * is no loss: the send fails with EPERM, and B sees next to nothing lost (in one run, 6
 * packets of 290 dropped).
 */
async function makePath(o, nsA, nsB, dir) {
  await inNs(nsA, ...tbf('add', o.rate));
  await nftables(
    nsA,
    join(dir, 'a.nft'),
    `table inet lab {
       counter out_bytes {}
       chain out {
         type filter hook output priority 0; policy accept;
         oifname "va" counter name out_bytes
       }
     }`,
  );
  if (o.loss === 0) return;
  const [ns, family, hook] =
    o.lossAt === 'b-in'
      ? [nsB, 'inet', 'type filter hook input priority 0']
      : [nsA, 'netdev', 'type filter hook egress device "va" priority 0'];
  await nftables(
    ns,
    join(dir, 'loss.nft'),
    `table ${family} lab_loss {
       counter lost {}
       chain lose {
         ${hook}; policy accept;
         meta l4proto udp numgen random mod 100 < ${o.loss} counter name lost drop
       }
     }`,
  );
  return () => counter(ns, family, 'lab_loss', 'lost');
}

function tbf(verb, kbit) {
  return ['tc', 'qdisc', verb, 'dev', 'va', 'root', 'tbf', 'rate', `${kbit}kbit`, 'burst', '4kb',
    'latency', '200ms'];
}

async function nftables(ns, path, rules) {
  await writeFile(path, rules);
  await inNs(ns, 'nft', '-f', path);
}

/** A named nftables counter in `ns`: [packets, bytes]. */
async function counter(ns, family, table, name) {
  const out = await inNs(ns, 'nft', 'list', 'counter', family, table, name);
  const packets = Number(/packets (\d+)/.exec(out)?.[1]);
  const bytes = Number(/bytes (\d+)/.exec(out)?.[1]);
  if (!Number.isFinite(bytes)) throw new Error(`no byte count in ${out}`);
  return [packets, bytes];
}

/** CPU seconds used so far by the processes in `ns`. */
async function cpuSeconds(ns) {
  const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean);
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      // Gone since it was listed.
    }
  }
  return ticks / 100;
}

// --- The browsers ---------------------------------------------------------------------

const ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // The fake camera runs at 20 fps unless told; the project's lab sends 30.
  '--use-fake-device-for-media-stream=fps=30',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

const PAGE = `<!doctype html><meta charset="utf-8"><title>lab</title>
<video autoplay playsinline style="width:320px"></video>
<script src="/peer.js"></script>`;

/** A 440 Hz tone, one second at -6 dBFS (a whole number of cycles: it loops seamlessly). */
function tone(rate = 48000) {
  const data = Buffer.alloc(rate * 2);
  for (let i = 0; i < rate; i++) {
    data.writeInt16LE(Math.round(0.5 * 32767 * Math.sin((2 * Math.PI * 440 * i) / rate)), i * 2);
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

/** One browser in its namespace (through `wrapper`), with the lab's page open. */
async function open(name, wrapper, dir, extraArgs = []) {
  const profile = join(dir, `profile-${name}`);
  await mkdir(profile, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: wrapper,
    // --headless=new is among the arguments: Playwright's own headless switch would also
    // mute the audio, and B plays the call as a browser would.
    headless: false,
    args: [...ARGS, ...extraArgs],
    viewport: { width: 640, height: 480 },
  });
  const script = await readFile(join(here, 'peer.js'), 'utf8');
  await context.route('http://localhost/**', (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === '/') return route.fulfill({ contentType: 'text/html', body: PAGE });
    if (path === '/peer.js') return route.fulfill({ contentType: 'text/javascript', body: script });
    return route.fulfill({ status: 404 });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => console.error(`${name}: ${e.message}`));
  await page.goto('http://localhost/');
  return { name, context, page };
}

// --- Figures --------------------------------------------------------------------------

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const round = (v, digits = 1) => (v === null ? null : Number(v.toFixed(digits)));
const sum = (values) => values.reduce((a, b) => a + b, 0);
const kbps = (bps) => (typeof bps === 'number' ? bps / 1000 : null);
const ms = (s) => (typeof s === 'number' ? s * 1000 : null);

/** Mean, min and max of the numbers in `values` (others skipped). */
function spread(values, digits = 0) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (v.length === 0) return null;
  return {
    mean: round(sum(v) / v.length, digits),
    min: round(Math.min(...v), digits),
    max: round(Math.max(...v), digits),
  };
}

// One sample's RTP streams: what B received, what A sent.
const video = (s) => s.b.inbound.video ?? {};
const audio = (s) => s.b.inbound.audio ?? {};
const sentVideo = (s) => s.a.outbound.video ?? {};
const sentAudio = (s) => s.a.outbound.audio ?? {};
const size = (r) => (r.frameWidth ? `${r.frameWidth}x${r.frameHeight}` : null);
const top = (r) => r.frameWidth === 1280 && r.frameHeight === 720;

/** Each time (s) `get` took a new value, with it: [[t, value], ...]. */
function changes(samples, get) {
  const out = [];
  for (const s of samples) {
    const v = get(s);
    if (out.length === 0 || out[out.length - 1][1] !== v) out.push([s.t, v]);
  }
  return out;
}

/** The first sample time (s) at or after `from` at which `ok` holds. */
function firstAt(samples, from, ok) {
  return samples.find((s) => s.t >= from && ok(s))?.t ?? null;
}

/** What A put on the wire each second of `samples`, in kbit/s. */
function perSecondKbps(samples) {
  return samples.slice(1).map((s, i) => {
    const before = samples[i];
    return ((s.wire - before.wire) * 8) / 1000 / (s.t - before.t);
  });
}

/** The wire rate between two samples, in kbit/s. */
function wireKbps(first, last) {
  return Math.round(((last.wire - first.wire) * 8) / 1000 / (last.t - first.t));
}

/** The figures over one stretch of samples (the first one is the baseline). */
function figures(samples) {
  const first = samples[0];
  const last = samples[samples.length - 1];
  const seconds = last.t - first.t;
  const d = (get) => num(get(last)) - num(get(first));

  // Freezes as the receiver's stats count them: a second with one new freeze gives its
  // length exactly, a second with several bounds the longest by their sum.
  let longestFreeze = 0;
  let longestExact = true;
  for (let i = 1; i < samples.length; i++) {
    const [before, after] = [video(samples[i - 1]), video(samples[i])];
    const count = num(after.freezeCount) - num(before.freezeCount);
    const total = (num(after.totalFreezesDuration) - num(before.totalFreezesDuration)) * 1000;
    if (count > 0 && total > longestFreeze) {
      longestFreeze = total;
      longestExact = count === 1;
    }
  }
  // What B's page watched: gaps between pictures shown, holes in the tone (the one it may
  // be in at the end included).
  const watched = last.b.watched;
  const inWindow = ([at]) => at > first.b.at && at <= last.b.at;
  const gaps = watched.gaps.filter(inWindow).map(([, gap]) => gap);
  const holes = [...watched.holes.filter(inWindow).map(([, hole]) => hole), watched.hole];
  const windows = watched.windows - first.b.watched.windows;

  const wire = perSecondKbps(samples);
  const fives = wire.slice(4).map((_, i) => sum(wire.slice(i, i + 5)) / 5);
  const blocks = Array.from({ length: Math.floor(wire.length / 5) }, (_, i) =>
    Math.round(sum(wire.slice(i * 5, i * 5 + 5)) / 5),
  );
  const videoBytes = d((s) => sentVideo(s).bytesSent);
  const audioBytes = d((s) => sentAudio(s).bytesSent);
  const rtxBytes =
    d((s) => sentVideo(s).retransmittedBytesSent) + d((s) => sentAudio(s).retransmittedBytesSent);
  const heard = d((s) => audio(s).totalSamplesReceived);
  const limited = {};
  for (const [why, at] of Object.entries(sentVideo(last).qualityLimitationDurations ?? {})) {
    limited[why] = round(at - num(sentVideo(first).qualityLimitationDurations?.[why]));
  }
  const jitterMs = (get) => {
    const emitted = d((s) => get(s).jitterBufferEmittedCount);
    return emitted > 0 ? round((d((s) => get(s).jitterBufferDelay) / emitted) * 1000) : null;
  };

  return {
    window_s: [first.t, last.t],
    video: {
      pictures_decoded: d((s) => video(s).framesDecoded),
      fps: round(d((s) => video(s).framesDecoded) / seconds),
      pictures_shown: watched.shown - first.b.watched.shown,
      size_at_end: size(video(last)),
      sent_size_at_end: size(sentVideo(last)),
      freezes: d((s) => video(s).freezeCount),
      freezes_total_ms: Math.round(d((s) => video(s).totalFreezesDuration) * 1000),
      longest_freeze_ms: Math.round(longestFreeze),
      longest_freeze_exact: longestExact,
      // The longest wait between two pictures the <video> showed, if over 100 ms.
      longest_gap_shown_ms: gaps.length ? Math.round(Math.max(...gaps)) : 0,
      packets_lost: d((s) => video(s).packetsLost),
      packets_received: d((s) => video(s).packetsReceived),
      nacks_sent: d((s) => video(s).nackCount),
      plis_sent: d((s) => video(s).pliCount),
      keyframes_decoded: d((s) => video(s).keyFramesDecoded),
      jitter_buffer_ms: jitterMs(video),
    },
    audio: {
      packets_lost: d((s) => audio(s).packetsLost),
      concealed_share: heard ? round(d((s) => audio(s).concealedSamples) / heard, 4) : null,
      silent_concealed_share: heard
        ? round(d((s) => audio(s).silentConcealedSamples) / heard, 4)
        : null,
      concealment_events: d((s) => audio(s).concealmentEvents),
      longest_hole_ms: Math.round(Math.max(...holes)),
      holes_over_20ms: holes.filter((hole) => hole > 20).length,
      tone_heard_share: windows
        ? round((watched.heard - first.b.watched.heard) / windows, 4)
        : null,
      fec_packets_received: d((s) => audio(s).fecPacketsReceived),
      jitter_buffer_ms: jitterMs(audio),
    },
    sender: {
      video_bytes: videoBytes,
      audio_bytes: audioBytes,
      retransmitted_bytes: rtxBytes,
      retransmitted_share: round(rtxBytes / Math.max(1, videoBytes + audioBytes), 4),
      available_outgoing_kbps: spread(samples.map((s) => kbps(s.a.pair?.availableOutgoingBitrate))),
      target_kbps: spread(samples.map((s) => kbps(sentVideo(s).targetBitrate))),
      // The loss B's reception reports tell A, per sample.
      fraction_lost: spread(samples.map((s) => s.a.remoteInbound.video?.fractionLost), 3),
      quality_limited_s: limited,
      quality_limitation_at_end: sentVideo(last).qualityLimitationReason ?? null,
    },
    wire: {
      per_second_kbps: wire.map(Math.round),
      per_5s_kbps: blocks,
      most_in_5s_kbps: fives.length ? Math.round(Math.max(...fives)) : null,
      mean_kbps: wireKbps(first, last),
    },
    rtt_ms: {
      // STUN consent checks (every few seconds) and RTCP reception reports (about 1 s).
      ice: spread(samples.map((s) => ms(s.a.pair?.currentRoundTripTime))),
      rtcp: spread(samples.map((s) => ms(s.a.remoteInbound.video?.roundTripTime))),
    },
  };
}

/** The step scenario's own figures: how the sender followed the path down and back up. */
function stepFigures(samples, o) {
  const wide = samples.filter((s) => s.t < o.downAt);
  const narrow = samples.filter((s) => s.t >= o.downAt && s.t <= o.upAt);
  const settled = narrow.filter((s) => s.t >= o.downAt + 5);
  const after = (t) => (t === null ? null : t - o.upAt);
  return {
    seconds_sent_720p_while_wide: wide.filter((s) => top(sentVideo(s))).length,
    narrow_pictures_decoded:
      num(video(narrow[narrow.length - 1]).framesDecoded) - num(video(narrow[0]).framesDecoded),
    narrow_settled_wire_kbps:
      settled.length > 1 ? wireKbps(settled[0], settled[settled.length - 1]) : null,
    narrow_sizes_sent: [...new Set(settled.map((s) => size(sentVideo(s))))],
    back_to_720p_sent_after_s: after(firstAt(samples, o.upAt, (s) => top(sentVideo(s)))),
    back_to_720p_received_after_s: after(firstAt(samples, o.upAt, (s) => top(video(s)))),
  };
}

// --- The call -------------------------------------------------------------------------

/** One line of progress on stderr. */
function progress(s, before) {
  const pair = s.a.pair ?? {};
  const fields = {
    path: s.rate,
    wire: before ? wireKbps(before, s) : '-',
    avail: pair.availableOutgoingBitrate ? Math.round(pair.availableOutgoingBitrate / 1000) : '-',
    sent: size(sentVideo(s)),
    recv: size(video(s)),
    fps: video(s).framesPerSecond ?? '-',
    rtt: round(ms(pair.currentRoundTripTime), 0) ?? '-',
    limit: sentVideo(s).qualityLimitationReason ?? '-',
  };
  const line = Object.entries(fields).map(([name, value]) => `${name}=${value}`);
  console.error(`t=${s.t} ${line.join(' ')}`);
}

async function main() {
  const o = options(process.argv.slice(2));
  const [nsA, nsB, dir] = [env('LAB_NS_A'), env('LAB_NS_B'), env('LAB_DIR')];
  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');

  const lost = await makePath(o, nsA, nsB, dir);
  const tonePath = join(dir, 'tone.wav');
  await writeFile(tonePath, tone());

  const browsers = [];
  try {
    const a = await open('a', env('LAB_CHROMIUM_A'), dir, [
      `--use-file-for-fake-audio-capture=${tonePath}`,
    ]);
    browsers.push(a);
    const b = await open('b', env('LAB_CHROMIUM_B'), dir);
    browsers.push(b);
    const cdp = await a.context.newCDPSession(a.page);
    const { product } = await cdp.send('Browser.getVersion');
    await cdp.detach();

    const want = { width: 1280, height: 720, fps: 30 };
    const offer = await a.page.evaluate((want) => send(want), want);
    const answer = await b.page.evaluate((offer) => receive(offer), offer);
    await a.page.evaluate((answer) => accept(answer), answer);
    // The call's time 0: the sender has the answer.
    const t0 = Date.now();
    console.error(`call set up; sampling for ${o.duration} s`);

    const samples = [];
    const from = o.duration - o.measure;
    let rate = o.rate;
    let cpuFrom = null;
    for (let t = 0; t <= o.duration; t++) {
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + t * 1000 - Date.now())));
      if (o.scenario === 'step' && (t === o.downAt || t === o.upAt)) {
        rate = t === o.downAt ? o.narrow : o.rate;
        await inNs(nsA, ...tbf('change', rate));
        console.error(`t=${t} the path is now ${rate} kbit/s`);
      }
      const [sa, sb, [, wire]] = await Promise.all([
        a.page.evaluate(() => stats()),
        b.page.evaluate(() => stats()),
        counter(nsA, 'inet', 'lab', 'out_bytes'),
      ]);
      samples.push({ t, rate, a: sa, b: sb, wire });
      progress(samples[samples.length - 1], samples[samples.length - 2]);
      if (t === from) cpuFrom = await Promise.all([cpuSeconds(nsA), cpuSeconds(nsB)]);
    }
    const cpuTo = await Promise.all([cpuSeconds(nsA), cpuSeconds(nsB)]);
    const [dropped] = lost ? await lost() : [0];
    const pitchHz = await b.page.evaluate(() => pitch());

    const last = samples[samples.length - 1];
    const measured = figures(samples.slice(from));
    measured.audio.pitch_hz = round(pitchHz);
    const cpu = (i) => round(((cpuTo[i] - cpuFrom[i]) / o.measure) * 100);
    const result = {
      scenario: o.scenario,
      path: {
        rate_kbit: o.rate,
        ...(o.scenario === 'step'
          ? { narrow_kbit: o.narrow, down_at_s: o.downAt, up_at_s: o.upAt }
          : {}),
        loss_percent: o.loss,
        ...(o.loss > 0 ? { loss_at: o.lossAt, packets_dropped: dropped } : {}),
        shaper: 'tbf burst 4kb latency 200ms on A egress',
      },
      duration_s: o.duration,
      browser: product,
      date: new Date().toISOString(),
      loadavg_at_start: load,
      call: {
        codecs: { video: sentVideo(last).codec ?? null, audio: sentAudio(last).codec ?? null },
        encoder: sentVideo(last).encoderImplementation ?? null,
        first_picture_s: firstAt(samples, 0, (s) => num(video(s).framesDecoded) > 0),
        sent_720p_from_start_s: firstAt(samples, 0, (s) => top(sentVideo(s))),
        received_720p_from_start_s: firstAt(samples, 0, (s) => top(video(s))),
      },
      ...measured,
      ...(o.scenario === 'step' ? { step: stepFigures(samples, o) } : {}),
      cpu_percent: { a: cpu(0), b: cpu(1) },
      sizes: {
        sent: changes(samples, (s) => size(sentVideo(s))),
        received: changes(samples, (s) => size(video(s))),
      },
      per_second: {
        path_kbit: samples.map((s) => s.rate),
        wire_kbps: [null, ...perSecondKbps(samples).map(Math.round)],
        available_kbps: samples.map((s) => round(kbps(s.a.pair?.availableOutgoingBitrate), 0)),
        fps: samples.map((s) => video(s).framesPerSecond ?? null),
        rtt_ms: samples.map((s) => round(ms(s.a.pair?.currentRoundTripTime), 0)),
      },
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    for (const browser of browsers) {
      await browser.page.evaluate(() => pc?.close()).catch(() => {});
      await browser.context.close().catch(() => {});
    }
  }
}

await main();
