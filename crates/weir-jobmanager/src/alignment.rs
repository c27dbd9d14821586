//! Watermark alignment across task managers: every heartbeat carries the watermarks of the
//! task manager's aligned sources, and its answer carries, per alignment group it reported,
//! the smallest watermark of that group's active sources on the *other* task managers (the
//! task manager reads its own sources live: `weir_runtime::alignment` in the task manager).
//!
//! A plain state machine: each heartbeat replaces the sender's reports, so a source that
//! ended, was cancelled or moved with a restart (a new attempt is a new group key) is gone
//! after its task manager's next heartbeat, and a lost task manager's reports go with it.
//! Before deploying, the job manager enters every aligned source subtask as "no watermark
//! yet" at its placement ([`AlignmentTable::expect`]): the task managers deployed first then
//! wait for the others instead of reading ahead until those report. An expected source that
//! no heartbeat reports within [`EXPECTED_FOR`] (its task ended at once, its task manager
//! never answered) stops counting, so it cannot hold its group for ever.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How long an expected source holds its group without being reported.
pub const EXPECTED_FOR: Duration = Duration::from_secs(3);

/// One job attempt's alignment group.
pub type GroupKey = (String, u64, String);

/// A source subtask's watermark: `i64::MIN` before its first (it holds its group at the start),
/// `None` while it holds nobody back (idle or finished).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub group: GroupKey,
    pub vertex: u32,
    pub subtask: u32,
    pub watermark: Option<i64>,
}

#[derive(Debug, Default)]
pub struct AlignmentTable {
    by_tm: HashMap<String, Vec<Report>>,
    /// Deployed but not reported yet: (group, vertex, subtask) → (task manager, since).
    expected: HashMap<(GroupKey, u32, u32), (String, Instant)>,
}

impl AlignmentTable {
    /// Task manager `tm`'s current reports; returns, for each group among them, the smallest
    /// watermark of the group's active sources on the other task managers (`None`: there are
    /// none).
    pub fn report(&mut self, tm: &str, reports: Vec<Report>) -> Vec<(GroupKey, Option<i64>)> {
        self.report_at(tm, reports, Instant::now())
    }

    /// Source subtask (`group`, `vertex`, `subtask`) is being deployed on `tm`: it holds its
    /// group at the start until a heartbeat reports it (or [`EXPECTED_FOR`] passes).
    pub fn expect(&mut self, tm: &str, group: GroupKey, vertex: u32, subtask: u32, now: Instant) {
        self.expected
            .insert((group, vertex, subtask), (tm.to_string(), now));
    }

    /// [`Self::report`] at time `now`.
    pub fn report_at(
        &mut self,
        tm: &str,
        reports: Vec<Report>,
        now: Instant,
    ) -> Vec<(GroupKey, Option<i64>)> {
        for r in &reports {
            self.expected
                .remove(&(r.group.clone(), r.vertex, r.subtask));
        }
        self.expected
            .retain(|_, (_, since)| now.duration_since(*since) < EXPECTED_FOR);
        if reports.is_empty() {
            self.by_tm.remove(tm);
            return Vec::new();
        }
        let groups: BTreeSet<&GroupKey> = reports.iter().map(|r| &r.group).collect();
        let answer = groups
            .into_iter()
            .map(|g| {
                let min = self
                    .by_tm
                    .iter()
                    .filter(|(other, _)| other.as_str() != tm)
                    .flat_map(|(_, rs)| rs.iter())
                    .filter(|r| &r.group == g)
                    .filter_map(|r| r.watermark)
                    .min();
                let waiting = self
                    .expected
                    .iter()
                    .any(|((group, _, _), (at, _))| group == g && at.as_str() != tm);
                (g.clone(), if waiting { Some(i64::MIN) } else { min })
            })
            .collect();
        self.by_tm.insert(tm.to_string(), reports);
        answer
    }

