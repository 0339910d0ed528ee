//! `cvg_sync_t`: anti-entropy sync sessions driven by byte messages
//! (sans-IO). The embedder carries the messages over its own transport:
//! `cvg_sync_initiate` gives the first message, every message received goes
//! to `cvg_sync_receive`, and `cvg_sync_next_message` gives the messages to
//! send back one at a time (`cvg_sync_handle` does both at once). The
//! outcome pairs and the end condition of a message loop are documented on
//! `cvg_sync_outcome_t` and `cvg_sync_t` (they become the header's
//! comments).

use crate::bytes::{
    cvg_bytes_t, cvg_list_t, input, reference, reference_mut, required, write_out, Packed,
};
use crate::cvg_status_t;
use crate::engine::cvg_engine_t;
use crate::status::{ffi_boundary, Failure};
use engine::sync::{self as esync, Config, Outcome, Session, SyncError};
use engine::{codec, Engine};
use std::ffi::{c_char, CStr};
use std::sync::Arc;

/// Limits of a sync session. Get the defaults with
/// `cvg_sync_config_default()`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct cvg_sync_config_t {
    /// Messages are split to stay under about this many bytes (default
    /// 4 MiB).
    pub message_budget: usize,
    /// Larger incoming messages are rejected before decoding (default and
    /// ceiling: `CVG_MAX_MESSAGE_LEN`, 65 MiB; a larger value acts as the
    /// ceiling).
    pub max_message: usize,
    /// Use the IBLT fast path (default true); false always exchanges key
    /// lists (more bytes, never a failed peel).
    pub use_iblt: bool,
}

/// The state of one side of a sync session: one of the `CVG_SYNC_*`
/// values, read with `cvg_sync_outcome`; `cvg_sync_outcome_name` names it.
///
/// When a session is over, its two sides hold one of these pairs (sync
/// protocol 2: the side that checks the roots tells the other with a last
/// message, so both sides know the verdict):
/// - `CVG_SYNC_EQUAL` on both sides: the roots were already equal, nothing
///   else was exchanged; each side's causal record now covers the other's.
/// - `CVG_SYNC_CONVERGED` on both sides: success, both hold the join of
///   both states for every key, and each side's causal record now covers
///   what the other's listed when the session began (a token from either
///   side is visible on both).
/// - `CVG_SYNC_DIVERGED` on both sides: the exchange completed but the
///   roots still differ (a write landed on either engine during the
///   session, or a hash collision): run another session.
/// - `CVG_SYNC_FAILED` on the side whose `cvg_sync_handle` returned an
///   error while it ran (a message refused because the side had already
///   ended leaves its outcome), `CVG_SYNC_RUNNING` on the other: there is no abort message,
///   so the peer waits for a message that never comes. Free both sides and
///   start a new session.
///
/// One side ended (EQUAL, CONVERGED or DIVERGED) while the peer is still
/// RUNNING means the last message was lost: start a new session.
/// `CVG_SYNC_REPAIRED` is no longer produced (protocol 1 ended the side
/// that sent the last message with it); its number stays reserved.
pub type cvg_sync_outcome_t = u8;
/// The session has not ended on this side: it waits for a message.
pub const CVG_SYNC_RUNNING: cvg_sync_outcome_t = 0;
/// The roots were equal: nothing differed. Both sides end EQUAL.
pub const CVG_SYNC_EQUAL: cvg_sync_outcome_t = 1;
/// Not produced since sync protocol 2 (which tells both sides the verdict);
/// the number stays reserved.
pub const CVG_SYNC_REPAIRED: cvg_sync_outcome_t = 2;
/// The exchange completed and the roots are equal: the replicas are equal,
/// and each side's causal record covers the other's. Both sides end
/// CONVERGED.
pub const CVG_SYNC_CONVERGED: cvg_sync_outcome_t = 3;
/// The exchange completed but the roots differ (a write landed meanwhile,
/// or a hash collision): run another session, with `use_iblt` false. Both
/// sides end DIVERGED.
pub const CVG_SYNC_DIVERGED: cvg_sync_outcome_t = 4;
/// A `cvg_sync_handle` on this side failed (a bad, lost or out-of-order
/// message); the peer stays RUNNING. Start a new session. States joined
/// before the failure stay (they are joins); the peer's states are joined
/// when their last part arrives, so a failure before it applied none.
pub const CVG_SYNC_FAILED: cvg_sync_outcome_t = 5;

