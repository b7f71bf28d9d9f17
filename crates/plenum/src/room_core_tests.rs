// Tests take one real instant as the origin of their virtual clock, then only add to it.
#![allow(clippy::disallowed_methods)]

use super::*;
use proptest::prelude::*;

fn peer(n: u8) -> PeerId {
    PeerId::new(format!("{n:02x}").repeat(20)).unwrap()
}

fn channel(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

fn config(role: Role, verify: bool) -> CoreConfig {
    CoreConfig {
        me: peer(0xee),
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
    (RoomCore::new(config(role, false), t0), t0)
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
    let out = drain(&mut core);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| matches!(o, Output::WriteOpen(_))));

    core.handle_input(t0, Input::LinkOpened { peer: a.clone() });
    let out = drain(&mut core);
    let stream = Bytes::from(Envelope::stream(&add("mic")).encode());
    assert_eq!(
        out,
        vec![
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
        ]
    );
    // The data channel is seen open twice (data and the open event race): one join.
    core.handle_input(t0, Input::LinkOpened { peer: a.clone() });
    let joins = drain(&mut core)
        .into_iter()
        .filter(|o| matches!(o, Output::Event(RoomEvent::PeerJoin { .. })))
        .count();
    assert_eq!(joins, 0);
}

#[test]
fn a_closed_link_ends_its_peers_streams_and_a_joined_peer_leaves() {
    let (mut core, t0) = core(Role::Both);
    let (a, b) = (peer(1), peer(2));
    core.add_member(a.clone(), DisplayName::new("Ada").unwrap());
    core.handle_input(t0, Input::LinkOpened { peer: a.clone() });
    deliver(&mut core, t0, &a, Envelope::stream(&add("mic")));
    drain(&mut core);
    core.handle_input(t0, Input::LinkClosed { peer: a.clone() });
    assert_eq!(
        drain(&mut core),
        vec![
            Output::Event(RoomEvent::StreamRemoved {
                peer: a.clone(),
                stream: "mic".into()
            }),
            Output::Event(RoomEvent::PeerLeave { peer: a.clone() }),
        ]
    );
    // A link that opened to a peer nobody named never joined: it does not leave.
    core.handle_input(t0, Input::LinkOpened { peer: b.clone() });
    assert!(drain(&mut core).is_empty());
    core.handle_input(t0, Input::LinkClosed { peer: b });
    assert!(drain(&mut core).is_empty());
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
    core.handle_input(t0, Input::LinkOpened { peer: a.clone() });
    let sent = drain(&mut core);
    let want = state_envelope(&serde_json::json!({"x": 1, "y": 3, "z": 4}));
    assert!(
        sent.contains(&Output::Write {
            peer: a.clone(),
            bytes: want
        }),
        "{sent:?}"
    );
    set(&mut core, serde_json::json!({"z": 5}), false);
    core.handle_input(t0, Input::LinkOpened { peer: a.clone() });
    let want = state_envelope(&serde_json::json!({"z": 5}));
    assert!(drain(&mut core).contains(&Output::Write {
        peer: a,
        bytes: want
    }));
}

