//! Room tokens: what a server started with `--token-secret-file` asks of every joining peer.
//!
//! A token is `v1.<claims>.<mac>`: base64url (no padding) of the JSON claims, and of their
//! HMAC-SHA256 under the server's secret. The claims name one room, the display name, the
//! expiry (Unix seconds) and the grants (publish, subscribe, admin), after LiveKit's video
//! grants. Whoever holds the secret mints tokens (`plenum token`); the server only checks.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{DisplayName, RoomName};

/// The version prefix of the token format.
const PREFIX: &str = "v1";
/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 2048;

/// What a token lets its holder do in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// May send audio, video and screen streams.
    pub publish: bool,
    /// May receive the others' streams and data.
    pub subscribe: bool,
    /// May administer the room (reserved for room administration; carried and shown).
    #[serde(default)]
    pub admin: bool,
}

impl Grants {
    /// Everything but administration: an ordinary participant.
    pub const PARTICIPANT: Self = Self {
        publish: true,
        subscribe: true,
        admin: false,
    };
    /// Receive only.
    pub const VIEWER: Self = Self {
        publish: false,
        subscribe: true,
        admin: false,
    };
}

impl Default for Grants {
    fn default() -> Self {
        Self::PARTICIPANT
    }
}

/// The signed contents of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The one room the token admits to.
    pub room: RoomName,
    /// The display name its holder appears under.
    pub name: DisplayName,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// What its holder may do.
    pub grants: Grants,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format (wrong shape, encoding, or claims).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The MAC does not match: not minted with this server's secret.
    #[error("token signature does not verify")]
    Forged,
    /// Past its expiry.
    #[error("token expired {0} s ago")]
    Expired(u64),
    /// Minted for another room.
    #[error("token is for room {0:?}")]
    WrongRoom(String),
}

fn mac(secret: &[u8], claims: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(PREFIX.as_bytes());
    mac.update(b".");
    mac.update(claims.as_bytes());
    mac
}

impl Claims {
    /// Mints a token for these claims under `secret`.
    pub fn mint(&self, secret: &[u8]) -> String {
        // Claims of validated names, a number and booleans always serialise.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let claims = B64.encode(json);
        let tag = B64.encode(mac(secret, &claims).finalize().into_bytes());
        format!("{PREFIX}.{claims}.{tag}")
    }

    /// Checks a token against `secret`, the room being joined and the time (Unix seconds).
    /// The MAC is checked before anything in the claims is believed.
    pub fn verify(
        token: &str,
        secret: &[u8],
        room: &RoomName,
        now: u64,
    ) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(format!(
                "{} bytes; at most {MAX_TOKEN_BYTES}",
                token.len()
            )));
        }
        let mut parts = token.split('.');
        let (Some(prefix), Some(claims), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected v1.<claims>.<mac>".into()));
        };
        if prefix != PREFIX {
            return Err(TokenError::Malformed(format!("unknown version {prefix:?}")));
        }
        let tag = B64
            .decode(tag)
            .map_err(|e| TokenError::Malformed(format!("mac: {e}")))?;
        mac(secret, claims)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Forged)?;
        let json = B64
            .decode(claims)
            .map_err(|e| TokenError::Malformed(format!("claims: {e}")))?;
        let claims: Self = serde_json::from_slice(&json)
            .map_err(|e| TokenError::Malformed(format!("claims: {e}")))?;
        if now >= claims.exp {
            return Err(TokenError::Expired(now - claims.exp));
        }
        if &claims.room != room {
            return Err(TokenError::WrongRoom(claims.room.to_string()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claims(grants: Grants) -> Claims {
        Claims {
            room: RoomName::new("standup").unwrap(),
            name: DisplayName::new("Ada").unwrap(),
            exp: 1_000,
            grants,
        }
    }

    fn room(name: &str) -> RoomName {
        RoomName::new(name).unwrap()
    }

    #[test]
    fn a_minted_token_verifies_with_its_secret_room_and_time() {
        let token = claims(Grants::VIEWER).mint(b"secret");
        let got = Claims::verify(&token, b"secret", &room("standup"), 999).unwrap();
        assert_eq!(got, claims(Grants::VIEWER));
    }

    #[test]
    fn each_refusal_has_its_own_error() {
        let token = claims(Grants::PARTICIPANT).mint(b"secret");
        assert_eq!(
            Claims::verify(&token, b"other", &room("standup"), 10),
            Err(TokenError::Forged)
        );
        assert_eq!(
            Claims::verify(&token, b"secret", &room("standup"), 1_005),
            Err(TokenError::Expired(5))
        );
        assert_eq!(
            Claims::verify(&token, b"secret", &room("retro"), 10),
            Err(TokenError::WrongRoom("standup".into()))
        );
        assert!(matches!(
            Claims::verify("hello", b"secret", &room("standup"), 10),
            Err(TokenError::Malformed(_))
        ));
        // Claims edited after minting (viewer made publisher) no longer match the MAC.
        let viewer = claims(Grants::VIEWER).mint(b"secret");
        let forged_claims = B64.encode(serde_json::to_vec(&claims(Grants::PARTICIPANT)).unwrap());
        let tag = viewer.rsplit('.').next().unwrap();
        let edited = format!("v1.{forged_claims}.{tag}");
        assert_eq!(
            Claims::verify(&edited, b"secret", &room("standup"), 10),
            Err(TokenError::Forged)
        );
    }

    proptest! {
        #[test]
        fn the_parser_never_panics_and_accepts_only_minted_tokens(token in ".{0,400}") {
            prop_assert!(Claims::verify(&token, b"secret", &room("standup"), 0).is_err());
        }

        #[test]
        fn any_flipped_character_is_refused(index in 0usize..200, c in "[A-Za-z0-9_.-]") {
            let token = claims(Grants::PARTICIPANT).mint(b"secret");
            let index = index % token.len();
            let mut edited = token.clone();
            edited.replace_range(index..index + 1, &c);
            let verdict = Claims::verify(&edited, b"secret", &room("standup"), 10);
            prop_assert_eq!(verdict.is_ok(), edited == token);
        }
    }
}