/// The lower-case name of a sync outcome as a static NUL-terminated string:
/// `"running"`, `"equal"`, `"repaired"`, `"converged"`, `"diverged"`,
/// `"failed"`, or `"unknown"` for a number that is no `CVG_SYNC_*` value.
/// Never NULL; do not free. Thread-safe; leaves the last error message
/// alone.
#[no_mangle]
pub extern "C" fn cvg_sync_outcome_name(outcome: cvg_sync_outcome_t) -> *const c_char {
    ffi_boundary!(c"unknown".as_ptr() => { outcome_name(outcome).as_ptr() })
}

fn outcome_name(outcome: cvg_sync_outcome_t) -> &'static CStr {
    match outcome {
        CVG_SYNC_RUNNING => c"running",
        CVG_SYNC_EQUAL => c"equal",
        CVG_SYNC_REPAIRED => c"repaired",
        CVG_SYNC_CONVERGED => c"converged",
        CVG_SYNC_DIVERGED => c"diverged",
        CVG_SYNC_FAILED => c"failed",
        _ => c"unknown",
    }
}

/// Traffic of one side of a session.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct cvg_sync_stats_t {
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Key states sent.
    pub states_sent: u64,
    /// Key states received.
    pub states_received: u64,
    /// Bytes of keys and states sent (payload, not metadata).
    pub state_bytes_sent: u64,
    /// Bytes of keys and states received.
    pub state_bytes_received: u64,
    /// Turns in which this side sent.
    pub flights: u64,
    /// Microseconds spent finding the differing keys.
    pub diff_micros: u64,
    /// Key states received but left unmerged because the key's state would
    /// exceed `CVG_MAX_STATE_LEN`; those keys still differ.
    pub states_rejected: u64,
}

/// One side of a sync session. Created by `cvg_sync_initiate` (the side
/// that sends the first message) or `cvg_sync_respond`, released by
/// `cvg_sync_free`. It keeps its engine's store open until freed, even
/// after `cvg_engine_close`.
///
/// Driving a session: send the initiator's first message; pass every
/// message received from the peer to `cvg_sync_handle`, in the order sent,
/// and send every reply it returns, in order. To bound memory, pass it to
/// `cvg_sync_receive` instead and send each message
/// `cvg_sync_next_message` gives until it has none (the replies are built
/// as they are pulled). A side has ended when
/// `cvg_sync_outcome` is no longer `CVG_SYNC_RUNNING`. It may end in the
/// very call that returns its last replies: send them anyway. An ended
/// side sends and accepts nothing more (another message is
/// `CVG_STATUS_SYNC_PROTOCOL`). So a loop carrying messages between two
/// sides stops when no message is in flight in either direction; both
/// sides have then ended (see `cvg_sync_outcome_t` for the pairs), except
/// after a failure, which leaves the peer RUNNING. Over a network, each
/// side stops once it has ended and sent its last replies; the library has
/// no timers, so give up on a side still RUNNING after a timeout of your
/// choice (free it and start a new session).
///
/// Thread safety: `cvg_sync_handle`, `cvg_sync_receive`,
/// `cvg_sync_next_message` and `cvg_sync_free` need exclusive access to
/// the session (no other call on it meanwhile; messages go in one
/// at a time, in order). `cvg_sync_outcome` and `cvg_sync_stats` take it
/// `const` and may run on several threads at once, but not during a
/// `cvg_sync_handle`. A session may be used from any thread, one at a
/// time. Sessions are independent of each other and of other calls on
/// their engine, which may run concurrently (a write during a session may
/// make it end DIVERGED).
pub struct cvg_sync_t {
    inner: Session<Arc<Engine>>,
}

