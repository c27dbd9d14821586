//! Which checkpoint a new attempt restores from when more than one job manager may have
//! driven the job: the fencing of attempts and checkpoint completions, as plain rules.
//!
//! Every attempt `a` of a job has two create-if-absent records beside the job record:
//!
//! 1. its **fence**, created first, before anything is listed or deployed. Of two job
//!    managers starting attempt `a` exactly one creates it; the other is deposed (or tries
//!    `a + 1`, if it leads).
//! 2. its **restore** record, created after the fence and after listing the checkpoints,
//!    naming the checkpoint `a` restores from. Attempt `a` is deployed only after this.
//!
//! A job manager completes checkpoint `n` of attempt `a` by creating `chk-n/_metadata`
//! (create-if-absent, naming `a`), and tells sinks to commit only if, *after* that, the
//! fence of `a + 1` does not exist. So a checkpoint whose sinks committed
//! was created before the next attempt's fence, hence before that attempt's listing, and is
//! seen by it. A checkpoint created after the next fence is an orphan: never committed, and
//! excluded below even when its id is the highest.
//!
//! The restore point of a new attempt ([`restore_point`]) is the newest checkpoint of the
//! last *deployed* attempt `L` (one with a restore record), or, if `L` completed none, what
//! `L` restored from. A checkpoint of an attempt before `L` is newer than that only if it is
//! an orphan. Restoring from a checkpoint newer than anything committed is always safe (its
//! sinks' pre-committed transactions are committed by recovery, exactly once); restoring from
//! one older than a committed one is what must never happen, and cannot here.

use crate::CheckpointId;
use serde::{Deserialize, Serialize};

/// The fence of an attempt: who started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFence {
    pub attempt: u64,
    /// The leader epoch of the job manager that created it (0: no leader election).
    pub epoch: u64,
    pub holder: String,
    pub created_at_ms: i64,
}

/// Where an attempt restored from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRestore {
    pub attempt: u64,
    /// The checkpoint of the job's own checkpoint folder, if it restored from one.
    pub checkpoint: Option<CheckpointId>,
    /// The folder restored from ("" for a fresh start): a checkpoint or a user's savepoint.
    pub location: String,
}

/// What a new attempt restores from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestorePoint {
    /// Nothing: a fresh start (or the savepoint the job was submitted with, if any).
    Fresh,
    /// A checkpoint of the job's checkpoint folder.
    Checkpoint(CheckpointId),
    /// A folder outside it that an earlier attempt restored from (a user's savepoint).
    External(String),
}

/// The restore point of a new attempt, from the restore records of earlier attempts (in any
/// order) and the completed checkpoints in the job's folder as (id, attempt that wrote it).
///
/// Without any restore record (a job started before records existed, or one whose attempts
/// were all fenced before deploying) the newest completed checkpoint is taken, as before.
pub fn restore_point(
    restores: &[AttemptRestore],
    completed: &[(CheckpointId, u64)],
) -> RestorePoint {
    let Some(last) = restores.iter().max_by_key(|r| r.attempt) else {
        return match completed.iter().map(|c| c.0).max() {
            Some(id) => RestorePoint::Checkpoint(id),
            None => RestorePoint::Fresh,
        };
    };
    if let Some(id) = completed
        .iter()
        .filter(|c| c.1 == last.attempt)
        .map(|c| c.0)
        .max()
    {
        return RestorePoint::Checkpoint(id);
    }
    match (last.checkpoint, last.location.as_str()) {
        (Some(id), _) => RestorePoint::Checkpoint(id),
        (None, "") => RestorePoint::Fresh,
        (None, loc) => RestorePoint::External(loc.to_string()),
    }
}

/// The next attempt number to fence: one past every fence and past the job record's count.
pub fn next_attempt(fences: impl IntoIterator<Item = u64>, recorded: u64) -> u64 {
    fences.into_iter().max().unwrap_or(0).max(recorded) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(attempt: u64, checkpoint: Option<u64>) -> AttemptRestore {
        AttemptRestore {
            attempt,
            checkpoint,
            location: checkpoint.map_or(String::new(), |c| format!("chk-{c}")),
        }
    }

    #[test]
    fn without_records_the_newest_checkpoint_is_restored() {
        assert_eq!(restore_point(&[], &[]), RestorePoint::Fresh);
        assert_eq!(
            restore_point(&[], &[(3, 1), (7, 2), (5, 2)]),
            RestorePoint::Checkpoint(7)
        );
    }

    #[test]
    fn the_newest_checkpoint_of_the_last_deployed_attempt_wins() {
        let restores = [r(1, None), r(2, Some(4))];
        assert_eq!(
            restore_point(&restores, &[(3, 1), (4, 1), (6, 2), (9, 2)]),
            RestorePoint::Checkpoint(9)
        );
    }

    #[test]
    fn an_orphan_of_a_deposed_attempt_is_never_restored() {
        // Attempt 1 (the deposed job manager) completed 5 after attempt 2's fence and
        // listing: 2 restored from 4 and has completed nothing yet. 5 was never committed.
        let restores = [r(1, None), r(2, Some(4))];
        assert_eq!(
            restore_point(&restores, &[(4, 1), (5, 1)]),
            RestorePoint::Checkpoint(4)
        );
        // Even when 2 has completed a lower id than the orphan's.
        assert_eq!(
            restore_point(&restores, &[(4, 1), (8, 1), (6, 2)]),
            RestorePoint::Checkpoint(6)
        );
    }

    #[test]
    fn an_attempt_fenced_before_it_deployed_does_not_count() {
        // Attempt 3 has a fence but no restore record: the last deployed one is 2.
        let restores = [r(1, None), r(2, Some(4))];
        assert_eq!(
            restore_point(&restores, &[(4, 1), (7, 2)]),
            RestorePoint::Checkpoint(7)
        );
    }

    #[test]
    fn a_users_savepoint_is_restored_again_until_a_checkpoint_exists() {
        let restores = [AttemptRestore {
            attempt: 1,
            checkpoint: None,
            location: "s3://b/sp-1".into(),
        }];
        assert_eq!(
            restore_point(&restores, &[]),
            RestorePoint::External("s3://b/sp-1".into())
        );
        assert_eq!(
            restore_point(&restores, &[(2, 1)]),
            RestorePoint::Checkpoint(2)
        );
        assert_eq!(restore_point(&[r(1, None)], &[]), RestorePoint::Fresh);
    }

    #[test]
    fn attempts_are_numbered_past_every_fence() {
        assert_eq!(next_attempt([], 0), 1);
        assert_eq!(next_attempt([1, 2, 3], 2), 4);
        assert_eq!(next_attempt([1], 5), 6);
    }
}
