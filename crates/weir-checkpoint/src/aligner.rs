//! Barrier handling at a task's inputs.
//!
//! Exactly-once (aligned): once barrier `n` arrives on an input, that input is blocked until
//! barrier `n` has arrived on every input still open; then the task snapshots, forwards the
//! barrier and unblocks all inputs. Records behind the barrier therefore belong to the next
//! checkpoint, and the snapshot reflects exactly the records before it on every input.
//!
//! At-least-once (unaligned tracking): inputs are never blocked; the task snapshots when the
//! last barrier `n` arrives. Records that overtook the barrier on early inputs are in the
//! snapshot *and* will be replayed after a restore: duplicates, never loss.
//!
//! A newer barrier arriving while an older alignment is open aborts the older checkpoint (the
//! coordinator has given up on it or an upstream declined it).

use crate::CheckpointId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlignEvent {
    /// All open inputs delivered this barrier: snapshot now, then forward the barrier.
    Snapshot(CheckpointId),
    /// An alignment in progress was abandoned for a newer barrier.
    Aborted(CheckpointId),
}

#[derive(Debug, Clone)]
pub struct BarrierAligner {
    aligned: bool,
    current: Option<CheckpointId>,
    seen: Vec<bool>,
    ended: Vec<bool>,
    seen_count: usize,
    last_completed: Option<CheckpointId>,
}

impl BarrierAligner {
    pub fn new(inputs: usize, aligned: bool) -> Self {
        Self {
            aligned,
            current: None,
            seen: vec![false; inputs],
            ended: vec![false; inputs],
            seen_count: 0,
            last_completed: None,
        }
    }

    /// Whether records from `input` must wait (aligned mode, barrier already seen on it).
    pub fn is_blocked(&self, input: usize) -> bool {
        self.aligned && self.current.is_some() && self.seen[input]
    }

    pub fn open_inputs(&self) -> usize {
        self.ended.iter().filter(|e| !**e).count()
    }

    pub fn all_ended(&self) -> bool {
        self.ended.iter().all(|e| *e)
    }

    pub fn on_barrier(&mut self, input: usize, id: CheckpointId) -> Vec<AlignEvent> {
        let mut events = Vec::new();
        if self.last_completed.is_some_and(|done| id <= done) {
            return events; // stale
        }
        match self.current {
            Some(cur) if id < cur => return events, // stale barrier of an abandoned checkpoint
            Some(cur) if id > cur => {
                events.push(AlignEvent::Aborted(cur));
                self.reset();
                self.current = Some(id);
            }
            Some(_) => {}
            None => self.current = Some(id),
        }
        if !self.seen[input] {
            self.seen[input] = true;
            self.seen_count += 1;
        }
        self.check_complete(&mut events);
        events
    }

    /// An input ended: it will deliver no more barriers, so alignment no longer waits for it.
    pub fn on_end_of_input(&mut self, input: usize) -> Vec<AlignEvent> {
        let mut events = Vec::new();
        if !self.ended[input] {
            self.ended[input] = true;
            if self.seen[input] {
                self.seen[input] = false;
                self.seen_count -= 1;
            }
        }
        if self.current.is_some() {
            self.check_complete(&mut events);
        }
        events
    }

    fn check_complete(&mut self, events: &mut Vec<AlignEvent>) {
        if let Some(cur) = self.current {
            if self.seen_count >= self.open_inputs() {
                events.push(AlignEvent::Snapshot(cur));
                self.last_completed = Some(cur);
                self.reset();
            }
        }
    }

    fn reset(&mut self) {
        self.current = None;
        for (s, e) in self.seen.iter_mut().zip(&self.ended) {
            if !*e {
                *s = false;
            }
        }
        self.seen_count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_blocks_until_all_inputs_deliver() {
        let mut a = BarrierAligner::new(3, true);
        assert!(a.on_barrier(0, 1).is_empty());
        assert!(a.is_blocked(0));
        assert!(!a.is_blocked(1));
        assert!(a.on_barrier(2, 1).is_empty());
        assert!(a.is_blocked(2));
        assert_eq!(a.on_barrier(1, 1), vec![AlignEvent::Snapshot(1)]);
        assert!(!a.is_blocked(0) && !a.is_blocked(1) && !a.is_blocked(2));
    }

    #[test]
    fn unaligned_never_blocks_but_snapshots_on_last_barrier() {
        let mut a = BarrierAligner::new(2, false);
        assert!(a.on_barrier(1, 5).is_empty());
        assert!(!a.is_blocked(1));
        assert_eq!(a.on_barrier(0, 5), vec![AlignEvent::Snapshot(5)]);
    }

    #[test]
    fn single_input_snapshots_at_once() {
        let mut a = BarrierAligner::new(1, true);
        assert_eq!(a.on_barrier(0, 7), vec![AlignEvent::Snapshot(7)]);
        assert!(!a.is_blocked(0));
    }

    #[test]
    fn newer_barrier_aborts_older_alignment() {
        let mut a = BarrierAligner::new(2, true);
        a.on_barrier(0, 1);
        assert_eq!(a.on_barrier(1, 2), vec![AlignEvent::Aborted(1)]);
        assert!(a.is_blocked(1));
        assert!(!a.is_blocked(0));
        assert!(a.on_barrier(1, 1).is_empty(), "stale barrier ignored");
        assert_eq!(a.on_barrier(0, 2), vec![AlignEvent::Snapshot(2)]);
        assert!(
            a.on_barrier(0, 2).is_empty(),
            "repeat of a completed barrier ignored"
        );
    }

    #[test]
    fn ended_inputs_do_not_hold_alignment() {
        let mut a = BarrierAligner::new(2, true);
        a.on_barrier(0, 3);
        assert_eq!(a.on_end_of_input(1), vec![AlignEvent::Snapshot(3)]);
        assert_eq!(a.on_barrier(0, 4), vec![AlignEvent::Snapshot(4)]);
        assert!(!a.all_ended());
        a.on_end_of_input(0);
        assert!(a.all_ended());
    }
}
