//! Object storage for everything Weir keeps: checkpoints and savepoints, the job manager's job
//! records, and the file sink's output. A [`Storage`] is a folder URL (`file:///…`, a plain
//! path, or `s3://bucket/prefix` with the `s3` feature) with the few operations Weir needs.
//!
//! [`failing::FailingStore`] wraps any store and fails chosen operations on demand, for fault
//! injection in tests.
//!
//! Architecture invariant: knows folders and bytes, nothing about checkpoints' meaning.

pub mod failing;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the source path {path:?} does not exist (give a file or a folder)")]
    MissingSource { path: String },
    #[error("invalid storage URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot use folder {path}: {source}")]
    LocalFolder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} {path}: not found")]
    NotFound { op: &'static str, path: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An object's path (relative to its [`Storage`]), size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub rel: String,
    pub size: u64,
    /// Milliseconds since the epoch.
    pub modified_ms: i64,
}

/// A folder in an object store.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
}

/// Options for S3-compatible stores, taken from the environment the way AWS tools do
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
/// `AWS_ALLOW_HTTP`).
fn open_store(url: &str) -> Result<(Arc<dyn ObjectStore>, Path, String)> {
    let invalid = |reason: String| StorageError::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    if let Some(rest) = url.strip_prefix("s3://") {
        #[cfg(feature = "s3")]
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket".into()));
            }
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_virtual_hosted_style_request(false);
            if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                b = b.with_endpoint(endpoint);
            }
            if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1") {
                b = b.with_allow_http(true);
            }
            let store = b.build().map_err(|e| invalid(e.to_string()))?;
            return Ok((
                Arc::new(store),
                Path::from(prefix),
                url.trim_end_matches('/').to_string(),
            ));
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = rest;
            return Err(invalid(
                "this build of weir has no S3 support (cargo feature `s3`)".into(),
            ));
        }
    }
    let local = if let Some(p) = url.strip_prefix("file://") {
        std::path::PathBuf::from(p)
    } else if url.contains("://") {
        return Err(invalid("unsupported scheme; use file:// or s3://".into()));
    } else {
        std::path::PathBuf::from(url)
    };
    if local.as_os_str().is_empty() {
        return Err(invalid("empty path".into()));
    }
    let abs = if local.is_absolute() {
        local
    } else {
        std::env::current_dir()
            .map_err(|e| invalid(e.to_string()))?
            .join(local)
    };
    std::fs::create_dir_all(&abs).map_err(|source| StorageError::LocalFolder {
        path: abs.display().to_string(),
        source,
    })?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(&abs)
        .map_err(|e| invalid(e.to_string()))?;
    let url = format!("file://{}", abs.display());
    Ok((Arc::new(store), Path::default(), url))
}

/// How a process opens folder URLs. Every part of Weir that opens storage (the job manager's
/// state and checkpoint folders, a task's snapshot uploads and restores, the file sink and
/// source) takes the opener of its job or task manager's config, so a test can give a whole
/// cluster stores that fail on demand ([`Opener::failing`]).
#[derive(Debug, Clone, Default)]
pub struct Opener {
    /// Failures to inject into every store opened (tests).
    faults: Option<failing::FaultSwitch>,
}

impl Opener {
    /// Opens the real store a URL names.
    pub fn real() -> Self {
        Self::default()
    }

    /// Opens every URL through a [`failing::FailingStore`] governed by `switch`.
    pub fn failing(switch: failing::FaultSwitch) -> Self {
        Self {
            faults: Some(switch),
        }
    }

    /// Opens a folder URL. Local folders are created if missing.
    pub fn open(&self, url: &str) -> Result<Storage> {
        let (store, root, url) = open_store(url.trim())?;
        let store: Arc<dyn ObjectStore> = match &self.faults {
            Some(switch) => Arc::new(failing::FailingStore::with_switch(store, switch.clone())),
            None => store,
        };
        Ok(Storage { store, root, url })
    }
}

impl Storage {
    /// Opens a folder URL. Local folders are created if missing.
    pub fn open(url: &str) -> Result<Self> {
        let (store, root, url) = open_store(url.trim())?;
        Ok(Self { store, root, url })
    }

    /// Opens a folder URL through a [`failing::FailingStore`]: the switch makes its reads or
    /// writes fail on demand (fault-injection tests of whoever is given this storage).
    pub fn open_failing(url: &str) -> Result<(Self, failing::FaultSwitch)> {
        let (store, root, url) = open_store(url.trim())?;
        let (store, switch) = failing::FailingStore::new(store);
        Ok((
            Self {
                store: Arc::new(store),
                root,
                url,
            },
            switch,
        ))
    }

