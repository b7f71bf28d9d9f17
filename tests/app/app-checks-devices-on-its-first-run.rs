//! The first run: a new user's app asks for a name and shows the device check before any
//! call. A real microphone (PulseAudio's null sink, with a tone played into it) moves the
//! level meter; the moving test pattern fills the camera preview; a microphone that cannot
//! be opened (the sound server stopped) is named plainly. The name and the check are remembered: the join screen comes next,
//! with the name filled in.

use plenum_e2e::app as support;
use plenum_e2e::pulse::Pulse;

use std::time::Duration;

use plenum_media::{AudioSource, SAMPLE_RATE, Sine, WavRecorder};
use serde_json::{Value, json};
use support::{Xvfb, artifacts_dir, wait_for};

const LONG: Duration = Duration::from_secs(60);

/// The level the meter shows, dBFS, once it shows one.
fn level(app: &plenum_e2e::webdriver::Session) -> Option<f64> {
    let meter = app.find("#check-level")?;
    app.attribute(&meter, "data-db")?.parse().ok()
}

/// Chooses `value` in the select `css` as a user would (the change event follows).
fn choose(app: &plenum_e2e::webdriver::Session, css: &str, value: &str) {
    app.execute(
        "const s = document.querySelector(arguments[0]); s.value = arguments[1]; s.dispatchEvent(new Event('change'));",
        json!([css, value]),
    );
}

#[test]
fn app_checks_devices_on_its_first_run() {
    let mut pulse = Pulse::start("first-run");
    let tone = pulse.dir().join("tone.wav");
    let mut recorder = WavRecorder::create(&tone).expect("tone file");
    let mut samples = vec![0.0; 120 * SAMPLE_RATE as usize];
    Sine::new(440.0, 0.5).read(&mut samples);
    recorder.write(&samples).expect("write tone");
    recorder.finish().expect("finish tone");
    let player = pulse.play(&tone);

    let xvfb = Xvfb::start();
    let (_driver, app, config) =
        support::start_first_run_app(&xvfb, "first-run", &[("PULSE_SERVER", pulse.server())]);

    // The first screen: a name and the device check, not the join screen.
    let name = wait_for(LONG, "the first-run screen", || app.find("#check-name"));
    assert!(app.find("#join-form").is_none(), "the join screen waits");

    // The microphone: the one PulseAudio offers (ALSA's pulse device).
    let options: Vec<String> = app
        .execute(
            "return [...document.querySelectorAll('#check-mic option')].map(o => o.value);",
            json!([]),
        )
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let pulse_mic = options
        .iter()
        .find(|o| o.contains("pulse"))
        .unwrap_or_else(|| panic!("a PulseAudio microphone among {options:?}"))
        .clone();
    choose(&app, "#check-mic", &pulse_mic);
    choose(&app, "#check-camera", "testsrc");

    // The tone (a sine of amplitude 0.5: -9 dBFS RMS) holds the meter at its level;
    // silence would keep it at the bottom.
    wait_for(LONG, "the tone's level on the meter", || {
        level(&app).filter(|db| (-13.0..=-5.0).contains(db))
    });
    // The test pattern fills the preview: pictures keep coming, and they are not blank.
    let preview = app.find("#check-preview").expect("the preview");
    wait_for(LONG, "pictures in the preview", || {
        app.attribute(&preview, "data-frames")
            .and_then(|f| f.parse::<u32>().ok())
            .filter(|n| *n >= 20)
    });
    let spread = app.execute(
        "const c = document.querySelector('#check-preview'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let lo = 255, hi = 0; for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i + 1]); hi = Math.max(hi, d[i + 1]); } return [c.width, hi - lo];",
        json!([]),
    );
    assert!(
        spread[0].as_u64().unwrap_or(0) >= 160,
        "a picture of the preview's size: {spread}"
    );
    assert!(
        spread[1].as_u64().unwrap_or(0) > 100,
        "the pattern, not a blank picture: {spread}"
    );
    for problem in ["#check-mic-problem", "#check-camera-problem"] {
        let el = app.find(problem).expect(problem);
        assert!(
            app.attribute(&el, "hidden").is_some(),
            "{problem} hidden while all works"
        );
    }
    xvfb.screenshot(&artifacts_dir().join("first-run-device-check.png"));

    // The sound server stops: checking again says plainly that the microphone is gone.
    drop(player);
    pulse.stop();
    choose(&app, "#check-mic", &pulse_mic);
    let problem = app
        .find("#check-mic-problem")
        .expect("the microphone's problem");
    let text = wait_for(LONG, "the missing microphone named", || {
        Some(app.text(&problem)).filter(|t| !t.is_empty())
    });
    assert!(text.contains("microphone"), "{text}");
    assert!(text.contains("will not hear you"), "{text}");
    xvfb.screenshot(&artifacts_dir().join("first-run-microphone-gone.png"));

    // Continue: the name is kept and the join screen follows, filled in.
    app.type_text(&name, "Nova");
    let join_name = support::click_until(&app, "#check-done", LONG, "the join screen", || {
        app.find("#join-name")
    });
    assert_eq!(app.property(&join_name, "value"), json!("Nova"));
    let prefs: Value = serde_json::from_slice(
        &std::fs::read(config.join("app.plenum.desktop/prefs.json")).expect("prefs written"),
    )
    .expect("prefs JSON");
    assert_eq!(prefs["name"], "Nova");
    assert_eq!(prefs["checked"], true);
    assert_eq!(prefs["microphone"], pulse_mic.as_str());
    let _ = std::fs::remove_dir_all(config);
}
