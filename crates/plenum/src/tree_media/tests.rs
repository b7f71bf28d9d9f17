//! A node's forwarding on a virtual clock: which links carry what the parent sends, and
//! what goes upstream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plenum_proto::PeerId;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp::{Header, Packet};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

use super::{AUDIO, LinkTracks, Moved, Place, STAGE, STAGE_HANDOVER, TreeMedia};
use crate::congestion::LinkStats;
use crate::forward::KEYFRAME_GAP;
use crate::outbound::TrackSender;

const CAMERA: usize = 1;
const UP: u32 = 0x5000;

fn peer(name: &str) -> PeerId {
    PeerId::new(format!("{name:0<8}")).expect("a peer id")
}

/// A link's three tracks; the SSRCs are `base`, `base + 1`, `base + 2`.
fn tracks(base: u32) -> LinkTracks {
    std::array::from_fn(|i| {
        let audio = i == AUDIO || i == STAGE;
        let kind = if audio {
            RtpCodecKind::Audio
        } else {
            RtpCodecKind::Video
        };
        let track = MediaStreamTrack::new(
            "stream".to_owned(),
            format!("track-{base}-{i}"),
            "label".to_owned(),
            kind,
            vec![],
        );
        let track = TrackLocalStaticSample::new(crate::clock::now(), track).expect("a track");
        Some(TrackSender {
            track: Arc::new(track),
            ssrc: base + i as u32,
            payload_type: if audio { 111 } else { 96 },
        })
    })
}

/// A one-packet VP8 picture (a keyframe if `key`) from upstream.
fn picture(ssrc: u32, seq: u16, key: bool) -> Packet {
    Packet {
        header: Header {
            version: 2,
            marker: true,
            payload_type: 100,
            sequence_number: seq,
            timestamp: u32::from(seq) * 3_000,
            ssrc,
            ..Header::default()
        },
        // S set, partition 0; the frame's first byte's bit 0 is clear on a keyframe.
        payload: vec![0x10, u8::from(!key), 0xab, 0xcd].into(),
    }
}

/// A place under `parent` (none: the root, or looking for one) with `children`; the root is
/// "root".
fn at(parent: Option<PeerId>, children: &[PeerId], is_root: bool) -> Place {
    Place {
        parent,
        children: children.to_vec(),
        is_root,
        root: Some(peer("root")),
    }
}

fn up(media: &TreeMedia, name: &str, base: u32, now: Instant) -> bool {
    media.adopt(
        &peer(name),
        &tracks(base),
        &Arc::new(LinkStats::default()),
        now,
    )
}

/// The SSRCs and sequence numbers the children's tracks got, in order.
fn sent(writes: &[super::Write]) -> Vec<u16> {
    writes
        .iter()
        .map(|(_, p)| p.header.sequence_number)
        .collect()
}

#[test]
fn a_child_gets_the_parents_stream_from_its_keyframe_under_its_own_ssrc() {
    let media = TreeMedia::default();
    let t0 = crate::clock::now();
    assert!(
        !up(&media, "parent", 100, t0),
        "the parent's link stays ours"
    );
    assert!(!up(&media, "child", 200, t0), "no place in a tree yet");
    let moved = media.route(at(Some(peer("parent")), &[peer("child")], false), t0);
    assert_eq!(
        moved,
        Moved {
            forwarded: vec![peer("child")],
            released: vec![]
        }
    );
    assert!(media.forwards_to(&peer("child")));
    assert!(!media.forwards_to(&peer("parent")));

    // The first packet names the upstream stream, and a keyframe of it is asked for.
    let writes = media.push(&peer("parent"), CAMERA, &picture(UP, 10, false), t0);
    assert!(writes.is_empty(), "nothing before a keyframe");
    assert_eq!(
        media.keyframe_requests(&peer("parent"), CAMERA, t0),
        vec![UP]
    );
    assert!(
        media
            .keyframe_requests(&peer("child"), CAMERA, t0)
            .is_empty()
    );

    let writes = media.push(&peer("parent"), CAMERA, &picture(UP, 11, true), t0);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].1.header.ssrc, 201, "the child's camera track");
    assert_eq!(writes[0].1.header.payload_type, 96);
    let writes = media.push(&peer("parent"), CAMERA, &picture(UP, 12, false), t0);
    assert_eq!(sent(&writes), vec![12]);

    // Nobody else's packets are forwarded.
    let writes = media.push(&peer("child"), CAMERA, &picture(UP, 13, true), t0);
    assert!(writes.is_empty());
    assert_eq!(media.forwarded(), 2);
}

