//! Typed reads and key iteration. Reads return the value plus, where a later
//! write or remove needs it, the causal context of what was read.

use super::stored::{decode_stored, is_plain_state};
use super::types::parse_entry;
use super::{Engine, CF_STATE, CF_TYPES};
use crate::causal::CausalContext;
use crate::codec::encode_state;
use crate::crdt::{CrdtType, Sibling, Stamped, State};
use crate::error::{Error, Result};

/// A key's value, by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A G-Counter's or PN-Counter's value.
    Counter(i128),
    /// A set's members (G-Set, 2P-Set, OR-Set).
    Set(SetRead),
    /// An LWW or FWW register's winning write, if any.
    Register(Option<Stamped>),
    /// An MV register's siblings.
    Mv(MvRead),
}

/// Members of a set, in byte order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetRead {
    /// The members.
    pub members: Vec<Vec<u8>>,
    /// For an OR-Set, the adds observed: pass to a remove based on this
    /// read. Empty for other sets.
    pub context: CausalContext,
}

/// Siblings of an MV register.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MvRead {
    /// Concurrent values, ordered by dot (none if never written).
    pub siblings: Vec<Sibling>,
    /// Pass to the next write to replace these siblings.
    pub context: CausalContext,
}

impl Value {
    /// The value of a state.
    pub fn of(state: &State) -> Value {
        let members = |it: &mut dyn Iterator<Item = &[u8]>| it.map(|e| e.to_vec()).collect();
        match state {
            State::GCounter(c) => Value::Counter(c.value() as i128),
            State::PNCounter(c) => Value::Counter(c.value()),
            State::GSet(s) => Value::Set(SetRead {
                members: members(&mut s.members()),
                context: CausalContext::new(),
            }),
            State::TwoPSet(s) => Value::Set(SetRead {
                members: members(&mut s.members()),
                context: CausalContext::new(),
            }),
            State::ORSet(s) => Value::Set(SetRead {
                members: members(&mut s.members()),
                context: s.context().clone(),
            }),
            State::LwwRegister(r) => Value::Register(r.get().cloned()),
            State::FwwRegister(r) => Value::Register(r.get().cloned()),
            State::MvRegister(r) => Value::Mv(MvRead {
                siblings: r.siblings(),
                context: r.context().clone(),
            }),
        }
    }
}

impl Engine {
    /// The full state of `key`, or `None` if it was never written.
    /// `StateTooLarge` if the key holds more than the state size limit (a
    /// store written before the limit was enforced), `Corruption` if its
    /// bytes are damaged: either concerns this key only.
    pub fn state(&self, key: &[u8]) -> Result<Option<State>> {
        self.view(key, State::clone)
    }

    /// `f` of the state of `key`, `None` if it was never written (errors
    /// as for [`Engine::state`]). An OR-Set or MV-register state the last
    /// write left in the cache is the committed one: `f` reads it in
    /// place, which costs less than a read and decode (and than a copy:
    /// the typed reads take only what they return).
    fn view<R>(&self, key: &[u8], f: impl FnOnce(&State) -> R) -> Result<Option<R>> {
        let f = match self.types.view_state(key, f) {
            Ok(r) => return Ok(Some(r)),
            Err(f) => f,
        };
        match self.db.get_pinned_cf(self.cf(CF_STATE)?, key)? {
            Some(b) => Ok(Some(f(&decode_stored(key, &b)?))),
            None => Ok(None),
        }
    }

