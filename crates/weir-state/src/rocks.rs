//! Keyed state in RocksDB: one database per subtask in a scratch folder, keys prefixed with
//! their key group (big-endian, so a key group's entries are contiguous). Snapshots iterate the
//! database into the portable format of [`crate::KeyedState`]; nothing on local disk has to
//! survive the process.

use crate::{decode_snapshot, encode_snapshot, Result, StateError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub struct RocksState<K, V> {
    db: Option<rocksdb::DB>,
    path: PathBuf,
    range: Range<u32>,
    max_parallelism: u32,
    _types: PhantomData<(K, V)>,
}

fn db_err(e: rocksdb::Error) -> StateError {
    StateError::Backend(e.to_string())
}

/// Deletes the scratch databases of processes that no longer run (a task manager killed with
/// SIGKILL never drops its state). Linux only (reads `/proc`); a live process with a reused
/// pid keeps its folder, which errs on the safe side.
fn sweep_dead(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("weir-rocksdb-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!(path = %entry.path().display(), "deleting the RocksDB scratch folder of a process that is gone");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> RocksState<K, V> {
    pub fn open(dir: &Path, range: Range<u32>, max_parallelism: u32) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StateError::Backend(format!("{}: {e}", dir.display())))?;
        sweep_dead(dir);
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(
            "weir-rocksdb-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        let db = rocksdb::DB::open(&opts, &path).map_err(db_err)?;
        Ok(Self {
            db: Some(db),
            path,
            range,
            max_parallelism,
            _types: PhantomData,
        })
    }

    fn db(&self) -> Result<&rocksdb::DB> {
        self.db
            .as_ref()
            .ok_or_else(|| StateError::Backend("database closed".into()))
    }

    pub fn owns(&self, key_group: u32) -> bool {
        self.range.contains(&key_group)
    }

    pub fn key_groups(&self) -> Range<u32> {
        self.range.clone()
    }

    fn db_key(key_group: u32, key: &K) -> Result<Vec<u8>> {
        let mut k = key_group.to_be_bytes().to_vec();
        k.extend(crate::encode(key)?);
        Ok(k)
    }

    pub fn update<R>(
        &mut self,
        key_group: u32,
        key: &K,
        init: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<R> {
        let db_key = Self::db_key(key_group, key)?;
        let db = self.db()?;
        let mut value = match db.get_pinned(&db_key).map_err(db_err)? {
            Some(bytes) => crate::decode(&bytes)?,
            None => init(),
        };
        let r = f(&mut value);
        db.put(&db_key, crate::encode(&value)?).map_err(db_err)?;
        Ok(r)
    }

    pub fn snapshot(&self) -> Result<Vec<u8>> {
        let mut groups: Vec<(u32, Vec<(K, V)>)> = Vec::new();
        for item in self.db()?.iterator(rocksdb::IteratorMode::Start) {
            let (k, v) = item.map_err(db_err)?;
            let kg = u32::from_be_bytes(
                k.get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StateError::Corrupt("short key".into()))?,
            );
            let entry = (crate::decode(&k[4..])?, crate::decode(&v)?);
            match groups.last_mut() {
                Some((g, entries)) if *g == kg => entries.push(entry),
                _ => groups.push((kg, vec![entry])),
            }
        }
        encode_snapshot(self.max_parallelism, groups)
    }

    pub fn restore_from(&mut self, bytes: &[u8]) -> Result<()> {
        let groups = decode_snapshot::<K, V>(bytes, self.max_parallelism)?;
        let db = self.db()?;
        let mut batch = rocksdb::WriteBatch::default();
        for (kg, entries) in groups {
            if self.range.contains(&kg) {
                for (k, v) in entries {
                    batch.put(Self::db_key(kg, &k)?, crate::encode(&v)?);
                }
            }
        }
        db.write(batch).map_err(db_err)
    }
}

impl<K, V> Drop for RocksState<K, V> {
    fn drop(&mut self) {
        self.db = None;
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
