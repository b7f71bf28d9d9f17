//! The room's events on their way to the application: a bounded queue that never makes a
//! sender wait. The room's driver, its audio task and its video readers push into it; the
//! application reads it through [`RoomEvents`].
//!
//! Two classes of event:
//! - **lossy** ones (who is speaking, messages on the channels the application named lossy,
//!   such as cursor positions) are worth nothing late. While the application has
//!   [`LOSSY_ROOM`] or more events unread they are dropped and counted
//!   ([`RoomEvents::lossy_dropped`]).
//! - everything else is **lossless**, within a bound: up to [`CAPACITY`] events wait; past
//!   that an event is dropped and the application reads one
//!   [`RoomError::EventsLagged`](crate::RoomError::EventsLagged) where the dropped events
//!   would have been, with their number, then what came after.
//!
//! So an application that stops reading never stops the room: heartbeats, pings and every
//! other peer carry on, and the application learns what it missed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::types::{RoomError, RoomEvent};

/// Lossless events that wait for the application before the next is dropped.
pub const CAPACITY: usize = 4096;
/// Lossy events are dropped while this many events of any class wait.
pub(crate) const LOSSY_ROOM: usize = 256;

/// One place in the queue: an event, or the mark where events were dropped.
#[derive(Debug)]
enum Item {
    Event(RoomEvent),
    Lagged(usize),
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Item>,
    /// Events (not marks) waiting.
    events: usize,
    lossy_dropped: u64,
    senders: usize,
    /// The application dropped its [`RoomEvents`]: pushes are refused.
    reader_gone: bool,
    /// [`RoomEvent::Closed`] was queued: nothing follows it.
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the one reader.
    ready: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock is held leaves a queue still consistent (every change is a
        // single push or pop), so a poisoned lock is used as it is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The pushing end; clones share the queue.
#[derive(Debug)]
pub(crate) struct EventSender {
    shared: Arc<Shared>,
}

/// Whether a pushed event was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Dropped: a lossy event while the application lags, or a lossless one past
    /// [`CAPACITY`] (the application will read `EventsLagged`).
    Dropped,
    /// Nobody reads any more, or the room closed.
    Gone,
}

/// Makes a queue: its pushing end and its reading end.
pub(crate) fn channel() -> (EventSender, RoomEvents) {
    let shared = Arc::new(Shared::default());
    shared.lock().senders = 1;
    let sender = EventSender {
        shared: Arc::clone(&shared),
    };
    (sender, RoomEvents { shared })
}

impl Clone for EventSender {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.ready.notify_one();
        }
    }
}

impl EventSender {
    /// Queues `event` (lossless) without waiting.
    pub(crate) fn send(&self, event: RoomEvent) -> Pushed {
        self.push(event, false)
    }

    /// Queues `event` unless the application lags, without waiting.
    pub(crate) fn send_lossy(&self, event: RoomEvent) -> Pushed {
        self.push(event, true)
    }

    fn push(&self, event: RoomEvent, lossy: bool) -> Pushed {
        let pushed = {
            let mut state = self.shared.lock();
            if state.reader_gone || state.closed {
                return Pushed::Gone;
            }
            if lossy && state.events >= LOSSY_ROOM {
                state.lossy_dropped += 1;
                return Pushed::Dropped;
            }
            if state.events >= CAPACITY && !matches!(event, RoomEvent::Closed) {
                match state.items.back_mut() {
                    Some(Item::Lagged(n)) => *n += 1,
                    _ => state.items.push_back(Item::Lagged(1)),
                }
                Pushed::Dropped
            } else {
                state.closed = matches!(event, RoomEvent::Closed);
                state.items.push_back(Item::Event(event));
                state.events += 1;
                Pushed::Queued
            }
        };
        self.shared.ready.notify_one();
        pushed
    }
}

/// The room's event stream. Events wait for you in a bounded queue, and the room never
/// waits for you: read it, or lossy events are dropped and, past the bound, others too
/// (reported by [`RoomError::EventsLagged`]). Dropping it stops the events; the room goes on.
#[derive(Debug)]
pub struct RoomEvents {
    shared: Arc<Shared>,
}

impl RoomEvents {
    /// The next event; `None` after [`RoomEvent::Closed`], or once the room's engine is gone.
    pub async fn recv(&mut self) -> Option<RoomEvent> {
        loop {
            if let Some(next) = self.try_next() {
                return next;
            }
            self.shared.ready.notified().await;
        }
    }

