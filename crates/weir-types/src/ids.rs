//! Identifiers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A job's id: `j-` followed by 16 hex digits, unique per job manager state folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub String);

impl JobId {
    /// A fresh id from the clock and a process-local counter.
    pub fn generate() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let c = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mixed = crate::keygroup::fmix64(nanos ^ (c << 48) ^ u64::from(std::process::id()));
        JobId(format!("j-{mixed:016x}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checkpoint ids increase monotonically within a job, across restarts and job-manager restarts.
pub type CheckpointId = u64;

/// One parallel instance of a task vertex: (vertex id = index of the chain's head operator, subtask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskKey {
    pub vertex: u32,
    pub subtask: u32,
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.vertex, self.subtask)
    }
}
