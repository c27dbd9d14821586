//! The job manager: accepts jobs, schedules their subtasks on task managers' slots,
//! coordinates checkpoints, and restarts failed jobs from their last completed checkpoint.
//!
//! * [`cluster`]: the registry of task managers, their slots and liveness;
//! * [`alignment`]: the aligned sources' watermarks across task managers (watermark
//!   alignment);
//! * [`store`]: job records persisted in object storage, so a restarted job manager resumes
//!   the jobs it was running, and the create-if-absent records that fence attempts;
//! * [`leader`]: the leader lease in the state dir, so that of several job managers sharing
//!   one state dir exactly one drives jobs and the others stand by;
//! * [`driver`]: one task per job that owns its lifecycle (scheduling, running, checkpointing,
//!   failing over, finishing), built around `weir_checkpoint::CheckpointCoordinator`;
//! * [`service`]: the thin tonic layers (client API and cluster API);
//! * [`run`]: start-up from already-bound listeners.
//!
//! Architecture invariant: the job manager never runs operators or touches records; it only
//! reads job specs (to plan and validate) and checkpoint metadata.

pub mod alignment;
pub mod cluster;
pub mod driver;
pub mod leader;
pub mod service;
pub mod store;

use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum JmError {
    /// The request is wrong: bad job, unknown id, impossible resources.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("job {0} not found")]
    NotFound(String),
    /// The cluster cannot do it now (not enough slots, checkpoint storage unwritable).
    #[error("{0}")]
    Unavailable(String),
    #[error("storage: {0}")]
    Storage(#[from] weir_storage::StorageError),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<JmError> for tonic::Status {
    fn from(e: JmError) -> Self {
        match e {
            JmError::InvalidRequest(m) => tonic::Status::invalid_argument(m),
            JmError::NotFound(m) => tonic::Status::not_found(format!("job {m} not found")),
            JmError::Unavailable(m) => tonic::Status::failed_precondition(m),
            other => tonic::Status::internal(other.to_string()),
        }
    }
}

pub type Result<T, E = JmError> = std::result::Result<T, E>;

/// See [`JobManagerConfig::heartbeat_timeout`].
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(50);

#[derive(Debug, Clone)]
pub struct JobManagerConfig {
    /// Folder URL for job records (and the default checkpoint folder below it).
    pub state_dir: String,
    /// Checkpoint folder for jobs that name none.
    pub default_checkpoint_dir: String,
    /// A task manager silent this long is considered lost (Flink's `heartbeat.timeout`, 50 s).
    /// A killed task manager is lost at once, through its broken heartbeat stream; this is
    /// for one that is cut off or frozen. Shorter finds those sooner but may take a loaded
    /// machine's slow heartbeat for a death (docs/operations.md).
    pub heartbeat_timeout: Duration,
    /// How long a (re)starting job waits for enough slots before the attempt counts as failed.
    pub slot_wait: Duration,
    /// Resume the unfinished jobs found in `state_dir` on start (off for embedded runs).
    pub resume: bool,
    /// How long a restart waits for the failed attempt's tasks to stop, including the blocking
    /// work they started (a sink's commit), before it gives the attempt up as failed to start
    /// (Flink's `task.cancellation.timeout`, 180 s).
    pub cancel_timeout: Duration,
    /// The leader lease (`--lease-ms`, 15 s as Flink's Kubernetes HA): job managers sharing
    /// a state dir elect one leader through it. None: no election (an embedded job manager,
    /// which drives only the job it was started with and resumes nothing).
    pub lease: Option<Duration>,
    /// This process's id in leader claims.
    pub id: String,
    /// The state dir as an already opened storage (tests inject a failing one); None opens
    /// `state_dir`. Job records and leader records go through it.
    pub state_store: Option<weir_storage::Storage>,
    /// The address clients and task managers reach this job manager at, as standbys tell
    /// them (default: `http://` and the listener's address).
    pub advertise: Option<String>,
}

impl JobManagerConfig {
    /// The state dir's storage: the injected one, or `state_dir` opened.
    pub fn state_storage(&self) -> Result<weir_storage::Storage> {
        match &self.state_store {
            Some(s) => Ok(s.clone()),
            None => Ok(weir_storage::Storage::open(&self.state_dir)?),
        }
    }

    pub fn new(state_dir: &str) -> Self {
        let base = state_dir.trim_end_matches('/');
        Self {
            state_dir: base.to_string(),
            default_checkpoint_dir: format!("{base}/checkpoints"),
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            slot_wait: Duration::from_secs(60),
            resume: true,
            cancel_timeout: Duration::from_secs(180),
            lease: None,
            id: format!(
                "jm-{}-{}",
                std::process::id(),
                weir_types::JobId::generate().0.trim_start_matches("j-")
            ),
            advertise: None,
            state_store: None,
        }
    }
}

/// Runs a job manager until `shutdown` fires. The client API and the cluster API are both
/// served on `listener`, which the caller has bound (tests bind 127.0.0.1:0); the probes on
/// `admin` (`--admin-bind`), if given. With a lease, it drives jobs only while it leads its
/// state dir; as a standby it answers every call with the leader's address.
pub async fn run(
    cfg: JobManagerConfig,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, state_dir = %cfg.state_dir, id = %cfg.id, "job manager starting");
    let front = Arc::new(service::Front::new(&cfg.state_dir));
    if let Some(admin) = admin {
        let f = front.clone();
        let ready: weir_admin::Readiness = Arc::new(move || f.readiness());
        tokio::spawn(weir_admin::serve(admin, ready, shutdown.clone()));
    }
    let election = match cfg.lease {
        None => {
            // No election: one term from the start, in place before the first call is served.
            let term = leader::Term::unelected(&cfg.id, shutdown.child_token());
            let jm = Arc::new(driver::JobManager::new(cfg.clone(), term.clone()).await?);
            jm.clone().start_background(term.token().clone());
            front.set(service::FrontState::Leading(jm.clone()));
            if cfg.resume {
                jm.resume_jobs().await;
            } else {
                jm.mark_resumed();
            }
            None
        }
        Some(lease) => {
            let (tx, rx) = tokio::sync::watch::channel(leader::Current::Standby(None));
            let store = cfg.state_storage()?.child("leader");
            let lcfg = leader::LeaderConfig {
                lease: weir_checkpoint::leader::LeaseConfig::new(lease.as_millis() as u64),
                id: cfg.id.clone(),
                address: cfg
                    .advertise
                    .clone()
                    .unwrap_or_else(|| format!("http://{addr}")),
            };
            tokio::spawn(follow_terms(cfg, rx, front.clone()));
            Some(tokio::spawn(leader::run_election(
                store,
                lcfg,
                tx,
                shutdown.clone(),
            )))
        }
    };
    let served = service::serve(front, listener, shutdown).await;
    // A leader gives its lease up on the way out, so that a standby takes over at once.
    if let Some(election) = election {
        let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
    }
    served
}

/// Starts a job manager for every term won (resuming the jobs in the state dir) and drops it
/// when the term ends (its drivers stop with the term's token).
async fn follow_terms(
    cfg: JobManagerConfig,
    mut rx: tokio::sync::watch::Receiver<leader::Current>,
    front: Arc<service::Front>,
) {
    loop {
        let current = rx.borrow_and_update().clone();
        match current {
            leader::Current::Leading(term) => {
                match driver::JobManager::new(cfg.clone(), term.clone()).await {
                    Ok(jm) => {
                        let jm = Arc::new(jm);
                        jm.clone().start_background(term.token().clone());
                        front.set(service::FrontState::Leading(jm.clone()));
                        if cfg.resume {
                            jm.resume_jobs().await;
                        } else {
                            jm.mark_resumed();
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot start driving jobs"),
                }
            }
            leader::Current::Standby(leader) => front.set(service::FrontState::Standby(leader)),
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
