//! One job's lifecycle, driven by a task that owns it: wait for slots, deploy an attempt, run
//! checkpoints, and on failure cancel, back off and redeploy from the last completed
//! checkpoint, until the job finishes, is cancelled, or runs out of restarts.
//!
//! [`JobManager`] is the shared front: it starts drivers, routes task-manager events to them,
//! and answers list and status from each driver's published [`JobView`].

use crate::alignment::AlignmentTable;
use crate::cluster::Cluster;
use crate::leader::Term;
use crate::store::{JobRecord, JobState, JobStore};
use crate::{JmError, JobManagerConfig, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};
use weir_checkpoint::lineage::{self, AttemptFence, AttemptRestore, RestorePoint};
use weir_checkpoint::metadata::{
    checkpoint_dir_name, parse_checkpoint_dir_name, FORMAT_VERSION, METADATA_FILE,
};
use weir_checkpoint::{
    AckOutcome, CheckpointCoordinator, CheckpointMetadata, CheckpointStats, SubtaskHandle,
};
use weir_proto as pb;
use weir_storage::Opener;
use weir_types::sync::lock;
use weir_types::{now_ms, CheckpointId, ExecutionPlan, JobId, JobSpec, TaskKey};

pub type SavepointReply = oneshot::Sender<Result<(String, CheckpointId), String>>;

/// What a task reported of itself (the wire's `TaskState`, converted by the service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskReport {
    Running,
    /// A source read its whole input.
    SourceExhausted,
    Finished,
    Failed {
        message: String,
        /// The task would fail the same way again: the job fails without a restart.
        deterministic: bool,
    },
}

pub enum JobEvent {
    TaskState {
        attempt: u64,
        task: TaskKey,
        report: TaskReport,
    },
    Ack {
        attempt: u64,
        task: TaskKey,
        checkpoint: CheckpointId,
        handles: Vec<(String, SubtaskHandle)>,
    },
    Decline {
        attempt: u64,
        checkpoint: CheckpointId,
        reason: String,
    },
    TaskManagerLost(String),
    Cancel(oneshot::Sender<()>),
    Savepoint {
        target: Option<String>,
        stop: bool,
        reply: SavepointReply,
    },
}

/// What list and status show of a job.
#[derive(Debug, Clone)]
pub struct JobView {
    pub record: JobRecord,
    pub checkpoints: Vec<CheckpointStats>,
}

struct JobHandle {
    tx: UnboundedSender<JobEvent>,
    view: Arc<Mutex<JobView>>,
}

pub struct JobManager {
    pub cfg: JobManagerConfig,
    /// The leadership term this job manager drives jobs in.
    pub term: Term,
    pub cluster: Arc<Cluster>,
    /// The aligned sources' watermarks, as the heartbeats report them.
    pub alignment: Arc<Mutex<AlignmentTable>>,
    store: JobStore,
    jobs: Mutex<HashMap<JobId, JobHandle>>,
    /// Set once the jobs found in the state dir have been resumed (or nothing was to be
    /// resumed): the job manager's readiness waits for it.
    resumed: std::sync::atomic::AtomicBool,
}

/// What a job's checkpoint folder holds.
pub struct CheckpointListing {
    /// Every completed checkpoint, oldest first: (id, folder URL, the attempt that wrote it).
    pub completed: Vec<(CheckpointId, String, u64)>,
    /// The metadata JSON of each completed checkpoint.
    pub metadata: HashMap<CheckpointId, String>,
    /// Folders of checkpoints that never completed and are older than the newest completed
    /// one: safe to delete.
    pub abandoned: Vec<String>,
    pub max_id: CheckpointId,
}

impl CheckpointListing {
    /// The folder URL and metadata of completed checkpoint `id`.
    pub fn get(&self, id: CheckpointId) -> Option<(String, String)> {
        let url = self.completed.iter().find(|c| c.0 == id)?.1.clone();
        Some((url, self.metadata.get(&id)?.clone()))
    }
}