#[test]
fn the_root_forwards_nothing_and_its_children_carry_its_own_media() {
    let media = TreeMedia::default();
    let t0 = crate::clock::now();
    up(&media, "child", 200, t0);
    let moved = media.route(at(None, &[peer("child")], true), t0);
    assert_eq!(moved, Moved::default());
    assert!(!media.forwards_to(&peer("child")));
    assert!(
        media
            .push(&peer("child"), CAMERA, &picture(UP, 1, true), t0)
            .is_empty()
    );
}

#[test]
fn a_child_whose_media_comes_up_later_is_forwarded_to_then() {
    let media = TreeMedia::default();
    let t0 = crate::clock::now();
    let moved = media.route(at(Some(peer("parent")), &[peer("child")], false), t0);
    assert_eq!(moved, Moved::default(), "no tracks yet");
    assert!(
        up(&media, "child", 200, t0),
        "its tracks are the forwarder's"
    );
    let writes = media.push(&peer("parent"), AUDIO, &picture(UP, 1, false), t0);
    assert_eq!(writes.len(), 1, "audio needs no keyframe");
    assert_eq!(writes[0].1.header.ssrc, 200);
}

#[test]
fn a_child_that_leaves_or_a_promotion_gives_links_back() {
    let media = TreeMedia::default();
    let t0 = crate::clock::now();
    up(&media, "a", 200, t0);
    up(&media, "b", 300, t0);
    media.route(at(Some(peer("parent")), &[peer("a"), peer("b")], false), t0);
    let moved = media.route(at(Some(peer("parent")), &[peer("b")], false), t0);
    assert_eq!(moved.released, vec![peer("a")]);
    // Promoted to root: the remaining child carries our own media again.
    let moved = media.route(at(None, &[peer("b")], true), t0);
    assert_eq!(moved.released, vec![peer("b")]);
    assert!(!media.forwards_to(&peer("b")));
    media.drop_link(&peer("b"));
    let moved = media.route(at(Some(peer("parent")), &[peer("b")], false), t0);
    assert_eq!(
        moved,
        Moved::default(),
        "a link whose media is down is not forwarded to"
    );
}

#[test]
fn a_childs_keyframe_request_goes_upstream_once_per_gap() {
    let media = TreeMedia::default();
    let t0 = crate::clock::now();
    up(&media, "a", 200, t0);
    up(&media, "b", 300, t0);
    media.route(at(Some(peer("parent")), &[peer("a"), peer("b")], false), t0);
    media.push(&peer("parent"), CAMERA, &picture(UP, 1, true), t0);
    assert_eq!(
        media.keyframe_requests(&peer("parent"), CAMERA, t0),
        vec![UP]
    );

    let t1 = t0 + Duration::from_millis(10);
    assert!(media.keyframe_wanted(&peer("a"), 201, t1));
    assert!(media.keyframe_wanted(&peer("b"), 301, t1));
    assert!(
        media
            .keyframe_requests(&peer("parent"), CAMERA, t1)
            .is_empty(),
        "inside the gap"
    );
    let t2 = t0 + KEYFRAME_GAP;
    assert_eq!(
        media.keyframe_requests(&peer("parent"), CAMERA, t2),
        vec![UP],
        "both children's requests, as one"
    );
    // A request on a link that is not forwarded to is the video task's own.
    assert!(!media.keyframe_wanted(&peer("parent"), 101, t2));
}

