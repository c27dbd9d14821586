//! Leadership of the state dir: the I/O around `weir_checkpoint::leader::Election`.
//!
//! Records live in `<state_dir>/leader/`: `claim-<epoch>.json` (created if absent; the claim)
//! and `lease-<epoch>.json` (rewritten by the claim's holder on every renewal). A job manager
//! drives jobs only during a [`Term`]: from winning a claim until it cannot renew (or shuts
//! down). Standbys answer clients and task managers with the leader's address.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use weir_checkpoint::leader::{Action, Claim, Election, Lease, LeaseConfig, Observation, Role};
use weir_storage::Storage;
use weir_types::now_ms;

/// A period during which this job manager leads, with the epoch it claimed. Drivers check
/// [`Term::is_valid`] before every fenced decision; the token ends them when it runs out.
#[derive(Debug, Clone)]
pub struct Term {
    pub epoch: u64,
    /// This job manager's id, as its claim names it.
    pub holder: String,
    token: CancellationToken,
    /// Until when (ms of `clock`) the lease holds, as the election last computed it.
    valid_until: Arc<AtomicU64>,
    clock: Instant,
}

impl Term {
    /// A term without election (an embedded job manager drives only its own jobs): epoch 0,
    /// valid until `token` fires.
    pub fn unelected(holder: &str, token: CancellationToken) -> Self {
        Self {
            epoch: 0,
            holder: holder.to_string(),
            token,
            valid_until: Arc::new(AtomicU64::new(u64::MAX)),
            clock: Instant::now(),
        }
    }

    /// Whether this job manager still leads: the term was not ended and the lease, by this
    /// process's clock, has not run out (a process frozen past it finds out here, before the
    /// election loop has even run).
    pub fn is_valid(&self) -> bool {
        !self.token.is_cancelled()
            && (self.clock.elapsed().as_millis() as u64) < self.valid_until.load(Ordering::SeqCst)
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// What the services see: a leader's term, or a standby's knowledge of the leader.
#[derive(Debug, Clone)]
pub enum Current {
    Standby(Option<Claim>),
    Leading(Term),
}

/// Leadership settings of a job manager process.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub lease: LeaseConfig,
    /// This process's id (unique per process).
    pub id: String,
    /// The address clients and task managers reach this job manager at.
    pub address: String,
}

fn claim_name(epoch: u64) -> String {
    format!("claim-{epoch:020}.json")
}

fn lease_name(epoch: u64) -> String {
    format!("lease-{epoch:020}.json")
}

/// The newest claim and its lease, or None if nobody ever claimed.
async fn observe(store: &Storage) -> Result<Option<Observation>, String> {
    let names = store.list("").await.map_err(|e| e.to_string())?;
    let Some(epoch) = names
        .iter()
        .filter_map(|n| {
            n.strip_prefix("claim-")?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
        })
        .max()
    else {
        return Ok(None);
    };
    let bytes = store
        .get(&claim_name(epoch))
        .await
        .map_err(|e| e.to_string())?;
    let claim: Claim = serde_json::from_slice(&bytes)
        .map_err(|e| format!("unreadable leader claim {}: {e}", claim_name(epoch)))?;
    let lease = match store.get(&lease_name(epoch)).await {
        Ok(bytes) => Some(
            serde_json::from_slice::<Lease>(&bytes)
                .map_err(|e| format!("unreadable lease {}: {e}", lease_name(epoch)))?,
        ),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.to_string()),
    };
    Ok(Some(Observation { claim, lease }))
}

