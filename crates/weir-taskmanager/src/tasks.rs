//! The task manager's logic: deploying a job attempt's subtasks, wiring their channels, routing
//! control messages to them, and cancelling them.

use crate::{Result, TaskManagerConfig, TmError};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{self, Sender, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use weir_checkpoint::CheckpointMetadata;
use weir_proto as pb;
use weir_runtime::alignment::{AlignedSource, Alignments};
use weir_runtime::exchange::encode_batch;
use weir_runtime::inflight::InFlight;
use weir_runtime::output::{EdgeOutput, Outputs};
use weir_runtime::task::{
    join_alignment, run_task, RestoreSource, TaskControl, TaskEvent, TaskMetrics, TaskSetup,
};
use weir_runtime::{Barrier, Message};
use weir_types::sync::lock;
use weir_types::{Channel, ExecutionPlan, JobId, JobSpec, Partitioning, TaskKey};

/// Identifies one physical channel of one job attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    pub job_id: String,
    pub attempt: u64,
    pub channel: Channel,
}

pub struct RunningTask {
    pub control: UnboundedSender<TaskControl>,
    pub handle: JoinHandle<()>,
    pub metrics: Arc<TaskMetrics>,
    pub is_source: bool,
}

pub struct JobTasks {
    pub attempt: u64,
    pub tasks: HashMap<TaskKey, RunningTask>,
    /// The attempt's tasks and the blocking work they started, counted (`weir_runtime::inflight`).
    pub inflight: InFlight,
}

/// What a deployment asks for, converted from the wire.
pub struct Deployment {
    pub job_id: JobId,
    pub attempt: u64,
    pub job_json: String,
    pub tasks: Vec<TaskKey>,
    pub placement: HashMap<TaskKey, String>,
    pub restore_dir: Option<String>,
    pub restore_metadata: Option<String>,
    pub checkpoint_dir: String,
}

pub struct TaskManagerState {
    pub cfg: TaskManagerConfig,
    pub address: String,
    jobs: Mutex<HashMap<JobId, JobTasks>>,
    inbound: Mutex<HashMap<ChannelKey, Sender<Message>>>,
    inbound_changed: Notify,
    /// Cancelled attempts whose work may still be running: (job, attempt, its count).
    stopping: Mutex<Vec<(JobId, u64, InFlight)>>,
    events_tx: UnboundedSender<TaskEvent>,
    events_rx: Mutex<Option<UnboundedReceiver<TaskEvent>>>,
    /// The aligned sources running here; the heartbeat exchanges their watermarks.
    pub alignments: Alignments,
    /// Where subtasks and their outgoing data channels run: a runtime of their own, so a busy
    /// task can never hold up the heartbeat and the control RPCs on the caller's runtime.
    tasks_rt: tokio::runtime::Handle,
    /// The leader epoch of the job manager this one last registered with: calls of a lower
    /// epoch come from a deposed job manager and are refused ([`Self::check_epoch`]).
    leader_epoch: std::sync::atomic::AtomicU64,
    /// The job manager whose heartbeat stream is open now, if any: the readiness probe.
    connected: Mutex<Option<String>>,
}

impl TaskManagerState {
    /// Records the leader epoch a registration was accepted under. Set, not raised: a job
    /// manager started on a fresh state dir counts epochs from 1 again.
    pub fn registered_under(&self, epoch: u64) {
        self.leader_epoch
            .store(epoch, std::sync::atomic::Ordering::SeqCst);
    }

    /// Records the job manager whose heartbeat stream is open (None: none is).
    pub fn set_connected(&self, jobmanager: Option<String>) {
        *lock(&self.connected) = jobmanager;
    }

    /// The readiness probe's answer: ready while registered with a job manager.
    pub fn readiness(&self) -> Result<(), String> {
        match &*lock(&self.connected) {
            Some(_) => Ok(()),
            None => Err(format!(
                "unregistered: not registered with a job manager (trying {})",
                self.cfg.jobmanager
            )),
        }
    }

    /// Refuses a call from a job manager whose leader epoch is lower than the one this task
    /// manager registered under: it was deposed, and must neither deploy, trigger, commit nor
    /// cancel here.
    pub fn check_epoch(&self, epoch: u64) -> Result<(), String> {
        let current = self.leader_epoch.load(std::sync::atomic::Ordering::SeqCst);
        if epoch < current {
            Err(format!(
                "fenced: the call comes from leader epoch {epoch}, this task manager follows \
                 epoch {current}"
            ))
        } else {
            Ok(())
        }
    }

