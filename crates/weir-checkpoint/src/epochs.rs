//! Two-phase commit for a sink whose system holds one open transaction at a time (a Kafka
//! producer with a transactional id): the epochs between barriers, which of them are in the
//! open transaction, and what to send, flush and commit when. The sink runs the
//! [`TxnAction`]s it is handed and does nothing else of its own accord, so the protocol is
//! tested here without a broker.
//!
//! * Rows are sent into the open transaction as they arrive, unless an earlier epoch still
//!   awaits its checkpoint: one transaction is open at a time, so those rows wait in memory.
//! * At barrier `n` the current epoch closes. If its rows went out, they are flushed (the
//!   transaction is pre-committed); either way the epoch (its rows and an `extra` that
//!   travels with its commit, the source offsets) joins the queue and the snapshot for `n`
//!   records every queued epoch, rows included: a write-ahead copy.
//! * When checkpoint `n` completes, every queued epoch up to `n` is committed in order, each
//!   in a transaction of its own with marker `id` (an epoch not sent yet is sent first), and
//!   then the next epoch waiting (or the rows held back) goes out.
//! * After a failure, the sink fences its transactional ids (the system aborts what was
//!   open), reads the highest committed marker, and re-sends, one transaction each, the
//!   restored epochs above it ([`to_resend`]). So an epoch is committed at most once, and one
//!   whose checkpoint completed is never lost, whatever the interleaving of barriers,
//!   completions (late, repeated, or subsumed by a later one) and failures (tested below).

use crate::CheckpointId;
use std::collections::VecDeque;

/// What the sink must do next, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnAction<B, X> {
    /// Produce these rows into the open transaction, beginning one if none is open.
    Send(B),
    /// Wait until everything produced is acknowledged (failing on any delivery error).
    Flush,
    /// Commit the open transaction (beginning an empty one if none is open) with commit
    /// marker `id` and the epoch's `extra`.
    Commit { id: CheckpointId, extra: Option<X> },
}

/// One closed epoch awaiting its checkpoint's completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch<B, X> {
    pub id: CheckpointId,
    pub batches: Vec<B>,
    pub extra: Option<X>,
    /// Whether its rows are in the open transaction.
    sent: bool,
}

/// The epochs of one sink subtask: the open one and the queue of closed ones.
#[derive(Debug, Clone)]
pub struct EpochQueue<B, X> {
    /// Rows since the last barrier; the first `open_sent` are in the open transaction.
    open: Vec<B>,
    open_sent: usize,
    pending: VecDeque<Epoch<B, X>>,
}

impl<B, X> Default for EpochQueue<B, X> {
    fn default() -> Self {
        Self {
            open: Vec::new(),
            open_sent: 0,
            pending: VecDeque::new(),
        }
    }
}

impl<B: Clone, X: Clone> EpochQueue<B, X> {
    /// Rows arrived.
    pub fn rows(&mut self, batch: B) -> Vec<TxnAction<B, X>> {
        self.open.push(batch);
        let mut actions = Vec::new();
        if self.pending.is_empty() {
            self.send_open(&mut actions);
        }
        actions
    }

    /// Barrier `id` arrived: the open epoch closes with `extra`. An epoch with neither rows
    /// nor `extra` is not queued (there is nothing to commit). After the actions, the
    /// snapshot records [`EpochQueue::pending`].
    pub fn barrier(&mut self, id: CheckpointId, extra: Option<X>) -> Vec<TxnAction<B, X>> {
        let mut actions = Vec::new();
        let sent = self.pending.is_empty() && self.open_sent > 0;
        if sent {
            actions.push(TxnAction::Flush);
        }
        self.open_sent = 0;
        let batches = std::mem::take(&mut self.open);
        if !batches.is_empty() || extra.is_some() {
            self.pending.push_back(Epoch {
                id,
                batches,
                extra,
                sent,
            });
        }
        actions
    }

    /// Checkpoint `id` completed: commit every queued epoch up to it, then send what waits.
    pub fn complete(&mut self, id: CheckpointId) -> Vec<TxnAction<B, X>> {
        let mut actions = Vec::new();
        while self.pending.front().is_some_and(|e| e.id <= id) {
            let Some(epoch) = self.pending.pop_front() else {
                break;
            };
            if !epoch.sent {
                actions.extend(epoch.batches.into_iter().map(TxnAction::Send));
                actions.push(TxnAction::Flush);
            }
            actions.push(TxnAction::Commit {
                id: epoch.id,
                extra: epoch.extra,
            });
        }
        // Rows held back while a transaction awaited its checkpoint go out now: the oldest
        // epoch still waiting (pre-committed at once), else the current epoch's.
        match self.pending.front_mut() {
            Some(front) if !front.sent => {
                front.sent = true;
                actions.extend(front.batches.iter().cloned().map(TxnAction::Send));
                actions.push(TxnAction::Flush);
            }
            Some(_) => {}
            None => self.send_open(&mut actions),
        }
        actions
    }

