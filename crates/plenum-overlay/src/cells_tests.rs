// Tests take one real instant as the origin of their virtual clock, then only add to it.
#![allow(clippy::disallowed_methods)]

use super::*;
use plenum_proto::DisplayName;
use plenum_proto::overlay::BridgeLink;
use plenum_proto::signal::PeerSummary;

fn id(s: &str) -> PeerId {
    PeerId::new(s).unwrap()
}

fn summary(s: &str) -> PeerSummary {
    PeerSummary {
        peer: id(s),
        name: DisplayName::new(s).unwrap(),
        publish: true,
        role: Default::default(),
    }
}

/// Cells 0..9 in radices [3, 3]; "m" sits in cell 4 (digits 1, 1) with cell mates "c" and
/// "x", and bridges to "b0" in cell 3 (digit 0) and "b1" in cell 1 (digit 1).
fn plan(epoch: u32) -> CellPlan {
    CellPlan {
        epoch,
        radices: vec![3, 3],
        cell: 4,
        members: vec![summary("c"), summary("m"), summary("x")],
        bridges: vec![
            BridgeLink {
                peer: summary("b0"),
                cell: 3,
            },
            BridgeLink {
                peer: summary("b1"),
                cell: 1,
            },
        ],
    }
}

fn drain(mesh: &mut CellMesh) -> Vec<Output> {
    let mut out = Vec::new();
    loop {
        match mesh.poll_output() {
            Output::Timeout(_) => return out,
            o => out.push(o),
        }
    }
}

fn node(t0: Instant) -> CellMesh {
    let mut mesh = CellMesh::new(id("m"), CellMeshConfig::default(), t0, 1);
    mesh.handle_input(Input::Plan {
        plan: plan(1),
        now: t0,
    });
    drain(&mut mesh);
    for p in ["b0", "b1", "c", "x"] {
        mesh.handle_input(Input::LinkUp {
            peer: id(p),
            now: t0,
        });
    }
    mesh
}

fn frame(origin: &str, dim: Option<u8>, intra: bool, hops: u8) -> MeshFrame {
    MeshFrame {
        origin: id(origin),
        seq: 9,
        hops,
        ttl: 8,
        dim,
        intra,
        epoch: 1,
        origin_cell: 5,
        data: b"hi".to_vec(),
    }
}

fn sends(out: &[Output]) -> Vec<(String, Option<u8>, bool)> {
    let mut s: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { peer, frame } => {
                Some((peer.as_str().to_owned(), frame.dim, frame.intra))
            }
            _ => None,
        })
        .collect();
    s.sort();
    s
}

