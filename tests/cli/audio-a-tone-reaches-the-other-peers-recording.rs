//! Audio between real `plenum join` processes: a peer publishing `sine:440` is recorded by
//! another at 440 Hz and the source's level without holes; three peers each hear the other
//! two and not themselves; bad sources get clear errors while the peer stays in the room.

use plenum_e2e::cli as common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{event, serve, spawn_join};
use plenum_media::analysis::{dominant_frequency, longest_silence_ms, rms_dbfs, tone_level_db};
use plenum_media::{AudioSource, SAMPLE_RATE, Sine};
use serde_json::json;

const LONG: Duration = Duration::from_secs(20);

fn wav_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("plenum-audio-{}-{tag}.wav", std::process::id()))
}

fn recording(path: &Path) -> Vec<f32> {
    common::recording(path, 0.0)
}

fn joined(proc: &mut common::Proc) -> String {
    proc.expect(LONG, "joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Peer `a` publishes `source`, peer `b` records it; `b`'s recording once it holds three
/// seconds of `a` (more than two, checked), and its path.
fn three_seconds_at_b(source: &str, room: &str) -> (Vec<f32>, PathBuf) {
    let server = serve(&[]);
    let path = wav_path(room);
    let mut a = spawn_join(&server.url, room, "a", &["--audio", source]);
    let a_id = joined(&mut a);
    let mut b = spawn_join(
        &server.url,
        room,
        "b",
        &["--record-audio", path.to_str().expect("utf-8")],
    );
    joined(&mut b);
    b.expect(LONG, "a speaks", |v| {
        event(v) == "speaking" && v["peer"] == a_id.as_str() && v["speaking"] == true
    });
    common::wait_recorded(&path, 0, 3.0, "three seconds of a at b");
    b.cmd(json!({"cmd": "leave"}));
    assert_eq!(b.wait_exit(LONG), Some(0));
    a.cmd(json!({"cmd": "leave"}));
    let heard = recording(&path);
    assert!(
        heard.len() > 2 * SAMPLE_RATE as usize,
        "{} samples",
        heard.len()
    );
    (heard, path)
}

#[test]
fn a_tone_is_recorded_at_its_frequency_and_level_without_gaps() {
    let (heard, path) = three_seconds_at_b("sine:440", "tone");
    let settled = &heard[SAMPLE_RATE as usize..];
    let f = dominant_frequency(settled, SAMPLE_RATE);
    assert!((f - 440.0).abs() < 2.0, "recorded {f} Hz");
    let mut source = vec![0.0; SAMPLE_RATE as usize];
    Sine::new(440.0, 0.5).read(&mut source);
    let (sent, got) = (rms_dbfs(&source), rms_dbfs(settled));
    assert!(
        (sent - got).abs() < 3.0,
        "recorded at {got} dBFS, sent at {sent}"
    );
    let gap = longest_silence_ms(settled, SAMPLE_RATE, -40.0);
    assert!(gap <= 60.0, "a {gap} ms gap after the first second");
    std::fs::remove_file(&path).expect("cleanup");
}

#[test]
fn three_peers_each_record_the_two_others_and_not_themselves() {
    let server = serve(&[]);
    let tones = [300.0, 500.0, 700.0];
    let paths: Vec<PathBuf> = (0..3).map(|i| wav_path(&format!("three-{i}"))).collect();
    let mut peers: Vec<common::Proc> = tones
        .iter()
        .zip(&paths)
        .enumerate()
        .map(|(i, (tone, path))| {
            let audio = format!("sine:{tone}");
            spawn_join(
                &server.url,
                "trio",
                &format!("p{i}"),
                &[
                    "--audio",
                    &audio,
                    "--record-audio",
                    path.to_str().expect("utf-8"),
                ],
            )
        })
        .collect();
    for p in &mut peers {
        joined(p);
        for _ in 0..2 {
            p.expect(LONG, "the two others speak", |v| {
                event(v) == "speaking" && v["speaking"] == true
            });
        }
    }
    // Every peer hears both others now: two seconds more of them on every recording.
    let from: Vec<usize> = paths
        .iter()
        .map(|path| common::recorded_so_far(path).len())
        .collect();
    for (path, from) in paths.iter().zip(from) {
        common::wait_recorded(path, from, 2.0, "two seconds of the two others");
    }
    for p in &mut peers {
        p.cmd(json!({"cmd": "leave"}));
        assert_eq!(p.wait_exit(LONG), Some(0));
    }
    for (i, path) in paths.iter().enumerate() {
        let heard = recording(path);
        let settled = &heard[SAMPLE_RATE as usize / 2..];
        for (j, tone) in tones.iter().enumerate() {
            let level = tone_level_db(settled, SAMPLE_RATE, *tone);
            if i == j {
                assert!(level < -30.0, "p{i} records itself at {level} dB");
            } else {
                assert!(level > -10.0, "p{i} records p{j} only at {level} dB");
            }
        }
        std::fs::remove_file(path).expect("cleanup");
    }
}

#[test]
fn bad_audio_sources_are_refused_and_the_peer_stays() {
    let server = serve(&[]);
    let mut a = spawn_join(&server.url, "bad", "a", &["--audio", "mic:does-not-exist"]);
    let a_id = joined(&mut a);
    let err = a.expect(LONG, "a device error", |v| event(v) == "error");
    assert_eq!(err["code"], "audio_device", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("does-not-exist"),
        "{err}"
    );
    let mut b = spawn_join(&server.url, "bad", "b", &["--audio", "sine:lots"]);
    joined(&mut b);
    let err = b.expect(LONG, "a bad spec", |v| event(v) == "error");
    assert_eq!(err["code"], "bad_audio", "{err}");
    b.expect(LONG, "a joins b", |v| {
        event(v) == "peer_join" && v["peer"] == a_id.as_str()
    });
    // Still in the room and usable: another source can be chosen without leaving.
    b.cmd(json!({"cmd": "audio", "source": "file:/does/not/exist.wav"}));
    let err = b.expect(LONG, "a missing file", |v| event(v) == "error");
    assert_eq!(err["code"], "audio_file", "{err}");
    b.cmd(json!({"cmd": "audio", "source": "sine:600"}));
    b.expect(LONG, "publishing", |v| event(v) == "audio");
    a.expect(LONG, "b speaks", |v| {
        event(v) == "speaking" && v["speaking"] == true
    });
    b.cmd(json!({"cmd": "mute"}));
    a.expect(LONG, "b is quiet after muting", |v| {
        event(v) == "speaking" && v["speaking"] == false
    });
    b.cmd(json!({"cmd": "leave"}));
    assert_eq!(b.wait_exit(LONG), Some(0));
}

/// The join chime the app plays (assets/sounds/join.wav, shared by the app and these tests)
/// streams from a file source across a real link: the far side hears both of its notes, and
/// not a note the chime does not have.
#[test]
fn the_apps_join_chime_from_assets_crosses_a_link() {
    let chime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sounds/join.wav");
    assert!(chime.is_file(), "{} is missing", chime.display());
    let (heard, path) = three_seconds_at_b(&format!("file:{}", chime.display()), "chime");
    let settled = &heard[SAMPLE_RATE as usize..];
    let level = |hz| tone_level_db(settled, SAMPLE_RATE, hz);
    let (low, high, absent) = (level(660.0), level(880.0), level(440.0));
    assert!(low > -12.0, "the chime's 660 Hz note at {low} dB");
    assert!(high > -12.0, "the chime's 880 Hz note at {high} dB");
    assert!(absent < -25.0, "440 Hz, not in the chime, at {absent} dB");
    std::fs::remove_file(&path).expect("cleanup");
}
