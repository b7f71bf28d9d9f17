//! The envelope peers exchange on their data channel: a small binary header and a payload.
//!
//! ```text
//! offset  size  field
//! 0       1     version (1)
//! 1       1     kind (0 data, 1 ping, 2 pong, 3 heartbeat, 4 bye, 5 stream, 6 mesh,
//!                     7 tree, 8 relay, 9 host, 10 state, 11 stage)
//! 2       1     hops: how many times an overlay has forwarded it (0 = from the sender)
//! 3       1     n: channel name length in bytes, 0..=12 (0 for control kinds)
//! 4       n     channel name, UTF-8
//! 4+n     8     message id, big-endian; for ping/pong the nonce
//! 12+n    rest  payload (for data: the application's bytes)
//! ```

use crate::ChannelName;

/// The envelope version this crate writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes of header before a payload with a channel name of `n` bytes: `12 + n`.
pub const fn header_len(channel_len: usize) -> usize {
    12 + channel_len
}

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// Application data on a named channel.
    Data,
    /// A round-trip probe; the id is the nonce.
    Ping,
    /// The answer to a ping, with the same nonce.
    Pong,
    /// Liveness: sent every second on an open link (a link silent for 6 s is closed).
    Heartbeat,
    /// The sender is leaving the room.
    Bye,
    /// A media stream of the sender was added, removed or changed: a [`StreamAnnouncement`]
    /// as JSON in the payload.
    Stream,
    /// An overlay broadcast (a mesh frame, read by `plenum-overlay`); the id is the
    /// origin's sequence number.
    Mesh,
    /// A broadcast tree's message between parent and child (read by `plenum-overlay`).
    Tree,
    /// A relay network's message between neighbours (read by `plenum-overlay`).
    Relay,
    /// A host room's message between a peer and the host (read by `plenum-overlay`); room
    /// messages keep their channel name.
    Host,
    /// The sender's shared state (JSON: audio on, hand raised...), replacing the last.
    State,
    /// A cells room's word between neighbours about a seat's voice on the stage (stop
    /// sending it to me, send it again), read by the engine's stage forwarding.
    Stage,
}

/// What a [`EnvelopeKind::Stream`] envelope says about one of the sender's streams.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamAnnouncement {
    /// The sender publishes this stream (also sent to every peer whose link opens later).
    Add {
        /// The sender's id for it.
        stream: String,
        /// `audio` (later `video`, `screen`).
        kind: String,
        /// The application's description of it.
        metadata: serde_json::Value,
        /// Whether it is muted now.
        muted: bool,
    },
    /// The sender stopped publishing it.
    Remove {
        /// Which.
        stream: String,
    },
    /// The stream was muted or unmuted.
    Muted {
        /// Which.
        stream: String,
        /// Whether it is muted now.
        muted: bool,
    },
}

impl EnvelopeKind {
    fn to_byte(self) -> u8 {
        match self {
            Self::Data => 0,
            Self::Ping => 1,
            Self::Pong => 2,
            Self::Heartbeat => 3,
            Self::Bye => 4,
            Self::Stream => 5,
            Self::Mesh => 6,
            Self::Tree => 7,
            Self::Relay => 8,
            Self::Host => 9,
            Self::State => 10,
            Self::Stage => 11,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::Data,
            1 => Self::Ping,
            2 => Self::Pong,
            3 => Self::Heartbeat,
            4 => Self::Bye,
            5 => Self::Stream,
            6 => Self::Mesh,
            7 => Self::Tree,
            8 => Self::Relay,
            9 => Self::Host,
            10 => Self::State,
            11 => Self::Stage,
            _ => return None,
        })
    }
}

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What it carries.
    pub kind: EnvelopeKind,
    /// Forwarding count.
    pub hops: u8,
    /// The named channel (data only).
    pub channel: Option<ChannelName>,
    /// Message id, unique per sender; the nonce for ping/pong.
    pub id: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Why bytes from a peer are not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Fewer bytes than the header needs.
    #[error("envelope truncated: {len} bytes")]
    Truncated {
        /// How many bytes there were.
        len: usize,
    },
    /// A version this build does not read.
    #[error("envelope version {0} is not supported")]
    UnsupportedVersion(u8),
    /// An unknown kind byte.
    #[error("unknown envelope kind {0}")]
    UnknownKind(u8),
    /// The channel name is not a valid [`ChannelName`] (or is missing on data).
    #[error("bad channel name in envelope")]
    BadChannel,
}