    /// The closed epochs not known to be committed, oldest first: what a snapshot records.
    pub fn pending(&self) -> impl Iterator<Item = &Epoch<B, X>> {
        self.pending.iter()
    }

    /// Whether anything is not committed yet (the task must wait for a checkpoint before it
    /// finishes).
    pub fn awaiting_commit(&self) -> bool {
        !self.pending.is_empty() || !self.open.is_empty()
    }

    fn send_open(&mut self, actions: &mut Vec<TxnAction<B, X>>) {
        actions.extend(
            self.open[self.open_sent..]
                .iter()
                .cloned()
                .map(TxnAction::Send),
        );
        self.open_sent = self.open.len();
    }
}

/// After a failure: which of the epochs a restored snapshot recorded (by id, oldest first)
/// must be sent again, given the highest commit marker the system holds (0: none). Those at
/// or below it committed before the failure.
pub fn to_resend<T>(
    recorded: &[T],
    id: impl Fn(&T) -> CheckpointId,
    marker: CheckpointId,
) -> Vec<&T> {
    recorded.iter().filter(|e| id(e) > marker).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Actions = Vec<TxnAction<u32, u32>>;

    #[test]
    fn rows_wait_while_an_epoch_awaits_its_checkpoint() {
        let mut q: EpochQueue<u32, u32> = EpochQueue::default();
        assert_eq!(q.rows(1), vec![TxnAction::Send(1)]);
        assert_eq!(q.barrier(1, None), vec![TxnAction::Flush]);
        assert!(q.rows(2).is_empty(), "one transaction at a time");
        assert!(q.barrier(2, Some(7)).is_empty());
        assert!(q.rows(3).is_empty());
        let a: Actions = q.complete(1);
        assert_eq!(
            a,
            vec![
                TxnAction::Commit { id: 1, extra: None },
                TxnAction::Send(2),
                TxnAction::Flush
            ]
        );
        let a: Actions = q.complete(2);
        assert_eq!(
            a,
            vec![
                TxnAction::Commit {
                    id: 2,
                    extra: Some(7)
                },
                TxnAction::Send(3)
            ]
        );
        assert!(q.awaiting_commit());
        assert_eq!(q.barrier(3, None), vec![TxnAction::Flush]);
        assert_eq!(
            q.complete(3),
            vec![TxnAction::Commit { id: 3, extra: None }]
        );
        assert!(!q.awaiting_commit());
    }

    #[test]
    fn a_later_completion_commits_the_epochs_it_subsumes_in_order() {
        let mut q: EpochQueue<u32, u32> = EpochQueue::default();
        q.rows(1);
        q.barrier(1, None);
        q.rows(2);
        q.barrier(2, None);
        q.barrier(3, None); // nothing in it: not queued
        let a: Actions = q.complete(3);
        assert_eq!(
            a,
            vec![
                TxnAction::Commit { id: 1, extra: None },
                TxnAction::Send(2),
                TxnAction::Flush,
                TxnAction::Commit { id: 2, extra: None },
            ]
        );
        assert!(
            q.complete(3).is_empty(),
            "a repeated completion commits nothing"
        );
        assert!(q.complete(1).is_empty(), "nor does a stale one");
    }

    #[test]
    fn resend_skips_what_the_marker_says_committed() {
        let recorded = [(3u64, "a"), (5, "b"), (6, "c")];
        let again = to_resend(&recorded, |e| e.0, 5);
        assert_eq!(again, vec![&(6, "c")]);
        assert_eq!(to_resend(&recorded, |e| e.0, 0).len(), 3);
    }

    /// A transactional system with one producer: what is committed (rows, each with the
    /// epoch it was committed in), the open transaction, and the commit marker.
    #[derive(Default)]
    struct Broker {
        committed: Vec<(u64, u32)>,
        open: Vec<u32>,
        marker: u64,
        commits: Vec<u64>,
    }

    impl Broker {
        fn apply(&mut self, a: TxnAction<Vec<u32>, u32>) {
            match a {
                TxnAction::Send(rows) => self.open.extend(rows),
                TxnAction::Flush => {}
                TxnAction::Commit { id, .. } => {
                    assert!(
                        id > self.marker,
                        "epoch {id} committed twice or out of order"
                    );
                    self.committed
                        .extend(std::mem::take(&mut self.open).into_iter().map(|r| (id, r)));
                    self.marker = id;
                    self.commits.push(id);
                }
            }
        }
    }

    /// A small deterministic generator (xorshift), so a failing case replays by its seed.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// A snapshot of the sink: checkpoint id, the source's position, the recorded epochs.
    type Snapshots = Vec<(u64, u32, Vec<(u64, Vec<u32>)>)>;

    /// One run: a source of numbered rows, barriers, checkpoints that complete (their
    /// notifications delayed, repeated, lost or stale), and crashes at any point of a list
    /// of actions, with recovery from the newest completed checkpoint. At the end (a final
    /// checkpoint completes), every row is committed exactly once, in order.
    fn run(seed: u64) {
        let mut rng = Rng(seed | 1);
        let total: u32 = 40 + rng.below(60) as u32;
        let mut broker = Broker::default();
        let mut q: EpochQueue<Vec<u32>, u32> = EpochQueue::default();
        let mut next_row = 0u32; // the source's position
        let mut next_id = 1u64;
        // checkpoint id -> (source position, recorded epochs)
        let mut snapshots: Snapshots = Vec::new();
        let mut completed = 0u64; // newest completed checkpoint
        let mut notices: Vec<u64> = Vec::new(); // completions not yet told to the sink
        let mut steps = 0;
        let restore = |broker: &mut Broker, snapshots: &Snapshots, completed: u64| -> u32 {
            // The new attempt fences the old: its open transaction is aborted.
            broker.open.clear();
            let Some((_, position, epochs)) = snapshots.iter().find(|s| s.0 == completed) else {
                return 0;
            };
            for (id, rows) in to_resend(epochs, |e| e.0, broker.marker) {
                broker.apply(TxnAction::Send(rows.clone()));
                broker.apply(TxnAction::Commit {
                    id: *id,
                    extra: None,
                });
            }
            *position
        };
        while next_row < total || q.awaiting_commit() {
            steps += 1;
            assert!(steps < 100_000, "seed {seed}: no progress");
            let finishing = next_row >= total;
            let mut actions = match rng.below(10) {
                0..=3 if !finishing => {
                    let n = 1 + rng.below(3) as u32;
                    let rows: Vec<u32> = (next_row..(next_row + n).min(total)).collect();
                    next_row += rows.len() as u32;
                    q.rows(rows)
                }
                4 | 5 => {
                    let id = next_id;
                    next_id += 1;
                    let extra = (rng.below(4) == 0).then_some(id as u32);
                    let a = q.barrier(id, extra);
                    let recorded = q.pending().map(|e| (e.id, e.batches.concat())).collect();
                    snapshots.push((id, next_row, recorded));
                    // The checkpoint completes (all acks in) now or never.
                    if rng.below(3) != 0 || finishing {
                        completed = id;
                        notices.push(id);
                    }
                    a
                }
                6 | 7 if !notices.is_empty() => {
                    // A notification reaches the sink: the newest, an older one, or again.
                    let i = rng.below(notices.len() as u64) as usize;
                    let id = notices[i];
                    if rng.below(3) != 0 {
                        notices.remove(i);
                    }
                    q.complete(id)
                }
                8 if rng.below(4) == 0 => {
                    // A crash before anything else happens: restore.
                    q = EpochQueue::default();
                    notices.clear();
                    next_row = restore(&mut broker, &snapshots, completed);
                    Vec::new()
                }
                _ if finishing && notices.is_empty() => {
                    let id = next_id;
                    next_id += 1;
                    let a = q.barrier(id, None);
                    let recorded = q.pending().map(|e| (e.id, e.batches.concat())).collect();
                    snapshots.push((id, next_row, recorded));
                    completed = id;
                    notices.push(id);
                    a
                }
                _ => Vec::new(),
            };
            // Run the actions, or crash part-way through them.
            let crash_at = (rng.below(8) == 0).then(|| rng.below(actions.len() as u64 + 1));
            let rest = match crash_at {
                Some(k) => actions.split_off(k as usize),
                None => Vec::new(),
            };
            for a in actions {
                broker.apply(a);
            }
            if crash_at.is_some() && !rest.is_empty() {
                q = EpochQueue::default();
                notices.clear();
                next_row = restore(&mut broker, &snapshots, completed);
            }
        }
        let rows: Vec<u32> = broker.committed.iter().map(|(_, r)| *r).collect();
        let expected: Vec<u32> = (0..total).collect();
        assert_eq!(rows, expected, "seed {seed}: committed rows");
        assert!(
            broker.commits.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: epochs committed in order, each once"
        );
    }

    #[test]
    fn any_interleaving_commits_each_epoch_once_and_loses_none() {
        for seed in 1..3000 {
            run(seed);
        }
    }
}
