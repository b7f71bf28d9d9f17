//! Signaling frames: JSON text over a WebSocket, one frame per message.
//!
//! Directions are named after iroh-relay's habit: [`ClientToServer`] and [`ServerToClient`].
//! docs/protocol.md is the normative description; this module is its executable form.

use serde::{Deserialize, Serialize};

use crate::{DisplayName, PeerId, RoomName};

/// What a peer asks the server to relay to another peer: the WebRTC negotiation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalPayload {
    /// An SDP offer.
    Offer {
        /// The session description.
        sdp: String,
        /// The sender's public key (base64url), which derives its peer id.
        key: String,
        /// The sender's description counter: each one it signs is numbered higher than the
        /// last, so a replayed description is refused.
        seq: u64,
        /// The sender's signature over the fingerprints, both ids and `seq`
        /// ([`crate::identity::link_message`]).
        sig: String,
        /// What the sender presents to be let in (the room's verify hook checks it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials: Option<serde_json::Value>,
    },
    /// An SDP answer.
    Answer {
        /// The session description.
        sdp: String,
        /// As for the offer.
        key: String,
        /// As for the offer.
        seq: u64,
        /// As for the offer.
        sig: String,
        /// As for the offer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials: Option<serde_json::Value>,
        /// The `seq` of the offer this answers: an answer to an offer the receiver has
        /// since replaced is not applied to the connection that replaced it. Optional (a
        /// client that leaves it out has its answer taken by whatever offer waits).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answers: Option<u64>,
    },
    /// The receiver's offer or answer was refused: its credentials did not pass the
    /// sender's check. No link follows.
    Refused {
        /// Why, for people.
        reason: String,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// The candidate line (`candidate:...`).
        candidate: String,
        /// The media section id it belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        /// The media section index it belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u16>,
    },
    /// A broadcast tree's join request or its answer (tree rooms only).
    Tree {
        /// What the sender says.
        msg: crate::overlay::TreeSignal,
    },
    /// A relay network's link request from a peer that cannot route it (relay rooms
    /// only); the asked peer offers, or refuses over the network.
    RelayLink {
        /// The sender's open links: a peer with none is taken even by a full one.
        degree: u8,
    },
}

/// A frame a peer sends to the signaling server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientToServer {
    /// Enter a room. The first frame of every connection; exactly once.
    Join {
        /// Protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
        version: u32,
        /// The room to enter; created on first join.
        room: RoomName,
        /// The name shown to the others.
        name: DisplayName,
        /// The room's password, if it has one (the first joiner sets it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// The client's Ed25519 public key, base64url; its peer id derives from it.
        key: String,
        /// The client's signature over the `hello` challenge and the room
        /// ([`crate::identity::join_message`]).
        proof: String,
        /// A room token, on servers that require one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// The resume token of an earlier session, to take its place without the others
        /// seeing a leave and a join.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
        /// The overlay to create the room with (the room's own wins for later joiners).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topology: Option<crate::overlay::TopologySpec>,
        /// In a tree room, the secret that makes this peer the root (or, while a root is
        /// there, its standby). The first claim sets the room's secret; a claim with
        /// another one is refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root: Option<String>,
        /// What this peer does in the room: `publisher`, `viewer` or `both` (the default).
        /// Viewers link to publishers only.
        #[serde(default, skip_serializing_if = "Role::is_both")]
        role: Role,
        /// This peer links only in a full mesh (a browser guest): a cells room holds it
        /// only while it is one cell, and stays one cell, with no stage, while it is there.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mesh_only: bool,
    },
    /// Relay `payload` to the root of the sender's tree room (held while the room has
    /// none, until a standby takes over).
    SignalRoot {
        /// What to relay.
        payload: SignalPayload,
    },
    /// Relay `payload` to the peer `to` in the same room.
    Signal {
        /// The addressed peer.
        to: PeerId,
        /// The sender's own id. Optional; if present it must be the sender's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<PeerId>,
        /// What to relay.
        payload: SignalPayload,
    },
    /// In a host room: take the seat left vacant by the host of `epoch`. Granted to the
    /// first such claim only; every peer then hears `host`.
    ClaimHost {
        /// The epoch of the host that went (from the `host` frame that said so).
        epoch: u64,
    },
    /// In a cells room: whether the sender wants the stage (its voice to every cell), because
    /// it speaks or has raised its hand, and whether it presents (its pictures too). Sent when either changes; the server answers the
    /// room with `stage` when the seats change.
    Floor {
        /// Its voice is on (the speaking detector's word, with its hysteresis).
        speaking: bool,
        /// Its hand is up.
        #[serde(default)]
        hand: bool,
        /// It presents: its camera and screen are to reach every cell (and its voice).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        presenting: bool,
    },
    /// Leave the room; the server then closes the connection.
    Leave {},
    /// Keep-alive; answered with `pong`.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
}

