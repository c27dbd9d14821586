//! The job specification: a graph of operators with their parallelism, the edges between them
//! with their partitioning, and the job's checkpoint, delivery and restart settings.
//!
//! Its JSON form is what `weir submit job.json` reads; the client's builder produces the same
//! struct. [`JobSpec::validate`] checks everything that can be checked without schemas; column
//! and expression checks happen in the runtime's planner, which knows Arrow types.

use crate::error::{Result, TypesError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorSpec {
    /// Unique name; other operators refer to it in `inputs`.
    pub id: String,
    #[serde(default = "one")]
    pub parallelism: u32,
    #[serde(default)]
    pub inputs: Vec<InputSpec>,
    #[serde(flatten)]
    pub kind: OperatorKind,
    /// Sources only: generate event-time watermarks from this column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<WatermarkSpec>,
}

/// How a source derives watermarks: per source partition, the largest `column` value seen
/// minus `delay_ms`; a subtask's watermark is the minimum over its partitions (partitions
/// silent for `idle_timeout_ms`, when set, do not hold it back), and a task's is the minimum
/// over its inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSpec {
    /// A timestamp (milliseconds) or integer column.
    pub column: String,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub idle_timeout_ms: u64,
    /// Watermark alignment (Flink's): this source pauses while its watermark is more than
    /// `max_drift_ms` ahead of the slowest active source of its group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alignment: Option<WatermarkAlignment>,
}

/// A source's alignment group: the sources of one job that name the same group keep their
/// watermarks within `max_drift_ms` of each other's minimum (idle and finished sources do not
/// count; a source without a watermark yet holds the group at the start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkAlignment {
    pub group: String,
    pub max_drift_ms: u64,
}

/// A window aggregate (event time): rows are assigned to windows of `size_ms` every
/// `slide_ms` (tumbling when equal) by their `time` column, aggregated per key and window,
/// and each window's row is emitted once, when the watermark passes its end plus
/// `allowed_lateness_ms`. Rows for windows already emitted are dropped and counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub keys: Vec<String>,
    pub time: String,
    pub size_ms: u64,
    /// 0 means `size_ms` (tumbling).
    #[serde(default)]
    pub slide_ms: u64,
    pub aggregates: Vec<AggSpec>,
    #[serde(default)]
    pub allowed_lateness_ms: u64,
    /// The rows are windows already (an upstream window aggregate's output, grouped again
    /// by its window): `time` is each row's window start and `size_ms` the windows' size;
    /// no windows are computed. `GROUP BY window_start, window_end` over a window result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub assigned: bool,
    /// Session windows when positive: per key, rows closer than this gap form one window,
    /// from its first row to its last plus the gap (`size_ms` and `slide_ms` unused).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gap_ms: u64,
}

/// Rows are held until the watermark shows that no earlier row of their partition can still
/// come (`time` plus `slack_ms` at or below the watermark), then emitted in `time` order (ties
/// by the rows' values), each with its input columns and the aggregates over its frame: the
/// `preceding` rows before it in its partition and itself (`None`: every row before it).
/// Rows that arrive after the watermark passed them are dropped and counted, as Flink does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverSpec {
    /// PARTITION BY columns (at least one: a constant column for a global order).
    pub keys: Vec<String>,
    /// The ORDER BY column, an event-time column.
    pub time: String,
    #[serde(default)]
    pub preceding: Option<u64>,
    #[serde(default)]
    pub slack_ms: i64,
    pub aggregates: Vec<AggSpec>,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

fn is_false(x: &bool) -> bool {
    !*x
}

/// An inner equi-join of two inputs: input 0 is the left side, input 1 the right, each
/// hash-partitioned by its key columns (equal keys meet in one subtask). Each side's rows are
/// kept in keyed state and probed by the other side's rows; every match (left columns, then
/// right columns) for which `filter` holds is emitted once. A row is forgotten once the
/// watermark reaches its expiry, the earliest of its side's bounds: after that no row still
/// to come can satisfy the join condition (interval and window joins). A side without bounds
/// keeps its rows for good (a regular join, like Flink's without state TTL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinSpec {
    pub left_keys: Vec<String>,
    pub right_keys: Vec<String>,
    /// A SQL predicate over the output columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Output column names, the left's then the right's; empty: the inputs' own names (which
    /// must then all differ).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_expire: Vec<ExpireBound>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub right_expire: Vec<ExpireBound>,
}

/// A row expires when the watermark reaches `expr` (a SQL expression over its own side's
/// columns: a timestamp, or milliseconds) plus `offset_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpireBound {
    pub expr: String,
    #[serde(default)]
    pub offset_ms: i64,
}

