//! Anti-entropy sessions: diverged replicas converge exchanging only
//! differing keys, over a lossy transport too; hostile messages are
//! rejected and change nothing; a corrupted tree is detected.

mod common;
use common::{assert_tree_holds, dump, engine, small_options, TempEngine};
use converge::sync::{self, Body, Config, Envelope, Outcome, Session, SyncError};
use converge::{Batch, CausalContext, Durability, Engine, Error};
use proptest::prelude::*;

/// Apply a pseudo-random operation of any type.
fn random_op(e: &Engine, x: u64) {
    let key = format!("k{}", x % 40);
    let el = vec![b'e', (x >> 8) as u8 % 5];
    let mut b = Batch::new();
    match (x % 40) % 8 {
        0 => b.increment(key, x % 7 + 1),
        1 => b.pn_add(key, (x % 9) as i64 - 4),
        2 => b.gset_add(key, el),
        3 if x % 3 == 0 => b.twop_remove(key, el),
        3 => b.twop_add(key, el),
        4 if x % 3 == 0 => b.orset_remove(key, el),
        4 => b.orset_add(key, el),
        5 => b.lww_set(key, el),
        6 => b.fww_set(key, el),
        _ => {
            let ctx = if x % 2 == 0 {
                e.mv_read(key.as_bytes()).unwrap().context
            } else {
                CausalContext::new()
            };
            b.mv_write(key, el, ctx)
        }
    };
    e.write(&b).unwrap();
}

