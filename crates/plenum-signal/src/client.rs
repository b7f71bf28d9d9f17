//! Signaling drivers: how a peer reaches a signaling registry.
//!
//! After the `on / off / emit` driver idea, typed: a driver is anything that can
//! [`connect`](SignalDriver::connect) and hand back a [`SignalConnection`], a bounded sender
//! of [`ClientToServer`] frames and a bounded stream of [`SignalEvent`]s. The WebSocket
//! driver talks to `plenum serve`; the in-memory driver talks to a [`Hub`] in the same
//! process through the same JSON encoding, for tests of the layers above signaling.

use std::fmt;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use plenum_proto::signal::{ClientToServer, ServerToClient};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::entry::Entry;
use crate::federation::Federation;
use crate::hub::{Hub, OUTBOUND_QUEUE, Outbound};

/// Frames a client may queue towards the server.
const CLIENT_QUEUE: usize = 256;

/// What a signaling connection delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalEvent {
    /// A frame from the server.
    Frame(ServerToClient),
    /// The connection ended; nothing follows.
    Closed {
        /// Why, for logs.
        reason: String,
    },
}

/// An open signaling connection. Dropping `tx` closes it.
#[derive(Debug)]
pub struct SignalConnection {
    /// Frames to the server.
    pub tx: mpsc::Sender<ClientToServer>,
    /// Frames and the end of the connection.
    pub rx: mpsc::Receiver<SignalEvent>,
}

/// Why a signaling connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The URL is not a `ws://` or `wss://` URL.
    #[error("signaling URL {0:?} is not a ws:// URL")]
    BadUrl(String),
    /// The server could not be reached or refused the WebSocket handshake.
    #[error("cannot reach signaling server {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("signaling server {0} did not answer within {1:?}")]
    Timeout(String, Duration),
    /// The in-memory hub has stopped.
    #[error("the in-memory signaling hub has stopped")]
    HubStopped,
}

/// Something that opens signaling connections.
#[async_trait::async_trait]
pub trait SignalDriver: Send + Sync + fmt::Debug + 'static {
    /// Opens one connection.
    async fn connect(&self) -> Result<SignalConnection, SignalError>;
}

/// Connects to `plenum serve` over WebSocket.
///
/// Given several URLs (`ws://a,ws://b`: servers of one NATS cluster), it connects to the
/// one that worked last and, when that one fails, to the next.
#[derive(Debug, Clone)]
pub struct WsDriver {
    urls: Vec<String>,
    /// The URL that worked last.
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    timeout: Duration,
}

impl WsDriver {
    /// A driver for `url` (`ws://host:port`), or for a comma-separated list of them.
    pub fn new(url: impl Into<String>) -> Result<Self, SignalError> {
        let url = url.into();
        let urls: Vec<String> = url.split(',').map(|u| u.trim().to_owned()).collect();
        let bad = |u: &String| !(u.starts_with("ws://") || u.starts_with("wss://"));
        if urls.iter().any(bad) {
            return Err(SignalError::BadUrl(url));
        }
        let timeout = if urls.len() > 1 { 5 } else { 10 };
        Ok(Self {
            urls,
            current: Default::default(),
            timeout: Duration::from_secs(timeout),
        })
    }
}

#[async_trait::async_trait]
impl SignalDriver for WsDriver {
    async fn connect(&self) -> Result<SignalConnection, SignalError> {
        use std::sync::atomic::Ordering;
        let first = self.current.load(Ordering::Relaxed);
        let mut failure = SignalError::BadUrl(String::new());
        for i in 0..self.urls.len() {
            let at = (first + i) % self.urls.len();
            match self.connect_to(&self.urls[at]).await {
                Ok(connection) => {
                    if at != first {
                        tracing::info!(url = %self.urls[at], "signaling moved to the next server");
                    }
                    self.current.store(at, Ordering::Relaxed);
                    return Ok(connection);
                }
                Err(e) => failure = e,
            }
        }
        Err(failure)
    }
}

