//! Invite links: `plenum://join?server=ws%3A%2F%2F192.168.1.20%3A7878&room=standup`.
//!
//! An invite names a signaling server and a room, never a password or an access code. A
//! presenter's invite also says that it joins as a viewer (`role=viewer`) and, when the
//! presenter asks for one, that an access code is needed (`credentials=required`). The app
//! shows one in every call; the app's join screen and `plenum join --invite` accept it.

use std::fmt;

use plenum_proto::signal::Role;
use plenum_proto::{NameError, RoomName};
use url::Url;

/// A signaling server and a room, as an invite link carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The signaling server, `ws://` or `wss://`.
    pub server: String,
    /// The room.
    pub room: RoomName,
    /// The role to join as, when the inviter says (a presenter's invite: `Viewer`).
    pub role: Option<Role>,
    /// Whether the room's presenter asks for credentials (an access code) with the join.
    pub credentials: bool,
}

/// Why a text is not an invite link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// Not a URL at all.
    #[error("not a link: {0}")]
    NotALink(String),
    /// A URL, but not `plenum://join?...`.
    #[error("not a plenum://join link")]
    NotAnInvite,
    /// The `server` parameter is missing or not a ws:// or wss:// URL.
    #[error("the invite has no ws:// or wss:// server")]
    BadServer,
    /// The `room` parameter is missing or not a valid room name.
    #[error("the invite's room is invalid: {0}")]
    BadRoom(#[from] NameError),
    /// The `room` parameter is missing.
    #[error("the invite names no room")]
    NoRoom,
    /// The `role` parameter is not `publisher`, `viewer` or `both`.
    #[error("the invite's role {0:?} is not publisher, viewer or both")]
    BadRole(String),
}

impl Invite {
    /// The scheme of invite links.
    pub const SCHEME: &'static str = "plenum";

    /// Parses an invite link (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<Self, InviteError> {
        let url = Url::parse(text.trim()).map_err(|e| InviteError::NotALink(e.to_string()))?;
        if url.scheme() != Self::SCHEME || url.host_str() != Some("join") {
            return Err(InviteError::NotAnInvite);
        }
        let (mut server, mut room, mut role, mut credentials) = (None, None, None, false);
        for (key, value) in url.query_pairs() {
            match &*key {
                "server" => server = Some(value.into_owned()),
                "room" => room = Some(value.into_owned()),
                "role" => {
                    role = Some(
                        Role::parse(&value)
                            .ok_or_else(|| InviteError::BadRole(value.clone().into_owned()))?,
                    )
                }
                "credentials" => credentials = value == "required",
                // Parameters of later versions are ignored.
                _ => {}
            }
        }
        let server = server.ok_or(InviteError::BadServer)?;
        let ws = Url::parse(&server).map_err(|_| InviteError::BadServer)?;
        if !matches!(ws.scheme(), "ws" | "wss") || ws.host_str().is_none() {
            return Err(InviteError::BadServer);
        }
        let room = RoomName::new(room.ok_or(InviteError::NoRoom)?)?;
        Ok(Self {
            server,
            room,
            role,
            credentials,
        })
    }

    /// The link a browser opens to join as a guest: the server's guest page,
    /// `http(s)://HOST:PORT/r/ROOM` (a server URL with a path adds it as `?server=`, a
    /// presenter's invite `?role=viewer`, an access code asked for `?credentials=required`:
    /// the page then asks for the code, which never goes in the link). `None` for a server
    /// URL that is not one.
    pub fn web_link(&self) -> Option<String> {
        let ws = Url::parse(&self.server).ok()?;
        let scheme = match ws.scheme() {
            "ws" => "http",
            "wss" => "https",
            _ => return None,
        };
        let mut page = Url::parse(&format!("{scheme}://{}/r/", ws.host_str()?)).ok()?;
        page.set_port(ws.port()).ok()?;
        page.path_segments_mut()
            .ok()?
            .pop_if_empty()
            .push(self.room.as_str());
        if ws.path() != "/" && !ws.path().is_empty() {
            page.query_pairs_mut().append_pair("server", &self.server);
        }
        if let Some(role) = self.role.filter(|r| !r.is_both()) {
            page.query_pairs_mut().append_pair("role", role.as_str());
        }
        if self.credentials {
            page.query_pairs_mut()
                .append_pair("credentials", "required");
        }
        Some(page.into())
    }
}