impl Envelope {
    /// A data envelope.
    pub fn data(channel: ChannelName, id: u64, payload: Vec<u8>) -> Self {
        Self {
            kind: EnvelopeKind::Data,
            hops: 0,
            channel: Some(channel),
            id,
            payload,
        }
    }

    /// A stream announcement.
    pub fn stream(announcement: &StreamAnnouncement) -> Self {
        Self {
            kind: EnvelopeKind::Stream,
            hops: 0,
            channel: None,
            id: 0,
            // A tagged enum of strings, bools and JSON values always serializes.
            payload: serde_json::to_vec(announcement).unwrap_or_default(),
        }
    }

    /// A control envelope (ping, pong, heartbeat, bye).
    pub fn control(kind: EnvelopeKind, id: u64) -> Self {
        Self {
            kind,
            hops: 0,
            channel: None,
            id,
            payload: Vec::new(),
        }
    }

    /// Writes the envelope.
    pub fn encode(&self) -> Vec<u8> {
        let name = self.channel.as_ref().map(ChannelName::as_str).unwrap_or("");
        let mut out = Vec::with_capacity(header_len(name.len()) + self.payload.len());
        out.push(ENVELOPE_VERSION);
        out.push(self.kind.to_byte());
        out.push(self.hops);
        // A ChannelName holds at most 12 bytes, so the length fits a byte.
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Reads an envelope from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let truncated = EnvelopeError::Truncated { len: bytes.len() };
        let [version, kind, hops, name_len, rest @ ..] = bytes else {
            return Err(truncated);
        };
        if *version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(*version));
        }
        let kind = EnvelopeKind::from_byte(*kind).ok_or(EnvelopeError::UnknownKind(*kind))?;
        let name_len = usize::from(*name_len);
        if name_len > ChannelName::MAX_BYTES {
            return Err(EnvelopeError::BadChannel);
        }
        let (name, rest) = rest.split_at_checked(name_len).ok_or(truncated.clone())?;
        let (id, payload) = rest.split_first_chunk::<8>().ok_or(truncated)?;
        let channel = match (kind, name_len) {
            (EnvelopeKind::Data, 0) => return Err(EnvelopeError::BadChannel),
            (_, 0) => None,
            _ => {
                let name = std::str::from_utf8(name).map_err(|_| EnvelopeError::BadChannel)?;
                Some(ChannelName::new(name).map_err(|_| EnvelopeError::BadChannel)?)
            }
        };
        Ok(Self {
            kind,
            hops: *hops,
            channel,
            id: u64::from_be_bytes(*id),
            payload: payload.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn data_envelope_layout_is_as_documented() {
        let env = Envelope::data(ChannelName::new("chat").unwrap(), 0x0102, b"hi".to_vec());
        let bytes = env.encode();
        assert_eq!(&bytes[..8], &[1, 0, 0, 4, b'c', b'h', b'a', b't']);
        assert_eq!(&bytes[8..16], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&bytes[16..], b"hi");
        assert_eq!(bytes.len(), header_len(4) + 2);
    }

    #[test]
    fn decode_refuses_bad_input() {
        assert_eq!(
            Envelope::decode(&[]),
            Err(EnvelopeError::Truncated { len: 0 })
        );
        assert_eq!(
            Envelope::decode(&[9, 0, 0, 0]),
            Err(EnvelopeError::UnsupportedVersion(9))
        );
        assert_eq!(
            Envelope::decode(&[1, 77, 0, 0]),
            Err(EnvelopeError::UnknownKind(77))
        );
        assert_eq!(
            Envelope::decode(&[1, 0, 0, 13]),
            Err(EnvelopeError::BadChannel)
        );
        assert_eq!(
            Envelope::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(EnvelopeError::BadChannel)
        );
        assert_eq!(
            Envelope::decode(&[1, 1, 0, 0, 0, 0]),
            Err(EnvelopeError::Truncated { len: 6 })
        );
        assert_eq!(
            Envelope::decode(&[1, 0, 0, 2, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(EnvelopeError::BadChannel)
        );
    }

    proptest! {
        #[test]
        fn envelopes_round_trip(
            kind in 0u8..5, hops: u8, name in "[a-z]{1,12}", id: u64,
            payload in proptest::collection::vec(any::<u8>(), 0..256)
        ) {
            let kind = EnvelopeKind::from_byte(kind).unwrap();
            let channel = (kind == EnvelopeKind::Data).then(|| ChannelName::new(name).unwrap());
            let env = Envelope { kind, hops, channel, id, payload };
            prop_assert_eq!(Envelope::decode(&env.encode()), Ok(env));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Envelope::decode(&bytes);
        }
    }
}