#[test]
fn a_plan_links_the_cell_and_the_bridges_smaller_id_offering() {
    let t0 = Instant::now();
    let mut mesh = CellMesh::new(id("m"), CellMeshConfig::default(), t0, 1);
    mesh.handle_input(Input::Plan {
        plan: plan(1),
        now: t0,
    });
    let out = drain(&mut mesh);
    let connects: Vec<(String, bool)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Connect { peer, initiate } => Some((peer.as_str().to_owned(), *initiate)),
            _ => None,
        })
        .collect();
    assert_eq!(
        connects,
        vec![
            ("b0".into(), false),
            ("b1".into(), false),
            ("c".into(), false),
            ("x".into(), true)
        ]
    );
    let state = out.iter().find_map(|o| match o {
        Output::State(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(
        state,
        Some(MeshState {
            cell: 4,
            cells: 9,
            cell_size: 3,
            is_bridge: true,
            bridges: vec![(id("b0"), 3), (id("b1"), 1)],
            epoch: 1,
            radices: vec![3, 3],
        })
    );
    assert!(out.contains(&Output::PeerCell {
        peer: id("b1"),
        cell: 1
    }));
    assert!(!mesh.settled());
}

#[test]
fn a_new_plan_drops_the_peers_it_no_longer_names() {
    let t0 = Instant::now();
    let mut mesh = node(t0);
    assert!(mesh.settled());
    let mut next = plan(1);
    next.bridges.pop();
    mesh.handle_input(Input::Plan {
        plan: next,
        now: t0,
    });
    let out = drain(&mut mesh);
    assert!(out.contains(&Output::Disconnect {
        peer: id("b1"),
        reason: crate::DropReason::Left
    }));
    assert!(mesh.settled());
    // An older epoch is ignored.
    let mut stale = plan(0);
    stale.members.clear();
    mesh.handle_input(Input::Plan {
        plan: stale,
        now: t0,
    });
    assert!(
        !drain(&mut mesh)
            .iter()
            .any(|o| matches!(o, Output::Disconnect { .. }))
    );
}

#[test]
fn the_origin_floods_its_cell_and_every_bridge() {
    let t0 = Instant::now();
    let mut mesh = node(t0);
    mesh.handle_input(Input::LinkDown {
        peer: id("x"),
        now: t0,
    });
    mesh.handle_input(Input::Broadcast {
        data: b"hello".to_vec(),
        now: t0,
    });
    let out = drain(&mut mesh);
    assert_eq!(
        sends(&out),
        vec![
            ("b0".into(), Some(0), false),
            ("b1".into(), Some(1), false),
            ("c".into(), None, true)
        ],
        "x's link is down: it gets nothing from us yet"
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Deliver { .. })),
        "no delivery to ourselves"
    );
    // A planned peer's frames wait for its link (a new plan's links take a moment).
    mesh.handle_input(Input::LinkUp {
        peer: id("x"),
        now: t0,
    });
    let out = drain(&mut mesh);
    assert_eq!(sends(&out), vec![("x".into(), None, true)]);
    // A peer the plan no longer names gets nothing it was held.
    mesh.handle_input(Input::LinkDown {
        peer: id("c"),
        now: t0,
    });
    mesh.handle_input(Input::Broadcast {
        data: b"again".to_vec(),
        now: t0,
    });
    let mut smaller = plan(2);
    smaller.members.retain(|m| m.peer != id("c"));
    mesh.handle_input(Input::Plan {
        plan: smaller,
        now: t0,
    });
    drain(&mut mesh);
    mesh.handle_input(Input::LinkUp {
        peer: id("c"),
        now: t0,
    });
    assert!(sends(&drain(&mut mesh)).is_empty());
}

#[test]
fn a_frame_from_a_bridge_floods_the_cell_and_goes_on_only_along_higher_digits() {
    let t0 = Instant::now();
    let mut mesh = node(t0);
    mesh.handle_input(Input::Frame {
        from: id("b0"),
        frame: frame("o", Some(0), false, 2),
        now: t0,
    });
    let out = drain(&mut mesh);
    assert!(out.contains(&Output::Deliver {
        origin: id("o"),
        data: b"hi".to_vec(),
        hops: 3
    }));
    assert_eq!(
        sends(&out),
        vec![
            ("b1".into(), Some(1), false),
            ("c".into(), Some(0), true),
            ("x".into(), Some(0), true)
        ]
    );
    assert!(out.contains(&Output::PeerCell {
        peer: id("o"),
        cell: 5
    }));
    // A second copy is dropped and counted.
    mesh.handle_input(Input::Frame {
        from: id("c"),
        frame: frame("o", Some(0), true, 3),
        now: t0,
    });
    assert!(drain(&mut mesh).is_empty());
    assert_eq!(mesh.duplicates(), 1);
}

#[test]
fn a_frame_from_a_cell_mate_is_not_flooded_again() {
    let t0 = Instant::now();
    let mut mesh = node(t0);
    mesh.handle_input(Input::Frame {
        from: id("c"),
        frame: frame("o", Some(1), true, 1),
        now: t0,
    });
    let out = drain(&mut mesh);
    assert!(out.iter().any(|o| matches!(o, Output::Deliver { .. })));
    assert!(
        sends(&out).is_empty(),
        "entered along the last digit, from a cell mate: nothing to do"
    );
    mesh.handle_input(Input::Frame {
        from: id("c"),
        frame: MeshFrame {
            seq: 10,
            ..frame("o", None, true, 1)
        },
        now: t0,
    });
    assert_eq!(
        sends(&drain(&mut mesh)),
        vec![("b0".into(), Some(0), false), ("b1".into(), Some(1), false)]
    );
}