impl cvg_sync_t {
    /// This side's `CVG_SYNC_*` outcome so far.
    fn outcome(&self) -> cvg_sync_outcome_t {
        match (self.inner.outcome(), self.inner.is_finished()) {
            (Some(o), _) => outcome(o),
            (None, true) => CVG_SYNC_FAILED,
            (None, false) => CVG_SYNC_RUNNING,
        }
    }
}

/// The default session limits.
#[no_mangle]
pub extern "C" fn cvg_sync_config_default() -> cvg_sync_config_t {
    let d = Config::default();
    let fallback = cvg_sync_config_t {
        message_budget: d.message_budget,
        max_message: d.max_message,
        use_iblt: d.iblt,
    };
    ffi_boundary!(fallback => { fallback })
}

fn config(c: Option<&cvg_sync_config_t>) -> Result<Config, Failure> {
    let Some(c) = c else {
        return Ok(Config::default());
    };
    if c.message_budget == 0 || c.max_message == 0 {
        return Err(Failure::invalid("sync message limits must be positive"));
    }
    // The staging bound and max_keys are not in the C struct (a field
    // added to a struct callers allocate would change its size): C
    // sessions use the defaults.
    Ok(Config {
        message_budget: c.message_budget,
        max_message: c.max_message,
        iblt: c.use_iblt,
        ..Config::default()
    })
}

/// A sync failure on its way to C: engine errors keep their status; bad
/// bytes are `CVG_STATUS_CORRUPT_INPUT`; a peer whose record lacks
/// collected deletes is `CVG_STATUS_BEHIND_HORIZON`; a message out of
/// sequence, of another session or for an ended session is
/// `CVG_STATUS_SYNC_PROTOCOL`.
fn failure(e: SyncError) -> Failure {
    match e {
        SyncError::Engine(e) => Failure::from(e),
        SyncError::Codec(c) => Failure::from(c),
        e @ (SyncError::Malformed(_) | SyncError::TooLarge { .. }) => {
            Failure::new(cvg_status_t::CVG_STATUS_CORRUPT_INPUT, e.to_string())
        }
        e @ SyncError::BehindHorizon { .. } => {
            Failure::new(cvg_status_t::CVG_STATUS_BEHIND_HORIZON, e.to_string())
        }
        e => Failure::new(cvg_status_t::CVG_STATUS_SYNC_PROTOCOL, e.to_string()),
    }
}

/// A reference to the engine a handle names, for a session to keep
/// (`CVG_STATUS_CLOSED` if the handle is closed).
fn shared(engine: *const cvg_engine_t) -> Result<Arc<Engine>, Failure> {
    Ok(Arc::clone(crate::engine::engine(engine)?.arc()))
}

/// Start a session as the initiator: `*session_out` is the new session and
/// `*first_out` the first message to send to the peer (free it with
/// `cvg_bytes_free`). `config` may be NULL for the defaults.
///
/// # Safety
/// `engine` is NULL or a live handle; `config` is NULL or valid; the
/// outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_initiate(
    engine: *const cvg_engine_t,
    config: *const cvg_sync_config_t,
    session_out: *mut *mut cvg_sync_t,
    first_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        let e = shared(engine)?;
        required(session_out, "session_out")?;
        required(first_out, "first_out")?;
        // SAFETY: NULL or valid.
        let cfg = self::config(unsafe { config.as_ref() })?;
        let (session, first) = Session::initiate(e, cfg).map_err(failure)?;
        let handle = Box::into_raw(Box::new(cvg_sync_t { inner: session }));
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(session_out, handle);
            write_out(first_out, cvg_bytes_t::from_vec(first));
        }
        Ok(())
    })
}

/// Create the responder side of a session: it waits for the initiator's
/// first message, to pass to `cvg_sync_handle`. `config` may be NULL.
///
/// # Safety
/// `engine` is NULL or a live handle; `config` is NULL or valid;
/// `session_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_respond(
    engine: *const cvg_engine_t,
    config: *const cvg_sync_config_t,
    session_out: *mut *mut cvg_sync_t,
) -> cvg_status_t {
    ffi_boundary!({
        let e = shared(engine)?;
        required(session_out, "session_out")?;
        // SAFETY: NULL or valid.
        let cfg = self::config(unsafe { config.as_ref() })?;
        let handle = Box::into_raw(Box::new(cvg_sync_t {
            inner: Session::respond(e, cfg),
        }));
        // SAFETY: checked non-NULL.
        unsafe { write_out(session_out, handle) };
        Ok(())
    })
}

