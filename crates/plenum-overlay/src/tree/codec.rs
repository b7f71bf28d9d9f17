//! Tree messages on the wire. Between parent and child they travel in an [`Envelope`] of
//! kind [`EnvelopeKind::Tree`]; the payload's first byte says which message it is:
//!
//! ```text
//! op  message    rest of the payload
//! 0   join       subtree (u32 BE), n (u8), requester id (n bytes, UTF-8)
//! 1   accept     depth (u32 BE)
//! 2   decline    -
//! 3   welcome    depth (u32 BE), n (u8, 0: no grandparent), grandparent id (n bytes),
//!                then (if the root is known) n (u8), the root's id (n bytes), its name
//!                (UTF-8, if known)
//! 4   subtree    size (u32 BE)
//! 5   data       n (u8), origin id (n bytes), the application's bytes
//! 6   direct     the application's bytes
//! 7   hand       raised (u8, 0 or 1), n (u8), the peer's id (n bytes), its name (UTF-8)
//! 8   stage      n (u8, 0: nobody), the speaker's id (n bytes), its name (UTF-8, if known)
//! ```
//!
//! A data message's sequence number is the envelope's id and its hop count the envelope's.
//! Through the signaling server, the messages a peer outside the tree needs (join, accept,
//! decline) travel as [`TreeSignal`]s.

use plenum_proto::overlay::TreeSignal;
use plenum_proto::{DisplayName, Envelope, EnvelopeKind};

use super::TreeMsg;
use crate::wire::{WireError, push_peer, read_peer, read_u32};

const JOIN: u8 = 0;
const ACCEPT: u8 = 1;
const DECLINE: u8 = 2;
const WELCOME: u8 = 3;
const SUBTREE: u8 = 4;
const DATA: u8 = 5;
const DIRECT: u8 = 6;
const HAND: u8 = 7;
const STAGE: u8 = 8;

impl From<WireError> for TreeFrameError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated(n) => Self::Truncated(n),
            WireError::BadPeer => Self::BadPeer,
        }
    }
}

/// Why an envelope is not a tree message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeFrameError {
    /// Not an envelope of kind `tree`.
    #[error("not a tree envelope")]
    NotTree,
    /// Fewer bytes than the message needs.
    #[error("tree message truncated: {0} bytes")]
    Truncated(usize),
    /// A peer id that is not one.
    #[error("tree message names an invalid peer id")]
    BadPeer,
    /// A display name that is not one (not UTF-8, empty, too long, or with control
    /// characters).
    #[error("tree message names an invalid display name")]
    BadName,
    /// A flag byte that is neither 0 nor 1.
    #[error("tree message flag {0} is neither 0 nor 1")]
    BadFlag(u8),
    /// An op this version does not know.
    #[error("unknown tree message op {0}")]
    UnknownOp(u8),
}

impl TreeMsg {
    /// The envelope that carries it over a link.
    pub fn to_envelope(&self) -> Envelope {
        let mut payload = Vec::new();
        let (mut id, mut hops) = (0, 0);
        match self {
            Self::Join {
                requester,
                subtree,
                lost,
            } => {
                payload.push(JOIN);
                payload.extend_from_slice(&subtree.to_be_bytes());
                push_peer(&mut payload, Some(requester));
                if lost.is_some() {
                    push_peer(&mut payload, lost.as_ref());
                }
            }
            Self::Accept { depth } => {
                payload.push(ACCEPT);
                payload.extend_from_slice(&depth.to_be_bytes());
            }
            Self::Decline => payload.push(DECLINE),
            Self::Welcome {
                depth,
                grandparent,
                root,
                root_name,
            } => {
                payload.push(WELCOME);
                payload.extend_from_slice(&depth.to_be_bytes());
                push_peer(&mut payload, grandparent.as_ref());
                if root.is_some() {
                    push_peer(&mut payload, root.as_ref());
                    // After the root, where older peers stop reading.
                    if let Some(name) = root_name {
                        payload.extend_from_slice(name.as_str().as_bytes());
                    }
                }
            }
            Self::Subtree { size } => {
                payload.push(SUBTREE);
                payload.extend_from_slice(&size.to_be_bytes());
            }
            Self::Hand { peer, name, raised } => {
                payload.extend_from_slice(&[HAND, u8::from(*raised)]);
                push_peer(&mut payload, Some(peer));
                payload.extend_from_slice(name.as_str().as_bytes());
            }
            Self::Stage { speaker, name } => {
                payload.push(STAGE);
                push_peer(&mut payload, speaker.as_ref());
                // After the peer, where older peers stop reading.
                if let Some(name) = name {
                    payload.extend_from_slice(name.as_str().as_bytes());
                }
            }
            Self::Direct { data } => {
                payload.reserve(1 + data.len());
                payload.push(DIRECT);
                payload.extend_from_slice(data);
            }
            Self::Data {
                origin,
                seq,
                hops: h,
                data,
            } => {
                payload.reserve(2 + origin.as_str().len() + data.len());
                payload.push(DATA);
                push_peer(&mut payload, Some(origin));
                payload.extend_from_slice(data);
                (id, hops) = (*seq, *h);
            }
        }
        Envelope {
            kind: EnvelopeKind::Tree,
            hops,
            channel: None,
            id,
            payload,
        }
    }

