//! `SET 'key' = 'value'`: the job's settings, with Flink's key names where Flink has one.

use crate::connectors::parse_duration_ms;
use crate::error::{Result, SqlError};
use datafusion::sql::sqlparser::tokenizer::Location;
use weir_types::{
    CheckpointConfig, DeliveryGuarantee, JobSpec, OperatorSpec, RestartStrategy, StateBackend,
};

/// What the `SET` statements of a script chose (defaults: parallelism 1, checkpoints off,
/// exactly-once, in-memory state, as in Flink).
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub parallelism: u32,
    pub max_parallelism: Option<u32>,
    pub guarantee: DeliveryGuarantee,
    pub checkpoint: CheckpointConfig,
    pub restart: RestartStrategy,
    pub state_backend: StateBackend,
    /// Event-time windows wait this long past their end before they emit.
    pub allowed_lateness_ms: u64,
    /// A source partition silent this long stops holding the watermark back (0: never).
    pub idle_timeout_ms: u64,
}

const KEYS: &[&str] = &[
    "pipeline.name",
    "parallelism.default",
    "pipeline.max-parallelism",
    "execution.checkpointing.interval",
    "execution.checkpointing.mode",
    "execution.checkpointing.timeout",
    "state.checkpoints.dir",
    "state.checkpoints.num-retained",
    "state.savepoints.dir",
    "state.backend.type",
    "weir.delivery-guarantee",
    "weir.window.allowed-lateness",
    "table.exec.source.idle-timeout",
    "restart-strategy.type",
    "restart-strategy.fixed-delay.attempts",
    "restart-strategy.fixed-delay.delay",
    "restart-strategy.failure-rate.max-failures-per-interval",
    "restart-strategy.failure-rate.failure-rate-interval",
    "restart-strategy.failure-rate.delay",
];

