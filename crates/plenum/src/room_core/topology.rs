//! The core's topology and server: the room's overlay behind one step (every topology's
//! outputs become the core's, see [`Step`]), what the signaling server says, and the frames
//! for it, held while it is away or its queue is full.

use std::collections::BTreeSet;
use std::time::Instant;

use plenum_overlay::{Appearance, Input as OverlayInput, RelaySendError, TreeTarget};
use plenum_proto::overlay::CellPlan;
use plenum_proto::signal::{ClientToServer, PeerSummary, Role, ServerToClient, SignalPayload};
use plenum_proto::{ChannelName, DisplayName, PeerId};

use super::{Floor, HEARD_NAMES, Output, RoomCore};
use crate::overlay::{Overlay, Step};
use crate::types::{RoomError, RoomEvent, TreeSendError};

/// In a cells room a broadcast's first byte says what it carries: the application's
/// `mesh_send` bytes, or a message on a channel sent to everyone (the channel name's length
/// and the name follow).
const CELLS_MESH: u8 = 0;
const CELLS_CHANNEL: u8 = 1;

impl RoomCore {
    /// Carries the overlay's steps into outputs until it waits.
    pub(super) fn step_overlay(&mut self) {
        loop {
            match self.overlay.step() {
                Step::Timeout(at) => {
                    self.overlay_at = at;
                    return;
                }
                step => self.on_step(step),
            }
        }
    }

    fn on_step(&mut self, step: Step) {
        match step {
            Step::Link {
                peer,
                initiate,
                introduce: true,
            } => self.overlay_link(peer, initiate),
            Step::Link { peer, initiate, .. } => {
                if initiate {
                    self.offer_to(peer);
                }
            }
            Step::Unlink { peer, reason } => self.drop_link(&peer, reason),
            Step::Heartbeat(peer) => self.heartbeat(peer),
            Step::Write { peer, bytes } => self.outputs.push_back(Output::Write { peer, bytes }),
            Step::Signal { to, payload } => self.signal(to, payload),
            Step::Server(frame) => self.for_server(frame),
            Step::AskLink { peer, degree } => {
                let server_away = !self.server_up;
                match self.overlay.relay() {
                    // The server is away: asked over the network instead.
                    Some(relay) if server_away && !relay.neighbours().is_empty() => {
                        relay.ask_over_network(peer, degree);
                    }
                    _ => self.signal(peer, SignalPayload::RelayLink { degree }),
                }
            }
            // Relayed by the overlay: a peer it has not named to us yet may be about to be.
            Step::Negotiation { from, payload } => self.negotiation(from, payload, true),
            Step::Malformed { peer, what, reason } => self.malformed(peer, what, reason),
            Step::Synced(in_sync) => {
                self.outputs.push_back(Output::Synced(in_sync));
                self.event(RoomEvent::Synced { in_sync });
            }
            Step::Event(RoomEvent::MeshMessage { from, data, hops }) if self.cells_room() => {
                self.cells_broadcast(from, data, hops);
            }
            Step::Event(event) => self.event(event),
            Step::Timeout(at) => self.overlay_at = at,
        }
    }

    /// A cells room's broadcast as it came: the application's `mesh_send`, or a message
    /// on a channel to everyone.
    fn cells_broadcast(&mut self, from: PeerId, data: bytes::Bytes, hops: u8) {
        match &data[..] {
            [CELLS_MESH, ..] => {
                let data = data.slice(1..);
                self.event(RoomEvent::MeshMessage { from, data, hops });
            }
            [CELLS_CHANNEL, n, rest @ ..] => {
                let start = 2 + usize::from(*n);
                let channel = rest
                    .get(..usize::from(*n))
                    .and_then(|name| std::str::from_utf8(name).ok())
                    .and_then(|name| ChannelName::new(name).ok());
                let Some(channel) = channel else {
                    return self.malformed(from, "cells broadcast", "a bad channel name");
                };
                let lossy = self.lossy.contains(&channel);
                let event = RoomEvent::Message {
                    channel,
                    from,
                    data: data.slice(start..),
                };
                self.outputs.push_back(if lossy {
                    Output::Lossy(event)
                } else {
                    Output::Event(event)
                });
            }
            _ => self.malformed(from, "cells broadcast", "an unknown kind"),
        }
    }

