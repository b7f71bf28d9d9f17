//! The app under test: Xvfb, tauri-driver (with WebKitWebDriver) and the app binary driven
//! through plain WebDriver HTTP calls, next to real `plenum serve` / `plenum join` processes.
//! Every process is stopped by its process id when its guard drops, also when a test fails.

pub use crate::cli::wait_for;
pub use crate::{cli, webdriver};

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process in its own process group, stopped (SIGTERM to the group, then SIGKILL)
/// when dropped.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    name: &'static str,
}

impl Guard {
    pub fn spawn(name: &'static str, command: &mut Command) -> Self {
        use std::os::unix::process::CommandExt;
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Self { child, name }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // The group holds the process and whatever it started (tauri-driver -> WebKitWebDriver
        // -> the app); SIGTERM lets tauri-driver stop its driver.
        signal(-pgid, 15);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(-pgid, 9);
        let _ = self.child.wait();
        eprintln!("stopped {} (pid {pgid})", self.name);
    }
}

/// Sends `signal` to `pid` (negative: a process group) with the `kill` command.
fn signal(pid: i32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// The processes in process group `pgid` (from /proc: each one's `stat` names its group).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces, so read after its ')'.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(2)?.parse::<u32>().ok()
                })
                == Some(pgid)
        })
        .collect()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Finds a required tool, or fails with what to install.
pub fn tool(name: &str, hint: &str) -> PathBuf {
    let home_cargo = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin").join(name));
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .chain(home_cargo)
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("{name} is not installed: {hint} (scripts/test.sh installs it)"))
}

/// A virtual X display.
#[derive(Debug)]
pub struct Xvfb {
    pub display: String,
    _guard: Guard,
}

impl Xvfb {
    pub fn start() -> Self {
        let xvfb = tool("Xvfb", "apt-get install xvfb");
        let mut command = Command::new(xvfb);
        command
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1360x860x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut guard = Guard::spawn("Xvfb", &mut command);
        let stdout = guard.child().stdout.take().expect("Xvfb stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("Xvfb display number");
        let display = format!(":{}", line.trim());
        assert!(line.trim().parse::<u32>().is_ok(), "Xvfb printed {line:?}");
        Self {
            display,
            _guard: guard,
        }
    }

    /// Saves what the display shows (the app's window at the top left) as a PNG. This is
    /// the X server's picture, not the web view's: WebKitWebDriver's own screenshot call
    /// does not return once the call view is up.
    pub fn screenshot(&self, path: &Path) {
        let import = tool("import", "apt-get install imagemagick");
        let status = Command::new(import)
            .args([
                "-display",
                &self.display,
                "-window",
                "root",
                "-crop",
                "1280x800+0+0",
                "+repage",
            ])
            .arg(path)
            .status()
            .expect("run import");
        assert!(status.success(), "screenshot failed: {status}");
        eprintln!("screenshot: {}", path.display());
    }
}

/// tauri-driver on a free port, talking to WebKitWebDriver on another.
#[derive(Debug)]
pub struct Driver {
    pub port: u16,
    guard: Guard,
}

impl Driver {
    pub fn start(display: &str, env: &[(&str, &str)]) -> Self {
        let driver = tool(
            "tauri-driver",
            "cargo install tauri-driver --version 2.1.0 --locked",
        );
        let native = tool("WebKitWebDriver", "apt-get install webkit2gtk-driver");
        let (port, native_port) = (free_port(), free_port());
        let mut command = Command::new(driver);
        command
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .arg("--native-driver")
            .arg(native)
            .env("DISPLAY", display)
            .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let guard = Guard::spawn("tauri-driver", &mut command);
        // tauri-driver listens at once and passes each request on to WebKitWebDriver,
        // which it has only just started: a session asked for before WebKitWebDriver
        // listens is dropped ("Peer disconnected"). Both must listen.
        let deadline = Instant::now() + Duration::from_secs(20);
        for (what, p) in [("tauri-driver", port), ("WebKitWebDriver", native_port)] {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(Instant::now() < deadline, "{what} did not listen on {p}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Self { port, guard }
    }

    /// The driver's process id, which is also the id of the process group holding the
    /// driver and every app it started.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }
}

/// The app's binary, built next to the tests in the same target directory.
pub fn app_bin() -> &'static str {
    static APP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    APP.get_or_init(|| crate::target_bin("plenum-app").display().to_string())
}

/// Where screenshots go: `$PLENUM_ARTIFACTS` or target/test-artifacts.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("PLENUM_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("test executable");
            exe.ancestors()
                .nth(3)
                .expect("target dir")
                .join("test-artifacts")
        });
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// The app started by WebDriver with `args`, with its own config directory under `tag`
/// (returned, for the test to remove).
pub fn start_app(
    xvfb: &Xvfb,
    app: &str,
    args: &[String],
    tag: &str,
) -> (Driver, webdriver::Session, PathBuf) {
    start_app_with(xvfb, app, args, tag, &[])
}

/// The app as [`start_app`] starts it, hosting rooms on a free loopback port (its join
/// screen's Host button).
pub fn start_hosting_app(xvfb: &Xvfb, tag: &str) -> (Driver, webdriver::Session, PathBuf) {
    start_app_with(
        xvfb,
        app_bin(),
        &[],
        tag,
        &[("PLENUM_HOST_BIND", "127.0.0.1:0")],
    )
}

