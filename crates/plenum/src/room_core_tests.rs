// Tests take one real instant as the origin of their virtual clock, then only add to it.
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::types::LinkState;
use proptest::prelude::*;

fn peer(n: u8) -> PeerId {
    PeerId::new(format!("{n:02x}").repeat(20)).unwrap()
}

fn channel(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

/// A topology that asks for nothing and keeps what it is told, for the tests of the
/// core's own book (the overlays have their own tests; the two-core tests below run a real
/// full mesh).
struct Quiet {
    told: std::sync::Arc<std::sync::Mutex<Vec<OverlayInput>>>,
    until: Instant,
}

impl plenum_overlay::Topology for Quiet {
    fn handle_input(&mut self, input: OverlayInput) {
        self.told.lock().unwrap().push(input);
    }

    fn poll_output(&mut self) -> plenum_overlay::Output {
        plenum_overlay::Output::Timeout(self.until)
    }

    fn neighbours(&self) -> Vec<PeerId> {
        Vec::new()
    }
}

type Told = std::sync::Arc<std::sync::Mutex<Vec<OverlayInput>>>;

fn quiet(t0: Instant) -> (Overlay, Told) {
    let told = Told::default();
    let topology = Quiet {
        told: told.clone(),
        until: t0 + Duration::from_secs(3600),
    };
    (Overlay::Mesh(Box::new(topology)), told)
}

fn config(role: Role, verify: bool) -> CoreConfig {
    CoreConfig {
        me: peer(0xee),
        identity: plenum_proto::identity::Identity::from_seed([0xee; 32]),
        credentials: None,
        seq: 1,
        sparse: false,
        role,
        lossy: [channel("cursor")].into_iter().collect(),
        ping_interval: Duration::from_secs(30),
        ping_attempts: 3,
        queues: Queues {
            per_peer: 4,
            first_peer: 2,
        },
        verify,
    }
}

fn core(role: Role) -> (RoomCore, Instant) {
    let t0 = Instant::now();
    (RoomCore::new(config(role, false), quiet(t0).0, t0), t0)
}

/// A link to `p` whose data channel opens now; what the core says.
fn open(core: &mut RoomCore, now: Instant, p: &PeerId) -> Vec<Output> {
    core.links.entry(p.clone()).or_default();
    core.handle_input(now, Input::ChannelOpen { peer: p.clone() });
    drain(core)
}

fn drain(core: &mut RoomCore) -> Vec<Output> {
    let mut out = Vec::new();
    loop {
        match core.poll_output() {
            Output::Timeout(_) => return out,
            o => out.push(o),
        }
    }
}

fn deliver(core: &mut RoomCore, now: Instant, from: &PeerId, envelope: Envelope) -> Vec<Output> {
    let bytes = Bytes::from(envelope.encode());
    core.handle_input(
        now,
        Input::Envelope {
            peer: from.clone(),
            bytes,
        },
    );
    drain(core)
}

fn add(stream: &str) -> StreamAnnouncement {
    StreamAnnouncement::Add {
        stream: stream.into(),
        kind: "audio".into(),
        metadata: serde_json::json!({}),
        muted: false,
    }
}

fn malformed(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| {
            matches!(
                o,
                Output::Event(RoomEvent::Error(RoomError::Malformed { .. }))
            )
        })
        .count()
}