impl WindowSpec {
    pub fn slide(&self) -> u64 {
        if self.slide_ms == 0 {
            self.size_ms
        } else {
            self.slide_ms
        }
    }
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub from: String,
    #[serde(default)]
    pub partition: Partitioning,
}

/// How records of an edge are spread over the consumer's subtasks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioning {
    /// Subtask i feeds subtask i (needs equal parallelism); the default.
    #[default]
    Forward,
    /// By key group of the named columns.
    Hash(Vec<String>),
    /// Round-robin by batch.
    Rebalance,
    /// Every record to every subtask.
    Broadcast,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OperatorKind {
    Generator(GeneratorSpec),
    FileSource(FileSourceSpec),
    KafkaSource(KafkaSourceSpec),
    /// The Nexmark benchmark's people, auctions or bids.
    Nexmark(crate::nexmark::NexmarkSpec),
    /// Keeps rows for which the SQL predicate is true.
    Filter {
        predicate: String,
    },
    /// Computes new columns from SQL expressions.
    Project {
        exprs: Vec<ProjectExpr>,
    },
    /// Running aggregates per key, held in keyed state: each input row is emitted with the
    /// aggregate values after it was applied (Flink's rolling `keyBy().sum()`).
    KeyedAggregate {
        keys: Vec<String>,
        aggregates: Vec<AggSpec>,
        /// Only rows that changed their key's aggregates (or are its first) are emitted: for
        /// consumers that keep the newest row per key (SQL's GROUP BY, as Flink's group
        /// aggregation does).
        #[serde(default, skip_serializing_if = "is_false")]
        skip_unchanged: bool,
    },
    /// Running COUNT and SUM per key over an updating input: each input row is an upsert of
    /// `upsert_keys` (an earlier GROUP BY's result), replacing that upstream key's previous
    /// contribution (retracted, then the new one added); emitted like `keyed_aggregate`.
    /// `keys` must be among `upsert_keys`, so an upstream key's rows all meet one group.
    UpdatingAggregate {
        keys: Vec<String>,
        upsert_keys: Vec<String>,
        aggregates: Vec<AggSpec>,
        /// As for `keyed_aggregate`.
        #[serde(default, skip_serializing_if = "is_false")]
        skip_unchanged: bool,
    },
    /// Event-time window aggregates (tumbling or hopping), emitted when windows close.
    WindowAggregate(WindowSpec),
    /// Aggregates over each row's preceding rows in its partition, in event-time order
    /// (SQL's `OVER (PARTITION BY … ORDER BY t ROWS BETWEEN n PRECEDING AND CURRENT ROW)`).
    OverAggregate(OverSpec),
    /// Joins its two inputs on equal keys.
    Join(JoinSpec),
    /// Merges all its inputs.
    Union,
    StdoutSink(StdoutSinkSpec),
    BlackholeSink,
    FileSink(FileSinkSpec),
    PostgresSink(PostgresSinkSpec),
    KafkaSink(KafkaSinkSpec),
}

impl OperatorKind {
    pub fn is_source(&self) -> bool {
        matches!(
            self,
            OperatorKind::Generator(_)
                | OperatorKind::FileSource(_)
                | OperatorKind::KafkaSource(_)
                | OperatorKind::Nexmark(_)
        )
    }
    pub fn is_sink(&self) -> bool {
        matches!(
            self,
            OperatorKind::StdoutSink(_)
                | OperatorKind::BlackholeSink
                | OperatorKind::FileSink(_)
                | OperatorKind::PostgresSink(_)
                | OperatorKind::KafkaSink(_)
        )
    }

    /// Whether this source leases positions ahead of what it emits (`Source::lease` in the
    /// runtime): the one capability at-most-once needs, so that a restart resumes beyond
    /// everything ever emitted. A source without it would resume from its last checkpoint
    /// and emit again what it emitted after it.
    pub fn leases_positions(&self) -> bool {
        matches!(self, OperatorKind::Generator(_))
    }

