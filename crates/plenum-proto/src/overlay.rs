//! What the signaling server and peers say about a room's overlay: the topology a room was
//! created with, and the cell plan the server hands each peer of a cellular room.

use serde::{Deserialize, Serialize};

use crate::PeerId;
use crate::signal::PeerSummary;

/// The overlay a room runs, chosen by the peer that creates it (later joiners get the
/// room's, whatever they asked for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TopologySpec {
    /// Every peer links to every other peer (the default).
    Mesh,
    /// Peers grouped in cells linked by bridge peers. The room is one cell (a full mesh)
    /// until it outgrows the cell size, then the server splits it.
    Cells {
        /// Most peers per cell; `None` picks it from the room's size (`auto`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cell_size: Option<u16>,
        /// Links between each pair of neighbouring cells.
        #[serde(default = "default_bridges")]
        bridges_per_edge: u16,
        /// The largest cell `auto` makes.
        #[serde(default = "default_max_cell")]
        max_cell_size: u16,
        /// How many cells `auto` aims for.
        #[serde(default = "default_target_cells")]
        target_cells: u32,
    },
    /// A broadcast tree: one root (a peer that joined with the room's root secret), every
    /// other peer with one parent and at most `max_degree` children. Join requests reach
    /// the root through the server and travel down the tree over its links.
    Tree {
        /// Most children per peer.
        #[serde(default = "default_max_degree")]
        max_degree: u16,
        /// Most children of the root, when it takes more than the others (a presenter's
        /// upload may carry more copies than a viewer's): until it has them the tree is a
        /// star, every viewer linked to the presenter alone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root_degree: Option<u16>,
    },
    /// A relay network: every peer links a few others chosen by XOR distance of their ids,
    /// and messages for the rest are relayed hop by hop.
    Relay {
        /// Most direct neighbours per peer.
        #[serde(default = "default_max_neighbours")]
        max_neighbours: u16,
    },
    /// One peer, the host, links to every other; the others link to it alone and it
    /// relays room messages. The first peer hosts; when the host goes, one peer chosen by
    /// the others and confirmed by the server takes over.
    Host {},
}

fn default_max_neighbours() -> u16 {
    20
}

fn default_max_degree() -> u16 {
    10
}

fn default_bridges() -> u16 {
    2
}
fn default_max_cell() -> u16 {
    48
}
fn default_target_cells() -> u32 {
    100
}

impl TopologySpec {
    /// Cells with every option at its default.
    pub fn cells(cell_size: Option<u16>) -> Self {
        Self::Cells {
            cell_size,
            bridges_per_edge: default_bridges(),
            max_cell_size: default_max_cell(),
            target_cells: default_target_cells(),
        }
    }

    /// A tree with at most `max_degree` children per peer.
    pub fn tree(max_degree: u16) -> Self {
        Self::Tree {
            max_degree,
            root_degree: None,
        }
    }

    /// A presentation's tree: the root takes up to `root_degree` children, every other
    /// peer up to `max_degree`.
    pub fn presentation(root_degree: u16, max_degree: u16) -> Self {
        Self::Tree {
            max_degree,
            root_degree: Some(root_degree),
        }
    }

    /// A relay network with at most `max_neighbours` direct links per peer.
    pub fn relay(max_neighbours: u16) -> Self {
        Self::Relay { max_neighbours }
    }

    /// Whether the room is large-room shaped: its peers learn whom to link from the
    /// overlay, not from the whole roster.
    pub fn is_overlay(&self) -> bool {
        !matches!(self, Self::Mesh | Self::Host {})
    }

    /// The same cells with `n` links between neighbouring cells (a mesh stays a mesh).
    pub fn with_bridges_per_edge(self, n: u16) -> Self {
        match self {
            Self::Cells {
                cell_size,
                max_cell_size,
                target_cells,
                ..
            } => Self::Cells {
                cell_size,
                bridges_per_edge: n,
                max_cell_size,
                target_cells,
            },
            other => other,
        }
    }
}

