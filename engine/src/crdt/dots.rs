//! The live dots of one OR-Set element: a sorted set of [`Dot`]s that holds
//! its usual single dot inline.
//!
//! An element almost always has one live add (an add retires the element's
//! older dots; only concurrent adds leave several). A `BTreeSet<Dot>` of one
//! dot costs a B-tree node on the heap, about 400 bytes; this costs none,
//! which makes a decoded OR-Set about a third of the size and an add one
//! allocation cheaper. The encoding is a `BTreeSet<Dot>`'s (a length, then
//! the dots in order), so stored states and deltas are unchanged; decoding
//! sorts and drops duplicates as the `BTreeSet` did, and the canonical
//! check of full states still rejects bytes that did not come out sorted.

use crate::causal::Dot;
use bincode::{Decode, Encode};

/// A sorted set of dots, without a heap allocation when it holds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dots {
    /// Exactly one dot.
    One(Dot),
    /// Any other number of dots (none included), sorted, no duplicates.
    Many(Vec<Dot>),
}

impl Default for Dots {
    fn default() -> Self {
        Dots::Many(Vec::new())
    }
}

impl Dots {
    /// The set of the one dot `d`.
    pub(crate) fn one(d: Dot) -> Dots {
        Dots::One(d)
    }

    /// The dots, in order.
    pub(crate) fn as_slice(&self) -> &[Dot] {
        match self {
            Dots::One(d) => std::slice::from_ref(d),
            Dots::Many(v) => v,
        }
    }

    /// The dots, in order.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Dot> {
        self.as_slice().iter()
    }

    /// How many dots.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Whether `d` is one of them.
    pub(crate) fn contains(&self, d: &Dot) -> bool {
        match self {
            Dots::One(x) => x == d,
            Dots::Many(v) => v.binary_search(d).is_ok(),
        }
    }

    /// Add `d` (nothing if present).
    pub(crate) fn insert(&mut self, d: Dot) {
        match self {
            Dots::One(x) if *x == d => {}
            Dots::One(x) => {
                let v = if *x < d { vec![*x, d] } else { vec![d, *x] };
                *self = Dots::Many(v);
            }
            Dots::Many(v) if v.is_empty() => *self = Dots::One(d),
            Dots::Many(v) => {
                if let Err(i) = v.binary_search(&d) {
                    v.insert(i, d);
                }
            }
        }
    }

    /// Keep the dots for which `keep` is true, in order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Dot) -> bool) {
        match self {
            Dots::One(x) => {
                if !keep(x) {
                    *self = Dots::Many(Vec::new());
                }
            }
            Dots::Many(v) => {
                v.retain(|d| keep(d));
                if let [only] = v[..] {
                    *self = Dots::One(only);
                }
            }
        }
    }
}

impl FromIterator<Dot> for Dots {
    /// The set of the dots `iter` yields, in any order.
    fn from_iter<I: IntoIterator<Item = Dot>>(iter: I) -> Self {
        // No allocation for none or one (the usual case).
        let mut it = iter.into_iter();
        let Some(first) = it.next() else {
            return Dots::default();
        };
        let Some(second) = it.next() else {
            return Dots::One(first);
        };
        let mut v = vec![first, second];
        v.extend(it);
        v.sort_unstable();
        v.dedup();
        match v[..] {
            [only] => Dots::One(only),
            _ => Dots::Many(v),
        }
    }
}

impl<'a> IntoIterator for &'a Dots {
    type Item = &'a Dot;
    type IntoIter = std::slice::Iter<'a, Dot>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Encode for Dots {
    /// As a `BTreeSet<Dot>`: the length (a `u64`), then each dot in order.
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        (self.len() as u64).encode(e)?;
        for d in self.iter() {
            d.encode(e)?;
        }
        Ok(())
    }
}

impl<C> Decode<C> for Dots {
    /// As a `BTreeSet<Dot>` decodes: any order, duplicates collapse.
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let len = super::decode_len(d)?;
        // Each dot claims its encoded size before it is read, as bincode's
        // own collections do: a hostile length cannot reserve memory.
        d.claim_container_read::<Dot>(len)?;
        if len == 1 {
            d.unclaim_bytes_read(std::mem::size_of::<Dot>());
            return Ok(Dots::One(Dot::decode(d)?));
        }
        let mut v = Vec::with_capacity(len.min(64));
        for _ in 0..len {
            d.unclaim_bytes_read(std::mem::size_of::<Dot>());
            v.push(Dot::decode(d)?);
        }
        if v.windows(2).all(|w| w[0] < w[1]) {
            return Ok(Dots::Many(v));
        }
        Ok(v.into_iter().collect())
    }
}

