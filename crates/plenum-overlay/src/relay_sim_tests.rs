// Tests take one real instant as the origin of their virtual clock, then only add to it.
#![allow(clippy::disallowed_methods)]

//! Relay networks as the engine runs them, simulated on a virtual clock.

/// Relay peers as the engine runs them, on a virtual clock: a link opens only after its
/// negotiation (offer, answer, ICE) and closes at the far end a while after the near end
/// closed it; link requests and negotiation go through a signaling server while it is up
/// and over the relay network once it is killed (as `driver.rs` does); an application
/// sends to its peers. Every delay comes from the seed, so a failing run is replayed by it.
mod sim {
    use super::super::*;

    /// Negotiation between two engines: the offer names the link it opens.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Nego {
        Offer(u64),
        Answer(u64),
    }

    impl Nego {
        fn encode(self) -> Vec<u8> {
            let (tag, session) = match self {
                Nego::Offer(s) => (0u8, s),
                Nego::Answer(s) => (1, s),
            };
            let mut out = vec![tag];
            out.extend_from_slice(&session.to_be_bytes());
            out
        }

        fn decode(data: &[u8]) -> Option<Self> {
            let (tag, rest) = data.split_first()?;
            let session = u64::from_be_bytes(rest.try_into().ok()?);
            match tag {
                0 => Some(Nego::Offer(session)),
                1 => Some(Nego::Answer(session)),
                _ => None,
            }
        }
    }

    #[derive(Debug)]
    enum Event {
        /// A relay message arrives over the link `session`.
        Msg {
            to: PeerId,
            from: PeerId,
            session: u64,
            msg: RelayMsg,
        },
        /// A heartbeat arrives over the link `session`.
        Beat {
            to: PeerId,
            from: PeerId,
            session: u64,
        },
        /// Negotiation arrives through the server.
        Nego {
            to: PeerId,
            from: PeerId,
            nego: Nego,
        },
        /// A link request arrives through the server.
        Ask {
            to: PeerId,
            from: PeerId,
            degree: u8,
        },
        /// ICE is done: the link opens if both ends still hold it.
        Ice { a: PeerId, b: PeerId, session: u64 },
        /// The far end closed the link `session`.
        Closed {
            to: PeerId,
            from: PeerId,
            session: u64,
        },
    }

    /// An engine's link to one peer.
    #[derive(Debug, Clone, Copy)]
    struct Link {
        session: u64,
        offering: bool,
        open: bool,
    }

    struct Peer {
        relay: RelayNode,
        wake: Instant,
        ticked: Option<Instant>,
        links: BTreeMap<PeerId, Link>,
        /// Peers our relay node asked a link with (the engine answers only their offers).
        roster: BTreeSet<PeerId>,
        /// Negotiation from peers not in the roster yet.
        early: BTreeMap<PeerId, Vec<Nego>>,
    }

    pub(super) struct Sim {
        pub(super) t0: Instant,
        pub(super) now: Instant,
        rng: u64,
        max: usize,
        server: bool,
        /// Per mille of closes that the far end notices only seconds later.
        pub(super) slow_close: u64,
        peers: BTreeMap<PeerId, Peer>,
        queue: BTreeMap<(Instant, u64), Event>,
        next_event: u64,
        next_session: u64,
        next_id: u64,
        /// Open links by session, with their ends.
        open: BTreeMap<u64, (PeerId, PeerId)>,
        /// Every link opened (true) or closed (false), once per link, with when.
        pub(super) link_events: Vec<(Instant, PeerId, PeerId, bool)>,
        /// The application's sends by nonce: from, to, when.
        pub(super) sent: BTreeMap<u64, (PeerId, PeerId, Instant)>,
        seqs: BTreeMap<(PeerId, u64), u64>,
        /// Sends delivered, with the hops they made.
        pub(super) delivered: BTreeMap<u64, u8>,
        /// Sends reported unreachable: nonce, when.
        pub(super) unreachable: Vec<(u64, Instant)>,
        /// Links reported failed: who asked, for whom, when.
        pub(super) failed: Vec<(PeerId, PeerId, Instant)>,
        next_nonce: u64,
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    impl Sim {
        pub(super) fn new(max: usize, seed: u64) -> Self {
            let t0 = Instant::now();
            Self {
                t0,
                now: t0,
                rng: seed ^ 0x5151_5eed,
                max,
                server: true,
                slow_close: 50,
                peers: BTreeMap::new(),
                queue: BTreeMap::new(),
                next_event: 0,
                next_session: 1,
                next_id: seed.wrapping_mul(1000),
                open: BTreeMap::new(),
                link_events: Vec::new(),
                sent: BTreeMap::new(),
                seqs: BTreeMap::new(),
                delivered: BTreeMap::new(),
                unreachable: Vec::new(),
                failed: Vec::new(),
                next_nonce: 1,
            }
        }

        fn random(&mut self, lo: u64, hi: u64) -> u64 {
            lo + crate::splitmix64(&mut self.rng) % (hi - lo + 1)
        }

        fn at(&mut self, delay: Duration, event: Event) {
            self.next_event += 1;
            self.queue
                .insert((self.now + delay, self.next_event), event);
        }

        fn link_delay(&mut self) -> Duration {
            ms(self.random(2, 30))
        }

        fn server_delay(&mut self) -> Duration {
            ms(self.random(10, 80))
        }

        /// A peer joins: the server hands it a sample of the room.
        pub(super) fn join(&mut self) -> PeerId {
            self.next_id = self.next_id.wrapping_add(1);
            let me = rid(self.next_id);
            let config = RelayConfig::builder()
                .max_neighbours(self.max)
                .build()
                .unwrap();
            let mut relay = RelayNode::new(me.clone(), config, self.now, self.next_id).unwrap();
            for peer in welcome_sample(self.peers.keys(), &me, 8, 8, self.next_id) {
                relay.handle_input(Input::PeerAppeared {
                    peer,
                    origin: Appearance::Roster,
                    now: self.now,
                });
            }
            let peer = Peer {
                relay,
                wake: self.now,
                ticked: None,
                links: BTreeMap::new(),
                roster: BTreeSet::new(),
                early: BTreeMap::new(),
            };
            self.peers.insert(me.clone(), peer);
            me
        }

        pub(super) fn ids(&self) -> Vec<PeerId> {
            self.peers.keys().cloned().collect()
        }

        pub(super) fn kill_server(&mut self) {
            self.server = false;
        }

        pub(super) fn relay(&mut self, id: &PeerId) -> &mut RelayNode {
            &mut self.peers.get_mut(id).unwrap().relay
        }

        /// The application of `from` sends to `to`.
        pub(super) fn send(&mut self, from: &PeerId, to: &PeerId) -> u64 {
            let nonce = self.next_nonce;
            self.next_nonce += 1;
            let seq = self
                .relay(from)
                .send(to.clone(), nonce.to_be_bytes().to_vec())
                .unwrap();
            self.seqs.insert((from.clone(), seq), nonce);
            self.sent
                .insert(nonce, (from.clone(), to.clone(), self.now));
            nonce
        }

        /// Links open at both ends.
        pub(super) fn links(&self) -> BTreeSet<(PeerId, PeerId)> {
            self.open
                .values()
                .map(|(a, b)| (a.min(b).clone(), a.max(b).clone()))
                .collect()
        }

        pub(super) fn linked(&self, a: &PeerId, b: &PeerId) -> bool {
            self.links().contains(&(a.min(b).clone(), a.max(b).clone()))
        }

        /// Whether the open links join every peer into one network.
        pub(super) fn connected(&self) -> bool {
            let links = self.links();
            let Some(first) = self.peers.keys().next() else {
                return true;
            };
            let mut reached = BTreeSet::new();
            let mut stack = vec![first.clone()];
            while let Some(p) = stack.pop() {
                if reached.insert(p.clone()) {
                    for (a, b) in &links {
                        if *a == p {
                            stack.push(b.clone());
                        } else if *b == p {
                            stack.push(a.clone());
                        }
                    }
                }
            }
            reached.len() == self.peers.len()
        }

        /// Links opened (`up`) or closed from `since` on.
        pub(super) fn changes_since(&self, since: Instant, up: bool) -> usize {
            self.link_events
                .iter()
                .filter(|(at, _, _, u)| *at >= since && *u == up)
                .count()
        }

        /// How many links `peer`'s relay node holds.
        pub(super) fn degree(&self, peer: &PeerId) -> usize {
            self.peers[peer].relay.neighbours().len()
        }

        /// The relay nodes' neighbours: within the bound, both ends agreeing.
        pub(super) fn check_neighbours(&self) {
            for (me, p) in &self.peers {
                let n = p.relay.neighbours();
                assert!(n.len() <= self.max, "{me:?} has {} neighbours", n.len());
                for peer in &n {
                    assert!(
                        self.peers[peer].relay.neighbours().contains(me),
                        "{me:?} and {peer:?} disagree"
                    );
                }
            }
        }

        /// Runs until `d` from now.
        pub(super) fn run_for(&mut self, d: Duration) {
            let until = self.now + d;
            loop {
                self.carry_all();
                let wakes = self.peers.values().map(|p| match p.ticked {
                    Some(t) => p.wake.max(t + ms(1)),
                    None => p.wake,
                });
                let queued = self.queue.keys().next().map(|(at, _)| *at);
                let Some(next) = wakes.chain(queued).min() else {
                    break;
                };
                if next > until {
                    break;
                }
                self.now = self.now.max(next);
                let now = self.now;
                while let Some(entry) = self.queue.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let event = entry.remove();
                    self.handle(event);
                }
                let due: Vec<PeerId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.wake <= now && p.ticked != Some(now))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in due {
                    let p = self.peers.get_mut(&id).unwrap();
                    p.ticked = Some(now);
                    p.relay.handle_input(Input::Tick { now });
                }
            }
            self.now = until;
            self.carry_all();
        }

        /// Carries out what the relay nodes ask until none asks more.
        fn carry_all(&mut self) {
            loop {
                let mut any = false;
                for id in self.ids() {
                    let mut outs = Vec::new();
                    let p = self.peers.get_mut(&id).unwrap();
                    loop {
                        match p.relay.poll_output() {
                            RelayOutput::Timeout(at) => {
                                p.wake = at;
                                break;
                            }
                            o => outs.push(o),
                        }
                    }
                    any |= !outs.is_empty();
                    for o in outs {
                        self.carry(&id, o);
                    }
                }
                if !any {
                    return;
                }
            }
        }

        fn session(&self, me: &PeerId, peer: &PeerId) -> Option<u64> {
            self.peers[me]
                .links
                .get(peer)
                .filter(|l| l.open)
                .map(|l| l.session)
        }

        /// What the engine does with one output of `me`'s relay node.
        fn carry(&mut self, me: &PeerId, o: RelayOutput) {
            match o {
                RelayOutput::Connect { peer, initiate } => {
                    let p = self.peers.get_mut(me).unwrap();
                    p.roster.insert(peer.clone());
                    let early = p.early.remove(&peer).unwrap_or_default();
                    if initiate {
                        self.offer(me, &peer);
                    }
                    for nego in early {
                        self.negotiate(me, &peer, nego);
                    }
                }
                RelayOutput::Disconnect { peer } => {
                    let p = self.peers.get_mut(me).unwrap();
                    p.roster.remove(&peer);
                    if let Some(old) = p.links.remove(&peer) {
                        self.close(me, &peer, old);
                    }
                }
                RelayOutput::Heartbeat { peer } => {
                    if let Some(session) = self.session(me, &peer) {
                        let d = self.link_delay();
                        let from = me.clone();
                        self.at(
                            d,
                            Event::Beat {
                                to: peer,
                                from,
                                session,
                            },
                        );
                    }
                }
                RelayOutput::Send { peer, msg } => {
                    if let Some(session) = self.session(me, &peer) {
                        // Through the wire format, as the engine sends it.
                        let msg = RelayMsg::from_envelope(&msg.to_envelope()).unwrap();
                        let d = self.link_delay();
                        let from = me.clone();
                        self.at(
                            d,
                            Event::Msg {
                                to: peer,
                                from,
                                session,
                                msg,
                            },
                        );
                    }
                }
                RelayOutput::SignalLink { peer, degree } => {
                    if self.server {
                        let d = self.server_delay();
                        let from = me.clone();
                        self.at(
                            d,
                            Event::Ask {
                                to: peer,
                                from,
                                degree,
                            },
                        );
                    } else if !self.peers[me].relay.neighbours().is_empty() {
                        self.relay(me).ask_over_network(peer, degree);
                    }
                    // Else held for a server that does not come back.
                }
                RelayOutput::Deliver { data, hops, .. } => {
                    let nonce = u64::from_be_bytes(data[..8].try_into().unwrap());
                    let before = self.delivered.insert(nonce, hops);
                    assert!(before.is_none(), "send {nonce} delivered twice");
                }
                RelayOutput::Signal { origin, data } => {
                    if let Some(nego) = Nego::decode(&data) {
                        self.negotiation(me, &origin, nego);
                    }
                }
                RelayOutput::LinkFailed { peer } => {
                    self.failed.push((me.clone(), peer, self.now));
                }
                RelayOutput::Unreachable { seq, .. } => {
                    if let Some(nonce) = self.seqs.get(&(me.clone(), seq)) {
                        self.unreachable.push((*nonce, self.now));
                    }
                }
                _ => {}
            }
        }

        /// Negotiation for `me` from `from`: taken up if our relay node asked for the
        /// link, held until it does otherwise.
        fn negotiation(&mut self, me: &PeerId, from: &PeerId, nego: Nego) {
            let p = self.peers.get_mut(me).unwrap();
            if p.roster.contains(from) {
                self.negotiate(me, from, nego);
            } else {
                let held = p.early.entry(from.clone()).or_default();
                held.push(nego);
                if held.len() > 8 {
                    held.remove(0);
                }
            }
        }

        fn signal(&mut self, me: &PeerId, to: &PeerId, nego: Nego) {
            if self.server {
                let d = self.server_delay();
                let (to, from) = (to.clone(), me.clone());
                self.at(d, Event::Nego { to, from, nego });
            } else if !self.peers[me].relay.neighbours().is_empty() {
                // Without the server the relay network carries it.
                self.relay(me)
                    .send_signal(to.clone(), nego.encode())
                    .unwrap();
            }
        }

        /// A new link to `peer` in place of any old one.
        fn replace(&mut self, me: &PeerId, peer: &PeerId, link: Link) {
            let p = self.peers.get_mut(me).unwrap();
            if let Some(old) = p.links.insert(peer.clone(), link) {
                self.close(me, peer, old);
            }
        }

        fn offer(&mut self, me: &PeerId, peer: &PeerId) {
            let session = self.next_session;
            self.next_session += 1;
            let link = Link {
                session,
                offering: true,
                open: false,
            };
            self.replace(me, peer, link);
            self.signal(me, peer, Nego::Offer(session));
        }

        fn negotiate(&mut self, me: &PeerId, from: &PeerId, nego: Nego) {
            let ours = self.peers[me].links.get(from).copied();
            match nego {
                Nego::Offer(session) => {
                    let polite = me > from;
                    if ours.is_some_and(|l| l.offering) && !polite {
                        return;
                    }
                    let link = Link {
                        session,
                        offering: false,
                        open: false,
                    };
                    self.replace(me, from, link);
                    self.signal(me, from, Nego::Answer(session));
                }
                Nego::Answer(session) => match ours {
                    Some(l) if l.offering && l.session == session => {
                        let p = self.peers.get_mut(me).unwrap();
                        p.links.get_mut(from).unwrap().offering = false;
                        let d = ms(self.random(150, 1500));
                        let (a, b) = (me.clone(), from.clone());
                        self.at(d, Event::Ice { a, b, session });
                    }
                    Some(l) if l.offering => {
                        // An answer to an older offer: the engine fails the link.
                        let now = self.now;
                        let peer = from.clone();
                        self.relay(me).handle_input(Input::LinkDown { peer, now });
                    }
                    _ => {}
                },
            }
        }

        /// `me` closes its end of `link` to `peer`; the far end hears of it later.
        fn close(&mut self, me: &PeerId, peer: &PeerId, link: Link) {
            if link.open && self.open.remove(&link.session).is_some() {
                self.link_events
                    .push((self.now, me.clone(), peer.clone(), false));
            }
            let d = if self.random(0, 999) < self.slow_close {
                ms(self.random(2000, 6000))
            } else {
                ms(self.random(20, 300))
            };
            let (to, from) = (peer.clone(), me.clone());
            self.at(
                d,
                Event::Closed {
                    to,
                    from,
                    session: link.session,
                },
            );
        }

        fn handle(&mut self, event: Event) {
            let now = self.now;
            match event {
                Event::Msg {
                    to,
                    from,
                    session,
                    msg,
                } => {
                    if self.session(&to, &from) == Some(session) {
                        self.relay(&to).handle_msg(from, msg, now);
                    }
                }
                Event::Beat { to, from, session } => {
                    if self.session(&to, &from) == Some(session) {
                        self.relay(&to)
                            .handle_input(Input::Heard { peer: from, now });
                    }
                }
                Event::Nego { to, from, nego } => self.negotiation(&to, &from, nego),
                Event::Ask { to, from, degree } => self.relay(&to).link_requested(from, degree),
                Event::Ice { a, b, session } => {
                    let holds = |s: &Self, x: &PeerId, y: &PeerId| {
                        s.peers[x]
                            .links
                            .get(y)
                            .is_some_and(|l| l.session == session && !l.open)
                    };
                    if holds(self, &a, &b) && holds(self, &b, &a) {
                        for (x, y) in [(&a, &b), (&b, &a)] {
                            let p = self.peers.get_mut(x).unwrap();
                            p.links.get_mut(y).unwrap().open = true;
                        }
                        self.open.insert(session, (a.clone(), b.clone()));
                        self.link_events.push((now, a.clone(), b.clone(), true));
                        let peer = a.clone();
                        self.relay(&b).handle_input(Input::LinkUp { peer, now });
                        self.relay(&a).handle_input(Input::LinkUp { peer: b, now });
                    }
                }
                Event::Closed { to, from, session } => {
                    let p = self.peers.get_mut(&to).unwrap();
                    if let Some(l) = p.links.get_mut(&from)
                        && l.session == session
                        && l.open
                    {
                        l.open = false;
                        if self.open.remove(&session).is_some() {
                            self.link_events
                                .push((now, to.clone(), from.clone(), false));
                        }
                        self.relay(&to)
                            .handle_input(Input::LinkDown { peer: from, now });
                    }
                }
            }
        }
    }
}

