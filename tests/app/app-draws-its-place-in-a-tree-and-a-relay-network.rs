//! The real app under Xvfb in the two other overlays. In a tree room whose root is a CLI
//! peer (degree 2, four more CLI peers under it), the network panel shows the app's depth,
//! its parent above and a line to it. In a relay room of CLI peers with at most three
//! neighbours each, the panel shows the app's direct neighbours round it, one line each.
//! Screenshots go to docs/screenshots/network-tree.png and network-relay.png when
//! PLENUM_ARTIFACTS names that directory.

use plenum_e2e::app as support;

use std::time::Duration;

use support::cli::{self, Peer};
use support::{Xvfb, app_with_network_panel, artifacts_dir, network_attr as panel, wait_for};

const LONG: Duration = Duration::from_secs(40);

/// One after the other: two apps, Xvfbs and WebDriver servers at once strain 2 cores.
#[test]
fn app_draws_its_place_in_a_tree_then_its_relay_neighbours() {
    app_draws_its_place_in_a_tree();
    app_draws_its_relay_neighbours();
}

fn app_draws_its_place_in_a_tree() {
    let server = cli::serve(&[]);
    let room = "tree-talk";
    let xvfb = Xvfb::start();
    let tree = ["--topology", "tree", "--max-degree", "2"];
    let mut root_args = tree.to_vec();
    root_args.extend(["--root", "--secret", "s"]);
    let mut peers: Vec<Peer> = vec![cli::join(&server.url, room, "Root", &root_args)];
    for i in 0..4 {
        peers.push(cli::join(&server.url, room, &format!("Peer {i}"), &tree));
    }
    let (_driver, app) = app_with_network_panel(
        &xvfb,
        support::app_bin(),
        (&server.url, room),
        &["--shape", "tree"],
        "tree",
    );
    // Six in a binary tree: the app is at depth 1 or 2, under a parent.
    let depth = wait_for(LONG, "a place in the tree", || {
        panel(&app, "data-depth").filter(|d| *d >= 1)
    });
    assert!(depth <= 3, "depth {depth}");
    let caption = app.text(&app.find("#network-caption").expect("a caption"));
    assert!(caption.starts_with("Broadcast tree: depth"), "{caption}");
    let children = panel(&app, "data-children").unwrap_or(0) as usize;
    assert_eq!(
        app.find_all("#network-panel line.network-bridge").len(),
        children + 1,
        "a line to the parent and one to each child"
    );
    assert_eq!(app.find_all("#network-panel circle.network-me").len(), 1);
    xvfb.screenshot(&artifacts_dir().join("network-tree.png"));
    drop(peers);
}

fn app_draws_its_relay_neighbours() {
    let server = cli::serve(&[]);
    let room = "relay-talk";
    let xvfb = Xvfb::start();
    let relay = ["--topology", "relay", "--max-neighbours", "3"];
    let peers: Vec<Peer> = (0..6)
        .map(|i| cli::join(&server.url, room, &format!("Peer {i}"), &relay))
        .collect();
    let (_driver, app) = app_with_network_panel(
        &xvfb,
        support::app_bin(),
        (&server.url, room),
        &["--shape", "relay"],
        "relay",
    );
    let n = wait_for(LONG, "relay neighbours drawn", || {
        panel(&app, "data-neighbours").filter(|n| *n >= 1)
    });
    assert!(n <= 3, "at most three neighbours: {n}");
    let caption = app.text(&app.find("#network-caption").expect("a caption"));
    assert!(caption.starts_with("Relay network:"), "{caption}");
    assert_eq!(
        app.find_all("#network-panel line.network-bridge").len() as u64,
        panel(&app, "data-neighbours").unwrap_or(0)
    );
    xvfb.screenshot(&artifacts_dir().join("network-relay.png"));
    drop(peers);
}
