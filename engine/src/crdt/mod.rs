//! Pure lattice types. Each type has a state, local operations that mutate the
//! state and return a delta (itself a state), and a join that is commutative,
//! associative and idempotent. Joins keep states canonical (no empty entries,
//! compact contexts), so equal states have equal encodings. No I/O here.

mod counter;
pub(crate) mod dots;
mod orset;
mod register;
mod set;

pub use counter::{GCounter, PNCounter};
pub use orset::ORSet;
pub use register::{
    DeleteStamp, FirstWins, FwwRegister, LastWins, LwwRegister, MvRegister, Sibling, Stamped,
    TimestampedRegister, WinPolicy,
};
pub use set::{GSet, TwoPSet};

use bincode::{Decode, Encode};
use std::fmt;

/// A tombstone held out of line: states that never saw a delete (nearly
/// all) pay one pointer for it, and `State` stays small. Never holds the
/// empty tombstone (`get_mut` is only used to set something).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Boxed<T>(Option<Box<T>>);

/// A type with a shared empty value.
pub(crate) trait Empty: Default + PartialEq + 'static {
    fn empty() -> &'static Self;
}

impl<T: Empty> Boxed<T> {
    /// The value, or the empty one.
    pub(crate) fn get(&self) -> &T {
        self.0.as_deref().unwrap_or(T::empty())
    }

    /// The value, made if there was none (to set something in it).
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Default::default)
    }

    /// Whether there is a (non-empty) value.
    pub(crate) fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// Drop the value.
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }

    /// Take the value out (the empty one if none).
    pub(crate) fn take(&mut self) -> T {
        self.0.take().map(|b| *b).unwrap_or_default()
    }

    /// Hold `t` (nothing if it is empty).
    pub(crate) fn from(t: T) -> Boxed<T> {
        Boxed((t != T::default()).then(|| Box::new(t)))
    }
}

/// A join-semilattice.
pub trait Lattice {
    /// Merge `other` into `self`: least upper bound.
    fn join(&mut self, other: &Self);
}

/// The CRDT type of a key. The numeric tags are persisted and on the wire;
/// a retired tag is never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
#[repr(u8)]
pub enum CrdtType {
    /// Grow-only counter.
    GCounter = 1,
    /// Counter with increments and decrements.
    PNCounter = 2,
    /// Grow-only set.
    GSet = 3,
    /// Two-phase set: an element removed never comes back.
    TwoPSet = 4,
    /// Observed-remove set, add wins.
    ORSet = 5,
    /// Last-writer-wins register on a hybrid logical clock.
    LwwRegister = 6,
    /// First-writer-wins register.
    FwwRegister = 7,
    /// Multi-value register with siblings.
    MvRegister = 8,
}

impl CrdtType {
    /// Every type, in tag order.
    pub const ALL: [CrdtType; 8] = [
        CrdtType::GCounter,
        CrdtType::PNCounter,
        CrdtType::GSet,
        CrdtType::TwoPSet,
        CrdtType::ORSet,
        CrdtType::LwwRegister,
        CrdtType::FwwRegister,
        CrdtType::MvRegister,
    ];

    /// The persisted tag.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The type with this tag, if any.
    pub fn from_tag(tag: u8) -> Option<CrdtType> {
        CrdtType::ALL.iter().copied().find(|t| t.tag() == tag)
    }

    /// The type's name with its article, for messages: "a G-Counter",
    /// "an OR-Set", "an MV register", …
    pub fn with_article(self) -> &'static str {
        match self {
            CrdtType::GCounter => "a G-Counter",
            CrdtType::PNCounter => "a PN-Counter",
            CrdtType::GSet => "a G-Set",
            CrdtType::TwoPSet => "a 2P-Set",
            CrdtType::ORSet => "an OR-Set",
            CrdtType::LwwRegister => "an LWW register",
            CrdtType::FwwRegister => "an FWW register",
            CrdtType::MvRegister => "an MV register",
        }
    }

    /// Lower-case name, as used by the CLI and bindings.
    pub fn name(self) -> &'static str {
        match self {
            CrdtType::GCounter => "gcounter",
            CrdtType::PNCounter => "pncounter",
            CrdtType::GSet => "gset",
            CrdtType::TwoPSet => "2pset",
            CrdtType::ORSet => "orset",
            CrdtType::LwwRegister => "lww",
            CrdtType::FwwRegister => "fww",
            CrdtType::MvRegister => "mvreg",
        }
    }
}