    /// Wraps an existing store (tests: a failing store, an S3 client with custom settings).
    pub fn from_store(store: Arc<dyn ObjectStore>, root: &str, url: &str) -> Self {
        Self {
            store,
            root: Path::from(root),
            url: url.to_string(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A sub-folder.
    pub fn child(&self, rel: &str) -> Storage {
        Storage {
            store: self.store.clone(),
            root: self.path(rel),
            url: format!(
                "{}/{}",
                self.url.trim_end_matches('/'),
                rel.trim_matches('/')
            ),
        }
    }

    fn path(&self, rel: &str) -> Path {
        let mut p = self.root.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    fn rel(&self, p: &Path) -> String {
        p.prefix_match(&self.root)
            .map(|parts| {
                parts
                    .map(|x| x.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_else(|| p.to_string())
    }

    pub(crate) fn err(&self, op: &'static str, rel: &str, e: object_store::Error) -> StorageError {
        let path = format!("{}/{}", self.url.trim_end_matches('/'), rel);
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound { op, path },
            source => StorageError::Io { op, path, source },
        }
    }

    /// Writes an object atomically (readers see all of it or nothing).
    pub async fn put(&self, rel: &str, bytes: impl Into<Bytes>) -> Result<()> {
        self.store
            .put(&self.path(rel), PutPayload::from_bytes(bytes.into()))
            .await
            .map(|_| ())
            .map_err(|e| self.err("write", rel, e))
    }

    /// Writes an object only if none exists under `rel` (a hard link on a local folder,
    /// `If-None-Match: *` on S3): `Ok(false)` if one does. Of two writers racing on one name
    /// exactly one gets `Ok(true)`; this is what fences job managers (`weir_checkpoint::leader`).
    pub async fn put_if_absent(&self, rel: &str, bytes: impl Into<Bytes>) -> Result<bool> {
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(rel), PutPayload::from_bytes(bytes.into()), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.err("create", rel, e)),
        }
    }

    /// Starts a multipart upload of `rel` in parts of `part_bytes` (S3 needs at least 5 MiB for
    /// every part but the last). Nothing is visible under `rel` until [`PartWriter::finish`].
    pub async fn writer(&self, rel: &str, part_bytes: usize) -> Result<PartWriter> {
        let upload = self
            .store
            .put_multipart(&self.path(rel))
            .await
            .map_err(|e| self.err("start a multipart upload of", rel, e))?;
        Ok(PartWriter {
            inner: object_store::WriteMultipart::new_with_chunk_size(upload, part_bytes),
            storage: self.clone(),
            rel: rel.to_string(),
            part_bytes,
            written: 0,
        })
    }

    pub async fn get(&self, rel: &str) -> Result<Bytes> {
        let r = self
            .store
            .get(&self.path(rel))
            .await
            .map_err(|e| self.err("read", rel, e))?;
        r.bytes().await.map_err(|e| self.err("read", rel, e))
    }

    /// Bytes `range` of an object (a ranged GET on S3, a positioned read on a local folder).
    /// A range past the object's end is cut at its end.
    pub async fn get_range(&self, rel: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(&self.path(rel), range)
            .await
            .map_err(|e| self.err("read", rel, e))
    }

    /// Bytes `range` of an object into `buf` (cleared first), returned: a caller that reads
    /// a large object chunk by chunk passes the same buffers back, so its memory is not
    /// allocated again for every chunk. On a local folder this is a positioned read on a
    /// blocking thread; elsewhere a ranged GET copied in. A range past the end is cut there.
    pub async fn read_range_into(
        &self,
        rel: &str,
        range: std::ops::Range<u64>,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let Some(root) = self.url.strip_prefix("file://") else {
            let b = self.get_range(rel, range).await?;
            buf.clear();
            buf.extend_from_slice(&b);
            return Ok(buf);
        };
        let path = std::path::Path::new(root).join(rel);
        let shown = path.display().to_string();
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            use std::os::unix::fs::FileExt;
            let f = std::fs::File::open(&path)?;
            let want = range.end.saturating_sub(range.start) as usize;
            buf.clear();
            buf.resize(want, 0);
            let mut got = 0;
            while got < want {
                let n = f.read_at(&mut buf[got..], range.start + got as u64)?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            buf.truncate(got);
            Ok(buf)
        })
        .await
        .map_err(|e| StorageError::LocalFolder {
            path: shown.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        read.map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound {
                op: "read",
                path: shown,
            },
            _ => StorageError::LocalFolder {
                path: shown,
                source,
            },
        })
    }

    /// An object's size and modification time.
    pub async fn head(&self, rel: &str) -> Result<ObjectInfo> {
        let m = self
            .store
            .head(&self.path(rel))
            .await
            .map_err(|e| self.err("stat", rel, e))?;
        Ok(ObjectInfo {
            rel: rel.to_string(),
            size: m.size,
            modified_ms: m.last_modified.timestamp_millis(),
        })
    }

    /// All objects below `prefix` (recursively) with their sizes and modification times,
    /// sorted by path.
    pub async fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let p = self.path(prefix);
        let mut out: Vec<ObjectInfo> = self
            .store
            .list(Some(&p))
            .map_ok(|m| ObjectInfo {
                rel: self.rel(&m.location),
                size: m.size,
                modified_ms: m.last_modified.timestamp_millis(),
            })
            .try_collect()
            .await
            .map_err(|e| self.err("list", prefix, e))?;
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }

    pub async fn exists(&self, rel: &str) -> Result<bool> {
        match self.store.head(&self.path(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("stat", rel, e)),
        }
    }

    /// All objects below `prefix` (recursively), as paths relative to this folder, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let p = self.path(prefix);
        let mut out: Vec<String> = self
            .store
            .list(Some(&p))
            .map_ok(|m| self.rel(&m.location))
            .try_collect()
            .await
            .map_err(|e| self.err("list", prefix, e))?;
        out.sort();
        Ok(out)
    }

    /// The immediate sub-folders of `prefix`, by name, sorted.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let p = self.path(prefix);
        let res = self
            .store
            .list_with_delimiter(Some(&p))
            .await
            .map_err(|e| self.err("list", prefix, e))?;
        let mut out: Vec<String> = res
            .common_prefixes
            .iter()
            .filter_map(|c| c.filename().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        match self.store.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", rel, e)),
        }
    }

