//! One subtask: a chain of operators (optionally headed by a source), its input channels and
//! its outputs.
//!
//! The loop reads control messages (checkpoint trigger for sources, checkpoint complete for
//! everyone) and input messages. Barriers go through a `weir_checkpoint::BarrierAligner`:
//! aligned (inputs block) for exactly-once, tracked only for the other guarantees. When the
//! aligner says snapshot, every operator's state is taken synchronously, the barrier is
//! forwarded, and the upload runs in a spawned task that acknowledges (or declines) to the
//! checkpoint coordinator through the event channel; processing continues meanwhile.
//!
//! End of input: a source that runs dry flushes its chain and reports `SourceExhausted`; with
//! checkpoints on it stays up until a checkpoint taken after that point completes (so
//! two-phase-commit sinks commit everything), then sends end-of-stream. A task whose inputs all
//! ended flushes, forwards end-of-stream, waits for pending commits, and finishes.
//!
//! An input channel that closes without end-of-stream means its sender failed: the task fails.
//!
//! This module holds the public task types, the entry point ([`run_task`]) and the chain;
//! `build` sets a task up with its restored state, `source` runs a source task (polling,
//! per-row watermarks, alignment, leases), `input` runs a task fed by channels (barrier
//! alignment), and `checkpoint` snapshots, uploads and commits.

mod build;
mod checkpoint;
mod input;
mod source;

use crate::alignment::{AlignedSource, Alignments, GroupKey};
use crate::error::Result;
use crate::inflight::InFlight;
use crate::message::{Barrier, Message};
use crate::operator::{Operator, Source};
use crate::output::Outputs;
use crate::watermark::WatermarkGen;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver, UnboundedSender};
use tracing::{info_span, warn, Instrument};
use weir_checkpoint::{CheckpointMetadata, SubtaskHandle};
use weir_storage::{Opener, Storage};
use weir_types::{CheckpointId, DeliveryGuarantee, ExecutionPlan, JobId, JobSpec, TaskKey};

#[derive(Debug, Clone)]
pub enum TaskControl {
    /// Sources only: inject this barrier; with `stop`, produce nothing after it and end once
    /// it completes (stop-with-savepoint).
    TriggerCheckpoint {
        barrier: Barrier,
        stop: bool,
    },
    CheckpointComplete(CheckpointId),
}

#[derive(Debug, Clone, PartialEq)]
pub enum TaskEventKind {
    Running,
    Acknowledged {
        checkpoint: CheckpointId,
        handles: Vec<(String, SubtaskHandle)>,
    },
    Declined {
        checkpoint: CheckpointId,
        reason: String,
    },
    SourceExhausted,
    Finished,
    /// The task failed; `deterministic`: it would fail the same way again
    /// ([`crate::error::RuntimeError::is_deterministic`]).
    Failed {
        message: String,
        deterministic: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    pub job_id: JobId,
    pub attempt: u64,
    pub task: TaskKey,
    pub kind: TaskEventKind,
}

#[derive(Debug, Default)]
pub struct TaskMetrics {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    /// Time a source waited for its watermark alignment group.
    pub alignment_paused_ms: AtomicU64,
}

/// Where a restored task reads its state.
#[derive(Debug, Clone)]
pub struct RestoreSource {
    pub storage: Storage,
    pub metadata: Arc<CheckpointMetadata>,
}

pub struct TaskSetup {
    pub job_id: JobId,
    pub attempt: u64,
    pub task: TaskKey,
    pub spec: Arc<JobSpec>,
    pub plan: Arc<ExecutionPlan>,
    pub schemas: Arc<Vec<SchemaRef>>,
    pub inputs: Vec<Receiver<Message>>,
    pub outputs: Outputs,
    pub restore: Option<RestoreSource>,
    /// At-most-once: where sources record their position leases (the job's checkpoint folder
    /// `leases/`); `None` for the other guarantees.
    pub lease_dir: Option<Storage>,
    pub control: UnboundedReceiver<TaskControl>,
    pub events: UnboundedSender<TaskEvent>,
    pub metrics: Arc<TaskMetrics>,
    /// The attempt's running work on this task manager (`crate::inflight`).
    pub inflight: InFlight,
    /// A source's membership in its watermark alignment group ([`join_alignment`]).
    pub alignment: Option<AlignedSource>,
    /// Builds the chain's operators.
    pub registry: Arc<crate::registry::Registry>,
    /// How the task and its operators open folder URLs (the task manager's).
    pub storage: Opener,
}

/// Joins `task` to its watermark alignment group if it is a source in one. Whoever deploys
/// tasks does this for all of them before starting any, so the first to start cannot read
/// ahead of one still being built.
pub fn join_alignment(
    alignments: &Alignments,
    job_id: &JobId,
    attempt: u64,
    spec: &JobSpec,
    plan: &ExecutionPlan,
    task: TaskKey,
) -> Option<AlignedSource> {
    let head = *plan.vertex(task.vertex)?.operators.first()?;
    let op = spec.operators.get(head)?;
    if !op.kind.is_source() {
        return None;
    }
    let a = op.watermark.as_ref()?.alignment.as_ref()?;
    Some(alignments.join(
        GroupKey {
            job_id: job_id.0.clone(),
            attempt,
            group: a.group.clone(),
        },
        task.vertex,
        task.subtask,
        a.max_drift_ms,
    ))
}

struct Task {
    job_id: JobId,
    attempt: u64,
    key: TaskKey,
    op_ids: Vec<String>,
    source: Option<Box<dyn Source>>,
    chain: Vec<Box<dyn Operator>>,
    outputs: Outputs,
    events: UnboundedSender<TaskEvent>,
    metrics: Arc<TaskMetrics>,
    checkpointing: bool,
    lease_dir: Option<Storage>,
    /// Opens the checkpoint folders snapshots go to.
    storage: Opener,
    /// Sources with a watermark spec: the generator and the event-time column's index.
    watermarks: Option<(WatermarkGen, usize)>,
    /// Sources in a watermark alignment group.
    alignment: Option<AlignedSource>,
    /// For each input channel, the head operator's input it belongs to (a join's left or
    /// right side).
    channel_input: Vec<usize>,
    slice: TimeSlice,
}

/// How long a task runs without waiting before it hands its worker thread back to the
/// runtime's other tasks. A chain that ends in a sink (or whose output channels have room)
/// never waits on its own; measured in time, not in batches, because a batch costs anything
/// from microseconds (a filter) to seconds (a heavy operator on a slow machine).
const TIME_SLICE: std::time::Duration = std::time::Duration::from_millis(10);

/// When the running task last gave its worker thread back (see [`TIME_SLICE`]).
struct TimeSlice(std::time::Instant);

impl TimeSlice {
    fn new() -> Self {
        Self(std::time::Instant::now())
    }

