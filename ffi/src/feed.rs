//! Causal delivery and the changes feed: what the pending area holds, pages
//! of changes from a causal cursor and their application, the state of the
//! feed's log and the peers it is kept for.
//!
//! Cursors are encoded causal contexts, the same bytes as session tokens
//! (`token.rs`): a peer's `cvg_engine_context`, the `next` cursor of the
//! previous page, or `(NULL, 0)` for "nothing yet". Pages are opaque
//! encoded bytes (FORMAT.md, kind 9). Peers are named by their 16-byte
//! replica ids, as `cvg_options_set_replica_id` takes them.

use crate::bytes::{cvg_bytes_t, cvg_list_t, input, required, write_out, Packed};
use crate::cvg_status_t;
use crate::engine::{cvg_engine_t, engine};
use crate::status::{ffi_boundary, Failure};
use crate::token::{token_arg, write_token};
use engine::{codec, Delivery, ReplicaId};
use std::ffi::{c_char, CStr};

/// What the pending area holds (`cvg_engine_pending`): deltas and pages of
/// changes received before their causal dependencies, invisible until
/// those arrive.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct cvg_pending_info_t {
    /// Entries waiting (a delta, or a page of changes).
    pub entries: u64,
    /// Their encoded size in bytes.
    pub bytes: u64,
    /// How many operations of what they need this replica lacks (0 while
    /// entries wait: they are `stuck`, or being applied by a concurrent
    /// call).
    pub missing: u64,
    /// Entries whose dependencies are met but that cannot be applied
    /// (their state would pass `CVG_MAX_STATE_LEN`, or their key holds
    /// another type); entries that depend on them keep waiting.
    pub stuck: u64,
}

/// The state of the changes feed (`cvg_engine_feed_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct cvg_feed_info_t {
    /// The oldest sequence number the log retains: a cursor that lacks an
    /// older operation of this replica gets `CVG_STATUS_CURSOR_TOO_OLD`.
    /// The log holds `floor..=last` (empty when `floor` is `last + 1`).
    pub floor: u64,
    /// The last sequence number this replica issued.
    pub last: u64,
    /// Bytes the log holds.
    pub bytes: u64,
    /// Number of registered peers (`cvg_engine_register_peer`).
    pub peers: u64,
}

/// What `cvg_engine_apply_changes` did with a page: one of the
/// `CVG_DELIVERY_*` values; `cvg_delivery_name` names it.
pub type cvg_delivery_t = u8;
/// The page's effects are visible and its operations in the replica's
/// record.
pub const CVG_DELIVERY_APPLIED: cvg_delivery_t = 0;
/// The page waits in the pending area for operations it depends on; it
/// is applied, atomically, once they arrive (by merges, pages or an
/// anti-entropy session).
pub const CVG_DELIVERY_PENDING: cvg_delivery_t = 1;
/// The replica already held every operation of the page: nothing changed.
pub const CVG_DELIVERY_DUPLICATE: cvg_delivery_t = 2;

fn delivery(d: Delivery) -> cvg_delivery_t {
    match d {
        Delivery::Applied => CVG_DELIVERY_APPLIED,
        Delivery::Pending => CVG_DELIVERY_PENDING,
        Delivery::Duplicate => CVG_DELIVERY_DUPLICATE,
    }
}

/// The lower-case name of a delivery as a static NUL-terminated string:
/// `"applied"`, `"pending"`, `"duplicate"`, or `"unknown"` for a number
/// that is no `CVG_DELIVERY_*` value. Never NULL; do not free.
/// Thread-safe; leaves the last error message alone.
#[no_mangle]
pub extern "C" fn cvg_delivery_name(delivery: cvg_delivery_t) -> *const c_char {
    ffi_boundary!(c"unknown".as_ptr() => {
        let name: &'static CStr = match delivery {
            CVG_DELIVERY_APPLIED => c"applied",
            CVG_DELIVERY_PENDING => c"pending",
            CVG_DELIVERY_DUPLICATE => c"duplicate",
            _ => c"unknown",
        };
        name.as_ptr()
    })
}

