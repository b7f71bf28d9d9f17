//! Audio over real webrtc-rs links: a sine published by one peer is heard by the others at
//! its frequency and level, without holes, and every peer hears the others but not itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plenum::{Room, RoomConfig, RoomEvent, RoomEvents};
use plenum_media::analysis::{dominant_frequency, longest_silence_ms, rms_dbfs, tone_level_db};
use plenum_media::{AudioSink, SAMPLE_RATE, Sine};
use plenum_signal::{Server, ServerConfig};

/// A sink that keeps everything it is given.
#[derive(Clone, Default)]
struct Tape(Arc<Mutex<Vec<f32>>>);

impl AudioSink for Tape {
    fn write(&mut self, frame: &[f32]) {
        self.0.lock().expect("tape").extend_from_slice(frame);
    }
}

impl Tape {
    fn take(&self) -> Vec<f32> {
        std::mem::take(&mut *self.0.lock().expect("tape"))
    }

    /// Waits until the tape holds `seconds` of sound, however long a busy machine takes to
    /// play it out, and takes it.
    async fn take_seconds(&self, seconds: f64) -> Vec<f32> {
        let want = (seconds * f64::from(SAMPLE_RATE)) as usize;
        let held = || self.0.lock().expect("tape").len();
        tokio::time::timeout(MEDIA_WAIT, async {
            while held() < want {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} of {want} samples after {MEDIA_WAIT:?}", held()));
        self.take()
    }
}

/// How long a test waits for sound to have played for as long as it needs.
const MEDIA_WAIT: Duration = Duration::from_secs(60);

/// Waits for the next `Speaking` event saying `speaking`; returns its peer.
async fn speaking(events: &mut RoomEvents, speaking: bool) -> plenum::PeerId {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Some(RoomEvent::Speaking { peer, speaking: s }) if s == speaking => return peer,
                Some(_) => {}
                None => panic!("the room closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no speaking={speaking} event"))
}

async fn join(url: &str, name: &str) -> (Room, RoomEvents) {
    let config = RoomConfig::builder("audio", name)
        .server(url)
        .udp_bind(vec!["127.0.0.1:0".parse().expect("addr")])
        .build()
        .expect("config");
    Room::join(config).await.expect("join")
}

async fn linked(events: &mut RoomEvents, n: usize) {
    let mut seen = 0;
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen < n {
            if let Some(RoomEvent::PeerJoin { .. }) = events.recv().await {
                seen += 1;
            }
        }
    })
    .await
    .expect("peers linked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tone_is_heard_at_its_frequency_and_level_without_gaps() {
    let server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        ServerConfig::default(),
    )
    .await
    .expect("server");
    let (a, mut a_events) = join(&server.url(), "a").await;
    let (b, mut b_events) = join(&server.url(), "b").await;
    linked(&mut a_events, 1).await;
    linked(&mut b_events, 1).await;
    let tape = Tape::default();
    b.set_audio_sink(Some(Box::new(tape.clone())))
        .await
        .expect("sink");
    a.set_audio_source(Some(Box::new(Sine::new(440.0, 0.5))))
        .await
        .expect("source");
    // b reports a speaking a.
    assert_eq!(&speaking(&mut b_events, true).await, a.id());
    // The input level meter reads our own source: a 0.5 sine is -9 dBFS.
    let level = a.audio_level().await.expect("level");
    assert!((level + 9.03).abs() < 0.5, "{level} dBFS");
    assert_eq!(
        b.audio_level().await.expect("level"),
        f32::NEG_INFINITY,
        "b publishes nothing"
    );
    tape.take();
    let heard = tape.take_seconds(3.0).await;
    assert!(
        heard.len() >= SAMPLE_RATE as usize * 2,
        "{} samples in 3 s",
        heard.len()
    );
    let f = dominant_frequency(&heard, SAMPLE_RATE);
    assert!((f - 440.0).abs() < 2.0, "heard {f} Hz");
    let sent_level = rms_dbfs(&{
        let mut s = vec![0.0; 48_000];
        plenum_media::AudioSource::read(&mut Sine::new(440.0, 0.5), &mut s);
        s
    });
    let level = rms_dbfs(&heard);
    assert!(
        (level - sent_level).abs() < 3.0,
        "heard {level} dBFS, sent {sent_level}"
    );
    let gap = longest_silence_ms(&heard, SAMPLE_RATE, -40.0);
    assert!(gap <= 60.0, "a {gap} ms gap");

    // Muting stops the sound (and b hears the speaker stop); unmuting brings it back.
    a.set_audio_muted(true).await.expect("mute");
    speaking(&mut b_events, false).await;
    tape.take();
    let muted = tape.take_seconds(0.5).await;
    assert!(rms_dbfs(&muted) < -60.0, "muted audio is silent");
    a.set_audio_muted(false).await.expect("unmute");
    assert_eq!(&speaking(&mut b_events, true).await, a.id());
    tape.take();
    assert!(
        tone_level_db(&tape.take_seconds(0.5).await, SAMPLE_RATE, 440.0) > -6.0,
        "unmuted tone back"
    );
    a.leave().await;
    b.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_each_hear_the_two_others_and_not_themselves() {
    let server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        ServerConfig::default(),
    )
    .await
    .expect("server");
    let tones = [330.0, 550.0, 770.0];
    let mut peers = Vec::new();
    for (i, _) in tones.iter().enumerate() {
        peers.push(join(&server.url(), &format!("p{i}")).await);
    }
    for (_, events) in &mut peers {
        linked(events, 2).await;
    }
    let tapes: Vec<Tape> = (0..3).map(|_| Tape::default()).collect();
    for ((room, _), (tape, tone)) in peers.iter().zip(tapes.iter().zip(tones)) {
        room.set_audio_sink(Some(Box::new(tape.clone())))
            .await
            .expect("sink");
        room.set_audio_source(Some(Box::new(Sine::new(tone, 0.3))))
            .await
            .expect("source");
    }
    // Every peer hears both others speak before its tape is listened to.
    for (room, events) in &mut peers {
        let mut heard = std::collections::BTreeSet::new();
        while heard.len() < 2 {
            let peer = speaking(events, true).await;
            if &peer != room.id() {
                heard.insert(peer);
            }
        }
    }
    for t in &tapes {
        t.take();
    }
    for (i, tape) in tapes.iter().enumerate() {
        let heard = tape.take_seconds(2.0).await;
        for (j, tone) in tones.iter().enumerate() {
            let level = tone_level_db(&heard, SAMPLE_RATE, *tone);
            if i == j {
                assert!(level < -30.0, "p{i} hears itself at {level} dB");
            } else {
                assert!(level > -10.0, "p{i} hears p{j} only at {level} dB");
            }
        }
    }
    for (room, _) in &peers {
        room.leave().await;
    }
}
