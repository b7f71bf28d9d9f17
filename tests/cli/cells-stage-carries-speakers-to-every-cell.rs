//! The stage of a cells room: twenty-four peers in cells of at most four. Each peer hears
//! its cell mates; a voice reaches the other cells only from the stage, whose seats the
//! server gives whoever speaks (or raises a hand), four at most. A speaker in one cell is
//! seated and heard in every cell; a second speaker elsewhere takes the next seat and is
//! heard everywhere too; when the first falls quiet, its seat empties and the other cells
//! stop hearing it. A raised hand takes a seat and gives it back. Six speakers at once:
//! four are seated and heard in every cell, the two waiting are heard in their own cells
//! only, and no peer receives more voices than the seats plus its cell mates.
//!
//! Then a peer publishing the stamped test pattern presents: every peer of every cell
//! decodes its pictures, in order and under its name, passed on by the peers between
//! without decoding, and none decodes any other picture from outside its cell. When it
//! stops presenting, the other cells stop receiving them and its cell mates go on. It
//! presents again and a bridge peer that passes its pictures on dies: every survivor's
//! pictures go on, in order (the test prints how long the longest wait was).

use plenum_e2e::cli as common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use plenum_media::analysis::tone_level_db;
use plenum_media::{SAMPLE_RATE, VideoFrame, read_stamp};
use serde_json::{Value, json};

const PEERS: usize = 24;
const CELL_SIZE: &str = "4";
const SEATS: usize = 4;
/// The six speakers' tones: no sum or difference of two of them (which a clipped mix
/// makes) lands near a third.
const TONES: [f64; 6] = [573.0, 832.0, 923.0, 1042.0, 1196.0, 1315.0];

/// The power of `hz` in the last second `wav` recorded, in dB of full scale (a lone tone of
/// the CLI's at -9; very low when absent, whatever else plays, and for silence).
fn last_second_level(wav: &Path, hz: f64) -> f64 {
    let heard = recorded_so_far(wav);
    let last = &heard[heard.len().saturating_sub(SAMPLE_RATE as usize)..];
    let mean_square =
        last.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / last.len().max(1) as f64;
    // The share of the tone in what plays, times what plays.
    tone_level_db(last, SAMPLE_RATE, hz) + 10.0 * mean_square.max(1e-20).log10()
}

const HEARD_DB: f64 = -25.0;
const SILENT_DB: f64 = -45.0;

/// The last `mesh_state`, `seats` and presenter of each peer and every broadcast each
/// received.
#[derive(Default)]
struct Seen {
    state: BTreeMap<usize, Value>,
    seats: BTreeMap<usize, Value>,
    presenter: BTreeMap<usize, Option<String>>,
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
                        let presenter = v["presenter"]["peer"].as_str().map(str::to_owned);
                        self.presenter.insert(i, presenter);
                    }
                    "mesh_message" => {
                        let nonce = v["data"]["nonce"].as_u64().expect("nonce");
                        *self.got.entry((i, nonce)).or_default() += 1;
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
    fn cell(&self, i: usize) -> u64 {
        self.state[&i]["cell_id"].as_u64().expect("cell_id")
    }

    /// Whom peer `i` was last told holds each seat.
    fn seated(&self, i: usize) -> Vec<Option<String>> {
        self.seats
            .get(&i)
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |seats| {
                seats
                    .iter()
                    .map(|s| s["peer"].as_str().map(str::to_owned))
                    .collect()
            })
    }
}

/// The frame counters of the pictures of `sender`'s camera that `dir` holds, in the order
/// they were saved (files are numbered per sender).
fn counters(dir: &Path, sender: &str) -> Vec<u32> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("{sender}-")) && !n.contains("-screen-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        // A file still being written reads as an error; it is skipped.
        .filter_map(|n| VideoFrame::load_png(&dir.join(n)).ok())
        .map(|p| read_stamp(&p).expect("a stamped picture").counter)
        .collect()
}

