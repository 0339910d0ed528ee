//! Session tokens: what a client has written or read, as encoded causal
//! contexts (the kind-2 encoding of FORMAT.md), and waiting on a replica
//! until it holds one. A token is the set of dots `(origin, seq)` of the
//! operations it stands for: the token of a write lists its own dots, the
//! engine's context every dot the replica holds. The empty byte string is
//! the empty token.

use crate::batch::cvg_deltas_t;
use crate::bulk::{array, split};
use crate::bytes::{cvg_bytes_t, input, reference, required, write_out};
use crate::cvg_status_t;
use crate::engine::{cvg_engine_t, engine};
use crate::status::{ffi_boundary, Failure};
use engine::codec::{self, Item};
use engine::{CausalContext, Dot};
use std::time::Duration;

/// `timeout_ms` of `cvg_engine_wait_for`: wait without a time limit.
// Written `u64::MAX` so the header says `UINT64_MAX`; cbindgen prints a
// harmless "Can't find u64" warning for it.
pub const CVG_WAIT_FOREVER: u64 = u64::MAX;

/// The token holding exactly `dots`, built in O(n log n): sorted, then
/// added a run of consecutive sequence numbers at a time.
pub(crate) fn token_of_dots(mut dots: Vec<Dot>) -> CausalContext {
    dots.sort_unstable();
    dots.dedup();
    let mut token = CausalContext::new();
    let mut i = 0;
    while i < dots.len() {
        let (replica, lo) = (dots[i].replica, dots[i].counter);
        let mut hi = lo;
        i += 1;
        while i < dots.len() && dots[i].replica == replica && dots[i].counter == hi + 1 {
            hi += 1;
            i += 1;
        }
        // A sequence number 0 names no operation (the engine ignores it
        // too); insert_range skips a range starting at 0, so start at 1.
        token.insert_range(replica, lo.max(1), hi);
    }
    token
}

/// The dot of an encoded delta (what every write function returns).
fn dot_of(bytes: &[u8]) -> Result<Dot, Failure> {
    match codec::decode_item(bytes)? {
        Item::Delta(d) => Ok(Dot::new(d.origin, d.seq)),
        Item::State(_) => Err(Failure::invalid(
            "the bytes are a full state, not a delta: a state names no operation, \
             so it has no token",
        )),
    }
}

/// Decode a token argument (`(NULL, 0)` is the empty token).
///
/// # Safety
/// `ptr` points to `len` readable bytes (or `len` is 0).
pub(crate) unsafe fn token_arg(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<CausalContext, Failure> {
    // SAFETY: forwarded caller guarantee.
    let bytes = unsafe { input(ptr, len, what) }?;
    codec::decode_context(bytes).map_err(|e| {
        Failure::new(
            cvg_status_t::CVG_STATUS_CORRUPT_INPUT,
            format!("{what}: invalid encoding: {e}"),
        )
    })
}

/// Hand a token to C.
///
/// # Safety
/// `out` was checked non-NULL and is writable.
pub(crate) unsafe fn write_token(out: *mut cvg_bytes_t, token: &CausalContext) {
    // SAFETY: forwarded caller guarantee.
    unsafe { write_out(out, cvg_bytes_t::from_vec(codec::encode_context(token))) };
}

/// The engine's causal record as a token into `*token_out` (free with
/// `cvg_bytes_free`): every operation this replica holds, its own and the
/// peers' deltas it merged. Pass it to `cvg_engine_wait_for` on another
/// replica to read there at least what can be read here now (monotonic
/// reads across replicas).
///
/// A full state merged (`cvg_engine_merge` of `cvg_engine_state_bytes`
/// output, or the states of a sync session) adds no operation to the
/// record: a state does not say which operations it holds. Tokens become
/// visible on a replica through the deltas it merges.
///
/// # Safety
/// `engine` is NULL or a live handle; `token_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_context(
    engine: *const cvg_engine_t,
    token_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let e = self::engine(engine)?;
        required(token_out, "token_out")?;
        // SAFETY: checked non-NULL.
        unsafe { write_token(token_out, &e.context()) };
        Ok(())
    })
}

