//! Which job manager leads, decided through the object store every job manager of a cluster
//! shares (its `--state-dir`), as plain state: the job manager's leadership loop does the
//! reads and writes this asks for and feeds back what happened, on its own monotonic clock.
//!
//! The store holds, per epoch `N`, a claim record written with create-if-absent (so of two
//! job managers claiming `N` at once exactly one wins) and a lease record that only the
//! claim's holder writes, with a counter bumped on every renewal.
//!
//! * A standby polls the newest epoch and its lease. It claims `N + 1` only after it has seen
//!   the same lease value for a whole lease period on its own clock (or the lease says the
//!   holder released it). No wall clocks are compared, so clock skew between machines does
//!   not matter; only the rates of the monotonic clocks do.
//! * A leader renews every third of the lease and counts itself leader only until two thirds
//!   of the lease after the *start* of its last successful renewal (or claim). A standby can
//!   claim no earlier than one whole lease after that start (it saw the value after it was
//!   written), so the leader stops before anyone else can start, whatever the store's latency.
//!
//! What a deposed leader may still have in flight when it stops is not covered by the lease:
//! every write that matters (deploying an attempt, completing a checkpoint) is fenced by its
//! own create-if-absent record; see `lineage`.

use serde::{Deserialize, Serialize};

/// Timings, in milliseconds of the caller's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a lease lasts without renewal (Flink's Kubernetes HA: 15 s).
    pub lease_ms: u64,
}

impl LeaseConfig {
    pub fn new(lease_ms: u64) -> Self {
        Self {
            lease_ms: lease_ms.max(3),
        }
    }
    /// A leader renews this often: three writes per lease period.
    pub fn renew_every_ms(&self) -> u64 {
        self.lease_ms / 3
    }
    /// A leader whose last successful renewal started this long ago stops leading.
    pub fn renew_deadline_ms(&self) -> u64 {
        self.lease_ms * 2 / 3
    }
    /// A failed renewal is retried this soon.
    pub fn retry_ms(&self) -> u64 {
        (self.lease_ms / 15).max(1)
    }
    /// A standby reads the lease this often.
    pub fn poll_ms(&self) -> u64 {
        (self.lease_ms / 5).max(1)
    }
}

/// The lease record of an epoch, as its holder writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub epoch: u64,
    /// Bumped on every renewal: a standby watches it change.
    pub renewal: u64,
    /// The holder gave the lease up (it is shutting down): a standby may claim at once.
    pub released: bool,
    /// Wall-clock time of the write, for people reading the file; never compared.
    pub written_at_ms: i64,
}

/// The claim record of an epoch: who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub epoch: u64,
    /// The job manager's id (unique per process).
    pub holder: String,
    /// Where its gRPC API answers, for standbys to point clients at.
    pub address: String,
    pub claimed_at_ms: i64,
    /// Random per process (unlike `holder`, which a user may set twice by mistake): a job
    /// manager that finds its own claim newest knows nobody else leads.
    #[serde(default)]
    pub nonce: String,
}

/// What one read of the store found: the newest claim and its lease (None before the
/// holder's first renewal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub claim: Claim,
    pub lease: Option<Lease>,
}

/// What the loop is asked to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read the newest claim and its lease, then call [`Election::observed`].
    Observe,
    /// Create the claim record of `epoch` if absent, then call [`Election::claimed`].
    Claim { epoch: u64 },
    /// Write the lease of `epoch`, then call [`Election::renewed`]. With `check_newer`
    /// (once per lease period), then also look for a claim of `epoch + 1` and call
    /// [`Election::superseded`] if there is one: a leader whose clock stood still (a
    /// suspended machine) or whose records were deleted finds out that it was replaced.
    Renew { lease: Lease, check_newer: bool },
    /// Nothing until this time.
    WaitUntil(u64),
}

/// What this job manager is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not leading; the newest claim seen, if any.
    Standby(Option<Claim>),
    Leader {
        epoch: u64,
    },
}

