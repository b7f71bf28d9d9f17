//! The call's roster: who is in the room and how each link is, read from the room once a
//! second and told to the view when it changed, with the signaling status and our place in
//! a cellular room.

use std::collections::BTreeSet;

use plenum::{LinkState, PeerId};
use plenum_media::Content;

use super::{Task, peer_view};
use crate::types::{PeerState, PeerView, Role, UiEvent};

impl Task {
    /// Reads the room's roster and link states, and tells the view what changed.
    pub(super) async fn refresh(&mut self) {
        let Ok(infos) = self.room.peers().await else {
            return;
        };
        let mut present: BTreeSet<PeerId> = infos.iter().map(|i| i.peer.clone()).collect();
        let presenter = self.stage.unlinked_presenter(|p| present.contains(p));
        let speakers = self.stage.unlinked_speakers(|p| present.contains(p));
        if let Some((root, _)) = &presenter {
            present.insert(root.clone());
        }
        present.extend(speakers.iter().map(|(p, _)| p.clone()));
        let gone: Vec<PeerId> = self
            .peers
            .keys()
            .filter(|p| !present.contains(*p))
            .cloned()
            .collect();
        for peer in gone {
            self.peers.remove(&peer);
            self.linked.remove(&peer);
            self.hands.remove(&peer);
            self.emit(UiEvent::CursorGone {
                peer: peer.as_str().to_owned(),
            })
            .await;
        }
        let ours = plenum::Role::from(self.me.role);
        for info in infos {
            let state = match info.state {
                _ if info.refused => PeerState::Refused,
                _ if !ours.links_with(info.role) => PeerState::InRoom,
                LinkState::Connected => {
                    self.linked.insert(info.peer.clone());
                    PeerState::Connected
                }
                _ if self.linked.contains(&info.peer) => PeerState::Reconnecting,
                LinkState::Disconnected | LinkState::Failed => PeerState::Reconnecting,
                _ => PeerState::Connecting,
            };
            let view = self
                .peers
                .entry(info.peer.clone())
                .or_insert_with(|| peer_view(&info.peer, info.name.as_str(), info.role.into()));
            view.state = state;
            view.role = info.role.into();
            view.path = info.path.map(|p| p.as_str().to_owned());
            view.verified = self
                .verified
                .read()
                .is_ok_and(|v| v.contains(info.peer.as_str()));
            view.safety_code = info.safety_code;
            if state != PeerState::Connected {
                view.rtt_ms = None;
                view.quality = None;
            }
        }
        let unlinked = presenter
            .map(|p| (p, PeerState::Presenting))
            .into_iter()
            .chain(speakers.into_iter().map(|s| (s, PeerState::OnStage)));
        for ((peer, name), state) in unlinked {
            let view = self
                .peers
                .entry(peer.clone())
                .or_insert_with(|| peer_view(&peer, &name, Role::Both));
            view.name = name;
            view.state = state;
        }
        if let Ok(stats) = self.room.stats().await {
            crate::quality::grade_links(&mut self.peers, &mut self.heard, &stats);
        }
        self.emit_roster().await;
        self.emit_status().await;
    }

    pub(super) async fn emit_network(&self) {
        let Some(state) = &self.network else {
            return;
        };
        let peer = |(p, c): (&PeerId, &u32)| crate::types::NetworkPeer {
            peer: p.as_str().to_owned(),
            cell: *c,
        };
        let view = crate::types::NetworkView {
            cell: state.cell,
            cells: state.cells,
            cell_size: state.cell_size as u32,
            bridges: state.bridges.iter().map(|(p, c)| peer((p, c))).collect(),
            known: self.cells_known.iter().map(peer).collect(),
        };
        self.emit(UiEvent::Network { view }).await;
    }

    pub(super) async fn emit_roster(&mut self) {
        for (peer, view) in &mut self.peers {
            view.speaking = self.speaking.contains(peer);
            view.hand = self.hands.contains(peer);
            view.muted = self.muted.get(peer).copied();
            view.video = self.video.contains_key(peer);
            view.screen = self.screens.contains_key(peer);
            // A presenter down the tree announces nothing to us: its pictures say it.
            if view.state == PeerState::Presenting {
                view.video = self.tiles.shows(peer.as_str());
                view.screen = self
                    .tiles
                    .shows(&crate::video::tile_name(peer.as_str(), Content::Screen));
            }
        }
        let roster: Vec<PeerView> = std::iter::once(self.me.clone())
            .chain(self.peers.values().cloned())
            .collect();
        if roster != self.last_roster {
            self.last_roster = roster.clone();
            self.emit(UiEvent::Roster { peers: roster }).await;
        }
    }

    pub(super) async fn emit_status(&mut self) {
        let reconnecting: Vec<String> = self
            .peers
            .values()
            .filter(|p| p.state == PeerState::Reconnecting)
            .map(|p| p.name.clone())
            .collect();
        let status = (self.signaling, reconnecting);
        if status != self.last_status {
            self.last_status = status.clone();
            self.emit(UiEvent::Status {
                signaling: status.0,
                reconnecting: status.1,
            })
            .await;
        }
    }
}
