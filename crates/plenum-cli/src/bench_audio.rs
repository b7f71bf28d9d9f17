//! `plenum bench audio`: mouth-to-ear latency between two peers on loopback, Opus speed and voice processing speed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plenum::{Room, RoomEvent};
use plenum_media::{
    AudioSink, AudioSource, FRAME_SAMPLES, OpusConfig, OpusDecoder, OpusEncoder, ProcessingConfig,
    Sine, VoiceProcessor,
};
use serde_json::{Value, json};

use crate::bench::{linked_pair, loopback_peer, summary, wait_for};

#[derive(Debug, clap::Args)]
pub(crate) struct AudioArgs {
    /// Clicks timed from source to sink.
    #[arg(long, default_value_t = 50)]
    clicks: usize,
}

/// Emits a 20 ms burst every 400 ms and notes when each left.
struct Clicker {
    frame: u64,
    tone: Sine,
    sent: Arc<Mutex<Vec<Instant>>>,
}

impl AudioSource for Clicker {
    fn read(&mut self, out: &mut [f32]) {
        self.frame += 1;
        if self.frame.is_multiple_of(20) {
            self.tone.read(out);
            if let Ok(mut sent) = self.sent.lock() {
                sent.push(Instant::now());
            }
        } else {
            out.fill(0.0);
        }
    }
}

/// Notes when each burst arrives (the first loud frame after a quiet one).
struct Detector {
    loud: bool,
    heard: Arc<Mutex<Vec<Instant>>>,
}

impl AudioSink for Detector {
    fn write(&mut self, frame: &[f32]) {
        let loud = plenum_media::analysis::rms_dbfs(frame) > -30.0;
        if loud
            && !self.loud
            && let Ok(mut heard) = self.heard.lock()
        {
            heard.push(Instant::now());
        }
        self.loud = loud;
    }
}

fn opus_speed() -> anyhow::Result<(f64, f64)> {
    let mut enc = OpusEncoder::new(OpusConfig::default())?;
    let mut dec = OpusDecoder::new()?;
    let mut src = Sine::new(440.0, 0.5);
    let frames = 3000; // 60 s of audio
    let mut frame = vec![0.0; FRAME_SAMPLES];
    let mut packets = Vec::with_capacity(frames);
    let t = Instant::now();
    for _ in 0..frames {
        src.read(&mut frame);
        packets.push(enc.encode(&frame)?.to_vec());
    }
    let encode = t.elapsed();
    let t = Instant::now();
    for p in &packets {
        dec.decode(p, &mut frame)?;
    }
    let decode = t.elapsed();
    let audio = Duration::from_millis(20 * frames as u64).as_secs_f64();
    Ok((audio / encode.as_secs_f64(), audio / decode.as_secs_f64()))
}

/// Echo cancellation plus noise suppression on a microphone frame, with the speaker's frame as
/// the reference, as a multiple of real time on one core.
fn processing_speed() -> f64 {
    let mut processor = VoiceProcessor::new(ProcessingConfig::default());
    let (mut far, mut near) = (Sine::new(440.0, 0.5), Sine::new(1500.0, 0.2));
    let frames = 1500; // 30 s of audio
    let (mut played, mut heard) = (vec![0.0; FRAME_SAMPLES], vec![0.0; FRAME_SAMPLES]);
    let t = Instant::now();
    for _ in 0..frames {
        far.read(&mut played);
        processor.render(&played);
        near.read(&mut heard);
        for (h, p) in heard.iter_mut().zip(&played) {
            *h += 0.3 * p;
        }
        processor.capture(&mut heard);
    }
    Duration::from_millis(20 * frames as u64).as_secs_f64() / t.elapsed().as_secs_f64()
}

/// This process's CPU time so far (user + system), from /proc (Linux).
pub(crate) fn cpu_time() -> Option<Duration> {
    cpu_of("self")
}

/// CPU time the process `pid` (`self`: this one) has used.
pub(crate) fn cpu_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU used by a call of `peers` peers, all in this process, each publishing a tone (and,
/// with `video`, a test pattern of that size at 30 fps) and receiving the others, over
/// `seconds`: a share of one core.
pub(crate) async fn call_cpu(
    url: &str,
    peers: usize,
    seconds: u64,
    video: Option<(u32, u32)>,
) -> anyhow::Result<f64> {
    let mut rooms = Vec::new();
    for i in 0..peers {
        rooms.push(Room::join(loopback_peer(url, "cpu", &format!("p{i}"))?).await?);
    }
    for (room, events) in &mut rooms {
        let mut linked = 0;
        while linked < peers - 1 {
            wait_for(events, "links", |e| {
                matches!(e, RoomEvent::PeerJoin { .. }).then_some(())
            })
            .await?;
            linked += 1;
        }
        room.add_stream(
            Box::new(Sine::new(300.0 + 50.0 * linked as f64, 0.3)),
            json!({}),
        )
        .await?;
        if let Some((width, height)) = video {
            let pattern = plenum_media::TestPattern::new(width, height);
            room.add_video_stream(Box::new(pattern), json!({})).await?;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (t0, c0) = (Instant::now(), cpu_time());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (wall, c1) = (t0.elapsed(), cpu_time());
    for (room, _) in &rooms {
        room.leave().await;
    }
    let used = c1
        .zip(c0)
        .map(|(b, a)| b.saturating_sub(a))
        .unwrap_or_default();
    Ok(used.as_secs_f64() / wall.as_secs_f64())
}

pub(crate) async fn audio(args: &AudioArgs) -> anyhow::Result<Value> {
    let pair = linked_pair("audio").await?;
    let (url, a, b) = (&pair.url, &pair.a, &pair.b);
    let (sent, heard) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    b.set_audio_sink(Some(Box::new(Detector {
        loud: false,
        heard: heard.clone(),
    })))
    .await?;
    let clicker = Clicker {
        frame: 0,
        tone: Sine::new(1000.0, 0.5),
        sent: sent.clone(),
    };
    a.set_audio_source(Some(Box::new(clicker))).await?;
    tokio::time::sleep(Duration::from_millis(400 * (args.clicks as u64 + 3))).await;
    a.leave().await;
    b.leave().await;
    let (sent, heard) = (
        sent.lock().map(|s| s.clone()).unwrap_or_default(),
        heard.lock().map(|h| h.clone()).unwrap_or_default(),
    );
    // Pair every click with the first arrival after it (and before the next click).
    let mut latency = Vec::new();
    for (i, s) in sent.iter().enumerate() {
        let next = sent.get(i + 1).copied();
        if let Some(h) = heard
            .iter()
            .find(|h| *h > s && next.is_none_or(|n| **h < n))
        {
            latency.push(h.duration_since(*s).as_secs_f64() * 1000.0);
        }
    }
    let (encode_x, decode_x) = opus_speed()?;
    let six = call_cpu(url, 6, 10, None).await?;
    Ok(json!({
        "bench": "audio",
        "mouth_to_ear_ms": summary(latency),
        "clicks_sent": sent.len(),
        "clicks_heard": heard.len(),
        "includes": "source frame read -> Opus encode -> RTP/SRTP over loopback -> jitter buffer -> Opus decode -> mix -> sink write; excludes device buffers",
        "opus_encode_x_realtime": encode_x.round(),
        "opus_decode_x_realtime": decode_x.round(),
        "echo_cancel_and_noise_suppress_x_realtime": processing_speed().round(),
        "six_peer_call_cpu_cores": six,
        "six_peer_call": "6 peers in one process, full mesh (30 links), each publishing a tone and decoding the other 5, 10 s",
    }))
}
