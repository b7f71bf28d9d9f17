//! The Plenum engine: join a room, link every peer over WebRTC, exchange messages on named
//! channels, measure round trips. The only crate that uses webrtc-rs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use plenum::{Room, RoomConfig, RoomEvent, Target};
//!
//! let config = RoomConfig::builder("standup", "Ada").server("ws://127.0.0.1:8080").build()?;
//! let (room, mut events) = Room::join(config).await?;
//! let chat = room.channel("chat")?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         RoomEvent::PeerJoin { peer, .. } => chat.send("hello", Target::One(peer)).await?,
//!         RoomEvent::Message { from, data, .. } => println!("{from}: {data:?}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Design
//! [`Room`] is a clonable handle; one driver task per room owns all state (links, roster,
//! queues) and is reached over bounded channels. The driver feeds the sans-IO topology
//! from `plenum-overlay` (which decides whom to link, when to probe and when to give up)
//! and carries out its decisions with webrtc-rs: one peer connection and one ordered,
//! reliable data channel per neighbour, negotiated with perfect negotiation over
//! `plenum-signal`. Every message is an [`Envelope`](plenum_proto::Envelope).
//! Nothing a peer sends can panic the driver: malformed envelopes become
//! [`RoomError::Malformed`] events.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod admission;
mod audio;
mod backlog;
pub mod baseline;
mod cell_stage;
mod clock;
mod config;
mod congestion;
pub mod datagram;
mod driver;
mod events;
pub mod forward;
mod invite;
mod lifecycle;
mod link;
mod media_thread;
mod negotiation;
mod netwatch;
mod outbound;
mod outbox;
mod overlay;
mod reassembly;
mod room;
mod room_core;
mod session;
mod stats;
mod tree_media;
mod types;
mod video;

pub use config::{
    ConfigError, IceServer, IceTransport, RoomConfig, RoomConfigBuilder, Verify, VerifyFuture,
};
pub use events::CAPACITY as EVENT_QUEUE_CAPACITY;
pub use invite::{Invite, InviteError};
pub use plenum_overlay::{MeshState, RelaySendError};
pub use plenum_proto::identity::{Identity, PublicKey};
pub use plenum_proto::overlay::TopologySpec;
pub use plenum_proto::signal::Role;
pub use plenum_proto::token::{Claims, Grants};
pub use plenum_proto::{ChannelName, DisplayName, PeerId, RoomName};
pub use room::{Channel, Room, RoomEvents};
pub use stats::{AudioReport, CallStats, LinkReport, VideoReport};
pub use types::{
    JoinError, LinkPath, LinkState, MAX_MESSAGE_BYTES, PeerInfo, PingError, PresentError,
    PublishError, RoomClosed, RoomError, RoomEvent, SendError, Target, TreeEdge, TreeSendError,
    TreeTarget,
};