    /// Whether this sink commits with the checkpoints (two-phase commit), so that it needs
    /// checkpoints to be on to make output visible exactly once.
    pub fn is_transactional_sink(&self) -> bool {
        match self {
            OperatorKind::FileSink(_) => true,
            OperatorKind::PostgresSink(p) => p.mode == PostgresSinkMode::ExactlyOnce,
            OperatorKind::KafkaSink(k) => k.guarantee == KafkaSinkGuarantee::ExactlyOnce,
            _ => false,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            OperatorKind::Generator(_) => "generator",
            OperatorKind::FileSource(_) => "file_source",
            OperatorKind::KafkaSource(_) => "kafka_source",
            OperatorKind::Nexmark(_) => "nexmark",
            OperatorKind::Filter { .. } => "filter",
            OperatorKind::Project { .. } => "project",
            OperatorKind::KeyedAggregate { .. } => "keyed_aggregate",
            OperatorKind::UpdatingAggregate { .. } => "updating_aggregate",
            OperatorKind::WindowAggregate(_) => "window_aggregate",
            OperatorKind::OverAggregate(_) => "over_aggregate",
            OperatorKind::Join(_) => "join",
            OperatorKind::Union => "union",
            OperatorKind::StdoutSink(_) => "stdout_sink",
            OperatorKind::BlackholeSink => "blackhole_sink",
            OperatorKind::FileSink(_) => "file_sink",
            OperatorKind::PostgresSink(_) => "postgres_sink",
            OperatorKind::KafkaSink(_) => "kafka_sink",
        }
    }
}

/// A deterministic event generator. Events are spread over `partitions` logical partitions
/// (like a topic's); partition `p` produces ids `p, p + partitions, …` below `count`, so every id
/// is unique and the set of ids is fixed by `count`. Columns: `id`, `key`, `value`, `ts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorSpec {
    /// Number of events; `None` runs unbounded.
    pub count: Option<u64>,
    /// Key cardinality: `key` is in `0..keys`.
    pub keys: u64,
    /// Events per second over the whole source; 0 means as fast as possible.
    pub rate: u64,
    pub seed: u64,
    /// Logical partitions; the unit of source rescaling. 0 means 32.
    pub partitions: u32,
    /// Rows per batch.
    pub batch_size: u32,
}

impl Default for GeneratorSpec {
    fn default() -> Self {
        Self {
            count: None,
            keys: 1000,
            rate: 0,
            seed: 0,
            partitions: 32,
            batch_size: 8192,
        }
    }
}

/// Reads files under an object-store folder (or one file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceSpec {
    pub path: String,
    #[serde(default)]
    pub format: FileFormat,
    /// Column names and types (`int64`, `float64`, `utf8`, `bool`) for csv and jsonl; lines has
    /// one `line` column.
    #[serde(default)]
    pub schema: Vec<(String, String)>,
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    /// CSV only: the first line of every file is a header, skipped. Flink's csv format has no
    /// header line, so neither has Weir's by default (SQL: `'csv.header' = 'true'`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub header: bool,
    /// CSV only: the text that is NULL in every column (Flink's `csv.null-literal`). Without
    /// it, as in Flink, an empty field is the empty string in a VARCHAR column and an error
    /// in any other; with `""`, every empty field is NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_literal: Option<String>,
    /// CSV, JSON lines and lines: a file larger than this is read in byte ranges of this
    /// size, cut at line boundaries, spread over the source's subtasks like whole files.
    /// `None`: [`DEFAULT_SPLIT_BYTES`]; 0: never split (a CSV file whose quoted fields hold
    /// line breaks needs that; SQL `'source.split-size'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_bytes: Option<u64>,
    /// Keep watching the path and read every file that appears in it, once (Flink's
    /// `source.monitor-interval`): the source never ends. `None`: read the files there at
    /// the start and end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_interval_ms: Option<u64>,
    /// While monitoring: a file whose modification time is this far behind the newest file
    /// seen is neither read nor remembered, so the set of files seen (kept in checkpoints)
    /// stays bounded. `None`: [`DEFAULT_FORGET_AFTER_MS`] (SQL `'source.forget-after'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget_after_ms: Option<u64>,
}

/// Byte ranges a large line-oriented file is read in (as a Hadoop block).
pub const DEFAULT_SPLIT_BYTES: u64 = 64 << 20;
/// How far behind the newest file a monitored file may be and still be read: 7 days.
pub const DEFAULT_FORGET_AFTER_MS: u64 = 7 * 24 * 3600 * 1000;

fn default_batch() -> u32 {
    8192
}

