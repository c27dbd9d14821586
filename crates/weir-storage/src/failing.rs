//! An object store that fails on demand (after Neon's `simulate_failures`): wrap any store,
//! then arm failures for writes or reads whose path contains a pattern. Used by tests to prove
//! that a failed checkpoint upload aborts the checkpoint without stopping the job, and that a
//! failed commit is retried on recovery.

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::fmt;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Faults {
    writes: Option<String>,
    reads: Option<String>,
}

/// Handle to arm and disarm failures of a [`FailingStore`].
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch(Arc<Mutex<Faults>>);

impl FaultSwitch {
    /// Writes (put, copy, multipart) to paths containing `pattern` fail until disarmed.
    pub fn fail_writes(&self, pattern: &str) {
        self.lock().writes = Some(pattern.to_string());
    }
    pub fn fail_reads(&self, pattern: &str) {
        self.lock().reads = Some(pattern.to_string());
    }
    pub fn disarm(&self) {
        *self.lock() = Faults::default();
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn check(&self, write: bool, path: &Path) -> Result<()> {
        let f = self.lock();
        let pat = if write { &f.writes } else { &f.reads };
        match pat {
            Some(p) if path.as_ref().contains(p.as_str()) => Err(object_store::Error::Generic {
                store: "FailingStore",
                source: format!(
                    "injected {} failure at {path}",
                    if write { "write" } else { "read" }
                )
                .into(),
            }),
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
pub struct FailingStore {
    inner: Arc<dyn ObjectStore>,
    switch: FaultSwitch,
}

impl FailingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> (Self, FaultSwitch) {
        let switch = FaultSwitch::default();
        (Self::with_switch(inner, switch.clone()), switch)
    }

    /// Wraps `inner`, failing as `switch` says (one switch can govern many stores).
    pub fn with_switch(inner: Arc<dyn ObjectStore>, switch: FaultSwitch) -> Self {
        Self { inner, switch }
    }
}

impl fmt::Display for FailingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.switch.check(true, location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.switch.check(true, location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.switch.check(false, location)?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.switch.check(true, to)?;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Storage;

    #[tokio::test]
    async fn fails_only_while_armed_and_only_matching_paths() {
        let dir = tempfile::tempdir().unwrap();
        let local =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let (store, switch) = FailingStore::new(local);
        let s = Storage::from_store(Arc::new(store), "", "test://");
        switch.fail_writes("chk-2");
        s.put("chk-1/a", bytes::Bytes::from_static(b"x"))
            .await
            .unwrap();
        let err = s
            .put("chk-2/a", bytes::Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("injected write failure"), "{err}");
        switch.disarm();
        s.put("chk-2/a", bytes::Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
}