fn assert_converged(a: &Engine, b: &Engine) {
    assert_eq!(dump(a), dump(b));
    assert_eq!(a.root().unwrap(), b.root().unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn replicas_converge_by_sync_in_random_pairs(
        ops in prop::collection::vec((0..3usize, any::<u64>()), 1..80),
        pairs in prop::collection::vec((0..3usize, 0..3usize), 1..6),
        key_lists in any::<bool>(),
    ) {
        let reps = [engine(1), engine(2), engine(3)];
        for (r, x) in &ops {
            random_op(&reps[*r], *x);
        }
        let config = Config { iblt: !key_lists, ..Config::default() };
        for (a, b) in pairs.iter().copied().chain([(0, 1), (1, 2), (0, 1)]) {
            if a == b { continue; }
            let (ca, cb) = (reps[a].context(), reps[b].context());
            let ((oa, _), (ob, _)) = sync::sync_engines(&*reps[a], &*reps[b], config.clone()).unwrap();
            // Both sides learn the verdict: both equal or both converged.
            prop_assert!(
                matches!(
                    (oa, ob),
                    (Outcome::Equal, Outcome::Equal) | (Outcome::Converged, Outcome::Converged)
                ),
                "{:?} {:?}", oa, ob
            );
            prop_assert_eq!(dump(&reps[a]), dump(&reps[b]));
            // Each side's record now covers everything the other's listed.
            prop_assert!(reps[a].context().includes(&cb));
            prop_assert!(reps[b].context().includes(&ca));
        }
        assert_converged(&reps[0], &reps[2]);
        for r in &reps {
            prop_assert!(r.verify().unwrap().consistent);
        }
    }
}

#[test]
fn equal_replicas_are_detected_in_one_small_message() {
    let a = engine(1);
    let b = engine(2);
    for i in 0..50u64 {
        let d = a.increment(format!("c{i}").as_bytes(), i + 1).unwrap();
        b.merge(&d.key, &d.delta.encode()).unwrap();
    }
    let (mut sa, first) = Session::initiate(&*a, Config::default()).unwrap();
    // 44 bytes at most, plus the causal record it carries.
    let record = converge::codec::encode_context(&a.context()).len();
    assert!(
        first.len() <= 44 + record,
        "summary is {} bytes",
        first.len()
    );
    let mut sb = Session::respond(&*b, Config::default());
    let reply = sb.handle(&first).unwrap();
    assert_eq!(sb.outcome(), Some(Outcome::Equal));
    for m in reply {
        assert!(sa.handle(&m).unwrap().is_empty());
    }
    assert_eq!(sa.outcome(), Some(Outcome::Equal));
}

/// A message given to a side that has already ended is refused
/// (`SyncError::Ended`) and changes nothing, its outcome included: a
/// converged side stays converged however many stray messages follow (a
/// duplicated last message, a replay of the first). Found by the `ffi`
/// fuzz target, whose check took any refusal for a failure.
#[test]
fn a_message_after_the_end_leaves_the_outcome() {
    let a = engine(1);
    let b = engine(2);
    for i in 0..20u64 {
        a.increment(format!("a{i}").as_bytes(), 1).unwrap();
        b.orset_add(format!("b{i}").as_bytes(), b"x").unwrap();
    }
    let (mut sa, first) = Session::initiate(&*a, Config::default()).unwrap();
    let mut sb = Session::respond(&*b, Config::default());
    let mut to_b = vec![first.clone()];
    let mut last_to_a = Vec::new();
    while !to_b.is_empty() {
        let mut to_a = Vec::new();
        for m in to_b.drain(..) {
            to_a.extend(sb.handle(&m).unwrap());
        }
        for m in to_a {
            last_to_a = m.clone();
            to_b.extend(sa.handle(&m).unwrap());
        }
    }
    assert_eq!(sa.outcome(), Some(Outcome::Converged));
    assert_eq!(sb.outcome(), Some(Outcome::Converged));
    let (da, db) = (dump(&a), dump(&b));
    assert_eq!(da, db);
    for (side, msg) in [(&mut sa, &last_to_a), (&mut sb, &first)] {
        assert!(matches!(side.handle(msg), Err(SyncError::Ended)));
        assert!(matches!(side.receive(msg), Err(SyncError::Ended)));
        assert_eq!(side.outcome(), Some(Outcome::Converged));
        assert!(side.is_finished());
        assert!(!side.has_output());
    }
    assert_eq!(dump(&a), da);
    assert_eq!(dump(&b), db);
}

#[test]
fn only_differing_keys_travel() {
    let a = engine(1);
    let b = engine(2);
    for i in 0..2000u64 {
        let d = a.increment(format!("c{i}").as_bytes(), 1).unwrap();
        b.merge(&d.key, &d.delta.encode()).unwrap();
    }
    for i in 0..30u64 {
        a.increment(format!("c{}", i * 7).as_bytes(), 1).unwrap();
        b.orset_add(format!("only-b-{i}").as_bytes(), b"x").unwrap();
    }
    let ((_, sa), (ob, sb)) = sync::sync_engines(&*a, &*b, Config::default()).unwrap();
    assert_eq!(ob, Outcome::Converged);
    // Keys present on both sides with different states travel both ways
    // (each side's state is needed for the join); equal keys never travel.
    assert_eq!(
        sb.states_sent, 60,
        "b sends its 30 new and 30 differing keys"
    );
    assert_eq!(sa.states_sent, 30, "a sends its 30 differing keys");
    assert!(
        sa.flights + sb.flights <= 6,
        "{} flights",
        sa.flights + sb.flights
    );
    assert_converged(&a, &b);
}

/// Hand `msgs` to `session`, dropping, duplicating and swapping some when
/// `lossy`; returns the replies and whether the session failed.
fn deliver(
    mut msgs: Vec<Vec<u8>>,
    session: &mut Session<&Engine>,
    rnd: &mut impl FnMut() -> u64,
    lossy: bool,
) -> (Vec<Vec<u8>>, bool) {
    let mut out = Vec::new();
    let mut failed = false;
    if lossy && msgs.len() > 1 && rnd() % 4 == 0 {
        msgs.swap(0, 1);
    }
    for m in msgs {
        let deliveries = match if lossy { rnd() % 10 } else { 9 } {
            0 => 0,
            1 => 2,
            _ => 1,
        };
        for _ in 0..deliveries {
            match session.handle(&m) {
                Ok(replies) => out.extend(replies),
                Err(_) => failed = true,
            }
        }
    }
    (out, failed)
}

/// Deliver messages with drops, duplicates and reordering; abort sessions
/// that fail and start new ones until the replicas converge.
#[test]
fn lossy_transport_still_converges() {
    let a = engine(1);
    let b = engine(2);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..300 {
        random_op(&a, rnd() ^ i);
        random_op(&b, rnd() ^ i);
    }
    let expected = {
        // The join of both, computed by a lossless sync between copies.
        let ca = engine(1);
        let cb = engine(2);
        common::push_all(&a, &ca);
        common::push_all(&b, &ca);
        common::push_all(&ca, &cb);
        dump(&ca)
    };
    let mut failures = 0;
    for attempt in 0..200 {
        let lossy = attempt < 150;
        let config = Config {
            message_budget: 512,
            ..Config::default()
        };
        let (mut sa, first) = Session::initiate(&*a, config.clone()).unwrap();
        let mut sb = Session::respond(&*b, config);
        let mut to_b = vec![first];
        let mut to_a: Vec<Vec<u8>> = Vec::new();
        let mut failed = false;
        while !failed && (!to_a.is_empty() || !to_b.is_empty()) {
            let (out, f1) = deliver(std::mem::take(&mut to_b), &mut sb, &mut rnd, lossy);
            to_a.extend(out);
            let (out, f2) = deliver(std::mem::take(&mut to_a), &mut sa, &mut rnd, lossy);
            to_b.extend(out);
            failed = f1 || f2;
        }
        if failed {
            failures += 1;
        }
        if dump(&a) == expected && dump(&b) == expected {
            assert!(failures > 0, "the lossy transport never broke a session");
            assert_converged(&a, &b);
            return;
        }
    }
    panic!("did not converge after 200 sessions ({failures} failed)");
}

fn first_messages(a: &TempEngine, b: &TempEngine) -> (Vec<u8>, Vec<u8>) {
    let (_, first) = Session::initiate(&**a, Config::default()).unwrap();
    let mut sb = Session::respond(&**b, Config::default());
    let reply = sb.handle(&first).unwrap();
    (first, reply.into_iter().next().unwrap())
}

#[test]
fn hostile_messages_are_rejected_and_change_nothing() {
    let a = engine(1);
    let b = engine(2);
    a.increment(b"x", 1).unwrap();
    b.increment(b"y", 1).unwrap();
    let before = dump(&b);
    let (first, _) = first_messages(&a, &b);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("bad version", {
            let mut m = first.clone();
            m[0] = 9;
            m
        }),
        ("truncated", first[..first.len() - 3].to_vec()),
        ("flipped byte", {
            let mut m = first.clone();
            m[5] ^= 1;
            m
        }),
        (
            "huge claimed length",
            sync::encode(&Envelope {
                session: 1,
                seq: 0,
                body: Body::Exchange {
                    states: &sync::states_blob(&[(vec![0; 10], vec![1, 2, 3])]),
                    want: &[],
                    last: true,
                },
            })[..20]
                .to_vec(),
        ),
        ("oversized", vec![0u8; (80 << 20) + 1]),
        (
            "wrong shape",
            sync::encode(&Envelope {
                session: 1,
                seq: 0,
                body: Body::Estimate {
                    horizon: Default::default(),
                    hashes: vec![1, 2, 3],
                    context: Default::default(),
                },
            }),
        ),
        (
            "out of order",
            sync::encode(&Envelope {
                session: 1,
                seq: 5,
                body: Body::Summary {
                    horizon: Default::default(),
                    root: 1,
                    count: 1,
                    context: Default::default(),
                },
            }),
        ),
        (
            "wrong phase",
            sync::encode(&Envelope {
                session: 1,
                seq: 0,
                body: Body::States {
                    states: &[],
                    root: 0,
                    last: true,
                },
            }),
        ),
        (
            "bad state inside",
            sync::encode(&Envelope {
                session: 1,
                seq: 0,
                body: Body::Exchange {
                    states: &sync::states_blob(&[(b"y".to_vec(), vec![1, 0, 0, 0, 0, 0])]),
                    want: &[],
                    last: true,
                },
            }),
        ),
    ];
    for (name, msg) in cases {
        let mut sb = Session::respond(&*b, Config::default());
        let err = sb.handle(&msg).expect_err(name);
        assert!(sb.is_finished(), "{name}: the session ends");
        assert!(matches!(sb.handle(&first), Err(SyncError::Ended)), "{name}");
        assert!(
            matches!(
                err,
                SyncError::Codec(_)
                    | SyncError::Malformed(_)
                    | SyncError::TooLarge { .. }
                    | SyncError::Unexpected(_)
                    | SyncError::Engine(_)
            ),
            "{name}: {err}"
        );
        assert_eq!(dump(&b), before, "{name} changed state");
    }
    // A state of the wrong type for the key is an engine error, nothing
    // merged: b initiates with key lists, so after the responder's
    // estimate it waits for the responder's Exchange.
    a.orset_add(b"z", b"q").unwrap();
    let no_iblt = Config {
        iblt: false,
        ..Config::default()
    };
    let (mut sb, first) = Session::initiate(&*b, no_iblt.clone()).unwrap();
    let mut sa = Session::respond(&*a, no_iblt);
    let estimate = sa.handle(&first).unwrap();
    assert_eq!(estimate.len(), 1);
    let key_list = sb.handle(&estimate[0]).unwrap();
    assert!(!key_list.is_empty());
    let session = sync::decode(&first, usize::MAX, 1024).unwrap().session;
    let bad = sync::encode(&Envelope {
        session,
        seq: 1,
        body: Body::Exchange {
            states: &sync::states_blob(&[(b"y".to_vec(), a.state_bytes(b"z").unwrap().unwrap())]),
            want: &[],
            last: true,
        },
    });
    assert!(matches!(
        sb.handle(&bad),
        Err(SyncError::Engine(converge::Error::WrongType { .. }))
    ));
    assert_eq!(dump(&b), before);
}

