//! Memory held per engine: open `N` engines (default 32) with the node's
//! partition options (4 MiB block cache, 2 MiB memtables, tree on), write
//! `K` counter increments to each (default 1,000), and print the process's
//! resident memory (`VmRSS`) before, after the opens and after the writes,
//! with the growth per engine:
//! `engines_rss [N] [K] [AAE 0|1]`.
use converge::{Batch, Engine, Options};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn main() -> converge_benches::BenchResult<()> {
    let a: Vec<String> = std::env::args().collect();
    let n: usize = a.get(1).map_or(Ok(32), |v| v.parse())?;
    let k: u64 = a.get(2).map_or(Ok(1_000), |v| v.parse())?;
    let aae = a.get(3).is_none_or(|v| v == "1");
    let root = tempfile::tempdir()?;
    let start = rss_kib();
    let mut engines = Vec::with_capacity(n);
    for i in 0..n {
        let o = Options {
            block_cache_bytes: 4 << 20,
            write_buffer_bytes: 2 << 20,
            background_jobs: 1,
            type_cache_entries: 4096,
            state_cache_bytes: 2 << 20,
            changes_feed: false,
            anti_entropy: aae,
            ..Options::default()
        };
        engines.push(Engine::open(root.path().join(format!("p{i}")), o)?);
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
    Ok(())
}