/// Handle one message from the peer and build every reply at once (for
/// callers that bound memory: `cvg_sync_receive` and
/// `cvg_sync_next_message`). On success `*replies_out` is a list
/// (possibly empty) of the messages to send back, in order; free it with
/// `cvg_list_free`. Send them even if this call ended the session (see
/// `cvg_sync_t` for when a message loop stops). An error ends this side
/// (`CVG_SYNC_FAILED`; the peer is not told and stays RUNNING): bad bytes
/// give `CVG_STATUS_CORRUPT_INPUT`, a message out of sequence or of another
/// session `CVG_STATUS_SYNC_PROTOCOL`, an invalid state inside the engine's
/// status; the failing message changed nothing. A message given to a side
/// that has already ended is refused with `CVG_STATUS_SYNC_PROTOCOL` and
/// changes nothing, its outcome included (a CONVERGED side stays
/// CONVERGED).
///
/// # Safety
/// `session` is NULL or a live session used by no other thread; `msg`
/// points to `msg_len` bytes; `replies_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_handle(
    session: *mut cvg_sync_t,
    msg: *const u8,
    msg_len: usize,
    replies_out: *mut *mut cvg_list_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (s, m) = unsafe {
            (
                reference_mut(session, "session")?,
                input(msg, msg_len, "msg")?,
            )
        };
        required(replies_out, "replies_out")?;
        let replies = s.inner.handle(m).map_err(failure)?;
        let total = replies.iter().map(Vec::len).sum();
        let mut items = Packed::with_capacity(replies.len(), total);
        for r in &replies {
            items.push(r);
        }
        let list = Box::into_raw(Box::new(cvg_list_t { items }));
        // SAFETY: checked non-NULL.
        unsafe { write_out(replies_out, list) };
        Ok(())
    })
}

/// Take one message from the peer, without building the replies: pull
/// them with `cvg_sync_next_message` until it reports none, before passing
/// the next message (a message given while this side still has messages
/// to send is out of turn: `CVG_STATUS_SYNC_PROTOCOL`, and this side
/// fails). Replies are built as they are pulled — the states this side
/// ships are read from the store a few at a time — so a session's memory
/// stays bounded however large the difference (docs/C_API.md). Errors are
/// those of `cvg_sync_handle`; the failing message changed nothing.
///
/// # Safety
/// `session` is NULL or a live session used by no other thread; `msg`
/// points to `msg_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_receive(
    session: *mut cvg_sync_t,
    msg: *const u8,
    msg_len: usize,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (s, m) = unsafe {
            (
                reference_mut(session, "session")?,
                input(msg, msg_len, "msg")?,
            )
        };
        s.inner.receive(m).map_err(failure)
    })
}

/// The next message this side has to send: on success `*has_message_out`
/// is true and `*message_out` the message (free it with `cvg_bytes_free`),
/// or `*has_message_out` is false (and `*message_out` empty) when this
/// side has nothing to send until the peer answers or the session has
/// ended. A failure to read the store fails this side.
///
/// # Safety
/// `session` is NULL or a live session used by no other thread; the
/// outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_next_message(
    session: *mut cvg_sync_t,
    message_out: *mut cvg_bytes_t,
    has_message_out: *mut bool,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantee.
        let s = unsafe { reference_mut(session, "session") }?;
        required(message_out, "message_out")?;
        required(has_message_out, "has_message_out")?;
        let next = s.inner.next_message().map_err(failure)?;
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(has_message_out, next.is_some());
            write_out(message_out, cvg_bytes_t::from_vec(next.unwrap_or_default()));
        }
        Ok(())
    })
}

