//! Peer identity: an Ed25519 key pair per peer, the peer id derived from its public key, and
//! the two signatures that use it.
//!
//! - **Joining**: the server sends a random challenge in `hello`; the client signs
//!   `join_message(challenge, room)`. The server admits the peer under the id its key derives,
//!   so nobody can take another's id without its secret key.
//! - **Linking**: every offer and answer carries the sender's key and a signature over the
//!   DTLS fingerprints of its SDP and both peer ids ([`link_message`]). The receiver checks
//!   that the key derives the sender's id and that the signature holds before it applies the
//!   description. A signaling server that swaps fingerprints to sit in the middle cannot sign
//!   them, and is caught.
//!
//! A peer id is the first 160 bits of SHA-256 over the public key, as 40 lowercase hex digits.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::PeerId;

/// Bytes in a join challenge.
pub const CHALLENGE_BYTES: usize = 32;

/// Why an identity check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The public key is not base64url of a valid Ed25519 point.
    #[error("bad public key: {0}")]
    BadKey(String),
    /// The signature is not base64url of 64 bytes.
    #[error("bad signature encoding")]
    BadSignature,
    /// The key does not derive the claimed peer id.
    #[error("key belongs to peer {derived}, not {claimed}")]
    WrongPeer {
        /// The id the key derives.
        derived: String,
        /// The id claimed.
        claimed: String,
    },
    /// The signature does not verify.
    #[error("signature does not verify")]
    Forged,
    /// The SDP carries no DTLS fingerprint to sign.
    #[error("the description has no DTLS fingerprint")]
    NoFingerprint,
}

/// A peer's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses base64url (no padding) of the 32 key bytes.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let bytes = B64
            .decode(text)
            .map_err(|e| IdentityError::BadKey(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| IdentityError::BadKey("not 32 bytes".into()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|e| IdentityError::BadKey(e.to_string()))
    }

    /// The key as base64url without padding (43 characters).
    pub fn encode(&self) -> String {
        B64.encode(self.0.as_bytes())
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The peer id this key derives.
    pub fn peer_id(&self) -> PeerId {
        let digest = Sha256::digest(self.0.as_bytes());
        let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
        // 40 lowercase hex digits are always a valid peer id.
        PeerId::new(hex).unwrap_or_else(|_| unreachable!("hex is a valid peer id"))
    }

    /// Checks that this key derives `claimed`.
    pub fn check_peer(&self, claimed: &PeerId) -> Result<(), IdentityError> {
        let derived = self.peer_id();
        if &derived == claimed {
            Ok(())
        } else {
            Err(IdentityError::WrongPeer {
                derived: derived.to_string(),
                claimed: claimed.to_string(),
            })
        }
    }

    /// Verifies a base64url signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &str) -> Result<(), IdentityError> {
        let bytes = B64
            .decode(signature)
            .map_err(|_| IdentityError::BadSignature)?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| IdentityError::BadSignature)?;
        self.0
            .verify_strict(message, &Signature::from_bytes(&bytes))
            .map_err(|_| IdentityError::Forged)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.encode())
    }
}

/// A peer's key pair. The secret never leaves this type except through
/// [`Identity::save`].
#[derive(Clone)]
pub struct Identity(SigningKey);

/// Why an identity file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityFileError {
    /// Reading or writing failed.
    #[error("identity file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("identity file {0} does not hold a Plenum identity (64 hex digits)")]
    Corrupt(String),
}

impl Identity {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        // The OS random source failing leaves no safe way on; it does not fail on the
        // platforms Plenum runs on.
        getrandom::fill(&mut seed).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
        Self(SigningKey::from_bytes(&seed))
    }

    /// The key whose secret is `seed` (for tests and files).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// Loads the key in `path`, or creates one there (readable by the owner only).
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityFileError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_file(text.trim()).ok_or(IdentityFileError::Corrupt(shown)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate();
                identity.save(path)?;
                Ok(identity)
            }
            Err(source) => Err(IdentityFileError::Io {
                path: shown,
                source,
            }),
        }
    }

    fn parse_file(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self::from_seed(seed))
    }

    /// Writes the secret key to `path` (mode 0600 on Unix), creating parent directories.
    pub fn save(&self, path: &Path) -> Result<(), IdentityFileError> {
        let io = |source| IdentityFileError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let hex: String = self
            .0
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        std::io::Write::write_all(&mut file, format!("{hex}\n").as_bytes()).map_err(io)
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The peer id the key derives.
    pub fn peer_id(&self) -> PeerId {
        self.public().peer_id()
    }

    /// Signs `message`; base64url without padding.
    pub fn sign(&self, message: &[u8]) -> String {
        B64.encode(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.peer_id())
    }
}

