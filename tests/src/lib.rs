//! Plenum's end-to-end suites and what they share. The suites drive several binaries at
//! once, as users do: `plenum serve` and `plenum join` processes (`cli/`), the app under
//! Xvfb through WebDriver next to them (`app/`). Real parts throughout: the signaling
//! server on 127.0.0.1, webrtc-rs links, PulseAudio with a null sink, coturn, nats-server.
//! Every process a test starts is ended by its process id when its guard drops, also when
//! the test fails.

pub mod app;
pub mod cli;
pub mod pulse;
pub mod webdriver;

use std::path::PathBuf;

/// A binary of the workspace, built next to the running test:
/// `target/<profile>/deps/<test>` runs, `target/<profile>/<name>` is the binary.
/// (`scripts/test.sh` builds every binary before it runs the tests.)
pub fn target_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        bin.display()
    );
    bin
}

/// The shared test assets (`assets/` at the repository's top).
pub fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .join("assets")
}
