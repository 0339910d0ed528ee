//! A driver that syncs two stores of one process, one message at a time.

use super::outcome::{Outcome, Stats};
use super::session::Session;
use super::{Config, SyncError, SyncStore};

/// One side's result of [`sync_engines`].
pub type SideResult = (Outcome, Stats);

/// Sync two stores in one process (used by the demo and tests): `a`
/// initiates, messages are delivered in order, one at a time (a side's
/// messages are pulled only as the other takes them, so neither side's
/// reply is ever held whole). Returns both sides' outcome and stats.
pub fn sync_engines<A, B>(
    a: &A,
    b: &B,
    config: Config,
) -> Result<(SideResult, SideResult), SyncError>
where
    A: SyncStore + ?Sized,
    B: SyncStore + ?Sized,
{
    let (a, b): (&A, &B) = (a, b);
    let (mut sa, first) = Session::initiate(a, config.clone())?;
    let mut sb = Session::respond(b, config);
    sb.receive(&first)?;
    loop {
        // The protocol takes turns: at most one side has messages to send.
        if let Some(m) = sb.next_message()? {
            sa.receive(&m)?;
        } else if let Some(m) = sa.next_message()? {
            sb.receive(&m)?;
        } else {
            break;
        }
    }
    match (sa.outcome(), sb.outcome()) {
        (Some(oa), Some(ob)) => Ok(((oa, *sa.stats()), (ob, *sb.stats()))),
        _ => Err(SyncError::Unexpected(
            "the exchange stopped before both sides finished".into(),
        )),
    }
}
