//! Black-box helpers: real `plenum serve` and `plenum join` processes on 127.0.0.1.
//! Every process is killed by its pid when its guard drops, also when a test fails.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The `plenum` binary, built next to the tests in the same target directory.
pub fn bin() -> std::path::PathBuf {
    crate::target_bin("plenum")
}

/// A child process, killed on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    /// While set, nobody reads the process's stdout (an application that stops reading).
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Every line seen so far, for assertions over the whole history.
    pub seen: Vec<Value>,
    /// Whether it leads a process group of its own (ended together: a browser's children).
    group: bool,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.group {
            // The whole group, by its id (the leader's pid): what it started goes with it.
            // Nothing left of it (it ended cleanly) is no news.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reader(
    stdout: std::process::ChildStdout,
    tx: SyncSender<Value>,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            while paused.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
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
        Self::start(Command::new(program), args, env, false)
    }

    /// Runs a program that starts programs of its own (a browser driver) in a process
    /// group of its own, so that ending it ends them all, even if it cannot clean up.
    pub fn spawn_group(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Self {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(program);
        command.process_group(0);
        Self::start(command, args, &[], true)
    }

    fn start(mut command: Command, args: &[&str], env: &[(&str, &str)], group: bool) -> Self {
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
        let paused = std::sync::Arc::default();
        reader(
            child.stdout.take().expect("stdout"),
            tx,
            std::sync::Arc::clone(&paused),
        );
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            paused,
            seen: Vec::new(),
            group,
        }
    }

    /// Stops reading the process's stdout (after the line being read): its writes block
    /// once the pipe is full, as an application that stops reading its events would.
    pub fn pause_reading(&self) {
        self.paused
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Reads its stdout again.
    pub fn resume_reading(&self) {
        self.paused
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process, by its pid.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -{signal} failed");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one JSON command line.
    pub fn cmd(&mut self, value: Value) {
        self.raw(&value.to_string());
    }

    /// Asks for the call's figures and returns the `stats` event that answers.
    pub fn stats(&mut self) -> Value {
        self.cmd(json!({"cmd": "stats"}));
        self.expect(Duration::from_secs(30), "stats", |v| event(v) == "stats")
    }

    /// Writes one raw line.
    pub fn raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Takes stdin, to write from another thread (a write that blocks then cannot hang
    /// the test).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin open")
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

    /// Every line up to and including the next one matching `pred`, waiting up to
    /// `timeout` for it; panics with the history if none comes.
    pub fn until(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let from = self.seen.len();
        self.expect(timeout, what, pred);
        self.seen[from..].to_vec()
    }

    /// Every line up to the first that matches `pred` (within `timeout`), and then those
    /// that come within `quiet` after it: for a marker sent last on an ordered link, and a
    /// while for copies that should not come.
    pub fn until_then_quiet(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
        quiet: Duration,
    ) -> Vec<Value> {
        let mut got = self.until(timeout, what, pred);
        got.extend(self.drain_for(quiet));
        got
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
#[derive(Debug)]
pub struct Serve {
    pub proc: Proc,
    pub url: String,
}

pub fn serve(extra: &[&str]) -> Serve {
    serve_in(None, extra)
}

/// [`serve`] inside a network namespace (or the test's own when `None`).
pub fn serve_in(ns: Option<&NetNs>, extra: &[&str]) -> Serve {
    let mut args = vec!["serve", "--bind", "127.0.0.1:0", "--json"];
    args.extend_from_slice(extra);
    let mut proc = match ns {
        Some(ns) => ns.spawn(&args, &[]),
        None => Proc::spawn(&args),
    };
    let listening = proc.expect(Duration::from_secs(10), "listening", |v| {
        event(v) == "listening"
    });
    let url = listening["url"].as_str().expect("url").to_owned();
    Serve { proc, url }
}

/// A headless peer that has joined; `id` is its peer id.
#[derive(Debug)]
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
    Proc::spawn_program_env(bin(), &join_args(url, room, name, extra), env)
}

/// A headless peer on loopback joining through an invite link (its role comes from the
/// invite unless `extra` says `--role`).
pub fn spawn_join_invite(invite: &str, name: &str, extra: &[&str]) -> Proc {
    Proc::spawn(&peer_args(&["--invite", invite], name, extra))
}

/// `plenum join` arguments for a headless peer on loopback.
fn join_args<'a>(url: &'a str, room: &'a str, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    peer_args(&["--server", url, "--room", room], name, extra)
}

/// `plenum join PLACE --name NAME --json --bind-ip 127.0.0.1 EXTRA...`.
pub fn peer_args<'a>(place: &[&'a str], name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["join"];
    args.extend_from_slice(place);
    args.extend_from_slice(&["--name", name, "--json", "--bind-ip", "127.0.0.1"]);
    args.extend_from_slice(extra);
    args
}