/// The relay network as the engine runs it (`sim`): it forms, settles and stays one
/// network, and takes a link an application asks for once its server is gone.
mod simulated {
    use super::super::*;
    use super::sim::Sim;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    /// As many peers as the binary test at two neighbours had re-linking for 25 s.
    const PEERS: usize = 8;

    /// By then the ten-peer binary test's network was still re-linking (20-50 link events
    /// every 5 s) and its sends found no way between 12-16 of the 56 pairs.
    const SETTLE: Duration = Duration::from_secs(20);

    /// How long a network is watched after that.
    const WATCH: Duration = Duration::from_secs(30);

    /// Peers join a fraction of a second apart; each application sends to every peer it
    /// has not reached yet every two seconds (as the ten-peer binary test does), until
    /// `until` from the start.
    fn grow(sim: &mut Sim, peers: usize, until: Duration) {
        for i in 0..peers {
            sim.join();
            sim.run_for(Duration::from_millis(100 + 37 * (i as u64 % 7)));
        }
        let mut reached: BTreeSet<(PeerId, PeerId)> = BTreeSet::new();
        while sim.now < sim.t0 + until {
            let ids = sim.ids();
            for a in &ids {
                for b in &ids {
                    if a != b && !reached.contains(&(a.clone(), b.clone())) {
                        sim.send(a, b);
                    }
                }
            }
            sim.run_for(Duration::from_secs(2));
            for n in sim.delivered.keys() {
                let (a, b, _) = &sim.sent[n];
                reached.insert((a.clone(), b.clone()));
            }
        }
    }

