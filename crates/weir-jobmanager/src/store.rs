//! Job records in object storage: `<state_dir>/jobs/<job id>/job.json`, rewritten whenever a
//! job's state, attempt or restart count changes, and beside it the create-if-absent records
//! of each attempt (`attempts/<n>.fence`, `attempts/<n>.restore`; see
//! `weir_checkpoint::lineage`). An attempt is fenced *before* it is deployed, so attempts
//! never repeat, even across job-manager restarts and between two job managers on one state
//! dir (sinks rely on that to tell their own files from earlier attempts').

use crate::{JmError, Result};
use serde::{Deserialize, Serialize};
use weir_checkpoint::lineage::{AttemptFence, AttemptRestore};
use weir_storage::Storage;
pub use weir_types::JobState;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub name: String,
    pub job_json: String,
    pub state: JobState,
    pub attempt: u64,
    pub restarts: u32,
    pub submitted_at_ms: i64,
    pub failure: String,
    /// Savepoint or checkpoint folder the job was submitted to start from ("" for none).
    pub restore_from: String,
    /// This job's checkpoint folder.
    pub checkpoint_dir: String,
    pub savepoint_dir: String,
}

#[derive(Debug, Clone)]
pub struct JobStore {
    storage: Storage,
}

impl JobStore {
    /// The job records under `state` (the state dir).
    pub fn new(state: &Storage) -> Self {
        Self {
            storage: state.child("jobs"),
        }
    }

    pub async fn save(&self, r: &JobRecord) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(r).map_err(|e| crate::JmError::Internal(e.to_string()))?;
        self.storage
            .put(&format!("{}/job.json", r.job_id), bytes)
            .await?;
        Ok(())
    }

    fn attempt_file(job_id: &str, attempt: u64, kind: &str) -> String {
        format!("{job_id}/attempts/{attempt:012}.{kind}")
    }

    /// Creates the fence of `fence.attempt`: false if it exists (another job manager started
    /// that attempt).
    pub async fn fence_attempt(&self, job_id: &str, fence: &AttemptFence) -> Result<bool> {
        let bytes = serde_json::to_vec(fence).map_err(|e| JmError::Internal(e.to_string()))?;
        Ok(self
            .storage
            .put_if_absent(&Self::attempt_file(job_id, fence.attempt, "fence"), bytes)
            .await?)
    }

    pub async fn fence_exists(&self, job_id: &str, attempt: u64) -> Result<bool> {
        Ok(self
            .storage
            .exists(&Self::attempt_file(job_id, attempt, "fence"))
            .await?)
    }

    /// Records where a fenced attempt restores from; false if that was recorded already.
    pub async fn record_restore(&self, job_id: &str, r: &AttemptRestore) -> Result<bool> {
        let bytes = serde_json::to_vec(r).map_err(|e| JmError::Internal(e.to_string()))?;
        Ok(self
            .storage
            .put_if_absent(&Self::attempt_file(job_id, r.attempt, "restore"), bytes)
            .await?)
    }

    /// The numbers of every fenced attempt of a job (a listing, no reads).
    pub async fn fenced_attempts(&self, job_id: &str) -> Result<Vec<u64>> {
        Ok(self
            .attempt_files(job_id)
            .await?
            .into_iter()
            .filter(|(_, _, kind)| kind == "fence")
            .map(|(_, n, _)| n)
            .collect())
    }

    /// The restore records of a job. One that cannot be parsed is an error: guessing the
    /// lineage could restore a checkpoint whose output was replaced.
    pub async fn restores(&self, job_id: &str) -> Result<Vec<AttemptRestore>> {
        let mut restores = Vec::new();
        for (name, _, kind) in self.attempt_files(job_id).await? {
            if kind == "restore" {
                let bytes = self.storage.get(&name).await?;
                let r: AttemptRestore = serde_json::from_slice(&bytes).map_err(|e| {
                    JmError::Unavailable(format!("unreadable attempt record {name}: {e}"))
                })?;
                restores.push(r);
            }
        }
        Ok(restores)
    }

    /// The attempt records of a job: (path, attempt, "fence" or "restore").
    async fn attempt_files(&self, job_id: &str) -> Result<Vec<(String, u64, String)>> {
        Ok(self
            .storage
            .list(&format!("{job_id}/attempts"))
            .await?
            .into_iter()
            .filter_map(|name| {
                let file = name.rsplit('/').next()?;
                let (n, kind) = file.split_once('.')?;
                let n = n.parse::<u64>().ok()?;
                let kind = kind.to_string();
                Some((name, n, kind))
            })
            .collect())
    }

    /// All records; unreadable ones are reported and skipped (they are never deleted).
    pub async fn load_all(&self) -> Result<Vec<JobRecord>> {
        let mut out = Vec::new();
        for dir in self.storage.list_dirs("").await? {
            let path = format!("{dir}/job.json");
            match self.storage.get(&path).await {
                Ok(bytes) => match serde_json::from_slice::<JobRecord>(&bytes) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        tracing::error!(%path, error = %e, "unreadable job record; leaving it alone")
                    }
                },
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}