bincode::impl_borrow_decode!(Dots);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causal::ReplicaId;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn dot(r: u8, c: u8) -> Dot {
        Dot::new(ReplicaId(r as u128), c as u64)
    }

    proptest! {
        /// Inserts, retains and lookups agree with a `BTreeSet<Dot>`, and
        /// the encoding is the `BTreeSet`'s byte for byte (both ways, in
        /// any order and with duplicates).
        #[test]
        fn behaves_and_encodes_as_a_btreeset(
            steps in prop::collection::vec((0..3u8, 0..3u8, 1..6u8), 0..40)
        ) {
            let cfg = bincode::config::standard();
            let mut ours = Dots::default();
            let mut model: BTreeSet<Dot> = BTreeSet::new();
            let mut raw = Vec::new();
            for (kind, r, c) in steps {
                let d = dot(r, c);
                raw.push(d);
                match kind {
                    0 | 1 => {
                        ours.insert(d);
                        model.insert(d);
                    }
                    _ => {
                        ours.retain(|x| x.replica != d.replica);
                        model.retain(|x| x.replica != d.replica);
                    }
                }
                prop_assert_eq!(ours.as_slice(), &model.iter().copied().collect::<Vec<_>>()[..]);
                prop_assert_eq!(ours.contains(&d), model.contains(&d));
                prop_assert_eq!(matches!(ours, Dots::One(_)), model.len() == 1);
                let bytes = bincode::encode_to_vec(&ours, cfg).unwrap();
                prop_assert_eq!(&bytes, &bincode::encode_to_vec(&model, cfg).unwrap());
                let (back, _): (Dots, usize) = bincode::decode_from_slice(&bytes, cfg).unwrap();
                prop_assert_eq!(&back, &ours);
            }
            // Unsorted bytes with duplicates decode as the BTreeSet does.
            let unsorted = bincode::encode_to_vec(&raw, cfg).unwrap();
            let (a, _): (Dots, usize) = bincode::decode_from_slice(&unsorted, cfg).unwrap();
            let (b, _): (BTreeSet<Dot>, usize) = bincode::decode_from_slice(&unsorted, cfg).unwrap();
            prop_assert_eq!(a.as_slice(), &b.into_iter().collect::<Vec<_>>()[..]);
        }
    }

    #[test]
    fn a_hostile_length_is_refused_without_reserving() {
        let cfg = bincode::config::standard().with_limit::<1024>();
        let bytes = bincode::encode_to_vec(u64::MAX / 2, bincode::config::standard()).unwrap();
        assert!(bincode::decode_from_slice::<Dots, _>(&bytes, cfg).is_err());
    }

    #[test]
    fn one_dot_lives_inline() {
        assert!(std::mem::size_of::<Dots>() <= 48);
        let mut d = Dots::default();
        d.insert(dot(1, 1));
        assert!(matches!(d, Dots::One(_)));
        d.insert(dot(1, 2));
        d.retain(|x| x.counter == 2);
        assert_eq!(d, Dots::One(dot(1, 2)));
    }
}

/// Whether every dot of `dots` (replica, counter) is one a context holds,
/// each once: its counter is at least 1 (every context "holds" a dot with
/// counter 0, which names no event), it lies within the context's vector
/// `vv` (replica and entry, sorted by replica) or in its `cloud` (sorted),
/// and no dot appears twice. One pass: each dot is a bit in a bitmap over
/// the context's dots (a vector entry `n` covers `n` bits), found by the
/// same lookup that tells whether the context holds it. A context much
/// larger than the dots (more than 64 bits per dot) is checked dot by dot
/// and its repeats found by a sort instead.
pub(crate) fn held_once(dots: &[(u128, u64)], vv: &[(u128, u64)], cloud: &[(u128, u64)]) -> bool {
    let in_vv = |r: u128, c: u64| match vv.binary_search_by(|e| e.0.cmp(&r)) {
        Ok(i) if c <= vv[i].1 => Some(i),
        _ => None,
    };
    if dots.iter().any(|d| d.1 == 0) {
        return false;
    }
    let mut base = Vec::with_capacity(vv.len());
    let mut total: u64 = 0;
    for &(_, n) in vv {
        base.push(total);
        total = total.saturating_add(n);
    }
    let bound = 64u64.saturating_mul(dots.len() as u64).saturating_add(4096);
    if total > bound {
        let held =
            |&(r, c): &(u128, u64)| in_vv(r, c).is_some() || cloud.binary_search(&(r, c)).is_ok();
        let mut all = dots.to_vec();
        all.sort_unstable();
        return all.iter().all(held) && all.windows(2).all(|w| w[0] != w[1]);
    }
    let bits = total + cloud.len() as u64;
    let mut seen = vec![0u64; bits.div_ceil(64) as usize];
    for &(r, c) in dots {
        let bit = match in_vv(r, c) {
            Some(i) => base[i] + c - 1,
            None => match cloud.binary_search(&(r, c)) {
                Ok(j) => total + j as u64,
                Err(_) => return false,
            },
        };
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if seen[word] & mask != 0 {
            return false;
        }
        seen[word] |= mask;
    }
    true
}

#[cfg(test)]
mod distinct_tests {
    use super::held_once;

    #[test]
    fn dots_held_once_by_bitmap_and_by_sort() {
        let vv = [(1u128, 3u64), (7, 2), (u128::MAX, 5)];
        let cloud = [(7u128, 9u64), (8, 4)];
        assert!(held_once(
            &[(7, 2), (1, 2), (7, 1), (u128::MAX, 5), (7, 9), (8, 4)],
            &vv,
            &cloud
        ));
        assert!(!held_once(&[(7, 2), (1, 2), (7, 2)], &vv, &cloud));
        assert!(!held_once(&[(8, 4), (1, 1), (8, 4)], &vv, &cloud));
        // Counter 0; a dot the context does not hold (another replica,
        // past the vector, not in the cloud).
        assert!(!held_once(&[(1, 0)], &vv, &cloud));
        assert!(!held_once(&[(9, 1), (7, 1)], &vv, &cloud));
        assert!(!held_once(&[(7, 3)], &vv, &cloud));
        // A context too large for a bitmap.
        let huge = [(1u128, u64::MAX)];
        assert!(held_once(&[(1, 6), (1, 5)], &huge, &[]));
        assert!(!held_once(&[(1, 5), (1, 5)], &huge, &[]));
        assert!(!held_once(&[(1, 5), (2, 1)], &huge, &[]));
        assert!(!held_once(&[(1, 0)], &huge, &[]));
    }
}
