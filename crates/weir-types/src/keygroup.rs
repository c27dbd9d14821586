//! Key groups: the unit of keyed state. A key hashes (stably, across processes and versions) to
//! one of `max_parallelism` key groups; each subtask owns a contiguous range of them. Routing
//! (hash partitioning) and state ownership use the same functions, so a savepoint taken at one
//! parallelism restores at another by moving whole key groups (Flink's scheme).

use std::ops::Range;

/// MurmurHash3's 64-bit finaliser: a fast, stable bijective mix.
#[inline]
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Stable hash of an integer key.
#[inline]
pub fn hash_i64(v: i64) -> u64 {
    fmix64(v as u64)
}

/// Stable hash of a byte-string key (FNV-1a, then mixed).
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    fmix64(h)
}

/// Combines the hashes of several key columns.
#[inline]
pub fn combine(h: u64, next: u64) -> u64 {
    fmix64(h.rotate_left(5) ^ next)
}

/// The key group of a key hash.
#[inline]
pub fn key_group(hash: u64, max_parallelism: u32) -> u32 {
    (hash % u64::from(max_parallelism)) as u32
}

/// The subtask that owns a key group at a given parallelism.
#[inline]
pub fn subtask_for_key_group(key_group: u32, max_parallelism: u32, parallelism: u32) -> u32 {
    (u64::from(key_group) * u64::from(parallelism) / u64::from(max_parallelism)) as u32
}

/// The key groups a subtask owns: exactly those for which [`subtask_for_key_group`] names it.
pub fn key_group_range(subtask: u32, max_parallelism: u32, parallelism: u32) -> Range<u32> {
    let (s, m, p) = (
        u64::from(subtask),
        u64::from(max_parallelism),
        u64::from(parallelism),
    );
    let start = (s * m).div_ceil(p);
    let end = ((s + 1) * m).div_ceil(p);
    start as u32..end as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_routing_for_every_parallelism() {
        for max in [1u32, 7, 128, 1000] {
            for par in 1..=max.min(40) {
                let mut next = 0;
                for s in 0..par {
                    let r = key_group_range(s, max, par);
                    assert_eq!(r.start, next, "max {max} par {par} subtask {s}");
                    for kg in r.clone() {
                        assert_eq!(subtask_for_key_group(kg, max, par), s);
                    }
                    next = r.end;
                }
                assert_eq!(next, max);
            }
        }
    }

    #[test]
    fn hashes_are_stable() {
        // Fixed values: changing the hash would break restoring old savepoints.
        assert_eq!(hash_i64(0), 0);
        assert_eq!(hash_i64(1), 0xb456_bcfc_34c2_cb2c);
        assert_eq!(hash_bytes(b"abc"), fmix64(0xe71f_a219_0541_574b));
    }
}
