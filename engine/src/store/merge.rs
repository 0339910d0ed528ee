//! RocksDB merge operators. For the state column family, full and partial
//! merge are the CRDT join: every operand is an encoded state, so blind
//! writes (deltas, remote states) need no read. The full merge never fails
//! (`stored.rs`). For the meta
//! column family, the version vector is joined and the clock maxed.

use super::stored::{join_total, try_join_all};
use super::{META_CTX, META_HLC, META_VV};
use crate::causal::Timestamp;
use crate::codec::{decode_context, decode_vv, encode_context, encode_vv};
use rocksdb::MergeOperands;

/// Join an optional existing value with operands. Never fails (a failing
/// full merge makes RocksDB report the store as corrupt): values that
/// cannot be joined within the state size limit, or do not decode, are
/// kept as parts (see `stored.rs`) and that key alone reads as an error.
pub(crate) fn state_full_merge(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    let operands: Vec<&[u8]> = operands.iter().collect();
    Some(join_total(existing, &operands))
}

/// Join operands with each other (no base; the join is associative). When
/// they cannot be joined within the limit this returns `None`, which tells
/// RocksDB to keep the operands as they are for the full merge.
pub(crate) fn state_partial_merge(
    _key: &[u8],
    _existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    try_join_all(operands.iter())
}

/// Encode a timestamp: wall milliseconds and logical counter, big-endian.
pub(crate) fn encode_ts(ts: Timestamp) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&ts.wall_ms.to_be_bytes());
    b[8..].copy_from_slice(&ts.logical.to_be_bytes());
    b
}

/// Decode a timestamp written by [`encode_ts`].
pub(crate) fn decode_ts(b: &[u8]) -> Option<Timestamp> {
    let wall: [u8; 8] = b.get(..8)?.try_into().ok()?;
    let logical: [u8; 4] = b.get(8..12)?.try_into().ok()?;
    if b.len() != 12 {
        return None;
    }
    Some(Timestamp {
        wall_ms: u64::from_be_bytes(wall),
        logical: u32::from_be_bytes(logical),
    })
}

/// Meta merge: join version vectors and causal records, max timestamps.
/// Every operand was encoded by this engine; a damaged one fails the merge
/// (RocksDB then reports corruption: the meta column family is small and
/// has no user input).
pub(crate) fn meta_merge(
    key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    if key == META_VV {
        fold(
            existing,
            operands,
            |b| decode_vv(b).ok(),
            |a, b| a.merge(&b),
        )
        .map(|v| encode_vv(&v))
    } else if key == META_CTX {
        fold(
            existing,
            operands,
            |b| decode_context(b).ok(),
            |a, b| a.merge(&b),
        )
        .map(|c| encode_context(&c))
    } else if key == META_HLC {
        fold(existing, operands, decode_ts, |a, b| *a = (*a).max(b)).map(|t| encode_ts(t).to_vec())
    } else {
        operands.iter().last().map(|b| b.to_vec())
    }
}

/// The existing value (or the default) joined with every operand, or `None`
/// if any of them does not decode.
fn fold<T: Default>(
    existing: Option<&[u8]>,
    operands: &MergeOperands,
    decode: impl Fn(&[u8]) -> Option<T>,
    join: impl Fn(&mut T, T),
) -> Option<T> {
    let mut acc = match existing {
        Some(b) => decode(b)?,
        None => T::default(),
    };
    for op in operands.iter() {
        join(&mut acc, decode(op)?);
    }
    Some(acc)
}
