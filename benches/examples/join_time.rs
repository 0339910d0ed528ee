//! Time to join encoded 1,000-element OR-Set states the way the store's
//! merge operator does at reads, flushes and compactions: from their
//! encodings (`converge::codec::join_orset_states`), against decoding
//! each, joining and encoding the result (the operator's path for every
//! other value).
//!
//! The states are the report's distinct ones (`fixtures::orset_states`:
//! each adds the same 1,000 elements as another replica). `target/release/examples/join_time`
//! after `make bench-build`; prints microseconds per join of 2 and of 3
//! states, three rounds of 2,000 joins each way (each way's rounds in a
//! row: interleaved, the decoded path's allocations slowed the other).

use converge::codec::{decode_state, encode_state, join_orset_states};
use converge_benches::fixtures::orset_states;
use std::time::Instant;

fn main() {
    let states = orset_states(1_000, 3);
    for k in [2usize, 3] {
        let values: Vec<&[u8]> = states[..k].iter().map(Vec::as_slice).collect();
        let decoded = || {
            let mut acc = decode_state(values[0]).expect("a valid state");
            for v in &values[1..] {
                acc.try_join(&decode_state(v).expect("a valid state"))
                    .expect("states of one type");
            }
            encode_state(&acc)
        };
        assert_eq!(join_orset_states(&values), Some(decoded()));
        let time = |f: &dyn Fn()| {
            let n = 2_000;
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        };
        let bytes: Vec<f64> = (0..3)
            .map(|_| {
                time(&|| {
                    std::hint::black_box(join_orset_states(std::hint::black_box(&values)));
                })
            })
            .collect();
        let dec: Vec<f64> = (0..3)
            .map(|_| {
                time(&|| {
                    std::hint::black_box(decoded());
                })
            })
            .collect();
        let show = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{k} states: {} us from the encodings; {} us decoded",
            show(&bytes),
            show(&dec)
        );
    }
}
