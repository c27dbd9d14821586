//! The job manager's checkpoint bookkeeping for one job attempt.
//!
//! Life of a checkpoint: [`CheckpointCoordinator::trigger`] gives it an id; every task acks
//! with its state handles ([`CheckpointCoordinator::acknowledge`]); when the last ack is in the
//! outcome says `AllAcknowledged` and the caller writes `_metadata`; then
//! [`CheckpointCoordinator::complete`] records it, subsumes older pending ones and says which
//! old checkpoints to delete. A decline, a timeout or a failed metadata write aborts it
//! ([`CheckpointCoordinator::abort`]); the job keeps running.
//!
//! Ids are monotonic across attempts: the coordinator of a restarted job starts after the
//! highest id the job ever triggered.

use crate::metadata::{OperatorSnapshot, SubtaskHandle};
use crate::{CheckpointId, TaskKey};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use weir_types::CheckpointState;

/// What the status API shows of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointStats {
    pub id: CheckpointId,
    pub savepoint: bool,
    pub status: CheckpointState,
    pub location: String,
    pub triggered_at_ms: i64,
    pub duration_ms: u64,
    pub state_bytes: u64,
    pub failure: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TriggerError {
    #[error("checkpoint {0} is still in progress")]
    InProgress(CheckpointId),
}

#[derive(Debug, PartialEq)]
pub enum AckOutcome {
    /// Late or unknown (aborted, subsumed, or from a task not in this attempt).
    Ignored,
    Pending,
    /// Every task acknowledged: write the metadata, then call `complete`.
    AllAcknowledged {
        id: CheckpointId,
        location: String,
        savepoint: bool,
        operators: BTreeMap<String, OperatorSnapshot>,
    },
}

#[derive(Debug)]
struct Pending {
    location: String,
    savepoint: bool,
    triggered_at_ms: i64,
    waiting: BTreeSet<TaskKey>,
    operators: BTreeMap<String, OperatorSnapshot>,
    bytes: u64,
}

#[derive(Debug)]
pub struct CheckpointCoordinator {
    tasks: BTreeSet<TaskKey>,
    /// Parallelism of each operator id, for the metadata.
    parallelism: BTreeMap<String, u32>,
    next_id: CheckpointId,
    timeout_ms: u64,
    retained: usize,
    pending: BTreeMap<CheckpointId, Pending>,
    /// Completed periodic checkpoints still kept, oldest first: (id, location).
    retained_list: VecDeque<(CheckpointId, String)>,
    history: VecDeque<CheckpointStats>,
}

const HISTORY: usize = 20;

impl CheckpointCoordinator {
    /// `parallelism` maps every operator id of the job to its parallelism.
    pub fn new(
        tasks: impl IntoIterator<Item = TaskKey>,
        parallelism: BTreeMap<String, u32>,
        first_id: CheckpointId,
        timeout_ms: u64,
        retained: usize,
    ) -> Self {
        Self {
            tasks: tasks.into_iter().collect(),
            parallelism,
            next_id: first_id.max(1),
            timeout_ms,
            retained: retained.max(1),
            pending: BTreeMap::new(),
            retained_list: VecDeque::new(),
            history: VecDeque::new(),
        }
    }

    /// Checkpoints restored or found on start-up, so retention keeps counting them.
    /// Call oldest first. Returns the locations beyond the retained count, to delete.
    pub fn adopt_completed(&mut self, id: CheckpointId, location: String) -> Vec<String> {
        self.retained_list.push_back((id, location));
        self.next_id = self.next_id.max(id + 1);
        let mut discard = Vec::new();
        while self.retained_list.len() > self.retained {
            if let Some((_, loc)) = self.retained_list.pop_front() {
                discard.push(loc);
            }
        }
        discard
    }