/// The app as a new user first starts it (no config at all: its first run), with `env`.
pub fn start_first_run_app(
    xvfb: &Xvfb,
    tag: &str,
    env: &[(&str, &str)],
) -> (Driver, webdriver::Session, PathBuf) {
    let config = std::env::temp_dir().join(format!("plenum-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&config);
    let mut vars = vec![(
        "XDG_CONFIG_HOME",
        config.to_str().expect("a UTF-8 temp path"),
    )];
    vars.extend_from_slice(env);
    let driver = Driver::start(&xvfb.display, &vars);
    let session = webdriver::Session::start(driver.port, app_bin().as_ref(), &[]);
    (driver, session, config)
}

fn start_app_with(
    xvfb: &Xvfb,
    app: &str,
    args: &[String],
    tag: &str,
    env: &[(&str, &str)],
) -> (Driver, webdriver::Session, PathBuf) {
    let config = std::env::temp_dir().join(format!("plenum-e2e-{tag}-{}", std::process::id()));
    // An app past its first run (the device check, which its own test covers).
    let prefs = config.join("app.plenum.desktop");
    std::fs::create_dir_all(&prefs).expect("config dir");
    std::fs::write(prefs.join("prefs.json"), r#"{"checked": true}"#).expect("prefs");
    let mut vars = vec![(
        "XDG_CONFIG_HOME",
        config.to_str().expect("a UTF-8 temp path"),
    )];
    vars.extend_from_slice(env);
    let driver = Driver::start(&xvfb.display, &vars);
    let session = webdriver::Session::start(driver.port, app.as_ref(), args);
    (driver, session, config)
}

/// Draws a zigzag of `points` points across the app's whiteboard (from 20 % in, 80 % down,
/// 5 % of its width a step), as a pointer would.
pub fn draw_zigzag(app: &webdriver::Session, points: u32) {
    let r: Vec<f64> = app
        .execute(
            "const r = document.querySelector('#board').getBoundingClientRect(); return [r.left, r.top, r.width, r.height];",
            serde_json::json!([]),
        )
        .as_array()
        .expect("the board's box")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect();
    let path: Vec<(i64, i64)> = (0..points)
        .map(|i| {
            let (fx, fy) = (0.2 + f64::from(i) * 0.05, 0.8 - f64::from(i % 2) * 0.06);
            ((r[0] + fx * r[2]) as i64, (r[1] + fy * r[3]) as i64)
        })
        .collect();
    app.drag(&path);
}

/// The value of the input `css` names (a link the app shows), once it is there.
pub fn value_of(app: &webdriver::Session, css: &str, what: &str) -> String {
    let input = wait_for(Duration::from_secs(40), what, || app.find(css));
    app.property(&input, "value")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `document.querySelector(css).textContent`, or `None` when nothing matches.
pub fn text_of(app: &webdriver::Session, css: &str) -> Option<String> {
    let v = app.execute(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
        serde_json::json!([css]),
    );
    v.as_str().map(str::to_owned)
}

/// The app started by WebDriver in `room` on `url` as "Ada" (with `extra` arguments), its
/// own config directory under `tag`, the call view up and the network panel open.
pub fn app_with_network_panel(
    xvfb: &Xvfb,
    app: &str,
    (url, room): (&str, &str),
    extra: &[&str],
    tag: &str,
) -> (Driver, webdriver::Session) {
    let long = Duration::from_secs(40);
    let mut args: Vec<String> = ["--server", url, "--room", room, "--name", "Ada"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let (driver, session, _config) = start_app(xvfb, app, &args, tag);
    wait_for(long, "the call view", || session.find("#call"));
    let button = wait_for(long, "the network button", || {
        session.find("#network-button")
    });
    session.click(&button);
    (driver, session)
}

/// A number the network panel shows in its `attr` attribute.
pub fn network_attr(app: &webdriver::Session, attr: &str) -> Option<u64> {
    let el = app.find("#network-panel")?;
    app.attribute(&el, attr)?.parse().ok()
}

/// Waits until the view has drawn two more frames: whatever it changed before the call is
/// on the screen (for a screenshot of it), however busy the machine is.
pub fn painted(app: &webdriver::Session) {
    let done = app.execute_async(
        "const done = arguments[arguments.length - 1];
         requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
        serde_json::json!([]),
    );
    assert_eq!(
        done,
        serde_json::json!(true),
        "the view did not draw: {done}"
    );
}

/// Clicks the button `css` until `done` finds what the click brings about, and returns it.
/// WebKitWebDriver was seen, rarely, to let a click on a visible button go nowhere: the click
/// returns once the page has handled its events, yet the button's handler never ran. A user
/// whose click did nothing clicks again, and so does this: each click waits up to 5 s for its
/// effect, and the whole fails after `timeout`.
pub fn click_until<T>(
    app: &webdriver::Session,
    css: &str,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let button = wait_for(timeout, css, || app.find(css));
        app.click(&button);
        let tried = Instant::now() + Duration::from_secs(5);
        while Instant::now() < tried {
            if let Some(value) = done() {
                return value;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} clicking {css} for {what}"
        );
    }
}