/// Reads a Kafka topic. Partitions are assigned to subtasks by the job (not by a consumer
/// group), and their offsets live in the checkpoint. See `docs/kafka.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// `host:port[,host:port…]`
    pub bootstrap_servers: String,
    pub topic: String,
    #[serde(default)]
    pub format: KafkaFormat,
    /// Column names and types of `json` and `csv` payloads (as for `file_source`); `raw` has one
    /// binary column `value`.
    #[serde(default)]
    pub schema: Vec<(String, String)>,
    /// Where partitions without checkpointed offsets start.
    #[serde(default)]
    pub start: KafkaStart,
    /// Consumer group: offsets of `start: group`, and where offsets are committed (for
    /// monitoring only) after each completed checkpoint.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Adds `_key` (binary), `_partition`, `_offset` and `_timestamp` (epoch ms) columns.
    #[serde(default)]
    pub metadata_columns: bool,
    /// Stop at the end each partition had when the subtask started (a bounded job).
    #[serde(default)]
    pub bounded: bool,
    /// How often new partitions are looked for.
    #[serde(default = "default_discovery")]
    pub discovery_interval_ms: u64,
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    /// How long to try to reach the brokers before the job fails to start.
    #[serde(default = "default_kafka_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Extra librdkafka consumer settings.
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
    /// What a message that is not one valid record of `format` and `schema` does.
    #[serde(default)]
    pub bad_records: BadRecords,
}

/// What a source does with a message it cannot decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRecords {
    /// Fail the task, naming the message's partition and offset (the default: nothing is
    /// dropped unless asked for). The job restarts and meets the message again, so it fails
    /// until the message is dealt with or the table says `skip`.
    #[default]
    Fail,
    /// Drop it, log it (partition, offset, error) at warn level and count it (Flink's
    /// `json.ignore-parse-errors`); its offset still advances, so it is not read again.
    Skip,
}

fn default_discovery() -> u64 {
    10_000
}

fn default_kafka_connect_timeout() -> u64 {
    10_000
}

/// Writes rows to a Kafka topic, one message per row (`docs/kafka.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkSpec {
    pub bootstrap_servers: String,
    pub topic: String,
    /// `json` (one object per row), `csv` (one line per row, no header) or `raw` (the single
    /// binary or string column's bytes).
    #[serde(default)]
    pub format: KafkaFormat,
    /// Column whose value (as text) is the message key; none: no key.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub guarantee: KafkaSinkGuarantee,
    /// `transaction.timeout.ms` of the exactly-once producer: must cover a checkpoint interval
    /// plus the checkpoint timeout (a transaction stays open that long).
    #[serde(default = "default_txn_timeout")]
    pub transaction_timeout_ms: u64,
    #[serde(default = "default_kafka_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Exactly-once only: a consumer group that gets the chained `kafka_source`'s offsets
    /// inside each transaction (Kafka's `send_offsets_to_transaction`), so the group's
    /// offsets move atomically with the output. The source must be in the sink's task (a
    /// chain of forward edges at one parallelism).
    #[serde(default)]
    pub commit_source_offsets: Option<String>,
    /// Extra librdkafka producer settings.
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
    /// Which partition a row goes to.
    #[serde(default)]
    pub partitioner: KafkaPartitioner,
}

/// How the Kafka sink picks a row's partition (Flink's `sink.partitioner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaPartitioner {
    /// librdkafka's: by the key's hash, keyless rows spread over the partitions.
    #[default]
    Default,
    /// Subtask *i* writes only partition *i* mod the topic's partition count (Flink's
    /// `fixed`): each subtask's transactions stay on their own partitions.
    Fixed,
}

