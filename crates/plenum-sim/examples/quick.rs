fn main() {
    let args: Vec<String> = std::env::args().collect();
    let peers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let topo = if args.get(2).map(String::as_str) == Some("mesh") {
        plenum_sim::Topology::Mesh
    } else {
        plenum_sim::Topology::cells(args.get(5).and_then(|a| a.parse().ok()))
    };
    let churn: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0.0);
    let loss: f64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(0.0);
    let r = plenum_sim::simulate(&plenum_sim::SimConfig {
        peers,
        broadcasts: 100,
        churn_pct_per_min: churn,
        loss_pct: loss,
        ..plenum_sim::SimConfig::new(topo, 1)
    })
    .unwrap();
    println!("{r:?}");
}