/// Bit of `cvg_sync_flags`: more keys differed than the session's
/// `max_keys` (2^20): it repaired part of the difference and ends
/// `CVG_SYNC_DIVERGED`; run another session.
pub const CVG_FLAG_SYNC_TRUNCATED: u32 = 1;
/// Bit of `cvg_sync_flags`: the peer's states passed the staging bound
/// (16 MiB) and were joined part by part, not in one atomic write.
pub const CVG_FLAG_SYNC_STAGING_OVERFLOWED: u32 = 2;

/// The session's flags so far (`CVG_FLAG_SYNC_*` bits) into `*flags_out`.
///
/// # Safety
/// `session` is NULL or a live session; `flags_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_flags(
    session: *const cvg_sync_t,
    flags_out: *mut u32,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let s = unsafe { reference(session, "session") }?;
        required(flags_out, "flags_out")?;
        let st = s.inner.stats();
        let flags = if st.truncated {
            CVG_FLAG_SYNC_TRUNCATED
        } else {
            0
        } | if st.staging_overflowed {
            CVG_FLAG_SYNC_STAGING_OVERFLOWED
        } else {
            0
        };
        // SAFETY: checked non-NULL.
        unsafe { write_out(flags_out, flags) };
        Ok(())
    })
}

/// The session's outcome so far into `*outcome_out`: `CVG_SYNC_RUNNING`
/// until this side ends (see `cvg_sync_outcome_t` for the pairs the two
/// sides end with).
///
/// # Safety
/// `session` is NULL or a live session; `outcome_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_outcome(
    session: *const cvg_sync_t,
    outcome_out: *mut cvg_sync_outcome_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let s = unsafe { reference(session, "session") }?;
        required(outcome_out, "outcome_out")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(outcome_out, s.outcome()) };
        Ok(())
    })
}

fn outcome(o: Outcome) -> cvg_sync_outcome_t {
    match o {
        Outcome::Equal => CVG_SYNC_EQUAL,
        Outcome::Repaired => CVG_SYNC_REPAIRED,
        Outcome::Converged => CVG_SYNC_CONVERGED,
        Outcome::Diverged => CVG_SYNC_DIVERGED,
    }
}

fn stats(s: &esync::Stats) -> cvg_sync_stats_t {
    cvg_sync_stats_t {
        messages_sent: s.messages_sent,
        messages_received: s.messages_received,
        bytes_sent: s.bytes_sent,
        bytes_received: s.bytes_received,
        states_sent: s.states_sent,
        states_received: s.states_received,
        state_bytes_sent: s.state_bytes_sent,
        state_bytes_received: s.state_bytes_received,
        flights: s.flights,
        diff_micros: s.diff_micros,
        states_rejected: s.states_rejected,
    }
}

/// The session's traffic so far.
///
/// # Safety
/// `session` is NULL or a live session; `stats_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_stats(
    session: *const cvg_sync_t,
    stats_out: *mut cvg_sync_stats_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let s = unsafe { reference(session, "session") }?;
        required(stats_out, "stats_out")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(stats_out, stats(s.inner.stats())) };
        Ok(())
    })
}

/// What the peer of a session that ended `CVG_SYNC_EQUAL` or
/// `CVG_SYNC_CONVERGED` holds, as an encoded causal context, into
/// `*context_out` (free with `cvg_bytes_free`): the join of the records
/// both sides sent. Pass it to `cvg_engine_acknowledge` for the peer's
/// replica id (the session does not know it) when the peer is a member:
/// the collection of tombstones (`cvg_engine_collect`) waits for every
/// member's acknowledgement. `CVG_STATUS_INVALID_ARGUMENT` (the message
/// names the outcome) while the session runs, and after it ended
/// `CVG_SYNC_DIVERGED` or `CVG_SYNC_FAILED`: then nothing is known to be
/// held by both sides; acknowledge nothing and run another session.
///
/// # Safety
/// `session` is NULL or a live session (not inside `cvg_sync_handle`);
/// `context_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_acknowledged(
    session: *const cvg_sync_t,
    context_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let s = unsafe { reference(session, "session") }?;
        required(context_out, "context_out")?;
        let ctx = s.inner.acknowledged().ok_or_else(|| {
            let o = outcome_name(s.outcome()).to_string_lossy();
            Failure::invalid(format!(
                "the session is {o}: only a session that ended equal or converged \
                 has an acknowledged context"
            ))
        })?;
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(
                context_out,
                cvg_bytes_t::from_vec(codec::encode_context(&ctx)),
            )
        };
        Ok(())
    })
}