    /// In a cells room: a message on `channel` for everyone, as a broadcast across the
    /// cells (our links reach only our cell and a few bridges).
    pub(crate) fn broadcast_message(&mut self, now: Instant, channel: &ChannelName, data: &[u8]) {
        let name = channel.as_str().as_bytes();
        // Channel names are at most 12 bytes.
        let head = [&[CELLS_CHANNEL, name.len() as u8][..], name].concat();
        self.cells_out(now, &head, data);
    }

    /// A cells room's broadcast of `data` behind `head` (its kind, and what the kind says).
    fn cells_out(&mut self, now: Instant, head: &[u8], data: &[u8]) {
        self.now = self.now.max(now);
        let now = self.now;
        let data = [head, data].concat();
        self.overlay
            .handle_input(OverlayInput::Broadcast { data, now });
    }

    /// A link a tree or relay node asks for: the peer joins the roster (under the name
    /// the server gave with what it relayed from it, or else its short id: these overlays
    /// do not say names), we offer if it is ours to, and negotiation it sent before we
    /// knew it is taken up.
    fn overlay_link(&mut self, peer: PeerId, initiate: bool) {
        if matches!(self.overlay, Overlay::Tree(_)) && self.is_refused(&peer) {
            // The tree asks for this link anew: the peer asked to join again (perhaps with
            // the right code now), or took us after refusing us once. This attempt is
            // checked afresh; a refusal was for the one that failed.
            tracing::info!(
                peer = peer.short(),
                "a refused peer asks again; checked afresh"
            );
            self.admission.lift_refusal(&peer);
        }
        if !self.roster.contains_key(&peer) {
            let (name, role) = match self.heard_names.remove(&peer) {
                Some((name, role)) => (Some(name), role),
                None => (DisplayName::new(peer.short()).ok(), Role::default()),
            };
            if let Some(name) = name {
                self.roster.insert(peer.clone(), name);
                self.set_role(peer.clone(), role);
            }
        }
        if initiate {
            self.offer_to(peer.clone());
        }
        self.named(peer);
    }

    /// The name (and role) the server gave with a frame it relayed from `peer`. A peer on
    /// the roster under its short id (a tree or relay link) takes them; one not on it yet
    /// keeps them for when its link is asked for (the roster is whom we may link: hearing a
    /// name must not put a peer on it).
    fn heard_name(&mut self, peer: &PeerId, name: &DisplayName, role: Role) {
        match self.roster.get_mut(peer) {
            Some(known) if known.as_str() == peer.short() && known != name => {
                *known = name.clone();
                self.set_role(peer.clone(), role);
            }
            Some(_) => {}
            None if self.heard_names.len() < HEARD_NAMES => {
                self.heard_names.insert(peer.clone(), (name.clone(), role));
            }
            None => {}
        }
    }

    /// The peers the server named when we joined.
    pub(crate) fn welcome(&mut self, peers: Vec<PeerSummary>) {
        let now = self.now;
        for PeerSummary {
            peer,
            name,
            publish,
            role,
        } in peers
        {
            self.set_publisher(&peer, publish);
            self.set_role(peer.clone(), role);
            if peer == self.me {
                continue;
            }
            if self.role.links_with(role) {
                self.overlay.handle_input(OverlayInput::PeerAppeared {
                    peer: peer.clone(),
                    origin: Appearance::Roster,
                    now,
                });
            }
            // A relay network's sample is whom it may link, not whom it has.
            if !matches!(self.overlay, Overlay::Relay(_)) {
                self.roster.insert(peer, name);
            }
        }
    }

