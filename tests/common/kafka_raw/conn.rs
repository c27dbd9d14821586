// ---------------------------------------------------------------------------------------------
// Connection and request framing
// ---------------------------------------------------------------------------------------------

use super::batch::{parse_batches, BatchContent};
use super::classify::classify;
use super::wire::{invalid, kafka_error, put_i16, put_i32, put_i64, put_str, Decoder};
use super::{ControlMarker, PartitionInfo, RawEntry, RawRecord};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

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

pub(super) struct Conn {
    stream: TcpStream,
    addr: String,
    correlation_id: i32,
}

impl Conn {
    /// Connects and checks (ApiVersions v0) that the broker serves the Fetch and Metadata
    /// versions this module speaks.
    pub(super) fn connect(addr: &str) -> io::Result<Conn> {
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

    pub(super) fn partitions(&mut self, topic: &str) -> io::Result<Vec<i32>> {
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
    pub(super) fn read_partition(
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
