//! What the C ABI costs over the Rust API: the same batch of G-Counter
//! increments written through `engine::Engine::write` and through
//! `cvg_batch_increment` + `cvg_engine_write` (the exported functions a C
//! program calls), with and without the deltas returned.
//!
//! ```sh
//! cargo run --release -p converge-ffi --example batch_overhead -- [ops] [rounds]
//! ```
//!
//! Prints the median time per batch of each path and its ratio to the Rust
//! API. Both paths use engines opened with the same options, on fresh
//! directories under the system temp dir (removed at the end).

use converge::batch::{
    cvg_batch_free, cvg_batch_increment, cvg_batch_new, cvg_deltas_free, cvg_deltas_len,
    cvg_engine_write,
};
use converge::cvg_status_t::CVG_STATUS_OK;
use converge::engine::{cvg_engine_close, cvg_engine_open, cvg_engine_t};
use engine::{Batch, Durability, Engine, Options};
use std::ffi::CString;
use std::time::{Duration, Instant};

const KEYS: usize = 1000;

fn options() -> Options {
    Options::default().durability(Durability::None)
}

fn key(i: usize) -> Vec<u8> {
    format!("counter/{:04}", i % KEYS).into_bytes()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One batch through the Rust API; returns the number of deltas.
fn rust_batch(e: &Engine, ops: usize, encode: bool) -> usize {
    let mut b = Batch::with_capacity(ops);
    for i in 0..ops {
        b.increment(key(i), 1);
    }
    let deltas = e.write(&b).expect("rust write");
    if encode {
        deltas
            .iter()
            .filter(|d| !std::hint::black_box(d.delta.encode()).is_empty())
            .count()
    } else {
        deltas.len()
    }
}

/// One batch through the C ABI; returns the number of deltas.
fn c_batch(e: *const cvg_engine_t, ops: usize, deltas: bool) -> usize {
    // SAFETY: `e` is a live engine; keys are valid for the calls.
    unsafe {
        let b = cvg_batch_new();
        for i in 0..ops {
            let k = key(i);
            assert_eq!(
                cvg_batch_increment(b, k.as_ptr(), k.len(), 1),
                CVG_STATUS_OK
            );
        }
        let mut out = std::ptr::null_mut();
        let out_ptr = if deltas {
            &mut out as *mut _
        } else {
            std::ptr::null_mut()
        };
        assert_eq!(cvg_engine_write(e, b, out_ptr), CVG_STATUS_OK);
        let n = cvg_deltas_len(out);
        cvg_deltas_free(out);
        cvg_batch_free(b);
        if deltas {
            n
        } else {
            ops
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ops: usize = args.next().map_or(100_000, |a| a.parse().expect("ops"));
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("rounds"));
    let dir = std::env::temp_dir().join(format!("converge-batch-overhead-{}", std::process::id()));
    let rust = Engine::open(dir.join("rust"), options()).expect("open rust engine");
    let path = CString::new(dir.join("c").to_string_lossy().as_bytes()).expect("path");
    let mut c: *mut cvg_engine_t = std::ptr::null_mut();
    // SAFETY: valid path, options and out pointer. Same options as the Rust
    // engine: the defaults with durability None.
    unsafe {
        let opts = converge::options::cvg_options_new();
        converge::options::cvg_options_set_durability(opts, converge::options::CVG_DURABILITY_NONE);
        assert_eq!(cvg_engine_open(path.as_ptr(), opts, &mut c), CVG_STATUS_OK);
        converge::options::cvg_options_free(opts);
    }

    type Run<'a> = (&'a str, Box<dyn Fn() -> usize + 'a>);
    let runs: Vec<Run> = vec![
        (
            "rust api, deltas dropped",
            Box::new(|| rust_batch(&rust, ops, false)),
        ),
        (
            "rust api, deltas encoded",
            Box::new(|| rust_batch(&rust, ops, true)),
        ),
        (
            "c abi, deltas_out = NULL",
            Box::new(|| c_batch(c, ops, false)),
        ),
        ("c abi, packed deltas", Box::new(|| c_batch(c, ops, true))),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); runs.len()];
    for (_, f) in &runs {
        f(); // warm-up: creates the keys
    }
    for _ in 0..rounds {
        for (i, (name, f)) in runs.iter().enumerate() {
            let t = Instant::now();
            let n = f();
            times[i].push(t.elapsed());
            assert_eq!(n, ops, "{name}: every increment returns a delta");
        }
    }
    println!("{ops} increments per batch over {KEYS} keys, median of {rounds} rounds");
    let base = median(times[0].clone());
    for ((name, _), t) in runs.iter().zip(times) {
        let m = median(t);
        println!(
            "  {name:<26} {:>9.2} ms  {:>6.2} M ops/s  x{:.2}",
            m.as_secs_f64() * 1e3,
            ops as f64 / m.as_secs_f64() / 1e6,
            m.as_secs_f64() / base.as_secs_f64()
        );
    }
    drop(runs);
    drop(rust);
    assert_eq!(cvg_engine_close(c), CVG_STATUS_OK);
    let _ = std::fs::remove_dir_all(&dir);
}
