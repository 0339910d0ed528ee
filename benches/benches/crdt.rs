//! Criterion micro-benchmarks of the pure layers: the join of each CRDT
//! type (Converge and the `crdts` crate on equivalent states) and the
//! codec (encode and decode of a state).

use converge::codec::{decode_state, encode_state};
use converge::crdt::Lattice;
use converge::State;
use converge_benches::fixtures::{
    crdts_gcounter_pair, crdts_orswot_pair, gcounter_pair, mvreg_pair, orset_pair, pncounter_pair,
};
use crdts::CvRDT;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;

fn joins(c: &mut Criterion) {
    let mut g = c.benchmark_group("join");
    let (a, b) = gcounter_pair(64).expect("fixture");
    g.bench_function("converge/gcounter64", |bench| {
        bench.iter_batched_ref(|| a.clone(), |l| l.join(&b), BatchSize::SmallInput)
    });
    let (x, y) = crdts_gcounter_pair(64);
    g.bench_function("crdts/gcounter64", |bench| {
        bench.iter_batched(
            || (x.clone(), y.clone()),
            |(mut l, r)| {
                l.merge(r);
                l
            },
            BatchSize::SmallInput,
        )
    });
    let (a, b) = pncounter_pair(64).expect("fixture");
    g.bench_function("converge/pncounter64", |bench| {
        bench.iter_batched_ref(|| a.clone(), |l| l.join(&b), BatchSize::SmallInput)
    });
    let (a, b) = orset_pair(1_000);
    g.bench_function("converge/orset1000", |bench| {
        bench.iter_batched_ref(|| a.clone(), |l| l.join(&b), BatchSize::LargeInput)
    });
    let (x, y) = crdts_orswot_pair(1_000);
    g.bench_function("crdts/orswot1000", |bench| {
        bench.iter_batched(
            || (x.clone(), y.clone()),
            |(mut l, r)| {
                l.merge(r);
                l
            },
            BatchSize::LargeInput,
        )
    });
    let (a, b) = mvreg_pair();
    g.bench_function("converge/mvreg2", |bench| {
        bench.iter_batched_ref(|| a.clone(), |l| l.join(&b), BatchSize::SmallInput)
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let (counter, _) = gcounter_pair(64).expect("fixture");
    let (set, _) = orset_pair(1_000);
    for (name, state) in [
        ("gcounter64", State::GCounter(counter)),
        ("orset1000", State::ORSet(set)),
    ] {
        let bytes = encode_state(&state);
        g.bench_function(format!("encode/{name}"), |bench| {
            bench.iter(|| encode_state(black_box(&state)))
        });
        g.bench_function(format!("decode/{name}"), |bench| {
            bench.iter(|| decode_state(black_box(&bytes)).expect("decodes"))
        });
    }
    g.finish();
}

criterion_group!(benches, joins, codec);
criterion_main!(benches);
