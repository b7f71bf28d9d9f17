//! Media down a broadcast tree: a root publishing the stamped test pattern and a tone, and
//! fourteen viewers under it with at most three children each. Every viewer, whatever its
//! depth, decodes the pattern in order and hears the tone: the peers in between pass the
//! packets on without decoding them. Then an inner peer is killed: its children find new
//! parents and every survivor's pictures go on, still in order. Then the deepest viewer
//! raises its hand: the root hears of it through the tree, a viewer's own word to put
//! someone on stage is refused, and the root's puts the hand on stage: every peer is
//! told, and every other peer, the root too, hears its voice, where before only its
//! parent did; it does not hear itself.
//!
//! It prints how long the killed peer's children went without a picture (docs/benchmarks.md
//! records it; nothing is asserted on it).

use plenum_e2e::cli as common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use plenum_media::analysis::{dominant_frequency, tone_level_db};
use plenum_media::{SAMPLE_RATE, VideoFrame, read_stamp};
use serde_json::{Value, json};

const VIEWERS: usize = 14;
const TONE: f64 = 440.0;
/// The raised hand's voice.
const HAND: f64 = 660.0;

/// The level of `hz` in the last second `wav` recorded (dB; very low when absent).
fn last_second_level(wav: &Path, hz: f64) -> f64 {
    let heard = recorded_so_far(wav);
    let last = &heard[heard.len().saturating_sub(SAMPLE_RATE as usize)..];
    tone_level_db(last, SAMPLE_RATE, hz)
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plenum-tree-media-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// A picture a viewer saved.
struct Saved {
    name: String,
    counter: u32,
    /// When the root captured it (its wall clock, low 32 bits of Unix milliseconds).
    capture_ms: u32,
    saved: SystemTime,
}

/// Every picture saved in `dir` so far, in the order the peer saved them (each sender's
/// files are numbered; a new parent's start again at 1).
fn pictures(dir: &Path) -> Vec<Saved> {
    let mut files: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                Some((
                    e.metadata().ok()?.modified().ok()?,
                    e.file_name().into_string().ok()?,
                ))
            })
            .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter_map(|(saved, name)| {
            // A file still being written reads as an error; it is skipped.
            let got = VideoFrame::load_png(&dir.join(&name)).ok()?;
            let stamp = read_stamp(&got).unwrap_or_else(|| panic!("{name} has no stamp"));
            Some(Saved {
                name,
                counter: stamp.counter,
                capture_ms: stamp.capture_ms,
                saved,
            })
        })
        .collect()
}

/// The counters of one sender's files, in the order it numbered them.
fn in_order(saved: &[Saved]) -> BTreeMap<String, Vec<u32>> {
    let mut by_sender: BTreeMap<String, Vec<(String, u32)>> = BTreeMap::new();
    for p in saved {
        let sender = p.name.split('-').next().unwrap_or_default().to_owned();
        by_sender
            .entry(sender)
            .or_default()
            .push((p.name.clone(), p.counter));
    }
    by_sender
        .into_iter()
        .map(|(sender, mut files)| {
            files.sort();
            (sender, files.into_iter().map(|(_, c)| c).collect())
        })
        .collect()
}

/// Every picture in order, and all of them the root's, whichever neighbour forwarded them.
fn assert_in_order(i: usize, saved: &[Saved], root: &str) {
    for (sender, counters) in in_order(saved) {
        assert_eq!(
            sender, root,
            "viewer {i} shows the root's pictures under another name"
        );
        assert!(
            counters.windows(2).all(|w| w[0] < w[1]),
            "viewer {i}'s pictures from {sender} out of order: {counters:?}"
        );
    }
}

/// The newest frame counter among the pictures of `dir`.
fn newest(dir: &Path) -> u32 {
    pictures(dir).iter().map(|p| p.counter).max().unwrap_or(0)
}

/// The newest `tree_state` of each viewer that reported one.
fn states(viewers: &mut [Peer], alive: &BTreeSet<usize>, into: &mut BTreeMap<usize, Value>) {
    for &i in alive {
        for v in viewers[i].proc.drain_for(Duration::ZERO) {
            if event(&v) == "tree_state" {
                into.insert(i, v);
            }
        }
    }
}

