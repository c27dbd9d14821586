//! The checkpoint protocol as plain state machines, with no I/O: tests drive them with plain
//! inputs, and the job manager and the runtime wrap them with the network and storage.
//!
//! * [`aligner`]: what a multi-input task does with barriers (align or not, by guarantee);
//! * [`coordinator`]: the job manager's bookkeeping of triggered, acknowledged, completed,
//!   aborted and retained checkpoints;
//! * [`metadata`]: the checkpoint's `_metadata` document, written last, which makes it complete;
//! * [`leader`]: which job manager leads, through a lease in the shared object store;
//! * [`lineage`]: the fencing of attempts and checkpoint completions between job managers,
//!   and the checkpoint a new attempt restores from;
//! * [`twophase`]: which sink transactions to commit when, and which to abort on recovery;
//! * [`epochs`]: the same for a sink with one open transaction at a time (Kafka): the queue
//!   of epochs awaiting their checkpoints, as actions to send, flush and commit.
//!
//! Architecture invariant: no async, no storage, no gRPC here.

pub mod aligner;
pub mod coordinator;
pub mod epochs;
pub mod leader;
pub mod lineage;
pub mod metadata;
pub mod twophase;

pub use aligner::{AlignEvent, BarrierAligner};
pub use coordinator::{AckOutcome, CheckpointCoordinator, CheckpointStats, TriggerError};
pub use epochs::{EpochQueue, TxnAction};
pub use metadata::{CheckpointMetadata, OperatorSnapshot, SubtaskHandle};
pub use twophase::TxnLog;
pub use weir_types::{CheckpointId, TaskKey};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("corrupt checkpoint metadata: {0}")]
    CorruptMetadata(String),
}
