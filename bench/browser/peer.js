// The page both browsers run (served as http://localhost/, a secure context, by the
// driver's request handler; no server). The sender offers its camera and microphone (the
// fake devices: a 720p30 pattern and a looped 440 Hz tone), VP8 only; the receiver answers,
// plays both in a <video> and watches them: the gaps between the pictures it shows and the
// holes in the tone it hears. No trickle: each side hands over its description once ICE
// gathering is complete. lab.mjs drives these functions through `page.evaluate`.
'use strict';

/** The peer connection of this page, for `stats()`. */
let pc = null;

/** Resolves once `connection` has gathered all its candidates. */
function gathered(connection) {
  return new Promise((resolve) => {
    const check = () => {
      if (connection.iceGatheringState === 'complete') resolve();
    };
    connection.addEventListener('icegatheringstatechange', check);
    check();
  });
}

/** The sender: camera and tone, VP8; returns the offer. */
async function send({ width, height, fps }) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: { exact: width }, height: { exact: height }, frameRate: { exact: fps } },
    // The tone as it is: no echo canceller, noise suppressor or gain control on it.
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  pc = new RTCPeerConnection();
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
  const video = pc.addTransceiver(stream.getVideoTracks()[0], {
    direction: 'sendonly',
    streams: [stream],
  });
  // VP8 and its retransmissions (RTX), nothing else.
  const codecs = RTCRtpReceiver.getCapabilities('video').codecs.filter((c) =>
    /^video\/(vp8|rtx)$/i.test(c.mimeType),
  );
  video.setCodecPreferences(codecs);
  await pc.setLocalDescription();
  await gathered(pc);
  return pc.localDescription.toJSON();
}

/** The sender takes the receiver's answer: the call starts. */
async function accept(answer) {
  await pc.setRemoteDescription(answer);
}

/** What the receiver saw and heard, filled in as the call goes. */
const watched = {
  /** Pictures shown. */
  shown: 0,
  /** Wall-clock time (ms) of the last picture shown. */
  lastShown: null,
  /** Gaps between pictures shown over 100 ms: [wall-clock ms at the end, gap in ms]. */
  gaps: [],
  /** Holes in the tone (5 ms windows under -40 dBFS), once over: [wall-clock ms, ms]. */
  holes: [],
  /** The hole the tone is in now, in ms (0: it plays). */
  hole: 0,
  /** 5 ms windows heard above -40 dBFS, and all windows. */
  heard: 0,
  windows: 0,
  analyser: null,
};

/** The receiver: plays what arrives, watches it; returns the answer to `offer`. */
async function receive(offer) {
  const video = document.querySelector('video');
  pc = new RTCPeerConnection();
  pc.addEventListener('track', (event) => {
    if (!video.srcObject) video.srcObject = event.streams[0];
    if (event.track.kind === 'audio') listen(new MediaStream([event.track]));
  });
  const onFrame = (now) => {
    const at = performance.timeOrigin + now;
    if (watched.lastShown !== null && at - watched.lastShown > 100) {
      watched.gaps.push([at, at - watched.lastShown]);
    }
    watched.lastShown = at;
    watched.shown += 1;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  await pc.setRemoteDescription(offer);
  await pc.setLocalDescription();
  await gathered(pc);
  return pc.localDescription.toJSON();
}

// Measures the tone as the project's lab does (plenum_media::analysis::longest_silence_ms):
// 5 ms windows, a hole is a run of windows under -40 dBFS. Runs in the audio thread.
const HOLES = `
class Holes extends AudioWorkletProcessor {
  constructor() {
    super();
    this.window = Math.round(sampleRate / 200);
    this.sum = 0;
    this.n = 0;
    this.run = 0;
    this.heard = 0;
    this.windows = 0;
    this.lastReport = 0;
  }
  process(inputs) {
    const samples = inputs[0] && inputs[0][0];
    for (let i = 0; i < 128; i++) {
      const s = samples ? samples[i] : 0;
      this.sum += s * s;
      if (++this.n < this.window) continue;
      const dbfs = 10 * Math.log10(Math.max(this.sum / this.n, 1e-20));
      this.windows += 1;
      if (dbfs < -40) {
        this.run += this.n;
      } else {
        this.heard += 1;
        if (this.run > 0) this.port.postMessage({ ended: (this.run * 1000) / sampleRate });
        this.run = 0;
      }
      this.sum = 0;
      this.n = 0;
    }
    if (currentTime - this.lastReport >= 0.1) {
      this.lastReport = currentTime;
      this.port.postMessage({
        hole: (this.run * 1000) / sampleRate,
        heard: this.heard,
        windows: this.windows,
      });
    }
    return true;
  }
}
registerProcessor('holes', Holes);
`;

/** Listens to the received tone through Web Audio. */
async function listen(stream) {
  const context = new AudioContext();
  const url = URL.createObjectURL(new Blob([HOLES], { type: 'text/javascript' }));
  await context.audioWorklet.addModule(url);
  const source = context.createMediaStreamSource(stream);
  const holes = new AudioWorkletNode(context, 'holes');
  holes.port.onmessage = ({ data }) => {
    if (data.ended !== undefined) {
      watched.holes.push([Date.now(), data.ended]);
      watched.hole = 0;
    } else {
      watched.hole = data.hole;
      watched.heard = data.heard;
      watched.windows = data.windows;
    }
  };
  watched.analyser = context.createAnalyser();
  watched.analyser.fftSize = 32768;
  source.connect(holes).connect(context.destination);
  source.connect(watched.analyser);
  await context.resume();
}

/** The strongest frequency in the last ~0.7 s of the tone, in Hz. */
function pitch() {
  const analyser = watched.analyser;
  if (!analyser) return null;
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 0;
  for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  return (best * analyser.context.sampleRate) / analyser.fftSize;
}

/**
 * This side's figures now: its RTP streams by kind and direction, the selected candidate
 * pair, the codecs in use, and (on the receiver) what it watched. Wall-clock `at` in ms.
 */
async function stats() {
  const report = await pc.getStats();
  const out = { at: Date.now(), inbound: {}, outbound: {}, remoteInbound: {}, pair: null };
  const codecs = {};
  let pairId = null;
  for (const r of report.values()) {
    if (r.type === 'inbound-rtp') out.inbound[r.kind] = r;
    else if (r.type === 'outbound-rtp') out.outbound[r.kind] = r;
    else if (r.type === 'remote-inbound-rtp') out.remoteInbound[r.kind] = r;
    else if (r.type === 'codec') codecs[r.id] = r.mimeType;
    else if (r.type === 'transport') pairId = r.selectedCandidatePairId;
  }
  if (pairId) out.pair = report.get(pairId);
  for (const side of [out.inbound, out.outbound]) {
    for (const r of Object.values(side)) r.codec = codecs[r.codecId] ?? null;
  }
  out.connection = pc.connectionState;
  out.watched = {
    shown: watched.shown,
    gaps: watched.gaps,
    holes: watched.holes,
    hole: watched.hole,
    heard: watched.heard,
    windows: watched.windows,
  };
  return out;
}
