//! Job records in object storage: `<state_dir>/jobs/<job id>/job.json`, rewritten whenever a
//! job's state, attempt or restart count changes. The attempt number is persisted *before*
//! each deployment, so attempts never repeat, even across job-manager restarts (sinks rely
//! on that to tell their own files from earlier attempts').

use crate::Result;
use serde::{Deserialize, Serialize};
use weir_storage::Storage;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Created,
    Running,
    Restarting,
    Finished,
    Canceled,
    Failed,
}

impl JobState {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Canceled | JobState::Failed
        )
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Created => "CREATED",
            JobState::Running => "RUNNING",
            JobState::Restarting => "RESTARTING",
            JobState::Finished => "FINISHED",
            JobState::Canceled => "CANCELED",
            JobState::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobStore {
    storage: Storage,
}

impl JobStore {
    pub fn open(state_dir: &str) -> Result<Self> {
        Ok(Self {
            storage: Storage::open(state_dir)?.child("jobs"),
        })
    }

    pub async fn save(&self, r: &JobRecord) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(r).map_err(|e| crate::JmError::Internal(e.to_string()))?;
        self.storage
            .put(&format!("{}/job.json", r.job_id), bytes)
            .await?;
        Ok(())
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
