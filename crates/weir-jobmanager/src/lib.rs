//! The job manager: accepts jobs, schedules their subtasks on task managers' slots,
//! coordinates checkpoints, and restarts failed jobs from their last completed checkpoint.
//!
//! * [`cluster`]: the registry of task managers, their slots and liveness;
//! * [`alignment`]: the aligned sources' watermarks across task managers (watermark
//!   alignment);
//! * [`store`]: job records persisted in object storage, so a restarted job manager resumes
//!   the jobs it was running;
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
}

impl JobManagerConfig {
    pub fn new(state_dir: &str) -> Self {
        let base = state_dir.trim_end_matches('/');
        Self {
            state_dir: base.to_string(),
            default_checkpoint_dir: format!("{base}/checkpoints"),
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            slot_wait: Duration::from_secs(60),
            resume: true,
            cancel_timeout: Duration::from_secs(180),
        }
    }
}

/// Runs a job manager until `shutdown` fires. The client API and the cluster API are both
/// served on `listener`, which the caller has bound (tests bind 127.0.0.1:0).
pub async fn run(
    cfg: JobManagerConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    let jm = Arc::new(driver::JobManager::new(cfg).await?);
    let addr = listener.local_addr()?;
    tracing::info!(%addr, state_dir = %jm.cfg.state_dir, "job manager starting");
    jm.clone().start_background(shutdown.clone());
    if jm.cfg.resume {
        jm.resume_jobs().await;
    }
    service::serve(jm, listener, shutdown).await
}