#[test]
fn a_new_parent_continues_each_childs_numbering_from_its_keyframe() {
    let media = TreeMedia::default();
    let t0 = crate::clock::now();
    up(&media, "child", 200, t0);
    media.route(at(Some(peer("old")), &[peer("child")], false), t0);
    let mut got = Vec::new();
    for seq in 500..503 {
        got.extend(media.push(&peer("old"), CAMERA, &picture(UP, seq, seq == 500), t0));
    }
    // The parent dies; a new one is found, whose stream numbers differently.
    media.route(at(None, &[peer("child")], false), t0);
    media.route(at(Some(peer("new")), &[peer("child")], false), t0);
    let t1 = t0 + Duration::from_secs(1);
    assert!(
        media
            .push(&peer("old"), CAMERA, &picture(UP, 503, false), t1)
            .is_empty(),
        "the old parent's late packets are dropped"
    );
    got.extend(media.push(&peer("new"), CAMERA, &picture(0x7000, 9_000, false), t1));
    assert_eq!(
        media.keyframe_requests(&peer("new"), CAMERA, t1),
        vec![0x7000],
        "a keyframe of the new upstream is asked for"
    );
    got.extend(media.push(&peer("new"), CAMERA, &picture(0x7000, 9_001, true), t1));
    got.extend(media.push(&peer("new"), CAMERA, &picture(0x7000, 9_002, false), t1));
    assert_eq!(sent(&got), vec![500, 501, 502, 503, 504]);
    assert!(got.iter().all(|(_, p)| p.header.ssrc == 201));
}

/// The SSRCs a batch of writes went out on.
fn ssrcs(writes: &[super::Write]) -> Vec<u32> {
    let mut out: Vec<u32> = writes.iter().map(|(_, p)| p.header.ssrc).collect();
    out.sort_unstable();
    out
}

/// A node under `parent` with children `a` and `b`, every link's media up.
fn node_with_neighbours() -> (TreeMedia, Instant) {
    let media = TreeMedia::default();
    let t0 = crate::clock::now();
    up(&media, "parent", 100, t0);
    up(&media, "a", 200, t0);
    up(&media, "b", 300, t0);
    media.route(at(Some(peer("parent")), &[peer("a"), peer("b")], false), t0);
    (media, t0)
}

#[test]
fn the_stage_floods_to_every_neighbour_but_the_one_it_came_from() {
    let (media, t0) = node_with_neighbours();
    // Nobody is on stage yet: a neighbour's stage packets go nowhere.
    assert!(
        media
            .push_stage(&peer("a"), &picture(0x9000, 0, false), t0)
            .is_none(),
        "nobody is on stage"
    );
    assert!(!media.set_stage(Some(peer("speaker")), &peer("me"), t0));
    let writes = media
        .push_stage(&peer("a"), &picture(0x9000, 1, false), t0)
        .expect("the stage's voice");
    assert_eq!(
        ssrcs(&writes),
        vec![103, 303],
        "the parent's and b's stage tracks"
    );
    // From the parent, later: the same voice going the other way would be a second voice.
    let t1 = t0 + Duration::from_millis(100);
    assert!(
        media
            .push_stage(&peer("parent"), &picture(0x9001, 1, false), t1)
            .is_none(),
        "a second voice while the first speaks"
    );
    assert!(
        media
            .push_stage(&peer("stranger"), &picture(0x9002, 1, false), t1)
            .is_none(),
        "not a tree neighbour"
    );
    // The first voice falls silent: the parent's is taken, and goes to both children.
    let t2 = t1 + STAGE_HANDOVER;
    let writes = media
        .push_stage(&peer("parent"), &picture(0x9001, 2, false), t2)
        .expect("the next voice");
    assert_eq!(ssrcs(&writes), vec![203, 303]);
}

#[test]
fn our_own_voice_on_the_stage_goes_to_every_neighbour_and_keeps_others_off() {
    let (media, t0) = node_with_neighbours();
    assert!(media.set_stage(Some(peer("me")), &peer("me"), t0));
    let first = media.push_own(vec![1, 2, 3].into(), t0);
    assert_eq!(ssrcs(&first), vec![103, 203, 303]);
    let second = media.push_own(vec![4, 5, 6].into(), t0);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(
            b.1.header.sequence_number,
            a.1.header.sequence_number.wrapping_add(1)
        );
        assert_eq!(b.1.header.timestamp, a.1.header.timestamp.wrapping_add(960));
    }
    let later = t0 + STAGE_HANDOVER * 4;
    assert!(
        media
            .push_stage(&peer("a"), &picture(0x9000, 1, false), later)
            .is_none(),
        "we are the stage"
    );
    // Someone else is put on the stage: their voice is taken and played as theirs.
    assert!(!media.set_stage(Some(peer("a")), &peer("me"), later));
    assert_eq!(media.speaker(), Some(peer("a")));
    let writes = media
        .push_stage(&peer("a"), &picture(0x9000, 2, false), later)
        .expect("a's voice");
    assert_eq!(ssrcs(&writes), vec![103, 303]);
}