/// Decode a peer's replica id argument: exactly 16 bytes.
///
/// # Safety
/// `ptr` points to `len` readable bytes (or `len` is 0).
unsafe fn peer_arg(ptr: *const u8, len: usize) -> Result<ReplicaId, Failure> {
    // SAFETY: forwarded caller guarantee.
    let b: [u8; 16] = unsafe { input(ptr, len, "peer") }?
        .try_into()
        .map_err(|_| Failure::invalid(format!("peer id has {len} bytes, not 16")))?;
    Ok(ReplicaId::from_bytes(b))
}

/// What the pending area holds, into `*info_out`; `*needed_out`
/// (optional: may be NULL; free with `cvg_bytes_free`) receives the join
/// of what the entries need, as a token: once this replica holds all of
/// it (`cvg_engine_token_missing` gives 0), every entry has been applied,
/// except the stuck ones. Ask the peers for those operations, or run an
/// anti-entropy session.
///
/// A delta (`cvg_engine_merge`, `cvg_batch_merge`, ...) or a page
/// (`cvg_engine_apply_changes`) whose dependencies this replica does not
/// hold is kept in the pending area, in the same atomic write, and
/// persisted: it survives a restart. It becomes visible, atomically, as
/// soon as they arrive, in causal order.
///
/// # Safety
/// `engine` is NULL or a live handle; `info_out` is NULL or writable;
/// `needed_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_pending(
    engine: *const cvg_engine_t,
    info_out: *mut cvg_pending_info_t,
    needed_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let e = self::engine(engine)?;
        required(info_out, "info_out")?;
        let p = e.pending();
        let info = cvg_pending_info_t {
            entries: p.entries,
            bytes: p.bytes,
            missing: p.missing,
            stuck: p.stuck,
        };
        // SAFETY: checked non-NULL / NULL or writable.
        unsafe {
            write_out(info_out, info);
            if !needed_out.is_null() {
                write_token(needed_out, &p.needed);
            }
        }
        Ok(())
    })
}

/// One page of the changes feed: the operations of this replica that
/// `cursor` lacks, at most `limit` of them (and at most 16 MiB of log),
/// oldest first, coalesced into one state per key.
///
/// `cursor` is what the peer holds, as an encoded causal context: its
/// `cvg_engine_context`, the `next` of the previous page, or what it
/// acknowledged; `(NULL, 0)` is the empty cursor (everything).
/// On success:
/// - `*page_out` holds the page to ship to the peer, which passes it to
///   `cvg_engine_apply_changes`; `{NULL, 0}` when the cursor lacks
///   nothing. Free it with `cvg_bytes_free`.
/// - `*next_out` holds the cursor to ask from next: `cursor` plus the
///   page's operations (free it with `cvg_bytes_free`).
/// - `*operations_out` (optional: may be NULL) how many operations the
///   page carries; `*more_out` (optional) whether the log holds more that
///   `next` lacks (ask again at once).
///
/// The feed ships this replica's own operations only: each replica is the
/// authority for its operations, and a peer receives the others' from
/// them (or by anti-entropy). Failures: `CVG_STATUS_CURSOR_TOO_OLD` when
/// the cursor lacks an operation the log no longer holds (run an
/// anti-entropy session with the peer, then continue from its record);
/// `CVG_STATUS_CORRUPT_INPUT` when the cursor does not decode;
/// `CVG_STATUS_INVALID_ARGUMENT` when it claims operations of this
/// replica it has not issued (forged, or this replica lost them), when
/// `limit` is 0, or when the feed is off
/// (`cvg_options_set_changes_feed`).
///
/// # Safety
/// `engine` is NULL or a live handle; `cursor` points to `cursor_len`
/// bytes; the outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_changes_since(
    engine: *const cvg_engine_t,
    cursor: *const u8,
    cursor_len: usize,
    limit: usize,
    page_out: *mut cvg_bytes_t,
    next_out: *mut cvg_bytes_t,
    operations_out: *mut u64,
    more_out: *mut bool,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, c) = unsafe {
            (
                self::engine(engine)?,
                token_arg(cursor, cursor_len, "cursor")?,
            )
        };
        required(page_out, "page_out")?;
        required(next_out, "next_out")?;
        let page = e.changes_since(&c, limit)?;
        let bytes = page
            .changes
            .as_ref()
            .map(|c| c.encode())
            .unwrap_or_default();
        // SAFETY: checked non-NULL / NULL or writable.
        unsafe {
            write_out(page_out, cvg_bytes_t::from_vec(bytes));
            write_token(next_out, &page.next);
            write_out(operations_out, page.operations);
            write_out(more_out, page.more);
        }
        Ok(())
    })
}