/// The frame types a client may send, as they appear in the `type` field.
pub const CLIENT_FRAME_TYPES: &[&str] = &[
    "join",
    "signal",
    "signal_root",
    "claim_host",
    "floor",
    "leave",
    "ping",
];

/// What a peer does in a room (after p2p's Sender and Receiver). A viewer links to
/// publishers (and `both`) only, never to another viewer: a room of one publisher and N
/// viewers holds N links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sends to the room; links to everyone.
    Publisher,
    /// Receives; links to publishers only.
    Viewer,
    /// Both (the default): links to everyone.
    #[default]
    Both,
}

impl Role {
    /// Whether two peers of these roles link: unless both are viewers.
    pub fn links_with(self, other: Role) -> bool {
        !(self == Role::Viewer && other == Role::Viewer)
    }

    /// Whether it is the default.
    pub fn is_both(&self) -> bool {
        *self == Role::Both
    }

    /// As written on the wire and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publisher => "publisher",
            Self::Viewer => "viewer",
            Self::Both => "both",
        }
    }

    /// The role [`as_str`](Self::as_str) writes as `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Publisher, Self::Viewer, Self::Both]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// One peer of a room as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSummary {
    /// Its id.
    pub peer: PeerId,
    /// Its display name.
    pub name: DisplayName,
    /// Whether it may publish streams (false for a viewer token).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub publish: bool,
    /// Its role (absent: `both`).
    #[serde(default, skip_serializing_if = "Role::is_both")]
    pub role: Role,
}

fn yes() -> bool {
    true
}

fn mesh() -> crate::overlay::TopologySpec {
    crate::overlay::TopologySpec::Mesh
}

fn is_mesh(t: &crate::overlay::TopologySpec) -> bool {
    *t == crate::overlay::TopologySpec::Mesh
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A STUN or TURN server handed to a peer, with short-lived credentials for TURN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServerInfo {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name (`<expiry>:<peer id>` in the TURN REST scheme).
    #[serde(default)]
    pub username: String,
    /// TURN password (base64 HMAC-SHA1 of the user name under the shared secret).
    #[serde(default)]
    pub credential: String,
}

/// The limits the server enforces on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Frames per second accepted per connection (sustained; bursts of twice that pass).
    pub max_frames_per_sec: u32,
    /// Peers per room.
    pub max_peers_per_room: usize,
}

/// A peer on a cells room's stage, with what the others need to route and show its voice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSeat {
    /// The peer.
    pub peer: PeerId,
    /// Its display name.
    pub name: DisplayName,
    /// Its cell.
    pub cell: u32,
}

