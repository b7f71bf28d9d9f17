//! The release packages, as users get them: `scripts/release-check.sh` builds version N and
//! N+1 with `scripts/release.sh` (one signing key) and runs this with
//! `PLENUM_RELEASE_DIR` naming them (`n/` and `next/`, each with `deb/` and `appimage/`, and
//! `other.sig`: N+1's AppImage signed with another key) and `PLENUM_CLI` a `plenum` binary.
//! Needs root (the .deb is installed system-wide) and Xvfb.
//!
//! - The .deb installs with apt (pulling its dependencies), ships the app, the CLI, the
//!   desktop entry and every icon size; `plenum://` names its desktop entry; the installed
//!   app joins a room; an invite opened with `xdg-open` starts it into the room, and one
//!   opened while it runs goes to the running app; N+1 from the update server replaces it
//!   through dpkg; `apt-get remove` takes it all away.
//! - The AppImage starts (`--appimage-extract-and-run`: no FUSE here) and joins.
//! - Updates from a local server: N sees N+1 and installs it (the AppImage is replaced) and
//!   restarts into it when the user clicks; a package signed with another key, an older
//!   version, a version the package was not signed for, and an unreachable server are each
//!   refused with a sentence, and the AppImage is left as it was.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plenum_e2e::app::{Driver, Guard, Xvfb, artifacts_dir, group_members, wait_for};
use plenum_e2e::cli::{Proc, event, peer_args};
use plenum_e2e::webdriver;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(90);

/// The two releases under test.
struct Release {
    n: Build,
    next: Build,
    /// N+1's AppImage signed with a key the app does not trust.
    other_sig: String,
}

struct Build {
    version: String,
    deb: PathBuf,
    appimage: PathBuf,
}

fn release() -> Release {
    let dir = PathBuf::from(
        std::env::var_os("PLENUM_RELEASE_DIR")
            .expect("PLENUM_RELEASE_DIR: run scripts/release-check.sh"),
    );
    let build = |name: &str| {
        let deb = only_file(&dir.join(name).join("deb"), ".deb");
        let appimage = only_file(&dir.join(name).join("appimage"), ".AppImage");
        // Plenum_<version>_amd64.deb
        let file = deb
            .file_name()
            .and_then(|f| f.to_str())
            .expect("a file name");
        let version = file.split('_').nth(1).expect("a version").to_owned();
        Build {
            version,
            deb,
            appimage,
        }
    };
    Release {
        n: build("n"),
        next: build("next"),
        other_sig: read(&dir.join("other.sig")).trim().to_owned(),
    }
}

fn only_file(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {suffix} in {}: {found:?}",
        dir.display()
    );
    found.into_iter().next().expect("one")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cli() -> PathBuf {
    PathBuf::from(std::env::var_os("PLENUM_CLI").expect("PLENUM_CLI: a plenum binary"))
}

/// A fresh home for the app: its config (prefs with our name) and runtime directories.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(tag: &str, name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("plenum-release-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = dir.join(".config/app.plenum.desktop");
        std::fs::create_dir_all(&config).expect("config dir");
        std::fs::write(
            config.join("prefs.json"),
            json!({ "name": name }).to_string(),
        )
        .expect("prefs");
        let runtime = dir.join("run");
        std::fs::create_dir_all(&runtime).expect("runtime dir");
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("runtime dir mode");
        Self { dir }
    }

    /// The environment of a desktop session in this home on `display`.
    fn env(&self, display: &str) -> Vec<(String, String)> {
        let d = self.dir.display();
        vec![
            ("HOME".into(), d.to_string()),
            ("XDG_CONFIG_HOME".into(), format!("{d}/.config")),
            ("XDG_DATA_HOME".into(), format!("{d}/.local/share")),
            ("XDG_CACHE_HOME".into(), format!("{d}/.cache")),
            ("XDG_RUNTIME_DIR".into(), format!("{d}/run")),
            ("DISPLAY".into(), display.into()),
            (
                "DBUS_SESSION_BUS_ADDRESS".into(),
                format!("unix:path={d}/run/bus"),
            ),
            ("WEBKIT_DISABLE_DMABUF_RENDERER".into(), "1".into()),
            ("LIBGL_ALWAYS_SOFTWARE".into(), "1".into()),
            ("RUST_LOG".into(), "info,webrtc=warn,rtc=warn".into()),
        ]
    }

    /// A session bus for this home (the single-instance hand-over goes over it).
    fn bus(&self) -> Guard {
        let address = format!("unix:path={}/run/bus", self.dir.display());
        let guard = Guard::spawn(
            "dbus-daemon",
            Command::new("dbus-daemon")
                .args([
                    "--session",
                    "--nofork",
                    "--nopidfile",
                    "--address",
                    &address,
                ])
                .stdout(Stdio::null()),
        );
        wait_until(Duration::from_secs(10), "the session bus", || {
            self.dir.join("run/bus").exists()
        });
        guard
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `program args` with `env`, in a process group of its own (ended with what it starts).
fn spawn(name: &'static str, program: &Path, args: &[&str], env: &[(String, String)]) -> Guard {
    Guard::spawn(
        name,
        Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v))),
    )
}

