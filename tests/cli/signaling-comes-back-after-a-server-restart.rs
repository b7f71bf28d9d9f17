//! Kill `plenum serve` under a room of three linked peers and start it again on the same
//! port: during the outage the peers keep exchanging data over their links; afterwards each
//! resumes its session under the same id, and a peer that started joining during the outage
//! gets in once the server is back, sees every one of them and links to all.

use plenum_e2e::cli as common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn peers_ride_out_a_server_restart_and_a_newcomer_finds_them_all() {
    let mut server = serve(&["--resume-grace", "30"]);
    let addr = server.url.strip_prefix("ws://").expect("ws url").to_owned();
    let mut peers = full_room(&server.url, "restart", 3);
    let ids: BTreeSet<String> = peers.iter().map(|p| p.id.clone()).collect();

    server.proc.kill();
    for peer in &mut peers {
        peer.proc
            .expect(Duration::from_secs(10), "signaling_lost", |v| {
                event(v) == "error" && v["code"] == "signaling_lost"
            });
    }
    // The links do not need the server.
    peers[0]
        .proc
        .cmd(json!({"cmd": "send", "channel": "chat", "data": "during the outage"}));
    for peer in &mut peers[1..] {
        peer.proc
            .expect(Duration::from_secs(5), "message during the outage", |v| {
                event(v) == "message" && v["data"] == "during the outage"
            });
    }

    // A join started while the server is down waits for it (within the join timeout). The
    // test holds the server's port meanwhile to see the newcomer knock: its join has begun
    // and found no server there. Every knock is closed unanswered.
    let port = std::net::TcpListener::bind(&addr).expect("the server's port, free now");
    let url = format!("ws://{addr}");
    let mut late = spawn_join(&url, "restart", "late", &[]);
    wait_for_knock(&port, late.pid());
    drop(port);
    let _restarted = serve_at(&addr);
    for peer in &mut peers {
        peer.proc
            .expect(Duration::from_secs(20), "signaling_resumed", |v| {
                event(v) == "signaling_resumed"
            });
    }
    let joined = late.expect(Duration::from_secs(10), "joined", |v| event(v) == "joined");
    let mut newcomer = Peer {
        proc: late,
        id: joined["peer"].as_str().expect("id").to_owned(),
        name: "late".into(),
    };
    let mut seen = BTreeSet::new();
    while seen != ids {
        let v = newcomer.proc.expect(
            Duration::from_secs(20),
            "peer_join of each resumed peer",
            |v| event(v) == "peer_join",
        );
        seen.insert(v["peer"].as_str().unwrap_or("").to_owned());
    }
    for peer in &mut peers {
        peer.proc
            .expect(Duration::from_secs(20), "the newcomer's join", |v| {
                event(v) == "peer_join" && v["peer"] == newcomer.id.as_str()
            });
    }
    newcomer
        .proc
        .cmd(json!({"cmd": "send", "channel": "chat", "data": "hello all"}));
    for peer in &mut peers {
        peer.proc
            .expect(Duration::from_secs(5), "the newcomer's message", |v| {
                event(v) == "message" && v["data"] == "hello all"
            });
    }
}

/// Accepts connections on `port` until one comes from process `pid`, closing each.
fn wait_for_knock(port: &std::net::TcpListener, pid: u32) {
    port.set_nonblocking(true).expect("nonblocking");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match port.accept() {
            Ok((connection, from)) => {
                // Reconnecting peers knock too; the newcomer's is the one its process holds.
                if socket_of(pid, from.port()) {
                    return;
                }
                drop(connection);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the newcomer never tried to reach the server"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Whether process `pid` holds the TCP socket bound to local `port` (its file descriptors
/// against the kernel's socket table).
fn socket_of(pid: u32, port: u16) -> bool {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|link| {
                    let link = link.to_str()?;
                    Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields
            .get(1)
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        local_port == Some(port) && fields.get(9).is_some_and(|i| inodes.contains(*i))
    })
}

/// `plenum serve` on a given address (the port the first server had).
fn serve_at(addr: &str) -> Serve {
    let mut proc = Proc::spawn(&["serve", "--bind", addr, "--json"]);
    let listening = proc.expect(Duration::from_secs(10), "listening", |v| {
        event(v) == "listening"
    });
    let url = listening["url"].as_str().expect("url").to_owned();
    Serve { proc, url }
}