    /// `Some(event)`, `Some(None)` at the end, `None` when nothing is there yet.
    fn try_next(&mut self) -> Option<Option<RoomEvent>> {
        let mut state = self.shared.lock();
        match state.items.pop_front() {
            Some(Item::Event(event)) => {
                state.events -= 1;
                Some(Some(event))
            }
            Some(Item::Lagged(dropped)) => {
                Some(Some(RoomEvent::Error(RoomError::EventsLagged { dropped })))
            }
            None if state.closed || state.senders == 0 => Some(None),
            None => None,
        }
    }

    /// Lossy events (speaking changes, messages on lossy channels) dropped so far because
    /// events were waiting unread.
    pub fn lossy_dropped(&self) -> u64 {
        self.shared.lock().lossy_dropped
    }
}

impl Drop for RoomEvents {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.reader_gone = true;
        state.items.clear();
        state.events = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plenum_proto::PeerId;

    fn peer(n: u8) -> PeerId {
        PeerId::new(format!("{:040x}", n)).unwrap()
    }

    fn message(n: u32) -> RoomEvent {
        RoomEvent::Message {
            channel: plenum_proto::ChannelName::new("chat").unwrap(),
            from: peer(1),
            data: bytes::Bytes::from(n.to_be_bytes().to_vec()),
        }
    }

    fn number(event: &RoomEvent) -> Option<u32> {
        match event {
            RoomEvent::Message { data, .. } => Some(u32::from_be_bytes(data[..4].try_into().ok()?)),
            _ => None,
        }
    }

    fn drain(events: &mut RoomEvents) -> Vec<RoomEvent> {
        std::iter::from_fn(|| events.try_next().flatten()).collect()
    }

    #[test]
    fn a_reader_that_lags_gets_the_mark_where_events_were_dropped_then_the_rest() {
        let (tx, mut rx) = channel();
        for n in 0..CAPACITY as u32 + 10 {
            tx.send(message(n));
        }
        // The reader comes back: it reads one, which makes room for one more.
        let first = rx.try_next().flatten().unwrap();
        assert_eq!(number(&first), Some(0));
        assert_eq!(tx.send(message(99_999)), Pushed::Queued);
        // Events 1..CAPACITY, the mark of the ten dropped, then the one pushed after.
        let rest = drain(&mut rx);
        assert_eq!(rest.len(), CAPACITY + 1);
        let numbers: Vec<u32> = rest[..CAPACITY - 1].iter().filter_map(number).collect();
        assert_eq!(numbers, (1..CAPACITY as u32).collect::<Vec<_>>());
        assert_eq!(
            rest[CAPACITY - 1],
            RoomEvent::Error(RoomError::EventsLagged { dropped: 10 })
        );
        assert_eq!(number(&rest[CAPACITY]), Some(99_999));
    }

    #[test]
    fn lossy_events_are_dropped_and_counted_while_the_reader_lags() {
        let (tx, mut rx) = channel();
        let speaking = RoomEvent::Speaking {
            peer: peer(2),
            speaking: true,
        };
        assert_eq!(tx.send_lossy(speaking.clone()), Pushed::Queued);
        for n in 1..LOSSY_ROOM as u32 {
            tx.send(message(n));
        }
        assert_eq!(tx.send_lossy(speaking.clone()), Pushed::Dropped);
        assert_eq!(rx.lossy_dropped(), 1);
        // Lossless events still go in.
        assert_eq!(tx.send(message(7)), Pushed::Queued);
        drain(&mut rx);
        assert_eq!(tx.send_lossy(speaking), Pushed::Queued);
    }

    #[test]
    fn nothing_follows_closed_and_the_end_is_none() {
        let (tx, mut rx) = channel();
        let other = tx.clone();
        tx.send(message(1));
        tx.send(RoomEvent::Closed);
        assert_eq!(other.send(message(2)), Pushed::Gone);
        assert_eq!(number(&rx.try_next().flatten().unwrap()), Some(1));
        assert_eq!(rx.try_next(), Some(Some(RoomEvent::Closed)));
        assert_eq!(rx.try_next(), Some(None));
    }

    #[test]
    fn the_stream_ends_when_every_sender_is_gone() {
        let (tx, mut rx) = channel();
        let other = tx.clone();
        drop(tx);
        assert_eq!(rx.try_next(), None);
        drop(other);
        assert_eq!(rx.try_next(), Some(None));
    }

    #[test]
    fn a_dropped_reader_refuses_events() {
        let (tx, rx) = channel();
        drop(rx);
        assert_eq!(tx.send(message(1)), Pushed::Gone);
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken() {
        let (tx, mut rx) = channel();
        let reader = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.send(message(5));
        let got = reader.await.unwrap().unwrap();
        assert_eq!(number(&got), Some(5));
    }
}
