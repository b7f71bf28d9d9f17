//! The room's overlay as the driver holds it: a topology of the shared [`Topology`] shape
//! (full mesh, cells), or a broadcast tree or a relay network, whose messages and events
//! are their own.

use plenum_overlay::{HostNode, Input, RelayNode, Topology, TreeNode};

pub(crate) enum Overlay {
    /// A full mesh, or our cell of a cellular room.
    Mesh(Box<dyn Topology + Send + Sync>),
    /// Our node of a broadcast tree.
    Tree(Box<TreeNode>),
    /// Our node of a relay network.
    Relay(Box<RelayNode>),
    /// Our peer of a host room.
    Host(Box<HostNode>),
}

impl Overlay {
    /// Link events, goodbyes, broadcasts and time go to whichever it is.
    pub(crate) fn handle_input(&mut self, input: Input) {
        match self {
            Self::Mesh(mesh) => mesh.handle_input(input),
            Self::Tree(tree) => tree.handle_input(input),
            Self::Relay(relay) => relay.handle_input(input),
            Self::Host(host) => host.handle_input(input),
        }
    }

    pub(crate) fn tree(&mut self) -> Option<&mut TreeNode> {
        match self {
            Self::Tree(tree) => Some(tree),
            _ => None,
        }
    }

    pub(crate) fn host(&mut self) -> Option<&mut HostNode> {
        match self {
            Self::Host(host) => Some(host),
            _ => None,
        }
    }

    pub(crate) fn relay(&mut self) -> Option<&mut RelayNode> {
        match self {
            Self::Relay(relay) => Some(relay),
            _ => None,
        }
    }
}
