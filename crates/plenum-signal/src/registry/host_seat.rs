//! A host room's seat: who holds it, told to every member; vacated when its holder goes;
//! claimed by the peer the others chose.

use plenum_overlay::Claim;
use plenum_proto::signal::{ErrorCode, ServerToClient};
use plenum_proto::{PeerId, RoomName};

use super::{ConnId, Registry};

impl Registry {
    /// Tells `conn` who holds its host room's seat (nothing in other rooms).
    pub(super) fn tell_seat(&mut self, room_name: &RoomName, conn: ConnId) {
        let Some(seat) = self.rooms.get(room_name).and_then(|r| r.seat.as_ref()) else {
            return;
        };
        let (holder, epoch) = seat.holder();
        let frame = ServerToClient::Host {
            peer: holder.cloned(),
            epoch,
        };
        self.send(conn, frame);
    }

    /// Tells every connected member of a host room who holds the seat.
    pub(super) fn tell_seat_to_all(&mut self, room_name: &RoomName) {
        let conns: Vec<ConnId> = self
            .rooms
            .get(room_name)
            .map(|r| r.members.values().filter_map(|m| m.conn).collect())
            .unwrap_or_default();
        for conn in conns {
            self.tell_seat(room_name, conn);
        }
    }

    /// `peer` left or went away: if it hosted its room, the seat is vacant and everyone
    /// hears so at once (the peers choose the next host and it claims the seat).
    pub(super) fn vacate_seat(&mut self, room_name: &RoomName, peer: &PeerId) {
        let vacated = self
            .rooms
            .get_mut(room_name)
            .and_then(|r| r.seat.as_mut())
            .is_some_and(|s| s.vacate(peer));
        if vacated {
            tracing::info!(room = %room_name, peer = peer.short(), "host gone; seat vacant");
            self.tell_seat_to_all(room_name);
        }
    }

    /// A peer claims the vacant seat of its host room.
    pub(super) fn claim_host(
        &mut self,
        conn: ConnId,
        room_name: &RoomName,
        me: PeerId,
        epoch: u64,
    ) {
        let Some(seat) = self.rooms.get_mut(room_name).and_then(|r| r.seat.as_mut()) else {
            let msg = format!("room {room_name} is not a host room: it has no seat to claim");
            return self.refuse(conn, ErrorCode::BadTopology, msg, false);
        };
        match seat.claim(&me, epoch) {
            Claim::Granted(epoch) => {
                tracing::info!(room = %room_name, peer = me.short(), epoch, "host (claimed)");
                self.tell_seat_to_all(room_name);
            }
            Claim::Refused { .. } => {
                tracing::debug!(room = %room_name, peer = me.short(), epoch, "host claim lost");
                self.tell_seat(room_name, conn);
            }
        }
    }
}
