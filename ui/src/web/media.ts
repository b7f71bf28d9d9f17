// Media on a link: three send-receive transceivers, audio, camera video and screen video, in
// that order, negotiated once so that publishing never renegotiates. A peer's camera and
// screen are told apart by section: the first video section carries the camera, the second
// the screen (docs/protocol.md, section 4).

export type Lane = "audio" | "camera" | "screen";
export const LANES: readonly Lane[] = ["audio", "camera", "screen"];

/** Our tracks, by lane; a lane without one sends nothing. */
export type LocalTracks = Partial<Record<Lane, MediaStreamTrack>>;

/** The lane of each media section of an SDP, by mid: the first audio section is audio, the
 * first video section the camera, the second the screen; other sections have none. */
export function lanesByMid(sdp: string): Map<string, Lane> {
  const lanes = new Map<string, Lane>();
  let audio = 0;
  let video = 0;
  for (const section of sdp.split(/\r?\n(?=m=)/).slice(1)) {
    const mid = /^a=mid:(\S+)/m.exec(section)?.[1];
    const kind = /^m=(\w+)/.exec(section)?.[1];
    if (mid === undefined) continue;
    if (kind === "audio" && audio++ === 0) lanes.set(mid, "audio");
    if (kind === "video") {
      const lane = (["camera", "screen"] as const)[video++];
      if (lane) lanes.set(mid, lane);
    }
  }
  return lanes;
}

/** Adds the three transceivers of an offer, with the tracks we have. */
export function addTransceivers(pc: RTCPeerConnection, tracks: LocalTracks): Map<Lane, RTCRtpTransceiver> {
  const kinds: Record<Lane, string> = { audio: "audio", camera: "video", screen: "video" };
  return new Map(LANES.map((lane) => [lane, pc.addTransceiver(tracks[lane] ?? kinds[lane], { direction: "sendrecv" })]));
}

/**
 * The transceivers a remote offer made (its description is set), by lane, turned
 * `sendrecv` and given our tracks: `setRemoteDescription` leaves them `recvonly`, and the
 * far side would never receive our media.
 */
export async function takeTransceivers(pc: RTCPeerConnection, offer: string, tracks: LocalTracks): Promise<Map<Lane, RTCRtpTransceiver>> {
  const lanes = lanesByMid(offer);
  const byLane = new Map<Lane, RTCRtpTransceiver>();
  for (const transceiver of pc.getTransceivers()) {
    const lane = transceiver.mid === null ? undefined : lanes.get(transceiver.mid);
    if (!lane) continue;
    transceiver.direction = "sendrecv";
    await transceiver.sender.replaceTrack(tracks[lane] ?? null);
    byLane.set(lane, transceiver);
  }
  return byLane;
}

/** Asks the browser for a track: a microphone (with the browser's echo cancellation and
 * noise suppression) or a camera, the device `deviceId` if given; or a screen, window or tab
 * the user picks. */
export async function captureTrack(lane: Lane, deviceId?: string): Promise<MediaStreamTrack> {
  const device = deviceId ? { deviceId: { exact: deviceId } } : {};
  const stream =
    lane === "screen"
      ? await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false })
      : await navigator.mediaDevices.getUserMedia(
          lane === "audio"
            ? { audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, ...device } }
            : { video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 }, ...device } },
        );
  const [track] = stream.getTracks();
  if (!track) throw new Error(`no ${lane} track`);
  return track;
}