/// [`spawn_join`] inside a network namespace.
pub fn spawn_join_in(ns: &NetNs, url: &str, room: &str, name: &str, extra: &[&str]) -> Proc {
    ns.spawn(&join_args(url, room, name, extra), &[])
}

/// A network namespace of this test's own whose loopback loses a share of every UDP
/// datagram (nftables `numgen random` in the input hook: each datagram is judged once, on
/// arrival, and the sender sees no error, as on a real lossy path).
/// Signaling is TCP and is left alone; ICE, DTLS, SCTP and RTP all see the loss.
/// Deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    /// A fresh namespace of this test's own with its loopback up.
    pub fn create() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "plenum-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Two namespaces joined by a veth pair: `a` holds `a_addr` (CIDR) on `va`, `b` holds
    /// `b_addr` on `vb`.
    pub fn veth_pair(a_addr: &str, b_addr: &str) -> (Self, Self) {
        let (a, b) = (Self::create(), Self::create());
        a.exec(&[
            "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb",
        ]);
        a.exec(&["ip", "link", "set", "vb", "netns", &b.name]);
        a.exec(&["ip", "addr", "add", a_addr, "dev", "va"]);
        b.exec(&["ip", "addr", "add", b_addr, "dev", "vb"]);
        a.exec(&["ip", "link", "set", "va", "up"]);
        b.exec(&["ip", "link", "set", "vb", "up"]);
        (a, b)
    }

    /// A hub and `n` namespaces around it: the hub bridges them (`br0`, 10.`subnet`.0.254);
    /// namespace `i` holds 10.`subnet`.0.`i + 1` on its `eth0`, and the hub's port towards
    /// it is `p{i}` (shape it to narrow what that namespace receives).
    pub fn star(subnet: u8, n: usize) -> (Self, Vec<Self>) {
        let hub = Self::create();
        hub.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
        hub.exec(&[
            "ip",
            "addr",
            "add",
            &format!("10.{subnet}.0.254/24"),
            "dev",
            "br0",
        ]);
        hub.exec(&["ip", "link", "set", "br0", "up"]);
        let spokes = (0..n)
            .map(|i| {
                let spoke = Self::create();
                let port = format!("p{i}");
                hub.exec(&[
                    "ip",
                    "link",
                    "add",
                    &port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    &spoke.name,
                ]);
                hub.exec(&["ip", "link", "set", &port, "master", "br0"]);
                hub.exec(&["ip", "link", "set", &port, "up"]);
                let addr = format!("10.{subnet}.0.{}/24", i + 1);
                spoke.exec(&["ip", "addr", "add", &addr, "dev", "eth0"]);
                spoke.exec(&["ip", "link", "set", "eth0", "up"]);
                spoke
            })
            .collect();
        (hub, spokes)
    }

    /// A fresh namespace that loses `loss_percent` of the UDP datagrams it receives.
    pub fn lossy(loss_percent: u32) -> Self {
        let ns = Self::create();
        ns.lose(loss_percent);
        ns
    }

    /// Loses `loss_percent` of the UDP datagrams this namespace receives, at random.
    pub fn lose(&self, loss_percent: u32) {
        let rules = format!(
            "table inet plenum {{
               counter udp_all {{}}
               counter udp_lost {{}}
               chain arrive {{
                 type filter hook input priority 0; policy accept;
                 meta l4proto udp counter name udp_all
                 meta l4proto udp numgen random mod 100 < {loss_percent} counter name udp_lost drop
               }}
             }}"
        );
        let rules_path = std::env::temp_dir().join(format!("{}.nft", self.name));
        std::fs::write(&rules_path, rules).expect("write rules");
        self.exec(&["nft", "-f", rules_path.to_str().expect("utf-8")]);
        std::fs::remove_file(&rules_path).expect("cleanup rules");
    }

    /// Shapes what `dev` sends to `kbit` kbit/s (tbf: a 4 kB bucket, 200 ms of queue, as a
    /// home uplink's modem holds), and counts the bytes it is handed (nftables, before the
    /// shaper: what the peer put on the wire, see [`NetNs::bytes_out`]).
    pub fn shape(&self, dev: &str, kbit: u32) {
        let rate = format!("{kbit}kbit");
        self.exec(&[
            "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst", "4kb",
            "latency", "200ms",
        ]);
        let rules = format!(
            "table inet plenum_out {{
               counter out_bytes {{}}
               chain out {{
                 type filter hook output priority 0; policy accept;
                 oifname \"{dev}\" counter name out_bytes
               }}
             }}"
        );
        let rules_path = std::env::temp_dir().join(format!("{}-out.nft", self.name));
        std::fs::write(&rules_path, rules).expect("write rules");
        self.exec(&["nft", "-f", rules_path.to_str().expect("utf-8")]);
        std::fs::remove_file(&rules_path).expect("cleanup rules");
    }

    /// Changes the rate of a device [`NetNs::shape`] shaped (the queue it holds stays).
    pub fn reshape(&self, dev: &str, kbit: u32) {
        let rate = format!("{kbit}kbit");
        self.exec(&[
            "tc", "qdisc", "change", "dev", dev, "root", "tbf", "rate", &rate, "burst", "4kb",
            "latency", "200ms",
        ]);
    }

    /// Bytes handed to the shaped device so far (IP and above).
    pub fn bytes_out(&self) -> u64 {
        let out = self.exec(&["nft", "list", "counter", "inet", "plenum_out", "out_bytes"]);
        out.split_whitespace()
            .skip_while(|w| *w != "bytes")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no byte count in {out}"))
    }

    /// `plenum join` inside the namespace, its candidates on `ip`.
    pub fn spawn_join_at(
        &self,
        url: &str,
        room: &str,
        name: &str,
        ip: &str,
        extra: &[&str],
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
            ip,
        ];
        args.extend_from_slice(extra);
        self.spawn(&args, &[])
    }

    /// Runs a command inside the namespace to completion.
    pub fn exec(&self, command: &[&str]) -> String {
        let mut args = vec!["ip", "netns", "exec", &self.name];
        args.extend_from_slice(command);
        run(&args)
    }

    /// Starts `plenum` with `args` inside the namespace; `ip netns exec` replaces itself with
    /// the program, so the guard's pid is the peer's.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let bin = bin();
        let mut full = vec!["netns", "exec", &self.name, bin.to_str().expect("utf-8")];
        full.extend_from_slice(args);
        Proc::spawn_program_env("ip", &full, env)
    }

    /// (datagrams sent, datagrams dropped) so far.
    pub fn udp_counts(&self) -> (u64, u64) {
        let packets = |counter: &str| -> u64 {
            let out = self.exec(&["nft", "list", "counter", "inet", "plenum", counter]);
            out.split_whitespace()
                .skip_while(|w| *w != "packets")
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no packet count in {out}"))
        };
        (packets("udp_all"), packets("udp_lost"))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs a command to completion; panics with its stderr when it fails.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (install iproute2 and nftables)", args[0]));
    assert!(
        out.status.success(),
        "{args:?} failed: {} (network namespaces need root or CAP_NET_ADMIN)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn join(url: &str, room: &str, name: &str, extra: &[&str]) -> Peer {
    join_env(url, room, name, extra, &[])
}

/// [`join`] with extra environment variables for the peer.
pub fn join_env(url: &str, room: &str, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Peer {
    let mut proc = spawn_join_env(url, room, name, extra, env);
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

/// How long a test waits for media to have flowed for as long as it needs: generous, since a
/// busy machine only makes the wait longer, never the test fail.
pub const MEDIA_WAIT: Duration = Duration::from_secs(60);

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The samples of a `--record-audio` recording that have reached the disk so far, while the
/// peer still writes it: its header gives the data's length only once the recording is
/// complete, so the data chunk is read to the end of the file.
pub fn recorded_so_far(path: &std::path::Path) -> Vec<f32> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Vec::new();
    }
    let mut at = 12;
    while let Some(header) = bytes.get(at..at + 8) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[..4] == b"data" {
            return bytes[at + 8..]
                .chunks_exact(2)
                .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / f32::from(i16::MAX))
                .collect();
        }
        at += 8 + size + size % 2;
    }
    Vec::new()
}

