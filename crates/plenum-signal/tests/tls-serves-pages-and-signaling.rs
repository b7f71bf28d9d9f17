//! A server with a certificate (`plenum serve --tls-cert --tls-key`) answers `https://` for
//! its pages and `wss://` for signaling on one port; plain HTTP to it gets nothing and the
//! server carries on; certificate files that cannot be used say which and why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use plenum_signal::{Server, ServerConfig, Site, Tls, TlsError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

const LONG: Duration = Duration::from_secs(20);

struct Files {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM files.
fn certificate(tag: &str) -> Files {
    let dir = std::env::temp_dir().join(format!("plenum-tls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).expect("cert written");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key written");
    Files {
        dir,
        cert,
        key,
        der: made.cert.der().clone(),
    }
}

async fn server(files: &Files) -> Server {
    let config = ServerConfig {
        site: Site::new([(
            "/guest.html",
            b"<!doctype html><title>guest</title>".as_slice(),
        )]),
        tls: Some(Tls::from_pem_files(&files.cert, &files.key).expect("usable")),
        ..ServerConfig::default()
    };
    Server::bind("127.0.0.1:0".parse().expect("addr"), config)
        .await
        .expect("bind")
}

/// A TLS connection to `server` trusting only `root`.
async fn tls_to(
    server: &Server,
    root: &CertificateDer<'static>,
) -> std::io::Result<impl AsyncRead + AsyncWrite + Unpin> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.local_addr()).await?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

async fn read_all(mut stream: impl AsyncRead + Unpin) -> String {
    let mut answer = Vec::new();
    // A TLS peer that closes without close_notify ends the read with an error; what came
    // before it counts.
    let _ = tokio::time::timeout(LONG, stream.read_to_end(&mut answer))
        .await
        .expect("answered and closed in time");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn https_serves_the_guest_page_and_wss_the_registry() {
    let files = certificate("serve");
    let server = server(&files).await;
    assert!(
        server.url().starts_with("wss://127.0.0.1:"),
        "{}",
        server.url()
    );

    let mut tls = tls_to(&server, &files.der).await.expect("handshake");
    tls.write_all(b"GET /r/standup HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let answer = read_all(tls).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("<title>guest</title>"), "{answer}");

    // The WebSocket upgrade over the same TLS port reaches the registry: its hello.
    let mut tls = tls_to(&server, &files.der).await.expect("handshake");
    tls.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("write");
    let mut head = vec![0u8; 4096];
    let mut got = String::new();
    while !got.contains("\"hello\"") {
        let n = tokio::time::timeout(LONG, tls.read(&mut head))
            .await
            .expect("hello in time")
            .expect("read");
        assert!(n > 0, "closed before the hello: {got}");
        got.push_str(&String::from_utf8_lossy(&head[..n]));
    }
    assert!(got.starts_with("HTTP/1.1 101 "), "{got}");
}

#[tokio::test]
async fn plain_http_to_a_tls_port_gets_nothing_and_the_server_goes_on() {
    let files = certificate("plain");
    let server = server(&files).await;
    let mut plain = TcpStream::connect(server.local_addr()).await.expect("tcp");
    plain
        .write_all(b"GET /r/standup HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let answer = read_all(&mut plain).await;
    assert!(!answer.contains("HTTP/1.1 200"), "{answer}");

    // An untrusted certificate is refused by a client that checks it.
    let other = certificate("other");
    assert!(tls_to(&server, &other.der).await.is_err());

    let tls = tls_to(&server, &files.der).await.expect("still serving");
    drop(tls);
}

fn refused(cert: &Path, key: &Path) -> String {
    match Tls::from_pem_files(cert, key) {
        Ok(_) => panic!("{} and {} accepted", cert.display(), key.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unusable_files_say_which_and_why() {
    let files = certificate("bad");
    let other = certificate("bad-other");
    let missing = files.dir.join("missing.pem");
    let error = refused(&missing, &files.key);
    assert!(error.contains("missing.pem"), "{error}");
    // A key where the certificate should be, and a certificate where the key should be.
    let error = refused(&files.key, &files.key);
    assert!(
        error.contains("cert") || error.contains("CERTIFICATE"),
        "{error}"
    );
    let error = refused(&files.cert, &files.cert);
    assert!(error.contains("cert.pem"), "{error}");
    // A key that is not the certificate's.
    assert!(matches!(
        Tls::from_pem_files(&files.cert, &other.key),
        Err(TlsError::Config(_))
    ));
}