    /// A frame from the signaling server.
    pub(super) fn on_server(&mut self, frame: ServerToClient) {
        let now = self.now;
        if let ServerToClient::Signal {
            from,
            name: Some(name),
            role,
            ..
        } = &frame
        {
            self.heard_name(from, name, role.unwrap_or_default());
        }
        match frame {
            ServerToClient::PeerJoined {
                peer,
                name,
                publish,
                role,
            } => {
                self.set_publisher(&peer, publish);
                if peer == self.me {
                    return;
                }
                self.server_gone.remove(&peer);
                self.set_role(peer.clone(), role);
                let new = self.add_member(peer.clone(), name);
                if self.role.links_with(role) {
                    self.overlay.handle_input(OverlayInput::PeerAppeared {
                        peer: peer.clone(),
                        origin: Appearance::Joined,
                        now,
                    });
                }
                if new {
                    self.member_changed(peer, true);
                }
            }
            ServerToClient::PeerLeft { peer } => {
                self.heard_names.remove(&peer);
                if self.is_open(&peer) {
                    // The server lost it, our link did not (its signaling dropped, or the
                    // server restarted): the link's heartbeat decides, a `bye` ends it.
                    tracing::info!(peer = peer.short(), "server says left; link still up");
                    self.server_gone.insert(peer);
                    return;
                }
                let known = self.remove_member(&peer);
                self.forget_queued(&peer);
                self.forget_checks(&peer);
                self.overlay.handle_input(OverlayInput::PeerGone {
                    peer: peer.clone(),
                    now,
                });
                if known {
                    self.member_changed(peer, false);
                }
            }
            ServerToClient::Signal {
                from,
                payload: SignalPayload::Refused { reason },
                ..
            } => {
                tracing::warn!(peer = from.short(), %reason, "our credentials were refused");
                self.refuse_link(&from);
                let error = RoomError::NotVerified { peer: from, reason };
                self.event(RoomEvent::Error(error));
            }
            ServerToClient::Host { peer, epoch } => match self.overlay.host() {
                Some(host) => {
                    tracing::info!(host = peer.as_ref().map(PeerId::short), epoch, "host seat");
                    host.on_seat(peer, epoch, now);
                }
                None => tracing::debug!("host seat word in a room without one; ignored"),
            },
            ServerToClient::Cell { plan } => {
                if let Overlay::Mesh(_) = self.overlay
                    && self.sparse
                {
                    self.on_plan(plan);
                }
            }
            ServerToClient::Stage { seats, presenter } if self.cells_room() => {
                self.event(RoomEvent::Seats { seats, presenter });
            }
            ServerToClient::Root {} => {
                if let Some(tree) = self.overlay.tree() {
                    tracing::info!("the server made us the tree's root");
                    tree.promote();
                }
            }
            ServerToClient::Signal {
                from,
                payload: SignalPayload::RelayLink { degree },
                ..
            } => match self.overlay.relay() {
                Some(relay) => relay.link_requested(from, degree),
                None => tracing::debug!(
                    peer = from.short(),
                    "relay link request in a room without a relay network; ignored"
                ),
            },
            ServerToClient::Signal {
                from,
                payload: SignalPayload::Tree { msg },
                ..
            } => match self.overlay.tree() {
                Some(tree) => tree.handle_msg(from, plenum_overlay::TreeMsg::from(msg), now),
                None => tracing::debug!(
                    peer = from.short(),
                    "tree message in a room without a tree; ignored"
                ),
            },
            ServerToClient::Signal { from, payload, .. } => {
                // In a cellular or tree room, a plan may name the peer soon.
                let hold = self.sparse;
                self.negotiation(from, payload, hold);
            }
            ServerToClient::Error { code, message, .. } => {
                tracing::warn!(code = code.as_str(), %message, "signaling refused a frame");
                self.event(RoomEvent::Error(RoomError::Signaling { code, message }));
            }
            _ => {}
        }
    }

    /// The server's plan for us in a cellular room: the peers it names are the ones we
    /// link (the links are asked for before what those peers sent meanwhile is taken up).
    fn on_plan(&mut self, plan: CellPlan) {
        let now = self.now;
        let mut named = BTreeSet::new();
        for s in plan
            .members
            .iter()
            .chain(plan.bridges.iter().map(|b| &b.peer))
        {
            if s.peer == self.me {
                continue;
            }
            self.set_publisher(&s.peer, s.publish);
            self.add_member(s.peer.clone(), s.name.clone());
            named.insert(s.peer.clone());
        }
        self.overlay.handle_input(OverlayInput::Plan { plan, now });
        self.step_overlay();
        for peer in named {
            self.named(peer);
        }
    }

    /// No link to `peer` while it stays: ours is closed and the topology forgets it.
    pub(super) fn refuse_link(&mut self, peer: &PeerId) {
        self.refuse(peer);
        if self.links.contains_key(peer) {
            self.drop_link(peer, plenum_overlay::DropReason::Left);
        }
        let now = self.now;
        self.overlay.handle_input(OverlayInput::PeerGone {
            peer: peer.clone(),
            now,
        });
    }

    /// `peer` said goodbye: the topology forgets it, and its checks are made again if it
    /// comes back.
    pub(super) fn bye(&mut self, peer: PeerId, known: bool) {
        self.forget_checks(&peer);
        let now = self.now;
        self.overlay.handle_input(OverlayInput::PeerGone {
            peer: peer.clone(),
            now,
        });
        if known {
            self.member_changed(peer, false);
        }
    }

