//! Frames for the signaling server that could not go at once: the server is away (being
//! reconnected) or its connection's queue is full. Sans-IO and bounded: the oldest frame
//! goes when it is full (a newer description or candidate supersedes it), order is kept,
//! and the driver never waits for the server.

use std::collections::VecDeque;

/// Frames held, at most.
pub(crate) const SIGNAL_BACKLOG: usize = 512;

#[derive(Debug)]
pub(crate) struct Backlog<T> {
    frames: VecDeque<T>,
    capacity: usize,
}

impl<T> Default for Backlog<T> {
    fn default() -> Self {
        Self::with_capacity(SIGNAL_BACKLOG)
    }
}

impl<T> Backlog<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Holds `frame` after the others. False if the oldest was dropped to make room.
    pub(crate) fn push(&mut self, frame: T) -> bool {
        self.frames.push_back(frame);
        if self.frames.len() > self.capacity {
            self.frames.pop_front();
            return false;
        }
        true
    }

    /// Holds `frames`, in order, before the others (they were taken out and could not
    /// go); past the bound the oldest go.
    pub(crate) fn hold_first(&mut self, frames: Vec<T>) {
        for frame in frames.into_iter().rev() {
            self.frames.push_front(frame);
        }
        while self.frames.len() > self.capacity {
            self.frames.pop_front();
        }
    }

    /// Hands frames to `send` in order until it gives one back (`Some`: the queue is
    /// full); that one stays first. Returns how many went.
    pub(crate) fn flush(&mut self, mut send: impl FnMut(T) -> Option<T>) -> usize {
        let mut sent = 0;
        while let Some(frame) = self.frames.pop_front() {
            if let Some(frame) = send(frame) {
                self.frames.push_front(frame);
                break;
            }
            sent += 1;
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn frames_wait_in_order_and_go_when_there_is_room() {
        let mut backlog = Backlog::with_capacity(8);
        for n in 0..5 {
            assert!(backlog.push(n));
        }
        // The server's queue takes two, then is full.
        let mut queue = Vec::new();
        let sent = backlog.flush(|f| {
            if queue.len() < 2 {
                queue.push(f);
                None
            } else {
                Some(f)
            }
        });
        assert_eq!((sent, queue.clone()), (2, vec![0, 1]));
        assert_eq!(backlog.len(), 3);
        backlog.push(5);
        backlog.flush(|f| {
            queue.push(f);
            None
        });
        assert_eq!(queue, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(backlog.len(), 0);
    }

    #[test]
    fn a_long_absence_keeps_the_newest_frames() {
        let mut backlog = Backlog::with_capacity(3);
        let kept: Vec<bool> = (0..5).map(|n| backlog.push(n)).collect();
        assert_eq!(kept, vec![true, true, true, false, false]);
        let mut out = Vec::new();
        backlog.flush(|f| {
            out.push(f);
            None
        });
        assert_eq!(out, vec![2, 3, 4]);
    }

    proptest! {
        /// Any pushes and flushes against a queue of any room: frames leave in the order
        /// they came, none twice, and no more than the capacity is ever held.
        #[test]
        fn order_and_bound_hold(ops in proptest::collection::vec(0u8..4, 0..200), cap in 1usize..16) {
            let mut backlog = Backlog::with_capacity(cap);
            let (mut next, mut out) = (0u32, Vec::new());
            for op in ops {
                if op < 3 {
                    backlog.push(next);
                    next += 1;
                } else {
                    let mut room = usize::from(op);
                    backlog.flush(|f| if room > 0 { room -= 1; out.push(f); None } else { Some(f) });
                }
                prop_assert!(backlog.len() <= cap);
            }
            prop_assert!(out.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
