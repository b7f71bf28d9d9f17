use super::*;
use plenum_proto::signal::SignalPayload;
use proptest::prelude::*;

fn drain(reg: &mut Registry) -> Vec<Output> {
    let mut out = Vec::new();
    loop {
        match reg.poll_output() {
            Output::Timeout(_) => return out,
            o => out.push(o),
        }
    }
}

fn sent_to(out: &[Output], conn: ConnId) -> Vec<ServerToClient> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { conn: c, frame } if *c == conn => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

struct World {
    reg: Registry,
    now: Instant,
}

impl World {
    fn new(config: RegistryConfig) -> Self {
        let now = Instant::now();
        Self {
            reg: Registry::new(config, now, 1),
            now,
        }
    }

    fn open(&mut self, conn: ConnId) {
        self.reg.handle_input(Input::Opened {
            conn,
            now: self.now,
        });
    }

    fn frame(&mut self, conn: ConnId, text: &str) -> Vec<Output> {
        // Keep within the rate limit unless a test floods on purpose.
        self.now += Duration::from_millis(25);
        self.reg.handle_input(Input::Frame {
            conn,
            text: text.into(),
            now: self.now,
        });
        drain(&mut self.reg)
    }

    fn join(&mut self, conn: ConnId, room: &str, password: Option<&str>) -> PeerId {
        self.open(conn);
        let pw = password
            .map(|p| format!(",\"password\":\"{p}\""))
            .unwrap_or_default();
        let out = self.frame(
            conn,
            &format!(r#"{{"type":"join","version":1,"room":"{room}","name":"n{conn}"{pw}}}"#),
        );
        match sent_to(&out, conn).first() {
            Some(ServerToClient::Welcome { peer, .. }) => peer.clone(),
            other => panic!("no welcome: {other:?}"),
        }
    }
}

fn error_code(frames: &[ServerToClient]) -> Option<ErrorCode> {
    frames.iter().find_map(|f| match f {
        ServerToClient::Error { code, .. } => Some(*code),
        _ => None,
    })
}

#[test]
fn join_welcomes_and_announces() {
    let mut w = World::new(RegistryConfig::default());
    let a = w.join(1, "r", None);
    w.open(2);
    let out = w.frame(2, r#"{"type":"join","version":1,"room":"r","name":"bob"}"#);
    let to_b = sent_to(&out, 2);
    let ServerToClient::Welcome {
        peers,
        peer_count,
        peer: b,
        ..
    } = &to_b[0]
    else {
        panic!("{to_b:?}")
    };
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].peer, a);
    assert_eq!(*peer_count, 1);
    assert_eq!(
        sent_to(&out, 1),
        vec![ServerToClient::PeerJoined {
            peer: b.clone(),
            name: DisplayName::new("bob").unwrap()
        }]
    );
}

