//! Two-phase commit bookkeeping for a sink subtask, generic over the transaction handle `T`
//! (a pending file, a Kafka transaction, a prepared PostgreSQL transaction).
//!
//! * At barrier `n` the sink pre-commits its open transaction and records it under `n`; the
//!   record is part of the sink's snapshot for checkpoint `n`.
//! * When checkpoint `n` completes, every transaction recorded under an id `<= n` is committed
//!   (a completed checkpoint also completes the ones it subsumes).
//! * On restore from checkpoint `c`, everything in the restored log was pre-committed at or
//!   before a completed checkpoint, so all of it is committed (commits must be idempotent: it
//!   may have been committed already before the failure). Anything else the sink's system holds
//!   for this job from earlier attempts is aborted.

use crate::CheckpointId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnLog<T> {
    pending: BTreeMap<CheckpointId, Vec<T>>,
}

impl<T> Default for TxnLog<T> {
    fn default() -> Self {
        Self {
            pending: BTreeMap::new(),
        }
    }
}

impl<T: Clone> TxnLog<T> {
    /// Records transactions pre-committed at barrier `id`.
    pub fn pre_commit(&mut self, id: CheckpointId, txns: Vec<T>) {
        self.pending.entry(id).or_default().extend(txns);
    }

    /// Checkpoint `id` completed: returns the transactions to commit now, oldest first.
    pub fn complete(&mut self, id: CheckpointId) -> Vec<T> {
        let later = self.pending.split_off(&(id + 1));
        let done = std::mem::replace(&mut self.pending, later);
        done.into_values().flatten().collect()
    }

    /// The transactions awaiting commit, as they go into a snapshot.
    pub fn pending(&self) -> Vec<(CheckpointId, T)> {
        self.pending
            .iter()
            .flat_map(|(id, ts)| ts.iter().map(move |t| (*id, t.clone())))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Restores from the logs of all subtasks of the snapshot: returns what must be committed
    /// before processing resumes. The log itself starts empty.
    pub fn restore(logs: impl IntoIterator<Item = Vec<(CheckpointId, T)>>) -> (Self, Vec<T>) {
        let mut all: Vec<(CheckpointId, T)> = logs.into_iter().flatten().collect();
        all.sort_by_key(|(id, _)| *id);
        (Self::default(), all.into_iter().map(|(_, t)| t).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_subsumed_and_keeps_later() {
        let mut log = TxnLog::default();
        log.pre_commit(1, vec!["a"]);
        log.pre_commit(2, vec!["b", "c"]);
        log.pre_commit(3, vec!["d"]);
        assert_eq!(log.complete(2), vec!["a", "b", "c"]);
        assert_eq!(log.pending(), vec![(3, "d")]);
        assert!(
            log.complete(2).is_empty(),
            "completing twice commits nothing twice"
        );
        assert_eq!(log.complete(3), vec!["d"]);
        assert!(log.is_empty());
    }

    #[test]
    fn restore_commits_everything_recorded() {
        let (log, commit) = TxnLog::<&str>::restore(vec![vec![(4, "x")], vec![(3, "y"), (4, "z")]]);
        assert!(log.is_empty());
        assert_eq!(commit, vec!["y", "x", "z"]);
    }
}
