//! What waits to go out on one link's data channel, and the policy for a link that stops
//! taking it.
//!
//! The room's driver pushes envelopes into a link's [`Outbox`] and never waits: the link's
//! writer task takes them one at a time and waits for the data channel instead. So a peer
//! that stops reading (a frozen machine, a path narrower than what we send) holds up its
//! own link only. [`StallWatch`] decides when such a link is given up: when its outbox made
//! no progress for [`STALL_TIMEOUT`], or holds more than [`HARD_LIMIT`] bytes.
//!
//! A bulk sender is slowed per link instead: [`Outbox::writable`] resolves once the outbox
//! holds no more than [`SOFT_LIMIT`] bytes, and `Room::send` waits for it. Control traffic
//! (heartbeats, pongs, overlay frames) never waits; past the hard limit the link is closed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

/// Bytes an outbox holds before a sender that asks ([`Outbox::writable`]) waits.
pub(crate) const SOFT_LIMIT: usize = 1024 * 1024;
/// Bytes an outbox holds before its link is closed as stalled.
pub(crate) const HARD_LIMIT: usize = 16 * 1024 * 1024;
/// How long an outbox with something in it may make no progress before its link is closed
/// as stalled: the room's silence timeout, so that a peer that stops reading and one that
/// stops talking are given up alike.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(6);

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Bytes>,
    bytes: usize,
    /// Envelopes the writer has taken, ever: progress.
    taken: u64,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer.
    readable: Notify,
    /// Wakes senders waiting for room.
    writable: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is one push or pop: a poisoned lock is still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The driver's end of a link's outbox. Clones share it.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    shared: Arc<Shared>,
}

/// The writer task's end.
#[derive(Debug)]
pub(crate) struct OutboxReader {
    shared: Arc<Shared>,
}

/// The writer is gone (its channel failed, or the link closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutboxClosed;

/// Makes an outbox: the driver's end and the writer's.
pub(crate) fn outbox() -> (Outbox, OutboxReader) {
    let shared = Arc::new(Shared::default());
    (
        Outbox {
            shared: Arc::clone(&shared),
        },
        OutboxReader { shared },
    )
}

