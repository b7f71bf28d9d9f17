//! The stage's forwarding on a virtual clock: which neighbours a seated voice comes from
//! and goes to, and the words that keep each peer to one copy.

use std::sync::Arc;
use std::time::Duration;

use plenum_overlay::MeshState;
use plenum_proto::signal::StageSeat;
use plenum_proto::{DisplayName, PeerId};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp::{Header, Packet};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

use super::{CellStage, Control, ControlError, LANES, PRESENTER_CAMERA, SOURCE_SILENCE};
use crate::congestion::LinkStats;
use crate::outbound::TrackSender;

fn peer(name: &str) -> PeerId {
    PeerId::new(format!("{name:0<8}")).expect("a peer id")
}

/// A link's stage tracks; lane `i`'s SSRC is `base + i`.
fn tracks(base: u32) -> Vec<Option<TrackSender>> {
    (0..LANES)
        .map(|i| {
            let kind = match super::lane_content(i) {
                Some(_) => RtpCodecKind::Video,
                None => RtpCodecKind::Audio,
            };
            let track = MediaStreamTrack::new(
                "stream".to_owned(),
                format!("stage{i}-{base}"),
                "label".to_owned(),
                kind,
                vec![],
            );
            let track = TrackLocalStaticSample::new(crate::clock::now(), track).expect("a track");
            Some(TrackSender {
                track: Arc::new(track),
                ssrc: base + i as u32,
                payload_type: 111,
            })
        })
        .collect()
}

fn voice(ssrc: u32, seq: u16) -> Packet {
    Packet {
        header: Header {
            version: 2,
            payload_type: 111,
            sequence_number: seq,
            timestamp: u32::from(seq) * 960,
            ssrc,
            ..Header::default()
        },
        payload: vec![0xf8, 0xff, 0xfe].into(),
    }
}

/// "m" in cell 1 of three cells (radices [3]) with cell mates "a" and "b", and bridges to
/// "x" in cell 0 and "y" in cell 2. Every link is up; link `n`'s SSRCs start at `n * 100`.
fn stage() -> CellStage {
    stage_on(&Default::default())
}

/// [`stage`], its links to "a", "b", "x" and "y" learning of their paths in `paths`.
fn stage_on(paths: &[Arc<LinkStats>; 4]) -> CellStage {
    let stage = CellStage::new(peer("m"));
    stage.place(&MeshState {
        cell: 1,
        cells: 3,
        cell_size: 3,
        is_bridge: true,
        bridges: vec![(peer("x"), 0), (peer("y"), 2)],
        epoch: 1,
        radices: vec![3],
    });
    for (n, name) in ["a", "b", "x", "y"].iter().enumerate() {
        stage.adopt(&peer(name), &tracks((n as u32 + 1) * 100), &paths[n]);
    }
    stage
}

fn seat(name: &str, cell: u32) -> Option<StageSeat> {
    Some(StageSeat {
        peer: peer(name),
        name: DisplayName::new(name).expect("a name"),
        cell,
    })
}

/// Which links the writes went to, by their seat-0 SSRC base.
fn went_to(writes: &[super::Write]) -> Vec<u32> {
    let mut to: Vec<u32> = writes.iter().map(|(_, p)| p.header.ssrc / 100).collect();
    to.sort_unstable();
    to
}

#[test]
fn a_voice_from_the_cell_it_enters_by_floods_the_cell_and_a_copy_is_stopped() {
    let stage = stage();
    let now = crate::clock::now();
    assert_eq!(
        stage.set_seats(&[seat("h", 0), None, None, None], None),
        (None, false)
    );
    // Over the bridge from cell 0 (we are an entry): to both cell mates, not on to cell 2
    // (cell 0 reaches it itself).
    let pushed = stage.push(&peer("x"), 0, &voice(7, 1), now);
    assert_eq!(pushed.play, Some(peer("h")));
    assert_eq!(went_to(&pushed.writes), [1, 2]);
    assert!(pushed.controls.is_empty());
    // Another entry floods it too: that copy is neither played nor passed on, and its
    // sender is told to stop, once per interval.
    let copy = stage.push(&peer("a"), 0, &voice(8, 1), now);
    assert_eq!(copy.play, None);
    assert!(copy.writes.is_empty());
    let prune = Control::Prune {
        seat: 0,
        holder: peer("h"),
    };
    assert_eq!(copy.controls, [(peer("a"), prune)]);
    let again = stage.push(&peer("a"), 0, &voice(8, 2), now + Duration::from_millis(20));
    assert!(again.controls.is_empty());
    // The source falls silent: the neighbour we stopped is asked to send again.
    let later = now + SOURCE_SILENCE;
    let graft = Control::Graft {
        seat: 0,
        holder: peer("h"),
    };
    assert_eq!(stage.tick(later), [(peer("a"), graft)]);
    // From a cell mate the voice is played and goes nowhere: the mate's entry flooded it.
    let from_mate = stage.push(&peer("a"), 0, &voice(8, 3), later);
    assert_eq!(from_mate.play, Some(peer("h")));
    assert!(from_mate.writes.is_empty());
}

