//! Plenum's wire types: the signaling frames exchanged with `plenum serve`, the binary
//! envelope that peers exchange on their data channels, and the validated names and ids
//! both use. Serde only; no I/O.
//!
//! ```
//! use plenum_proto::{ChannelName, signal::ClientToServer};
//!
//! assert!(ChannelName::new("chat").is_ok());
//! assert!(ChannelName::new("thirteen-byte").is_err());
//! let frame = ClientToServer::decode(r#"{"type":"ping","nonce":7}"#).unwrap();
//! assert_eq!(frame, ClientToServer::Ping { nonce: 7 });
//! ```
//!
//! Design: every type that crosses a trust boundary is parsed once into a type that cannot
//! hold an invalid value (a [`ChannelName`] cannot hold 13 bytes), and every decoder returns
//! an error value for any input; none of them panics.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod envelope;
pub mod identity;
mod names;
pub mod overlay;
pub mod signal;
pub mod token;

pub use envelope::{Envelope, EnvelopeError, EnvelopeKind, StreamAnnouncement};
pub use names::{ChannelName, DisplayName, NameError, PeerId, RoomName};

/// The signaling protocol version this crate speaks (the `version` of `join` and `welcome`).
pub const PROTOCOL_VERSION: u32 = 2;
