//! What each command does, on real rooms: a real signaling server on 127.0.0.1 and real
//! webrtc-rs links between app instances (the same `App` the Tauri commands call).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use plenum::{Invite, Room, RoomConfig, Target};
use plenum_app::App;
use plenum_app::args::Args;
use plenum_app::types::{
    ErrorKind, HostRequest, JoinRequest, PeerState, PeerView, Role, RoomShape, StrokeStart, UiEvent,
};
use plenum_collab::{BoardChange, Point, Tool};
use plenum_signal::{Server, ServerConfig};
use tokio::sync::mpsc;

const LONG: Duration = Duration::from_secs(20);

struct Peer {
    app: App,
    events: mpsc::Receiver<UiEvent>,
    dir: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn peer(tag: &str, args: Args) -> Peer {
    let dir = std::env::temp_dir().join(format!("plenum-cmd-{}-{tag}", std::process::id()));
    let (tx, events) = mpsc::channel(1024);
    Peer {
        app: App::new(args, dir.clone(), tx),
        events,
        dir,
    }
}

impl Peer {
    /// The next event matching `pred` (others are skipped).
    async fn expect(&mut self, what: &str, mut pred: impl FnMut(&UiEvent) -> bool) -> UiEvent {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Some(e) if pred(&e) => return e,
                    Some(_) => {}
                    None => panic!("event stream ended waiting for {what}"),
                }
            }
        };
        tokio::time::timeout(LONG, wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    async fn connected_to(&mut self, id: &str) {
        self.expect("a connected peer", |e| {
            matches!(e, UiEvent::Roster { peers } if peers.iter().any(|p| p.id == id && p.state == PeerState::Connected))
        })
        .await;
    }
}

fn req(server: &str, room: &str, name: &str) -> JoinRequest {
    JoinRequest {
        server: server.into(),
        room: room.into(),
        name: name.into(),
        password: None,
        shape: RoomShape::Mesh,
        role: Role::Both,
        access_code: None,
        viewer_code: None,
    }
}

fn pen(points: Vec<Point>) -> StrokeStart {
    StrokeStart {
        tool: Tool::Pen,
        colour: "#2563EB".into(),
        width: 4.0,
        points,
    }
}