#[test]
fn the_roots_video_and_tone_reach_every_peer_and_resume_after_a_forwarder_dies() {
    let server = serve(&[]);
    let tree = ["--topology", "tree", "--max-degree", "3"];
    let mut root_args = tree.to_vec();
    root_args.extend([
        "--root",
        "--secret",
        "s3cret",
        "--video",
        "testsrc:320x180@15",
        "--audio",
        "sine:440",
    ]);
    let dir = scratch("run");
    let root_wav = dir.join("heard-root.wav");
    root_args.extend(["--record-audio", root_wav.to_str().expect("utf-8")]);
    let mut root = join(&server.url, "webinar", "root", &root_args);
    root.proc.expect(Duration::from_secs(10), "crowned", |v| {
        event(v) == "tree_state" && v["is_root"] == true
    });

    let frames: Vec<PathBuf> = (0..VIEWERS)
        .map(|i| dir.join(format!("frames-{i}")))
        .collect();
    let wavs: Vec<PathBuf> = (0..VIEWERS)
        .map(|i| dir.join(format!("heard-{i}.wav")))
        .collect();
    let mut viewers: Vec<Peer> = (0..VIEWERS)
        .map(|i| {
            let mut args = tree.to_vec();
            args.extend([
                "--save-frames",
                frames[i].to_str().expect("utf-8"),
                "--save-frames-per-second",
                "5",
                "--record-audio",
                wavs[i].to_str().expect("utf-8"),
            ]);
            join(&server.url, "webinar", &format!("v{i}"), &args)
        })
        .collect();
    let mut alive: BTreeSet<usize> = (0..VIEWERS).collect();

    // Two seconds of pictures at every viewer, and two seconds of the tone.
    for (i, path) in frames.iter().enumerate() {
        wait_for(MEDIA_WAIT, &format!("eight pictures at viewer {i}"), || {
            (pictures(path).len() >= 8).then_some(())
        });
    }
    for (i, wav) in wavs.iter().enumerate() {
        wait_recorded(wav, 0, 2.0, &format!("the tone at viewer {i}"));
        let heard = recorded_so_far(wav);
        let last = &heard[heard.len().saturating_sub(SAMPLE_RATE as usize)..];
        let f = dominant_frequency(last, SAMPLE_RATE);
        assert!((f - TONE).abs() < 5.0, "viewer {i} hears {f} Hz");
    }
    let mut state = BTreeMap::new();
    states(&mut viewers, &alive, &mut state);
    let depth = |s: &Value| s["depth"].as_u64().unwrap_or(0);
    let deepest = state.values().map(depth).max().unwrap_or(0);
    assert!(
        deepest >= 2,
        "some viewer must be reached through a forwarder: {state:#?}"
    );
    for (i, s) in &state {
        assert_eq!(s["root"], root.id.as_str(), "viewer {i} knows the root");
    }
    for (i, path) in frames.iter().enumerate() {
        assert_in_order(i, &pictures(path), &root.id);
    }

    // Kill a forwarder: its children rejoin and their pictures resume.
    let inner = *state
        .iter()
        .find(|(_, s)| s["children"].as_array().is_some_and(|c| !c.is_empty()))
        .expect("a viewer with children")
        .0;
    let orphans: Vec<usize> = state[&inner]["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter_map(|c| {
            viewers
                .iter()
                .position(|v| Some(v.id.as_str()) == c.as_str())
        })
        .collect();
    assert!(!orphans.is_empty());
    let before: BTreeMap<usize, u32> = orphans.iter().map(|&i| (i, newest(&frames[i]))).collect();
    let killed = SystemTime::now();
    let killed_ms = killed
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64 as u32);
    viewers[inner].proc.kill();
    alive.remove(&inner);
    let mut gaps = Vec::new();
    for &i in &orphans {
        // The first picture captured after the kill, and when the orphan saved it.
        let resumed = wait_for(MEDIA_WAIT, &format!("orphan {i}'s pictures again"), || {
            pictures(&frames[i])
                .iter()
                .filter(|p| {
                    p.counter > before[&i] && p.capture_ms.wrapping_sub(killed_ms) < 1 << 31
                })
                .map(|p| p.saved)
                .min()
        });
        gaps.push(
            resumed
                .duration_since(killed)
                .map_or(0, |d| d.as_millis() as u64),
        );
    }
    // Every survivor sees the pattern go on, in order.
    let now: BTreeMap<usize, u32> = alive.iter().map(|&i| (i, newest(&frames[i]))).collect();
    for &i in &alive {
        wait_for(MEDIA_WAIT, &format!("viewer {i}'s pictures go on"), || {
            (newest(&frames[i]) > now[&i] + 15).then_some(())
        });
        assert_in_order(i, &pictures(&frames[i]), &root.id);
    }
    // The deepest viewer raises its hand and speaks: only its parent hears it.
    states(&mut viewers, &alive, &mut state);
    let hand = *alive
        .iter()
        .max_by_key(|i| state.get(*i).map_or(0, depth))
        .expect("a viewer");
    let hand_parent = state[&hand]["parent"]
        .as_str()
        .expect("a parent")
        .to_owned();
    let parent = alive
        .iter()
        .copied()
        .find(|i| viewers[*i].id == hand_parent);
    viewers[hand]
        .proc
        .cmd(json!({"cmd": "audio", "source": format!("sine:{HAND}")}));
    let far = *alive
        .iter()
        .find(|i| **i != hand && Some(**i) != parent)
        .expect("a viewer far from the hand");
    if let Some(parent) = parent {
        wait_for(MEDIA_WAIT, "the hand's parent hearing it", || {
            (last_second_level(&wavs[parent], HAND) > -20.0).then_some(())
        });
        let level = last_second_level(&wavs[far], HAND);
        assert!(
            level < -35.0,
            "viewer {far} hears the hand at {level} dB before the stage"
        );
    }
    // The hand goes up the tree: the presenter (the root) hears of it.
    let speaker = viewers[hand].id.clone();
    viewers[hand].proc.cmd(json!({"cmd": "hand"}));
    // It names the viewer as it named itself: the root is not linked to it.
    let hand_name = format!("v{hand}");
    root.proc
        .expect(MEDIA_WAIT, "the raised hand at the root", |v| {
            event(v) == "hand"
                && v["peer"] == speaker.as_str()
                && v["name"] == hand_name.as_str()
                && v["raised"] == true
        });
    // Only the root puts anyone on stage: a viewer's word is refused.
    let far_id = viewers[far].id.clone();
    viewers[far]
        .proc
        .cmd(json!({"cmd": "stage", "peer": far_id}));
    viewers[far]
        .proc
        .expect(MEDIA_WAIT, "a viewer's stage refused", |v| {
            event(v) == "error" && v["code"] == "stage_refused"
        });
    // The presenter accepts it: the word goes down the tree, with the name the hand came
    // with (most viewers have no link to the speaker), and everyone hears it.
    root.proc.cmd(json!({"cmd": "stage", "peer": speaker}));
    for &i in &alive {
        viewers[i]
            .proc
            .expect(MEDIA_WAIT, &format!("viewer {i} told the stage"), |v| {
                event(v) == "stage"
                    && v["speaker"] == speaker.as_str()
                    && v["name"] == hand_name.as_str()
            });
    }
    wait_for(MEDIA_WAIT, "the root hearing the hand", || {
        (last_second_level(&root_wav, HAND) > -20.0).then_some(())
    });
    for &i in alive.iter().filter(|i| **i != hand) {
        wait_for(MEDIA_WAIT, &format!("viewer {i} hearing the hand"), || {
            (last_second_level(&wavs[i], HAND) > -20.0).then_some(())
        });
        assert!(
            last_second_level(&wavs[i], TONE) > -20.0,
            "viewer {i} still hears the root"
        );
    }
    let itself = last_second_level(&wavs[hand], HAND);
    assert!(itself < -35.0, "the hand hears itself at {itself} dB");

    // The peers in between forwarded what they received; the leaves forwarded nothing.
    for &i in &alive {
        viewers[i].proc.cmd(json!({"cmd": "stats"}));
        let stats = viewers[i]
            .proc
            .expect(Duration::from_secs(10), "stats", |v| event(v) == "stats");
        let forwarded = stats["forwarded_packets"]
            .as_u64()
            .expect("forwarded_packets");
        states(&mut viewers, &alive, &mut state);
        let children = state[&i]["children"].as_array().map_or(0, Vec::len);
        if children > 0 {
            assert!(
                forwarded > 0,
                "viewer {i} has {children} children and forwarded nothing"
            );
        }
    }

    println!(
        "{}",
        json!({
            "viewers": VIEWERS,
            "max_degree": 3,
            "deepest": deepest,
            "orphans": orphans.len(),
            "kill_to_orphans_picture_ms": gaps,
        })
    );
    // The peers end before their directory goes.
    drop(viewers);
    drop(root);
    let _ = std::fs::remove_dir_all(&dir);
}
