//! A server with a site answers plain HTTP on its WebSocket's port: the guest page at
//! `/r/ROOM`, its assets, 404 for anything else, 405 for other methods; and a WebSocket
//! upgrade on the same port still reaches the registry.

use std::time::Duration;

use plenum_proto::signal::ServerToClient;
use plenum_signal::{Server, ServerConfig, SignalDriver, SignalEvent, Site, WsDriver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LONG: Duration = Duration::from_secs(20);

async fn server(site: Site) -> Server {
    let config = ServerConfig {
        site,
        ..ServerConfig::default()
    };
    Server::bind("127.0.0.1:0".parse().expect("addr"), config)
        .await
        .expect("bind")
}

/// Sends `request` as is and reads the whole answer (the server closes after it).
async fn ask(server: &Server, request: &str) -> String {
    let mut socket = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(LONG, socket.read_to_end(&mut answer))
        .await
        .expect("answered and closed in time")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

fn site() -> Site {
    Site::new([
        (
            "/guest.html",
            b"<!doctype html><title>guest</title>".as_slice(),
        ),
        ("/assets/guest-1a2b.js", b"export {}".as_slice()),
    ])
}

#[tokio::test]
async fn a_room_link_gets_the_guest_page() {
    let server = server(site()).await;
    let answer = ask(
        &server,
        "GET /r/standup?name=Ada HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("Content-Type: text/html; charset=utf-8\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Content-Length: 35\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\n<!doctype html><title>guest</title>"),
        "{answer}"
    );

    let script = ask(&server, "GET /assets/guest-1a2b.js HTTP/1.1\r\n\r\n").await;
    assert!(script.starts_with("HTTP/1.1 200 OK\r\n"), "{script}");
    assert!(script.contains("immutable"), "{script}");
    assert!(script.ends_with("export {}"), "{script}");

    let head = ask(&server, "HEAD /r/standup HTTP/1.1\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
}

#[tokio::test]
async fn anything_else_is_refused_and_closed() {
    let server = server(site()).await;
    for (request, status) in [
        ("GET /etc/passwd HTTP/1.1\r\n\r\n", "404 Not Found"),
        ("GET /r/ HTTP/1.1\r\n\r\n", "404 Not Found"),
        (
            "POST /r/standup HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "405 Method Not Allowed",
        ),
        (
            "\x16\x03\x01\x02\x00 a TLS hello\r\n\r\n",
            "400 Bad Request",
        ),
    ] {
        let answer = ask(&server, request).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{request:?}: {answer}"
        );
    }
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(20_000));
    assert!(ask(&server, &long).await.starts_with("HTTP/1.1 431 "));
}

#[tokio::test]
async fn without_a_site_the_room_link_says_why() {
    let server = server(Site::default()).await;
    let answer = ask(&server, "GET /r/standup HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    assert!(answer.contains("without its guest page"), "{answer}");
}

#[tokio::test]
async fn the_websocket_shares_the_port() {
    let server = server(site()).await;
    let driver = WsDriver::new(server.url()).expect("driver");
    let mut conn = driver.connect().await.expect("upgrade");
    let frame = tokio::time::timeout(LONG, conn.rx.recv())
        .await
        .expect("hello in time");
    assert!(
        matches!(
            frame,
            Some(SignalEvent::Frame(ServerToClient::Hello { .. }))
        ),
        "{frame:?}"
    );
}

#[tokio::test]
async fn a_client_that_takes_gzip_gets_the_gzipped_form() {
    let server = server(Site::with_gzip([
        (
            "/assets/guest-1a2b.js",
            b"export {} // long".as_slice(),
            Some(b"GZIPPED".as_slice()),
        ),
        ("/guest.html", b"<!doctype html>".as_slice(), None),
    ]))
    .await;
    let gzipped = ask(
        &server,
        "GET /assets/guest-1a2b.js HTTP/1.1\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n",
    )
    .await;
    assert!(gzipped.contains("Content-Encoding: gzip\r\n"), "{gzipped}");
    assert!(gzipped.contains("Vary: Accept-Encoding\r\n"), "{gzipped}");
    assert!(gzipped.contains("Content-Length: 7\r\n"), "{gzipped}");
    assert!(gzipped.ends_with("\r\n\r\nGZIPPED"), "{gzipped}");

    let plain = ask(&server, "GET /assets/guest-1a2b.js HTTP/1.1\r\n\r\n").await;
    assert!(!plain.contains("Content-Encoding"), "{plain}");
    assert!(plain.contains("Vary: Accept-Encoding\r\n"), "{plain}");
    assert!(plain.ends_with("export {} // long"), "{plain}");

    let refused = ask(
        &server,
        "GET /assets/guest-1a2b.js HTTP/1.1\r\nAccept-Encoding: gzip;q=0\r\n\r\n",
    )
    .await;
    assert!(refused.ends_with("export {} // long"), "{refused}");

    // A file without a gzipped form is sent as it is, whatever the client takes.
    let page = ask(
        &server,
        "GET /r/standup HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
    )
    .await;
    assert!(!page.contains("Content-Encoding"), "{page}");
    assert!(page.ends_with("<!doctype html>"), "{page}");
}
