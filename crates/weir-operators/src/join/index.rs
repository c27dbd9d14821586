//! [`SlotIndex`]: a join side's key hash → its first key slot, in one flat table that a
//! caller can prefetch rows ahead.
//!
//! Why not a `HashMap<u64, u32>`: a probe was two dependent cache misses (the control bytes,
//! then the bucket) that nothing could start early; `perf` of q4 put a fifth of the join's
//! time there. Here an entry is the hash and the slot side by side (16 bytes, four per cache
//! line), found by linear probing from the hash's place, and [`SlotIndex::prefetch`] loads
//! that place while earlier rows are being joined. Entries are removed by shifting later
//! entries of the run back (no tombstones), so lookups stay short however many keys have
//! come and gone.

/// An entry with no slot.
const EMPTY: u32 = u32::MAX;
const MIN_BITS: u32 = 4;

#[derive(Clone, Copy)]
struct Entry {
    hash: u64,
    slot: u32,
}

const VACANT: Entry = Entry {
    hash: 0,
    slot: EMPTY,
};

pub(super) struct SlotIndex {
    entries: Vec<Entry>,
    /// 64 - log2(entries.len())
    shift: u32,
    len: usize,
}

impl Default for SlotIndex {
    fn default() -> Self {
        Self::with_bits(MIN_BITS)
    }
}

impl SlotIndex {
    fn with_bits(bits: u32) -> Self {
        Self {
            entries: vec![VACANT; 1 << bits],
            shift: 64 - bits,
            len: 0,
        }
    }

    /// The entry's home: the upper bits of the Fibonacci-multiplied hash (the partitioning
    /// hash's low bits are alike within a subtask; the upper bits of the product are not).
    #[inline]
    fn home(&self, hash: u64) -> usize {
        (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// Where `hash` is, or the vacant place where it would go.
    #[inline]
    fn place(&self, hash: u64) -> usize {
        let mask = self.mask();
        let mut i = self.home(hash);
        loop {
            let e = self.entries[i];
            if e.slot == EMPTY || e.hash == hash {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// Starts loading `hash`'s place, so a lookup of it a few rows later hits the cache.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        weir_state::prefetch_read(&self.entries[self.home(hash)]);
    }

    #[inline]
    pub(super) fn get(&self, hash: u64) -> Option<u32> {
        let e = self.entries[self.place(hash)];
        (e.slot != EMPTY).then_some(e.slot)
    }

    /// Sets `hash`'s slot (adding the hash if absent).
    pub(super) fn insert(&mut self, hash: u64, slot: u32) {
        debug_assert_ne!(slot, EMPTY);
        // At most half full: runs stay short.
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        let i = self.place(hash);
        if self.entries[i].slot == EMPTY {
            self.len += 1;
        }
        self.entries[i] = Entry { hash, slot };
    }

    /// Removes `hash` (if present), shifting back the entries after it in its run that may
    /// live at its place.
    pub(super) fn remove(&mut self, hash: u64) {
        let mask = self.mask();
        let mut hole = self.place(hash);
        if self.entries[hole].slot == EMPTY {
            return;
        }
        self.len -= 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let e = self.entries[j];
            if e.slot == EMPTY {
                break;
            }
            // `e` may move into the hole unless its home lies cyclically in (hole, j].
            let home = self.home(e.hash);
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole] = VACANT;
    }

    fn grow(&mut self) {
        let bits = 64 - self.shift + 1;
        let old = std::mem::replace(self, Self::with_bits(bits));
        for e in old.entries {
            if e.slot != EMPTY {
                let i = self.place(e.hash);
                self.entries[i] = e;
                self.len += 1;
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Random inserts, updates and removals, checked against a HashMap.
    #[test]
    fn agrees_with_a_hash_map_through_inserts_and_removals() {
        let mut idx = SlotIndex::default();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // 512 distinct hashes: at up to half load, runs of neighbours form (and wrap
            // at the end of the table), so removals shift entries back.
            let hash = (x % 512).wrapping_mul(0x1000_0000_0000_0001) ^ (x % 7);
            if x.is_multiple_of(3) {
                idx.remove(hash);
                model.remove(&hash);
            } else {
                idx.insert(hash, step);
                model.insert(hash, step);
            }
            if step.is_multiple_of(997) {
                assert_eq!(idx.len(), model.len());
                for h in 0..600u64 {
                    let h = (h % 512).wrapping_mul(0x1000_0000_0000_0001) ^ (h % 7);
                    assert_eq!(idx.get(h), model.get(&h).copied(), "hash {h:#x}");
                }
            }
        }
        for (h, s) in &model {
            assert_eq!(idx.get(*h), Some(*s));
        }
    }

    #[test]
    fn removing_everything_leaves_it_empty() {
        let mut idx = SlotIndex::default();
        for h in 0..10_000u64 {
            idx.insert(h << 40, h as u32);
        }
        for h in 0..10_000u64 {
            idx.remove(h << 40);
            assert_eq!(idx.get(h << 40), None);
        }
        assert_eq!(idx.len(), 0);
        assert!(idx.entries.iter().all(|e| e.slot == EMPTY));
    }
}
