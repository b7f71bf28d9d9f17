//! Shared cursors: `{"t":"at","x":0.25,"y":0.5}` or `{"t":"gone"}` on channel `cursor`.
//!
//! Positions are fractions of the shared area (0..=1 on both axes), so peers with windows of
//! different sizes agree on where a pointer is. [`CursorLimiter`] bounds the send rate and
//! always delivers the latest position.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One cursor update as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum CursorMsg {
    /// The pointer is at (`x`, `y`), fractions of the shared area.
    At {
        /// From the left edge, 0..=1.
        x: f32,
        /// From the top edge, 0..=1.
        y: f32,
    },
    /// The pointer left the shared area.
    Gone {},
}

/// Why a cursor message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor message.
    #[error("not a cursor message: {0}")]
    Malformed(String),
    /// A coordinate that is not a number within 0..=1.
    #[error("cursor position out of range")]
    OutOfRange,
}

impl CursorMsg {
    /// A position, validated.
    pub fn at(x: f32, y: f32) -> Result<Self, CursorError> {
        if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
            return Err(CursorError::OutOfRange);
        }
        Ok(Self::At { x, y })
    }

    /// Decodes and validates a message from a peer.
    pub fn decode(bytes: &[u8]) -> Result<Self, CursorError> {
        match serde_json::from_slice(bytes).map_err(|e| CursorError::Malformed(e.to_string()))? {
            Self::At { x, y } => Self::at(x, y),
            Self::Gone {} => Ok(Self::Gone {}),
        }
    }

    /// The message as it travels.
    pub fn encode(&self) -> Vec<u8> {
        // Finite floats and a tag always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Bounds how often our pointer is sent: at most one message per interval, and the last
/// position offered is always sent (late rather than never), so remote cursors come to rest
/// where ours did.
#[derive(Debug)]
pub struct CursorLimiter {
    interval: Duration,
    last_sent: Option<Instant>,
    pending: Option<CursorMsg>,
}

impl CursorLimiter {
    /// The default rate: 20 updates a second.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);

    /// A limiter sending at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_sent: None,
            pending: None,
        }
    }

    /// Our pointer moved (or left). Returns the message to send now, if the rate allows.
    pub fn handle_move(&mut self, msg: CursorMsg, now: Instant) -> Option<CursorMsg> {
        self.pending = Some(msg);
        self.poll(now)
    }

    /// The pending message, if its time has come.
    pub fn poll(&mut self, now: Instant) -> Option<CursorMsg> {
        let due = self
            .last_sent
            .is_none_or(|t| now.saturating_duration_since(t) >= self.interval);
        if due {
            let msg = self.pending.take()?;
            self.last_sent = Some(now);
            return Some(msg);
        }
        None
    }

    /// When [`poll`](Self::poll) will next have something to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // A pending message always has a last send: the first move is sent at once.
        self.pending.and(self.last_sent).map(|t| t + self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for msg in [CursorMsg::at(0.25, 1.0).unwrap(), CursorMsg::Gone {}] {
            assert_eq!(CursorMsg::decode(&msg.encode()).unwrap(), msg);
        }
        assert_eq!(
            CursorMsg::at(0.5, 0.5).unwrap().encode(),
            br#"{"t":"at","x":0.5,"y":0.5}"#
        );
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            &br#"{"t":"at","x":1.5,"y":0}"#[..],
            br#"{"t":"at","x":-0.1,"y":0}"#,
        ] {
            assert_eq!(CursorMsg::decode(bad), Err(CursorError::OutOfRange));
        }
        for bad in [
            &br#"{"t":"at","x":"a","y":0}"#[..],
            br#"{"t":"at","x":0.1}"#,
            br#"{"t":"warp"}"#,
            br#"{"t":"at","x":1e400,"y":0}"#,
            br#"{"t":"gone","extra":1}"#,
            b"\xff",
            b"",
        ] {
            assert!(
                matches!(CursorMsg::decode(bad), Err(CursorError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a fixed origin for the virtual clock
    fn limiter_bounds_the_rate_and_keeps_the_last_position() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut lim = CursorLimiter::new(Duration::from_millis(50));
        let at = |x| CursorMsg::at(x, 0.5).unwrap();
        assert_eq!(lim.handle_move(at(0.1), ms(0)), Some(at(0.1)));
        assert_eq!(lim.handle_move(at(0.2), ms(10)), None);
        assert_eq!(lim.handle_move(at(0.3), ms(20)), None);
        assert_eq!(lim.poll_timeout(), Some(ms(50)));
        assert_eq!(lim.poll(ms(49)), None);
        assert_eq!(lim.poll(ms(50)), Some(at(0.3)));
        assert_eq!(lim.poll_timeout(), None);
        assert_eq!(lim.poll(ms(200)), None);
        // 1,000 moves over one second go out as at most 21 messages, the last one last.
        let mut lim = CursorLimiter::new(Duration::from_millis(50));
        let mut sent = Vec::new();
        for i in 0..1000u16 {
            let x = f32::from(i) / 1000.0;
            sent.extend(lim.handle_move(at(x), ms(u64::from(i))));
        }
        sent.extend(lim.poll(ms(1050)));
        assert!(sent.len() <= 21, "{}", sent.len());
        assert_eq!(sent.last(), Some(&at(0.999)));
    }
}
