//! Encoded sizes of session tokens (FORMAT.md, kind 2) with 3, 64 and 1,000
//! replicas, measured on real engines: the token of one write
//! (`KeyedDelta::token`) and the context a read is made at
//! (`Engine::context`) on a replica that merged one delta from each of N
//! replicas, with and without gaps (dots received out of order).
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
            let d = last.ok_or("no write")?;
            write_token = encode_context(&d.token()).len();
            // Deliver the 5th delta only: the reader holds one dot above a
            // gap for this replica.
            reader.merge(&d.key, &d.delta.encode())?;
        }
        let with_gaps = encode_context(&reader.context()).len();
        println!(
            "{{\"replicas\": {n}, \"write_token_bytes\": {write_token}, \"read_token_bytes_with_gaps\": {with_gaps}, \"read_token_bytes_per_replica\": {:.1}}}",
            with_gaps as f64 / n as f64
        );
        drop(reader);
        std::fs::remove_dir_all(&root)?;
    }
    Ok(())
}
