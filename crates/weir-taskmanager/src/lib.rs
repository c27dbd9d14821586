//! The task manager: offers slots to a job manager, runs the subtasks it is given, and moves
//! data to and from other task managers.
//!
//! * [`service`]: the thin tonic layer (deploy, cancel, checkpoint trigger/complete, exchange);
//! * [`tasks`]: the logic: wiring channels (local or remote) and running `weir_runtime` tasks;
//! * [`jm_link`]: registration, the heartbeat stream, and forwarding task events to the JM;
//! * [`run`]: start-up, which takes an already-bound listener (tests bind 127.0.0.1:0).
//!
//! Architecture invariant: a task manager keeps nothing on local disk that must survive it;
//! everything durable goes to object storage. Losing the job manager cancels all its tasks
//! (the job manager redeploys from the last checkpoint when it is back).

pub mod jm_link;
pub mod service;
pub mod tasks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use weir_runtime::registry::Registry;

#[derive(Debug, thiserror::Error)]
pub enum TmError {
    #[error("invalid deployment: {0}")]
    Deploy(String),
    /// A cancelled attempt's work did not stop in time.
    #[error("{0}")]
    StillStopping(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// HTTP/2 flow-control windows of the data exchange (bytes): room for several batches in
/// flight per channel, so a sender is limited by the bounded channels, not by window updates.
pub const EXCHANGE_STREAM_WINDOW: u32 = 8 << 20;
pub const EXCHANGE_CONNECTION_WINDOW: u32 = 32 << 20;

pub type Result<T, E = TmError> = std::result::Result<T, E>;

/// See [`TaskManagerConfig::jm_timeout`]: short enough that task managers follow a new
/// leader soon after it takes over from a frozen one (a lease, 15 s by default), long
/// enough that a loaded job manager is not taken for a dead one (it answers every 300 ms).
pub const DEFAULT_JM_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct TaskManagerConfig {
    /// The job manager's cluster endpoint, e.g. `http://127.0.0.1:6123`, or a comma list of
    /// them (a leader and its standbys; the one that accepts the registration is used).
    pub jobmanager: String,
    pub slots: u32,
    /// Stable id; a restarted process with the same id replaces the old registration.
    pub id: String,
    /// Address other processes reach this one at; defaults to the listener's address.
    pub advertise: Option<String>,
    pub heartbeat_interval: Duration,
    /// A job manager that answers no heartbeat for this long is lost: the task manager
    /// cancels its tasks and registers with the next address of `jobmanager` (a frozen
    /// leader keeps its connections open; its standby has taken over after one lease).
    pub jm_timeout: Duration,
    /// Capacity, in batches, of each channel between subtasks (the backpressure buffer).
    pub channel_capacity: usize,
    /// The operators and connectors this task manager can build (`weir-operators` and
    /// `weir-connectors` register theirs; the binary assembles it).
    pub registry: Arc<Registry>,
    /// How it opens folder URLs (restores, leases, snapshots, file sources and sinks).
    pub storage: weir_storage::Opener,
}

impl TaskManagerConfig {
    pub fn new(jobmanager: impl Into<String>, slots: u32, registry: Arc<Registry>) -> Self {
        Self {
            registry,
            storage: weir_storage::Opener::real(),
            jobmanager: jobmanager.into(),
            slots,
            id: format!(
                "tm-{}-{}",
                std::process::id(),
                weir_types::JobId::generate().0.trim_start_matches("j-")
            ),
            advertise: None,
            heartbeat_interval: Duration::from_millis(300),
            jm_timeout: DEFAULT_JM_TIMEOUT,
            channel_capacity: 16,
        }
    }
}

/// Runs a task manager until `shutdown` fires; its probes on `admin` (`--admin-bind`), if
/// given.
pub async fn run(
    cfg: TaskManagerConfig,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<()> {
    let local: SocketAddr = listener.local_addr()?;
    let address = cfg
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let tasks_rt = TaskRuntime::new(&cfg)?;
    let state = Arc::new(tasks::TaskManagerState::new(
        cfg.clone(),
        address.clone(),
        tasks_rt.handle(),
    ));
    tracing::info!(id = %cfg.id, %address, slots = cfg.slots, jobmanager = %cfg.jobmanager, "task manager starting");
    if let Some(admin) = admin {
        let s = state.clone();
        let ready: weir_admin::Readiness = Arc::new(move || s.readiness());
        tokio::spawn(weir_admin::serve(admin, ready, shutdown.clone()));
    }
    let server = service::serve(state.clone(), listener, shutdown.clone());
    let link = jm_link::run(state.clone(), shutdown.clone());
    let (server_result, _) = tokio::join!(server, link);
    state.cancel_all("task manager shutting down");
    drop(tasks_rt);
    server_result
}

/// The runtime a task manager's subtasks run on, apart from the runtime that serves its RPCs
/// and sends its heartbeats (as Flink keeps RPC threads apart from task threads). A chain that
/// never waits keeps its worker thread busy between its yields; on a runtime of its own it
/// only competes for the CPU through the operating system's scheduler, which gives the
/// heartbeat thread its turn within milliseconds, however many such tasks run.
pub struct TaskRuntime {
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl TaskRuntime {
    /// One worker thread per slot, at most one per core (at least one).
    pub fn new(cfg: &TaskManagerConfig) -> Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = (cfg.slots as usize).clamp(1, cores.max(1));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("weir-task")
            .enable_all()
            .build()?;
        Ok(Self {
            handle: rt.handle().clone(),
            rt: Some(rt),
        })
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }
}

impl Drop for TaskRuntime {
    /// Dropping a runtime blocks until its tasks stop, which is not allowed inside another
    /// runtime: let its threads wind down in the background (the tasks were cancelled).
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
