//! Watermark alignment (Flink's): the sources of one alignment group keep their watermarks
//! within a configured drift of the group's slowest active source, so a join or window over
//! several sources does not hold the faster ones' rows while the slowest catches up.
//!
//! On a task manager, [`Alignments`] holds the aligned sources running there. A source
//! publishes its watermark after every batch ([`AlignedSource::publish`]) and, before it polls,
//! asks whether it is more than its drift ahead of the group's minimum
//! ([`AlignedSource::ahead`]). That minimum combines two views:
//!
//! * the group's sources on this task manager, read live (an embedded run, one task manager,
//!   aligns with no delay);
//! * the smallest watermark of the group's sources elsewhere, which whoever runs the tasks
//!   learns from the other processes ([`Alignments::set_remote`]) in exchange for this one's
//!   ([`Alignments::reports`]); the task manager does it with its heartbeat. That value may be
//!   up to a heartbeat old: while the others' watermarks only rise, a stale value only pauses
//!   a source longer; a source elsewhere that comes back from idle, or has just started,
//!   holds the others only from the next exchange.
//!
//! A source without a watermark yet holds its group at the start, as in Flink: a source
//! subtask that starts late (or is starved of CPU at first) must not find the others a run
//! ahead of it. Idle and finished sources hold nobody back. A paused source still takes
//! barriers and cancellation: only its polling waits.

use crate::watermark::{END, MIN};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use weir_types::sync::lock;

/// One job attempt's alignment group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub job_id: String,
    pub attempt: u64,
    pub group: String,
}

/// A source subtask's watermark as the heartbeat carries it: [`MIN`] before its first, `None`
/// while it holds nobody back (idle or finished).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    pub group: GroupKey,
    pub vertex: u32,
    pub subtask: u32,
    pub watermark: Option<i64>,
}

#[derive(Default)]
struct Group {
    /// The smallest watermark of the group's active sources on other task managers
    /// ([`END`] when none).
    remote: AtomicI64,
    members: Mutex<Vec<Member>>,
    changed: Notify,
}

struct Member {
    vertex: u32,
    subtask: u32,
    watermark: Arc<AtomicI64>,
}

/// A published watermark that counts for the group's minimum ([`END`]: idle or finished).
fn active(w: i64) -> Option<i64> {
    (w != END).then_some(w)
}

impl Group {
    fn new() -> Self {
        Self {
            remote: AtomicI64::new(END),
            ..Default::default()
        }
    }

    fn minimum(&self) -> i64 {
        let local = lock(&self.members)
            .iter()
            .filter_map(|m| active(m.watermark.load(Ordering::Acquire)))
            .min()
            .unwrap_or(END);
        local.min(self.remote.load(Ordering::Acquire))
    }
}

/// The aligned sources of one task manager, by group.
#[derive(Clone, Default)]
pub struct Alignments {
    groups: Arc<Mutex<HashMap<GroupKey, Arc<Group>>>>,
}

impl Alignments {
    /// Registers a source subtask in `group`; it leaves the group when the handle drops.
    pub fn join(
        &self,
        group: GroupKey,
        vertex: u32,
        subtask: u32,
        max_drift_ms: u64,
    ) -> AlignedSource {
        // The member joins under the registry's lock: a group whose last member is leaving
        // cannot be removed between finding it and joining it.
        let mut groups = lock(&self.groups);
        let g = groups
            .entry(group.clone())
            .or_insert_with(|| Arc::new(Group::new()))
            .clone();
        let watermark = Arc::new(AtomicI64::new(MIN));
        lock(&g.members).push(Member {
            vertex,
            subtask,
            watermark: watermark.clone(),
        });
        drop(groups);
        AlignedSource {
            registry: self.clone(),
            key: group,
            group: g,
            watermark,
            max_drift: max_drift_ms.min(i64::MAX as u64) as i64,
        }
    }

    /// Every aligned source's current watermark, for the heartbeat.
    pub fn reports(&self) -> Vec<SourceReport> {
        let groups = lock(&self.groups);
        let mut out = Vec::new();
        for (key, g) in groups.iter() {
            for m in lock(&g.members).iter() {
                out.push(SourceReport {
                    group: key.clone(),
                    vertex: m.vertex,
                    subtask: m.subtask,
                    watermark: active(m.watermark.load(Ordering::Acquire)),
                });
            }
        }
        out.sort_by(|a, b| (&a.group, a.vertex, a.subtask).cmp(&(&b.group, b.vertex, b.subtask)));
        out
    }

    /// The job manager's answer: the smallest watermark of `group`'s active sources on the
    /// other task managers (`None`: there are none).
    pub fn set_remote(&self, group: &GroupKey, minimum: Option<i64>) {
        let Some(g) = lock(&self.groups).get(group).cloned() else {
            return;
        };
        let new = minimum.unwrap_or(END);
        if g.remote.swap(new, Ordering::AcqRel) != new {
            g.changed.notify_waiters();
        }
    }
}

/// A source subtask's membership in its alignment group.
pub struct AlignedSource {
    registry: Alignments,
    key: GroupKey,
    group: Arc<Group>,
    watermark: Arc<AtomicI64>,
    max_drift: i64,
}