    pub fn next_id(&self) -> CheckpointId {
        self.next_id
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Starts checkpoint `next_id` whose state goes to `location` (a folder URL). Periodic
    /// checkpoints do not overlap; a savepoint may start while a periodic one runs.
    pub fn trigger(
        &mut self,
        now_ms: i64,
        location: impl FnOnce(CheckpointId) -> String,
        savepoint: bool,
    ) -> Result<CheckpointId, TriggerError> {
        if !savepoint {
            if let Some((id, _)) = self.pending.iter().find(|(_, p)| !p.savepoint) {
                return Err(TriggerError::InProgress(*id));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let location = location(id);
        self.record(CheckpointStats {
            id,
            savepoint,
            status: CheckpointState::InProgress,
            location: location.clone(),
            triggered_at_ms: now_ms,
            duration_ms: 0,
            state_bytes: 0,
            failure: String::new(),
        });
        self.pending.insert(
            id,
            Pending {
                location,
                savepoint,
                triggered_at_ms: now_ms,
                waiting: self.tasks.clone(),
                operators: BTreeMap::new(),
                bytes: 0,
            },
        );
        Ok(id)
    }

    /// A task acknowledged checkpoint `id`; `handles` are its operators' state files
    /// (operator id -> handle), absent for operators without state.
    pub fn acknowledge(
        &mut self,
        task: TaskKey,
        id: CheckpointId,
        handles: Vec<(String, SubtaskHandle)>,
    ) -> AckOutcome {
        let Some(p) = self.pending.get_mut(&id) else {
            return AckOutcome::Ignored;
        };
        if !p.waiting.remove(&task) {
            return AckOutcome::Ignored;
        }
        for (op, handle) in handles {
            p.bytes += handle.size;
            let parallelism = self.parallelism.get(&op).copied().unwrap_or(1);
            p.operators
                .entry(op)
                .or_insert_with(|| OperatorSnapshot {
                    parallelism,
                    subtasks: BTreeMap::new(),
                })
                .subtasks
                .insert(task.subtask, handle);
        }
        if !p.waiting.is_empty() {
            return AckOutcome::Pending;
        }
        AckOutcome::AllAcknowledged {
            id,
            location: p.location.clone(),
            savepoint: p.savepoint,
            operators: p.operators.clone(),
        }
    }

    /// The metadata of `id` is durable: the checkpoint is complete. Older pending periodic
    /// checkpoints are subsumed (aborted). Returns the locations of checkpoints to delete now
    /// (beyond the retained count; savepoints are never deleted).
    pub fn complete(&mut self, id: CheckpointId, now_ms: i64) -> Vec<String> {
        let Some(p) = self.pending.remove(&id) else {
            return vec![];
        };
        let duration = (now_ms - p.triggered_at_ms).max(0) as u64;
        self.update(id, |s| {
            s.status = CheckpointState::Completed;
            s.duration_ms = duration;
            s.state_bytes = p.bytes;
        });
        let older: Vec<CheckpointId> = self
            .pending
            .iter()
            .filter(|(pid, q)| **pid < id && !q.savepoint && !p.savepoint)
            .map(|(pid, _)| *pid)
            .collect();
        for old in older {
            self.abort(old, "subsumed by a newer completed checkpoint", now_ms);
        }
        if p.savepoint {
            return vec![];
        }
        self.retained_list.push_back((id, p.location));
        let mut discard = Vec::new();
        while self.retained_list.len() > self.retained {
            if let Some((_, loc)) = self.retained_list.pop_front() {
                discard.push(loc);
            }
        }
        discard
    }

    /// Aborts a pending checkpoint (declined, timed out, metadata write failed). Returns its
    /// location so the caller can delete what was written, or `None` if it was not pending.
    pub fn abort(&mut self, id: CheckpointId, reason: &str, now_ms: i64) -> Option<String> {
        let p = self.pending.remove(&id)?;
        let duration = (now_ms - p.triggered_at_ms).max(0) as u64;
        self.update(id, |s| {
            s.status = CheckpointState::Failed;
            s.failure = reason.to_string();
            s.duration_ms = duration;
        });
        Some(p.location)
    }

    /// Pending checkpoints older than the timeout.
    pub fn expired(&self, now_ms: i64) -> Vec<CheckpointId> {
        self.pending
            .iter()
            .filter(|(_, p)| now_ms - p.triggered_at_ms >= self.timeout_ms as i64)
            .map(|(id, _)| *id)
            .collect()
    }

    /// A task finished for good (after end of input): it acks nothing more.
    pub fn task_finished(&mut self, task: TaskKey) -> Vec<AckOutcome> {
        self.tasks.remove(&task);
        let ids: Vec<CheckpointId> = self.pending.keys().copied().collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(p) = self.pending.get_mut(&id) {
                if p.waiting.remove(&task) && p.waiting.is_empty() {
                    out.push(AckOutcome::AllAcknowledged {
                        id,
                        location: p.location.clone(),
                        savepoint: p.savepoint,
                        operators: p.operators.clone(),
                    });
                }
            }
        }
        out
    }

    pub fn latest_completed(&self) -> Option<&(CheckpointId, String)> {
        self.retained_list.back()
    }

    pub fn history(&self) -> impl Iterator<Item = &CheckpointStats> {
        self.history.iter()
    }

    fn record(&mut self, stats: CheckpointStats) {
        self.history.push_back(stats);
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    fn update(&mut self, id: CheckpointId, f: impl FnOnce(&mut CheckpointStats)) {
        if let Some(s) = self.history.iter_mut().rev().find(|s| s.id == id) {
            f(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: u32, s: u32) -> TaskKey {
        TaskKey {
            vertex: v,
            subtask: s,
        }
    }

    fn coord(retained: usize) -> CheckpointCoordinator {
        let par = [("src".to_string(), 2), ("sink".to_string(), 1)].into();
        CheckpointCoordinator::new([key(0, 0), key(0, 1), key(1, 0)], par, 1, 1000, retained)
    }

    fn h(p: &str) -> SubtaskHandle {
        SubtaskHandle {
            path: p.into(),
            size: 5,
        }
    }

    #[test]
    fn completes_after_every_ack_and_retains_n() {
        let mut c = coord(2);
        let mut discarded = vec![];
        for round in 0..4 {
            let id = c.trigger(0, |id| format!("chk-{id}"), false).unwrap();
            assert_eq!(id, round + 1);
            assert_eq!(
                c.acknowledge(key(0, 0), id, vec![("src".into(), h("a"))]),
                AckOutcome::Pending
            );
            assert_eq!(
                c.acknowledge(key(0, 0), id, vec![]),
                AckOutcome::Ignored,
                "duplicate ack"
            );
            assert_eq!(
                c.acknowledge(key(0, 1), id, vec![("src".into(), h("b"))]),
                AckOutcome::Pending
            );
            match c.acknowledge(key(1, 0), id, vec![]) {
                AckOutcome::AllAcknowledged { operators, .. } => {
                    assert_eq!(operators["src"].parallelism, 2);
                    assert_eq!(operators["src"].subtasks.len(), 2);
                }
                other => panic!("{other:?}"),
            }
            discarded.extend(c.complete(id, 10));
        }
        assert_eq!(discarded, vec!["chk-1", "chk-2"]);
        assert_eq!(c.latest_completed().unwrap().0, 4);
        assert!(c
            .history()
            .all(|s| s.status == CheckpointState::Completed && s.state_bytes == 10));
    }

    #[test]
    fn no_overlap_timeouts_and_subsumption() {
        let mut c = coord(3);
        let a = c.trigger(0, |id| format!("chk-{id}"), false).unwrap();
        assert_eq!(
            c.trigger(1, |id| format!("chk-{id}"), false),
            Err(TriggerError::InProgress(a))
        );
        let sp = c.trigger(2, |id| format!("sp-{id}"), true).unwrap();
        assert_eq!(c.expired(999), Vec::<u64>::new());
        assert_eq!(c.expired(1000), vec![a]);
        assert_eq!(c.abort(a, "timeout", 1000), Some("chk-1".into()));
        assert_eq!(
            c.acknowledge(key(0, 0), a, vec![]),
            AckOutcome::Ignored,
            "late ack of aborted"
        );
        let b = c.trigger(1001, |id| format!("chk-{id}"), false).unwrap();
        assert!(b > sp);
        for t in [key(0, 0), key(0, 1), key(1, 0)] {
            c.acknowledge(t, sp, vec![]);
        }
        assert!(
            c.complete(sp, 1002).is_empty(),
            "savepoints are never discarded"
        );
        assert!(
            c.has_pending(),
            "a savepoint does not subsume periodic checkpoints"
        );
        let failed = c.history().find(|s| s.id == a).unwrap();
        assert_eq!(
            (failed.status, failed.failure.as_str()),
            (CheckpointState::Failed, "timeout")
        );
    }

    #[test]
    fn adopting_found_checkpoints_applies_retention_and_ids() {
        let mut c = coord(2);
        assert!(c.adopt_completed(3, "chk-3".into()).is_empty());
        assert!(c.adopt_completed(5, "chk-5".into()).is_empty());
        assert_eq!(
            c.adopt_completed(9, "chk-9".into()),
            vec!["chk-3".to_string()]
        );
        assert_eq!(c.next_id(), 10);
        assert_eq!(c.latest_completed(), Some(&(9, "chk-9".to_string())));
    }

    #[test]
    fn finished_tasks_stop_holding_checkpoints() {
        let mut c = coord(1);
        let id = c.trigger(0, |id| format!("chk-{id}"), false).unwrap();
        c.acknowledge(key(0, 0), id, vec![]);
        c.acknowledge(key(0, 1), id, vec![]);
        let out = c.task_finished(key(1, 0));
        assert!(matches!(
            out.as_slice(),
            [AckOutcome::AllAcknowledged { .. }]
        ));
    }
}