    /// Met again: the link layer offers at once, whatever its backoff.
    pub(super) fn meet_again(&mut self, peer: PeerId) {
        let now = self.now;
        self.overlay.handle_input(OverlayInput::PeerGone {
            peer: peer.clone(),
            now,
        });
        self.overlay.handle_input(OverlayInput::PeerAppeared {
            peer,
            origin: Appearance::Roster,
            now,
        });
    }

    /// In a host room, the room's peers changed: the application hears whom, and the list.
    fn member_changed(&mut self, peer: PeerId, joined: bool) {
        let Some(host) = self.overlay.host() else {
            return;
        };
        let peers = host.members();
        let event = if joined {
            RoomEvent::MemberJoined { peer, peers }
        } else {
            RoomEvent::MemberLeft { peer, peers }
        };
        self.event(event);
    }

    /// A payload for `to` through the server, or held until the server is back. Without
    /// the server, a relay network carries its links' negotiation itself: it needs no
    /// server after the join. (With it, the server is the surer way: the other peer may
    /// have no link yet.)
    pub(super) fn signal(&mut self, to: PeerId, payload: SignalPayload) {
        let server_away = !self.server_up;
        if server_away
            && !matches!(payload, SignalPayload::RelayLink { .. })
            && let Some(relay) = self.overlay.relay()
            && !relay.neighbours().is_empty()
        {
            let bytes = serde_json::to_vec(&payload).unwrap_or_default();
            if let Err(e) = relay.send_signal(to, bytes) {
                tracing::debug!(error = %e, "negotiation not relayed");
            }
            return;
        }
        self.for_server(ClientToServer::Signal {
            to,
            from: None,
            payload,
        });
    }

    /// A frame for the server: now, or held (in order, the oldest dropped past the bound)
    /// while it is away or its queue is full. The core never waits for the server.
    pub(super) fn for_server(&mut self, frame: ClientToServer) {
        if self.server_up && !self.server_busy && self.backlog.len() == 0 {
            self.outputs.push_back(Output::Server(frame));
        } else if !self.backlog.push(frame) {
            tracing::debug!("signaling backlog full; oldest frame dropped");
        }
    }

    /// The server's queue did not take `frame`: it waits first, with every frame for the
    /// server not yet carried out behind it, until [`Self::server_ready`].
    pub(super) fn server_full(&mut self, frame: ClientToServer) {
        self.server_busy = true;
        let mut held = vec![frame];
        for output in std::mem::take(&mut self.outputs) {
            match output {
                Output::Server(frame) => held.push(frame),
                other => self.outputs.push_back(other),
            }
        }
        self.backlog.hold_first(held);
    }

    /// Whether frames wait for the server.
    pub(crate) fn holds_for_server(&self) -> bool {
        self.backlog.len() > 0
    }

    /// The server's queue may have room: what waits goes.
    pub(super) fn server_ready(&mut self) {
        if !self.server_up {
            return;
        }
        self.server_busy = false;
        let outputs = &mut self.outputs;
        self.backlog.flush(|frame| {
            outputs.push_back(Output::Server(frame));
            None
        });
    }

    /// The server connection is gone (it is being made again); links go on.
    pub(super) fn server_lost(&mut self, reason: String) {
        self.server_up = false;
        self.event(RoomEvent::Error(RoomError::SignalingLost(reason)));
    }

    /// The server is back: peers that joined while we were away are met (those we are
    /// linked to stay as they are), and what waited for it goes.
    pub(super) fn server_back(&mut self, peers: Vec<PeerSummary>) {
        let now = self.now;
        if let Some(host) = self.overlay.host() {
            // A restarted server numbers its hosts from 1 again: its word wins.
            host.forget_epoch();
        }
        for PeerSummary {
            peer,
            name,
            publish,
            role,
        } in peers
        {
            self.set_publisher(&peer, publish);
            if peer != self.me && !self.is_member(&peer) {
                self.add_member(peer.clone(), name);
                self.set_role(peer.clone(), role);
                if self.role.links_with(role) {
                    self.overlay.handle_input(OverlayInput::PeerAppeared {
                        peer,
                        origin: Appearance::Roster,
                        now,
                    });
                }
            }
        }
        self.server_up = true;
        // A restarted server knows nothing of a cells room's stage: our wish for a seat
        // goes again (a server that kept it changes nothing).
        if self.cells_room() && self.floor != Floor::default() {
            let floor = self.floor;
            self.for_server(floor.frame());
        }
        let held = self.backlog.len();
        self.server_ready();
        tracing::info!(held, "signaling resumed");
        self.event(RoomEvent::SignalingResumed);
    }