    /// Task manager `tm` is gone: its sources hold nobody back any more.
    pub fn forget(&mut self, tm: &str) {
        self.by_tm.remove(tm);
        self.expected.retain(|_, (at, _)| at != tm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(job: &str, attempt: u64, group: &str) -> GroupKey {
        (job.into(), attempt, group.into())
    }

    fn r(group: GroupKey, vertex: u32, subtask: u32, watermark: Option<i64>) -> Report {
        Report {
            group,
            vertex,
            subtask,
            watermark,
        }
    }

    #[test]
    fn each_task_manager_gets_the_minimum_of_the_others() {
        let mut t = AlignmentTable::default();
        let a = g("j", 1, "g");
        // Alone: nobody else holds it back.
        assert_eq!(
            t.report("tm1", vec![r(a.clone(), 0, 0, Some(500))]),
            vec![(a.clone(), None)]
        );
        assert_eq!(
            t.report(
                "tm2",
                vec![r(a.clone(), 1, 0, Some(100)), r(a.clone(), 0, 1, Some(300))]
            ),
            vec![(a.clone(), Some(500))]
        );
        assert_eq!(
            t.report("tm1", vec![r(a.clone(), 0, 0, Some(600))]),
            vec![(a.clone(), Some(100))],
            "the smallest of tm2's sources"
        );
        // An idle source (no watermark) holds nobody back.
        t.report(
            "tm2",
            vec![r(a.clone(), 1, 0, None), r(a.clone(), 0, 1, Some(300))],
        );
        assert_eq!(
            t.report("tm1", vec![r(a.clone(), 0, 0, Some(600))]),
            vec![(a.clone(), Some(300))]
        );
        // tm2 is lost.
        t.forget("tm2");
        assert_eq!(
            t.report("tm1", vec![r(a.clone(), 0, 0, Some(600))]),
            vec![(a, None)]
        );
    }

    #[test]
    fn groups_and_attempts_do_not_mix_and_reports_replace_each_other() {
        let mut t = AlignmentTable::default();
        let old = g("j", 1, "g");
        let new = g("j", 2, "g");
        let other_group = g("j", 2, "h");
        let other_job = g("k", 2, "g");
        t.report(
            "tm2",
            vec![
                r(old.clone(), 0, 0, Some(1)),
                r(other_group.clone(), 0, 0, Some(2)),
                r(other_job.clone(), 0, 0, Some(3)),
                r(new.clone(), 0, 0, Some(1_000)),
            ],
        );
        assert_eq!(
            t.report("tm1", vec![r(new.clone(), 1, 0, Some(5_000))]),
            vec![(new.clone(), Some(1_000))]
        );
        // tm2's tasks of that attempt ended: its next heartbeat reports none of them.
        t.report("tm2", vec![r(other_job, 0, 0, Some(3))]);
        assert_eq!(
            t.report("tm1", vec![r(new.clone(), 1, 0, Some(5_000))]),
            vec![(new.clone(), None)]
        );
        // A task manager with no aligned sources left is forgotten.
        assert!(t.report("tm2", vec![]).is_empty());
        assert!(!t.by_tm.contains_key("tm2"));
        // Several groups in one heartbeat get one answer each, in order.
        t.report("tm3", vec![r(other_group.clone(), 0, 0, Some(7))]);
        assert_eq!(
            t.report(
                "tm1",
                vec![
                    r(new.clone(), 1, 0, Some(1)),
                    r(other_group.clone(), 1, 0, Some(9))
                ]
            ),
            vec![(new, None), (other_group, Some(7))]
        );
    }

    #[test]
    fn deployed_sources_hold_the_others_until_reported_or_for_a_while() {
        let mut t = AlignmentTable::default();
        let a = g("j", 1, "g");
        let t0 = Instant::now();
        t.expect("tm1", a.clone(), 0, 0, t0);
        t.expect("tm2", a.clone(), 1, 0, t0);
        // tm1 runs first; tm2's source is not reported yet: tm1 waits for it.
        assert_eq!(
            t.report_at("tm1", vec![r(a.clone(), 0, 0, Some(500))], t0),
            vec![(a.clone(), Some(i64::MIN))]
        );
        // tm2 reports it (and learns tm1's watermark); tm1 then gets tm2's real one.
        assert_eq!(
            t.report_at("tm2", vec![r(a.clone(), 1, 0, Some(100))], t0),
            vec![(a.clone(), Some(500))]
        );
        assert_eq!(
            t.report_at("tm1", vec![r(a.clone(), 0, 0, Some(600))], t0),
            vec![(a.clone(), Some(100))]
        );
        // An expected source that never reports stops counting after a while.
        t.expect("tm3", a.clone(), 2, 0, t0);
        assert_eq!(
            t.report_at(
                "tm1",
                vec![r(a.clone(), 0, 0, Some(600))],
                t0 + Duration::from_secs(1)
            ),
            vec![(a.clone(), Some(i64::MIN))]
        );
        assert_eq!(
            t.report_at(
                "tm1",
                vec![r(a.clone(), 0, 0, Some(600))],
                t0 + EXPECTED_FOR
            ),
            vec![(a.clone(), Some(100))]
        );
        // A lost task manager's expected sources go with it.
        t.expect("tm3", a.clone(), 2, 0, t0);
        t.forget("tm3");
        assert_eq!(
            t.report_at("tm1", vec![r(a.clone(), 0, 0, Some(600))], t0),
            vec![(a, Some(100))]
        );
    }
}
