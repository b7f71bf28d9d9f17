//! Black-box helpers: real `plenum serve` and `plenum join` processes on 127.0.0.1.
//! Every process is killed by its pid when its guard drops, also when a test fails.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The `plenum` binary: Cargo's path for this package's tests; for other packages' tests
/// (the app's), the one built next to them in the same target directory.
pub fn bin() -> std::path::PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_plenum") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/plenum
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("plenum");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p plenum-cli)",
        bin.display()
    );
    bin
}

/// A child process, killed on drop.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    /// Every line seen so far, for assertions over the whole history.
    pub seen: Vec<Value>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reader(stdout: std::process::ChildStdout, tx: SyncSender<Value>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let value = serde_json::from_str(&line).unwrap_or_else(|_| json!({"raw": line}));
            if tx.send(value).is_err() {
                return;
            }
        }
    });
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_program(bin(), args)
    }

    /// Runs another program the same way.
    pub fn spawn_program(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Self {
        Self::spawn_program_env(program, args, &[])
    }

    /// Runs a program with extra environment variables.
    pub fn spawn_program_env(
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(program);
        command.envs(env.iter().copied());
        if std::env::var_os("RUST_LOG").is_none() {
            command.env(
                "RUST_LOG",
                "warn,rtc=error,rtc_ice=error,rtc_dtls=error,rtc_sctp=error,webrtc=error",
            );
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn plenum");
        let (tx, lines) = sync_channel(10_000);
        reader(child.stdout.take().expect("stdout"), tx);
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one JSON command line.
    pub fn cmd(&mut self, value: Value) {
        self.raw(&value.to_string());
    }

    /// Writes one raw line.
    pub fn raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the next line matching `pred`, up to `timeout`; panics with the history if none.
    pub fn expect(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for {what}; saw {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("process ended waiting for {what}; saw {:#?}", self.seen)
                }
            }
        }
    }

    /// Collects every line that arrives within `window`.
    pub fn drain_for(&mut self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    got.push(v);
                }
                Err(_) => return got,
            }
        }
    }

    /// Waits for the process to exit, up to `timeout`; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn event(v: &Value) -> &str {
    v.get("event").and_then(Value::as_str).unwrap_or("")
}

/// A running signaling server.
pub struct Serve {
    pub proc: Proc,
    pub url: String,
}

pub fn serve(extra: &[&str]) -> Serve {
    let mut args = vec!["serve", "--bind", "127.0.0.1:0", "--json"];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(&args);
    let listening = proc.expect(Duration::from_secs(10), "listening", |v| {
        event(v) == "listening"
    });
    let url = listening["url"].as_str().expect("url").to_owned();
    Serve { proc, url }
}

/// A headless peer that has joined; `id` is its peer id.
pub struct Peer {
    pub proc: Proc,
    pub id: String,
    pub name: String,
}

pub fn spawn_join(url: &str, room: &str, name: &str, extra: &[&str]) -> Proc {
    spawn_join_env(url, room, name, extra, &[])
}

/// [`spawn_join`] with extra environment variables for the peer.
pub fn spawn_join_env(
    url: &str,
    room: &str,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    let mut args = vec![
        "join",
        "--server",
        url,
        "--room",
        room,
        "--name",
        name,
        "--json",
        "--bind-ip",
        "127.0.0.1",
    ];
    args.extend_from_slice(extra);
    Proc::spawn_program_env(bin(), &args, env)
}

pub fn join(url: &str, room: &str, name: &str, extra: &[&str]) -> Peer {
    let mut proc = spawn_join(url, room, name, extra);
    let joined = proc.expect(Duration::from_secs(10), "joined", |v| event(v) == "joined");
    let id = joined["peer"].as_str().expect("peer id").to_owned();
    Peer {
        proc,
        id,
        name: name.to_owned(),
    }
}

/// Starts `n` peers in `room` and waits until every one has seen every other join.
pub fn full_room(url: &str, room: &str, n: usize) -> Vec<Peer> {
    let mut peers: Vec<Peer> = (0..n)
        .map(|i| join(url, room, &format!("p{i}"), &[]))
        .collect();
    let ids: Vec<String> = peers.iter().map(|p| p.id.clone()).collect();
    for peer in &mut peers {
        let mut want: Vec<&String> = ids.iter().filter(|id| **id != peer.id).collect();
        while !want.is_empty() {
            let v = peer.proc.expect(
                Duration::from_secs(20),
                "peer_join of every other peer",
                |v| event(v) == "peer_join",
            );
            let id = v["peer"].as_str().unwrap_or("").to_owned();
            let before = want.len();
            want.retain(|w| **w != id);
            assert_eq!(
                before - 1,
                want.len(),
                "unexpected or repeated peer_join {id} at {}",
                peer.name
            );
        }
    }
    peers
}

/// Messages a peer received within `window`, as (channel, from, data).
pub fn messages(peer: &mut Peer, window: Duration) -> Vec<(String, String, Value)> {
    peer.proc
        .drain_for(window)
        .into_iter()
        .filter(|v| event(v) == "message")
        .map(|v| {
            (
                v["channel"].as_str().unwrap_or("").to_owned(),
                v["from"].as_str().unwrap_or("").to_owned(),
                v["data"].clone(),
            )
        })
        .collect()
}

/// A WAV recording made by `--record-audio`, from its first audible sample on, skipping
/// `settle` seconds more (jitter buffer start, first frames).
pub fn recording(path: &std::path::Path, settle: f64) -> Vec<f32> {
    use plenum_media::AudioSource;
    let mut src = plenum_media::WavSource::open(path).expect("a recording");
    let mut heard = vec![0.0; src.len()];
    src.read(&mut heard);
    let start = heard
        .iter()
        .position(|s| s.abs() > 0.01)
        .expect("some sound");
    let skip = (settle * f64::from(plenum_media::SAMPLE_RATE)) as usize;
    heard.split_off((start + skip).min(heard.len()))
}