/// A frame the signaling server sends to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerToClient {
    /// The first frame of every connection: the challenge a `join` must sign.
    Hello {
        /// Protocol version the server speaks.
        version: u32,
        /// 32 random bytes, base64url.
        challenge: String,
    },
    /// The join was accepted.
    Welcome {
        /// Protocol version the server speaks.
        version: u32,
        /// The room joined.
        room: RoomName,
        /// The id of the receiving peer.
        peer: PeerId,
        /// Peers already in the room (a sample of at most `limits`-bounded size in a big room).
        peers: Vec<PeerSummary>,
        /// How many other peers the room holds in all.
        peer_count: usize,
        /// The limits in force.
        limits: Limits,
        /// What this peer may do (from its token; everything without one).
        #[serde(default)]
        grants: crate::token::Grants,
        /// STUN/TURN servers to use, TURN with credentials minted for this peer.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServerInfo>,
        /// Presented in a later `join` (after the connection dropped), it takes this
        /// session's place.
        resume: String,
        /// The room's overlay. In a cellular room `peers` is empty: a `cell` frame follows
        /// with the peers this one links to.
        #[serde(default = "mesh", skip_serializing_if = "is_mesh")]
        topology: crate::overlay::TopologySpec,
    },
    /// This peer's place in a cellular room: sent after the welcome and whenever its cell,
    /// cell mates or bridges change.
    Cell {
        /// The plan; it replaces the last one.
        plan: crate::overlay::CellPlan,
    },
    /// In a cells room: who holds each seat of the stage, whose voice reaches every cell.
    /// Sent to every member when a seat changes, and to a member after its welcome.
    Stage {
        /// The seats, always the room's stage size long; `null` for an empty one.
        seats: Vec<Option<StageSeat>>,
        /// Who presents: its camera and screen reach every cell. One at a time; a second
        /// that asks waits for the first to stop.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        presenter: Option<StageSeat>,
    },
    /// In a tree room: the receiver is now the root (sent to the first root claimant after
    /// its welcome, and to the standby that takes over from a root that left).
    Root {},
    /// In a host room: who holds the seat. Sent after the welcome, to everyone when the
    /// host goes (`peer` null: the seat is vacant, claim it with this `epoch`) and when a
    /// claim is granted, and to a claimant whose claim lost.
    Host {
        /// The host, or null while the seat is vacant.
        peer: Option<PeerId>,
        /// The host's epoch: one more for each host the room has had.
        epoch: u64,
    },
    /// A peer entered the room.
    PeerJoined {
        /// Its id.
        peer: PeerId,
        /// Its display name.
        name: DisplayName,
        /// Whether it may publish streams.
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        publish: bool,
        /// Its role (absent: `both`).
        #[serde(default, skip_serializing_if = "Role::is_both")]
        role: Role,
    },
    /// A peer left the room (cleanly or because its connection ended).
    PeerLeft {
        /// Its id.
        peer: PeerId,
    },
    /// A payload relayed from another peer of the room.
    Signal {
        /// The sender, as the server knows it (never as the sender claimed it).
        from: PeerId,
        /// The sender's name, as it joined: a tree or relay room hands out no roster, so
        /// this is how a peer asked to link learns whom it links.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<DisplayName>,
        /// The sender's role, when it is not `both`: so a presentation's tree tells its
        /// viewers from its presenters, though it hands out no roster.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
        /// What it sent.
        payload: SignalPayload,
    },
    /// Fresh TURN credentials before the last ones expire (the full list replaces the
    /// welcome's `ice_servers`).
    IceServers {
        /// STUN/TURN servers, TURN with new credentials.
        ice_servers: Vec<IceServerInfo>,
    },
    /// Answer to `ping`.
    Pong {
        /// The nonce of the ping.
        nonce: u64,
    },
    /// Something the client sent was refused. If `fatal`, the server closes the connection.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// Whether the connection is being closed.
        fatal: bool,
    },
}

