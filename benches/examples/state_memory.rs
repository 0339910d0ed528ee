//! Memory of decoded states against their encoded size: what
//! `Options::state_cache_bytes` (counted in encoded bytes) costs in heap.
//! Prints, for OR-Sets of short elements and for MV registers, the encoded
//! size, the heap bytes the decoded state holds (measured by a counting
//! allocator), and their ratio.
//!
//! `cargo run --release --example state_memory` (from `benches/`), or
//! `target/release/examples/state_memory` after
//! `cargo build --release --workspace --all-targets`.

use converge::codec::{decode_state, encode_state};
use converge::crdt::{MvRegister, ORSet};
use converge::{CausalContext, ReplicaId, State};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Encoded bytes, and heap bytes of the state decoded from them.
fn measure(state: &State) -> (usize, isize) {
    let bytes = encode_state(state);
    let before = LIVE.load(Ordering::Relaxed);
    let decoded = decode_state(&bytes).expect("decodes");
    let heap = LIVE.load(Ordering::Relaxed) - before;
    std::hint::black_box(&decoded);
    (bytes.len(), heap)
}

fn main() {
    println!("| state | encoded bytes | decoded heap bytes | ratio |");
    println!("|---|---:|---:|---:|");
    for n in [10u64, 1_000, 100_000] {
        let mut set = ORSet::default();
        for i in 0..n {
            // Two replicas, as a set written at two places holds.
            set.add(
                ReplicaId(1 + (i % 2) as u128),
                format!("elem-{i:06}").as_bytes(),
            );
        }
        let (enc, heap) = measure(&State::ORSet(set));
        println!(
            "| OR-Set, {n} elements of 11 bytes | {enc} | {heap} | {:.1}x |",
            heap as f64 / enc as f64
        );
    }
    let mut reg = MvRegister::default();
    let ctx = CausalContext::new();
    reg.write(ReplicaId(1), &[7u8; 100], &ctx);
    reg.write(ReplicaId(2), &[8u8; 100], &ctx);
    let (enc, heap) = measure(&State::MvRegister(reg));
    println!(
        "| MV register, 2 siblings of 100 bytes | {enc} | {heap} | {:.1}x |",
        heap as f64 / enc as f64
    );
}