impl WsDriver {
    async fn connect_to(&self, url: &str) -> Result<SignalConnection, SignalError> {
        let ws = tokio::time::timeout(self.timeout, crate::tls::connect_ws(url))
            .await
            .map_err(|_| SignalError::Timeout(url.to_owned(), self.timeout))?
            .map_err(|reason| SignalError::Unreachable {
                url: url.to_owned(),
                reason,
            })?;
        let (tx, mut frames) = mpsc::channel::<ClientToServer>(CLIENT_QUEUE);
        let (events, rx) = mpsc::channel(CLIENT_QUEUE);
        let (mut sink, mut source) = ws.split();
        tokio::spawn(async move {
            let mut keepalive = tokio::time::interval(Duration::from_secs(10));
            let reason = loop {
                tokio::select! {
                    frame = frames.recv() => match frame {
                        Some(frame) => {
                            if let Err(e) = sink.send(Message::text(frame.encode())).await {
                                break format!("write failed: {e}");
                            }
                        }
                        None => {
                            let _ = sink.send(Message::Close(None)).await;
                            break "closed by client".to_string();
                        }
                    },
                    msg = source.next() => match msg {
                        Some(Ok(Message::Text(text))) => match ServerToClient::decode(text.as_str()) {
                            Ok(frame) => {
                                if events.send(SignalEvent::Frame(frame)).await.is_err() {
                                    break "client dropped".to_string();
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "ignoring undecodable signaling frame"),
                        },
                        Some(Ok(Message::Close(_))) | None => break "closed by server".to_string(),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break format!("read failed: {e}"),
                    },
                    _ = keepalive.tick() => {
                        if let Err(e) = sink.send(Message::Ping(Default::default())).await {
                            break format!("write failed: {e}");
                        }
                    }
                }
            };
            let _ = events.send(SignalEvent::Closed { reason }).await;
        });
        Ok(SignalConnection { tx, rx })
    }
}

/// Connects to a [`Hub`] in the same process.
#[derive(Debug, Clone)]
pub struct MemoryDriver {
    hub: Hub,
}

impl MemoryDriver {
    /// A driver for `hub`.
    pub fn new(hub: Hub) -> Self {
        Self { hub }
    }
}

#[async_trait::async_trait]
impl SignalDriver for MemoryDriver {
    async fn connect(&self) -> Result<SignalConnection, SignalError> {
        connect_in_process(&Entry::Hub(self.hub.clone())).await
    }
}

/// Signals through a NATS server with no Plenum server: the process holds a registry of
/// its own, federated over NATS ([`Federation`]) with every other peer's, so rooms,
/// limits and host seats work as through `plenum serve`. The NATS server needs
/// JetStream (`nats-server -js`).
#[derive(Debug)]
pub struct NatsDriver {
    url: String,
    federation: tokio::sync::OnceCell<Federation>,
}

impl NatsDriver {
    /// A driver for `url` (`nats://host:port`); it connects at the first
    /// [`connect`](SignalDriver::connect).
    pub fn new(url: impl Into<String>) -> Result<Self, SignalError> {
        let url = url.into();
        if !url.starts_with("nats://") || url.contains(',') {
            return Err(SignalError::BadUrl(url));
        }
        Ok(Self {
            url,
            federation: tokio::sync::OnceCell::new(),
        })
    }
}

#[async_trait::async_trait]
impl SignalDriver for NatsDriver {
    async fn connect(&self) -> Result<SignalConnection, SignalError> {
        let federation = self
            .federation
            .get_or_try_init(|| async {
                let hub = Hub::start(crate::RegistryConfig::default());
                Federation::start(&self.url, hub).await
            })
            .await
            .map_err(|e| SignalError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        connect_in_process(&Entry::Federation(federation.clone())).await
    }
}

/// A connection through `entry` from this process, in the same JSON as a socket's.
async fn connect_in_process(entry: &Entry) -> Result<SignalConnection, SignalError> {
    let (out_tx, mut out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let mut session = entry.open(out_tx).await.ok_or(SignalError::HubStopped)?;
    let (tx, mut frames) = mpsc::channel::<ClientToServer>(CLIENT_QUEUE);
    let (events, rx) = mpsc::channel(CLIENT_QUEUE);
    tokio::spawn(async move {
        let reason = loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Some(frame) => {
                        if !session.frame(frame.encode()).await {
                            break "hub stopped".to_string();
                        }
                    }
                    None => break "closed by client".to_string(),
                },
                out = out_rx.recv() => match out {
                    Some(Outbound::Text(text)) => match ServerToClient::decode(&text) {
                        Ok(frame) => {
                            if events.send(SignalEvent::Frame(frame)).await.is_err() {
                                break "client dropped".to_string();
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "ignoring undecodable signaling frame"),
                    },
                    Some(Outbound::Close) | None => break "closed by server".to_string(),
                },
            }
        };
        session.closed().await;
        let _ = events.send(SignalEvent::Closed { reason }).await;
    });
    Ok(SignalConnection { tx, rx })
}
