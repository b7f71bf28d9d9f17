use super::*;
use plenum_proto::identity::Identity;
use plenum_proto::signal::SignalPayload;
use plenum_proto::token::Claims;
use proptest::prelude::*;
use serde_json::json;

const SEED: [u8; 32] = [7; 32];

/// The identity a test connection joins with.
fn identity(conn: ConnId) -> Identity {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&conn.to_le_bytes());
    Identity::from_seed(seed)
}

fn hello_challenge(out: &[Output], conn: ConnId) -> Option<String> {
    sent_to(out, conn).into_iter().find_map(|f| match f {
        ServerToClient::Hello { challenge, .. } => Some(challenge),
        _ => None,
    })
}

/// A join frame signed by `who` over `challenge`, with `extra` fields merged in.
fn signed_join(who: &Identity, challenge: &str, room: &str, extra: serde_json::Value) -> String {
    let mut frame = json!({
        "type": "join", "version": PROTOCOL_VERSION, "room": room, "name": "n",
        "key": who.public().encode(),
        "proof": who.sign(&join_message(challenge, room)),
    });
    if let (Some(f), Some(e)) = (frame.as_object_mut(), extra.as_object()) {
        f.extend(e.clone());
    }
    frame.to_string()
}

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
    challenges: HashMap<ConnId, String>,
}

impl World {
    fn new(config: RegistryConfig) -> Self {
        let now = Instant::now();
        Self {
            reg: Registry::new(config, now, SEED),
            now,
            challenges: HashMap::new(),
        }
    }

    fn open(&mut self, conn: ConnId) {
        self.reg.handle_input(Input::Opened {
            conn,
            now: self.now,
        });
        let out = drain(&mut self.reg);
        let challenge = hello_challenge(&out, conn).expect("hello on open");
        self.challenges.insert(conn, challenge);
    }

    /// The join frame connection `conn` sends, signed with its identity.
    fn join_text(&self, conn: ConnId, room: &str, extra: serde_json::Value) -> String {
        signed_join(&identity(conn), &self.challenges[&conn], room, extra)
    }

