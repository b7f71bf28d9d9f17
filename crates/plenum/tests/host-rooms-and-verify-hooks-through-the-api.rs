//! Host rooms and verify hooks through the Rust API, with a real server and real links:
//! `wait_to_sync` resolves for the host at once and for a joiner once it is in step, join
//! data arrives, a message goes through the host; an async verify hook lets in a viewer
//! with the right credentials and refuses one without (`NotVerified` on its side).

use std::net::SocketAddr;
use std::time::Duration;

use plenum::{
    Role, Room, RoomConfig, RoomError, RoomEvent, RoomEvents, Target, TopologySpec, Verify,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn config(url: &str, room: &str, name: &str) -> plenum::RoomConfigBuilder {
    RoomConfig::builder(room, name)
        .server(url)
        .udp_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

async fn next<T>(
    events: &mut RoomEvents,
    what: &str,
    mut pick: impl FnMut(RoomEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(e) => {
                    if let Some(v) = pick(e) {
                        return v;
                    }
                }
                None => panic!("room closed waiting for {what}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

async fn server() -> plenum_signal::Server {
    plenum_signal::Server::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        plenum_signal::ServerConfig::default(),
    )
    .await
    .expect("server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_room_syncs_and_carries_join_data_and_messages() {
    let server = server().await;
    let url = server.url();
    let host_config = config(&url, "hosted", "ann")
        .topology(TopologySpec::Host {})
        .init_data(Some(json!({"seat": 1})))
        .build()
        .unwrap();
    let (ann, mut ann_events) = Room::join(host_config).await.unwrap();
    tokio::time::timeout(WAIT, ann.wait_to_sync())
        .await
        .unwrap()
        .unwrap();
    assert!(ann.is_synced());
    let bob_config = config(&url, "hosted", "bob")
        .topology(TopologySpec::Host {})
        .init_data(Some(json!({"seat": 2})))
        .build()
        .unwrap();
    let (bob, mut bob_events) = Room::join(bob_config).await.unwrap();
    tokio::time::timeout(WAIT, bob.wait_to_sync())
        .await
        .unwrap()
        .unwrap();
    let ann_id = ann.id().clone();
    let (peer, data) = next(&mut bob_events, "ann's join data", |e| match e {
        RoomEvent::InitData { peer, data } => Some((peer, data)),
        _ => None,
    })
    .await;
    assert_eq!((peer, data), (ann_id.clone(), json!({"seat": 1})));
    let data = next(&mut ann_events, "bob's join data", |e| match e {
        RoomEvent::InitData { data, .. } => Some(data),
        _ => None,
    })
    .await;
    assert_eq!(data, json!({"seat": 2}));
    let chat = bob.channel("chat").unwrap();
    chat.send(&b"through the host"[..], Target::All)
        .await
        .unwrap();
    let (from, got) = next(&mut ann_events, "bob's message", |e| match e {
        RoomEvent::Message { from, data, .. } => Some((from, data)),
        _ => None,
    })
    .await;
    assert_eq!(
        (from, &got[..]),
        (bob.id().clone(), &b"through the host"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_verify_hook_lets_in_only_the_right_credentials() {
    let server = server().await;
    let url = server.url();
    // The hook takes its time, as one asking a service would.
    let verify = Verify::new(|_peer, credentials: serde_json::Value| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        credentials["ticket"] == "valid"
    });
    let presenter = config(&url, "talk", "presenter")
        .role(Role::Publisher)
        .verify(Some(verify))
        .build()
        .unwrap();
    let (presenter, mut presenter_events) = Room::join(presenter).await.unwrap();
    let guest = config(&url, "talk", "guest")
        .role(Role::Viewer)
        .credentials(Some(json!({"ticket": "valid"})))
        .build()
        .unwrap();
    let (guest, _guest_events) = Room::join(guest).await.unwrap();
    let joined = next(&mut presenter_events, "the guest's link", |e| match e {
        RoomEvent::PeerJoin { peer, .. } => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(&joined, guest.id());
    let intruder = config(&url, "talk", "intruder")
        .role(Role::Viewer)
        .credentials(Some(json!({"ticket": "forged"})))
        .build()
        .unwrap();
    let (intruder, mut intruder_events) = Room::join(intruder).await.unwrap();
    let refused_by = next(&mut intruder_events, "not verified", |e| match e {
        RoomEvent::Error(RoomError::NotVerified { peer, .. }) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(&refused_by, presenter.id());
    assert!(intruder.links().await.unwrap().is_empty());
    let links = presenter.links().await.unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
}