/// Wait until this replica holds every operation of `token` (from
/// `cvg_engine_context`, `cvg_delta_token`, `cvg_deltas_token` or
/// `cvg_token_join`; `(NULL, 0)` is the empty token, always held). Returns
/// `CVG_STATUS_OK` once it does: every read on this replica afterwards sees
/// the token's effects. `timeout_ms`: 0 does not wait, `CVG_WAIT_FOREVER`
/// waits without limit, anything else at most that many milliseconds. A
/// token not held when the time is up gives `CVG_STATUS_NOT_YET_VISIBLE`
/// (the message says how many operations are missing); nothing changes,
/// so retry, wait longer, or read elsewhere. A token that does not decode
/// gives `CVG_STATUS_CORRUPT_INPUT`.
///
/// The wait is woken by the commits (local writes, merges of deltas) that
/// grow the record, never by polling. Other threads may use the engine
/// during the wait. A `cvg_engine_close` on another thread (or in a merge
/// function) wakes the wait, which then returns `CVG_STATUS_CLOSED` unless
/// the token is already held: a wait never keeps a closed engine open.
///
/// # Safety
/// `engine` is NULL or a live handle; `token` points to `token_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_wait_for(
    engine: *const cvg_engine_t,
    token: *const u8,
    token_len: usize,
    timeout_ms: u64,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, t) = unsafe { (self::engine(engine)?, token_arg(token, token_len, "token")?) };
        let timeout = match timeout_ms {
            0 => None,
            // Too large for any clock: the engine then waits without limit.
            CVG_WAIT_FOREVER => Some(Duration::MAX),
            ms => Some(Duration::from_millis(ms)),
        };
        Ok(e.wait_for(&t, timeout)?)
    })
}

/// How many operations of `token` this replica does not hold yet, into
/// `*missing_out` (0: `cvg_engine_wait_for` would return at once with
/// `CVG_STATUS_OK`). `CVG_STATUS_CORRUPT_INPUT` if the token does not
/// decode.
///
/// # Safety
/// `engine` is NULL or a live handle; `token` points to `token_len` bytes;
/// `missing_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_token_missing(
    engine: *const cvg_engine_t,
    token: *const u8,
    token_len: usize,
    missing_out: *mut u64,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, t) = unsafe { (self::engine(engine)?, token_arg(token, token_len, "token")?) };
        required(missing_out, "missing_out")?;
        let missing = e.context().missing(&t);
        // SAFETY: checked non-NULL.
        unsafe { write_out(missing_out, missing) };
        Ok(())
    })
}

/// The join of two tokens into `*token_out` (free with `cvg_bytes_free`):
/// the token of everything either stands for. Keep the join of the tokens
/// of a session's writes and reads and wait for it before each read, on
/// any replica. `(NULL, 0)` is the empty token. `CVG_STATUS_CORRUPT_INPUT`
/// if either does not decode.
///
/// # Safety
/// `a` and `b` point to their lengths in bytes; `token_out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_token_join(
    a: *const u8,
    a_len: usize,
    b: *const u8,
    b_len: usize,
    token_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (mut ta, tb) = unsafe { (token_arg(a, a_len, "a")?, token_arg(b, b_len, "b")?) };
        required(token_out, "token_out")?;
        ta.merge(&tb);
        // SAFETY: checked non-NULL.
        unsafe { write_token(token_out, &ta) };
        Ok(())
    })
}

/// The token of one write: `delta` is the encoded delta a write function
/// returned in its `delta_out` (or one delta of a `cvg_deltas_t`). Wait
/// for it on another replica (`cvg_engine_wait_for`) to read your write
/// there. `CVG_STATUS_CORRUPT_INPUT` if the bytes do not decode,
/// `CVG_STATUS_INVALID_ARGUMENT` if they are a full state (which names no
/// operation).
///
/// # Safety
/// `delta` points to `delta_len` bytes; `token_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_delta_token(
    delta: *const u8,
    delta_len: usize,
    token_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let bytes = unsafe { input(delta, delta_len, "delta") }?;
        required(token_out, "token_out")?;
        let token = token_of_dots(vec![dot_of(bytes)?]);
        // SAFETY: checked non-NULL.
        unsafe { write_token(token_out, &token) };
        Ok(())
    })
}

