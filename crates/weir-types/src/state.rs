//! The states a job and a checkpoint go through, as the job manager keeps them, the wire
//! carries them (as protobuf enums, converted at the service edges) and users read them
//! (`RUNNING`, `COMPLETED`, ...: [`JobState::as_str`], also their JSON form in job records).

use serde::{Deserialize, Serialize};

/// A job's state, Flink's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Finished, canceled or failed: the job will not run again.
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

/// A checkpoint's (or savepoint's) state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckpointState {
    InProgress,
    Completed,
    Failed,
}

impl CheckpointState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckpointState::InProgress => "IN_PROGRESS",
            CheckpointState::Completed => "COMPLETED",
            CheckpointState::Failed => "FAILED",
        }
    }
}

macro_rules! shown_as_str {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Compares with the name users read (`state == "RUNNING"`).
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

shown_as_str!(JobState);
shown_as_str!(CheckpointState);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_flinks_and_round_trip_through_json() {
        for s in [
            JobState::Created,
            JobState::Running,
            JobState::Restarting,
            JobState::Finished,
            JobState::Canceled,
            JobState::Failed,
        ] {
            let json = serde_json::to_string(&s).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<JobState>(&json).ok(), Some(s));
            assert!(s == s.as_str());
        }
        assert!(JobState::Finished.is_terminal() && !JobState::Restarting.is_terminal());
        assert_eq!(CheckpointState::InProgress.to_string(), "IN_PROGRESS");
        assert!(CheckpointState::Completed == "COMPLETED");
    }
}