    /// Every application sends to every other peer every two seconds for `d`: the sends,
    /// and whether the links joined every peer at each of those instants.
    fn traffic(sim: &mut Sim, d: Duration) -> (Vec<u64>, bool) {
        let (mut sent, mut joined) = (Vec::new(), true);
        let until = sim.now + d;
        while sim.now < until {
            let ids = sim.ids();
            for a in &ids {
                for b in &ids {
                    if a != b {
                        sent.push(sim.send(a, b));
                    }
                }
            }
            sim.run_for(Duration::from_secs(2));
            joined &= sim.connected();
        }
        (sent, joined)
    }

    /// `PEERS` peers at `max` neighbours grow for `SETTLE`. Over the next `WATCH`, under
    /// traffic, at most two links are replaced (four link events: a straggler of the
    /// forming, as a path closing into a ring is). Over the `WATCH` after that nothing
    /// changes at all, the links join every peer throughout, every send arrives exactly
    /// once, and the bound holds with both ends agreeing.
    fn settles(max: usize, seed: u64, slow_close: u64) {
        let mut sim = Sim::new(max, seed);
        sim.slow_close = slow_close;
        grow(&mut sim, PEERS, SETTLE);
        let at = format!("seed {seed}, {max} neighbours, {slow_close}‰ slow closes");
        let settled = sim.now;
        traffic(&mut sim, WATCH);
        let changes = sim.changes_since(settled, false) + sim.changes_since(settled, true);
        assert!(
            changes <= 4,
            "{changes} link events in the {WATCH:?} after {SETTLE:?} ({at})"
        );
        let quiet = sim.now;
        let (sent, joined) = traffic(&mut sim, WATCH);
        let changes = sim.changes_since(quiet, false) + sim.changes_since(quiet, true);
        assert_eq!(
            changes,
            0,
            "links still change after {:?} ({at})",
            SETTLE + WATCH
        );
        assert!(joined, "the network is split ({at})");
        let lost = sent
            .iter()
            .filter(|n| !sim.delivered.contains_key(n))
            .count();
        assert_eq!(lost, 0, "sends lost in a settled network ({at})");
        sim.check_neighbours();
    }

