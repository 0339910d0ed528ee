//! Deletes that replicate and tombstones collected by causal stability
//! (issue #13): the shopping cart, every type's delete against a
//! concurrent update in every delivery order, absent versus empty,
//! collection on three replicas (held back by an offline one), resurrection
//! attempts (redelivered deltas, collected tombstones arriving again, a
//! replica restored from an old copy of its directory), and a property test
//! with random collection points.

mod common;
use common::{dump, engine, small_options, TempEngine};
use converge::sync::{Config, Session, SyncError};
use converge::{Batch, CrdtType, Engine, Error, Op, ReplicaId, State, Value};
use proptest::prelude::*;

/// Run one sync session between `a` (initiator) and `b`; on success each
/// side acknowledges what the other holds (when they are members).
fn sync_ack(a: &Engine, b: &Engine) -> Result<(), SyncError> {
    let (mut sa, first) = Session::initiate(a, Config::default())?;
    let mut sb = Session::respond(b, Config::default());
    sb.receive(&first)?;
    loop {
        if let Some(m) = sb.next_message()? {
            sa.receive(&m)?;
        } else if let Some(m) = sa.next_message()? {
            sb.receive(&m)?;
        } else {
            break;
        }
    }
    let ack = |me: &Engine, peer: &Engine, s: &Session<&Engine>| {
        if let Some(ctx) = s.acknowledged() {
            if me.members().iter().any(|(m, _)| *m == peer.replica_id()) {
                me.acknowledge(peer.replica_id(), &ctx).unwrap();
            }
        }
    };
    ack(a, b, &sa);
    ack(b, a, &sb);
    Ok(())
}

/// Make every engine a member of every other's membership.
fn members(all: &[&Engine]) {
    for a in all {
        for b in all {
            if a.replica_id() != b.replica_id() {
                a.register_peer(b.replica_id()).unwrap();
            }
        }
    }
}

fn ship(from: &[converge::KeyedDelta], to: &Engine) {
    for d in from {
        to.merge(&d.key, &d.delta.encode()).unwrap();
    }
}

fn members_of(e: &Engine, key: &[u8]) -> Vec<Vec<u8>> {
    e.set_members(key).unwrap().members
}

#[test]
fn cart_delete_on_phone_loses_to_concurrent_add_on_laptop() {
    let phone = engine(1);
    let laptop = engine(2);
    let tv = phone.orset_add(b"cart", b"tv").unwrap();
    ship(&[tv], &laptop);
    // Checkout on the phone deletes the cart; the laptop adds a radio.
    let del = phone
        .delete(b"cart", None)
        .unwrap()
        .expect("a delete delta");
    assert_eq!(phone.read(b"cart").unwrap(), None);
    let radio = laptop.orset_add(b"cart", b"radio").unwrap();
    ship(std::slice::from_ref(&radio), &phone);
    ship(std::slice::from_ref(&del), &laptop);
    // Duplicates change nothing.
    ship(&[del, radio], &laptop);
    for e in [&phone, &laptop] {
        assert_eq!(members_of(e, b"cart"), vec![b"radio".to_vec()]);
        let keys: Vec<_> = e.keys(b"").unwrap().map(|k| k.unwrap().0).collect();
        assert_eq!(keys, vec![b"cart".to_vec()]);
    }
    assert_eq!(
        phone.state_bytes(b"cart").unwrap(),
        laptop.state_bytes(b"cart").unwrap()
    );
    converge::sync::sync_engines(&*phone, &*laptop, Config::default()).unwrap();
    assert_eq!(phone.root().unwrap(), laptop.root().unwrap());
}

