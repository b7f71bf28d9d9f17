//! Pieces of the overlays' binary messages: big-endian integers and length-prefixed
//! peer ids.

use plenum_proto::PeerId;

/// Why a piece could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireError {
    /// Fewer bytes than it needs (the bytes that were left).
    Truncated(usize),
    /// A peer id that is not one.
    BadPeer,
}

/// Writes a length byte and the id (length 0: none).
pub(crate) fn push_peer(out: &mut Vec<u8>, peer: Option<&PeerId>) {
    let id = peer.map_or(&[][..], |p| p.as_str().as_bytes());
    // Peer ids are at most 64 bytes (PeerId's own bound).
    out.push(id.len().min(255) as u8);
    out.extend_from_slice(id);
}

pub(crate) fn read_u32(p: &[u8]) -> Result<(u32, &[u8]), WireError> {
    match p {
        [a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        _ => Err(WireError::Truncated(p.len())),
    }
}

/// Reads a length-prefixed peer id; an empty one is `None`.
pub(crate) fn read_peer(p: &[u8]) -> Result<(Option<PeerId>, &[u8]), WireError> {
    let Some((n, rest)) = p.split_first() else {
        return Err(WireError::Truncated(p.len()));
    };
    let (id, rest) = rest
        .split_at_checked(usize::from(*n))
        .ok_or(WireError::Truncated(p.len()))?;
    if id.is_empty() {
        return Ok((None, rest));
    }
    let id = std::str::from_utf8(id).map_err(|_| WireError::BadPeer)?;
    let id = PeerId::new(id).map_err(|_| WireError::BadPeer)?;
    Ok((Some(id), rest))
}

/// Reads a count byte and that many peer ids (none may be empty).
pub(crate) fn read_peers(p: &[u8]) -> Result<(Vec<PeerId>, &[u8]), WireError> {
    let Some((n, mut rest)) = p.split_first() else {
        return Err(WireError::Truncated(0));
    };
    let mut out = Vec::with_capacity(usize::from(*n));
    for _ in 0..*n {
        let (peer, r) = read_peer(rest)?;
        out.push(peer.ok_or(WireError::BadPeer)?);
        rest = r;
    }
    Ok((out, rest))
}

/// Writes a count byte and the ids (at most 255).
pub(crate) fn push_peers(out: &mut Vec<u8>, peers: &[PeerId]) {
    let n = peers.len().min(255);
    out.push(n as u8);
    for p in &peers[..n] {
        push_peer(out, Some(p));
    }
}
