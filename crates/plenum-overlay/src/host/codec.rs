//! Host room messages on the wire, in an [`Envelope`] of kind [`EnvelopeKind::Host`]. The
//! envelope's id carries the sequence number (or epoch) and its channel the room message's
//! channel; the payload is an op byte and the rest:
//!
//! ```text
//! op  message  payload after the op     id
//! 1   hello    fresh (1 byte: 0 or 1)   0
//! 2   init     peer, data               0
//! 3   synced   (nothing)                epoch
//! 4   post     data                     seq
//! 5   relay    origin peer, data        seq
//! 6   ack      (nothing)                seq
//! ```
//!
//! A peer id is a length byte and the id's bytes.

use plenum_proto::{ChannelName, Envelope, EnvelopeKind, PeerId};

use crate::wire::{WireError, push_peer, read_peer};

/// A message between a host room's peer and its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMsg {
    /// Peer to host, first on a new link: whether the peer was never in step with a host
    /// of this room (a fresh peer is replayed only what came after it entered the room).
    Hello {
        /// Never synced before.
        fresh: bool,
    },
    /// A peer's join data: from the peer to the host, and from the host to every peer.
    Init {
        /// Whose it is.
        peer: PeerId,
        /// The data (JSON text in the engine).
        data: Vec<u8>,
    },
    /// Host to peer: the peer is in step with the host of `epoch`.
    Synced {
        /// The host's epoch.
        epoch: u64,
    },
    /// Peer to host: a room message to relay.
    Post {
        /// The sender's sequence number.
        seq: u64,
        /// Its channel.
        channel: ChannelName,
        /// The application's bytes.
        data: Vec<u8>,
    },
    /// Host to peer: a room message and whom it is from.
    Relay {
        /// The peer that posted it.
        origin: PeerId,
        /// Its sequence number.
        seq: u64,
        /// Its channel.
        channel: ChannelName,
        /// The application's bytes.
        data: Vec<u8>,
    },
    /// Host to peer: its posts up to `seq` are relayed.
    Ack {
        /// The highest relayed.
        seq: u64,
    },
}

/// Why an envelope is not a host message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostFrameError {
    /// The envelope is of another kind.
    #[error("not a host message")]
    NotHost,
    /// Fewer bytes than the message needs.
    #[error("host message truncated ({0} bytes left)")]
    Truncated(usize),
    /// An op byte this build does not know.
    #[error("unknown host message op {0}")]
    UnknownOp(u8),
    /// A peer id that is not one, or missing.
    #[error("bad peer id in host message")]
    BadPeer,
    /// A post or relay without a channel.
    #[error("host message without a channel")]
    NoChannel,
}

impl From<WireError> for HostFrameError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated(n) => Self::Truncated(n),
            WireError::BadPeer => Self::BadPeer,
        }
    }
}

const HELLO: u8 = 1;
const INIT: u8 = 2;
const SYNCED: u8 = 3;
const POST: u8 = 4;
const RELAY: u8 = 5;
const ACK: u8 = 6;

impl HostMsg {
    /// The envelope that carries it over a link.
    pub fn to_envelope(&self) -> Envelope {
        let mut payload = Vec::new();
        let (mut id, mut channel) = (0, None);
        match self {
            Self::Hello { fresh } => payload.extend_from_slice(&[HELLO, u8::from(*fresh)]),
            Self::Init { peer, data } => {
                payload.push(INIT);
                push_peer(&mut payload, Some(peer));
                payload.extend_from_slice(data);
            }
            Self::Synced { epoch } => {
                payload.push(SYNCED);
                id = *epoch;
            }
            Self::Post {
                seq,
                channel: c,
                data,
            } => {
                payload.push(POST);
                payload.extend_from_slice(data);
                (id, channel) = (*seq, Some(c.clone()));
            }
            Self::Relay {
                origin,
                seq,
                channel: c,
                data,
            } => {
                payload.push(RELAY);
                push_peer(&mut payload, Some(origin));
                payload.extend_from_slice(data);
                (id, channel) = (*seq, Some(c.clone()));
            }
            Self::Ack { seq } => {
                payload.push(ACK);
                id = *seq;
            }
        }
        Envelope {
            kind: EnvelopeKind::Host,
            hops: 0,
            channel,
            id,
            payload,
        }
    }