#[test]
fn the_hop_limit_stops_forwarding_and_another_epoch_floods() {
    let t0 = Instant::now();
    let mut mesh = node(t0);
    mesh.handle_input(Input::Frame {
        from: id("b0"),
        frame: frame("o", Some(0), false, 7),
        now: t0,
    });
    let out = drain(&mut mesh);
    assert!(out.contains(&Output::Deliver {
        origin: id("o"),
        data: b"hi".to_vec(),
        hops: 8
    }));
    assert!(sends(&out).is_empty());
    let other_epoch = MeshFrame {
        seq: 11,
        epoch: 2,
        ..frame("o", Some(1), true, 0)
    };
    mesh.handle_input(Input::Frame {
        from: id("c"),
        frame: other_epoch,
        now: t0,
    });
    assert_eq!(
        sends(&drain(&mut mesh)),
        vec![
            ("b0".into(), None, false),
            ("b1".into(), None, false),
            ("x".into(), None, false)
        ]
    );
}

#[test]
fn a_plan_with_a_broken_layout_is_ignored() {
    let t0 = Instant::now();
    let mut mesh = CellMesh::new(id("m"), CellMeshConfig::default(), t0, 1);
    mesh.handle_input(Input::Plan {
        plan: CellPlan {
            radices: vec![1],
            ..plan(1)
        },
        now: t0,
    });
    mesh.handle_input(Input::Plan {
        plan: CellPlan { cell: 9, ..plan(1) },
        now: t0,
    });
    assert!(drain(&mut mesh).is_empty());
    assert!(mesh.state().is_none());
}

#[test]
fn broadcasts_before_the_first_plan_wait_for_it() {
    let t0 = Instant::now();
    let mut mesh = CellMesh::new(id("m"), CellMeshConfig::default(), t0, 1);
    mesh.handle_input(Input::Broadcast {
        data: b"early".to_vec(),
        now: t0,
    });
    assert!(drain(&mut mesh).is_empty());
    mesh.handle_input(Input::Plan {
        plan: plan(1),
        now: t0,
    });
    assert!(sends(&drain(&mut mesh)).is_empty(), "no link is up yet");
    // Flushed at the plan, held for each planned peer until its link opens.
    mesh.handle_input(Input::LinkUp {
        peer: id("c"),
        now: t0,
    });
    mesh.handle_input(Input::Broadcast {
        data: b"later".to_vec(),
        now: t0,
    });
    let out = drain(&mut mesh);
    let data: Vec<&[u8]> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { peer, frame } if *peer == id("c") => Some(frame.data.as_slice()),
            _ => None,
        })
        .collect();
    assert_eq!(data, [&b"early"[..], &b"later"[..]]);
}

#[test]
fn an_entry_that_had_the_frame_from_a_cell_mate_still_floods_the_cell() {
    let t0 = Instant::now();
    let mut mesh = node(t0);
    mesh.handle_input(Input::Frame {
        from: id("c"),
        frame: frame("o", Some(0), true, 3),
        now: t0,
    });
    let first = drain(&mut mesh);
    assert_eq!(sends(&first), vec![("b1".into(), Some(1), false)]);
    // The same broadcast over our own bridge: we are an entry too, so the cell hears it
    // from us as well (in case the other entry's copies were lost); the bridges do not.
    mesh.handle_input(Input::Frame {
        from: id("b0"),
        frame: frame("o", Some(0), false, 2),
        now: t0,
    });
    let second = drain(&mut mesh);
    assert!(!second.iter().any(|o| matches!(o, Output::Deliver { .. })));
    assert_eq!(
        sends(&second),
        vec![("c".into(), Some(0), true), ("x".into(), Some(0), true)]
    );
    mesh.handle_input(Input::Frame {
        from: id("b0"),
        frame: frame("o", Some(0), false, 2),
        now: t0,
    });
    assert!(sends(&drain(&mut mesh)).is_empty());
}