#[test]
fn a_message_on_a_lossy_channel_may_be_dropped_and_others_may_not() {
    let (mut core, t0) = core(Role::Both);
    let a = peer(1);
    let out = deliver(
        &mut core,
        t0,
        &a,
        Envelope::data(channel("cursor"), 1, b"xy".to_vec()),
    );
    assert!(
        matches!(&out[..], [Output::Lossy(RoomEvent::Message { .. })]),
        "{out:?}"
    );
    let out = deliver(
        &mut core,
        t0,
        &a,
        Envelope::data(channel("chat"), 2, b"hi".to_vec()),
    );
    match &out[..] {
        [
            Output::Event(RoomEvent::Message {
                channel: c,
                from,
                data,
            }),
        ] => {
            assert_eq!(c.as_str(), "chat");
            assert_eq!(from, &a);
            assert_eq!(&data[..], b"hi");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bytes_that_are_no_envelope_are_reported_and_change_nothing() {
    let (mut core, t0) = core(Role::Both);
    let a = peer(1);
    for bytes in [&b""[..], b"\xff\xff\xff", b"\x00"] {
        core.handle_input(
            t0,
            Input::Envelope {
                peer: a.clone(),
                bytes: Bytes::copy_from_slice(bytes),
            },
        );
        let out = drain(&mut core);
        assert_eq!(malformed(&out), 1, "{out:?}");
        assert_eq!(out.len(), 1);
    }
    // A data envelope with no channel, a state that is not JSON, a stream that is not an
    // announcement.
    let mut no_channel = Envelope::data(channel("chat"), 1, b"x".to_vec());
    no_channel.channel = None;
    assert_eq!(malformed(&deliver(&mut core, t0, &a, no_channel)), 1);
    let mut state = Envelope::control(EnvelopeKind::State, 0);
    state.payload = b"{not json".to_vec();
    assert_eq!(malformed(&deliver(&mut core, t0, &a, state)), 1);
    let mut stream = Envelope::control(EnvelopeKind::Stream, 0);
    stream.payload = br#"{"op":"dance"}"#.to_vec();
    assert_eq!(malformed(&deliver(&mut core, t0, &a, stream)), 1);
    // A stage word past the stage's seats; a good one goes to the stage's forwarding.
    let mut stage = Envelope::control(EnvelopeKind::Stage, 0);
    stage.payload = b"\x00\x07".to_vec();
    stage.payload.extend_from_slice(a.as_str().as_bytes());
    assert_eq!(malformed(&deliver(&mut core, t0, &a, stage.clone())), 1);
    stage.payload[1] = 2;
    let out = deliver(&mut core, t0, &a, stage);
    assert!(
        matches!(out.as_slice(), [Output::StageWord { peer, .. }] if *peer == a),
        "{out:?}"
    );
}

#[test]
fn a_ping_is_answered_with_its_id_and_our_pong_measures_the_virtual_round_trip() {
    let (mut core, t0) = core(Role::Both);
    let a = peer(1);
    let out = deliver(&mut core, t0, &a, Envelope::control(EnvelopeKind::Ping, 77));
    let pong = Bytes::from(Envelope::control(EnvelopeKind::Pong, 77).encode());
    assert_eq!(
        out,
        vec![Output::Write {
            peer: a.clone(),
            bytes: pong
        }]
    );

    // Sent a while after the core last heard anything: timed from when it left.
    let (id, bytes) = core.ping();
    assert_eq!(Envelope::decode(&bytes).unwrap().kind, EnvelopeKind::Ping);
    let sent = t0 + Duration::from_millis(10);
    core.ping_sent(id, sent);
    // A pong for another id is not ours.
    let other = Envelope::control(EnvelopeKind::Pong, id + 100);
    assert!(deliver(&mut core, t0, &a, other).is_empty());
    let later = sent + Duration::from_millis(42);
    let out = deliver(
        &mut core,
        later,
        &a,
        Envelope::control(EnvelopeKind::Pong, id),
    );
    assert_eq!(
        out,
        vec![Output::Pong {
            id,
            rtt: Duration::from_millis(42)
        }]
    );
    // Answered once only.
    assert!(
        deliver(
            &mut core,
            later,
            &a,
            Envelope::control(EnvelopeKind::Pong, id)
        )
        .is_empty()
    );
}

#[test]
fn a_ping_with_no_pong_is_lost_after_the_forget_time_and_the_core_wakes_for_it() {
    let (mut core, t0) = core(Role::Both);
    let (id, _) = core.ping();
    core.ping_sent(id, t0);
    assert_eq!(core.poll_output(), Output::Timeout(t0 + PING_FORGET_AFTER));
    core.handle_input(
        t0 + PING_FORGET_AFTER - Duration::from_millis(1),
        Input::Tick,
    );
    assert!(drain(&mut core).is_empty());
    core.handle_input(t0 + PING_FORGET_AFTER, Input::Tick);
    assert_eq!(drain(&mut core), vec![Output::PingLost { id }]);
    // A late pong is nobody's.
    let a = peer(1);
    let late = Envelope::control(EnvelopeKind::Pong, id);
    assert!(deliver(&mut core, t0 + PING_FORGET_AFTER, &a, late).is_empty());
}

#[test]
fn a_peer_announces_at_most_its_bound_of_streams_with_short_ids() {
    let (mut core, t0) = core(Role::Both);
    let a = peer(1);
    for i in 0..MAX_STREAMS_PER_PEER {
        let out = deliver(&mut core, t0, &a, Envelope::stream(&add(&format!("s{i}"))));
        assert!(
            matches!(&out[..], [Output::Event(RoomEvent::StreamAdded { .. })]),
            "{out:?}"
        );
    }
    // One more is refused; one it has already is announced again (a renegotiation).
    let out = deliver(&mut core, t0, &a, Envelope::stream(&add("one-too-many")));
    assert_eq!(malformed(&out), 1);
    let out = deliver(&mut core, t0, &a, Envelope::stream(&add("s0")));
    assert!(matches!(
        &out[..],
        [Output::Event(RoomEvent::StreamAdded { .. })]
    ));
    // Another peer has its own bound; an id past the length bound is refused.
    let b = peer(2);
    let long = "x".repeat(MAX_STREAM_ID + 1);
    assert_eq!(
        malformed(&deliver(&mut core, t0, &b, Envelope::stream(&add(&long)))),
        1
    );
    let out = deliver(
        &mut core,
        t0,
        &b,
        Envelope::stream(&add(&"x".repeat(MAX_STREAM_ID))),
    );
    assert!(matches!(
        &out[..],
        [Output::Event(RoomEvent::StreamAdded { .. })]
    ));
}

#[test]
fn removing_or_muting_a_stream_never_announced_says_nothing() {
    let (mut core, t0) = core(Role::Both);
    let a = peer(1);
    let remove = StreamAnnouncement::Remove { stream: "s".into() };
    let mute = StreamAnnouncement::Muted {
        stream: "s".into(),
        muted: true,
    };
    assert!(deliver(&mut core, t0, &a, Envelope::stream(&remove)).is_empty());
    assert!(deliver(&mut core, t0, &a, Envelope::stream(&mute)).is_empty());
    deliver(&mut core, t0, &a, Envelope::stream(&add("s")));
    let out = deliver(&mut core, t0, &a, Envelope::stream(&mute));
    assert!(matches!(
        &out[..],
        [Output::Event(RoomEvent::StreamMuted { muted: true, .. })]
    ));
    let out = deliver(&mut core, t0, &a, Envelope::stream(&remove));
    assert!(matches!(
        &out[..],
        [Output::Event(RoomEvent::StreamRemoved { .. })]
    ));
    assert!(deliver(&mut core, t0, &a, Envelope::stream(&remove)).is_empty());
}

#[test]
fn a_non_publishers_streams_are_ignored() {
    let (mut core, t0) = core(Role::Both);
    let v = peer(3);
    core.set_publisher(&v, false);
    assert!(deliver(&mut core, t0, &v, Envelope::stream(&add("s"))).is_empty());
    core.set_publisher(&v, true);
    assert_eq!(
        deliver(&mut core, t0, &v, Envelope::stream(&add("s"))).len(),
        1
    );
}

#[test]
fn an_opened_link_gets_our_streams_and_state_and_its_peer_joins_once() {
    let (mut core, t0) = core(Role::Both);
    let a = peer(1);
    core.add_member(a.clone(), DisplayName::new("Ada").unwrap());
    core.handle_input(t0, Input::Stream(add("mic")));
    let state = serde_json::json!({"hand": true});
    core.handle_input(
        t0,
        Input::State {
            state: state.clone(),
            merge: false,
        },
    );
    // No link is open yet: nothing is written.
    assert!(drain(&mut core).is_empty());

    let out = open(&mut core, t0, &a);
    let stream = Bytes::from(Envelope::stream(&add("mic")).encode());
    assert_eq!(
        out,
        vec![
            Output::Event(RoomEvent::LinkUp { peer: a.clone() }),
            Output::Write {
                peer: a.clone(),
                bytes: stream
            },
            Output::Event(RoomEvent::PeerJoin {
                peer: a.clone(),
                name: DisplayName::new("Ada").unwrap()
            }),
            Output::Write {
                peer: a.clone(),
                bytes: state_envelope(&state)
            },
            Output::MediaUp { peer: a.clone() },
        ]
    );
    // The data channel is seen open twice (data and the open event race): one join.
    assert!(open(&mut core, t0, &a).is_empty());
    // A stream of ours goes to every open link now.
    core.handle_input(t0, Input::Stream(add("cam")));
    let cam = Bytes::from(Envelope::stream(&add("cam")).encode());
    assert_eq!(
        drain(&mut core),
        vec![Output::Write {
            peer: a,
            bytes: cam
        }]
    );
}

#[test]
fn a_closed_link_ends_its_peers_streams_and_a_joined_peer_leaves() {
    let (mut core, t0) = core(Role::Both);
    let (a, b) = (peer(1), peer(2));
    core.add_member(a.clone(), DisplayName::new("Ada").unwrap());
    open(&mut core, t0, &a);
    deliver(&mut core, t0, &a, Envelope::stream(&add("mic")));
    drain(&mut core);
    // Its outbox stalled: the link closes, and the application hears why.
    core.handle_input(
        t0,
        Input::Stalled {
            peer: a.clone(),
            queued: 9,
        },
    );
    assert_eq!(
        drain(&mut core),
        vec![
            Output::Event(RoomEvent::Error(RoomError::LinkStalled {
                peer: a.clone(),
                queued: 9
            })),
            Output::Event(RoomEvent::LinkDown { peer: a.clone() }),
            Output::Close { peer: a.clone() },
            Output::Event(RoomEvent::StreamRemoved {
                peer: a.clone(),
                stream: "mic".into()
            }),
            Output::Event(RoomEvent::PeerLeave { peer: a.clone() }),
        ]
    );
    assert_eq!(core.link_state(&a), LinkState::Waiting);
    // A link that opened to a peer nobody named never joined: it does not leave.
    let out = open(&mut core, t0, &b);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Event(RoomEvent::PeerJoin { .. })))
    );
    core.handle_input(t0, Input::Stalled { peer: b, queued: 1 });
    assert!(
        !drain(&mut core)
            .iter()
            .any(|o| matches!(o, Output::Event(RoomEvent::PeerLeave { .. })))
    );
}

