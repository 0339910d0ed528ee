//! `cvg_options_t`: the options of `cvg_engine_open`, an opaque builder so
//! fields can be added without breaking the ABI.

use crate::bytes::{input, reference_mut};
use crate::cvg_status_t;
use crate::status::{ffi_boundary, Failure};
use engine::{Durability, Options, ReplicaId};

/// Durability of every write, for `cvg_options_set_durability`: one of the
/// `CVG_DURABILITY_*` values.
pub type cvg_durability_t = u32;

/// The log is fsynced before a write returns: an acknowledged write survives
/// power loss.
pub const CVG_DURABILITY_SYNC: cvg_durability_t = 0;
/// The log is written to the OS but not fsynced: an acknowledged write
/// survives a crash of the process, not of the machine (the default).
pub const CVG_DURABILITY_BUFFERED: cvg_durability_t = 1;
/// No log: writes live in memory until flushed; a crash loses them. For
/// bulk loads that can be redone.
pub const CVG_DURABILITY_NONE: cvg_durability_t = 2;

/// Options for `cvg_engine_open`. Created by `cvg_options_new` with the
/// engine's defaults, changed by the `cvg_options_set_*` functions, released
/// by `cvg_options_free`. `cvg_engine_open` copies what it needs, so the
/// options may be freed or reused right after.
///
/// Thread safety: no lock inside. The setters and `cvg_options_free` need
/// exclusive access (no other call on the same options meanwhile);
/// `cvg_engine_open` takes the options `const`, so the same options may be
/// passed to several concurrent opens (of different directories) as long
/// as no thread changes them. Options may be used from any thread, one
/// writer at a time.
pub struct cvg_options_t {
    pub(crate) inner: Options,
}

/// New options with the engine's defaults: a replica id generated at first
/// open (or the stored one), `CVG_DURABILITY_BUFFERED`, create if missing,
/// 64 MiB block cache, 64 MiB write buffer per column family, 2 background
/// jobs, LZ4 compression, 10 bloom bits per key, 65,536 lock stripes,
/// anti-entropy on, the changes feed on with 64 MiB of log retained, a
/// pending area of at most 100,000 entries and 256 MiB. Never returns
/// NULL.
#[no_mangle]
pub extern "C" fn cvg_options_new() -> *mut cvg_options_t {
    ffi_boundary!(std::ptr::null_mut() => {
        Box::into_raw(Box::new(cvg_options_t { inner: Options::default() }))
    })
}

/// Free options. The pointer is invalid after the call. NULL is a no-op.
///
/// # Safety
/// `options` is NULL or live options with no call running on them; they
/// are not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_free(options: *mut cvg_options_t) {
    ffi_boundary!(() => {
        if !options.is_null() {
            // SAFETY: created by Box::into_raw in cvg_options_new.
            drop(unsafe { Box::from_raw(options) });
        }
    })
}

/// Apply `f` to the options behind a checked pointer.
///
/// # Safety
/// `options` is NULL or live options with no other user.
unsafe fn with_options(
    options: *mut cvg_options_t,
    f: impl FnOnce(&mut Options) -> Result<(), Failure>,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: the caller passes NULL or live options.
        let o = unsafe { reference_mut(options, "options") }?;
        f(&mut o.inner)
    })
}

/// Set this replica's id: 16 bytes (`id_len` must be 16), or `id == NULL`
/// with `id_len == 0` to use the stored id (or generate one at first open).
/// Opening a store with another id than the stored one fails with
/// `CVG_STATUS_REPLICA_MISMATCH`.
///
/// # Safety
/// `options` is NULL or live options; `id` points to `id_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_replica_id(
    options: *mut cvg_options_t,
    id: *const u8,
    id_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            if id.is_null() && id_len == 0 {
                o.replica_id = None;
                return Ok(());
            }
            let b: [u8; 16] = input(id, id_len, "id")?
                .try_into()
                .map_err(|_| Failure::invalid(format!("replica id has {id_len} bytes, not 16")))?;
            o.replica_id = Some(ReplicaId::from_bytes(b));
            Ok(())
        })
    }
}

/// Set the durability of every write (a `CVG_DURABILITY_*` value; anything
/// else is `CVG_STATUS_INVALID_ARGUMENT`).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_durability(
    options: *mut cvg_options_t,
    durability: cvg_durability_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            o.durability = match durability {
                CVG_DURABILITY_SYNC => Durability::Sync,
                CVG_DURABILITY_BUFFERED => Durability::Buffered,
                CVG_DURABILITY_NONE => Durability::None,
                other => return Err(Failure::invalid(format!("unknown durability {other}"))),
            };
            Ok(())
        })
    }
}

/// Create the store if the directory holds none (default true). When false,
/// opening a missing store fails with `CVG_STATUS_STORAGE`.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_create_if_missing(
    options: *mut cvg_options_t,
    create_if_missing: bool,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            o.create_if_missing = create_if_missing;
            Ok(())
        })
    }
}

/// Size in bytes of the block cache (default 64 MiB; values below 1 MiB
/// are raised to 1 MiB).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_block_cache_bytes(
    options: *mut cvg_options_t,
    bytes: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            o.block_cache_bytes = bytes;
            Ok(())
        })
    }
}

/// Memtable size per column family in bytes (default 64 MiB; values below
/// 1 MiB are raised to 1 MiB). The small family of key types uses at most
/// 4 MiB, unless durability is `CVG_DURABILITY_NONE`.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_write_buffer_bytes(
    options: *mut cvg_options_t,
    bytes: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            o.write_buffer_bytes = bytes;
            Ok(())
        })
    }
}