fn run(program: &str, args: &[&str], env: &[(String, String)]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A signaling server from `cli`.
fn serve(cli: &Path) -> (Proc, String) {
    let mut proc = Proc::spawn_program(cli, &["serve", "--bind", "127.0.0.1:0", "--json"]);
    let listening = proc.expect(Duration::from_secs(10), "listening", |v| {
        event(v) == "listening"
    });
    let url = listening["url"].as_str().expect("url").to_owned();
    (proc, url)
}

fn join(cli: &Path, url: &str, room: &str) -> Proc {
    Proc::spawn_program(
        cli,
        &peer_args(&["--server", url, "--room", room], "Cli", &[]),
    )
}

/// Waits until `name` joins `peer`'s room; answers its peer id.
fn sees_join(peer: &mut Proc, name: &str) -> String {
    let v = peer.expect(LONG, &format!("{name} joins"), |v| {
        event(v) == "peer_join" && v["name"] == name
    });
    v["peer"].as_str().expect("peer id").to_owned()
}

fn invite(url: &str, room: &str) -> String {
    let encode = |s: &str| s.replace(':', "%3A").replace('/', "%2F");
    format!("plenum://join?server={}&room={room}", encode(url))
}

#[test]
fn the_deb_installs_starts_joins_opens_invites_and_removes_cleanly() {
    let release = release();
    let apt = |args: &[&str]| {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .expect("apt-get");
        assert!(status.success(), "apt-get {args:?}: {status}");
    };
    apt(&["install", "-y", "-qq", &release.n.deb.to_string_lossy()]);
    for file in [
        "/usr/bin/plenum-app",
        "/usr/bin/plenum",
        "/usr/share/applications/Plenum.desktop",
    ] {
        assert!(Path::new(file).exists(), "{file} installed");
    }
    for size in [16, 24, 32, 48, 64, 128, 256, 512] {
        let icon = format!("/usr/share/icons/hicolor/{size}x{size}/apps/plenum-app.png");
        assert!(Path::new(&icon).exists(), "{icon} installed");
    }
    let entry = read(Path::new("/usr/share/applications/Plenum.desktop"));
    assert!(entry.contains("Exec=plenum-app %u"), "{entry}");
    assert!(
        entry.contains("MimeType=x-scheme-handler/plenum;"),
        "{entry}"
    );
    let (ok, version) = run("/usr/bin/plenum-app", &["--version"], &[]);
    assert!(ok && version.contains(&release.n.version), "{version}");

    let xvfb = Xvfb::start();
    let home = Home::new("deb", "Installed");
    let env = home.env(&xvfb.display);
    let (ok, handler) = run(
        "xdg-mime",
        &["query", "default", "x-scheme-handler/plenum"],
        &env,
    );
    assert!(ok, "xdg-mime query");
    assert_eq!(handler.trim(), "Plenum.desktop");

    let cli = PathBuf::from("/usr/bin/plenum");
    let (_server, url) = serve(&cli);
    {
        // The installed app joins a room from its command line.
        let mut peer = join(&cli, &url, "deb-room");
        let _app = spawn(
            "plenum-app",
            Path::new("/usr/bin/plenum-app"),
            &[
                "--server",
                &url,
                "--room",
                "deb-room",
                "--name",
                "Installed",
            ],
            &env,
        );
        sees_join(&mut peer, "Installed");
    }
    {
        // An invite opened from the desktop starts the app into its room (the name it
        // remembers).
        let mut peer = join(&cli, &url, "cold");
        let _opener = spawn(
            "xdg-open",
            Path::new("/usr/bin/xdg-open"),
            &[&invite(&url, "cold")],
            &env,
        );
        sees_join(&mut peer, "Installed");
    }
    {
        // An invite opened while the app runs goes to the running app: the second start
        // hands it over and ends, and the running app joins.
        let _bus = home.bus();
        let mut app = spawn("plenum-app", Path::new("/usr/bin/plenum-app"), &[], &env);
        std::thread::sleep(Duration::from_secs(1));
        let mut peer = join(&cli, &url, "warm");
        let mut opener = spawn(
            "xdg-open",
            Path::new("/usr/bin/xdg-open"),
            &[&invite(&url, "warm")],
            &env,
        );
        let app_id = sees_join(&mut peer, "Installed");
        let deadline = Instant::now() + LONG;
        let status = loop {
            if let Ok(Some(status)) = opener.child().try_wait() {
                break status;
            }
            assert!(Instant::now() < deadline, "the second start did not end");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "the second start ended with {status}");
        // The room's member is the app that was running: ending it ends the membership.
        let _ = Command::new("kill")
            .args(["-TERM", &app.pid().to_string()])
            .status();
        let _ = app.child().wait();
        peer.expect(LONG, "the running app leaves", |v| {
            event(v) == "peer_leave" && v["peer"] == app_id.as_str()
        });
    }

    {
        // N+1 as a .deb from the update server: the updater hands the package to dpkg with
        // the administrator's rights (here root's sudo; on a desktop pkexec asks for a
        // password), and the installed app is N+1.
        let (base, routes) = http_server();
        let work = home.dir.join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        routes
            .lock()
            .expect("routes")
            .push(("/next.deb".into(), release.next.deb.clone()));
        let signature = read(Path::new(&format!("{}.sig", release.next.deb.display())));
        let manifest_path = work.join("deb.json");
        let entry = json!({ "url": format!("{base}/next.deb"), "signature": signature.trim() });
        let body = json!({
            "version": release.next.version,
            "pub_date": "2026-12-06T00:00:00Z",
            "platforms": { "linux-x86_64-deb": entry },
        });
        std::fs::write(&manifest_path, body.to_string()).expect("manifest");
        routes
            .lock()
            .expect("routes")
            .push(("/deb.json".into(), manifest_path));
        let mut update_env = env.clone();
        update_env.push(("PLENUM_UPDATE_URL".into(), format!("{base}/deb.json")));
        let (ok, out) = run("/usr/bin/plenum-app", &["--update", "install"], &update_env);
        assert!(ok, "the .deb update installs: {out}");
        let (_, version) = run("/usr/bin/plenum-app", &["--version"], &[]);
        assert!(version.contains(&release.next.version), "{version}");
    }

    apt(&["remove", "-y", "-qq", "plenum"]);
    for file in [
        "/usr/bin/plenum-app",
        "/usr/bin/plenum",
        "/usr/share/applications/Plenum.desktop",
        "/usr/share/icons/hicolor/512x512/apps/plenum-app.png",
    ] {
        assert!(!Path::new(file).exists(), "{file} removed");
    }
    let (_, handler) = run(
        "xdg-mime",
        &["query", "default", "x-scheme-handler/plenum"],
        &env,
    );
    assert_eq!(handler.trim(), "", "no handler left for plenum://");
}

#[test]
fn the_appimage_starts_and_joins() {
    let release = release();
    let xvfb = Xvfb::start();
    let home = Home::new("appimage", "Portable");
    let env = home.env(&xvfb.display);
    let cli = cli();
    let (_server, url) = serve(&cli);
    let mut peer = join(&cli, &url, "appimage-room");
    let _app = spawn(
        "AppImage",
        &release.n.appimage,
        &[
            "--appimage-extract-and-run",
            "--server",
            &url,
            "--room",
            "appimage-room",
        ],
        &env,
    );
    sees_join(&mut peer, "Portable");
}

/// Files served over HTTP on 127.0.0.1 (path -> file), from a thread, until the test ends.
type Routes = std::sync::Arc<std::sync::Mutex<Vec<(String, PathBuf)>>>;

fn http_server() -> (String, Routes) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let routes: Routes = Routes::default();
    let served = std::sync::Arc::clone(&routes);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(clone);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            let file = served
                .lock()
                .ok()
                .and_then(|r| r.iter().find(|(p, _)| *p == path).map(|(_, f)| f.clone()));
            let body = file.and_then(|f| std::fs::read(f).ok());
            let head = match &body {
                Some(b) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    b.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .into(),
            };
            let _ = stream.write_all(head.as_bytes());
            if let Some(b) = body {
                let _ = stream.write_all(&b);
            }
        }
    });
    (base, routes)
}