impl fmt::Display for CrdtType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The state of one key: one of the CRDT types.
///
/// Encoding (FORMAT.md §3): the type's variant index (0–7, in tag order),
/// then its fields; a state that has seen a delete uses index 8–15 and
/// appends its tombstone, so states that were never deleted encode as
/// before deletes existed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// A G-Counter.
    GCounter(GCounter),
    /// A PN-Counter.
    PNCounter(PNCounter),
    /// A G-Set.
    GSet(GSet),
    /// A 2P-Set.
    TwoPSet(TwoPSet),
    /// An OR-Set.
    ORSet(ORSet),
    /// An LWW register.
    LwwRegister(LwwRegister),
    /// An FWW register.
    FwwRegister(FwwRegister),
    /// An MV register.
    MvRegister(MvRegister),
}

/// Two states of different types cannot be joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeMismatch {
    /// The type of the state joined into.
    pub expected: CrdtType,
    /// The type of the state offered.
    pub found: CrdtType,
}

impl State {
    /// About how much a join with this state costs: the elements of a set,
    /// 0 for the other types.
    pub(crate) fn weight(&self) -> usize {
        match self {
            State::ORSet(s) => s.len(),
            State::GSet(s) => s.len(),
            _ => 0,
        }
    }

    /// The bottom (empty) state of a type.
    pub fn empty(t: CrdtType) -> State {
        match t {
            CrdtType::GCounter => State::GCounter(GCounter::default()),
            CrdtType::PNCounter => State::PNCounter(PNCounter::default()),
            CrdtType::GSet => State::GSet(GSet::default()),
            CrdtType::TwoPSet => State::TwoPSet(TwoPSet::default()),
            CrdtType::ORSet => State::ORSet(ORSet::default()),
            CrdtType::LwwRegister => State::LwwRegister(LwwRegister::default()),
            CrdtType::FwwRegister => State::FwwRegister(FwwRegister::default()),
            CrdtType::MvRegister => State::MvRegister(MvRegister::default()),
        }
    }

    /// This state's type.
    pub fn crdt_type(&self) -> CrdtType {
        match self {
            State::GCounter(_) => CrdtType::GCounter,
            State::PNCounter(_) => CrdtType::PNCounter,
            State::GSet(_) => CrdtType::GSet,
            State::TwoPSet(_) => CrdtType::TwoPSet,
            State::ORSet(_) => CrdtType::ORSet,
            State::LwwRegister(_) => CrdtType::LwwRegister,
            State::FwwRegister(_) => CrdtType::FwwRegister,
            State::MvRegister(_) => CrdtType::MvRegister,
        }
    }

    /// Join `other` into `self`, or report that their types differ (and
    /// change nothing).
    pub fn try_join(&mut self, other: &State) -> Result<(), TypeMismatch> {
        match (self, other) {
            (State::GCounter(a), State::GCounter(b)) => a.join(b),
            (State::PNCounter(a), State::PNCounter(b)) => a.join(b),
            (State::GSet(a), State::GSet(b)) => a.join(b),
            (State::TwoPSet(a), State::TwoPSet(b)) => a.join(b),
            (State::ORSet(a), State::ORSet(b)) => a.join(b),
            (State::LwwRegister(a), State::LwwRegister(b)) => a.join(b),
            (State::FwwRegister(a), State::FwwRegister(b)) => a.join(b),
            (State::MvRegister(a), State::MvRegister(b)) => a.join(b),
            (a, b) => {
                return Err(TypeMismatch {
                    expected: a.crdt_type(),
                    found: b.crdt_type(),
                })
            }
        }
        Ok(())
    }

