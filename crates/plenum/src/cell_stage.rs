//! The stage of a cells room: the voices the server seated (up to [`STAGE_SEATS`]) reach
//! every cell, passed on packet by packet through the sans-IO [`Forwarder`] without
//! decoding. Everything else a peer sends stays in its cell.
//!
//! Every link of a cells room carries one Opus track per seat. A seated peer's voice goes
//! on its seat's track to its cell mates and over its bridges, instead of on its own audio
//! track. The voice then follows the broadcast tree of cells rooted at the speaker's cell
//! (`docs/overlays/cells.md`): a peer that has a seat's voice from a cell mate passes it
//! over its bridges along digits above the one the voice entered its cell by; a peer that
//! has it over a bridge (an entry) floods its cell too. Each cell is entered over each of
//! the edge's bridges, so a peer may be sent a voice more than once. It takes each seat's
//! voice from one neighbour (its source: the first that sent it) and tells any other that
//! sends it to stop (`prune`); when its source goes, or falls silent, it asks the ones it
//! stopped to send again (`graft`). So each peer receives each seated voice once, and no
//! more than the seats besides its own cell's streams.
//!
//! **The presenter**: the server names one peer whose camera and screen reach every cell,
//! on two more lanes (VP8) that travel the same way. Its video task encodes for each link
//! at the layer that link's estimate allows and writes to the link's presenter tracks;
//! the peers between pass the packets on through a video `Forwarder` per lane, which
//! answers a downstream keyframe request by asking upstream (at most once per interval),
//! and re-anchors each link at the keyframe of a new source.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plenum_media::Content;
use plenum_overlay::{Layout, MeshState, STAGE_SEATS};
use plenum_proto::PeerId;
use plenum_proto::signal::StageSeat;
use rtc::rtp::Packet;

use crate::congestion::{CapReports, LinkStats};
use crate::forward::{Forwarder, Kind};
use crate::outbound::TrackSender;
use crate::tree_media::{Out, OwnVoice, Write};

/// The stage's lanes: a voice per seat, then the presenter's camera and screen.
pub(crate) const LANES: usize = STAGE_SEATS + 2;
/// The lane of the presenter's camera; its screen's is the next.
pub(crate) const PRESENTER_CAMERA: usize = STAGE_SEATS;

/// The share of a link our own pictures plan on while it also carries a presenter's we
/// pass on (the presenter's get the rest: it is what everyone watches).
pub(crate) const OWN_SHARE_BESIDE_PRESENTER: f64 = 0.3;

/// The picture a lane carries: `None` for a voice.
pub(crate) fn lane_content(lane: usize) -> Option<Content> {
    match lane.checked_sub(PRESENTER_CAMERA)? {
        0 => Some(Content::Camera),
        1 => Some(Content::Screen),
        _ => None,
    }
}

/// A source that sent nothing for this long while its seat is held is given up: the
/// neighbours we stopped are asked to send again.
pub(crate) const SOURCE_SILENCE: Duration = Duration::from_millis(600);
/// A neighbour that goes on sending after we told it to stop is told again at most this
/// often (the first word may be lost, or cross a graft).
const PRUNE_AGAIN: Duration = Duration::from_millis(500);

/// What a neighbour asks of us about one seat's voice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// Stop sending me this seat's voice while `holder` holds it: I have it from another.
    Prune { seat: u8, holder: PeerId },
    /// Send me this seat's voice again.
    Graft { seat: u8, holder: PeerId },
}

/// Why a stage control message does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ControlError {
    #[error("stage control of {0} bytes is truncated")]
    Truncated(usize),
    #[error("unknown stage control op {0}")]
    UnknownOp(u8),
    #[error("stage control names lane {0}; the stage has {LANES}")]
    BadSeat(u8),
    #[error("stage control names a holder that is not a peer id")]
    BadHolder,
}

