//! RocksDB merge operators. For the state column family, full and partial
//! merge are the CRDT join: every stored value and operand is an encoded
//! state, so blind writes (deltas, remote states) need no read. For the meta
//! column family, the version vector is joined and the clock maxed.

use super::{META_HLC, META_VV};
use crate::causal::Timestamp;
use crate::codec::{decode_state, decode_vv, encode_state, encode_vv};
use crate::crdt::State;
use rocksdb::MergeOperands;

/// Join an optional existing value with operands. Returns `None` (which
/// RocksDB reports as corruption on read) only if stored bytes are damaged:
/// types are checked before any operand is written.
pub(crate) fn state_full_merge(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    let mut acc: Option<State> = match existing {
        Some(b) => Some(decode_state(b).ok()?),
        None => None,
    };
    for op in operands.iter() {
        let s = decode_state(op).ok()?;
        match acc.as_mut() {
            None => acc = Some(s),
            Some(a) => a.try_join(&s).ok()?,
        }
    }
    acc.map(|s| encode_state(&s))
}

/// Join operands with each other (no base): the join is associative.
pub(crate) fn state_partial_merge(
    key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    state_full_merge(key, existing, operands)
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

/// Meta merge: join version vectors, max timestamps.
pub(crate) fn meta_merge(
    key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    if key == META_VV {
        let mut vv = match existing {
            Some(b) => decode_vv(b).ok()?,
            None => Default::default(),
        };
        for op in operands.iter() {
            vv.merge(&decode_vv(op).ok()?);
        }
        Some(encode_vv(&vv))
    } else if key == META_HLC {
        let mut ts = match existing {
            Some(b) => decode_ts(b)?,
            None => Timestamp::default(),
        };
        for op in operands.iter() {
            ts = ts.max(decode_ts(op)?);
        }
        Some(encode_ts(ts).to_vec())
    } else {
        operands.iter().last().map(|b| b.to_vec())
    }
}
