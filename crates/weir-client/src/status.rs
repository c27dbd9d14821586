//! What the client API answers about jobs, in the client's own types: states are
//! [`JobState`] and [`CheckpointState`], not strings, and nothing of protobuf shows.
//! Converted from the wire here and nowhere else.

use crate::ClientError;
use weir_proto as pb;
use weir_types::{CheckpointState, JobState};

/// One job, as `weir list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    pub job_id: String,
    pub name: String,
    pub state: JobState,
    pub restarts: u32,
    pub submitted_at_ms: i64,
}

/// A job's state, restarts, checkpoints and vertices, as `weir status` shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    pub job_id: String,
    pub name: String,
    pub state: JobState,
    pub restarts: u32,
    pub attempt: u64,
    /// The last failure, "" if none.
    pub failure: String,
    pub checkpoints: Vec<CheckpointInfo>,
    pub vertices: Vec<VertexStatus>,
    /// The job graph as submitted (JSON).
    pub job_json: String,
    pub submitted_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointInfo {
    pub checkpoint_id: u64,
    pub state: CheckpointState,
    pub savepoint: bool,
    pub location: String,
    pub state_bytes: u64,
    pub duration_ms: u64,
    pub failure: String,
    pub triggered_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VertexStatus {
    pub name: String,
    pub parallelism: u32,
    pub records_in: u64,
    pub records_out: u64,
    /// Milliseconds the vertex's sources waited for their alignment group.
    pub alignment_paused_ms: u64,
}

/// A task manager of the cluster, as `weir cluster` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskManagerInfo {
    pub id: String,
    /// The address the job manager and other task managers reach it at.
    pub address: String,
    pub slots: u32,
    pub free_slots: u32,
}

impl From<pb::TaskManagerInfo> for TaskManagerInfo {
    fn from(t: pb::TaskManagerInfo) -> Self {
        Self {
            id: t.id,
            address: t.address,
            slots: t.slots,
            free_slots: t.free_slots,
        }
    }
}

fn job_state(state: i32) -> Result<JobState, ClientError> {
    Ok(match pb::JobState::try_from(state) {
        Ok(pb::JobState::Created) => JobState::Created,
        Ok(pb::JobState::Running) => JobState::Running,
        Ok(pb::JobState::Restarting) => JobState::Restarting,
        Ok(pb::JobState::Finished) => JobState::Finished,
        Ok(pb::JobState::Canceled) => JobState::Canceled,
        Ok(pb::JobState::Failed) => JobState::Failed,
        Ok(pb::JobState::Unspecified) | Err(_) => {
            return Err(ClientError::BadAnswer(format!(
                "a job state the client does not know ({state}): is the job manager newer?"
            )))
        }
    })
}

fn checkpoint_state(state: i32) -> Result<CheckpointState, ClientError> {
    Ok(match pb::CheckpointState::try_from(state) {
        Ok(pb::CheckpointState::InProgress) => CheckpointState::InProgress,
        Ok(pb::CheckpointState::Completed) => CheckpointState::Completed,
        Ok(pb::CheckpointState::Failed) => CheckpointState::Failed,
        Ok(pb::CheckpointState::Unspecified) | Err(_) => {
            return Err(ClientError::BadAnswer(format!(
                "a checkpoint state the client does not know ({state}): is the job manager newer?"
            )))
        }
    })
}

impl TryFrom<pb::JobSummary> for JobSummary {
    type Error = ClientError;
    fn try_from(j: pb::JobSummary) -> Result<Self, ClientError> {
        Ok(Self {
            state: job_state(j.state)?,
            job_id: j.job_id,
            name: j.name,
            restarts: j.restarts,
            submitted_at_ms: j.submitted_at_ms,
        })
    }
}

impl TryFrom<pb::JobStatus> for JobStatus {
    type Error = ClientError;
    fn try_from(s: pb::JobStatus) -> Result<Self, ClientError> {
        Ok(Self {
            state: job_state(s.state)?,
            job_id: s.job_id,
            name: s.name,
            restarts: s.restarts,
            attempt: s.attempt,
            failure: s.failure,
            checkpoints: s
                .checkpoints
                .into_iter()
                .map(|c| {
                    Ok(CheckpointInfo {
                        state: checkpoint_state(c.state)?,
                        checkpoint_id: c.checkpoint_id,
                        savepoint: c.savepoint,
                        location: c.location,
                        state_bytes: c.state_bytes,
                        duration_ms: c.duration_ms,
                        failure: c.failure,
                        triggered_at_ms: c.triggered_at_ms,
                    })
                })
                .collect::<Result<_, ClientError>>()?,
            vertices: s
                .vertices
                .into_iter()
                .map(|v| VertexStatus {
                    name: v.name,
                    parallelism: v.parallelism,
                    records_in: v.records_in,
                    records_out: v.records_out,
                    alignment_paused_ms: v.alignment_paused_ms,
                })
                .collect(),
            job_json: s.job_json,
            submitted_at_ms: s.submitted_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_come_typed_and_an_unknown_one_is_an_error() {
        let wire = pb::JobStatus {
            job_id: "j-1".into(),
            state: pb::JobState::Restarting as i32,
            checkpoints: vec![pb::CheckpointInfo {
                checkpoint_id: 3,
                state: pb::CheckpointState::Completed as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = JobStatus::try_from(wire.clone()).expect("converts");
        assert_eq!(s.state, JobState::Restarting);
        assert!(s.state == "RESTARTING");
        assert_eq!(s.checkpoints[0].state, CheckpointState::Completed);

        let unset = pb::JobStatus {
            state: 0,
            ..wire.clone()
        };
        let e = JobStatus::try_from(unset).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("job state")));
        let newer = pb::JobStatus { state: 99, ..wire };
        assert!(JobStatus::try_from(newer).is_err());
    }
}