    /// Yields once the task has run for a slice since it last did. Called after each batch;
    /// the `task_batch` spin point (tests only) hogs the thread there first.
    async fn yield_if_spent(&mut self) {
        weir_types::failpoint::hit(weir_types::failpoint::TASK_BATCH);
        if self.0.elapsed() >= TIME_SLICE {
            tokio::task::yield_now().await;
            self.0 = std::time::Instant::now();
        }
    }
}

/// Runs a subtask to its end; reports `Finished` or `Failed` on the event channel.
pub async fn run_task(setup: TaskSetup) {
    let span = info_span!("task", job = %setup.job_id, attempt = setup.attempt, vertex = setup.task.vertex, subtask = setup.task.subtask);
    let events = setup.events.clone();
    let (job_id, attempt, key) = (setup.job_id.clone(), setup.attempt, setup.task);
    let result = async move {
        let (mut task, inputs, control, guarantee) = Task::build(setup).await?;
        task.event(TaskEventKind::Running);
        if task.source.is_some() {
            task.run_source(control).await
        } else {
            task.run_inputs(inputs, control, guarantee == DeliveryGuarantee::ExactlyOnce)
                .await
        }
    }
    .instrument(span)
    .await;
    let kind = match result {
        Ok(()) => TaskEventKind::Finished,
        Err(e) => {
            warn!(job = %job_id, task = %key, error = %e, "task failed");
            TaskEventKind::Failed {
                message: e.to_string(),
                deterministic: e.is_deterministic(),
            }
        }
    };
    let _ = events.send(TaskEvent {
        job_id,
        attempt,
        task: key,
        kind,
    });
}

impl Task {
    fn event(&self, kind: TaskEventKind) {
        let _ = self.events.send(TaskEvent {
            job_id: self.job_id.clone(),
            attempt: self.attempt,
            task: self.key,
            kind,
        });
    }

    /// Pushes a batch through the chain from operator `from` on, then to the outputs.
    async fn push(&mut self, from: usize, batch: RecordBatch) -> Result<()> {
        let mut current = Some(batch);
        for op in &mut self.chain[from..] {
            match current {
                Some(b) => current = op.process(b).await?,
                None => return Ok(()),
            }
        }
        if let Some(b) = current {
            self.metrics
                .records_out
                .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
            self.outputs.batch(b).await?;
        }
        Ok(())
    }

    /// A batch from input channel `channel`: the head operator learns which of its inputs it
    /// came from, the rest of the chain takes its output as usual.
    async fn push_input(&mut self, channel: usize, batch: RecordBatch) -> Result<()> {
        let input = self.channel_input.get(channel).copied().unwrap_or(0);
        let Some(head) = self.chain.first_mut() else {
            return self.push(0, batch).await;
        };
        match head.process_input(input, batch).await? {
            Some(b) => self.push(1, b).await,
            None => Ok(()),
        }
    }

    /// The task's watermark advanced to `w`: each operator of the chain may emit (closed
    /// windows) into the ones after it, then the watermark goes downstream.
    async fn on_watermark(&mut self, w: i64) -> Result<()> {
        for i in 0..self.chain.len() {
            if let Some(b) = self.chain[i].on_watermark(w).await? {
                self.push(i + 1, b).await?;
            }
        }
        self.outputs.watermark(w).await
    }

    /// End of input for the chain: each operator flushes into the ones after it.
    async fn flush_chain(&mut self) -> Result<()> {
        for i in 0..self.chain.len() {
            if let Some(b) = self.chain[i].end_of_input().await? {
                self.push(i + 1, b).await?;
            }
        }
        Ok(())
    }
}