#[test]
fn shared_state_is_replaced_or_merged() {
    let (mut core, t0) = core(Role::Both);
    let a = peer(1);
    core.add_member(a.clone(), DisplayName::new("Ada").unwrap());
    let set = |core: &mut RoomCore, state, merge| {
        core.handle_input(t0, Input::State { state, merge });
        drain(core);
    };
    set(&mut core, serde_json::json!({"x": 1, "y": 2}), false);
    set(&mut core, serde_json::json!({"y": 3, "z": 4}), true);
    let sent = open(&mut core, t0, &a);
    let want = state_envelope(&serde_json::json!({"x": 1, "y": 3, "z": 4}));
    assert!(
        sent.contains(&Output::Write {
            peer: a.clone(),
            bytes: want
        }),
        "{sent:?}"
    );
    // Replaced while the link is open: it goes at once, and to the next link too.
    core.handle_input(
        t0,
        Input::State {
            state: serde_json::json!({"z": 5}),
            merge: false,
        },
    );
    let want = state_envelope(&serde_json::json!({"z": 5}));
    assert_eq!(
        drain(&mut core),
        vec![Output::Write {
            peer: a.clone(),
            bytes: want.clone()
        }]
    );
    core.handle_input(
        t0,
        Input::Stalled {
            peer: a.clone(),
            queued: 1,
        },
    );
    drain(&mut core);
    assert!(open(&mut core, t0, &a).contains(&Output::Write {
        peer: a,
        bytes: want
    }));
}

#[test]
fn topology_messages_go_to_the_overlay_and_a_goodbye_takes_the_peer_off_the_roster() {
    let t0 = Instant::now();
    let (overlay, told) = quiet(t0);
    let mut core = RoomCore::new(config(Role::Both, false), overlay, t0);
    let a = peer(1);
    // A mesh frame goes to the mesh; one that does not decode is reported.
    let frame = plenum_overlay::MeshFrame {
        origin: a.clone(),
        seq: 1,
        hops: 0,
        ttl: 3,
        dim: None,
        intra: false,
        epoch: 0,
        origin_cell: 0,
        data: b"hi".to_vec(),
    };
    assert!(deliver(&mut core, t0, &a, frame.to_envelope()).is_empty());
    assert!(
        told.lock()
            .unwrap()
            .iter()
            .any(|i| matches!(i, OverlayInput::Frame { from, .. } if *from == a))
    );
    let out = deliver(&mut core, t0, &a, Envelope::control(EnvelopeKind::Mesh, 5));
    assert_eq!(malformed(&out), 1, "{out:?}");
    // Messages of topologies the room does not run are ignored.
    for kind in [EnvelopeKind::Tree, EnvelopeKind::Relay, EnvelopeKind::Host] {
        let out = deliver(&mut core, t0, &a, Envelope::control(kind, 5));
        assert!(out.is_empty() || malformed(&out) == 1, "{out:?}");
    }
    assert!(
        deliver(
            &mut core,
            t0,
            &a,
            Envelope::control(EnvelopeKind::Heartbeat, 0)
        )
        .is_empty()
    );
    core.add_member(a.clone(), DisplayName::new("Ada").unwrap());
    let bye = Envelope::control(EnvelopeKind::Bye, 0);
    deliver(&mut core, t0, &a, bye);
    assert!(!core.is_member(&a));
    assert!(
        told.lock()
            .unwrap()
            .iter()
            .any(|i| matches!(i, OverlayInput::PeerGone { peer, .. } if *peer == a)),
        "the topology forgets it"
    );
}

