//! The simulation's checks of the engines against the model: records,
//! visibility of what a record lists, token reads, and convergence after a
//! heal.

use super::{World, KEYS};
use crate::model::{comparable, covers, expected_value, join_of};
use crate::net::dots_of;
use converge::{CausalContext, Dot, Error, Value};
use std::collections::BTreeSet;

impl World {
    /// A session read at `b` with the token of a random operation, then
    /// with another replica's whole record: it waits for nothing, so it
    /// must succeed exactly when the model says `b` holds the token, and
    /// then show the token's effects.
    pub(super) fn read_with_token(&mut self, b: usize) {
        if self.ops.is_empty() {
            return;
        }
        let o = self.ops[self.rng.below(self.ops.len())].clone();
        let mut token = CausalContext::new();
        token.insert(o.dot);
        let holds = self.models[b].record.contains(&o.dot);
        self.check_token_read(b, &o.key, &token, holds);
        let a = self.rng.below(self.reps.len());
        let token = self.engine(a).context();
        let holds = self.models[b].record.is_superset(&self.models[a].record);
        self.check_token_read(b, &o.key, &token, holds);
    }

    fn check_token_read(&mut self, b: usize, key: &[u8], token: &CausalContext, holds: bool) {
        let e = self.engine(b);
        match e.read_session(key, token, None) {
            Ok((value, at)) => {
                assert!(holds, "replica {b} read a token the model says it lacks");
                assert!(at.includes(token), "the read's context lacks the token");
                let state = e.state(key).expect("state");
                assert_eq!(
                    value,
                    state.as_ref().filter(|s| !s.is_absent()).map(Value::of)
                );
                let want = join_of(&self.ops, key, |d| token.contains(d));
                if let Some(want) = want {
                    let state = state.expect("a token's key has a state");
                    assert!(
                        covers(&state, &want),
                        "replica {b}: a read at a token misses its effects on {key:?}"
                    );
                }
                self.stats.tokens_ok += 1;
            }
            Err(Error::NotYetVisible { missing }) => {
                assert!(!holds, "replica {b} refused a token it holds");
                assert!(missing > 0);
                self.stats.tokens_not_yet += 1;
            }
            Err(e) => panic!("read_session: {e}"),
        }
    }

    /// Every replica's causal record is the model's.
    pub(super) fn check_records(&self) {
        for (r, m) in self.models.iter().enumerate() {
            let got = dots_of(&self.engine(r).context());
            if got != m.record {
                let extra: Vec<_> = got.difference(&m.record).collect();
                let missing: Vec<_> = m.record.difference(&got).collect();
                panic!("replica {r}: record has {extra:?} beyond the model, lacks {missing:?}");
            }
        }
    }

    /// Every effect replica `r`'s record lists is in its data.
    pub(super) fn check_visible(&self, r: usize) {
        let e = self.engine(r);
        let record = &self.models[r].record;
        for key in KEYS {
            if let Some(want) = join_of(&self.ops, key.as_bytes(), |d| record.contains(d)) {
                let got = e.state(key.as_bytes()).expect("state");
                let ok = got.as_ref().is_some_and(|g| covers(g, &want));
                assert!(ok, "replica {r}: key {key} lacks effects its record lists");
            }
        }
    }

    /// Check every replica's data against its record.
    pub fn check_all_visible(&self) {
        for r in 0..self.reps.len() {
            self.check_visible(r);
        }
    }

    /// After a heal: every replica holds every operation, in its data and
    /// its record, with equal states, roots and values as the model says.
    pub(super) fn check_converged(&self) {
        let all: BTreeSet<Dot> = self.ops.iter().map(|o| o.dot).collect();
        let first = self.engine(0);
        let root = first.root().expect("root");
        for r in 0..self.reps.len() {
            let e = self.engine(r);
            assert_eq!(self.models[r].record, all, "replica {r}: model record");
            assert_eq!(e.pending().entries, 0, "replica {r}: entries still pending");
            assert_eq!(e.root().expect("root"), root, "replica {r}: root differs");
            for key in KEYS.iter().map(|k| k.as_bytes()).chain([&b"clock"[..]]) {
                assert_eq!(
                    e.state_bytes(key).expect("state"),
                    first.state_bytes(key).expect("state"),
                    "replica {r}: key {key:?} differs from replica 0"
                );
            }
        }
        self.check_records();
        for key in KEYS {
            let key = key.as_bytes();
            let want = join_of(&self.ops, key, |_| true);
            let got = first.state(key).expect("state");
            assert_eq!(
                got.as_ref().map(converge::codec::encode_state),
                want.as_ref().map(converge::codec::encode_state),
                "key {key:?}: the state is not the join of every acknowledged delta"
            );
            let want = expected_value(&self.ops, key);
            let got = got
                .filter(|s| !s.is_absent())
                .map(|s| comparable(Value::of(&s)));
            assert_eq!(
                got, want,
                "key {key:?}: the value is not what the operations make"
            );
        }
    }
}
