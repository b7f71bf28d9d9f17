//! `--audio` sources and `--record-audio` for the headless peer.

use std::path::Path;

use plenum_media::{AudioSource, Sine, WavSource};

/// What `--audio` asks for: `none`, `sine:FREQ`, `file:PATH.wav`, `mic` or `mic:NAME`.
pub(crate) fn source(spec: &str) -> Result<Option<Box<dyn AudioSource>>, (&'static str, String)> {
    let (kind, arg) = spec.split_once(':').unwrap_or((spec, ""));
    match kind {
        "none" if arg.is_empty() => Ok(None),
        "sine" => {
            let freq: f64 = arg
                .parse()
                .ok()
                .filter(|f: &f64| (20.0..=20_000.0).contains(f))
                .ok_or((
                    "bad_audio",
                    format!("sine needs a frequency in 20..=20000 Hz, not {arg:?}"),
                ))?;
            Ok(Some(Box::new(Sine::new(freq, 0.5))))
        }
        "file" => {
            let wav = WavSource::open(Path::new(arg)).map_err(|e| ("audio_file", e.to_string()))?;
            Ok(Some(Box::new(wav)))
        }
        "mic" => crate::devices::microphone((!arg.is_empty()).then_some(arg)),
        _ => Err((
            "bad_audio",
            format!("unknown audio source {spec:?}: use none, sine:FREQ, file:PATH or mic[:NAME]"),
        )),
    }
}