#[test]
fn the_root_is_never_on_the_stage_but_passes_it_on() {
    let media = TreeMedia::default();
    let t0 = crate::clock::now();
    up(&media, "a", 200, t0);
    up(&media, "b", 300, t0);
    media.route(at(None, &[peer("a"), peer("b")], true), t0);
    assert!(!media.set_stage(Some(peer("root")), &peer("root"), t0));
    let writes = media
        .push_stage(&peer("b"), &picture(0x9000, 1, false), t0)
        .expect("b's voice");
    assert_eq!(ssrcs(&writes), vec![203], "to the other child only");
}

#[test]
fn what_comes_from_the_parent_is_the_roots_and_the_rest_is_its_senders() {
    let media = TreeMedia::default();
    let t0 = crate::clock::now();
    assert_eq!(media.origin(&peer("parent")), None, "no place yet");
    media.route(at(Some(peer("parent")), &[peer("child")], false), t0);
    assert_eq!(media.origin(&peer("parent")), Some(peer("root")));
    assert_eq!(media.origin(&peer("child")), Some(peer("child")));
    let unknown = Place {
        root: None,
        ..at(Some(peer("parent")), &[], false)
    };
    media.route(unknown, t0);
    assert_eq!(
        media.origin(&peer("parent")),
        None,
        "the root not known yet: not the parent's"
    );
    // At the root, what comes from a child is the child's.
    media.route(at(None, &[peer("child")], true), t0);
    assert_eq!(media.origin(&peer("child")), Some(peer("child")));
}

#[test]
fn the_parent_is_told_the_narrowest_path_below_us() {
    use crate::congestion::{CAP_EVERY, CAP_HOLDS, INITIAL_ESTIMATE};
    let media = TreeMedia::default();
    let t0 = crate::clock::now();
    let parent = peer("parent");
    let (a, b) = (
        Arc::new(LinkStats::default()),
        Arc::new(LinkStats::default()),
    );
    media.adopt(&peer("a"), &tracks(200), &a, t0);
    media.adopt(&peer("b"), &tracks(300), &b, t0);
    media.adopt(&parent, &tracks(100), &Arc::default(), t0);
    // A leaf passes nothing on: it tells its parent nothing.
    media.route(at(Some(parent.clone()), &[], false), t0);
    assert_eq!(media.cap_due(&parent, CAMERA, t0), None);
    // With children: the narrowest of their links, their own children's word included.
    media.route(at(Some(parent.clone()), &[peer("a"), peer("b")], false), t0);
    b.set_cap(250_000, &[], t0);
    assert_eq!(media.cap_due(&parent, CAMERA, t0), Some(250_000));
    // Each lane is told for itself; a cap that names one of our streams holds for it
    // alone.
    let screen = CAMERA + 1;
    assert_eq!(media.cap_due(&parent, screen, t0), Some(250_000));
    b.set_cap(100_000, &[300 + screen as u32], t0);
    let soon = t0 + CAP_EVERY;
    assert_eq!(media.cap_due(&parent, screen, soon), Some(100_000));
    assert_eq!(media.cap_due(&parent, CAMERA, soon), Some(250_000));
    // At most once each CAP_EVERY, and only to the parent.
    assert_eq!(media.cap_due(&parent, CAMERA, soon + CAP_EVERY / 2), None);
    assert_eq!(media.cap_due(&peer("a"), CAMERA, soon + CAP_EVERY), None);
    // b's word lapses unless told again: the narrowest is then our links' own estimate.
    let later = t0 + CAP_HOLDS;
    assert_eq!(
        media.cap_due(&parent, CAMERA, later),
        Some(INITIAL_ESTIMATE)
    );
    // A word of nothing at all is held to the least a link is ever told.
    b.set_cap(0, &[], later);
    assert_eq!(
        media.cap_due(&parent, CAMERA, later + CAP_EVERY),
        Some(crate::congestion::MIN_ESTIMATE)
    );
    // The root has no parent to tell.
    media.route(at(None, &[peer("a"), peer("b")], true), later);
    assert_eq!(media.cap_due(&parent, CAMERA, later + CAP_EVERY * 2), None);
}
