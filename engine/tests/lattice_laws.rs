//! Property tests of the pure CRDT types: join is commutative, associative
//! and idempotent on states reachable by random operations on three
//! replicas with random delta delivery (duplicates, reordering), and
//! replicas that have seen the same deltas hold byte-equal encodings.
//! Operations include deletes of the key (tombstones join like any state).

use converge::codec::encode_state;
use converge::crdt::Lattice as _;
use converge::{CausalContext, CrdtType, ReplicaId, State, Timestamp};
use proptest::prelude::*;

/// One step of a simulation: a local op on a replica, or the delivery of a
/// random pending delta to a replica.
#[derive(Clone, Debug)]
enum Step {
    Op {
        replica: usize,
        kind: u8,
        elem: u8,
    },
    Deliver {
        replica: usize,
        pick: usize,
        keep: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3usize, 0..4u8, 0..4u8).prop_map(|(replica, kind, elem)| Step::Op {
            replica,
            kind,
            elem
        }),
        (0..3usize, any::<usize>(), any::<bool>()).prop_map(|(replica, pick, keep)| {
            Step::Deliver {
                replica,
                pick,
                keep,
            }
        }),
    ]
}

/// Apply a local operation of kind `kind` to a state of any type.
fn local_op(s: &mut State, r: ReplicaId, kind: u8, elem: u8, tick: &mut u64) -> State {
    let e = [b'e', elem];
    *tick += 1;
    let ts = Timestamp {
        wall_ms: *tick / 3,
        logical: (*tick % 3) as u32,
    };
    if kind == 3 {
        // A delete of the key, based on what this replica holds now.
        let observed = s.clone();
        return s.delete(&observed, ts, r).unwrap();
    }
    match s {
        State::GCounter(c) => State::GCounter(c.increment(r, elem as u64 + 1).unwrap()),
        State::PNCounter(c) => State::PNCounter(
            c.add(
                r,
                if kind == 0 {
                    -(elem as i64)
                } else {
                    elem as i64 + 1
                },
            )
            .unwrap(),
        ),
        State::GSet(x) => State::GSet(x.add(&e)),
        State::TwoPSet(x) if kind == 0 => State::TwoPSet(x.remove(&e)),
        State::TwoPSet(x) => State::TwoPSet(x.add(&e)),
        State::ORSet(x) if kind == 0 => State::ORSet(x.remove(&e, None)),
        State::ORSet(x) => State::ORSet(x.add(r, &e)),
        State::LwwRegister(x) => State::LwwRegister(x.set(ts, r, &e)),
        State::FwwRegister(x) => State::FwwRegister(x.set(ts, r, &e)),
        State::MvRegister(x) => {
            let ctx = if kind == 0 {
                CausalContext::new()
            } else {
                x.context().clone()
            };
            State::MvRegister(x.write(r, &e, &ctx))
        }
    }
}

fn join(a: &State, b: &State) -> State {
    let mut out = a.clone();
    out.try_join(b).unwrap();
    out
}

