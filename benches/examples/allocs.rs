//! Heap allocations per write: counter increments through `Engine::write`
//! over 1,000 keys that exist, at batch 1 and batch 100, counted by a
//! global allocator that wraps the system's.
//!
//! `cargo run --release -p converge-benches --example allocs [aae]`: with
//! `aae`, the engine keeps its anti-entropy tree (the default); without,
//! `Options::anti_entropy` is off. Every allocation of the process while
//! the writes run is counted, the benchmark's own included: one key
//! (`String`) per operation and one `Batch` per write.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting allocations and their bytes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` or `realloc` above, which forward
        // to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as for `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const KEYS: usize = 1_000;
const OPS: usize = 20_000;

fn main() -> converge_benches::BenchResult<()> {
    let aae = std::env::args().nth(1).as_deref() == Some("aae");
    let dir = tempfile::tempdir()?;
    let options = converge::Options {
        anti_entropy: aae,
        ..converge::Options::default()
    };
    let engine = converge::Engine::open(dir.path(), options)?;
    // The keys exist (and are in the type cache) before counting starts.
    for k in 0..KEYS {
        engine.increment(format!("key:{k:012}").as_bytes(), 1)?;
    }
    println!("anti-entropy tree: {}", if aae { "on" } else { "off" });
    for batch in [1usize, 100] {
        let writes = OPS / batch;
        let (n0, b0) = (
            ALLOCATIONS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        for w in 0..writes {
            let mut b = converge::Batch::with_capacity(batch);
            for j in 0..batch {
                b.increment(format!("key:{:012}", (w * batch + j) % KEYS), 1);
            }
            engine.write(&b)?;
        }
        let n = ALLOCATIONS.load(Ordering::Relaxed) - n0;
        let bytes = BYTES.load(Ordering::Relaxed) - b0;
        println!(
            "batch {batch}: {:.1} allocations and {:.0} bytes per write ({:.2} allocations per operation)",
            n as f64 / writes as f64,
            bytes as f64 / writes as f64,
            n as f64 / OPS as f64
        );
    }
    Ok(())
}
