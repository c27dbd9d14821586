//! The registry of task managers: their addresses, slots, liveness, metrics, and which job
//! holds how many of their slots.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::Notify;
use tonic::transport::{Channel, Endpoint};
use weir_proto as pb;
use weir_proto::task_manager_service_client::TaskManagerServiceClient;
use weir_types::sync::lock;
use weir_types::JobId;

/// A vertex's counters, summed over its subtasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VertexMetrics {
    pub records_in: u64,
    pub records_out: u64,
    pub alignment_paused_ms: u64,
}

pub type TmClient = TaskManagerServiceClient<Channel>;

#[derive(Debug, Clone)]
pub struct TaskManagerEntry {
    pub id: String,
    pub address: String,
    pub slots: u32,
    pub last_heartbeat: Instant,
    /// Increases with each registration of the same id, so a stale stream cannot evict a new one.
    pub session: u64,
    pub client: TmClient,
    pub metrics: Vec<pb::TaskMetrics>,
}

#[derive(Default)]
pub struct Cluster {
    tms: Mutex<HashMap<String, TaskManagerEntry>>,
    /// job -> (task manager id -> slots held)
    allocations: Mutex<HashMap<JobId, HashMap<String, u32>>>,
    sessions: Mutex<u64>,
    /// Fires when slots may have become available.
    pub changed: Notify,
}

impl Cluster {
    /// Registers (or re-registers) a task manager; returns its session number and, when it
    /// replaced an earlier registration of the same id, that one's id for failover.
    pub fn register(&self, id: &str, address: &str, slots: u32) -> Result<(u64, bool), String> {
        let endpoint = Endpoint::from_shared(address.to_string())
            .map_err(|e| format!("bad address {address:?}: {e}"))?;
        let client = TaskManagerServiceClient::new(endpoint.tcp_nodelay(true).connect_lazy())
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        let session = {
            let mut s = lock(&self.sessions);
            *s += 1;
            *s
        };
        let replaced = lock(&self.tms)
            .insert(
                id.to_string(),
                TaskManagerEntry {
                    id: id.to_string(),
                    address: address.to_string(),
                    slots,
                    last_heartbeat: Instant::now(),
                    session,
                    client,
                    metrics: vec![],
                },
            )
            .is_some();
        if replaced {
            self.release_tm(id);
        }
        self.changed.notify_waiters();
        Ok((session, replaced))
    }

    pub fn heartbeat(&self, id: &str, session: u64, metrics: Vec<pb::TaskMetrics>) -> bool {
        let mut tms = lock(&self.tms);
        match tms.get_mut(id) {
            Some(tm) if tm.session == session => {
                tm.last_heartbeat = Instant::now();
                tm.metrics = metrics;
                true
            }
            _ => false,
        }
    }

    /// Removes a task manager if `session` is still its current one. Returns whether it did.
    pub fn remove(&self, id: &str, session: Option<u64>) -> bool {
        let removed = {
            let mut tms = lock(&self.tms);
            match tms.get(id) {
                Some(tm) if session.is_none_or(|s| s == tm.session) => tms.remove(id).is_some(),
                _ => false,
            }
        };
        if removed {
            self.release_tm(id);
        }
        removed
    }

    fn release_tm(&self, id: &str) {
        for alloc in lock(&self.allocations).values_mut() {
            alloc.remove(id);
        }
    }

    /// Task managers silent for longer than `timeout`.
    pub fn expired(&self, timeout: std::time::Duration) -> Vec<(String, u64)> {
        lock(&self.tms)
            .values()
            .filter(|t| t.last_heartbeat.elapsed() > timeout)
            .map(|t| (t.id.clone(), t.session))
            .collect()
    }

    pub fn list(&self) -> Vec<TaskManagerEntry> {
        let mut v: Vec<_> = lock(&self.tms).values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn total_slots(&self) -> u32 {
        lock(&self.tms).values().map(|t| t.slots).sum()
    }

    pub fn free_slots(&self, id: &str) -> u32 {
        let used: u32 = lock(&self.allocations)
            .values()
            .filter_map(|a| a.get(id))
            .sum();
        lock(&self.tms)
            .get(id)
            .map(|t| t.slots.saturating_sub(used))
            .unwrap_or(0)
    }

    /// Reserves `n` slots for `job`, spread over the task managers with the most free slots.
    /// Returns one (task manager id, address) per slot, or `None` if there are not enough.
    pub fn allocate(&self, job: &JobId, n: u32) -> Option<Vec<(String, String)>> {
        let tms = lock(&self.tms);
        let mut allocations = lock(&self.allocations);
        let mut free: Vec<(String, String, u32)> = tms
            .values()
            .map(|t| {
                let used: u32 = allocations.values().filter_map(|a| a.get(&t.id)).sum();
                (
                    t.id.clone(),
                    t.address.clone(),
                    t.slots.saturating_sub(used),
                )
            })
            .collect();
        free.sort_by(|a, b| a.0.cmp(&b.0));
        if free.iter().map(|f| f.2).sum::<u32>() < n {
            return None;
        }
        let mut out = Vec::with_capacity(n as usize);
        let mut mine: HashMap<String, u32> = HashMap::new();
        while out.len() < n as usize {
            let Some(best) = free.iter_mut().filter(|f| f.2 > 0).max_by_key(|f| f.2) else {
                break;
            };
            best.2 -= 1;
            out.push((best.0.clone(), best.1.clone()));
            *mine.entry(best.0.clone()).or_default() += 1;
        }
        allocations.insert(job.clone(), mine);
        Some(out)
    }

    pub fn release(&self, job: &JobId) {
        lock(&self.allocations).remove(job);
        self.changed.notify_waiters();
    }

    pub fn client(&self, id: &str) -> Option<TmClient> {
        lock(&self.tms).get(id).map(|t| t.client.clone())
    }

    pub fn clients(&self) -> Vec<(String, TmClient)> {
        lock(&self.tms)
            .values()
            .map(|t| (t.id.clone(), t.client.clone()))
            .collect()
    }

    /// Per vertex of a job attempt, its subtasks' counters summed.
    pub fn job_metrics(&self, job: &str, attempt: u64) -> HashMap<u32, VertexMetrics> {
        let mut out: HashMap<u32, VertexMetrics> = HashMap::new();
        for tm in lock(&self.tms).values() {
            for m in tm
                .metrics
                .iter()
                .filter(|m| m.job_id == job && m.attempt == attempt)
            {
                let e = out.entry(m.vertex).or_default();
                e.records_in += m.records_in;
                e.records_out += m.records_out;
                e.alignment_paused_ms += m.alignment_paused_ms;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allocates_spread_and_releases() {
        let c = Cluster::default();
        c.register("a", "http://127.0.0.1:1", 2).unwrap();
        c.register("b", "http://127.0.0.1:2", 2).unwrap();
        let job = JobId("j".into());
        let slots = c.allocate(&job, 3).unwrap();
        assert_eq!(
            slots.iter().filter(|s| s.0 == "a").count()
                + slots.iter().filter(|s| s.0 == "b").count(),
            3
        );
        assert!(c.allocate(&JobId("k".into()), 2).is_none());
        c.release(&job);
        assert!(c.allocate(&JobId("k".into()), 4).is_some());
        assert!(c.remove("a", None));
        assert_eq!(c.total_slots(), 2);
    }
}
