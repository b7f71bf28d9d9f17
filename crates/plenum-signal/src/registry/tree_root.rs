//! A tree room's root: crowned by the server, and the frames sent to it (join requests)
//! relayed to it, or held until there is one.

use plenum_proto::signal::{ErrorCode, ServerToClient, SignalPayload};
use plenum_proto::{PeerId, RoomName};

use super::{ConnId, HELD_FOR_ROOT, Registry};

impl Registry {
    /// Makes `peer` the root of its tree room: tells it, and hands it the frames held for
    /// the root.
    pub(super) fn crown(&mut self, room_name: &RoomName, peer: &PeerId) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        let conn = room.members.get(peer).and_then(|m| m.conn);
        let Some(tree) = room.tree.as_mut() else {
            return;
        };
        tree.root = Some(peer.clone());
        tree.standby.retain(|p| p != peer);
        let Some(conn) = conn else {
            return;
        };
        tracing::info!(room = %room_name, peer = peer.short(), "tree root");
        let held: Vec<_> = tree
            .held
            .drain(..)
            .filter(|(from, _)| from != peer)
            .collect();
        self.send(conn, ServerToClient::Root {});
        for (from, payload) in held {
            self.relay(conn, room_name, from, payload);
        }
    }

    /// Relays a frame to the root of the sender's tree room, or holds it until there is one.
    pub(super) fn relay_to_root(
        &mut self,
        conn: ConnId,
        room_name: &RoomName,
        me: PeerId,
        payload: SignalPayload,
    ) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        let Some(tree) = room.tree.as_mut() else {
            let msg = format!("room {room_name} is not a tree: it has no root");
            return self.refuse(conn, ErrorCode::BadTopology, msg, false);
        };
        let target = tree
            .root
            .as_ref()
            .map(|r| (r.clone(), room.members.get(r).and_then(|m| m.conn)));
        match target {
            Some((root, _)) if root == me => {
                tracing::debug!(peer = me.short(), "a frame from the root to itself dropped");
            }
            Some((_, Some(target))) => self.relay(target, room_name, me, payload),
            _ => {
                if tree.held.len() >= HELD_FOR_ROOT {
                    tree.held.pop_front();
                    tracing::debug!(room = %room_name, "frames held for the root: oldest dropped");
                }
                tree.held.push_back((me, payload));
            }
        }
    }
}