/// Run the simulation; return every state any replica passed through, and
/// the final states after every replica received every delta.
fn simulate(ty: CrdtType, steps: &[Step]) -> (Vec<State>, Vec<State>) {
    let ids = [ReplicaId(11), ReplicaId(22), ReplicaId(33)];
    let mut reps = vec![State::empty(ty); 3];
    let mut pool: Vec<State> = Vec::new();
    let mut all: Vec<State> = Vec::new();
    let mut snaps = vec![State::empty(ty)];
    let mut tick = 0;
    for s in steps {
        match *s {
            Step::Op {
                replica,
                kind,
                elem,
            } => {
                let d = local_op(&mut reps[replica], ids[replica], kind, elem, &mut tick);
                pool.push(d.clone());
                all.push(d);
            }
            Step::Deliver {
                replica,
                pick,
                keep,
            } => {
                if pool.is_empty() {
                    continue;
                }
                let i = pick % pool.len();
                let d = if keep {
                    pool[i].clone()
                } else {
                    pool.swap_remove(i)
                };
                reps[replica].try_join(&d).unwrap();
            }
        }
        snaps.extend(reps.iter().cloned());
    }
    for r in reps.iter_mut() {
        for d in all.iter().rev() {
            r.try_join(d).unwrap();
        }
    }
    (snaps, reps)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn join_laws_and_convergence(
        ty in 0..8usize,
        steps in prop::collection::vec(step(), 1..40),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let ty = CrdtType::ALL[ty];
        let (snaps, finals) = simulate(ty, &steps);
        let a = &snaps[picks[0].index(snaps.len())];
        let b = &snaps[picks[1].index(snaps.len())];
        let c = &snaps[picks[2].index(snaps.len())];
        prop_assert_eq!(join(a, b), join(b, a), "commutative");
        prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)), "associative");
        prop_assert_eq!(&join(a, a), a, "idempotent");
        prop_assert!(join(a, b).is_canonical());
        prop_assert_eq!(encode_state(&join(a, b)), encode_state(&join(b, a)));
        prop_assert!(join_size_bounded(a, b));
        let j = join(a, b);
        prop_assert_eq!(&converge::codec::decode_state(&encode_state(&j)).unwrap(), &j);
        // Everyone saw everything: equal states, equal bytes.
        prop_assert_eq!(&finals[0], &finals[1]);
        prop_assert_eq!(&finals[1], &finals[2]);
        prop_assert_eq!(encode_state(&finals[0]), encode_state(&finals[2]));
    }
}

/// The write path's size bound (store/types.rs): a joined state never
/// encodes to more than both encodings plus 64 bytes of slack.
fn join_size_bounded(a: &State, b: &State) -> bool {
    let joined = encode_state(&join(a, b)).len();
    joined <= encode_state(a).len() + encode_state(b).len() + 64
}

/// States with many entries, so that collection lengths cross varint
/// boundaries (250, 65,536) in joins.
fn wide_state(ty: u8, n: usize, salt: u16) -> State {
    let mut s = State::empty(CrdtType::ALL[[0, 1, 2, 3, 4, 7][ty as usize % 6]]);
    for i in 0..n {
        let r = ReplicaId((i % 7) as u128 + salt as u128 * 8);
        let e = [(i % 251) as u8, (i / 251) as u8, salt as u8];
        match &mut s {
            State::GCounter(c) => {
                c.increment(ReplicaId(i as u128 + salt as u128 * 1000), 1)
                    .unwrap();
            }
            State::PNCounter(c) => {
                c.add(ReplicaId(i as u128 + salt as u128 * 1000), -1)
                    .unwrap();
            }
            State::GSet(g) => {
                g.add(&e);
            }
            State::TwoPSet(g) => {
                g.add(&e);
                if i % 3 == 0 {
                    g.remove(&e);
                }
            }
            State::ORSet(o) => {
                o.add(r, &e[..1]);
            }
            State::MvRegister(m) => {
                let ctx = CausalContext::new();
                m.write(r, &e, &ctx);
            }
            _ => {}
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn join_size_is_bounded_across_varint_boundaries(
        ty in 0..6u8,
        n in 200..320usize,
        m in 0..80usize,
    ) {
        let a = wide_state(ty, n, 1);
        let b = wide_state(ty, m, 2);
        prop_assert!(join_size_bounded(&a, &b));
        prop_assert!(join_size_bounded(&b, &a));
    }
}

#[test]
fn typed_join_rejects_mismatched_types() {
    let mut a = State::empty(CrdtType::GSet);
    let b = State::empty(CrdtType::ORSet);
    assert!(a.try_join(&b).is_err());
    assert_eq!(a, State::empty(CrdtType::GSet));
    let mut g = converge::crdt::GCounter::default();
    g.join(&converge::crdt::GCounter::default());
    assert_eq!(g.value(), 0);
}