#[test]
fn signal_is_relayed_to_the_addressed_peer_only_with_the_true_sender() {
    let mut w = World::new(RegistryConfig::default());
    let a = w.join(1, "r", None);
    let b = w.join(2, "r", None);
    let _c = w.join(3, "r", None);
    let out = w.frame(
        1,
        &format!(r#"{{"type":"signal","to":"{b}","payload":{{"kind":"offer","sdp":"x"}}}}"#),
    );
    assert_eq!(
        out,
        vec![Output::Send {
            conn: 2,
            frame: ServerToClient::Signal {
                from: a,
                payload: SignalPayload::Offer { sdp: "x".into() }
            }
        }]
    );
}

#[test]
fn spoofed_sender_is_refused() {
    let mut w = World::new(RegistryConfig::default());
    let _a = w.join(1, "r", None);
    let b = w.join(2, "r", None);
    let c = w.join(3, "r", None);
    let out = w.frame(
        1,
        &format!(
            r#"{{"type":"signal","to":"{b}","from":"{c}","payload":{{"kind":"answer","sdp":"x"}}}}"#
        ),
    );
    assert_eq!(
        error_code(&sent_to(&out, 1)),
        Some(ErrorCode::SpoofedSender)
    );
    assert!(sent_to(&out, 2).is_empty());
}

#[test]
fn relay_to_a_peer_of_another_room_is_refused() {
    let mut w = World::new(RegistryConfig::default());
    let _a = w.join(1, "r1", None);
    let b = w.join(2, "r2", None);
    let out = w.frame(
        1,
        &format!(r#"{{"type":"signal","to":"{b}","payload":{{"kind":"offer","sdp":"x"}}}}"#),
    );
    assert_eq!(error_code(&sent_to(&out, 1)), Some(ErrorCode::UnknownPeer));
    assert!(sent_to(&out, 2).is_empty());
}

#[test]
fn password_is_set_by_the_first_joiner_and_checked_after() {
    let mut w = World::new(RegistryConfig::default());
    w.join(1, "r", Some("s3cret"));
    w.open(2);
    let out = w.frame(
        2,
        r#"{"type":"join","version":1,"room":"r","name":"x","password":"guess"}"#,
    );
    assert_eq!(error_code(&sent_to(&out, 2)), Some(ErrorCode::BadPassword));
    assert!(out.contains(&Output::Close { conn: 2 }));
    assert!(
        sent_to(&out, 1).is_empty(),
        "the room hears nothing of a refused join"
    );
    w.open(3);
    let out = w.frame(3, r#"{"type":"join","version":1,"room":"r","name":"x"}"#);
    assert_eq!(error_code(&sent_to(&out, 3)), Some(ErrorCode::BadPassword));
    w.join(4, "r", Some("s3cret"));
}

#[test]
fn limits_on_rooms_and_peers() {
    let config = RegistryConfig {
        max_peers_per_room: 2,
        max_rooms: 1,
        ..RegistryConfig::default()
    };
    let mut w = World::new(config);
    w.join(1, "r", None);
    w.join(2, "r", None);
    w.open(3);
    let out = w.frame(3, r#"{"type":"join","version":1,"room":"r","name":"x"}"#);
    assert_eq!(error_code(&sent_to(&out, 3)), Some(ErrorCode::RoomFull));
    w.open(4);
    let out = w.frame(
        4,
        r#"{"type":"join","version":1,"room":"other","name":"x"}"#,
    );
    assert_eq!(error_code(&sent_to(&out, 4)), Some(ErrorCode::ServerFull));
}

#[test]
fn bad_frames_get_their_codes_and_the_connection_stays() {
    let mut w = World::new(RegistryConfig::default());
    w.join(1, "r", None);
    assert_eq!(
        error_code(&sent_to(&w.frame(1, "{\"type\":\"sig"), 1)),
        Some(ErrorCode::Malformed)
    );
    assert_eq!(
        error_code(&sent_to(&w.frame(1, r#"{"type":"teleport"}"#), 1)),
        Some(ErrorCode::UnknownType)
    );
    assert_eq!(
        error_code(&sent_to(
            &w.frame(1, r#"{"type":"join","version":1,"room":"r","name":"x"}"#),
            1
        )),
        Some(ErrorCode::AlreadyJoined)
    );
    let big = format!(
        r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(
        error_code(&sent_to(&w.frame(1, &big), 1)),
        Some(ErrorCode::FrameTooLarge)
    );
    assert_eq!(
        sent_to(&w.frame(1, r#"{"type":"ping","nonce":9}"#), 1),
        vec![ServerToClient::Pong { nonce: 9 }]
    );
}

#[test]
fn unsupported_version_is_fatal() {
    let mut w = World::new(RegistryConfig::default());
    w.open(1);
    let out = w.frame(1, r#"{"type":"join","version":99,"room":"r","name":"x"}"#);
    assert_eq!(
        error_code(&sent_to(&out, 1)),
        Some(ErrorCode::UnsupportedVersion)
    );
    assert!(out.contains(&Output::Close { conn: 1 }));
}

#[test]
fn flood_is_rate_limited_with_one_error_and_recovers() {
    let mut w = World::new(RegistryConfig::default());
    w.join(1, "r", None);
    let mut errors = 0;
    let mut pongs = 0;
    for n in 0..1000 {
        w.reg.handle_input(Input::Frame {
            conn: 1,
            text: format!(r#"{{"type":"ping","nonce":{n}}}"#),
            now: w.now,
        });
        for f in sent_to(&drain(&mut w.reg), 1) {
            match f {
                ServerToClient::Error {
                    code: ErrorCode::RateLimited,
                    ..
                } => errors += 1,
                ServerToClient::Pong { .. } => pongs += 1,
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(errors, 1);
    assert!(pongs <= 100, "{pongs} pongs passed a burst of 100");
    w.now += Duration::from_secs(1);
    assert_eq!(
        sent_to(&w.frame(1, r#"{"type":"ping","nonce":1}"#), 1),
        vec![ServerToClient::Pong { nonce: 1 }]
    );
}

#[test]
fn closing_a_connection_announces_the_leave_and_frees_the_room() {
    let mut w = World::new(RegistryConfig::default());
    let a = w.join(1, "r", None);
    w.join(2, "r", None);
    w.reg.handle_input(Input::Closed {
        conn: 1,
        now: w.now,
    });
    assert_eq!(
        sent_to(&drain(&mut w.reg), 2),
        vec![ServerToClient::PeerLeft { peer: a }]
    );
    w.reg.handle_input(Input::Closed {
        conn: 2,
        now: w.now,
    });
    drain(&mut w.reg);
    assert_eq!(
        w.reg.stats(),
        RegistryStats {
            connections: 0,
            rooms: 0,
            peers: 0,
            refused: 0
        }
    );
}

#[test]
fn connection_that_never_joins_is_closed_at_the_join_timeout() {
    let mut w = World::new(RegistryConfig::default());
    w.open(1);
    let Output::Timeout(at) = w.reg.poll_output() else {
        panic!()
    };
    assert_eq!(at, w.now + Duration::from_secs(10));
    w.reg.handle_input(Input::Tick { now: at });
    let out = drain(&mut w.reg);
    assert_eq!(error_code(&sent_to(&out, 1)), Some(ErrorCode::NotJoined));
    assert!(out.contains(&Output::Close { conn: 1 }));
}

#[test]
fn welcome_lists_a_bounded_sample() {
    let config = RegistryConfig {
        roster_sample: 3,
        ..RegistryConfig::default()
    };
    let mut w = World::new(config);
    for c in 1..=10 {
        w.join(c, "r", None);
    }
    w.open(11);
    let out = w.frame(11, r#"{"type":"join","version":1,"room":"r","name":"x"}"#);
    let ServerToClient::Welcome {
        peers, peer_count, ..
    } = &sent_to(&out, 11)[0]
    else {
        panic!()
    };
    assert_eq!((peers.len(), *peer_count), (3, 10));
}

#[derive(Debug, Clone)]
enum Op {
    Open(u8),
    Close(u8),
    Frame(u8, String),
    Refused(u8, usize),
    Wait(u16),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let frame = prop_oneof![
        "[a-z]{1,3}"
            .prop_map(|r| format!(r#"{{"type":"join","version":1,"room":"{r}","name":"n"}}"#)),
        "[a-z]{1,3}".prop_map(|r| format!(
            r#"{{"type":"join","version":1,"room":"{r}","name":"n","password":"p"}}"#
        )),
        "[0-9a-f]{16}".prop_map(|to| format!(
            r#"{{"type":"signal","to":"{to}","payload":{{"kind":"offer","sdp":"x"}}}}"#
        )),
        Just(r#"{"type":"leave"}"#.to_string()),
        Just(r#"{"type":"ping","nonce":1}"#.to_string()),
        any::<String>(),
    ];
    prop_oneof![
        (0u8..6).prop_map(Op::Open),
        (0u8..6).prop_map(Op::Close),
        (0u8..6, frame).prop_map(|(c, f)| Op::Frame(c, f)),
        (0u8..6, 0usize..200_000).prop_map(|(c, l)| Op::Refused(c, l)),
        (0u16..20_000).prop_map(Op::Wait),
    ]
}

proptest! {
    /// Any sequence of inputs: no panic, and the bookkeeping stays consistent.
    #[test]
    fn registry_survives_any_input_sequence(ops in proptest::collection::vec(arb_op(), 0..200)) {
        let mut now = Instant::now();
        let mut reg = Registry::new(RegistryConfig::default(), now, 5);
        for op in ops {
            match op {
                Op::Open(c) => reg.handle_input(Input::Opened { conn: c.into(), now }),
                Op::Close(c) => reg.handle_input(Input::Closed { conn: c.into(), now }),
                Op::Frame(c, text) => reg.handle_input(Input::Frame { conn: c.into(), text, now }),
                Op::Refused(c, len) => reg.handle_input(Input::Refused { conn: c.into(), len, binary: len % 2 == 0, now }),
                Op::Wait(ms) => {
                    now += Duration::from_millis(ms.into());
                    reg.handle_input(Input::Tick { now });
                }
            }
            drain(&mut reg);
            let members: usize = reg.rooms.values().map(|r| r.members.len()).sum();
            let joined = reg.conns.values().filter(|c| c.member.is_some()).count();
            prop_assert!(reg.rooms.values().all(|r| !r.members.is_empty()));
            prop_assert_eq!(members, joined);
        }
    }
}
