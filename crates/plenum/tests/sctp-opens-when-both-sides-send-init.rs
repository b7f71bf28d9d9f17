//! The SCTP association under every data channel, when both sides send INIT at once. A
//! browser does, whatever its DTLS role; when we are the DTLS client our endpoint takes no
//! association of its own (it has no server configuration), and its INIT was refused
//! ("refusing first packet due to empty server_config"): the association opened only
//! because the browser, in its turn, answered our INIT. RFC 4960 section 5.2.1 has an
//! endpoint in COOKIE-WAIT answer the peer's INIT with an INIT ACK from the association it
//! began. Two such endpoints, each initiating and neither taking associations, must open
//! one association between them, on a clock of their own. And the browser's INIT can come
//! before ours is begun at all (it overtakes the DTLS handshake's completion on our side):
//! it is held and answered by the association we then begin.
#![allow(clippy::disallowed_methods)] // the simulated clock starts from the real one

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::sctp::{
    Association, AssociationHandle, ClientConfig, DatagramEvent, Endpoint, EndpointConfig, Event,
    Payload, ServerConfig, TransportConfig,
};
use rtc::shared::TransportProtocol;

const A: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000);
const B: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5001);

/// One side: its endpoint and the association it began (or was given).
struct Side {
    addr: SocketAddr,
    endpoint: Endpoint,
    associations: Vec<(AssociationHandle, Association)>,
    connected: bool,
    /// INITs of the peer this side refused (an INIT that reaches no association).
    ignored: usize,
    /// INIT ACKs this side sent (SCTP packets whose first chunk is one).
    init_acks_sent: usize,
}

impl Side {
    fn new(
        addr: SocketAddr,
        accepts: bool,
        initiates_to: Option<SocketAddr>,
        now: Instant,
    ) -> Self {
        let server = accepts.then(|| Arc::new(ServerConfig::new(TransportConfig::default())));
        let mut endpoint = Endpoint::new(
            addr,
            TransportProtocol::UDP,
            Arc::new(EndpointConfig::default()),
            server,
        );
        let associations = initiates_to
            .map(|peer| {
                endpoint
                    .connect(now, ClientConfig::new(TransportConfig::default()), peer)
                    .expect("connect")
            })
            .into_iter()
            .collect();
        Self {
            addr,
            endpoint,
            associations,
            connected: false,
            ignored: 0,
            init_acks_sent: 0,
        }
    }

    /// What the side's associations send now.
    fn transmit(&mut self, now: Instant) -> Vec<Bytes> {
        let mut out = Vec::new();
        for (_, association) in &mut self.associations {
            while let Some(t) = association.poll_transmit(now) {
                if let Payload::RawEncode(contents) = t.message {
                    out.extend(contents);
                }
            }
        }
        /// The chunk type of an INIT ACK, first after the 12-byte common header.
        const INIT_ACK: u8 = 2;
        self.init_acks_sent += out.iter().filter(|d| d.get(12) == Some(&INIT_ACK)).count();
        out
    }

    fn receive(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        match self.endpoint.handle(now, from, None, datagram) {
            Some((ch, DatagramEvent::NewAssociation(association))) => {
                self.associations.push((ch, association));
            }
            Some((ch, DatagramEvent::AssociationEvent(event))) => {
                if let Some((_, association)) = self.associations.iter_mut().find(|(h, _)| *h == ch)
                {
                    association.handle_event(event);
                }
            }
            Some(_) | None => self.ignored += 1,
        }
    }

    fn poll(&mut self, now: Instant) {
        for (_, association) in &mut self.associations {
            while let Some(event) = association.poll() {
                if matches!(event, Event::Connected) {
                    self.connected = true;
                }
            }
            if association.poll_timeout().is_some_and(|at| at <= now) {
                association.handle_timeout(now);
            }
        }
    }
}

/// Runs both sides, each INIT leaving before either side hears the other's, until both
/// are connected or `limit` of simulated time has passed.
fn open(mut a: Side, mut b: Side, start: Instant, limit: Duration) -> (Side, Side, Duration) {
    let mut now = start;
    let mut wire: VecDeque<(SocketAddr, SocketAddr, Bytes)> = VecDeque::new();
    while now.duration_since(start) < limit && !(a.connected && b.connected) {
        // Both INITs are on the wire before either is read: a true collision.
        for datagram in a.transmit(now) {
            wire.push_back((a.addr, b.addr, datagram));
        }
        for datagram in b.transmit(now) {
            wire.push_back((b.addr, a.addr, datagram));
        }
        while let Some((from, to, datagram)) = wire.pop_front() {
            if to == b.addr {
                b.receive(now, from, datagram);
            } else {
                a.receive(now, from, datagram);
            }
        }
        a.poll(now);
        b.poll(now);
        now += Duration::from_millis(10);
    }
    (a, b, now.duration_since(start))
}

#[test]
fn two_endpoints_that_both_initiate_open_one_association_on_the_first_exchange() {
    let now = Instant::now();
    let a = Side::new(A, false, Some(B), now);
    let b = Side::new(B, false, Some(A), now);
    let (a, b, took) = open(a, b, now, Duration::from_secs(10));
    assert!(a.connected && b.connected, "not open after {took:?}");
    assert_eq!(
        (a.ignored, b.ignored),
        (0, 0),
        "an INIT was refused instead of answered"
    );
    assert_eq!((a.associations.len(), b.associations.len()), (1, 1));
    // Opened by the first exchange, not by a retransmitted INIT (T1-init is 1 s or more).
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[test]
fn an_endpoint_that_takes_associations_still_makes_its_own_for_an_init() {
    // The DTLS server's side, as before: it begins nothing and takes the client's INIT.
    let now = Instant::now();
    let client = Side::new(A, false, Some(B), now);
    let server = Side::new(B, true, None, now);
    let (client, server, took) = open(client, server, now, Duration::from_secs(10));
    assert!(
        client.connected && server.connected,
        "not open after {took:?}"
    );
    assert_eq!(server.associations.len(), 1);
}

#[test]
fn an_init_that_comes_before_our_association_begins_is_answered_by_it() {
    let now = Instant::now();
    // B (the browser, DTLS server) begins first; A (us, DTLS client) has not yet heard
    // that its handshake is complete, so it has no association when B's INIT comes.
    let mut a = Side::new(A, false, None, now);
    let mut b = Side::new(B, false, Some(A), now);
    for datagram in b.transmit(now) {
        a.receive(now, B, datagram);
    }
    assert!(a.associations.is_empty());
    assert_eq!(a.ignored, 1, "the early INIT begins nothing by itself");
    a.ignored = 0;
    // Now A begins its association, as the handshake's completion has it do.
    let begun = a
        .endpoint
        .connect(now, ClientConfig::new(TransportConfig::default()), B)
        .expect("connect");
    a.associations.push(begun);
    let (a, b, took) = open(a, b, now, Duration::from_secs(10));
    assert!(a.connected && b.connected, "not open after {took:?}");
    assert_eq!((a.associations.len(), b.associations.len()), (1, 1));
    // Opened at once, not when B's INIT timer (1 s or more) sent it again.
    assert!(took < Duration::from_millis(500), "took {took:?}");
    // B's INIT was answered with an INIT ACK from the association A began.
    assert_eq!(a.init_acks_sent, 1, "B's INIT went unanswered");
    assert_eq!(b.ignored, 0);
}