/// When `dir` saved its first picture of `sender`'s captured at or after `after_ms` (the
/// low 32 bits of Unix milliseconds, as the stamp carries them).
fn captured_after(dir: &Path, sender: &str, after_ms: u32) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            if !name.starts_with(&format!("{sender}-")) || name.contains("-screen-") {
                return None;
            }
            let stamp = read_stamp(&VideoFrame::load_png(&e.path()).ok()?)?;
            let late = stamp.capture_ms.wrapping_sub(after_ms) < 1 << 31;
            late.then(|| e.metadata().ok()?.modified().ok())?
        })
        .min()
}

/// Waits until every peer was told that `presenter` presents (`None`: nobody).
fn wait_presenter(
    peers: &mut [Peer],
    seen: &mut Seen,
    alive: &BTreeSet<usize>,
    presenter: Option<&str>,
) {
    wait_for(
        MEDIA_WAIT,
        &format!("every peer told {presenter:?} presents"),
        || {
            seen.collect(peers, alive);
            alive
                .iter()
                .all(|i| seen.presenter.get(i).cloned().flatten().as_deref() == presenter)
                .then_some(())
        },
    );
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plenum-cells-stage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Waits until every peer was told a stage whose holders are exactly `holders` (in any
/// seats).
fn wait_seats(peers: &mut [Peer], seen: &mut Seen, alive: &BTreeSet<usize>, holders: &[&str]) {
    let want: BTreeSet<&str> = holders.iter().copied().collect();
    wait_for(
        MEDIA_WAIT,
        &format!("every peer told the stage {want:?}"),
        || {
            seen.collect(peers, alive);
            alive
                .iter()
                .all(|i| {
                    let seated = seen.seated(*i);
                    let got: BTreeSet<&str> = seated.iter().flatten().map(String::as_str).collect();
                    got == want
                })
                .then_some(())
        },
    );
}

/// The voices each peer received in a window: those whose played packets grew.
fn voices(peers: &mut [Peer], alive: &BTreeSet<usize>) -> BTreeMap<usize, BTreeSet<String>> {
    let snapshot = |peers: &mut [Peer]| -> BTreeMap<usize, BTreeMap<String, u64>> {
        alive
            .iter()
            .map(|&i| {
                let stats = peers[i].proc.stats();
                let heard = stats["audio"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|h| {
                                let peer = h["peer"].as_str().unwrap_or("").to_owned();
                                (peer, h["packets"].as_u64().unwrap_or(0))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (i, heard)
            })
            .collect()
    };
    let before = snapshot(peers);
    std::thread::sleep(Duration::from_secs(2));
    let after = snapshot(peers);
    after
        .into_iter()
        .map(|(i, heard)| {
            let grew = heard
                .into_iter()
                .filter(|(peer, n)| before[&i].get(peer).is_none_or(|b| n > b))
                .map(|(peer, _)| peer)
                .collect();
            (i, grew)
        })
        .collect()
}

#[test]
fn a_cells_rooms_stage_carries_its_speakers_to_every_cell() {
    let server = serve(&[]);
    let dir = scratch();
    let wavs: Vec<PathBuf> = (0..PEERS)
        .map(|i| dir.join(format!("heard-{i}.wav")))
        .collect();
    let frames: Vec<PathBuf> = (0..PEERS)
        .map(|i| dir.join(format!("frames-{i}")))
        .collect();
    let mut peers: Vec<Peer> = (0..PEERS)
        .map(|i| {
            let wav = wavs[i].to_str().expect("utf-8");
            let saved = frames[i].to_str().expect("utf-8");
            let args = [
                "--topology",
                "cells",
                "--cell-size",
                CELL_SIZE,
                "--record-audio",
                wav,
                "--save-frames",
                saved,
            ];
            join(&server.url, "stage", &format!("p{i}"), &args)
        })
        .collect();
    let alive: BTreeSet<usize> = (0..PEERS).collect();
    let mut seen = Seen::default();
    let mut nonce = 0;
    // Every link of every cell and bridge is up once a broadcast reaches everyone.
    broadcast_until_all(
        &mut peers,
        &mut seen,
        &alive,
        (0, "mesh_send"),
        &mut nonce,
        Duration::from_secs(120),
    );
    let cells: BTreeSet<u64> = alive.iter().map(|i| seen.cell(*i)).collect();
    assert!(
        cells.len() >= 3,
        "twenty-four peers in cells of four: {cells:?}"
    );
    let mates = |seen: &Seen, i: usize| -> BTreeSet<usize> {
        alive
            .iter()
            .copied()
            .filter(|j| *j != i && seen.cell(*j) == seen.cell(i))
            .collect()
    };

    // A speaker: seated, and heard in every cell.
    let first = 0;
    let first_id = peers[first].id.clone();
    let spoke = std::time::Instant::now();
    peers[first]
        .proc
        .cmd(json!({"cmd": "audio", "source": "sine:440"}));
    wait_seats(&mut peers, &mut seen, &alive, &[&first_id]);
    let seated_ms = spoke.elapsed().as_millis() as u64;
    for &i in alive.iter().filter(|i| **i != first) {
        wait_for(
            MEDIA_WAIT,
            &format!("peer {i} hearing the first speaker"),
            || (last_second_level(&wavs[i], 440.0) > HEARD_DB).then_some(()),
        );
    }
    // The last second at the last peer to pass holds the tone loud enough.
    let heard_everywhere_ms = spoke.elapsed().as_millis() as u64;

    // A second speaker in another cell takes the next seat and is heard everywhere too.
    let second = *alive
        .iter()
        .find(|i| seen.cell(**i) != seen.cell(first))
        .expect("a peer in another cell");
    let second_id = peers[second].id.clone();
    peers[second]
        .proc
        .cmd(json!({"cmd": "audio", "source": "sine:660"}));
    wait_seats(&mut peers, &mut seen, &alive, &[&first_id, &second_id]);
    for &i in alive.iter().filter(|i| **i != second) {
        wait_for(
            MEDIA_WAIT,
            &format!("peer {i} hearing the second speaker"),
            || (last_second_level(&wavs[i], 660.0) > HEARD_DB).then_some(()),
        );
    }

    // The first falls quiet: its seat empties (after its detector's hold), and the other
    // cells no longer hear it.
    peers[first]
        .proc
        .cmd(json!({"cmd": "audio", "source": "none"}));
    wait_seats(&mut peers, &mut seen, &alive, &[&second_id]);
    for &i in alive.iter().filter(|i| seen.cell(**i) != seen.cell(first)) {
        wait_for(
            MEDIA_WAIT,
            &format!("peer {i} no longer hearing the first"),
            || (last_second_level(&wavs[i], 440.0) < SILENT_DB).then_some(()),
        );
    }

    // Six speakers, one per cell where it can: four seats, two wait. Nobody receives more
    // voices than the seats plus its cell mates, and a waiting speaker is heard in its own
    // cell only.
    peers[second]
        .proc
        .cmd(json!({"cmd": "audio", "source": "none"}));
    wait_seats(&mut peers, &mut seen, &alive, &[]);

    // A raised hand takes a seat without a word, and gives it back when lowered.
    let hand = PEERS - 1;
    let hand_id = peers[hand].id.clone();
    peers[hand].proc.cmd(json!({"cmd": "hand"}));
    wait_seats(&mut peers, &mut seen, &alive, &[&hand_id]);
    peers[hand]
        .proc
        .cmd(json!({"cmd": "hand", "raised": false}));
    wait_seats(&mut peers, &mut seen, &alive, &[]);

    let mut speakers: Vec<usize> = Vec::new();
    for cell in cells.iter().take(TONES.len()) {
        if let Some(i) = alive.iter().find(|i| seen.cell(**i) == *cell) {
            speakers.push(*i);
        }
    }
    for i in alive.iter() {
        if speakers.len() >= TONES.len() {
            break;
        }
        if !speakers.contains(i) {
            speakers.push(*i);
        }
    }
    for (n, &i) in speakers.iter().enumerate() {
        let hz = TONES[n];
        peers[i]
            .proc
            .cmd(json!({"cmd": "audio", "source": format!("sine:{hz}")}));
    }
    wait_for(MEDIA_WAIT, "four seats taken", || {
        seen.collect(&mut peers, &alive);
        alive
            .iter()
            .all(|i| seen.seated(*i).iter().flatten().count() == SEATS)
            .then_some(())
    });
    let seated: BTreeSet<String> = seen.seated(first).into_iter().flatten().collect();
    let ids: BTreeMap<String, usize> = alive.iter().map(|i| (peers[*i].id.clone(), *i)).collect();
    for s in &seated {
        assert!(
            speakers.contains(&ids[s]),
            "seated {s} is one of the speakers"
        );
    }
    // Every seated voice reaches every cell.
    for s in &seated {
        let hz = TONES[speakers.iter().position(|i| *i == ids[s]).unwrap_or(0)];
        for &i in alive.iter().filter(|i| **i != ids[s]) {
            wait_for(
                MEDIA_WAIT,
                &format!("peer {i} hearing seated {hz} Hz"),
                || (last_second_level(&wavs[i], hz) > HEARD_DB).then_some(()),
            );
        }
    }
    let received = voices(&mut peers, &alive);
    let mut most = 0;
    for (&i, heard) in &received {
        let mates = mates(&seen, i);
        let mate_ids: BTreeSet<&String> = mates.iter().map(|j| &peers[*j].id).collect();
        let from_afar: Vec<&String> = heard.iter().filter(|p| !mate_ids.contains(p)).collect();
        assert!(
            from_afar.len() <= SEATS,
            "peer {i} receives {} voices from other cells: {from_afar:?}",
            from_afar.len()
        );
        for p in &from_afar {
            assert!(
                seated.contains(*p),
                "peer {i} receives {p}, neither a cell mate nor seated"
            );
        }
        assert!(heard.len() <= SEATS + mates.len());
        most = most.max(heard.len());
    }
    // The waiting speakers are heard by their cell mates (and, as checked above, by no
    // one else: a mix of six clipped tones is no measure of an absent one).
    for &w in speakers.iter().filter(|i| !seated.contains(&peers[**i].id)) {
        for i in mates(&seen, w) {
            assert!(
                received[&i].contains(&peers[w].id),
                "peer {i} does not receive its cell mate {w}, a speaker waiting for a seat"
            );
        }
    }
    for &i in &speakers {
        peers[i].proc.cmd(json!({"cmd": "audio", "source": "none"}));
    }
    wait_seats(&mut peers, &mut seen, &alive, &[]);

    // A presenter, with the stamped test pattern: its pictures reach every cell.
    let presenter = PEERS / 2;
    let presenter_id = peers[presenter].id.clone();
    peers[presenter]
        .proc
        .cmd(json!({"cmd": "video", "source": "testsrc:320x180@15"}));
    let presented = std::time::Instant::now();
    peers[presenter].proc.cmd(json!({"cmd": "present"}));
    wait_presenter(&mut peers, &mut seen, &alive, Some(&presenter_id));
    // Its voice holds a seat, silent or not.
    wait_seats(&mut peers, &mut seen, &alive, &[&presenter_id]);
    let others: Vec<usize> = alive.iter().copied().filter(|i| *i != presenter).collect();
    for &i in &others {
        wait_for(
            MEDIA_WAIT,
            &format!(
                "peer {i} (cell {}) saving the presenter's pictures",
                seen.cell(i)
            ),
            || (counters(&frames[i], &presenter_id).len() >= 4).then_some(()),
        );
    }
    let seen_everywhere_ms = presented.elapsed().as_millis() as u64;
    for &i in &others {
        let got = counters(&frames[i], &presenter_id);
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "peer {i}'s pictures of the presenter out of order: {got:?}"
        );
        // No picture from outside its cell but the presenter's is decoded.
        let stats = peers[i].proc.stats();
        let mates = mates(&seen, i);
        for video in stats["video"].as_array().into_iter().flatten() {
            let from = video["peer"].as_str().unwrap_or_default();
            assert!(
                from == presenter_id || mates.iter().any(|m| peers[*m].id == from),
                "peer {i} decodes pictures of {from}, neither a cell mate nor the presenter"
            );
        }
    }
    // It stops presenting: the other cells stop receiving its pictures, its cell mates
    // (linked to it) go on.
    peers[presenter]
        .proc
        .cmd(json!({"cmd": "present", "on": false}));
    wait_presenter(&mut peers, &mut seen, &alive, None);
    let far: Vec<usize> = others
        .iter()
        .copied()
        .filter(|i| seen.cell(*i) != seen.cell(presenter))
        .collect();
    let near: Vec<usize> = others
        .iter()
        .copied()
        .filter(|i| seen.cell(*i) == seen.cell(presenter))
        .collect();
    let saved = |who: &[usize]| -> BTreeMap<usize, usize> {
        who.iter()
            .map(|i| (*i, counters(&frames[*i], &presenter_id).len()))
            .collect()
    };
    // The cell mates go on: each saves four more pictures (twice, the first while what
    // was on its way to the other cells settles).
    let mut before = BTreeMap::new();
    for round in 0..2 {
        let near_before = saved(&near);
        for &i in &near {
            wait_for(
                MEDIA_WAIT,
                &format!("cell mate {i} still saving the presenter's pictures"),
                || (counters(&frames[i], &presenter_id).len() >= near_before[&i] + 4).then_some(()),
            );
        }
        if round == 0 {
            before = saved(&far);
        }
    }
    let after = saved(&far);
    for &i in &far {
        assert!(
            after[&i] <= before[&i] + 1,
            "peer {i} in another cell goes on receiving the presenter: {} pictures, then {}",
            before[&i],
            after[&i]
        );
    }

    // It presents again, and a bridge peer of another cell, which passes its pictures on,
    // dies: the peers it fed take them from another neighbour (those it stopped are asked
    // again once the source falls silent) and go on from a keyframe, in order.
    peers[presenter].proc.cmd(json!({"cmd": "present"}));
    wait_presenter(&mut peers, &mut seen, &alive, Some(&presenter_id));
    // The bridge peers outside its cell, and how many packets each passed on so far.
    let bridges: Vec<usize> = others
        .iter()
        .copied()
        .filter(|i| seen.cell(*i) != seen.cell(presenter) && seen.state[i]["is_bridge"] == true)
        .collect();
    let forwarded = |peers: &mut [Peer]| -> BTreeMap<usize, u64> {
        bridges
            .iter()
            .map(|&i| {
                let stats = peers[i].proc.stats();
                (i, stats["forwarded_packets"].as_u64().unwrap_or(0))
            })
            .collect()
    };
    let before = forwarded(&mut peers);
    for &i in &others {
        let had = counters(&frames[i], &presenter_id).len();
        wait_for(
            MEDIA_WAIT,
            &format!("peer {i} saving the presenter's pictures again"),
            || (counters(&frames[i], &presenter_id).len() >= had + 2).then_some(()),
        );
    }
    // The one that passed on the most meanwhile: some peers take the pictures from it.
    let after = forwarded(&mut peers);
    let victim = *bridges
        .iter()
        .max_by_key(|i| after[*i] - before[*i])
        .expect("a bridge peer outside the presenter's cell");
    assert!(
        after[&victim] > before[&victim],
        "no bridge outside the presenter's cell passes its pictures on"
    );
    let survivors: Vec<usize> = others.iter().copied().filter(|i| *i != victim).collect();
    let killed = std::time::SystemTime::now();
    let killed_ms = killed
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64 as u32);
    peers[victim].proc.kill();
    let mut longest_ms = 0u64;
    for &i in &survivors {
        // The first picture captured after the kill, and when it was saved.
        let resumed = wait_for(
            MEDIA_WAIT,
            &format!(
                "peer {i} (cell {}) seeing the presenter after a forwarder died",
                seen.cell(i)
            ),
            || captured_after(&frames[i], &presenter_id, killed_ms),
        );
        let gap = resumed
            .duration_since(killed)
            .map_or(0, |d| d.as_millis() as u64);
        longest_ms = longest_ms.max(gap);
        let got = counters(&frames[i], &presenter_id);
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "peer {i}'s pictures of the presenter out of order after the death: {got:?}"
        );
    }
    println!(
        "{}",
        json!({
            "peers": PEERS,
            "cells": cells.len(),
            "seated": seated.len(),
            "speaking_to_seated_everywhere_ms": seated_ms,
            "speaking_to_loud_in_every_cell_ms": heard_everywhere_ms,
            "most_voices_received_by_one_peer": most,
            "presenting_to_pictures_in_every_cell_ms": seen_everywhere_ms,
            "forwarder_death_to_every_survivors_picture_ms": longest_ms,
        })
    );
}