    /// The server is killed; then a peer's application asks for a link to a peer it is
    /// not linked to (a full one where there is one, as r2 was in the binary test, from a
    /// full one where there is one). The link forms, its negotiation carried over the
    /// network, within the binary test's patience; both ends make room for it so that the
    /// bound holds, and the network stays one; the next send crosses it in one hop.
    fn links_without_server(max: usize, seed: u64) {
        let mut sim = Sim::new(max, seed);
        grow(&mut sim, PEERS, SETTLE + WATCH);
        sim.kill_server();
        let ids = sim.ids();
        let mut pairs: Vec<(usize, PeerId, PeerId)> = Vec::new();
        for a in &ids {
            for b in &ids {
                if a != b && !sim.linked(a, b) {
                    let full = |p: &PeerId| usize::from(sim.degree(p) >= max);
                    pairs.push((full(a) + full(b), a.clone(), b.clone()));
                }
            }
        }
        let most = pairs
            .iter()
            .map(|(f, ..)| *f)
            .max()
            .expect("an unlinked pair");
        pairs.retain(|(f, ..)| *f == most);
        let (_, a, b) = pairs[(seed % pairs.len() as u64) as usize].clone();
        sim.relay(&a).connect(b.clone());
        sim.run_for(WATCH * 2);
        let at = format!("seed {seed}, {max} neighbours, both full: {}", most == 2);
        assert!(
            sim.failed.is_empty(),
            "reported failed: {:?} ({at})",
            sim.failed
        );
        assert!(sim.linked(&a, &b), "the requested link did not form ({at})");
        assert!(sim.connected(), "the network split making room ({at})");
        sim.check_neighbours();
        let n = sim.send(&a, &b);
        sim.run_for(Duration::from_secs(2));
        assert_eq!(
            sim.delivered.get(&n),
            Some(&1),
            "not over the new link ({at})"
        );
    }

