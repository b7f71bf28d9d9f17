//! A cells room's stage as its members are told it: who holds each seat, and who presents,
//! sent to every member when either changes and to a member who joins or comes back.

use plenum_overlay::STAGE_SEATS;
use plenum_proto::signal::{ServerToClient, StageSeat};
use plenum_proto::{PeerId, RoomName};

use super::{ConnId, Registry};

/// A cells room's stage as its members were told it: the seats and the presenter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Told {
    seats: Vec<Option<StageSeat>>,
    presenter: Option<StageSeat>,
}

impl Told {
    pub(super) fn empty() -> Self {
        Self {
            seats: vec![None; STAGE_SEATS],
            presenter: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.presenter.is_none() && self.seats.iter().all(Option::is_none)
    }

    fn frame(&self) -> ServerToClient {
        ServerToClient::Stage {
            seats: self.seats.clone(),
            presenter: self.presenter.clone(),
        }
    }
}

impl Registry {
    /// A cellular room's stage as its members are told it: each seat's holder, and the
    /// presenter, with its name and cell.
    pub(super) fn stage_told(&self, room_name: &RoomName) -> Option<Told> {
        let room = self.rooms.get(room_name)?;
        let (board, _) = room.stage.as_ref()?;
        let cells = room.cells.as_ref()?;
        // A room held in one cell is a full mesh: every voice and picture reaches everyone
        // on its own tracks, and a member there (a browser) knows no stage.
        if cells.held() {
            return Some(Told {
                seats: vec![None; board.seats().len()],
                presenter: None,
            });
        }
        let seat = |peer: &PeerId| {
            Some(StageSeat {
                peer: peer.clone(),
                name: room.members.get(peer)?.name.clone(),
                cell: cells.cell_of(peer)?,
            })
        };
        Some(Told {
            seats: board
                .seats()
                .iter()
                .map(|holder| seat(holder.as_ref()?))
                .collect(),
            presenter: board.presenter().and_then(seat),
        })
    }

    /// Tells every member of a cellular room the stage, if it changed since they were last
    /// told. Returns whether it did.
    pub(super) fn stage_changed(&mut self, room_name: &RoomName) -> bool {
        let Some(told) = self.stage_told(room_name) else {
            return false;
        };
        let Some(room) = self.rooms.get_mut(room_name) else {
            return false;
        };
        let Some((board, sent)) = room.stage.as_mut() else {
            return false;
        };
        board.take_changed();
        if *sent == told {
            return false;
        }
        sent.clone_from(&told);
        let conns: Vec<ConnId> = room.members.values().filter_map(|m| m.conn).collect();
        for conn in conns {
            self.send(conn, told.frame());
        }
        true
    }

    /// Tells a member who joined or came back the stage, if anyone is on it.
    pub(super) fn tell_stage(&mut self, room_name: &RoomName, conn: ConnId) {
        if let Some(told) = self.stage_told(room_name)
            && !told.is_empty()
        {
            self.send(conn, told.frame());
        }
    }
}
