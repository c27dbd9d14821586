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

use crate::alignment::{AlignedSource, Alignments, GroupKey};
use crate::error::{Result, RuntimeError};
use crate::inflight::InFlight;
use crate::message::{Barrier, Message};
use crate::operators::{
    build_operator, build_source, Operator, OperatorContext, Restored, Source, SourcePoll,
};
use crate::output::Outputs;
use crate::watermark::{InputWatermarks, WatermarkGen, END};
use arrow::array::AsArray;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver, UnboundedSender};
use tracing::{debug, info_span, warn, Instrument};
use weir_checkpoint::{AlignEvent, BarrierAligner, CheckpointMetadata, SubtaskHandle};
use weir_storage::Storage;
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
        crate::failpoint::hit(crate::failpoint::TASK_BATCH);
        if self.0.elapsed() >= TIME_SLICE {
            tokio::task::yield_now().await;
            self.0 = std::time::Instant::now();
        }
    }
}

/// A source held by watermark alignment checks again at least this often (it is woken sooner
/// when its group's watermarks change).
const ALIGNMENT_RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// Records a source may emit per partition beyond its durable lease (at-most-once).
const LEASE_AHEAD: u64 = 8192;

/// Adds the at-most-once leases of every earlier attempt to what a source restores from.
async fn load_leases(
    dir: &Storage,
    op_id: &str,
    restored: Option<Restored>,
) -> Result<Option<Restored>> {
    let files: Vec<String> = dir
        .list("")
        .await?
        .into_iter()
        .filter(|f| f.starts_with(&format!("{op_id}-")) && f.ends_with(".lease"))
        .collect();
    if files.is_empty() {
        return Ok(restored);
    }
    let mut r = restored.unwrap_or_default();
    for (name, bytes) in dir.get_many(files).await? {
        debug!(lease = %name, "restoring at-most-once lease");
        r.snapshots.push((u32::MAX, bytes));
    }
    Ok(Some(r))
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

async fn load_restored(restore: &Option<RestoreSource>, op_id: &str) -> Result<Option<Restored>> {
    let Some(r) = restore else { return Ok(None) };
    let Some(snap) = r.metadata.operators.get(op_id) else {
        return Ok(None);
    };
    let mut snapshots = Vec::new();
    for (subtask, handle) in &snap.subtasks {
        let bytes = r.storage.get(&handle.path).await?;
        if bytes.len() as u64 != handle.size {
            return Err(RuntimeError::Input(format!(
                "state file {} has {} bytes, the checkpoint recorded {}: corrupt checkpoint",
                handle.path,
                bytes.len(),
                handle.size
            )));
        }
        snapshots.push((*subtask, bytes));
    }
    Ok(Some(Restored {
        job_id: r.metadata.job_id.clone(),
        old_parallelism: snap.parallelism,
        snapshots,
    }))
}

impl Task {
    async fn build(
        mut s: TaskSetup,
    ) -> Result<(
        Self,
        Vec<Receiver<Message>>,
        UnboundedReceiver<TaskControl>,
        DeliveryGuarantee,
    )> {
        let vertex = s
            .plan
            .vertex(s.task.vertex)
            .ok_or_else(|| RuntimeError::Internal(format!("no vertex {}", s.task.vertex)))?
            .clone();
        let mut source = None;
        let mut watermarks = None;
        let mut alignment = None;
        let mut chain = Vec::new();
        let mut op_ids = Vec::new();
        for (pos, &op_index) in vertex.operators.iter().enumerate() {
            let op = &s.spec.operators[op_index];
            let input_schema = op
                .inputs
                .first()
                .and_then(|i| s.spec.operator_index(&i.from))
                .map(|i| s.schemas[i].clone())
                .or_else(|| (pos > 0).then(|| s.schemas[vertex.operators[pos - 1]].clone()));
            let input_schemas = if pos == 0 {
                op.inputs
                    .iter()
                    .filter_map(|i| s.spec.operator_index(&i.from))
                    .map(|i| s.schemas[i].clone())
                    .collect()
            } else {
                input_schema.iter().cloned().collect()
            };
            let ctx = OperatorContext {
                job_id: s.job_id.clone(),
                op_id: op.id.clone(),
                subtask: s.task.subtask,
                parallelism: op.parallelism,
                max_parallelism: s.spec.max_parallelism,
                attempt: s.attempt,
                guarantee: s.spec.guarantee,
                checkpointing: s.spec.checkpoint.interval_ms > 0,
                state_backend: s.spec.state_backend,
                input_schema,
                input_schemas,
                output_schema: s.schemas[op_index].clone(),
                inflight: s.inflight.clone(),
            };
            let mut restored = load_restored(&s.restore, &op.id).await?;
            if let (Some(dir), true) = (&s.lease_dir, op.kind.is_source()) {
                restored = load_leases(dir, &op.id, restored).await?;
            }
            if pos == 0 && op.kind.is_source() {
                let src = build_source(&ctx, op, restored).await?;
                if let Some(w) = &op.watermark {
                    let col = s.schemas[op_index].index_of(&w.column).map_err(|_| {
                        RuntimeError::Plan(format!(
                            "operator {:?}: no watermark column {:?}",
                            op.id, w.column
                        ))
                    })?;
                    let gen = WatermarkGen::new(
                        src.partition_count(),
                        w.delay_ms,
                        w.idle_timeout_ms,
                        std::time::Instant::now(),
                    );
                    watermarks = Some((gen, col));
                    alignment = s.alignment.take();
                }
                source = Some(src);
            } else {
                chain.push(build_operator(&ctx, op, restored).await?);
            }
            op_ids.push(op.id.clone());
        }
        // Input channels come edge by edge in the head operator's input order (as the task
        // manager creates them).
        let mut channel_input = Vec::new();
        for (input, edge) in vertex.inputs.iter().enumerate() {
            let n = s.plan.channels_into(*edge, s.task.subtask).len();
            channel_input.extend(std::iter::repeat_n(input, n));
        }
        let task = Task {
            job_id: s.job_id,
            attempt: s.attempt,
            key: s.task,
            op_ids,
            source,
            chain,
            outputs: s.outputs,
            events: s.events,
            metrics: s.metrics,
            checkpointing: s.spec.checkpoint.interval_ms > 0,
            lease_dir: s.lease_dir,
            watermarks,
            alignment,
            channel_input,
            slice: TimeSlice::new(),
        };
        Ok((task, s.inputs, s.control, s.spec.guarantee))
    }

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

    /// A source task's watermark after a batch (partition, largest event time), or a check
    /// for ended and idle partitions.
    /// Pushes a source batch of partition `p` through the chain as if the watermark advanced
    /// after every row, as Flink's does (with `pipeline.auto-watermark-interval` 0; its
    /// periodic default makes lateness depend on timing): where a row is at or behind the
    /// watermark the rows before it would have raised (`ts <= max - delay`), the rows before
    /// it go first and that watermark after them, so a window they complete fires before the
    /// late row arrives and the row is late for it, exactly as in Flink. In-order rows, and
    /// rows out of order by less than the delay, never split a batch. Returns the largest
    /// event time of the rows after the last split (their watermark is the caller's).
    async fn push_with_row_watermarks(
        &mut self,
        b: RecordBatch,
        p: usize,
        col: usize,
    ) -> Result<Option<i64>> {
        use arrow::array::Array;
        let delay = match &self.watermarks {
            Some((gen, _)) => gen.delay(),
            None => return Ok(None),
        };
        let ts = arrow::compute::cast(b.column(col), &arrow::datatypes::DataType::Int64)?;
        let ts = ts.as_primitive::<arrow::datatypes::Int64Type>().clone();
        let (mut start, mut max): (usize, Option<i64>) = (0, None);
        for i in 0..b.num_rows() {
            if ts.is_null(i) {
                continue;
            }
            let t = ts.value(i);
            if let Some(m) = max {
                if t <= m.saturating_sub(delay) {
                    self.push(0, b.slice(start, i - start)).await?;
                    self.source_watermark(Some((p, m))).await?;
                    (start, max) = (i, None);
                }
            }
            max = Some(max.map_or(t, |m| m.max(t)));
        }
        if start == 0 {
            self.push(0, b).await?;
        } else {
            self.push(0, b.slice(start, b.num_rows() - start)).await?;
        }
        Ok(max)
    }

    async fn source_watermark(&mut self, batch: Option<(usize, i64)>) -> Result<()> {
        let advanced = {
            let (Some((gen, _)), Some(src)) = (&mut self.watermarks, &self.source) else {
                return Ok(());
            };
            let now = std::time::Instant::now();
            gen.ensure_partitions(src.partition_count(), now);
            let ended = |p: usize| src.partition_ended(p);
            let advanced = gen.update(batch, &ended, now);
            if let Some(a) = &self.alignment {
                a.publish(if gen.idle() { END } else { gen.current() });
            }
            advanced
        };
        match advanced {
            Some(w) => self.on_watermark(w).await,
            None => Ok(()),
        }
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

    fn awaiting_commit(&self) -> bool {
        self.chain.iter().any(|op| op.awaiting_commit())
    }

    async fn complete(&mut self, id: CheckpointId) -> Result<()> {
        if let Some(src) = &mut self.source {
            src.checkpoint_complete(id).await?;
        }
        for op in &mut self.chain {
            op.checkpoint_complete(id).await?;
        }
        Ok(())
    }

    async fn finish_without_checkpoint(&mut self) -> Result<()> {
        for op in &mut self.chain {
            op.finish().await?;
        }
        Ok(())
    }

    /// Takes the snapshot for `barrier`, forwards the barrier, and uploads in the background.
    async fn snapshot(&mut self, barrier: &Barrier) -> Result<()> {
        let mut states: Vec<(String, Vec<u8>)> = Vec::new();
        let chain_ids = if self.source.is_some() {
            &self.op_ids[1..]
        } else {
            &self.op_ids[..]
        };
        let mut source_offsets = None;
        if let Some(src) = &mut self.source {
            if let Some(bytes) = src.snapshot(barrier.id)? {
                states.push((self.op_ids[0].clone(), bytes));
            }
            source_offsets = src.chained_offsets();
        }
        for (op, id) in self.chain.iter_mut().zip(chain_ids) {
            if let Some(o) = &source_offsets {
                op.chained_source_offsets(o);
            }
            if let Some(bytes) = op.snapshot(barrier).await? {
                states.push((id.clone(), bytes));
            }
        }
        self.outputs.barrier(barrier).await?;
        let (events, job_id, attempt, key) = (
            self.events.clone(),
            self.job_id.clone(),
            self.attempt,
            self.key,
        );
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let kind = match upload(&barrier, key, attempt, states).await {
                Ok(handles) => TaskEventKind::Acknowledged {
                    checkpoint: barrier.id,
                    handles,
                },
                Err(e) => {
                    warn!(checkpoint = barrier.id, task = %key, error = %e, "snapshot upload failed");
                    TaskEventKind::Declined {
                        checkpoint: barrier.id,
                        reason: e.to_string(),
                    }
                }
            };
            let _ = events.send(TaskEvent {
                job_id,
                attempt,
                task: key,
                kind,
            });
        });
        Ok(())
    }

    /// Makes the source's next lease durable before it may emit under it.
    async fn extend_lease(&mut self) -> Result<()> {
        let (Some(dir), Some(src)) = (&self.lease_dir, &mut self.source) else {
            return Err(RuntimeError::Internal(
                "a source asked for a lease outside at-most-once".into(),
            ));
        };
        let bytes = src.lease(LEASE_AHEAD)?.ok_or_else(|| {
            RuntimeError::Internal("source asked for a lease but gave none".into())
        })?;
        dir.put(
            &format!(
                "{}-{}-a{}.lease",
                self.op_ids[0], self.key.subtask, self.attempt
            ),
            bytes,
        )
        .await?;
        Ok(())
    }

    /// Whether the source must wait for its alignment group before reading more: `Some(its
    /// watermark)` while it is more than the group's drift ahead. The time it waited is
    /// counted, and does not count as its partitions' silence (idleness).
    fn held_by_alignment(&mut self, paused_since: &mut Option<std::time::Instant>) -> Option<i64> {
        let (Some(a), Some((gen, _))) = (&self.alignment, &mut self.watermarks) else {
            return None;
        };
        let w = gen.current();
        let ahead = a.ahead(w);
        // The time since the last check is counted at every check, so a source that is
        // waiting now shows it in the status.
        let now = std::time::Instant::now();
        if let Some(since) = paused_since.take() {
            let paused = now.duration_since(since);
            gen.paused(paused);
            self.metrics
                .alignment_paused_ms
                .fetch_add(paused.as_millis() as u64, Ordering::Relaxed);
        }
        if ahead {
            *paused_since = Some(now);
            return Some(w);
        }
        None
    }

    async fn run_source(&mut self, mut control: UnboundedReceiver<TaskControl>) -> Result<()> {
        let mut exhausted = false;
        let mut final_checkpoint: Option<CheckpointId> = None;
        let mut wait_until: Option<tokio::time::Instant> = None;
        let mut paused_since: Option<std::time::Instant> = None;
        loop {
            let ctrl = if exhausted {
                control.recv().await
            } else if let Some(t) = wait_until {
                tokio::select! {
                    c = control.recv() => c,
                    _ = tokio::time::sleep_until(t) => { wait_until = None; continue; }
                }
            } else if let Some(w) = self.held_by_alignment(&mut paused_since) {
                let Some(a) = &self.alignment else { continue };
                tokio::select! {
                    c = control.recv() => c,
                    _ = a.wait(w, ALIGNMENT_RECHECK) => continue,
                }
            } else {
                match control.try_recv() {
                    Ok(c) => Some(c),
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                        let poll = match &mut self.source {
                            Some(s) => s.poll_next().await?,
                            None => {
                                return Err(RuntimeError::Internal(
                                    "source task without source".into(),
                                ))
                            }
                        };
                        match poll {
                            SourcePoll::Batch(b) => {
                                self.metrics
                                    .records_in
                                    .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                                // (partition, largest event time) of the batch's rows
                                // Rows of several partitions (Kafka): per partition; one
                                // partition: per row (see push_with_row_watermarks).
                                let mixed = match (&self.watermarks, &self.source) {
                                    (Some((_, col)), Some(src)) => match src.row_partitions() {
                                        Some(parts) if parts.len() == b.num_rows() => {
                                            Some(Some(max_time_by_partition(&b, *col, parts)?))
                                        }
                                        _ => Some(None),
                                    },
                                    _ => None,
                                };
                                let event_times = match mixed {
                                    Some(Some(times)) => {
                                        self.push(0, b).await?;
                                        times
                                    }
                                    Some(None) => {
                                        let (p, col) = match (&self.watermarks, &self.source) {
                                            (Some((_, col)), Some(src)) => {
                                                (src.last_partition(), *col)
                                            }
                                            _ => (0, 0),
                                        };
                                        self.push_with_row_watermarks(b, p, col)
                                            .await?
                                            .map(|ts| vec![(p, ts)])
                                            .unwrap_or_default()
                                    }
                                    None => {
                                        self.push(0, b).await?;
                                        Vec::new()
                                    }
                                };
                                // A chain that ends in a sink never waits on a channel:
                                // give the worker thread back every time slice.
                                self.slice.yield_if_spent().await;
                                for pt in event_times {
                                    self.source_watermark(Some(pt)).await?;
                                }
                            }
                            SourcePoll::Wait(t) => {
                                let progress = self.source.as_ref().and_then(|s| {
                                    s.progress_time().map(|time| (s.last_partition(), time))
                                });
                                self.source_watermark(progress).await?;
                                wait_until = Some(t.into())
                            }
                            SourcePoll::NeedLease => self.extend_lease().await?,
                            SourcePoll::Exhausted => {
                                exhausted = true;
                                if let Some(a) = &self.alignment {
                                    a.publish(END);
                                }
                                if self.watermarks.is_some() {
                                    self.on_watermark(crate::watermark::END).await?;
                                }
                                self.flush_chain().await?;
                                self.event(TaskEventKind::SourceExhausted);
                                if !self.checkpointing {
                                    self.finish_without_checkpoint().await?;
                                    self.outputs.end_of_stream().await?;
                                    return Ok(());
                                }
                                debug!("source exhausted; waiting for a final checkpoint");
                            }
                        }
                        continue;
                    }
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match ctrl {
                None => {
                    return Err(RuntimeError::ChannelClosed(
                        "control channel closed (task cancelled)".into(),
                    ))
                }
                Some(TaskControl::TriggerCheckpoint { barrier, stop }) => {
                    // Only a barrier the job manager marks as the last one ends a source: the
                    // final checkpoint after every source ran dry, or stop-with-savepoint. All
                    // sources then end on the same checkpoint, so none ends while another
                    // still needs a checkpoint that would lack the ended one's position.
                    if stop {
                        if !exhausted {
                            exhausted = true;
                            if let Some(a) = &self.alignment {
                                a.publish(END);
                            }
                            self.flush_chain().await?;
                        }
                        final_checkpoint.get_or_insert(barrier.id);
                    }
                    self.snapshot(&barrier).await?;
                }
                Some(TaskControl::CheckpointComplete(id)) => {
                    self.complete(id).await?;
                    if final_checkpoint.is_some_and(|f| id >= f) {
                        self.outputs.end_of_stream().await?;
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn run_inputs(
        &mut self,
        mut inputs: Vec<Receiver<Message>>,
        mut control: UnboundedReceiver<TaskControl>,
        aligned: bool,
    ) -> Result<()> {
        enum Next {
            Control(Option<TaskControl>),
            Input(usize, Option<Message>),
        }
        let n = inputs.len();
        let mut aligner = BarrierAligner::new(n, aligned);
        let mut input_watermarks = InputWatermarks::new(n);
        let mut ended = vec![false; n];
        let mut ended_all = n == 0;
        let mut pending_barrier: Option<Barrier> = None;
        let mut start = 0usize;
        let mut skip = vec![false; n];
        loop {
            for (i, s) in skip.iter_mut().enumerate() {
                *s = ended[i] || aligner.is_blocked(i);
            }
            let next = poll_fn(|cx| {
                if let Poll::Ready(c) = control.poll_recv(cx) {
                    return Poll::Ready(Next::Control(c));
                }
                if !ended_all {
                    for k in 0..n {
                        let i = (start + k) % n;
                        if skip[i] {
                            continue;
                        }
                        if let Poll::Ready(m) = inputs[i].poll_recv(cx) {
                            start = i + 1;
                            return Poll::Ready(Next::Input(i, m));
                        }
                    }
                }
                Poll::Pending
            })
            .await;
            let align_events = match next {
                Next::Control(None) => {
                    return Err(RuntimeError::ChannelClosed(
                        "control channel closed (task cancelled)".into(),
                    ))
                }
                Next::Control(Some(TaskControl::CheckpointComplete(id))) => {
                    self.complete(id).await?;
                    if ended_all && !self.awaiting_commit() {
                        return Ok(());
                    }
                    continue;
                }
                Next::Control(Some(TaskControl::TriggerCheckpoint { .. })) => continue,
                Next::Input(i, None) => {
                    return Err(RuntimeError::ChannelClosed(format!(
                        "input channel {i} closed without end of stream: an upstream task failed"
                    )))
                }
                Next::Input(i, Some(Message::Batch(b))) => {
                    self.metrics
                        .records_in
                        .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                    self.push_input(i, b).await?;
                    self.slice.yield_if_spent().await;
                    continue;
                }
                Next::Input(i, Some(Message::Barrier(b))) => {
                    let ev = aligner.on_barrier(i, b.id);
                    if pending_barrier.as_ref().is_none_or(|p| p.id < b.id) {
                        pending_barrier = Some(b);
                    }
                    ev
                }
                Next::Input(i, Some(Message::Watermark(w))) => {
                    if let Some(w) = input_watermarks.on_watermark(i, w) {
                        self.on_watermark(w).await?;
                    }
                    continue;
                }
                Next::Input(i, Some(Message::EndOfStream)) => {
                    ended[i] = true;
                    if let Some(w) = input_watermarks.on_end(i) {
                        self.on_watermark(w).await?;
                    }
                    aligner.on_end_of_input(i)
                }
            };
            for ev in align_events {
                match ev {
                    AlignEvent::Snapshot(id) => {
                        let b =
                            pending_barrier
                                .clone()
                                .filter(|b| b.id == id)
                                .ok_or_else(|| {
                                    RuntimeError::Internal(format!("no barrier {id} to snapshot"))
                                })?;
                        self.snapshot(&b).await?;
                    }
                    AlignEvent::Aborted(id) => {
                        self.event(TaskEventKind::Declined {
                            checkpoint: id,
                            reason: "alignment abandoned for a newer barrier".into(),
                        });
                    }
                }
            }
            if !ended_all && aligner.all_ended() {
                ended_all = true;
                self.flush_chain().await?;
                self.outputs.end_of_stream().await?;
                if !self.checkpointing {
                    self.finish_without_checkpoint().await?;
                    return Ok(());
                }
                if !self.awaiting_commit() {
                    return Ok(());
                }
                debug!("inputs ended; waiting for the final checkpoint to commit");
            }
        }
    }
}

/// The largest value of a timestamp or integer column in a batch (event time, ms).
/// The largest time of column `col` per partition, for rows whose partitions are `parts`.
fn max_time_by_partition(
    batch: &RecordBatch,
    col: usize,
    parts: &[u32],
) -> Result<Vec<(usize, i64)>> {
    let c = arrow::compute::cast(batch.column(col), &arrow::datatypes::DataType::Int64)?;
    let times = c.as_primitive::<arrow::datatypes::Int64Type>();
    let mut max: Vec<Option<i64>> = Vec::new();
    for (t, p) in times.iter().zip(parts) {
        let (Some(t), p) = (t, *p as usize) else {
            continue;
        };
        if p >= max.len() {
            max.resize(p + 1, None);
        }
        max[p] = Some(max[p].map_or(t, |m| m.max(t)));
    }
    Ok(max
        .into_iter()
        .enumerate()
        .filter_map(|(p, m)| m.map(|m| (p, m)))
        .collect())
}

async fn upload(
    barrier: &Barrier,
    key: TaskKey,
    attempt: u64,
    states: Vec<(String, Vec<u8>)>,
) -> Result<Vec<(String, SubtaskHandle)>> {
    if states.is_empty() {
        return Ok(vec![]);
    }
    let storage = Storage::open(&barrier.target_dir)?;
    let mut handles = Vec::with_capacity(states.len());
    for (op_id, bytes) in states {
        let path = format!("{op_id}-{}-a{attempt}.state", key.subtask);
        let size = bytes.len() as u64;
        storage.put(&path, bytes).await?;
        handles.push((op_id, SubtaskHandle { path, size }));
    }
    Ok(handles)
}
