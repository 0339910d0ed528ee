//! Every CRDT type through the engine, including concurrent edits on two
//! replicas exchanging deltas.

mod common;
use common::{dump, engine, push_all};
use converge::{Batch, CausalContext, CrdtType, Value};

#[test]
fn concurrent_counter_increments_both_count() {
    let a = engine(1);
    let b = engine(2);
    let da = a.increment(b"likes", 3).unwrap();
    let db = b.increment(b"likes", 4).unwrap();
    a.merge(b"likes", &db.delta.encode()).unwrap();
    b.merge(b"likes", &da.delta.encode()).unwrap();
    a.merge(b"likes", &db.delta.encode()).unwrap();
    assert_eq!(a.counter_value(b"likes").unwrap(), 7);
    assert_eq!(b.counter_value(b"likes").unwrap(), 7);
    assert_eq!(dump(&a), dump(&b));
}

#[test]
fn pn_counter_goes_negative() {
    let a = engine(1);
    let b = engine(2);
    let d1 = a.pn_add(b"stock", 5).unwrap();
    let d2 = b.pn_add(b"stock", -8).unwrap();
    a.merge(b"stock", &d2.delta.encode()).unwrap();
    b.merge(b"stock", &d1.delta.encode()).unwrap();
    assert_eq!(a.counter_value(b"stock").unwrap(), -3);
    assert_eq!(dump(&a), dump(&b));
}

#[test]
fn orset_concurrent_add_survives_remove_and_re_add_works() {
    let a = engine(1);
    let b = engine(2);
    let add = a.orset_add(b"cart", b"tv").unwrap();
    b.merge(b"cart", &add.delta.encode()).unwrap();
    // Partition: b removes the tv, a adds it again concurrently.
    let rm = b
        .orset_remove(b"cart", b"tv", None)
        .unwrap()
        .expect("removes the tv");
    let re = a.orset_add(b"cart", b"tv").unwrap();
    assert!(b.set_members(b"cart").unwrap().members.is_empty());
    a.merge(b"cart", &rm.delta.encode()).unwrap();
    b.merge(b"cart", &re.delta.encode()).unwrap();
    assert_eq!(
        a.set_members(b"cart").unwrap().members,
        vec![b"tv".to_vec()]
    );
    assert_eq!(dump(&a), dump(&b));
    // Removed, then re-added.
    let rm2 = a
        .orset_remove(b"cart", b"tv", None)
        .unwrap()
        .expect("removes the tv");
    b.merge(b"cart", &rm2.delta.encode()).unwrap();
    assert!(b.set_members(b"cart").unwrap().members.is_empty());
    b.orset_add(b"cart", b"tv").unwrap();
    assert_eq!(
        b.set_members(b"cart").unwrap().members,
        vec![b"tv".to_vec()]
    );
}

#[test]
fn orset_remove_with_read_context_keeps_unseen_add() {
    let a = engine(1);
    let b = engine(2);
    a.orset_add(b"s", b"x").unwrap();
    let read = a.set_members(b"s").unwrap();
    let other = b.orset_add(b"s", b"x").unwrap();
    a.merge(b"s", &other.delta.encode()).unwrap();
    a.orset_remove(b"s", b"x", Some(read.context)).unwrap();
    assert_eq!(a.set_members(b"s").unwrap().members, vec![b"x".to_vec()]);
}

#[test]
fn twop_set_removed_element_stays_removed() {
    let a = engine(1);
    let b = engine(2);
    let add = a.twop_add(b"s", b"x").unwrap();
    b.merge(b"s", &add.delta.encode()).unwrap();
    let rm = b.twop_remove(b"s", b"x").unwrap();
    a.merge(b"s", &rm.delta.encode()).unwrap();
    a.twop_add(b"s", b"x").unwrap();
    b.merge(b"s", &add.delta.encode()).unwrap();
    assert!(a.set_members(b"s").unwrap().members.is_empty());
    assert!(b.set_members(b"s").unwrap().members.is_empty());
}

#[test]
fn gset_and_registers() {
    let a = engine(1);
    let b = engine(2);
    a.gset_add(b"g", b"x").unwrap();
    b.gset_add(b"g", b"y").unwrap();
    a.lww_set(b"l", b"first").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    b.lww_set(b"l", b"second").unwrap();
    b.fww_set(b"f", b"early").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    a.fww_set(b"f", b"late").unwrap();
    push_all(&a, &b);
    push_all(&b, &a);
    assert_eq!(dump(&a), dump(&b));
    assert_eq!(a.set_members(b"g").unwrap().members.len(), 2);
    assert_eq!(a.register(b"l").unwrap().unwrap().value, b"second");
    assert_eq!(a.register(b"f").unwrap().unwrap().value, b"early");
}

