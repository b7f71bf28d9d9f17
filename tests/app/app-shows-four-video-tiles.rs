//! The real app under Xvfb in a call with four CLI peers, each sending the 640x360 test
//! pattern at 30 fps: every remote tile keeps drawing new pictures. The pictures drawn per
//! tile over a measured window (until every tile has drawn a set number more) are printed as
//! JSON (docs/benchmarks.md records them); the test asserts that they arrive, never how
//! fast.

use plenum_e2e::app as support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::cli::{self, Peer};
use support::webdriver::Session;
use support::{Driver, Xvfb, artifacts_dir, wait_for};

const LONG: Duration = Duration::from_secs(40);
/// The window the drawing rate is measured over: until every tile has drawn this many more
/// pictures (eight seconds of what is sent), however long a busy machine takes.
const WINDOW_PICTURES: u64 = 240;
const SENT_FPS: f64 = 30.0;

/// Pictures drawn so far on each peer's tile (`data-frames`).
fn drawn(app: &Session, peers: &[Peer]) -> Vec<u64> {
    let ids: Vec<&str> = peers.iter().map(|p| p.id.as_str()).collect();
    let v = app.execute(
        "return arguments[0].map((id) => Number(document.querySelector(`.tile[data-peer='${id}']`)?.dataset.frames ?? 0));",
        json!([ids]),
    );
    v.as_array()
        .map(|a| a.iter().map(|n| n.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default()
}

/// The other way to reach the view: hand it the encoded VP8 frames (a few kB each instead of
/// 0.9 MB of RGBA) and let the webview's WebCodecs `VideoDecoder` decode and draw them. Times
/// 150 frames of the 640x360 test pattern, decoded and drawn on a canvas.
fn webcodecs_decode_ms(app: &Session) -> serde_json::Value {
    use base64::Engine;
    let config = plenum_vpx::EncoderConfig {
        width: 640,
        height: 360,
        bitrate_kbps: plenum_vpx::EncoderConfig::bitrate_for(
            640,
            360,
            30,
            plenum_vpx::Content::Camera,
        ),
        fps: 30,
        content: plenum_vpx::Content::Camera,
    };
    let mut encoder = plenum_vpx::Encoder::new(config).expect("a VP8 encoder");
    let mut pattern = plenum_media::TestPattern::new(640, 360);
    let mut frames = Vec::new();
    for i in 0..150 {
        let picture = pattern.next_picture(i * 33);
        if let Some(f) = encoder
            .encode(&picture.data, 3000, i == 0)
            .expect("encodes")
        {
            frames.push(json!([
                f.keyframe,
                base64::engine::general_purpose::STANDARD.encode(&f.data)
            ]));
        }
    }
    let count = frames.len();
    let result = app.execute_async(
        "const [frames, done] = [arguments[0], arguments[arguments.length - 1]];
         const canvas = document.createElement('canvas'); canvas.width = 640; canvas.height = 360;
         const ctx = canvas.getContext('2d');
         let drawn = 0; let started = 0;
         const decoder = new VideoDecoder({
           output: (frame) => { ctx.drawImage(frame, 0, 0); frame.close(); drawn += 1;
             if (drawn === frames.length) done({ ms: performance.now() - started, drawn }); },
           error: (e) => done({ error: String(e) }),
         });
         decoder.configure({ codec: 'vp8', codedWidth: 640, codedHeight: 360 });
         const chunks = frames.map(([key, b64], i) => new EncodedVideoChunk({
           type: key ? 'key' : 'delta', timestamp: i * 33333,
           data: Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)) }));
         started = performance.now();
         for (const c of chunks) decoder.decode(c);
         decoder.flush().catch((e) => done({ error: String(e) }));",
        json!([frames]),
    );
    let ms = result["ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("WebCodecs failed: {result}"));
    json!({
        "frames": count,
        "ms_per_frame_decoded_and_drawn": (ms / count as f64 * 100.0).round() / 100.0,
    })
}

#[test]
fn four_remote_video_tiles_keep_drawing() {
    let server = cli::serve(&[]);
    let room = "tiles";
    let xvfb = Xvfb::start();
    let peers: Vec<Peer> = (0..4)
        .map(|i| {
            cli::join(
                &server.url,
                room,
                &format!("Peer {i}"),
                &["--video", "testsrc:640x360@30"],
            )
        })
        .collect();
    let config = std::env::temp_dir().join(format!("plenum-e2e-tiles-{}", std::process::id()));
    let driver = Driver::start(
        &xvfb.display,
        &[("XDG_CONFIG_HOME", config.to_str().unwrap())],
    );
    let args: Vec<String> = ["--server", &server.url, "--room", room, "--name", "Viewer"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let app = Session::start(driver.port, support::app_bin().as_ref(), &args);
    wait_for(LONG, "the call view", || app.find("#call"));
    // The participants grid: the tiles as a user watching four people sees them.
    app.click(&app.find("#mode-button").unwrap());
    wait_for(LONG, "every peer's pictures", || {
        drawn(&app, &peers).iter().all(|n| *n >= 10).then_some(())
    });

    // The pictures come over the faster of the two paths.
    wait_for(LONG, "the picture socket open", || {
        app.find("#call[data-pictures='socket']")
    });
    let before = drawn(&app, &peers);
    let started = Instant::now();
    let after = wait_for(Duration::from_secs(180), "every tile drawing on", || {
        let now = drawn(&app, &peers);
        let enough = now.len() == before.len()
            && now
                .iter()
                .zip(&before)
                .all(|(a, b)| *a >= b + WINDOW_PICTURES);
        enough.then_some(now)
    });
    let seconds = started.elapsed().as_secs_f64();
    let fps: Vec<f64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| (a - b) as f64 / seconds)
        .collect();
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        assert!(
            a > b,
            "peer {i}'s tile stopped drawing: {before:?} -> {after:?}"
        );
    }
    let tile_size = app.execute(
        "const c = document.querySelector('.tile[data-video=\"true\"] canvas.tile-video'); return [c.width, c.height];",
        json!([]),
    );
    let mean = fps.iter().sum::<f64>() / fps.len() as f64;
    // Whether this webview could decode the encoded frames itself (WebCodecs, VP8).
    let webcodecs = app.execute_async(
        "const done = arguments[arguments.length - 1];
         if (typeof VideoDecoder === 'undefined') { done('no VideoDecoder'); return; }
         VideoDecoder.isConfigSupported({ codec: 'vp8', codedWidth: 640, codedHeight: 360 })
           .then((r) => done(r.supported ? 'vp8 supported' : 'vp8 not supported'), (e) => done(String(e)));",
        json!([]),
    );
    // The two binary paths to the view, with picture-sized packets (640x360 and 1280x720
    // RGBA), while the four tiles keep streaming.
    let mut paths = Vec::new();
    for (count, bytes) in [(60, 640 * 360 * 4), (30, 1280 * 720 * 4)] {
        for transport in ["channel", "socket"] {
            let result = app.execute_async(
                "const done = arguments[arguments.length - 1];
                 window.plenumProbe(arguments[0], arguments[1], arguments[2]).then(done, (e) => done(String(e)));",
                json!([transport, count, bytes]),
            );
            let ms = result["ms"]
                .as_f64()
                .unwrap_or_else(|| panic!("the {transport} probe failed: {result}"));
            let per_packet = ms / f64::from(count);
            paths.push(json!({
                "transport": transport,
                "packet_bytes": bytes,
                "ms_per_packet": (per_packet * 100.0).round() / 100.0,
                "mbyte_per_s": (f64::from(count) * f64::from(bytes) / ms / 1000.0).round(),
            }));
        }
    }
    let webcodecs_decode = webcodecs_decode_ms(&app);
    let figures = json!({
        "bench": "app_video_tiles",
        "remote_tiles": peers.len(),
        "sent": "640x360 test pattern at 30 fps from each peer",
        "drawn_fps_per_tile": fps.iter().map(|f| (f * 10.0).round() / 10.0).collect::<Vec<_>>(),
        // Drawn over sent; a little over 1 when the window's edges catch an extra picture.
        "drawn_of_sent": (mean / SENT_FPS * 1000.0).round() / 1000.0,
        "dropped_percent": ((1.0 - mean / SENT_FPS).max(0.0) * 1000.0).round() / 10.0,
        "tile_picture_size": tile_size,
        "webview_webcodecs": webcodecs,
        "webcodecs_vp8_640x360": webcodecs_decode,
        "binary_paths": paths,
        "window_s": (seconds * 10.0).round() / 10.0,
        "path": "decode -> RGBA scaled to the tile -> raw bytes over the picture socket (loopback WebSocket) -> putImageData",
    });
    println!("{figures}");
    std::fs::write(
        artifacts_dir().join("app-video-tiles.json"),
        figures.to_string(),
    )
    .expect("figures written");
    xvfb.screenshot(&artifacts_dir().join("call-four-videos.png"));
}
