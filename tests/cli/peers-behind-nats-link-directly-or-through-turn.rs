//! Two peers behind NATs of the test's own: a hub namespace stands for the internet (a
//! bridge, the signaling server and coturn on it), two router namespaces on the hub each
//! masquerade a private network with one peer in it. The server hands out coturn as STUN
//! and TURN. Behind endpoint-independent NATs (Linux's masquerade keeps a socket's port
//! whatever it sends to) the peers punch through and link directly (`srflx`); when one NAT
//! is symmetric (`masquerade random`: a new port for each destination, so the port STUN saw
//! is not the one the peer is sent from) no direct pair works and they fall back to TURN by
//! themselves (`relay`), with no flag. Data and audio flow both times.
//!
//! The routers drop what arrives unasked, as a home router's firewall does: without that,
//! a peer's first check, arriving before the other side has sent anything, makes an
//! inbound conntrack entry on the router that then holds the port the masquerade would
//! keep, and the other side's packets leave from a new port its peer does not expect.
//!
//! coturn runs as a public TURN server should: it refuses to relay to private addresses
//! (`denied-peer-ip`, the ranges its own example configuration lists), so a peer's host
//! candidates behind a NAT never get a permission on it. coturn 4.6.1 without that setting,
//! once a permission for such an address exists, forwards nothing the allocation's client
//! sends on any channel ("wrote to peer 0 bytes" in its log), and no relayed pair opens.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::{NetNs, Proc, event, secret_file};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(45);
const SECRET: &str = "nat-lab-turn-secret-0123456789";

/// A private network behind a NAT on the hub: the router and the host behind it.
struct Behind {
    _router: NetNs,
    host: NetNs,
    ip: String,
}

/// Puts a host behind `router` (a namespace on the hub, its hub side `eth0`): a private
/// network 192.168.`i`.0/24, forwarding, a masquerade (`random`: a symmetric NAT), and
/// nothing new in from the hub.
fn behind(router: NetNs, i: u8, symmetric: bool) -> Behind {
    let host = NetNs::create();
    router.exec(&[
        "ip", "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", &host.name,
    ]);
    router.exec(&[
        "ip",
        "addr",
        "add",
        &format!("192.168.{i}.1/24"),
        "dev",
        "lan",
    ]);
    router.exec(&["ip", "link", "set", "lan", "up"]);
    router.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let masquerade = if symmetric {
        "masquerade random"
    } else {
        "masquerade"
    };
    let rules = format!(
        "table ip plenum_nat {{
           chain post {{
             type nat hook postrouting priority 100; policy accept;
             oifname \"eth0\" {masquerade}
           }}
           chain in {{
             type filter hook input priority 0; policy accept;
             iifname \"eth0\" ct state new drop
           }}
         }}"
    );
    let path = std::env::temp_dir().join(format!("{}-nat.nft", router.name));
    std::fs::write(&path, rules).expect("write rules");
    router.exec(&["nft", "-f", path.to_str().expect("utf-8")]);
    std::fs::remove_file(&path).expect("cleanup rules");
    let ip = format!("192.168.{i}.2");
    host.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    host.exec(&["ip", "link", "set", "eth0", "up"]);
    host.exec(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &format!("192.168.{i}.1"),
    ]);
    Behind {
        _router: router,
        host,
        ip,
    }
}

fn peers(p: &mut Proc) -> Value {
    p.cmd(json!({"cmd": "peers"}));
    p.expect(LONG, "peers", |v| event(v) == "peers")
}

/// Two peers behind NATs (the second symmetric if asked): the path their link takes.
fn link_behind_nats(subnet: u8, second_symmetric: bool) -> String {
    let hub_ip = format!("10.{subnet}.0.254");
    let (hub, mut routers) = NetNs::star(subnet, 2);
    let second = behind(routers.pop().expect("router"), 2, second_symmetric);
    let first = behind(routers.pop().expect("router"), 1, false);
    let prefix = ["ip", "netns", "exec", hub.name.as_str()];
    let _turn = common::coturn(
        &prefix,
        &hub_ip,
        3478,
        (40_000, 40_200),
        SECRET,
        &["--denied-peer-ip=192.168.0.0-192.168.255.255"],
    );
    let secret = secret_file(&format!("nat-{subnet}"), SECRET);
    let turn_url = format!("turn:{hub_ip}:3478");
    let stun_url = format!("stun:{hub_ip}:3478");
    let bind = format!("{hub_ip}:0");
    let mut server = hub.spawn(
        &[
            "serve",
            "--bind",
            &bind,
            "--json",
            "--turn-url",
            &turn_url,
            "--turn-secret-file",
            secret.path(),
            "--stun-url",
            &stun_url,
        ],
        &[],
    );
    let url = server.expect(LONG, "listening", |v| event(v) == "listening")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let room = format!("nat-{subnet}");
    let mut a = first
        .host
        .spawn_join_at(&url, &room, "a", &first.ip, &["--audio", "sine:440"]);
    let mut b = second.host.spawn_join_at(&url, &room, "b", &second.ip, &[]);
    let a_id = a.expect(LONG, "joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .expect("id")
        .to_owned();
    for p in [&mut a, &mut b] {
        p.expect(LONG, "the other peer", |v| event(v) == "peer_join");
    }
    let path = peers(&mut a)["peers"][0]["path"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    assert_eq!(
        peers(&mut b)["peers"][0]["path"].as_str(),
        Some(path.as_str()),
        "both ends take one path"
    );
    a.cmd(json!({"cmd": "send", "channel": "chat", "data": "through the NATs"}));
    b.expect(LONG, "data", |v| {
        event(v) == "message" && v["data"] == "through the NATs"
    });
    b.expect(LONG, "a's audio", |v| {
        event(v) == "speaking" && v["speaking"] == true && v["peer"] == a_id.as_str()
    });
    for p in [&mut a, &mut b] {
        p.cmd(json!({"cmd": "leave"}));
        assert_eq!(p.wait_exit(LONG), Some(0));
    }
    server.kill();
    path
}

#[test]
fn behind_endpoint_independent_nats_peers_link_directly() {
    assert_eq!(link_behind_nats(75, false), "srflx");
}

#[test]
fn behind_a_symmetric_nat_peers_fall_back_to_turn() {
    assert_eq!(link_behind_nats(74, true), "relay");
}
