//! The comparison `plenum bench rooms` makes: webrtc-rs alone, two peer connections built
//! as a room's links are, one reliable ordered data channel. It must carry every message
//! whole, the largest one a link takes included, or the figure it gives means nothing.

use std::net::SocketAddr;

use bytes::Bytes;
use plenum::RoomConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_whole() {
    let config = RoomConfig::builder("baseline", "raw")
        // Never contacted: the pair negotiates in the process.
        .server("ws://127.0.0.1:9")
        .udp_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
        .build()
        .expect("config");
    let largest = plenum::MAX_MESSAGE_BYTES;
    let payload = Bytes::from(vec![7u8; largest]);
    let figures = plenum::baseline::data_channel_throughput(&config, payload, 24)
        .await
        .expect("the pair carries the messages");
    assert_eq!(figures.messages, 24);
    assert_eq!(figures.bytes, 24 * largest);
    assert!(figures.mbit_per_s() > 0.0);
}
