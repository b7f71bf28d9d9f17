//! The task that owns a [`Registry`] and moves frames between it and connections.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::registry::{ConnId, Input, Output, Registry, RegistryConfig, RegistryStats};

/// Frames queued per connection before the hub gives up on a reader that does not read.
pub(crate) const OUTBOUND_QUEUE: usize = 256;
const HUB_QUEUE: usize = 4096;

/// What the hub sends to a connection.
#[derive(Debug)]
pub(crate) enum Outbound {
    Text(String),
    Close,
}

#[derive(Debug)]
enum HubEvent {
    Open {
        conn: ConnId,
        outbound: mpsc::Sender<Outbound>,
        /// The challenge another server of the cluster sent already.
        forwarded: Option<String>,
    },
    Frame {
        conn: ConnId,
        text: String,
    },
    Refused {
        conn: ConnId,
        len: usize,
        binary: bool,
    },
    Closed {
        conn: ConnId,
    },
}

/// A handle to a running registry. Cloning is cheap; the registry task ends when the last
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: mpsc::Sender<HubEvent>,
    next_conn: Arc<AtomicU64>,
    stats: watch::Receiver<RegistryStats>,
}

impl Hub {
    /// Starts a registry task on the current tokio runtime.
    pub fn start(config: RegistryConfig) -> Self {
        let (tx, rx) = mpsc::channel(HUB_QUEUE);
        let (stats_tx, stats) = watch::channel(RegistryStats::default());
        let mut seed = [0u8; 32];
        // Challenges must be unpredictable; without OS randomness there is no safe way on.
        getrandom::fill(&mut seed).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
        let registry = Registry::new(config, Instant::now(), seed);
        tokio::spawn(run(registry, rx, stats_tx));
        Self {
            tx,
            next_conn: Arc::new(AtomicU64::new(1)),
            stats,
        }
    }

    /// The registry's counters, as of its last step.
    pub fn stats(&self) -> RegistryStats {
        *self.stats.borrow()
    }

    pub(crate) async fn open(&self, outbound: mpsc::Sender<Outbound>) -> Option<ConnId> {
        self.open_with(outbound, None).await
    }

    /// Opens a connection whose `hello` (with `forwarded`, when given) was sent already.
    pub(crate) async fn open_with(
        &self,
        outbound: mpsc::Sender<Outbound>,
        forwarded: Option<String>,
    ) -> Option<ConnId> {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.tx
            .send(HubEvent::Open {
                conn,
                outbound,
                forwarded,
            })
            .await
            .ok()?;
        Some(conn)
    }

    pub(crate) async fn frame(&self, conn: ConnId, text: String) -> bool {
        self.tx.send(HubEvent::Frame { conn, text }).await.is_ok()
    }

    pub(crate) async fn refused(&self, conn: ConnId, len: usize, binary: bool) -> bool {
        self.tx
            .send(HubEvent::Refused { conn, len, binary })
            .await
            .is_ok()
    }

    pub(crate) async fn closed(&self, conn: ConnId) {
        let _ = self.tx.send(HubEvent::Closed { conn }).await;
    }
}

async fn run(
    mut registry: Registry,
    mut rx: mpsc::Receiver<HubEvent>,
    stats: watch::Sender<RegistryStats>,
) {
    let mut outbound: HashMap<ConnId, mpsc::Sender<Outbound>> = HashMap::new();
    let mut deadline = Instant::now();
    loop {
        let input = tokio::select! {
            event = rx.recv() => {
                let now = Instant::now();
                match event {
                    None => return,
                    Some(HubEvent::Open { conn, outbound: tx, forwarded }) => {
                        outbound.insert(conn, tx);
                        match forwarded {
                            Some(challenge) => Input::Forwarded { conn, challenge, now },
                            None => Input::Opened { conn, now },
                        }
                    }
                    Some(HubEvent::Frame { conn, text }) => Input::Frame { conn, text, now },
                    Some(HubEvent::Refused { conn, len, binary }) => Input::Refused { conn, len, binary, now },
                    Some(HubEvent::Closed { conn }) => {
                        outbound.remove(&conn);
                        Input::Closed { conn, now }
                    }
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => Input::Tick { now: Instant::now() },
        };
        registry.handle_input(input);
        loop {
            match registry.poll_output() {
                Output::Send { conn, frame } => {
                    let Some(tx) = outbound.get(&conn) else {
                        continue;
                    };
                    if tx.try_send(Outbound::Text(frame.encode())).is_err() {
                        // A reader this far behind is gone or hostile: end it rather than
                        // hold unbounded frames for it.
                        tracing::warn!(conn, "signaling client not reading; closing it");
                        outbound.remove(&conn);
                        registry.handle_input(Input::Closed {
                            conn,
                            now: Instant::now(),
                        });
                    }
                }
                Output::Close { conn } => {
                    if let Some(tx) = outbound.remove(&conn) {
                        let _ = tx.try_send(Outbound::Close);
                    }
                }
                Output::Timeout(at) => {
                    deadline = at;
                    break;
                }
            }
        }
        stats.send_replace(registry.stats());
    }
}
