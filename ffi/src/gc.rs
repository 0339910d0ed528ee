//! The collection of tombstones by causal stability and the membership it
//! waits for: `cvg_engine_collect`, `cvg_engine_tombstones` (what is
//! waiting, and on whom) and `cvg_engine_members`. The deletes themselves
//! are operations (`cvg_engine_delete` in `ops`, `cvg_batch_delete` in
//! `batch`); members are added, acknowledged and retired with the peer
//! calls of `feed` (`cvg_engine_register_peer`, `cvg_engine_acknowledge`,
//! `cvg_engine_remove_peer`), which work with the changes feed off.

use crate::bytes::{cvg_bytes_t, cvg_list_t, reference, required, write_out, Packed};
use crate::cvg_status_t;
use crate::engine::{cvg_engine_t, engine};
use crate::status::{ffi_boundary, Failure};
use engine::{codec, CollectReport, Engine};

/// What `cvg_engine_collect` did, or what `cvg_engine_tombstones` finds
/// now without collecting.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct cvg_collect_report_t {
    /// Tombstones collected (forgotten): every member had acknowledged
    /// their deletes. From `cvg_engine_tombstones`: how many could be.
    pub collected: u64,
    /// Of those, keys removed entirely (they read as absent: nothing
    /// outlived the delete). Their space is reclaimed by compaction.
    pub purged: u64,
    /// Tombstones whose deletes are not stable yet: some member (or this
    /// replica's own record) lacks one of them.
    pub waiting: u64,
    /// How many replicas hold collection back (the entries of the
    /// `cvg_blockers_t` list, when asked for).
    pub blockers: u64,
}

/// One replica holding collection back: a member whose acknowledged
/// context lacks a delete (or this replica itself, when its own record
/// lacks one: a delete received before operations it depends on).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct cvg_blocker_t {
    /// Its 16-byte replica id.
    pub replica: [u8; 16],
    /// How many tombstones wait for it.
    pub tombstones: u64,
}

/// The replicas holding collection back, by ascending replica id. Owned;
/// created by `cvg_engine_collect` or `cvg_engine_tombstones`, released by
/// `cvg_blockers_free`.
///
/// Thread safety: immutable. `cvg_blockers_len` and `cvg_blockers_get` may
/// run on any number of threads at once; `cvg_blockers_free` needs
/// exclusive access (no reader running) and may be called from any thread.
pub struct cvg_blockers_t {
    items: Vec<cvg_blocker_t>,
}

/// Write a report and its optional outputs.
///
/// # Safety
/// `report_out` is writable; the other outputs are NULL or writable.
unsafe fn report(
    r: &CollectReport,
    report_out: *mut cvg_collect_report_t,
    blockers_out: *mut *mut cvg_blockers_t,
    horizon_out: *mut cvg_bytes_t,
) {
    let head = cvg_collect_report_t {
        collected: r.collected,
        purged: r.purged,
        waiting: r.waiting,
        blockers: r.waiting_on.len() as u64,
    };
    // SAFETY: forwarded caller guarantees.
    unsafe {
        write_out(report_out, head);
        if !blockers_out.is_null() {
            let items = r
                .waiting_on
                .iter()
                .map(|(id, n)| cvg_blocker_t {
                    replica: id.to_bytes(),
                    tombstones: *n,
                })
                .collect();
            write_out(
                blockers_out,
                Box::into_raw(Box::new(cvg_blockers_t { items })),
            );
        }
        if !horizon_out.is_null() {
            let vv = codec::encode_vv(&r.horizon);
            write_out(horizon_out, cvg_bytes_t::from_vec(vv));
        }
    }
}

/// The body of `cvg_engine_collect` and `cvg_engine_tombstones`.
///
/// # Safety
/// As `cvg_engine_collect`.
unsafe fn scan(
    e: *const cvg_engine_t,
    report_out: *mut cvg_collect_report_t,
    blockers_out: *mut *mut cvg_blockers_t,
    horizon_out: *mut cvg_bytes_t,
    f: impl FnOnce(&Engine) -> engine::Result<CollectReport>,
) -> cvg_status_t {
    ffi_boundary!({
        let e = engine(e)?;
        required(report_out, "report_out")?;
        let r = f(&e)?;
        // SAFETY: checked non-NULL / NULL or writable.
        unsafe { report(&r, report_out, blockers_out, horizon_out) };
        Ok(())
    })
}

