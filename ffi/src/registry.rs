//! What a `cvg_engine_t *` is: a generation-tagged index into a
//! process-wide table of engine slots, and how a call holds its engine
//! while it runs (docs/C_API.md, "Thread safety", has the why).
//!
//! - A handle is never dereferenced. It encodes a slot index and the
//!   slot's generation at open. Slots live in chunks that are allocated on
//!   demand and never freed, so whatever value a caller passes (a live
//!   handle, a closed one, one closed long ago), the memory the library
//!   looks at stays valid; the generation tells a stale handle from the
//!   engine that reuses its slot.
//! - A slot's state word packs the generation, a closed bit and the number
//!   of calls in flight. A call enters with one compare-and-swap (only if
//!   the generation matches and the closed bit is clear), borrows the
//!   engine for its duration and leaves with one decrement.
//! - `cvg_engine_close` sets the closed bit: new calls get
//!   `CVG_STATUS_CLOSED`, calls already inside finish (a
//!   `cvg_engine_wait_for` is woken and returns `CVG_STATUS_CLOSED`, so a
//!   long wait does not hold the store open). Whoever brings the
//!   count of a closed slot to zero — the close itself when no call runs,
//!   else the last call to leave — takes the engine out, frees the slot
//!   under the next generation, and releases the engine.

use crate::status::Failure;
use engine::Engine;
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Low bits of a handle kept zero, so it is as aligned as a pointer to a
/// real struct would be (callers may tag the low bits of pointers).
const ALIGN_BITS: u32 = 3;

/// Bits of the slot index: at most `1 << INDEX_BITS` engines open at once.
#[cfg(target_pointer_width = "64")]
const INDEX_BITS: u32 = 16;
#[cfg(not(target_pointer_width = "64"))]
const INDEX_BITS: u32 = 10;

/// Bits of the generation: a slot must be reused this many times before a
/// stale handle to it could name a live engine again (slots are reused
/// first in, first out, so every slot of the table goes round first).
#[cfg(target_pointer_width = "64")]
const GEN_BITS: u32 = 32;
#[cfg(not(target_pointer_width = "64"))]
const GEN_BITS: u32 = usize::BITS - INDEX_BITS - ALIGN_BITS;

const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
/// The index field holds `index + 1` (0 is no slot), so one value fewer.
const MAX_SLOTS: usize = (1 << INDEX_BITS) - 1;
const CHUNK: usize = 64;
const CHUNKS: usize = (1 << INDEX_BITS) / CHUNK;

/// State word: generation in bits 63..32, the closed bit, the count of
/// calls in flight in bits 30..0.
const CLOSED: u64 = 1 << 31;
const COUNT_MASK: u64 = CLOSED - 1;

const _: () = assert!(ALIGN_BITS + INDEX_BITS + GEN_BITS <= usize::BITS && GEN_BITS <= 32);

fn generation(state: u64) -> u64 {
    state >> 32
}

fn count(state: u64) -> u64 {
    state & COUNT_MASK
}

/// One engine slot. `engine` is written only while the slot is free (under
/// the free-list lock, nobody can enter) or taken by the one party that
/// brought a closed slot's count to zero; it is read only by calls inside.
struct Slot {
    state: AtomicU64,
    engine: UnsafeCell<Option<Arc<Engine>>>,
}

// SAFETY: `engine` is accessed by the protocol above: shared reads while
// the count is positive and the slot open, exclusive writes only when no
// call can be inside (count zero with the closed bit set).
unsafe impl Sync for Slot {}

impl Slot {
    fn free() -> Slot {
        Slot {
            state: AtomicU64::new(CLOSED),
            engine: UnsafeCell::new(None),
        }
    }
}

static TABLE: [OnceLock<Box<[Slot]>>; CHUNKS] = [const { OnceLock::new() }; CHUNKS];

/// Free slots, reused first in, first out; `next` is the first slot never
/// used.
struct FreeList {
    queue: VecDeque<usize>,
    next: usize,
}

static FREE: Mutex<FreeList> = Mutex::new(FreeList {
    queue: VecDeque::new(),
    next: 0,
});

