//! A key as the in-memory indexes hold it (the type cache, the anti-entropy
//! tree's dirty set): in place when short, so that a lookup compares its
//! bytes without reaching a separate allocation and a short key costs no
//! allocation at all. Measured (2026-11-27, `hot counter`, 16-byte keys):
//! the type cache's lookup took about 10 % of a counter increment's time
//! with 192-byte entries and keys on the heap, nearly all of it cache
//! misses.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Key bytes held in place, up to this length (the key then takes 24
/// bytes: its length and bytes, or a pointer and length).
pub(crate) const INLINE_KEY: usize = 22;

/// A key: in place up to [`INLINE_KEY`] bytes, else on the heap. Hashes,
/// compares and orders as its bytes, so maps of it are looked up with a
/// plain `&[u8]` (`Borrow<[u8]>`).
#[derive(Clone)]
pub(crate) struct ShortKey(Repr);

#[derive(Clone)]
enum Repr {
    Inline(u8, [u8; INLINE_KEY]),
    Heap(Box<[u8]>),
}

impl ShortKey {
    /// The key `key`.
    pub(crate) fn new(key: &[u8]) -> ShortKey {
        ShortKey(if key.len() <= INLINE_KEY {
            let mut b = [0u8; INLINE_KEY];
            b[..key.len()].copy_from_slice(key);
            Repr::Inline(key.len() as u8, b)
        } else {
            Repr::Heap(key.into())
        })
    }

    /// The key's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(n, b) => &b[..*n as usize],
            Repr::Heap(b) => b,
        }
    }
}

impl Deref for ShortKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Borrow<[u8]> for ShortKey {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

impl PartialEq for ShortKey {
    fn eq(&self, other: &ShortKey) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for ShortKey {}

impl PartialOrd for ShortKey {
    fn partial_cmp(&self, other: &ShortKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ShortKey {
    fn cmp(&self, other: &ShortKey) -> std::cmp::Ordering {
        self.bytes().cmp(other.bytes())
    }
}

impl Hash for ShortKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // As the bytes hash: `Borrow<[u8]>` requires it.
        self.bytes().hash(h)
    }
}

impl std::fmt::Debug for ShortKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.bytes().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Keys of every length around the inline limit keep their bytes, are
    /// found in a map by them, and order and compare as them.
    #[test]
    fn a_short_key_is_its_bytes() {
        let key = |n: usize| (0..n).map(|i| (i * 7 + n) as u8).collect::<Vec<u8>>();
        let mut m = HashMap::new();
        for n in 0..=INLINE_KEY + 3 {
            let k = ShortKey::new(&key(n));
            assert_eq!(k.bytes(), &key(n)[..]);
            m.insert(k, n);
        }
        for n in 0..=INLINE_KEY + 3 {
            assert_eq!(m.get(&key(n)[..]), Some(&n), "key of {n} bytes");
            let mut other = key(n);
            if let Some(b) = other.last_mut() {
                *b ^= 1;
                assert_eq!(m.get(&other[..]), None);
            }
        }
        let mut keys: Vec<ShortKey> = m.into_keys().collect();
        keys.sort();
        let mut bytes: Vec<Vec<u8>> = (0..=INLINE_KEY + 3).map(key).collect();
        bytes.sort();
        assert!(keys
            .iter()
            .map(ShortKey::bytes)
            .eq(bytes.iter().map(|b| &b[..])));
        assert_eq!(std::mem::size_of::<ShortKey>(), 24);
    }
}
