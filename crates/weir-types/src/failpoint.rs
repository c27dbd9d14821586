//! Crash and pause points for fault-injection tests.
//!
//! `WEIR_FAILPOINTS=name[@n][=pause:MS],…` in a process's environment makes the n-th call (the
//! first if `@n` is left out) of [`hit`]`(name)` abort the whole process on the spot, without
//! flushing or cleaning anything up, the way `kill -9` would; with `=pause:MS` that call blocks
//! its thread for MS milliseconds instead (logging before and after). Tests set it on one
//! task-manager process to die, or to stall, inside a window that a timed external action
//! could not hit reliably (for example between a checkpoint's completion and a sink's commit).
//! With `=drop` the armed call of [`drops`]`(name)` returns true: the caller drops a message
//! there, as if the network had lost it (the job manager's notifications).
//! Pause points are only placed on blocking threads, never on the async ones. With
//! `=spin:MS`, every call of [`hit`] from the n-th on keeps its thread busy for MS
//! milliseconds: a CPU hog on the async threads, for the tests that show a task manager's
//! heartbeat gets through however busy its tasks are.
//!
//! This is the one piece of process-global state in Weir, on purpose: it is read from
//! the environment once and never configured in code, so it cannot leak between the clusters a
//! test process runs in memory (those never set it).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The points the runtime defines (documented in `docs/checkpoints.md`).
pub const FILE_SINK_COMMIT: &str = "file_sink_commit";
pub const POSTGRES_SINK_COMMIT: &str = "postgres_sink_commit";
/// Right after a `PREPARE TRANSACTION` succeeded, before the snapshot is acknowledged: the
/// prepared transaction belongs to a checkpoint that cannot complete (a stray).
pub const POSTGRES_SINK_PREPARED: &str = "postgres_sink_prepared";
pub const KAFKA_SINK_COMMIT: &str = "kafka_sink_commit";
/// In a task, after each batch it processed (a spin point: a task that hogs its thread).
pub const TASK_BATCH: &str = "task_batch";
/// On the Kafka sink's blocking thread, right before `commit_transaction` (a pause point).
pub const KAFKA_SINK_END_TXN: &str = "kafka_sink_end_txn";
/// In the job manager, before it tells a task manager that the final checkpoint (the one after
/// the sources ended) completed (a drop point: the notification is lost).
pub const JM_FINAL_NOTIFY: &str = "jm_final_notify";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Abort,
    Pause(Duration),
    Drop,
    Spin(Duration),
}

#[derive(Debug, PartialEq, Eq)]
struct Point {
    /// The pass that fires.
    at: u64,
    seen: u64,
    action: Action,
}

struct Armed {
    /// Whether any point is armed: unarmed processes pass through without taking the lock
    /// (a spin point is hit once per batch).
    any: bool,
    points: Mutex<HashMap<String, Point>>,
}

fn parse(spec: &str) -> HashMap<String, Point> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let ms = |ms: &str| Duration::from_millis(ms.parse().unwrap_or(0));
            let (s, action) = match (
                s.split_once("=pause:"),
                s.split_once("=spin:"),
                s.strip_suffix("=drop"),
            ) {
                (Some((s, d)), _, _) => (s, Action::Pause(ms(d))),
                (None, Some((s, d)), _) => (s, Action::Spin(ms(d))),
                (None, None, Some(s)) => (s, Action::Drop),
                (None, None, None) => (s, Action::Abort),
            };
            let (name, at) = match s.split_once('@') {
                Some((name, n)) => (name, n.parse().unwrap_or(1).max(1)),
                None => (s, 1),
            };
            let point = Point {
                at,
                seen: 0,
                action,
            };
            (name.to_string(), point)
        })
        .collect()
}

fn armed() -> &'static Armed {
    static ARMED: OnceLock<Armed> = OnceLock::new();
    ARMED.get_or_init(|| {
        let points = parse(&std::env::var("WEIR_FAILPOINTS").unwrap_or_default());
        Armed {
            any: !points.is_empty(),
            points: Mutex::new(points),
        }
    })
}

/// Counts a pass through point `name`: the action of the armed pass, if this is it.
fn pass(name: &str) -> Option<Action> {
    let armed = armed();
    if !armed.any {
        return None;
    }
    let mut points = armed.points.lock().ok()?;
    let p = points.get_mut(name)?;
    p.seen += 1;
    match p.action {
        Action::Spin(_) => (p.seen >= p.at).then_some(p.action),
        _ => (p.seen == p.at).then_some(p.action),
    }
}

/// Counts a pass through drop point `name`: whether the caller drops its message here.
pub fn drops(name: &str) -> bool {
    let drop = pass(name) == Some(Action::Drop);
    if drop {
        tracing::warn!(failpoint = name, "failpoint hit: dropping the message");
    }
    drop
}

/// Counts a pass through point `name`; if that pass is the armed one, aborts the process (or
/// blocks the calling thread, for a pause point).
pub fn hit(name: &str) {
    match pass(name) {
        None | Some(Action::Drop) => {}
        Some(Action::Abort) => {
            tracing::error!(failpoint = name, "failpoint hit: aborting the process");
            eprintln!("weir: failpoint {name} hit: aborting the process");
            std::process::abort();
        }
        Some(Action::Pause(d)) => {
            tracing::warn!(
                failpoint = name,
                ms = d.as_millis() as u64,
                "failpoint hit: pausing"
            );
            std::thread::sleep(d);
            tracing::warn!(failpoint = name, "failpoint pause over");
        }
        Some(Action::Spin(d)) => {
            tracing::info!(
                failpoint = name,
                ms = d.as_millis() as u64,
                "failpoint hit: spinning"
            );
            let start = std::time::Instant::now();
            while start.elapsed() < d {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let p = parse("a, b@3 ,,c@0, d@2=pause:1500, e=drop, f@2=spin:30");
        let point = |at, action| Point {
            at,
            seen: 0,
            action,
        };
        assert_eq!(p["a"], point(1, Action::Abort));
        assert_eq!(p["b"], point(3, Action::Abort));
        assert_eq!(p["c"], point(1, Action::Abort));
        assert_eq!(p["d"], point(2, Action::Pause(Duration::from_millis(1500))));
        assert_eq!(p["e"], point(1, Action::Drop));
        assert_eq!(p["f"], point(2, Action::Spin(Duration::from_millis(30))));
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn unarmed_points_do_nothing() {
        hit("not-armed");
        hit("not-armed");
    }
}
