//! The room's overlay as the driver holds it: a topology of the shared [`Topology`] shape
//! (full mesh, cells), or a broadcast tree or a relay network, whose messages and events
//! are their own.

use std::time::Instant;

use bytes::Bytes;
use plenum_overlay::{
    Addressee, CellMesh, CellMeshConfig, DropReason, FullMesh, HostConfig, HostMsg, HostNode,
    HostOutput, Input, MeshFrame, Output, RelayConfig, RelayMsg, RelayNode, RelayOutput, Topology,
    TreeConfig, TreeMsg, TreeNode, TreeOutput,
};
use plenum_proto::overlay::TopologySpec;
use plenum_proto::signal::{ClientToServer, SignalPayload};
use plenum_proto::{Envelope, EnvelopeKind, PeerId};

use crate::config::RoomConfig;

use crate::types::{RoomError, RoomEvent, TreeEdge};

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

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mesh(_) => "Overlay::Mesh",
            Self::Tree(_) => "Overlay::Tree",
            Self::Relay(_) => "Overlay::Relay",
            Self::Host(_) => "Overlay::Host",
        })
    }
}

impl Overlay {
    /// Our node of the topology the server named for the room, at `now`. `seed` varies
    /// its timers per peer; `clock_seq` orders a host room's values across runs.
    pub(crate) fn for_room(
        me: &PeerId,
        topology: &TopologySpec,
        config: &RoomConfig,
        now: Instant,
        seed: u64,
        clock_seq: u64,
    ) -> Self {
        let links = config.mesh.clone();
        let full_mesh = || {
            Self::Mesh(Box::new(
                FullMesh::with_seed(links.clone(), now, seed).with_peer(me.clone()),
            ))
        };
        match (topology, TreeConfig::from_spec(topology)) {
            (TopologySpec::Host {}, _) => {
                let host = HostConfig::default().with_links(links.clone());
                // JSON values always serialize.
                let init = config
                    .init_data
                    .as_ref()
                    .map(|v| serde_json::to_vec(v).unwrap_or_default());
                let node = HostNode::new(me.clone(), host, now, seed, clock_seq, init);
                Self::Host(Box::new(node))
            }
            (_, Ok(Some(tree))) => {
                let tree = tree.with_links(links.clone());
                // A root claimant waits for the server to crown it (at once, or when the
                // root it stands by for goes).
                let node = if config.root_secret.is_some() {
                    TreeNode::standby(me.clone(), tree, now, seed)
                } else {
                    TreeNode::join(me.clone(), tree, now, seed)
                };
                Self::Tree(Box::new(node.named(config.name.clone())))
            }
            (TopologySpec::Relay { .. }, _) => {
                let relay = RelayConfig::from_spec(topology)
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .with_links(links.clone());
                match RelayNode::new(me.clone(), relay, now, seed) {
                    Some(node) => Self::Relay(Box::new(node)),
                    // Peer ids are 40 hex digits; a relay node needs nothing else.
                    None => full_mesh(),
                }
            }
            (TopologySpec::Cells { .. }, _) => {
                let cells = CellMeshConfig::builder()
                    .links(links.clone())
                    .build()
                    .unwrap_or_default();
                Self::Mesh(Box::new(CellMesh::new(me.clone(), cells, now, seed)))
            }
            _ => full_mesh(),
        }
    }