    /// Whether the state is in canonical form (what every join produces).
    /// Decoders reject non-canonical states: they would break byte equality
    /// of converged replicas.
    pub fn is_canonical(&self) -> bool {
        match self {
            State::GCounter(s) => s.is_canonical(),
            State::PNCounter(s) => s.is_canonical(),
            State::GSet(s) => s.is_canonical(),
            State::TwoPSet(s) => s.is_canonical(),
            State::ORSet(s) => s.is_canonical(),
            State::LwwRegister(s) => s.is_canonical(),
            State::FwwRegister(s) => s.is_canonical(),
            State::MvRegister(s) => s.is_canonical(),
        }
    }

    /// Delete the key, removing what `observed` (the state the caller read;
    /// of this state's type) holds; registers are deleted at `ts` instead.
    /// Returns the delta. Per type (ARCHITECTURE.md, "Deletes"): counters
    /// reset-remove the observed increments, OR-Set and MV register remove
    /// the observed adds and writes, G-Set and 2P-Set remove the observed
    /// elements, LWW writes a timestamped tombstone, FWW starts an epoch.
    pub fn delete(
        &mut self,
        observed: &State,
        ts: crate::causal::Timestamp,
        replica: crate::causal::ReplicaId,
    ) -> Result<State, TypeMismatch> {
        Ok(match (self, observed) {
            (State::GCounter(a), State::GCounter(o)) => State::GCounter(a.delete(o)),
            (State::PNCounter(a), State::PNCounter(o)) => State::PNCounter(a.delete(o)),
            (State::GSet(a), State::GSet(o)) => State::GSet(a.delete(o)),
            (State::TwoPSet(a), State::TwoPSet(o)) => State::TwoPSet(a.delete(o)),
            (State::ORSet(a), State::ORSet(o)) => State::ORSet(a.delete(o.context())),
            (State::LwwRegister(a), State::LwwRegister(_)) => {
                State::LwwRegister(a.delete(ts, replica))
            }
            (State::FwwRegister(a), State::FwwRegister(_)) => {
                State::FwwRegister(a.delete(ts, replica))
            }
            (State::MvRegister(a), State::MvRegister(o)) => {
                State::MvRegister(a.delete(o.context()))
            }
            (a, b) => {
                return Err(TypeMismatch {
                    expected: a.crdt_type(),
                    found: b.crdt_type(),
                })
            }
        })
    }

    /// Whether the key reads as absent: it was deleted and nothing the
    /// deletes did not observe happened since. Distinct from empty (a set
    /// whose elements were removed, a counter at zero).
    pub fn is_absent(&self) -> bool {
        match self {
            State::GCounter(s) => s.is_absent(),
            State::PNCounter(s) => s.is_absent(),
            State::GSet(s) => s.is_absent(),
            State::TwoPSet(s) => s.is_absent(),
            State::ORSet(s) => s.is_absent(),
            State::LwwRegister(s) => s.is_absent(),
            State::FwwRegister(s) => s.is_absent(),
            State::MvRegister(s) => s.is_absent(),
        }
    }

    /// Whether this is the delta of a delete (or a state a delete reached).
    pub(crate) fn is_delete(&self) -> bool {
        match self {
            State::GCounter(s) => s.is_delete(),
            State::PNCounter(s) => s.parts().0.is_delete(),
            State::GSet(s) => s.tomb().deleted,
            State::TwoPSet(s) => s.tomb().deleted,
            State::ORSet(s) => s.tomb().deleted,
            State::LwwRegister(s) => s.is_delete(),
            State::FwwRegister(s) => s.is_delete(),
            State::MvRegister(s) => s.tomb().deleted,
        }
    }

