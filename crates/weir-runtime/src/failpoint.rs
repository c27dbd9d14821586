//! Crash points for fault-injection tests.
//!
//! `WEIR_FAILPOINTS=name[@n],…` in a process's environment makes the n-th call (the first if
//! `@n` is left out) of [`hit`]`(name)` abort the whole process on the spot, without flushing or
//! cleaning anything up, the way `kill -9` would. Tests set it on one task-manager process to
//! die inside a window that a timed external kill could not hit reliably (for example between a
//! checkpoint's completion and a sink's commit).
//!
//! This is the one piece of process-global state in the runtime, on purpose: it is read from
//! the environment once and never configured in code, so it cannot leak between the clusters a
//! test process runs in memory (those never set it).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The points the runtime defines (documented in `docs/checkpoints.md`).
pub const FILE_SINK_COMMIT: &str = "file_sink_commit";
pub const POSTGRES_SINK_COMMIT: &str = "postgres_sink_commit";
pub const KAFKA_SINK_COMMIT: &str = "kafka_sink_commit";

struct Armed {
    /// name -> (calls that abort at, calls seen)
    points: Mutex<HashMap<String, (u64, u64)>>,
}

fn parse(spec: &str) -> HashMap<String, (u64, u64)> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('@') {
            Some((name, n)) => (name.to_string(), (n.parse().unwrap_or(1).max(1), 0)),
            None => (s.to_string(), (1, 0)),
        })
        .collect()
}

fn armed() -> &'static Armed {
    static ARMED: OnceLock<Armed> = OnceLock::new();
    ARMED.get_or_init(|| Armed {
        points: Mutex::new(parse(&std::env::var("WEIR_FAILPOINTS").unwrap_or_default())),
    })
}

/// Counts a pass through point `name`; aborts the process if that pass is the armed one.
pub fn hit(name: &str) {
    let fire = {
        let Ok(mut points) = armed().points.lock() else {
            return;
        };
        match points.get_mut(name) {
            Some((at, seen)) => {
                *seen += 1;
                *seen == *at
            }
            None => false,
        }
    };
    if fire {
        tracing::error!(failpoint = name, "failpoint hit: aborting the process");
        eprintln!("weir: failpoint {name} hit: aborting the process");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let p = parse("a, b@3 ,,c@0");
        assert_eq!(p["a"], (1, 0));
        assert_eq!(p["b"], (3, 0));
        assert_eq!(p["c"], (1, 0));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn unarmed_points_do_nothing() {
        hit("not-armed");
        hit("not-armed");
    }
}
