//! A room that grows on its own: a cells room whose cell holds seven starts as one cell (a
//! full mesh of five peers), is laid out in cells when four more join, and becomes one
//! cell again when they leave, while the call goes on: a chat message every 150 ms (every
//! 20 ms as the room changes) and whiteboard strokes (messages on the `board` channel) reach every peer that was there,
//! each once, whichever cell it ends up in; and a speaker's tone is heard throughout, its
//! longest break at each listener bounded.
//!
//! It prints the longest break of the tone at each listener and how long each change of
//! layout took (docs/benchmarks.md records them).

use plenum_e2e::cli as common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use plenum_media::SAMPLE_RATE;
use plenum_media::analysis::{longest_silence_ms, tone_level_db};
use serde_json::{Value, json};

/// A cell holds seven: five peers are one cell, nine are split, and back at five (two
/// places to spare) the room is one cell again.
const CELL_SIZE: &str = "7";
const FIRST: usize = 5;
const MORE: usize = 4;
const TONE: f64 = 440.0;
/// The longest break of the tone a listener may hear while the room is laid out anew.
const BREAK_MS: f64 = 4_000.0;

/// What each peer printed that the test reads: its place, chat and board messages.
#[derive(Default)]
struct Seen {
    state: BTreeMap<usize, Value>,
    /// (peer, channel, seq) -> copies.
    messages: BTreeMap<(usize, String, u64), u32>,
    seats: BTreeMap<usize, Value>,
    got: BTreeMap<(usize, u64), u32>,
}

impl Tally for Seen {
    fn collect(&mut self, peers: &mut [Peer], alive: &BTreeSet<usize>) {
        for &i in alive {
            for v in peers[i].proc.drain_for(Duration::ZERO) {
                match event(&v) {
                    "mesh_state" => {
                        self.state.insert(i, v);
                    }
                    "seats" => {
                        self.seats.insert(i, v["seats"].clone());
                    }
                    "mesh_message" => {
                        let nonce = v["data"]["nonce"].as_u64().expect("nonce");
                        *self.got.entry((i, nonce)).or_default() += 1;
                    }
                    "message" => {
                        let channel = v["channel"].as_str().unwrap_or("").to_owned();
                        let seq = v["data"]["seq"].as_u64().unwrap_or(u64::MAX);
                        *self.messages.entry((i, channel, seq)).or_default() += 1;
                    }
                    _ => {}
                }
            }
        }
    }

    fn got(&self) -> &BTreeMap<(usize, u64), u32> {
        &self.got
    }
}

impl Seen {
    fn cells(&self, i: usize) -> u64 {
        self.state
            .get(&i)
            .and_then(|s| s["cells"].as_u64())
            .unwrap_or(0)
    }
}

/// The tone's share of what `wav` recorded in its last second, as `tone_level_db` gives it.
fn last_second_level(wav: &Path) -> f64 {
    let heard = recorded_so_far(wav);
    let last = &heard[heard.len().saturating_sub(SAMPLE_RATE as usize)..];
    tone_level_db(last, SAMPLE_RATE, TONE)
}

/// The call's messages: chat lines from peer 1, strokes from peer 2.
#[derive(Default)]
struct Talk {
    chat: u64,
    strokes: u64,
}

impl Talk {
    /// A chat line (and every fourth time a stroke), then 150 ms.
    fn say(&mut self, peers: &mut [Peer]) {
        self.say_then(peers, Duration::from_millis(150));
    }

    /// Lines 20 ms apart, as the room is changing.
    fn burst(&mut self, peers: &mut [Peer], lines: usize) {
        for _ in 0..lines {
            self.say_then(peers, Duration::from_millis(20));
        }
    }

    fn say_then(&mut self, peers: &mut [Peer], pause: Duration) {
        let line = json!({"seq": self.chat, "text": format!("line {}", self.chat)});
        peers[1]
            .proc
            .cmd(json!({"cmd": "send", "channel": "chat", "data": line}));
        self.chat += 1;
        if self.chat.is_multiple_of(4) {
            let stroke = json!({"seq": self.strokes, "op": "stroke",
                                "points": [[0, 0], [10, self.strokes]]});
            peers[2]
                .proc
                .cmd(json!({"cmd": "send", "channel": "board", "data": stroke}));
            self.strokes += 1;
        }
        std::thread::sleep(pause);
    }

    /// Talks until every peer in `alive` says the room is split in cells (`split`), or is
    /// one cell.
    fn until(&mut self, peers: &mut [Peer], seen: &mut Seen, alive: &BTreeSet<usize>, split: bool) {
        let deadline = Instant::now() + MEDIA_WAIT;
        loop {
            self.say(peers);
            seen.collect(peers, alive);
            if alive.iter().all(|i| (seen.cells(*i) > 1) == split) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the room did not become {} in time",
                if split { "cells" } else { "one cell" }
            );
        }
    }
}

/// Waits until every peer in `alive` says the room has `cells` cells.
fn wait_cells(peers: &mut [Peer], seen: &mut Seen, alive: &BTreeSet<usize>, cells: u64) {
    wait_for(
        MEDIA_WAIT,
        &format!("every peer in a room of {cells} cells"),
        || {
            seen.collect(peers, alive);
            alive.iter().all(|i| seen.cells(*i) == cells).then_some(())
        },
    );
}