impl Outbox {
    /// Queues `bytes` without waiting; returns the bytes now waiting.
    pub(crate) fn push(&self, bytes: Bytes) -> Result<usize, OutboxClosed> {
        let queued = {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(OutboxClosed);
            }
            state.bytes += bytes.len();
            state.items.push_back(bytes);
            state.bytes
        };
        self.shared.readable.notify_one();
        Ok(queued)
    }

    /// Bytes waiting, and envelopes taken so far.
    pub(crate) fn progress(&self) -> (usize, u64) {
        let state = self.shared.lock();
        (state.bytes, state.taken)
    }

    /// Resolves once no more than [`SOFT_LIMIT`] bytes wait, or the outbox is closed.
    pub(crate) async fn writable(&self) {
        loop {
            let notified = self.shared.writable.notified();
            tokio::pin!(notified);
            // Registered before the check, so that a wake between the two is not lost.
            notified.as_mut().enable();
            {
                let state = self.shared.lock();
                if state.closed || state.bytes <= SOFT_LIMIT {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Closes the outbox: what waits is dropped, the writer ends, waiting senders go on.
    pub(crate) fn close(&self) {
        {
            let mut state = self.shared.lock();
            state.closed = true;
            state.items.clear();
            state.bytes = 0;
        }
        self.shared.readable.notify_one();
        self.shared.writable.notify_waiters();
    }
}

impl OutboxReader {
    /// The next envelope to write; `None` once the outbox is closed.
    pub(crate) async fn pop(&self) -> Option<Bytes> {
        loop {
            {
                let mut state = self.shared.lock();
                if state.closed {
                    return None;
                }
                if let Some(bytes) = state.items.pop_front() {
                    let was = state.bytes;
                    state.bytes -= bytes.len();
                    state.taken += 1;
                    let now = state.bytes;
                    drop(state);
                    if was > SOFT_LIMIT && now <= SOFT_LIMIT {
                        self.shared.writable.notify_waiters();
                    }
                    return Some(bytes);
                }
            }
            self.shared.readable.notified().await;
        }
    }
}

impl Drop for OutboxReader {
    fn drop(&mut self) {
        // The writer ended (its channel failed): nothing more goes out on this link.
        let outbox = Outbox {
            shared: Arc::clone(&self.shared),
        };
        outbox.close();
    }
}

/// A link's outbox seen from the room's policy: told the time and the outbox's progress,
/// says when the link is stalled. Sans-IO.
#[derive(Debug, Default, Clone)]
pub(crate) struct StallWatch {
    taken: u64,
    /// Since when bytes have waited with no envelope taken.
    since: Option<Instant>,
}

/// What [`StallWatch::check`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Flowing,
    /// Give the link up: nothing taken for [`STALL_TIMEOUT`], or over [`HARD_LIMIT`].
    Stalled,
}

impl StallWatch {
    /// Looks at the outbox's progress (`queued` bytes, `taken` envelopes ever) at `now`.
    pub(crate) fn check(&mut self, now: Instant, queued: usize, taken: u64) -> Health {
        if queued > HARD_LIMIT {
            return Health::Stalled;
        }
        if queued == 0 || taken != self.taken {
            self.taken = taken;
            self.since = None;
            return Health::Flowing;
        }
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= STALL_TIMEOUT {
            Health::Stalled
        } else {
            Health::Flowing
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test takes its origin from the clock
mod tests {
    use super::*;

    #[test]
    fn an_outbox_that_takes_nothing_for_the_timeout_is_stalled() {
        let t0 = Instant::now();
        let mut watch = StallWatch::default();
        assert_eq!(watch.check(t0, 100, 0), Health::Flowing);
        assert_eq!(
            watch.check(t0 + STALL_TIMEOUT - Duration::from_millis(1), 100, 0),
            Health::Flowing
        );
        assert_eq!(watch.check(t0 + STALL_TIMEOUT, 100, 0), Health::Stalled);
    }

    #[test]
    fn progress_or_an_empty_outbox_resets_the_clock() {
        let t0 = Instant::now();
        let mut watch = StallWatch::default();
        watch.check(t0, 100, 0);
        // One envelope taken at 5 s: the clock starts again there.
        assert_eq!(
            watch.check(t0 + Duration::from_secs(5), 100, 1),
            Health::Flowing
        );
        assert_eq!(
            watch.check(t0 + Duration::from_secs(10), 100, 1),
            Health::Flowing
        );
        assert_eq!(
            watch.check(t0 + Duration::from_secs(16), 100, 1),
            Health::Stalled
        );
        // Emptied: flowing, whatever the time.
        let mut watch = StallWatch::default();
        watch.check(t0, 100, 0);
        assert_eq!(watch.check(t0 + STALL_TIMEOUT, 0, 0), Health::Flowing);
        assert_eq!(watch.check(t0 + STALL_TIMEOUT * 2, 100, 0), Health::Flowing);
    }

    #[test]
    fn more_than_the_hard_limit_is_stalled_at_once() {
        let mut watch = StallWatch::default();
        assert_eq!(
            watch.check(Instant::now(), HARD_LIMIT + 1, 5),
            Health::Stalled
        );
    }

    #[tokio::test]
    async fn the_writer_takes_in_order_and_a_sender_waits_only_above_the_soft_limit() {
        let (outbox, reader) = outbox();
        let big = Bytes::from(vec![0u8; SOFT_LIMIT / 2 + 1]);
        assert_eq!(outbox.push(big.clone()), Ok(big.len()));
        // At or under the soft limit: no wait.
        outbox.writable().await;
        outbox.push(Bytes::from_static(b"x")).unwrap();
        let queued = outbox.push(big.clone()).unwrap();
        assert!(queued > SOFT_LIMIT);
        let waiting = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.writable().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(reader.pop().await.map(|b| b.len()), Some(big.len()));
        waiting.await.unwrap();
        assert_eq!(reader.pop().await.as_deref(), Some(&b"x"[..]));
        assert_eq!(outbox.progress(), (big.len(), 2));
    }

    #[tokio::test]
    async fn a_writer_that_ends_closes_the_outbox_and_frees_its_waiters() {
        let (outbox, reader) = outbox();
        outbox.push(Bytes::from(vec![0u8; SOFT_LIMIT + 1])).unwrap();
        let waiting = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.writable().await })
        };
        drop(reader);
        waiting.await.unwrap();
        assert_eq!(outbox.push(Bytes::from_static(b"x")), Err(OutboxClosed));
    }
}