/// One type's scenario: `init` on A, shipped to B; A deletes while B runs
/// `update` concurrently; then both deliveries in both orders, with
/// duplicates. Returns the two replicas.
fn concurrent(init: Op, update: Op, pause: bool) -> (TempEngine, TempEngine) {
    let a = engine(1);
    let b = engine(2);
    let mut batch = Batch::new();
    batch.push(b"k".to_vec(), init);
    let d0 = a.write(&batch).unwrap();
    ship(&d0, &b);
    let del = a.delete(b"k", None).unwrap().expect("delete delta");
    if pause {
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    let mut batch = Batch::new();
    batch.push(b"k".to_vec(), update);
    let up = b.write(&batch).unwrap();
    // A gets the update first, then the delete again; B gets the delete,
    // then the update again and the initial write again.
    ship(&up, &a);
    ship(std::slice::from_ref(&del), &a);
    ship(std::slice::from_ref(&del), &b);
    ship(&up, &b);
    ship(&d0, &b);
    assert_eq!(
        a.state_bytes(b"k").unwrap(),
        b.state_bytes(b"k").unwrap(),
        "replicas converge"
    );
    assert_eq!(a.read(b"k").unwrap(), b.read(b"k").unwrap());
    (a, b)
}

#[test]
fn every_type_delete_against_a_concurrent_update() {
    // Counters: reset-remove; the concurrent increment counts from zero.
    let (a, _) = concurrent(Op::Increment(5), Op::Increment(2), false);
    assert_eq!(a.counter_value(b"k").unwrap(), 2);
    let (a, _) = concurrent(Op::PnAdd(5), Op::PnAdd(-3), false);
    assert_eq!(a.counter_value(b"k").unwrap(), -3);
    // Sets: the observed element goes, a concurrent new element stays.
    let (a, _) = concurrent(
        Op::GSetAdd(b"x".to_vec()),
        Op::GSetAdd(b"y".to_vec()),
        false,
    );
    assert_eq!(members_of(&a, b"k"), vec![b"y".to_vec()]);
    let (a, _) = concurrent(
        Op::TwoPAdd(b"x".to_vec()),
        Op::TwoPAdd(b"y".to_vec()),
        false,
    );
    assert_eq!(members_of(&a, b"k"), vec![b"y".to_vec()]);
    let (a, _) = concurrent(Op::OrAdd(b"x".to_vec()), Op::OrAdd(b"x".to_vec()), false);
    assert_eq!(
        members_of(&a, b"k"),
        vec![b"x".to_vec()],
        "an OR-Set add the delete did not observe survives, even of the same element"
    );
    // MV register: the concurrent write survives as the only sibling.
    let (a, _) = concurrent(
        Op::MvWrite(b"x".to_vec(), Default::default()),
        Op::MvWrite(b"y".to_vec(), Default::default()),
        false,
    );
    let sib: Vec<_> = a
        .mv_read(b"k")
        .unwrap()
        .siblings
        .into_iter()
        .map(|s| s.value)
        .collect();
    assert_eq!(sib, vec![b"y".to_vec()]);
    // LWW: ordered by timestamp; a later write re-creates the key.
    let (a, _) = concurrent(Op::LwwSet(b"v".to_vec()), Op::LwwSet(b"w".to_vec()), true);
    assert_eq!(a.register(b"k").unwrap().unwrap().value, b"w");
    // FWW: the concurrent write belongs to the older epoch and loses.
    let (a, b) = concurrent(
        Op::FwwSet(b"first".to_vec()),
        Op::FwwSet(b"late".to_vec()),
        false,
    );
    assert_eq!(a.read(b"k").unwrap(), None);
    // The first write of the new epoch wins.
    let w = a.fww_set(b"k", b"new").unwrap();
    let w2 = b.fww_set(b"k", b"newer").unwrap();
    ship(&[w2], &a);
    ship(&[w], &b);
    assert_eq!(a.register(b"k").unwrap().unwrap().value, b"new");
    assert_eq!(a.state_bytes(b"k").unwrap(), b.state_bytes(b"k").unwrap());
}

#[test]
fn lww_write_before_the_delete_stays_hidden() {
    let a = engine(1);
    let b = engine(2);
    let w = b.lww_set(b"k", b"old").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    a.lww_set(b"k", b"v").unwrap();
    a.delete(b"k", None).unwrap();
    ship(&[w], &a);
    assert_eq!(a.read(b"k").unwrap(), None);
}

#[test]
fn absent_is_not_empty_and_a_write_recreates() {
    let e = engine(1);
    e.orset_add(b"s", b"x").unwrap();
    e.orset_remove(b"s", b"x", None).unwrap();
    // Emptied, not deleted: present.
    assert_eq!(
        e.read(b"s").unwrap(),
        Some(Value::Set(converge::SetRead {
            members: vec![],
            context: e.set_members(b"s").unwrap().context
        }))
    );
    assert_eq!(e.key_type(b"s").unwrap(), Some(CrdtType::ORSet));
    assert!(e.delete(b"s", None).unwrap().is_some());
    assert_eq!(e.read(b"s").unwrap(), None);
    assert_eq!(e.key_type(b"s").unwrap(), None);
    assert_eq!(e.keys(b"").unwrap().count(), 0);
    assert_eq!(e.stored_keys(b"").unwrap().count(), 1, "the tombstone");
    // Deleting what reads as absent, or a key never written: nothing.
    assert!(e.delete(b"s", None).unwrap().is_none());
    assert!(e.delete(b"never", None).unwrap().is_none());
    // It keeps its type while the tombstone lives.
    assert!(matches!(
        e.increment(b"s", 1),
        Err(Error::WrongType {
            stored: CrdtType::ORSet,
            requested: CrdtType::GCounter
        })
    ));
    // A delete based on a state of another type is refused, changing
    // nothing.
    let before = e.state_bytes(b"s").unwrap();
    let wrong = State::empty(CrdtType::GSet);
    assert!(matches!(
        e.delete(b"s", Some(&wrong)),
        Err(Error::WrongType { .. })
    ));
    assert_eq!(e.state_bytes(b"s").unwrap(), before);
    e.orset_add(b"s", b"y").unwrap();
    assert_eq!(members_of(&e, b"s"), vec![b"y".to_vec()]);
    assert_eq!(e.keys(b"").unwrap().count(), 1);
}

/// A remove that removes nothing is no operation: it does not create a key,
/// does not bring a deleted one back, and has no delta that could do so on
/// a replica that collected the tombstone (the shrunk case of
/// `random_deletes_and_collections_converge` in the regressions file).
#[test]
fn a_remove_that_removes_nothing_creates_and_ships_nothing() {
    let [a, b] = [engine(1), engine(2)];
    members(&[&a, &b]);
    // A key never written stays unwritten; so does the sequence.
    let seq = a.version_vector().get(a.replica_id());
    assert!(a.orset_remove(b"never", b"x", None).unwrap().is_none());
    let mut batch = Batch::new();
    batch.orset_remove(b"never", b"x").orset_add(b"s", b"x");
    let deltas = a.write(&batch).unwrap();
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].key, b"s".to_vec());
    assert_eq!(a.key_type(b"never").unwrap(), None);
    assert_eq!(a.stored_keys(b"never").unwrap().count(), 0);
    assert_eq!(a.version_vector().get(a.replica_id()), seq + 1);
    // A member that is not (and an empty observed context) removes nothing.
    assert!(a.orset_remove(b"s", b"y", None).unwrap().is_none());
    let none = converge::CausalContext::new();
    assert!(a.orset_remove(b"s", b"x", Some(none)).unwrap().is_none());
    assert_eq!(members_of(&a, b"s"), vec![b"x".to_vec()]);
    // Deleted, synced and collected on both: a's remove of what the
    // deleted key no longer holds changes nothing, here or on b.
    a.delete(b"s", None).unwrap().expect("a delete delta");
    sync_ack(&a, &b).unwrap();
    sync_ack(&b, &a).unwrap();
    assert!(a.orset_remove(b"s", b"x", None).unwrap().is_none());
    assert_eq!(a.read(b"s").unwrap(), None);
    assert_eq!(b.collect().unwrap().purged, 1);
    assert_eq!(a.collect().unwrap().purged, 1);
    sync_ack(&a, &b).unwrap();
    for e in [&a, &b] {
        assert_eq!(e.read(b"s").unwrap(), None);
        assert_eq!(e.stored_keys(b"s").unwrap().count(), 0);
    }
    assert_eq!(dump(&a), dump(&b));
}

