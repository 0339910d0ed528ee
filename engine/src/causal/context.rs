//! Causal contexts: a version vector plus a "dot cloud" of events seen out of
//! order. This is the dotted-version-vector context used by OR-Sets and
//! MV-registers; it is kept compact so that equal histories encode equally.

use super::{Dot, ReplicaId, VersionVector};
use bincode::{Decode, Encode};
use std::collections::BTreeSet;

/// The set of dots a state has seen: every dot `(r, c)` with
/// `c <= vv[r]`, plus the isolated dots in `cloud`. Always compact: no cloud
/// dot is covered by `vv` or extends it contiguously.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Encode, Decode)]
pub struct CausalContext {
    vv: VersionVector,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// The empty context.
    pub const fn new() -> CausalContext {
        CausalContext {
            vv: VersionVector::new(),
            cloud: BTreeSet::new(),
        }
    }

    /// A context covering exactly what `vv` covers.
    pub fn from_vv(vv: VersionVector) -> CausalContext {
        CausalContext {
            vv,
            cloud: BTreeSet::new(),
        }
    }

    /// The context of exactly `dots` (any order, duplicates allowed), built
    /// at once: sorted, each replica's run from 1 into the vector, the rest
    /// into the cloud.
    pub fn from_dots(mut dots: Vec<Dot>) -> CausalContext {
        dots.sort_unstable();
        dots.dedup();
        let mut vv = VersionVector::new();
        let mut cloud = Vec::new();
        for d in dots {
            if d.counter == vv.get(d.replica) + 1 {
                vv.observe(d.replica, d.counter);
            } else {
                cloud.push(d);
            }
        }
        CausalContext {
            vv,
            cloud: cloud.into_iter().collect(),
        }
    }

    /// The contiguous part.
    pub fn vv(&self) -> &VersionVector {
        &self.vv
    }

    /// The isolated dots.
    pub fn cloud(&self) -> &BTreeSet<Dot> {
        &self.cloud
    }

