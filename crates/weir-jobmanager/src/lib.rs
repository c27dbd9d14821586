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
//! * [`config`] and [`error`]: the job manager's settings and errors;
//! * [`run`]: start-up from already-bound listeners.
//!
//! Architecture invariant: the job manager never runs operators or touches records; it only
//! reads job specs (to plan and validate) and checkpoint metadata.

pub mod alignment;
pub mod cluster;
pub mod config;
pub mod driver;
pub mod error;
pub mod leader;
pub mod service;
pub mod store;

use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{JobManagerConfig, DEFAULT_HEARTBEAT_TIMEOUT};
pub use error::{JmError, Result};

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