#[test]
fn delete_based_on_an_older_read_removes_only_what_it_read() {
    let e = engine(1);
    e.orset_add(b"s", b"a").unwrap();
    let read = e.state(b"s").unwrap().unwrap();
    e.orset_add(b"s", b"b").unwrap();
    e.delete(b"s", Some(&read)).unwrap();
    assert_eq!(members_of(&e, b"s"), vec![b"b".to_vec()]);
    e.increment(b"c", 3).unwrap();
    let read = e.state(b"c").unwrap().unwrap();
    e.increment(b"c", 4).unwrap();
    e.delete(b"c", Some(&read)).unwrap();
    assert_eq!(e.counter_value(b"c").unwrap(), 4);
}

#[test]
fn absence_survives_restart_and_travels_by_feed_and_sync() {
    let dir = tempfile::tempdir().unwrap();
    let peer = engine(2);
    let other = engine(3);
    let cursor = peer.context();
    {
        let e = Engine::open(dir.path(), small_options(1)).unwrap();
        e.increment(b"c", 2).unwrap();
        e.gset_add(b"g", b"x").unwrap();
        e.delete(b"c", None).unwrap();
        e.delete(b"g", None).unwrap();
        e.close().unwrap();
    }
    let e = Engine::open(dir.path(), small_options(1)).unwrap();
    assert_eq!(e.read(b"c").unwrap(), None);
    assert_eq!(e.keys(b"").unwrap().count(), 0);
    // By the changes feed.
    let page = e.changes_since(&cursor, 100).unwrap();
    peer.apply_changes(&page.changes.unwrap().encode()).unwrap();
    assert_eq!(peer.read(b"c").unwrap(), None);
    assert_eq!(peer.read(b"g").unwrap(), None);
    // By anti-entropy.
    converge::sync::sync_engines(&e, &*other, Config::default()).unwrap();
    assert_eq!(other.read(b"g").unwrap(), None);
    assert_eq!(e.root().unwrap(), other.root().unwrap());
    assert_eq!(e.root().unwrap(), peer.root().unwrap());
    e.close().unwrap();
}

