//! Close and reopen preserves every type, the replica id, the version
//! vector, the clock and the anti-entropy tree.

mod common;
use common::{dump, small_options};
use converge::{CausalContext, Engine, Error, ReplicaId};

#[test]
fn reopen_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (before, root, vv, last_ts);
    {
        let e = Engine::open(dir.path(), small_options(7)).unwrap();
        e.increment(b"g", 2).unwrap();
        e.pn_add(b"pn", -4).unwrap();
        e.gset_add(b"gs", b"a").unwrap();
        e.twop_add(b"tp", b"a").unwrap();
        e.twop_remove(b"tp", b"a").unwrap();
        e.orset_add(b"or", b"a").unwrap();
        e.lww_set(b"lww", b"v").unwrap();
        e.fww_set(b"fww", b"v").unwrap();
        e.mv_write(b"mv", b"v", &CausalContext::new()).unwrap();
        before = dump(&e);
        root = e.root().unwrap();
        vv = e.version_vector();
        last_ts = e.register(b"lww").unwrap().unwrap().ts;
        e.close().unwrap();
    }
    let mut opts = small_options(7);
    opts.replica_id = None;
    let e = Engine::open(dir.path(), opts).unwrap();
    assert_eq!(e.replica_id(), ReplicaId(7));
    assert_eq!(dump(&e), before);
    assert_eq!(e.root().unwrap(), root);
    assert_eq!(e.version_vector(), vv);
    assert!(e.verify().unwrap().consistent);
    // Sequence numbers and the clock continue after reopen.
    let d = e.increment(b"g", 1).unwrap();
    assert_eq!(d.delta.seq, vv.get(ReplicaId(7)) + 1);
    e.lww_set(b"lww", b"w").unwrap();
    assert!(e.register(b"lww").unwrap().unwrap().ts > last_ts);
}

#[test]
fn generated_replica_id_is_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_options(0);
    opts.replica_id = None;
    let id = Engine::open(dir.path(), opts.clone()).unwrap().replica_id();
    assert_eq!(Engine::open(dir.path(), opts).unwrap().replica_id(), id);
}

#[test]
fn reopening_with_another_replica_id_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    Engine::open(dir.path(), small_options(1)).unwrap();
    let err = Engine::open(dir.path(), small_options(2)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReplicaMismatch {
                stored: ReplicaId(1),
                given: ReplicaId(2)
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_store_without_create_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_options(1);
    opts.create_if_missing = false;
    assert!(matches!(
        Engine::open(dir.path().join("nope"), opts),
        Err(Error::Storage(_))
    ));
}

#[test]
fn disabling_anti_entropy_then_enabling_rebuilds_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = {
        let e = Engine::open(dir.path(), small_options(3)).unwrap();
        e.increment(b"a", 1).unwrap();
        e.root().unwrap()
    };
    {
        let mut opts = small_options(3);
        opts.anti_entropy = false;
        let e = Engine::open(dir.path(), opts).unwrap();
        e.increment(b"b", 1).unwrap();
        assert!(matches!(e.root(), Err(Error::InvalidArgument(_))));
    }
    let e = Engine::open(dir.path(), small_options(3)).unwrap();
    let after = e.root().unwrap();
    assert_ne!(after, root);
    assert_eq!(after.count, 2);
    assert!(e.verify().unwrap().consistent);
}

#[test]
fn out_of_range_options_are_rejected_before_touching_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        converge::Options {
            background_jobs: 0,
            ..small_options(1)
        },
        converge::Options {
            bloom_bits_per_key: f64::NAN,
            ..small_options(1)
        },
        converge::Options {
            lock_stripes: 0,
            ..small_options(1)
        },
        converge::Options {
            block_cache_bytes: 10,
            ..small_options(1)
        },
    ] {
        assert!(matches!(
            Engine::open(dir.path().join("x"), bad),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(!dir.path().join("x").exists());
}

/// Set `meta/format_version` of a closed store with RocksDB directly.
fn set_store_format(dir: &std::path::Path, v: u8) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(false);
    let mut meta = rocksdb::Options::default();
    meta.set_merge_operator_associative("converge.meta.v1", |_, _, _| None);
    let mut state = rocksdb::Options::default();
    state.set_merge_operator("converge.crdt_join.v1", |_, _, _| None, |_, _, _| None);
    let mut cfs = vec![
        rocksdb::ColumnFamilyDescriptor::new("state", state),
        rocksdb::ColumnFamilyDescriptor::new("meta", meta),
    ];
    for name in rocksdb::DB::list_cf(&opts, dir).unwrap() {
        if !["state", "meta"].contains(&name.as_str()) {
            cfs.push(rocksdb::ColumnFamilyDescriptor::new(
                name,
                rocksdb::Options::default(),
            ));
        }
    }
    let db = rocksdb::DB::open_cf_descriptors(&opts, dir, cfs).unwrap();
    let cf = db.cf_handle("meta").unwrap();
    db.put_cf(cf, b"format_version", [v]).unwrap();
}

#[test]
fn a_layout_1_store_is_upgraded_and_an_unknown_layout_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), common::small_options(5)).unwrap();
    e.increment(b"k", 3).unwrap();
    drop(e);
    set_store_format(dir.path(), 1);
    let e = Engine::open(dir.path(), common::small_options(5)).unwrap();
    assert_eq!(e.counter_value(b"k").unwrap(), 3);
    drop(e);
    set_store_format(dir.path(), 9);
    match Engine::open(dir.path(), common::small_options(5)) {
        Err(converge::Error::UnsupportedFormat {
            found: 9,
            supported,
        }) => {
            assert_eq!(supported, converge::store::STORE_FORMAT)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_background_settler_folds_written_keys_without_a_root_read() {
    let e = common::engine(8);
    let mut b = converge::Batch::new();
    for i in 0..5000u32 {
        b.increment(format!("k{i}"), 1);
    }
    e.write(&b).unwrap();
    // No root read, no settle call: the settler folds them (polled, with a
    // generous deadline; how fast is a benchmark's business).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while e.unsettled_keys() > 0 {
        assert!(std::time::Instant::now() < deadline, "keys never settled");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(e.settle().unwrap(), 0);
    assert_eq!(e.root().unwrap().count, 5000);
    assert!(e.verify().unwrap().consistent);
}
