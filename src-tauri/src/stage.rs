//! A tree room's stage as the call shows it: who is on it, and at the root (the presenter)
//! the raised hands waiting, oldest first. Hands come up the tree (`RoomEvent::Hand`) and the
//! root's word comes down it (`RoomEvent::Stage`), which answers the speaker's hand.
//!
//! It also keeps the presenter for a viewer deeper than the root's children: that viewer is
//! not linked to the root, whose media comes down the tree under the root's id, so the call
//! shows the root a tile of its own (`PeerState::Presenting`), named as the tree said.
//! So does a cells room's presenter in another cell, whose pictures cross the cells
//! (`RoomEvent::Seats`).

use plenum::{DisplayName, PeerId, TreeSendError};
use plenum_proto::signal::StageSeat;

use crate::types::{CommandError, ErrorKind, StagePeer, UiEvent};

/// Raised hands a tree's root lists at most (the oldest stay; a newer one waits until one
/// is answered or lowered).
const HANDS_MAX: usize = 256;

#[derive(Debug, Default)]
pub(crate) struct TreeStage {
    speaker: Option<StagePeer>,
    hands: Vec<StagePeer>,
    /// The tree's root and its name, while it is not us.
    root: Option<(PeerId, String)>,
    /// A cells room's presenter and its name, while it is not us.
    presenter: Option<(PeerId, String)>,
    /// A cells room's seated speakers and their names, but us.
    speakers: Vec<(PeerId, String)>,
}

fn view(peer: &PeerId, name: Option<&DisplayName>) -> StagePeer {
    StagePeer {
        peer: peer.as_str().to_owned(),
        name: name.map(|n| n.as_str().to_owned()),
    }
}

impl TreeStage {
    /// At the root: `peer` raised (or lowered) its hand.
    pub(crate) fn hand(&mut self, peer: &PeerId, name: &DisplayName, raised: bool) {
        self.hands.retain(|h| h.peer != peer.as_str());
        if raised && self.hands.len() < HANDS_MAX {
            self.hands.push(view(peer, Some(name)));
        }
    }

    /// The root put `speaker` on stage (`None`: nobody); a speaker's hand is answered.
    pub(crate) fn set(&mut self, speaker: Option<&PeerId>, name: Option<&DisplayName>) {
        if let Some(speaker) = speaker {
            self.hands.retain(|h| h.peer != speaker.as_str());
        }
        self.speaker = speaker.map(|p| view(p, name));
    }

    /// Our place in the tree changed: `root` is the tree's root, once known, named
    /// `root_name` (or its short id, until the tree says).
    pub(crate) fn set_root(
        &mut self,
        is_root: bool,
        root: Option<PeerId>,
        root_name: Option<&DisplayName>,
    ) {
        self.root = root.filter(|_| !is_root).map(|root| {
            let name = root_name.map_or_else(|| root.short().to_owned(), |n| n.as_str().to_owned());
            (root, name)
        });
    }

    /// A cells room's stage as the server said it: its seated speakers and its presenter
    /// (`None`: nobody presents); `me` (our id) is never shown as another. Returns what the
    /// top bar says of the presenter.
    pub(crate) fn set_cells_stage(
        &mut self,
        seats: &[Option<StageSeat>],
        presenter: Option<&StageSeat>,
        me: &str,
    ) -> UiEvent {
        let named = |p: &StageSeat| (p.peer.clone(), p.name.as_str().to_owned());
        let you = presenter.is_some_and(|p| p.peer.as_str() == me);
        self.presenter = presenter.filter(|_| !you).map(named);
        self.speakers = seats
            .iter()
            .flatten()
            .filter(|p| p.peer.as_str() != me)
            .map(named)
            .collect();
        let name = self.presenter.as_ref().map(|(_, name)| name.clone());
        UiEvent::RoomPresenter { name, you }
    }

    /// The seated speakers to show beside the peers we are linked to (`linked`) and the
    /// presenter: those in other cells, whose voices cross the cells.
    pub(crate) fn unlinked_speakers(
        &self,
        linked: impl Fn(&PeerId) -> bool,
    ) -> Vec<(PeerId, String)> {
        let presenter = self.presenter.as_ref().map(|(p, _)| p);
        self.speakers
            .iter()
            .filter(|(p, _)| !linked(p) && Some(p) != presenter)
            .cloned()
            .collect()
    }

    /// The presenter to show beside the peers we are linked to (`linked`): the tree's
    /// root, or a cells room's presenter, if it is none of them.
    pub(crate) fn unlinked_presenter(
        &self,
        linked: impl Fn(&PeerId) -> bool,
    ) -> Option<(PeerId, String)> {
        self.root
            .clone()
            .or_else(|| self.presenter.clone())
            .filter(|(root, _)| !linked(root))
    }

