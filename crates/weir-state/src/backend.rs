//! The keyed-state backends behind one type: in memory (default) or RocksDB (cargo feature
//! `rocksdb`, job setting `"state_backend": "rocksdb"`). Both snapshot to the same format, so a
//! savepoint taken with one restores with the other, at any parallelism.

use crate::{KeyedState, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hash::Hash;
use std::ops::Range;

pub enum KeyedBackend<K, V> {
    Memory(KeyedState<K, V>),
    #[cfg(feature = "rocksdb")]
    RocksDb(crate::rocks::RocksState<K, V>),
}

impl<K, V> KeyedBackend<K, V>
where
    K: Hash + Eq + Serialize + DeserializeOwned + Clone,
    V: Serialize + DeserializeOwned + Clone,
{
    pub fn memory(range: Range<u32>, max_parallelism: u32) -> Self {
        KeyedBackend::Memory(KeyedState::new(range, max_parallelism))
    }

    /// A RocksDB instance in a fresh folder under `dir` (deleted when dropped).
    #[cfg(feature = "rocksdb")]
    pub fn rocksdb(dir: &std::path::Path, range: Range<u32>, max_parallelism: u32) -> Result<Self> {
        Ok(KeyedBackend::RocksDb(crate::rocks::RocksState::open(
            dir,
            range,
            max_parallelism,
        )?))
    }

    pub fn owns(&self, key_group: u32) -> bool {
        match self {
            KeyedBackend::Memory(s) => s.owns(key_group),
            #[cfg(feature = "rocksdb")]
            KeyedBackend::RocksDb(s) => s.owns(key_group),
        }
    }

    pub fn key_groups(&self) -> Range<u32> {
        match self {
            KeyedBackend::Memory(s) => s.key_groups(),
            #[cfg(feature = "rocksdb")]
            KeyedBackend::RocksDb(s) => s.key_groups(),
        }
    }

    /// Applies `f` to the value of `key` (created by `init` if absent).
    #[inline]
    pub fn update<R>(
        &mut self,
        key_group: u32,
        key: K,
        init: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<R> {
        match self {
            KeyedBackend::Memory(s) => Ok(f(s.entry(key_group, key, init))),
            #[cfg(feature = "rocksdb")]
            KeyedBackend::RocksDb(s) => s.update(key_group, &key, init, f),
        }
    }

    /// Starts loading `key`'s place in memory: call it [`crate::PREFETCH_DISTANCE`] rows
    /// before the row's [`Self::update`] (the in-memory backend; RocksDB ignores it).
    #[inline]
    pub fn prefetch<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + ?Sized,
    {
        match self {
            KeyedBackend::Memory(s) => s.prefetch(key),
            #[cfg(feature = "rocksdb")]
            KeyedBackend::RocksDb(_) => {}
        }
    }

    pub fn snapshot(&self) -> Result<Vec<u8>> {
        match self {
            KeyedBackend::Memory(s) => s.snapshot(),
            #[cfg(feature = "rocksdb")]
            KeyedBackend::RocksDb(s) => s.snapshot(),
        }
    }

    pub fn restore_from(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            KeyedBackend::Memory(s) => s.restore_from(bytes),
            #[cfg(feature = "rocksdb")]
            KeyedBackend::RocksDb(s) => s.restore_from(bytes),
        }
    }
}
