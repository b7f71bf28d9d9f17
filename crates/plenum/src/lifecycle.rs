//! A link's life as one state machine: opening, open, down (with its ICE restart), closed.
//! Sans-IO: it is told the time and what the transport did, and says what the driver is to
//! do. The driver owns the WebRTC side ([`crate::link::Link`]) and carries that out.

use std::time::{Duration, Instant};

use crate::types::LinkState;

/// How long an ICE restart may take before it is tried again.
pub(crate) const RESTART_TIMEOUT: Duration = Duration::from_secs(4);
/// How long the side that does not start restarts waits for the other's before it starts
/// one itself.
pub(crate) const RESTART_GRACE: Duration = Duration::from_millis(750);
/// How long after a restart (answered, or back) silence is not held against a link: SCTP
/// retransmits on its backed-off timer, up to several seconds after the path returns.
pub(crate) const SCTP_CATCH_UP: Duration = Duration::from_secs(10);
/// ICE restarts tried before a link is given up and made anew.
pub(crate) const RESTART_TRIES: u32 = 3;

/// What the transport (ICE and DTLS) reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

impl Transport {
    /// As the transport names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Failed => "failed",
            Self::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Negotiating; the data channel is not open yet.
    Opening,
    /// The data channel is open and the path carries it.
    Open,
    /// It was open and the path went away; the session lives on while a restart runs.
    Down,
    /// The data channel closed.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// No restart is under way.
    Idle,
    /// The far side starts restarts; ours starts at `due` if theirs has not come.
    Awaiting { due: Instant },
    /// Ours is under way since `started`.
    Ours { started: Instant },
    /// We answered the far side's at `at`.
    Answering { at: Instant },
}

/// What the driver does after a transport report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reaction {
    Nothing,
    /// The link is back after being down: report `link_up`, ask for keyframes.
    Back,
    /// The path went away. `first`: report `link_down`. `restart`: start our restart now.
    Down {
        first: bool,
        restart: bool,
    },
    /// The link cannot come back: give it up (the topology makes it anew).
    Failed,
}

/// What the time asks of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    /// Start (or retry) our ICE restart.
    Restart,
    /// `tries` restarts did not bring it back: give it up.
    GiveUp {
        tries: u32,
    },
}

