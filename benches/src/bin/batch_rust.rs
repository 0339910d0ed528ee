//! The Rust side of the Python batch benchmark
//! (`bindings/python/bench/batch_vs_rust.py`, `make bench-python-rust`):
//! one batch of OPS G-Counter increments over KEYS keys written to a fresh
//! engine (durability buffered), REPS times; prints the seconds of each run
//! (building the batch and writing it) as one JSON line.
//!
//! `batch_rust DIR OPS KEYS REPS DELTAS(0|1)`

use converge::{Batch, Durability, Engine, Options};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, ops, keys, reps, deltas] = args.as_slice() else {
        return Err("usage: batch_rust DIR OPS KEYS REPS DELTAS(0|1)".into());
    };
    let (ops, keys, reps): (u64, u64, usize) = (ops.parse()?, keys.parse()?, reps.parse()?);
    let want_deltas = deltas == "1";
    let names: Vec<Vec<u8>> = (0..keys)
        .map(|i| format!("key:{i:06}").into_bytes())
        .collect();
    let mut seconds = Vec::with_capacity(reps);
    for rep in 0..reps {
        let path = std::path::Path::new(dir).join(format!("rust-{rep}"));
        let engine = Engine::open(&path, Options::default().durability(Durability::Buffered))?;
        let t = Instant::now();
        let mut batch = Batch::with_capacity(ops as usize);
        for i in 0..ops {
            batch.increment(names[(i % keys) as usize].clone(), 1);
        }
        let written = engine.write(&batch)?;
        if want_deltas {
            // What a caller shipping deltas does: encode every one.
            let mut buf = Vec::with_capacity(written.len() * 48);
            for d in &written {
                d.delta.encode_into(&mut buf);
            }
            std::hint::black_box(buf);
        }
        seconds.push(t.elapsed().as_secs_f64());
        drop(engine);
        std::fs::remove_dir_all(&path)?;
    }
    println!("{{\"seconds\": {seconds:?}}}");
    Ok(())
}
