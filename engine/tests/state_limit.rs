//! The state size limit: no write, merge or sync session can make a key's
//! state larger than `MAX_STATE_LEN`; a write that would gets
//! `StateTooLarge` and changes nothing; the store always reopens.

mod common;
use common::{dump, engine, small_options};
use converge::codec::{encode_state, MAX_STATE_LEN};
use converge::crdt::GSet;
use converge::sync::{sync_engines, Config, Outcome};
use converge::{Delta, Engine, Error, ReplicaId, State, MAX_KEY_LEN, MAX_VALUE_LEN};

/// A 16 MiB element, distinct per `tag`.
fn big(tag: u8, len: usize) -> Vec<u8> {
    let mut v = vec![tag; len];
    v[0] = tag;
    v
}

fn assert_too_large(err: Error, key: &[u8]) {
    match err {
        Error::StateTooLarge { key: k, size, max } => {
            assert_eq!(k, key);
            assert_eq!(max, MAX_STATE_LEN as u64);
            assert!(size > max, "{size} <= {max}");
        }
        other => panic!("expected StateTooLarge, got {other}"),
    }
}

/// Reopen `dir`'s store and check that it opens, verifies, and that the
/// key `other` still reads 7.
fn reopen_and_check(dir: &std::path::Path, id: u128) -> Engine {
    let e = Engine::open(dir, small_options(id)).expect("the store reopens");
    assert_eq!(e.counter_value(b"other").unwrap(), 7);
    assert!(e.verify().unwrap().consistent, "the tree verifies");
    e
}

#[test]
fn four_gset_adds_of_the_largest_element() {
    let a = engine(1);
    a.increment(b"other", 7).unwrap();
    for t in 1..=3 {
        a.gset_add(b"k", &big(t, MAX_VALUE_LEN)).unwrap();
    }
    let before = dump(&a);
    assert_too_large(a.gset_add(b"k", &big(4, MAX_VALUE_LEN)).unwrap_err(), b"k");
    assert_eq!(dump(&a), before, "the rejected add changed nothing");
    assert_eq!(a.set_members(b"k").unwrap().members.len(), 3);
    let dir = a.dir.path().to_path_buf();
    drop(a.engine);
    let e = reopen_and_check(&dir, 1);
    assert_eq!(e.set_members(b"k").unwrap().members.len(), 3);
    // A smaller element still fits.
    e.gset_add(b"k", b"small").unwrap();
}

#[test]
fn four_orset_adds_of_the_largest_element() {
    let a = engine(1);
    a.increment(b"other", 7).unwrap();
    for t in 1..=3 {
        a.orset_add(b"k", &big(t, MAX_VALUE_LEN)).unwrap();
    }
    let before = dump(&a);
    assert_too_large(a.orset_add(b"k", &big(4, MAX_VALUE_LEN)).unwrap_err(), b"k");
    assert_eq!(dump(&a), before);
    let dir = a.dir.path().to_path_buf();
    drop(a.engine);
    let e = reopen_and_check(&dir, 1);
    assert_eq!(e.set_members(b"k").unwrap().members.len(), 3);
}

#[test]
fn peer_deltas_that_join_past_the_limit() {
    let b = engine(2);
    b.increment(b"other", 7).unwrap();
    let deltas: Vec<Vec<u8>> = (1..=4u8)
        .map(|t| {
            let mut s = GSet::default();
            let d = s.add(&big(t, MAX_VALUE_LEN));
            Delta {
                origin: ReplicaId(1),
                seq: t as u64,
                deps: None,
                state: State::GSet(d),
            }
            .encode()
        })
        .collect();
    for d in &deltas[..3] {
        b.merge(b"k", d).unwrap();
    }
    let before = dump(&b);
    assert_too_large(b.merge(b"k", &deltas[3]).unwrap_err(), b"k");
    assert_eq!(dump(&b), before);
    // The same in one batch of small and large merges: all or nothing.
    let mut batch = converge::Batch::new();
    batch.increment(b"other", 1).merge(b"k", deltas[3].clone());
    assert_too_large(b.write(&batch).unwrap_err(), b"k");
    assert_eq!(dump(&b), before);
    let dir = b.dir.path().to_path_buf();
    drop(b.engine);
    reopen_and_check(&dir, 2);
}

#[test]
fn many_small_blind_writes_stop_at_the_limit() {
    let a = engine(1);
    a.increment(b"other", 7).unwrap();
    let mut accepted = 0;
    let err = loop {
        let elem = {
            let mut v = vec![0u8; 1 << 20];
            v[..4].copy_from_slice(&(accepted as u32).to_le_bytes());
            v
        };
        match a.gset_add(b"k", &elem) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted <= 64, "a 65th MiB was accepted");
    };
    assert_too_large(err, b"k");
    assert_eq!(accepted, 63, "63 one-MiB elements fit in 64 MiB, 64 do not");
    let size = a.state_bytes(b"k").unwrap().unwrap().len();
    assert!(size <= MAX_STATE_LEN);
    let dir = a.dir.path().to_path_buf();
    drop(a.engine);
    let e = reopen_and_check(&dir, 1);
    assert_eq!(e.set_members(b"k").unwrap().members.len(), 63);
    // After a reopen the size bound starts from the persisted reservation:
    // the next add is still checked exactly.
    assert_too_large(e.gset_add(b"k", &[1u8; 1 << 20]).unwrap_err(), b"k");
}

