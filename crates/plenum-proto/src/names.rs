//! Validated names and ids.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name or id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The value was empty.
    #[error("{what} must not be empty")]
    Empty {
        /// Which kind of name.
        what: &'static str,
    },
    /// The value was longer than allowed, in bytes of UTF-8.
    #[error("{what} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Which kind of name.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The value held a character that is not allowed.
    #[error("{what} contains a character that is not allowed: {ch:?}")]
    BadChar {
        /// Which kind of name.
        what: &'static str,
        /// The first offending character.
        ch: char,
    },
}

fn check(
    what: &'static str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > max {
        return Err(NameError::TooLong {
            what,
            len: value.len(),
            max,
        });
    }
    match value.chars().find(|c| !allowed(*c)) {
        Some(ch) => Err(NameError::BadChar { what, ch }),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in bytes of UTF-8.
            pub const MAX_BYTES: usize = $max;

            /// Validates `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                check($what, &value, Self::MAX_BYTES, $allowed)?;
                Ok(Self(value))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(value: &str) -> Result<Self, NameError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

name_type!(
    /// A peer's id in a room: 1 to 64 ASCII letters, digits, `-` or `_`. The server assigns
    /// one (16 hex digits) unless the peer asks for its own.
    PeerId, "peer id", 64, |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_'
);

name_type!(
    /// A room's name: 1 to 64 bytes of UTF-8 without control characters.
    RoomName, "room name", 64, |c: char| !c.is_control()
);

name_type!(
    /// A named data channel of a room: 1 to 12 bytes of UTF-8 without control characters.
    ChannelName, "channel name", 12, |c: char| !c.is_control()
);

name_type!(
    /// A participant's display name: 1 to 64 bytes of UTF-8 without control characters.
    DisplayName, "display name", 64, |c: char| !c.is_control()
);

impl PeerId {
    /// A short form for logs: the first 8 characters.
    pub fn short(&self) -> &str {
        let end = self.0.len().min(8);
        // Peer ids are ASCII, so every index is a char boundary.
        self.0.get(..end).unwrap_or(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_name_allows_twelve_bytes_and_refuses_thirteen() {
        assert!(ChannelName::new("abcdefghijkl").is_ok());
        assert_eq!(
            ChannelName::new("abcdefghijklm"),
            Err(NameError::TooLong {
                what: "channel name",
                len: 13,
                max: 12
            })
        );
        // Four 3-byte characters are 12 bytes; one more 2-byte character is too many.
        assert!(ChannelName::new("€€€€é").is_err());
        assert!(ChannelName::new("€€€€").is_ok());
    }

    #[test]
    fn names_refuse_empty_and_control_characters() {
        assert!(matches!(RoomName::new(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            DisplayName::new("a\nb"),
            Err(NameError::BadChar { ch: '\n', .. })
        ));
        assert!(matches!(
            PeerId::new("a b"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(PeerId::new("A-z_09").is_ok());
    }

    #[test]
    fn names_deserialize_through_validation() {
        let ok: Result<ChannelName, _> = serde_json::from_str("\"chat\"");
        assert!(ok.is_ok());
        let bad: Result<ChannelName, _> = serde_json::from_str("\"a-very-long-name\"");
        assert!(bad.is_err());
    }
}