/// What broadcast-tree peers tell each other through the signaling server: a join request
/// on its way to the root (or to a grandparent), and the answer of the peer that takes it.
/// Negotiation then follows as for any link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum TreeSignal {
    /// `requester` asks for a parent, bringing a subtree of `subtree` peers (itself
    /// included). Sent by the requester, or passed on by a peer that is not in the tree.
    Join {
        /// The peer that wants a parent.
        requester: PeerId,
        /// Its subtree's size.
        subtree: u32,
        /// The parent it lost, if it lost one: the receiver does not hand the request
        /// to that peer (it may be gone before its own parent notices).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lost: Option<PeerId>,
    },
    /// The sender takes the receiver as a child at `depth`; its offer follows.
    Accept {
        /// The receiver's depth under the sender.
        depth: u32,
    },
    /// The receiver's offer to be a parent is not needed.
    Decline {},
}

/// A bridge link of a peer: the peer at the other end and its cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeLink {
    /// The peer at the other end.
    pub peer: PeerSummary,
    /// Its cell.
    pub cell: u32,
}

/// What one peer of a cellular room needs to know: its cell, its cell mates and its bridge
/// links. The server sends a fresh plan whenever any of that changes; each replaces the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellPlan {
    /// Grows with every new layout of the room (cell count and shape).
    pub epoch: u32,
    /// The layout: cell `c` has digits `c` written in these radices (least significant
    /// first); two cells are neighbours when they differ in exactly one digit.
    pub radices: Vec<u16>,
    /// The receiving peer's cell.
    pub cell: u32,
    /// The peers of that cell, the receiver included, in id order.
    pub members: Vec<PeerSummary>,
    /// The receiver's bridge links to neighbouring cells.
    pub bridges: Vec<BridgeLink>,
}

impl CellPlan {
    /// The number of cells of the layout.
    pub fn cell_count(&self) -> u32 {
        self.radices
            .iter()
            .fold(1u32, |n, r| n.saturating_mul(u32::from(*r)))
    }

    /// Whether `peer` is one of the plan's cell mates or bridge partners.
    pub fn knows(&self, peer: &PeerId) -> bool {
        self.members.iter().any(|m| &m.peer == peer)
            || self.bridges.iter().any(|b| &b.peer.peer == peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cells_spec_fills_its_defaults() {
        let spec: TopologySpec = serde_json::from_str(r#"{"kind":"cells","cell_size":6}"#).unwrap();
        assert_eq!(spec, TopologySpec::cells(Some(6)));
        let auto: TopologySpec = serde_json::from_str(r#"{"kind":"cells"}"#).unwrap();
        assert_eq!(auto, TopologySpec::cells(None));
        assert!(serde_json::from_str::<TopologySpec>(r#"{"kind":"cells","cel_size":6}"#).is_err());
        assert!(serde_json::from_str::<TopologySpec>(r#"{"kind":"ring"}"#).is_err());
    }

    #[test]
    fn a_tree_spec_defaults_to_ten_children() {
        let spec: TopologySpec = serde_json::from_str(r#"{"kind":"tree"}"#).unwrap();
        assert_eq!(spec, TopologySpec::tree(10));
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"kind":"tree","max_degree":10}"#,
            "no root degree unless one is set"
        );
        let presentation: TopologySpec =
            serde_json::from_str(r#"{"kind":"tree","max_degree":3,"root_degree":8}"#).unwrap();
        assert_eq!(presentation, TopologySpec::presentation(8, 3));
        assert!(spec.is_overlay());
        assert!(!TopologySpec::Mesh.is_overlay());
        let host: TopologySpec = serde_json::from_str(r#"{"kind":"host"}"#).unwrap();
        assert_eq!(host, TopologySpec::Host {});
        assert!(!host.is_overlay(), "a host room hands out its roster");
        let join: TreeSignal =
            serde_json::from_str(r#"{"op":"join","requester":"p1","subtree":3}"#).unwrap();
        assert_eq!(
            join,
            TreeSignal::Join {
                requester: PeerId::new("p1").unwrap(),
                subtree: 3,
                lost: None,
            }
        );
        assert!(serde_json::from_str::<TreeSignal>(r#"{"op":"join","requester":"p1"}"#).is_err());
    }
}
