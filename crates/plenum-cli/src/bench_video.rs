//! `plenum bench video`: VP8 speed, glass-to-glass latency on loopback read from the test
//! pattern's stamps, the CPU of a 4-peer call with video and audio, and what sharing the
//! screen on `DISPLAY` costs per picture.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plenum_media::{TestPattern, VideoFrame, VideoSink, read_stamp};
use plenum_vpx::{Content, Decoder, Encoder, EncoderConfig};
use serde_json::{Value, json};

use crate::bench::{linked_pair, summary};

#[derive(Debug, clap::Args)]
pub(crate) struct VideoArgs {
    /// Print one JSON object (the only output mode).
    #[arg(long)]
    json: bool,
    /// Seconds of 720p30 video timed for latency.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// Encode and decode speed of VP8 at a size, frames per second on one core.
pub(crate) fn codec_speed(width: u32, height: u32) -> anyhow::Result<Value> {
    let mut pattern = TestPattern::new(width, height);
    let pictures: Vec<VideoFrame> = (0..300).map(|i| pattern.next_picture(i)).collect();
    let config = EncoderConfig {
        width,
        height,
        bitrate_kbps: EncoderConfig::bitrate_for(width, height, 30, Content::Camera),
        fps: 30,
        content: Content::Camera,
    };
    let mut encoder = Encoder::new(config)?;
    let t = Instant::now();
    let mut frames = Vec::new();
    for (i, p) in pictures.iter().enumerate() {
        if let Some(f) = encoder.encode(&p.data, 3000, i == 0)? {
            frames.push(f.data);
        }
    }
    let encode = pictures.len() as f64 / t.elapsed().as_secs_f64();
    let mut decoder = Decoder::new()?;
    let t = Instant::now();
    for f in &frames {
        decoder.decode(f)?;
    }
    let decode = frames.len() as f64 / t.elapsed().as_secs_f64();
    let bytes: usize = frames.iter().map(Vec::len).sum();
    Ok(json!({
        "encode_fps": encode.round(),
        "decode_fps": decode.round(),
        "kbit_per_s_at_30fps": (bytes as f64 * 8.0 * 30.0 / frames.len().max(1) as f64 / 1000.0).round(),
    }))
}

/// What sharing a screen costs per picture on this display (`DISPLAY`): capturing it (xcap,
/// X11 GetImage) and converting it to I420, then encoding it as screen content.
fn screen_cost() -> Value {
    let screens = match plenum_media::screen::screens() {
        Ok(s) => s,
        Err(e) => return json!({"unavailable": e.to_string()}),
    };
    let Some(monitor) = screens.iter().find(|s| s.kind == "monitor") else {
        return json!({"unavailable": "no monitor"});
    };
    let mut grab = match plenum_media::screen::grabber(monitor) {
        Ok(g) => g,
        Err(e) => return json!({"unavailable": e}),
    };
    let mut capture = Vec::new();
    let mut pictures = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        match grab() {
            Ok(p) => pictures.push(p),
            Err(e) => return json!({"unavailable": e}),
        }
        capture.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (width, height) = (pictures[0].width, pictures[0].height);
    let config = EncoderConfig {
        width,
        height,
        bitrate_kbps: EncoderConfig::bitrate_for(width, height, 10, Content::Screen),
        fps: 10,
        content: Content::Screen,
    };
    let mut encode = Vec::new();
    let mut bytes = 0;
    match Encoder::new(config) {
        Ok(mut encoder) => {
            for (i, p) in pictures.iter().enumerate() {
                let t = Instant::now();
                if let Ok(Some(f)) = encoder.encode(&p.data, 9000, i == 0) {
                    bytes += f.data.len();
                }
                encode.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        Err(e) => return json!({"unavailable": e.to_string()}),
    }
    json!({
        "width": width,
        "height": height,
        "capture_ms": summary(capture),
        "encode_ms": summary(encode),
        "kbit_per_s_at_10fps": (bytes as f64 * 8.0 * 10.0 / pictures.len() as f64 / 1000.0).round(),
    })
}

/// Reads each received picture's stamp: latency from capture to decoded picture.
struct Stamps {
    latencies: Arc<Mutex<Vec<f64>>>,
    counters: Arc<Mutex<Vec<u32>>>,
}

impl VideoSink for Stamps {
    fn frame(&mut self, _peer: &str, _lane: plenum_media::Content, frame: VideoFrame) {
        let Some(stamp) = read_stamp(&frame) else {
            return;
        };
        if let Ok(mut l) = self.latencies.lock() {
            l.push(crate::video::since_capture_ms(stamp));
        }
        if let Ok(mut c) = self.counters.lock() {
            c.push(stamp.counter);
        }
    }
}

pub(crate) async fn video(args: &VideoArgs) -> anyhow::Result<Value> {
    let _ = args.json;
    let small = codec_speed(640, 360)?;
    let large = codec_speed(1280, 720)?;

    let pair = linked_pair("video").await?;
    let (url, a, b) = (&pair.url, &pair.a, &pair.b);
    let (latencies, counters) = (Arc::default(), Arc::default());
    b.set_video_sink(Some(Box::new(Stamps {
        latencies: Arc::clone(&latencies),
        counters: Arc::clone(&counters),
    })));
    a.add_video_stream(Box::new(TestPattern::new(1280, 720)), json!({}))
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Ok(mut l) = latencies.lock() {
        l.clear(); // the first second: the link settles, the first keyframe
    }
    let (t0, c0) = (Instant::now(), crate::bench_audio::cpu_time());
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (wall, c1) = (t0.elapsed(), crate::bench_audio::cpu_time());
    a.leave().await;
    b.leave().await;
    let latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let counters = counters.lock().map(|c| c.clone()).unwrap_or_default();
    let received = latencies.len();
    let pair_cpu = c1
        .zip(c0)
        .map(|(b, a)| b.saturating_sub(a).as_secs_f64() / wall.as_secs_f64());
    let four = crate::bench_audio::call_cpu(url, 4, 10, Some((640, 360))).await?;
    Ok(json!({
        "bench": "video",
        "codec": "VP8 (libvpx, real-time, cpu-used -8, one thread)",
        "vp8_640x360": small,
        "vp8_1280x720": large,
        "glass_to_glass_720p30_ms": summary(latencies),
        "glass_to_glass_includes": "pattern drawn -> VP8 encode -> RTP/SRTP over loopback -> reassembly -> VP8 decode -> sink; excludes camera exposure and display",
        "frames_received_per_s": (received as f64 / wall.as_secs_f64()).round(),
        "counters_in_order": counters.windows(2).all(|w| w[1] > w[0]),
        "two_peer_720p30_cpu_cores": pair_cpu,
        "four_peer_call_cpu_cores": four,
        "four_peer_call": "4 peers in one process, full mesh, each publishing 640x360 test pattern at 30 fps and a tone, decoding the other 3 of each, 10 s",
        "screen_share": tokio::task::spawn_blocking(screen_cost).await?,
        "screen_share_measures": "one picture of the first monitor on DISPLAY: xcap capture (X11 GetImage) + RGBA to I420, then VP8 encoding tuned for screen content at 10 fps",
    }))
}