impl AlignedSource {
    /// The source's watermark changed: [`MIN`] before its first (it holds the group at the
    /// start), [`END`] while it is idle or once it has finished (it holds nobody back).
    pub fn publish(&self, watermark: i64) {
        if self.watermark.swap(watermark, Ordering::AcqRel) != watermark {
            self.group.changed.notify_waiters();
        }
    }

    /// Whether a source at `watermark` is more than its drift ahead of the group's minimum
    /// and must wait before reading more (a source without a watermark never waits).
    pub fn ahead(&self, watermark: i64) -> bool {
        if watermark == MIN || watermark == END {
            return false;
        }
        let w = watermark;
        let min = self.group.minimum();
        min != END && w > min.saturating_add(self.max_drift)
    }

    /// Waits until a source at `watermark` may read again, or at most `max`: the group's
    /// watermarks changed (the caller checks [`Self::ahead`] again) or the time is up.
    pub async fn wait(&self, watermark: i64, max: Duration) {
        let notified = self.group.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.ahead(watermark) {
            return;
        }
        let _ = tokio::time::timeout(max, notified).await;
    }
}

impl Drop for AlignedSource {
    fn drop(&mut self) {
        let mut groups = lock(&self.registry.groups);
        let empty = {
            let mut members = lock(&self.group.members);
            members.retain(|m| !Arc::ptr_eq(&m.watermark, &self.watermark));
            members.is_empty()
        };
        if empty {
            groups.remove(&self.key);
        }
        drop(groups);
        // The leaver may have been the slowest.
        self.group.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str) -> GroupKey {
        GroupKey {
            job_id: "j".into(),
            attempt: 0,
            group: group.into(),
        }
    }

    #[test]
    fn a_source_pauses_only_while_more_than_the_drift_ahead_of_the_slowest() {
        let reg = Alignments::default();
        let a = reg.join(key("g"), 0, 0, 100);
        let b = reg.join(key("g"), 1, 0, 100);
        // Without a watermark a source reads; one that has none yet holds the others.
        assert!(!a.ahead(MIN));
        a.publish(5_000);
        assert!(a.ahead(5_000), "b has not started: a waits for it");
        b.publish(1_000);
        a.publish(1_100);
        assert!(!a.ahead(1_100), "exactly the drift ahead may go on");
        a.publish(1_101);
        assert!(a.ahead(1_101));
        assert!(!b.ahead(1_000), "the slowest never waits");
        // The slow one catches up.
        b.publish(1_050);
        assert!(!a.ahead(1_101));
        // Idle: it holds nobody back.
        b.publish(END);
        a.publish(10_000);
        assert!(!a.ahead(10_000));
        // Another group does not count.
        let c = reg.join(key("other"), 2, 0, 100);
        c.publish(0);
        assert!(!a.ahead(10_000));
        // Back from idle, behind: it holds the others again.
        b.publish(9_000);
        assert!(a.ahead(10_000));
    }

    #[test]
    fn the_remote_minimum_counts_and_leaving_releases_the_others() {
        let reg = Alignments::default();
        let a = reg.join(key("g"), 0, 0, 10);
        a.publish(500);
        reg.set_remote(&key("g"), Some(100));
        assert!(a.ahead(500));
        reg.set_remote(&key("g"), None);
        assert!(!a.ahead(500));
        // A source elsewhere without a watermark yet holds the group.
        reg.set_remote(&key("g"), Some(MIN));
        assert!(a.ahead(500));
        reg.set_remote(&key("g"), None);
        let b = reg.join(key("g"), 1, 1, 10);
        b.publish(200);
        assert!(a.ahead(500));
        assert_eq!(
            reg.reports(),
            vec![
                SourceReport {
                    group: key("g"),
                    vertex: 0,
                    subtask: 0,
                    watermark: Some(500)
                },
                SourceReport {
                    group: key("g"),
                    vertex: 1,
                    subtask: 1,
                    watermark: Some(200)
                },
            ]
        );
        drop(b);
        assert!(!a.ahead(500));
        drop(a);
        assert!(reg.reports().is_empty());
        assert!(lock(&reg.groups).is_empty(), "an empty group is forgotten");
        // A remote answer for a group nobody here is in any more is ignored.
        reg.set_remote(&key("g"), Some(0));
        assert!(lock(&reg.groups).is_empty());
    }

    #[tokio::test]
    async fn a_waiting_source_wakes_when_the_slowest_advances() {
        let reg = Alignments::default();
        let fast = reg.join(key("g"), 0, 0, 10);
        let slow = reg.join(key("g"), 1, 0, 10);
        slow.publish(0);
        fast.publish(100);
        let started = std::time::Instant::now();
        let waiter = async {
            while fast.ahead(100) {
                fast.wait(100, Duration::from_secs(30)).await;
            }
        };
        let advance = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            slow.publish(95);
        };
        tokio::join!(waiter, advance);
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(10),
            "woke on the publish, not the timeout: {waited:?}"
        );
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
    }
}
