//! Encoded sizes of session tokens (FORMAT.md, kind 2) with 3, 64 and 1,000
//! replicas, measured on real engines: the token of one write
//! (`KeyedDelta::token`) and the context a read is made at
//! (`Engine::context`) on a replica that merged one delta from each of N
//! replicas, with and without gaps (dots received out of order, which only
//! deltas without recorded dependencies leave); and the size of a delta's
//! dependencies: the first operation of the reader after those merges
//! depends on all N replicas, the next one on none.
//!
//! `token_sizes DIR` prints one JSON line per replica count.

use converge::codec::encode_context;
use converge::{Engine, Options, ReplicaId};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir] = args.as_slice() else {
        return Err("usage: token_sizes DIR".into());
    };
    for n in [3u128, 64, 1000] {
        let root = std::path::Path::new(dir).join(format!("n{n}"));
        let reader = Engine::open(
            root.join("reader"),
            Options::with_replica(ReplicaId(1 << 100)),
        )?;
        let writer_root = root.join("writers");
        let gappy = Engine::open(
            root.join("gappy"),
            Options::with_replica(ReplicaId((1 << 100) + 1)),
        )?;
        let mut write_token = 0;
        for r in 0..n {
            // Each replica's id is random-looking (as ReplicaId::random
            // makes them), so entries cost their full varint width.
            let id = ReplicaId::random();
            let w = Engine::open(writer_root.join(format!("{r}")), Options::with_replica(id))?;
            let mut last = None;
            for _ in 0..5 {
                last = Some(w.increment(b"k", 1)?);
            }
            let mut d = last.ok_or("no write")?;
            write_token = encode_context(&d.token()).len();
            // The whole history to the reader (its record is a vector)...
            let page = w
                .changes_since(&Default::default(), 100)?
                .changes
                .ok_or("empty feed")?;
            reader.apply_changes(&page.encode())?;
            // ...and to the other one the 5th delta only, without its
            // dependencies: one dot above a gap for this replica.
            d.delta.deps = None;
            gappy.merge(&d.key, &d.delta.encode())?;
        }
        let contiguous = encode_context(&reader.context()).len();
        let with_gaps = encode_context(&gappy.context()).len();
        let first = reader.increment(b"mine", 1)?;
        let second = reader.increment(b"mine", 1)?;
        let deps_len = |d: &converge::KeyedDelta| {
            d.delta
                .deps
                .as_ref()
                .map_or(0, |c| encode_context(c).len() - 6)
        };
        println!(
            "{{\"replicas\": {n}, \"write_token_bytes\": {write_token}, \"read_token_bytes\": {contiguous}, \"read_token_bytes_with_gaps\": {with_gaps}, \"read_token_bytes_per_replica\": {:.1}, \"delta_deps_bytes_after_merges\": {}, \"delta_deps_bytes_consecutive\": {}, \"delta_bytes_consecutive\": {}}}",
            contiguous as f64 / n as f64,
            deps_len(&first),
            deps_len(&second),
            second.delta.encode().len()
        );
        drop(reader);
        drop(gappy);
        std::fs::remove_dir_all(&root)?;
    }
    Ok(())
}
