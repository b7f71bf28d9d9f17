//! Plenum signaling: the room registry (a sans-IO state machine), the WebSocket server
//! around it, and the client drivers peers use to reach it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use plenum_signal::{Server, ServerConfig, SignalDriver, WsDriver};
//!
//! let server = Server::bind("127.0.0.1:0".parse()?, ServerConfig::default()).await?;
//! let driver = WsDriver::new(server.url())?;
//! let connection = driver.connect().await?;
//! # drop(connection);
//! # Ok(()) }
//! ```
//!
//! The server never sees media or application data: it admits peers to rooms, tells them
//! who is there, and relays WebRTC negotiation addressed to one peer. The protocol is
//! written down in docs/protocol.md.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod client;
mod entry;
pub mod federation;
mod http;
mod hub;
pub mod registry;
mod server;
pub mod site;
mod tls;

pub use client::{
    MemoryDriver, NatsDriver, SignalConnection, SignalDriver, SignalError, SignalEvent, WsDriver,
};
pub use federation::{Federation, FederationError};
pub use hub::Hub;
pub use registry::{RegistryConfig, RegistryStats, TurnConfig};
pub use server::{Server, ServerConfig};
pub use site::Site;
pub use tls::{Tls, TlsError};
