//! The changes feed: log bytes per write, `changes_since` throughput
//! (operations shipped per second, pages of 10,000 from an empty cursor),
//! the bytes of the pages after coalescing, and `apply_changes` throughput
//! on a peer.
//!
//! `feed DIR [OPS]` writes OPS counter increments (default 200,000) in
//! batches of 100, over 10,000 keys and then over 100 hot keys (where a
//! page coalesces many operations per key), and prints one JSON line for
//! each.

use converge::{Batch, CausalContext, Engine, Options, ReplicaId};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, ops) = match args.as_slice() {
        [_, dir] => (dir.clone(), 200_000u64),
        [_, dir, n] => (dir.clone(), n.parse()?),
        _ => return Err("usage: feed DIR [OPS]".into()),
    };
    for keys in [10_000u64, 100] {
        run(std::path::Path::new(&dir), ops, keys)?;
    }
    Ok(())
}

fn run(root: &std::path::Path, ops: u64, keys: u64) -> Result<(), Box<dyn std::error::Error>> {
    let a = Engine::open(root.join("a"), Options::with_replica(ReplicaId::random()))?;
    let b = Engine::open(root.join("b"), Options::with_replica(ReplicaId::random()))?;
    let mut batch = Batch::with_capacity(100);
    let mut k = 0u64;
    let t = Instant::now();
    while k < ops {
        batch.clear();
        for _ in 0..100 {
            batch.increment(format!("key{:05}", (k * 7919) % keys), 1);
            k += 1;
        }
        a.write(&batch)?;
    }
    let write_s = t.elapsed().as_secs_f64();
    let info = a.feed_info()?;
    let mut cursor = CausalContext::new();
    let mut pages = Vec::new();
    let mut shipped = 0u64;
    let t = Instant::now();
    loop {
        let page = a.changes_since(&cursor, 10_000)?;
        shipped += page.operations;
        if let Some(c) = page.changes {
            pages.push(c.encode());
        }
        cursor = page.next;
        if !page.more {
            break;
        }
    }
    let read_s = t.elapsed().as_secs_f64();
    let page_bytes: usize = pages.iter().map(Vec::len).sum();
    let t = Instant::now();
    for p in &pages {
        b.apply_changes(p)?;
    }
    let apply_s = t.elapsed().as_secs_f64();
    assert_eq!(shipped, ops);
    assert_eq!(b.context(), a.context());
    println!(
        "{{\"ops\": {ops}, \"keys\": {keys}, \"write_ops_per_s\": {:.0}, \"log_bytes_per_write\": {:.1}, \"changes_since_ops_per_s\": {:.0}, \"pages\": {}, \"page_bytes_per_op\": {:.2}, \"apply_changes_ops_per_s\": {:.0}}}",
        ops as f64 / write_s,
        info.bytes as f64 / ops as f64,
        shipped as f64 / read_s,
        pages.len(),
        page_bytes as f64 / ops as f64,
        ops as f64 / apply_s
    );
    drop(a);
    drop(b);
    std::fs::remove_dir_all(root.join("a"))?;
    std::fs::remove_dir_all(root.join("b"))?;
    Ok(())
}