/// Apply a page of changes from a peer (`page`, as its
/// `cvg_engine_changes_since` returned it), atomically, and tell what
/// happened in `*delivery_out` (optional: may be NULL):
/// `CVG_DELIVERY_APPLIED` (visible now), `CVG_DELIVERY_PENDING` (kept in
/// the pending area until this replica holds what the page depends on:
/// an earlier page, another replica's operations) or
/// `CVG_DELIVERY_DUPLICATE` (already held; nothing changed). Pages may
/// arrive in any order and more than once.
///
/// Failures change nothing: `CVG_STATUS_CORRUPT_INPUT` for bytes that are
/// not a page (truncated, damaged, another encoding);
/// `CVG_STATUS_PENDING_FULL` when the page would have to wait and the
/// pending area is full; `CVG_STATUS_WRONG_TYPE` or
/// `CVG_STATUS_STATE_TOO_LARGE` when a key of the page cannot take its
/// state.
///
/// # Safety
/// `engine` is NULL or a live handle; `page` points to `page_len` bytes;
/// `delivery_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_apply_changes(
    engine: *const cvg_engine_t,
    page: *const u8,
    page_len: usize,
    delivery_out: *mut cvg_delivery_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, p) = unsafe { (self::engine(engine)?, input(page, page_len, "page")?) };
        let d = e.apply_changes(p)?;
        // SAFETY: NULL or writable.
        unsafe { write_out(delivery_out, delivery(d)) };
        Ok(())
    })
}

/// The state of the changes feed into `*info_out`, and the registered
/// peers, in the same snapshot: `*peer_ids_out` (optional: may be NULL) a
/// list of their 16-byte replica ids in ascending order, `*cursors_out`
/// (optional) a list of the cursors they acknowledged (encoded causal
/// contexts), item `i` of each list belonging to the same peer. Free the
/// lists with `cvg_list_free`. `CVG_STATUS_INVALID_ARGUMENT` when the feed
/// is off.
///
/// # Safety
/// `engine` is NULL or a live handle; the outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_feed_info(
    engine: *const cvg_engine_t,
    info_out: *mut cvg_feed_info_t,
    peer_ids_out: *mut *mut cvg_list_t,
    cursors_out: *mut *mut cvg_list_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let e = self::engine(engine)?;
        required(info_out, "info_out")?;
        let f = e.feed_info()?;
        let info = cvg_feed_info_t {
            floor: f.floor,
            last: f.last,
            bytes: f.bytes,
            peers: f.peers.len() as u64,
        };
        let list = |items: Packed| Box::into_raw(Box::new(cvg_list_t { items }));
        // SAFETY: checked non-NULL / NULL or writable.
        unsafe {
            write_out(info_out, info);
            if !peer_ids_out.is_null() {
                let mut ids = Packed::with_capacity(f.peers.len(), 16 * f.peers.len());
                for (id, _) in &f.peers {
                    ids.push(&id.to_bytes());
                }
                write_out(peer_ids_out, list(ids));
            }
            if !cursors_out.is_null() {
                let mut cursors = Packed::with_capacity(f.peers.len(), 0);
                for (_, c) in &f.peers {
                    cursors.push(&codec::encode_context(c));
                }
                write_out(cursors_out, list(cursors));
            }
        }
        Ok(())
    })
}

