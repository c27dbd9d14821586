//! The job specification: a graph of operators with their parallelism, the edges between them
//! with their partitioning, and the job's checkpoint, delivery and restart settings.
//!
//! Its JSON form is what `weir submit job.json` reads; the client's builder produces the same
//! struct. [`JobSpec::validate`] checks everything that can be checked without schemas; column
//! and expression checks happen in the runtime's planner, which knows Arrow types.
//!
//! This module holds [`JobSpec`], its job-wide settings and its JSON entry points; the
//! operators are in `operators`, the sources' and sinks' settings in `connectors`, the restart
//! strategies in `restart` and the structural checks in `validate`, all re-exported here.

mod connectors;
mod operators;
mod restart;
mod validate;

pub use connectors::{
    BadRecords, FileFormat, FileSinkSpec, FileSourceSpec, GeneratorSpec, KafkaFormat,
    KafkaPartitioner, KafkaSinkGuarantee, KafkaSinkSpec, KafkaSourceSpec, KafkaStart, OnConflict,
    PostgresSinkMode, PostgresSinkSpec, StdoutSinkSpec, DEFAULT_FORGET_AFTER_MS,
    DEFAULT_SPLIT_BYTES,
};
pub use operators::{
    AggFn, AggSpec, ExpireBound, InputSpec, JoinSpec, OperatorKind, OperatorSpec, OverSpec,
    Partitioning, ProjectExpr, WatermarkAlignment, WatermarkSpec, WindowSpec,
};
pub use restart::{RestartStrategy, STALLED_BACKOFF_CAP_MS};

use crate::error::{Result, TypesError};
use serde::{Deserialize, Serialize};

/// Number of key groups when the job does not say (Flink's default is 128 as well).
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    #[serde(default)]
    pub guarantee: DeliveryGuarantee,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// Number of key groups: the upper bound for any keyed operator's parallelism, fixed for the
    /// life of the job's state (savepoints restore at any parallelism up to it).
    #[serde(default = "default_max_parallelism")]
    pub max_parallelism: u32,
    #[serde(default)]
    pub restart: RestartStrategy,
    /// Where keyed state lives while the job runs.
    #[serde(default)]
    pub state_backend: StateBackend,
    pub operators: Vec<OperatorSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// Hash maps on the heap (Flink's HashMapStateBackend).
    #[default]
    Memory,
    /// An embedded RocksDB per subtask, in a scratch folder (needs the `rocksdb` build feature).
    Rocksdb,
}

fn default_max_parallelism() -> u32 {
    DEFAULT_MAX_PARALLELISM
}

/// The seed's three delivery guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryGuarantee {
    /// Aligned barriers, state and source positions restored together, two-phase-commit sinks.
    #[default]
    ExactlyOnce,
    /// Barriers are not aligned and sinks write at once: replays after a failure may duplicate.
    AtLeastOnce,
    /// After a failure sources resume from the furthest position they ever reached: records in
    /// flight may be lost, none is delivered twice.
    AtMostOnce,
}

impl DeliveryGuarantee {
    /// The name used in job JSON.
    pub fn name(&self) -> &'static str {
        match self {
            DeliveryGuarantee::ExactlyOnce => "exactly_once",
            DeliveryGuarantee::AtLeastOnce => "at_least_once",
            DeliveryGuarantee::AtMostOnce => "at_most_once",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// 0 turns periodic checkpoints off.
    pub interval_ms: u64,
    /// Folder URL (`file:///…`, `s3://…`); empty means the job manager's default.
    pub storage: String,
    /// How many completed checkpoints to keep; older ones are deleted.
    pub retained: u32,
    /// A checkpoint not complete after this long is aborted (the job keeps running).
    pub timeout_ms: u64,
    /// Where savepoints go when the request names no folder; empty: `<storage>/savepoints`.
    pub savepoint_dir: String,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            interval_ms: 0,
            storage: String::new(),
            retained: 3,
            timeout_ms: 60_000,
            savepoint_dir: String::new(),
        }
    }
}

impl JobSpec {
    pub fn from_json(text: &str) -> Result<Self> {
        let spec: JobSpec =
            serde_json::from_str(text).map_err(|e| TypesError::Json(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Index of an operator by id.
    pub fn operator_index(&self, id: &str) -> Option<usize> {
        self.operators.iter().position(|o| o.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small valid job, also the base of `validate`'s tests.
    pub(super) const JOB: &str = r#"{
      "name": "count",
      "guarantee": "exactly_once",
      "checkpoint": {"interval_ms": 1000},
      "operators": [
        {"id": "gen", "type": "generator", "parallelism": 2, "count": 100, "keys": 10},
        {"id": "agg", "type": "keyed_aggregate", "parallelism": 2,
         "inputs": [{"from": "gen", "partition": {"hash": ["key"]}}],
         "keys": ["key"], "aggregates": [{"fn": "count", "as": "cnt"}]},
        {"id": "out", "type": "file_sink", "parallelism": 2, "inputs": [{"from": "agg"}],
         "path": "file:///tmp/out"}
      ]
    }"#;

    #[test]
    fn parses_and_round_trips() {
        let spec = JobSpec::from_json(JOB).unwrap();
        assert_eq!(spec.operators.len(), 3);
        assert_eq!(
            spec.operators[1].inputs[0].partition,
            Partitioning::Hash(vec!["key".into()])
        );
        let again = JobSpec::from_json(&spec.to_json()).unwrap();
        assert_eq!(spec, again);
    }
}
