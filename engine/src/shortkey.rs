//! A key as the in-memory indexes hold it (the type cache, the anti-entropy
//! tree's dirty set), and an OR-Set's element: in place when short, so that
//! a lookup compares its bytes without reaching a separate allocation and a
//! short key costs no allocation at all. Measured (2026-11-27, `hot
//! counter`, 16-byte keys): the type cache's lookup took about 10 % of a
//! counter increment's time with 192-byte entries and keys on the heap,
//! nearly all of it cache misses. An OR-Set's search compares the element
//! with several others per node of its map, and reached each one's bytes
//! on the heap (BENCHMARKS.md, "OR-Set elements in place").

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
    #[inline]
    fn cmp(&self, other: &ShortKey) -> std::cmp::Ordering {
        match (&self.0, &other.0) {
            // Two keys in place compare as their zero-padded arrays, three
            // big-endian words (no call to `memcmp`), then by length: the
            // arrays tie only if one key is the other followed by zeros,
            // and then the shorter is the smaller, as in byte order.
            (Repr::Inline(n, a), Repr::Inline(m, b)) => {
                words(a).cmp(&words(b)).then_with(|| n.cmp(m))
            }
            _ => self.bytes().cmp(other.bytes()),
        }
    }
}

/// A key's in-place bytes as three big-endian words (the last padded with
/// zeros): they order as the bytes do.
#[inline]
fn words(b: &[u8; INLINE_KEY]) -> [u64; 3] {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        let end = (i + 8).min(INLINE_KEY);
        w[..end - i].copy_from_slice(&b[i..end]);
        u64::from_be_bytes(w)
    };
    [word(0), word(8), word(16)]
}

/// Encoded as its bytes (`Vec<u8>`'s encoding: a length, then the bytes).
impl bincode::Encode for ShortKey {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.bytes().encode(e)
    }
}

/// Decoded from `Vec<u8>`'s encoding, with the same claims on the decoder's
/// limit; a short key is read in place, with no allocation.
impl<C> bincode::Decode<C> for ShortKey {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        use bincode::de::read::Reader;
        let len = crate::crdt::decode_len(d)?;
        d.claim_container_read::<u8>(len)?;
        if len > INLINE_KEY {
            let mut v = vec![0u8; len];
            d.reader().read(&mut v)?;
            return Ok(ShortKey(Repr::Heap(v.into())));
        }
        let mut b = [0u8; INLINE_KEY];
        d.reader().read(&mut b[..len])?;
        Ok(ShortKey(Repr::Inline(len as u8, b)))
    }
}

bincode::impl_borrow_decode!(ShortKey);

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

    /// Keys that are prefixes of each other, end in zero bytes, or differ
    /// in their last in-place byte order as their bytes (the in-place
    /// comparison ties the zero-padded arrays, then the lengths); in place
    /// and on the heap alike, and against each other.
    #[test]
    fn short_keys_order_as_their_bytes() {
        let mut bytes: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"a\0\0".to_vec(),
            b"a\0b".to_vec(),
            b"ab".to_vec(),
            vec![0xff; INLINE_KEY],
            vec![0xff; INLINE_KEY + 1],
        ];
        for n in [
            7,
            8,
            9,
            15,
            16,
            17,
            INLINE_KEY - 1,
            INLINE_KEY,
            INLINE_KEY + 1,
        ] {
            let mut k = vec![b'x'; n];
            bytes.push(k.clone());
            k.push(0);
            bytes.push(k.clone());
            if let Some(b) = k.last_mut() {
                *b = 1;
            }
            bytes.push(k);
        }
        for a in &bytes {
            for b in &bytes {
                let (ka, kb) = (ShortKey::new(a), ShortKey::new(b));
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(ka == kb, a == b);
            }
        }
    }

    /// A key encodes as `Vec<u8>` does and decodes back, in place or not;
    /// a length past the decoder's limit is refused.
    #[test]
    fn a_short_key_encodes_as_its_bytes() {
        let cfg = bincode::config::standard();
        for n in [0, 1, INLINE_KEY, INLINE_KEY + 1, 300] {
            let bytes: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let enc = bincode::encode_to_vec(ShortKey::new(&bytes), cfg).unwrap();
            assert_eq!(enc, bincode::encode_to_vec(&bytes, cfg).unwrap());
            let (back, used): (ShortKey, usize) = bincode::decode_from_slice(&enc, cfg).unwrap();
            assert_eq!((back.bytes(), used), (&bytes[..], enc.len()));
            assert!(bincode::decode_from_slice::<ShortKey, _>(&enc[..enc.len() - 1], cfg).is_err());
        }
        let long = bincode::encode_to_vec(vec![7u8; 64], cfg).unwrap();
        let limited = cfg.with_limit::<32>();
        assert!(bincode::decode_from_slice::<ShortKey, _>(&long, limited).is_err());
    }
}
