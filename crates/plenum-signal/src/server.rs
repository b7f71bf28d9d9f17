//! The WebSocket server: a thin tokio shell that moves text frames between sockets and the
//! [`Hub`]. Every rule lives in the registry.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::entry::Entry;
use crate::federation::Federation;
use crate::hub::{Hub, OUTBOUND_QUEUE, Outbound};
use crate::registry::{RegistryConfig, RegistryStats};

/// Settings of a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The registry's limits.
    pub registry: RegistryConfig,
    /// Most simultaneous connections (default 100,000); more are closed on accept.
    pub max_connections: usize,
    /// Frames above this size end the connection instead of getting an error frame
    /// (default 32 times `max_frame_bytes`): the bound on what one client makes us buffer.
    pub hard_frame_limit: usize,
    /// Interval of WebSocket pings to each client (default 10 s); a client silent for
    /// three intervals is dropped.
    pub keepalive: Duration,
    /// A NATS server (`nats://host:port`, with JetStream) through which this server shares
    /// rooms with the other servers on it ([`crate::Federation`]).
    pub nats: Option<String>,
    /// How long a new socket may take to complete its WebSocket upgrade (default 10 s);
    /// one that has not by then is closed, so that idle or trickling sockets cannot hold
    /// the connection slots that joins need.
    pub handshake_timeout: Duration,
    /// The pages answered to plain HTTP requests on the same port (the guest client at
    /// `/r/ROOM`); empty by default.
    pub site: crate::Site,
    /// Serve `https://` and `wss://` with this certificate ([`crate::Tls`]); plain HTTP
    /// and `ws://` when `None` (the default).
    pub tls: Option<crate::Tls>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let registry = RegistryConfig::default();
        Self {
            hard_frame_limit: registry.max_frame_bytes * 32,
            registry,
            max_connections: 100_000,
            keepalive: Duration::from_secs(10),
            nats: None,
            handshake_timeout: Duration::from_secs(10),
            site: crate::Site::default(),
            tls: None,
        }
    }
}