/// The 4 element lengths whose G-Set encodes to exactly `total` bytes:
/// version, kind, variant, set length, then per element a 5-byte length
/// and the bytes, then the checksum.
fn lengths_for(total: usize) -> [usize; 4] {
    let overhead = 2 + 1 + 1 + 4 * 5 + 4;
    let rest = total - overhead - 3 * MAX_VALUE_LEN;
    [MAX_VALUE_LEN, MAX_VALUE_LEN, MAX_VALUE_LEN, rest]
}

#[test]
fn a_state_of_exactly_the_limit_is_accepted_one_byte_more_is_not() {
    let a = engine(1);
    for (key, total) in [(&b"at"[..], MAX_STATE_LEN), (b"over", MAX_STATE_LEN + 1)] {
        let mut set = GSet::default();
        for (t, len) in lengths_for(total).into_iter().enumerate() {
            set.add(&big(t as u8 + 1, len));
        }
        assert_eq!(encode_state(&State::GSet(set)).len(), total);
        let lens = lengths_for(total);
        for (t, len) in lens[..3].iter().enumerate() {
            a.gset_add(key, &big(t as u8 + 1, *len)).unwrap();
        }
        let last = a.gset_add(key, &big(4, lens[3]));
        if total == MAX_STATE_LEN {
            last.unwrap();
            assert_eq!(a.state_bytes(key).unwrap().unwrap().len(), MAX_STATE_LEN);
        } else {
            assert_too_large(last.unwrap_err(), key);
        }
    }
    // The largest state with the largest key syncs within the default
    // message limit.
    a.increment(&vec![b'k'; MAX_KEY_LEN], 1).unwrap();
    let b = engine(2);
    let ((oa, _), (ob, _)) = sync_engines(&*a, &*b, Config::default()).unwrap();
    assert_eq!((oa, ob), (Outcome::Converged, Outcome::Converged));
    assert_eq!(b.state_bytes(b"at").unwrap().unwrap().len(), MAX_STATE_LEN);
    assert_eq!(a.root().unwrap(), b.root().unwrap());
}

#[test]
fn a_sync_session_leaves_out_a_key_whose_join_is_too_large() {
    let a = engine(1);
    let b = engine(2);
    for t in 1..=3 {
        a.gset_add(b"k", &big(t, MAX_VALUE_LEN)).unwrap();
    }
    for t in 4..=5 {
        b.gset_add(b"k", &big(t, MAX_VALUE_LEN)).unwrap();
    }
    for i in 0..50u32 {
        a.increment(format!("a{i}").as_bytes(), 1).unwrap();
        b.increment(format!("b{i}").as_bytes(), 1).unwrap();
    }
    a.increment(b"other", 7).unwrap();
    let ((oa, sa), (ob, sb)) = sync_engines(&*a, &*b, Config::default()).unwrap();
    assert_eq!(
        (oa, ob),
        (Outcome::Diverged, Outcome::Diverged),
        "k still differs"
    );
    assert_eq!(
        sa.states_rejected + sb.states_rejected,
        2,
        "both sides left k out"
    );
    for i in 0..50u32 {
        assert_eq!(a.counter_value(format!("b{i}").as_bytes()).unwrap(), 1);
        assert_eq!(b.counter_value(format!("a{i}").as_bytes()).unwrap(), 1);
    }
    assert_eq!(a.set_members(b"k").unwrap().members.len(), 3);
    assert_eq!(b.set_members(b"k").unwrap().members.len(), 2);
    let (da, db) = (a.dir.path().to_path_buf(), b.dir.path().to_path_buf());
    drop(a.engine);
    drop(b.engine);
    reopen_and_check(&da, 1);
    reopen_and_check(&db, 2);
}