#[test]
fn verify_detects_a_corrupted_tree_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::open(dir.path(), small_options(1)).unwrap();
        for i in 0..100u64 {
            e.increment(format!("k{i}").as_bytes(), i + 1).unwrap();
        }
        assert!(e.verify().unwrap().consistent);
        e.close().unwrap();
    }
    {
        // Damage one persisted leaf behind the engine's back, in the
        // index's own instance (the `aae` directory of the store).
        let index = dir.path().join("aae");
        let opts = rocksdb::Options::default();
        let cfs = rocksdb::DB::list_cf(&opts, &index).unwrap();
        let db = rocksdb::DB::open_cf(&opts, &index, cfs).unwrap();
        let leaves = db.cf_handle("aae_leaves").unwrap();
        let (k, mut v) = db
            .iterator_cf(leaves, rocksdb::IteratorMode::Start)
            .next()
            .unwrap()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .unwrap();
        v[3] ^= 0xff;
        db.put_cf(leaves, k, v).unwrap();
    }
    let e = Engine::open(dir.path(), small_options(1)).unwrap();
    let report = e.verify().unwrap();
    assert!(!report.consistent);
    assert_eq!(report.bad_segments.len(), 1);
}

/// The data's RocksDB instance opened with plain RocksDB (merge
/// operators that keep the last operand: replaying the WAL needs them on
/// the merge column families; nothing here merges).
fn open_raw(dir: &std::path::Path, extra: &[&str]) -> rocksdb::DB {
    let keep_last = |_: &[u8], _: Option<&[u8]>, ops: &rocksdb::MergeOperands| {
        ops.iter().last().map(|v| v.to_vec())
    };
    let mut opts = rocksdb::Options::default();
    opts.create_missing_column_families(true);
    let mut cfs = rocksdb::DB::list_cf(&opts, dir).unwrap();
    cfs.extend(extra.iter().map(|s| s.to_string()));
    let descriptors = cfs.iter().map(|name| {
        let mut o = rocksdb::Options::default();
        if name == "state" || name == "meta" {
            o.set_merge_operator_associative("test.keep_last", keep_last);
        }
        rocksdb::ColumnFamilyDescriptor::new(name, o)
    });
    rocksdb::DB::open_cf_descriptors(&opts, dir, descriptors).unwrap()
}