    proptest! {
        // The same cases every run (a seed that fails is replayed by it, and CI is not
        // at the mercy of a draw); change the seed to explore others.
        #![proptest_config(ProptestConfig {
            cases: 12,
            rng_seed: RngSeed::Fixed(0x05e7_71e5),
            ..ProptestConfig::default()
        })]

        /// Any seed (every delay and id), two neighbours or the default, up to 15 % of
        /// closed links noticed at the far end only seconds later.
        #[test]
        fn relay_peers_settle_into_one_network_and_stay(
            seed in any::<u64>(),
            max in prop_oneof![Just(2usize), Just(20)],
            slow_close in 0u64..150,
        ) {
            settles(max, seed, slow_close);
        }

        #[test]
        fn a_requested_link_forms_without_the_server_and_full_ends_make_room(
            seed in any::<u64>(),
            max in prop_oneof![Just(2usize), Just(3), Just(20)],
        ) {
            links_without_server(max, seed);
        }
    }

    /// The binary test's case: eight peers at two neighbours, which kept re-linking past
    /// `SETTLE` and lost sends (each of these seeds did before the fix).
    #[test]
    fn eight_peers_at_two_neighbours_stop_relinking() {
        for seed in 0..8 {
            settles(2, seed, 50);
        }
    }

    /// ... and after their server is killed, a link one asks for to a full peer forms.
    #[test]
    fn a_full_peer_makes_room_for_a_requested_link_without_the_server() {
        for seed in 0..8 {
            links_without_server(2, seed);
        }
    }
}
