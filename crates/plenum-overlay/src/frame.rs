//! The overlay's broadcast frame, carried in an [`Envelope`] of kind
//! [`EnvelopeKind::Mesh`]: the envelope's id is the origin's sequence number and its hop
//! count the links crossed so far; the payload is
//!
//! ```text
//! offset  size  field
//! 0       1     ttl: the hop limit the origin set
//! 1       1     dim: the digit along which the frame entered this cell (255: the origin's cell)
//! 2       1     flags: bit 0 set when it came from a cell mate (do not flood the cell again)
//! 3       4     epoch of the origin's layout, big-endian
//! 7       4     the origin's cell, big-endian
//! 11      1     n: length of the origin's id
//! 12      n     the origin's id, UTF-8
//! 12+n    rest  the application's bytes
//! ```

use plenum_proto::{Envelope, EnvelopeKind, PeerId};

/// `dim` of a frame still in its origin's cell.
pub(crate) const ORIGIN_DIM: u8 = u8::MAX;
const HEADER: usize = 12;

/// A broadcast on its way through the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshFrame {
    /// The peer that broadcast it.
    pub origin: PeerId,
    /// The origin's sequence number; `(origin, seq)` identifies the broadcast.
    pub seq: u64,
    /// Links crossed so far.
    pub hops: u8,
    /// Links it may cross in all.
    pub ttl: u8,
    /// The digit along which it entered the current cell; `None` in the origin's cell.
    pub dim: Option<u8>,
    /// Whether it came from a cell mate (and so must not flood the cell again).
    pub intra: bool,
    /// The origin's layout epoch; a peer on another epoch floods instead of routing.
    pub epoch: u32,
    /// The origin's cell.
    pub origin_cell: u32,
    /// The application's bytes.
    pub data: Vec<u8>,
}

/// Why an envelope is not a mesh frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not an envelope of kind `mesh`.
    #[error("not a mesh envelope")]
    NotMesh,
    /// Fewer bytes than the header says.
    #[error("mesh frame truncated: {0} bytes")]
    Truncated(usize),
    /// The origin is not a valid peer id.
    #[error("mesh frame origin is not a peer id")]
    BadOrigin,
}

impl MeshFrame {
    /// The envelope that carries it.
    pub fn to_envelope(&self) -> Envelope {
        let origin = self.origin.as_str().as_bytes();
        let mut payload = Vec::with_capacity(HEADER + origin.len() + self.data.len());
        payload.push(self.ttl);
        payload.push(self.dim.unwrap_or(ORIGIN_DIM));
        payload.push(u8::from(self.intra));
        payload.extend_from_slice(&self.epoch.to_be_bytes());
        payload.extend_from_slice(&self.origin_cell.to_be_bytes());
        // Peer ids are at most 64 bytes (PeerId's own bound).
        payload.push(origin.len().min(255) as u8);
        payload.extend_from_slice(origin);
        payload.extend_from_slice(&self.data);
        Envelope {
            kind: EnvelopeKind::Mesh,
            hops: self.hops,
            channel: None,
            id: self.seq,
            payload,
        }
    }

    /// Reads a frame from an envelope that came from the network.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, FrameError> {
        if envelope.kind != EnvelopeKind::Mesh {
            return Err(FrameError::NotMesh);
        }
        let p = &envelope.payload;
        let truncated = FrameError::Truncated(p.len());
        let [
            ttl,
            dim,
            flags,
            e0,
            e1,
            e2,
            e3,
            c0,
            c1,
            c2,
            c3,
            n,
            rest @ ..,
        ] = p.as_slice()
        else {
            return Err(truncated);
        };
        let (origin, data) = rest.split_at_checked(usize::from(*n)).ok_or(truncated)?;
        let origin = std::str::from_utf8(origin).map_err(|_| FrameError::BadOrigin)?;
        let origin = PeerId::new(origin).map_err(|_| FrameError::BadOrigin)?;
        Ok(Self {
            origin,
            seq: envelope.id,
            hops: envelope.hops,
            ttl: *ttl,
            dim: (*dim != ORIGIN_DIM).then_some(*dim),
            intra: flags & 1 == 1,
            epoch: u32::from_be_bytes([*e0, *e1, *e2, *e3]),
            origin_cell: u32::from_be_bytes([*c0, *c1, *c2, *c3]),
            data: data.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame() -> MeshFrame {
        MeshFrame {
            origin: PeerId::new("0123456789abcdef0123456789abcdef01234567").unwrap(),
            seq: 77,
            hops: 3,
            ttl: 9,
            dim: Some(1),
            intra: true,
            epoch: 4,
            origin_cell: 300,
            data: br#"{"hello":1}"#.to_vec(),
        }
    }

    #[test]
    fn a_frame_survives_the_wire() {
        let f = frame();
        let bytes = f.to_envelope().encode();
        let back = MeshFrame::from_envelope(&Envelope::decode(&bytes).unwrap()).unwrap();
        assert_eq!(back, f);
        let origin_cell = MeshFrame {
            dim: None,
            intra: false,
            ..f
        };
        let back = MeshFrame::from_envelope(&origin_cell.to_envelope()).unwrap();
        assert_eq!(back, origin_cell);
    }

    #[test]
    fn truncated_and_foreign_frames_are_errors() {
        let mut env = frame().to_envelope();
        env.payload.truncate(14);
        assert_eq!(
            MeshFrame::from_envelope(&env),
            Err(FrameError::Truncated(14))
        );
        env.payload.clear();
        assert!(matches!(
            MeshFrame::from_envelope(&env),
            Err(FrameError::Truncated(0))
        ));
        let ping = Envelope::control(EnvelopeKind::Ping, 1);
        assert_eq!(MeshFrame::from_envelope(&ping), Err(FrameError::NotMesh));
        let mut bad = frame().to_envelope();
        bad.payload[12] = 0xff;
        assert_eq!(MeshFrame::from_envelope(&bad), Err(FrameError::BadOrigin));
    }

    proptest! {
        #[test]
        fn no_payload_panics_the_decoder(payload in proptest::collection::vec(any::<u8>(), 0..80), hops: u8) {
            let env = Envelope { kind: EnvelopeKind::Mesh, hops, channel: None, id: 1, payload };
            let _ = MeshFrame::from_envelope(&env);
        }
    }
}