#[test]
fn a_room_grows_into_cells_and_back_without_losing_anything() {
    let server = serve(&[]);
    let dir = std::env::temp_dir().join(format!("plenum-grow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let wav = |i: usize| -> PathBuf { dir.join(format!("heard-{i}.wav")) };
    let cells = ["--topology", "cells", "--cell-size", CELL_SIZE];
    let start = |i: usize| -> Peer {
        let path = wav(i);
        let mut args = cells.to_vec();
        args.extend(["--record-audio", path.to_str().expect("utf-8")]);
        if i == 0 {
            args.extend(["--audio", "sine:440"]);
        }
        join(&server.url, "grows", &format!("p{i}"), &args)
    };
    let mut peers: Vec<Peer> = (0..FIRST).map(start).collect();
    let first: BTreeSet<usize> = (0..FIRST).collect();
    let mut alive = first.clone();
    let mut seen = Seen::default();
    let mut nonce = 0;
    broadcast_until_all(
        &mut peers,
        &mut seen,
        &alive,
        (1, "mesh_send"),
        &mut nonce,
        Duration::from_secs(60),
    );
    wait_cells(&mut peers, &mut seen, &alive, 1);
    // The speaker is seated (it speaks), and every listener hears it.
    let speaker = peers[0].id.clone();
    wait_for(MEDIA_WAIT, "the speaker seated", || {
        seen.collect(&mut peers, &alive);
        alive
            .iter()
            .all(|i| {
                seen.seats
                    .get(i)
                    .is_some_and(|s| s[0]["peer"] == speaker.as_str())
            })
            .then_some(())
    });
    for i in 1..FIRST {
        wait_for(MEDIA_WAIT, &format!("peer {i} hearing the tone"), || {
            (last_second_level(&wav(i)) > -20.0).then_some(())
        });
    }
    let heard_from: Vec<usize> = (1..FIRST).map(|i| recorded_so_far(&wav(i)).len()).collect();

    // Chat from peer 1 every 150 ms, and a stroke from peer 2 now and then, while the
    // room grows and shrinks.
    let mut talk = Talk::default();
    // Four more join: the room is laid out in two cells.
    let grow_started = Instant::now();
    for i in FIRST..FIRST + MORE {
        peers.push(start(i));
        alive.insert(i);
    }
    talk.burst(&mut peers, 12);
    let grown = alive.clone();
    talk.until(&mut peers, &mut seen, &grown, true);
    let cells_grown = seen.cells(0);
    let grow_ms = grow_started.elapsed().as_millis() as u64;
    // Talk on for a while in the split room.
    for _ in 0..10 {
        talk.say(&mut peers);
    }

    // They leave: the room is one cell again.
    let shrink_started = Instant::now();
    for peer in &mut peers[FIRST..] {
        peer.proc.cmd(json!({"cmd": "leave"}));
    }
    talk.burst(&mut peers, 12);
    for (i, peer) in peers.iter_mut().enumerate().skip(FIRST) {
        peer.proc.wait_exit(Duration::from_secs(20));
        alive.remove(&i);
    }
    talk.until(&mut peers, &mut seen, &first, false);
    let shrink_ms = shrink_started.elapsed().as_millis() as u64;
    for _ in 0..10 {
        talk.say(&mut peers);
    }

    // Every chat line and stroke reaches every peer that was there throughout, once.
    let missing = |seen: &Seen| -> Vec<(usize, &'static str, u64)> {
        let mut missing = Vec::new();
        for &i in &first {
            let sent = [("chat", 1, talk.chat), ("board", 2, talk.strokes)];
            for (channel, from, count) in sent {
                for n in 0..count {
                    if i != from && !seen.messages.contains_key(&(i, channel.into(), n)) {
                        missing.push((i, channel, n));
                    }
                }
            }
        }
        missing
    };
    let deadline = Instant::now() + MEDIA_WAIT;
    loop {
        seen.collect(&mut peers, &first);
        let lost = missing(&seen);
        if lost.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "messages that never arrived (peer, channel, seq): {lost:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let copies: Vec<_> = seen.messages.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        copies.is_empty(),
        "messages delivered more than once: {copies:?}"
    );

    // The tone went on at every listener, with its longest break bounded.
    let mut breaks = Vec::new();
    for (n, i) in (1..FIRST).enumerate() {
        let heard = recorded_so_far(&wav(i));
        let since = &heard[heard_from[n].min(heard.len())..];
        let longest = longest_silence_ms(since, SAMPLE_RATE, -40.0);
        assert!(
            longest < BREAK_MS,
            "peer {i} heard no tone for {longest} ms while the room changed"
        );
        assert!(
            last_second_level(&wav(i)) > -20.0,
            "peer {i} hears the tone at the end"
        );
        breaks.push(longest as u64);
    }
    println!(
        "{}",
        json!({
            "peers": [FIRST, FIRST + MORE, FIRST],
            "cells_grown": cells_grown,
            "chat_lines": talk.chat,
            "strokes": talk.strokes,
            "grow_to_two_cells_ms": grow_ms,
            "shrink_to_one_cell_ms": shrink_ms,
            "longest_tone_break_ms": breaks,
        })
    );
}
