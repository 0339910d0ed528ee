//! What the seed corpora are recorded from: the contents of the engine
//! under test ([`populate`], every CRDT type) and of the peers that talk to
//! it ([`populate_peer`]: overlapping keys with other contents, keys the
//! fixture lacks, deltas with recorded dependencies, and deletes).

use converge::{CausalContext, Engine, KeyedDelta, Result};

/// The keys [`populate`] writes, one per CRDT type, then sixteen counters.
pub const TYPED_KEYS: [&[u8]; 8] = [b"gc", b"pn", b"gs", b"tp", b"or", b"lw", b"fw", b"mv"];

/// Fill the engine under test: every CRDT type once, and sixteen G-Counters
/// (`k00`..`k15`) so that anti-entropy has several subtrees to compare.
/// Returns the deltas of its operations.
pub fn populate(e: &Engine) -> Result<Vec<KeyedDelta>> {
    let mut d = vec![
        e.increment(b"gc", 3)?,
        e.pn_add(b"pn", -2)?,
        e.gset_add(b"gs", b"a")?,
        e.gset_add(b"gs", b"b")?,
        e.twop_add(b"tp", b"x")?,
        e.twop_add(b"tp", b"y")?,
        e.twop_remove(b"tp", b"x")?,
        e.orset_add(b"or", b"a")?,
        e.orset_add(b"or", b"b")?,
        e.orset_remove(b"or", b"a", None)?
            .ok_or_else(|| converge::Error::InvalidArgument("the add of a is removed".into()))?,
        e.lww_set(b"lw", b"v1")?,
        e.fww_set(b"fw", b"v1")?,
        e.mv_write(b"mv", b"v1", &CausalContext::new())?,
    ];
    for i in 0..16u64 {
        d.push(e.increment(format!("k{i:02}").as_bytes(), i + 1)?);
    }
    Ok(d)
}

/// Fill a peer of the engine under test: the same keys with concurrent
/// contents (so joins have work), a few keys of its own, and operations
/// made after merging a third replica's delta (so their deltas carry
/// dependencies). `third` is that replica's engine. Returns the peer's
/// deltas, in the order made.
pub fn populate_peer(peer: &Engine, third: &Engine) -> Result<Vec<KeyedDelta>> {
    let mut d = vec![
        peer.increment(b"gc", 5)?,
        peer.pn_add(b"pn", 7)?,
        peer.gset_add(b"gs", b"c")?,
        peer.twop_add(b"tp", b"z")?,
        peer.orset_add(b"or", b"a")?,
        peer.orset_add(b"or", b"c")?,
        peer.lww_set(b"lw", b"peer")?,
        peer.fww_set(b"fw", b"peer")?,
        peer.mv_write(b"mv", b"peer", &CausalContext::new())?,
    ];
    for i in (0..16u64).step_by(3) {
        d.push(peer.increment(format!("k{i:02}").as_bytes(), 100 + i)?);
    }
    for i in 0..6u64 {
        d.push(peer.gset_add(format!("p{i}").as_bytes(), b"elem")?);
    }
    let from_third = third.orset_add(b"or", b"t")?;
    peer.merge(b"or", &from_third.delta.encode())?;
    d.push(peer.orset_add(b"or", b"after-third")?);
    d.push(peer.increment(b"gc", 1)?);
    let read = peer.mv_read(b"mv")?;
    d.push(peer.mv_write(b"mv", b"resolved", &read.context)?);
    // Deletes (states with tombstones, variants 8-15), concurrent with the
    // engine under test's writes of the same keys, and one re-created.
    for key in [&b"pn"[..], b"tp", b"lw", b"fw", b"p0", b"k03"] {
        d.extend(peer.delete(key, None)?);
    }
    d.extend(peer.delete(b"or", None)?);
    d.push(peer.orset_add(b"or", b"after-delete")?);
    Ok(d)
}