    /// `tasks_rt`: the runtime subtasks run on; keep it apart from the one that serves the
    /// control traffic (see [`crate::TaskRuntime`]).
    pub fn new(cfg: TaskManagerConfig, address: String, tasks_rt: tokio::runtime::Handle) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Self {
            cfg,
            address,
            jobs: Mutex::new(HashMap::new()),
            inbound: Mutex::new(HashMap::new()),
            inbound_changed: Notify::new(),
            stopping: Mutex::new(Vec::new()),
            events_tx,
            events_rx: Mutex::new(Some(events_rx)),
            alignments: Alignments::default(),
            tasks_rt,
            leader_epoch: std::sync::atomic::AtomicU64::new(0),
            connected: Mutex::new(None),
        }
    }

    pub fn take_events(&self) -> Option<UnboundedReceiver<TaskEvent>> {
        lock(&self.events_rx).take()
    }

    pub fn used_slots(&self) -> u32 {
        lock(&self.jobs)
            .values()
            .map(|j| j.tasks.values().filter(|t| !t.handle.is_finished()).count() as u32)
            .sum()
    }

    pub fn metrics(&self) -> Vec<pb::TaskMetrics> {
        use std::sync::atomic::Ordering;
        let jobs = lock(&self.jobs);
        jobs.iter()
            .flat_map(|(job, j)| {
                j.tasks.iter().map(move |(key, t)| pb::TaskMetrics {
                    job_id: job.0.clone(),
                    attempt: j.attempt,
                    vertex: key.vertex,
                    subtask: key.subtask,
                    records_in: t.metrics.records_in.load(Ordering::Relaxed),
                    records_out: t.metrics.records_out.load(Ordering::Relaxed),
                    alignment_paused_ms: t.metrics.alignment_paused_ms.load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    /// A task ended: forget it (its slot is free again).
    pub fn task_ended(&self, job: &JobId, attempt: u64, task: TaskKey) {
        let mut jobs = lock(&self.jobs);
        if let Some(j) = jobs.get_mut(job) {
            if j.attempt == attempt {
                j.tasks.remove(&task);
                if j.tasks.is_empty() {
                    jobs.remove(job);
                }
            }
        }
    }

    pub fn cancel_job(&self, job: &JobId, attempt: Option<u64>) {
        let removed = {
            let mut jobs = lock(&self.jobs);
            match jobs.get(job) {
                Some(j) if attempt.is_none_or(|a| j.attempt <= a) => jobs.remove(job),
                _ => None,
            }
        };
        if let Some(j) = removed {
            info!(job = %job, attempt = j.attempt, tasks = j.tasks.len(), "cancelling tasks");
            for t in j.tasks.values() {
                t.handle.abort();
            }
            lock(&self.stopping).push((job.clone(), j.attempt, j.inflight));
        }
        lock(&self.inbound).retain(|k, _| k.job_id != job.0);
    }

    /// Waits until every cancelled attempt of `job` has stopped: its tasks, and the blocking
    /// work they started (a Kafka commit runs to its end after its task is aborted). A new
    /// attempt must not start before, or its recovery races the old attempt's commit.
    pub async fn stopped(&self, job: &JobId, limit: Duration) -> Result<()> {
        let waiting: Vec<(u64, InFlight)> = lock(&self.stopping)
            .iter()
            .filter(|(j, _, _)| j == job)
            .map(|(_, a, f)| (*a, f.clone()))
            .collect();
        let deadline = tokio::time::Instant::now() + limit;
        for (attempt, f) in &waiting {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !f.idle_within(left).await {
                return Err(TmError::StillStopping(format!(
                    "job {job}: attempt {attempt} still has {} tasks or blocking calls running {} ms after its cancellation",
                    f.running(),
                    limit.as_millis()
                )));
            }
        }
        lock(&self.stopping).retain(|(_, _, f)| f.running() > 0);
        Ok(())
    }

    pub fn cancel_all(&self, why: &str) {
        let jobs: Vec<JobId> = lock(&self.jobs).keys().cloned().collect();
        if !jobs.is_empty() {
            warn!(jobs = jobs.len(), why, "cancelling all tasks");
        }
        for j in jobs {
            self.cancel_job(&j, None);
        }
    }

    pub fn control(&self, job: &JobId, attempt: u64, sources_only: bool, msg: TaskControl) {
        let jobs = lock(&self.jobs);
        if let Some(j) = jobs.get(job) {
            if j.attempt != attempt {
                return;
            }
            for t in j.tasks.values() {
                if !sources_only || t.is_source {
                    let _ = t.control.send(msg.clone());
                }
            }
        }
    }

    /// Waits (bounded) for the receiving end of a channel to be deployed here, and takes it.
    pub async fn take_inbound(&self, key: &ChannelKey, wait: Duration) -> Option<Sender<Message>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.inbound_changed.notified();
            if let Some(tx) = lock(&self.inbound).remove(key) {
                return Some(tx);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    pub fn deploy(self: &Arc<Self>, d: Deployment) -> Result<()> {
        let bad = |m: String| TmError::Deploy(m);
        let spec = Arc::new(JobSpec::from_json(&d.job_json).map_err(|e| bad(e.to_string()))?);
        let plan = Arc::new(ExecutionPlan::new(&spec).map_err(|e| bad(e.to_string()))?);
        let schemas = Arc::new(weir_planner::schemas(&spec).map_err(|e| bad(e.to_string()))?);
        let restore = match (&d.restore_dir, &d.restore_metadata) {
            (Some(dir), Some(meta)) => Some(RestoreSource {
                storage: self.cfg.storage.open(dir).map_err(|e| bad(e.to_string()))?,
                metadata: Arc::new(
                    CheckpointMetadata::from_json(meta.as_bytes())
                        .map_err(|e| bad(e.to_string()))?,
                ),
            }),
            _ => None,
        };
        let lease_dir = if spec.guarantee == weir_types::DeliveryGuarantee::AtMostOnce {
            Some(
                self.cfg
                    .storage
                    .open(&format!(
                        "{}/leases",
                        d.checkpoint_dir.trim_end_matches('/')
                    ))
                    .map_err(|e| bad(e.to_string()))?,
            )
        } else {
            None
        };
        let free = self.cfg.slots.saturating_sub(self.used_slots());
        if d.tasks.len() as u32 > free {
            return Err(bad(format!(
                "{} tasks need slots, {free} free",
                d.tasks.len()
            )));
        }
        self.cancel_job(&d.job_id, Some(d.attempt));
        let cap = self.cfg.channel_capacity;
        let is_local = |t: &TaskKey| d.placement.get(t).is_some_and(|a| *a == self.address);
        // Receiving ends first: local senders kept for wiring, remote ones registered.
        let mut local_senders: HashMap<Channel, Sender<Message>> = HashMap::new();
        let mut task_inputs: HashMap<TaskKey, Vec<mpsc::Receiver<Message>>> = HashMap::new();
        for key in &d.tasks {
            let v = plan
                .vertex(key.vertex)
                .ok_or_else(|| bad(format!("no vertex {}", key.vertex)))?;
            let mut rxs = Vec::new();
            for edge in &v.inputs {
                for ch in plan.channels_into(*edge, key.subtask) {
                    let (tx, rx) = mpsc::channel(cap);
                    rxs.push(rx);
                    let e = plan
                        .edge(*edge)
                        .ok_or_else(|| bad(format!("no edge {edge}")))?;
                    let sender = TaskKey {
                        vertex: e.from_vertex,
                        subtask: ch.from_subtask,
                    };
                    if is_local(&sender) {
                        local_senders.insert(ch, tx);
                    } else {
                        let k = ChannelKey {
                            job_id: d.job_id.0.clone(),
                            attempt: d.attempt,
                            channel: ch,
                        };
                        lock(&self.inbound).insert(k, tx);
                    }
                }
            }
            task_inputs.insert(*key, rxs);
        }
        self.inbound_changed.notify_waiters();
        let mut job = JobTasks {
            attempt: d.attempt,
            tasks: HashMap::new(),
            inflight: InFlight::default(),
        };
        // Aligned sources join their groups before any task starts (`join_alignment`).
        let mut aligned: HashMap<TaskKey, AlignedSource> = d
            .tasks
            .iter()
            .filter_map(|key| {
                join_alignment(&self.alignments, &d.job_id, d.attempt, &spec, &plan, *key)
                    .map(|a| (*key, a))
            })
            .collect();
        for key in &d.tasks {
            let v = plan
                .vertex(key.vertex)
                .ok_or_else(|| bad(format!("no vertex {}", key.vertex)))?;
            let tail = *v
                .operators
                .last()
                .ok_or_else(|| bad("empty vertex".into()))?;
            let mut outputs = Outputs::default();
            for edge in &v.outputs {
                let e = plan
                    .edge(*edge)
                    .ok_or_else(|| bad(format!("no edge {edge}")))?;
                let key_columns = match &e.partitioning {
                    Partitioning::Hash(keys) => keys
                        .iter()
                        .map(|k| {
                            schemas[tail]
                                .index_of(k)
                                .map_err(|_| bad(format!("no key column {k}")))
                        })
                        .collect::<Result<Vec<_>>>()?,
                    _ => vec![],
                };
                let mut senders = Vec::new();
                for ch in plan.channels_from(*edge, key.subtask) {
                    let receiver = TaskKey {
                        vertex: e.to_vertex,
                        subtask: ch.to_subtask,
                    };
                    if is_local(&receiver) {
                        let tx = local_senders
                            .remove(&ch)
                            .ok_or_else(|| bad(format!("no local receiver for {ch:?}")))?;
                        senders.push(tx);
                    } else {
                        let addr = d
                            .placement
                            .get(&receiver)
                            .cloned()
                            .ok_or_else(|| bad(format!("{receiver} has no placement")))?;
                        let (tx, rx) = mpsc::channel(cap);
                        let header = pb::ChannelHeader {
                            job_id: d.job_id.0.clone(),
                            attempt: d.attempt,
                            edge: ch.edge,
                            from_subtask: ch.from_subtask,
                            to_subtask: ch.to_subtask,
                        };
                        self.tasks_rt.spawn(pump(addr, header, rx));
                        senders.push(tx);
                    }
                }
                outputs.edges.push(EdgeOutput::new(
                    &e.partitioning,
                    key_columns,
                    spec.max_parallelism,
                    senders,
                ));
            }
            let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
            let metrics = Arc::new(TaskMetrics::default());
            let setup = TaskSetup {
                job_id: d.job_id.clone(),
                attempt: d.attempt,
                task: *key,
                spec: spec.clone(),
                plan: plan.clone(),
                schemas: schemas.clone(),
                inputs: task_inputs.remove(key).unwrap_or_default(),
                outputs,
                restore: restore.clone(),
                lease_dir: lease_dir.clone(),
                control: ctl_rx,
                events: self.events_tx.clone(),
                metrics: metrics.clone(),
                inflight: job.inflight.clone(),
                alignment: aligned.remove(key),
                registry: self.cfg.registry.clone(),
                storage: self.cfg.storage.clone(),
            };
            // The task counts as running until its future is gone (ended, or dropped when
            // aborted); its blocking calls count on their own.
            let running = job.inflight.enter();
            let handle = self.tasks_rt.spawn(async move {
                let _running = running;
                run_task(setup).await
            });
            job.tasks.insert(
                *key,
                RunningTask {
                    control: ctl_tx,
                    handle,
                    metrics,
                    is_source: v.is_source,
                },
            );
        }
        info!(job = %d.job_id, attempt = d.attempt, tasks = d.tasks.len(), restore = ?d.restore_dir, "deployed");
        lock(&self.jobs).insert(d.job_id, job);
        Ok(())
    }
}

pub fn barrier_from_proto(b: pb::Barrier) -> Barrier {
    Barrier {
        id: b.checkpoint_id,
        timestamp_ms: b.timestamp_ms,
        savepoint: b.savepoint,
        target_dir: b.target_dir.into(),
    }
}

fn frame(msg: Message) -> Option<pb::DataFrame> {
    use pb::data_frame::Kind;
    let kind = match msg {
        Message::Batch(b) => match encode_batch(&b) {
            Ok(bytes) => Kind::BatchIpc(bytes),
            Err(e) => {
                warn!(error = %e, "cannot encode batch; closing channel");
                return None;
            }
        },
        Message::Barrier(b) => Kind::Barrier(pb::Barrier {
            checkpoint_id: b.id,
            timestamp_ms: b.timestamp_ms,
            savepoint: b.savepoint,
            target_dir: b.target_dir.to_string(),
        }),
        Message::Watermark(w) => Kind::Watermark(w),
        Message::EndOfStream => Kind::EndOfStream(true),
    };
    Some(pb::DataFrame { kind: Some(kind) })
}

/// Streams one channel's messages to a remote task manager. If the stream fails, the channel
/// closes and the sending task fails on its next send: the job restarts from its checkpoint.
async fn pump(addr: String, header: pb::ChannelHeader, rx: mpsc::Receiver<Message>) {
    let mut client = None;
    for i in 0..20 {
        let endpoint = match tonic::transport::Endpoint::from_shared(addr.clone()) {
            Ok(e) => e
                .tcp_nodelay(true)
                .initial_stream_window_size(crate::EXCHANGE_STREAM_WINDOW)
                .initial_connection_window_size(crate::EXCHANGE_CONNECTION_WINDOW),
            Err(e) => {
                warn!(%addr, error = %e, "bad task manager address for data exchange");
                return;
            }
        };
        match endpoint
            .connect()
            .await
            .map(pb::task_manager_service_client::TaskManagerServiceClient::new)
        {
            Ok(c) => {
                client = Some(
                    c.max_decoding_message_size(256 << 20)
                        .max_encoding_message_size(256 << 20),
                );
                break;
            }
            Err(e) if i == 19 => {
                warn!(%addr, error = %e, "cannot reach task manager for data exchange")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let Some(mut client) = client else { return };
    let first = pb::DataFrame {
        kind: Some(pb::data_frame::Kind::Header(header.clone())),
    };
    let rest = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(frame)
        .take_while(|f| futures::future::ready(f.is_some()))
        .filter_map(futures::future::ready);
    let stream = futures::stream::once(futures::future::ready(first)).chain(rest);
    if let Err(e) = client.exchange(stream).await {
        warn!(%addr, edge = header.edge, from = header.from_subtask, to = header.to_subtask, error = %e, "data exchange failed");
    }
}
