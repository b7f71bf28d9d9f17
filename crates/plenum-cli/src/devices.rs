//! `plenum devices`: the microphones and speakers this machine has.

use plenum_media::{AudioSource, Microphone};
use serde_json::json;

/// Opens a microphone by id or name (`None`: the default).
pub(crate) fn microphone(
    name: Option<&str>,
) -> Result<Option<Box<dyn AudioSource>>, (&'static str, String)> {
    Microphone::open(name)
        .map(|m| Some(Box::new(m) as Box<dyn AudioSource>))
        .map_err(|e| ("audio_device", e.to_string()))
}

/// Prints the devices: one JSON object with `microphones`, `speakers` and `cameras`, or lines.
pub(crate) fn run(json_out: bool) {
    let devices = plenum_media::device::list();
    let list = |ds: &[plenum_media::DeviceInfo]| {
        ds.iter()
            .map(|d| json!({"id": d.id, "name": d.name, "default": d.default}))
            .collect::<Vec<_>>()
    };
    if json_out {
        let value = json!({
            "microphones": list(&devices.inputs),
            "speakers": list(&devices.outputs),
            // Camera capture comes with video.
            "cameras": [],
        });
        println!("{value}");
        return;
    }
    for (title, ds) in [
        ("microphones", &devices.inputs),
        ("speakers", &devices.outputs),
    ] {
        println!("{title}:");
        for d in ds {
            println!(
                "  {}{} ({})",
                if d.default { "* " } else { "  " },
                d.name,
                d.id
            );
        }
    }
}
