//! What flows through a channel between two subtasks.

use arrow::record_batch::RecordBatch;
use std::sync::Arc;
use weir_types::CheckpointId;

/// A checkpoint barrier: everything before it on a channel belongs to checkpoint `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Barrier {
    pub id: CheckpointId,
    pub timestamp_ms: i64,
    pub savepoint: bool,
    /// Folder URL this checkpoint's state files go to.
    pub target_dir: Arc<str>,
}

impl Barrier {
    /// Barrier `id` of a checkpoint, for the operators' snapshot tests (which ignore the
    /// rest).
    pub fn for_test(id: u64) -> Self {
        Self {
            id,
            timestamp_ms: 0,
            savepoint: false,
            target_dir: Arc::from("unused"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Message {
    Batch(RecordBatch),
    Barrier(Barrier),
    /// Event time: no record with a timestamp at or below this (ms) follows on this channel
    /// (except late ones, which event-time operators drop).
    Watermark(i64),
    /// The sender will send nothing more. A channel that closes without it means the sender
    /// failed.
    EndOfStream,
}
