// The guest page's sound: each peer's microphone played through the chosen speaker, who is
// speaking (a level with hysteresis, as the app shows it), and our own microphone's level
// for the settings' meter.

/** A level above this starts speaking... */
const SPEAKING_DBFS = -50;
/** ...and speaking ends after this long below it. */
const SPEAKING_HOLD_MS = 600;
const POLL_MS = 100;

/** The level of an analysed signal, dBFS (`-Infinity` for silence). */
export function levelDbfs(samples: Float32Array): number {
  let sum = 0;
  for (const s of samples) sum += s * s;
  const rms = Math.sqrt(sum / Math.max(1, samples.length));
  return 20 * Math.log10(rms);
}

/** Speaking with hysteresis: on at once above the threshold, off after a hold below it. */
export class SpeakingGate {
  private loudAt = -Infinity;
  speaking = false;

  /** Takes a level measured at `now` (ms); whether the state changed. */
  level(dbfs: number, now: number): boolean {
    if (dbfs > SPEAKING_DBFS) this.loudAt = now;
    const speaking = now - this.loudAt < SPEAKING_HOLD_MS;
    if (speaking === this.speaking) return false;
    this.speaking = speaking;
    return true;
  }
}

interface Voice {
  element: HTMLAudioElement;
  analyser: AnalyserNode | null;
  gate: SpeakingGate;
}

export class AudioOut {
  private readonly voices = new Map<string, Voice>();
  private readonly holder: HTMLElement;
  private context: AudioContext | null = null;
  private mic: { track: MediaStreamTrack; analyser: AnalyserNode } | null = null;
  private sink: string | null = null;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly samples = new Float32Array(1024);

  /** `speaking` hears each change of who speaks. */
  constructor(private readonly speaking: (peer: string, speaking: boolean) => void) {
    this.holder = document.createElement("div");
    this.holder.hidden = true;
    this.holder.id = "guest-audio";
    document.body.appendChild(this.holder);
    // A page may not start sound before the user does something: the first click or key does.
    const wake = () => this.wake();
    addEventListener("pointerdown", wake, { once: true });
    addEventListener("keydown", wake, { once: true });
  }

  /** Plays `peer`'s microphone. */
  play(peer: string, track: MediaStreamTrack): void {
    this.stop(peer);
    const stream = new MediaStream([track]);
    const element = document.createElement("audio");
    element.autoplay = true;
    element.srcObject = stream;
    element.dataset.peer = peer;
    this.holder.appendChild(element);
    if (this.sink) void this.route(element, this.sink);
    void element.play().catch(() => {});
    const analyser = this.analyse(stream);
    this.voices.set(peer, { element, analyser, gate: new SpeakingGate() });
    this.poll();
  }

  /** Stops playing `peer`. */
  stop(peer: string): void {
    const voice = this.voices.get(peer);
    if (!voice) return;
    this.voices.delete(peer);
    voice.element.srcObject = null;
    voice.element.remove();
    voice.analyser?.disconnect();
    if (voice.gate.speaking) this.speaking(peer, false);
  }

  /** Plays through output device `id` (`null`: the default); refused where the browser
   * cannot choose (it then plays on the default). */
  async setSink(id: string | null): Promise<void> {
    this.sink = id;
    await Promise.all([...this.voices.values()].map((v) => this.route(v.element, id ?? "")));
  }

  /** Measures our microphone's level from now on (`null`: nothing to measure). */
  measure(track: MediaStreamTrack | null): void {
    this.mic?.analyser.disconnect();
    this.mic = null;
    const analyser = track ? this.analyse(new MediaStream([track])) : null;
    if (track && analyser) this.mic = { track, analyser };
  }

  /** Our microphone's level, dBFS; `null` while it is off or muted. */
  micLevel(): number | null {
    if (!this.mic || !this.mic.track.enabled || this.mic.track.readyState === "ended") return null;
    this.mic.analyser.getFloatTimeDomainData(this.samples);
    const level = levelDbfs(this.samples);
    return Number.isFinite(level) ? level : null;
  }

  close(): void {
    clearInterval(this.timer);
    for (const peer of [...this.voices.keys()]) this.stop(peer);
    this.measure(null);
    this.holder.remove();
    void this.context?.close().catch(() => {});
  }

  private async route(element: HTMLAudioElement, id: string): Promise<void> {
    const sinkable = element as HTMLAudioElement & { setSinkId?: (id: string) => Promise<void> };
    if (!sinkable.setSinkId) throw new Error("this browser plays on its default speaker only");
    await sinkable.setSinkId(id);
  }

  private analyse(stream: MediaStream): AnalyserNode | null {
    try {
      this.context ??= new AudioContext();
      const analyser = this.context.createAnalyser();
      analyser.fftSize = this.samples.length;
      this.context.createMediaStreamSource(stream).connect(analyser);
      return analyser;
    } catch {
      return null;
    }
  }

  private wake(): void {
    void this.context?.resume().catch(() => {});
    for (const voice of this.voices.values()) void voice.element.play().catch(() => {});
  }

  private poll(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      const now = performance.now();
      for (const [peer, voice] of this.voices) {
        if (!voice.analyser) continue;
        voice.analyser.getFloatTimeDomainData(this.samples);
        if (voice.gate.level(levelDbfs(this.samples), now)) this.speaking(peer, voice.gate.speaking);
      }
    }, POLL_MS);
  }
}