/// An update manifest offering `version` at `url` with `signature`.
fn manifest(path: &Path, version: &str, url: &str, signature: &str) {
    let entry = json!({ "url": url, "signature": signature });
    let body = json!({
        "version": version,
        "notes": format!("Plenum {version}"),
        "pub_date": "2026-12-06T00:00:00Z",
        "platforms": { "linux-x86_64-appimage": entry, "linux-x86_64": entry },
    });
    std::fs::write(path, body.to_string()).expect("manifest");
}

/// `AppImage --update MODE` against the manifest at `url`: its exit and its JSON line.
fn update(appimage: &Path, mode: &str, url: &str, env: &[(String, String)]) -> (bool, Value) {
    let mut env = env.to_vec();
    env.push(("PLENUM_UPDATE_URL".into(), url.into()));
    let (ok, out) = run(
        &appimage.to_string_lossy(),
        &["--appimage-extract-and-run", "--update", mode],
        &env,
    );
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("{}");
    (
        ok,
        serde_json::from_str(line).unwrap_or_else(|_| json!({ "raw": out })),
    )
}

fn bytes(path: &Path) -> Vec<u8> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    buf
}

fn error_text(answer: &Value) -> String {
    answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn updates_install_a_newer_signed_version_and_refuse_everything_else() {
    let release = release();
    let xvfb = Xvfb::start();
    let home = Home::new("update", "Updater");
    let env = home.env(&xvfb.display);
    let work = home.dir.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let sig = |p: &Path| {
        read(Path::new(&format!("{}.sig", p.display())))
            .trim()
            .to_owned()
    };
    let (base, routes) = http_server();
    let add = |path: &str, file: PathBuf| {
        routes.lock().expect("routes").push((path.to_owned(), file));
        format!("{base}{path}")
    };
    let n_url = add("/n.AppImage", release.n.appimage.clone());
    let next_url = add("/next.AppImage", release.next.appimage.clone());
    let (n, next) = (release.n.version.as_str(), release.next.version.as_str());
    let offer = |name: &str, version: &str, url: &str, signature: &str| {
        let path = work.join(format!("{name}.json"));
        manifest(&path, version, url, signature);
        add(&format!("/{name}.json"), path)
    };
    let good = offer("good", next, &next_url, &sig(&release.next.appimage));
    let forged = offer("forged", next, &next_url, &release.other_sig);
    let older = offer("older", "0.0.1", &n_url, &sig(&release.n.appimage));
    let inflated = offer("inflated", "99.0.0", &n_url, &sig(&release.n.appimage));
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!(
            "http://{}/latest.json",
            listener.local_addr().expect("addr")
        )
    };

    // The installed AppImage, version N.
    let installed = work.join("Plenum.AppImage");
    std::fs::copy(&release.n.appimage, &installed).expect("copy the AppImage");
    let original = bytes(&installed);

    // Each refusal says why and leaves the AppImage as it was.
    let refusals = [
        (&forged, "signature"),
        (&older, "older than this Plenum"),
        (&inflated, "signed for version"),
        (&closed, "could not be reached"),
    ];
    for (url, why) in refusals {
        let (ok, answer) = update(&installed, "install", url, &env);
        let text = error_text(&answer);
        assert!(!ok, "{url}: refused, answered {answer}");
        assert!(text.contains(why), "{url}: {why:?} in {answer}");
        assert!(
            bytes(&installed) == original,
            "{url}: the AppImage is untouched"
        );
    }

    // N sees N+1.
    let (ok, answer) = update(&installed, "check", &good, &env);
    assert!(ok, "{answer}");
    assert_eq!(answer["update"]["current"], n);
    assert_eq!(answer["update"]["available"]["version"], next);

    // The user says yes in the app: the bar offers N+1, a click installs it and the app
    // restarts into it.
    let driver = Driver::start(
        &xvfb.display,
        &[
            ("APPIMAGE_EXTRACT_AND_RUN", "1"),
            ("PLENUM_UPDATE_URL", good.as_str()),
            ("HOME", &home.dir.to_string_lossy()),
            (
                "XDG_CONFIG_HOME",
                &format!("{}/.config", home.dir.display()),
            ),
            ("XDG_RUNTIME_DIR", &format!("{}/run", home.dir.display())),
        ],
    );
    let session = webdriver::Session::start(driver.port, &installed, &[]);
    let bar = wait_for(LONG, "the update bar", || session.find("#update-bar"));
    let text = session.text(&bar);
    assert!(text.contains(next), "the bar offers {next}: {text:?}");
    xvfb.screenshot(&artifacts_dir().join("update-offered.png"));
    let install = session.find("#update-install").expect("the install button");
    session.click(&install);
    // The AppImage on disk is N+1 now (its bytes: running it here would share, and then
    // remove, the directory the restarted app unpacks into), and a process of it runs.
    let next_bytes = bytes(&release.next.appimage);
    wait_until(LONG, "the AppImage replaced", || {
        bytes(&installed) == next_bytes
    });
    wait_until(LONG, "the app restarted as N+1", || {
        running_versions(driver.pid())
            .iter()
            .any(|v| v.contains(next))
    });
}

/// The versions of the app processes in `group` (each one's executable asked `--version`).
fn running_versions(group: u32) -> Vec<String> {
    group_members(group)
        .into_iter()
        .filter_map(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok())
        .filter(|exe| exe.file_name().is_some_and(|f| f == "plenum-app"))
        .map(|exe| run(&exe.to_string_lossy(), &["--version"], &[]).1)
        .collect()
}