    /// Whether the context has seen `dot`.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.vv.contains(dot.replica, dot.counter) || self.cloud.contains(dot)
    }

    /// The next dot `replica` should use: one past everything seen of it.
    pub fn next_dot(&self, replica: ReplicaId) -> Dot {
        let in_cloud = self
            .cloud
            .range(Dot::new(replica, 0)..=Dot::new(replica, u64::MAX))
            .next_back()
            .map(|d| d.counter)
            .unwrap_or(0);
        Dot::new(replica, self.vv.get(replica).max(in_cloud) + 1)
    }

    /// Add one dot. O(log n): only that replica's dots are settled.
    pub fn insert(&mut self, dot: Dot) {
        let have = self.vv.get(dot.replica);
        if dot.counter <= have {
            return;
        }
        if dot.counter == have + 1 {
            // The next dot (a replica's new event): straight into the
            // vector, then absorb what the cloud held next.
            self.vv.observe(dot.replica, dot.counter);
            if !self.cloud.is_empty() {
                self.settle(dot.replica);
            }
            return;
        }
        // A later one: the cloud stays compact (it holds no dot at or
        // next to the vector's, so this one reaches nothing to fold).
        self.cloud.insert(dot);
    }

    /// Add the dots `(replica, lo..=hi)` (nothing if `hi < lo` or `lo` is
    /// 0).
    pub fn insert_range(&mut self, replica: ReplicaId, lo: u64, hi: u64) {
        if hi < lo || lo == 0 {
            return;
        }
        if lo <= self.vv.get(replica) + 1 {
            self.vv.observe(replica, hi);
        } else {
            self.cloud.extend((lo..=hi).map(|c| Dot::new(replica, c)));
        }
        self.settle(replica);
    }

    /// How many dots of `other` this context lacks (0: it includes
    /// `other`), saturating at `u64::MAX`.
    pub fn missing(&self, other: &CausalContext) -> u64 {
        let mut n: u64 = 0;
        for (r, c) in other.vv.iter() {
            let have = self.vv.get(r);
            if c > have {
                let held = self
                    .cloud
                    .range(Dot::new(r, have + 1)..=Dot::new(r, c))
                    .count() as u64;
                n = n.saturating_add(c - have - held);
            }
        }
        let extra = other.cloud.iter().filter(|d| !self.contains(d)).count() as u64;
        n.saturating_add(extra)
    }

    /// The part of this context about the given replicas.
    pub fn project<'a>(&self, replicas: impl IntoIterator<Item = &'a ReplicaId>) -> CausalContext {
        let mut out = CausalContext::new();
        for r in replicas {
            let n = self.vv.get(*r);
            if n > 0 {
                out.vv.observe(*r, n);
            }
            out.cloud.extend(
                self.cloud
                    .range(Dot::new(*r, 0)..=Dot::new(*r, u64::MAX))
                    .copied(),
            );
        }
        out
    }

    /// Whether this context holds at least one dot of `other`.
    pub fn includes_any(&self, other: &CausalContext) -> bool {
        other.vv.iter().any(|(r, n)| {
            self.vv.get(r) >= 1
                || self
                    .cloud
                    .range(Dot::new(r, 1)..=Dot::new(r, n))
                    .next()
                    .is_some()
        }) || other.cloud.iter().any(|d| self.contains(d))
    }

    /// The first dot of `need` (in replica, then counter order) that
    /// neither this context nor `also` holds; `None` when they hold all
    /// of it. Linear in the size of `need` and in the held cloud dots it
    /// walks past, not in the counters.
    pub fn first_missing(&self, also: Option<&CausalContext>, need: &CausalContext) -> Option<Dot> {
        let holds = |d: &Dot| self.contains(d) || also.is_some_and(|a| a.contains(d));
        let mut first: Option<Dot> = None;
        for (r, n) in need.vv.iter() {
            let mut k = self.vv.get(r).max(also.map_or(0, |a| a.vv.get(r))) + 1;
            while k <= n && holds(&Dot::new(r, k)) {
                k += 1;
            }
            if k <= n {
                first = Some(Dot::new(r, k));
                break;
            }
        }
        let cloud = need.cloud.iter().find(|d| !holds(d)).copied();
        match (first, cloud) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The last dot of `need` (in replica, then counter order) that this
    /// context does not hold; `None` when it holds all of it. Linear in
    /// the size of `need` and in the held cloud dots it walks past, not in
    /// the counters.
    ///
    /// What a waiter on `need` should wait for: dots of one origin are
    /// usually delivered in order, so the last missing dot arrives last,
    /// and a chain of waiters (each needing the one before) is woken once
    /// each, where waiting for the first missing dot would wake every
    /// waiter at every step.
    pub fn last_missing(&self, need: &CausalContext) -> Option<Dot> {
        let mut last: Option<Dot> = None;
        for (r, n) in need.vv.iter() {
            let floor = self.vv.get(r);
            let mut k = n;
            while k > floor && self.cloud.contains(&Dot::new(r, k)) {
                k -= 1;
            }
            if k > floor {
                last = last.max(Some(Dot::new(r, k)));
            }
        }
        let cloud = need.cloud.iter().rev().find(|d| !self.contains(d)).copied();
        last.max(cloud)
    }

    /// Whether this context holds every dot of `other`.
    pub fn includes(&self, other: &CausalContext) -> bool {
        self.missing(other) == 0
    }

    /// Union with another context (the join): linear in the vectors, and
    /// only the replicas whose cloud dots may change are settled. Into an
    /// empty context it is a copy (no dot is inserted one by one).
    pub fn merge(&mut self, other: &CausalContext) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            self.clone_from(other);
            return;
        }
        if self.cloud.is_empty() {
            self.vv.merge(&other.vv);
        } else {
            // A replica whose entry grows may cover or reach cloud dots.
            for (r, n) in other.vv.iter() {
                if n > self.vv.get(r) {
                    self.vv.observe(r, n);
                    self.settle(r);
                }
            }
        }
        for d in &other.cloud {
            self.insert(*d);
        }
    }

    /// Restore the compact form for one replica: drop its cloud dots the
    /// vector covers, then fold the ones that extend it contiguously. No
    /// allocation.
    fn settle(&mut self, r: ReplicaId) {
        let have = self.vv.get(r);
        while let Some(d) = self
            .cloud
            .range(Dot::new(r, 0)..=Dot::new(r, have))
            .next()
            .copied()
        {
            self.cloud.remove(&d);
        }
        let mut next = have + 1;
        while self.cloud.remove(&Dot::new(r, next)) {
            next += 1;
        }
        if next - 1 > have {
            self.vv.observe(r, next - 1);
        }
    }

    /// Whether nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// Whether the encoding is canonical (compact, no zero entries).
    pub(crate) fn is_canonical(&self) -> bool {
        self.vv.is_canonical()
            && self
                .cloud
                .iter()
                .all(|d| d.counter > self.vv.get(d.replica) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(r: u128, c: u64) -> Dot {
        Dot::new(ReplicaId(r), c)
    }

    /// `last_missing` against brute force over small random contexts: it
    /// names the largest dot of `need` the context lacks, and is `None`
    /// exactly when `first_missing` is.
    #[test]
    fn last_missing_is_the_largest_dot_missing() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for _ in 0..2_000 {
            let (mut have, mut need) = (CausalContext::new(), CausalContext::new());
            for _ in 0..next(12) {
                have.insert(d(1 + next(3) as u128, 1 + next(10)));
            }
            for _ in 0..next(12) {
                need.insert(d(1 + next(3) as u128, 1 + next(10)));
            }
            let mut missing = Vec::new();
            for r in 1..=3u128 {
                for k in 1..=10 {
                    if need.contains(&d(r, k)) && !have.contains(&d(r, k)) {
                        missing.push(d(r, k));
                    }
                }
            }
            assert_eq!(
                have.last_missing(&need),
                missing.last().copied(),
                "{have:?} {need:?}"
            );
            assert_eq!(have.first_missing(None, &need), missing.first().copied());
        }
    }

    #[test]
    fn out_of_order_dots_compact_once_contiguous() {
        let mut c = CausalContext::new();
        c.insert(d(1, 3));
        c.insert(d(1, 2));
        assert_eq!(c.vv().get(ReplicaId(1)), 0);
        assert_eq!(c.cloud().len(), 2);
        c.insert(d(1, 1));
        assert_eq!(c.vv().get(ReplicaId(1)), 3);
        assert!(c.cloud().is_empty());
        assert!(c.is_canonical());
        assert_eq!(c.next_dot(ReplicaId(1)), d(1, 4));
    }

    #[test]
    fn next_dot_sees_the_cloud() {
        let mut c = CausalContext::new();
        c.insert(d(7, 5));
        assert_eq!(c.next_dot(ReplicaId(7)), d(7, 6));
        assert!(c.contains(&d(7, 5)));
        assert!(!c.contains(&d(7, 4)));
    }

    #[test]
    fn merge_is_union() {
        let mut a = CausalContext::new();
        a.insert(d(1, 1));
        a.insert(d(2, 4));
        let mut b = CausalContext::new();
        b.insert(d(1, 2));
        b.insert(d(2, 1));
        a.merge(&b);
        assert_eq!(a.vv().get(ReplicaId(1)), 2);
        assert_eq!(a.vv().get(ReplicaId(2)), 1);
        assert!(a.contains(&d(2, 4)));
        assert!(!a.contains(&d(2, 3)));
    }
}