/// Why the server refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, or not an object with a string `type`, or fields of the wrong shape.
    Malformed,
    /// A `type` this server does not know.
    UnknownType,
    /// Larger than `max_frame_bytes`.
    FrameTooLarge,
    /// More frames than `max_frames_per_sec` allows.
    RateLimited,
    /// The client's protocol version is not supported.
    UnsupportedVersion,
    /// A frame other than `join` before joining.
    NotJoined,
    /// A second `join` on one connection.
    AlreadyJoined,
    /// The room password did not match.
    BadPassword,
    /// The room holds `max_peers_per_room` peers.
    RoomFull,
    /// The server holds its maximum number of rooms.
    ServerFull,
    /// The requested peer id is in use in the room.
    PeerIdTaken,
    /// The addressed peer is not in the sender's room.
    UnknownPeer,
    /// The `from` field names another peer.
    SpoofedSender,
    /// The join's key or proof is malformed, or the proof does not verify.
    BadIdentity,
    /// The server requires a room token and the join has none.
    TokenRequired,
    /// The token is not a token (shape, encoding, claims).
    TokenInvalid,
    /// The token's signature does not verify under the server's secret.
    TokenForged,
    /// The token has expired.
    TokenExpired,
    /// The token was minted for another room.
    TokenWrongRoom,
    /// The join's topology options are not valid, or the frame needs another topology.
    BadTopology,
    /// The join claims the tree's root with a secret other than the room's.
    BadRootSecret,
    /// The server is shutting down or failed internally.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownType => "unknown_type",
            Self::FrameTooLarge => "frame_too_large",
            Self::RateLimited => "rate_limited",
            Self::UnsupportedVersion => "unsupported_version",
            Self::NotJoined => "not_joined",
            Self::AlreadyJoined => "already_joined",
            Self::BadPassword => "bad_password",
            Self::RoomFull => "room_full",
            Self::ServerFull => "server_full",
            Self::PeerIdTaken => "peer_id_taken",
            Self::UnknownPeer => "unknown_peer",
            Self::SpoofedSender => "spoofed_sender",
            Self::BadIdentity => "bad_identity",
            Self::TokenRequired => "token_required",
            Self::TokenInvalid => "token_invalid",
            Self::TokenForged => "token_forged",
            Self::TokenExpired => "token_expired",
            Self::TokenWrongRoom => "token_wrong_room",
            Self::BadTopology => "bad_topology",
            Self::BadRootSecret => "bad_root_secret",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a client frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not a JSON object with a string `type`.
    #[error("not a JSON object with a string \"type\": {0}")]
    NotAnObject(String),
    /// The `type` is not one of [`CLIENT_FRAME_TYPES`].
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    /// The `type` is known but the fields are wrong.
    #[error("bad {kind} frame: {detail}")]
    BadFields {
        /// The frame type.
        kind: String,
        /// What serde said.
        detail: String,
    },
}

impl FrameError {
    /// The error code the server answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownType(_) => ErrorCode::UnknownType,
            Self::NotAnObject(_) | Self::BadFields { .. } => ErrorCode::Malformed,
        }
    }
}

