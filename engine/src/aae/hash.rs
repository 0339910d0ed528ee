//! Hashes of the anti-entropy tree (xxh3).

/// 64-bit hash of a key: its top [`super::SEGMENT_BITS`] bits pick the
/// segment, all 64 order `aae_keys` and name the key in key-hash lists.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The segment (leaf index) of a key hash.
pub fn segment_of(kh: u64) -> u32 {
    (kh >> (64 - super::SEGMENT_BITS)) as u32
}

/// 128-bit hash of a key and its canonical state bytes. Never zero: zero
/// stands for "absent".
pub fn entry_hash(key: &[u8], state: &[u8]) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&(key.len() as u32).to_le_bytes());
    h.update(key);
    h.update(state);
    h.digest128().max(1)
}