    /// Record that the delete with `dot` (origin, sequence number) was
    /// applied to this state: the collection rule waits until every
    /// replica has acknowledged it. The write path marks the delta of a
    /// local delete when its sequence number is assigned, and a peer's
    /// delete delta when it merges it.
    pub(crate) fn mark_delete(&mut self, dot: crate::causal::Dot) {
        let mark = |v: &mut crate::causal::VersionVector| v.observe(dot.replica, dot.counter);
        match self {
            State::GCounter(s) => mark(s.dels_mut()),
            State::PNCounter(s) => {
                let (i, d) = s.halves_mut();
                mark(i.dels_mut());
                mark(d.dels_mut());
            }
            State::GSet(s) => mark(&mut s.tomb_mut().dels),
            State::TwoPSet(s) => mark(&mut s.tomb_mut().dels),
            State::ORSet(s) => mark(&mut s.tomb_mut().dels),
            State::LwwRegister(s) => mark(s.dels_mut()),
            State::FwwRegister(s) => mark(s.dels_mut()),
            State::MvRegister(s) => mark(&mut s.tomb_mut().dels),
        }
    }

    /// The deletes applied to this state: per origin, the largest
    /// sequence number (empty if none).
    pub fn deletes(&self) -> &crate::causal::VersionVector {
        match self {
            State::GCounter(s) => s.dels(),
            State::PNCounter(s) => s.parts().0.dels(),
            State::GSet(s) => &s.tomb().dels,
            State::TwoPSet(s) => &s.tomb().dels,
            State::ORSet(s) => &s.tomb().dels,
            State::LwwRegister(s) => s.dels(),
            State::FwwRegister(s) => s.dels(),
            State::MvRegister(s) => &s.tomb().dels,
        }
    }

    /// Forget the tombstone, once every replica has seen the deletes (see
    /// `Engine::collect`): what the deletes removed goes with it, what
    /// outlived them stays. Returns `false` if nothing stays (the key is
    /// purged).
    pub(crate) fn collect(&mut self) -> bool {
        let absent = self.is_absent();
        match self {
            State::GCounter(s) => s.collect(),
            State::PNCounter(s) => {
                let (i, d) = s.halves_mut();
                i.collect();
                d.collect();
            }
            State::GSet(s) => s.collect(),
            State::TwoPSet(s) => s.collect(),
            State::ORSet(s) => s.collect(),
            State::LwwRegister(s) => s.collect(),
            State::FwwRegister(s) => s.collect(),
            State::MvRegister(s) => s.collect(),
        }
        !absent && !self.is_empty()
    }

    /// The largest dot counter of `replica` in the state's context (OR-Set,
    /// MV register; 0 for the other types).
    pub(crate) fn own_dot_max(&self, replica: crate::causal::ReplicaId) -> u64 {
        let ctx = match self {
            State::ORSet(s) => s.context(),
            State::MvRegister(s) => s.context(),
            _ => return 0,
        };
        ctx.next_dot(replica).counter - 1
    }

    /// For a key this replica holds no state of: make its next dot (OR-Set,
    /// MV register) at least `floor + 1`, so that dots of a collected key
    /// are never issued again.
    pub(crate) fn seed_floor(&mut self, replica: crate::causal::ReplicaId, floor: u64) {
        match self {
            State::ORSet(s) => s.seed_floor(replica, floor),
            State::MvRegister(s) => s.seed_floor(replica, floor),
            _ => {}
        }
    }

    /// Whether the state holds a tombstone (a delete was applied to it).
    pub fn has_tomb(&self) -> bool {
        match self {
            State::GCounter(s) => s.has_tomb(),
            State::PNCounter(s) => s.has_tomb(),
            State::GSet(s) => s.has_tomb(),
            State::TwoPSet(s) => s.has_tomb(),
            State::ORSet(s) => s.has_tomb(),
            State::LwwRegister(s) => s.has_tomb(),
            State::FwwRegister(s) => s.has_tomb(),
            State::MvRegister(s) => s.has_tomb(),
        }
    }

    /// Whether this is the bottom state (nothing ever happened).
    pub fn is_empty(&self) -> bool {
        *self == State::empty(self.crdt_type())
    }

