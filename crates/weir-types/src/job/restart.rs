//! The restart strategies: what happens when a running job fails, and the delay before each
//! restart.

use serde::{Deserialize, Serialize};

/// What happens when a running job fails (Flink's fixed-delay, exponential-delay and
/// failure-rate strategies). A failure that would repeat (bad data, a bad expression) fails
/// the job whatever the strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RestartStrategy {
    None,
    FixedDelay {
        attempts: u32,
        delay_ms: u64,
    },
    Exponential {
        attempts: u32,
        initial_ms: u64,
        max_ms: u64,
    },
    /// Restart after `delay_ms` as long as at most `max_failures` failures happened within
    /// the last `interval_ms` (this one included); fail beyond that.
    FailureRate {
        max_failures: u32,
        interval_ms: u64,
        delay_ms: u64,
    },
}

/// The longest wait [`RestartStrategy::delay_after_stalls`] grows to (Flink's
/// `restart-strategy.exponential-delay.max-backoff`, 1 min).
pub const STALLED_BACKOFF_CAP_MS: u64 = 60_000;

/// What [`RestartStrategy::delay_after_stalls`] doubles when the strategy's own delay is
/// shorter (zero, say).
const STALLED_BACKOFF_FLOOR_MS: u64 = 100;

impl Default for RestartStrategy {
    fn default() -> Self {
        RestartStrategy::FixedDelay {
            attempts: 100,
            delay_ms: 500,
        }
    }
}

impl RestartStrategy {
    /// The delay before restart number `restarts + 1`, or `None` when no restart is left.
    /// `failures_ms`: when the job failed so far (this failure last), for `FailureRate`.
    pub fn delay_after(&self, restarts: u32, failures_ms: &[u64]) -> Option<u64> {
        match self {
            RestartStrategy::FailureRate {
                max_failures,
                interval_ms,
                delay_ms,
            } => {
                let now = failures_ms.last().copied().unwrap_or(0);
                let recent = failures_ms
                    .iter()
                    .filter(|t| now.saturating_sub(**t) <= *interval_ms)
                    .count();
                (recent as u64 <= u64::from(*max_failures)).then_some(*delay_ms)
            }
            other => other.delay_for(restarts),
        }
    }

    /// The delay before the next restart when the last `stalled` attempts in a row (this one
    /// included) failed before completing a checkpoint: the strategy's delay, doubled for
    /// each such attempt after the first, up to [`STALLED_BACKOFF_CAP_MS`] (as Flink's
    /// exponential-delay strategy, its default since 1.19). A job that restarts without
    /// progress then stops hammering its sources, sinks and cluster. `Exponential` grows
    /// already and is kept as it is.
    pub fn delay_after_stalls(
        &self,
        restarts: u32,
        failures_ms: &[u64],
        stalled: u32,
    ) -> Option<u64> {
        let delay = self.delay_after(restarts, failures_ms)?;
        if stalled <= 1 || matches!(self, RestartStrategy::Exponential { .. }) {
            return Some(delay);
        }
        let grown = delay
            .max(STALLED_BACKOFF_FLOOR_MS)
            .saturating_mul(1u64 << (stalled - 1).min(30))
            .min(STALLED_BACKOFF_CAP_MS);
        Some(delay.max(grown))
    }

    /// The delay before restart number `restarts + 1`, or `None` when no restart is left
    /// (`FailureRate`, which needs the failures' times, as [`Self::delay_after`] with none).
    pub fn delay_for(&self, restarts: u32) -> Option<u64> {
        match self {
            RestartStrategy::FailureRate { .. } => self.delay_after(restarts, &[]),
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay_ms } => {
                (restarts < *attempts).then_some(*delay_ms)
            }
            RestartStrategy::Exponential {
                attempts,
                initial_ms,
                max_ms,
            } => (restarts < *attempts).then(|| {
                initial_ms
                    .saturating_mul(1u64 << restarts.min(30))
                    .min(*max_ms)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delays() {
        let e = RestartStrategy::Exponential {
            attempts: 5,
            initial_ms: 100,
            max_ms: 1000,
        };
        assert_eq!(e.delay_for(0), Some(100));
        assert_eq!(e.delay_for(3), Some(800));
        assert_eq!(e.delay_for(4), Some(1000));
        assert_eq!(e.delay_for(5), None);
        assert_eq!(RestartStrategy::None.delay_for(0), None);
        let r = RestartStrategy::FailureRate {
            max_failures: 2,
            interval_ms: 60_000,
            delay_ms: 10,
        };
        assert_eq!(r.delay_after(0, &[1_000]), Some(10));
        assert_eq!(r.delay_after(1, &[1_000, 2_000]), Some(10));
        assert_eq!(r.delay_after(2, &[1_000, 2_000, 3_000]), None);
        assert_eq!(r.delay_after(2, &[1_000, 2_000, 70_000]), Some(10));
    }

    #[test]
    fn restarts_without_progress_back_off() {
        let fixed = RestartStrategy::FixedDelay {
            attempts: 100,
            delay_ms: 500,
        };
        let delays: Vec<Option<u64>> = (1..=10)
            .map(|k| fixed.delay_after_stalls(k, &[], k))
            .collect();
        let want = [
            500, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000,
        ];
        assert_eq!(delays, want.map(Some).to_vec());
        // An attempt that completed a checkpoint starts the count again.
        assert_eq!(fixed.delay_after_stalls(40, &[], 1), Some(500));
        // No restarts left stays no restarts left.
        assert_eq!(fixed.delay_after_stalls(100, &[], 7), None);
        // A zero delay grows from a floor; a delay above the cap is kept.
        let zero = RestartStrategy::FixedDelay {
            attempts: 10,
            delay_ms: 0,
        };
        assert_eq!(zero.delay_after_stalls(0, &[], 1), Some(0));
        assert_eq!(zero.delay_after_stalls(2, &[], 3), Some(400));
        let long = RestartStrategy::FixedDelay {
            attempts: 10,
            delay_ms: 90_000,
        };
        assert_eq!(long.delay_after_stalls(2, &[], 5), Some(90_000));
        // Exponential grows on its own already.
        let e = RestartStrategy::Exponential {
            attempts: 5,
            initial_ms: 100,
            max_ms: 1000,
        };
        assert_eq!(e.delay_after_stalls(3, &[], 4), Some(800));
    }
}