    /// Deletes everything below `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        for rel in self.list(prefix).await? {
            self.delete(&rel).await?;
        }
        Ok(())
    }

    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.store
            .copy(&self.path(from), &self.path(to))
            .await
            .map_err(|e| self.err("copy", from, e))
    }

    /// Moves an object. On a local folder this is one atomic `rename(2)`; on S3 a server-side
    /// copy (atomic: the new name shows all bytes or none) followed by a delete.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.store
            .rename(&self.path(from), &self.path(to))
            .await
            .map_err(|e| self.err("rename", from, e))
    }

    /// Local folders only: the staging files (`<name>#<digits>`) that a process killed in the
    /// middle of a write or copy left below `prefix`, for which `keep` returns false, are
    /// deleted; returns how many. `object_store` writes a local object by staging it under
    /// such a name and renaming it into place, and hides these names from listings, but a
    /// plain directory reader sees them. Other stores have no such leftovers (an incomplete
    /// S3 upload is never visible): 0.
    pub fn sweep_staging(&self, prefix: &str, keep: impl Fn(&str) -> bool) -> Result<usize> {
        let Some(root) = self.url.strip_prefix("file://") else {
            return Ok(0);
        };
        let dir = std::path::Path::new(root).join(prefix);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(StorageError::LocalFolder {
                    path: dir.display().to_string(),
                    source,
                })
            }
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((base, suffix)) = name.rsplit_once('#') else {
                continue;
            };
            if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) || keep(base) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StorageError::LocalFolder {
                        path: entry.path().display().to_string(),
                        source,
                    })
                }
            }
        }
        Ok(removed)
    }

    /// Checks that the folder can be written, with a probe object it removes again.
    pub async fn check_writable(&self) -> Result<()> {
        let probe = format!("_probe-{}", std::process::id());
        self.put(&probe, Bytes::from_static(b"ok")).await?;
        self.delete(&probe).await
    }

    /// Streams the objects below `prefix` concurrently (bounded) and returns their bytes.
    pub async fn get_many(&self, rels: Vec<String>) -> Result<Vec<(String, Bytes)>> {
        futures::stream::iter(rels)
            .map(|rel| async move {
                let b = self.get(&rel).await?;
                Ok::<_, StorageError>((rel, b))
            })
            .buffered(8)
            .try_collect()
            .await
    }
}

/// What a source's `path` names: every object below a folder (names starting with `_` or `.`
/// skipped, as Hadoop-style tools do), or one object (Flink's filesystem source takes
/// either).
#[derive(Debug, Clone)]
pub struct SourcePath {
    pub storage: Storage,
    /// The one object the path names, relative to `storage`; `None` for a folder.
    pub file: Option<String>,
}

