//! Causal delivery against a dependency oracle: N replicas make random
//! operations; their deltas are delivered at random (duplicated, dropped,
//! reordered), with occasional pages of the changes feed and anti-entropy
//! sessions. After every step, on every replica:
//! (a) no effect is visible without every effect it causally depends on
//!     (the oracle: an operation depends on everything its origin showed
//!     when it was made);
//! (b) the causal record lists exactly the operations whose effects are
//!     visible;
//! and at the end, once everything is delivered, (c) all replicas hold the
//! same state and record, and nothing is pending.
//!
//! Each operation adds a unique element `origin:seq` to one of three G-Sets,
//! so a replica's visible effects are read back from its sets.

mod common;
use common::small_options;
use converge::sync::sync_engines;
use converge::{CausalContext, Dot, Engine, ReplicaId};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const REPLICAS: usize = 3;
const KEYS: [&[u8]; 3] = [b"a", b"b", b"c"];

#[derive(Clone, Debug)]
enum Step {
    /// Replica makes an operation on a key.
    Op(usize, usize),
    /// Deliver the in-flight delta at this index (modulo), keeping a copy
    /// in flight if `dup`.
    Deliver(usize, bool),
    /// Drop the in-flight delta at this index.
    Drop(usize),
    /// Ship a page of `from`'s changes feed to `to`, from `to`'s record.
    Feed(usize, usize),
    /// Anti-entropy session between two replicas.
    Sync(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..REPLICAS, 0..KEYS.len()).prop_map(|(r, k)| Step::Op(r, k)),
        8 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(i, d)| Step::Deliver(i, d)),
        1 => any::<usize>().prop_map(Step::Drop),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(a, b)| Step::Feed(a, b)),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(a, b)| Step::Sync(a, b)),
    ]
}

fn dot_of(elem: &[u8]) -> Dot {
    let s = std::str::from_utf8(elem).unwrap();
    let (r, n) = s.split_once(':').unwrap();
    Dot::new(ReplicaId(r.parse().unwrap()), n.parse().unwrap())
}

/// The dots whose effects `e` shows.
fn visible(e: &Engine) -> BTreeSet<Dot> {
    let mut out = BTreeSet::new();
    for k in KEYS {
        for m in e.set_members(k).unwrap().members {
            out.insert(dot_of(&m));
        }
    }
    out
}

fn dots_in(c: &CausalContext) -> BTreeSet<Dot> {
    let mut out = BTreeSet::new();
    for (r, n) in c.vv().iter() {
        out.extend((1..=n).map(|k| Dot::new(r, k)));
    }
    out.extend(c.cloud().iter().copied());
    out
}

struct World {
    engines: Vec<Engine>,
    _dirs: Vec<tempfile::TempDir>,
    /// (to, key, delta bytes) in flight.
    flight: Vec<(usize, &'static [u8], Vec<u8>)>,
    /// Oracle: each operation's causal past.
    causes: BTreeMap<Dot, BTreeSet<Dot>>,
}

impl World {
    fn new() -> World {
        let mut engines = Vec::new();
        let mut dirs = Vec::new();
        for r in 0..REPLICAS {
            let d = tempfile::tempdir().unwrap();
            engines.push(Engine::open(d.path(), small_options(r as u128 + 1)).unwrap());
            dirs.push(d);
        }
        World {
            engines,
            _dirs: dirs,
            flight: Vec::new(),
            causes: BTreeMap::new(),
        }
    }

    fn run(&mut self, s: &Step) {
        match *s {
            Step::Op(r, k) => {
                let e = &self.engines[r];
                let past = visible(e);
                let dot = e.context().next_dot(e.replica_id());
                let elem = format!("{}:{}", dot.replica.0, dot.counter);
                let d = e.gset_add(KEYS[k], elem.as_bytes()).unwrap();
                assert_eq!(d.dot(), dot);
                self.causes.insert(dot, past);
                let bytes = d.delta.encode();
                for to in (0..REPLICAS).filter(|t| *t != r) {
                    self.flight.push((to, KEYS[k], bytes.clone()));
                }
            }
            Step::Deliver(i, dup) if !self.flight.is_empty() => {
                let i = i % self.flight.len();
                let (to, key, bytes) = if dup {
                    self.flight[i].clone()
                } else {
                    self.flight.swap_remove(i)
                };
                self.engines[to].merge(key, &bytes).unwrap();
            }
            Step::Drop(i) if !self.flight.is_empty() => {
                let i = i % self.flight.len();
                self.flight.swap_remove(i);
            }
            Step::Feed(a, b) if a != b => {
                let cursor = self.engines[b].context();
                let page = self.engines[a].changes_since(&cursor, 3).unwrap();
                if let Some(c) = page.changes {
                    self.engines[b].apply_changes(&c.encode()).unwrap();
                }
            }
            Step::Sync(a, b) if a != b => {
                sync_engines(&self.engines[a], &self.engines[b], Default::default()).unwrap();
            }
            _ => {}
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        for e in &self.engines {
            let shown = visible(e);
            for d in &shown {
                let missing: Vec<_> = self.causes[d].difference(&shown).collect();
                prop_assert!(
                    missing.is_empty(),
                    "replica {} shows {:?} without its causes {:?}",
                    e.replica_id(),
                    d,
                    missing
                );
            }
            prop_assert_eq!(
                dots_in(&e.context()),
                shown,
                "replica {}: the record is not the set of visible operations",
                e.replica_id()
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn causal_delivery_matches_the_oracle(steps in prop::collection::vec(step(), 1..80)) {
        let mut w = World::new();
        for s in &steps {
            w.run(s);
            w.check()?;
        }
        // Deliver everything left, then anti-entropy heals what was dropped.
        while let Some((to, key, bytes)) = w.flight.pop() {
            w.engines[to].merge(key, &bytes).unwrap();
            w.check()?;
        }
        for a in 0..REPLICAS {
            for b in 0..REPLICAS {
                if a != b {
                    sync_engines(&w.engines[a], &w.engines[b], Default::default()).unwrap();
                    w.check()?;
                }
            }
        }
        let first = visible(&w.engines[0]);
        prop_assert_eq!(first.len(), w.causes.len());
        for e in &w.engines {
            prop_assert_eq!(visible(e), first.clone());
            prop_assert_eq!(e.context(), w.engines[0].context());
            prop_assert_eq!(e.pending().entries, 0);
        }
    }
}
