//! Three engines with random operations of every type and random delivery
//! of deltas (duplicates, reordering) converge to equal values, byte-equal
//! states and equal anti-entropy roots once everything is delivered.
//! Operations include deletes of keys.

mod common;
use common::{dump, engine};
use converge::{Batch, CrdtType, Engine, Op};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Op {
        replica: usize,
        ty: usize,
        kind: u8,
        elem: u8,
    },
    Deliver {
        replica: usize,
        pick: usize,
        keep: bool,
    },
    FullState {
        from: usize,
        to: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, 0..8usize, 0..4u8, 0..4u8)
            .prop_map(|(replica, ty, kind, elem)| Step::Op { replica, ty, kind, elem }),
        3 => (0..3usize, any::<usize>(), any::<bool>())
            .prop_map(|(replica, pick, keep)| Step::Deliver { replica, pick, keep }),
        1 => (0..3usize, 0..3usize).prop_map(|(from, to)| Step::FullState { from, to }),
    ]
}

fn op_for(e: &Engine, key: &[u8], ty: CrdtType, kind: u8, elem: u8) -> Op {
    let el = vec![b'e', elem];
    match (ty, kind) {
        // Deletes: of what this replica holds now, or of an older read
        // (the state without the last local change is not available here,
        // so the read is the current state re-read through `state`).
        (_, 3) if elem % 2 == 0 => Op::Delete(None),
        (_, 3) => match e.state(key).unwrap() {
            Some(s) if s.crdt_type() == ty => Op::Delete(Some(s)),
            _ => Op::Delete(None),
        },
        (CrdtType::GCounter, _) => Op::Increment(elem as u64 + 1),
        (CrdtType::PNCounter, 0) => Op::PnAdd(-(elem as i64) - 1),
        (CrdtType::PNCounter, _) => Op::PnAdd(elem as i64),
        (CrdtType::GSet, _) => Op::GSetAdd(el),
        (CrdtType::TwoPSet, 0) => Op::TwoPRemove(el),
        (CrdtType::TwoPSet, _) => Op::TwoPAdd(el),
        (CrdtType::ORSet, 0) => Op::OrRemove(el, None),
        (CrdtType::ORSet, 1) => Op::OrRemove(el, Some(e.set_members(key).unwrap().context)),
        (CrdtType::ORSet, _) => Op::OrAdd(el),
        (CrdtType::LwwRegister, _) => Op::LwwSet(el),
        (CrdtType::FwwRegister, _) => Op::FwwSet(el),
        (CrdtType::MvRegister, 0) => Op::MvWrite(el, Default::default()),
        (CrdtType::MvRegister, _) => Op::MvWrite(el, e.mv_read(key).unwrap().context),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn three_replicas_converge(steps in prop::collection::vec(step(), 1..60)) {
        let reps = [engine(1), engine(2), engine(3)];
        let mut pool: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut all: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for s in &steps {
            match *s {
                Step::Op { replica, ty, kind, elem } => {
                    let ty = CrdtType::ALL[ty];
                    let key = format!("k-{}", ty.name()).into_bytes();
                    let e = &reps[replica];
                    let mut b = Batch::new();
                    b.push(key.clone(), op_for(e, &key, ty, kind, elem));
                    for d in e.write(&b).unwrap() {
                        let msg = (d.key, d.delta.encode());
                        pool.push(msg.clone());
                        all.push(msg);
                    }
                }
                Step::Deliver { replica, pick, keep } => {
                    if pool.is_empty() { continue; }
                    let i = pick % pool.len();
                    let (k, v) = if keep { pool[i].clone() } else { pool.swap_remove(i) };
                    reps[replica].merge(&k, &v).unwrap();
                }
                Step::FullState { from, to } => {
                    common::push_all(&reps[from], &reps[to]);
                }
            }
        }
        for r in &reps {
            for (k, v) in all.iter().rev() {
                r.merge(k, v).unwrap();
            }
        }
        let d0 = dump(&reps[0]);
        prop_assert_eq!(&d0, &dump(&reps[1]));
        prop_assert_eq!(&d0, &dump(&reps[2]));
        for (k, _) in &d0 {
            prop_assert_eq!(reps[0].read(k).unwrap(), reps[2].read(k).unwrap());
        }
        let root = reps[0].root().unwrap();
        prop_assert_eq!(root, reps[1].root().unwrap());
        prop_assert_eq!(root, reps[2].root().unwrap());
        prop_assert_eq!(root.count as usize, d0.len());
    }
}
