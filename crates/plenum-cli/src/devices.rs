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

/// Prints the devices: one JSON object with `microphones`, `speakers`, `cameras` and
/// `screens` (monitors and windows), or lines.
pub(crate) fn run(json_out: bool) {
    let devices = plenum_media::device::list();
    let cameras = plenum_media::camera::cameras();
    // No display is not an error here: there is nothing to share.
    let screens = plenum_media::screen::screens().unwrap_or_default();
    let list = |ds: &[plenum_media::DeviceInfo]| {
        ds.iter()
            .map(|d| json!({"id": d.id, "name": d.name, "default": d.default}))
            .collect::<Vec<_>>()
    };
    if json_out {
        let value = json!({
            "microphones": list(&devices.inputs),
            "speakers": list(&devices.outputs),
            "cameras": cameras.iter().map(|c| json!({"index": c.index, "name": c.name})).collect::<Vec<_>>(),
            "screens": screens.iter().map(|s| json!({
                "kind": s.kind, "id": s.id, "name": s.name,
                "width": s.width, "height": s.height, "primary": s.primary,
            })).collect::<Vec<_>>(),
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
    println!("cameras:");
    for c in &cameras {
        println!("    {} ({})", c.name, c.index);
    }
    println!("screens:");
    for s in &screens {
        let mark = if s.primary { "* " } else { "  " };
        println!(
            "  {mark}{} {:?} {}x{} ({})",
            s.kind, s.name, s.width, s.height, s.id
        );
    }
}
