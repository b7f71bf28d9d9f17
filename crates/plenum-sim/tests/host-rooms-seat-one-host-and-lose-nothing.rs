//! Simulated host rooms over seeds and sizes, with hosts that die one after another and,
//! in half the cases, every survivor claiming the vacant seat at once: the server seats
//! one host per vacancy, no two peers ever hold themselves the host at once, the room
//! ends agreed on one live host, and every post of a peer that stayed reaches every other
//! peer that stayed exactly once.

use plenum_sim::{HostSimConfig, simulate_host};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn host_rooms_seat_one_host_and_lose_nothing(
        seed in any::<u64>(),
        peers in 2usize..12,
        deaths in 0usize..4,
        all_claim in any::<bool>(),
    ) {
        let report = simulate_host(&HostSimConfig {
            all_claim,
            ..HostSimConfig::new(peers, deaths, seed)
        });
        prop_assert_eq!(report.max_hosts_at_once, 1, "{:?}", report);
        let mut epochs: Vec<u64> = report.grants.iter().map(|(e, _)| *e).collect();
        epochs.dedup();
        prop_assert_eq!(epochs.len(), report.grants.len(), "an epoch granted twice: {:?}", report.grants);
        // One grant for the first peer and one per death (a room of one left keeps its host).
        prop_assert_eq!(report.grants.len(), 1 + deaths.min(peers - 1), "{:?}", report);
        prop_assert!(report.agreed, "{:?}", report);
        prop_assert_eq!(report.delivered, report.expected, "{:?}", report);
        prop_assert_eq!(report.duplicates, 0, "{:?}", report);
    }
}