    /// What the view shows.
    pub(crate) fn event(&self) -> UiEvent {
        UiEvent::Stage {
            speaker: self.speaker.clone(),
            hands: self.hands.clone(),
        }
    }
}

/// A tree room's refusal (of a hand or a stage), for the user.
pub(crate) fn tree_error(e: TreeSendError) -> CommandError {
    match e {
        TreeSendError::Closed => CommandError::not_in_room(),
        e => CommandError::new(ErrorKind::SendFailed, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: usize) -> PeerId {
        PeerId::new(format!("{n:040x}")).expect("an id")
    }

    fn hands(stage: &TreeStage) -> Vec<String> {
        stage.hands.iter().map(|h| h.peer.clone()).collect()
    }

    #[test]
    fn the_root_is_shown_beside_our_links_only_when_we_are_not_linked_to_it() {
        let mut stage = TreeStage::default();
        let root = peer(7);
        // Named by its short id until the tree says its name.
        stage.set_root(false, Some(root.clone()), None);
        let none = |_: &PeerId| false;
        assert_eq!(
            stage.unlinked_presenter(none),
            Some((root.clone(), root.short().to_owned()))
        );
        let rita = DisplayName::new("Rita").expect("a name");
        stage.set_root(false, Some(root.clone()), Some(&rita));
        assert_eq!(
            stage.unlinked_presenter(none),
            Some((root.clone(), "Rita".into()))
        );
        // Linked to it (its child): its own tile is the link's.
        assert_eq!(stage.unlinked_presenter(|p| *p == root), None);
        // We are the root.
        stage.set_root(true, Some(peer(1)), Some(&rita));
        assert_eq!(stage.unlinked_presenter(none), None);
    }

    #[test]
    fn a_cells_rooms_presenter_and_speakers_are_shown_while_we_are_not_linked_to_them() {
        let mut stage = TreeStage::default();
        let me = peer(1);
        let seat = |n: usize| StageSeat {
            peer: peer(n),
            name: DisplayName::new("Pia").expect("a name"),
            cell: 2,
        };
        let none = |_: &PeerId| false;
        let seats = [Some(seat(5)), None, Some(seat(6)), Some(seat(1))];
        stage.set_cells_stage(&seats, Some(&seat(5)), me.as_str());
        assert_eq!(
            stage.unlinked_presenter(none),
            Some((peer(5), "Pia".into()))
        );
        // The speakers shown beside: neither the presenter (its own tile) nor us.
        assert_eq!(stage.unlinked_speakers(none), [(peer(6), "Pia".into())]);
        // A cell mate: its own tile is the link's.
        assert_eq!(stage.unlinked_presenter(|p| *p == peer(5)), None);
        assert!(stage.unlinked_speakers(|p| *p == peer(6)).is_empty());
        stage.set_cells_stage(&seats, Some(&seat(1)), me.as_str());
        assert_eq!(stage.unlinked_presenter(none), None);
        assert_eq!(stage.unlinked_speakers(none).len(), 2);
        stage.set_cells_stage(&[None, None, None, None], None, me.as_str());
        assert_eq!(stage.unlinked_presenter(none), None);
        assert!(stage.unlinked_speakers(none).is_empty());
    }

    #[test]
    fn hands_wait_oldest_first_until_lowered_or_answered() {
        let name = DisplayName::new("Vic").expect("a name");
        let mut stage = TreeStage::default();
        for n in 1..=3 {
            stage.hand(&peer(n), &name, true);
        }
        // Raised again: it keeps no second place, and goes to the back.
        stage.hand(&peer(1), &name, true);
        assert_eq!(
            hands(&stage),
            [2, 3, 1].map(|n| peer(n).as_str().to_owned())
        );
        stage.hand(&peer(3), &name, false);
        stage.set(Some(&peer(2)), Some(&name));
        assert_eq!(hands(&stage), [peer(1).as_str().to_owned()]);
        let UiEvent::Stage { speaker, .. } = stage.event() else {
            panic!("a stage event");
        };
        assert_eq!(speaker.and_then(|s| s.name).as_deref(), Some("Vic"));
        stage.set(None, None);
        assert!(matches!(
            stage.event(),
            UiEvent::Stage { speaker: None, .. }
        ));
    }

    #[test]
    fn the_root_lists_a_bounded_number_of_hands() {
        let name = DisplayName::new("Wes").expect("a name");
        let mut stage = TreeStage::default();
        for n in 0..HANDS_MAX + 10 {
            stage.hand(&peer(n), &name, true);
        }
        assert_eq!(stage.hands.len(), HANDS_MAX);
        assert_eq!(stage.hands[0].peer, peer(0).as_str());
    }
}