#[test]
fn a_viewer_whose_publishers_are_gone_meets_them_again_then_gives_up() {
    let t0 = Instant::now();
    let (overlay, told) = quiet(t0);
    let mut core = RoomCore::new(config(Role::Viewer, false), overlay, t0);
    let p = peer(9);
    core.add_member(p.clone(), DisplayName::new("Pub").unwrap());
    let met_again = |told: &Told| {
        let mut told = told.lock().unwrap();
        let n = told
            .iter()
            .filter(|i| matches!(i, OverlayInput::PeerAppeared { peer, .. } if *peer == p))
            .count();
        told.clear();
        n
    };
    let tick = |core: &mut RoomCore, at: Instant| {
        core.handle_input(at, Input::Tick);
        drain(core)
    };
    // Never had one: nothing to miss.
    assert!(tick(&mut core, t0 + LINK_CHECK_EVERY).is_empty());
    open(&mut core, t0, &p);
    assert!(tick(&mut core, t0 + LINK_CHECK_EVERY * 2).is_empty());
    // All gone: it waits an interval, then meets them again each interval, three times.
    core.handle_input(
        t0,
        Input::Stalled {
            peer: p.clone(),
            queued: 1,
        },
    );
    drain(&mut core);
    let gone = t0 + LINK_CHECK_EVERY * 3;
    tick(&mut core, gone);
    // It wakes for the next attempt by itself.
    assert_eq!(
        core.poll_output(),
        Output::Timeout(gone + Duration::from_secs(30))
    );
    met_again(&told);
    let mut reoffers = 0;
    let mut gave_up = 0;
    for s in (1..=5).map(|k| gone + Duration::from_secs(30 * k)) {
        for o in tick(&mut core, s) {
            match o {
                Output::Event(RoomEvent::Error(RoomError::PublishersGone { attempts: 3 })) => {
                    gave_up += 1
                }
                other => panic!("{other:?}"),
            }
        }
        reoffers += met_again(&told);
    }
    assert_eq!((reoffers, gave_up), (3, 1));
    // One returns: it starts over if they go again.
    let back = gone + Duration::from_secs(200);
    open(&mut core, back, &p);
    tick(&mut core, back);
    core.handle_input(
        back,
        Input::Stalled {
            peer: p.clone(),
            queued: 1,
        },
    );
    tick(&mut core, back + LINK_CHECK_EVERY);
    met_again(&told);
    tick(&mut core, back + LINK_CHECK_EVERY + Duration::from_secs(30));
    assert_eq!(met_again(&told), 1);
}

#[test]
fn a_publisher_never_watches_for_publishers() {
    let (mut core, t0) = core(Role::Both);
    let p = peer(9);
    core.add_member(p.clone(), DisplayName::new("Pub").unwrap());
    open(&mut core, t0, &p);
    core.handle_input(t0, Input::Stalled { peer: p, queued: 1 });
    drain(&mut core);
    for k in 1..6 {
        core.handle_input(t0 + Duration::from_secs(30 * k), Input::Tick);
    }
    assert!(drain(&mut core).is_empty());
}

fn msg(n: u8) -> Bytes {
    Bytes::from(vec![n])
}

#[test]
fn a_peers_queue_keeps_its_newest_messages_in_order_and_reports_the_dropped_once() {
    let (mut core, t0) = core(Role::Both);
    let (a, b) = (peer(1), peer(2));
    assert!(!core.is_behind(&a));
    for n in 0..7 {
        core.queue(&a, msg(n));
    }
    core.queue(&b, msg(9));
    assert!(core.is_behind(&a));
    // Three dropped for `a` (bound 4), the oldest; reported together, half a second on.
    core.handle_input(t0, Input::Tick);
    assert!(drain(&mut core).is_empty());
    assert_eq!(
        core.poll_output(),
        Output::Timeout(t0 + OVERFLOW_REPORT_EVERY)
    );
    core.handle_input(t0 + OVERFLOW_REPORT_EVERY, Input::Tick);
    let report = Output::Event(RoomEvent::Error(RoomError::QueueOverflow {
        peer: a.clone(),
        dropped: 3,
    }));
    assert_eq!(drain(&mut core), vec![report]);
    core.handle_input(t0 + OVERFLOW_REPORT_EVERY * 2, Input::Tick);
    assert!(drain(&mut core).is_empty(), "reported once");
    // The link takes them oldest first; one it could not take goes first again.
    let first = core.next_queued(&a).unwrap();
    assert_eq!(first, msg(3));
    core.requeue(&a, first);
    let got: Vec<Bytes> = std::iter::from_fn(|| core.next_queued(&a)).collect();
    assert_eq!(got, (3..7).map(msg).collect::<Vec<_>>());
    assert!(!core.is_behind(&a));
    assert_eq!(core.queued_for().collect::<Vec<_>>(), vec![&b]);
    core.forget_queued(&b);
    assert_eq!(core.queued_for().count(), 0);
}

#[test]
fn messages_to_everyone_while_alone_go_to_the_first_link_after_its_own() {
    let (mut core, t0) = core(Role::Both);
    let a = peer(1);
    core.add_member(a.clone(), DisplayName::new("Ada").unwrap());
    core.queue(&a, msg(0));
    for n in 1..4 {
        core.hold_for_first(msg(n));
    }
    // Bound 2: the oldest went, said at once.
    let dropped = Output::Event(RoomEvent::Error(RoomError::WaitingOverflow { dropped: 1 }));
    assert_eq!(drain(&mut core), vec![dropped]);
    open(&mut core, t0, &a);
    let got: Vec<Bytes> = std::iter::from_fn(|| core.next_queued(&a)).collect();
    assert_eq!(got, vec![msg(0), msg(2), msg(3)]);
    // Only the first link: the next has nothing waiting.
    let b = peer(2);
    open(&mut core, t0, &b);
    assert!(core.next_queued(&b).is_none());
}

