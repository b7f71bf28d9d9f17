//! The core's links: one book per link (its life, see `lifecycle`, and its perfect
//! negotiation, see `negotiation`), what the transport reports, our signed descriptions,
//! ICE restarts, and the policy that closes a link (stalled, failed, unlinked).
//!
//! The driver holds each link's WebRTC side and carries out the [`Output`]s named here:
//! it makes the link and its offer or answer, applies answers and candidates, and closes
//! it, and tells the core what came of it.

use plenum_overlay::{DropReason, Input as OverlayInput};
use plenum_proto::identity::sign_link;
use plenum_proto::signal::SignalPayload;
use plenum_proto::{Envelope, EnvelopeKind, PeerId};

use super::{Output, RoomCore};
use crate::lifecycle::{Due, Lifecycle, Reaction, Transport};
use crate::negotiation::{self, Candidate, Negotiation, OnOffer};
use crate::types::{LinkState, RoomError, RoomEvent};

/// What the core keeps of one link.
#[derive(Debug, Default)]
pub(crate) struct LinkBook {
    /// Opening, open, down and restarting, closed: the one place the link's state lives.
    pub(super) life: Lifecycle,
    /// Where its offer/answer exchange stands, and candidates that came early.
    pub(super) negotiation: Negotiation<Candidate>,
    /// The number of our latest offer on it (an answer naming another is stale), and of
    /// the far side's offer we answer.
    offered: Option<u64>,
    answering: Option<u64>,
}

/// Which of our descriptions is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Description {
    Offer,
    Answer,
}

impl Description {
    fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
        }
    }
}

impl RoomCore {
    /// The state of our link to `peer`.
    pub(crate) fn link_state(&self, peer: &PeerId) -> LinkState {
        self.links
            .get(peer)
            .map_or(LinkState::Waiting, |book| book.life.state())
    }

    /// Whether our link to `peer` is open (its data channel carries envelopes).
    pub(crate) fn is_open(&self, peer: &PeerId) -> bool {
        self.links.get(peer).is_some_and(|book| book.life.is_open())
    }

    /// Our links and their states, by peer.
    pub(crate) fn links(&self) -> Vec<(PeerId, LinkState)> {
        let mut links: Vec<_> = self
            .links
            .iter()
            .map(|(peer, book)| (peer.clone(), book.life.state()))
            .collect();
        links.sort_by(|a, b| a.0.cmp(&b.0));
        links
    }

