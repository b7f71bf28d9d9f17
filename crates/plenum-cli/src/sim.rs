//! `plenum sim`: runs the overlay simulator and prints its figures.

use std::time::Duration;

use plenum_sim::{Failure, SimConfig, Topology, simulate};

/// Which overlay to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SimTopology {
    Mesh,
    Cells,
    Tree,
    Relay,
}

/// Peers that crash together once the room has formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SimFailure {
    /// Cells: one peer that holds a bridge link.
    Bridge,
    /// Cells: every peer of one cell.
    Cell,
    /// Tree: the root (the server crowns a standby).
    Root,
}

/// Simulate a room of many peers on a virtual clock and print what it measured.
#[derive(Debug, clap::Args)]
pub(crate) struct SimArgs {
    /// The overlay.
    #[arg(long, value_enum)]
    topology: SimTopology,
    /// Peers in the room.
    #[arg(long, default_value_t = 1000)]
    peers: usize,
    /// Seed of every random choice: the same seed prints the same figures.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Percent of the peers replaced per simulated minute while the broadcasts go out.
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Percent of overlay messages dropped.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Broadcasts sent, each from a random live peer.
    #[arg(long, default_value_t = 100)]
    broadcasts: usize,
    /// Relay: unicasts sent, each from a random live peer to another (instead of
    /// broadcasts).
    #[arg(long)]
    unicasts: Option<usize>,
    /// Most direct neighbours per peer (relay).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    max_neighbours: u16,
    /// Most peers per cell (cells; default: chosen from the room's size).
    #[arg(long, value_parser = clap::value_parser!(u16).range(3..=1024))]
    cell_size: Option<u16>,
    /// Most children per node (tree).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    max_degree: u16,
    /// Peers that crash together once the room has formed; the broadcasts wait until it
    /// has formed again without them.
    #[arg(long, value_enum)]
    fail: Option<SimFailure>,
    /// Milliseconds between two of the first joins.
    #[arg(long, default_value_t = 2)]
    join_interval_ms: u64,
    /// Print one JSON object (the default prints it too; kept for scripts that pass it).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: SimArgs) -> anyhow::Result<()> {
    let topology = match args.topology {
        SimTopology::Mesh => Topology::Mesh,
        SimTopology::Cells => Topology::cells(args.cell_size),
        SimTopology::Tree => Topology::Tree(
            plenum_overlay::TreeConfig::builder()
                .max_degree(usize::from(args.max_degree))
                .build()?,
        ),
        SimTopology::Relay => Topology::Relay(
            plenum_overlay::RelayConfig::builder()
                .max_neighbours(usize::from(args.max_neighbours))
                .build()?,
        ),
    };
    let config = SimConfig {
        peers: args.peers,
        churn_pct_per_min: args.churn,
        loss_pct: args.loss,
        broadcasts: args.unicasts.unwrap_or(args.broadcasts),
        join_interval: Duration::from_millis(args.join_interval_ms),
        failure: args.fail.map(|f| match f {
            SimFailure::Bridge => Failure::Bridge,
            SimFailure::Cell => Failure::Cell,
            SimFailure::Root => Failure::Root,
        }),
        ..SimConfig::new(topology, args.seed)
    };
    let report = simulate(&config)?;
    let _ = args.json;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