#[test]
fn a_goodbye_drops_what_waited_for_the_peer() {
    let (mut core, t0) = core(Role::Both);
    let a = peer(1);
    core.queue(&a, msg(1));
    deliver(&mut core, t0, &a, Envelope::control(EnvelopeKind::Bye, 0));
    assert!(!core.is_behind(&a));
}

fn envelope_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (
            0u8..11,
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..48)
        )
            .prop_map(|(kind, id, payload)| {
                let mut e = Envelope::control(EnvelopeKind::Data, id);
                e.kind = [
                    EnvelopeKind::Data,
                    EnvelopeKind::Ping,
                    EnvelopeKind::Pong,
                    EnvelopeKind::Heartbeat,
                    EnvelopeKind::Bye,
                    EnvelopeKind::Stream,
                    EnvelopeKind::Mesh,
                    EnvelopeKind::Tree,
                    EnvelopeKind::Relay,
                    EnvelopeKind::Host,
                    EnvelopeKind::State,
                ][kind as usize];
                e.payload = payload;
                e.encode()
            }),
        (0u16..40).prop_map(|n| Envelope::stream(&add(&format!("s{n}"))).encode()),
    ]
}

proptest! {
    /// Whatever peers send, in any order with links opening and closing: no panic, at
    /// most the bound of streams per peer, and every peer that left had joined.
    #[test]
    fn any_input_keeps_the_book_bounded(
        steps in proptest::collection::vec((0u8..9, 0u8..4, envelope_bytes()), 0..200)
    ) {
        let t0 = Instant::now();
        let mut core = RoomCore::new(config(Role::Viewer, true), quiet(t0).0, t0);
        for n in 0..4 {
            core.add_member(peer(n), DisplayName::new(format!("p{n}")).unwrap());
        }
        let mut joined = BTreeSet::new();
        for (i, (what, who, bytes)) in steps.into_iter().enumerate() {
            let now = t0 + Duration::from_millis(250 * i as u64);
            let p = peer(who);
            if bytes.len() % 3 == 0 {
                core.queue(&p, Bytes::from(bytes.clone()));
            } else if bytes.len() % 3 == 1 {
                core.hold_for_first(Bytes::from(bytes.clone()));
            }
            let input = match what {
                0 => {
                    core.links.entry(p.clone()).or_default();
                    Input::ChannelOpen { peer: p }
                }
                1 => Input::Stalled { peer: p, queued: bytes.len() },
                2 => {
                    let state = [
                        Transport::Connecting,
                        Transport::Connected,
                        Transport::Disconnected,
                        Transport::Failed,
                        Transport::Closed,
                    ][bytes.len() % 5];
                    Input::Transport { peer: p, state }
                }
                3 => Input::Envelope { peer: p, bytes: bytes.into() },
                4 => {
                    let n = bytes.len() as u32;
                    let payload = if n.is_multiple_of(2) {
                        crate::admission::fixtures::candidate(n)
                    } else {
                        let signer = plenum_proto::identity::Identity::from_seed([who; 32]);
                        crate::admission::fixtures::offer(&signer, &peer(0xee), i as u64, Some("c"))
                    };
                    core.negotiation(p, payload, n.is_multiple_of(3));
                    Input::Tick
                }
                5 => Input::Verdict { peer: p, ok: bytes.len() % 2 == 0 },
                6 => {
                    core.named(p);
                    Input::Tick
                }
                7 => match bytes.len() % 4 {
                    0 => Input::ServerLost { reason: "gone".into() },
                    1 => Input::ServerBack { peers: Vec::new() },
                    2 => Input::Server(ServerToClient::PeerLeft { peer: p }),
                    _ => Input::AddressesChanged,
                },
                _ => {
                    core.forget_checks(&p);
                    Input::Tick
                }
            };
            core.handle_input(now, input);
            for o in drain(&mut core) {
                match o {
                    Output::Event(RoomEvent::PeerJoin { peer, .. }) => {
                        prop_assert!(joined.insert(peer));
                    }
                    Output::Event(RoomEvent::PeerLeave { peer }) => {
                        prop_assert!(joined.remove(&peer));
                    }
                    _ => {}
                }
            }
            prop_assert!(core.remote_streams.values().all(|s| s.len() <= MAX_STREAMS_PER_PEER));
            // A first link takes what waited for everyone on top of its own.
            let most = core.queue_per_peer + core.queue_size;
            prop_assert!(core.pending.values().all(|q| q.len() <= most));
            prop_assert!(core.waiting.len() <= core.queue_size);
            prop_assert!(core.pings.is_empty());
            prop_assert!(core.links.len() <= 4);
            prop_assert!(core.backlog.len() <= crate::backlog::SIGNAL_BACKLOG);
        }
    }
}

mod gate {
    use plenum_proto::identity::Identity;

    use super::*;
    use crate::admission::fixtures::{candidate, offer};

    fn identity(seed: u8) -> Identity {
        Identity::from_seed([seed; 32])
    }

    fn gate(core: &mut RoomCore, from: &PeerId, payload: SignalPayload, hold_unknown: bool) {
        core.negotiation(from.clone(), payload, hold_unknown);
    }

