//! Work of a job attempt that outlives the attempt's cancellation.
//!
//! A task manager cancels a subtask by aborting its tokio task, which drops the subtask's
//! future at its next await. Work the subtask handed to another thread does not stop with it:
//! a Kafka commit inside `spawn_blocking` runs to its end. If the next attempt of the job
//! started meanwhile, the old commit and the new attempt's recovery would race at the broker:
//! the new producer's `init_transactions` while the old producer's `EndTxn` is in flight. Kafka
//! serialises the two (`CONCURRENT_TRANSACTIONS`), but not every Kafka-compatible broker does
//! (tansu 0.6 does not: `docs/known-issues.md`), and Flink's rule is the safe one anyway: a job
//! restarts only once every task of the failed attempt has stopped.
//!
//! [`InFlight`] counts what is still running for one deployed attempt: each subtask's body and
//! each piece of blocking work a subtask started ([`InFlight::spawn_blocking`]). A task manager
//! waits for the count to reach zero before it confirms a cancellation.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A count of running work; cheap to clone (all clones share the count).
#[derive(Clone, Debug)]
pub struct InFlight {
    count: Arc<watch::Sender<usize>>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self {
            count: Arc::new(watch::Sender::new(0)),
        }
    }
}

/// Holds one unit of the count until dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    count: Arc<watch::Sender<usize>>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.count.send_modify(|c| *c = c.saturating_sub(1));
    }
}

impl InFlight {
    /// Counts one more running piece of work until the guard is dropped.
    pub fn enter(&self) -> InFlightGuard {
        self.count.send_modify(|c| *c += 1);
        InFlightGuard {
            count: self.count.clone(),
        }
    }

    pub fn running(&self) -> usize {
        *self.count.borrow()
    }

    /// Runs `f` on tokio's blocking threads, counted until it returns, even if the caller is
    /// aborted while waiting for it.
    pub async fn spawn_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let guard = self.enter();
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            f()
        })
        .await
    }

    /// Waits until nothing is running; false if `limit` passed first.
    pub async fn idle_within(&self, limit: Duration) -> bool {
        let mut rx = self.count.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|c| *c == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn blocking_work_of_an_aborted_task_is_waited_for() {
        let inflight = InFlight::default();
        let done = Arc::new(AtomicBool::new(false));
        let (i, d) = (inflight.clone(), done.clone());
        let guard = inflight.enter();
        let task = tokio::spawn(async move {
            let _guard = guard;
            i.spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(300));
                d.store(true, Ordering::SeqCst);
            })
            .await
        });
        // let the blocking work start, then cancel the task the way a task manager does
        tokio::time::sleep(Duration::from_millis(50)).await;
        task.abort();
        assert!(task.await.is_err_and(|e| e.is_cancelled()));
        assert!(
            !done.load(Ordering::SeqCst),
            "the work runs on after the abort"
        );
        assert_eq!(
            inflight.running(),
            1,
            "the task's own guard is gone, the work's is not"
        );
        assert!(inflight.idle_within(Duration::from_secs(5)).await);
        assert!(done.load(Ordering::SeqCst));
        assert_eq!(inflight.running(), 0);
    }

    #[tokio::test]
    async fn waiting_gives_up_at_the_limit() {
        let inflight = InFlight::default();
        let guard = inflight.enter();
        assert!(!inflight.idle_within(Duration::from_millis(100)).await);
        drop(guard);
        assert!(inflight.idle_within(Duration::from_millis(100)).await);
    }
}