/// What a joining peer signs: the server's challenge and the room.
pub fn join_message(challenge: &str, room: &str) -> Vec<u8> {
    format!("plenum-join-v2\n{challenge}\n{room}").into_bytes()
}

/// The DTLS fingerprints of a session description, normalised and sorted
/// (`sha-256 AB:CD:...`, one per distinct certificate hash).
pub fn fingerprints(sdp: &str) -> Vec<String> {
    let mut found: Vec<String> = sdp
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a=fingerprint:"))
        .map(|f| {
            let mut parts = f.split_whitespace();
            let algorithm = parts.next().unwrap_or("").to_ascii_lowercase();
            let value = parts.next().unwrap_or("").to_ascii_uppercase();
            format!("{algorithm} {value}")
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// What the sender of an offer or answer signs: the kind, both ids, its description
/// counter and the fingerprints.
pub fn link_message(
    kind: &str,
    from: &PeerId,
    to: &PeerId,
    seq: u64,
    sdp: &str,
) -> Result<Vec<u8>, IdentityError> {
    let prints = fingerprints(sdp);
    if prints.is_empty() {
        return Err(IdentityError::NoFingerprint);
    }
    let prints = prints.join("\n");
    Ok(format!("plenum-link-v2\n{kind}\n{from}\n{to}\n{seq}\n{prints}").into_bytes())
}

/// Signs an offer or answer of ours, numbered `seq`.
pub fn sign_link(
    identity: &Identity,
    kind: &str,
    to: &PeerId,
    seq: u64,
    sdp: &str,
) -> Result<String, IdentityError> {
    let message = link_message(kind, &identity.peer_id(), to, seq, sdp)?;
    Ok(identity.sign(&message))
}

/// Checks an offer or answer from `from` to `to`: the key derives `from` and signed the
/// fingerprints of `sdp` and `seq`. Returns the sender's key. (Whether `seq` is newer than
/// the last one seen from `from` is the caller's check.)
pub fn verify_link(
    kind: &str,
    from: &PeerId,
    to: &PeerId,
    seq: u64,
    sdp: &str,
    key: &str,
    signature: &str,
) -> Result<PublicKey, IdentityError> {
    let key = PublicKey::parse(key)?;
    key.check_peer(from)?;
    key.verify(&link_message(kind, from, to, seq, sdp)?, signature)?;
    Ok(key)
}

/// The safety code two peers compare aloud: 20 digits in four groups of five, the same on
/// both sides (it does not depend on who computes it). Equal codes mean each side holds the
/// other's real key.
pub fn safety_code(a: &PublicKey, b: &PublicKey) -> String {
    let (lo, hi) = if a.as_bytes() <= b.as_bytes() {
        (a, b)
    } else {
        (b, a)
    };
    let mut hasher = Sha256::new();
    hasher.update(b"plenum-safety-v1");
    hasher.update(lo.as_bytes());
    hasher.update(hi.as_bytes());
    let digest = hasher.finalize();
    let groups: Vec<String> = digest
        .chunks(5)
        .take(4)
        .map(|chunk| {
            let n = chunk.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect();
    groups.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=fingerprint:sha-256 AB:CD:EF:01\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
        a=fingerprint:sha-256 ab:cd:ef:01\r\n";

    fn ids() -> (Identity, Identity) {
        (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]))
    }

    #[test]
    fn peer_id_is_forty_hex_digits_of_the_key() {
        let (a, b) = ids();
        assert_eq!(a.peer_id().as_str().len(), 40);
        assert!(a.peer_id().as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.peer_id(), b.peer_id());
        let round = PublicKey::parse(&a.public().encode()).unwrap();
        assert_eq!(round.peer_id(), a.peer_id());
    }

    #[test]
    fn a_signed_offer_verifies_and_a_swapped_fingerprint_does_not() {
        let (a, b) = ids();
        let sig = sign_link(&a, "offer", &b.peer_id(), 7, SDP).unwrap();
        let key = a.public().encode();
        assert!(verify_link("offer", &a.peer_id(), &b.peer_id(), 7, SDP, &key, &sig).is_ok());
        let swapped = SDP.replace("AB:CD:EF:01", "00:11:22:33");
        assert_eq!(
            verify_link("offer", &a.peer_id(), &b.peer_id(), 7, &swapped, &key, &sig),
            Err(IdentityError::Forged)
        );
        // Signed as an offer, replayed as an answer.
        assert_eq!(
            verify_link("answer", &a.peer_id(), &b.peer_id(), 7, SDP, &key, &sig),
            Err(IdentityError::Forged)
        );
        // The same description under another number (a replay renumbered).
        assert_eq!(
            verify_link("offer", &a.peer_id(), &b.peer_id(), 8, SDP, &key, &sig),
            Err(IdentityError::Forged)
        );
        // Someone else's key under a's id.
        let bkey = b.public().encode();
        let bsig = sign_link(&b, "offer", &b.peer_id(), 7, SDP).unwrap();
        assert!(matches!(
            verify_link("offer", &a.peer_id(), &b.peer_id(), 7, SDP, &bkey, &bsig),
            Err(IdentityError::WrongPeer { .. })
        ));
        assert_eq!(
            sign_link(&a, "offer", &b.peer_id(), 7, "v=0\r\n"),
            Err(IdentityError::NoFingerprint)
        );
    }

    #[test]
    fn safety_codes_agree_on_both_sides_and_differ_between_pairs() {
        let (a, b) = ids();
        let c = Identity::from_seed([3; 32]);
        let ab = safety_code(&a.public(), &b.public());
        assert_eq!(ab, safety_code(&b.public(), &a.public()));
        assert_ne!(ab, safety_code(&a.public(), &c.public()));
        assert_eq!(ab.len(), 23);
        assert!(ab.split(' ').all(|g| g.len() == 5));
    }

    #[test]
    fn identity_files_round_trip_and_corrupt_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("plenum-id-{}", std::process::id()));
        let path = dir.join("id.key");
        let made = Identity::load_or_create(&path).unwrap();
        let again = Identity::load_or_create(&path).unwrap();
        assert_eq!(made.peer_id(), again.peer_id());
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            Identity::load_or_create(&path),
            Err(IdentityFileError::Corrupt(_))
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    proptest! {
        #[test]
        fn verify_link_never_panics_and_refuses_garbage(
            sdp in ".{0,300}", key in ".{0,60}", sig in ".{0,100}", kind in "[a-z]{0,8}"
        ) {
            let (a, b) = ids();
            let verdict = verify_link(&kind, &a.peer_id(), &b.peer_id(), 7, &sdp, &key, &sig);
            prop_assert!(verdict.is_err());
        }

        #[test]
        fn any_change_to_a_signed_fingerprint_is_caught(
            byte in 0usize..11, new in "[0-9A-F]"
        ) {
            let (a, b) = ids();
            let sig = sign_link(&a, "offer", &b.peer_id(), 7, SDP).unwrap();
            let original = "AB:CD:EF:01";
            let mut changed = original.to_string();
            changed.replace_range(byte..byte + 1, &new);
            let sdp = SDP.replace(original, &changed);
            let verdict = verify_link("offer", &a.peer_id(), &b.peer_id(), 7, &sdp,
                &a.public().encode(), &sig);
            // Changing the fingerprint breaks the signature; leaving it unchanged does not.
            let same = fingerprints(&sdp) == fingerprints(SDP);
            prop_assert_eq!(verdict.is_ok(), same);
        }
    }
}