    /// What reached the link: an offer answered, or a candidate added (as the payloads
    /// that carried them).
    fn negotiated(out: Vec<Output>) -> Vec<String> {
        out.into_iter()
            .map(|o| match o {
                Output::Answer { sdp, .. } => format!("offer {sdp}"),
                Output::AddCandidate { candidate, .. } => {
                    format!("candidate {}", candidate.candidate)
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn said(payloads: &[SignalPayload]) -> Vec<String> {
        payloads
            .iter()
            .map(|p| match p {
                SignalPayload::Offer { sdp, .. } => format!("offer {sdp}"),
                SignalPayload::Candidate { candidate, .. } => format!("candidate {candidate}"),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn negotiation_from_an_unnamed_peer_waits_for_its_name_or_is_dropped() {
        let t0 = Instant::now();
        let mut core = RoomCore::new(config(Role::Both, false), quiet(t0).0, t0);
        let me = peer(0xee);
        let (a, b) = (identity(1), identity(2));
        let first = offer(&a, &me, 1, None);
        // Where no plan or overlay names peers, a stranger's negotiation goes nowhere.
        gate(&mut core, &b.peer_id(), offer(&b, &me, 1, None), false);
        core.named(b.peer_id());
        assert!(drain(&mut core).is_empty());
        // Where one may, it waits, in order, and goes on once the peer is named.
        gate(&mut core, &a.peer_id(), first.clone(), true);
        gate(&mut core, &a.peer_id(), candidate(1), true);
        assert!(drain(&mut core).is_empty());
        core.add_member(a.peer_id(), DisplayName::new("Ada").unwrap());
        core.named(a.peer_id());
        assert_eq!(negotiated(drain(&mut core)), said(&[first, candidate(1)]));
        // A named peer's negotiation passes at once.
        gate(&mut core, &a.peer_id(), candidate(2), false);
        assert_eq!(negotiated(drain(&mut core)), said(&[candidate(2)]));
    }

    /// A viewer let into a tree with the presenter's code passes the presenter's media on
    /// only to children who present that code too; the one above it, and anyone in a room
    /// that asked for none, are not asked.
    #[test]
    fn a_tree_node_lets_in_only_children_presenting_what_it_was_let_in_with() {
        use plenum_overlay::{TreeConfig, TreeMsg, TreeNode};
        let t0 = Instant::now();
        let me = peer(0xee);
        let tree = TreeConfig::builder().max_degree(2).build().unwrap();
        let node = TreeNode::join(me.clone(), tree, t0, 1);
        let mut config = config(Role::Viewer, false);
        config.credentials = Some(serde_json::json!("code"));
        let mut core = RoomCore::new(config, Overlay::Tree(Box::new(node)), t0);
        drain(&mut core);
        let (parent, good, bad) = (identity(1), identity(2), identity(3));
        for p in [&parent, &good, &bad] {
            core.add_member(p.peer_id(), DisplayName::new("p").unwrap());
        }
        // The parent accepts us and offers, presenting nothing: it is not asked.
        let tree = |core: &mut RoomCore, msg| {
            core.overlay
                .tree()
                .unwrap()
                .handle_msg(parent.peer_id(), msg, t0)
        };
        tree(&mut core, TreeMsg::Accept { depth: 1 });
        drain(&mut core);
        let from_parent = offer(&parent, &me, 1, None);
        gate(&mut core, &parent.peer_id(), from_parent.clone(), false);
        assert_eq!(negotiated(drain(&mut core)), said(&[from_parent]));
        open(&mut core, t0, &parent.peer_id());
        core.handle_input(
            t0,
            Input::Transport {
                peer: parent.peer_id(),
                state: Transport::Connected,
            },
        );
        drain(&mut core);
        assert_eq!(
            core.overlay.tree().unwrap().parent(),
            Some(&parent.peer_id())
        );
        // Two newcomers handed down to us: we take both as children.
        for c in [&good, &bad] {
            let join = TreeMsg::Join {
                requester: c.peer_id(),
                subtree: 1,
                lost: None,
            };
            tree(&mut core, join);
        }
        drain(&mut core);
        let from_good = offer(&good, &me, 1, Some("code"));
        gate(&mut core, &good.peer_id(), from_good.clone(), false);
        assert_eq!(negotiated(drain(&mut core)), said(&[from_good]));
        gate(
            &mut core,
            &bad.peer_id(),
            offer(&bad, &me, 1, Some("guess")),
            false,
        );
        // Told, and the link we began for it closed (our parent hears our subtree again:
        // it counted the join it handed us).
        let out = drain(&mut core);
        assert!(
            matches!(&out[..], [
                Output::Server(ClientToServer::Signal { to, payload: SignalPayload::Refused { .. }, .. }),
                Output::Close { peer },
                Output::Write { peer: up, .. },
            ] if *to == bad.peer_id() && *peer == bad.peer_id() && *up == parent.peer_id()),
            "{out:?}"
        );
        assert!(core.is_refused(&bad.peer_id()));
        // It asks again, with the code now: the tree hands us its join, and this attempt is
        // checked afresh.
        let join = TreeMsg::Join {
            requester: bad.peer_id(),
            subtree: 1,
            lost: None,
        };
        tree(&mut core, join);
        drain(&mut core);
        assert!(!core.is_refused(&bad.peer_id()));
        let with_code = offer(&bad, &me, 2, Some("code"));
        gate(&mut core, &bad.peer_id(), with_code.clone(), false);
        assert_eq!(negotiated(drain(&mut core)), said(&[with_code]));
    }

    #[test]
    fn our_verify_hook_holds_a_peers_negotiation_until_its_word() {
        let t0 = Instant::now();
        let mut core = RoomCore::new(config(Role::Both, true), quiet(t0).0, t0);
        let me = peer(0xee);
        let (a, b) = (identity(1), identity(2));
        for p in [&a, &b] {
            core.add_member(p.peer_id(), DisplayName::new("p").unwrap());
        }
        let from_a = offer(&a, &me, 1, Some("token-a"));
        gate(&mut core, &a.peer_id(), from_a.clone(), false);
        gate(&mut core, &a.peer_id(), candidate(1), false);
        assert_eq!(
            drain(&mut core),
            vec![Output::Verify {
                peer: a.peer_id(),
                credentials: serde_json::json!("token-a")
            }]
        );
        core.handle_input(
            t0,
            Input::Verdict {
                peer: a.peer_id(),
                ok: true,
            },
        );
        assert_eq!(negotiated(drain(&mut core)), said(&[from_a, candidate(1)]));
        assert!(core.key(&a.peer_id()).is_some(), "its key is proven");

        // Refused: it is told, and nothing of it goes further while it stays.
        gate(&mut core, &b.peer_id(), offer(&b, &me, 1, Some("x")), false);
        drain(&mut core);
        core.queue(&b.peer_id(), Bytes::from_static(b"waiting"));
        core.handle_input(
            t0,
            Input::Verdict {
                peer: b.peer_id(),
                ok: false,
            },
        );
        let out = drain(&mut core);
        // Held for the hook, it never had a link: there is none to close.
        assert!(
            matches!(&out[..], [
                Output::Server(ClientToServer::Signal { to, payload: SignalPayload::Refused { .. }, .. }),
            ] if *to == b.peer_id()),
            "{out:?}"
        );
        assert!(core.is_refused(&b.peer_id()));
        assert!(
            !core.is_behind(&b.peer_id()),
            "what waited for it is dropped"
        );
        gate(&mut core, &b.peer_id(), candidate(3), false);
        assert!(drain(&mut core).is_empty());
        // A word on a peer nobody waits for changes nothing.
        core.handle_input(
            t0,
            Input::Verdict {
                peer: identity(9).peer_id(),
                ok: false,
            },
        );
        assert!(drain(&mut core).is_empty());
    }

    #[test]
    fn an_offer_signed_by_another_key_is_reported_and_goes_no_further() {
        let t0 = Instant::now();
        let mut core = RoomCore::new(config(Role::Both, false), quiet(t0).0, t0);
        let me = peer(0xee);
        let (a, mallory) = (identity(1), identity(2));
        core.add_member(a.peer_id(), DisplayName::new("Ada").unwrap());
        gate(
            &mut core,
            &a.peer_id(),
            offer(&mallory, &me, 1, None),
            false,
        );
        match &drain(&mut core)[..] {
            [Output::Event(RoomEvent::Error(RoomError::IdentityMismatch { peer, .. }))] => {
                assert_eq!(peer, &a.peer_id());
            }
            other => panic!("{other:?}"),
        }
        assert!(core.key(&a.peer_id()).is_none());
    }

    #[test]
    fn a_peer_that_leaves_is_checked_again_and_nothing_it_held_is_kept() {
        let t0 = Instant::now();
        let mut core = RoomCore::new(config(Role::Both, true), quiet(t0).0, t0);
        let me = peer(0xee);
        let a = identity(1);
        core.add_member(a.peer_id(), DisplayName::new("Ada").unwrap());
        gate(&mut core, &a.peer_id(), offer(&a, &me, 1, Some("t")), false);
        drain(&mut core);
        core.handle_input(
            t0,
            Input::Verdict {
                peer: a.peer_id(),
                ok: true,
            },
        );
        drain(&mut core);
        // It leaves; while gone it sends more (held as a stranger's), then comes back.
        core.remove_member(&a.peer_id());
        core.forget_checks(&a.peer_id());
        gate(&mut core, &a.peer_id(), candidate(1), true);
        core.forget_checks(&a.peer_id());
        core.add_member(a.peer_id(), DisplayName::new("Ada").unwrap());
        core.named(a.peer_id());
        assert!(drain(&mut core).is_empty(), "held before it left: dropped");
        // Its next offer is checked again.
        gate(&mut core, &a.peer_id(), offer(&a, &me, 2, Some("t")), false);
        assert!(matches!(&drain(&mut core)[..], [Output::Verify { .. }]));
    }
}

#[test]
fn told_the_time_it_asks_for_the_core_always_moves_its_deadline_on() {
    // A viewer whose publisher is gone, with a ping interval shorter than the link check:
    // each deadline it gives, once reached, gives way to a later one (no spinning).
    let t0 = Instant::now();
    let mut config = config(Role::Viewer, false);
    config.ping_interval = Duration::from_millis(100);
    let mut core = RoomCore::new(config, quiet(t0).0, t0);
    let p = peer(9);
    core.add_member(p.clone(), DisplayName::new("Pub").unwrap());
    open(&mut core, t0, &p);
    // Linked at a link check, gone by the next.
    let checked = t0 + LINK_CHECK_EVERY;
    core.handle_input(checked, Input::Tick);
    core.handle_input(checked, Input::Stalled { peer: p, queued: 1 });
    let mut now = checked + LINK_CHECK_EVERY;
    core.handle_input(now, Input::Tick);
    for _ in 0..50 {
        let at = loop {
            match core.poll_output() {
                Output::Timeout(at) => break at,
                _ => continue,
            }
        };
        assert!(at > now, "asked to be woken at {at:?}, already {now:?}");
        now = at;
        core.handle_input(now, Input::Tick);
    }
    assert!(now > checked + Duration::from_secs(1), "it got somewhere");
}

/// A core of a tree room (degree 2) that has asked for a parent; what it said is drained.
fn joining_a_tree() -> (RoomCore, Instant) {
    joining_a_tree_as(Role::Both)
}

/// The same, joining as `role`.
fn joining_a_tree_as(role: Role) -> (RoomCore, Instant) {
    use plenum_overlay::{TreeConfig, TreeNode};
    let t0 = Instant::now();
    let tree = TreeConfig::builder().max_degree(2).build().unwrap();
    let node = TreeNode::join(peer(0xee), tree, t0, 1);
    let mut core = RoomCore::new(config(role, false), Overlay::Tree(Box::new(node)), t0);
    drain(&mut core);
    (core, t0)
}

/// In a tree room a parent link whose path goes silent is given up at once: the orphan
/// rejoins (its request leaves) and the link closes, rather than an ICE restart being tried
/// while its subtree waits for the silence timeout.
#[test]
fn a_tree_gives_up_a_silent_parent_at_once_and_rejoins() {
    use plenum_overlay::TreeMsg;
    let (mut core, t0) = joining_a_tree();
    let parent = peer(0x01);
    core.overlay
        .tree()
        .unwrap()
        .handle_msg(parent.clone(), TreeMsg::Accept { depth: 1 }, t0);
    drain(&mut core);
    open(&mut core, t0, &parent);
    core.handle_input(
        t0,
        Input::Transport {
            peer: parent.clone(),
            state: Transport::Connected,
        },
    );
    drain(&mut core);
    assert_eq!(core.overlay.tree().unwrap().parent(), Some(&parent));

    let t1 = t0 + Duration::from_secs(1);
    core.handle_input(
        t1,
        Input::Transport {
            peer: parent.clone(),
            state: Transport::Disconnected,
        },
    );
    let out = drain(&mut core);
    assert_eq!(
        core.overlay.tree().unwrap().parent(),
        None,
        "the parent is given up"
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Close { peer } if *peer == parent)),
        "its link closes: {out:?}"
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::RestartIce { .. })),
        "no restart: {out:?}"
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Server(ClientToServer::SignalRoot { .. }))),
        "the orphan asks to join again: {out:?}"
    );
}

fn floors(out: &[Output]) -> Vec<(bool, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Server(ClientToServer::Floor { speaking, hand, .. }) => {
                Some((*speaking, *hand))
            }
            _ => None,
        })
        .collect()
}

