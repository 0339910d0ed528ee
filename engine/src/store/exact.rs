//! Marking an older store's `types` family exact, once, at open.
//!
//! A store created with `meta/types_exact` holds a `types` entry for every
//! key with a state, so its writes read no state for a key `types` lacks
//! (see `Engine::types_exact`). Stores created before the mark may lack
//! entries (a crash under `Durability::None` before the families were
//! flushed together). [`make_exact`] walks `state` and `types` side by
//! side in key order, puts the entry each state lacks (its type, its size
//! as the reservation, its tombstone flag, all from the state itself), and
//! then the mark. A key whose state does not decode (a damaged value, or
//! parts kept side by side, FORMAT.md §4) has no type to give it: the
//! store then stays unmarked, its writes read states as before, and the
//! walk is tried again at the next open.

use super::types::{encode_entry, KeyMeta};
use super::{Options, CF_META, CF_STATE, CF_TYPES, META_TYPES_EXACT};
use crate::error::Result;
use rocksdb::DB;

/// Entries put per write batch during the walk.
const REPAIRS_PER_BATCH: usize = 4096;

/// Give every key with a state its `types` entry, then mark the store
/// exact, unless some state lacking its entry does not decode; returns
/// whether it marked the store. Runs at open, before any write. Entries
/// and the mark are written synced (the mark after the entries it vouches
/// for); a crash part-way leaves the store unmarked, and the next open
/// walks it again.
pub(crate) fn make_exact(db: &DB) -> Result<bool> {
    let state = super::cf(db, CF_STATE)?;
    let types = super::cf(db, CF_TYPES)?;
    let meta = super::cf(db, CF_META)?;
    // A state lacking its entry that does not decode has no type to give.
    let mut undecodable = false;
    let mut wb = rocksdb::WriteBatch::default();
    // One pass over each family: read ahead, and leave the block cache
    // to the writes that follow.
    let scan = || {
        let mut ro = super::state_scan();
        ro.fill_cache(false);
        ro.set_readahead_size(2 << 20);
        ro
    };
    let mut states = db.raw_iterator_cf_opt(state, scan());
    let mut entries = db.raw_iterator_cf_opt(types, scan());
    states.seek_to_first();
    entries.seek_to_first();
    while let Some(key) = states.key() {
        // Move the `types` cursor to the first entry at or after `key`.
        while entries.key().is_some_and(|t| t < key) {
            entries.next();
        }
        entries.status()?;
        if entries.key() != Some(key) {
            let value = states.value().unwrap_or_default();
            match crate::codec::decode_state(value) {
                Ok(st) => {
                    let reserved = KeyMeta::reservation_for(value.len() as u64);
                    wb.put_cf(
                        types,
                        key,
                        encode_entry(st.crdt_type(), reserved, st.has_tomb()),
                    );
                }
                Err(_) => undecodable = true,
            }
            if wb.len() >= REPAIRS_PER_BATCH {
                db.write_opt(std::mem::take(&mut wb), &Options::synced())?;
            }
        }
        states.next();
    }
    states.status()?;
    if !undecodable {
        wb.put_cf(meta, META_TYPES_EXACT, [1u8]);
    }
    if !wb.is_empty() {
        db.write_opt(wb, &Options::synced())?;
    }
    Ok(!undecodable)
}