impl Settings {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            parallelism: 1,
            max_parallelism: None,
            guarantee: DeliveryGuarantee::ExactlyOnce,
            checkpoint: CheckpointConfig::default(),
            restart: RestartStrategy::default(),
            state_backend: StateBackend::Memory,
            allowed_lateness_ms: 0,
            idle_timeout_ms: 0,
        }
    }

    pub fn apply(&mut self, key: &str, value: &str, at: Location) -> Result<()> {
        let bad = |what: &str| SqlError::at(at, format!("SET '{key}': '{value}' is not {what}"));
        let number = || {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| bad("a whole number"))
        };
        let duration =
            || parse_duration_ms(value).ok_or_else(|| bad("a duration (e.g. 500ms, 10s, 1min)"));
        match key {
            "pipeline.name" => self.name = value.to_string(),
            "parallelism.default" => {
                self.parallelism = number()?;
                if self.parallelism == 0 {
                    return Err(bad("at least 1"));
                }
            }
            "pipeline.max-parallelism" => self.max_parallelism = Some(number()?),
            "execution.checkpointing.interval" => self.checkpoint.interval_ms = duration()?,
            "execution.checkpointing.timeout" => self.checkpoint.timeout_ms = duration()?,
            "execution.checkpointing.mode" => {
                self.guarantee = match value.to_ascii_uppercase().replace('-', "_").as_str() {
                    "EXACTLY_ONCE" => DeliveryGuarantee::ExactlyOnce,
                    "AT_LEAST_ONCE" => DeliveryGuarantee::AtLeastOnce,
                    _ => return Err(bad("EXACTLY_ONCE or AT_LEAST_ONCE")),
                }
            }
            "weir.delivery-guarantee" => {
                self.guarantee = match value.to_ascii_lowercase().replace('-', "_").as_str() {
                    "exactly_once" => DeliveryGuarantee::ExactlyOnce,
                    "at_least_once" => DeliveryGuarantee::AtLeastOnce,
                    "at_most_once" => DeliveryGuarantee::AtMostOnce,
                    _ => return Err(bad("exactly-once, at-least-once or at-most-once")),
                }
            }
            "weir.window.allowed-lateness" => self.allowed_lateness_ms = duration()?,
            "table.exec.source.idle-timeout" => self.idle_timeout_ms = duration()?,
            "state.checkpoints.dir" => self.checkpoint.storage = value.to_string(),
            "state.savepoints.dir" => self.checkpoint.savepoint_dir = value.to_string(),
            "state.checkpoints.num-retained" => self.checkpoint.retained = number()?,
            "state.backend.type" => {
                self.state_backend = match value.to_ascii_lowercase().as_str() {
                    "hashmap" | "memory" => StateBackend::Memory,
                    "rocksdb" => StateBackend::Rocksdb,
                    _ => return Err(bad("hashmap or rocksdb")),
                }
            }
            "restart-strategy.type" => {
                self.restart = match value.to_ascii_lowercase().replace('_', "-").as_str() {
                    "none" | "disable" => RestartStrategy::None,
                    "fixed-delay" => match self.restart {
                        RestartStrategy::FixedDelay { .. } => self.restart.clone(),
                        _ => RestartStrategy::FixedDelay {
                            attempts: 3,
                            delay_ms: 1000,
                        },
                    },
                    "failure-rate" => match self.restart {
                        RestartStrategy::FailureRate { .. } => self.restart.clone(),
                        // Flink's defaults: 1 failure per minute, 1 s apart.
                        _ => RestartStrategy::FailureRate {
                            max_failures: 1,
                            interval_ms: 60_000,
                            delay_ms: 1000,
                        },
                    },
                    _ => return Err(bad("none, fixed-delay or failure-rate")),
                }
            }
            "restart-strategy.fixed-delay.attempts" => {
                let (_, delay_ms) = self.fixed_delay();
                self.restart = RestartStrategy::FixedDelay {
                    attempts: number()?,
                    delay_ms,
                };
            }
            "restart-strategy.fixed-delay.delay" => {
                let (attempts, _) = self.fixed_delay();
                self.restart = RestartStrategy::FixedDelay {
                    attempts,
                    delay_ms: duration()?,
                };
            }
            "restart-strategy.failure-rate.max-failures-per-interval"
            | "restart-strategy.failure-rate.failure-rate-interval"
            | "restart-strategy.failure-rate.delay" => {
                let (mut max_failures, mut interval_ms, mut delay_ms) = match self.restart {
                    RestartStrategy::FailureRate {
                        max_failures,
                        interval_ms,
                        delay_ms,
                    } => (max_failures, interval_ms, delay_ms),
                    _ => (1, 60_000, 1000),
                };
                match key.rsplit('.').next() {
                    Some("max-failures-per-interval") => max_failures = number()?,
                    Some("failure-rate-interval") => interval_ms = duration()?,
                    _ => delay_ms = duration()?,
                }
                self.restart = RestartStrategy::FailureRate {
                    max_failures,
                    interval_ms,
                    delay_ms,
                };
            }
            _ => {
                return Err(SqlError::at(
                    at,
                    format!("unknown setting '{key}' (known: {})", KEYS.join(", ")),
                ))
            }
        }
        Ok(())
    }

    fn fixed_delay(&self) -> (u32, u64) {
        match self.restart {
            RestartStrategy::FixedDelay { attempts, delay_ms } => (attempts, delay_ms),
            _ => (3, 1000),
        }
    }

    pub fn job(&self, operators: Vec<OperatorSpec>) -> JobSpec {
        JobSpec {
            name: self.name.clone(),
            guarantee: self.guarantee,
            checkpoint: self.checkpoint.clone(),
            max_parallelism: self
                .max_parallelism
                .unwrap_or(weir_types::job::DEFAULT_MAX_PARALLELISM),
            restart: self.restart.clone(),
            state_backend: self.state_backend,
            operators,
        }
    }
}
