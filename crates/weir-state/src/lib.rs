//! Keyed state, partitioned into key groups.
//!
//! A keyed operator subtask owns a contiguous range of key groups (see
//! `weir_types::keygroup`). [`KeyedState`] keeps its keys in one flat table ([`KeyTable`]),
//! each entry tagged with its key group, so a snapshot is a list of (key group, entries)
//! sections and a restore at a different parallelism keeps exactly the sections of the key
//! groups the new subtask owns, from whichever old subtasks held them.
//!
//! This is the in-memory backend (the default). Snapshots are bincode; the synchronous part of
//! a checkpoint is [`KeyedState::snapshot`], which serialises the maps; the upload happens
//! elsewhere, asynchronously.
//!
//! [`KeyedBackend`] puts this and the RocksDB backend (cargo feature `rocksdb`) behind one type.
//!
//! Architecture invariant: no network or object-store I/O; bytes in, bytes out (the RocksDB
//! backend keeps a scratch database on local disk that nothing needs after the process).

mod backend;
mod key;
mod prefetch;
#[cfg(feature = "rocksdb")]
mod rocks;
mod table;

pub use backend::KeyedBackend;
pub use key::KeyBytes;
pub use prefetch::read as prefetch_read;
pub use table::{KeyTable, PREFETCH_DISTANCE};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::Range;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("corrupt state snapshot: {0}")]
    Corrupt(String),
    #[error("state snapshot has max parallelism {found}, the job has {expected}")]
    MaxParallelismMismatch { found: u32, expected: u32 },
    #[error("state backend: {0}")]
    Backend(String),
    #[error("cannot encode state: {0}")]
    Encode(String),
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// A fast hasher for keys already well distributed or short (FxHash-style, mixed at the end).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        weir_types::keygroup::fmix64(self.0)
    }
    /// Eight bytes at a time, the tail (if any) as one zero-padded word. (Copying each
    /// chunk into a buffer of variable length cost a `memcpy` call per word: `perf` put a
    /// tenth of q4 in hashing 18-byte keys.)
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            self.write_u64(u64::from_le_bytes(word));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            for (d, s) in word.iter_mut().zip(tail) {
                *d = *s;
            }
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64)
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64)
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[derive(Serialize, Deserialize)]
struct Snapshot<K, V> {
    max_parallelism: u32,
    groups: Vec<(u32, Vec<(K, V)>)>,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Key groups with their entries: the content of a snapshot.
pub(crate) type Groups<K, V> = Vec<(u32, Vec<(K, V)>)>;

/// The portable snapshot format shared by every backend.
pub(crate) fn encode_snapshot<K: Serialize, V: Serialize>(
    max_parallelism: u32,
    groups: Vec<(u32, Vec<(K, V)>)>,
) -> Result<Vec<u8>> {
    encode(&Snapshot {
        max_parallelism,
        groups,
    })
}

pub(crate) fn decode_snapshot<K: DeserializeOwned, V: DeserializeOwned>(
    bytes: &[u8],
    max_parallelism: u32,
) -> Result<Groups<K, V>> {
    let (snap, _): (Snapshot<K, V>, usize) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| StateError::Corrupt(e.to_string()))?;
    if snap.max_parallelism != max_parallelism {
        return Err(StateError::MaxParallelismMismatch {
            found: snap.max_parallelism,
            expected: max_parallelism,
        });
    }
    if let Some((kg, _)) = snap.groups.iter().find(|(kg, _)| *kg >= max_parallelism) {
        return Err(StateError::Corrupt(format!("key group {kg} out of range")));
    }
    Ok(snap.groups)
}

/// Keyed state of one subtask: key -> value, each key in one of the owned key groups.
#[derive(Debug, Clone)]
pub struct KeyedState<K, V> {
    range: Range<u32>,
    max_parallelism: u32,
    table: KeyTable<K, V>,
}

impl<K, V> KeyedState<K, V>
where
    K: Hash + Eq + Serialize + DeserializeOwned + Clone,
    V: Serialize + DeserializeOwned + Clone,
{
    pub fn new(range: Range<u32>, max_parallelism: u32) -> Self {
        Self {
            range,
            max_parallelism,
            table: KeyTable::default(),
        }
    }

    pub fn key_groups(&self) -> Range<u32> {
        self.range.clone()
    }

    /// The value of `key` in `key_group`, inserted by `init` if absent. Panics if the key
    /// group is not owned: routing guarantees it, so a miss is a bug, not bad input.
    #[inline]
    pub fn entry(&mut self, key_group: u32, key: K, init: impl FnOnce() -> V) -> &mut V {
        assert!(
            self.range.contains(&key_group),
            "key group {key_group} routed to a subtask owning {:?}",
            self.range
        );
        self.table.entry(key_group, key, init)
    }

    /// Starts loading where `key` lives (see [`KeyTable::prefetch`]).
    #[inline]
    pub fn prefetch<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.table.prefetch(key)
    }

    pub fn owns(&self, key_group: u32) -> bool {
        self.range.contains(&key_group)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.table.iter().map(|(_, k, v)| (k, v))
    }

    /// Serialises all owned key groups.
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        // References: serialised as the values themselves, without copying the state first.
        let mut sections: Vec<Vec<(&K, &V)>> = self.range.clone().map(|_| Vec::new()).collect();
        for (kg, k, v) in self.table.iter() {
            sections[(kg - self.range.start) as usize].push((k, v));
        }
        let groups = self
            .range
            .clone()
            .zip(sections)
            .filter(|(_, entries)| !entries.is_empty())
            .collect();
        encode_snapshot(self.max_parallelism, groups)
    }

    /// Adds the key groups this subtask owns from one old subtask's snapshot.
    pub fn restore_from(&mut self, bytes: &[u8]) -> Result<()> {
        for (kg, entries) in decode_snapshot::<K, V>(bytes, self.max_parallelism)? {
            if self.owns(kg) {
                for (k, v) in entries {
                    // a key twice in snapshots: the later one wins, as a map extend did
                    self.table.insert(kg, k, v);
                }
            }
        }
        Ok(())
    }
}