/// A store created before `meta/types_exact` may hold a state without its
/// `types` entry (a crash under `Durability::None` before the flushes were
/// atomic). Its first open gives each such key its entry, from the state
/// (type, size, tombstone flag), and then marks the store exact: an
/// increment adds to what the key holds, a write of another type is
/// refused, and a deleted key stays out of key listings. A state that does
/// not decode has no type to give: the store stays unmarked, its writes
/// read the state of keys `types` lacks, and the next open walks it again.
#[test]
fn an_older_store_is_made_exact_at_open() {
    let dir = tempfile::tempdir().unwrap();
    // Without a WAL a close flushes the data with the engine's merge
    // operator, so the raw sessions below (whose stand-in operator keeps
    // the last operand) replay and flush none of the states' operands.
    let options = || small_options(1).durability(Durability::None);
    let e = Engine::open(dir.path(), options()).unwrap();
    e.increment(b"c", 5).unwrap();
    e.lww_set(b"r", b"v").unwrap();
    e.delete(b"r", None).unwrap();
    e.orset_add(b"s", b"x").unwrap();
    let listed =
        |e: &Engine| -> Vec<Vec<u8>> { e.keys(b"").unwrap().map(|k| k.unwrap().0).collect() };
    assert_eq!(listed(&e), vec![b"c".to_vec(), b"s".to_vec()]);
    e.close().unwrap();
    let entry =
        |db: &rocksdb::DB, key: &[u8]| db.get_cf(db.cf_handle("types").unwrap(), key).unwrap();
    let mark = |db: &rocksdb::DB| {
        db.get_cf(db.cf_handle("meta").unwrap(), b"types_exact")
            .unwrap()
    };
    // Made legacy: no mark, two keys without their entries.
    let (c_was, r_was) = {
        let db = open_raw(dir.path(), &[]);
        assert!(mark(&db).is_some());
        let was = (entry(&db, b"c").unwrap(), entry(&db, b"r").unwrap());
        assert_eq!(
            was.1.len(),
            6,
            "a deleted key's entry has the tombstone flag"
        );
        db.delete_cf(db.cf_handle("meta").unwrap(), b"types_exact")
            .unwrap();
        for k in [&b"c"[..], b"r"] {
            db.delete_cf(db.cf_handle("types").unwrap(), k).unwrap();
        }
        was
    };
    Engine::open(dir.path(), options())
        .unwrap()
        .close()
        .unwrap();
    {
        let db = open_raw(dir.path(), &[]);
        assert!(mark(&db).is_some(), "the walk marks the store exact");
        let (c, r) = (entry(&db, b"c").unwrap(), entry(&db, b"r").unwrap());
        assert_eq!((c[0], c.len()), (c_was[0], c_was.len()));
        assert_eq!((r[0], r.len()), (r_was[0], r_was.len()));
    }
    let e = Engine::open(dir.path(), options()).unwrap();
    e.increment(b"c", 1).unwrap();
    assert_eq!(e.counter_value(b"c").unwrap(), 6);
    assert!(matches!(
        e.lww_set(b"c", b"v"),
        Err(Error::WrongType { .. })
    ));
    assert_eq!(listed(&e), vec![b"c".to_vec(), b"s".to_vec()]);
    e.close().unwrap();
    // A state that does not decode, without its entry, and the counter
    // without its entry again.
    {
        let db = open_raw(dir.path(), &[]);
        db.delete_cf(db.cf_handle("meta").unwrap(), b"types_exact")
            .unwrap();
        db.delete_cf(db.cf_handle("types").unwrap(), b"c").unwrap();
        db.put_cf(db.cf_handle("state").unwrap(), b"d", [0xffu8; 7])
            .unwrap();
    }
    for round in 0..2 {
        let e = Engine::open(dir.path(), options()).unwrap();
        e.increment(b"c", 1).unwrap();
        assert_eq!(e.counter_value(b"c").unwrap(), 7 + round);
        e.close().unwrap();
        let db = open_raw(dir.path(), &[]);
        assert!(
            mark(&db).is_none(),
            "an undecodable state leaves the store unmarked"
        );
        assert_eq!(
            entry(&db, b"c").unwrap()[0],
            c_was[0],
            "decodable keys get their entries"
        );
        assert!(entry(&db, b"d").is_none());
        if round == 0 {
            // Again without the counter's entry: the next open puts it
            // back, and the write still reads the state.
            db.delete_cf(db.cf_handle("types").unwrap(), b"c").unwrap();
        }
    }
}