/// A store written before the limit was enforced: four merge operands that
/// join past it (what four `gset_add`s of 16 MiB left), and an over-limit
/// value put whole (what an `orset_add` left). Written with RocksDB
/// directly, as the old engine did.
#[test]
fn a_store_that_already_holds_over_limit_states_opens() {
    let a = engine(1);
    a.increment(b"other", 7).unwrap();
    a.gset_add(b"x", b"small").unwrap();
    let dir = a.dir.path().to_path_buf();
    drop(a.engine);
    let gset = |tags: std::ops::RangeInclusive<u8>| {
        let mut s = GSet::default();
        for t in tags {
            s.add(&big(t, MAX_VALUE_LEN));
        }
        encode_state(&State::GSet(s))
    };
    {
        let mut opts = rocksdb::Options::default();
        let mut state = rocksdb::Options::default();
        state.set_merge_operator("converge.crdt_join.v1", |_, _, _| None, |_, _, _| None);
        opts.create_if_missing(false);
        let cfs = ["types", "meta", "pending", "log"]
            .map(|n| rocksdb::ColumnFamilyDescriptor::new(n, rocksdb::Options::default()));
        let cfs = std::iter::once(rocksdb::ColumnFamilyDescriptor::new("state", state)).chain(cfs);
        let db = rocksdb::DB::open_cf_descriptors(&opts, &dir, cfs).unwrap();
        let (st, ty, meta) = (
            db.cf_handle("state").unwrap(),
            db.cf_handle("types").unwrap(),
            db.cf_handle("meta").unwrap(),
        );
        let tag = [converge::CrdtType::GSet.tag()];
        db.put_cf(ty, b"big", tag).unwrap();
        for t in 1..=4 {
            db.merge_cf(st, b"big", gset(t..=t)).unwrap();
        }
        db.put_cf(ty, b"huge", tag).unwrap();
        db.put_cf(st, b"huge", gset(1..=5)).unwrap();
        // As after a crash: the tree is rebuilt at open.
        db.delete_cf(meta, b"aae_clean").unwrap();
    }
    let e = reopen_and_check(&dir, 1);
    assert_too_large(e.state(b"big").unwrap_err(), b"big");
    assert_too_large(e.state(b"huge").unwrap_err(), b"huge");
    assert_too_large(e.set_members(b"huge").unwrap_err(), b"huge");
    assert_eq!(
        e.set_members(b"x").unwrap().members,
        vec![b"small".to_vec()]
    );
    let keys: Vec<Vec<u8>> = e.keys(b"").unwrap().map(|k| k.unwrap().0).collect();
    assert_eq!(keys, [&b"big"[..], b"huge", b"other", b"x"]);
    // Writes to them are refused; other writes go on.
    assert_too_large(e.gset_add(b"big", b"more").unwrap_err(), b"big");
    assert_too_large(e.gset_add(b"huge", b"more").unwrap_err(), b"huge");
    e.increment(b"other", 0).unwrap();
    // Anti-entropy ships everything else.
    let b = engine(2);
    let ((_, _), (ob, _)) = sync_engines(&e, &*b, Config::default()).unwrap();
    assert_eq!(ob, Outcome::Diverged, "the over-limit keys cannot travel");
    assert_eq!(b.counter_value(b"other").unwrap(), 7);
    assert_eq!(b.key_type(b"big").unwrap(), None);
    // Flushing runs the merge operator over the operands: still readable.
    e.flush().unwrap();
    drop(e);
    let e = reopen_and_check(&dir, 1);
    assert_too_large(e.state(b"big").unwrap_err(), b"big");
}

#[test]
fn a_sync_message_of_the_limit_passes_the_size_check_one_byte_more_does_not() {
    use converge::codec::MAX_MESSAGE_LEN;
    use converge::sync::{decode, SyncError};
    use converge::CodecError;
    let mut bytes = vec![0u8; MAX_MESSAGE_LEN + 1];
    bytes[0] = converge::codec::FORMAT_VERSION;
    bytes[1] = converge::codec::KIND_SYNC4;
    // One byte over the default limit: refused before decoding.
    let max = Config::default().max_message;
    assert_eq!(max, MAX_MESSAGE_LEN);
    assert!(matches!(
        decode(&bytes, max, 1024),
        Err(SyncError::TooLarge { len, max: m }) if len == MAX_MESSAGE_LEN + 1 && m == MAX_MESSAGE_LEN
    ));
    // A larger configured limit does not lift the ceiling.
    assert!(matches!(
        decode(&bytes, usize::MAX, 1024),
        Err(SyncError::Codec(CodecError::TooLarge { .. }))
    ));
    // At the limit the size is accepted; these zero bytes then fail their
    // checksum.
    bytes.pop();
    assert!(matches!(
        decode(&bytes, max, 1024),
        Err(SyncError::Codec(CodecError::Checksum))
    ));
    // A message of sync protocol 1 is refused by name.
    bytes[1] = converge::codec::KIND_SYNC;
    match decode(&bytes, max, 1024) {
        Err(SyncError::Malformed(m)) => assert!(m.contains("protocol-1"), "{m}"),
        other => panic!("{other:?}"),
    }
    // And one of sync protocol 2, and of protocol 3 (no horizons).
    bytes[1] = converge::codec::KIND_SYNC2;
    match decode(&bytes, max, 1024) {
        Err(SyncError::Malformed(m)) => assert!(m.contains("protocol-2"), "{m}"),
        other => panic!("{other:?}"),
    }
    bytes[1] = converge::codec::KIND_SYNC3;
    match decode(&bytes, max, 1024) {
        Err(SyncError::Malformed(m)) => assert!(m.contains("protocol-3"), "{m}"),
        other => panic!("{other:?}"),
    }
}