fn default_txn_timeout() -> u64 {
    600_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaSinkGuarantee {
    /// One transaction per checkpoint, committed when the checkpoint completes.
    #[default]
    ExactlyOnce,
    /// Idempotent producer flushed at every barrier; replays after a failure duplicate.
    AtLeastOnce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaFormat {
    #[default]
    Json,
    Csv,
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaStart {
    #[default]
    Earliest,
    Latest,
    /// The group's committed offsets (earliest where it has none).
    Group,
    /// The first offset at or after this time (epoch milliseconds).
    Timestamp(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    #[default]
    Jsonl,
    Csv,
    Lines,
    /// Apache Parquet (sinks only; cargo feature `parquet`).
    Parquet,
}

impl FileFormat {
    pub fn extension(&self) -> &'static str {
        match self {
            FileFormat::Jsonl => "jsonl",
            FileFormat::Csv => "csv",
            FileFormat::Lines => "txt",
            FileFormat::Parquet => "parquet",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectExpr {
    pub expr: String,
    #[serde(rename = "as")]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggSpec {
    #[serde(rename = "fn")]
    pub func: AggFn,
    /// The column aggregated; not needed for `count`.
    #[serde(default)]
    pub column: Option<String>,
    #[serde(rename = "as")]
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFn {
    Count,
    Sum,
    Min,
    Max,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutSinkSpec {
    /// Print only every n-th batch's row count instead of rows (0: print rows).
    pub summary_only: bool,
    /// For an updating result (SQL's GROUP BY without a window): the columns that key it.
    /// Each printed row replaces the previous row of its key; the sink says so when it
    /// starts. Empty for appends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upsert_keys: Vec<String>,
}

/// Exactly-once file sink: part files are written pending at the checkpoint barrier and become
/// visible under their final name when the checkpoint completes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkSpec {
    pub path: String,
    #[serde(default)]
    pub format: FileFormat,
    /// Roll to a new part file when the open one reaches this size (bytes).
    #[serde(default = "default_roll")]
    pub roll_bytes: u64,
    /// Roll when the open part file is this old (ms; 0: never by time). Every checkpoint
    /// barrier also rolls.
    #[serde(default)]
    pub roll_interval_ms: u64,
    /// Part files larger than this are uploaded in parts of this size (multipart upload on
    /// S3, which needs at least 5 MiB), so a part file never has to fit in memory whole
    /// (Parquet files excepted: they are encoded in memory until they roll).
    #[serde(default = "default_part_bytes")]
    pub part_bytes: u64,
    /// CSV only: write the column names as the first line of every part file (not Flink's
    /// default, which writes none; SQL: `'csv.header' = 'true'`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub header: bool,
}

fn default_part_bytes() -> u64 {
    8 << 20
}

fn default_roll() -> u64 {
    64 << 20
}

/// Writes rows into a PostgreSQL table whose column names are the input's.
///
/// * `exactly_once`: one transaction per checkpoint and subtask, `PREPARE TRANSACTION` at the
///   barrier (its id recorded in the checkpoint), `COMMIT PREPARED` when the checkpoint
///   completes; needs guarantee `exactly_once` with checkpoints on and the server's
///   `max_prepared_transactions` above 0.
/// * `upsert`: each flush is its own transaction, `INSERT … ON CONFLICT (key) DO UPDATE` (or
///   `DO NOTHING`): at-least-once delivery whose replays collapse on the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkSpec {
    /// `postgresql://user[:password]@host:port/database` (libpq URL or key=value form).
    pub url: String,
    /// Table name, optionally schema-qualified (`schema.table`).
    pub table: String,
    #[serde(default)]
    pub mode: PostgresSinkMode,
    /// Conflict target (a unique or primary key of the table): needed by `upsert`; optional for
    /// `exactly_once`, which then also writes `ON CONFLICT`.
    #[serde(default)]
    pub key: Vec<String>,
    #[serde(default)]
    pub on_conflict: OnConflict,
    /// Creates the table if it does not exist (columns from the input schema, primary key from
    /// `key`).
    #[serde(default)]
    pub create_table: bool,
    /// Rows buffered before a write (writes also happen at every barrier and at the end).
    #[serde(default = "default_pg_batch")]
    pub batch_rows: u32,
    /// How long to try to reach the server before the job fails to start.
    #[serde(default = "default_pg_connect_timeout")]
    pub connect_timeout_ms: u64,
}

impl PostgresSinkSpec {
    fn validate(&self, op: &str, guarantee: DeliveryGuarantee) -> Result<()> {
        let bad = |m: String| Err(TypesError::Invalid(format!("postgres_sink {op:?}: {m}")));
        if self.url.trim().is_empty() {
            return bad("needs a \"url\" (postgresql://user@host:port/database)".into());
        }
        if self.table.trim().is_empty() {
            return bad("needs a \"table\"".into());
        }
        if self.batch_rows == 0 {
            return bad("batch_rows must be at least 1".into());
        }
        match self.mode {
            PostgresSinkMode::Upsert if self.key.is_empty() => bad(
                "mode \"upsert\" needs \"key\": the unique columns its inserts conflict on"
                    .into(),
            ),
            PostgresSinkMode::ExactlyOnce if guarantee != DeliveryGuarantee::ExactlyOnce => bad(
                format!(
                    "mode \"exactly_once\" needs the job's guarantee \"exactly_once\" (it is {}); use mode \"upsert\" for idempotent at-least-once writes",
                    guarantee.name()
                ),
            ),
            _ => Ok(()),
        }
    }
}

fn default_pg_batch() -> u32 {
    8192
}

fn default_pg_connect_timeout() -> u64 {
    5_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostgresSinkMode {
    #[default]
    ExactlyOnce,
    Upsert,
}

/// What an insert does to a row whose key already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Overwrite the non-key columns with the new row's (last write wins).
    #[default]
    Update,
    /// Keep the existing row (first write wins).
    Nothing,
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

    /// Total slots needed: one per subtask of every task vertex (chained operators share one).
    pub fn slots_needed(&self) -> u32 {
        crate::plan::ExecutionPlan::new(self)
            .map(|p| p.vertices.iter().map(|v| v.parallelism).sum())
            .unwrap_or(0)
    }

    /// Structural checks: ids, references, acyclicity, parallelism, partitioning.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TypesError::Invalid(m));
        if self.name.trim().is_empty() {
            return bad("the job needs a non-empty \"name\"".into());
        }
        if self.operators.is_empty() {
            return bad("the job has no operators".into());
        }
        if self.max_parallelism == 0 || self.max_parallelism > 32_768 {
            return bad(format!(
                "max_parallelism must be in 1..=32768, got {}",
                self.max_parallelism
            ));
        }
        if self.checkpoint.retained == 0 {
            return bad("checkpoint.retained must be at least 1".into());
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, op) in self.operators.iter().enumerate() {
            if op.id.is_empty() {
                return bad(format!("operator #{i} has an empty id"));
            }
            if seen.insert(&op.id, i).is_some() {
                return bad(format!("operator id {:?} is used twice", op.id));
            }
            if op.parallelism == 0 || op.parallelism > self.max_parallelism {
                return bad(format!(
                    "operator {:?}: parallelism {} is outside 1..={} (max_parallelism)",
                    op.id, op.parallelism, self.max_parallelism
                ));
            }
            if let OperatorKind::FileSource(f) = &op.kind {
                if f.path.trim().is_empty() {
                    return bad(format!(
                        "operator {:?}: the file source needs a \"path\"",
                        op.id
                    ));
                }
                if f.monitor_interval_ms == Some(0) {
                    return bad(format!(
                        "operator {:?}: monitor_interval_ms must be at least 1 (leave it out to read the files once)",
                        op.id
                    ));
                }
            }
        }
        let mut consumed: HashSet<&str> = HashSet::new();
        for op in &self.operators {
            if op.kind.is_source() && !op.inputs.is_empty() {
                return bad(format!("source {:?} cannot have inputs", op.id));
            }
            if !op.kind.is_source() && op.inputs.is_empty() {
                return bad(format!(
                    "operator {:?} ({}) needs at least one input",
                    op.id,
                    op.kind.type_name()
                ));
            }
            for input in &op.inputs {
                let Some(&from) = seen.get(input.from.as_str()) else {
                    return bad(format!(
                        "operator {:?} reads from unknown operator {:?}",
                        op.id, input.from
                    ));
                };
                let up = &self.operators[from];
                if up.kind.is_sink() {
                    return bad(format!(
                        "operator {:?} reads from sink {:?}; sinks have no output",
                        op.id, up.id
                    ));
                }
                consumed.insert(&up.id);
                match &input.partition {
                    Partitioning::Forward if up.parallelism != op.parallelism => {
                        return bad(format!(
                            "forward edge {:?} -> {:?} needs equal parallelism ({} vs {}); use \"rebalance\" or \"hash\"",
                            up.id, op.id, up.parallelism, op.parallelism
                        ));
                    }
                    Partitioning::Hash(keys) if keys.is_empty() => {
                        return bad(format!(
                            "hash edge {:?} -> {:?} names no key columns",
                            up.id, op.id
                        ));
                    }
                    _ => {}
                }
            }
            if op.watermark.is_some() && !op.kind.is_source() {
                return bad(format!(
                    "operator {:?}: only sources generate watermarks",
                    op.id
                ));
            }
            if let Some(a) = op.watermark.as_ref().and_then(|w| w.alignment.as_ref()) {
                if a.group.trim().is_empty() {
                    return bad(format!(
                        "operator {:?}: the watermark alignment group must not be empty",
                        op.id
                    ));
                }
            }
            if let OperatorKind::WindowAggregate(w) = &op.kind {
                if w.gap_ms == 0 && (w.size_ms == 0 || w.slide() > w.size_ms) {
                    return bad(format!(
                        "window_aggregate {:?}: size_ms must be positive and slide_ms at most size_ms",
                        op.id
                    ));
                }
                for input in &op.inputs {
                    let ok = match &input.partition {
                        Partitioning::Hash(k) => !w.keys.is_empty() && *k == w.keys,
                        _ => op.parallelism == 1,
                    };
                    if !ok {
                        return bad(format!(
                            "window_aggregate {:?} must read its input {:?} hash-partitioned by its keys {:?} (or run with parallelism 1)",
                            op.id, input.from, w.keys
                        ));
                    }
                }
            }
            if let OperatorKind::Join(j) = &op.kind {
                if op.inputs.len() != 2 {
                    return bad(format!(
                        "join {:?} needs two inputs (left, right), not {}",
                        op.id,
                        op.inputs.len()
                    ));
                }
                if j.left_keys.is_empty() || j.left_keys.len() != j.right_keys.len() {
                    return bad(format!(
                        "join {:?} needs as many right_keys as left_keys, at least one",
                        op.id
                    ));
                }
                for (input, keys) in op.inputs.iter().zip([&j.left_keys, &j.right_keys]) {
                    let ok = match &input.partition {
                        Partitioning::Hash(k) => k == keys,
                        _ => op.parallelism == 1,
                    };
                    if !ok {
                        return bad(format!(
                            "join {:?} must read its input {:?} hash-partitioned by its keys {:?} (or run with parallelism 1)",
                            op.id, input.from, keys
                        ));
                    }
                }
            }
            if let OperatorKind::UpdatingAggregate {
                keys,
                upsert_keys,
                aggregates,
                ..
            } = &op.kind
            {
                if let Some(k) = keys.iter().find(|k| !upsert_keys.contains(k)) {
                    return bad(format!(
                        "updating_aggregate {:?}: key {k:?} is not one of the input's upsert_keys {upsert_keys:?}",
                        op.id
                    ));
                }
                if let Some(a) = aggregates
                    .iter()
                    .find(|a| !matches!(a.func, AggFn::Count | AggFn::Sum))
                {
                    return bad(format!(
                        "updating_aggregate {:?}: {:?} cannot be retracted (COUNT and SUM can)",
                        op.id, a.name
                    ));
                }
            }
            if let OperatorKind::KeyedAggregate {
                keys, aggregates, ..
            }
            | OperatorKind::UpdatingAggregate {
                keys, aggregates, ..
            }
            | OperatorKind::OverAggregate(OverSpec {
                keys, aggregates, ..
            }) = &op.kind
            {
                if keys.is_empty() {
                    return bad(format!("{} {:?} names no keys", op.kind.type_name(), op.id));
                }
                if aggregates.is_empty() {
                    return bad(format!(
                        "{} {:?} has no aggregates",
                        op.kind.type_name(),
                        op.id
                    ));
                }
                for input in &op.inputs {
                    let ok = match &input.partition {
                        Partitioning::Hash(k) => k == keys,
                        Partitioning::Forward => op.parallelism == 1,
                        _ => op.parallelism == 1,
                    };
                    if !ok {
                        return bad(format!(
                            "{} {:?} must read its input {:?} hash-partitioned by its keys {:?}",
                            op.kind.type_name(),
                            op.id,
                            input.from,
                            keys
                        ));
                    }
                }
                for a in aggregates {
                    if a.func != AggFn::Count && a.column.is_none() {
                        return bad(format!(
                            "aggregate {:?} of {:?} needs a \"column\"",
                            a.name, op.id
                        ));
                    }
                }
            }
            if op.kind.is_transactional_sink()
                && self.guarantee == DeliveryGuarantee::ExactlyOnce
                && self.checkpoint.interval_ms == 0
            {
                return bad(format!(
                    "{} {:?} is an exactly-once sink: it commits with checkpoints, and this job's checkpoints are off; set checkpoint.interval_ms (e.g. 1000) or choose guarantee \"at_least_once\"",
                    op.kind.type_name(),
                    op.id
                ));
            }
            if let OperatorKind::KafkaSource(k) = &op.kind {
                if k.bootstrap_servers.trim().is_empty() || k.topic.trim().is_empty() {
                    return bad(format!(
                        "kafka_source {:?} needs \"bootstrap_servers\" and \"topic\"",
                        op.id
                    ));
                }
                if k.format != KafkaFormat::Raw && k.schema.is_empty() {
                    return bad(format!(
                        "kafka_source {:?}: a json or csv payload needs a \"schema\"",
                        op.id
                    ));
                }
                if k.start == KafkaStart::Group && k.group_id.is_none() {
                    return bad(format!(
                        "kafka_source {:?}: start \"group\" needs a \"group_id\"",
                        op.id
                    ));
                }
                if k.batch_size == 0 {
                    return bad(format!(
                        "kafka_source {:?}: batch_size must be at least 1",
                        op.id
                    ));
                }
            }
            if let OperatorKind::KafkaSink(k) = &op.kind {
                if k.bootstrap_servers.trim().is_empty() || k.topic.trim().is_empty() {
                    return bad(format!(
                        "kafka_sink {:?} needs \"bootstrap_servers\" and \"topic\"",
                        op.id
                    ));
                }
                if k.guarantee == KafkaSinkGuarantee::ExactlyOnce {
                    if self.guarantee != DeliveryGuarantee::ExactlyOnce {
                        return bad(format!(
                            "kafka_sink {:?}: guarantee \"exactly_once\" needs the job's guarantee \"exactly_once\" (it is {}); use \"at_least_once\"",
                            op.id,
                            self.guarantee.name()
                        ));
                    }
                    let needed = self.checkpoint.interval_ms + self.checkpoint.timeout_ms;
                    if k.transaction_timeout_ms <= needed {
                        return bad(format!(
                            "kafka_sink {:?}: transaction_timeout_ms {} is too short: a transaction stays open for a checkpoint interval ({} ms) plus up to the checkpoint timeout ({} ms), so it must exceed {} ms",
                            op.id,
                            k.transaction_timeout_ms,
                            self.checkpoint.interval_ms,
                            self.checkpoint.timeout_ms,
                            needed
                        ));
                    }
                }
            }
            if let OperatorKind::PostgresSink(p) = &op.kind {
                p.validate(&op.id, self.guarantee)?;
            }
            if let OperatorKind::Nexmark(n) = &op.kind {
                n.validate(&op.id).or_else(&bad)?;
            }
            if let OperatorKind::Generator(g) = &op.kind {
                if g.keys == 0 {
                    return bad(format!("generator {:?}: keys must be at least 1", op.id));
                }
                if g.batch_size == 0 {
                    return bad(format!(
                        "generator {:?}: batch_size must be at least 1",
                        op.id
                    ));
                }
            }
        }
        for op in &self.operators {
            if !op.kind.is_sink() && !consumed.contains(op.id.as_str()) {
                return bad(format!(
                    "operator {:?} has no consumer; end every path in a sink",
                    op.id
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = r#"{
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

    #[test]
    fn rejects_bad_jobs_with_clear_messages() {
        let cases = [
            (
                JOB.replace("\"gen\", \"partition\"", "\"nope\", \"partition\""),
                "unknown operator \"nope\"",
            ),
            (
                JOB.replace("keyed_aggregate", "frobnicate"),
                "unknown variant `frobnicate`",
            ),
            (
                JOB.replace(
                    "\"parallelism\": 2, \"inputs\": [{\"from\": \"agg\"}]",
                    "\"parallelism\": 3, \"inputs\": [{\"from\": \"agg\"}]",
                ),
                "forward edge",
            ),
            (
                JOB.replace("{\"hash\": [\"key\"]}", "\"rebalance\""),
                "hash-partitioned by its keys",
            ),
            ("{not json".to_string(), "malformed job JSON"),
            (
                JOB.replace("\"interval_ms\": 1000", "\"interval_ms\": 0"),
                "file_sink \"out\" is an exactly-once sink",
            ),
            (
                JOB.replace(
                    "\"type\": \"file_sink\",",
                    "\"type\": \"postgres_sink\", \"url\": \"postgresql://h/d\", \"table\": \"t\", \"mode\": \"upsert\",",
                )
                .replace("\"path\": \"file:///tmp/out\"", "\"batch_rows\": 10"),
                "mode \"upsert\" needs \"key\"",
            ),
            (
                JOB.replace("\"exactly_once\"", "\"at_least_once\"").replace(
                    "\"type\": \"file_sink\",",
                    "\"type\": \"postgres_sink\", \"url\": \"postgresql://h/d\", \"table\": \"t\",",
                )
                .replace("\"path\": \"file:///tmp/out\"", "\"batch_rows\": 10"),
                "needs the job's guarantee \"exactly_once\" (it is at_least_once)",
            ),
            (
                JOB.replace(
                    "\"type\": \"file_sink\",",
                    "\"type\": \"kafka_sink\", \"bootstrap_servers\": \"h:1\", \"topic\": \"t\", \"guarantee\": \"exactly_once\", \"transaction_timeout_ms\": 5000,",
                )
                .replace("\"path\": \"file:///tmp/out\"", "\"format\": \"json\""),
                "transaction_timeout_ms 5000 is too short",
            ),
            (
                JOB.replace("\"interval_ms\": 1000", "\"interval_ms\": 0")
                    .replace(
                        "\"type\": \"file_sink\",",
                        "\"type\": \"kafka_sink\", \"bootstrap_servers\": \"h:1\", \"topic\": \"t\", \"guarantee\": \"exactly_once\",",
                    )
                    .replace("\"path\": \"file:///tmp/out\"", "\"format\": \"json\""),
                "kafka_sink \"out\" is an exactly-once sink",
            ),
        ];
        for (text, want) in cases {
            let err = JobSpec::from_json(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

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
