//! Relay messages on the wire, in an [`Envelope`] of kind [`EnvelopeKind::Relay`]. The
//! payload's first byte says which message it is; a peer id is a length byte and the id,
//! a list of them a count byte and the ids:
//!
//! ```text
//! op  message     rest of the payload
//! 0   neighbours  the sender's neighbours (a list)
//! 1   splice      the peer to link to in the sender's place
//! 2   route       kind (1: 0 data, 1 signal, 2 link, 3 unreachable, 4 refuse, 5 ack),
//!                 flags (1: bit 0 going back, bits 1-3 the attempt), origin, target,
//!                 visited (a list), path (a list), the bytes
//! ```
//!
//! A routed frame's sequence number is the envelope's id and its hop count the envelope's.

use plenum_proto::{Envelope, EnvelopeKind, PeerId};

use super::{RelayMsg, RouteFrame, RouteKind};
use crate::wire::{WireError, push_peer, push_peers, read_peer, read_peers};

const NEIGHBOURS: u8 = 0;
const SPLICE: u8 = 1;
const ROUTE: u8 = 2;

/// Why an envelope is not a relay message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayFrameError {
    /// Not an envelope of kind `relay`.
    #[error("not a relay envelope")]
    NotRelay,
    /// Fewer bytes than the message needs.
    #[error("relay message truncated: {0} bytes")]
    Truncated(usize),
    /// A peer id that is not one.
    #[error("relay message names an invalid peer id")]
    BadPeer,
    /// An op or a frame kind this version does not know.
    #[error("unknown relay message op or kind {0}")]
    Unknown(u8),
}

impl From<WireError> for RelayFrameError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated(n) => Self::Truncated(n),
            WireError::BadPeer => Self::BadPeer,
        }
    }
}

pub(super) fn kind_byte(kind: RouteKind) -> u8 {
    match kind {
        RouteKind::Data => 0,
        RouteKind::Signal => 1,
        RouteKind::Link => 2,
        RouteKind::Unreachable => 3,
        RouteKind::Refuse => 4,
        RouteKind::Ack => 5,
    }
}

pub(super) fn kind_from(byte: u8) -> Option<RouteKind> {
    Some(match byte {
        0 => RouteKind::Data,
        1 => RouteKind::Signal,
        2 => RouteKind::Link,
        3 => RouteKind::Unreachable,
        4 => RouteKind::Refuse,
        5 => RouteKind::Ack,
        _ => return None,
    })
}

pub(super) fn encode_peers(peers: &[PeerId]) -> Vec<u8> {
    let mut out = Vec::new();
    push_peers(&mut out, peers);
    out
}

/// The peers of a list, or none if it does not decode.
pub(super) fn decode_peers(bytes: &[u8]) -> Vec<PeerId> {
    read_peers(bytes).map(|(p, _)| p).unwrap_or_default()
}

fn one_peer(p: &[u8]) -> Result<(PeerId, &[u8]), RelayFrameError> {
    let (peer, rest) = read_peer(p)?;
    Ok((peer.ok_or(RelayFrameError::BadPeer)?, rest))
}

impl RelayMsg {
    /// The envelope that carries it over a link.
    pub fn to_envelope(&self) -> Envelope {
        let mut payload = Vec::new();
        let (mut id, mut hops) = (0, 0);
        match self {
            Self::Neighbours(peers) => {
                payload.push(NEIGHBOURS);
                push_peers(&mut payload, peers);
            }
            Self::Splice(peer) => {
                payload.push(SPLICE);
                push_peer(&mut payload, Some(peer));
            }
            Self::Route(f) => {
                let flags = u8::from(f.back) | ((f.attempt & 7) << 1);
                payload.extend_from_slice(&[ROUTE, kind_byte(f.kind), flags]);
                push_peer(&mut payload, Some(&f.origin));
                push_peer(&mut payload, Some(&f.target));
                push_peers(&mut payload, &f.visited);
                push_peers(&mut payload, &f.path);
                payload.extend_from_slice(&f.data);
                (id, hops) = (f.seq, f.hops);
            }
        }
        Envelope {
            kind: EnvelopeKind::Relay,
            hops,
            channel: None,
            id,
            payload,
        }
    }