/// Waits until the recording at `path` holds `seconds` of sound from its first audible
/// sample at or after sample `from` on (`from`: what [`recorded_so_far`] returned before
/// the sound was due), within [`MEDIA_WAIT`]. The wait is on what was recorded, so a slow
/// machine takes longer to get there instead of handing the test less sound.
pub fn wait_recorded(path: &std::path::Path, from: usize, seconds: f64, what: &str) {
    let rate = f64::from(plenum_media::SAMPLE_RATE);
    let want = (seconds * rate) as usize;
    let deadline = Instant::now() + MEDIA_WAIT;
    loop {
        let got = recorded_so_far(path);
        let after = got.get(from..).unwrap_or_default();
        let heard = after
            .iter()
            .position(|s| s.abs() > 0.01)
            .map_or(0, |start| after.len() - start);
        if heard >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {:.2} s of sound recorded after {MEDIA_WAIT:?}, not {seconds} s",
            heard as f64 / rate
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the last second of the recording at `path` is a tone of `hz` (within
/// `tolerance`) at -30 dBFS or louder, within [`MEDIA_WAIT`]: a browser's microphone goes
/// through its echo canceller and noise suppressor, which hold a sound down for a while
/// after it begins, so the tone is waited for, not sampled at a fixed moment.
pub fn wait_heard_tone(path: &std::path::Path, hz: f64, tolerance: f64, what: &str) {
    use plenum_media::analysis::{dominant_frequency, rms_dbfs};
    let rate = plenum_media::SAMPLE_RATE;
    let deadline = Instant::now() + MEDIA_WAIT;
    loop {
        let got = recorded_so_far(path);
        let last = &got[got.len().saturating_sub(rate as usize)..];
        let (f, level) = (dominant_frequency(last, rate), rms_dbfs(last));
        if (f - hz).abs() < tolerance && level > -30.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the last second recorded after {MEDIA_WAIT:?} was {f:.1} Hz at {level:.1} dBFS, \
             not {hz} Hz"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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

/// A file in the temp directory, removed on drop.
#[derive(Debug)]
pub struct TempFile(pub std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl TempFile {
    /// Its path as text (temp paths are UTF-8 here).
    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

/// Writes `secret` to a fresh temp file named after `tag` and this process.
/// coturn with `use-auth-secret` = `secret` on `ip:port`, relaying from `ports` on the same
/// address, started through `prefix` (empty, or `ip netns exec NS`: it execs, so the pid is
/// coturn's) and ready; ended by pid when the returned process is dropped.
pub fn coturn(
    prefix: &[&str],
    ip: &str,
    port: u16,
    ports: (u16, u16),
    secret: &str,
    extra: &[&str],
) -> Proc {
    let (port, min, max) = (port.to_string(), ports.0.to_string(), ports.1.to_string());
    let pidfile =
        std::env::temp_dir().join(format!("plenum-coturn-{}-{port}.pid", std::process::id()));
    let mut command: Vec<&str> = prefix.to_vec();
    command.extend([
        "turnserver",
        "-n",
        "--listening-ip",
        ip,
        "--relay-ip",
        ip,
        "--listening-port",
        &port,
        "--use-auth-secret",
        "--static-auth-secret",
        secret,
        "--realm",
        "plenum.test",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--log-file",
        "stdout",
        "--simple-log",
        "--min-port",
        &min,
        "--max-port",
        &max,
        "--pidfile",
        pidfile.to_str().expect("utf-8"),
    ]);
    command.extend_from_slice(extra);
    let mut proc = Proc::spawn_program(command[0], &command[1..]);
    proc.expect(Duration::from_secs(10), "coturn ready", |v| {
        v["raw"]
            .as_str()
            .unwrap_or("")
            .contains("Total General servers")
    });
    proc
}

pub fn secret_file(tag: &str, secret: &str) -> TempFile {
    let path = std::env::temp_dir().join(format!("plenum-{tag}-{}.secret", std::process::id()));
    std::fs::write(&path, format!("{secret}\n")).expect("write secret");
    TempFile(path)
}

/// What a broadcast test has seen its peers receive.
pub trait Tally {
    /// Reads what the live peers printed so far, without waiting.
    fn collect(&mut self, peers: &mut [Peer], alive: &std::collections::BTreeSet<usize>);
    /// How many times each peer received each broadcast, by `(peer, nonce)`.
    fn got(&self) -> &std::collections::BTreeMap<(usize, u64), u32>;
    /// Who received broadcast `nonce`, and how many times.
    fn receivers(&self, nonce: u64) -> std::collections::BTreeMap<usize, u32> {
        self.got()
            .iter()
            .filter(|((_, n), _)| *n == nonce)
            .map(|((i, _), c)| (*i, *c))
            .collect()
    }
}

/// Sends `{"cmd": cmd, "data": {"nonce": n}}` from `from` until one broadcast reaches every
/// other live peer (links may still be opening at first); asserts no peer ever gets one
/// twice. Returns how long the complete broadcast took to reach its last peer.
pub fn broadcast_until_all(
    peers: &mut [Peer],
    seen: &mut impl Tally,
    alive: &std::collections::BTreeSet<usize>,
    (from, cmd): (usize, &str),
    nonce: &mut u64,
    within: Duration,
) -> Duration {
    let deadline = Instant::now() + within;
    let want: std::collections::BTreeSet<usize> =
        alive.iter().copied().filter(|i| *i != from).collect();
    loop {
        *nonce += 1;
        let n = *nonce;
        let sent = Instant::now();
        peers[from]
            .proc
            .cmd(json!({"cmd": cmd, "data": {"nonce": n}}));
        let wait_until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < wait_until {
            seen.collect(peers, alive);
            std::thread::sleep(Duration::from_millis(1));
            let got = seen.receivers(n);
            if let Some((i, c)) = got.iter().find(|(_, c)| **c > 1) {
                panic!("peer {i} received broadcast {n} {c} times");
            }
            assert!(
                !got.contains_key(&from),
                "the sender heard its own broadcast"
            );
            if got
                .keys()
                .copied()
                .collect::<std::collections::BTreeSet<_>>()
                == want
            {
                let took = sent.elapsed();
                // Copies that arrive late would still show up as a second delivery.
                std::thread::sleep(Duration::from_millis(300));
                seen.collect(peers, alive);
                assert!(seen.receivers(n).values().all(|c| *c == 1));
                return took;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no broadcast from peer {from} reached all {} others within {within:?}; the last reached {}",
            want.len(),
            seen.receivers(n).len()
        );
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An envelope of kind `kind` with message id 99 and `payload`.
pub fn envelope(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![1, kind, 0, 0];
    out.extend_from_slice(&99u64.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The `error` events among `got`, as `code: message`.
pub fn errors(got: &[Value]) -> Vec<String> {
    got.iter()
        .filter(|v| event(v) == "error")
        .map(|v| {
            format!(
                "{}: {}",
                v["code"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// A nats-server with JetStream on a free port of 127.0.0.1, killed by its pid on drop;
/// its store directory is removed with it.
#[derive(Debug)]
pub struct Nats {
    pub proc: Proc,
    pub url: String,
    store: std::path::PathBuf,
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_dir_all(&self.store);
        let _ = std::fs::remove_file(self.store.with_extension("log"));
    }
}

pub fn nats() -> Nats {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let store = std::env::temp_dir().join(format!("plenum-nats-{}-{port}", std::process::id()));
    let port_arg = port.to_string();
    let log = store.with_extension("log");
    let proc = Proc::spawn_program(
        "nats-server",
        &[
            "-a",
            "127.0.0.1",
            "-p",
            &port_arg,
            "-js",
            "-sd",
            store.to_str().expect("utf-8 temp dir"),
            "-l",
            log.to_str().expect("utf-8 temp dir"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Nats {
        proc,
        url: format!("nats://127.0.0.1:{port}"),
        store,
    }
}

/// `plenum serve` joined to the NATS cluster at `nats`; its `cluster_id` is its id there.
pub fn serve_nats(nats: &str, extra: &[&str]) -> (Serve, String) {
    let mut args = vec!["serve", "--bind", "127.0.0.1:0", "--json", "--nats", nats];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(&args);
    let listening = proc.expect(Duration::from_secs(15), "listening", |v| {
        event(v) == "listening"
    });
    let url = listening["url"].as_str().expect("url").to_owned();
    let id = listening["cluster_id"]
        .as_str()
        .expect("cluster id")
        .to_owned();
    (Serve { proc, url }, id)
}

/// `plenum token ...`: its stdout, trimmed.
pub fn mint(args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .arg("token")
        .args(args)
        .output()
        .expect("run plenum token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}
