//! The room channels a call shares beyond media: chat, shared cursors and the whiteboard.
//!
//! Each is a named channel of the room ([`CHAT`], [`CURSOR`], [`BOARD`]) carrying one JSON
//! object per message, so the headless `plenum join` peer can take part; the formats are
//! written down in docs/protocol.md. This crate is sans-IO: it decodes and validates what
//! peers send, keeps the whiteboard's state, and decides what to send and when, given the
//! time. The app and the CLI move the bytes.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod board;
pub mod chat;
pub mod cursor;

pub use board::{
    Board, BoardChange, BoardError, BoardMsg, ClearMark, Colour, Point, Stroke, StrokeId, Tool,
};
pub use chat::{ChatError, ChatMsg};
pub use cursor::{CursorError, CursorLimiter, CursorMsg};

/// The channel of chat messages.
pub const CHAT: &str = "chat";
/// The channel of pointer positions over the shared area.
pub const CURSOR: &str = "cursor";
/// The channel of whiteboard operations.
pub const BOARD: &str = "board";