impl ClientToServer {
    /// Decodes one text frame, telling a malformed frame from an unknown type.
    pub fn decode(text: &str) -> Result<Self, FrameError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FrameError::NotAnObject(e.to_string()))?;
        let kind = value
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| FrameError::NotAnObject("missing \"type\"".into()))?
            .to_owned();
        if !CLIENT_FRAME_TYPES.contains(&kind.as_str()) {
            return Err(FrameError::UnknownType(kind));
        }
        serde_json::from_value(value).map_err(|e| FrameError::BadFields {
            kind,
            detail: e.to_string(),
        })
    }

    /// Encodes the frame as JSON text.
    pub fn encode(&self) -> String {
        // Serialising these plain data types cannot fail: no maps with non-string keys.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ServerToClient {
    /// Decodes one text frame from the server.
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Encodes the frame as JSON text.
    pub fn encode(&self) -> String {
        // As for ClientToServer::encode: plain data, cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// An error frame.
    pub fn error(code: ErrorCode, message: impl Into<String>, fatal: bool) -> Self {
        Self::Error {
            code,
            message: message.into(),
            fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn viewers_link_to_publishers_only_and_roles_default_to_both() {
        use Role::*;
        for (a, b, link) in [
            (Viewer, Viewer, false),
            (Viewer, Publisher, true),
            (Viewer, Both, true),
            (Publisher, Publisher, true),
            (Both, Both, true),
        ] {
            assert_eq!(a.links_with(b), link, "{a:?} - {b:?}");
            assert_eq!(b.links_with(a), link, "{b:?} - {a:?}");
        }
        let summary: PeerSummary = serde_json::from_str(r#"{"peer":"p1","name":"n"}"#).unwrap();
        assert_eq!(summary.role, Both);
        let viewer = PeerSummary {
            role: Viewer,
            ..summary
        };
        let text = serde_json::to_string(&viewer).unwrap();
        assert!(text.contains(r#""role":"viewer""#), "{text}");
        assert!(serde_json::from_str::<Role>(r#""watcher""#).is_err());
        for role in [Publisher, Viewer, Both] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("watcher"), None);
        // Credentials ride with offers; a refusal has its reason.
        let refused: SignalPayload =
            serde_json::from_str(r#"{"kind":"refused","reason":"no"}"#).unwrap();
        assert_eq!(
            refused,
            SignalPayload::Refused {
                reason: "no".into()
            }
        );
    }

    #[test]
    fn decode_tells_malformed_from_unknown() {
        assert_eq!(
            ClientToServer::decode("{\"type\":").unwrap_err().code(),
            ErrorCode::Malformed
        );
        assert_eq!(
            ClientToServer::decode("[1,2]").unwrap_err().code(),
            ErrorCode::Malformed
        );
        assert_eq!(
            ClientToServer::decode(r#"{"type":"dance"}"#)
                .unwrap_err()
                .code(),
            ErrorCode::UnknownType
        );
        assert_eq!(
            ClientToServer::decode(r#"{"type":"ping","nonce":"x"}"#)
                .unwrap_err()
                .code(),
            ErrorCode::Malformed
        );
    }

    #[test]
    fn join_validates_names() {
        let long_room = "r".repeat(65);
        let text = format!(
            r#"{{"type":"join","version":2,"room":"{long_room}","name":"a","key":"k","proof":"p"}}"#
        );
        assert_eq!(
            ClientToServer::decode(&text).unwrap_err().code(),
            ErrorCode::Malformed
        );
        let ok = ClientToServer::decode(
            r#"{"type":"join","version":2,"room":"r","name":"a","key":"k","proof":"p"}"#,
        );
        assert!(matches!(
            ok,
            Ok(ClientToServer::Join {
                password: None,
                token: None,
                ..
            })
        ));
    }

    #[test]
    fn signal_frames_have_the_documented_shape() {
        let frame = ServerToClient::Signal {
            from: PeerId::new("abc").unwrap(),
            name: None,
            role: None,
            payload: SignalPayload::Candidate {
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: None,
            },
        };
        let json: serde_json::Value = serde_json::from_str(&frame.encode()).unwrap();
        assert_eq!(json["type"], "signal");
        assert_eq!(json["from"], "abc");
        assert!(json.get("name").is_none(), "no name, no field");
        assert!(json.get("role").is_none(), "no role, no field");
        assert_eq!(json["payload"]["kind"], "candidate");
        assert_eq!(json["payload"]["sdp_mid"], "0");
        assert!(json["payload"].get("sdp_mline_index").is_none());
    }

    #[test]
    fn a_relayed_signal_names_its_sender_and_reads_without_a_name() {
        let named = ServerToClient::Signal {
            from: PeerId::new("abc").unwrap(),
            name: Some(DisplayName::new("Ada").unwrap()),
            role: Some(Role::Viewer),
            payload: SignalPayload::Refused {
                reason: "no".into(),
            },
        };
        let json: serde_json::Value = serde_json::from_str(&named.encode()).unwrap();
        assert_eq!(json["name"], "Ada");
        assert_eq!(json["role"], "viewer");
        let bare = r#"{"type":"signal","from":"abc","payload":{"kind":"refused","reason":"no"}}"#;
        assert!(matches!(
            ServerToClient::decode(bare),
            Ok(ServerToClient::Signal {
                name: None,
                role: None,
                ..
            })
        ));
    }

    fn arb_payload() -> impl Strategy<Value = SignalPayload> {
        prop_oneof![
            (
                any::<String>(),
                any::<String>(),
                any::<u64>(),
                any::<String>()
            )
                .prop_map(|(sdp, key, seq, sig)| SignalPayload::Offer {
                    credentials: None,
                    sdp,
                    key,
                    seq,
                    sig
                }),
            (
                any::<String>(),
                any::<String>(),
                any::<u64>(),
                any::<String>()
            )
                .prop_map(|(sdp, key, seq, sig)| SignalPayload::Answer {
                    credentials: None,
                    answers: seq.checked_sub(1),
                    sdp,
                    key,
                    seq,
                    sig
                }),
            (
                any::<String>(),
                proptest::option::of(any::<String>()),
                any::<Option<u16>>()
            )
                .prop_map(|(candidate, sdp_mid, sdp_mline_index)| {
                    SignalPayload::Candidate {
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                    }
                }),
            (arb_peer(), any::<u32>(), proptest::option::of(arb_peer())).prop_map(
                |(requester, subtree, lost)| SignalPayload::Tree {
                    msg: crate::overlay::TreeSignal::Join {
                        requester,
                        subtree,
                        lost,
                    }
                }
            ),
            any::<u32>().prop_map(|depth| SignalPayload::Tree {
                msg: crate::overlay::TreeSignal::Accept { depth }
            }),
            Just(SignalPayload::Tree {
                msg: crate::overlay::TreeSignal::Decline {}
            }),
            any::<u8>().prop_map(|degree| SignalPayload::RelayLink { degree }),
        ]
    }

    fn arb_peer() -> impl Strategy<Value = PeerId> {
        "[a-zA-Z0-9_-]{1,64}".prop_map(|s| PeerId::new(s).unwrap())
    }

    fn arb_client_frame() -> impl Strategy<Value = ClientToServer> {
        prop_oneof![
            (
                any::<u32>(),
                "[^\\p{Cc}]{1,16}",
                "[^\\p{Cc}]{1,16}",
                proptest::option::of(any::<String>()),
                (any::<String>(), any::<String>()),
                proptest::option::of(any::<String>()),
                proptest::option::of(proptest::option::of(3u16..64)),
                proptest::option::of(any::<String>()),
            )
                .prop_map(
                    |(version, room, name, password, (key, proof), token, cells, root)| {
                        ClientToServer::Join {
                            version,
                            room: RoomName::new(room).unwrap(),
                            name: DisplayName::new(name).unwrap(),
                            password,
                            key,
                            proof,
                            token,
                            resume: None,
                            topology: cells.map(crate::overlay::TopologySpec::cells),
                            root,
                            role: if version % 3 == 0 {
                                Role::Viewer
                            } else {
                                Role::Both
                            },
                            mesh_only: version % 5 == 0,
                        }
                    }
                ),
            (arb_peer(), proptest::option::of(arb_peer()), arb_payload())
                .prop_map(|(to, from, payload)| ClientToServer::Signal { to, from, payload }),
            arb_payload().prop_map(|payload| ClientToServer::SignalRoot { payload }),
            Just(ClientToServer::Leave {}),
            any::<u64>().prop_map(|nonce| ClientToServer::Ping { nonce }),
        ]
    }

    proptest! {
        #[test]
        fn client_frames_round_trip(frame in arb_client_frame()) {
            prop_assert_eq!(ClientToServer::decode(&frame.encode()), Ok(frame));
        }

        #[test]
        fn decode_never_panics_on_any_text(text in any::<String>()) {
            let _ = ClientToServer::decode(&text);
        }

        #[test]
        fn decode_never_panics_on_json_like_text(
            text in r#"\{"type":"(join|signal|signal_root|leave|ping|x)"(,"[a-z_]{1,8}":("[^"]{0,8}"|[0-9]{1,20}|null|\{\}|\[\]))*\}"#
        ) {
            if let Err(e) = ClientToServer::decode(&text) {
                prop_assert!(matches!(e.code(), ErrorCode::Malformed | ErrorCode::UnknownType));
            }
        }
    }
}