/// One link's life. Each method is one transition; nothing else changes it.
#[derive(Debug, Clone)]
pub(crate) struct Lifecycle {
    phase: Phase,
    transport: Transport,
    restart: Restart,
    /// Our restarts since the link was last connected.
    tries: u32,
    /// Silence is not held against the link before this (a restart ran, or it came back).
    shielded_until: Option<Instant>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Self {
            phase: Phase::Opening,
            transport: Transport::Connecting,
            restart: Restart::Idle,
            tries: 0,
            shielded_until: None,
        }
    }

    /// The data channel is open (open or down: the room counts it as linked).
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Down)
    }

    /// Open and its path is up: what a sender can count on.
    pub(crate) fn is_up(&self) -> bool {
        self.phase == Phase::Open
    }

    /// What [`Room::peers`](crate::Room::peers) reports.
    pub(crate) fn state(&self) -> LinkState {
        match (self.phase, self.transport) {
            (Phase::Open, _) => LinkState::Connected,
            (Phase::Down, _) | (_, Transport::Disconnected) => LinkState::Disconnected,
            (_, Transport::Failed) => LinkState::Failed,
            _ => LinkState::Connecting,
        }
    }

    /// The data channel opened. True the first time: the peer joins.
    pub(crate) fn channel_opened(&mut self) -> bool {
        if self.is_open() {
            return false;
        }
        self.phase = Phase::Open;
        true
    }

    /// The data channel closed.
    pub(crate) fn channel_closed(&mut self) {
        self.phase = Phase::Closed;
    }

    /// The transport's state changed. `we_start`: ours is the side that starts restarts
    /// (the other answers, and starts one only if none comes within [`RESTART_GRACE`]).
    pub(crate) fn transport(&mut self, now: Instant, state: Transport, we_start: bool) -> Reaction {
        self.transport = state;
        match state {
            Transport::Connected => {
                self.restart = Restart::Idle;
                self.tries = 0;
                if self.phase != Phase::Down {
                    return Reaction::Nothing;
                }
                self.phase = Phase::Open;
                self.shield(now);
                Reaction::Back
            }
            Transport::Disconnected | Transport::Failed if self.is_open() => {
                // The path is gone, the session is not: restart ICE before giving up.
                let first = self.phase == Phase::Open;
                self.phase = Phase::Down;
                let answering = matches!(self.restart,
                    Restart::Answering { at } if now.duration_since(at) < RESTART_TIMEOUT);
                let idle = !answering && !matches!(self.restart, Restart::Ours { .. });
                if idle && !we_start && !matches!(self.restart, Restart::Awaiting { .. }) {
                    // The far side may not notice (it may still hear us): if its restart
                    // does not come soon, we start one.
                    self.restart = Restart::Awaiting {
                        due: now + RESTART_GRACE,
                    };
                }
                Reaction::Down {
                    first,
                    restart: idle && we_start,
                }
            }
            Transport::Failed | Transport::Closed => Reaction::Failed,
            Transport::Connecting | Transport::Disconnected => Reaction::Nothing,
        }
    }

    /// Our addresses changed: an open link is down at once and restarts. True if this is
    /// news (report `link_down`).
    pub(crate) fn addresses_changed(&mut self) -> bool {
        let first = self.phase == Phase::Open;
        if first {
            self.phase = Phase::Down;
        }
        first
    }

    /// We sent a restart offer. Returns which try it is.
    pub(crate) fn restart_started(&mut self, now: Instant) -> u32 {
        self.tries += 1;
        self.restart = Restart::Ours { started: now };
        self.tries
    }

    /// The far side answered an offer of ours.
    pub(crate) fn answered(&mut self, now: Instant) {
        if matches!(self.restart, Restart::Ours { .. }) {
            self.shield(now);
        }
    }

    /// We answer the far side's restart.
    pub(crate) fn answering_restart(&mut self, now: Instant) {
        self.restart = Restart::Answering { at: now };
        self.shield(now);
    }

    /// Whether silence is excused now (a restart is settling, or the link just came back).
    pub(crate) fn shielded(&self, now: Instant) -> bool {
        self.shielded_until.is_some_and(|until| now < until)
    }

    /// What the time asks: a restart whose grace ran out, one that took too long.
    pub(crate) fn tick(&mut self, now: Instant) -> Due {
        match self.restart {
            Restart::Awaiting { due } if now >= due => {
                self.restart = Restart::Idle;
                if self.phase == Phase::Down {
                    Due::Restart
                } else {
                    Due::Nothing
                }
            }
            Restart::Ours { started } if now.duration_since(started) > RESTART_TIMEOUT => {
                if self.tries >= RESTART_TRIES {
                    Due::GiveUp { tries: self.tries }
                } else {
                    Due::Restart
                }
            }
            _ => Due::Nothing,
        }
    }

    fn shield(&mut self, now: Instant) {
        let until = now + SCTP_CATCH_UP;
        self.shielded_until = Some(self.shielded_until.map_or(until, |u| u.max(until)));
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test takes its origin from the clock
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn open(now: Instant) -> Lifecycle {
        let mut life = Lifecycle::new();
        assert_eq!(
            life.transport(now, Transport::Connected, true),
            Reaction::Nothing
        );
        assert!(life.channel_opened());
        assert_eq!(life.state(), LinkState::Connected);
        life
    }

    #[test]
    fn a_link_joins_once_when_its_channel_opens() {
        let now = Instant::now();
        let mut life = Lifecycle::new();
        assert_eq!(life.state(), LinkState::Connecting);
        assert!(!life.is_open());
        assert!(life.channel_opened());
        assert!(!life.channel_opened(), "a second open is not a second join");
        life.channel_closed();
        assert!(!life.is_open());
        assert_eq!(
            life.transport(now, Transport::Failed, true),
            Reaction::Failed
        );
        assert_eq!(life.state(), LinkState::Failed);
    }

    #[test]
    fn a_path_lost_before_the_channel_opened_fails_only_when_ice_gives_up() {
        let now = Instant::now();
        let mut life = Lifecycle::new();
        let lost = life.transport(now, Transport::Disconnected, true);
        assert_eq!(lost, Reaction::Nothing);
        assert_eq!(life.state(), LinkState::Disconnected);
        assert_eq!(
            life.transport(now, Transport::Failed, true),
            Reaction::Failed
        );
    }

    #[test]
    fn the_starting_side_restarts_at_once_and_gives_up_after_its_tries() {
        let mut now = Instant::now();
        let mut life = open(now);
        let lost = life.transport(now, Transport::Disconnected, true);
        assert_eq!(
            lost,
            Reaction::Down {
                first: true,
                restart: true
            }
        );
        assert_eq!(life.state(), LinkState::Disconnected);
        assert!(life.is_open() && !life.is_up());
        for try_ in 1..=RESTART_TRIES {
            assert_eq!(life.restart_started(now), try_);
            assert_eq!(life.tick(now + RESTART_TIMEOUT), Due::Nothing);
            now += RESTART_TIMEOUT + Duration::from_millis(1);
            let due = life.tick(now);
            if try_ < RESTART_TRIES {
                assert_eq!(due, Due::Restart);
            } else {
                assert_eq!(
                    due,
                    Due::GiveUp {
                        tries: RESTART_TRIES
                    }
                );
            }
        }
    }

    #[test]
    fn a_second_loss_while_down_is_not_news_and_a_restart_under_way_is_not_doubled() {
        let now = Instant::now();
        let mut life = open(now);
        assert_eq!(
            life.transport(now, Transport::Disconnected, true),
            Reaction::Down {
                first: true,
                restart: true
            }
        );
        life.restart_started(now);
        assert_eq!(
            life.transport(now, Transport::Failed, true),
            Reaction::Down {
                first: false,
                restart: false
            }
        );
    }

    #[test]
    fn the_answering_side_waits_its_grace_then_starts_one_itself() {
        let now = Instant::now();
        let mut life = open(now);
        assert_eq!(
            life.transport(now, Transport::Disconnected, false),
            Reaction::Down {
                first: true,
                restart: false
            }
        );
        assert_eq!(life.tick(now + RESTART_GRACE / 2), Due::Nothing);
        assert_eq!(life.tick(now + RESTART_GRACE), Due::Restart);
        assert_eq!(life.tick(now + RESTART_GRACE * 2), Due::Nothing, "once");
    }

    #[test]
    fn a_restart_from_the_far_side_within_the_grace_is_answered_not_doubled() {
        let now = Instant::now();
        let mut life = open(now);
        life.transport(now, Transport::Disconnected, false);
        life.answering_restart(now + RESTART_GRACE / 2);
        assert_eq!(life.tick(now + RESTART_GRACE), Due::Nothing);
        // Still answering: a further loss report starts nothing of ours.
        let again = life.transport(now + RESTART_GRACE, Transport::Failed, true);
        assert_eq!(
            again,
            Reaction::Down {
                first: false,
                restart: false
            }
        );
    }

    #[test]
    fn a_link_back_is_reported_once_and_excused_silence_while_sctp_catches_up() {
        let now = Instant::now();
        let mut life = open(now);
        life.transport(now, Transport::Disconnected, true);
        life.restart_started(now);
        assert!(!life.shielded(now));
        life.answered(now);
        assert!(life.shielded(now));
        let back = now + Duration::from_secs(1);
        assert_eq!(
            life.transport(back, Transport::Connected, true),
            Reaction::Back
        );
        assert_eq!(
            life.transport(back, Transport::Connected, true),
            Reaction::Nothing
        );
        assert_eq!(life.state(), LinkState::Connected);
        assert!(life.shielded(back + SCTP_CATCH_UP - Duration::from_millis(1)));
        assert!(!life.shielded(back + SCTP_CATCH_UP));
        // Back means its tries start again.
        life.transport(back, Transport::Disconnected, true);
        assert_eq!(life.restart_started(back), 1);
    }

    #[test]
    fn an_answer_to_a_first_offer_excuses_nothing() {
        let now = Instant::now();
        let mut life = Lifecycle::new();
        life.answered(now);
        assert!(!life.shielded(now));
    }

    #[test]
    fn an_address_change_downs_an_open_link_once() {
        let now = Instant::now();
        let mut life = open(now);
        assert!(life.addresses_changed());
        assert!(!life.addresses_changed());
        assert_eq!(life.state(), LinkState::Disconnected);
        let mut opening = Lifecycle::new();
        assert!(!opening.addresses_changed());
    }

    #[derive(Debug, Clone)]
    enum Step {
        Transport(u8, bool),
        Opened,
        Closed,
        RestartStarted,
        Answered,
        Answering,
        Addresses,
        Wait(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..5u8, any::<bool>()).prop_map(|(s, w)| Step::Transport(s, w)),
            Just(Step::Opened),
            Just(Step::Closed),
            Just(Step::RestartStarted),
            Just(Step::Answered),
            Just(Step::Answering),
            Just(Step::Addresses),
            (0..6000u16).prop_map(Step::Wait),
        ]
    }

    proptest! {
        /// Whatever the transport and the far side do, in any order: a link is given up
        /// only after its tries, a restart is asked only of a link that is down, and a
        /// link reported back is connected.
        #[test]
        fn any_sequence_keeps_the_rules(steps in proptest::collection::vec(step(), 0..64)) {
            let mut now = Instant::now();
            let mut life = Lifecycle::new();
            for step in steps {
                match step {
                    Step::Transport(s, we_start) => {
                        let state = [
                            Transport::Connecting,
                            Transport::Connected,
                            Transport::Disconnected,
                            Transport::Failed,
                            Transport::Closed,
                        ][usize::from(s)];
                        let was_open = life.is_open();
                        match life.transport(now, state, we_start) {
                            Reaction::Back => prop_assert_eq!(life.state(), LinkState::Connected),
                            Reaction::Down { .. } => {
                                prop_assert!(was_open);
                                prop_assert_eq!(life.state(), LinkState::Disconnected);
                            }
                            Reaction::Failed => prop_assert!(
                                state == Transport::Closed || !was_open
                            ),
                            Reaction::Nothing => {}
                        }
                    }
                    Step::Opened => {
                        let was_open = life.is_open();
                        prop_assert_eq!(life.channel_opened(), !was_open);
                    }
                    Step::Closed => life.channel_closed(),
                    Step::RestartStarted => {
                        life.restart_started(now);
                    }
                    Step::Answered => life.answered(now),
                    Step::Answering => life.answering_restart(now),
                    Step::Addresses => {
                        life.addresses_changed();
                    }
                    Step::Wait(ms) => {
                        now += Duration::from_millis(u64::from(ms));
                        match life.tick(now) {
                            Due::GiveUp { tries } => prop_assert!(tries >= RESTART_TRIES),
                            Due::Restart => prop_assert!(!life.is_up() || life.tries > 0),
                            Due::Nothing => {}
                        }
                    }
                }
            }
        }
    }
}