/// How long a closing connection waits for the client's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// A running signaling server. Dropping it stops accepting and closes every connection.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    secure: bool,
    hub: Hub,
    federation: Option<Federation>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and starts serving; with
    /// [`ServerConfig::nats`], joins that NATS cluster first.
    pub async fn bind(addr: SocketAddr, config: ServerConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let hub = Hub::start(config.registry.clone());
        let federation = match &config.nats {
            Some(url) => Some(
                Federation::start(url, hub.clone())
                    .await
                    .map_err(std::io::Error::other)?,
            ),
            None => None,
        };
        let entry = match &federation {
            Some(federation) => Entry::Federation(federation.clone()),
            None => Entry::Hub(hub.clone()),
        };
        let secure = config.tls.is_some();
        let task = tokio::spawn(accept_loop(listener, entry, std::sync::Arc::new(config)));
        tracing::info!(%local_addr, "signaling server listening");
        Ok(Self {
            local_addr,
            secure,
            hub,
            federation,
            task,
        })
    }

    /// The NATS cluster this server shares rooms with, if any.
    pub fn federation(&self) -> Option<&Federation> {
        self.federation.as_ref()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to: `ws://`, or `wss://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// The registry's counters.
    pub fn stats(&self) -> RegistryStats {
        self.hub.stats()
    }

    /// A handle to the registry, for in-memory clients of the same server.
    pub fn hub(&self) -> Hub {
        self.hub.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, entry: Entry, config: std::sync::Arc<ServerConfig>) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        match accepted {
            Ok((stream, peer)) => {
                if conns.len() >= config.max_connections {
                    tracing::warn!(%peer, "connection limit reached; refusing");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                conns.spawn(serve_connection(stream, entry.clone(), config.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Text frames longer than this go out as fragments of this size (RFC 6455 section 5.4;
/// every client reassembles them). The socket's write buffer keeps the capacity of the
/// largest frame it ever held, and a `welcome` to the 100th peer of a room lists 99: sent
/// whole, it would leave each connection holding ~15 KiB for its lifetime.
const FRAGMENT: usize = 2048;

async fn send_text<S>(sink: &mut S, text: String) -> Result<(), tungstenite::Error>
where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    use tungstenite::protocol::frame::Frame;
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    if text.len() <= FRAGMENT {
        return sink.send(Message::text(text)).await;
    }
    let bytes = tungstenite::Bytes::from(text);
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + FRAGMENT).min(bytes.len());
        let opcode = if start == 0 {
            Data::Text
        } else {
            Data::Continue
        };
        let frame = Frame::message(
            bytes.slice(start..end),
            OpCode::Data(opcode),
            end == bytes.len(),
        );
        sink.send(Message::Frame(frame)).await?;
        start = end;
    }
    Ok(())
}

/// The WebSocket settings of a signaling connection: small buffers, since most
/// connections are idle and a frame is at most `hard_limit` bytes.
pub(crate) fn ws_config(hard_limit: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(hard_limit * 2)
        .max_message_size(Some(hard_limit))
        .max_frame_size(Some(hard_limit))
}

/// Reads the request; answers a page request from the site and closes, or completes the
/// WebSocket upgrade. `None`: the connection is done with.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    config: &ServerConfig,
) -> Option<tokio_tungstenite::WebSocketStream<crate::http::Replayed<S>>> {
    use crate::http::{Replayed, Request};
    let (request, head) = match crate::http::read_request(&mut stream).await {
        Ok(Some(read)) => read,
        Ok(None) => return None,
        Err(e) => {
            tracing::debug!(error = %e, "request not read");
            return None;
        }
    };
    if request != Request::Upgrade {
        if let Err(e) = crate::http::respond(&mut stream, &config.site, &request).await {
            tracing::debug!(error = %e, "page not sent");
        }
        return None;
    }
    let stream = Replayed::new(head, stream);
    tokio_tungstenite::accept_async_with_config(stream, Some(ws_config(config.hard_frame_limit)))
        .await
        .inspect_err(|e| tracing::debug!(error = %e, "websocket handshake failed"))
        .ok()
}

async fn serve_connection(stream: TcpStream, entry: Entry, config: std::sync::Arc<ServerConfig>) {
    let Some(tls) = config.tls.clone() else {
        let handshake = config.handshake_timeout;
        return serve_stream(stream, entry, config, handshake).await;
    };
    // The TLS handshake counts against the same deadline as the upgrade that follows it.
    let started = Instant::now();
    match tokio::time::timeout(config.handshake_timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => {
            let left = config.handshake_timeout.saturating_sub(started.elapsed());
            serve_stream(stream, entry, config, left).await;
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake not completed in time; closed"),
    }
}

/// Serves one connection (plain or TLS) whose upgrade must complete within `handshake`.
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    entry: Entry,
    config: std::sync::Arc<ServerConfig>,
    handshake: Duration,
) {
    let ws = match tokio::time::timeout(handshake, upgrade(stream, &config)).await {
        Ok(Some(ws)) => ws,
        Ok(None) => return,
        Err(_) => {
            tracing::debug!("websocket handshake not completed in time; closed");
            return;
        }
    };
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let Some(mut session) = entry.open(out_tx).await else {
        return;
    };
    let soft_limit = config.registry.max_frame_bytes;
    let mut keepalive = tokio::time::interval(config.keepalive);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            msg = source.next() => {
                last_heard = Instant::now();
                let alive = match msg {
                    Some(Ok(Message::Text(text))) if text.len() > soft_limit => {
                        session.refused(text.len(), false).await
                    }
                    Some(Ok(Message::Text(text))) => session.frame(text.as_str().to_owned()).await,
                    Some(Ok(Message::Binary(bytes))) => session.refused(bytes.len(), true).await,
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => true,
                    Some(Ok(Message::Close(_))) | None => false,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket read ended");
                        false
                    }
                };
                if !alive {
                    break;
                }
            }
            out = out_rx.recv() => match out {
                Some(Outbound::Text(text)) => {
                    if send_text(&mut sink, text).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    // Closing handshake: read until the client's close (bounded) before the
                    // socket goes. Dropping it with the client's frames unread makes the
                    // kernel reset the connection, and a reset can discard the refusal
                    // still in flight to the client.
                    let drain = async {
                        while let Some(Ok(message)) = source.next().await {
                            if message.is_close() {
                                break;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
                    break;
                }
            },
            _ = keepalive.tick() => {
                if last_heard.elapsed() > config.keepalive * 3 {
                    tracing::info!("signaling client silent; dropping it");
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    session.closed().await;
}