fn free_list() -> std::sync::MutexGuard<'static, FreeList> {
    // Nothing panics while holding it; a poisoned lock still holds a
    // consistent list.
    FREE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The slot at `index`, allocating its chunk.
fn slot_or_alloc(index: usize) -> &'static Slot {
    let chunk = TABLE[index / CHUNK].get_or_init(|| (0..CHUNK).map(|_| Slot::free()).collect());
    &chunk[index % CHUNK]
}

/// The slot at `index` if its chunk exists (a handle naming another never
/// came from `register`).
fn slot(index: usize) -> Option<&'static Slot> {
    Some(&TABLE.get(index / CHUNK)?.get()?[index % CHUNK])
}

fn encode(index: usize, gen: u64) -> usize {
    // Fits: the bit budget is checked at compile time.
    (((gen as usize) << INDEX_BITS) | (index + 1)) << ALIGN_BITS
}

/// The slot index and generation a handle value names, or None if no
/// handle ever has this value.
fn decode(value: usize) -> Option<(usize, u64)> {
    if value & ((1 << ALIGN_BITS) - 1) != 0 {
        return None;
    }
    let v = value >> ALIGN_BITS;
    let index = (v & MAX_SLOTS).checked_sub(1)?;
    let gen = (v >> INDEX_BITS) as u64;
    (gen <= GEN_MASK).then_some((index, gen))
}

fn closed() -> Failure {
    Failure::new(
        crate::cvg_status_t::CVG_STATUS_CLOSED,
        "the engine handle is closed",
    )
}

/// Put `engine` in a free slot and return its handle value.
pub(crate) fn register(engine: Engine) -> Result<usize, Failure> {
    let mut free = free_list();
    let index = match free.queue.pop_front() {
        Some(i) => i,
        None if free.next < MAX_SLOTS => {
            free.next += 1;
            free.next - 1
        }
        None => {
            return Err(Failure::invalid(format!(
                "too many engines open at once (the limit is {MAX_SLOTS})"
            )))
        }
    };
    let slot = slot_or_alloc(index);
    let state = slot.state.load(Ordering::Acquire);
    debug_assert!(state & CLOSED != 0 && count(state) == 0);
    // SAFETY: the slot is free (closed, no call inside, none can enter),
    // and free slots are handed out under the lock we hold.
    unsafe { *slot.engine.get() = Some(Arc::new(engine)) };
    let gen = generation(state);
    slot.state.store(gen << 32, Ordering::Release);
    Ok(encode(index, gen))
}

/// A call in flight on an engine: derefs to it; leaving (drop) may close
/// the engine if it was closed meanwhile and this was the last call.
pub(crate) struct Guard {
    slot: &'static Slot,
    index: usize,
    engine: *const Arc<Engine>,
}