#[test]
fn a_voice_from_our_cell_comes_from_its_speaker_and_goes_over_every_bridge() {
    let stage = stage();
    let now = crate::clock::now();
    stage.set_seats(&[None, seat("a", 1), None, None], None);
    let pushed = stage.push(&peer("a"), 1, &voice(9, 1), now);
    assert_eq!(pushed.play, Some(peer("a")));
    assert_eq!(
        went_to(&pushed.writes),
        [3, 4],
        "both bridges, no cell mate"
    );
    // Nobody else may send us our own cell's voice: a bridge's copy is stopped.
    let stray = stage.push(&peer("x"), 1, &voice(10, 1), now);
    assert_eq!(stray.play, None);
    assert!(stray.writes.is_empty());
    assert_eq!(stray.controls.len(), 1);
    // An empty seat carries nothing.
    let empty = stage.push(&peer("a"), 2, &voice(9, 2), now);
    assert_eq!(empty.play, None);
    assert!(empty.writes.is_empty());
}

#[test]
fn our_seat_goes_to_every_neighbour_but_those_that_stopped_us() {
    let stage = stage();
    let now = crate::clock::now();
    assert_eq!(
        stage.set_seats(&[None, None, seat("m", 1), None], None),
        (Some(2), false)
    );
    let writes = stage.push_own(2, vec![1, 2, 3].into(), now);
    assert_eq!(went_to(&writes), [1, 2, 3, 4]);
    // Each link's copy carries that link's own track.
    assert!(writes.iter().all(|(_, p)| p.header.ssrc % 100 == 2));
    let prune = |holder: &str| Control::Prune {
        seat: 2,
        holder: peer(holder),
    };
    stage.control(&peer("y"), prune("m"));
    // A word about another holder's voice is stale and changes nothing.
    stage.control(&peer("x"), prune("h"));
    let writes = stage.push_own(2, vec![4].into(), now);
    assert_eq!(went_to(&writes), [1, 2, 3]);
    let graft = Control::Graft {
        seat: 2,
        holder: peer("m"),
    };
    stage.control(&peer("y"), graft);
    assert_eq!(
        went_to(&stage.push_own(2, vec![5].into(), now)),
        [1, 2, 3, 4]
    );
    // Not ours any more: nothing goes.
    stage.set_seats(&[None, None, seat("b", 1), None], None);
    assert!(stage.push_own(2, vec![6].into(), now).is_empty());
}

#[test]
fn a_lost_source_asks_the_stopped_to_send_and_a_new_holder_starts_afresh() {
    let stage = stage();
    let now = crate::clock::now();
    stage.set_seats(&[seat("h", 0), None, None, None], None);
    stage.push(&peer("x"), 0, &voice(7, 1), now);
    let copy = stage.push(&peer("b"), 0, &voice(8, 1), now);
    assert_eq!(copy.controls.len(), 1);
    let graft = Control::Graft {
        seat: 0,
        holder: peer("h"),
    };
    assert_eq!(stage.drop_link(&peer("x")), [(peer("b"), graft)]);
    let pushed = stage.push(&peer("b"), 0, &voice(8, 2), now);
    assert_eq!(pushed.play, Some(peer("h")));
    // Another holder: the seat's tree is new; whoever sends first is the source.
    stage.set_seats(&[seat("g", 2), None, None, None], None);
    assert_eq!(stage.holder(0), Some(peer("g")));
    // Cell 2's voice enters cell 1 over the bridge to y.
    let pushed = stage.push(&peer("y"), 0, &voice(11, 1), now);
    assert_eq!(pushed.play, Some(peer("g")));
    assert_eq!(went_to(&pushed.writes), [1, 2]);
}