impl SourcePath {
    /// Resolves `path`. A path that names nothing is an error, as in Flink, not an empty
    /// input; with `allow_empty`, an S3 prefix with no objects below it is an empty folder
    /// (a monitored source waits for files to appear there).
    pub async fn open(opener: &Opener, path: &str, allow_empty: bool) -> Result<Self> {
        let trimmed = path.trim();
        let missing = || StorageError::MissingSource {
            path: trimmed.to_string(),
        };
        if !trimmed.contains("://") || trimmed.starts_with("file://") {
            let local = std::path::Path::new(trimmed.strip_prefix("file://").unwrap_or(trimmed));
            let meta = std::fs::metadata(local).map_err(|_| missing())?;
            if meta.is_file() {
                let name = local
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(missing)?;
                let parent = match local.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => std::path::PathBuf::from("."),
                };
                let storage = opener.open(&parent.to_string_lossy())?;
                return Ok(Self {
                    storage,
                    file: Some(name),
                });
            }
            return Ok(Self {
                storage: opener.open(trimmed)?,
                file: None,
            });
        }
        let storage = opener.open(trimmed)?;
        let folder = Self {
            storage,
            file: None,
        };
        if !folder.list().await?.is_empty() {
            return Ok(folder);
        }
        // An object store has no folders: the path may name one object.
        if let Some((parent, name)) = trimmed.trim_end_matches('/').rsplit_once('/') {
            let bucket_and_more = parent
                .split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty());
            if bucket_and_more && !name.is_empty() {
                let parent_storage = opener.open(parent)?;
                if parent_storage.exists(name).await? {
                    return Ok(Self {
                        storage: parent_storage,
                        file: Some(name.to_string()),
                    });
                }
            }
        }
        if allow_empty {
            Ok(folder)
        } else {
            Err(missing())
        }
    }

    /// The files the path names now, sorted, with sizes and modification times.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>> {
        if let Some(f) = &self.file {
            return Ok(vec![self.storage.head(f).await?]);
        }
        Ok(self
            .storage
            .list_info("")
            .await?
            .into_iter()
            .filter(|f| {
                !f.rel
                    .split('/')
                    .any(|part| part.starts_with('_') || part.starts_with('.'))
            })
            .collect())
    }
}

/// An object being written in parts (see [`Storage::writer`]). At most two parts upload at
/// once; a writer dropped without `finish` leaves an incomplete upload that the store never
/// shows (S3 keeps its parts until aborted or a lifecycle rule removes them).
pub struct PartWriter {
    inner: object_store::WriteMultipart,
    storage: Storage,
    rel: String,
    part_bytes: usize,
    written: u64,
}

impl PartWriter {
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.inner
            .wait_for_capacity(2)
            .await
            .map_err(|e| self.storage.err("upload a part of", &self.rel, e))?;
        self.inner.write(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Parts this upload has (or will have, once finished).
    pub fn parts(&self) -> u64 {
        self.written.div_ceil(self.part_bytes.max(1) as u64)
    }

    /// Uploads what is left and completes the upload: the object appears, whole.
    pub async fn finish(self) -> Result<()> {
        let (storage, rel) = (self.storage, self.rel);
        self.inner
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| storage.err("complete the multipart upload of", &rel, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_opener_fails_every_store_it_opens_until_disarmed() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap();
        let switch = failing::FaultSwitch::default();
        let opener = Opener::failing(switch.clone());
        let (a, b) = (opener.open(url).unwrap(), opener.open(url).unwrap());
        a.put("chk-1/x", Bytes::from_static(b"1")).await.unwrap();
        switch.fail_reads("chk-");
        switch.fail_writes("chk-");
        assert!(b.get("chk-1/x").await.is_err());
        assert!(b.put("chk-2/y", Bytes::from_static(b"2")).await.is_err());
        b.put("other", Bytes::from_static(b"3")).await.unwrap();
        assert!(Opener::real()
            .open(url)
            .unwrap()
            .get("chk-1/x")
            .await
            .is_ok());
        switch.disarm();
        assert_eq!(a.get("chk-1/x").await.unwrap(), Bytes::from_static(b"1"));
    }

    #[tokio::test]
    async fn local_folder_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().to_str().unwrap()).unwrap();
        assert!(s.url().starts_with("file:///"));
        let c = s.child("job/chk-1");
        c.put("a/x", Bytes::from_static(b"1")).await.unwrap();
        c.put("b", Bytes::from_static(b"2")).await.unwrap();
        assert_eq!(
            s.list("job").await.unwrap(),
            vec!["job/chk-1/a/x", "job/chk-1/b"]
        );
        assert_eq!(c.list("").await.unwrap(), vec!["a/x", "b"]);
        assert_eq!(s.list_dirs("job").await.unwrap(), vec!["chk-1"]);
        assert_eq!(&c.get("b").await.unwrap()[..], b"2");
        assert!(c.get("nope").await.unwrap_err().is_not_found());
        c.copy("b", "c").await.unwrap();
        assert!(c.exists("c").await.unwrap());
        assert_eq!(&c.get_range("b", 0..1).await.unwrap()[..], b"2");
        let buf = c.read_range_into("b", 0..5, vec![9; 100]).await.unwrap();
        assert_eq!(buf, b"2", "cut at the end, buffer cleared");
        assert!(c
            .read_range_into("nope", 0..1, buf)
            .await
            .unwrap_err()
            .is_not_found());
        let info = c.list_info("").await.unwrap();
        assert_eq!(info.len(), 3);
        assert_eq!((info[0].rel.as_str(), info[0].size), ("a/x", 1));
        assert_eq!(c.head("a/x").await.unwrap().size, 1);
        assert!(info[0].modified_ms > 1_600_000_000_000);
        s.delete_prefix("job").await.unwrap();
        assert!(s.list("").await.unwrap().is_empty());
        s.check_writable().await.unwrap();
        assert!(Storage::open("ftp://x").is_err());
    }