/// The index lives in its own instance (`aae` in the store's directory);
/// the data's `meta/aae_clean` holds the token of the close that persisted
/// it. An index directory lost, replaced or damaged after a clean close, or
/// a store written when the index shared the data's instance (its
/// `aae_keys` and `aae_leaves` families there are dropped), opens with the
/// tree rebuilt from the data, equal to it.
#[test]
fn a_lost_replaced_damaged_or_legacy_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let fill = |from: u64| {
        let e = Engine::open(dir.path(), small_options(1)).unwrap();
        for i in from..from + 100 {
            e.increment(format!("k{i}").as_bytes(), i + 1).unwrap();
        }
        let root = e.root().unwrap();
        e.close().unwrap();
        root
    };
    let check = |root: converge::Node| {
        let e = Engine::open(dir.path(), small_options(1)).unwrap();
        assert_eq!(e.root().unwrap(), root);
        let report = e.verify().unwrap();
        assert!(report.consistent, "{report:?}");
        e.close().unwrap();
    };
    // Lost: nothing left of the index but the data's clean mark.
    let root = fill(0);
    let saved = tempfile::tempdir().unwrap();
    std::fs::rename(dir.path().join("aae"), saved.path().join("aae")).unwrap();
    check(root);
    // Replaced by an older one (clean, of fewer keys): its token is not
    // the mark's.
    let root = fill(100);
    std::fs::remove_dir_all(dir.path().join("aae")).unwrap();
    std::fs::rename(saved.path().join("aae"), dir.path().join("aae")).unwrap();
    check(root);
    // Legacy: the families in the data's instance, holding a stale index;
    // the mark as such stores wrote it.
    {
        let db = open_raw(dir.path(), &["aae_keys", "aae_leaves"]);
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"aae_clean", [1u8]).unwrap();
        db.put_cf(meta, b"format_version", [3u8]).unwrap();
        let leaves = db.cf_handle("aae_leaves").unwrap();
        db.put_cf(leaves, 7u32.to_be_bytes(), [0xaau8; 24]).unwrap();
    }
    check(root);
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, dir.path()).unwrap();
    assert!(!cfs.iter().any(|c| c.starts_with("aae")), "{cfs:?}");
    // Damaged: the index's instance cannot be opened (its CURRENT file
    // names no manifest); the store opens all the same.
    std::fs::write(dir.path().join("aae").join("CURRENT"), b"garbage").unwrap();
    check(root);
    // Damaged inside its tables: opens, but the leaves fail their
    // checksums as they are loaded.
    let mut damaged = 0;
    for e in std::fs::read_dir(dir.path().join("aae")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "sst") {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[10] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0);
    check(root);
    let db = open_raw(dir.path(), &[]);
    let format = db.get_cf(db.cf_handle("meta").unwrap(), b"format_version");
    assert_eq!(format.unwrap(), Some(vec![converge::store::STORE_FORMAT]));
}

