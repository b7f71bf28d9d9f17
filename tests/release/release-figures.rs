//! Figures of the release packages, as JSON on stdout (docs/benchmarks.md): package and
//! installed sizes, the time from starting the release app to its join screen, and its
//! memory at idle in a two-peer call.
//!
//! `PLENUM_RELEASE_DIR=DIR PLENUM_APP=target/release/plenum-app PLENUM_CLI=target/release/plenum
//! cargo run -p plenum-e2e --features release-check --example release-figures`
//! (`DIR` as scripts/release-check.sh leaves it: `n/deb/`, `n/appimage/`). Needs Xvfb,
//! tauri-driver and WebKitWebDriver.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use plenum_e2e::app::{Driver, Xvfb, group_members, wait_for};
use plenum_e2e::cli::{Proc, event, peer_args};
use plenum_e2e::webdriver;
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);
const STARTS: usize = 5;

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| panic!("{name} is not set")))
}

fn file_in(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} in {}", dir.display()))
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The `Installed-Size` the .deb declares, in KiB.
fn installed_kib(deb: &Path) -> u64 {
    let out = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(deb)
        .arg("Installed-Size")
        .output()
        .expect("dpkg-deb");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Proportional set size of every process in `group` (the driver, the app and its WebKit
/// helpers), and of the processes whose executable is `name`, in KiB.
fn pss_kib(group: u32, names: &[&str]) -> (u64, u64) {
    let (mut all, mut named) = (0, 0);
    for pid in group_members(group) {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let exe = exe
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let pss: u64 = rollup
            .lines()
            .find(|l| l.starts_with("Pss:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if exe == "tauri-driver" || exe == "WebKitWebDriver" {
            continue;
        }
        all += pss;
        if names.contains(&exe.as_str()) {
            named += pss;
        }
    }
    (all, named)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let dir = env_path("PLENUM_RELEASE_DIR");
    let app = env_path("PLENUM_APP");
    let cli = env_path("PLENUM_CLI");
    let deb = file_in(&dir.join("n/deb"), ".deb");
    let appimage = file_in(&dir.join("n/appimage"), ".AppImage");

    let xvfb = Xvfb::start();
    let config = std::env::temp_dir().join(format!("plenum-figures-{}", std::process::id()));
    let prefs = config.join("app.plenum.desktop");
    std::fs::create_dir_all(&prefs).expect("config dir");
    std::fs::write(prefs.join("prefs.json"), r#"{"checked": true}"#).expect("prefs");
    let config_env = config.to_string_lossy().into_owned();

    // From asking WebDriver for a session (which starts the app) to the join screen shown.
    let mut starts = Vec::new();
    for _ in 0..STARTS {
        let driver = Driver::start(&xvfb.display, &[("XDG_CONFIG_HOME", &config_env)]);
        let began = Instant::now();
        let session = webdriver::Session::start(driver.port, &app, &[]);
        wait_for(LONG, "the join screen", || session.find("#join-form"));
        starts.push(began.elapsed().as_secs_f64() * 1000.0);
        drop(session);
        drop(driver);
    }
    starts.sort_by(f64::total_cmp);

    // Idle in a two-peer call: the app joined with a headless peer, nothing said.
    let mut server = Proc::spawn_program(&cli, &["serve", "--bind", "127.0.0.1:0", "--json"]);
    let url = server.expect(LONG, "listening", |v| event(v) == "listening")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let mut peer = Proc::spawn_program(
        &cli,
        &peer_args(&["--server", &url, "--room", "idle"], "Cli", &[]),
    );
    let driver = Driver::start(&xvfb.display, &[("XDG_CONFIG_HOME", &config_env)]);
    let args: Vec<String> = ["--server", &url, "--room", "idle", "--name", "Figures"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let session = webdriver::Session::start(driver.port, &app, &args);
    peer.expect(LONG, "the app joins", |v| {
        event(v) == "peer_join" && v["name"] == "Figures"
    });
    wait_for(LONG, "the call view", || session.find("#call"));
    std::thread::sleep(Duration::from_secs(10));
    let (all, app_only) = pss_kib(driver.pid(), &["plenum-app"]);
    drop(session);
    drop(driver);

    println!(
        "{}",
        json!({
            "deb_bytes": size(&deb),
            "appimage_bytes": size(&appimage),
            "installed_kib": installed_kib(&deb),
            "app_binary_bytes": size(&app),
            "cli_binary_bytes": size(&cli),
            "start_to_join_screen_ms": {
                "runs": STARTS,
                "min": starts[0],
                "p50": percentile(&starts, 0.5),
                "max": starts[starts.len() - 1],
            },
            "idle_two_peer_call_pss_kib": { "app_and_webkit": all, "app_process": app_only },
        })
    );
    let _ = std::fs::remove_dir_all(&config);
}
