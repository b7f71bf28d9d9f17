//! What the application asks of the driver ([`Command`]), and the messages it sends:
//! written to open links, queued in the core for the others, never waited for here.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use plenum_overlay::TreeTarget;
use plenum_proto::identity::safety_code;
use plenum_proto::{ChannelName, Envelope, PeerId, StreamAnnouncement};
use tokio::sync::oneshot;

use super::Driver;
use crate::room_core::Input;
use crate::types::{
    LinkState, PeerInfo, PingError, PresentError, SendError, Target, TreeSendError,
};

/// What a [`Room`](crate::Room) handle asks of the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        channel: ChannelName,
        data: Bytes,
        to: Target,
        /// Ok with the outboxes of the targets that hold more than a sender should add
        /// to: the sender waits for them, per link, and the driver does not.
        reply: oneshot::Sender<Result<Vec<crate::outbox::Outbox>, SendError>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Ping {
        peer: PeerId,
        reply: oneshot::Sender<Result<Duration, PingError>>,
    },
    Leave {
        reply: oneshot::Sender<()>,
    },
    /// Announce a stream of ours (added, removed or muted) to every peer, now and to those
    /// whose link opens later.
    Stream(StreamAnnouncement),
    /// Broadcast to every peer of the room over the overlay.
    MeshSend(Bytes),
    /// Share our state with the linked peers.
    SetState {
        state: serde_json::Value,
        merge: bool,
    },
    /// Whose voice a tree's stage carries (at the root).
    Stage {
        speaker: Option<PeerId>,
        reply: oneshot::Sender<Result<(), TreeSendError>>,
    },
    /// Present in a cells room (our camera and screen to every cell), or stop.
    Present {
        on: bool,
        reply: oneshot::Sender<Result<(), PresentError>>,
    },
    /// Raise or lower our hand to a tree's root.
    Hand {
        raised: bool,
        reply: oneshot::Sender<Result<(), TreeSendError>>,
    },
    /// Send to tree neighbours (tree rooms).
    TreeSend {
        to: TreeTarget,
        data: Bytes,
        reply: oneshot::Sender<Result<(), TreeSendError>>,
    },
    /// Send to a peer of a relay network, relayed if it is not a neighbour.
    RelaySend {
        to: PeerId,
        data: Bytes,
        reply: oneshot::Sender<Result<(), plenum_overlay::RelaySendError>>,
    },
    /// Form (or close) a direct link in a relay network.
    RelayLink {
        peer: PeerId,
        up: bool,
    },
    /// Our direct links and their states.
    Links {
        reply: oneshot::Sender<Vec<(PeerId, LinkState)>>,
    },
    /// The call's figures.
    Stats {
        reply: oneshot::Sender<crate::stats::CallStats>,
    },
    /// Bytes written as they are on the link to a peer, as a broken or hostile client could.
    Raw {
        peer: PeerId,
        bytes: Bytes,
    },
}

