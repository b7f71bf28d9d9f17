//! Simulated cellular rooms over seeds and sizes keep the invariants of
//! docs/overlays/cells.md: every live peer in exactly one cell, every cell linked, the
//! degree bound, every broadcast delivered exactly once to every peer that was there
//! throughout, and repair after a bridge or a whole cell vanishes.

use std::time::Duration;

use plenum_overlay::CellDirectoryConfig;
use plenum_sim::{Failure, SimConfig, SimReport, Topology, simulate};
use proptest::prelude::*;

fn cells(cell_size: Option<u16>, bridges: u16) -> Topology {
    let config = CellDirectoryConfig::builder()
        .cell_size(cell_size)
        .bridges_per_edge(bridges)
        .build()
        .expect("valid options");
    Topology::Cells(config)
}

fn run(config: SimConfig) -> SimReport {
    let report = simulate(&config).expect("simulation runs");
    assert!(
        report.violations.is_empty(),
        "{config:?}: {:#?}",
        report.violations
    );
    assert_eq!(report.app_duplicates, 0, "{config:?}");
    report
}

fn room(topology: Topology, peers: usize, seed: u64) -> SimConfig {
    SimConfig {
        peers,
        broadcasts: 8,
        ..SimConfig::new(topology, seed)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_broadcast_reaches_everyone_once(
        seed in any::<u64>(),
        peers in 2usize..300,
        cell_size in proptest::option::of(3u16..16),
        bridges in 1u16..4,
    ) {
        let report = run(room(cells(cell_size, bridges), peers, seed));
        prop_assert_eq!(report.delivery_ratio, 1.0, "{:?}", report);
        prop_assert!(report.converged_after_ms.is_some());
        // Digits of the final layout bound the hops: 2 per digit, plus one.
        let digits = (report.cells as f64).log2().ceil() as u32;
        prop_assert!(report.hops_max <= 2 * digits.max(1) + 1, "{:?}", report);
    }

    #[test]
    fn the_room_repairs_itself_after_a_bridge_or_a_cell_vanishes(
        seed in any::<u64>(),
        peers in 20usize..200,
        cell_size in 4u16..10,
        whole_cell in any::<bool>(),
    ) {
        let failure = if whole_cell { Failure::Cell } else { Failure::Bridge };
        let config = SimConfig {
            failure: Some(failure),
            ..room(cells(Some(cell_size), 2), peers, seed)
        };
        let report = run(config);
        prop_assert!(report.failed >= 1);
        prop_assert!(report.converged_after_ms.is_some(), "{:?}", report);
        prop_assert_eq!(report.delivery_ratio, 1.0, "{:?}", report);
    }
}

#[test]
fn the_same_seed_gives_the_same_figures() {
    let a = run(room(cells(Some(6), 2), 150, 42));
    let b = run(room(cells(Some(6), 2), 150, 42));
    assert_eq!(SimReport { wall_ms: 0, ..a }, SimReport { wall_ms: 0, ..b });
}

#[test]
fn a_cellular_room_costs_the_server_the_same_per_join_at_any_size() {
    let small = run(room(cells(Some(12), 2), 250, 3));
    let large = run(room(cells(Some(12), 2), 1000, 3));
    let ratio = large.signaling_frames_per_join / small.signaling_frames_per_join;
    assert!(
        (0.75..1.33).contains(&ratio),
        "frames per join grew with the room: {} at 250, {} at 1000",
        small.signaling_frames_per_join,
        large.signaling_frames_per_join
    );
    let mesh = run(room(Topology::Mesh, 250, 3));
    assert!(mesh.signaling_frames_per_join > 3.0 * small.signaling_frames_per_join);

    // A seated voice reaches everyone, passed from cell to cell: the presenter and every
    // forwarder upload at most their links, every peer downloads it once; a mesh presenter
    // reaches everyone at an upload of the whole room.
    assert_eq!(large.media.reach, 1.0, "{:?}", large.media);
    assert!(large.media.presenter_upload <= large.max_degree);
    assert!(
        large.media.upload_max <= large.max_degree,
        "{:?}",
        large.media
    );
    assert!(large.media.forwarders > 0);
    assert_eq!(large.media.download_max, 1);
    assert_eq!(mesh.media.reach, 1.0);
    assert_eq!(mesh.media.presenter_upload, 249);
}

/// Regression: with one flood per cell (only the first entry flooded), a lost copy or a
/// vanished entry left the rest of its cell without the broadcast: 0.9986 of deliveries
/// under 5 % churn per minute at 2,000 peers, seed 1. Every entry floods now.
#[test]
fn regression_churn_seed_1_keeps_delivery_above_999_per_mille() {
    let report = simulate(&SimConfig {
        peers: 2000,
        broadcasts: 100,
        churn_pct_per_min: 5.0,
        ..SimConfig::new(Topology::cells(None), 1)
    })
    .expect("simulation runs");
    assert!(report.delivery_ratio >= 0.999, "{report:?}");
    assert_eq!(report.app_duplicates, 0);
}

#[test]
fn loss_is_survived_by_the_cell_entries() {
    let report = run(SimConfig {
        loss_pct: 1.0,
        join_interval: Duration::from_millis(5),
        ..room(cells(Some(8), 2), 400, 9)
    });
    assert!(report.delivery_ratio >= 0.995, "{report:?}");
}

#[test]
fn bad_settings_are_refused() {
    assert!(simulate(&room(Topology::Mesh, 1, 1)).is_err());
    assert!(simulate(&room(Topology::Mesh, 5000, 1)).is_err());
    assert!(
        simulate(&SimConfig {
            loss_pct: 120.0,
            ..room(Topology::Mesh, 10, 1)
        })
        .is_err()
    );
}

/// Regression (found by the first property, shrunk to this case): when a join or leave
/// dropped or added bridge ends in the neighbouring cells, those cells were not balanced,
/// and one peer of a cell of three carried six bridges while its mates carried three.
#[test]
fn regression_seed_0_far_cells_are_balanced_after_a_change() {
    let report = run(room(cells(Some(3), 2), 62, 0));
    assert_eq!(report.delivery_ratio, 1.0);
}