#[derive(Debug, Clone)]
enum State {
    Standby {
        /// The newest claim seen and its lease value: (epoch, renewal, released).
        seen: Option<(Claim, u64, bool)>,
        /// When `seen` was first seen with its current value.
        since: u64,
        next_poll: u64,
    },
    Claiming {
        epoch: u64,
        started: u64,
    },
    Leader {
        epoch: u64,
        renewal: u64,
        /// The start of the last successful renewal (or of the claim).
        valid_from: u64,
        next_renew: u64,
        renewing: Option<u64>,
        released: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Election {
    cfg: LeaseConfig,
    /// This process's [`Claim::nonce`].
    nonce: String,
    state: State,
}

impl Election {
    pub fn new(cfg: LeaseConfig, nonce: impl Into<String>) -> Self {
        Self {
            cfg,
            nonce: nonce.into(),
            state: State::Standby {
                seen: None,
                since: 0,
                next_poll: 0,
            },
        }
    }

    pub fn config(&self) -> LeaseConfig {
        self.cfg
    }

    /// The role at `now`. A leader past its renew deadline is no longer one, even before
    /// [`Election::next`] notices.
    pub fn role(&self, now: u64) -> Role {
        match &self.state {
            State::Leader {
                epoch,
                valid_from,
                released: false,
                ..
            } if now < valid_from + self.cfg.renew_deadline_ms() => Role::Leader { epoch: *epoch },
            State::Standby { seen, .. } => Role::Standby(seen.as_ref().map(|s| s.0.clone())),
            _ => Role::Standby(None),
        }
    }

    /// Until when (exclusive) a leader counts itself leader, if it leads: two thirds of a
    /// lease after the start of its last successful renewal or claim.
    pub fn valid_until(&self) -> Option<u64> {
        match &self.state {
            State::Leader {
                valid_from,
                released: false,
                ..
            } => Some(valid_from + self.cfg.renew_deadline_ms()),
            _ => None,
        }
    }

    /// What to do at `now`. A leader past its deadline steps down here (and observes next).
    pub fn next(&mut self, now: u64, wall_ms: i64) -> Action {
        match &mut self.state {
            State::Standby { next_poll, .. } => {
                if now >= *next_poll {
                    Action::Observe
                } else {
                    Action::WaitUntil(*next_poll)
                }
            }
            State::Claiming { .. } => Action::WaitUntil(now + self.cfg.poll_ms()),
            State::Leader {
                epoch,
                renewal,
                valid_from,
                next_renew,
                renewing,
                released,
            } => {
                if now >= *valid_from + self.cfg.renew_deadline_ms() || *released {
                    self.state = State::Standby {
                        seen: None,
                        since: now,
                        next_poll: now,
                    };
                    return Action::Observe;
                }
                if renewing.is_some() {
                    return Action::WaitUntil(now + self.cfg.retry_ms());
                }
                if now >= *next_renew {
                    *renewing = Some(now);
                    Action::Renew {
                        lease: Lease {
                            epoch: *epoch,
                            renewal: *renewal + 1,
                            released: false,
                            written_at_ms: wall_ms,
                        },
                        check_newer: (*renewal + 1) % 3 == 0,
                    }
                } else {
                    Action::WaitUntil((*next_renew).min(*valid_from + self.cfg.renew_deadline_ms()))
                }
            }
        }
    }

    /// The result of an [`Action::Observe`] that ended at `now`: `None` if the store holds
    /// no claim at all, `Err` if the read failed. Returns the action to take now (a claim, or
    /// nothing).
    pub fn observed(&mut self, now: u64, found: Result<Option<Observation>, ()>) -> Option<Action> {
        let State::Standby {
            seen,
            since,
            next_poll,
        } = &mut self.state
        else {
            return None;
        };
        *next_poll = now + self.cfg.poll_ms();
        let found = match found {
            Ok(f) => f,
            Err(()) => return None,
        };
        let Some(obs) = found else {
            // Nobody ever led here: claim the first epoch.
            return self.claim(1, now);
        };
        let value = (
            obs.claim.clone(),
            obs.lease.as_ref().map_or(0, |l| l.renewal),
            obs.lease.as_ref().is_some_and(|l| l.released),
        );
        let same = seen.as_ref().is_some_and(|s| {
            s.0.epoch == value.0.epoch && s.0.holder == value.0.holder && s.1 == value.1
        });
        if !same {
            *seen = Some(value.clone());
            // The value may have landed any time up to the end of the read (a listing and
            // two reads): counting from the end keeps a standby from claiming early.
            *since = now;
        }
        let expired = now >= *since + self.cfg.lease_ms;
        // Its own claim, newest, while it stands by: it stepped down itself (a renewal came
        // too late) and nobody claimed since, so nobody leads; no need to wait a lease.
        let own = !self.nonce.is_empty() && value.0.nonce == self.nonce;
        if value.2 || expired || own {
            return self.claim(value.0.epoch + 1, now);
        }
        None
    }

    fn claim(&mut self, epoch: u64, now: u64) -> Option<Action> {
        self.state = State::Claiming {
            epoch,
            started: now,
        };
        Some(Action::Claim { epoch })
    }

    /// The result of an [`Action::Claim`]: `Ok(true)` won, `Ok(false)` someone else holds
    /// that epoch, `Err` the write failed (unknown outcome: observe again; a claim that did
    /// land is seen as someone's, and expires, since nobody renews it).
    pub fn claimed(&mut self, now: u64, won: Result<bool, ()>) -> Role {
        let State::Claiming { epoch, started } = self.state else {
            return self.role(now);
        };
        self.state = match won {
            Ok(true) => State::Leader {
                epoch,
                renewal: 0,
                valid_from: started,
                next_renew: started + self.cfg.renew_every_ms(),
                renewing: None,
                released: false,
            },
            _ => State::Standby {
                seen: None,
                since: now,
                next_poll: now,
            },
        };
        self.role(now)
    }

    /// The result of an [`Action::Renew`] started at `started`. A result that comes after
    /// the renew deadline changes nothing: the term is over (a standby may have claimed by
    /// now, having seen nothing of this write), and an ended term never comes back.
    pub fn renewed(&mut self, started: u64, now: u64, ok: bool) -> Role {
        if let State::Leader {
            renewal,
            valid_from,
            next_renew,
            renewing,
            ..
        } = &mut self.state
        {
            if now >= *valid_from + self.cfg.renew_deadline_ms() {
                self.state = State::Standby {
                    seen: None,
                    since: now,
                    next_poll: now,
                };
                return self.role(now);
            }
            if *renewing == Some(started) {
                *renewing = None;
                if ok {
                    *renewal += 1;
                    *valid_from = (*valid_from).max(started);
                    *next_renew = started + self.cfg.renew_every_ms();
                } else {
                    *next_renew = now + self.cfg.retry_ms();
                }
            }
        }
        self.role(now)
    }

    /// A claim of a later epoch exists: another job manager leads. Stand by at once.
    pub fn superseded(&mut self, now: u64) -> Role {
        if matches!(self.state, State::Leader { .. }) {
            self.state = State::Standby {
                seen: None,
                since: now,
                next_poll: now,
            };
        }
        self.role(now)
    }

    /// Gives the lease up (shutdown): the lease to write so that a standby claims at once,
    /// if this job manager leads. It leads no more from here.
    pub fn release(&mut self, wall_ms: i64) -> Option<Lease> {
        let State::Leader {
            epoch,
            renewal,
            released,
            ..
        } = &mut self.state
        else {
            return None;
        };
        *released = true;
        Some(Lease {
            epoch: *epoch,
            renewal: *renewal + 1,
            released: true,
            written_at_ms: wall_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: u64 = 3000;

    fn claim(epoch: u64, holder: &str) -> Claim {
        Claim {
            epoch,
            holder: holder.into(),
            address: format!("http://{holder}"),
            claimed_at_ms: 0,
            nonce: format!("nonce-{holder}"),
        }
    }

    fn obs(epoch: u64, holder: &str, renewal: u64) -> Option<Observation> {
        Some(Observation {
            claim: claim(epoch, holder),
            lease: (renewal > 0).then_some(Lease {
                epoch,
                renewal,
                released: false,
                written_at_ms: 0,
            }),
        })
    }

    /// Drives `e` to leadership of `epoch` at `now` (observing `found` first).
    fn lead(e: &mut Election, now: u64, found: Option<Observation>) -> u64 {
        assert_eq!(e.next(now, 0), Action::Observe);
        let Some(Action::Claim { epoch }) = e.observed(now, Ok(found)) else {
            panic!("no claim");
        };
        assert_eq!(e.claimed(now, Ok(true)), Role::Leader { epoch });
        assert_eq!(e.valid_until(), Some(now + LEASE * 2 / 3));
        epoch
    }

    #[test]
    fn the_first_job_manager_claims_epoch_one_at_once() {
        let mut e = Election::new(LeaseConfig::new(LEASE), "me");
        assert_eq!(lead(&mut e, 0, None), 1);
    }

    #[test]
    fn a_leader_renews_three_times_per_lease_and_stays_leader() {
        let cfg = LeaseConfig::new(LEASE);
        let mut e = Election::new(cfg, "me");
        lead(&mut e, 0, None);
        let mut writes = 0;
        let mut now = 0;
        while now < 10 * LEASE {
            match e.next(now, 0) {
                Action::Renew {
                    lease: l,
                    check_newer,
                } => {
                    writes += 1;
                    assert_eq!(l.renewal, writes);
                    assert_eq!(check_newer, writes % 3 == 0, "one check per lease period");
                    assert!(matches!(
                        e.renewed(now, now + 50, true),
                        Role::Leader { .. }
                    ));
                }
                Action::WaitUntil(t) => now = t.max(now + 1),
                other => panic!("{other:?}"),
            }
            assert_eq!(e.role(now), Role::Leader { epoch: 1 });
        }
        assert!(
            (28..=31).contains(&writes),
            "{writes} renewals in 10 leases"
        );
    }

    #[test]
    fn a_leader_that_cannot_renew_steps_down_before_its_lease_can_expire() {
        let cfg = LeaseConfig::new(LEASE);
        let mut e = Election::new(cfg, "me");
        lead(&mut e, 0, None);
        let mut now = 0;
        let mut last_leader = 0;
        loop {
            match e.next(now, 0) {
                Action::Renew { .. } => {
                    e.renewed(now, now + 10, false);
                }
                Action::WaitUntil(t) => now = t.max(now + 1),
                Action::Observe => break,
                other => panic!("{other:?}"),
            }
            if e.role(now) == (Role::Leader { epoch: 1 }) {
                last_leader = now;
            }
        }
        // Stepped down at two thirds of the lease after the claim started: a standby that
        // saw the claim can take over no earlier than one lease after it.
        assert!(last_leader < cfg.renew_deadline_ms(), "{last_leader}");
        assert!(now >= cfg.renew_deadline_ms() && now < LEASE, "{now}");
        assert!(matches!(e.role(now), Role::Standby(_)));
    }

    #[test]
    fn a_frozen_leader_is_no_leader_when_it_wakes_up() {
        // SIGSTOP: nothing runs between 1 s and 20 s; at 20 s the role is read first.
        let mut e = Election::new(LeaseConfig::new(LEASE), "me");
        lead(&mut e, 0, None);
        assert_eq!(e.role(1000), Role::Leader { epoch: 1 });
        assert!(matches!(e.role(20_000), Role::Standby(_)));
        assert_eq!(e.next(20_000, 0), Action::Observe);
    }

    #[test]
    fn a_standby_waits_one_whole_lease_from_its_own_observation() {
        let mut e = Election::new(LeaseConfig::new(LEASE), "me");
        // The leader's lease says it was written long ago by a wall clock: ignored.
        let mut now = 100_000;
        assert_eq!(e.next(now, 0), Action::Observe);
        assert_eq!(e.observed(now + 5, Ok(obs(4, "a", 7))), None);
        assert_eq!(
            e.role(now),
            Role::Standby(Some(claim(4, "a"))),
            "a standby knows the leader"
        );
        let first = now;
        // The same value, read again and again: a claim of epoch 5 after one lease.
        loop {
            match e.next(now, 0) {
                Action::Observe => {
                    if let Some(a) = e.observed(now + 5, Ok(obs(4, "a", 7))) {
                        assert_eq!(a, Action::Claim { epoch: 5 });
                        break;
                    }
                }
                Action::WaitUntil(t) => now = t,
                other => panic!("{other:?}"),
            }
        }
        assert!(
            now >= first + LEASE && now < first + LEASE + LEASE / 5 + 10,
            "{now}"
        );
    }

    #[test]
    fn a_renewal_seen_restarts_the_standbys_count() {
        let mut e = Election::new(LeaseConfig::new(LEASE), "me");
        let mut now = 0;
        let mut renewal = 1;
        for _ in 0..100 {
            match e.next(now, 0) {
                Action::Observe => {
                    // The leader renews every second.
                    renewal = 1 + now / 1000;
                    assert_eq!(e.observed(now, Ok(obs(1, "a", renewal))), None);
                }
                Action::WaitUntil(t) => now = t,
                other => panic!("{other:?}"),
            }
        }
        assert!(renewal > 10);
    }

    #[test]
    fn a_released_lease_is_claimed_at_once() {
        let mut leader = Election::new(LeaseConfig::new(LEASE), "me");
        lead(&mut leader, 0, None);
        let lease = leader.release(0).unwrap();
        assert!(lease.released);
        assert!(matches!(leader.role(1), Role::Standby(_)));
        assert_eq!(leader.next(1, 0), Action::Observe);

        let mut standby = Election::new(LeaseConfig::new(LEASE), "me");
        assert_eq!(standby.next(0, 0), Action::Observe);
        let found = Some(Observation {
            claim: claim(1, "a"),
            lease: Some(lease),
        });
        assert_eq!(
            standby.observed(1, Ok(found)),
            Some(Action::Claim { epoch: 2 })
        );
    }

    #[test]
    fn of_two_racing_claims_the_loser_stays_standby_and_waits_for_the_winner() {
        let mut a = Election::new(LeaseConfig::new(LEASE), "me");
        let mut b = Election::new(LeaseConfig::new(LEASE), "me");
        for e in [&mut a, &mut b] {
            assert_eq!(e.next(0, 0), Action::Observe);
            assert_eq!(e.observed(1, Ok(None)), Some(Action::Claim { epoch: 1 }));
        }
        assert_eq!(a.claimed(2, Ok(true)), Role::Leader { epoch: 1 });
        assert!(matches!(b.claimed(2, Ok(false)), Role::Standby(_)));
        // b now sees a's claim without a lease yet and does not claim epoch 2 before a lease.
        assert_eq!(b.next(2, 0), Action::Observe);
        assert_eq!(b.observed(3, Ok(obs(1, "a", 0))), None);
        assert_eq!(b.role(3), Role::Standby(Some(claim(1, "a"))));
    }

    #[test]
    fn a_renewal_that_succeeds_after_the_deadline_does_not_bring_the_term_back() {
        let cfg = LeaseConfig::new(LEASE);
        let mut e = Election::new(cfg, "me");
        lead(&mut e, 0, None);
        // The renewal at 1 s hangs until 2.5 s, past the deadline at 2 s.
        let Action::Renew { .. } = e.next(1000, 0) else {
            panic!("no renewal at 1 s")
        };
        assert!(matches!(e.renewed(1000, 2500, true), Role::Standby(_)));
        assert_eq!(e.valid_until(), None);
        assert_eq!(e.next(2500, 0), Action::Observe);
    }

    #[test]
    fn a_leader_that_finds_a_later_claim_stands_by() {
        let mut e = Election::new(LeaseConfig::new(LEASE), "me");
        lead(&mut e, 0, None);
        assert!(matches!(e.superseded(100), Role::Standby(_)));
        assert_eq!(e.next(100, 0), Action::Observe);
    }

    #[test]
    fn its_own_stale_claim_is_claimed_again_at_once() {
        // It led epoch 3, stepped down (a renewal too late), and nobody claimed since.
        let mut e = Election::new(LeaseConfig::new(LEASE), "nonce-me");
        assert_eq!(e.next(0, 0), Action::Observe);
        assert_eq!(
            e.observed(1, Ok(obs(3, "me", 9))),
            Some(Action::Claim { epoch: 4 })
        );
        // Another process with the same holder name but another nonce is not "its own".
        let mut twin = Election::new(LeaseConfig::new(LEASE), "nonce-twin");
        assert_eq!(twin.next(0, 0), Action::Observe);
        assert_eq!(twin.observed(1, Ok(obs(3, "me", 9))), None);
    }

    #[test]
    fn a_failed_read_or_claim_changes_nothing_but_the_next_poll() {
        let mut e = Election::new(LeaseConfig::new(LEASE), "me");
        assert_eq!(e.next(0, 0), Action::Observe);
        assert_eq!(e.observed(1, Err(())), None);
        assert!(matches!(e.next(1, 0), Action::WaitUntil(t) if t == 1 + LEASE / 5));
        assert_eq!(e.next(1 + LEASE / 5, 0), Action::Observe);
        assert_eq!(e.observed(700, Ok(None)), Some(Action::Claim { epoch: 1 }));
        assert!(matches!(e.claimed(701, Err(())), Role::Standby(None)));
        assert_eq!(e.next(701, 0), Action::Observe);
    }
}