    /// Opens `conn` and sends its signed join.
    fn try_join(&mut self, conn: ConnId, room: &str, extra: serde_json::Value) -> Vec<Output> {
        self.open(conn);
        let text = self.join_text(conn, room, extra);
        self.frame(conn, &text)
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
        let extra = match password {
            Some(p) => json!({"name": format!("n{conn}"), "password": p}),
            None => json!({"name": format!("n{conn}")}),
        };
        let out = self.try_join(conn, room, extra);
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
    let out = w.try_join(2, "r", json!({"name": "bob"}));
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
    assert_eq!(*b, identity(2).peer_id(), "the id derives from the key");
    assert_eq!(
        sent_to(&out, 1),
        vec![ServerToClient::PeerJoined {
            peer: b.clone(),
            name: DisplayName::new("bob").unwrap(),
            publish: true,
            role: Role::Both,
        }]
    );
}

#[test]
fn signal_is_relayed_to_the_addressed_peer_only_with_the_true_sender_and_its_name() {
    let mut w = World::new(RegistryConfig::default());
    let a = w.join(1, "r", None);
    let b = w.join(2, "r", None);
    let _c = w.join(3, "r", None);
    let out = w.frame(
        1,
        &format!(
            r#"{{"type":"signal","to":"{b}","payload":{{"kind":"offer","sdp":"x","key":"k","seq":1,"sig":"s"}}}}"#
        ),
    );
    assert_eq!(
        out,
        vec![Output::Send {
            conn: 2,
            frame: ServerToClient::Signal {
                from: a,
                name: Some(DisplayName::new("n1").unwrap()),
                role: None,
                payload: SignalPayload::Offer {
                    credentials: None,
                    sdp: "x".into(),
                    key: "k".into(),
                    seq: 1,
                    sig: "s".into()
                }
            }
        }]
    );
    // A viewer's role goes with what it sends (a tree room hands out no roster).
    let out = w.try_join(4, "r", json!({"name": "vic", "role": "viewer"}));
    let ServerToClient::Welcome { peer: v, .. } = &sent_to(&out, 4)[0] else {
        panic!("no welcome: {out:?}")
    };
    let out = w.frame(
        4,
        &format!(r#"{{"type":"signal","to":"{b}","payload":{{"kind":"refused","reason":"no"}}}}"#),
    );
    assert!(
        matches!(&sent_to(&out, 2)[..], [ServerToClient::Signal { from, role: Some(Role::Viewer), .. }] if from == v),
        "{out:?}"
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
            r#"{{"type":"signal","to":"{b}","from":"{c}","payload":{{"kind":"answer","sdp":"x","key":"k","seq":1,"sig":"s"}}}}"#
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
        &format!(r#"{{"type":"signal","to":"{b}","payload":{{"kind":"offer","sdp":"x","key":"k","seq":1,"sig":"s"}}}}"#),
    );
    assert_eq!(error_code(&sent_to(&out, 1)), Some(ErrorCode::UnknownPeer));
    assert!(sent_to(&out, 2).is_empty());
}

#[test]
fn password_is_set_by_the_first_joiner_and_checked_after() {
    let mut w = World::new(RegistryConfig::default());
    w.join(1, "r", Some("s3cret"));
    let out = w.try_join(2, "r", json!({"password": "guess"}));
    assert_eq!(error_code(&sent_to(&out, 2)), Some(ErrorCode::BadPassword));
    assert!(out.contains(&Output::Close { conn: 2 }));
    assert!(
        sent_to(&out, 1).is_empty(),
        "the room hears nothing of a refused join"
    );
    let out = w.try_join(3, "r", json!({}));
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
    let out = w.try_join(3, "r", json!({}));
    assert_eq!(error_code(&sent_to(&out, 3)), Some(ErrorCode::RoomFull));
    let out = w.try_join(4, "other", json!({}));
    assert_eq!(error_code(&sent_to(&out, 4)), Some(ErrorCode::ServerFull));
}

#[test]
fn bad_frames_get_their_codes_and_the_connection_stays() {
    let mut w = World::new(RegistryConfig::default());
    w.join(1, "r", None);
    let again = w.join_text(1, "r", json!({}));
    assert_eq!(
        error_code(&sent_to(&w.frame(1, "{\"type\":\"sig"), 1)),
        Some(ErrorCode::Malformed)
    );
    assert_eq!(
        error_code(&sent_to(&w.frame(1, r#"{"type":"teleport"}"#), 1)),
        Some(ErrorCode::UnknownType)
    );
    assert_eq!(
        error_code(&sent_to(&w.frame(1, &again), 1)),
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
    let out = w.try_join(1, "r", json!({"version": 99}));
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
fn a_dropped_connection_is_announced_as_a_leave_after_the_resume_grace() {
    let mut w = World::new(RegistryConfig::default());
    let a = w.join(1, "r", None);
    w.join(2, "r", None);
    w.reg.handle_input(Input::Closed {
        conn: 1,
        now: w.now,
    });
    assert!(
        sent_to(&drain(&mut w.reg), 2).is_empty(),
        "away, not gone yet"
    );
    let Output::Timeout(at) = w.reg.poll_output() else {
        panic!()
    };
    assert_eq!(at, w.now + Duration::from_secs(15));
    w.reg.handle_input(Input::Tick { now: at });
    assert_eq!(
        sent_to(&drain(&mut w.reg), 2),
        vec![ServerToClient::PeerLeft { peer: a }]
    );
    w.reg.handle_input(Input::Closed {
        conn: 2,
        now: w.now,
    });
    w.reg.handle_input(Input::Tick {
        now: at + Duration::from_secs(15),
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
    let out = w.try_join(11, "r", json!({}));
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
    Join(u8, String, bool),
    Resume(u8, String),
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
            r#"{{"type":"signal","to":"{to}","payload":{{"kind":"offer","sdp":"x","key":"k","seq":1,"sig":"s"}}}}"#
        )),
        Just(r#"{"type":"leave"}"#.to_string()),
        Just(r#"{"type":"ping","nonce":1}"#.to_string()),
        (0u64..4).prop_map(|e| format!(r#"{{"type":"claim_host","epoch":{e}}}"#)),
        any::<String>(),
    ];
    prop_oneof![
        (0u8..6).prop_map(Op::Open),
        (0u8..6, "[a-z]{1,2}", any::<bool>()).prop_map(|(c, r, p)| Op::Join(c, r, p)),
        (0u8..6, "[a-z]{1,2}").prop_map(|(c, r)| Op::Resume(c, r)),
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
        let mut reg = Registry::new(RegistryConfig::default(), now, SEED);
        let mut challenges: HashMap<ConnId, String> = HashMap::new();
        for op in ops {
            match op {
                Op::Open(c) => {
                    reg.handle_input(Input::Opened { conn: c.into(), now });
                    if let Some(ch) = hello_challenge(&drain(&mut reg), c.into()) {
                        challenges.insert(c.into(), ch);
                    }
                }
                Op::Resume(c, room) => {
                    // Resume with the last token the registry issued for this identity.
                    let challenge = challenges.get(&c.into()).cloned().unwrap_or_default();
                    let peer = identity((c % 3).into()).peer_id();
                    let token = reg
                        .rooms
                        .values()
                        .find_map(|r| r.members.get(&peer).map(|m| m.resume.clone()))
                        .unwrap_or_default();
                    let extra = json!({"resume": token});
                    let text = signed_join(&identity((c % 3).into()), &challenge, &room, extra);
                    reg.handle_input(Input::Frame { conn: c.into(), text, now });
                }
                Op::Join(c, room, password) => {
                    let challenge = challenges.get(&c.into()).cloned().unwrap_or_default();
                    let mut extra = if password { json!({"password": "p"}) } else { json!({}) };
                    if room.starts_with('h') {
                        extra["topology"] = json!({"kind": "host"});
                    }
                    // Identities repeat across connections (c % 3): takeovers and id clashes.
                    let text = signed_join(&identity((c % 3).into()), &challenge, &room, extra);
                    reg.handle_input(Input::Frame { conn: c.into(), text, now });
                }
                Op::Close(c) => reg.handle_input(Input::Closed { conn: c.into(), now }),
                Op::Frame(c, text) => reg.handle_input(Input::Frame { conn: c.into(), text, now }),
                Op::Refused(c, len) => reg.handle_input(Input::Refused { conn: c.into(), len, binary: len % 2 == 0, now }),
                Op::Wait(ms) => {
                    now += Duration::from_millis(ms.into());
                    reg.handle_input(Input::Tick { now });
                }
            }
            drain(&mut reg);
            let members: usize = reg
                .rooms
                .values()
                .map(|r| r.members.values().filter(|m| m.conn.is_some()).count())
                .sum();
            let joined = reg.conns.values().filter(|c| c.member.is_some()).count();
            for (name, room) in &reg.rooms {
                for (peer, m) in &room.members {
                    prop_assert_eq!(m.conn.is_none(), m.away_until.is_some());
                    if let Some(c) = m.conn {
                        let back = reg.conns.get(&c).and_then(|c| c.member.clone());
                        prop_assert_eq!(back, Some((name.clone(), peer.clone())));
                    }
                }
            }
            prop_assert!(reg.rooms.values().all(|r| !r.members.is_empty()));
            // A host room's seat is held by a connected member, or vacant.
            for room in reg.rooms.values() {
                if let Some((Some(holder), _)) = room.seat.as_ref().map(|s| s.holder()) {
                    prop_assert!(room.members.get(holder).is_some_and(|m| m.conn.is_some()));
                }
            }
            prop_assert_eq!(members, joined);
        }
    }
}

#[test]
fn every_connection_gets_its_own_challenge() {
    let mut w = World::new(RegistryConfig::default());
    w.open(1);
    w.open(2);
    assert_ne!(w.challenges[&1], w.challenges[&2]);
    assert_eq!(w.challenges[&1].len(), 43, "32 bytes of base64url");
}

#[test]
fn a_join_signed_over_another_challenge_or_by_another_key_is_refused() {
    let mut w = World::new(RegistryConfig::default());
    w.open(1);
    w.open(2);
    // Conn 2 replays a proof made for conn 1's challenge.
    let replay = signed_join(&identity(1), &w.challenges[&1], "r", json!({}));
    let out = w.frame(2, &replay);
    assert_eq!(error_code(&sent_to(&out, 2)), Some(ErrorCode::BadIdentity));
    assert!(out.contains(&Output::Close { conn: 2 }));
    // Conn 1 presents identity 9's key with a proof made by its own key.
    let mut frame: serde_json::Value =
        serde_json::from_str(&w.join_text(1, "r", json!({}))).unwrap();
    frame["key"] = json!(identity(9).public().encode());
    let out = w.frame(1, &frame.to_string());
    assert_eq!(error_code(&sent_to(&out, 1)), Some(ErrorCode::BadIdentity));
    // A proof for another room does not admit to this one.
    w.open(3);
    let mut frame: serde_json::Value =
        serde_json::from_str(&w.join_text(3, "other", json!({}))).unwrap();
    frame["room"] = json!("r");
    let out = w.frame(3, &frame.to_string());
    assert_eq!(error_code(&sent_to(&out, 3)), Some(ErrorCode::BadIdentity));
    assert_eq!(w.reg.stats().peers, 0);
}

fn welcome_resume(out: &[Output], conn: ConnId) -> String {
    match sent_to(out, conn).first() {
        Some(ServerToClient::Welcome { resume, .. }) => resume.clone(),
        other => panic!("no welcome: {other:?}"),
    }
}

#[test]
fn a_session_resumes_with_its_token_and_the_others_see_nothing() {
    let mut w = World::new(RegistryConfig::default());
    let out = w.try_join(1, "r", json!({}));
    let resume = welcome_resume(&out, 1);
    w.join(2, "r", None);
    w.reg.handle_input(Input::Closed {
        conn: 1,
        now: w.now,
    });
    drain(&mut w.reg);
    w.now += Duration::from_secs(5);
    // The same identity on a new connection (conn 1's key, signed over conn 11's challenge).
    w.open(11);
    let text = signed_join(
        &identity(1),
        &w.challenges[&11],
        "r",
        json!({"resume": resume}),
    );
    let out = w.frame(11, &text);
    let fresh = welcome_resume(&out, 11);
    assert_ne!(fresh, resume, "a resume token is used once");
    assert!(
        sent_to(&out, 2).is_empty(),
        "no leave, no join for the others"
    );
    // Well past the grace, nobody is told it left.
    w.reg.handle_input(Input::Tick {
        now: w.now + Duration::from_secs(60),
    });
    assert!(sent_to(&drain(&mut w.reg), 2).is_empty());
    assert_eq!(w.reg.stats().peers, 2);
    // Without the token, the same identity cannot join beside its live session.
    w.open(12);
    let text = signed_join(&identity(1), &w.challenges[&12], "r", json!({}));
    let out = w.frame(12, &text);
    assert_eq!(error_code(&sent_to(&out, 12)), Some(ErrorCode::PeerIdTaken));
    // With the current token, a second connection takes over from a half-open first.
    w.open(13);
    let text = signed_join(
        &identity(1),
        &w.challenges[&13],
        "r",
        json!({"resume": fresh}),
    );
    let out = w.frame(13, &text);
    welcome_resume(&out, 13);
    assert!(out.contains(&Output::Close { conn: 11 }));
}

#[test]
fn a_peer_whose_connection_dropped_takes_its_place_back_without_a_token() {
    // A lost welcome (or an app relaunched within the grace) has no valid token; the key
    // proof alone puts it back in its away session.
    let mut w = World::new(RegistryConfig::default());
    w.join(1, "r", None);
    w.join(2, "r", None);
    w.reg.handle_input(Input::Closed {
        conn: 1,
        now: w.now,
    });
    drain(&mut w.reg);
    w.open(11);
    let text = signed_join(
        &identity(1),
        &w.challenges[&11],
        "r",
        json!({"resume": "stale"}),
    );
    let out = w.frame(11, &text);
    welcome_resume(&out, 11);
    assert!(
        sent_to(&out, 2).is_empty(),
        "no leave, no join for the others"
    );
    assert_eq!(w.reg.stats().peers, 2);
}

#[test]
fn a_replaced_connection_gets_no_join_deadline() {
    let mut w = World::new(RegistryConfig::default());
    let out = w.try_join(1, "r", json!({}));
    let resume = welcome_resume(&out, 1);
    w.now += Duration::from_secs(30);
    w.open(11);
    let text = signed_join(
        &identity(1),
        &w.challenges[&11],
        "r",
        json!({"resume": resume}),
    );
    let out = w.frame(11, &text);
    assert!(out.contains(&Output::Close { conn: 1 }));
    // Conn 1 is closing; its old open time must not make the next deadline "now".
    let Output::Timeout(at) = w.reg.poll_output() else {
        panic!()
    };
    assert!(at > w.now, "{at:?} vs {:?}", w.now);
}

#[test]
fn a_restarted_server_admits_returning_peers_under_their_ids() {
    let mut w = World::new(RegistryConfig::default());
    let a = w.join(1, "r", None);
    // A new registry knows no resume tokens: the token is ignored, the peer joins afresh
    // under the same id its key derives.
    let mut w2 = World::new(RegistryConfig::default());
    let out = w2.try_join(1, "r", json!({"resume": "stale"}));
    match sent_to(&out, 1).first() {
        Some(ServerToClient::Welcome { peer, .. }) => assert_eq!(*peer, a),
        other => panic!("{other:?}"),
    }
}

fn token_world() -> World {
    let config = RegistryConfig {
        token_secret: Some(b"room-secret".to_vec()),
        ..RegistryConfig::default()
    };
    let mut w = World::new(config);
    w.reg.set_wall_clock(w.now, 1_000_000);
    w
}

fn token(room: &str, exp: u64, grants: Grants, secret: &[u8]) -> String {
    Claims {
        room: RoomName::new(room).unwrap(),
        name: DisplayName::new("Ada").unwrap(),
        exp,
        grants,
    }
    .mint(secret)
}

#[test]
fn tokens_are_refused_each_with_its_own_code() {
    let mut w = token_world();
    let cases = [
        (json!({}), ErrorCode::TokenRequired),
        (json!({"token": "v1.garbage"}), ErrorCode::TokenInvalid),
        (
            json!({"token": token("r", 2_000_000, Grants::PARTICIPANT, b"guess")}),
            ErrorCode::TokenForged,
        ),
        (
            json!({"token": token("r", 999_000, Grants::PARTICIPANT, b"room-secret")}),
            ErrorCode::TokenExpired,
        ),
        (
            json!({"token": token("other", 2_000_000, Grants::PARTICIPANT, b"room-secret")}),
            ErrorCode::TokenWrongRoom,
        ),
    ];
    for (conn, (extra, code)) in (1..).zip(cases) {
        let out = w.try_join(conn, "r", extra);
        assert_eq!(error_code(&sent_to(&out, conn)), Some(code));
        assert!(out.contains(&Output::Close { conn }));
    }
    assert_eq!(w.reg.stats().peers, 0);
}

#[test]
fn a_valid_token_admits_under_its_name_with_its_grants() {
    let mut w = token_world();
    let t = token("r", 2_000_000, Grants::PARTICIPANT, b"room-secret");
    w.try_join(1, "r", json!({"token": t}));
    let viewer = token("r", 2_000_000, Grants::VIEWER, b"room-secret");
    let out = w.try_join(2, "r", json!({"token": viewer, "name": "Mallory"}));
    match sent_to(&out, 2).first() {
        Some(ServerToClient::Welcome { grants, peers, .. }) => {
            assert_eq!(*grants, Grants::VIEWER);
            assert!(peers[0].publish);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sent_to(&out, 1),
        vec![ServerToClient::PeerJoined {
            peer: identity(2).peer_id(),
            name: DisplayName::new("Ada").unwrap(),
            publish: false,
            role: Role::Both,
        }]
    );
}

/// A registry handing out credentials for a TURN server (secret `s3cret`, 600 s), its clock
/// at Unix second 1,000.
fn turn_world() -> World {
    let config = RegistryConfig {
        turn: Some(TurnConfig {
            urls: vec!["turn:127.0.0.1:3478".into()],
            secret: b"s3cret".to_vec(),
            ttl: Duration::from_secs(600),
        }),
        ..RegistryConfig::default()
    };
    let mut w = World::new(config);
    w.reg.set_wall_clock(w.now, 1_000);
    w
}

#[test]
fn turn_credentials_follow_the_turn_rest_scheme() {
    let mut w = turn_world();
    let out = w.try_join(1, "r", json!({}));
    let Some(ServerToClient::Welcome { ice_servers, .. }) = sent_to(&out, 1).first().cloned()
    else {
        panic!()
    };
    let peer = identity(1).peer_id();
    assert_eq!(ice_servers.len(), 1);
    assert_eq!(ice_servers[0].username, format!("1600:{peer}"));
    // Fixed vector: base64(HMAC-SHA1("s3cret", "1600:peer")) computed independently.
    let turn = TurnConfig {
        urls: vec![],
        secret: b"s3cret".to_vec(),
        ttl: Duration::ZERO,
    };
    assert_eq!(
        turn.credentials(&PeerId::new("peer").unwrap(), 1600)
            .credential,
        TURN_VECTOR
    );
}
const TURN_VECTOR: &str = "/5gSZhLMHbgUyJ4iI0P/ShJ+XDs=";

#[test]
fn turn_credentials_are_renewed_at_half_their_lifetime() {
    let mut w = turn_world();
    w.join(1, "r", None);
    let Output::Timeout(at) = w.reg.poll_output() else {
        panic!()
    };
    assert_eq!(at, w.now + Duration::from_secs(300));
    w.reg.handle_input(Input::Tick { now: at });
    let renewed = sent_to(&drain(&mut w.reg), 1);
    let peer = identity(1).peer_id();
    match renewed.as_slice() {
        [ServerToClient::IceServers { ice_servers }] => {
            // Issued 300 s later, valid for 600 s from then.
            assert_eq!(ice_servers[0].username, format!("1900:{peer}"));
        }
        other => panic!("{other:?}"),
    }
}

fn plans(frames: &[ServerToClient]) -> Vec<plenum_proto::overlay::CellPlan> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerToClient::Cell { plan } => Some(plan.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_cellular_room_hands_out_plans_instead_of_the_roster() {
    let mut w = World::new(RegistryConfig::default());
    let cells = json!({"topology": {"kind": "cells", "cell_size": 3}});
    let out = w.try_join(1, "big", cells.clone());
    let to_a = sent_to(&out, 1);
    assert!(matches!(
        &to_a[0],
        ServerToClient::Welcome { peers, topology: plenum_proto::overlay::TopologySpec::Cells { cell_size: Some(3), .. }, .. } if peers.is_empty()
    ));
    assert_eq!(plans(&to_a).len(), 1);
    // A later joiner asking for a mesh gets the room's cells; the first peer hears of it
    // through a new plan, not a peer_joined.
    let out = w.try_join(2, "big", json!({}));
    let to_b = sent_to(&out, 2);
    assert!(matches!(
        &to_b[0],
        ServerToClient::Welcome {
            topology: plenum_proto::overlay::TopologySpec::Cells { .. },
            ..
        }
    ));
    let plan_b = plans(&to_b).pop().expect("a plan for the newcomer");
    assert_eq!(plan_b.members.len(), 2);
    let to_a = sent_to(&out, 1);
    assert!(
        !to_a
            .iter()
            .any(|f| matches!(f, ServerToClient::PeerJoined { .. }))
    );
    assert_eq!(
        plans(&to_a)
            .pop()
            .expect("a new plan for the first")
            .members
            .len(),
        2
    );
    // Outgrowing a cell of three splits the room: everyone gets a plan of the new epoch.
    w.join(3, "big", None);
    let out = w.try_join(4, "big", json!({}));
    for conn in 1..=4 {
        let plan = plans(&sent_to(&out, conn))
            .pop()
            .expect("a plan for everyone");
        assert_eq!(plan.radices, vec![2]);
        assert!(plan.members.len() <= 3);
        assert!(!plan.bridges.is_empty() || plan.members.len() > 1);
    }
    // A leave re-plans the leaver's cell; nobody gets a peer_left.
    let out = w.frame(4, r#"{"type":"leave"}"#);
    assert!(!(1..=3).any(|c| {
        sent_to(&out, c)
            .iter()
            .any(|f| matches!(f, ServerToClient::PeerLeft { .. }))
    }));
}

#[test]
fn a_room_with_impossible_cells_is_refused() {
    let mut w = World::new(RegistryConfig::default());
    let out = w.try_join(
        1,
        "bad",
        json!({"topology": {"kind": "cells", "cell_size": 1}}),
    );
    assert_eq!(error_code(&sent_to(&out, 1)), Some(ErrorCode::BadTopology));
    let out = w.try_join(2, "bad2", json!({"topology": {"kind": "ring"}}));
    assert_eq!(error_code(&sent_to(&out, 2)), Some(ErrorCode::Malformed));
}

#[test]
fn a_resumed_session_gets_its_plan_again() {
    let mut w = World::new(RegistryConfig::default());
    let cells = json!({"topology": {"kind": "cells"}});
    let out = w.try_join(1, "r", cells);
    let resume = match sent_to(&out, 1).first() {
        Some(ServerToClient::Welcome { resume, .. }) => resume.clone(),
        other => panic!("no welcome: {other:?}"),
    };
    w.join(2, "r", None);
    w.reg.handle_input(Input::Closed {
        conn: 1,
        now: w.now,
    });
    drain(&mut w.reg);
    w.open(3);
    let text = signed_join(
        &identity(1),
        &w.challenges[&3],
        "r",
        json!({"resume": resume}),
    );
    let out = w.frame(3, &text);
    let plan = plans(&sent_to(&out, 3)).pop().expect("the plan again");
    assert_eq!(plan.members.len(), 2);
}

fn stages(frames: &[ServerToClient]) -> Vec<Vec<Option<PeerId>>> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerToClient::Stage { seats, .. } => Some(
                seats
                    .iter()
                    .map(|s| s.as_ref().map(|s| s.peer.clone()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn a_cellular_rooms_stage_seats_who_speaks_and_tells_everyone() {
    let mut w = World::new(RegistryConfig::default());
    let cells = json!({"topology": {"kind": "cells", "cell_size": 3}});
    w.try_join(1, "big", cells);
    for conn in 2..=6 {
        w.join(conn, "big", None);
    }
    let id = |conn: ConnId| identity(conn).peer_id();
    let out = w.frame(3, r#"{"type":"floor","speaking":true}"#);
    for conn in 1..=6 {
        assert_eq!(
            stages(&sent_to(&out, conn)),
            vec![vec![Some(id(3)), None, None, None]],
            "peer {conn} told the stage"
        );
    }
    match sent_to(&out, 1).iter().find_map(|f| match f {
        ServerToClient::Stage { seats, .. } => seats[0].clone(),
        _ => None,
    }) {
        Some(seat) => {
            assert_eq!(seat.name.as_str(), "n3");
            assert!(seat.cell < 2, "two cells of three: {}", seat.cell);
        }
        None => panic!("no seat"),
    }
    // Saying it again sends nothing; a hand takes the next seat.
    let out = w.frame(3, r#"{"type":"floor","speaking":true}"#);
    assert!(stages(&sent_to(&out, 1)).is_empty());
    let out = w.frame(5, r#"{"type":"floor","speaking":false,"hand":true}"#);
    assert_eq!(
        stages(&sent_to(&out, 2)),
        vec![vec![Some(id(3)), Some(id(5)), None, None]]
    );
    // A newcomer hears the stage after its plan; a speaker that leaves frees its seat.
    let out = w.try_join(7, "big", json!({}));
    assert_eq!(
        stages(&sent_to(&out, 7)),
        vec![vec![Some(id(3)), Some(id(5)), None, None]]
    );
    let out = w.frame(3, r#"{"type":"leave"}"#);
    assert_eq!(
        stages(&sent_to(&out, 7)),
        vec![vec![None, Some(id(5)), None, None]]
    );
}

fn presenters(frames: &[ServerToClient]) -> Vec<Option<PeerId>> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerToClient::Stage { presenter, .. } => {
                Some(presenter.as_ref().map(|s| s.peer.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_cellular_rooms_presenter_is_told_to_everyone_with_a_seat_for_its_voice() {
    let mut w = World::new(RegistryConfig::default());
    let cells = json!({"topology": {"kind": "cells", "cell_size": 3}});
    w.try_join(1, "big", cells);
    for conn in 2..=6 {
        w.join(conn, "big", None);
    }
    let id = |conn: ConnId| identity(conn).peer_id();
    let out = w.frame(4, r#"{"type":"floor","speaking":false,"presenting":true}"#);
    for conn in 1..=6 {
        let told = sent_to(&out, conn);
        assert_eq!(presenters(&told), vec![Some(id(4))], "peer {conn}");
        // Its voice has a seat, silent or not.
        assert_eq!(stages(&told), vec![vec![Some(id(4)), None, None, None]]);
    }
    // A second presenter waits; its voice takes a seat meanwhile.
    let out = w.frame(2, r#"{"type":"floor","speaking":false,"presenting":true}"#);
    let told = sent_to(&out, 1);
    assert_eq!(presenters(&told), vec![Some(id(4))]);
    assert_eq!(
        stages(&told),
        vec![vec![Some(id(4)), Some(id(2)), None, None]]
    );
    // A newcomer hears who presents.
    let out = w.try_join(7, "big", json!({}));
    assert_eq!(presenters(&sent_to(&out, 7)), vec![Some(id(4))]);
    // The presenter leaves: the one waiting presents.
    let out = w.frame(4, r#"{"type":"leave"}"#);
    assert_eq!(presenters(&sent_to(&out, 7)), vec![Some(id(2))]);
    let out = w.frame(2, r#"{"type":"floor","speaking":false}"#);
    assert_eq!(presenters(&sent_to(&out, 1)), vec![None]);
    assert_eq!(stages(&sent_to(&out, 1)), vec![vec![None; 4]]);
}

#[test]
fn a_cellular_room_with_a_mesh_only_member_stays_one_cell_without_a_stage_until_it_goes() {
    let mut w = World::new(RegistryConfig::default());
    let cells = json!({"topology": {"kind": "cells", "cell_size": 3}});
    w.try_join(1, "big", cells);
    w.join(2, "big", None);
    let id = |conn: ConnId| identity(conn).peer_id();
    w.frame(1, r#"{"type":"floor","speaking":true}"#);
    // A browser comes in: the seat it could not hear is emptied for everyone.
    let out = w.try_join(3, "big", json!({"name": "guest", "mesh_only": true}));
    assert!(matches!(
        sent_to(&out, 3).first(),
        Some(ServerToClient::Welcome { .. })
    ));
    assert_eq!(stages(&sent_to(&out, 1)), vec![vec![None; 4]]);
    // Past the cell size of three the room stays one cell: everyone's plan names all.
    for conn in 4..=6 {
        let out = w.try_join(conn, "big", json!({}));
        let plan = plans(&sent_to(&out, 3))
            .pop()
            .expect("the guest's new plan");
        assert_eq!(plan.cell_count(), 1);
        assert_eq!(plan.members.len(), conn as usize);
    }
    let out = w.frame(4, r#"{"type":"floor","speaking":true}"#);
    assert!(stages(&sent_to(&out, 1)).is_empty(), "no seat while held");
    // The browser goes: the six split at once, and the speakers are seated again.
    let out = w.frame(3, r#"{"type":"leave"}"#);
    let plan = plans(&sent_to(&out, 1)).pop().expect("a new plan");
    assert!(plan.cell_count() > 1, "{plan:?}");
    assert_eq!(
        stages(&sent_to(&out, 2)),
        vec![vec![Some(id(1)), Some(id(4)), None, None]]
    );
    // Now a browser is refused, plainly.
    let out = w.try_join(7, "big", json!({"name": "late guest", "mesh_only": true}));
    assert_eq!(error_code(&sent_to(&out, 7)), Some(ErrorCode::BadTopology));
}

#[test]
fn a_browser_is_refused_plainly_in_a_tree_or_relay_room() {
    let mut w = World::new(RegistryConfig::default());
    let tree = json!({"topology": {"kind": "tree", "max_degree": 3, "root_degree": 8}});
    w.try_join(1, "keynote", tree);
    w.try_join(2, "mesh-net", json!({"topology": {"kind": "relay"}}));
    for (conn, room) in [(3, "keynote"), (4, "mesh-net")] {
        let out = w.try_join(conn, room, json!({"name": "guest", "mesh_only": true}));
        let to_guest = sent_to(&out, conn);
        assert_eq!(
            error_code(&to_guest),
            Some(ErrorCode::BadTopology),
            "{room}"
        );
        assert!(
            matches!(&to_guest[0], ServerToClient::Error { message, .. } if message.contains("Plenum app")),
            "{to_guest:?}"
        );
    }
    // The app's peers come in as ever.
    let out = w.try_join(5, "keynote", json!({"name": "vic"}));
    assert!(matches!(
        sent_to(&out, 5).first(),
        Some(ServerToClient::Welcome { .. })
    ));
}

#[test]
fn a_cellular_room_held_by_a_browser_holds_what_a_mesh_room_does() {
    let mut w = World::new(RegistryConfig {
        max_peers_per_room: 3,
        max_peers_per_cellular_room: 10,
        ..RegistryConfig::default()
    });
    w.try_join(1, "big", json!({"topology": {"kind": "cells"}}));
    w.try_join(2, "big", json!({"name": "guest", "mesh_only": true}));
    w.join(3, "big", None);
    let out = w.try_join(4, "big", json!({}));
    let refused = sent_to(&out, 4);
    assert_eq!(error_code(&refused), Some(ErrorCode::RoomFull));
    assert!(
        matches!(&refused[0], ServerToClient::Error { message, .. } if message.contains("browser guest")),
        "{refused:?}"
    );
    // The browser gone, the room holds what a cells room does.
    w.frame(2, r#"{"type":"leave"}"#);
    w.join(4, "big", None);
    w.join(5, "big", None);
}

#[test]
fn the_floor_in_a_room_without_a_stage_is_refused() {
    let mut w = World::new(RegistryConfig::default());
    w.join(1, "mesh", None);
    let out = w.frame(1, r#"{"type":"floor","speaking":true}"#);
    assert_eq!(error_code(&sent_to(&out, 1)), Some(ErrorCode::BadTopology));
}

#[test]
fn a_cellular_room_holds_more_than_a_mesh_room() {
    let mut w = World::new(RegistryConfig {
        max_peers_per_room: 2,
        max_peers_per_cellular_room: 3,
        ..RegistryConfig::default()
    });
    let cells = json!({"topology": {"kind": "cells"}});
    w.try_join(1, "big", cells);
    w.join(2, "big", None);
    w.join(3, "big", None);
    let out = w.try_join(4, "big", json!({}));
    assert_eq!(error_code(&sent_to(&out, 4)), Some(ErrorCode::RoomFull));
    w.join(5, "small", None);
    w.join(6, "small", None);
    let out = w.try_join(7, "small", json!({}));
    assert_eq!(error_code(&sent_to(&out, 7)), Some(ErrorCode::RoomFull));
}

fn tree_join(w: &mut World, conn: ConnId, secret: Option<&str>) -> Vec<Output> {
    let mut extra =
        json!({"name": format!("n{conn}"), "topology": {"kind": "tree", "max_degree": 2}});
    if let Some(s) = secret {
        extra["root"] = json!(s);
    }
    w.try_join(conn, "t", extra)
}

fn to_root(w: &mut World, conn: ConnId, requester: &PeerId) -> Vec<Output> {
    let frame = ClientToServer::SignalRoot {
        payload: SignalPayload::Tree {
            msg: plenum_proto::overlay::TreeSignal::Join {
                requester: requester.clone(),
                subtree: 1,
                lost: None,
            },
        },
    };
    w.frame(conn, &frame.encode())
}

fn relayed_from(frames: &[ServerToClient]) -> Vec<PeerId> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerToClient::Signal { from, .. } => Some(from.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_tree_room_crowns_the_first_claimant_and_routes_requests_to_it() {
    let mut w = World::new(RegistryConfig::default());
    // A request before any root is held for the first.
    let early = tree_join(&mut w, 1, None);
    let Some(ServerToClient::Welcome {
        peers,
        topology,
        peer: early_id,
        ..
    }) = sent_to(&early, 1).first().cloned()
    else {
        panic!("{early:?}")
    };
    assert_eq!(topology, TopologySpec::tree(2));
    assert!(peers.is_empty());
    assert!(sent_to(&to_root(&mut w, 1, &early_id), 1).is_empty());

    let out = tree_join(&mut w, 2, Some("s3cret"));
    let to_root_peer = sent_to(&out, 2);
    assert!(matches!(to_root_peer[0], ServerToClient::Welcome { .. }));
    assert_eq!(to_root_peer[1], ServerToClient::Root {});
    assert_eq!(
        relayed_from(&to_root_peer),
        vec![early_id.clone()],
        "held request handed over"
    );
    assert!(
        sent_to(&out, 1).is_empty(),
        "nobody hears of a join in a tree room"
    );

    let out = tree_join(&mut w, 3, None);
    let Some(ServerToClient::Welcome { peer: c, .. }) = sent_to(&out, 3).first().cloned() else {
        panic!()
    };
    assert!(sent_to(&out, 1).is_empty() && sent_to(&out, 2).is_empty());
    let out = to_root(&mut w, 3, &c);
    assert_eq!(relayed_from(&sent_to(&out, 2)), vec![c.clone()]);
    // The frames per join do not depend on the room's size: one request, one relay.
    assert_eq!(out.len(), 1);
}

#[test]
fn a_wrong_root_secret_is_refused_and_a_right_one_stands_by_until_the_root_goes() {
    let mut w = World::new(RegistryConfig::default());
    tree_join(&mut w, 1, Some("s3cret"));
    let out = tree_join(&mut w, 2, Some("guess"));
    assert_eq!(
        error_code(&sent_to(&out, 2)),
        Some(ErrorCode::BadRootSecret)
    );
    assert!(out.contains(&Output::Close { conn: 2 }));
    let standby = tree_join(&mut w, 3, Some("s3cret"));
    assert!(
        !sent_to(&standby, 3).contains(&ServerToClient::Root {}),
        "a root is there: the second claimant stands by"
    );
    let out = tree_join(&mut w, 4, None);
    let Some(ServerToClient::Welcome { peer: d, .. }) = sent_to(&out, 4).first().cloned() else {
        panic!()
    };
    // The root leaves: the standby is crowned, and requests go to it from then on.
    let out = w.frame(1, &ClientToServer::Leave {}.encode());
    assert_eq!(sent_to(&out, 3), vec![ServerToClient::Root {}]);
    let out = to_root(&mut w, 4, &d);
    assert_eq!(relayed_from(&sent_to(&out, 3)), vec![d]);
    // A root claim in a room that is not a tree is refused too.
    let out = w.try_join(5, "mesh", json!({"root": "s3cret"}));
    assert_eq!(error_code(&sent_to(&out, 5)), Some(ErrorCode::BadTopology));
    let m = w.join(6, "mesh", None);
    let out = to_root(&mut w, 6, &m);
    assert_eq!(error_code(&sent_to(&out, 6)), Some(ErrorCode::BadTopology));
}

#[test]
fn requests_wait_while_the_root_is_away_and_reach_it_when_it_resumes() {
    let mut w = World::new(RegistryConfig::default());
    let out = tree_join(&mut w, 1, Some("s"));
    let resume = welcome_resume(&out, 1);
    let out = tree_join(&mut w, 2, None);
    let Some(ServerToClient::Welcome { peer: b, .. }) = sent_to(&out, 2).first().cloned() else {
        panic!()
    };
    w.reg.handle_input(Input::Closed {
        conn: 1,
        now: w.now,
    });
    drain(&mut w.reg);
    assert!(
        to_root(&mut w, 2, &b).is_empty(),
        "held while the root is away"
    );
    w.open(7);
    let text = signed_join(
        &identity(1),
        &w.challenges[&7],
        "t",
        json!({"resume": resume}),
    );
    let back = sent_to(&w.frame(7, &text), 7);
    assert!(back.contains(&ServerToClient::Root {}));
    assert_eq!(relayed_from(&back), vec![b]);
}

#[test]
fn a_relay_newcomer_gets_the_peers_beside_it_and_nobody_hears_of_it() {
    let mut w = World::new(RegistryConfig::default());
    let relay = json!({"topology": {"kind": "relay", "max_neighbours": 4}});
    let mut ids = Vec::new();
    for conn in 1..=40 {
        let out = w.try_join(conn, "relay", relay.clone());
        let Some(ServerToClient::Welcome {
            peer,
            peers,
            topology,
            ..
        }) = sent_to(&out, conn).first().cloned()
        else {
            panic!("{out:?}")
        };
        assert_eq!(topology, TopologySpec::relay(4));
        assert!(peers.len() <= 16, "a sample, not the room: {}", peers.len());
        assert_eq!(peers.len(), ids.len().min(peers.len()));
        if conn > 1 {
            assert!(!peers.is_empty(), "a newcomer gets peers to link");
            assert!(
                (1..conn).all(|c| sent_to(&out, c).is_empty()),
                "nobody hears of a join in a relay room"
            );
        }
        ids.push(peer);
    }
    // The last one's sample holds the peers beside it in id order.
    let out = w.try_join(41, "relay", relay);
    let Some(ServerToClient::Welcome { peer, peers, .. }) = sent_to(&out, 41).first().cloned()
    else {
        panic!()
    };
    ids.sort();
    let at = ids.partition_point(|p| *p < peer);
    let sampled: Vec<&PeerId> = peers.iter().map(|p| &p.peer).collect();
    for beside in ids.iter().skip(at.saturating_sub(2)).take(4) {
        assert!(sampled.contains(&beside), "{beside} is beside {peer}");
    }
    // A bad option is refused.
    let out = w.try_join(
        42,
        "relay2",
        json!({"topology": {"kind": "relay", "max_neighbours": 0}}),
    );
    assert_eq!(error_code(&sent_to(&out, 42)), Some(ErrorCode::BadTopology));
}

fn seat(frames: &[ServerToClient]) -> Vec<(Option<PeerId>, u64)> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerToClient::Host { peer, epoch } => Some((peer.clone(), *epoch)),
            _ => None,
        })
        .collect()
}

fn claim(w: &mut World, conn: ConnId, epoch: u64) -> Vec<Output> {
    w.frame(conn, &ClientToServer::ClaimHost { epoch }.encode())
}

#[test]
fn a_host_room_seats_its_first_peer_and_grants_one_claim_per_vacancy() {
    let mut w = World::new(RegistryConfig::default());
    let host = json!({"name": "n1", "topology": {"kind": "host"}});
    let out = w.try_join(1, "h", host);
    let a = match sent_to(&out, 1).first() {
        Some(ServerToClient::Welcome { peer, .. }) => peer.clone(),
        other => panic!("no welcome: {other:?}"),
    };
    assert_eq!(seat(&sent_to(&out, 1)), vec![(Some(a.clone()), 1)]);
    // Later joiners learn the host, and the roster (a host room is not sparse).
    let out = w.try_join(2, "h", json!({"name": "n2"}));
    assert_eq!(seat(&sent_to(&out, 2)), vec![(Some(a.clone()), 1)]);
    let b = w.join(3, "h", None);
    let c = w.join(4, "h", None);
    // The seat is held: a claim loses and hears who holds it.
    let out = claim(&mut w, 2, 1);
    assert_eq!(seat(&sent_to(&out, 2)), vec![(Some(a.clone()), 1)]);
    // The host's connection drops: everyone hears at once that the seat is vacant (the
    // leave itself waits for the resume grace).
    w.reg.handle_input(Input::Closed {
        conn: 1,
        now: w.now,
    });
    let out = drain(&mut w.reg);
    for conn in [2, 3, 4] {
        assert_eq!(seat(&sent_to(&out, conn)), vec![(None, 1)], "conn {conn}");
    }
    // Two claims for the same vacancy: the first wins, everyone hears it once.
    let out = claim(&mut w, 3, 1);
    for conn in [2, 3, 4] {
        assert_eq!(seat(&sent_to(&out, conn)), vec![(Some(b.clone()), 2)]);
    }
    let out = claim(&mut w, 4, 1);
    assert_eq!(seat(&sent_to(&out, 4)), vec![(Some(b.clone()), 2)]);
    assert!(seat(&sent_to(&out, 3)).is_empty());
    // The new host leaves cleanly: vacant at epoch 2; a stale claim (epoch 1) loses.
    let out = w.frame(3, &ClientToServer::Leave {}.encode());
    assert_eq!(seat(&sent_to(&out, 4)), vec![(None, 2)]);
    let out = claim(&mut w, 4, 1);
    assert_eq!(seat(&sent_to(&out, 4)), vec![(None, 2)]);
    let out = claim(&mut w, 4, 2);
    assert_eq!(seat(&sent_to(&out, 4)), vec![(Some(c), 3)]);
    // A claim in a room without a seat is refused with its reason.
    w.join(9, "mesh", None);
    let out = claim(&mut w, 9, 0);
    assert_eq!(error_code(&sent_to(&out, 9)), Some(ErrorCode::BadTopology));
}
