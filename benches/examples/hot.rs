//! Run one local workload in a loop, for profiling (`perf record`).
//! `hot KIND SECONDS [feed] [aae]` with KIND counter|lww|orset-add|orset-remove|mvreg.
use converge::{Durability, Engine, Options};
use converge_benches::fixtures::local_replica;
use converge_benches::local::{engine_rate, Kind};
use converge_benches::measure::Load;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.name() == a[1])
        .expect("kind");
    let secs: u64 = a[2].parse().unwrap();
    let feed = a.get(3).map(|s| s == "1").unwrap_or(true);
    let aae = a.get(4).map(|s| s == "1").unwrap_or(true);
    let t = std::time::Instant::now();
    let mut rs = Vec::new();
    while t.elapsed().as_secs() < secs {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Options::with_replica(local_replica()).durability(Durability::Buffered);
        o.changes_feed = feed;
        o.anti_entropy = aae;
        let engine = Engine::open(dir.path(), o).unwrap();
        let load = Load::new(100_000, 10_000, 100);
        rs.push(engine_rate(&engine, kind, &load).unwrap());
    }
    rs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{} feed={feed} aae={aae}: median {:.0} ops/s over {}",
        a[1],
        rs[rs.len() / 2],
        rs.len()
    );
}