/// Lists a job's checkpoint folder: a checkpoint is complete when its `chk-N` folder has a
/// `_metadata`. A metadata file that exists but cannot be read is an error, not something to
/// skip (restoring an older checkpoint than one whose output sinks committed would duplicate
/// it).
pub async fn list_checkpoints(opener: &Opener, dir: &str) -> Result<CheckpointListing> {
    let storage = opener.open(dir)?;
    let mut ids: Vec<CheckpointId> = storage
        .list_dirs("")
        .await?
        .iter()
        .filter_map(|d| parse_checkpoint_dir_name(d))
        .collect();
    ids.sort_unstable();
    let mut listing = CheckpointListing {
        completed: vec![],
        metadata: HashMap::new(),
        abandoned: vec![],
        max_id: ids.last().copied().unwrap_or(0),
    };
    let mut incomplete = Vec::new();
    for id in ids.iter().rev() {
        let name = checkpoint_dir_name(*id);
        let url = format!("{}/{name}", storage.url());
        match storage.get(&format!("{name}/{METADATA_FILE}")).await {
            Ok(bytes) => match CheckpointMetadata::from_json(&bytes) {
                Ok(meta) => {
                    listing
                        .metadata
                        .insert(*id, String::from_utf8_lossy(&bytes).into_owned());
                    listing.completed.push((*id, url, meta.attempt));
                }
                // The newest one is what a restart would restore: refuse, as always.
                Err(e) if listing.completed.is_empty() => {
                    return Err(JmError::Unavailable(format!("checkpoint {url}: {e}")))
                }
                // An older one is never restored from: skip it, say so.
                Err(e) => {
                    warn!(checkpoint = %url, error = %e, "unreadable metadata of an older checkpoint; ignored")
                }
            },
            Err(e) if e.is_not_found() => {
                if !listing.completed.is_empty() {
                    incomplete.push(url);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    listing.completed.reverse();
    listing.abandoned = incomplete;
    Ok(listing)
}

/// Reads the metadata of a savepoint or checkpoint folder given by a user.
pub async fn read_metadata(opener: &Opener, dir: &str) -> Result<String> {
    let storage = opener.open(dir)?;
    let bytes = storage.get(METADATA_FILE).await.map_err(|e| {
        JmError::InvalidRequest(format!(
            "cannot restore from {dir}: no readable {METADATA_FILE} ({e})"
        ))
    })?;
    CheckpointMetadata::from_json(&bytes)
        .map_err(|e| JmError::InvalidRequest(format!("cannot restore from {dir}: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl JobManager {
    pub async fn new(cfg: JobManagerConfig, term: Term) -> Result<Self> {
        let store = JobStore::new(&cfg.state_storage()?);
        Ok(Self {
            cfg,
            term,
            cluster: Arc::new(Cluster::default()),
            alignment: Arc::new(Mutex::new(AlignmentTable::default())),
            store,
            jobs: Mutex::new(HashMap::new()),
            resumed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Marks the jobs of the state dir resumed (see [`Self::resume_jobs`]).
    pub fn mark_resumed(&self) {
        self.resumed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the jobs of the state dir have been resumed.
    pub fn is_resumed(&self) -> bool {
        self.resumed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Watches heartbeats: a task manager silent for longer than the timeout is lost.
    pub fn start_background(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                for (id, session) in self.cluster.expired(self.cfg.heartbeat_timeout) {
                    if self.cluster.remove(&id, Some(session)) {
                        warn!(tm = %id, "task manager missed its heartbeats; lost");
                        self.task_manager_lost(&id);
                    }
                }
            }
        });
    }

    /// Restarts the drivers of every job that was not finished when the job manager stopped.
    pub async fn resume_jobs(&self) {
        // Storage trouble is what makes leaders change: keep trying while this term lasts.
        let records = loop {
            match self.store.load_all().await {
                Ok(r) => break r,
                Err(e) if self.term.is_valid() => {
                    error!(error = %e, "cannot read job records; trying again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    error!(error = %e, "cannot read job records, and no longer the leader");
                    return;
                }
            }
        };
        for r in records {
            let terminal = r.state.is_terminal();
            match JobSpec::from_json(&r.job_json) {
                Ok(spec) => {
                    if !terminal {
                        info!(job = %r.job_id, attempt = r.attempt, "resuming job after job manager restart");
                    }
                    self.start_driver(r, spec, !terminal);
                }
                Err(e) => {
                    error!(job = %r.job_id, error = %e, "stored job spec is invalid; not resumed")
                }
            }
        }
        self.mark_resumed();
    }

    pub async fn submit(&self, job_json: &str, restore_from: &str) -> Result<JobId> {
        let spec =
            JobSpec::from_json(job_json).map_err(|e| JmError::InvalidRequest(e.to_string()))?;
        weir_planner::validate(&spec).map_err(|e| JmError::InvalidRequest(e.to_string()))?;
        check_source_paths(&self.cfg.storage, &spec).await?;
        let needed = spec.slots_needed();
        let total = self.cluster.total_slots();
        if needed > total {
            return Err(JmError::Unavailable(format!(
                "job {:?} needs {needed} slots; the cluster has {total} ({} task managers)",
                spec.name,
                self.cluster.list().len()
            )));
        }
        let id = JobId::generate();
        let storage = if spec.checkpoint.storage.is_empty() {
            self.cfg.default_checkpoint_dir.clone()
        } else {
            spec.checkpoint.storage.clone()
        };
        let checkpoint_dir = format!("{}/{}", storage.trim_end_matches('/'), id);
        let savepoint_dir = if spec.checkpoint.savepoint_dir.is_empty() {
            format!("{}/savepoints", storage.trim_end_matches('/'))
        } else {
            spec.checkpoint.savepoint_dir.clone()
        };
        let ckpt = self
            .cfg
            .storage
            .open(&checkpoint_dir)
            .map_err(|e| JmError::Unavailable(format!("checkpoint storage: {e}")))?;
        ckpt.check_writable().await.map_err(|e| {
            JmError::Unavailable(format!("checkpoint storage is not writable: {e}"))
        })?;
        if !restore_from.is_empty() {
            read_metadata(&self.cfg.storage, restore_from).await?;
        }
        let record = JobRecord {
            job_id: id.0.clone(),
            name: spec.name.clone(),
            job_json: spec.to_json(),
            state: JobState::Created,
            attempt: 0,
            restarts: 0,
            submitted_at_ms: now_ms(),
            failure: String::new(),
            restore_from: restore_from.to_string(),
            checkpoint_dir,
            savepoint_dir,
        };
        self.store.save(&record).await?;
        info!(job = %id, name = %spec.name, slots = needed, "job submitted");
        self.start_driver(record, spec, true);
        Ok(id)
    }

    fn start_driver(&self, record: JobRecord, spec: JobSpec, run: bool) {
        let id = JobId(record.job_id.clone());
        let view = Arc::new(Mutex::new(JobView {
            record: record.clone(),
            checkpoints: vec![],
        }));
        let (tx, rx) = unbounded_channel();
        lock(&self.jobs).insert(
            id.clone(),
            JobHandle {
                tx,
                view: view.clone(),
            },
        );
        if !run {
            return;
        }
        let plan = match ExecutionPlan::new(&spec) {
            Ok(p) => p,
            Err(e) => {
                error!(job = %id, error = %e, "cannot plan job");
                return;
            }
        };
        let driver = Driver {
            cfg: self.cfg.clone(),
            term: self.term.clone(),
            cluster: self.cluster.clone(),
            alignment: self.alignment.clone(),
            store: self.store.clone(),
            record,
            spec,
            plan,
            view,
            rx,
            attempt: None,
            next_checkpoint_id: 1,
            failures_ms: Vec::new(),
            stalled: 0,
            superseded: None,
        };
        let span = info_span!("job", job = %id);
        let token = self.term.token().clone();
        tokio::spawn(
            async move {
                tokio::select! {
                    _ = driver.run() => {}
                    // Another job manager leads now: it drives the job from here. Nothing is
                    // written on the way out (its writes would be fenced anyway).
                    _ = token.cancelled() => info!("no longer the leader; stopped driving the job"),
                }
            }
            .instrument(span),
        );
    }

    pub fn views(&self) -> Vec<JobView> {
        let mut v: Vec<JobView> = lock(&self.jobs)
            .values()
            .map(|h| lock(&h.view).clone())
            .collect();
        v.sort_by_key(|j| j.record.submitted_at_ms);
        v
    }

    pub fn view(&self, id: &str) -> Result<JobView> {
        lock(&self.jobs)
            .get(&JobId(id.to_string()))
            .map(|h| lock(&h.view).clone())
            .ok_or_else(|| JmError::NotFound(id.to_string()))
    }

    fn send(&self, id: &str, ev: JobEvent) -> Result<()> {
        let jobs = lock(&self.jobs);
        let h = jobs
            .get(&JobId(id.to_string()))
            .ok_or_else(|| JmError::NotFound(id.to_string()))?;
        h.tx.send(ev)
            .map_err(|_| JmError::InvalidRequest(format!("job {id} is no longer running")))
    }

    pub fn route(&self, id: &str, ev: JobEvent) {
        let _ = self.send(id, ev);
    }

    pub fn task_manager_lost(&self, tm: &str) {
        lock(&self.alignment).forget(tm);
        for h in lock(&self.jobs).values() {
            let _ = h.tx.send(JobEvent::TaskManagerLost(tm.to_string()));
        }
    }

    pub async fn cancel(&self, id: &str) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(id, JobEvent::Cancel(tx))?;
        rx.await.map_err(|_| {
            JmError::InvalidRequest(format!("job {id} ended before it could be cancelled"))
        })
    }

    pub async fn savepoint(
        &self,
        id: &str,
        target: Option<String>,
        stop: bool,
    ) -> Result<(String, CheckpointId)> {
        let (reply, rx) = oneshot::channel();
        self.send(
            id,
            JobEvent::Savepoint {
                target,
                stop,
                reply,
            },
        )?;
        rx.await
            .map_err(|_| {
                JmError::Unavailable(format!("job {id} ended before the savepoint completed"))
            })?
            .map_err(JmError::Unavailable)
    }
}

/// One deployed attempt.
struct Attempt {
    number: u64,
    tms: BTreeSet<String>,
    tasks: BTreeSet<TaskKey>,
    sources: BTreeSet<TaskKey>,
    coordinator: CheckpointCoordinator,
    exhausted: HashSet<TaskKey>,
    /// The checkpoint that ends the sources once every source ran dry.
    final_checkpoint: Option<CheckpointId>,
    finished: HashSet<TaskKey>,
    savepoints: HashMap<CheckpointId, (SavepointReply, bool)>,
}

impl Attempt {
    /// Aborts checkpoint `id` (declined, timed out, not completed): it is not the final one
    /// any more, and a savepoint waiting on it gets `reason`. False if it was not pending.
    fn give_up(&mut self, id: CheckpointId, reason: &str) -> bool {
        let pending = self.coordinator.abort(id, reason, now_ms()).is_some();
        if self.final_checkpoint == Some(id) {
            self.final_checkpoint = None;
        }
        if let Some((reply, _)) = self.savepoints.remove(&id) {
            let _ = reply.send(Err(format!("savepoint {id} failed: {reason}")));
        }
        pending
    }
}

enum Outcome {
    Finished,
    Canceled,
    Failed(String),
    /// A task failed in a way a restart would repeat (bad data, a bad expression).
    FailedForGood(String),
    /// Another job manager started a later attempt of this job (this one was deposed, or
    /// the two overlapped for an instant): stop this attempt, and start a new one only if
    /// this job manager still leads.
    Superseded(String),
}

struct Driver {
    cfg: JobManagerConfig,
    term: Term,
    cluster: Arc<Cluster>,
    alignment: Arc<Mutex<AlignmentTable>>,
    store: JobStore,
    record: JobRecord,
    spec: JobSpec,
    plan: ExecutionPlan,
    view: Arc<Mutex<JobView>>,
    rx: UnboundedReceiver<JobEvent>,
    attempt: Option<Attempt>,
    next_checkpoint_id: CheckpointId,
    /// When this job manager saw the job fail (for the failure-rate restart strategy).
    failures_ms: Vec<u64>,
    /// Failed attempts in a row that completed no checkpoint (restarts back off on them).
    stalled: u32,
    /// Set when a later attempt of another job manager was found: the attempt stops.
    superseded: Option<String>,
}

mod fencing;
mod lifecycle;

/// A file source's path must name something when the job is submitted (as Flink's
/// enumerator lists it on the job manager), so a typo fails the submit, naming the path,
/// instead of a deployed job. Storage that cannot be reached now is left to the task
/// managers, which retry.
async fn check_source_paths(opener: &Opener, spec: &JobSpec) -> Result<()> {
    for op in &spec.operators {
        if let weir_types::OperatorKind::FileSource(f) = &op.kind {
            match weir_storage::SourcePath::open(opener, &f.path, f.monitor_interval_ms.is_some())
                .await
            {
                Ok(_) => {}
                Err(e @ weir_storage::StorageError::MissingSource { .. }) => {
                    return Err(JmError::InvalidRequest(format!(
                        "operator {:?}: {e}",
                        op.id
                    )))
                }
                Err(e) => {
                    tracing::warn!(operator = %op.id, error = %e, "cannot check the file source's path now")
                }
            }
        }
    }
    Ok(())
}
