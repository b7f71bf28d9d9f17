//! TURN credentials minted per peer (the TURN REST scheme), and their renewal.

use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::Mac as _;
use plenum_proto::signal::{IceServerInfo, ServerToClient};
use plenum_proto::{PeerId, RoomName};

use super::{ConnId, Registry};

/// A TURN server whose credentials the registry mints per peer (the TURN REST scheme
/// coturn checks with `use-auth-secret`).
#[derive(Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (`static-auth-secret`).
    pub secret: Vec<u8>,
    /// How long minted credentials stay valid (default 1 h).
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TurnConfig {
    /// The credentials for `peer`, valid until `expiry` (Unix seconds): user name
    /// `<expiry>:<peer>`, password base64(HMAC-SHA1(secret, user name)).
    pub fn credentials(&self, peer: &PeerId, expiry: u64) -> IceServerInfo {
        let username = format!("{expiry}:{peer}");
        // HMAC takes keys of any length.
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(username.as_bytes());
        let credential =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        IceServerInfo {
            urls: self.urls.clone(),
            username,
            credential,
        }
    }
}

impl Registry {
    /// The STUN and TURN servers for `peer`, TURN with credentials minted now; schedules
    /// their renewal at half their lifetime.
    pub(super) fn ice_servers_for(
        &mut self,
        room_name: &RoomName,
        peer: &PeerId,
    ) -> Vec<IceServerInfo> {
        let mut ice_servers = Vec::new();
        if !self.config.stun_urls.is_empty() {
            ice_servers.push(IceServerInfo {
                urls: self.config.stun_urls.clone(),
                username: String::new(),
                credential: String::new(),
            });
        }
        if let Some(turn) = &self.config.turn {
            let expiry = self.unix_now() + turn.ttl.as_secs();
            ice_servers.push(turn.credentials(peer, expiry));
            let renew = self.now + turn.ttl / 2;
            if let Some(m) = self
                .rooms
                .get_mut(room_name)
                .and_then(|r| r.members.get_mut(peer))
            {
                m.renew_ice_at = Some(renew);
            }
        }
        ice_servers
    }

    /// Sends fresh TURN credentials to connected members whose renewal is due.
    pub(super) fn renew_ice(&mut self, now: Instant) {
        let due: Vec<(RoomName, PeerId, ConnId)> = self
            .rooms
            .iter()
            .flat_map(|(name, room)| {
                room.members.iter().filter_map(move |(peer, m)| {
                    let conn = m.conn?;
                    m.renew_ice_at
                        .filter(|at| now >= *at)
                        .map(|_| (name.clone(), peer.clone(), conn))
                })
            })
            .collect();
        for (room, peer, conn) in due {
            let ice_servers = self.ice_servers_for(&room, &peer);
            self.send(conn, ServerToClient::IceServers { ice_servers });
        }
    }
}
