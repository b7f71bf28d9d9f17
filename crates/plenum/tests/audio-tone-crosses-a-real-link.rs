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
    let speaking = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(RoomEvent::Speaking {
                peer,
                speaking: true,
            }) = b_events.recv().await
            {
                return peer;
            }
        }
    })
    .await
    .expect("speaking event");
    assert_eq!(&speaking, a.id());
    // The input level meter reads our own source: a 0.5 sine is -9 dBFS.
    let level = a.audio_level().await.expect("level");
    assert!((level + 9.03).abs() < 0.5, "{level} dBFS");
    assert_eq!(
        b.audio_level().await.expect("level"),
        f32::NEG_INFINITY,
        "b publishes nothing"
    );
    tape.take();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let heard = tape.take();
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
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(RoomEvent::Speaking {
                speaking: false, ..
            }) = b_events.recv().await
            {
                return;
            }
        }
    })
    .await
    .expect("stopped speaking");
    tape.take();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rms_dbfs(&tape.take()) < -60.0, "muted audio is silent");
    a.set_audio_muted(false).await.expect("unmute");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        tone_level_db(&tape.take(), SAMPLE_RATE, 440.0) > -6.0,
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
    tokio::time::sleep(Duration::from_secs(1)).await;
    for t in &tapes {
        t.take();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, tape) in tapes.iter().enumerate() {
        let heard = tape.take();
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