impl Control {
    /// The payload of its envelope: op (0 prune, 1 graft), seat, the holder's id.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (op, seat, holder) = match self {
            Self::Prune { seat, holder } => (0, seat, holder),
            Self::Graft { seat, holder } => (1, seat, holder),
        };
        let mut out = vec![op, *seat];
        out.extend_from_slice(holder.as_str().as_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, ControlError> {
        let [op, seat, holder @ ..] = bytes else {
            return Err(ControlError::Truncated(bytes.len()));
        };
        if usize::from(*seat) >= LANES {
            return Err(ControlError::BadSeat(*seat));
        }
        let holder = std::str::from_utf8(holder)
            .ok()
            .and_then(|h| PeerId::new(h).ok())
            .ok_or(ControlError::BadHolder)?;
        let seat = *seat;
        match op {
            0 => Ok(Self::Prune { seat, holder }),
            1 => Ok(Self::Graft { seat, holder }),
            other => Err(ControlError::UnknownOp(*other)),
        }
    }
}

/// Our place in the cells: our cell, the layout, and our bridges by partner (its cell and
/// the digit the cells differ in). Every other link is a cell mate's.
#[derive(Debug, Clone, Default)]
struct Place {
    cell: u32,
    layout: Option<Layout>,
    bridges: BTreeMap<PeerId, (u32, u8)>,
}

/// One seat as we route it.
struct Seat {
    holder: Option<(PeerId, u32)>,
    /// The neighbour we take its voice from, and when it last sent.
    source: Option<(PeerId, Instant)>,
    /// Neighbours we told to stop, with when we last told them.
    stopped: BTreeMap<PeerId, Instant>,
    /// Neighbours that told us to stop.
    stop_us: BTreeSet<PeerId>,
    /// The links the unit writes to now.
    out: BTreeSet<PeerId>,
    unit: Forwarder<PeerId>,
    upstream: Option<u32>,
    /// Our own voice's stream, when the seat is ours.
    own: OwnVoice,
}

impl Seat {
    fn new(kind: Kind) -> Self {
        Self {
            holder: None,
            source: None,
            stopped: BTreeMap::new(),
            stop_us: BTreeSet::new(),
            out: BTreeSet::new(),
            unit: Forwarder::new(kind),
            upstream: None,
            own: OwnVoice::new(),
        }
    }

    /// Forgets who sends it and who told us to stop: the tree of the voice is new.
    fn reset(&mut self) {
        self.source = None;
        self.stopped.clear();
        self.stop_us.clear();
    }
}

/// What a stage packet from a neighbour comes to.
#[derive(Default)]
pub(crate) struct Pushed {
    /// Whose voice to play it as; `None`: not played (a copy, or not a seated voice).
    pub(crate) play: Option<PeerId>,
    /// What to write to our other neighbours.
    pub(crate) writes: Vec<Write>,
    /// Words to our neighbours.
    pub(crate) controls: Vec<(PeerId, Control)>,
}

struct State {
    me: PeerId,
    place: Place,
    links: HashMap<PeerId, [Option<Out>; LANES]>,
    /// What each link has learnt of its path.
    paths: HashMap<PeerId, Arc<LinkStats>>,
    /// The seats' voices, then the presenter's pictures.
    seats: [Seat; LANES],
    /// What we last told each presenter lane's source of the narrowest path below us.
    caps: CapReports<(PeerId, usize)>,
}

/// A peer's stage forwarding, shared by the driver, the audio task and the track readers.
pub(crate) struct CellStage {
    state: Mutex<State>,
}

impl std::fmt::Debug for CellStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CellStage").finish_non_exhaustive()
    }
}

