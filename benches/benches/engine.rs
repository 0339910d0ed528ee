//! Criterion micro-benchmarks of single-operation writes through the
//! engine (buffered durability) and a raw RocksDB put of the same size.

use converge::Durability;
use converge_benches::fixtures::{elem, open_engine};
use converge_benches::local::Kind;
use converge_benches::measure::key;
use converge_benches::peers::RawDb;
use criterion::{criterion_group, criterion_main, Criterion};

/// Keys the single-operation writes cycle over.
const KEYS: u64 = 10_000;

fn single_op(c: &mut Criterion) {
    let mut g = c.benchmark_group("write");
    let (engine, _dir) = open_engine(Durability::Buffered).expect("engine opens");
    let mut i = 0u64;
    g.bench_function("converge/increment", |bench| {
        bench.iter(|| {
            i += 1;
            engine.increment(&key(i % KEYS), 1).expect("write")
        })
    });
    g.bench_function("converge/orset_add", |bench| {
        bench.iter(|| {
            i += 1;
            engine
                .orset_add(&key(i % KEYS), &elem(i % 8))
                .expect("write")
        })
    });
    g.bench_function("converge/lww_set", |bench| {
        bench.iter(|| {
            i += 1;
            engine.lww_set(&key(i % KEYS), &elem(i)).expect("write")
        })
    });
    let raw = RawDb::open(Durability::Buffered).expect("raw db opens");
    let value = vec![0x5a; Kind::Counter.value_len().expect("size")];
    g.bench_function("rocksdb/put", |bench| {
        bench.iter(|| {
            i += 1;
            raw.db().put(key(i % KEYS), &value).expect("write")
        })
    });
    g.finish();
}

criterion_group!(benches, single_op);
criterion_main!(benches);