    /// Reads a message from an envelope that came from the network.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, TreeFrameError> {
        if envelope.kind != EnvelopeKind::Tree {
            return Err(TreeFrameError::NotTree);
        }
        let Some((op, p)) = envelope.payload.split_first() else {
            return Err(TreeFrameError::Truncated(0));
        };
        Ok(match *op {
            JOIN => {
                let (subtree, p) = read_u32(p)?;
                let (requester, p) = read_peer(p)?;
                let lost = if p.is_empty() { None } else { read_peer(p)?.0 };
                Self::Join {
                    requester: requester.ok_or(TreeFrameError::BadPeer)?,
                    subtree,
                    lost,
                }
            }
            ACCEPT => Self::Accept {
                depth: read_u32(p)?.0,
            },
            DECLINE => Self::Decline,
            WELCOME => {
                let (depth, p) = read_u32(p)?;
                let (grandparent, p) = read_peer(p)?;
                // The root came later, and its name after it: a welcome without them is
                // an older peer's.
                let (root, root_name) = match p {
                    [] => (None, None),
                    p => match read_peer(p)? {
                        (root, []) => (root, None),
                        (root, name) => (root, Some(read_name(name)?)),
                    },
                };
                // A name without a root names nobody.
                let root_name = root_name.filter(|_| root.is_some());
                Self::Welcome {
                    depth,
                    grandparent,
                    root,
                    root_name,
                }
            }
            SUBTREE => Self::Subtree {
                size: read_u32(p)?.0,
            },
            DATA => {
                let (origin, data) = read_peer(p)?;
                Self::Data {
                    origin: origin.ok_or(TreeFrameError::BadPeer)?,
                    seq: envelope.id,
                    hops: envelope.hops,
                    data: data.to_vec(),
                }
            }
            DIRECT => Self::Direct { data: p.to_vec() },
            HAND => {
                let (raised, p) = p.split_first().ok_or(TreeFrameError::Truncated(0))?;
                let raised = match raised {
                    0 => false,
                    1 => true,
                    _ => return Err(TreeFrameError::BadFlag(*raised)),
                };
                let (peer, name) = read_peer(p)?;
                let peer = peer.ok_or(TreeFrameError::BadPeer)?;
                let name = read_name(name)?;
                Self::Hand { peer, name, raised }
            }
            STAGE => {
                let (speaker, name) = read_peer(p)?;
                let name = match name {
                    [] => None,
                    name => Some(read_name(name)?),
                };
                // A name without a speaker names nobody.
                let name = name.filter(|_| speaker.is_some());
                Self::Stage { speaker, name }
            }
            other => return Err(TreeFrameError::UnknownOp(other)),
        })
    }

    /// The form it takes through the signaling server, for the messages that go that way.
    pub fn to_signal(&self) -> Option<TreeSignal> {
        match self {
            Self::Join {
                requester,
                subtree,
                lost,
            } => Some(TreeSignal::Join {
                requester: requester.clone(),
                subtree: *subtree,
                lost: lost.clone(),
            }),
            Self::Accept { depth } => Some(TreeSignal::Accept { depth: *depth }),
            Self::Decline => Some(TreeSignal::Decline {}),
            _ => None,
        }
    }
}

impl From<TreeSignal> for TreeMsg {
    fn from(signal: TreeSignal) -> Self {
        match signal {
            TreeSignal::Join {
                requester,
                subtree,
                lost,
            } => Self::Join {
                requester,
                subtree,
                lost,
            },
            TreeSignal::Accept { depth } => Self::Accept { depth },
            TreeSignal::Decline {} => Self::Decline,
        }
    }
}

