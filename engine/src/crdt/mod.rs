//! Pure lattice types. Each type has a state, local operations that mutate the
//! state and return a delta (itself a state), and a join that is commutative,
//! associative and idempotent. Joins keep states canonical (no empty entries,
//! compact contexts), so equal states have equal encodings. No I/O here.

mod counter;
mod orset;
mod register;
mod set;

pub use counter::{GCounter, PNCounter};
pub use orset::ORSet;
pub use register::{
    FirstWins, FwwRegister, LastWins, LwwRegister, MvRegister, Sibling, Stamped,
    TimestampedRegister, WinPolicy,
};
pub use set::{GSet, TwoPSet};

use bincode::{Decode, Encode};
use std::fmt;

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
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
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
            State::GSet(_) => true,
            State::TwoPSet(s) => s.is_canonical(),
            State::ORSet(s) => s.is_canonical(),
            State::LwwRegister(_) | State::FwwRegister(_) => true,
            State::MvRegister(s) => s.is_canonical(),
        }
    }

    /// Whether this is the bottom state (nothing ever happened).
    pub fn is_empty(&self) -> bool {
        *self == State::empty(self.crdt_type())
    }

    /// The largest hybrid-clock timestamp inside (registers only), so a
    /// replica that merges it can order its own later writes after it.
    pub fn max_timestamp(&self) -> Option<crate::causal::Timestamp> {
        match self {
            State::LwwRegister(r) => r.timestamp(),
            State::FwwRegister(r) => r.timestamp(),
            _ => None,
        }
    }
}