/// Collect the tombstones whose deletes every member has acknowledged:
/// each such key forgets its tombstone, and a key that reads as absent is
/// removed entirely (state, type, anti-entropy entry; compaction reclaims
/// the space). A delete is stable once this replica's record and the
/// context every member acknowledged (`cvg_engine_acknowledge`, fed by
/// `cvg_sync_acknowledged` or the changes feed's cursors) hold it: then
/// every replica holds the tombstone and nothing can bring the key back
/// (a collected key never returns through redelivered deltas, pages of
/// changes or anti-entropy; a peer restored from an old copy is refused
/// with `CVG_STATUS_BEHIND_HORIZON`). With no member registered, every
/// delete this replica holds is stable: register every replica that
/// shares the data before collecting.
///
/// `*report_out` says what was collected and what still waits; a member
/// that does not acknowledge (offline) holds collection back, visibly:
/// `*blockers_out` (optional: may be NULL; free with `cvg_blockers_free`)
/// lists the replicas waited on and how many tombstones wait for each.
/// `*horizon_out` (optional; free with `cvg_bytes_free`) receives the
/// deletes collected so far on this replica, an encoded version vector
/// (the format of `cvg_engine_version_vector`).
///
/// Keys are collected one atomic write at a time: a crash in the middle
/// leaves every key either collected or not. Safe at any time,
/// concurrently with writes and syncs; one collection runs at a time
/// (a second waits). `CVG_STATUS_POISONED` after a failed write.
///
/// # Safety
/// `engine` is NULL or a live handle; the outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_collect(
    engine: *const cvg_engine_t,
    report_out: *mut cvg_collect_report_t,
    blockers_out: *mut *mut cvg_blockers_t,
    horizon_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        scan(
            engine,
            report_out,
            blockers_out,
            horizon_out,
            Engine::collect,
        )
    }
}

/// What `cvg_engine_collect` would collect now, and what waits on whom,
/// without collecting anything: the same outputs (`collected` and
/// `purged` count what it would do). Reads only.
///
/// # Safety
/// `engine` is NULL or a live handle; the outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_tombstones(
    engine: *const cvg_engine_t,
    report_out: *mut cvg_collect_report_t,
    blockers_out: *mut *mut cvg_blockers_t,
    horizon_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        scan(
            engine,
            report_out,
            blockers_out,
            horizon_out,
            Engine::tombstones,
        )
    }
}

/// Number of entries (0 for NULL).
///
/// # Safety
/// `blockers` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn cvg_blockers_len(blockers: *const cvg_blockers_t) -> usize {
    // SAFETY: the caller passes NULL or a live list.
    ffi_boundary!(0 => { unsafe { blockers.as_ref() }.map_or(0, |b| b.items.len()) })
}

/// Entry `index` into `*blocker_out`. `CVG_STATUS_INVALID_ARGUMENT` if
/// `index` is not below `cvg_blockers_len(blockers)`.
///
/// # Safety
/// `blockers` is NULL or live; `blocker_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_blockers_get(
    blockers: *const cvg_blockers_t,
    index: usize,
    blocker_out: *mut cvg_blocker_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: the caller passes NULL or a live list.
        let b = unsafe { reference(blockers, "blockers") }?;
        required(blocker_out, "blocker_out")?;
        let item = b.items.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} out of range ({} blockers)",
                b.items.len()
            ))
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(blocker_out, *item) };
        Ok(())
    })
}

/// Free a list of blockers. The pointer is invalid after the call. NULL
/// is a no-op.
///
/// # Safety
/// `blockers` is NULL or live with no call running on it; it is not used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn cvg_blockers_free(blockers: *mut cvg_blockers_t) {
    ffi_boundary!(() => {
        if !blockers.is_null() {
            // SAFETY: created by Box::into_raw in `report`.
            drop(unsafe { Box::from_raw(blockers) });
        }
    })
}

/// The members: the replicas registered as sharing this replica's data
/// (`cvg_engine_register_peer`), whose acknowledgements collection waits
/// for. `*ids_out` is a list of their 16-byte replica ids in ascending
/// order; `*contexts_out` (optional: may be NULL) a list of the causal
/// contexts they acknowledged (encoded, as `cvg_engine_acknowledge` takes
/// them), item `i` of each list belonging to the same member. Free the lists with
/// `cvg_list_free`. Works with the changes feed off (unlike
/// `cvg_engine_feed_info`, which lists the same replicas as peers).
///
/// # Safety
/// `engine` is NULL or a live handle; the outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_members(
    engine: *const cvg_engine_t,
    ids_out: *mut *mut cvg_list_t,
    contexts_out: *mut *mut cvg_list_t,
) -> cvg_status_t {
    ffi_boundary!({
        let e = self::engine(engine)?;
        required(ids_out, "ids_out")?;
        let mut members = e.members();
        members.sort_by_key(|(id, _)| id.to_bytes());
        let mut ids = Packed::with_capacity(members.len(), 16 * members.len());
        for (id, _) in &members {
            ids.push(&id.to_bytes());
        }
        let list = |items: Packed| Box::into_raw(Box::new(cvg_list_t { items }));
        // SAFETY: checked non-NULL / NULL or writable.
        unsafe {
            write_out(ids_out, list(ids));
            if !contexts_out.is_null() {
                let mut ctxs = Packed::with_capacity(members.len(), 0);
                for (_, c) in &members {
                    ctxs.push(&codec::encode_context(c));
                }
                write_out(contexts_out, list(ctxs));
            }
        }
        Ok(())
    })
}