/// Encodes any serde value the way operator (non-keyed) state is stored. An error (a value
/// serde cannot encode) fails the snapshot: an empty snapshot would restore as no state.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| StateError::Encode(e.to_string()))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(bytes, config())
        .map(|(v, _)| v)
        .map_err(|e| StateError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_types::keygroup::{hash_i64, key_group, key_group_range};

    fn fill(par: u32, max: u32, keys: i64) -> Vec<Vec<u8>> {
        (0..par)
            .map(|s| {
                let mut st = KeyedState::<i64, u64>::new(key_group_range(s, max, par), max);
                for k in 0..keys {
                    let kg = key_group(hash_i64(k), max);
                    if st.owns(kg) {
                        *st.entry(kg, k, || 0) = k as u64 * 10;
                    }
                }
                st.snapshot().unwrap()
            })
            .collect()
    }

    #[test]
    fn rescale_2_to_3_keeps_every_key_exactly_once() {
        let max = 128;
        let snaps = fill(2, max, 1000);
        let mut total = 0;
        for s in 0..3 {
            let mut st = KeyedState::<i64, u64>::new(key_group_range(s, max, 3), max);
            for snap in &snaps {
                st.restore_from(snap).unwrap();
            }
            for (k, v) in st.iter() {
                assert_eq!(*v, *k as u64 * 10);
                assert!(st.owns(key_group(hash_i64(*k), max)));
            }
            total += st.len();
        }
        assert_eq!(total, 1000);
    }

    /// Runs the same updates through a backend, snapshots at parallelism 2, restores at 3.
    fn backend_rescale(make: impl Fn(std::ops::Range<u32>) -> KeyedBackend<i64, u64>) {
        let max = 64;
        let mut snaps = vec![];
        for s in 0..2 {
            let mut b = make(key_group_range(s, max, 2));
            for round in 0..3 {
                for k in 0..500i64 {
                    let kg = key_group(hash_i64(k), max);
                    if b.owns(kg) {
                        let seen = b.update(
                            kg,
                            k,
                            || 0,
                            |v| {
                                *v += 1;
                                *v
                            },
                        );
                        assert_eq!(seen.unwrap(), round + 1);
                    }
                }
            }
            snaps.push(b.snapshot().unwrap());
        }
        let mut total = 0;
        for s in 0..3 {
            let mut b = make(key_group_range(s, max, 3));
            for snap in &snaps {
                b.restore_from(snap).unwrap();
            }
            for k in 0..500i64 {
                let kg = key_group(hash_i64(k), max);
                if b.owns(kg) {
                    assert_eq!(b.update(kg, k, || 0, |v| *v).unwrap(), 3);
                    total += 1;
                }
            }
        }
        assert_eq!(total, 500);
    }

    #[test]
    fn memory_backend_rescales() {
        backend_rescale(|r| KeyedBackend::memory(r, 64));
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn rocksdb_backend_rescales_and_matches_memory_format() {
        let dir = tempfile::tempdir().unwrap();
        backend_rescale(|r| KeyedBackend::rocksdb(dir.path(), r, 64).unwrap());
        // A RocksDB snapshot restores into the in-memory backend and back.
        let mut rocks = KeyedBackend::<i64, u64>::rocksdb(dir.path(), 0..64, 64).unwrap();
        rocks
            .update(key_group(hash_i64(7), 64), 7, || 0, |v| *v = 41)
            .unwrap();
        let mut mem = KeyedBackend::<i64, u64>::memory(0..64, 64);
        mem.restore_from(&rocks.snapshot().unwrap()).unwrap();
        assert_eq!(
            mem.update(key_group(hash_i64(7), 64), 7, || 0, |v| *v)
                .unwrap(),
            41
        );
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn rocksdb_scratch_folders_of_dead_processes_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0 is never a process's folder in /proc, so this one's owner is gone
        let dead = dir.path().join("weir-rocksdb-0-1-0");
        let alive = dir
            .path()
            .join(format!("weir-rocksdb-{}-1-0", std::process::id()));
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::create_dir_all(&alive).unwrap();
        let _b = KeyedBackend::<i64, u64>::rocksdb(dir.path(), 0..4, 4).unwrap();
        assert!(!dead.exists(), "a dead process's folder stays");
        assert!(alive.exists(), "a live process's folder was deleted");
    }

    #[test]
    fn corrupt_and_mismatched_snapshots_are_errors() {
        let mut st = KeyedState::<i64, u64>::new(0..64, 64);
        assert!(matches!(
            st.restore_from(b"\xff\xff\xff"),
            Err(StateError::Corrupt(_))
        ));
        let other = fill(1, 128, 10).remove(0);
        assert!(matches!(
            st.restore_from(&other),
            Err(StateError::MaxParallelismMismatch {
                found: 128,
                expected: 64
            })
        ));
    }
}
