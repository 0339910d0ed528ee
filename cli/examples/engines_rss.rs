//! Memory held per engine: open `N` engines (default 32) with the node's
//! partition options (`converge_cli::node::parts::partition_options`: 4 MiB
//! block cache, 2 MiB memtables), write `K` counter increments to each
//! (default 1,000) and read the root, and print the process's resident
//! memory (`VmRSS`) at start, after the opens and after the writes, with
//! the growth per engine:
//! `cargo run --release -p converge-cli --example engines_rss -- [N] [K] [AAE 0|1]`.
use converge::{Batch, Engine, Options};
use converge_cli::node::parts::partition_options;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let n: usize = a.get(1).map_or(Ok(32), |v| v.parse())?;
    let k: u64 = a.get(2).map_or(Ok(1_000), |v| v.parse())?;
    let aae = a.get(3).is_none_or(|v| v == "1");
    let root = std::env::temp_dir().join(format!("converge-engines-rss-{}", std::process::id()));
    let node = Options {
        anti_entropy: aae,
        ..Options::default()
    };
    let start = rss_kib();
    let mut engines = Vec::with_capacity(n);
    for i in 0..n {
        engines.push(Engine::open(
            root.join(format!("p{i}")),
            partition_options(&node),
        )?);
    }
    let opened = rss_kib();
    for e in &engines {
        let mut b = Batch::with_capacity(100);
        for j in 0..k {
            b.increment(format!("key{j}"), 1);
            if b.len() == 100 || j + 1 == k {
                e.write(&b)?;
                b.clear();
            }
        }
        if aae {
            e.root()?;
        }
    }
    let written = rss_kib();
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / 1024.0 / n as f64;
    println!(
        "{n} engines (tree {}): RSS {:.1} MiB at start, {:.1} opened ({:.2} MiB each), {:.1} after {k} keys each ({:.2} MiB each)",
        if aae { "on" } else { "off" },
        start as f64 / 1024.0,
        opened as f64 / 1024.0,
        per(start, opened),
        written as f64 / 1024.0,
        per(start, written),
    );
    drop(engines);
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