/// Increment counters `k00000`, `k00001`, … (`n` of them) by 1, in one
/// batch.
fn increment_keys(e: &Engine, n: u64) {
    let mut b = Batch::new();
    for i in 0..n {
        b.increment(format!("k{i:05}").into_bytes(), 1);
    }
    e.write(&b).unwrap();
}

/// Damage each of the index's tables in place (the engine holds them
/// open): every byte of its first half, where the data blocks lie, is
/// flipped. Returns how many tables were damaged.
fn damage_index_tables(store: &std::path::Path) -> usize {
    let mut damaged = 0;
    for e in std::fs::read_dir(store.join("aae")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "sst") {
            let mut bytes = std::fs::read(&path).unwrap();
            let half = bytes.len() / 2;
            for b in &mut bytes[..half] {
                *b ^= 0xff;
            }
            // In place (the same file, not a new one), as a failing disk
            // would.
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all(&bytes).unwrap();
            f.sync_all().unwrap();
            damaged += 1;
        }
    }
    damaged
}

/// Damage to the index found while the engine runs (its tables fail their
/// checksums) is remade live by the call that found it, which then
/// succeeds: a settle (with a writer creating and updating keys
/// meanwhile), and a sync session's read of index entries. The tree then
/// equals the one recomputed from the data.
#[test]
fn an_index_damaged_while_running_is_remade_live() {
    let dir = tempfile::tempdir().unwrap();
    let e = std::sync::Arc::new(Engine::open(dir.path(), small_options(1)).unwrap());
    increment_keys(&e, 5_000);
    e.settle().unwrap();
    // The index in tables whose blocks nothing has read yet.
    e.compact().unwrap();
    let root = e.root().unwrap();
    assert_eq!(root.count, 5_000);
    assert!(damage_index_tables(dir.path()) > 0);

    // A settle of keys that have index entries reads the damaged blocks.
    increment_keys(&e, 5_000);
    let writer = {
        let e = e.clone();
        std::thread::spawn(move || {
            for round in 0..20u64 {
                let mut b = Batch::new();
                for i in 0..50u64 {
                    // New keys, and old ones updated, during the rebuild.
                    b.increment(format!("n{round:02}-{i:02}").into_bytes(), 1);
                    b.increment(format!("k{:05}", round * 50 + i).into_bytes(), 1);
                }
                e.write(&b).unwrap();
            }
        })
    };
    e.settle().unwrap();
    writer.join().unwrap();
    assert_eq!(e.aae_index_rebuilds(), 1);
    assert_tree_holds(&e, 6_000);

    // Damaged again, found by a read of index entries.
    e.compact().unwrap();
    assert!(damage_index_tables(dir.path()) > 0);
    let entries = e.aae_entries_in(0, u64::MAX).unwrap();
    assert_eq!(entries.len(), 6_000);
    assert_eq!(e.aae_index_rebuilds(), 2);
    let report = e.verify().unwrap();
    assert!(report.consistent, "{report:?}");

    // A clean close persists the remade index; the next open loads it.
    let root = e.root().unwrap();
    std::sync::Arc::into_inner(e).unwrap().close().unwrap();
    let e = Engine::open(dir.path(), small_options(1)).unwrap();
    assert_eq!(e.root().unwrap(), root);
    assert!(e.verify().unwrap().consistent);
}

