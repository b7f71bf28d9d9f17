//! The DTLS handshake under every link, on a clock of its own: a client and a server
//! endpoint pass datagrams to each other, and a chosen flight of the client's is lost on
//! the way. The handshake must still complete, on both sides, by retransmission; a peer
//! that repeats its own flight in the meantime must not stop ours from being sent again
//! (that stranded the handshake until it failed, ~8 s later, on lossy networks).
#![allow(clippy::disallowed_methods)] // a test bounds its waits on the clock

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::dtls::config::{ConfigBuilder, HandshakeConfig};
use rtc::dtls::crypto::Certificate;
use rtc::dtls::crypto_provider::default_provider;
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::shared::TransportProtocol;

const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4444);
const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4445);

fn config(is_client: bool) -> Arc<HandshakeConfig> {
    let provider = default_provider().expect("a crypto provider");
    let certificate =
        Certificate::generate_self_signed(vec!["plenum".to_owned()], provider.crypto())
            .expect("a certificate");
    let built = ConfigBuilder::default()
        .with_crypto_provider(provider)
        .with_insecure_skip_verify(true)
        .with_certificates(vec![certificate])
        .build(is_client, None)
        .expect("a handshake config");
    Arc::new(built)
}

/// How a handshake went: whether each side completed, at which simulated time, and how
/// many datagrams were lost.
#[derive(Debug)]
struct Outcome {
    client_done: Option<Duration>,
    server_done: Option<Duration>,
    failed: Option<String>,
    lost: usize,
}

/// One way across the simulated link.
const LATENCY: Duration = Duration::from_millis(1);

/// Runs one handshake on a simulated clock for at most `budget`, each datagram taking
/// [`LATENCY`]; the client's sends are numbered by flush (each flush is what it sent in
/// reply to one thing), and the flushes named in `lose` never arrive. A datagram read at
/// the instant a timer is due is read first: handling it takes time.
fn handshake(lose: &[usize], budget: Duration) -> Outcome {
    let start = Instant::now();
    let mut now = start;
    let mut client = Endpoint::new(CLIENT, TransportProtocol::UDP, None);
    let mut server = Endpoint::new(SERVER, TransportProtocol::UDP, Some(config(false)));
    client
        .connect(now, SERVER, config(true), None)
        .expect("connect");
    let mut outcome = Outcome {
        client_done: None,
        server_done: None,
        failed: None,
        lost: 0,
    };
    // Datagrams on the way: when they arrive, whether at the server, and the bytes.
    let mut wire: Vec<(Instant, bool, BytesMut)> = Vec::new();
    let mut flush = 0;
    while now - start <= budget {
        let sent: Vec<BytesMut> = std::iter::from_fn(|| client.poll_transmit())
            .map(|t| t.message)
            .collect();
        if !sent.is_empty() {
            flush += 1;
            if lose.contains(&flush) {
                outcome.lost += sent.len();
            } else {
                wire.extend(sent.into_iter().map(|d| (now + LATENCY, true, d)));
            }
        }
        while let Some(t) = server.poll_transmit() {
            wire.push((now + LATENCY, false, t.message));
        }
        if outcome.failed.is_some()
            || (outcome.client_done.is_some() && outcome.server_done.is_some())
        {
            return outcome;
        }
        let timers = [client.poll_timeout(&SERVER), server.poll_timeout(&CLIENT)];
        let arrival = wire.iter().map(|(at, _, _)| *at).min();
        let Some(next) = timers.into_iter().flatten().chain(arrival).min() else {
            outcome.failed = Some("both sides wait for nothing: the handshake is stuck".into());
            return outcome;
        };
        now = now.max(next);
        if arrival == Some(next) {
            // Everything arriving now, in the order it was sent; timers wait.
            let (due, later): (Vec<_>, Vec<_>) = wire.drain(..).partition(|(at, _, _)| *at <= now);
            wire = later;
            for (_, to_server, datagram) in due {
                let (side, from, done, name) = if to_server {
                    (&mut server, CLIENT, &mut outcome.server_done, "server")
                } else {
                    (&mut client, SERVER, &mut outcome.client_done, "client")
                };
                match side.read(now, from, None, datagram) {
                    Ok(events) => {
                        if events
                            .iter()
                            .any(|e| matches!(e, EndpointEvent::HandshakeComplete))
                        {
                            *done = Some(now - start);
                        }
                    }
                    Err(e) => outcome.failed = Some(format!("{name} read: {e}")),
                }
            }
            continue;
        }
        if timers[0].is_some_and(|at| at <= now)
            && let Err(e) = client.handle_timeout(SERVER, now)
        {
            outcome.failed = Some(format!("client timer: {e}"));
        }
        if timers[1].is_some_and(|at| at <= now)
            && let Err(e) = server.handle_timeout(CLIENT, now)
        {
            outcome.failed = Some(format!("server timer: {e}"));
        }
    }
    outcome
}

#[test]
fn a_handshake_without_loss_completes_at_once() {
    let o = handshake(&[], Duration::from_secs(30));
    assert_eq!(o.failed, None);
    // Flights 1 to 6, one way each: six crossings of the link.
    let done = o.client_done.zip(o.server_done);
    assert_eq!(done, Some((LATENCY * 6, LATENCY * 5)), "{o:?}");
}

#[test]
fn each_lost_client_flight_is_sent_again() {
    // Flushes 1, 2 and 3 are the client's flights 1, 3 and 5 (ClientHello, ClientHello
    // with the cookie, then its certificate, key exchange and Finished).
    for flight in 1..=3 {
        let o = handshake(&[flight], Duration::from_secs(30));
        assert!(o.lost > 0, "flush {flight} lost nothing: {o:?}");
        assert_eq!(o.failed, None, "client flush {flight} lost: {o:?}");
        let (Some(client), Some(server)) = (o.client_done, o.server_done) else {
            panic!("client flush {flight} lost and the handshake did not complete: {o:?}");
        };
        // One retransmission interval (1 s) or two, not the whole retransmission budget.
        assert!(
            client <= Duration::from_secs(3) && server <= Duration::from_secs(3),
            "client flush {flight} lost: done at {client:?} and {server:?}"
        );
    }
}

#[test]
fn the_last_client_flight_lost_twice_is_sent_a_third_time() {
    // Flight 5 and its first retransmission are lost while the server keeps repeating
    // flight 4 at the client.
    let o = handshake(&[3, 4], Duration::from_secs(30));
    assert_eq!(o.failed, None, "{o:?}");
    assert!(o.client_done.is_some() && o.server_done.is_some(), "{o:?}");
}
