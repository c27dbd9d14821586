//! The operators of a job: [`OperatorSpec`], the kinds of operator ([`OperatorKind`]) with the
//! settings of the transforming ones (windows, joins, aggregates, projections), and the edges
//! between operators ([`InputSpec`], [`Partitioning`]).

use super::connectors::{
    FileSinkSpec, FileSourceSpec, GeneratorSpec, KafkaSinkGuarantee, KafkaSinkSpec,
    KafkaSourceSpec, PostgresSinkMode, PostgresSinkSpec, StdoutSinkSpec,
};
use serde::{Deserialize, Serialize};

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
