//! The stage of a cells room: a few seats whose voices reach every cell. The server keeps
//! it, as it keeps the cell plan: a peer says whether it wants the stage (it speaks, or its
//! hand is up), and the board seats it in the lowest free seat, or queues it while every
//! seat is taken; a seat that empties goes to the first in the queue. A seat's holder keeps
//! it until it no longer wants it or leaves: the hysteresis is the speaking detector's,
//! whose "not speaking" comes after seconds of quiet.
//!
//! Beside the seats, one presenter: a peer whose camera and screen reach every cell. It
//! holds the place until it stops presenting or leaves; another that asks meanwhile waits
//! in a queue of its own and takes over when the place empties.

use std::collections::VecDeque;

use plenum_proto::PeerId;

/// Seats of a cells room's stage: voices that reach every cell at once.
pub const STAGE_SEATS: usize = 4;

/// Who holds each seat of a stage, and who waits for one.
#[derive(Debug, Clone)]
pub struct StageBoard {
    seats: Vec<Option<PeerId>>,
    /// Who wants the stage and has no seat, first first.
    waiting: VecDeque<PeerId>,
    presenter: Option<PeerId>,
    /// Who asked to present while another did, first first.
    presenters_waiting: VecDeque<PeerId>,
    changed: bool,
}

impl StageBoard {
    /// An empty stage of `seats` seats (at least one).
    pub fn new(seats: usize) -> Self {
        Self {
            seats: vec![None; seats.max(1)],
            waiting: VecDeque::new(),
            presenter: None,
            presenters_waiting: VecDeque::new(),
            changed: false,
        }
    }

    /// Who holds each seat.
    pub fn seats(&self) -> &[Option<PeerId>] {
        &self.seats
    }

    /// Who waits for a seat, first first.
    pub fn waiting(&self) -> impl Iterator<Item = &PeerId> {
        self.waiting.iter()
    }

    /// Who presents.
    pub fn presenter(&self) -> Option<&PeerId> {
        self.presenter.as_ref()
    }

    /// `peer` presents (`true`) or no longer does.
    pub fn set_presenting(&mut self, peer: &PeerId, presenting: bool) {
        let holds = self.presenter.as_ref() == Some(peer);
        match (presenting, holds) {
            (true, true) => {}
            (true, false) if self.presenter.is_none() => {
                self.presenter = Some(peer.clone());
                self.changed = true;
            }
            (true, false) => {
                if !self.presenters_waiting.contains(peer) {
                    self.presenters_waiting.push_back(peer.clone());
                }
            }
            (false, true) => {
                self.presenter = self.presenters_waiting.pop_front();
                self.changed = true;
            }
            (false, false) => self.presenters_waiting.retain(|p| p != peer),
        }
    }

    /// Whether the seats or the presenter changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// `peer` wants the stage (`true`) or no longer does.
    pub fn set_wants(&mut self, peer: &PeerId, wants: bool) {
        let seated = self.seats.iter().position(|s| s.as_ref() == Some(peer));
        match (wants, seated) {
            (true, Some(_)) => {}
            (true, None) => {
                if self.waiting.contains(peer) {
                    return;
                }
                match self.seats.iter().position(Option::is_none) {
                    Some(free) => {
                        self.seats[free] = Some(peer.clone());
                        self.changed = true;
                    }
                    None => self.waiting.push_back(peer.clone()),
                }
            }
            (false, Some(seat)) => {
                self.seats[seat] = self.waiting.pop_front();
                self.changed = true;
            }
            (false, None) => self.waiting.retain(|p| p != peer),
        }
    }

    /// `peer` left the room: its seat goes to the first waiting, or empties; so does the
    /// presenter's place if it held it.
    pub fn handle_leave(&mut self, peer: &PeerId) {
        self.set_wants(peer, false);
        self.set_presenting(peer, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u32) -> PeerId {
        PeerId::new(format!("{n:040x}")).unwrap()
    }

    fn seated(board: &StageBoard) -> Vec<Option<u32>> {
        board
            .seats()
            .iter()
            .map(|s| {
                s.as_ref()
                    .map(|p| u32::from_str_radix(p.as_str(), 16).unwrap())
            })
            .collect()
    }

    #[test]
    fn speakers_take_the_lowest_free_seat_and_keep_it() {
        let mut board = StageBoard::new(3);
        assert!(!board.take_changed());
        board.set_wants(&peer(1), true);
        board.set_wants(&peer(2), true);
        assert!(board.take_changed());
        assert_eq!(seated(&board), [Some(1), Some(2), None]);
        // Saying it again changes nothing.
        board.set_wants(&peer(1), true);
        assert!(!board.take_changed());
        board.set_wants(&peer(1), false);
        board.set_wants(&peer(3), true);
        assert!(board.take_changed());
        assert_eq!(seated(&board), [Some(3), Some(2), None]);
    }

    #[test]
    fn a_full_stage_queues_and_a_freed_seat_goes_to_the_first_waiting() {
        let mut board = StageBoard::new(2);
        for n in 1..=4 {
            board.set_wants(&peer(n), true);
        }
        board.take_changed();
        assert_eq!(seated(&board), [Some(1), Some(2)]);
        assert_eq!(board.waiting().count(), 2);
        // A waiting peer that stops wanting leaves the queue and changes no seat.
        board.set_wants(&peer(3), false);
        assert!(!board.take_changed());
        board.set_wants(&peer(3), true);
        board.handle_leave(&peer(2));
        assert!(board.take_changed());
        assert_eq!(seated(&board), [Some(1), Some(4)]);
        board.set_wants(&peer(1), false);
        assert_eq!(seated(&board), [Some(3), Some(4)]);
        assert_eq!(board.waiting().count(), 0);
        board.set_wants(&peer(4), false);
        assert_eq!(seated(&board), [Some(3), None]);
    }

    #[test]
    fn one_presents_at_a_time_and_the_next_takes_over_when_it_stops_or_leaves() {
        let mut board = StageBoard::new(4);
        let presenter = |b: &StageBoard| {
            b.presenter()
                .map(|p| u32::from_str_radix(p.as_str(), 16).unwrap())
        };
        board.set_presenting(&peer(1), true);
        assert!(board.take_changed());
        assert_eq!(presenter(&board), Some(1));
        // A second waits; asking again changes nothing.
        board.set_presenting(&peer(2), true);
        board.set_presenting(&peer(3), true);
        board.set_presenting(&peer(2), true);
        assert!(!board.take_changed());
        assert_eq!(presenter(&board), Some(1));
        // The seats are apart from the presenter.
        board.set_wants(&peer(1), false);
        assert_eq!(presenter(&board), Some(1));
        board.set_presenting(&peer(1), false);
        assert!(board.take_changed());
        assert_eq!(presenter(&board), Some(2));
        // One that gives up waiting is not made presenter later.
        board.set_presenting(&peer(3), false);
        board.handle_leave(&peer(2));
        assert!(board.take_changed());
        assert_eq!(presenter(&board), None);
        board.set_presenting(&peer(4), false);
        assert!(!board.take_changed());
    }

    #[test]
    fn a_stage_has_a_seat_at_least() {
        let mut board = StageBoard::new(0);
        board.set_wants(&peer(1), true);
        assert_eq!(seated(&board), [Some(1)]);
    }
}