/// A live remake of a damaged index that fails (here: its directory
/// cannot be cleared, a directory stands where its `CURRENT` file was)
/// fails the call that found the damage and loses nothing: writes and
/// reads of the data go on, calls that need the index report a storage
/// error, and once the obstacle is gone the next such call remakes the
/// index and succeeds, with the tree equal to the one recomputed from the
/// data.
#[test]
fn a_failed_live_remake_of_the_index_is_retried_by_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), small_options(1)).unwrap();
    increment_keys(&e, 2_000);
    e.settle().unwrap();
    e.compact().unwrap();
    // The obstacle first, so that no remake (the background settler's
    // included) can succeed before the test lifts it.
    let current = dir.path().join("aae").join("CURRENT");
    std::fs::remove_file(&current).unwrap();
    std::fs::create_dir(&current).unwrap();
    std::fs::write(current.join("keep"), b"x").unwrap();
    assert!(damage_index_tables(dir.path()) > 0);

    increment_keys(&e, 2_000);
    // The call that found the damage reports the remake's own failure.
    let err = e.settle().unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert!(
        err.to_string().contains("remaking the damaged index"),
        "{err}"
    );
    assert_eq!(e.aae_index_rebuilds(), 0);
    // The data is untouched by the failure, and writes go on.
    let mut b = Batch::new();
    for i in 0..100u64 {
        b.increment(format!("n{i:03}").into_bytes(), 5);
    }
    e.write(&b).unwrap();
    assert_eq!(e.counter_value(b"k00007").unwrap(), 2);
    assert_eq!(e.counter_value(b"n042").unwrap(), 5);
    // Later calls that need the index try the remake again, and fail
    // again while the obstacle stands.
    let again = e.verify().unwrap_err();
    assert!(
        matches!(again, Error::Io(_) | Error::Storage(_)),
        "{again:?}"
    );
    assert_eq!(e.aae_index_rebuilds(), 0);

    std::fs::remove_dir_all(&current).unwrap();
    e.settle().unwrap();
    assert_eq!(e.aae_index_rebuilds(), 1);
    assert_tree_holds(&e, 2_100);
    // The remade index survives a clean close.
    let root = e.root().unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), small_options(1)).unwrap();
    assert_eq!(e.root().unwrap(), root);
    assert!(e.verify().unwrap().consistent);
}