/// Free a session, at any point of it (an unfinished session simply
/// stops). The pointer is invalid after the call. NULL is a no-op.
///
/// # Safety
/// `session` is NULL or a live session with no call running on it; it is
/// not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_free(session: *mut cvg_sync_t) {
    ffi_boundary!(() => {
        if !session.is_null() {
            // SAFETY: a live session from Box::into_raw, freed once.
            drop(unsafe { Box::from_raw(session) });
        }
    })
}

/// Sync two engines of this process in one call (`a` initiates), for
/// tests, tools and co-located replicas: the message loop described at
/// `cvg_sync_t`, run to its end, one message at a time. The outcomes of both sides go to
/// `*outcome_a` and `*outcome_b` (optional: may be NULL); on success they
/// are one of the ended pairs of `cvg_sync_outcome_t` (EQUAL and EQUAL,
/// CONVERGED and CONVERGED, DIVERGED and DIVERGED). A
/// failure of either side returns its status and writes no outcome.
///
/// # Safety
/// `a` and `b` are NULL or live handles; `config` is NULL or valid; the
/// outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_sync_engines(
    a: *const cvg_engine_t,
    b: *const cvg_engine_t,
    config: *const cvg_sync_config_t,
    outcome_a: *mut cvg_sync_outcome_t,
    outcome_b: *mut cvg_sync_outcome_t,
) -> cvg_status_t {
    ffi_boundary!({
        let (ea, eb) = (crate::engine::engine(a)?, crate::engine::engine(b)?);
        // SAFETY: NULL or valid.
        let cfg = self::config(unsafe { config.as_ref() })?;
        let ((oa, _), (ob, _)) = esync::sync_engines(&*ea, &*eb, cfg).map_err(failure)?;
        // SAFETY: NULL or writable.
        unsafe {
            write_out(outcome_a, outcome(oa));
            write_out(outcome_b, outcome(ob));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(o: cvg_sync_outcome_t) -> &'static str {
        // SAFETY: the function returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(cvg_sync_outcome_name(o)) }
            .to_str()
            .unwrap()
    }

    #[test]
    fn outcome_names_follow_the_constants() {
        let all = [
            (CVG_SYNC_RUNNING, "running"),
            (CVG_SYNC_EQUAL, "equal"),
            (CVG_SYNC_REPAIRED, "repaired"),
            (CVG_SYNC_CONVERGED, "converged"),
            (CVG_SYNC_DIVERGED, "diverged"),
            (CVG_SYNC_FAILED, "failed"),
        ];
        for (n, (o, expected)) in all.iter().enumerate() {
            assert_eq!(usize::from(*o), n, "outcome numbers are dense from 0");
            assert_eq!(name(*o), *expected);
        }
        for unknown in [6, 7, 100, u8::MAX] {
            assert_eq!(name(unknown), "unknown");
        }
    }

    #[test]
    fn a_peer_behind_the_horizon_has_its_own_status() {
        let f = failure(SyncError::BehindHorizon {
            origin: engine::ReplicaId::from_bytes([3; 16]),
            needed: 7,
            has: 2,
        });
        assert_eq!(f.status, cvg_status_t::CVG_STATUS_BEHIND_HORIZON);
        assert!(f.message.contains("up to 7"), "{}", f.message);
        let protocol = failure(SyncError::Malformed("x".into()));
        assert_eq!(protocol.status, cvg_status_t::CVG_STATUS_CORRUPT_INPUT);
    }

    #[test]
    fn every_engine_outcome_has_a_distinct_number() {
        let ours = [
            Outcome::Equal,
            Outcome::Repaired,
            Outcome::Converged,
            Outcome::Diverged,
        ]
        .map(outcome);
        assert_eq!(
            ours,
            [
                CVG_SYNC_EQUAL,
                CVG_SYNC_REPAIRED,
                CVG_SYNC_CONVERGED,
                CVG_SYNC_DIVERGED
            ]
        );
    }
}