/// Three replicas, all members of each other, sharing `n` counters and a
/// cart.
fn three(n: usize) -> [TempEngine; 3] {
    three_with(n).0
}

/// [`three`], and the deltas of the writes it made on A.
fn three_with(n: usize) -> ([TempEngine; 3], Vec<converge::KeyedDelta>) {
    let reps = [engine(1), engine(2), engine(3)];
    members(&[&*reps[0], &*reps[1], &*reps[2]]);
    let mut b = Batch::new();
    for i in 0..n {
        b.increment(format!("c{i:03}").into_bytes(), 1 + i as u64);
    }
    b.orset_add(b"cart".to_vec(), b"tv".to_vec());
    let written = reps[0].write(&b).unwrap();
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        sync_ack(&reps[i], &reps[j]).unwrap();
    }
    (reps, written)
}

#[test]
fn collection_waits_for_every_member_then_purges_everywhere() {
    let ([a, b, c], originals) = three_with(20);
    let mut del = Batch::new();
    del.delete(b"cart".to_vec(), None);
    for i in 0..5 {
        del.delete(format!("c{i:03}").into_bytes(), None);
    }
    let deltas = a.write(&del).unwrap();
    assert_eq!(deltas.len(), 6);
    // Nobody acknowledged the deletes yet: nothing is collected.
    let r = a.collect().unwrap();
    assert_eq!((r.collected, r.waiting), (0, 6));
    let ids: Vec<ReplicaId> = r.waiting_on.iter().map(|(m, _)| *m).collect();
    assert_eq!(ids, vec![b.replica_id(), c.replica_id()]);
    assert!(a.state(b"cart").unwrap().is_some());
    // B acknowledges; C is offline: collection is still held back, by C.
    sync_ack(&a, &b).unwrap();
    let r = a.tombstones().unwrap();
    assert_eq!(r.waiting, 6);
    assert_eq!(r.waiting_on, vec![(c.replica_id(), 6)]);
    assert_eq!(a.collect().unwrap().collected, 0);
    // C comes back.
    sync_ack(&c, &a).unwrap();
    let r = a.collect().unwrap();
    assert_eq!((r.collected, r.purged, r.waiting), (6, 6, 0));
    assert!(a.state(b"cart").unwrap().is_none());
    assert_eq!(a.stored_keys(b"").unwrap().count(), 15);
    // B and C collect once they know every member has the deletes.
    sync_ack(&b, &c).unwrap();
    sync_ack(&b, &a).unwrap();
    sync_ack(&c, &a).unwrap();
    for e in [&b, &c] {
        let r = e.collect().unwrap();
        assert_eq!((r.collected, r.purged), (6, 6), "{r:?}");
    }
    for e in [&a, &b, &c] {
        e.settle().unwrap();
        assert!(e.verify().unwrap().consistent);
        assert_eq!(e.stored_keys(b"").unwrap().count(), 15);
        assert_eq!(e.tombstones().unwrap().waiting, 0);
    }
    assert_eq!(dump(&a), dump(&b));
    assert_eq!(dump(&a), dump(&c));
    assert_eq!(a.root().unwrap(), b.root().unwrap());
    assert_eq!(a.root().unwrap(), c.root().unwrap());
    assert_eq!(a.root().unwrap().count, 15);

    // Resurrection attempts: the pre-delete writes and the deletes
    // delivered again, to every replica (all collected), in both orders.
    for e in [&a, &b, &c] {
        for d in originals.iter().chain(&deltas) {
            e.merge(&d.key, &d.delta.encode()).unwrap();
        }
        for d in deltas.iter().chain(&originals) {
            e.merge(&d.key, &d.delta.encode()).unwrap();
        }
        assert!(e.state(b"cart").unwrap().is_none());
        assert!(e.state(b"c000").unwrap().is_none());
        assert_eq!(e.stored_keys(b"").unwrap().count(), 15);
    }
}

