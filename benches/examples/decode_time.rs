//! Time to decode a 1,000-element OR-Set and G-Set state
//! (`converge::codec::decode_state`, with its canonical check): what every
//! read of such a key, and every merge of its operands, pays; and to
//! certify it without decoding (`converge::codec::skim_state`): what the
//! write path pays for a peer's full state; and to encode it (what a write
//! that puts the state whole pays).
//!
//! `target/release/examples/decode_time` after `make bench-build`; prints
//! microseconds per decode, three rounds of 20,000 each.

use converge::codec::{decode_state, encode_state, skim_state};
use converge::crdt::{GSet, ORSet};
use converge::{ReplicaId, State};
use std::time::Instant;

fn main() {
    let elem = |i: u32| format!("element-{i:05}");
    let mut set = ORSet::default();
    let mut gset = GSet::default();
    for i in 0..1_000u32 {
        set.add(ReplicaId(1 + u128::from(i % 4)), elem(i).as_bytes());
        gset.add(elem(i).as_bytes());
    }
    for (name, state) in [
        ("orset1000", State::ORSet(set)),
        ("gset1000", State::GSet(gset)),
    ] {
        let bytes = encode_state(&state);
        for _ in 0..3 {
            let n = 20_000;
            let t = Instant::now();
            for _ in 0..n {
                let decoded = decode_state(std::hint::black_box(&bytes));
                std::hint::black_box(decoded.is_ok());
            }
            let decode = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(skim_state(std::hint::black_box(&bytes)));
            }
            let skim = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(encode_state(std::hint::black_box(&state)));
            }
            let encode = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            println!(
                "{name} ({} bytes): {decode:.1} us per decode, {skim:.1} us per skim, {encode:.1} us per encode",
                bytes.len()
            );
        }
    }
}
