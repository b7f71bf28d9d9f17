//! The full mesh: every peer links to every other peer of the room.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use plenum_proto::PeerId;

use crate::{Appearance, ConfigError, DropReason, Input, MeshFrame, Output, Topology, nonzero};

/// Settings of a [`FullMesh`]; build with [`FullMeshConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullMeshConfig {
    connect_timeout: Duration,
    heartbeat_interval: Duration,
    silence_timeout: Duration,
    retry_base: Duration,
    retry_max: Duration,
    both_initiate: bool,
}

impl Default for FullMeshConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            silence_timeout: Duration::from_secs(6),
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(10),
            both_initiate: false,
        }
    }
}

impl FullMeshConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> FullMeshConfigBuilder {
        FullMeshConfigBuilder(Self::default())
    }

    /// How long a link may take to come up before it is dropped and retried.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
}

/// Builder of [`FullMeshConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct FullMeshConfigBuilder(FullMeshConfig);

impl FullMeshConfigBuilder {
    /// Time a link may take to open (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.0.connect_timeout = d;
        self
    }
    /// Interval of liveness probes on an open link (default 1 s).
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.0.heartbeat_interval = d;
        self
    }
    /// Quiet time after which a link is considered dead (default 6 s).
    pub fn silence_timeout(mut self, d: Duration) -> Self {
        self.0.silence_timeout = d;
        self
    }
    /// First retry delay; doubles per failed attempt up to `max` (defaults 0.5 s and 10 s).
    pub fn retry(mut self, base: Duration, max: Duration) -> Self {
        self.0.retry_base = base;
        self.0.retry_max = max;
        self
    }
    /// Whether both sides of a new pair send an offer at once instead of only the newcomer
    /// (default false). Perfect negotiation resolves the collision; this exists to exercise
    /// that path and for networks where one direction may be blocked.
    pub fn both_initiate(mut self, yes: bool) -> Self {
        self.0.both_initiate = yes;
        self
    }
    /// Validates the settings.
    pub fn build(self) -> Result<FullMeshConfig, ConfigError> {
        let c = self.0;
        nonzero("connect_timeout", c.connect_timeout)?;
        nonzero("heartbeat_interval", c.heartbeat_interval)?;
        nonzero("retry base", c.retry_base)?;
        if c.silence_timeout < c.heartbeat_interval * 2 {
            return Err(ConfigError::Inconsistent(
                "silence_timeout must be at least twice heartbeat_interval",
            ));
        }
        if c.retry_max < c.retry_base {
            return Err(ConfigError::Inconsistent(
                "retry max must not be below retry base",
            ));
        }
        Ok(c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkState {
    /// `Connect` was emitted; waiting for `LinkUp` until `deadline`.
    Opening { deadline: Instant },
    /// Open; probed every heartbeat interval, dropped when silent.
    Up {
        last_heard: Instant,
        next_heartbeat: Instant,
    },
    /// Dropped; reconnect at `until`.
    Backoff { until: Instant },
}

#[derive(Debug, Clone)]
struct Neighbour {
    state: LinkState,
    failures: u32,
}

/// Every peer links to every other peer. See the crate docs for the state-machine contract.
#[derive(Debug)]
pub struct FullMesh {
    config: FullMeshConfig,
    now: Instant,
    rng: u64,
    neighbours: BTreeMap<PeerId, Neighbour>,
    outputs: VecDeque<Output>,
    /// Our id, to sign broadcasts as their origin.
    me: Option<PeerId>,
    next_seq: u64,
    /// The last computed wake-up, kept while nothing but `Heard` came in: hearing from a
    /// peer only moves its deadline later, so the kept one is at worst early.
    deadline: Option<Instant>,
}

impl FullMesh {
    /// A mesh with no peers yet. `seed` drives retry jitter.
    pub fn new(config: FullMeshConfig, now: Instant) -> Self {
        Self::with_seed(config, now, 0x9e37_79b9_7f4a_7c15)
    }

    /// As [`new`](Self::new), with an explicit seed for retry jitter.
    pub fn with_seed(config: FullMeshConfig, now: Instant, seed: u64) -> Self {
        Self {
            config,
            now,
            rng: seed,
            neighbours: BTreeMap::new(),
            outputs: VecDeque::new(),
            me: None,
            next_seq: 1,
            deadline: None,
        }
    }

    /// Names this peer, so that its broadcasts carry it as their origin.
    pub fn with_peer(mut self, me: PeerId) -> Self {
        self.me = Some(me);
        self
    }

    /// A broadcast goes straight to every open link: one hop, no copies.
    fn broadcast(&mut self, data: Vec<u8>) {
        let Some(origin) = self.me.clone() else {
            tracing::debug!("broadcast from an unnamed full mesh dropped");
            return;
        };
        let frame = MeshFrame {
            origin,
            seq: self.next_seq,
            hops: 0,
            ttl: 1,
            dim: None,
            intra: false,
            epoch: 0,
            origin_cell: 0,
            data,
        };
        self.next_seq += 1;
        for (peer, n) in &self.neighbours {
            if matches!(n.state, LinkState::Up { .. }) {
                self.outputs.push_back(Output::Send {
                    peer: peer.clone(),
                    frame: frame.clone(),
                });
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        crate::splitmix64(&mut self.rng)
    }

    fn backoff(&mut self, failures: u32) -> Duration {
        let exp = self.config.retry_base.saturating_mul(1 << failures.min(16));
        let capped = exp.min(self.config.retry_max);
        // Up to 25 % jitter so that peers that failed together do not retry together.
        let jitter_ms = (capped.as_millis() as u64 / 4).max(1);
        capped + Duration::from_millis(self.next_random() % jitter_ms)
    }

    fn connect(&mut self, peer: PeerId, initiate: bool, failures: u32) {
        let deadline = self.now + self.config.connect_timeout;
        self.neighbours.insert(
            peer.clone(),
            Neighbour {
                state: LinkState::Opening { deadline },
                failures,
            },
        );
        self.outputs.push_back(Output::Connect { peer, initiate });
    }

    fn drop_link(&mut self, peer: &PeerId, reason: DropReason) {
        let Some(failures) = self.neighbours.get(peer).map(|n| n.failures) else {
            return;
        };
        let until = self.now + self.backoff(failures);
        if let Some(n) = self.neighbours.get_mut(peer) {
            n.state = LinkState::Backoff { until };
            n.failures = failures.saturating_add(1);
        }
        self.outputs.push_back(Output::Disconnect {
            peer: peer.clone(),
            reason,
        });
    }

    fn on_tick(&mut self) {
        let now = self.now;
        let mut due_drop = Vec::new();
        let mut due_connect = Vec::new();
        let mut due_heartbeat = Vec::new();
        let due_any_heartbeat = self.neighbours.values().any(
            |n| matches!(n.state, LinkState::Up { next_heartbeat, .. } if now >= next_heartbeat),
        );
        for (peer, n) in &self.neighbours {
            match n.state {
                LinkState::Opening { deadline } if now >= deadline => {
                    due_drop.push((peer.clone(), DropReason::ConnectTimeout));
                }
                LinkState::Up { last_heard, .. }
                    if now >= last_heard + self.config.silence_timeout =>
                {
                    due_drop.push((peer.clone(), DropReason::Silent));
                }
                // Probes due within half an interval go out with this one: a peer's
                // probes fall into step and it wakes once per interval, not once per link.
                LinkState::Up { next_heartbeat, .. }
                    if now + self.config.heartbeat_interval / 2 >= next_heartbeat
                        && due_any_heartbeat =>
                {
                    due_heartbeat.push(peer.clone());
                }
                LinkState::Backoff { until } if now >= until => due_connect.push(peer.clone()),
                _ => {}
            }
        }
        for (peer, reason) in due_drop {
            self.drop_link(&peer, reason);
        }
        for peer in due_heartbeat {
            if let Some(Neighbour {
                state: LinkState::Up { next_heartbeat, .. },
                ..
            }) = self.neighbours.get_mut(&peer)
            {
                *next_heartbeat = now + self.config.heartbeat_interval;
            }
            self.outputs.push_back(Output::Heartbeat { peer });
        }
        for peer in due_connect {
            let failures = self.neighbours.get(&peer).map_or(0, |n| n.failures);
            // A retry always offers: the other side may be the one that cannot.
            self.connect(peer, true, failures);
        }
    }

    fn next_deadline(&mut self) -> Instant {
        if let Some(at) = self.deadline {
            return at;
        }
        let at = self.compute_deadline();
        self.deadline = Some(at);
        at
    }

    fn compute_deadline(&self) -> Instant {
        let idle = self.now + Duration::from_secs(60);
        self.neighbours
            .values()
            .map(|n| match n.state {
                LinkState::Opening { deadline } => deadline,
                LinkState::Up {
                    last_heard,
                    next_heartbeat,
                } => next_heartbeat.min(last_heard + self.config.silence_timeout),
                LinkState::Backoff { until } => until,
            })
            .min()
            .unwrap_or(idle)
            .min(idle)
    }
}

impl Topology for FullMesh {
    fn handle_input(&mut self, input: Input) {
        if !matches!(
            input,
            Input::Heard { .. } | Input::Frame { .. } | Input::Broadcast { .. }
        ) {
            self.deadline = None;
        }
        match input {
            Input::PeerAppeared { peer, origin, now } => {
                self.now = self.now.max(now);
                if !self.neighbours.contains_key(&peer) {
                    let initiate = origin == Appearance::Roster || self.config.both_initiate;
                    self.connect(peer, initiate, 0);
                }
            }
            Input::PeerGone { peer, now } => {
                self.now = self.now.max(now);
                if self.neighbours.remove(&peer).is_some() {
                    self.outputs.push_back(Output::Disconnect {
                        peer,
                        reason: DropReason::Left,
                    });
                }
            }
            Input::LinkUp { peer, now } => {
                self.now = self.now.max(now);
                if let Some(n) = self.neighbours.get_mut(&peer) {
                    n.state = LinkState::Up {
                        last_heard: now,
                        next_heartbeat: now + self.config.heartbeat_interval,
                    };
                    n.failures = 0;
                }
            }
            Input::LinkDown { peer, now } => {
                self.now = self.now.max(now);
                let live = matches!(
                    self.neighbours.get(&peer).map(|n| &n.state),
                    Some(LinkState::Up { .. } | LinkState::Opening { .. })
                );
                if live {
                    self.drop_link(&peer, DropReason::Failed);
                }
            }
            Input::Heard { peer, now } => {
                self.now = self.now.max(now);
                if let Some(Neighbour {
                    state: LinkState::Up { last_heard, .. },
                    ..
                }) = self.neighbours.get_mut(&peer)
                {
                    *last_heard = (*last_heard).max(now);
                }
            }
            Input::Tick { now } => {
                self.now = self.now.max(now);
                self.on_tick();
            }
            Input::Broadcast { data, now } => {
                self.now = self.now.max(now);
                self.broadcast(data);
            }
            Input::Frame { from, frame, now } => {
                self.now = self.now.max(now);
                self.handle_input(Input::Heard { peer: from, now });
                self.outputs.push_back(Output::Deliver {
                    origin: frame.origin,
                    data: frame.data,
                    hops: frame.hops.saturating_add(1),
                });
            }
            Input::Plan { .. } => {}
        }
    }

    fn poll_output(&mut self) -> Output {
        self.outputs
            .pop_front()
            .unwrap_or_else(|| Output::Timeout(self.next_deadline()))
    }

    fn neighbours(&self) -> Vec<PeerId> {
        self.neighbours.keys().cloned().collect()
    }
}

#[cfg(test)]
// Tests take one real instant as the origin of their virtual clock, then only add to it.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn peer(s: &str) -> PeerId {
        PeerId::new(s).unwrap()
    }

    fn drain(mesh: &mut FullMesh) -> (Vec<Output>, Instant) {
        let mut out = Vec::new();
        loop {
            match mesh.poll_output() {
                Output::Timeout(at) => return (out, at),
                o => out.push(o),
            }
        }
    }

    #[test]
    fn newcomer_initiates_and_existing_peer_waits() {
        let t0 = Instant::now();
        let mut mesh = FullMesh::new(FullMeshConfig::default(), t0);
        mesh.handle_input(Input::PeerAppeared {
            peer: peer("a"),
            origin: Appearance::Roster,
            now: t0,
        });
        mesh.handle_input(Input::PeerAppeared {
            peer: peer("b"),
            origin: Appearance::Joined,
            now: t0,
        });
        let (out, at) = drain(&mut mesh);
        assert_eq!(
            out,
            vec![
                Output::Connect {
                    peer: peer("a"),
                    initiate: true
                },
                Output::Connect {
                    peer: peer("b"),
                    initiate: false
                }
            ]
        );
        assert_eq!(at, t0 + Duration::from_secs(10));
        // A duplicate appearance changes nothing.
        mesh.handle_input(Input::PeerAppeared {
            peer: peer("a"),
            origin: Appearance::Joined,
            now: t0,
        });
        assert!(drain(&mut mesh).0.is_empty());
    }

    #[test]
    fn link_that_never_opens_is_dropped_then_retried_with_an_offer() {
        let t0 = Instant::now();
        let mut mesh = FullMesh::new(FullMeshConfig::default(), t0);
        mesh.handle_input(Input::PeerAppeared {
            peer: peer("b"),
            origin: Appearance::Joined,
            now: t0,
        });
        let (_, at) = drain(&mut mesh);
        mesh.handle_input(Input::Tick { now: at });
        let (out, retry_at) = drain(&mut mesh);
        assert_eq!(
            out,
            vec![Output::Disconnect {
                peer: peer("b"),
                reason: DropReason::ConnectTimeout
            }]
        );
        let delay = retry_at - at;
        assert!(
            delay >= Duration::from_millis(500) && delay < Duration::from_millis(625),
            "{delay:?}"
        );
        mesh.handle_input(Input::Tick { now: retry_at });
        assert_eq!(
            drain(&mut mesh).0,
            vec![Output::Connect {
                peer: peer("b"),
                initiate: true
            }]
        );
    }

    #[test]
    fn open_link_is_probed_and_dropped_when_silent() {
        let t0 = Instant::now();
        let mut mesh = FullMesh::new(FullMeshConfig::default(), t0);
        let b = peer("b");
        mesh.handle_input(Input::PeerAppeared {
            peer: b.clone(),
            origin: Appearance::Roster,
            now: t0,
        });
        drain(&mut mesh);
        mesh.handle_input(Input::LinkUp {
            peer: b.clone(),
            now: t0,
        });
        let mut now = t0;
        let mut heartbeats = 0;
        let dropped_at = loop {
            let (out, at) = drain(&mut mesh);
            if out.iter().any(|o| {
                matches!(
                    o,
                    Output::Disconnect {
                        reason: DropReason::Silent,
                        ..
                    }
                )
            }) {
                break now;
            }
            heartbeats += out
                .iter()
                .filter(|o| matches!(o, Output::Heartbeat { .. }))
                .count();
            now = at;
            mesh.handle_input(Input::Tick { now });
        };
        assert_eq!(dropped_at - t0, Duration::from_secs(6));
        assert_eq!(heartbeats, 5);
    }

    #[test]
    fn hearing_from_a_peer_keeps_its_link() {
        let t0 = Instant::now();
        let mut mesh = FullMesh::new(FullMeshConfig::default(), t0);
        let b = peer("b");
        mesh.handle_input(Input::PeerAppeared {
            peer: b.clone(),
            origin: Appearance::Roster,
            now: t0,
        });
        mesh.handle_input(Input::LinkUp {
            peer: b.clone(),
            now: t0,
        });
        drain(&mut mesh);
        for s in 1..30 {
            let now = t0 + Duration::from_secs(s);
            mesh.handle_input(Input::Heard {
                peer: b.clone(),
                now,
            });
            mesh.handle_input(Input::Tick { now });
            let (out, _) = drain(&mut mesh);
            assert!(
                out.iter().all(|o| matches!(o, Output::Heartbeat { .. })),
                "{out:?}"
            );
        }
    }

    #[test]
    fn leaving_peer_is_forgotten_and_never_retried() {
        let t0 = Instant::now();
        let mut mesh = FullMesh::new(FullMeshConfig::default(), t0);
        let b = peer("b");
        mesh.handle_input(Input::PeerAppeared {
            peer: b.clone(),
            origin: Appearance::Roster,
            now: t0,
        });
        mesh.handle_input(Input::LinkDown {
            peer: b.clone(),
            now: t0,
        });
        mesh.handle_input(Input::PeerGone {
            peer: b.clone(),
            now: t0,
        });
        let (out, _) = drain(&mut mesh);
        assert_eq!(
            out.last(),
            Some(&Output::Disconnect {
                peer: b.clone(),
                reason: DropReason::Left
            })
        );
        mesh.handle_input(Input::Tick {
            now: t0 + Duration::from_secs(120),
        });
        assert!(drain(&mut mesh).0.is_empty());
        assert!(mesh.neighbours().is_empty());
    }

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let t0 = Instant::now();
        let config = FullMeshConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .retry(Duration::from_secs(1), Duration::from_secs(4))
            .build()
            .unwrap();
        let mut mesh = FullMesh::with_seed(config, t0, 7);
        mesh.handle_input(Input::PeerAppeared {
            peer: peer("b"),
            origin: Appearance::Roster,
            now: t0,
        });
        let mut delays = Vec::new();
        let mut now = t0;
        for _ in 0..10 {
            let (out, at) = drain(&mut mesh);
            if out.iter().any(|o| matches!(o, Output::Disconnect { .. })) {
                delays.push((at - now).as_millis() / 1000);
            }
            now = at;
            mesh.handle_input(Input::Tick { now });
        }
        assert_eq!(delays, vec![1, 2, 4, 4, 4]);
    }

    #[test]
    fn config_builder_refuses_inconsistent_values() {
        assert!(
            FullMeshConfig::builder()
                .connect_timeout(Duration::ZERO)
                .build()
                .is_err()
        );
        assert!(
            FullMeshConfig::builder()
                .heartbeat_interval(Duration::from_secs(5))
                .silence_timeout(Duration::from_secs(6))
                .build()
                .is_err()
        );
        assert!(FullMeshConfig::builder().build().is_ok());
    }
}
