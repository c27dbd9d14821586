//! The job manager's settings, passed in by whoever starts it.

use crate::Result;
use std::time::Duration;

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
    /// How it opens folder URLs: the state dir (unless `state_store` is given), checkpoint
    /// folders, source paths checked at submit. Tests inject failing stores here.
    pub storage: weir_storage::Opener,
}

impl JobManagerConfig {
    /// The state dir's storage: the injected one, or `state_dir` opened.
    pub fn state_storage(&self) -> Result<weir_storage::Storage> {
        match &self.state_store {
            Some(s) => Ok(s.clone()),
            None => Ok(self.storage.open(&self.state_dir)?),
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
            storage: weir_storage::Opener::real(),
        }
    }
}