impl CellStage {
    pub(crate) fn new(me: PeerId) -> Self {
        Self {
            state: Mutex::new(State {
                me,
                place: Place::default(),
                links: HashMap::new(),
                paths: HashMap::new(),
                caps: CapReports::default(),
                seats: std::array::from_fn(|lane| match lane_content(lane) {
                    Some(_) => Seat::new(Kind::Video),
                    None => Seat::new(Kind::Audio),
                }),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: go on with it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Our place in the cells changed (a new plan).
    pub(crate) fn place(&self, mesh: &MeshState) {
        let mut state = self.state();
        let layout = Layout::from_radices(&mesh.radices);
        let bridges = mesh
            .bridges
            .iter()
            .filter_map(|(peer, cell)| {
                let digit = layout.as_ref()?.edge_digit(mesh.cell, *cell)?;
                Some((peer.clone(), (*cell, digit)))
            })
            .collect();
        state.place = Place {
            cell: mesh.cell,
            layout,
            bridges,
        };
        for seat in &mut state.seats {
            seat.reset();
        }
    }

    /// Whether `peer` is a bridge partner (its link carries the stage, never our own media).
    pub(crate) fn is_bridge(&self, peer: &PeerId) -> bool {
        self.state().place.bridges.contains_key(peer)
    }

    /// Our bridge partners.
    pub(crate) fn bridges(&self) -> BTreeSet<PeerId> {
        self.state().place.bridges.keys().cloned().collect()
    }

    /// The server's seats and presenter. Returns the seat that is ours, if one is (our
    /// voice then goes on it, [`CellStage::push_own`], not on our cell links' audio
    /// tracks), and whether we present (our video task then writes our camera and screen
    /// to every cell mate's and bridge's presenter tracks).
    pub(crate) fn set_seats(
        &self,
        seats: &[Option<StageSeat>],
        presenter: Option<&StageSeat>,
    ) -> (Option<usize>, bool) {
        let mut state = self.state();
        let state = &mut *state;
        let mut ours = None;
        for (i, seat) in state.seats.iter_mut().enumerate() {
            let holder = match lane_content(i) {
                Some(_) => presenter.cloned(),
                None => seats.get(i).cloned().flatten(),
            };
            let holder = holder.map(|s| (s.peer, s.cell));
            if i < STAGE_SEATS && holder.as_ref().is_some_and(|(p, _)| *p == state.me) {
                ours = Some(i);
            }
            if seat.holder != holder {
                seat.holder = holder;
                seat.reset();
                // Another's stream: each link starts again from its keyframe, and while the
                // lane is ours, its links are our video task's.
                for peer in std::mem::take(&mut seat.out) {
                    seat.unit.remove_link(&peer);
                }
            }
        }
        let presenting = presenter.is_some_and(|p| p.peer == state.me);
        (ours, presenting)
    }

    /// Who holds `lane`: a seat's speaker, or the presenter.
    pub(crate) fn holder(&self, lane: usize) -> Option<PeerId> {
        let state = self.state();
        state
            .seats
            .get(lane)?
            .holder
            .as_ref()
            .map(|(p, _)| p.clone())
    }

    /// A link's media is up with these stage tracks (one per lane), and what it learns of
    /// its path.
    pub(crate) fn adopt(
        &self,
        peer: &PeerId,
        tracks: &[Option<TrackSender>],
        path: &Arc<LinkStats>,
    ) {
        let mut state = self.state();
        let outs = std::array::from_fn(|i| tracks.get(i).and_then(Option::as_ref).map(Out::from));
        state.links.insert(peer.clone(), outs);
        state.paths.insert(peer.clone(), Arc::clone(path));
        for seat in &mut state.seats {
            // New tracks: the unit starts the link again.
            seat.out.remove(peer);
            seat.unit.remove_link(peer);
        }
    }

    /// A link's media went down: the words for the neighbours we stopped, if it was a
    /// seat's source.
    pub(crate) fn drop_link(&self, peer: &PeerId) -> Vec<(PeerId, Control)> {
        let mut state = self.state();
        state.links.remove(peer);
        state.paths.remove(peer);
        for lane in 0..LANES {
            state.caps.forget(&(peer.clone(), lane));
        }
        let mut words = Vec::new();
        for (i, seat) in state.seats.iter_mut().enumerate() {
            seat.out.remove(peer);
            seat.unit.remove_link(peer);
            seat.stop_us.remove(peer);
            seat.stopped.remove(peer);
            if seat.source.as_ref().is_some_and(|(s, _)| s == peer) {
                seat.source = None;
                words.extend(grafts(i, seat));
            }
        }
        words
    }

    /// A neighbour's word about a seat.
    pub(crate) fn control(&self, from: &PeerId, control: Control) {
        let mut state = self.state();
        let (seat, holder, stop) = match control {
            Control::Prune { seat, holder } => (seat, holder, true),
            Control::Graft { seat, holder } => (seat, holder, false),
        };
        let seat_n = seat;
        let state = &mut *state;
        let Some(seat) = state.seats.get_mut(usize::from(seat)) else {
            return;
        };
        // A word about an earlier holder's voice is stale.
        if seat.holder.as_ref().map(|(p, _)| p) != Some(&holder) {
            return;
        }
        tracing::debug!(
            me = state.me.short(),
            from = from.short(),
            seat = seat_n,
            stop,
            "a neighbour's word on a seat"
        );
        if stop {
            seat.stop_us.insert(from.clone());
        } else {
            seat.stop_us.remove(from);
        }
    }

    /// A stage packet from `from` on `seat`'s track.
    pub(crate) fn push(&self, from: &PeerId, seat: usize, packet: &Packet, now: Instant) -> Pushed {
        let mut state = self.state();
        let state = &mut *state;
        let mut pushed = Pushed::default();
        let Some(s) = state.seats.get_mut(seat) else {
            return pushed;
        };
        let Some((holder, holder_cell)) = s.holder.clone() else {
            return pushed;
        };
        if holder == state.me {
            return pushed;
        }
        // A neighbour the voice may not come from (it routes by another plan) is stopped
        // like a copy.
        let take = valid_source(&state.place, &holder, holder_cell, from)
            && match &s.source {
                Some((source, _)) if source == from => true,
                // Straight from the holder: no path is shorter (and the holder is never
                // told to stop: its video task writes to every neighbour).
                _ if *from == holder => true,
                Some((_, heard)) => now.saturating_duration_since(*heard) >= SOURCE_SILENCE,
                // No source yet: this neighbour is it.
                None => true,
            };
        if !take {
            let due = s
                .stopped
                .get(from)
                .is_none_or(|at| now.saturating_duration_since(*at) >= PRUNE_AGAIN);
            if due {
                tracing::debug!(
                    me = state.me.short(),
                    seat,
                    from = from.short(),
                    source = s.source.as_ref().map(|(p, _)| p.short()),
                    "a copy of a seat's voice: stop it"
                );
                s.stopped.insert(from.clone(), now);
                let prune = Control::Prune {
                    seat: seat as u8,
                    holder: holder.clone(),
                };
                pushed.controls.push((from.clone(), prune));
            }
            return pushed;
        }
        s.stopped.remove(from);
        if s.source.as_ref().is_none_or(|(p, _)| p != from) {
            tracing::debug!(
                me = state.me.short(),
                seat,
                from = from.short(),
                "a seat's voice comes from this neighbour"
            );
        }
        s.source = Some((from.clone(), now));
        let targets = targets(state, seat, &holder, holder_cell, Some(from));
        pushed.writes = forward(state, seat, targets, packet, now);
        pushed.play = Some(holder);
        pushed
    }

    /// One of our Opus frames for our seat: the writes that put it on our cell mates' and
    /// bridge partners' tracks of that seat.
    pub(crate) fn push_own(&self, seat: usize, payload: bytes::Bytes, now: Instant) -> Vec<Write> {
        let mut state = self.state();
        let state = &mut *state;
        let Some(s) = state.seats.get_mut(seat) else {
            return Vec::new();
        };
        let Some((holder, cell)) = s.holder.clone() else {
            return Vec::new();
        };
        if holder != state.me {
            return Vec::new();
        }
        let packet = s.own.next(payload);
        let targets = targets(state, seat, &holder, cell, None);
        forward(state, seat, targets, &packet, now)
    }

    /// The words due now: to the neighbours we stopped, for each seat whose source fell
    /// silent.
    pub(crate) fn tick(&self, now: Instant) -> Vec<(PeerId, Control)> {
        let mut state = self.state();
        let mut words = Vec::new();
        for (i, seat) in state.seats.iter_mut().enumerate() {
            let silent = seat
                .source
                .as_ref()
                .is_some_and(|(_, heard)| now.saturating_duration_since(*heard) >= SOURCE_SILENCE);
            if silent {
                seat.source = None;
                words.extend(grafts(i, seat));
            }
        }
        words
    }

    /// The keyframe requests due upstream on a picture lane, if `from` is its source: the
    /// SSRCs to send a PLI for.
    pub(crate) fn keyframe_requests(&self, from: &PeerId, lane: usize, now: Instant) -> Vec<u32> {
        let mut state = self.state();
        let Some(seat) = state.seats.get_mut(lane) else {
            return Vec::new();
        };
        if seat.source.as_ref().is_none_or(|(s, _)| s != from) {
            return Vec::new();
        }
        seat.unit.due_keyframe_requests(now)
    }

    /// The most to tell `from` we take, if it is the source of the presenter's pictures on
    /// `lane` and one is due: the narrowest path of the neighbours we pass them on to (a
    /// REMB on its link, which its sender fits what it sends to). Of a link that also
    /// carries our own pictures, the presenter's share, and no more than that link's peer
    /// said it takes of them.
    pub(crate) fn cap_due(&self, from: &PeerId, lane: usize, now: Instant) -> Option<u64> {
        let mut state = self.state();
        let State {
            links,
            paths,
            seats,
            caps,
            ..
        } = &mut *state;
        let seat = seats.get(lane)?;
        if seat.source.as_ref().is_none_or(|(s, _)| s != from) {
            return None;
        }
        let below = seat.out.iter().filter_map(|peer| {
            let path = paths.get(peer)?;
            let ssrc = links.get(peer)?.get(lane)?.as_ref()?.ssrc;
            let told = path.cap_for(ssrc, now);
            let media = path.media_estimate();
            // Beside our own pictures, the presenter's have their share of the link.
            let ours = if path.sends_video() {
                (media as f64 * (1.0 - OWN_SHARE_BESIDE_PRESENTER)) as u64
            } else {
                media
            };
            Some(told.map_or(ours, |told| ours.min(told)))
        });
        caps.due(&(from.clone(), lane), below, now)
    }

    /// A neighbour asked for a keyframe on its track with `ssrc`. Returns whether it is a
    /// presenter track we forward to it (otherwise the request is for our own video).
    pub(crate) fn keyframe_wanted(&self, peer: &PeerId, ssrc: u32, now: Instant) -> bool {
        let mut state = self.state();
        let state = &mut *state;
        let Some(tracks) = state.links.get(peer) else {
            return false;
        };
        let mut ours = false;
        let lanes = tracks
            .iter()
            .zip(state.seats.iter_mut())
            .skip(PRESENTER_CAMERA);
        for (track, seat) in lanes {
            if track.as_ref().is_some_and(|t| t.ssrc == ssrc) && seat.out.contains(peer) {
                seat.unit.keyframe_wanted(peer, now);
                ours = true;
            }
        }
        ours
    }

    /// The neighbours we pass a presenter's pictures on to (from a source still sending).
    pub(crate) fn relaying_pictures(&self) -> BTreeSet<PeerId> {
        let state = self.state();
        state.seats[PRESENTER_CAMERA..]
            .iter()
            .filter(|seat| seat.source.is_some())
            .flat_map(|seat| seat.out.iter().cloned())
            .collect()
    }

    /// Stage packets forwarded so far, over every seat.
    pub(crate) fn forwarded(&self) -> u64 {
        self.state()
            .seats
            .iter()
            .map(|s| s.unit.stats().forwarded)
            .sum()
    }
}

/// Asks every neighbour we stopped on `seat` to send again.
fn grafts(i: usize, seat: &mut Seat) -> Vec<(PeerId, Control)> {
    let Some((holder, _)) = &seat.holder else {
        return Vec::new();
    };
    std::mem::take(&mut seat.stopped)
        .into_keys()
        .map(|peer| {
            let graft = Control::Graft {
                seat: i as u8,
                holder: holder.clone(),
            };
            (peer, graft)
        })
        .collect()
}

/// Whether a seated voice may come to us from `from`: from the holder itself in its own
/// cell; elsewhere from a cell mate, or over a bridge from the cell the voice enters ours
/// from.
fn valid_source(place: &Place, holder: &PeerId, holder_cell: u32, from: &PeerId) -> bool {
    if holder_cell == place.cell {
        return from == holder;
    }
    match (place.bridges.get(from), &place.layout) {
        (Some((cell, _)), Some(layout)) => layout.enters_from(holder_cell, place.cell, *cell),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The links a seat's voice goes on from us, having come from `from` (`None`: it is ours).
fn targets(
    state: &State,
    seat: usize,
    holder: &PeerId,
    holder_cell: u32,
    from: Option<&PeerId>,
) -> BTreeSet<PeerId> {
    let place = &state.place;
    let entered = place
        .layout
        .as_ref()
        .and_then(|l| l.last_difference(holder_cell, place.cell));
    let above = entered.map_or(0, |d| d + 1);
    // The holder floods its cell; so does an entry (it had the voice over a bridge).
    let flood = from.is_none_or(|f| place.bridges.contains_key(f));
    let stopped = &state.seats[seat].stop_us;
    state
        .links
        .iter()
        .filter(|(peer, tracks)| {
            Some(*peer) != from
                && *peer != holder
                && tracks[seat].is_some()
                && !stopped.contains(*peer)
        })
        .filter(|(peer, _)| match place.bridges.get(*peer) {
            Some((_, digit)) => *digit >= above,
            None => flood,
        })
        .map(|(peer, _)| peer.clone())
        .collect()
}

/// `packet` through `seat`'s unit to `targets`: the writes.
fn forward(
    state: &mut State,
    seat: usize,
    targets: BTreeSet<PeerId>,
    packet: &Packet,
    now: Instant,
) -> Vec<Write> {
    let links = &state.links;
    let s = &mut state.seats[seat];
    if s.out != targets {
        tracing::debug!(
            me = state.me.short(),
            seat,
            to = ?targets.iter().map(PeerId::short).collect::<Vec<_>>(),
            "a seat's voice goes to"
        );
    }
    for gone in s.out.difference(&targets) {
        s.unit.remove_link(gone);
    }
    for new in targets.difference(&s.out) {
        if let Some(t) = links.get(new).and_then(|t| t[seat].as_ref()) {
            s.unit.add_link(new.clone(), t.ssrc, t.payload_type, 0, now);
        }
    }
    s.out = targets;
    let ssrc = packet.header.ssrc;
    if s.upstream != Some(ssrc) {
        s.upstream = Some(ssrc);
        s.unit.set_upstream(&[ssrc], now);
    }
    s.unit.push(packet);
    let mut writes = Vec::new();
    while let Some(out) = s.unit.poll_packet() {
        if let Some(t) = links.get(&out.link).and_then(|t| t[seat].as_ref()) {
            writes.push((Arc::clone(&t.track), out.packet));
        }
    }
    writes
}

#[cfg(test)]
#[path = "cell_stage/tests.rs"]
mod tests;
