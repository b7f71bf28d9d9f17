//! The HTTP side of a connection: its request head is read first, then the connection is
//! either upgraded to the signaling WebSocket (the head replayed to the WebSocket library)
//! or answered with a page of the [`Site`] and closed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::site::Site;

/// The longest request head read; a longer one is refused (431).
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed at most; more are refused (431).
const MAX_HEADERS: usize = 64;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// A WebSocket upgrade: the signaling connection.
    Upgrade,
    /// A page (`head_only` for HEAD).
    Get {
        target: String,
        head_only: bool,
        /// The client takes `Content-Encoding: gzip`.
        gzip: bool,
    },
    /// Something this server does not serve, with the status to answer.
    Refused(u16),
}

/// Reads a request head from `stream`; returns what it asks and every byte read (the head
/// and whatever followed it), or `None` if the connection ended first.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<Option<(Request, Vec<u8>)>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(request) = parse(&buf) {
            return Ok(Some((request, buf)));
        }
        if buf.len() > MAX_HEAD {
            return Ok(Some((Request::Refused(431), buf)));
        }
    }
}

/// What a complete head asks for, or `None` if the head is not complete yet.
pub(crate) fn parse(bytes: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let request = match request.parse(bytes) {
        Ok(httparse::Status::Partial) => return None,
        Ok(httparse::Status::Complete(_)) => request,
        Err(httparse::Error::TooManyHeaders) => return Some(Request::Refused(431)),
        Err(_) => return Some(Request::Refused(400)),
    };
    let upgrade = request.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && std::str::from_utf8(h.value)
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    });
    let gzip = request.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("accept-encoding")
            && std::str::from_utf8(h.value).is_ok_and(accepts_gzip)
    });
    Some(match (request.method, request.path) {
        (Some("GET"), Some(_)) if upgrade => Request::Upgrade,
        (Some(method @ ("GET" | "HEAD")), Some(target)) => Request::Get {
            target: target.to_owned(),
            head_only: method == "HEAD",
            gzip,
        },
        _ => Request::Refused(405),
    })
}

/// Whether an `Accept-Encoding` value takes gzip (listed, and not with `q=0`).
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

/// Answers `request` (not an upgrade) from `site` and closes.
pub(crate) async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    site: &Site,
    request: &Request,
) -> io::Result<()> {
    // Content-Encoding and Vary, for a page that has a gzipped form.
    let mut encoding = "";
    let (status, content_type, body, cache, head_only): (u16, &str, &[u8], &str, bool) =
        match request {
            Request::Get {
                target,
                head_only,
                gzip,
            } => match site.lookup(target) {
                Some(page) => {
                    let cache = if page.immutable {
                        "public, max-age=31536000, immutable"
                    } else {
                        "no-cache"
                    };
                    let body = match page.gzip {
                        Some(gzipped) if *gzip => {
                            encoding = "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n";
                            gzipped
                        }
                        Some(_) => {
                            encoding = "Vary: Accept-Encoding\r\n";
                            page.body
                        }
                        None => page.body,
                    };
                    (200, page.content_type, body, cache, *head_only)
                }
                None if target.starts_with("/r/") && !site.has_guest_page() => (
                    404,
                    "text/plain; charset=utf-8",
                    b"This plenum was built without its guest page (scripts/ui.sh builds it).\n",
                    "no-cache",
                    *head_only,
                ),
                None => (
                    404,
                    "text/plain; charset=utf-8",
                    b"Not found.\n",
                    "no-cache",
                    *head_only,
                ),
            },
            Request::Refused(status) => {
                (*status, "text/plain; charset=utf-8", b"", "no-cache", false)
            }
            Request::Upgrade => (400, "text/plain; charset=utf-8", b"", "no-cache", false),
        };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         {encoding}Cache-Control: {cache}\r\nX-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
        reason = reason(status),
        len = body.len(),
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// A stream that gives back `prefix` (bytes already read from it) before reading on.
pub(crate) struct Replayed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Replayed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.at);
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replayed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_told_apart() {
        assert_eq!(
            parse(b"GET /r/standup HTTP/1.1\r\nHost: x"),
            None,
            "not complete yet"
        );
        assert_eq!(
            parse(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n"
            ),
            Some(Request::Upgrade)
        );
        assert_eq!(
            parse(b"GET /r/standup?name=Ada HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Request::Get {
                target: "/r/standup?name=Ada".into(),
                head_only: false,
                gzip: false
            })
        );
        assert_eq!(
            parse(b"HEAD /r/x HTTP/1.1\r\n\r\n"),
            Some(Request::Get {
                target: "/r/x".into(),
                head_only: true,
                gzip: false
            })
        );
        for (accept, gzip) in [
            ("gzip, deflate, br, zstd", true),
            ("br;q=1.0, GZIP;q=0.5", true),
            ("gzip;q=0, br", false),
            ("identity", false),
            ("*", true),
        ] {
            let head = format!("GET /r/x HTTP/1.1\r\nAccept-Encoding: {accept}\r\n\r\n");
            assert!(
                matches!(parse(head.as_bytes()), Some(Request::Get { gzip: g, .. }) if g == gzip),
                "{accept}"
            );
        }
        assert_eq!(
            parse(b"POST /r/x HTTP/1.1\r\n\r\n"),
            Some(Request::Refused(405))
        );
        assert_eq!(
            parse(b"\x16\x03\x01 tls hello\r\n\r\n"),
            Some(Request::Refused(400))
        );
        let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Some(Request::Refused(431))
        );
    }

    #[tokio::test]
    async fn a_replayed_stream_gives_its_prefix_first() {
        use tokio::io::AsyncReadExt;
        let mut stream = Replayed::new(b"abc".to_vec(), b"def".as_slice());
        let mut all = String::new();
        stream.read_to_string(&mut all).await.expect("read");
        assert_eq!(all, "abcdef");
    }
}
