//! The settings of sources and sinks: the generator, files, Kafka, PostgreSQL and stdout,
//! with their formats and defaults.

use super::DeliveryGuarantee;
use crate::error::{Result, TypesError};
use serde::{Deserialize, Serialize};

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
    /// The checks of [`super::JobSpec::validate`] for a `postgres_sink` named `op`.
    pub(super) fn validate(&self, op: &str, guarantee: DeliveryGuarantee) -> Result<()> {
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
