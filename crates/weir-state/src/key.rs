//! [`KeyBytes`]: an encoded key (Arrow's row format of the key columns) that keeps short keys
//! inline.
//!
//! Why: a `Vec<u8>` key cost an allocation and a free per row (a lookup built the key to
//! look it up), and every comparison followed its pointer, a cache miss of its own. Keys of
//! up to [`INLINE`] bytes (two integer columns are 18 in the row format) live in the value
//! itself: built on the stack, compared in place. Longer keys are boxed, as before.
//!
//! A `KeyBytes` hashes, compares and serialises exactly as the byte slice it holds (and so
//! as the `Vec<u8>` it replaced): snapshots taken with `Vec<u8>` keys restore into it, and a
//! map keyed by it is looked up with a `&[u8]`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Longest key kept inline.
pub const INLINE: usize = 22;

/// A key's bytes: inline up to [`INLINE`] bytes, boxed beyond. The representation is
/// private so that every byte string has one form (inline exactly when it fits, unused
/// inline bytes zero): two inline keys then compare as plain arrays, and equality agrees
/// with the bytes' (which `Borrow<[u8]>` requires).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBytes(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl KeyBytes {
    #[inline]
    pub fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            KeyBytes(Repr::Inline {
                len: key.len() as u8,
                bytes,
            })
        } else {
            KeyBytes(Repr::Heap(key.into()))
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Heap(b) => b,
        }
    }

    /// Whether the key is kept inline (no allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl From<&[u8]> for KeyBytes {
    fn from(key: &[u8]) -> Self {
        KeyBytes::new(key)
    }
}

impl From<Vec<u8>> for KeyBytes {
    fn from(key: Vec<u8>) -> Self {
        if key.len() <= INLINE {
            KeyBytes::new(&key)
        } else {
            KeyBytes(Repr::Heap(key.into_boxed_slice()))
        }
    }
}

impl std::ops::Deref for KeyBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for KeyBytes {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for KeyBytes {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Hash for KeyBytes {
    /// As the byte slice (required by `Borrow<[u8]>`).
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Serialize for KeyBytes {
    /// As a `Vec<u8>` would be (a sequence of bytes).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for KeyBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(d).map(KeyBytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode, FastHasher};
    use std::hash::BuildHasher;

    fn hash<T: Hash + ?Sized>(v: &T) -> u64 {
        std::hash::BuildHasherDefault::<FastHasher>::default().hash_one(v)
    }

    #[test]
    fn short_and_long_keys_behave_as_their_bytes() {
        for len in [0, 1, 9, 18, INLINE, INLINE + 1, 40] {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) | 1).collect();
            let k = KeyBytes::from(bytes.as_slice());
            assert_eq!(k.is_inline(), len <= INLINE);
            assert_eq!(k.as_slice(), bytes.as_slice());
            assert_eq!(k, KeyBytes::from(bytes.clone()), "one form per byte string");
            assert_eq!(hash(&k), hash(bytes.as_slice()), "hash as the slice");
            // Serialised as the Vec<u8> keys of older snapshots were, both ways.
            assert_eq!(encode(&k).unwrap(), encode(&bytes).unwrap());
            assert_eq!(decode::<KeyBytes>(&encode(&bytes).unwrap()).unwrap(), k);
        }
        // A shorter key is not equal to a longer one with trailing zeros.
        assert_ne!(KeyBytes::new(&[1, 0]), KeyBytes::new(&[1]));
    }

    #[test]
    fn a_map_keyed_by_it_is_looked_up_with_a_slice() {
        let mut m = crate::FastMap::<KeyBytes, u32>::default();
        m.insert(KeyBytes::new(b"short"), 1);
        m.insert(KeyBytes::new(&[7u8; 30]), 2);
        assert_eq!(m.get(&b"short"[..]), Some(&1));
        assert_eq!(m.get(&[7u8; 30][..]), Some(&2));
        assert_eq!(m.get(&b"other"[..]), None);
    }
}