    /// Reads a message from an envelope that came from the network.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, RelayFrameError> {
        if envelope.kind != EnvelopeKind::Relay {
            return Err(RelayFrameError::NotRelay);
        }
        let Some((op, p)) = envelope.payload.split_first() else {
            return Err(RelayFrameError::Truncated(0));
        };
        Ok(match *op {
            NEIGHBOURS => Self::Neighbours(read_peers(p)?.0),
            SPLICE => Self::Splice(one_peer(p)?.0),
            ROUTE => {
                let [kind, flags, p @ ..] = p else {
                    return Err(RelayFrameError::Truncated(p.len()));
                };
                let kind = kind_from(*kind).ok_or(RelayFrameError::Unknown(*kind))?;
                let (origin, p) = one_peer(p)?;
                let (target, p) = one_peer(p)?;
                let (visited, p) = read_peers(p)?;
                let (path, data) = read_peers(p)?;
                Self::Route(RouteFrame {
                    kind,
                    origin,
                    target,
                    seq: envelope.id,
                    hops: envelope.hops,
                    back: flags & 1 == 1,
                    attempt: (flags >> 1) & 7,
                    visited,
                    path,
                    data: data.to_vec(),
                })
            }
            other => return Err(RelayFrameError::Unknown(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(n: u8) -> PeerId {
        PeerId::new(format!("{n:02x}").repeat(20)).unwrap()
    }

    #[test]
    fn every_message_survives_the_wire() {
        let msgs = [
            RelayMsg::Neighbours(vec![peer(1), peer(2)]),
            RelayMsg::Neighbours(vec![]),
            RelayMsg::Splice(peer(3)),
            RelayMsg::Route(RouteFrame {
                kind: RouteKind::Data,
                origin: peer(1),
                target: peer(9),
                seq: 77,
                hops: 4,
                back: true,
                attempt: 2,
                visited: vec![peer(1), peer(5), peer(6)],
                path: vec![peer(1), peer(5)],
                data: b"{\"x\":1}".to_vec(),
            }),
        ];
        for msg in msgs {
            let bytes = msg.to_envelope().encode();
            let back = RelayMsg::from_envelope(&Envelope::decode(&bytes).unwrap()).unwrap();
            assert_eq!(back, msg);
        }
        for kind in [
            RouteKind::Data,
            RouteKind::Signal,
            RouteKind::Link,
            RouteKind::Unreachable,
            RouteKind::Refuse,
            RouteKind::Ack,
        ] {
            assert_eq!(kind_from(kind_byte(kind)), Some(kind));
        }
    }

    #[test]
    fn broken_messages_are_errors() {
        let env = |payload: Vec<u8>| Envelope {
            kind: EnvelopeKind::Relay,
            hops: 0,
            channel: None,
            id: 1,
            payload,
        };
        assert_eq!(
            RelayMsg::from_envelope(&env(vec![])),
            Err(RelayFrameError::Truncated(0))
        );
        assert_eq!(
            RelayMsg::from_envelope(&env(vec![9])),
            Err(RelayFrameError::Unknown(9))
        );
        assert_eq!(
            RelayMsg::from_envelope(&env(vec![ROUTE, 7, 0])),
            Err(RelayFrameError::Unknown(7))
        );
        assert_eq!(
            RelayMsg::from_envelope(&env(vec![SPLICE, 0])),
            Err(RelayFrameError::BadPeer)
        );
        assert!(matches!(
            RelayMsg::from_envelope(&env(vec![NEIGHBOURS, 3, 1])),
            Err(RelayFrameError::Truncated(_))
        ));
        let ping = Envelope::control(EnvelopeKind::Ping, 1);
        assert_eq!(
            RelayMsg::from_envelope(&ping),
            Err(RelayFrameError::NotRelay)
        );
    }

    proptest! {
        #[test]
        fn no_payload_panics_the_decoder(payload in proptest::collection::vec(any::<u8>(), 0..120), hops: u8) {
            let env = Envelope { kind: EnvelopeKind::Relay, hops, channel: None, id: 1, payload };
            let _ = RelayMsg::from_envelope(&env);
        }
    }
}