fn presenting(out: &[Output]) -> Vec<bool> {
    out.iter()
        .filter_map(|o| match o {
            Output::Server(ClientToServer::Floor { presenting, .. }) => Some(*presenting),
            _ => None,
        })
        .collect()
}

#[test]
fn in_a_cells_room_our_voice_and_hand_ask_the_server_for_a_seat_and_ask_again_after_a_restart() {
    let t0 = Instant::now();
    let cells = CoreConfig {
        sparse: true,
        ..config(Role::Both, false)
    };
    let mut core = RoomCore::new(cells, quiet(t0).0, t0);
    drain(&mut core);
    core.set_speaking(true);
    assert_eq!(floors(&drain(&mut core)), [(true, false)]);
    // Said once: the same word again sends nothing.
    core.set_speaking(true);
    assert!(floors(&drain(&mut core)).is_empty());
    let name = plenum_proto::DisplayName::new("me").unwrap();
    assert!(core.raise_hand(true, name).is_ok());
    assert_eq!(floors(&drain(&mut core)), [(true, true)]);
    core.set_speaking(false);
    assert_eq!(floors(&drain(&mut core)), [(false, true)]);
    // The server went and came back (perhaps restarted, its stage empty): asked again.
    core.handle_input(
        t0,
        Input::ServerLost {
            reason: "gone".into(),
        },
    );
    core.handle_input(t0, Input::ServerBack { peers: Vec::new() });
    assert_eq!(floors(&drain(&mut core)), [(false, true)]);
    // Presenting is asked for beside the rest, and asked again after a restart too.
    core.set_presenting(true);
    assert_eq!(presenting(&drain(&mut core)), [true]);
    core.handle_input(
        t0,
        Input::ServerLost {
            reason: "gone".into(),
        },
    );
    core.handle_input(t0, Input::ServerBack { peers: Vec::new() });
    let out = drain(&mut core);
    assert_eq!(
        (floors(&out), presenting(&out)),
        (vec![(false, true)], vec![true])
    );
    // The server's seats and presenter are the room's event.
    let seats = vec![None, None, None, None];
    let presenter = Some(plenum_proto::signal::StageSeat {
        peer: peer(7),
        name: plenum_proto::DisplayName::new("shows").unwrap(),
        cell: 1,
    });
    let stage = ServerToClient::Stage {
        seats,
        presenter: presenter.clone(),
    };
    core.handle_input(t0, Input::Server(stage));
    let out = drain(&mut core);
    assert!(
        out.iter().any(
            |o| matches!(o, Output::Event(RoomEvent::Seats { seats, presenter: p })
            if seats.len() == 4 && *p == presenter)
        ),
        "{out:?}"
    );
    // A room that is not cellular has no stage: our voice asks for nothing.
    let (mut mesh, _) = self::core(Role::Both);
    drain(&mut mesh);
    mesh.set_speaking(true);
    mesh.set_presenting(true);
    assert!(floors(&drain(&mut mesh)).is_empty());
}

