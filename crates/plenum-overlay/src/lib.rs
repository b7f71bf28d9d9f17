//! Sans-IO overlay topologies: given who is in the room and what the links report, decide
//! which peers to link to, when to probe them and when to give a link up.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use plenum_overlay::{FullMesh, FullMeshConfig, Input, Output, Topology, Appearance};
//! use plenum_proto::PeerId;
//!
//! let now = Instant::now();
//! let mut mesh = FullMesh::new(FullMeshConfig::default(), now);
//! let bob = PeerId::new("bob").unwrap();
//! mesh.handle_input(Input::PeerAppeared { peer: bob.clone(), origin: Appearance::Roster, now });
//! assert_eq!(mesh.poll_output(), Output::Connect { peer: bob, initiate: true });
//! assert!(matches!(mesh.poll_output(), Output::Timeout(_)));
//! ```
//!
//! # Design
//! A topology is a state machine with one entry ([`Topology::handle_input`]) and one exit
//! ([`Topology::poll_output`]). Every input carries `now`; the topology never reads a clock,
//! spawns, or touches a socket. Draining `poll_output` always ends in [`Output::Timeout`]:
//! the caller feeds [`Input::Tick`] at that instant. The topology decides *what and to
//! whom* (connect, probe, drop); the engine decides *how* (WebRTC). Decisions iterate over
//! `BTreeMap`s, so two runs with the same inputs produce the same outputs.
//!
//! Panic policy: no input, however out of order (a link event for an unknown peer, a
//! duplicate appearance), panics; such inputs are ignored.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cells;
mod frame;
mod full_mesh;
pub mod host;
pub mod relay;
pub mod tree;
mod wire;

pub use cells::{
    CellDirectory, CellDirectoryConfig, CellMesh, CellMeshConfig, Layout, STAGE_SEATS, StageBoard,
};
pub use frame::{FrameError, MeshFrame};
pub use full_mesh::{FullMesh, FullMeshConfig, FullMeshConfigBuilder};
pub use host::{Claim, HostConfig, HostFrameError, HostMsg, HostNode, HostOutput, HostSeat};
pub use relay::{
    RelayConfig, RelayFrameError, RelayId, RelayMsg, RelayNode, RelayOutput, RelaySendError,
    RouteFrame, RouteKind,
};
pub use tree::{
    Addressee, TreeConfig, TreeFrameError, TreeMsg, TreeNode, TreeOutput, TreeSendError, TreeTarget,
};

use std::time::{Duration, Instant};

use plenum_proto::PeerId;
use plenum_proto::overlay::CellPlan;

/// How a topology learned of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appearance {
    /// It was in the room when we joined: we are the newcomer.
    Roster,
    /// It joined after us: it is the newcomer.
    Joined,
}

/// Why a link is being dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The link did not come up within the connect timeout.
    ConnectTimeout,
    /// Nothing was heard on the link for the silence timeout.
    Silent,
    /// The transport reported the link failed or closed.
    Failed,
    /// The peer left the room.
    Left,
}

/// What a topology is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A peer is in the room (from signaling).
    PeerAppeared {
        /// The peer.
        peer: PeerId,
        /// Whether it was there before us.
        origin: Appearance,
        /// The current time.
        now: Instant,
    },
    /// A peer left the room (signaling, or its goodbye on the link).
    PeerGone {
        /// The peer.
        peer: PeerId,
        /// The current time.
        now: Instant,
    },
    /// The link to a peer is open and carries data.
    LinkUp {
        /// The peer.
        peer: PeerId,
        /// The current time.
        now: Instant,
    },
    /// The transport reported the link to a peer failed or closed.
    LinkDown {
        /// The peer.
        peer: PeerId,
        /// The current time.
        now: Instant,
    },
    /// Something arrived from a peer on its link.
    Heard {
        /// The peer.
        peer: PeerId,
        /// The current time.
        now: Instant,
    },
    /// The signaling server's plan for this peer in a cellular room (ignored by others).
    Plan {
        /// The plan; it replaces the last one.
        plan: CellPlan,
        /// The current time.
        now: Instant,
    },
    /// An overlay frame arrived from a linked peer.
    Frame {
        /// The peer it came from (not necessarily its origin).
        from: PeerId,
        /// The frame.
        frame: MeshFrame,
        /// The current time.
        now: Instant,
    },
    /// The application broadcasts `data` to every peer of the room.
    Broadcast {
        /// The application's bytes.
        data: Vec<u8>,
        /// The current time.
        now: Instant,
    },
    /// Time passed; fed at (or after) the instant of the last [`Output::Timeout`].
    Tick {
        /// The current time.
        now: Instant,
    },
}

/// What a topology asks of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a link to `peer`. With `initiate`, send the offer; otherwise expect one.
    Connect {
        /// The peer.
        peer: PeerId,
        /// Whether this side sends the offer.
        initiate: bool,
    },
    /// Close the link to `peer`.
    Disconnect {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: DropReason,
    },
    /// Send a liveness probe to `peer`.
    Heartbeat {
        /// The peer.
        peer: PeerId,
    },
    /// Send an overlay frame to a linked peer.
    Send {
        /// The peer.
        peer: PeerId,
        /// The frame.
        frame: MeshFrame,
    },
    /// A broadcast reached this peer for the first time: hand it to the application.
    Deliver {
        /// The peer that broadcast it.
        origin: PeerId,
        /// The application's bytes.
        data: Vec<u8>,
        /// Links it crossed to get here.
        hops: u8,
    },
    /// This peer's place in the overlay changed.
    State(MeshState),
    /// Where another peer sits (learned from a plan or a frame it sent).
    PeerCell {
        /// The peer.
        peer: PeerId,
        /// Its cell.
        cell: u32,
    },
    /// Nothing more until this instant (or the next input).
    Timeout(Instant),
}

/// A peer's place in a cellular overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshState {
    /// Its cell.
    pub cell: u32,
    /// How many cells the room has.
    pub cells: u32,
    /// Peers in its cell, itself included.
    pub cell_size: usize,
    /// Whether it holds a bridge link to another cell.
    pub is_bridge: bool,
    /// Its bridge links: the peer at the other end and that peer's cell.
    pub bridges: Vec<(PeerId, u32)>,
    /// The layout's number (grows when the room is split anew).
    pub epoch: u32,
    /// The layout's radices: cell `c` written in them, least significant digit first (empty
    /// for a room of one cell).
    pub radices: Vec<u16>,
}

/// A sans-IO topology.
pub trait Topology {
    /// Consumes one input.
    fn handle_input(&mut self, input: Input);
    /// Produces the next output; the last one of a drain is always [`Output::Timeout`].
    fn poll_output(&mut self) -> Output;
    /// The peers this topology wants linked, in id order.
    fn neighbours(&self) -> Vec<PeerId>;
}

/// Why a topology configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A duration that must be positive was zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// Two settings contradict each other.
    #[error("{0}")]
    Inconsistent(&'static str),
}

/// splitmix64: the next number of a seeded stream, for decisions that must replay from
/// their seed (retry jitter here, every random choice of the simulator).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn nonzero(name: &'static str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::Zero(name))
    } else {
        Ok(d)
    }
}