/// Apply `change` to a copy of the options and keep it only if the engine
/// accepts the result (`Options::validate`): the ranges are the engine's
/// decision, reported at once instead of at open.
fn set_checked(o: &mut Options, change: impl FnOnce(&mut Options)) -> Result<(), Failure> {
    let mut next = o.clone();
    change(&mut next);
    next.validate()?;
    *o = next;
    Ok(())
}

/// Background flush and compaction threads (default 2; must be 1 to 256).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_background_jobs(
    options: *mut cvg_options_t,
    jobs: u32,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            let jobs = i32::try_from(jobs)
                .map_err(|_| Failure::invalid(format!("background jobs {jobs} too large")))?;
            set_checked(o, |n| n.background_jobs = jobs)
        })
    }
}

/// LZ4-compress table blocks (default true).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_compression(
    options: *mut cvg_options_t,
    compression: bool,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            o.compression = compression;
            Ok(())
        })
    }
}

/// Bloom filter bits per key for point reads (default 10; 0 disables the
/// filter; must be finite and in 0..=64).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_bloom_bits_per_key(
    options: *mut cvg_options_t,
    bits: f64,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_options(options, |o| set_checked(o, |n| n.bloom_bits_per_key = bits)) }
}

/// Number of striped locks serializing read-modify-write operations on the
/// same key (default 1024; rounded up to a power of two; must be 1 to
/// 2^20).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_lock_stripes(
    options: *mut cvg_options_t,
    stripes: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_options(options, |o| set_checked(o, |n| n.lock_stripes = stripes)) }
}

/// Maintain the anti-entropy tree (default true). When false, writes skip
/// the tree and `cvg_engine_root`, `cvg_engine_verify` and
/// `cvg_engine_settle` fail with `CVG_STATUS_INVALID_ARGUMENT`; opening
/// again with true rebuilds it.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_anti_entropy(
    options: *mut cvg_options_t,
    anti_entropy: bool,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            o.anti_entropy = anti_entropy;
            Ok(())
        })
    }
}

/// Merge operands of one key allowed to pile up in the memtable before a
/// write joins them into a full value (default 0: no limit, which saves a
/// memtable seek on every blind write).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_max_successive_merges(
    options: *mut cvg_options_t,
    merges: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            o.max_successive_merges = merges;
            Ok(())
        })
    }
}

/// Number of keys whose type (and size bound, and decoded OR-Set or
/// MV-register state within the state cache's budget) the engine caches
/// in memory to check writes without a read (default 458,752, about 34 MB
/// when full with keys of at most 22 bytes; 0 disables the cache).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_type_cache_entries(
    options: *mut cvg_options_t,
    entries: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            o.type_cache_entries = entries;
            Ok(())
        })
    }
}

/// Memory for the OR-Set and MV-register states the write path keeps
/// decoded (default 64 MiB; 0 disables): a write of such a key takes the
/// state the previous write left instead of reading and decoding it (so do
/// reads, in place), and a state over 1 KiB encoded is then written as
/// the join of the batch's changes (and put whole again once those add up
/// to three times its size), so an add or remove on a set of
/// 100,000 elements costs about what it costs on a small set. Once the
/// budget is full, a batch of only OR-Set adds and removes on a set the
/// cache lacks changes the set as its encoded bytes instead of decoding
/// it. The memory is estimated: an OR-Set's
/// encoded size plus 160 bytes per element, 8 times the encoded size for an
/// MV register.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_state_cache_bytes(
    options: *mut cvg_options_t,
    bytes: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            o.state_cache_bytes = bytes;
            Ok(())
        })
    }
}

/// Keep the changes feed's log of local operations (default true). When
/// false, local writes skip the log and `cvg_engine_changes_since`,
/// `cvg_engine_feed_info` and the peer calls fail with
/// `CVG_STATUS_INVALID_ARGUMENT`; opening again with true starts a new log
/// after the last operation (a peer whose cursor lacks the operations
/// written meanwhile gets `CVG_STATUS_CURSOR_TOO_OLD`). Pages from peers
/// (`cvg_engine_apply_changes`) are accepted either way.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_changes_feed(
    options: *mut cvg_options_t,
    changes_feed: bool,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_options(options, |o| {
            set_checked(o, |n| n.changes_feed = changes_feed)
        })
    }
}

/// Log bytes the changes feed retains (default 64 MiB). Past it, the
/// oldest operations are truncated even if a registered peer has not
/// acknowledged them; such a peer then gets `CVG_STATUS_CURSOR_TOO_OLD`
/// and falls back to an anti-entropy session. Every value is accepted
/// (the log is truncated in steps, once it holds an eighth plus 64 KiB
/// more than this: 0 keeps at most about 64 KiB).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_feed_retain_bytes(
    options: *mut cvg_options_t,
    bytes: u64,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_options(options, |o| set_checked(o, |n| n.feed_retain_bytes = bytes)) }
}

/// Entries the pending area holds at most (deltas and pages of changes
/// waiting for their causal dependencies; default 100,000). A merge or
/// page that would pass it fails with `CVG_STATUS_PENDING_FULL` and
/// changes nothing. Every value is accepted: 0 refuses every delta that
/// arrives before its dependencies.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_max_pending(
    options: *mut cvg_options_t,
    entries: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_options(options, |o| set_checked(o, |n| n.max_pending = entries)) }
}

/// Encoded bytes the pending area holds at most (default 256 MiB); past
/// it, as past `cvg_options_set_max_pending`: `CVG_STATUS_PENDING_FULL`.
/// Every value is accepted.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn cvg_options_set_max_pending_bytes(
    options: *mut cvg_options_t,
    bytes: u64,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_options(options, |o| set_checked(o, |n| n.max_pending_bytes = bytes)) }
}