    #[tokio::test]
    async fn of_many_racing_creates_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().to_str().unwrap()).unwrap();
        let mut racers = Vec::new();
        for i in 0..16u8 {
            let s = s.clone();
            racers.push(tokio::spawn(async move {
                (i, s.put_if_absent("leader/claim-1", vec![i]).await.unwrap())
            }));
        }
        let mut winners = Vec::new();
        for r in racers {
            let (i, won) = r.await.unwrap();
            if won {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        assert_eq!(&s.get("leader/claim-1").await.unwrap()[..], &[winners[0]]);
        assert!(!s.put_if_absent("leader/claim-1", vec![99]).await.unwrap());
        assert_eq!(&s.get("leader/claim-1").await.unwrap()[..], &[winners[0]]);
    }

    #[tokio::test]
    async fn rename_moves_and_sweep_removes_only_unkept_staging_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().to_str().unwrap()).unwrap();
        s.put("_p/x", Bytes::from_static(b"1")).await.unwrap();
        s.rename("_p/x", "x").await.unwrap();
        assert!(!s.exists("_p/x").await.unwrap());
        assert_eq!(&s.get("x").await.unwrap()[..], b"1");
        assert!(s.rename("_p/x", "x").await.unwrap_err().is_not_found());
        // What a process killed between object_store's stage and rename leaves behind.
        for name in ["x#0", "y#12", "keep#0", "z#a"] {
            std::fs::write(dir.path().join(name), b"staged").unwrap();
        }
        assert_eq!(
            s.list("").await.unwrap(),
            vec!["x", "z#a"],
            "listings hide them"
        );
        assert_eq!(s.sweep_staging("", |base| base == "keep").unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "_p")
            .collect();
        left.sort();
        assert_eq!(left, vec!["keep#0", "x", "z#a"]);
        assert_eq!(s.sweep_staging("missing", |_| false).unwrap(), 0);
    }

    #[tokio::test]
    async fn a_source_path_names_a_folder_or_one_file_or_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        std::fs::write(dir.path().join("b.csv"), b"1\n").unwrap();
        std::fs::write(dir.path().join("_hidden"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.csv"), b"22\n").unwrap();
        let folder = SourcePath::open(&Opener::real(), root, false)
            .await
            .unwrap();
        assert!(folder.file.is_none());
        let names: Vec<_> = folder
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.rel)
            .collect();
        assert_eq!(names, vec!["b.csv", "sub/a.csv"]);
        let one = SourcePath::open(&Opener::real(), &format!("{root}/sub/a.csv"), false)
            .await
            .unwrap();
        assert_eq!(one.file.as_deref(), Some("a.csv"));
        assert_eq!(one.list().await.unwrap()[0].size, 3);
        let err = SourcePath::open(&Opener::real(), &format!("{root}/nope"), true)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope\" does not exist"), "{err}");
        assert!(
            !dir.path().join("nope").exists(),
            "resolving creates nothing"
        );
    }

    #[tokio::test]
    async fn unwritable_folder_is_a_clear_error() {
        let err = Storage::open("/proc/weir-cannot-be-here")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot use folder /proc/weir-cannot-be-here"),
            "{err}"
        );
    }
}