    /// A host room's post to everyone, through the host (queued while there is none).
    /// False when the room has no host.
    pub(crate) fn post_to_host(
        &mut self,
        now: Instant,
        channel: &ChannelName,
        data: &[u8],
    ) -> bool {
        self.now = self.now.max(now);
        let now = self.now;
        match self.overlay.host() {
            Some(host) => {
                host.post(channel.clone(), data.to_vec(), now);
                true
            }
            None => false,
        }
    }

    /// A broadcast to every peer of the room over the overlay (a host room's is a post
    /// through the host, on channel `mesh`).
    pub(crate) fn broadcast(&mut self, now: Instant, data: Vec<u8>) {
        if self.cells_room() {
            return self.cells_out(now, &[CELLS_MESH], &data);
        }
        self.now = self.now.max(now);
        let now = self.now;
        match (self.overlay.host(), ChannelName::new("mesh")) {
            (Some(host), Ok(channel)) => host.post(channel, data, now),
            _ => self
                .overlay
                .handle_input(OverlayInput::Broadcast { data, now }),
        }
    }

    /// Data for tree neighbours.
    pub(crate) fn tree_send(&mut self, to: TreeTarget, data: Vec<u8>) -> Result<(), TreeSendError> {
        match self.overlay.tree() {
            Some(tree) => tree.send(to, data).map_err(TreeSendError::from),
            None => Err(TreeSendError::NotATree),
        }
    }

    /// Raises or lowers our hand to a tree's root.
    pub(crate) fn raise_hand(
        &mut self,
        raised: bool,
        name: DisplayName,
    ) -> Result<(), TreeSendError> {
        if self.cells_room() {
            let floor = Floor {
                hand: raised,
                ..self.floor
            };
            self.set_floor(floor);
            return Ok(());
        }
        match self.overlay.tree() {
            Some(tree) => tree.raise_hand(raised, name).map_err(TreeSendError::from),
            None => Err(TreeSendError::NotATree),
        }
    }

    /// Whether the room is cellular (links follow a cell plan).
    pub(crate) fn cells_room(&self) -> bool {
        matches!(self.overlay, Overlay::Mesh(_)) && self.sparse
    }

    /// In a cells room: whether our voice is on (the speaking detector's word). The server
    /// hears of a change, and seats us on the stage or frees our seat.
    pub(crate) fn set_speaking(&mut self, speaking: bool) {
        if self.cells_room() {
            let floor = Floor {
                speaking,
                ..self.floor
            };
            self.set_floor(floor);
        }
    }

    /// In a cells room: whether we present (our camera and screen to every cell, and our
    /// voice). The server hears of a change; one peer presents at a time.
    pub(crate) fn set_presenting(&mut self, presenting: bool) {
        if self.cells_room() {
            let floor = Floor {
                presenting,
                ..self.floor
            };
            self.set_floor(floor);
        }
    }

    fn set_floor(&mut self, floor: Floor) {
        if floor != self.floor {
            self.floor = floor;
            self.for_server(floor.frame());
        }
    }

    /// At a tree's root: puts `speaker` on stage for the whole tree.
    pub(crate) fn set_stage(&mut self, speaker: Option<PeerId>) -> Result<(), TreeSendError> {
        match self.overlay.tree() {
            Some(tree) => tree.set_stage(speaker).map_err(TreeSendError::from),
            None => Err(TreeSendError::NotATree),
        }
    }

    /// Data for a peer of a relay network, relayed if it is not a neighbour.
    pub(crate) fn relay_send(&mut self, to: PeerId, data: Vec<u8>) -> Result<(), RelaySendError> {
        match self.overlay.relay() {
            Some(relay) => relay.send(to, data).map(|_| ()),
            None => Err(RelaySendError::NotARelay),
        }
    }

    /// Forms (or closes) a direct link in a relay network.
    pub(crate) fn relay_link(&mut self, peer: PeerId, up: bool) {
        if let Some(relay) = self.overlay.relay() {
            if up {
                relay.connect(peer);
            } else {
                relay.disconnect(&peer);
            }
        }
    }
}