#[test]
fn collected_tombstones_arriving_again_are_collected_on_arrival() {
    let [a, b, c] = three(3);
    a.delete(b"cart", None).unwrap();
    sync_ack(&a, &b).unwrap();
    sync_ack(&a, &c).unwrap();
    // C's copy of the tombstone, before anyone collects.
    let tomb = c.state_bytes(b"cart").unwrap().unwrap();
    assert_eq!(a.collect().unwrap().purged, 1);
    a.merge(b"cart", &tomb).unwrap();
    assert!(a.state(b"cart").unwrap().is_none(), "not brought back");
    // A re-creates the cart; B has not collected yet: the new add is not
    // hidden by B's tombstone (its dot is above everything collected).
    let radio = a.orset_add(b"cart", b"radio").unwrap();
    ship(&[radio], &b);
    assert_eq!(members_of(&b, b"cart"), vec![b"radio".to_vec()]);
    // A sync brings B's tombstone to A: collected on arrival, the radio
    // stays.
    sync_ack(&b, &a).unwrap();
    assert_eq!(members_of(&a, b"cart"), vec![b"radio".to_vec()]);
    sync_ack(&b, &c).unwrap();
    sync_ack(&c, &a).unwrap();
    for e in [&a, &b, &c] {
        e.collect().unwrap();
    }
    for (x, y) in [(&a, &b), (&b, &c), (&a, &c)] {
        sync_ack(x, y).unwrap();
    }
    for e in [&a, &b, &c] {
        assert_eq!(members_of(e, b"cart"), vec![b"radio".to_vec()]);
    }
    assert_eq!(dump(&a), dump(&b));
    assert_eq!(dump(&a), dump(&c));
}

#[test]
fn a_replica_restored_from_an_old_copy_is_refused() {
    let a = engine(1);
    let bdir = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    let b = Engine::open(bdir.path(), small_options(2)).unwrap();
    members(&[&*a, &b]);
    a.orset_add(b"cart", b"tv").unwrap();
    sync_ack(&a, &b).unwrap();
    // A copy of B's directory, taken while B is closed.
    b.close().unwrap();
    copy_dir(bdir.path(), old.path());
    let b = Engine::open(bdir.path(), small_options(2)).unwrap();
    a.delete(b"cart", None).unwrap();
    sync_ack(&a, &b).unwrap();
    assert_eq!(a.collect().unwrap().purged, 1);
    b.close().unwrap();
    // B comes back from the old copy: it still has the cart with the tv.
    let restored = Engine::open(old.path(), small_options(2)).unwrap();
    assert_eq!(members_of(&restored, b"cart"), vec![b"tv".to_vec()]);
    let before = dump(&a);
    for result in [sync_ack(&a, &restored), sync_ack(&restored, &a)] {
        assert!(
            matches!(result, Err(SyncError::BehindHorizon { .. })),
            "{result:?}"
        );
    }
    assert_eq!(dump(&a), before, "nothing changed");
    assert!(a.state(b"cart").unwrap().is_none());
    // A new, empty replica may still catch up.
    let newcomer = engine(7);
    sync_ack(&newcomer, &a).unwrap();
    assert_eq!(dump(&newcomer), dump(&a));
    restored.close().unwrap();
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_page_repeating_held_operations_is_refused_after_collection() {
    let a = engine(1);
    let b = engine(2);
    members(&[&*a, &*b]);
    let start = b.context();
    a.orset_add(b"s", b"x").unwrap();
    let first = a.changes_since(&start, 10).unwrap();
    b.apply_changes(&first.changes.unwrap().encode()).unwrap();
    a.delete(b"s", None).unwrap();
    a.orset_add(b"t", b"y").unwrap();
    let both = a
        .changes_since(&start, 10)
        .unwrap()
        .changes
        .unwrap()
        .encode();
    sync_ack(&a, &b).unwrap();
    assert_eq!(b.collect().unwrap().purged, 1);
    // The page holds the add of `s` again (with the delete, as one state)
    // and the add of `t`: refused, nothing changed.
    let before = dump(&b);
    assert!(matches!(
        b.apply_changes(&both),
        Err(Error::InvalidArgument(_)) | Ok(converge::Delivery::Duplicate)
    ));
    assert_eq!(dump(&b), before);
}

/// Random histories with deletes, syncs and collections on three replicas
/// that are members of each other.
#[derive(Clone, Debug)]
enum Step {
    Op { replica: usize, ty: usize, kind: u8 },
    Deliver { replica: usize, pick: usize },
    Sync { from: usize, to: usize },
    Collect { replica: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0..3usize, 0..8usize, 0..5u8).prop_map(|(replica, ty, kind)| Step::Op { replica, ty, kind }),
        3 => (0..3usize, any::<usize>()).prop_map(|(replica, pick)| Step::Deliver { replica, pick }),
        2 => (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Sync { from, to }),
        2 => (0..3usize).prop_map(|replica| Step::Collect { replica }),
    ]
}

