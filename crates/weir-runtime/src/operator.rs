//! What an operator is to its task. Sources implement [`Source`] and are polled by their
//! task; everything else implements [`Operator`]: batches in, at most one batch out, plus the
//! checkpoint hooks (snapshot at the barrier, commit when the checkpoint completes). The
//! operators themselves live in `weir-operators` and `weir-connectors`, and reach a task
//! through the [`crate::registry::Registry`].

use crate::error::{Result, RuntimeError};
use crate::message::Barrier;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use std::time::Instant;
use weir_types::{CheckpointId, DeliveryGuarantee, JobId};

/// What an operator instance knows about where it runs.
#[derive(Debug, Clone)]
pub struct OperatorContext {
    pub job_id: JobId,
    pub op_id: String,
    pub subtask: u32,
    pub parallelism: u32,
    pub max_parallelism: u32,
    /// Increases with every (re)deployment of the job, across job-manager restarts.
    pub attempt: u64,
    pub guarantee: DeliveryGuarantee,
    pub checkpointing: bool,
    pub state_backend: weir_types::StateBackend,
    pub input_schema: Option<SchemaRef>,
    /// Every input's schema, in input order (a join's left, then right).
    pub input_schemas: Vec<SchemaRef>,
    pub output_schema: SchemaRef,
    /// Counts blocking work the operator starts, so a cancelled attempt is known to have
    /// stopped only once that work has returned (`crate::inflight`).
    pub inflight: crate::inflight::InFlight,
    /// How it opens folder URLs (a file source's or sink's path): the task manager's.
    pub storage: weir_storage::Opener,
}

impl OperatorContext {
    /// A subtask of a test operator `op_id` (exactly-once, checkpointing, 128 key groups)
    /// reading `inputs` and producing `output`: for the operators' unit tests.
    pub fn for_test(
        op_id: &str,
        subtask: u32,
        parallelism: u32,
        inputs: Vec<SchemaRef>,
        output: SchemaRef,
    ) -> Self {
        Self {
            job_id: JobId("j".into()),
            op_id: op_id.into(),
            subtask,
            parallelism,
            max_parallelism: 128,
            attempt: 1,
            guarantee: DeliveryGuarantee::ExactlyOnce,
            checkpointing: true,
            state_backend: Default::default(),
            input_schema: inputs.first().cloned(),
            input_schemas: inputs,
            output_schema: output,
            inflight: Default::default(),
            storage: Default::default(),
        }
    }
}

/// The indices of columns `names` in `schema` (key columns, mostly).
pub fn column_indices(schema: &SchemaRef, names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|k| {
            schema
                .index_of(k)
                .map_err(|_| RuntimeError::Plan(format!("unknown column {k:?}")))
        })
        .collect()
}

/// The state an operator restores from: every old subtask's snapshot of it.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// The job whose checkpoint or savepoint this is (differs from ours after a restore from
    /// another job's savepoint).
    pub job_id: String,
    pub old_parallelism: u32,
    /// (old subtask index, snapshot bytes), by subtask.
    pub snapshots: Vec<(u32, Bytes)>,
}

#[async_trait]
pub trait Operator: Send {
    /// Processes one batch; returns what it emits downstream, if anything.
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>>;

    /// Processes one batch from input `input` (an index into the operator's inputs), for
    /// operators that tell their inputs apart (a join); the others merge them.
    async fn process_input(
        &mut self,
        _input: usize,
        batch: RecordBatch,
    ) -> Result<Option<RecordBatch>> {
        self.process(batch).await
    }

    /// The barrier reached this operator: return its state (the synchronous part of the
    /// snapshot; the upload happens elsewhere). Two-phase-commit sinks pre-commit here.
    async fn snapshot(&mut self, _barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Checkpoint `id` is complete: sinks commit what they pre-committed up to it.
    async fn checkpoint_complete(&mut self, _id: CheckpointId) -> Result<()> {
        Ok(())
    }

    /// The positions the task's own source (the head of its chain) recorded for the barrier
    /// whose [`Operator::snapshot`] comes next. Only a Kafka sink with
    /// `commit_source_offsets` uses them.
    fn chained_source_offsets(&mut self, _offsets: &SourceOffsets) {}

    /// The task's event time reached `watermark` (ms): event-time operators emit what it
    /// completes (closed windows). Called in chain order; the watermark goes downstream after.
    async fn on_watermark(&mut self, _watermark: i64) -> Result<Option<RecordBatch>> {
        Ok(None)
    }

    /// All inputs ended; emit anything buffered.
    async fn end_of_input(&mut self) -> Result<Option<RecordBatch>> {
        Ok(None)
    }

    /// Whether the task must wait for a checkpoint to complete before it may finish.
    fn awaiting_commit(&self) -> bool {
        false
    }

    /// The task finishes with checkpointing off: make all output final now.
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A Kafka source's next offset per owned partition, as of a barrier.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct SourceOffsets {
    pub topic: String,
    /// (partition, next offset to read)
    pub partitions: Vec<(i32, i64)>,
}

pub enum SourcePoll {
    Batch(RecordBatch),
    /// At-most-once: the source may emit nothing more until its task records a new lease
    /// ([`Source::lease`]).
    NeedLease,
    /// Nothing before this instant (rate limit).
    Wait(Instant),
    Exhausted,
}

#[async_trait]
pub trait Source: Send {
    async fn poll_next(&mut self) -> Result<SourcePoll>;
    /// The source's position, for checkpoint `checkpoint`.
    fn snapshot(&mut self, checkpoint: CheckpointId) -> Result<Option<Vec<u8>>>;

    /// At-most-once: allows `ahead` more records per partition and returns the position that
    /// lease reaches, in snapshot form. The task makes it durable before the source emits
    /// past its previous lease, so a restart resumes beyond anything ever emitted.
    fn lease(&mut self, _ahead: u64) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// The partition the last batch came from (for per-partition watermarks), an index below
    /// [`Source::partition_count`].
    fn last_partition(&self) -> usize {
        0
    }

    /// Each row's partition (an index below [`Source::partition_count`]) in the last batch,
    /// for sources whose batches mix partitions (Kafka): the task then keeps one event-time
    /// maximum per partition. `None`: the whole batch is [`Source::last_partition`]'s.
    fn row_partitions(&self) -> Option<&[u32]> {
        None
    }

    /// For sources that know it (generators): an event time at or below every row they will
    /// still produce. When a poll yields no rows, the task advances the source's watermark
    /// by it, so a subtask whose partitions rarely or never hold its table's rows does not
    /// hold the watermark back while it reads past them.
    fn progress_time(&self) -> Option<i64> {
        None
    }

    /// How many partitions this subtask reads (each holds the watermark back until it has
    /// data, ends, or is idle). May grow while running.
    fn partition_count(&self) -> usize {
        1
    }

    /// Whether partition `p` (an index below `partition_count`) has ended.
    fn partition_ended(&self, _p: usize) -> bool {
        false
    }

    /// The positions its last [`Source::snapshot`] recorded, for operators chained behind it
    /// ([`Operator::chained_source_offsets`]); `None` for sources without offsets.
    fn chained_offsets(&self) -> Option<SourceOffsets> {
        None
    }

    /// Checkpoint `id` is complete (a Kafka source reports its offsets to its consumer group,
    /// for monitoring).
    async fn checkpoint_complete(&mut self, _id: CheckpointId) -> Result<()> {
        Ok(())
    }
}