    /// Reads a message from an envelope that came from the network.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, HostFrameError> {
        if envelope.kind != EnvelopeKind::Host {
            return Err(HostFrameError::NotHost);
        }
        let Some((op, p)) = envelope.payload.split_first() else {
            return Err(HostFrameError::Truncated(0));
        };
        let id = envelope.id;
        let channel = || envelope.channel.clone().ok_or(HostFrameError::NoChannel);
        Ok(match *op {
            HELLO => match p {
                [fresh] => Self::Hello { fresh: *fresh != 0 },
                _ => return Err(HostFrameError::Truncated(p.len())),
            },
            INIT => {
                let (peer, data) = read_peer(p)?;
                Self::Init {
                    peer: peer.ok_or(HostFrameError::BadPeer)?,
                    data: data.to_vec(),
                }
            }
            SYNCED => Self::Synced { epoch: id },
            POST => Self::Post {
                seq: id,
                channel: channel()?,
                data: p.to_vec(),
            },
            RELAY => {
                let (origin, data) = read_peer(p)?;
                Self::Relay {
                    origin: origin.ok_or(HostFrameError::BadPeer)?,
                    seq: id,
                    channel: channel()?,
                    data: data.to_vec(),
                }
            }
            ACK => Self::Ack { seq: id },
            other => return Err(HostFrameError::UnknownOp(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(s: &str) -> PeerId {
        PeerId::new(s).unwrap()
    }

    #[test]
    fn every_message_survives_the_wire() {
        let chat = ChannelName::new("chat").unwrap();
        for msg in [
            HostMsg::Hello { fresh: true },
            HostMsg::Hello { fresh: false },
            HostMsg::Init {
                peer: peer("ann"),
                data: br#"{"name":"Ann"}"#.to_vec(),
            },
            HostMsg::Synced { epoch: 7 },
            HostMsg::Post {
                seq: 1 << 40,
                channel: chat.clone(),
                data: b"hi".to_vec(),
            },
            HostMsg::Relay {
                origin: peer("bob"),
                seq: 3,
                channel: chat,
                data: vec![],
            },
            HostMsg::Ack { seq: 9 },
        ] {
            let bytes = msg.to_envelope().encode();
            let back = HostMsg::from_envelope(&Envelope::decode(&bytes).unwrap()).unwrap();
            assert_eq!(back, msg);
        }
    }

    #[test]
    fn bad_messages_are_refused() {
        let env = |payload: Vec<u8>, channel: Option<&str>| Envelope {
            kind: EnvelopeKind::Host,
            hops: 0,
            channel: channel.map(|c| ChannelName::new(c).unwrap()),
            id: 1,
            payload,
        };
        assert_eq!(
            HostMsg::from_envelope(&env(vec![], None)),
            Err(HostFrameError::Truncated(0))
        );
        assert_eq!(
            HostMsg::from_envelope(&env(vec![42], None)),
            Err(HostFrameError::UnknownOp(42))
        );
        assert_eq!(
            HostMsg::from_envelope(&env(vec![POST, 1, 2], None)),
            Err(HostFrameError::NoChannel)
        );
        assert_eq!(
            HostMsg::from_envelope(&env(vec![RELAY, 0, 1], Some("chat"))),
            Err(HostFrameError::BadPeer)
        );
        assert_eq!(
            HostMsg::from_envelope(&env(vec![INIT, 9, b'a'], None)),
            Err(HostFrameError::Truncated(2))
        );
        assert_eq!(
            HostMsg::from_envelope(&env(vec![HELLO], None)),
            Err(HostFrameError::Truncated(0))
        );
        let mut other = env(vec![ACK], None);
        other.kind = EnvelopeKind::Relay;
        assert_eq!(HostMsg::from_envelope(&other), Err(HostFrameError::NotHost));
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(op in any::<u8>(), rest in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut payload = vec![op];
            payload.extend(rest);
            let env = Envelope { kind: EnvelopeKind::Host, hops: 0, channel: None, id: 5, payload };
            let _ = HostMsg::from_envelope(&env);
        }
    }
}
