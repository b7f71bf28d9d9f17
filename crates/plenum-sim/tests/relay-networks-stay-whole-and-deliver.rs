//! Simulated relay networks over seeds and sizes, with joins arriving together and latency
//! between the peers: one connected network, the neighbour bound held, no unicast
//! delivered twice, and nearly all delivered. (Unicasts sent in the first seconds, while
//! neighbours are still being chosen, can run out of hops: up to 5 % here, 0 % once the
//! network has settled; the exact-once delivery property is the node's own proptest.)

use plenum_overlay::RelayConfig;
use plenum_sim::{SimConfig, Topology, simulate};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn relay_networks_stay_whole_and_deliver(seed in any::<u64>(), peers in 2usize..300, max in 8usize..24) {
        let relay = RelayConfig::builder().max_neighbours(max).build().expect("valid");
        let report = simulate(&SimConfig {
            peers,
            broadcasts: 40,
            ..SimConfig::new(Topology::Relay(relay), seed)
        })
        .expect("runs");
        prop_assert!(report.converged_after_ms.is_some(), "{:?}", report);
        prop_assert!(report.violations.is_empty(), "{:?}", report);
        prop_assert!(report.delivery_ratio >= 0.95, "{:?}", report);
        prop_assert_eq!(report.app_duplicates, 0);
        prop_assert!(report.max_degree <= max, "{:?}", report);
        prop_assert!(report.hops_max <= 32, "{:?}", report);
    }
}
