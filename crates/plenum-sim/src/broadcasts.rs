//! Broadcasts from random live peers, and churn while they go out.

use super::*;

impl Sim {
    pub(crate) fn churning(&self) -> bool {
        self.config.churn_pct_per_min > 0.0
    }

    /// Broadcasts meet churn for a simulated minute; without churn they go out 100 ms apart.
    pub(crate) fn broadcast_span(&self) -> u64 {
        if self.churning() {
            BROADCAST_SPAN
        } else {
            self.config.broadcasts as u64 * 100 * MS
        }
    }

    pub(crate) fn start_broadcasts(&mut self) {
        if self.broadcasting {
            return;
        }
        self.broadcasting = true;
        let k = self.config.broadcasts as u64;
        let start = self.now + SECOND;
        for b in 0..self.config.broadcasts {
            let at = start + b as u64 * (self.broadcast_span() / k.max(1));
            self.schedule(at, Event::Broadcast(b));
        }
        if self.config.churn_pct_per_min > 0.0 {
            // Half a broadcast apart: a peer is not replaced at the instant it sends.
            let offset = self.broadcast_span() / k.max(1) / 2;
            self.schedule(start + offset, Event::Churn);
        }
    }

    pub(crate) fn churn(&mut self) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].alive)
            .collect();
        if live.is_empty() {
            return;
        }
        let victim = live[(self.random() % live.len() as u64) as usize];
        let clean = self.random().is_multiple_of(2);
        self.leave(victim, clean);
        self.join();
        let per_minute = self.config.peers as f64 * self.config.churn_pct_per_min / 100.0;
        let every = (60.0 * SECOND as f64 / per_minute.max(1e-9)) as u64;
        let end = self.broadcast_end();
        if self.now + every <= end {
            self.schedule(self.now + every.max(1), Event::Churn);
        }
    }

    pub(crate) fn broadcast_end(&self) -> u64 {
        self.broadcast_times.first().map_or(self.now, |(t, _)| *t) + self.broadcast_span()
    }

    pub(crate) fn broadcast(&mut self, b: usize) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].alive)
            .collect();
        if live.is_empty() {
            return;
        }
        let origin = live[(self.random() % live.len() as u64) as usize];
        self.broadcast_times.push((self.now, origin));
        self.nodes[origin].sent += 1;
        let now = self.instant();
        let data = (b as u32).to_be_bytes().to_vec();
        if let Overlay::Relay(_) = self.nodes[origin].overlay {
            let others: Vec<usize> = live.into_iter().filter(|n| *n != origin).collect();
            let target = match others.len() {
                0 => origin,
                n => others[(self.random() % n as u64) as usize],
            };
            self.unicast_targets.push(target);
            let to = self.nodes[target].id.clone();
            if let Overlay::Relay(r) = &mut self.nodes[origin].overlay {
                r.handle_input(Input::Tick { now });
                let _ = r.send(to, data);
            }
            self.drain(origin);
        } else {
            self.input(origin, Input::Broadcast { data, now });
        }
        if b + 1 == self.config.broadcasts {
            self.sample_degree();
        }
    }
}