#[test]
fn stage_words_round_trip_and_broken_ones_are_errors() {
    for word in [
        Control::Prune {
            seat: 3,
            holder: peer("h"),
        },
        Control::Graft {
            seat: 0,
            holder: peer("g"),
        },
    ] {
        assert_eq!(Control::decode(&word.encode()), Ok(word));
    }
    assert_eq!(Control::decode(&[0]), Err(ControlError::Truncated(1)));
    assert_eq!(
        Control::decode(b"\x00\x06h0000000"),
        Err(ControlError::BadSeat(6))
    );
    assert_eq!(
        Control::decode(b"\x07\x00h0000000"),
        Err(ControlError::UnknownOp(7))
    );
    assert_eq!(Control::decode(b"\x00\x00"), Err(ControlError::BadHolder));
    assert_eq!(
        Control::decode(b"\x00\x00\xff\xfe"),
        Err(ControlError::BadHolder)
    );
}

/// One picture of the presenter's camera as `parts` VP8 packets on `ssrc` (a keyframe if
/// `key`), numbered from `seq`.
fn picture(ssrc: u32, seq: u16, key: bool, parts: u16) -> Vec<Packet> {
    (0..parts)
        .map(|i| {
            let mut payload = vec![0xab_u8; 40];
            // VP8 payload descriptor: S on the first packet; the frame's first byte has bit
            // 0 clear on a keyframe.
            payload[0] = if i == 0 { 0x10 } else { 0x00 };
            payload[1] = if key { 0x00 } else { 0x01 };
            Packet {
                header: Header {
                    version: 2,
                    marker: i + 1 == parts,
                    payload_type: 96,
                    sequence_number: seq.wrapping_add(i),
                    timestamp: u32::from(seq) * 3000,
                    ssrc,
                    ..Header::default()
                },
                payload: payload.into(),
            }
        })
        .collect()
}

#[test]
fn the_presenters_pictures_cross_the_cells_from_a_keyframe_and_keyframe_requests_go_upstream() {
    let stage = stage();
    let now = crate::clock::now();
    let camera = PRESENTER_CAMERA;
    // The presenter is in cell 0: its pictures enter our cell over the bridge to x.
    assert_eq!(
        stage.set_seats(&[seat("h", 0), None, None, None], seat("h", 0).as_ref()),
        (None, false)
    );
    assert_eq!(stage.holder(camera), Some(peer("h")));
    assert_eq!(stage.holder(camera + 1), Some(peer("h")));
    // A picture that is not a keyframe is played here (our decoder waits for one) but
    // passed on to nobody yet; the cell mates' links wait for a keyframe, asked upstream.
    let pushed = stage.push(&peer("x"), camera, &picture(7, 1, false, 1)[0], now);
    assert_eq!(pushed.play, Some(peer("h")));
    assert!(pushed.writes.is_empty());
    assert_eq!(stage.keyframe_requests(&peer("x"), camera, now), [7]);
    // Not asked of a neighbour that is not the source.
    assert!(stage.keyframe_requests(&peer("a"), camera, now).is_empty());
    // The keyframe goes to both cell mates, on their camera lane's tracks, numbered on.
    let mut writes = Vec::new();
    for p in picture(7, 2, true, 3) {
        writes.extend(stage.push(&peer("x"), camera, &p, now).writes);
    }
    assert_eq!(went_to(&writes), [1, 1, 1, 2, 2, 2]);
    assert!(
        writes
            .iter()
            .all(|(_, p)| p.header.ssrc % 100 == camera as u32)
    );
    // A cell mate's decoder lost the picture: the request for its track goes upstream,
    // once however many ask inside the gap.
    let later = now + Duration::from_secs(1);
    assert!(stage.keyframe_wanted(&peer("a"), 100 + camera as u32, later));
    assert!(stage.keyframe_wanted(&peer("b"), 200 + camera as u32, later));
    assert_eq!(stage.keyframe_requests(&peer("x"), camera, later), [7]);
    // A request that names no presenter track we pass on is for our own video.
    assert!(!stage.keyframe_wanted(&peer("a"), 100, later));
    assert!(!stage.keyframe_wanted(&peer("y"), 400 + camera as u32, later));
}