/// A tree room's server hands out no roster: a peer the tree links is named by what the
/// server says with the frames it relays from it (its role too), and a name heard from a
/// peer the tree did not link puts nobody on the roster.
#[test]
fn a_tree_link_takes_the_name_the_server_gave_with_its_frames() {
    use plenum_proto::overlay::TreeSignal;
    let (mut core, t0) = joining_a_tree_as(Role::Viewer);
    let signal = |from: &PeerId, name: &str, payload| {
        Input::Server(ServerToClient::Signal {
            from: from.clone(),
            name: Some(DisplayName::new(name).unwrap()),
            role: Some(Role::Viewer),
            payload,
        })
    };
    // A stranger's candidate: its name is heard, but it is not linked.
    let stranger = peer(0x02);
    let candidate = SignalPayload::Candidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: None,
    };
    core.handle_input(t0, signal(&stranger, "Sam", candidate));
    drain(&mut core);
    assert!(!core.roster.contains_key(&stranger), "{:?}", core.roster);

    // The parent's accept comes through the server with its name.
    let parent = peer(0x01);
    let accept = SignalPayload::Tree {
        msg: TreeSignal::Accept { depth: 1 },
    };
    core.handle_input(t0, signal(&parent, "Ada", accept));
    drain(&mut core);
    let out = open(&mut core, t0, &parent);
    let joined = out.iter().find_map(|o| match o {
        Output::Event(RoomEvent::PeerJoin { peer, name }) if *peer == parent => Some(name),
        _ => None,
    });
    assert_eq!(joined.map(DisplayName::as_str), Some("Ada"), "{out:?}");
    assert_eq!(core.role(&parent), Role::Viewer);
    assert!(
        core.links_with(&parent),
        "in a tree a viewer links to the viewer it takes the presentation from"
    );
}
