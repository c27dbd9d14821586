//! The `_metadata` document of a checkpoint or savepoint. It is written after every state file
//! is durable, and its presence is what makes the checkpoint complete: a folder without it is
//! an aborted or unfinished checkpoint and is never restored from.

use crate::{CheckpointError, CheckpointId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const METADATA_FILE: &str = "_metadata";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    pub version: u32,
    pub job_id: String,
    pub checkpoint_id: CheckpointId,
    pub attempt: u64,
    pub savepoint: bool,
    pub timestamp_ms: i64,
    pub max_parallelism: u32,
    /// State by operator id (ids, not positions, so a savepoint survives edits to the graph).
    pub operators: BTreeMap<String, OperatorSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorSnapshot {
    /// The operator's parallelism when the snapshot was taken.
    pub parallelism: u32,
    /// Subtask index -> its state file.
    pub subtasks: BTreeMap<u32, SubtaskHandle>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskHandle {
    /// Path relative to the checkpoint folder.
    pub path: String,
    pub size: u64,
}

impl CheckpointMetadata {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let m: CheckpointMetadata = serde_json::from_slice(bytes)
            .map_err(|e| CheckpointError::CorruptMetadata(e.to_string()))?;
        if m.version != FORMAT_VERSION {
            return Err(CheckpointError::CorruptMetadata(format!(
                "unsupported metadata version {} (this build reads {FORMAT_VERSION})",
                m.version
            )));
        }
        for (op, snap) in &m.operators {
            if snap.parallelism == 0 || snap.subtasks.keys().any(|s| *s >= snap.parallelism) {
                return Err(CheckpointError::CorruptMetadata(format!(
                    "operator {op:?}: subtask handles do not match parallelism {}",
                    snap.parallelism
                )));
            }
        }
        Ok(m)
    }

    pub fn total_bytes(&self) -> u64 {
        self.operators
            .values()
            .flat_map(|o| o.subtasks.values())
            .map(|h| h.size)
            .sum()
    }
}

/// The folder name of checkpoint `id` under a job's checkpoint folder (zero-padded, so listing
/// order is id order).
pub fn checkpoint_dir_name(id: CheckpointId) -> String {
    format!("chk-{id:012}")
}

/// Parses a folder name made by [`checkpoint_dir_name`].
pub fn parse_checkpoint_dir_name(name: &str) -> Option<CheckpointId> {
    name.strip_prefix("chk-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let mut ops = BTreeMap::new();
        ops.insert(
            "agg".to_string(),
            OperatorSnapshot {
                parallelism: 2,
                subtasks: [(
                    0,
                    SubtaskHandle {
                        path: "agg-0".into(),
                        size: 10,
                    },
                )]
                .into(),
            },
        );
        let m = CheckpointMetadata {
            version: FORMAT_VERSION,
            job_id: "j".into(),
            checkpoint_id: 4,
            attempt: 1,
            savepoint: false,
            timestamp_ms: 0,
            max_parallelism: 128,
            operators: ops,
        };
        assert_eq!(CheckpointMetadata::from_json(&m.to_json()).unwrap(), m);
        assert_eq!(m.total_bytes(), 10);
        let err = CheckpointMetadata::from_json(b"{\"version\":1").unwrap_err();
        assert!(err.to_string().contains("corrupt checkpoint metadata"));
        assert_eq!(
            parse_checkpoint_dir_name(&checkpoint_dir_name(42)),
            Some(42)
        );
    }
}
