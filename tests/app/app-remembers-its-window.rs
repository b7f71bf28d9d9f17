//! The app remembers where its window was and how big: moved and resized, then ended (the
//! driver ends it as a logout or a kill would, with no close event), and started again, it
//! opens there.

use plenum_e2e::app as support;

use std::time::Duration;

use support::{Xvfb, wait_for};

const LONG: Duration = Duration::from_secs(60);

#[test]
fn app_opens_where_its_window_was_left() {
    let xvfb = Xvfb::start();
    let (driver, app, config) = support::start_app(&xvfb, support::app_bin(), &[], "window");
    wait_for(LONG, "the join screen", || app.find("#join-form"));
    let first = app.window_rect();
    let wanted = (140, 90, 1000, 640);
    assert_ne!(first, wanted, "the window starts elsewhere");
    app.set_window_rect(wanted);
    wait_for(LONG, "the window moved and resized", || {
        (app.window_rect() == wanted).then_some(())
    });
    // Remembered once the window is still, without waiting for a close.
    let state = config.join("app.plenum.desktop").join(".window-state.json");
    wait_for(LONG, "the window's place saved", || {
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state).ok()?).ok()?;
        (saved["main"]["width"] == 1000 && saved["main"]["x"] == 140).then_some(())
    });
    drop(app);
    drop(driver);

    let (_driver, app, _) = support::start_app(&xvfb, support::app_bin(), &[], "window");
    wait_for(LONG, "the join screen again", || app.find("#join-form"));
    assert_eq!(app.window_rect(), wanted, "where the window was left");
    xvfb.screenshot(&support::artifacts_dir().join("window-remembered.png"));
    let _ = std::fs::remove_dir_all(&config);
}