impl fmt::Display for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut url = Url::parse("plenum://join").map_err(|_| fmt::Error)?;
        url.query_pairs_mut()
            .append_pair("server", &self.server)
            .append_pair("room", self.room.as_str());
        if let Some(role) = self.role {
            url.query_pairs_mut().append_pair("role", role.as_str());
        }
        if self.credentials {
            url.query_pairs_mut().append_pair("credentials", "required");
        }
        f.write_str(url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let invite = Invite {
            server: "ws://192.168.1.20:7878".into(),
            room: RoomName::new("team sync").unwrap(),
            role: None,
            credentials: false,
        };
        let link = invite.to_string();
        assert_eq!(
            link,
            "plenum://join?server=ws%3A%2F%2F192.168.1.20%3A7878&room=team+sync"
        );
        assert_eq!(Invite::parse(&format!("  {link}\n")).unwrap(), invite);
    }

    #[test]
    fn the_web_link_opens_the_servers_guest_page() {
        let invite = |server: &str, room: &str| Invite {
            server: server.into(),
            room: RoomName::new(room).unwrap(),
            role: None,
            credentials: false,
        };
        assert_eq!(
            invite("ws://192.168.1.20:7878", "team sync")
                .web_link()
                .as_deref(),
            Some("http://192.168.1.20:7878/r/team%20sync")
        );
        assert_eq!(
            invite("wss://meet.example/", "a/b?c").web_link().as_deref(),
            Some("https://meet.example/r/a%2Fb%3Fc")
        );
        assert_eq!(
            invite("wss://meet.example/signal", "standup")
                .web_link()
                .as_deref(),
            Some("https://meet.example/r/standup?server=wss%3A%2F%2Fmeet.example%2Fsignal")
        );
        assert_eq!(
            invite("ws://[::1]:8080", "x").web_link().as_deref(),
            Some("http://[::1]:8080/r/x")
        );
        let presenting = Invite {
            role: Some(Role::Viewer),
            ..invite("ws://127.0.0.1:1", "talk")
        };
        assert_eq!(
            presenting.web_link().as_deref(),
            Some("http://127.0.0.1:1/r/talk?role=viewer")
        );
        let with_code = Invite {
            credentials: true,
            ..presenting
        };
        assert_eq!(
            with_code.web_link().as_deref(),
            Some("http://127.0.0.1:1/r/talk?role=viewer&credentials=required")
        );
    }

    #[test]
    fn a_presenters_invite_says_viewer_and_asks_for_credentials() {
        let invite = Invite {
            server: "ws://a:1".into(),
            room: RoomName::new("talk").unwrap(),
            role: Some(Role::Viewer),
            credentials: true,
        };
        let link = invite.to_string();
        assert!(
            link.ends_with("&room=talk&role=viewer&credentials=required"),
            "{link}"
        );
        assert_eq!(Invite::parse(&link).unwrap(), invite);
        // Any other value of `credentials` asks for none; an unknown role is refused.
        let open = Invite::parse("plenum://join?server=ws://a:1&room=talk&credentials=no").unwrap();
        assert!(!open.credentials && open.role.is_none());
        assert_eq!(
            Invite::parse("plenum://join?server=ws://a:1&room=talk&role=host"),
            Err(InviteError::BadRole("host".into()))
        );
    }

    #[test]
    fn refuses_what_is_not_an_invite() {
        assert!(matches!(
            Invite::parse("hello"),
            Err(InviteError::NotALink(_))
        ));
        assert_eq!(
            Invite::parse("https://join?server=ws://a&room=b"),
            Err(InviteError::NotAnInvite)
        );
        assert_eq!(
            Invite::parse("plenum://leave?server=ws://a&room=b"),
            Err(InviteError::NotAnInvite)
        );
        assert_eq!(
            Invite::parse("plenum://join?room=b"),
            Err(InviteError::BadServer)
        );
        assert_eq!(
            Invite::parse("plenum://join?server=http://a&room=b"),
            Err(InviteError::BadServer)
        );
        assert_eq!(
            Invite::parse("plenum://join?server=ws://a"),
            Err(InviteError::NoRoom)
        );
        let long = "r".repeat(65);
        assert!(matches!(
            Invite::parse(&format!("plenum://join?server=ws://a&room={long}")),
            Err(InviteError::BadRoom(_))
        ));
    }
}