    /// A topology's message from `peer` (a mesh frame, or a tree, relay or host room
    /// message) for the node that speaks it; one for a topology the room does not run is
    /// ignored. Err with what it was and why, when it does not decode.
    pub(crate) fn on_envelope(
        &mut self,
        peer: PeerId,
        envelope: &Envelope,
        now: Instant,
    ) -> Result<(), (&'static str, String)> {
        let ignored = |what: &str| {
            tracing::debug!(
                peer = peer.short(),
                "{what} in a room that does not run it; ignored"
            );
        };
        match envelope.kind {
            EnvelopeKind::Mesh => {
                let frame = MeshFrame::from_envelope(envelope)
                    .map_err(|e| ("mesh frame", e.to_string()))?;
                self.handle_input(Input::Frame {
                    from: peer,
                    frame,
                    now,
                });
            }
            EnvelopeKind::Tree => {
                let msg = TreeMsg::from_envelope(envelope)
                    .map_err(|e| ("tree message", e.to_string()))?;
                match self.tree() {
                    Some(tree) => tree.handle_msg(peer, msg, now),
                    None => ignored("a tree message"),
                }
            }
            EnvelopeKind::Relay => {
                let msg = RelayMsg::from_envelope(envelope)
                    .map_err(|e| ("relay message", e.to_string()))?;
                match self.relay() {
                    Some(relay) => relay.handle_msg(peer, msg, now),
                    None => ignored("a relay message"),
                }
            }
            EnvelopeKind::Host => {
                let msg = HostMsg::from_envelope(envelope)
                    .map_err(|e| ("host room message", e.to_string()))?;
                match self.host() {
                    Some(host) => host.handle_msg(peer, msg, now),
                    None => ignored("a host room message"),
                }
            }
            _ => {}
        }
        Ok(())
    }

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

/// What any overlay asks of the room, in one vocabulary: every topology's outputs map to
/// these, and the driver carries out only these (a new topology touches [`Overlay::step`]
/// and nothing else).
#[derive(Debug)]
pub(crate) enum Step {
    /// Link to `peer`, sending the offer if `initiate`. With `introduce`, the overlay found
    /// the peer itself (tree, relay): the roster learns it, and negotiation it sent before
    /// we knew it is taken up.
    Link {
        peer: PeerId,
        initiate: bool,
        introduce: bool,
    },
    /// Close the link to `peer`.
    Unlink { peer: PeerId, reason: DropReason },
    /// Keep the link to `peer` alive.
    Heartbeat(PeerId),
    /// Write an envelope on the link to `peer`.
    Write { peer: PeerId, bytes: Bytes },
    /// Signal `to` through the server (or, with the server away, over a relay network).
    Signal { to: PeerId, payload: SignalPayload },
    /// A frame for the server itself.
    Server(ClientToServer),
    /// Ask `peer` for a relay link: through the server, or over the network without it.
    AskLink { peer: PeerId, degree: u8 },
    /// Negotiation that came over the relay network, as if from the server.
    Negotiation {
        from: PeerId,
        payload: SignalPayload,
    },
    /// Something `peer` sent us that does not parse.
    Malformed {
        peer: PeerId,
        what: &'static str,
        reason: String,
    },
    /// Whether room messages flow (host rooms wait for their host).
    Synced(bool),
    /// Tell the application.
    Event(RoomEvent),
    /// Nothing more until this time, or until an input.
    Timeout(Instant),
}

impl Overlay {
    /// The next thing the overlay asks, whichever it is.
    pub(crate) fn step(&mut self) -> Step {
        loop {
            let step = match self {
                Self::Mesh(mesh) => mesh_step(mesh.poll_output()),
                Self::Tree(tree) => tree_step(tree.poll_output()),
                Self::Relay(relay) => relay_step(relay.poll_output()),
                Self::Host(host) => host_step(host.poll_output()),
            };
            // `None`: an output with nothing for the room to do (it is logged).
            if let Some(step) = step {
                return step;
            }
        }
    }
}

fn write(peer: PeerId, envelope: &Envelope) -> Step {
    let bytes = Bytes::from(envelope.encode());
    Step::Write { peer, bytes }
}

fn mesh_step(output: Output) -> Option<Step> {
    Some(match output {
        Output::Connect { peer, initiate } => Step::Link {
            peer,
            initiate,
            introduce: false,
        },
        Output::Disconnect { peer, reason } => Step::Unlink { peer, reason },
        Output::Heartbeat { peer } => Step::Heartbeat(peer),
        Output::Send { peer, frame } => write(peer, &frame.to_envelope()),
        Output::Deliver { origin, data, hops } => Step::Event(RoomEvent::MeshMessage {
            from: origin,
            data: Bytes::from(data),
            hops,
        }),
        Output::State(state) => {
            tracing::info!(
                cell = state.cell,
                cells = state.cells,
                size = state.cell_size,
                bridges = state.bridges.len(),
                "place in the room"
            );
            Step::Event(RoomEvent::MeshState(state))
        }
        Output::PeerCell { peer, cell } => Step::Event(RoomEvent::MeshPeer { peer, cell }),
        Output::Timeout(at) => Step::Timeout(at),
    })
}

fn tree_step(output: TreeOutput) -> Option<Step> {
    let edge = |peer: PeerId, edge: TreeEdge| {
        tracing::info!(peer = peer.short(), edge = edge.as_str(), "tree link");
        Step::Event(RoomEvent::TreeLink { peer, edge })
    };
    Some(match output {
        TreeOutput::Connect { peer, initiate } => Step::Link {
            peer,
            initiate,
            introduce: true,
        },
        TreeOutput::Disconnect { peer } => Step::Unlink {
            peer,
            reason: DropReason::Left,
        },
        TreeOutput::Heartbeat { peer } => Step::Heartbeat(peer),
        TreeOutput::Send { peer, msg } => write(peer, &msg.to_envelope()),
        TreeOutput::Signal { to, msg } => {
            let payload = SignalPayload::Tree {
                msg: msg.to_signal()?,
            };
            match to {
                Addressee::Root => Step::Server(ClientToServer::SignalRoot { payload }),
                Addressee::Peer(to) => Step::Signal { to, payload },
            }
        }
        TreeOutput::ParentConnect(peer) => edge(peer, TreeEdge::ParentConnect),
        TreeOutput::ParentClose(peer) => edge(peer, TreeEdge::ParentClose),
        TreeOutput::ChildConnect(peer) => edge(peer, TreeEdge::ChildConnect),
        TreeOutput::ChildClose(peer) => edge(peer, TreeEdge::ChildClose),
        TreeOutput::State {
            parent,
            children,
            depth,
            is_root,
            root,
            root_name,
            subtree,
        } => {
            tracing::info!(
                parent = parent.as_ref().map(PeerId::short),
                children = children.len(),
                ?depth,
                is_root,
                subtree,
                "place in the tree"
            );
            Step::Event(RoomEvent::TreeState {
                parent,
                children,
                depth,
                is_root,
                root,
                root_name,
                subtree,
            })
        }
        TreeOutput::Message {
            origin,
            from,
            from_parent,
            hops,
            data,
        } => Step::Event(RoomEvent::TreeMessage {
            origin,
            from,
            from_parent,
            hops,
            data: Bytes::from(data),
        }),
        TreeOutput::Hand { peer, name, raised } => {
            tracing::info!(peer = peer.short(), raised, "hand");
            Step::Event(RoomEvent::Hand { peer, name, raised })
        }
        TreeOutput::Stage { speaker, name } => {
            tracing::info!(speaker = speaker.as_ref().map(PeerId::short), "stage");
            Step::Event(RoomEvent::Stage { speaker, name })
        }
        TreeOutput::Timeout(at) => Step::Timeout(at),
    })
}

fn relay_step(output: RelayOutput) -> Option<Step> {
    Some(match output {
        RelayOutput::Connect { peer, initiate } => Step::Link {
            peer,
            initiate,
            introduce: true,
        },
        RelayOutput::Disconnect { peer } => Step::Unlink {
            peer,
            reason: DropReason::Left,
        },
        RelayOutput::Heartbeat { peer } => Step::Heartbeat(peer),
        RelayOutput::Send { peer, msg } => write(peer, &msg.to_envelope()),
        RelayOutput::SignalLink { peer, degree } => Step::AskLink { peer, degree },
        RelayOutput::Deliver { origin, hops, data } => Step::Event(RoomEvent::RelayMessage {
            from: origin,
            hops,
            data: Bytes::from(data),
        }),
        RelayOutput::Signal { origin, data } => {
            match serde_json::from_slice::<SignalPayload>(&data) {
                Ok(payload) => Step::Negotiation {
                    from: origin,
                    payload,
                },
                Err(e) => {
                    tracing::warn!(peer = origin.short(), error = %e, "relayed negotiation that does not decode dropped");
                    return None;
                }
            }
        }
        RelayOutput::LinkFailed { peer } => {
            let reason = format!(
                "no direct link after {} attempts",
                plenum_overlay::relay::CONNECT_ATTEMPTS
            );
            Step::Event(RoomEvent::Error(RoomError::LinkFailed { peer, reason }))
        }
        RelayOutput::Unreachable { target, .. } => {
            tracing::info!(peer = target.short(), "relay target unreachable");
            Step::Event(RoomEvent::Error(RoomError::Unreachable { peer: target }))
        }
        RelayOutput::Neighbours(neighbours) => {
            tracing::debug!(neighbours = neighbours.len(), "relay neighbours");
            Step::Event(RoomEvent::RelayState { neighbours })
        }
        RelayOutput::Dropped { from, reason } => {
            tracing::warn!(peer = from.short(), reason, "relayed frame dropped");
            return None;
        }
        RelayOutput::Timeout(at) => Step::Timeout(at),
    })
}

fn host_step(output: HostOutput) -> Option<Step> {
    Some(match output {
        HostOutput::Connect { peer, initiate } => Step::Link {
            peer,
            initiate,
            introduce: false,
        },
        HostOutput::Disconnect { peer, reason } => Step::Unlink { peer, reason },
        HostOutput::Heartbeat { peer } => Step::Heartbeat(peer),
        HostOutput::Send { peer, msg } => write(peer, &msg.to_envelope()),
        HostOutput::Claim { epoch } => {
            tracing::info!(epoch, "claiming the vacant host seat");
            Step::Server(ClientToServer::ClaimHost { epoch })
        }
        HostOutput::Deliver {
            origin,
            channel,
            data,
        } => Step::Event(RoomEvent::Message {
            channel,
            from: origin,
            data: Bytes::from(data),
        }),
        HostOutput::Host { peer, is_self } => {
            tracing::info!(host = peer.short(), is_self, "linked to the host");
            Step::Event(RoomEvent::Host { peer, is_self })
        }
        HostOutput::Synced(in_sync) => Step::Synced(in_sync),
        HostOutput::InitData { peer, data } => {
            match serde_json::from_slice::<serde_json::Value>(&data) {
                Ok(data) => Step::Event(RoomEvent::InitData { peer, data }),
                Err(e) => Step::Malformed {
                    peer,
                    what: "join data",
                    reason: e.to_string(),
                },
            }
        }
        HostOutput::Overflow { dropped } => {
            tracing::warn!(dropped, "messages waiting for a host dropped");
            Step::Event(RoomEvent::Error(RoomError::WaitingOverflow { dropped }))
        }
        HostOutput::Timeout(at) => Step::Timeout(at),
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test takes its origin from the clock
mod tests {
    use std::time::Duration;

    use plenum_overlay::{Appearance, FullMesh, FullMeshConfig};

    use super::*;

    fn peer(n: u32) -> PeerId {
        PeerId::new(format!("{n:040x}")).unwrap()
    }

    fn drain(overlay: &mut Overlay) -> Vec<Step> {
        let mut steps = Vec::new();
        loop {
            match overlay.step() {
                Step::Timeout(_) => return steps,
                step => steps.push(step),
            }
        }
    }

    #[test]
    fn a_mesh_links_a_peer_it_learns_of_and_then_waits() {
        let now = Instant::now();
        let (me, other) = (peer(1), peer(2));
        let mesh = FullMesh::with_seed(FullMeshConfig::default(), now, 7).with_peer(me);
        let mut overlay = Overlay::Mesh(Box::new(mesh));
        overlay.handle_input(Input::PeerAppeared {
            peer: other.clone(),
            origin: Appearance::Roster,
            now,
        });
        let steps = drain(&mut overlay);
        let links: Vec<_> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Link {
                    peer, introduce, ..
                } => Some((peer.clone(), *introduce)),
                _ => None,
            })
            .collect();
        assert_eq!(links, vec![(other, false)], "{steps:?}");
        // Nothing more is asked before its timeout.
        assert!(drain(&mut overlay).is_empty());
        overlay.handle_input(Input::Tick {
            now: now + Duration::from_millis(1),
        });
        assert!(
            drain(&mut overlay)
                .iter()
                .all(|s| !matches!(s, Step::Link { .. }))
        );
    }

    #[test]
    fn relayed_negotiation_that_does_not_decode_is_no_step() {
        let bad = RelayOutput::Signal {
            origin: peer(3),
            data: b"{not json".to_vec(),
        };
        assert!(relay_step(bad).is_none());
        let payload = SignalPayload::RelayLink { degree: 1 };
        let good = RelayOutput::Signal {
            origin: peer(3),
            data: serde_json::to_vec(&payload).unwrap(),
        };
        assert!(matches!(
            relay_step(good),
            Some(Step::Negotiation { from, payload: SignalPayload::RelayLink { degree: 1 } }) if from == peer(3)
        ));
    }

    #[test]
    fn join_data_that_is_not_json_is_malformed_from_its_sender() {
        let out = HostOutput::InitData {
            peer: peer(4),
            data: b"\xff".to_vec(),
        };
        assert!(matches!(
            host_step(out),
            Some(Step::Malformed { peer: p, what: "join data", .. }) if p == peer(4)
        ));
    }

    #[test]
    fn tree_and_relay_links_introduce_their_peer_and_mesh_links_do_not() {
        let tree = tree_step(TreeOutput::Connect {
            peer: peer(5),
            initiate: true,
        });
        let relay = relay_step(RelayOutput::Connect {
            peer: peer(5),
            initiate: false,
        });
        let host = host_step(HostOutput::Connect {
            peer: peer(5),
            initiate: true,
        });
        assert!(matches!(
            tree,
            Some(Step::Link {
                introduce: true,
                initiate: true,
                ..
            })
        ));
        assert!(matches!(
            relay,
            Some(Step::Link {
                introduce: true,
                initiate: false,
                ..
            })
        ));
        assert!(matches!(
            host,
            Some(Step::Link {
                introduce: false,
                ..
            })
        ));
    }
}