async fn server() -> Server {
    let addr = "127.0.0.1:0".parse().expect("an address");
    Server::bind(addr, ServerConfig::default())
        .await
        .expect("a server on loopback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_cursor_and_board_travel_between_apps_and_reach_a_late_joiner() {
    let server = server().await;
    let mut a = peer("a", Args::default());
    let mut b = peer("b", Args::default());
    let ja = a.app.join(req(&server.url(), "r", "Ada")).await.unwrap();
    let jb = b.app.join(req(&server.url(), "r", "Bob")).await.unwrap();
    assert_eq!(ja.me.state, PeerState::Me);
    assert!(!ja.hosting);
    assert_eq!(Invite::parse(&ja.invite).unwrap().server, server.url());
    a.connected_to(&jb.me.id).await;
    b.connected_to(&ja.me.id).await;

    // Chat.
    let line = a.app.send_chat("  hello Bob  ".into()).await.unwrap();
    assert!(line.own && line.text == "hello Bob");
    let got = b
        .expect("chat", |e| matches!(e, UiEvent::Chat { .. }))
        .await;
    let UiEvent::Chat { line } = got else {
        unreachable!()
    };
    assert_eq!(
        (
            line.name.as_str(),
            line.text.as_str(),
            line.own,
            line.from.as_str()
        ),
        ("Ada", "hello Bob", false, ja.me.id.as_str())
    );

    // Cursor.
    a.app.send_cursor(Some((0.25, 0.5))).await.unwrap();
    b.expect("cursor", |e| matches!(e, UiEvent::Cursor { peer, x, y } if *peer == ja.me.id && *x == 0.25 && *y == 0.5)).await;
    a.app.send_cursor(None).await.unwrap();
    b.expect(
        "cursor gone",
        |e| matches!(e, UiEvent::CursorGone { peer } if *peer == ja.me.id),
    )
    .await;

    // Board: begin, points, end; concurrent strokes; same order on both.
    let started = a.app.board_begin(pen(vec![Point(0.1, 0.1)])).await.unwrap();
    assert!(
        matches!(&started.change, BoardChange::Stroke { stroke } if stroke.colour.as_str() == "#2563eb")
    );
    let change = a
        .app
        .board_points(started.seq, vec![Point(0.2, 0.2), Point(0.3, 0.25)])
        .await
        .unwrap();
    assert!(matches!(change, BoardChange::Points { from: 1, ref points, .. } if points.len() == 2));
    a.app.board_end(started.seq).await.unwrap();
    let sb = b.app.board_begin(pen(vec![Point(0.9, 0.9)])).await.unwrap();
    b.app.board_end(sb.seq).await.unwrap();
    let converged = async {
        loop {
            let (sa, sb) = (
                a.app.board_snapshot().await.unwrap(),
                b.app.board_snapshot().await.unwrap(),
            );
            if sa.len() == 2 && sa == sb && sa.iter().all(|s| s.done) {
                return sa;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let board = tokio::time::timeout(LONG, converged)
        .await
        .expect("boards converge");
    assert_eq!(board.iter().map(|s| s.points.len()).sum::<usize>(), 4);

    // A late joiner gets the board.
    let c = peer("c", Args::default());
    c.app.join(req(&server.url(), "r", "Cy")).await.unwrap();
    let late = async {
        loop {
            if c.app.board_snapshot().await.unwrap() == board {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LONG, late)
        .await
        .expect("the late joiner receives the board");

    // Undo removes our stroke everywhere; clear empties every board.
    assert!(a.app.board_undo().await.unwrap().is_some());
    let undo_id = started.change.clone();
    b.expect("undo", |e| {
        matches!(e, UiEvent::Board { changes } if changes.iter().any(|c| matches!((c, &undo_id),
            (BoardChange::Removed { ids }, BoardChange::Stroke { stroke }) if ids.contains(&stroke.id))))
    })
    .await;
    assert_eq!(b.app.board_snapshot().await.unwrap().len(), 1);
    assert!(
        a.app.board_undo().await.unwrap().is_none(),
        "only our own strokes"
    );
    b.app.board_clear().await.unwrap();
    let cleared = async {
        while !a.app.board_snapshot().await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LONG, cleared)
        .await
        .expect("the clear reaches Ada");

    // Leaving: the others see the peer go.
    a.app.leave().await;
    a.expect("closed", |e| matches!(e, UiEvent::Closed { reason: None }))
        .await;
    b.expect(
        "Ada gone",
        |e| matches!(e, UiEvent::Roster { peers } if !peers.iter().any(|p| p.id == ja.me.id)),
    )
    .await;
    assert_eq!(
        a.app.send_chat("x".into()).await.unwrap_err().kind,
        ErrorKind::NotInRoom
    );

    // The join was remembered.
    let prefs = b.app.prefs();
    assert_eq!(prefs.name, "Bob");
    assert_eq!(prefs.recent[0].room, "r");
}

fn err<T: std::fmt::Debug>(result: Result<T, plenum_app::types::CommandError>) -> ErrorKind {
    result.expect_err("an error").kind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_refuse_bad_input_with_typed_errors() {
    let server = server().await;
    let a = peer("bad", Args::default());
    assert_eq!(
        err(a.app.join(req(&server.url(), "r", "  ")).await),
        ErrorKind::BadInput
    );
    assert_eq!(
        err(a.app.join(req(&server.url(), "", "Ada")).await),
        ErrorKind::BadInput
    );
    assert_eq!(
        err(a.app.join(req("http://nope", "r", "Ada")).await),
        ErrorKind::BadInput
    );
    assert_eq!(
        err(a.app.join(req("ws://127.0.0.1:1", "r", "Ada")).await),
        ErrorKind::Unreachable
    );
    assert_eq!(
        err(a.app.send_chat("hi".into()).await),
        ErrorKind::NotInRoom
    );
    assert_eq!(
        err(a.app.board_begin(pen(vec![])).await),
        ErrorKind::NotInRoom
    );
    assert_eq!(err(a.app.raise_hand(true).await), ErrorKind::NotInRoom);
    assert_eq!(
        err(a.app.read_invite("https://example.com")),
        ErrorKind::BadInput
    );
    // An invite whose role is not one of ours says so.
    let bad_role = "plenum://join?server=ws%3A%2F%2Fh%3A1&room=r&role=king";
    let refused = a.app.read_invite(bad_role).expect_err("a bad role");
    assert_eq!(refused.kind, ErrorKind::BadInput);
    assert!(refused.message.contains("king"), "{}", refused.message);

    let owner = peer("owner", Args::default());
    let mut locked = req(&server.url(), "locked", "Owner");
    locked.password = Some("s3cret".into());
    owner.app.join(locked.clone()).await.unwrap();
    let mut wrong = req(&server.url(), "locked", "Ada");
    wrong.password = Some("guess".into());
    assert_eq!(err(a.app.join(wrong).await), ErrorKind::Refused);

    a.app.join(req(&server.url(), "r", "Ada")).await.unwrap();
    assert_eq!(
        err(a.app.join(req(&server.url(), "r", "Ada")).await),
        ErrorKind::AlreadyInRoom
    );
    assert_eq!(err(a.app.send_chat(" ".into()).await), ErrorKind::BadInput);
    assert_eq!(
        err(a.app.send_chat("x".repeat(5000)).await),
        ErrorKind::BadInput
    );
    let mut bad = pen(vec![Point(0.1, 0.1)]);
    bad.colour = "red".into();
    assert_eq!(err(a.app.board_begin(bad).await), ErrorKind::BadInput);
    assert_eq!(
        err(a.app.board_begin(pen(vec![Point(1.5, 0.1)])).await),
        ErrorKind::BadInput
    );
    assert_eq!(
        err(a.app.board_points(99, vec![]).await),
        ErrorKind::BadInput
    );
    // Out-of-range cursor positions are dropped, not errors.
    a.app.send_cursor(Some((f32::NAN, 2.0))).await.unwrap();
    a.app.leave().await;
    owner.app.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_from_a_peer_are_ignored_and_the_board_keeps_working() {
    let server = server().await;
    let mut a = peer("victim", Args::default());
    let ja = a.app.join(req(&server.url(), "r", "Ada")).await.unwrap();
    let config = RoomConfig::builder("r", "Mallory")
        .server(&server.url())
        .build()
        .unwrap();
    let (mallory, _events) = Room::join(config).await.unwrap();
    a.connected_to(mallory.id().as_str()).await;
    let send = |channel: &'static str, data: &'static [u8]| {
        let room = mallory.clone();
        async move {
            room.send(
                &plenum::ChannelName::new(channel).unwrap(),
                Bytes::from_static(data),
                Target::All,
            )
            .await
            .unwrap()
        }
    };
    for (channel, data) in [
        ("board", &b"\xff\xfe"[..]),
        ("board", br#"{"t":"begin","seq":0}"#),
        ("board", br##"{"t":"begin","seq":0,"clock":1,"tool":"pen","colour":"#000000","width":900,"points":[]}"##),
        ("cursor", br#"{"t":"at","x":-1,"y":0}"#),
        ("chat", br#"{"text":""}"#),
    ] {
        send(channel, data).await;
        let reason = a.expect("ignored", |e| matches!(e, UiEvent::Ignored { .. })).await;
        assert!(matches!(reason, UiEvent::Ignored { channel: ref c, .. } if c == channel), "{reason:?}");
    }
    assert!(a.app.board_snapshot().await.unwrap().is_empty());
    send("board", br##"{"t":"begin","seq":0,"clock":1,"tool":"pen","colour":"#000000","width":3,"points":[[0.5,0.5]]}"##).await;
    a.expect("a good stroke after bad ones", |e| {
        matches!(e, UiEvent::Board { .. })
    })
    .await;
    assert_eq!(a.app.board_snapshot().await.unwrap().len(), 1);
    a.app.send_chat("still here".into()).await.unwrap();
    assert_eq!(ja.room, "r");
    mallory.leave().await;
    a.app.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosting_starts_an_embedded_server_that_others_join_through_the_invite() {
    let args = Args {
        host_bind: Some("127.0.0.1:0".parse().unwrap()),
        ..Args::default()
    };
    let mut host = peer("host", args);
    let jh = host
        .app
        .host(HostRequest {
            room: "lan".into(),
            name: "Hana".into(),
            password: None,
            shape: RoomShape::Mesh,
            role: Role::Both,
            viewer_code: None,
        })
        .await
        .unwrap();
    assert!(jh.hosting);
    let invite = Invite::parse(&jh.invite).unwrap();
    assert_eq!(invite.room.as_str(), "lan");
    let mut guest = peer("guest", Args::default());
    let jg = guest
        .app
        .join(req(&invite.server, invite.room.as_str(), "Gus"))
        .await
        .unwrap();
    host.connected_to(&jg.me.id).await;
    guest.connected_to(&jh.me.id).await;
    // Leaving and hosting again reuses the same server.
    host.app.leave().await;
    let again = host
        .app
        .host(HostRequest {
            room: "lan2".into(),
            name: "Hana".into(),
            password: None,
            shape: RoomShape::Mesh,
            role: Role::Both,
            viewer_code: None,
        })
        .await
        .unwrap();
    assert_eq!(Invite::parse(&again.invite).unwrap().server, invite.server);
    assert_eq!(host.app.prefs().name, "Hana");
    guest.app.leave().await;
    host.app.leave().await;
}

/// The roster entry of `id` in a roster event, if it is one and has it.
fn entry<'a>(event: &'a UiEvent, id: &str) -> Option<&'a PeerView> {
    match event {
        UiEvent::Roster { peers } => peers.iter().find(|p| p.id == id),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presenter_with_an_access_code_admits_viewers_who_give_it_and_sees_their_hands() {
    let server = server().await;
    let url = server.url();
    let mut pia = peer("presenter", Args::default());
    let jp = pia
        .app
        .join(JoinRequest {
            role: Role::Publisher,
            viewer_code: Some(" k1 ".into()),
            ..req(&url, "talk", "Pia")
        })
        .await
        .unwrap();
    assert_eq!((jp.role, jp.me.role), (Role::Publisher, Role::Publisher));
    let invite = Invite::parse(&jp.invite).unwrap();
    assert_eq!(
        (invite.role, invite.credentials),
        (Some(plenum::Role::Viewer), true)
    );
    // The invite's role and code flag reach the join screen.
    let view = pia.app.read_invite(&jp.invite).unwrap();
    assert_eq!((view.role, view.access_code), (Role::Viewer, true));

    let viewer = |code: Option<&str>, name: &str| JoinRequest {
        role: Role::Viewer,
        access_code: code.map(str::to_owned),
        ..req(&url, "talk", name)
    };
    let mut vera = peer("vera", Args::default());
    let mut abe = peer("abe", Args::default());
    let mut eve = peer("eve", Args::default());
    let jv = vera.app.join(viewer(Some("k1"), "Vera")).await.unwrap();
    let ja = abe.app.join(viewer(Some("k1"), "Abe")).await.unwrap();
    pia.connected_to(&jv.me.id).await;
    pia.connected_to(&ja.me.id).await;
    vera.connected_to(&jp.me.id).await;
    // Eve gives no code: she hears why, and no link is made either way.
    let je = eve.app.join(viewer(None, "Eve")).await.unwrap();
    let refused = eve
        .expect("not_verified", |e| matches!(e, UiEvent::NotVerified { .. }))
        .await;
    assert!(
        matches!(&refused, UiEvent::NotVerified { name, .. } if name == "Pia"),
        "{refused:?}"
    );
    pia.expect("Eve refused", |e| {
        entry(e, &je.me.id).is_some_and(|p| p.state == PeerState::Refused && p.role == Role::Viewer)
    })
    .await;
    // Two viewers never link: Vera shows Abe in the room, not connecting.
    vera.expect("Abe in the room", |e| {
        entry(e, &ja.me.id).is_some_and(|p| p.state == PeerState::InRoom)
    })
    .await;

    // Abe raises a hand: the presenter sees it; lowering it clears it.
    assert!(abe.app.raise_hand(true).await.unwrap());
    abe.expect("our own hand up", |e| {
        entry(e, &ja.me.id).is_some_and(|p| p.state == PeerState::Me && p.hand)
    })
    .await;
    pia.expect("Abe's hand", |e| {
        entry(e, &ja.me.id).is_some_and(|p| p.hand)
    })
    .await;
    assert!(!abe.app.raise_hand(false).await.unwrap());
    pia.expect("Abe's hand down", |e| {
        entry(e, &ja.me.id).is_some_and(|p| !p.hand && p.state == PeerState::Connected)
    })
    .await;
    for p in [&vera, &abe, &eve, &pia] {
        p.app.leave().await;
    }
}

/// Presenting in a room that grows asks for a presentation's tree with the presenter its
/// root. A room that is there already keeps its own kind: a presenter who finds a call going
/// on (a mesh, where a root claim is refused) presents in it as it is; a second presenter of
/// a tree (whose secret is not theirs) is told plainly that someone presents there, and
/// watches it when it joins as a viewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presenter_finding_a_room_there_already_joins_it_as_it_is() {
    let server = server().await;
    let url = server.url();
    let mut ada = peer("call", Args::default());
    let ja = ada.app.join(req(&url, "standup", "Ada")).await.unwrap();
    let presenting = |room: &str, name: &str| JoinRequest {
        role: Role::Publisher,
        shape: RoomShape::Cells,
        ..req(&url, room, name)
    };
    let mut pia = peer("late-presenter", Args::default());
    let jp = pia.app.join(presenting("standup", "Pia")).await.unwrap();
    assert!(
        jp.web_invite.is_some(),
        "a call keeps its browser link: {jp:?}"
    );
    pia.connected_to(&ja.me.id).await;
    ada.connected_to(&jp.me.id).await;

    // A presentation's tree: its presenter is the root; a second presenter is a peer of it.
    let mut ria = peer("root", Args::default());
    let jr = ria.app.join(presenting("keynote", "Ria")).await.unwrap();
    assert_eq!(jr.web_invite, None, "a tree offers no browser link");
    ria.expect("our root", |e| {
        matches!(e, UiEvent::Tree { is_root: true, .. })
    })
    .await;
    let mut sam = peer("co-presenter", Args::default());
    let refused = sam
        .app
        .join(presenting("keynote", "Sam"))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Refused, "{refused:?}");
    assert!(
        refused.message.contains("someone else presents in keynote"),
        "{refused:?}"
    );
    let watching = JoinRequest {
        role: Role::Viewer,
        ..presenting("keynote", "Sam")
    };
    sam.app.join(watching).await.unwrap();
    sam.expect("a place under the root", |e| {
        matches!(
            e,
            UiEvent::Tree {
                is_root: false,
                depth: Some(1),
                ..
            }
        )
    })
    .await;
    for p in [&ada, &pia, &ria, &sam] {
        p.app.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_tone_lights_its_speaking_state_and_muting_shows() {
    let server = server().await;
    let mut a = peer("listener", Args::default());
    a.app.join(req(&server.url(), "r", "Ada")).await.unwrap();
    let config = RoomConfig::builder("r", "Tone")
        .server(&server.url())
        .build()
        .unwrap();
    let (tone, _events) = Room::join(config).await.unwrap();
    let id = tone.id().as_str().to_owned();
    a.connected_to(&id).await;
    let stream = tone
        .add_stream(
            Box::new(plenum_media::Sine::new(440.0, 0.5)),
            serde_json::json!({}),
        )
        .await
        .unwrap();
    a.expect("speaking", |e| {
        matches!(e, UiEvent::Roster { peers } if peers.iter().any(|p| p.id == id && p.speaking && p.muted == Some(false)))
    })
    .await;
    tone.set_stream_muted(&stream, true).await.unwrap();
    a.expect("muted", |e| matches!(e, UiEvent::Roster { peers } if peers.iter().any(|p| p.id == id && p.muted == Some(true))))
        .await;
    a.expect("quiet", |e| matches!(e, UiEvent::Roster { peers } if peers.iter().any(|p| p.id == id && !p.speaking)))
        .await;
    tone.leave().await;
    a.app.leave().await;
}

/// Waits for a picture packet for `tile` from an app's video tiles.
async fn picture_for(app: &App, tile: &str) -> Vec<u8> {
    let mut resizer = fast_image_resize::Resizer::new();
    let wait = async {
        loop {
            let packets = app.video.render_new(&mut resizer);
            if let Some(p) = packets
                .into_iter()
                .find(|p| p.get(2..2 + usize::from(p[1])) == Some(tile.as_bytes()))
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LONG, wait)
        .await
        .unwrap_or_else(|_| panic!("no picture for tile {tile}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_camera_goes_on_and_off_shows_ourselves_and_says_why_a_device_fails() {
    let server = server().await;
    let mut a = peer("camera", Args::default());
    let mut b = peer("viewer", Args::default());
    let ada = a.app.join(req(&server.url(), "cam", "Ada")).await.unwrap();
    let bea = b.app.join(req(&server.url(), "cam", "Bea")).await.unwrap();
    a.connected_to(&bea.me.id).await;
    b.connected_to(&ada.me.id).await;

    // This machine has no camera: the default one fails with a device error naming why.
    let error = a.app.set_camera(Some("default".into())).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Device);
    assert!(error.message.contains("no camera"), "{}", error.message);
    // Nor a window of that name to share (or no display at all): a device error too.
    let error = a
        .app
        .share_screen(Some("window:no window is called this".into()))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Device, "{}", error.message);

    // The test pattern as the camera: our own tile shows it, and so does the other side's.
    let state = a.app.set_camera(Some("testsrc".into())).await.unwrap();
    assert!(state.camera && !state.screen);
    a.app.video_sizes(vec![tile(&ada.me.id)]);
    b.app.video_sizes(vec![tile(&ada.me.id)]);
    let own = picture_for(&a.app, &ada.me.id).await;
    let far = picture_for(&b.app, &ada.me.id).await;
    for packet in [&own, &far] {
        let width = u16::from_le_bytes([packet[2 + ada.me.id.len()], packet[3 + ada.me.id.len()]]);
        assert_eq!(width, 320, "scaled to the tile");
    }
    b.expect("Ada's video", |e| {
        matches!(e, UiEvent::Roster { peers } if peers.iter().any(|p| p.id == ada.me.id && p.video))
    })
    .await;

    let state = a.app.set_camera(None).await.unwrap();
    assert!(!state.camera);
    b.expect("Ada's video gone", |e| {
        matches!(e, UiEvent::Roster { peers } if peers.iter().any(|p| p.id == ada.me.id && !p.video))
    })
    .await;
    a.app.leave().await;
    b.app.leave().await;
}

fn tile(peer: &str) -> plenum_app::types::TileSize {
    plenum_app::types::TileSize {
        peer: peer.to_owned(),
        width: 320,
        height: 180,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_codes_match_across_peers_and_verification_is_remembered() {
    let server = server().await;
    let mut a = peer("verify-a", Args::default());
    let mut b = peer("verify-b", Args::default());
    let me_a = a
        .app
        .join(req(&server.url(), "v", "Ada"))
        .await
        .unwrap()
        .me
        .id;
    let me_b = b
        .app
        .join(req(&server.url(), "v", "Bob"))
        .await
        .unwrap()
        .me
        .id;
    let code_of = |e: &UiEvent, id: &str| match e {
        UiEvent::Roster { peers } => peers
            .iter()
            .find(|p| p.id == id && p.state == PeerState::Connected)
            .and_then(|p| p.safety_code.clone()),
        _ => None,
    };
    let seen_a = a
        .expect("Bob's code", |e| code_of(e, &me_b).is_some())
        .await;
    let seen_b = b
        .expect("Ada's code", |e| code_of(e, &me_a).is_some())
        .await;
    let code = code_of(&seen_a, &me_b).unwrap();
    assert_eq!(
        Some(code.clone()),
        code_of(&seen_b, &me_a),
        "one code on both sides"
    );
    assert_eq!(code.len(), 23);

    // Marking Bob verified shows at once and is kept in the prefs.
    a.app.set_verified(me_b.clone(), true).await.unwrap();
    a.expect("Bob verified", |e| {
        matches!(e, UiEvent::Roster { peers } if peers.iter().any(|p| p.id == me_b && p.verified))
    })
    .await;
    assert_eq!(a.app.prefs().verified, vec![me_b.clone()]);
    assert!(matches!(
        err(a.app.set_verified("not an id".into(), true).await),
        ErrorKind::BadInput
    ));

    // The same identity comes back in a later call (the key lives in the config
    // directory), still verified on Ada's side.
    b.app.leave().await;
    let again = b
        .app
        .join(req(&server.url(), "v", "Bob"))
        .await
        .unwrap()
        .me
        .id;
    assert_eq!(again, me_b, "the app keeps its key: the same id");
    a.expect("Bob back, still verified", |e| {
        matches!(e, UiEvent::Roster { peers } if peers.iter().any(|p| p.id == me_b && p.verified && p.state == PeerState::Connected))
    })
    .await;
    a.app.set_verified(me_b.clone(), false).await.unwrap();
    assert!(a.app.prefs().verified.is_empty());
    a.app.leave().await;
    b.app.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_keeps_a_name_that_invites_then_join_as() {
    let link = "plenum://join?server=ws%3A%2F%2F127.0.0.1%3A9&room=standup";
    let a = peer(
        "first-run",
        Args {
            invite: Some(link.into()),
            ..Args::default()
        },
    );
    assert!(
        !a.app.prefs().checked,
        "a new app has not run its device check"
    );
    // Before a name is kept, a launch invite asks for one (the join screen).
    let launch = a
        .app
        .launch_request()
        .expect("a request")
        .expect("the invite's room");
    assert_eq!(
        (launch.room.as_str(), launch.name.as_str()),
        ("standup", "")
    );
    // A blank or overlong name is refused and nothing is kept.
    assert_eq!(
        err(a.app.device_check_done(Some("  ")).await),
        ErrorKind::BadInput
    );
    assert_eq!(
        err(a.app.device_check_done(Some(&"n".repeat(65))).await),
        ErrorKind::BadInput
    );
    assert!(!a.app.prefs().checked);
    a.app.device_check_done(Some(" Ada ")).await.expect("kept");
    let prefs = a.app.prefs();
    assert!(prefs.checked);
    assert_eq!(prefs.name, "Ada");
    // From now on invites join as Ada: at launch and while the app runs.
    let launch = a
        .app
        .launch_request()
        .expect("a request")
        .expect("the room");
    assert_eq!(launch.name, "Ada");
    let invited = a
        .app
        .invited("plenum://join?server=ws%3A%2F%2F127.0.0.1%3A9&room=retro&role=viewer")
        .expect("an invite");
    assert_eq!(
        (invited.room.as_str(), invited.name.as_str(), invited.role),
        ("retro", "Ada", Role::Viewer)
    );
    for bad in [
        "https://example.com/r/x",
        "plenum://leave?room=x",
        "not a link",
    ] {
        assert_eq!(err(a.app.invited(bad)), ErrorKind::BadInput, "{bad}");
    }
    // A later check (without a name) keeps the name.
    a.app.device_check_done(None).await.expect("kept");
    assert_eq!(a.app.prefs().name, "Ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_check_previews_the_test_pattern_and_names_what_fails() {
    let a = peer("check", Args::default());
    // No microphone on this machine, or one: either way the report says which.
    let report = a
        .app
        .device_check(Some("no such microphone".into()), Some("testsrc".into()))
        .await
        .expect("a report");
    let microphone = report.microphone.expect("a microphone that does not exist");
    assert!(microphone.contains("microphone"), "{microphone}");
    assert_eq!(report.camera, None, "the test pattern opens");
    a.app.video.set_sizes([("preview".to_owned(), 160, 90)]);
    let picture = picture_for(&a.app, "preview").await;
    assert!(
        picture.len() > 160 * 90 * 4,
        "a whole picture for the preview tile"
    );
    assert_eq!(
        a.app.device_check_level(),
        f32::NEG_INFINITY,
        "no microphone, no level"
    );
    // A camera that is not there is named; the check can run again and stop.
    let report = a
        .app
        .device_check(None, Some("no such camera".into()))
        .await
        .expect("a report");
    let camera = report.camera.expect("a camera that does not exist");
    assert!(
        camera.contains("camera") || camera.contains("Camera"),
        "{camera}"
    );
    a.app.device_check_stop().await;
}