mod sequences {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Plan(u32, u8),
        Up(usize),
        Down(usize),
        Frame(usize, u64, Option<u8>, bool, u8, u32),
        Broadcast,
        Tick(u64),
    }

    const PEERS: [&str; 5] = ["b0", "b1", "c", "x", "z"];

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u32..3, 0u8..4).prop_map(|(e, c)| Step::Plan(e, c)),
            (0..PEERS.len()).prop_map(Step::Up),
            (0..PEERS.len()).prop_map(Step::Down),
            (
                0..PEERS.len(),
                0u64..4,
                proptest::option::of(0u8..3),
                any::<bool>(),
                any::<u8>(),
                0u32..3
            )
                .prop_map(|(p, s, d, i, h, e)| Step::Frame(p, s, d, i, h, e)),
            Just(Step::Broadcast),
            (0u64..1_000).prop_map(Step::Tick),
        ]
    }

    proptest! {
        /// Whatever arrives in whatever order: no panic, frames go only to open links of
        /// planned peers, and each broadcast reaches the application at most once.
        #[test]
        fn any_input_sequence_keeps_the_rules(steps in proptest::collection::vec(step(), 1..60)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut mesh = CellMesh::new(id("m"), CellMeshConfig::default(), t0, 3);
            let mut up = std::collections::BTreeSet::new();
            let mut delivered = std::collections::BTreeSet::new();
            for s in steps {
                match s {
                    Step::Plan(epoch, cell) => {
                        let mut p = plan(epoch);
                        p.cell = u32::from(cell);
                        mesh.handle_input(Input::Plan { plan: p, now });
                    }
                    Step::Up(i) => {
                        up.insert(PEERS[i]);
                        mesh.handle_input(Input::LinkUp { peer: id(PEERS[i]), now });
                    }
                    Step::Down(i) => {
                        up.remove(PEERS[i]);
                        mesh.handle_input(Input::LinkDown { peer: id(PEERS[i]), now });
                    }
                    Step::Frame(i, seq, dim, intra, hops, epoch) => {
                        let f = MeshFrame {
                            seq,
                            dim,
                            intra,
                            hops,
                            epoch,
                            data: seq.to_be_bytes().to_vec(),
                            ..frame("o", None, false, 0)
                        };
                        mesh.handle_input(Input::Frame { from: id(PEERS[i]), frame: f, now });
                    }
                    Step::Broadcast => mesh.handle_input(Input::Broadcast { data: vec![1], now }),
                    Step::Tick(ms) => {
                        now += Duration::from_millis(ms);
                        mesh.handle_input(Input::Tick { now });
                    }
                }
                let wanted = mesh.neighbours();
                loop {
                    match mesh.poll_output() {
                        Output::Timeout(at) => {
                            prop_assert!(at >= t0);
                            break;
                        }
                        Output::Send { peer, frame } => {
                            prop_assert!(up.contains(peer.as_str()), "sent to {} whose link is not open", peer.as_str());
                            prop_assert!(wanted.contains(&peer), "sent to {} outside the plan", peer.as_str());
                            prop_assert!(frame.hops < frame.ttl.max(1));
                        }
                        Output::Deliver { origin, data, .. } => {
                            // Within the 120 s filter window (these steps span at most 60 s).
                            prop_assert!(delivered.insert((origin, data)), "a broadcast delivered twice");
                        }
                        Output::Disconnect { peer, .. } => {
                            up.remove(peer.as_str());
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

#[test]
fn a_new_plan_sends_the_last_broadcasts_to_the_peers_it_newly_names() {
    let t0 = Instant::now();
    let mut mesh = node(t0);
    mesh.handle_input(Input::Frame {
        from: id("b0"),
        frame: frame("o", Some(0), false, 1),
        now: t0,
    });
    drain(&mut mesh);
    // A new layout moves "d" into our cell: it gets what went round just before, once its
    // link opens; the others, who had it, get nothing again.
    let mut moved = plan(2);
    moved.members.push(summary("d"));
    mesh.handle_input(Input::Plan {
        plan: moved,
        now: t0 + Duration::from_millis(500),
    });
    assert!(sends(&drain(&mut mesh)).is_empty());
    mesh.handle_input(Input::LinkUp {
        peer: id("d"),
        now: t0 + Duration::from_millis(600),
    });
    let out = drain(&mut mesh);
    assert_eq!(sends(&out), vec![("d".into(), None, false)]);
    // Past the window, a newly named peer gets nothing old.
    let mut later = plan(3);
    later.members.push(summary("e"));
    mesh.handle_input(Input::Plan {
        plan: later,
        now: t0 + Duration::from_secs(5),
    });
    mesh.handle_input(Input::LinkUp {
        peer: id("e"),
        now: t0 + Duration::from_secs(5),
    });
    assert!(sends(&drain(&mut mesh)).is_empty());
}
