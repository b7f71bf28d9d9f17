//! A second binary path from the engine to the view, measured against the Tauri channel: a
//! WebSocket on loopback that only a view holding this run's token may open (a page from
//! elsewhere cannot guess it). Each connected view gets every packet sent; one that falls
//! behind misses packets rather than queue them.

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

/// Packets queued per connected view before it misses some.
const QUEUE: usize = 8;

/// The socket's address and the token a view must present (`?token=...`).
#[derive(Clone)]
pub struct PictureSocket {
    pub url: String,
    pub token: String,
    views: Arc<Mutex<Vec<mpsc::Sender<Vec<u8>>>>>,
}

impl std::fmt::Debug for PictureSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out of logs.
        f.debug_struct("PictureSocket")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// 128 random bits as hex.
fn new_token() -> std::io::Result<String> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(std::io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the request's query carries `token=TOKEN`.
fn has_token(request: &Request, token: &str) -> bool {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|pair| pair.strip_prefix("token=") == Some(token))
}

impl PictureSocket {
    /// Listens on a free loopback port.
    pub async fn bind() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let socket = Self {
            url: format!("ws://{}/pictures", listener.local_addr()?),
            token: new_token()?,
            views: Arc::default(),
        };
        let accepting = socket.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(accepting.clone().serve(stream));
            }
        });
        Ok(socket)
    }

    async fn serve(self, stream: tokio::net::TcpStream) {
        let token = self.token.clone();
        // The handshake callback's error type is tungstenite's: an HTTP response.
        #[expect(
            clippy::result_large_err,
            reason = "the signature accept_hdr_async asks for"
        )]
        let check = move |request: &Request, response: Response| {
            if has_token(request, &token) {
                Ok(response)
            } else {
                let mut refusal = ErrorResponse::new(Some("a valid token is required".into()));
                *refusal.status_mut() = StatusCode::FORBIDDEN;
                Err(refusal)
            }
        };
        let ws = match tokio_tungstenite::accept_hdr_async(stream, check).await {
            Ok(ws) => ws,
            Err(e) => return tracing::warn!(error = %e, "picture socket refused a connection"),
        };
        let (mut sink, mut incoming) = ws.split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        if let Ok(mut views) = self.views.lock() {
            views.push(tx);
        }
        // Registered: the view may ask for pictures now.
        if sink.send(Message::Binary(vec![0].into())).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                packet = rx.recv() => match packet {
                    Some(p) => if sink.send(Message::Binary(p.into())).await.is_err() { break },
                    None => break,
                },
                message = incoming.next() => match message {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// Whether a view is connected.
    pub fn has_views(&self) -> bool {
        self.views
            .lock()
            .is_ok_and(|v| v.iter().any(|s| !s.is_closed()))
    }

    /// Sends a packet to every connected view that has room for it (from any thread); a view
    /// that is behind misses this one. Returns how many took it.
    pub fn offer(&self, packet: &[u8]) -> usize {
        let views: Vec<_> = self.views.lock().map(|v| v.clone()).unwrap_or_default();
        views
            .iter()
            .filter(|view| view.try_send(packet.to_vec()).is_ok())
            .count()
    }

    /// Sends a packet to every connected view, waiting for room in each view's queue.
    pub async fn send(&self, packet: &[u8]) -> usize {
        let views: Vec<_> = self
            .views
            .lock()
            .map(|mut v| {
                v.retain(|s| !s.is_closed());
                v.clone()
            })
            .unwrap_or_default();
        let mut sent = 0;
        for view in views {
            if view.send(packet.to_vec()).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_view_with_the_token_connects_and_it_gets_every_packet() {
        let socket = PictureSocket::bind().await.expect("bound");
        let refused = tokio_tungstenite::connect_async(format!("{}?token=guess", socket.url)).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::FORBIDDEN);
            }
            other => panic!("a wrong token was not refused: {other:?}"),
        }
        let bare = tokio_tungstenite::connect_async(socket.url.clone()).await;
        assert!(bare.is_err(), "no token was not refused");

        let url = format!("{}?token={}", socket.url, socket.token);
        let (mut view, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("admitted");
        let hello = view.next().await.expect("a hello").expect("a message");
        assert_eq!(hello.into_data().as_ref(), &[0]);
        for i in 0..20u8 {
            assert_eq!(socket.send(&[i; 1000]).await, 1);
        }
        for i in 0..20u8 {
            let got = view.next().await.expect("a packet").expect("a message");
            assert_eq!(got.into_data().as_ref(), &[i; 1000][..]);
        }
    }
}