/// A display name that is the rest of a payload.
fn read_name(bytes: &[u8]) -> Result<DisplayName, TreeFrameError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|n| DisplayName::new(n).ok())
        .ok_or(TreeFrameError::BadName)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plenum_proto::PeerId;
    use proptest::prelude::*;

    fn peer(s: &str) -> PeerId {
        PeerId::new(s).unwrap()
    }

    #[test]
    fn every_message_survives_the_wire() {
        let msgs = [
            TreeMsg::Join {
                requester: peer("r1"),
                subtree: 7,
                lost: None,
            },
            TreeMsg::Join {
                requester: peer("r2"),
                subtree: 1,
                lost: Some(peer("p")),
            },
            TreeMsg::Accept { depth: 3 },
            TreeMsg::Decline,
            TreeMsg::Welcome {
                depth: 2,
                grandparent: Some(peer("g")),
                root: Some(peer("r")),
                root_name: Some(DisplayName::new("Rita").unwrap()),
            },
            TreeMsg::Welcome {
                depth: 2,
                grandparent: Some(peer("g")),
                root: Some(peer("r")),
                root_name: None,
            },
            TreeMsg::Welcome {
                depth: 1,
                grandparent: None,
                root: None,
                root_name: None,
            },
            TreeMsg::Subtree { size: 40 },
            TreeMsg::Direct {
                data: b"hi".to_vec(),
            },
            TreeMsg::Data {
                origin: peer("o"),
                seq: 9,
                hops: 4,
                data: b"{\"x\":1}".to_vec(),
            },
            TreeMsg::Hand {
                peer: peer("v"),
                name: DisplayName::new("Ada Lovelace").unwrap(),
                raised: true,
            },
            TreeMsg::Hand {
                peer: peer("v"),
                name: DisplayName::new("é").unwrap(),
                raised: false,
            },
            TreeMsg::Stage {
                speaker: Some(peer("v")),
                name: Some(DisplayName::new("Ada Lovelace").unwrap()),
            },
            TreeMsg::Stage {
                speaker: Some(peer("v")),
                name: None,
            },
            TreeMsg::Stage {
                speaker: None,
                name: None,
            },
        ];
        for msg in msgs {
            let bytes = msg.to_envelope().encode();
            let back = TreeMsg::from_envelope(&Envelope::decode(&bytes).unwrap()).unwrap();
            assert_eq!(back, msg);
            if let Some(signal) = msg.to_signal() {
                assert_eq!(TreeMsg::from(signal), msg);
            }
        }
    }

    #[test]
    fn broken_messages_are_errors() {
        let mut env = TreeMsg::Accept { depth: 1 }.to_envelope();
        env.payload.truncate(3);
        assert_eq!(
            TreeMsg::from_envelope(&env),
            Err(TreeFrameError::Truncated(2))
        );
        env.payload = vec![99];
        assert_eq!(
            TreeMsg::from_envelope(&env),
            Err(TreeFrameError::UnknownOp(99))
        );
        // A hand: no flag, a flag that is not one, no peer.
        env.payload = vec![HAND];
        assert_eq!(
            TreeMsg::from_envelope(&env),
            Err(TreeFrameError::Truncated(0))
        );
        env.payload = vec![HAND, 2, 1, b'v', b'A'];
        assert_eq!(
            TreeMsg::from_envelope(&env),
            Err(TreeFrameError::BadFlag(2))
        );
        env.payload = vec![HAND, 1, 0, b'A'];
        assert_eq!(TreeMsg::from_envelope(&env), Err(TreeFrameError::BadPeer));
        // A hand without a name, with one that is not UTF-8, with a control character.
        for name in [&b""[..], &[0xff, 0xfe], b"a\nb"] {
            env.payload = [&[HAND, 1, 1, b'v'][..], name].concat();
            assert_eq!(TreeMsg::from_envelope(&env), Err(TreeFrameError::BadName));
        }
        env.payload = vec![HAND, 1, 5, b'v'];
        assert_eq!(
            TreeMsg::from_envelope(&env),
            Err(TreeFrameError::Truncated(2))
        );
        // A stage whose speaker's name is not UTF-8, or holds a control character.
        for name in [&[0xff, 0xfe][..], b"a\nb"] {
            env.payload = [&[STAGE, 1, b'v'][..], name].concat();
            assert_eq!(TreeMsg::from_envelope(&env), Err(TreeFrameError::BadName));
        }
        // A stage naming a speaker it does not hold.
        env.payload = vec![STAGE];
        assert_eq!(
            TreeMsg::from_envelope(&env),
            Err(TreeFrameError::Truncated(0))
        );
        env.payload = vec![DATA, 0];
        assert_eq!(TreeMsg::from_envelope(&env), Err(TreeFrameError::BadPeer));
        env.payload = vec![JOIN, 0, 0, 0, 1, 2, 0xff, 0xfe];
        assert_eq!(TreeMsg::from_envelope(&env), Err(TreeFrameError::BadPeer));
        let ping = Envelope::control(EnvelopeKind::Ping, 1);
        assert_eq!(TreeMsg::from_envelope(&ping), Err(TreeFrameError::NotTree));
    }

    proptest! {
        #[test]
        fn no_payload_panics_the_decoder(payload in proptest::collection::vec(any::<u8>(), 0..80), hops: u8) {
            let env = Envelope { kind: EnvelopeKind::Tree, hops, channel: None, id: 1, payload };
            let _ = TreeMsg::from_envelope(&env);
        }
    }
}