/// Runs the election until `shutdown`, publishing every change of role to `tx`. On shutdown
/// a leader releases its lease, so that a standby takes over at once.
pub async fn run_election(
    store: Storage,
    cfg: LeaderConfig,
    tx: watch::Sender<Current>,
    shutdown: CancellationToken,
) {
    let clock = Instant::now();
    let now = || clock.elapsed().as_millis() as u64;
    let nonce = weir_types::JobId::generate().0;
    let mut election = Election::new(cfg.lease, nonce.clone());
    let mut term: Option<Term> = None;
    let mut last_standby_log: Option<(u64, String)> = None;
    let dir = store.url().trim_end_matches("/leader").to_string();
    loop {
        // Publish the role, ending a term whose lease ran out.
        match election.role(now()) {
            Role::Leader { epoch } => {
                let valid_until = election.valid_until().unwrap_or(0);
                if term.as_ref().is_none_or(|t| t.epoch != epoch) {
                    // A term of an older epoch ended when its deadline passed, even if this
                    // job manager claimed again at once: its drivers stop before new ones start.
                    if let Some(old) = term.take() {
                        error!(%dir, epoch = old.epoch, "lost the leadership of {dir} (epoch {}): the lease could not be renewed in time; no longer driving jobs", old.epoch);
                        old.token.cancel();
                    }
                    let t = Term {
                        epoch,
                        holder: cfg.id.clone(),
                        token: shutdown.child_token(),
                        valid_until: Arc::new(AtomicU64::new(valid_until)),
                        clock,
                    };
                    info!(%dir, epoch, id = %cfg.id, "leader for {dir} with epoch {epoch}");
                    tx.send_replace(Current::Leading(t.clone()));
                    term = Some(t);
                }
            }
            Role::Standby(leader) => {
                if let Some(t) = term.take() {
                    error!(%dir, epoch = t.epoch, "lost the leadership of {dir} (epoch {}): the lease could not be renewed in time; no longer driving jobs", t.epoch);
                    t.token.cancel();
                }
                if let Some(c) = &leader {
                    if last_standby_log.as_ref() != Some(&(c.epoch, c.holder.clone())) {
                        info!(%dir, leader = %c.holder, epoch = c.epoch, address = %c.address, "standby for {dir}, leader {} epoch {}", c.holder, c.epoch);
                        last_standby_log = Some((c.epoch, c.holder.clone()));
                    }
                }
                tx.send_if_modified(|cur| {
                    let changed = match cur {
                        Current::Standby(old) => old != &leader,
                        Current::Leading(_) => true,
                    };
                    if changed {
                        *cur = Current::Standby(leader.clone());
                    }
                    changed
                });
            }
        }
        let action = election.next(now(), now_ms());
        match action {
            Action::Observe => {
                let found = observe(&store).await;
                if let Err(e) = &found {
                    warn!(%dir, error = %e, "cannot read the leader records");
                }
                if let Some(Action::Claim { epoch }) =
                    election.observed(now(), found.map_err(|_| ()))
                {
                    let claim = Claim {
                        epoch,
                        holder: cfg.id.clone(),
                        address: cfg.address.clone(),
                        claimed_at_ms: now_ms(),
                        nonce: nonce.clone(),
                    };
                    let bytes = serde_json::to_vec(&claim).unwrap_or_default();
                    let won = store.put_if_absent(&claim_name(epoch), bytes).await;
                    if let Err(e) = &won {
                        warn!(%dir, epoch, error = %e, "cannot write the leader claim");
                    }
                    election.claimed(now(), won.map_err(|_| ()));
                    if matches!(election.role(now()), Role::Leader { .. }) {
                        // Records older than the previous epoch are of no use to anyone
                        // (best effort; the previous one stays, for people reading them).
                        if let Ok(names) = store.list("").await {
                            for name in names {
                                let n = name
                                    .split(['-', '.'])
                                    .nth(1)
                                    .and_then(|n| n.parse::<u64>().ok());
                                if n.is_some_and(|n| n + 1 < epoch) {
                                    let _ = store.delete(&name).await;
                                }
                            }
                        }
                    }
                }
            }
            Action::Renew { lease, check_newer } => {
                let started = now();
                let bytes = serde_json::to_vec(&lease).unwrap_or_default();
                // Bounded by the deadline: a write that lands later is of no use (the term
                // ends then whatever its result).
                let left = election
                    .valid_until()
                    .unwrap_or(started)
                    .saturating_sub(started)
                    .max(1);
                let name = lease_name(lease.epoch);
                let write = store.put(&name, bytes);
                let ok = match tokio::time::timeout(Duration::from_millis(left), write).await {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => {
                        warn!(%dir, epoch = lease.epoch, error = %e, "cannot renew the leader lease");
                        false
                    }
                    Err(_) => {
                        warn!(%dir, epoch = lease.epoch, "renewing the leader lease did not finish before its deadline");
                        false
                    }
                };
                let took = now() - started;
                if took > cfg.lease.renew_every_ms() {
                    warn!(%dir, took_ms = took, lease_ms = cfg.lease.lease_ms, "renewing the leader lease took longer than a third of the lease");
                }
                election.renewed(started, now(), ok);
                if ok && check_newer {
                    match store.exists(&claim_name(lease.epoch + 1)).await {
                        Ok(true) => {
                            error!(%dir, epoch = lease.epoch, "another job manager claimed epoch {} of {dir}: standing by", lease.epoch + 1);
                            election.superseded(now());
                        }
                        Ok(false) => {}
                        Err(e) => warn!(%dir, error = %e, "cannot look for a later leader claim"),
                    }
                }
                if let (Some(t), Some(until)) = (&term, election.valid_until()) {
                    t.valid_until.store(until, Ordering::SeqCst);
                }
            }
            Action::Claim { .. } => {}
            Action::WaitUntil(at) => {
                let wait = Duration::from_millis(at.saturating_sub(now()).max(1));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => {
                        if let Some(lease) = election.release(now_ms()) {
                            if let Some(t) = term.take() {
                                t.token.cancel();
                            }
                            let bytes = serde_json::to_vec(&lease).unwrap_or_default();
                            match store.put(&lease_name(lease.epoch), bytes).await {
                                Ok(()) => info!(%dir, epoch = lease.epoch, "released the leadership of {dir}"),
                                Err(e) => warn!(%dir, error = %e, "cannot release the leader lease; a standby takes over when it expires"),
                            }
                        }
                        tx.send_replace(Current::Standby(None));
                        return;
                    }
                }
            }
        }
    }
}
