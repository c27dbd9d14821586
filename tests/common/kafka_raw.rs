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

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

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

// ---------------------------------------------------------------------------------------------
// Connection and request framing
// ---------------------------------------------------------------------------------------------

const API_FETCH: i16 = 1;
const API_METADATA: i16 = 3;
const API_VERSIONS: i16 = 18;
const FETCH_VERSION: i16 = 4;
const METADATA_VERSION: i16 = 4;

const CLIENT_ID: &str = "weir-kafka-raw";
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// Initial per-partition fetch size; doubled (up to the max) if a batch does not fit.
const FETCH_BYTES_INITIAL: i32 = 1 << 20;
const FETCH_BYTES_MAX: i32 = 64 << 20;
/// Fetch max_wait_ms; paid only by a fetch that finds no data (e.g. an empty partition).
const FETCH_MAX_WAIT_MS: i32 = 100;
/// Refuse absurd response sizes instead of allocating them.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

struct Conn {
    stream: TcpStream,
    addr: String,
    correlation_id: i32,
}

impl Conn {
    /// Connects and checks (ApiVersions v0) that the broker serves the Fetch and Metadata
    /// versions this module speaks.
    fn connect(addr: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("kafka_raw: connect to {addr}: {e}")))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            addr: addr.to_string(),
            correlation_id: 0,
        };
        conn.check_api_versions()?;
        Ok(conn)
    }

    /// Sends one request (header v1: key, version, correlation id, client id) and returns the
    /// response body after the v0 response header (correlation id), which is verified.
    fn request(&mut self, api_key: i16, api_version: i16, body: &[u8]) -> io::Result<Vec<u8>> {
        self.correlation_id += 1;
        let mut msg = Vec::with_capacity(body.len() + 32);
        put_i16(&mut msg, api_key);
        put_i16(&mut msg, api_version);
        put_i32(&mut msg, self.correlation_id);
        put_str(&mut msg, CLIENT_ID);
        msg.extend_from_slice(body);
        let mut framed = Vec::with_capacity(msg.len() + 4);
        put_i32(&mut framed, msg.len() as i32);
        framed.extend_from_slice(&msg);
        self.stream
            .write_all(&framed)
            .map_err(|e| self.io_err(api_key, "send", e))?;

        let mut len_buf = [0u8; 4];
        self.stream
            .read_exact(&mut len_buf)
            .map_err(|e| self.io_err(api_key, "read length", e))?;
        let len = i32::from_be_bytes(len_buf);
        if len < 4 || len as usize > MAX_RESPONSE_BYTES {
            return Err(invalid(format!("api {api_key}: bad response length {len}")));
        }
        let mut resp = vec![0u8; len as usize];
        self.stream
            .read_exact(&mut resp)
            .map_err(|e| self.io_err(api_key, "read body", e))?;
        let corr = i32::from_be_bytes([resp[0], resp[1], resp[2], resp[3]]);
        if corr != self.correlation_id {
            return Err(invalid(format!(
                "api {api_key}: correlation id mismatch (sent {}, got {corr})",
                self.correlation_id
            )));
        }
        resp.drain(..4);
        Ok(resp)
    }

    fn io_err(&self, api_key: i16, what: &str, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!("kafka_raw: {} api {api_key} {what}: {e}", self.addr),
        )
    }

    fn check_api_versions(&mut self) -> io::Result<()> {
        let resp = self.request(API_VERSIONS, 0, &[])?;
        let mut r = Decoder::new(&resp, "ApiVersions response");
        let err = r.i16()?;
        if err != 0 {
            return Err(kafka_error("ApiVersions", err));
        }
        let n = r.array_len()?;
        let mut ranges = HashMap::new();
        for _ in 0..n {
            let (key, min, max) = (r.i16()?, r.i16()?, r.i16()?);
            ranges.insert(key, (min, max));
        }
        for (key, version, name) in [
            (API_FETCH, FETCH_VERSION, "Fetch"),
            (API_METADATA, METADATA_VERSION, "Metadata"),
        ] {
            match ranges.get(&key) {
                Some(&(min, max)) if min <= version && version <= max => {}
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!(
                            "kafka_raw: broker does not serve {name} v{version} (range {other:?})"
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Metadata v4
    // -----------------------------------------------------------------------------------------

    fn partitions(&mut self, topic: &str) -> io::Result<Vec<i32>> {
        let mut body = Vec::new();
        put_i32(&mut body, 1); // topics array: one entry
        put_str(&mut body, topic);
        body.push(0); // allow_auto_topic_creation = false
        let resp = self.request(API_METADATA, METADATA_VERSION, &body)?;

        let mut r = Decoder::new(&resp, "Metadata response");
        r.i32()?; // throttle_time_ms
        for _ in 0..r.array_len()? {
            // brokers: node_id, host, port, rack
            r.i32()?;
            r.string()?;
            r.i32()?;
            r.nullable_string()?;
        }
        r.nullable_string()?; // cluster_id
        r.i32()?; // controller_id
        for _ in 0..r.array_len()? {
            let err = r.i16()?;
            let name = r.nullable_string()?.unwrap_or_default();
            r.i8()?; // is_internal
            let mut parts = Vec::new();
            for _ in 0..r.array_len()? {
                let perr = r.i16()?;
                let index = r.i32()?;
                r.i32()?; // leader_id
                r.skip_i32_array()?; // replica_nodes
                r.skip_i32_array()?; // isr_nodes
                if perr != 0 {
                    return Err(kafka_error(&format!("Metadata {topic}/{index}"), perr));
                }
                parts.push(index);
            }
            if name == topic {
                if err != 0 {
                    return Err(kafka_error(&format!("Metadata for topic {topic}"), err));
                }
                parts.sort_unstable();
                return Ok(parts);
            }
        }
        Err(invalid(format!(
            "Metadata response does not mention topic {topic}"
        )))
    }

    // -----------------------------------------------------------------------------------------
    // Fetch v4
    // -----------------------------------------------------------------------------------------

    /// One Fetch v4 request for a single partition (READ_UNCOMMITTED, so the broker returns
    /// everything up to the high watermark, transactional data and markers included).
    fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
    ) -> io::Result<FetchResult> {
        let mut body = Vec::new();
        put_i32(&mut body, -1); // replica_id: consumer
                                // tansu 0.6.0 answers max_wait_ms = 0 with an empty `responses` array (no partition at
                                // all), so wait a little; the broker only waits that long when it has no data to send.
        put_i32(&mut body, FETCH_MAX_WAIT_MS); // max_wait_ms
        put_i32(&mut body, 1); // min_bytes
        put_i32(&mut body, max_bytes); // response max_bytes
        body.push(0); // isolation_level = READ_UNCOMMITTED
        put_i32(&mut body, 1); // topics
        put_str(&mut body, topic);
        put_i32(&mut body, 1); // partitions
        put_i32(&mut body, partition);
        put_i64(&mut body, offset); // fetch_offset
        put_i32(&mut body, max_bytes); // partition_max_bytes
        let resp = self.request(API_FETCH, FETCH_VERSION, &body)?;

        let mut r = Decoder::new(&resp, "Fetch response");
        r.i32()?; // throttle_time_ms
        let mut found = None;
        for _ in 0..r.array_len()? {
            let name = r.string()?;
            for _ in 0..r.array_len()? {
                let index = r.i32()?;
                let err = r.i16()?;
                let high_watermark = r.i64()?;
                let last_stable_offset = r.i64()?;
                let mut aborted_txns = 0;
                // aborted_transactions: nullable array of (producer_id i64, first_offset i64)
                let n = r.i32()?;
                if n > 0 {
                    for _ in 0..n {
                        r.i64()?;
                        r.i64()?;
                    }
                    aborted_txns = n as usize;
                }
                let records = r.nullable_bytes()?.unwrap_or(&[]).to_vec();
                if name == topic && index == partition {
                    if err != 0 {
                        return Err(kafka_error(
                            &format!("Fetch {topic}/{partition}@{offset}"),
                            err,
                        ));
                    }
                    found = Some(FetchResult {
                        high_watermark,
                        last_stable_offset,
                        aborted_txns,
                        records,
                    });
                }
            }
        }
        found.ok_or_else(|| {
            invalid(format!(
                "Fetch response lacks {topic}/{partition} (broker sent no data for it)"
            ))
        })
    }

    /// Reads one partition from offset 0 to the end and classifies its records.
    fn read_partition(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> io::Result<(Vec<RawEntry>, Vec<ControlMarker>, PartitionInfo)> {
        let mut records: Vec<RawRecord> = Vec::new();
        let mut markers: Vec<ControlMarker> = Vec::new();
        let mut next_offset = 0i64;
        let mut max_bytes = FETCH_BYTES_INITIAL;
        let mut info = PartitionInfo {
            partition,
            high_watermark: -1,
            last_stable_offset: -1,
            next_offset: 0,
            broker_aborted_txns: 0,
        };

        loop {
            let fetched = self.fetch(topic, partition, next_offset, max_bytes)?;
            info.high_watermark = fetched.high_watermark;
            info.last_stable_offset = fetched.last_stable_offset;
            info.broker_aborted_txns += fetched.aborted_txns;

            let batches = parse_batches(&fetched.records, partition)?;
            if batches.is_empty() {
                if fetched.records.is_empty() {
                    // End of the partition. Data missing below the high watermark would make
                    // the result silently incomplete, so that is an error.
                    if next_offset < fetched.high_watermark {
                        return Err(invalid(format!(
                            "{topic}/{partition}: empty fetch at offset {next_offset} below high watermark {}",
                            fetched.high_watermark
                        )));
                    }
                    break;
                }
                // Bytes came back but not even one whole batch: the batch is larger than max_bytes.
                if max_bytes >= FETCH_BYTES_MAX {
                    return Err(invalid(format!(
                        "{topic}/{partition}@{next_offset}: record batch larger than {FETCH_BYTES_MAX} bytes"
                    )));
                }
                max_bytes *= 2;
                continue;
            }

            let before = next_offset;
            for batch in batches {
                // A broker may return a batch that starts before the requested offset.
                if batch.last_offset < next_offset {
                    continue;
                }
                match batch.content {
                    BatchContent::Control { commit } => markers.push(ControlMarker {
                        partition,
                        offset: batch.last_offset,
                        producer_id: batch.producer_id,
                        producer_epoch: batch.producer_epoch,
                        commit,
                    }),
                    BatchContent::Records(recs) => {
                        records.extend(recs.into_iter().filter(|r| r.offset >= next_offset))
                    }
                }
                next_offset = batch.last_offset + 1;
            }
            if next_offset == before {
                // Only batches before the requested offset came back: no progress possible.
                if next_offset < fetched.high_watermark {
                    return Err(invalid(format!(
                        "{topic}/{partition}: fetch at offset {next_offset} returned only older batches \
                         (high watermark {})",
                        fetched.high_watermark
                    )));
                }
                break;
            }
            // Stop at the high watermark instead of paying max_wait for a final empty fetch.
            // (tansu 0.6.0's Fetch high watermark is correct; its ListOffsets(latest) is not.)
            if next_offset >= fetched.high_watermark {
                break;
            }
        }
        info.next_offset = next_offset;
        Ok((classify(records, &markers), markers, info))
    }
}

struct FetchResult {
    high_watermark: i64,
    last_stable_offset: i64,
    aborted_txns: usize,
    records: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// Read-committed classification
// ---------------------------------------------------------------------------------------------

/// Decides each record's transaction status from the markers of the same partition: a
/// transactional record is settled by the first marker of its producer id at a higher offset.
/// A COMMIT only commits records of its own producer epoch: when the first marker after a
/// record is a newer epoch's COMMIT, the record's transaction was fenced by a new producer
/// and never ended in this partition. Kafka writes an ABORT marker for it when the new
/// producer initialises, so a read-committed reader never sees it; such records count as
/// aborted here (and reported on stderr, so a run shows whether the broker ever left one).
fn classify(records: Vec<RawRecord>, markers: &[ControlMarker]) -> Vec<RawEntry> {
    // Markers per producer id, in offset order (markers are pushed in offset order).
    let mut by_pid: HashMap<i64, Vec<&ControlMarker>> = HashMap::new();
    for m in markers {
        by_pid.entry(m.producer_id).or_default().push(m);
    }
    let mut fenced = 0usize;
    let entries = records
        .into_iter()
        .map(|record| {
            let status = if !record.transactional {
                TxnStatus::NonTransactional
            } else {
                let next_marker = by_pid
                    .get(&record.producer_id)
                    .and_then(|ms| ms.iter().find(|m| m.offset > record.offset));
                match next_marker {
                    Some(m) if m.commit && m.producer_epoch == record.producer_epoch => {
                        TxnStatus::Committed
                    }
                    Some(m) if m.commit => {
                        fenced += 1;
                        TxnStatus::Aborted
                    }
                    Some(_) => TxnStatus::Aborted,
                    None => TxnStatus::Open,
                }
            };
            RawEntry { record, status }
        })
        .collect();
    if fenced > 0 {
        eprintln!(
            "kafka_raw: {fenced} records of a fenced producer epoch had no marker of their own before a newer epoch's COMMIT (a broker gap; counted as aborted)"
        );
    }
    entries
}

// ---------------------------------------------------------------------------------------------
// Record batch (magic v2) parsing
// ---------------------------------------------------------------------------------------------

struct Batch {
    last_offset: i64,
    producer_id: i64,
    producer_epoch: i16,
    content: BatchContent,
}

enum BatchContent {
    Control { commit: bool },
    Records(Vec<RawRecord>),
}

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;
/// baseOffset(8) + batchLength(4): the part of a batch not counted in batchLength.
const BATCH_LOG_OVERHEAD: usize = 12;
/// Bytes from baseOffset up to and including the records count.
const BATCH_HEADER_LEN: usize = 61;

/// Parses the complete batches in a Fetch `records` field. A trailing partial batch (cut by
/// max_bytes, which Kafka allows) is ignored; the caller fetches again from the next offset.
fn parse_batches(mut buf: &[u8], partition: i32) -> io::Result<Vec<Batch>> {
    let mut out = Vec::new();
    while buf.len() >= BATCH_LOG_OVERHEAD {
        let batch_len = i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if batch_len < 0 {
            return Err(invalid(format!(
                "partition {partition}: negative batch length {batch_len}"
            )));
        }
        let total = BATCH_LOG_OVERHEAD + batch_len as usize;
        if buf.len() < total {
            break; // partial batch at the end of the response
        }
        out.push(parse_batch(&buf[..total], partition)?);
        buf = &buf[total..];
    }
    Ok(out)
}

fn parse_batch(batch: &[u8], partition: i32) -> io::Result<Batch> {
    let mut r = Decoder::new(batch, "record batch");
    let base_offset = r.i64()?;
    r.i32()?; // batch_length (already checked by the caller)
    r.i32()?; // partition_leader_epoch
    let magic = r.i8()?;
    if magic != 2 {
        return Err(invalid(format!(
            "partition {partition} offset {base_offset}: message format magic {magic} not supported (only v2)"
        )));
    }
    let crc = r.u32()?;
    let computed = crc32c(&batch[21..]); // CRC covers attributes .. end of batch
    if crc != computed {
        return Err(invalid(format!(
            "partition {partition} offset {base_offset}: batch CRC mismatch (stored {crc:#010x}, computed {computed:#010x})"
        )));
    }
    let attributes = r.i16()?;
    let last_offset_delta = r.i32()?;
    let base_timestamp = r.i64()?;
    let max_timestamp = r.i64()?;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    r.i32()?; // base_sequence
    let count = r.i32()?;
    debug_assert_eq!(r.pos, BATCH_HEADER_LEN);

    let compression = attributes & ATTR_COMPRESSION_MASK;
    if compression != 0 {
        let codec = match compression {
            1 => "gzip",
            2 => "snappy",
            3 => "lz4",
            4 => "zstd",
            _ => "unknown",
        };
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "kafka_raw: partition {partition} offset {base_offset}: compressed record batch \
                 ({codec}) not supported; produce with compression.type=none"
            ),
        ));
    }
    if count < 0 {
        return Err(invalid(format!(
            "partition {partition} offset {base_offset}: negative record count"
        )));
    }
    let last_offset = base_offset + last_offset_delta as i64;
    let transactional = attributes & ATTR_TRANSACTIONAL != 0;

    if attributes & ATTR_CONTROL != 0 {
        // A control batch holds one control record; its key is (version i16, type i16),
        // type 0 = ABORT, 1 = COMMIT.
        let rec = parse_record(&mut r, partition, base_offset, base_timestamp)?;
        let key = rec.key.unwrap_or_default();
        if key.len() < 4 {
            return Err(invalid(format!(
                "partition {partition} offset {base_offset}: short control record key"
            )));
        }
        let kind = i16::from_be_bytes([key[2], key[3]]);
        let commit = match kind {
            0 => false,
            1 => true,
            other => {
                return Err(invalid(format!(
                "partition {partition} offset {base_offset}: unknown control record type {other}"
            )))
            }
        };
        return Ok(Batch {
            last_offset: rec.offset,
            producer_id,
            producer_epoch,
            content: BatchContent::Control { commit },
        });
    }

    // Capacity bounded by the bytes present, so a bogus count cannot trigger a huge allocation.
    let mut records = Vec::with_capacity((count as usize).min(r.remaining()));
    for _ in 0..count {
        let mut rec = parse_record(&mut r, partition, base_offset, base_timestamp)?;
        if attributes & ATTR_LOG_APPEND_TIME != 0 {
            rec.timestamp = max_timestamp;
        }
        rec.producer_id = producer_id;
        rec.producer_epoch = producer_epoch;
        rec.transactional = transactional;
        records.push(rec);
    }
    if r.remaining() != 0 {
        return Err(invalid(format!(
            "partition {partition} offset {base_offset}: {} trailing bytes after {count} records",
            r.remaining()
        )));
    }
    Ok(Batch {
        last_offset,
        producer_id,
        producer_epoch,
        content: BatchContent::Records(records),
    })
}

/// Parses one record (varint-framed) of a v2 batch.
fn parse_record(
    r: &mut Decoder,
    partition: i32,
    base_offset: i64,
    base_timestamp: i64,
) -> io::Result<RawRecord> {
    let len = r.varint()?;
    if len < 0 {
        return Err(invalid(format!(
            "partition {partition} offset {base_offset}: negative record length"
        )));
    }
    let body = r.bytes(len as usize)?;
    let mut rr = Decoder::new(body, "record");
    rr.i8()?; // record attributes (unused)
    let timestamp_delta = rr.varlong()?;
    let offset_delta = rr.varint()?;
    let key = rr.varint_bytes()?.map(<[u8]>::to_vec);
    let value = rr.varint_bytes()?.map(<[u8]>::to_vec);
    let header_count = rr.varint()?;
    let mut headers = Vec::with_capacity((header_count.max(0) as usize).min(rr.remaining()));
    for _ in 0..header_count {
        let hkey = rr.varint_bytes()?.unwrap_or_default();
        let hkey = String::from_utf8(hkey.to_vec()).map_err(|_| {
            invalid(format!(
                "partition {partition} offset {base_offset}: header key not UTF-8"
            ))
        })?;
        let hval = rr.varint_bytes()?.map(<[u8]>::to_vec);
        headers.push((hkey, hval));
    }
    Ok(RawRecord {
        partition,
        offset: base_offset + offset_delta as i64,
        key,
        value,
        headers,
        timestamp: base_timestamp + timestamp_delta,
        producer_id: -1,
        producer_epoch: -1,
        transactional: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding / decoding primitives
// ---------------------------------------------------------------------------------------------

fn put_i16(b: &mut Vec<u8>, v: i16) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_i32(b: &mut Vec<u8>, v: i32) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_str(b: &mut Vec<u8>, s: &str) {
    put_i16(b, s.len() as i16);
    b.extend_from_slice(s.as_bytes());
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("kafka_raw: {msg}"))
}

fn kafka_error(context: &str, code: i16) -> io::Error {
    let name = match code {
        1 => "OFFSET_OUT_OF_RANGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        35 => "UNSUPPORTED_VERSION",
        _ => "see Kafka protocol error codes",
    };
    io::Error::other(format!(
        "kafka_raw: {context}: broker error {code} ({name})"
    ))
}

/// Bounds-checked big-endian / varint reader over a byte slice.
struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Decoder<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Decoder { buf, pos: 0, what }
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn bytes(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(invalid(format!(
                "{} truncated: need {n} bytes at {}, have {}",
                self.what,
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }
    fn i8(&mut self) -> io::Result<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> io::Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> io::Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> io::Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    /// Length of a (non-nullable) array; a null array (-1) is read as empty.
    fn array_len(&mut self) -> io::Result<usize> {
        let n = self.i32()?;
        if n > 0 && n as usize > self.remaining() {
            return Err(invalid(format!(
                "{}: array length {n} exceeds remaining bytes",
                self.what
            )));
        }
        Ok(n.max(0) as usize)
    }
    fn skip_i32_array(&mut self) -> io::Result<()> {
        for _ in 0..self.array_len()? {
            self.i32()?;
        }
        Ok(())
    }
    fn nullable_string(&mut self) -> io::Result<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let s = self.bytes(n as usize)?;
        String::from_utf8(s.to_vec())
            .map(Some)
            .map_err(|_| invalid(format!("{}: string is not UTF-8", self.what)))
    }
    fn string(&mut self) -> io::Result<String> {
        self.nullable_string()?
            .ok_or_else(|| invalid(format!("{}: unexpected null string", self.what)))
    }
    fn nullable_bytes(&mut self) -> io::Result<Option<&'a [u8]>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        self.bytes(n as usize).map(Some)
    }
    /// Zig-zag varlong (at most 10 bytes).
    fn varlong(&mut self) -> io::Result<i64> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = self.array::<1>()?[0];
            raw |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(invalid(format!(
            "{}: varint longer than 10 bytes",
            self.what
        )))
    }
    /// Zig-zag varint that must fit in i32.
    fn varint(&mut self) -> io::Result<i32> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| invalid(format!("{}: varint {v} out of i32 range", self.what)))
    }
    /// Varint-length-prefixed bytes; length -1 means null.
    fn varint_bytes(&mut self) -> io::Result<Option<&'a [u8]>> {
        let n = self.varint()?;
        if n < 0 {
            return Ok(None);
        }
        self.bytes(n as usize).map(Some)
    }
}

/// CRC-32C (Castagnoli), as used by record batch v2. Bitwise; fast enough for tests.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