/// Register a peer (its 16-byte replica id: `peer_len` must be 16): a
/// replica that shares this replica's data. It is a member for the
/// collection of tombstones (`cvg_engine_collect` waits for its
/// acknowledgements; `cvg_engine_members` lists it), and, with the changes
/// feed on, the log is kept for it: the operations it has not
/// acknowledged (`cvg_engine_acknowledge`) are not truncated, except past
/// the retention bound (`cvg_options_set_feed_retain_bytes`). Works with
/// the changes feed off (then only membership is kept). Registering a
/// registered peer changes nothing. Registered peers are persisted.
///
/// # Safety
/// `engine` is NULL or a live handle; `peer` points to `peer_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_register_peer(
    engine: *const cvg_engine_t,
    peer: *const u8,
    peer_len: usize,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, p) = unsafe { (self::engine(engine)?, peer_arg(peer, peer_len)?) };
        Ok(e.register_peer(p)?)
    })
}

/// Record that the registered `peer` holds `cursor` (joined with what it
/// acknowledged before: acknowledging never moves back), and truncate the
/// log of what every registered peer holds. A cursor is an encoded causal
/// context the peer holds: the `next` of a page it applied, its
/// `cvg_engine_context`, or `cvg_sync_acknowledged` after a sync session
/// with it; the collection of tombstones waits for these
/// acknowledgements. Works with the changes feed off (membership only).
/// `CVG_STATUS_INVALID_ARGUMENT`
/// for a peer that is not registered or a cursor claiming operations this
/// replica has not issued; `CVG_STATUS_CORRUPT_INPUT` for a cursor that
/// does not decode.
///
/// # Safety
/// `engine` is NULL or a live handle; `peer` and `cursor` point to their
/// lengths in bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_acknowledge(
    engine: *const cvg_engine_t,
    peer: *const u8,
    peer_len: usize,
    cursor: *const u8,
    cursor_len: usize,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, p, c) = unsafe {
            (
                self::engine(engine)?,
                peer_arg(peer, peer_len)?,
                token_arg(cursor, cursor_len, "cursor")?,
            )
        };
        Ok(e.acknowledge(p, &c)?)
    })
}

/// Forget a registered peer (retire a member): the log is no longer kept
/// for it (and is truncated of what the remaining peers hold), and the
/// collection of tombstones no longer waits for it. Works with the changes
/// feed off. Removing a peer that is not registered changes nothing.
///
/// # Safety
/// `engine` is NULL or a live handle; `peer` points to `peer_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_remove_peer(
    engine: *const cvg_engine_t,
    peer: *const u8,
    peer_len: usize,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, p) = unsafe { (self::engine(engine)?, peer_arg(peer, peer_len)?) };
        Ok(e.remove_peer(p)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(d: cvg_delivery_t) -> &'static str {
        // SAFETY: the function returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(cvg_delivery_name(d)) }
            .to_str()
            .unwrap()
    }

    #[test]
    fn deliveries_have_distinct_dense_numbers_and_names() {
        let all = [
            (Delivery::Applied, "applied"),
            (Delivery::Pending, "pending"),
            (Delivery::Duplicate, "duplicate"),
        ];
        for (n, (d, expected)) in all.into_iter().enumerate() {
            assert_eq!(usize::from(delivery(d)), n);
            assert_eq!(name(delivery(d)), expected);
        }
        for unknown in [3, 9, u8::MAX] {
            assert_eq!(name(unknown), "unknown");
        }
    }

    #[test]
    fn a_peer_id_is_exactly_sixteen_bytes() {
        let id = [7u8; 16];
        let r = unsafe { peer_arg(id.as_ptr(), 16) }.unwrap();
        assert_eq!(r.to_bytes(), id);
        let short = unsafe { peer_arg(id.as_ptr(), 15) }.unwrap_err();
        assert_eq!(short.status, cvg_status_t::CVG_STATUS_INVALID_ARGUMENT);
        let null = unsafe { peer_arg(std::ptr::null(), 16) }.unwrap_err();
        assert_eq!(null.status, cvg_status_t::CVG_STATUS_NULL_POINTER);
    }
}