fn op_for(e: &Engine, key: &[u8], ty: CrdtType, kind: u8) -> Op {
    let el = vec![b'e', kind % 2];
    match (ty, kind) {
        (_, 4) => Op::Delete(None),
        (CrdtType::GCounter, _) => Op::Increment(kind as u64 + 1),
        (CrdtType::PNCounter, k) => Op::PnAdd(k as i64 - 1),
        (CrdtType::GSet, _) => Op::GSetAdd(el),
        (CrdtType::TwoPSet, 0) => Op::TwoPRemove(el),
        (CrdtType::TwoPSet, _) => Op::TwoPAdd(el),
        (CrdtType::ORSet, 0) => Op::OrRemove(el, None),
        (CrdtType::ORSet, _) => Op::OrAdd(el),
        (CrdtType::LwwRegister, _) => Op::LwwSet(el),
        (CrdtType::FwwRegister, _) => Op::FwwSet(el),
        (CrdtType::MvRegister, _) => Op::MvWrite(el, e.mv_read(key).unwrap().context),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn random_deletes_and_collections_converge(steps in prop::collection::vec(step(), 1..50)) {
        let reps = [engine(1), engine(2), engine(3)];
        members(&[&*reps[0], &*reps[1], &*reps[2]]);
        let mut pool: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // Per key, a model without collection (every delta joined): for
        // the types whose adds and writes are unique (OR-Set, MV and LWW
        // registers) collection must not change what a key reads.
        let mut model: std::collections::BTreeMap<Vec<u8>, State> = Default::default();
        for s in &steps {
            match *s {
                Step::Op { replica, ty, kind } => {
                    let ty = CrdtType::ALL[ty];
                    let key = format!("k-{}", ty.name()).into_bytes();
                    let e = &reps[replica];
                    let mut b = Batch::new();
                    b.push(key.clone(), op_for(e, &key, ty, kind));
                    for d in e.write(&b).unwrap() {
                        model.entry(d.key.clone()).or_insert_with(|| State::empty(ty))
                            .try_join(&d.delta.state).unwrap();
                        pool.push((d.key, d.delta.encode()));
                    }
                }
                Step::Deliver { replica, pick } => {
                    if pool.is_empty() { continue; }
                    let (k, v) = &pool[pick % pool.len()];
                    reps[replica].merge(k, v).unwrap();
                }
                Step::Sync { from, to } => {
                    if from != to {
                        sync_ack(&reps[from], &reps[to]).unwrap();
                    }
                }
                Step::Collect { replica } => {
                    reps[replica].collect().unwrap();
                }
            }
        }
        // Heal: every delta everywhere, syncs with acknowledgements and
        // collections until nothing changes.
        for r in &reps {
            for (k, v) in &pool {
                r.merge(k, v).unwrap();
            }
        }
        for _ in 0..3 {
            for (i, j) in [(0, 1), (1, 2), (2, 0)] {
                sync_ack(&reps[i], &reps[j]).unwrap();
            }
            for r in &reps {
                r.collect().unwrap();
            }
        }
        for (i, j) in [(0, 1), (1, 2), (2, 0)] {
            sync_ack(&reps[i], &reps[j]).unwrap();
        }
        let d0 = dump(&reps[0]);
        prop_assert_eq!(&d0, &dump(&reps[1]));
        prop_assert_eq!(&d0, &dump(&reps[2]));
        prop_assert_eq!(reps[0].root().unwrap(), reps[1].root().unwrap());
        prop_assert_eq!(reps[0].root().unwrap(), reps[2].root().unwrap());
        for r in &reps {
            // Every tombstone is stable now: none left.
            prop_assert_eq!(r.tombstones().unwrap().waiting, 0);
        }
        for (k, st) in &model {
            if matches!(st.crdt_type(), CrdtType::ORSet | CrdtType::MvRegister | CrdtType::LwwRegister) {
                let expect = (!st.is_absent()).then(|| Value::of(st));
                let got = reps[0].read(k).unwrap();
                // Contexts of OR-Set and MV reads differ by what was
                // collected; compare what they hold.
                prop_assert_eq!(strip_ctx(got), strip_ctx(expect), "key {:?}", k);
            }
        }
    }
}

fn strip_ctx(v: Option<Value>) -> Option<Value> {
    v.map(|v| match v {
        Value::Set(s) => Value::Set(converge::SetRead {
            members: s.members,
            context: Default::default(),
        }),
        Value::Mv(m) => Value::Mv(converge::MvRead {
            siblings: m.siblings,
            context: Default::default(),
        }),
        other => other,
    })
}

#[test]
fn retiring_a_member_releases_collection_and_restarts_keep_everything() {
    let dir = tempfile::tempdir().unwrap();
    let b = engine(2);
    let c = engine(3);
    {
        let a = Engine::open(dir.path(), small_options(1)).unwrap();
        members(&[&a, &b, &c]);
        a.lww_set(b"reg", b"v").unwrap();
        a.delete(b"reg", None).unwrap();
        sync_ack(&a, &b).unwrap();
        let r = a.tombstones().unwrap();
        assert_eq!(r.waiting_on, vec![(c.replica_id(), 1)]);
        a.close().unwrap();
    }
    // Membership, acknowledgements and tombstones survive a restart.
    let a = Engine::open(dir.path(), small_options(1)).unwrap();
    assert_eq!(a.members().len(), 2);
    assert_eq!(
        a.tombstones().unwrap().waiting_on,
        vec![(c.replica_id(), 1)]
    );
    // C is retired: collection no longer waits for it.
    a.remove_peer(c.replica_id()).unwrap();
    let r = a.collect().unwrap();
    assert_eq!((r.collected, r.purged), (1, 1));
    assert!(r.horizon.get(a.replica_id()) > 0);
    a.close().unwrap();
    let a = Engine::open(dir.path(), small_options(1)).unwrap();
    assert_eq!(
        a.collection_horizon(),
        r.horizon,
        "the horizon is persisted"
    );
    assert!(a.state(b"reg").unwrap().is_none());
    // An oversized key is refused before anything is touched.
    let big = vec![0u8; converge::MAX_KEY_LEN + 1];
    assert!(matches!(
        a.delete(&big, None),
        Err(Error::KeyTooLarge { .. })
    ));
    a.close().unwrap();
}

#[test]
fn a_peer_that_collected_tells_the_others_in_its_next_session() {
    let [a, b, c] = three(2);
    a.delete(b"cart", None).unwrap();
    sync_ack(&a, &b).unwrap();
    sync_ack(&a, &c).unwrap();
    assert_eq!(a.collect().unwrap().purged, 1);
    // C is offline now. B still waits for C's acknowledgement, but A's
    // horizon, learned in the next session, says the delete is stable.
    assert_eq!(
        b.tombstones().unwrap().waiting_on,
        vec![(c.replica_id(), 1)]
    );
    sync_ack(&b, &a).unwrap();
    let r = b.collect().unwrap();
    assert_eq!((r.collected, r.purged), (1, 1));
    // The next session finds them equal.
    let (mut sa, first) = Session::initiate(&*a, Config::default()).unwrap();
    let mut sb = Session::respond(&*b, Config::default());
    sb.receive(&first).unwrap();
    while let Some(m) = sb.next_message().unwrap() {
        sa.receive(&m).unwrap();
    }
    assert_eq!(sa.outcome(), Some(converge::sync::Outcome::Equal));
}