    /// The largest hybrid-clock timestamp inside (registers only), so a
    /// replica that merges it can order its own later writes after it.
    pub fn max_timestamp(&self) -> Option<crate::causal::Timestamp> {
        // (Registers: the write's or the delete's, whichever is later.)
        match self {
            State::LwwRegister(r) => r.timestamp(),
            State::FwwRegister(r) => r.timestamp(),
            _ => None,
        }
    }
}

/// Variant index of a state with a tombstone: its type's index plus this.
const TOMB_VARIANT: u32 = 8;

impl Encode for State {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        let tomb = self.has_tomb();
        let index = (self.crdt_type().tag() - 1) as u32 + if tomb { TOMB_VARIANT } else { 0 };
        index.encode(e)?;
        match self {
            State::GCounter(c) => {
                let (counts, t) = c.parts();
                counts.encode(e)?;
                if tomb {
                    t.encode(e)?;
                }
            }
            State::PNCounter(c) => {
                let (inc, dec) = c.parts();
                inc.parts().0.encode(e)?;
                dec.parts().0.encode(e)?;
                if tomb {
                    inc.parts().1.encode(e)?;
                    dec.parts().1.encode(e)?;
                }
            }
            State::GSet(s) => {
                let (elems, t) = s.parts();
                elems.encode(e)?;
                if tomb {
                    t.encode(e)?;
                }
            }
            State::TwoPSet(s) => {
                let (added, removed, t) = s.parts();
                added.encode(e)?;
                removed.encode(e)?;
                if tomb {
                    t.encode(e)?;
                }
            }
            State::ORSet(s) => {
                let (entries, ctx, t) = s.parts();
                entries.encode(e)?;
                ctx.encode(e)?;
                if tomb {
                    t.encode(e)?;
                }
            }
            State::LwwRegister(r) => {
                r.current().encode(e)?;
                if tomb {
                    r.tomb().encode(e)?;
                }
            }
            State::FwwRegister(r) => {
                r.current().encode(e)?;
                if tomb {
                    r.tomb().encode(e)?;
                }
            }
            State::MvRegister(r) => {
                let (values, ctx, t) = r.parts();
                values.encode(e)?;
                ctx.encode(e)?;
                if tomb {
                    t.encode(e)?;
                }
            }
        }
        Ok(())
    }
}

impl<C> Decode<C> for State {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let index = u32::decode(d)?;
        let tomb = index >= TOMB_VARIANT;
        let ty = u8::try_from(index % TOMB_VARIANT + 1)
            .ok()
            .filter(|_| index < 2 * TOMB_VARIANT)
            .and_then(CrdtType::from_tag)
            .ok_or(bincode::error::DecodeError::Other("unknown state variant"))?;
        // A tombstone part that decodes as "none" re-encodes without it:
        // the canonical-bytes check of full states rejects it.
        macro_rules! opt {
            ($t:ty) => {
                if tomb {
                    <$t>::decode(d)?
                } else {
                    <$t>::default()
                }
            };
        }
        Ok(match ty {
            CrdtType::GCounter => {
                let counts = Decode::decode(d)?;
                State::GCounter(GCounter::from_parts(counts, opt!(counter::CounterTomb)))
            }
            CrdtType::PNCounter => {
                let inc = Decode::decode(d)?;
                let dec = Decode::decode(d)?;
                let (ti, td) = if tomb {
                    (
                        counter::CounterTomb::decode(d)?,
                        counter::CounterTomb::decode(d)?,
                    )
                } else {
                    Default::default()
                };
                State::PNCounter(PNCounter::from_parts(
                    GCounter::from_parts(inc, ti),
                    GCounter::from_parts(dec, td),
                ))
            }
            CrdtType::GSet => {
                let elems = decode_collected::<Vec<u8>, _, _, _>(d)?;
                State::GSet(GSet::from_parts(elems, opt!(set::SetTomb)))
            }
            CrdtType::TwoPSet => {
                let added = decode_collected::<Vec<u8>, _, _, _>(d)?;
                let removed = decode_collected::<Vec<u8>, _, _, _>(d)?;
                State::TwoPSet(TwoPSet::from_parts(added, removed, opt!(set::SetTomb)))
            }
            CrdtType::ORSet => {
                let entries =
                    decode_collected::<(crate::shortkey::ShortKey, dots::Dots), _, _, _>(d)?;
                let ctx = Decode::decode(d)?;
                State::ORSet(ORSet::from_parts(entries, ctx, opt!(orset::CtxTomb)))
            }
            CrdtType::LwwRegister => {
                let current = Decode::decode(d)?;
                State::LwwRegister(LwwRegister::from_parts(current, opt!(register::RegTomb)))
            }
            CrdtType::FwwRegister => {
                let current = Decode::decode(d)?;
                State::FwwRegister(FwwRegister::from_parts(current, opt!(register::RegTomb)))
            }
            CrdtType::MvRegister => {
                let values = Decode::decode(d)?;
                let ctx = Decode::decode(d)?;
                State::MvRegister(MvRegister::from_parts(values, ctx, opt!(orset::CtxTomb)))
            }
        })
    }
}