#[test]
fn topology_messages_go_to_the_overlay_and_a_goodbye_takes_the_peer_off_the_roster() {
    let (mut core, t0) = core(Role::Both);
    let a = peer(1);
    for kind in [
        EnvelopeKind::Mesh,
        EnvelopeKind::Tree,
        EnvelopeKind::Relay,
        EnvelopeKind::Host,
    ] {
        let out = deliver(&mut core, t0, &a, Envelope::control(kind, 5));
        assert!(
            matches!(&out[..], [Output::Overlay { peer, envelope }] if *peer == a && envelope.kind == kind),
            "{out:?}"
        );
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
    let out = deliver(&mut core, t0, &a, bye.clone());
    assert_eq!(
        out,
        vec![Output::Bye {
            peer: a.clone(),
            known: true
        }]
    );
    assert!(!core.is_member(&a));
    let out = deliver(&mut core, t0, &a, bye);
    assert_eq!(
        out,
        vec![Output::Bye {
            peer: a,
            known: false
        }]
    );
}

#[test]
fn a_viewer_whose_publishers_are_gone_meets_them_again_then_gives_up() {
    let (mut core, t0) = core(Role::Viewer);
    let p = peer(9);
    let publishers = |open| Input::Publishers {
        linked: vec![p.clone()],
        open,
    };
    // Never had one: nothing to miss.
    core.handle_input(t0, publishers(false));
    assert!(drain(&mut core).is_empty());
    core.handle_input(t0, publishers(true));
    assert!(drain(&mut core).is_empty());
    // All gone: it waits an interval, then meets them again each interval, three times.
    core.handle_input(t0, publishers(false));
    assert!(drain(&mut core).is_empty());
    // It acts when told again, not on a timer of its own (nothing to spin on once due).
    assert_eq!(core.poll_output(), Output::Timeout(t0 + IDLE));
    let mut reoffers = 0;
    let mut gave_up = 0;
    for s in (1..=5).map(|k| t0 + Duration::from_secs(30 * k)) {
        core.handle_input(s, publishers(false));
        for o in drain(&mut core) {
            match o {
                Output::Reoffer { peer } if peer == p => reoffers += 1,
                Output::Event(RoomEvent::Error(RoomError::PublishersGone { attempts: 3 })) => {
                    gave_up += 1
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!((reoffers, gave_up), (3, 1));
    // One returns: it starts over if they go again.
    let back = t0 + Duration::from_secs(200);
    core.handle_input(back, publishers(true));
    core.handle_input(back, publishers(false));
    core.handle_input(back + Duration::from_secs(30), publishers(false));
    assert_eq!(drain(&mut core), vec![Output::Reoffer { peer: p }]);
}

#[test]
fn a_publisher_never_watches_for_publishers() {
    let (mut core, t0) = core(Role::Both);
    let linked = vec![peer(9)];
    for k in 0..5 {
        let now = t0 + Duration::from_secs(30 * k);
        let open = k == 0;
        let input = Input::Publishers {
            linked: linked.clone(),
            open,
        };
        core.handle_input(now, input);
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
    core.handle_input(t0, Input::LinkOpened { peer: a.clone() });
    drain(&mut core);
    let got: Vec<Bytes> = std::iter::from_fn(|| core.next_queued(&a)).collect();
    assert_eq!(got, vec![msg(0), msg(2), msg(3)]);
    // Only the first link: the next has nothing waiting.
    let b = peer(2);
    core.handle_input(t0, Input::LinkOpened { peer: b.clone() });
    drain(&mut core);
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
        steps in proptest::collection::vec((0u8..8, 0u8..4, envelope_bytes()), 0..200)
    ) {
        let t0 = Instant::now();
        let mut core = RoomCore::new(config(Role::Viewer, true), t0);
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
                0 => Input::LinkOpened { peer: p },
                1 => Input::LinkClosed { peer: p },
                2 => Input::Publishers { linked: vec![p], open: false },
                3 => Input::Envelope { peer: p, bytes: bytes.into() },
                4 => {
                    let n = bytes.len() as u32;
                    let payload = if n.is_multiple_of(2) {
                        crate::admission::fixtures::candidate(n)
                    } else {
                        let signer = plenum_proto::identity::Identity::from_seed([who; 32]);
                        crate::admission::fixtures::offer(&signer, &peer(0xee), i as u64, Some("c"))
                    };
                    Input::Negotiation { from: p, payload, hold_unknown: n.is_multiple_of(3) }
                }
                5 => Input::Verdict { peer: p, ok: bytes.len() % 2 == 0 },
                6 => Input::Named { peer: p },
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

    fn negotiation(from: &PeerId, payload: SignalPayload, hold_unknown: bool) -> Input {
        Input::Negotiation {
            from: from.clone(),
            payload,
            hold_unknown,
        }
    }

    fn negotiated(out: Vec<Output>) -> Vec<SignalPayload> {
        out.into_iter()
            .map(|o| match o {
                Output::Negotiate { payload, .. } => payload,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn negotiation_from_an_unnamed_peer_waits_for_its_name_or_is_dropped() {
        let t0 = Instant::now();
        let mut core = RoomCore::new(config(Role::Both, false), t0);
        let me = peer(0xee);
        let (a, b) = (identity(1), identity(2));
        let first = offer(&a, &me, 1, None);
        // Where no plan or overlay names peers, a stranger's negotiation goes nowhere.
        core.handle_input(
            t0,
            negotiation(&b.peer_id(), offer(&b, &me, 1, None), false),
        );
        core.handle_input(t0, Input::Named { peer: b.peer_id() });
        assert!(drain(&mut core).is_empty());
        // Where one may, it waits, in order, and goes on once the peer is named.
        core.handle_input(t0, negotiation(&a.peer_id(), first.clone(), true));
        core.handle_input(t0, negotiation(&a.peer_id(), candidate(1), true));
        assert!(drain(&mut core).is_empty());
        core.add_member(a.peer_id(), DisplayName::new("Ada").unwrap());
        core.handle_input(t0, Input::Named { peer: a.peer_id() });
        assert_eq!(negotiated(drain(&mut core)), vec![first, candidate(1)]);
        // A named peer's negotiation passes at once.
        core.handle_input(t0, negotiation(&a.peer_id(), candidate(2), false));
        assert_eq!(negotiated(drain(&mut core)), vec![candidate(2)]);
    }

    #[test]
    fn our_verify_hook_holds_a_peers_negotiation_until_its_word() {
        let t0 = Instant::now();
        let mut core = RoomCore::new(config(Role::Both, true), t0);
        let me = peer(0xee);
        let (a, b) = (identity(1), identity(2));
        for p in [&a, &b] {
            core.add_member(p.peer_id(), DisplayName::new("p").unwrap());
        }
        let from_a = offer(&a, &me, 1, Some("token-a"));
        core.handle_input(t0, negotiation(&a.peer_id(), from_a.clone(), false));
        core.handle_input(t0, negotiation(&a.peer_id(), candidate(1), false));
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
        assert_eq!(negotiated(drain(&mut core)), vec![from_a, candidate(1)]);
        assert!(core.key(&a.peer_id()).is_some(), "its key is proven");

        // Refused: it is told, and nothing of it goes further while it stays.
        core.handle_input(
            t0,
            negotiation(&b.peer_id(), offer(&b, &me, 1, Some("x")), false),
        );
        drain(&mut core);
        core.queue(&b.peer_id(), Bytes::from_static(b"waiting"));
        core.handle_input(
            t0,
            Input::Verdict {
                peer: b.peer_id(),
                ok: false,
            },
        );
        assert_eq!(drain(&mut core), vec![Output::Refuse { peer: b.peer_id() }]);
        assert!(core.is_refused(&b.peer_id()));
        assert!(
            !core.is_behind(&b.peer_id()),
            "what waited for it is dropped"
        );
        core.handle_input(t0, negotiation(&b.peer_id(), candidate(3), false));
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
        let mut core = RoomCore::new(config(Role::Both, false), t0);
        let me = peer(0xee);
        let (a, mallory) = (identity(1), identity(2));
        core.add_member(a.peer_id(), DisplayName::new("Ada").unwrap());
        core.handle_input(
            t0,
            negotiation(&a.peer_id(), offer(&mallory, &me, 1, None), false),
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
        let mut core = RoomCore::new(config(Role::Both, true), t0);
        let me = peer(0xee);
        let a = identity(1);
        core.add_member(a.peer_id(), DisplayName::new("Ada").unwrap());
        core.handle_input(
            t0,
            negotiation(&a.peer_id(), offer(&a, &me, 1, Some("t")), false),
        );
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
        core.handle_input(t0, negotiation(&a.peer_id(), candidate(1), true));
        core.forget_checks(&a.peer_id());
        core.add_member(a.peer_id(), DisplayName::new("Ada").unwrap());
        core.handle_input(t0, Input::Named { peer: a.peer_id() });
        assert!(drain(&mut core).is_empty(), "held before it left: dropped");
        // Its next offer is checked again.
        core.handle_input(
            t0,
            negotiation(&a.peer_id(), offer(&a, &me, 2, Some("t")), false),
        );
        assert!(matches!(&drain(&mut core)[..], [Output::Verify { .. }]));
    }
}
