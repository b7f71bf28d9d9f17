//! The one place this crate reads the clock. The IO shell (the driver, the links, the media
//! tasks, the session) asks here; the sans-IO parts (admission, negotiation, a link's
//! lifecycle, the overlay's steps, the outbox's stall watch, event classes, reassembly) are
//! told the time by their caller and never read it: the crate's `clippy.toml` forbids
//! `Instant::now` and `SystemTime::now` everywhere but here.
#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime};

/// Now, on the monotonic clock.
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Now, on the wall clock (for numbers that must grow across runs, and for timestamps).
pub(crate) fn wall() -> SystemTime {
    SystemTime::now()
}