bincode::impl_borrow_decode!(State);

/// A collection's length as bincode encodes it (a `u64`), as a `usize`.
pub(crate) fn decode_len<D: bincode::de::Decoder>(
    d: &mut D,
) -> Result<usize, bincode::error::DecodeError> {
    let len = u64::decode(d)?;
    usize::try_from(len).map_err(|_| bincode::error::DecodeError::OutsideUsizeRange(len))
}

/// A set or map decoded as the list of its items (the bytes bincode gives
/// either: a length, then each item; a map's item is its key, then its
/// value) and built in one pass. Encodings list items in order, and
/// `from_iter` builds sorted input without a search per item (measured:
/// BENCHMARKS.md); input out of order is sorted first, and of equal keys
/// the last is kept, so the result is the one inserting each item in turn
/// would give.
fn decode_collected<T, X, C, D>(d: &mut D) -> Result<X, bincode::error::DecodeError>
where
    T: Decode<C>,
    X: FromIterator<T>,
    D: bincode::de::Decoder<Context = C>,
{
    let items: Vec<T> = Decode::decode(d)?;
    Ok(items.into_iter().collect())
}

#[cfg(test)]
mod collected {
    use std::collections::BTreeMap;

    /// A map decoded through `decode_collected`.
    struct Collected(BTreeMap<Vec<u8>, u32>);

    impl<C> bincode::Decode<C> for Collected {
        fn decode<D: bincode::de::Decoder<Context = C>>(
            d: &mut D,
        ) -> Result<Self, bincode::error::DecodeError> {
            super::decode_collected::<(Vec<u8>, u32), _, _, _>(d).map(Collected)
        }
    }

    /// Items in order, out of order and repeated decode to the map that
    /// bincode's own map decoding (an insert per item) gives.
    #[test]
    fn collected_items_give_the_inserted_map() {
        let cfg = bincode::config::standard();
        for items in [
            vec![
                (b"a".to_vec(), 1u32),
                (b"b".to_vec(), 2),
                (b"c".to_vec(), 3),
            ],
            vec![(b"c".to_vec(), 1), (b"a".to_vec(), 2), (b"b".to_vec(), 3)],
            vec![(b"b".to_vec(), 1), (b"a".to_vec(), 2), (b"b".to_vec(), 3)],
            vec![],
        ] {
            let bytes = bincode::encode_to_vec(&items, cfg).unwrap();
            let (inserted, _): (BTreeMap<Vec<u8>, u32>, usize) =
                bincode::decode_from_slice(&bytes, cfg).unwrap();
            let (Collected(collected), _) = bincode::decode_from_slice(&bytes, cfg).unwrap();
            assert_eq!(collected, inserted, "{items:?}");
        }
    }
}

#[cfg(test)]
mod size {
    /// Tombstones are held out of line: a state that never saw a delete
    /// pays one pointer (the write path moves states around a lot).
    #[test]
    fn state_stays_small() {
        assert!(
            std::mem::size_of::<super::State>() <= 96,
            "{}",
            std::mem::size_of::<super::State>()
        );
    }
}