    /// The encoded full state of `key` (what a peer passes to `merge`).
    /// `StateTooLarge` as for [`Engine::state`].
    pub fn state_bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.db.get_cf(self.cf(CF_STATE)?, key)? {
            Some(b) if !is_plain_state(&b) => {
                decode_stored(key, &b).map(|s| Some(encode_state(&s)))
            }
            other => Ok(other),
        }
    }

    /// The CRDT type of `key`, or `None` if it was never written or reads
    /// as absent (deleted).
    pub fn key_type(&self, key: &[u8]) -> Result<Option<CrdtType>> {
        match self.db.get_pinned_cf(self.cf(CF_TYPES)?, key)? {
            Some(b) => {
                let m = parse_entry(&b)?;
                if m.tomb && self.view(key, State::is_absent)?.unwrap_or(true) {
                    return Ok(None);
                }
                Ok(Some(m.ty))
            }
            None => Ok(None),
        }
    }

    /// The value of `key`, whatever its type; `None` if never written or
    /// deleted (absent: see [`Engine::delete`]). A key whose set is empty
    /// or whose counter is zero is present: `Some`.
    pub fn read(&self, key: &[u8]) -> Result<Option<Value>> {
        Ok(self
            .view(key, |s| (!s.is_absent()).then(|| Value::of(s)))?
            .flatten())
    }

    /// A session read: wait until this replica holds `at_least` (a token:
    /// see [`Engine::wait_for`]; `timeout` as there), then read `key`.
    /// Returns the value and the context it was read at: keep the join of
    /// these tokens and pass it to the next read, on any replica, for
    /// monotonic reads.
    pub fn read_session(
        &self,
        key: &[u8],
        at_least: &CausalContext,
        timeout: Option<std::time::Duration>,
    ) -> Result<(Option<Value>, CausalContext)> {
        self.wait_for(at_least, timeout)?;
        // The record only grows and is published after the data, so the
        // read sees at least what this context lists.
        let ctx = self.context();
        Ok((self.read(key)?, ctx))
    }

    /// The value of `key` if its state has one of `allowed` types; the
    /// value of the bottom of `allowed[0]` if never written;
    /// `WrongReadType` (saying what the read reads: `expected`) otherwise.
    fn typed_value(
        &self,
        key: &[u8],
        allowed: &[CrdtType],
        expected: &'static str,
    ) -> Result<Value> {
        let value = |s: &State| match s.crdt_type() {
            t if allowed.contains(&t) => Ok(Value::of(s)),
            stored => Err(Error::WrongReadType { stored, expected }),
        };
        self.view(key, value)?
            .unwrap_or_else(|| Ok(Value::of(&State::empty(allowed[0]))))
    }

    /// Value of a G-Counter or PN-Counter (0 if never written).
    pub fn counter_value(&self, key: &[u8]) -> Result<i128> {
        match self.typed_value(
            key,
            &[CrdtType::PNCounter, CrdtType::GCounter],
            "a counter (G-Counter or PN-Counter)",
        )? {
            Value::Counter(v) => Ok(v),
            _ => Err(Error::Corruption("counter state expected".into())),
        }
    }

    /// Members of a G-Set, 2P-Set or OR-Set (empty if never written).
    pub fn set_members(&self, key: &[u8]) -> Result<SetRead> {
        let allowed = [CrdtType::ORSet, CrdtType::GSet, CrdtType::TwoPSet];
        let expected = "a set (G-Set, 2P-Set or OR-Set)";
        match self.typed_value(key, &allowed, expected)? {
            Value::Set(s) => Ok(s),
            _ => Err(Error::Corruption("set state expected".into())),
        }
    }

    /// Winning write of an LWW or FWW register (`None` if never written).
    pub fn register(&self, key: &[u8]) -> Result<Option<Stamped>> {
        let allowed = [CrdtType::LwwRegister, CrdtType::FwwRegister];
        let expected = "a register (LWW or FWW)";
        match self.typed_value(key, &allowed, expected)? {
            Value::Register(r) => Ok(r),
            _ => Err(Error::Corruption("register state expected".into())),
        }
    }

    /// Siblings and context of an MV register (none if never written).
    pub fn mv_read(&self, key: &[u8]) -> Result<MvRead> {
        match self.typed_value(key, &[CrdtType::MvRegister], "an MV register")? {
            Value::Mv(m) => Ok(m),
            _ => Err(Error::Corruption("mv register state expected".into())),
        }
    }

    /// Keys starting with `prefix` (all keys for an empty prefix), in byte
    /// order, with their types; keys that read as absent (deleted) are
    /// skipped. Sees a consistent snapshot.
    pub fn keys(&self, prefix: &[u8]) -> Result<KeyIter<'_>> {
        self.key_iter(prefix, false)
    }

    /// Every key starting with `prefix` that has a stored state, including
    /// keys that read as absent: their tombstones are states a peer needs
    /// (for example when copying full states by hand; anti-entropy finds
    /// them by itself).
    pub fn stored_keys(&self, prefix: &[u8]) -> Result<KeyIter<'_>> {
        self.key_iter(prefix, true)
    }

    fn key_iter(&self, prefix: &[u8], with_absent: bool) -> Result<KeyIter<'_>> {
        let snap = self.db.snapshot();
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_snapshot(&snap);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_TYPES)?, ro);
        it.seek(prefix);
        Ok(KeyIter {
            it,
            snap,
            state_cf: self.cf(CF_STATE)?,
            prefix: prefix.to_vec(),
            with_absent,
            done: false,
        })
    }
}

/// Iterator over keys and their types; see [`Engine::keys`].
pub struct KeyIter<'a> {
    it: rocksdb::DBRawIteratorWithThreadMode<'a, rocksdb::DB>,
    /// The snapshot the types iterator reads, for the states of keys a
    /// delete reached.
    snap: rocksdb::SnapshotWithThreadMode<'a, rocksdb::DB>,
    state_cf: &'a rocksdb::ColumnFamily,
    prefix: Vec<u8>,
    with_absent: bool,
    done: bool,
}

impl KeyIter<'_> {
    /// Whether a key whose entry flags a tombstone reads as absent.
    fn absent(&self, key: &[u8]) -> Result<bool> {
        match self.snap.get_pinned_cf(self.state_cf, key)? {
            Some(b) => Ok(decode_stored(key, &b)?.is_absent()),
            None => Ok(true),
        }
    }
}

impl Iterator for KeyIter<'_> {
    type Item = Result<(Vec<u8>, CrdtType)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if !self.it.valid() {
                self.done = true;
                return self.it.status().err().map(|e| Err(e.into()));
            }
            let key = self.it.key()?;
            if !key.starts_with(&self.prefix) {
                self.done = true;
                return None;
            }
            let key = key.to_vec();
            let out = match self.it.value() {
                Some(v) => parse_entry(v),
                None => Err(Error::Corruption("stored type entry is missing".into())),
            };
            let out = match out {
                // A key a delete reached: listed unless it reads as absent.
                Ok(m) if m.tomb && !self.with_absent => match self.absent(&key) {
                    Ok(true) => {
                        self.it.next();
                        continue;
                    }
                    Ok(false) => Ok((key, m.ty)),
                    Err(e) => Err(e),
                },
                Ok(m) => Ok((key, m.ty)),
                Err(e) => Err(e),
            };
            // The first error ends the iteration.
            self.done = out.is_err();
            self.it.next();
            return Some(out);
        }
    }
}