/// The token of a whole batch write: every operation of `deltas` (from
/// `cvg_engine_write`), into `*token_out`. A batch of merges only has the
/// empty token (merges are the peers' operations, not this write's).
///
/// # Safety
/// `deltas` is NULL or live; `token_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_deltas_token(
    deltas: *const cvg_deltas_t,
    token_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: the caller passes NULL or a live handle.
        let d = unsafe { reference(deltas, "deltas") }?;
        required(token_out, "token_out")?;
        let token = token_of_dots(d.dots.clone());
        // SAFETY: checked non-NULL.
        unsafe { write_token(token_out, &token) };
        Ok(())
    })
}

/// The token of `count` encoded deltas packed back to back in `deltas`
/// (`deltas_len` bytes in all, delta `i` being `delta_lens[i]` bytes: the
/// layout `cvg_batch_merge_many` takes; from `cvg_deltas_packed`, the
/// lengths are its delta spans' `len`), into `*token_out`. For deltas that outlived their `cvg_deltas_t` (copied, or
/// received from a peer). Lengths that do not add up to `deltas_len` give
/// `CVG_STATUS_INVALID_ARGUMENT`; a delta that does not decode
/// `CVG_STATUS_CORRUPT_INPUT`, a full state `CVG_STATUS_INVALID_ARGUMENT`
/// (the message names its index).
///
/// # Safety
/// `deltas` points to `deltas_len` bytes, `delta_lens` to `count`
/// elements; `token_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_token_of_deltas(
    deltas: *const u8,
    deltas_len: usize,
    delta_lens: *const usize,
    count: usize,
    token_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let items = unsafe {
            split(
                array(deltas, deltas_len, "deltas")?,
                array(delta_lens, count, "delta_lens")?,
                "delta",
            )?
        };
        required(token_out, "token_out")?;
        let dots = items
            .iter()
            .enumerate()
            .map(|(i, b)| {
                dot_of(b).map_err(|f| Failure::new(f.status, format!("delta {i}: {}", f.message)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // SAFETY: checked non-NULL.
        unsafe { write_token(token_out, &token_of_dots(dots)) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::ReplicaId;

    fn d(r: u128, c: u64) -> Dot {
        Dot::new(ReplicaId(r), c)
    }

    /// The reference: dot by dot, as the engine's `token_of` does.
    fn one_by_one(dots: &[Dot]) -> CausalContext {
        let mut c = CausalContext::new();
        for x in dots {
            c.insert(*x);
        }
        c
    }

    #[test]
    fn runs_build_the_same_token_as_dot_by_dot() {
        let cases: Vec<Vec<Dot>> = vec![
            vec![],
            vec![d(1, 1)],
            vec![d(1, 5)],
            vec![d(1, 0)],
            vec![d(1, 0), d(1, 1), d(1, 2)],
            vec![d(1, 3), d(1, 1), d(1, 2), d(1, 2)],
            vec![
                d(2, 9),
                d(1, 4),
                d(1, 5),
                d(1, 7),
                d(2, 1),
                d(2, 2),
                d(1, 1),
            ],
            (10..2000)
                .map(|c| d(7, c))
                .chain([d(7, 1), d(8, 3)])
                .collect(),
        ];
        for dots in cases {
            let fast = token_of_dots(dots.clone());
            assert_eq!(fast, one_by_one(&dots), "{dots:?}");
            // Equal sets encode equally (tokens compare as bytes too).
            assert_eq!(
                codec::encode_context(&fast),
                codec::encode_context(&one_by_one(&dots))
            );
            assert!(codec::decode_context(&codec::encode_context(&fast)).is_ok());
        }
    }

    #[test]
    fn a_large_batch_token_holds_every_dot() {
        // 200,000 consecutive dots not starting at 1: one run, one range.
        let dots: Vec<Dot> = (1_000..201_000).map(|c| d(3, c)).collect();
        let t = token_of_dots(dots);
        assert_eq!(t.cloud().len(), 200_000);
        assert!(t.contains(&d(3, 1_000)) && t.contains(&d(3, 200_999)));
        assert!(!t.contains(&d(3, 999)));
    }
}