#[test]
fn lww_write_after_merge_orders_after_a_clock_far_ahead() {
    let a = engine(1);
    let b = engine(2);
    // b's clock is far ahead of a's wall clock: simulate by merging a state
    // stamped one hour in the future.
    let future = {
        let mut r = converge::crdt::LwwRegister::default();
        let ts = converge::Timestamp {
            wall_ms: converge::causal::HybridClock::wall_now() + 3_600_000,
            logical: 0,
        };
        r.set(ts, b.replica_id(), b"from the future");
        converge::codec::encode_state(&converge::State::LwwRegister(r))
    };
    a.merge(b"l", &future).unwrap();
    a.lww_set(b"l", b"mine").unwrap();
    assert_eq!(a.register(b"l").unwrap().unwrap().value, b"mine");
}

#[test]
fn mv_register_siblings_then_resolution() {
    let a = engine(1);
    let b = engine(2);
    let da = a.mv_write(b"doc", b"v-a", &CausalContext::new()).unwrap();
    let db = b.mv_write(b"doc", b"v-b", &CausalContext::new()).unwrap();
    a.merge(b"doc", &db.delta.encode()).unwrap();
    b.merge(b"doc", &da.delta.encode()).unwrap();
    let read = a.mv_read(b"doc").unwrap();
    let vals: Vec<_> = read.siblings.iter().map(|s| s.value.clone()).collect();
    assert_eq!(vals, vec![b"v-a".to_vec(), b"v-b".to_vec()]);
    let resolved = a
        .mv_resolve(b"doc", |sib| {
            let mut v: Vec<u8> = Vec::new();
            for s in sib {
                v.extend_from_slice(&s.value);
            }
            Ok(v)
        })
        .unwrap()
        .expect("two siblings to resolve");
    b.merge(b"doc", &resolved.delta.encode()).unwrap();
    for e in [&a, &b] {
        let r = e.mv_read(b"doc").unwrap();
        assert_eq!(r.siblings.len(), 1);
        assert_eq!(r.siblings[0].value, b"v-av-b");
    }
    assert!(a.mv_resolve(b"doc", |_| Ok(vec![])).unwrap().is_none());
    assert_eq!(dump(&a), dump(&b));
}

#[test]
fn failing_merge_function_writes_nothing() {
    let a = engine(1);
    let b = engine(2);
    a.mv_write(b"doc", b"x", &CausalContext::new()).unwrap();
    let d = b.mv_write(b"doc", b"y", &CausalContext::new()).unwrap();
    a.merge(b"doc", &d.delta.encode()).unwrap();
    let before = a.state_bytes(b"doc").unwrap();
    let err = a
        .mv_resolve(b"doc", |_| Err("cannot merge".into()))
        .unwrap_err();
    assert!(matches!(err, converge::Error::MergeFunction(_)), "{err}");
    assert_eq!(a.state_bytes(b"doc").unwrap(), before);
}

#[test]
fn batch_is_atomic_and_sees_its_own_writes() {
    let a = engine(1);
    let mut b = Batch::new();
    b.increment(b"c", 1)
        .increment(b"c", 2)
        .orset_add(b"s", b"x")
        .orset_remove(b"s", b"x")
        .orset_add(b"s", b"y")
        .mv_write(b"m", b"1", CausalContext::new());
    let deltas = a.write(&b).unwrap();
    assert_eq!(deltas.len(), 6);
    let seqs: Vec<u64> = deltas.iter().map(|d| d.delta.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(a.counter_value(b"c").unwrap(), 3);
    assert_eq!(a.set_members(b"s").unwrap().members, vec![b"y".to_vec()]);
    // Replaying all deltas on another replica gives the same state.
    let r = engine(2);
    for d in &deltas {
        r.merge(&d.key, &d.delta.encode()).unwrap();
    }
    assert_eq!(dump(&a), dump(&r));
    assert_eq!(r.version_vector().get(a.replica_id()), 6);
}

#[test]
fn key_iteration_by_prefix_with_types() {
    let a = engine(1);
    a.increment(b"user:1:likes", 1).unwrap();
    a.orset_add(b"user:1:cart", b"x").unwrap();
    a.lww_set(b"user:2:name", b"bo").unwrap();
    a.gset_add(b"zzz", b"x").unwrap();
    let got: Vec<_> = a.keys(b"user:1:").unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(
        got,
        vec![
            (b"user:1:cart".to_vec(), CrdtType::ORSet),
            (b"user:1:likes".to_vec(), CrdtType::GCounter)
        ]
    );
    assert_eq!(a.keys(b"").unwrap().count(), 4);
    assert_eq!(a.key_type(b"zzz").unwrap(), Some(CrdtType::GSet));
    assert!(matches!(
        a.read(b"user:2:name").unwrap(),
        Some(Value::Register(Some(_)))
    ));
    assert_eq!(a.read(b"missing").unwrap(), None);
}