/// Enter a call on the engine named by `value`: `CVG_STATUS_CLOSED` if it
/// was closed, `CVG_STATUS_INVALID_ARGUMENT` if no handle ever had this
/// value.
pub(crate) fn enter(value: usize) -> Result<Guard, Failure> {
    let (index, gen) =
        decode(value).ok_or_else(|| Failure::invalid("engine is not an engine handle"))?;
    let slot = slot(index).ok_or_else(|| Failure::invalid("engine is not an engine handle"))?;
    let mut cur = slot.state.load(Ordering::Acquire);
    loop {
        if generation(cur) != gen || cur & CLOSED != 0 {
            return Err(closed());
        }
        if count(cur) == COUNT_MASK {
            return Err(Failure::invalid("too many calls in flight on one engine"));
        }
        match slot
            .state
            .compare_exchange_weak(cur, cur + 1, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    // SAFETY: the slot is open and we are counted in: the engine is in
    // place and stays there until we leave.
    let engine = match unsafe { (*slot.engine.get()).as_ref() } {
        Some(e) => e as *const Arc<Engine>,
        None => {
            // Unreachable by the protocol; leave cleanly all the same.
            drop(Guard {
                slot,
                index,
                engine: std::ptr::null(),
            });
            return Err(closed());
        }
    };
    Ok(Guard {
        slot,
        index,
        engine,
    })
}

impl Guard {
    /// The engine as shared ownership, for children that keep it alive.
    pub(crate) fn arc(&self) -> &Arc<Engine> {
        // SAFETY: non-NULL for every guard handed out by `enter`; valid
        // while we are counted in, which lasts as long as `self`.
        unsafe { &*self.engine }
    }
}

impl std::ops::Deref for Guard {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        self.arc()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let prev = self.slot.state.fetch_sub(1, Ordering::AcqRel);
        if prev & CLOSED != 0 && count(prev) == 1 {
            // Closed while we ran, and we are the last call out: the close
            // is ours to finish. Its status has nobody to go to.
            if let Some(e) = release(self.slot, self.index, generation(prev)) {
                let _ = finish(e);
            }
        }
    }
}

/// How a `close` went.
pub(crate) enum Closing {
    /// No call was running: the engine is out of the table, for the caller
    /// to close.
    Now(Arc<Engine>),
    /// Calls are running: the last of them closes the engine as it leaves.
    Deferred,
}

/// Mark the engine named by `value` closed and interrupt its waits:
/// `CVG_STATUS_CLOSED` if it already was (or never existed with this
/// generation).
pub(crate) fn close(value: usize) -> Result<Closing, Failure> {
    // Counted in like a call, so the engine stays in place while its waits
    // are interrupted.
    let guard = enter(value)?;
    let mut cur = guard.slot.state.load(Ordering::Acquire);
    loop {
        if cur & CLOSED != 0 {
            // Another close won the race; leaving may finish it.
            return Err(closed());
        }
        match guard.slot.state.compare_exchange_weak(
            cur,
            cur | CLOSED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    guard.interrupt_waits();
    // Leave by hand: if we are the last call out, the close is ours.
    let (slot, index) = (guard.slot, guard.index);
    std::mem::forget(guard);
    let prev = slot.state.fetch_sub(1, Ordering::AcqRel);
    if count(prev) > 1 {
        return Ok(Closing::Deferred);
    }
    release(slot, index, generation(prev)).map_or(Err(closed()), |e| Ok(Closing::Now(e)))
}

/// Take the engine out of a closed slot with no call inside, and free the
/// slot under the next generation.
fn release(slot: &'static Slot, index: usize, gen: u64) -> Option<Arc<Engine>> {
    // SAFETY: the slot is closed and its count is zero: no call is inside
    // and none can enter; only the one party that saw the count reach zero
    // gets here.
    let engine = unsafe { (*slot.engine.get()).take() };
    let next = (gen + 1) & GEN_MASK;
    let mut free = free_list();
    slot.state.store((next << 32) | CLOSED, Ordering::Release);
    free.queue.push_back(index);
    engine
}

/// Close an engine taken out of the table: persist the tree and close
/// RocksDB if this was the last reference, else `Ok(false)` (key iterators
/// or sync sessions hold it; the last of them to go closes it).
pub(crate) fn finish(e: Arc<Engine>) -> Result<bool, engine::Error> {
    match Arc::try_unwrap(e) {
        Ok(engine) => engine.close().map(|()| true),
        Err(_shared) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_garbage_is_refused() {
        for (index, gen) in [(0, 0), (1, 7), (MAX_SLOTS - 1, GEN_MASK)] {
            let v = encode(index, gen);
            assert_ne!(v, 0);
            assert_eq!(v % (1 << ALIGN_BITS), 0);
            assert_eq!(decode(v), Some((index, gen)));
        }
        assert_eq!(decode(1), None, "misaligned");
        assert_eq!(decode(0), None, "index 0 means no slot");
    }

    #[test]
    fn state_word_fields_do_not_overlap() {
        let s = (GEN_MASK << 32) | CLOSED | COUNT_MASK;
        assert_eq!(generation(s), GEN_MASK);
        assert_eq!(count(s), COUNT_MASK);
        assert_eq!(count(CLOSED | 5), 5);
    }
}