#[test]
fn the_presenter_itself_is_taken_over_a_copy_and_never_told_to_stop() {
    let stage = stage();
    let now = crate::clock::now();
    let camera = PRESENTER_CAMERA;
    // The presenter is x, across the bridge in cell 0.
    stage.set_seats(&[None, None, None, None], seat("x", 0).as_ref());
    // A cell mate's copy comes first: it is the source for now.
    let first = stage.push(&peer("a"), camera, &picture(5, 1, true, 1)[0], now);
    assert_eq!(first.play, Some(peer("x")));
    // The presenter's own packets come straight over the bridge: they are taken, and the
    // cell mate is told to stop.
    let direct = stage.push(&peer("x"), camera, &picture(7, 1, true, 1)[0], now);
    assert_eq!(direct.play, Some(peer("x")));
    assert!(direct.controls.is_empty());
    let copy = stage.push(&peer("a"), camera, &picture(5, 2, false, 1)[0], now);
    assert_eq!(copy.play, None);
    let prune = Control::Prune {
        seat: camera as u8,
        holder: peer("x"),
    };
    assert_eq!(copy.controls, [(peer("a"), prune)]);
    // We present: nothing of ours goes through the stage's units (our video task writes
    // to the presenter tracks), and a neighbour's packets on its lanes are not taken.
    assert_eq!(
        stage.set_seats(&[None, None, None, None], seat("m", 1).as_ref()),
        (None, true)
    );
    let pushed = stage.push(&peer("a"), camera, &picture(5, 3, true, 1)[0], now);
    assert_eq!(pushed.play, None);
    assert!(pushed.writes.is_empty());
    assert!(!stage.keyframe_wanted(&peer("a"), 100 + camera as u32, now));
}

#[test]
fn the_presenters_source_is_told_the_narrowest_path_we_pass_its_pictures_to() {
    use crate::congestion::{CAP_EVERY, CAP_HOLDS, INITIAL_ESTIMATE};
    let paths: [Arc<LinkStats>; 4] = Default::default();
    let stage = stage_on(&paths);
    let now = crate::clock::now();
    let camera = PRESENTER_CAMERA;
    // The presenter is in cell 0; its pictures enter our cell over the bridge to x, and we
    // pass them on to our cell mates a and b.
    stage.set_seats(&[None, None, None, None], seat("h", 0).as_ref());
    assert_eq!(
        stage.cap_due(&peer("x"), camera, now),
        None,
        "nothing passed on yet"
    );
    for p in picture(7, 1, true, 1) {
        stage.push(&peer("x"), camera, &p, now);
    }
    // b passes them on in turn, and a path below it carries 300 kbit/s.
    paths[1].set_cap(300_000, &[], now);
    assert_eq!(stage.cap_due(&peer("x"), camera, now), Some(300_000));
    // Not again before its time, nor to a neighbour that is not the source.
    assert_eq!(stage.cap_due(&peer("x"), camera, now + CAP_EVERY / 2), None);
    assert_eq!(stage.cap_due(&peer("a"), camera, now + CAP_EVERY), None);
    // b's word lapses: the narrowest is then our own links' estimate.
    let later = now + CAP_HOLDS;
    assert_eq!(
        stage.cap_due(&peer("x"), camera, later),
        Some(INITIAL_ESTIMATE)
    );
    // Our own pictures go to a and b too: the presenter's have their share of each link,
    // and no more than its peer said it takes of them (the share is of our estimate, not
    // of the peer's word, which left its own pictures their room already).
    paths[0].set_sending(0, Some((640, 360)));
    paths[1].set_sending(0, Some((640, 360)));
    let share = 1.0 - super::OWN_SHARE_BESIDE_PRESENTER;
    assert_eq!(
        stage.cap_due(&peer("x"), camera, later + CAP_EVERY),
        Some((INITIAL_ESTIMATE as f64 * share) as u64)
    );
    let told = later + CAP_EVERY * 2;
    paths[1].set_cap(300_000, &[200 + camera as u32], told);
    assert_eq!(stage.cap_due(&peer("x"), camera, told), Some(300_000));
    // A cap b named for another of our streams is not one on the presenter's.
    paths[1].set_cap(100_000, &[200], told);
    assert_eq!(
        stage.cap_due(&peer("x"), camera, told + CAP_EVERY),
        Some(300_000)
    );
    assert_eq!(stage.relaying_pictures(), [peer("a"), peer("b")].into());
    // Once the link to x is gone, nothing is told to it.
    stage.drop_link(&peer("x"));
    assert_eq!(
        stage.cap_due(&peer("x"), camera, later + CAP_EVERY * 2),
        None
    );
}
