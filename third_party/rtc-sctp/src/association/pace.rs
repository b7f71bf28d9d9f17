//! Pacing of new DATA: an association may be told a rate (bits per second) its DATA
//! chunks must not exceed, through a [`SendPace`] its owner keeps and may change at any
//! time. Without one, or at a rate of 0, DATA goes as cwnd and rwnd allow, as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What an association's owner shares with it: the rate its DATA may go at, and what it
/// has sent.
#[derive(Debug, Default)]
pub struct SendPace {
    rate_bps: AtomicU64,
    sent_bytes: AtomicU64,
    held_bytes: AtomicU64,
}

impl SendPace {
    /// The rate DATA may go at, in bits per second (0: not paced).
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps.load(Ordering::Relaxed)
    }

    /// Sets the rate DATA may go at, in bits per second (0: not paced).
    pub fn set_rate_bps(&self, bps: u64) {
        self.rate_bps.store(bps, Ordering::Relaxed);
    }

    /// DATA bytes sent once so far, with their headers down to UDP (retransmissions are not
    /// counted).
    pub fn sent_bytes(&self) -> u64 {
        self.sent_bytes.load(Ordering::Relaxed)
    }

    /// User data the pace holds back (queued, not yet sent once, and next in line when the
    /// rate stopped it), in bytes; 0 while nothing waits for the rate alone.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes.load(Ordering::Relaxed)
    }
}

/// Bytes a DATA chunk adds on the wire beyond its user data: its chunk header, a share of
/// the packet's common header, DTLS and UDP/IP.
const CHUNK_OVERHEAD: usize = 16 + 12 + 37 + 28;
/// The most a paced association may send at once after being idle, in bits.
const BURST_BITS: f64 = 2.0 * 1_300.0 * 8.0;

/// The association's side of a [`SendPace`]: a token bucket.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    shared: Option<Arc<SendPace>>,
    tokens: f64,
    refilled: Option<Instant>,
    /// When enough will have been refilled for the next chunk, while one waits.
    wake: Option<Instant>,
    /// Whether the last chunk looked at was held back by the rate.
    held: bool,
}

impl Pacer {
    pub(crate) fn new(shared: Option<Arc<SendPace>>) -> Self {
        Self {
            shared,
            ..Default::default()
        }
    }

    fn rate(&self) -> f64 {
        self.shared.as_ref().map_or(0, |s| s.rate_bps()) as f64
    }

    /// Whether the next chunk may go now; if not, when to look again is
    /// kept for [`Self::poll_timeout`].
    pub(crate) fn allows(&mut self, now: Instant) -> bool {
        let rate = self.rate();
        if rate <= 0.0 {
            self.wake = None;
            self.held = false;
            return true;
        }
        if let Some(then) = self.refilled {
            let elapsed = now.saturating_duration_since(then).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(BURST_BITS.max(rate * 0.005));
        }
        self.refilled = Some(now);
        if self.tokens >= 0.0 {
            self.wake = None;
            self.held = false;
            return true;
        }
        self.held = true;
        let wait = Duration::from_secs_f64(-self.tokens / rate).max(Duration::from_millis(1));
        self.wake = Some(now + wait);
        false
    }

    /// Charges a DATA chunk of `data_len` user bytes that went.
    pub(crate) fn sent(&mut self, data_len: usize) {
        let bytes = data_len + CHUNK_OVERHEAD;
        if let Some(shared) = &self.shared {
            shared.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
        if self.rate() > 0.0 {
            self.tokens -= (bytes * 8) as f64;
        }
    }

    /// Tells the owner how much user data waits to go, `bytes` in all: held by the rate if
    /// the rate stopped the last chunk, else nothing (cwnd, rwnd or an empty queue did).
    pub(crate) fn pending(&self, bytes: usize) {
        if let Some(shared) = &self.shared {
            let held = if self.held { bytes as u64 } else { 0 };
            shared.held_bytes.store(held, Ordering::Relaxed);
        }
    }

    /// When a chunk held back may go.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.wake
    }

    /// A wake-up that has come: the next transmit looks again.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.wake.is_some_and(|wake| wake <= now) {
            self.wake = None;
        }
    }
}

impl Drop for Pacer {
    /// An association that ends holds nothing back.
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.held_bytes.store(0, Ordering::Relaxed);
        }
    }
}