    /// Peers whose link is open.
    pub(super) fn open_peers(&self) -> Vec<PeerId> {
        let mut open: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, book)| book.life.is_open())
            .map(|(peer, _)| peer.clone())
            .collect();
        open.sort();
        open
    }

    /// A new link to `peer` (replacing any), and our offer on it.
    pub(super) fn offer_to(&mut self, peer: PeerId) {
        let mut book = LinkBook::default();
        book.negotiation.offered();
        self.links.insert(peer.clone(), book);
        self.outputs.push_back(Output::Offer { peer });
    }

    /// Perfect negotiation of admitted descriptions and candidates. The peer with the
    /// larger id is polite: when both sides offer at once, the polite one drops its own
    /// offer and answers; the impolite one ignores the colliding offer and waits for the
    /// answer to its own. Either way one link remains.
    pub(super) fn on_negotiation(&mut self, from: PeerId, payload: SignalPayload) {
        let now = self.now;
        match payload {
            SignalPayload::Offer { sdp, seq, .. } => {
                let polite = negotiation::polite(&self.me, &from);
                let verdict = self.links.get(&from).map_or(OnOffer::Fresh, |book| {
                    book.negotiation.on_offer(polite, &sdp)
                });
                match verdict {
                    OnOffer::Ignore => {
                        tracing::debug!(peer = from.short(), "offer collision; keeping ours");
                    }
                    OnOffer::Restart => {
                        // The far side restarts ICE: answered on the connection we have, so
                        // data and media carry on where they were.
                        let Some(book) = self.links.get_mut(&from) else {
                            return;
                        };
                        tracing::info!(peer = from.short(), "answering an ICE restart");
                        book.life.answering_restart(now);
                        book.answering = Some(seq);
                        let early = book.negotiation.remote_set(&sdp, false);
                        self.outputs.push_back(Output::Answer {
                            peer: from.clone(),
                            sdp,
                            fresh: false,
                        });
                        self.add_candidates(&from, early);
                    }
                    OnOffer::Fresh => {
                        let mut book = LinkBook {
                            answering: Some(seq),
                            ..LinkBook::default()
                        };
                        book.negotiation.remote_set(&sdp, false);
                        self.links.insert(from.clone(), book);
                        self.outputs.push_back(Output::Answer {
                            peer: from,
                            sdp,
                            fresh: true,
                        });
                    }
                }
            }
            SignalPayload::Answer { sdp, answers, .. } => {
                let Some(book) = self
                    .links
                    .get_mut(&from)
                    .filter(|book| book.negotiation.expects_answer())
                else {
                    tracing::debug!(peer = from.short(), "answer without an offer; ignored");
                    return;
                };
                if answers.is_some() && answers != book.offered {
                    // It answers an offer of ours that a newer one replaced (with its
                    // connection): applied to this one, it could never connect.
                    tracing::debug!(
                        peer = from.short(),
                        ?answers,
                        "answer to an older offer; ignored"
                    );
                    return;
                }
                let early = book.negotiation.remote_set(&sdp, true);
                book.life.answered(now);
                self.outputs.push_back(Output::TakeAnswer {
                    peer: from.clone(),
                    sdp,
                });
                self.add_candidates(&from, early);
            }
            SignalPayload::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                let candidate = Candidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                };
                if let Some(candidate) = self
                    .links
                    .get_mut(&from)
                    .and_then(|book| book.negotiation.candidate(candidate))
                {
                    self.outputs.push_back(Output::AddCandidate {
                        peer: from,
                        candidate,
                    });
                }
            }
            // Tree and relay messages go to their overlay before negotiation is looked at,
            // refusals to the room.
            SignalPayload::Tree { .. }
            | SignalPayload::RelayLink { .. }
            | SignalPayload::Refused { .. } => {}
        }
    }

    fn add_candidates(&mut self, peer: &PeerId, candidates: Vec<Candidate>) {
        for candidate in candidates {
            self.outputs.push_back(Output::AddCandidate {
                peer: peer.clone(),
                candidate,
            });
        }
    }

    /// Our description for `to` is made: numbered (higher than any before, also across
    /// runs: the numbers start from the clock), signed and sent.
    pub(super) fn described(&mut self, to: PeerId, kind: Description, sdp: String) {
        self.seq += 1;
        let seq = self.seq;
        let answers = match (kind, self.links.get_mut(&to)) {
            (Description::Offer, Some(book)) => {
                book.offered = Some(seq);
                None
            }
            (Description::Answer, Some(book)) => book.answering,
            (_, None) => None,
        };
        let sig = match sign_link(&self.identity, kind.as_str(), &to, seq, &sdp) {
            Ok(sig) => sig,
            Err(e) => {
                let reason = format!("cannot sign {}: {e}", kind.as_str());
                return self.link_failed(to, reason);
            }
        };
        let key = self.identity.public().encode();
        let credentials = self.credentials.clone();
        let payload = match kind {
            Description::Offer => SignalPayload::Offer {
                sdp,
                key,
                seq,
                sig,
                credentials,
            },
            Description::Answer => SignalPayload::Answer {
                sdp,
                key,
                seq,
                sig,
                credentials,
                answers,
            },
        };
        self.signal(to, payload);
    }

    /// Our local candidate for the link to `peer`: to the far side.
    pub(super) fn gathered(&mut self, peer: PeerId, candidate: Candidate) {
        let payload = SignalPayload::Candidate {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
        };
        self.signal(peer, payload);
    }

    /// The link to `peer` failed (its transport, or making its description): the
    /// application hears why, the topology decides whether to link again.
    pub(super) fn link_failed(&mut self, peer: PeerId, reason: String) {
        tracing::warn!(peer = peer.short(), %reason, "link failed");
        if let Some(book) = self.links.get_mut(&peer) {
            // Whatever it was negotiating is void: a new offer from either side starts
            // afresh.
            book.negotiation = Negotiation::default();
        }
        self.event(RoomEvent::Error(RoomError::LinkFailed {
            peer: peer.clone(),
            reason,
        }));
        let now = self.now;
        self.overlay
            .handle_input(OverlayInput::LinkDown { peer, now });
    }

    /// The driver could not make a link to `peer` at all.
    pub(super) fn no_link(&mut self, peer: PeerId, reason: String) {
        self.links.remove(&peer);
        self.link_failed(peer, reason);
    }

    /// What the transport of the link to `peer` reports.
    pub(super) fn transport(&mut self, peer: PeerId, state: Transport) {
        let now = self.now;
        // One side starts restarts (the smaller id), the other answers.
        let we_start = self.me < peer;
        let Some(book) = self.links.get_mut(&peer) else {
            return;
        };
        match book.life.transport(now, state, we_start) {
            Reaction::Nothing => {}
            Reaction::Back => {
                // Keyframes, so that the far side's video resumes at once.
                tracing::info!(peer = peer.short(), "link back");
                self.outputs
                    .push_back(Output::Keyframes { peer: peer.clone() });
                self.event(RoomEvent::LinkUp { peer });
            }
            Reaction::Down { first, restart } => {
                if first {
                    tracing::info!(peer = peer.short(), ?state, "link down");
                    self.event(RoomEvent::LinkDown { peer: peer.clone() });
                }
                if first && self.overlay.tree().is_some() {
                    // A tree heals around a silent link at once (the orphan rejoins through
                    // its grandparent, its subtree with it) rather than wait for a restart
                    // or the silence timeout: a dead forwarder's subtree is without media
                    // for the ICE timeout, not the 6 s the link would take to give up.
                    self.overlay
                        .handle_input(OverlayInput::LinkDown { peer, now });
                    return;
                }
                if restart {
                    self.restart(&peer);
                }
            }
            Reaction::Failed => {
                let reason = format!("connection {}", state.as_str());
                self.link_failed(peer, reason);
            }
        }
    }

    /// Starts (or retries) an ICE restart of the link to `peer`: new ICE credentials on
    /// the same connection, the offer signed and sent through signaling (held until the
    /// server is back if it is away).
    pub(super) fn restart(&mut self, peer: &PeerId) {
        let now = self.now;
        let Some(book) = self.links.get_mut(peer) else {
            return;
        };
        let tries = book.life.restart_started(now);
        book.negotiation.offered();
        tracing::info!(peer = peer.short(), tries, "ICE restart");
        self.outputs
            .push_back(Output::RestartIce { peer: peer.clone() });
    }

    /// The data channel of the link to `peer` is open (or data proved it): the peer joins
    /// (once per link), our streams and state go to it, its media starts, queued messages
    /// leave.
    pub(super) fn channel_open(&mut self, peer: PeerId) {
        if !self
            .links
            .get_mut(&peer)
            .is_some_and(|book| book.life.channel_opened())
        {
            return;
        }
        self.event(RoomEvent::LinkUp { peer: peer.clone() });
        let now = self.now;
        self.overlay.handle_input(OverlayInput::LinkUp {
            peer: peer.clone(),
            now,
        });
        self.link_opened(peer.clone());
        self.outputs.push_back(Output::MediaUp { peer });
    }

    /// The data channel of the link to `peer` closed: the topology hears the link is down.
    pub(super) fn channel_closed(&mut self, peer: PeerId) {
        let Some(book) = self.links.get_mut(&peer) else {
            return;
        };
        book.life.channel_closed();
        let now = self.now;
        self.overlay
            .handle_input(OverlayInput::LinkDown { peer, now });
    }

    /// Bytes from the link to `peer`: they prove its channel open (data and the open event
    /// travel apart, and the application must see the peer join before its first
    /// message), the topology hears the peer, and the envelope is read.
    pub(super) fn link_data(&mut self, peer: PeerId, bytes: &[u8]) {
        self.channel_open(peer.clone());
        let now = self.now;
        self.overlay.handle_input(OverlayInput::Heard {
            peer: peer.clone(),
            now,
        });
        self.on_envelope(peer, bytes);
    }

    /// The link to `peer` holds more than it may, or its writer made no progress for too
    /// long: it is closed, an error says so, the peer leaves, and the topology links it
    /// again if it comes back. Everyone else carries on.
    pub(super) fn stalled(&mut self, peer: PeerId, queued: usize) {
        if !self.links.contains_key(&peer) {
            return;
        }
        tracing::warn!(peer = peer.short(), queued, "link stalled; closed");
        self.event(RoomEvent::Error(RoomError::LinkStalled {
            peer: peer.clone(),
            queued,
        }));
        self.drop_link(&peer, DropReason::Failed);
        let now = self.now;
        self.overlay
            .handle_input(OverlayInput::LinkDown { peer, now });
    }

    /// Closes our link to `peer` for `reason`; the peer's streams end and it leaves us if
    /// it had joined.
    pub(super) fn drop_link(&mut self, peer: &PeerId, reason: DropReason) {
        if let Some(book) = self.links.remove(peer) {
            if book.life.is_up() {
                self.event(RoomEvent::LinkDown { peer: peer.clone() });
            }
            self.outputs.push_back(Output::Close { peer: peer.clone() });
        }
        if self.sparse && reason == DropReason::Left {
            // No longer in our plan or tree: another peer of the room, not one of ours.
            self.roster.remove(peer);
            self.roles.remove(peer);
            self.pending.remove(peer);
        }
        if self.server_gone.remove(peer) {
            // The server told us it left; with the link gone too, it is gone.
            self.roster.remove(peer);
            self.pending.remove(peer);
            let now = self.now;
            self.overlay.handle_input(OverlayInput::PeerGone {
                peer: peer.clone(),
                now,
            });
        }
        if reason != DropReason::Left && reason != DropReason::Failed {
            let reason = match reason {
                DropReason::ConnectTimeout => "link did not open in time",
                _ => "nothing heard from the peer",
            };
            self.event(RoomEvent::Error(RoomError::LinkFailed {
                peer: peer.clone(),
                reason: reason.into(),
            }));
        }
        tracing::debug!(peer = peer.short(), ?reason, "link dropped");
        self.link_closed(peer.clone());
    }

    /// Every link check: a link whose restart the far side took part in is alive even
    /// while nothing arrives (SCTP retransmits on its backed-off timer, up to several
    /// seconds after the path returns), so the topology hears it; restarts that did not
    /// finish are retried, three tries, then the link is given up and made anew.
    pub(super) fn check_links(&mut self) {
        let now = self.now;
        let mut heard = Vec::new();
        let mut due = Vec::new();
        for (peer, book) in &mut self.links {
            if book.life.shielded(now) {
                heard.push(peer.clone());
            }
            match book.life.tick(now) {
                Due::Nothing => {}
                due_now => due.push((peer.clone(), due_now)),
            }
        }
        for peer in heard {
            self.overlay.handle_input(OverlayInput::Heard { peer, now });
        }
        due.sort_by(|a, b| a.0.cmp(&b.0));
        for (peer, due) in due {
            match due {
                Due::GiveUp { tries } => {
                    let reason = format!("{tries} ICE restarts did not bring it back");
                    self.link_failed(peer, reason);
                }
                _ => self.restart(&peer),
            }
        }
    }

    /// Our addresses changed: signaling is dropped and made anew (its connection may be
    /// bound to the address that went away: the restart offers wait for the new one), and
    /// every open link is down at once and restarts, instead of waiting to go silent.
    pub(super) fn addresses_changed(&mut self) {
        tracing::info!("local addresses changed; restarting links and signaling");
        if self.server_up {
            self.server_up = false;
            let reason = "local addresses changed".to_owned();
            self.outputs.push_back(Output::DropServer { reason });
        }
        for peer in self.open_peers() {
            if self
                .links
                .get_mut(&peer)
                .is_some_and(|book| book.life.addresses_changed())
            {
                self.event(RoomEvent::LinkDown { peer: peer.clone() });
            }
            self.restart(&peer);
        }
    }

    /// Keeps the link to `peer` alive.
    pub(super) fn heartbeat(&mut self, peer: PeerId) {
        let bytes = Envelope::control(EnvelopeKind::Heartbeat, 0)
            .encode()
            .into();
        self.outputs.push_back(Output::Write { peer, bytes });
    }
}

#[cfg(test)]
#[path = "links_tests.rs"]
mod tests;
