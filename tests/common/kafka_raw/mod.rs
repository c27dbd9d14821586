// Minimal, std-only Kafka wire-protocol reader for integration tests.
//
// Purpose: read back *everything* a single broker stored for a topic and apply
// read-committed semantics on the client side, so a test does not depend on the
// broker's own read-committed filtering (tansu 0.6.0, for example, sends no
// aborted-transaction list in Fetch responses, so its read-committed consumers
// also see records of aborted transactions).
//
// Protocol subset used (all non-flexible versions, request header v1, response header v0):
//   * ApiVersions v0 (key 18)  - checked once per connection that the versions below are served
//   * Metadata    v4 (key 3)   - partition list; `allow_auto_topic_creation = false`
//   * Fetch       v4 (key 1)   - one partition per request, isolation READ_UNCOMMITTED
// Record batches: magic v2 only, uncompressed only (compressed batches are an error).
//
// Read-committed rules applied here, per partition, in offset order:
//   * non-transactional records always count;
//   * records of a transactional batch count only once a COMMIT control record with the
//     same producer id follows them; an ABORT marker drops them; with no marker yet
//     (open transaction) they are dropped;
//   * control batches are never returned as records (see [`RawLog::markers`]).
//
// Not a general client: single broker (no leader routing), no SASL/TLS, no retries.
//
// Parts: `conn` (connection, request framing, Metadata and Fetch, reading a partition to its
// end), `batch` (record batch parsing), `classify` (the read-committed rules), `wire`
// (encoding and decoding primitives, CRC-32C).

mod batch;
mod classify;
mod conn;
mod wire;

use conn::Conn;
use std::io;

/// One data record as stored by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Create time (or log-append time if the batch says so), ms since the epoch.
    pub timestamp: i64,
    /// -1 for records written by a non-idempotent producer.
    pub producer_id: i64,
    /// The producer epoch of the record's batch.
    pub producer_epoch: i16,
    /// True if the record came from a transactional batch.
    pub transactional: bool,
}

/// Transaction outcome of a record, as decided from the control markers in its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// Not in a transactional batch: always visible.
    NonTransactional,
    /// A COMMIT marker for its producer id follows it: visible to read-committed readers.
    Committed,
    /// An ABORT marker for its producer id follows it: must be invisible to read-committed readers.
    Aborted,
    /// No marker (yet) for its producer id: transaction still open; invisible to read-committed.
    Open,
}

/// A record together with its transaction outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub record: RawRecord,
    pub status: TxnStatus,
}

impl RawEntry {
    /// True if a read-committed reader must not see this record because its transaction aborted.
    pub fn is_aborted(&self) -> bool {
        self.status == TxnStatus::Aborted
    }
    /// True if a read-committed reader sees this record.
    pub fn is_visible_committed(&self) -> bool {
        matches!(
            self.status,
            TxnStatus::NonTransactional | TxnStatus::Committed
        )
    }
}

/// A transaction control marker (the single record of a control batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMarker {
    pub partition: i32,
    pub offset: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// true = COMMIT, false = ABORT.
    pub commit: bool,
}

/// Per-partition facts reported by the broker in its Fetch responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// High watermark from the last Fetch response for this partition.
    pub high_watermark: i64,
    /// Last stable offset from the last Fetch response (-1 if the broker does not report it).
    pub last_stable_offset: i64,
    /// Offset after the last record/marker actually read (where the next fetch would start).
    pub next_offset: i64,
    /// Total aborted-transaction entries the broker listed in its Fetch responses
    /// (a correct broker lists one per aborted transaction in range; tansu 0.6.0 lists none).
    pub broker_aborted_txns: usize,
}

/// Everything read from a topic: all data records (aborted ones included), the control markers,
/// and per-partition broker facts.
#[derive(Debug, Clone, Default)]
pub struct RawLog {
    /// Data records in (partition, offset) order, each with its transaction status.
    pub entries: Vec<RawEntry>,
    /// Control markers in (partition, offset) order.
    pub markers: Vec<ControlMarker>,
    pub partitions: Vec<PartitionInfo>,
}

impl RawLog {
    /// Number of records the broker served that belong to aborted transactions.
    pub fn aborted_count(&self) -> usize {
        self.entries.iter().filter(|e| e.is_aborted()).count()
    }
    /// Number of records still in open (undecided) transactions.
    pub fn open_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.status == TxnStatus::Open)
            .count()
    }
    /// The records a correct read-committed consumer would see, in (partition, offset) order.
    pub fn committed_records(&self) -> Vec<RawRecord> {
        self.entries
            .iter()
            .filter(|e| e.is_visible_committed())
            .map(|e| e.record.clone())
            .collect()
    }
}

/// Partition ids of `topic` (sorted), via a Metadata v4 request that does not auto-create topics.
pub fn partitions(addr: &str, topic: &str) -> io::Result<Vec<i32>> {
    Conn::connect(addr)?.partitions(topic)
}

/// Reads every given partition of `topic` from offset 0 to the end and returns the records a
/// read-committed consumer must see (committed transactional + non-transactional), decided
/// from the control markers by this module, not by the broker.
///
/// This is the settled-outcome view: it reads up to the high watermark, not the last stable
/// offset, so a non-transactional record written after a still-open transaction is included
/// (a live read-committed consumer would not see it until that transaction ends).
pub fn read_committed(addr: &str, topic: &str, partitions: &[i32]) -> io::Result<Vec<RawRecord>> {
    Ok(read_all_raw(addr, topic, partitions)?.committed_records())
}

/// Reads every given partition of `topic` from offset 0 to the end and returns all data records
/// the broker served (aborted and open-transaction ones included, each tagged with its status),
/// plus the control markers and per-partition broker facts.
pub fn read_all_raw(addr: &str, topic: &str, partitions: &[i32]) -> io::Result<RawLog> {
    let mut conn = Conn::connect(addr)?;
    let mut log = RawLog::default();
    for &p in partitions {
        let (entries, markers, info) = conn.read_partition(topic, p)?;
        log.entries.extend(entries);
        log.markers.extend(markers);
        log.partitions.push(info);
    }
    Ok(log)
}