#[cfg(test)]
mod model_tests {
    //! The incremental operations against a plain set of dots.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Clone, Debug)]
    enum Step {
        Insert(u8, u8),
        Range(u8, u8, u8),
        Merge(Vec<(u8, u8)>, u8, u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..3u8, 1..20u8).prop_map(|(r, c)| Step::Insert(r, c)),
            (0..3u8, 1..20u8, 0..6u8).prop_map(|(r, lo, n)| Step::Range(r, lo, n)),
            (
                prop::collection::vec((0..3u8, 1..20u8), 0..6),
                0..3u8,
                0..8u8
            )
                .prop_map(|(dots, r, c)| Step::Merge(dots, r, c)),
        ]
    }

    fn dots_of(c: &CausalContext) -> BTreeSet<(u8, u64)> {
        let mut out = BTreeSet::new();
        for r in 0..3u8 {
            for n in 1..40u64 {
                if c.contains(&Dot::new(ReplicaId(r as u128), n)) {
                    out.insert((r, n));
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn incremental_operations_match_a_set_of_dots(steps in prop::collection::vec(step(), 0..40)) {
            let mut ctx = CausalContext::new();
            let mut model: BTreeSet<(u8, u64)> = BTreeSet::new();
            for s in steps {
                match s {
                    Step::Insert(r, c) => {
                        ctx.insert(Dot::new(ReplicaId(r as u128), c as u64));
                        model.insert((r, c as u64));
                    }
                    Step::Range(r, lo, n) => {
                        let (lo, hi) = (lo as u64, lo as u64 + n as u64);
                        ctx.insert_range(ReplicaId(r as u128), lo, hi);
                        model.extend((lo..=hi).map(|c| (r, c)));
                    }
                    Step::Merge(dots, r, c) => {
                        let mut other = CausalContext::new();
                        other.insert_range(ReplicaId(r as u128), 1, c as u64);
                        model.extend((1..=c as u64).map(|n| (r, n)));
                        for (r, c) in dots {
                            other.insert(Dot::new(ReplicaId(r as u128), c as u64));
                            model.insert((r, c as u64));
                        }
                        let before = ctx.clone();
                        ctx.merge(&other);
                        prop_assert!(ctx.includes(&before) && ctx.includes(&other));
                    }
                }
                prop_assert!(ctx.is_canonical(), "{ctx:?}");
                prop_assert_eq!(dots_of(&ctx), model.clone());
            }
            let mut empty = CausalContext::new();
            // Built at once from the same dots, in any order: the same.
            let dots = model.iter().map(|(r, n)| Dot::new(ReplicaId(*r as u128), *n));
            let mut all: Vec<Dot> = dots.clone().rev().collect();
            all.extend(dots);
            prop_assert_eq!(&CausalContext::from_dots(all), &ctx);
            prop_assert_eq!(empty.missing(&ctx), model.len() as u64);
            empty.merge(&ctx);
            prop_assert_eq!(&empty, &ctx);
        }
    }
}