/// The settle folds a key whose write put its state whole from the hash
/// the writer computed (it does not read the state back): after every
/// kind of write — new counters, cached OR-Set and MV-register writes,
/// blind ones, a big set written as an operand, a peer's delta and full
/// state, keys created blind (their operand is what they hold), a delete
/// (whose marker joins at commit) — the maintained tree
/// equals the one recomputed from the data, and a replica holding the
/// same data by anti-entropy has the same root.
#[test]
fn the_tree_folded_from_write_hints_equals_the_data() {
    let a = engine(1);
    let peer = engine(2);
    for round in 0..3u64 {
        let mut b = Batch::new();
        for k in 0..50u64 {
            let key = format!("k{}", k % 17);
            match k % 5 {
                0 => b.increment(format!("c{k}").into_bytes(), k + round),
                1 => b.orset_add(
                    format!("s{}", k % 7).into_bytes(),
                    format!("e{round}-{k}").into_bytes(),
                ),
                2 => b.lww_set(key.into_bytes(), vec![round as u8; 10]),
                3 => b.orset_remove(
                    format!("s{}", k % 7).into_bytes(),
                    format!("e0-{}", k - 2).into_bytes(),
                ),
                _ => b.increment(format!("c{}", k % 3).into_bytes(), 1),
            };
        }
        a.write(&b).unwrap();
        let ctx = a.mv_read(b"mv").unwrap().context;
        a.mv_write(b"mv", format!("v{round}").as_bytes(), &ctx)
            .unwrap();
        // A big set: its batches are written as the join of their changes.
        let mut big = Batch::new();
        for i in 0..1_500u64 {
            big.orset_add(
                &b"big"[..],
                format!("element-{round}-{i:06}-{}", "y".repeat(40)).into_bytes(),
            );
        }
        a.write(&big).unwrap();
        let d = peer
            .orset_add(b"s1", format!("theirs{round}").as_bytes())
            .unwrap();
        a.merge(b"s1", &d.delta.encode()).unwrap();
        let st = peer.state(b"s1").unwrap().unwrap();
        a.merge(b"s2", &converge::codec::encode_state(&st)).unwrap();
        // Keys created blind: a peer's delta and full state (written from
        // their bytes), and a batch's several operations joined.
        let d = peer
            .increment(format!("n{round}").as_bytes(), 3 + round)
            .unwrap();
        a.merge(&d.key, &d.delta.encode()).unwrap();
        a.merge(
            format!("f{round}").as_bytes(),
            &converge::codec::encode_state(&st),
        )
        .unwrap();
        let mut joined = Batch::new();
        joined
            .gset_add(format!("j{round}").into_bytes(), b"x".to_vec())
            .gset_add(format!("j{round}").into_bytes(), b"y".to_vec())
            .lww_set(format!("l{round}").into_bytes(), b"x".to_vec())
            .lww_set(format!("l{round}").into_bytes(), b"y".to_vec());
        a.write(&joined).unwrap();
        if round == 1 {
            let observed = a.state(b"s3").unwrap();
            a.delete(b"s3", observed.as_ref()).unwrap();
            let observed = a.state(b"c5").unwrap();
            a.delete(b"c5", observed.as_ref()).unwrap();
        }
        let report = a.verify().unwrap();
        assert!(report.consistent, "round {round}: {report:?}");
    }
    let other = engine(3);
    sync::sync_engines(&*a, &*other, Config::default()).unwrap();
    assert_eq!(a.root().unwrap(), other.root().unwrap());
    assert!(other.verify().unwrap().consistent);
}