impl Driver {
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Send {
                channel,
                data,
                to,
                reply,
            } => {
                let sent = self.send(channel, data, to);
                let _ = reply.send(sent);
            }
            Command::Peers { reply } => {
                let mine = self.config.identity.public();
                let peers = self
                    .core
                    .roster()
                    .iter()
                    .map(|(peer, name)| PeerInfo {
                        peer: peer.clone(),
                        name: name.clone(),
                        state: self.core.link_state(peer),
                        path: self.links.get(peer).and_then(|l| l.path),
                        safety_code: self.core.key(peer).map(|k| safety_code(&mine, k)),
                        role: self.core.role(peer),
                        refused: self.core.is_refused(peer),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Ping { peer, reply } => {
                let (id, bytes) = self.core.ping();
                if self.write(&peer, bytes) {
                    self.core.ping_sent(id, crate::clock::now());
                    self.ping_replies.insert(id, reply);
                } else {
                    let _ = reply.send(Err(PingError::NotConnected(peer)));
                }
            }
            Command::Leave { .. } => {}
            Command::SetState { state, merge } => self.tell(Input::State { state, merge }),
            Command::Stream(announcement) => {
                // A screen shared in a cells room presents it to every cell.
                let screen = |stream: &str| stream.starts_with("screen-");
                match &announcement {
                    StreamAnnouncement::Add { stream, .. } if screen(stream) => {
                        self.screen_shared = true;
                        self.ask_to_present();
                    }
                    StreamAnnouncement::Remove { stream } if screen(stream) => {
                        self.screen_shared = false;
                        self.ask_to_present();
                    }
                    _ => {}
                }
                self.tell(Input::Stream(announcement));
            }
            Command::Present { on, reply } => {
                let result = if self.cells_room {
                    self.present_asked = on;
                    self.ask_to_present();
                    Ok(())
                } else {
                    Err(PresentError::NotCells)
                };
                let _ = reply.send(result);
            }
            Command::MeshSend(data) => self.core.broadcast(crate::clock::now(), data.to_vec()),
            Command::Stage { speaker, reply } => {
                let _ = reply.send(self.core.set_stage(speaker));
            }
            Command::Hand { raised, reply } => {
                let name = self.config.name.clone();
                let _ = reply.send(self.core.raise_hand(raised, name));
            }
            Command::TreeSend { to, data, reply } => {
                let _ = reply.send(self.core.tree_send(to, data.to_vec()));
            }
            Command::RelaySend { to, data, reply } => {
                let _ = reply.send(self.core.relay_send(to, data.to_vec()));
            }
            Command::RelayLink { peer, up } => self.core.relay_link(peer, up),
            Command::Links { reply } => {
                let _ = reply.send(self.core.links());
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            Command::Raw { peer, bytes } => {
                self.write(&peer, bytes);
            }
        }
    }

    /// Tells the server whether we present: asked for, or a screen shared.
    fn ask_to_present(&mut self) {
        self.core
            .set_presenting(self.present_asked || self.screen_shared);
    }

    /// A message on `channel` for `to`: written to open links, queued for the others; Ok
    /// with the outboxes that hold more than a sender should add to.
    pub(super) fn send(
        &mut self,
        channel: ChannelName,
        data: Bytes,
        to: Target,
    ) -> Result<Vec<crate::outbox::Outbox>, SendError> {
        let all = matches!(to, Target::All);
        if all && self.core.post_to_host(crate::clock::now(), &channel, &data) {
            // Through the host, which relays it to everyone (queued while there is none).
            return Ok(Vec::new());
        }
        if all && self.core.cells_room() {
            // Across the cells: our links reach our cell and a few bridges only.
            self.core
                .broadcast_message(crate::clock::now(), &channel, &data);
            return Ok(Vec::new());
        }
        let targets: Vec<PeerId> = match to {
            Target::All => self
                .core
                .roster()
                .keys()
                .filter(|p| self.core.links_with(p))
                .cloned()
                .collect(),
            Target::One(peer) => vec![peer],
            Target::Many(peers) => peers
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        if let Some(unknown) = targets.iter().find(|p| !self.core.is_member(p)) {
            return Err(SendError::UnknownPeer(unknown.clone()));
        }
        let id = self.core.next_id();
        let bytes = Bytes::from(Envelope::data(channel, id, data.to_vec()).encode());
        for peer in &targets {
            self.deliver(peer, bytes.clone());
        }
        if all && targets.is_empty() {
            // Nobody to send to yet: kept for the first peer whose link opens.
            self.core.hold_for_first(bytes);
        }
        self.flush_all_pending();
        Ok(targets
            .iter()
            .filter_map(|p| self.open_outbox(p))
            .filter(|w| w.progress().0 > crate::outbox::SOFT_LIMIT)
            .cloned()
            .collect())
    }

    /// Sends to `peer`, or queues for it while its link is not open (or what was queued for
    /// it has not all gone out yet: order is kept).
    pub(super) fn deliver(&mut self, peer: &PeerId, bytes: Bytes) {
        if !self.core.is_behind(peer) && self.write(peer, bytes.clone()) {
            return;
        }
        self.core.queue(peer, bytes);
    }

    /// Moves what waits for `peer` into its open link's outbox, up to the outbox's soft
    /// limit: a link that opens with a long queue behind it (up to `queue_per_peer` of the
    /// largest messages) takes it as it drains, instead of all at once past the stall
    /// bound. The rest goes on the next step.
    pub(super) fn flush_pending(&mut self, peer: &PeerId) {
        loop {
            let room = self
                .open_outbox(peer)
                .is_some_and(|w| w.progress().0 <= crate::outbox::SOFT_LIMIT);
            if !room {
                return;
            }
            let Some(bytes) = self.core.next_queued(peer) else {
                return;
            };
            if !self.write(peer, bytes.clone()) {
                self.core.requeue(peer, bytes);
                return;
            }
        }
    }

    /// Flushes what waits for every open link (see `flush_pending`); called every step, so
    /// it looks only at peers whose link is open.
    pub(super) fn flush_all_pending(&mut self) {
        let ready: Vec<PeerId> = self
            .core
            .queued_for()
            .filter(|p| self.open_outbox(p).is_some())
            .cloned()
            .collect();
        for peer in ready {
            self.flush_pending(&peer);
        }
    }
}
