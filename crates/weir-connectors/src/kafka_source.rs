//! The Kafka source (`docs/kafka.md`).
//!
//! Partition `p` of the topic belongs to subtask `(start(topic) + p) % parallelism`, where
//! `start` is a hash of the topic name (Flink's assignment); partitions are `assign`ed, never
//! subscribed, so only the checkpoint decides where reading resumes. The snapshot holds the
//! next offset of every partition the subtask owns; a restore takes the offsets of the
//! partitions it now owns from every old subtask's snapshot, so the source rescales.
//!
//! The consumer reads with `isolation.level=read_committed`. New partitions are looked for
//! every `discovery_interval_ms` and start from the earliest offset. In bounded mode a
//! partition ends at its end when it was assigned (partition-EOF events), and the source is
//! exhausted when every partition it owns has ended.

use crate::kafka_client::{kafka_err, probe_metadata, ClientErrors};
use arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanArray, Int32Builder, Int64Builder, RecordBatch,
};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::operator::{OperatorContext, Restored, Source, SourcePoll};
use weir_types::{BadRecords, KafkaFormat, KafkaSourceSpec, KafkaStart};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SourceState {
    /// (partition, next offset to read)
    offsets: Vec<(i32, i64)>,
}

/// How long a poll waits to fill a batch before emitting what it has.
const LINGER: Duration = Duration::from_millis(20);

/// The subtask that owns partition `p` of `topic`.
pub fn owner(topic: &str, partition: i32, parallelism: u32) -> u32 {
    let start = (weir_types::keygroup::hash_bytes(topic.as_bytes()) & 0x7fff_ffff) as u32;
    (start.wrapping_add(partition as u32)) % parallelism.max(1)
}

/// Decodes newline-separated `json` or `csv` payloads into a batch of the payload schema.
fn decode(
    format: KafkaFormat,
    schema: &SchemaRef,
    payloads: &[u8],
    rows: usize,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let batch = match format {
        KafkaFormat::Json => {
            let mut d = arrow::json::ReaderBuilder::new(schema.clone())
                .with_batch_size(rows.max(1))
                .build_decoder()?;
            d.decode(payloads)?;
            d.flush()?
        }
        _ => {
            let mut d = arrow::csv::ReaderBuilder::new(schema.clone())
                .with_batch_size(rows.max(1))
                .build_decoder();
            let mut buf = payloads;
            while !buf.is_empty() {
                let n = d.decode(buf)?;
                if n == 0 {
                    break;
                }
                buf = &buf[n..];
            }
            d.flush()?
        }
    };
    Ok(batch.unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

pub struct KafkaSource {
    consumer: Arc<StreamConsumer<ClientErrors>>,
    errors: ClientErrors,
    spec: KafkaSourceSpec,
    op_id: String,
    subtask: u32,
    parallelism: u32,
    schema: SchemaRef,
    payload_schema: SchemaRef,
    /// Next offset per owned partition; `None` until the first record (or checkpoint) says.
    next: BTreeMap<i32, Option<i64>>,
    ended: BTreeSet<i32>,
    next_discovery: Instant,
    /// Payloads of the batch being built (newline-separated for json and csv).
    payloads: Vec<u8>,
    raw: BinaryBuilder,
    keys: BinaryBuilder,
    partitions: Int32Builder,
    offsets: Int64Builder,
    timestamps: Int64Builder,
    rows: usize,
    headers: arrow::array::StringBuilder,
    /// Offsets each pending checkpoint recorded, committed to `group_id` once it completes.
    snapshots: BTreeMap<u64, Vec<(i32, i64)>>,
    /// The offsets of the last snapshot (for a chained sink's `commit_source_offsets`).
    last_offsets: Vec<(i32, i64)>,
    /// Partition ids in the order they were assigned: a partition's index for watermarks.
    index: Vec<i32>,
    /// The partition index of each row of the batch being built, and of the last batch.
    row_parts: Vec<u32>,
    last_parts: Vec<u32>,
    /// Partitions started by timestamp that have not delivered a record at or after it yet:
    /// partition -> (start time, records skipped). See [`KafkaSource::skip_before_start`].
    skipping: BTreeMap<i32, (i64, u64)>,
    /// For each message of the batch being built (json and csv): where its payload ends in
    /// `payloads`, and its (partition, offset).
    msg_ends: Vec<usize>,
    msg_pos: Vec<(i32, i64)>,
    /// Messages skipped as undecodable so far (`bad_records: skip`).
    bad: u64,
}

/// librdkafka's prefetch bound per partition, in KiB.
const KAFKA_PREFETCH_KB: u32 = 8 * 1024;

impl KafkaSource {
    pub async fn open(
        ctx: &OperatorContext,
        spec: &KafkaSourceSpec,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &spec.bootstrap_servers)
            .set(
                "group.id",
                spec.group_id
                    .clone()
                    .unwrap_or_else(|| format!("weir-{}-{}", ctx.job_id.0, ctx.op_id)),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set(
                "enable.partition.eof",
                if spec.bounded { "true" } else { "false" },
            )
            .set(
                "socket.connection.setup.timeout.ms",
                spec.connect_timeout_ms.max(1000).to_string(),
            )
            // librdkafka stops fetching a partition for this long once its prefetch queue
            // holds `queued.min.messages` (100 000); its default, 1 s, left a source that
            // drains 100 000 messages in a fraction of a second idle for the rest: 2 M
            // events from 4 partitions took 13.9 s (a plain librdkafka consumer 14.1 s), and
            // take 3.1 s with 20 ms (`docs/benchmarks.md`).
            .set("fetch.queue.backoff.ms", "20")
            // Prefetched messages are memory the task does not see: librdkafka queues up to
            // 64 MiB per partition by default, 1 GiB for a subtask of 16 partitions. 8 MiB
            // per partition still keeps several fetches ahead of the task (issue 22;
            // `docs/benchmarks.md`); `properties.queued.max.messages.kbytes` overrides it.
            .set("queued.max.messages.kbytes", KAFKA_PREFETCH_KB.to_string());
        for (k, v) in &spec.properties {
            config.set(k, v);
        }
        // Reach the brokers first: a failure says why (address, authentication).
        let timeout = Duration::from_millis(spec.connect_timeout_ms.max(1000));
        let (probe_config, topic) = (config.clone(), spec.topic.clone());
        tokio::task::spawn_blocking(move || probe_metadata(&probe_config, &topic, timeout))
            .await
            .map_err(|e| RuntimeError::Internal(format!("metadata task: {e}")))?
            .map_err(|e| {
                RuntimeError::Connector(format!(
                    "kafka_source {:?}: cannot read metadata of topic {:?} from {} within {} ms: {e}",
                    ctx.op_id,
                    spec.topic,
                    spec.bootstrap_servers,
                    timeout.as_millis()
                ))
            })?;
        let errors = ClientErrors::default();
        let consumer: StreamConsumer<ClientErrors> = config
            .create_with_context(errors.clone())
            .map_err(|e| kafka_err(&format!("source {:?}: creating the consumer", ctx.op_id), e))?;
        let consumer = Arc::new(consumer);
        let mut source = Self {
            consumer,
            errors,
            spec: spec.clone(),
            op_id: ctx.op_id.clone(),
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
            schema: ctx.output_schema.clone(),
            payload_schema: weir_planner::kafka::source_schema(&KafkaSourceSpec {
                metadata_columns: false,
                ..spec.clone()
            })?,
            next: BTreeMap::new(),
            ended: BTreeSet::new(),
            next_discovery: Instant::now(),
            payloads: Vec::new(),
            raw: BinaryBuilder::new(),
            keys: BinaryBuilder::new(),
            partitions: Int32Builder::new(),
            offsets: Int64Builder::new(),
            timestamps: Int64Builder::new(),
            rows: 0,
            headers: arrow::array::StringBuilder::new(),
            snapshots: BTreeMap::new(),
            last_offsets: Vec::new(),
            index: Vec::new(),
            row_parts: Vec::new(),
            last_parts: Vec::new(),
            skipping: BTreeMap::new(),
            msg_ends: Vec::new(),
            msg_pos: Vec::new(),
            bad: 0,
        };
        let mut restored_offsets: BTreeMap<i32, i64> = BTreeMap::new();
        if let Some(r) = restored {
            for (_, bytes) in &r.snapshots {
                let s: SourceState = weir_state::decode(bytes)?;
                for (p, o) in s.offsets {
                    let e = restored_offsets.entry(p).or_insert(o);
                    *e = (*e).max(o);
                }
            }
        }
        source.discover(&restored_offsets).await?;
        Ok(source)
    }

    /// The topic's partitions, from the brokers (blocking call, run off the async threads).
    async fn topic_partitions(&self) -> Result<Vec<i32>> {
        let consumer = self.consumer.clone();
        let topic = self.spec.topic.clone();
        let servers = self.spec.bootstrap_servers.clone();
        let timeout = Duration::from_millis(self.spec.connect_timeout_ms.max(1000));
        let op = self.op_id.clone();
        let errors = self.errors.clone();
        tokio::task::spawn_blocking(move || {
            let md = consumer
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| {
                    RuntimeError::Connector(format!(
                        "kafka_source {op:?}: cannot read metadata of topic {topic:?} from {servers} within {} ms: {e}{}",
                        timeout.as_millis(),
                        errors.explain()
                    ))
                })?;
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .ok_or_else(|| RuntimeError::Connector(format!("kafka_source {op:?}: topic {topic:?} not in the metadata from {servers}")))?;
            if let Some(err) = t.error() {
                return Err(RuntimeError::Connector(format!(
                    "kafka_source {op:?}: topic {topic:?} on {servers}: {}",
                    rdkafka::error::RDKafkaErrorCode::from(err)
                )));
            }
            Ok(t.partitions().iter().map(|p| p.id()).collect())
        })
        .await
        .map_err(|e| RuntimeError::Internal(format!("metadata task: {e}")))?
    }

    /// Assigns the partitions this subtask owns and has not assigned yet: at their restored
    /// offset, else where `start` says (new partitions found while running: earliest).
    async fn discover(&mut self, restored: &BTreeMap<i32, i64>) -> Result<()> {
        let first = self.next.is_empty();
        let mine: Vec<i32> = self
            .topic_partitions()
            .await?
            .into_iter()
            .filter(|p| owner(&self.spec.topic, *p, self.parallelism) == self.subtask)
            .filter(|p| !self.next.contains_key(p))
            .collect();
        self.next_discovery =
            Instant::now() + Duration::from_millis(self.spec.discovery_interval_ms.max(100));
        if mine.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        let mut group_offsets = BTreeMap::new();
        if first && self.spec.start == KafkaStart::Group {
            let mut q = TopicPartitionList::new();
            for p in &mine {
                q.add_partition(&self.spec.topic, *p);
            }
            let consumer = self.consumer.clone();
            let timeout = Duration::from_millis(self.spec.connect_timeout_ms.max(1000));
            let committed =
                tokio::task::spawn_blocking(move || consumer.committed_offsets(q, timeout))
                    .await
                    .map_err(|e| RuntimeError::Internal(format!("offsets task: {e}")))?
                    .map_err(|e| kafka_err("reading the group's committed offsets", e))?;
            for e in committed.elements() {
                if let Offset::Offset(o) = e.offset() {
                    group_offsets.insert(e.partition(), o);
                }
            }
        }
        for p in &mine {
            let offset = match restored.get(p) {
                Some(o) => Offset::Offset(*o),
                None if !first => Offset::Beginning,
                None => match self.spec.start {
                    KafkaStart::Earliest => Offset::Beginning,
                    KafkaStart::Latest => Offset::End,
                    KafkaStart::Group => group_offsets
                        .get(p)
                        .map(|o| Offset::Offset(*o))
                        .unwrap_or(Offset::Beginning),
                    KafkaStart::Timestamp(_) => Offset::Beginning,
                },
            };
            tpl.add_partition_offset(&self.spec.topic, *p, offset)
                .map_err(|e| kafka_err("building the assignment", e))?;
            self.next.insert(*p, restored.get(p).copied());
            if !self.index.contains(p) {
                self.index.push(*p);
            }
        }
        if let (true, KafkaStart::Timestamp(ts)) = (first, self.spec.start) {
            let mut q = TopicPartitionList::new();
            for p in mine.iter().filter(|p| !restored.contains_key(p)) {
                q.add_partition_offset(&self.spec.topic, *p, Offset::Offset(ts))
                    .map_err(|e| kafka_err("building the timestamp query", e))?;
            }
            let consumer = self.consumer.clone();
            let timeout = Duration::from_millis(self.spec.connect_timeout_ms.max(1000));
            let found = tokio::task::spawn_blocking(move || consumer.offsets_for_times(q, timeout))
                .await
                .map_err(|e| RuntimeError::Internal(format!("offsets task: {e}")))?
                .map_err(|e| kafka_err("looking up offsets for the start timestamp", e))?;
            for e in found.elements() {
                tpl.set_partition_offset(&self.spec.topic, e.partition(), e.offset())
                    .map_err(|e| kafka_err("building the assignment", e))?;
                // No record at or after the start time: the partition starts at its end and
                // takes whatever comes, as on Kafka.
                if matches!(e.offset(), Offset::Offset(o) if o >= 0)
                    || e.offset() == Offset::Beginning
                {
                    self.skipping.insert(e.partition(), (ts, 0));
                }
            }
        }
        info!(operator = %self.op_id, subtask = self.subtask, partitions = ?mine, "kafka source assigned");
        self.consumer
            .incremental_assign(&tpl)
            .map_err(|e| kafka_err("assigning partitions", e))?;
        Ok(())
    }

    fn take_batch(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(&mut self.rows);
        self.last_parts = std::mem::take(&mut self.row_parts);
        let mut keep: Option<BooleanArray> = None;
        let mut cols: Vec<ArrayRef> = match self.spec.format {
            KafkaFormat::Raw => vec![Arc::new(self.raw.finish())],
            format => {
                let schema = self.payload_schema.clone();
                match decode(format, &schema, &self.payloads, rows) {
                    Ok(b) if b.num_rows() == rows => b.columns().to_vec(),
                    _ => {
                        let (good, mask) = self.sort_out_bad_messages(format)?;
                        keep = Some(mask);
                        decode(format, &schema, &good, rows)
                            .map_err(|e| self.bad_payload(e))?
                            .columns()
                            .to_vec()
                    }
                }
            }
        };
        self.payloads.clear();
        self.msg_ends.clear();
        self.msg_pos.clear();
        let rows = keep.as_ref().map_or(rows, |k| k.true_count());
        if cols.first().is_some_and(|c| c.len() != rows) {
            return Err(RuntimeError::Input(format!(
                "kafka_source {:?}: {rows} messages decoded into {} rows; every message must hold exactly one record",
                self.op_id,
                cols[0].len()
            )));
        }
        if self.spec.metadata_columns {
            cols.push(Arc::new(self.keys.finish()));
            cols.push(Arc::new(self.partitions.finish()));
            cols.push(Arc::new(self.offsets.finish()));
            cols.push(Arc::new(self.timestamps.finish()));
            cols.push(Arc::new(self.headers.finish()));
        }
        if let (Some(keep), true) = (&keep, self.spec.metadata_columns) {
            let n = cols.len();
            for c in &mut cols[n - 5..] {
                *c = arrow::compute::filter(c, keep)?;
            }
        }
        if let Some(keep) = &keep {
            let parts = std::mem::take(&mut self.last_parts);
            self.last_parts = parts
                .into_iter()
                .zip(keep.iter())
                .filter_map(|(p, k)| k.unwrap_or(false).then_some(p))
                .collect();
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }

    /// Decodes the batch's messages one by one (the batch as a whole did not decode): fails on
    /// the first that is not exactly one valid record, naming its partition and offset, or,
    /// with `bad_records: skip`, logs and counts each such message. Returns the good messages'
    /// payloads and which messages they are.
    fn sort_out_bad_messages(&mut self, format: KafkaFormat) -> Result<(Vec<u8>, BooleanArray)> {
        let mut good = Vec::with_capacity(self.payloads.len());
        let mut keep = Vec::with_capacity(self.msg_ends.len());
        let mut start = 0;
        for (i, &end) in self.msg_ends.iter().enumerate() {
            let message = &self.payloads[start..end];
            start = end;
            let why = match decode(format, &self.payload_schema, message, 1) {
                Ok(b) if b.num_rows() == 1 => None,
                Ok(b) => Some(format!("{} records in one message", b.num_rows())),
                Err(e) => Some(e.to_string()),
            };
            let Some(why) = why else {
                good.extend_from_slice(message);
                keep.push(true);
                continue;
            };
            let (partition, offset) = self.msg_pos.get(i).copied().unwrap_or((-1, -1));
            match self.spec.bad_records {
                BadRecords::Fail => {
                    return Err(RuntimeError::Input(format!(
                        "kafka_source {:?}: the message at offset {offset} of partition {partition} of topic {:?} is not one valid {format:?} record of the declared schema: {why}. To skip such messages (logged and counted), set \"bad_records\": \"skip\" (SQL: '{}.ignore-parse-errors' = 'true')",
                        self.op_id,
                        self.spec.topic,
                        format!("{format:?}").to_ascii_lowercase()
                    )))
                }
                BadRecords::Skip => {
                    self.bad += 1;
                    warn!(operator = %self.op_id, topic = %self.spec.topic, partition, offset, skipped = self.bad, error = %why, "kafka source: skipped a message that is not a valid record");
                    keep.push(false);
                }
            }
        }
        Ok((good, BooleanArray::from(keep)))
    }

    /// A timestamp start takes a partition from the first record whose timestamp is at or
    /// after the start time, and every record after it (Kafka's `offsetsForTimes` semantics:
    /// later records with earlier timestamps are read). The broker's answer to the lookup
    /// is where the partition starts; records before the first one at or after the start
    /// time are skipped here as well, so a broker that answers with an earlier offset
    /// (tansu 0.6 answers 0) gives the same result. True if the record is skipped.
    /// (A function of the two fields it needs: the record it looks at borrows the consumer.)
    fn skip_before_start(
        skipping: &mut BTreeMap<i32, (i64, u64)>,
        op_id: &str,
        p: i32,
        offset: i64,
        timestamp: Option<i64>,
    ) -> bool {
        let Some((start, skipped)) = skipping.get_mut(&p) else {
            return false;
        };
        if timestamp.is_some_and(|t| t >= *start) {
            info!(operator = %op_id, partition = p, offset, skipped = *skipped, "kafka source: partition reached its start timestamp");
            skipping.remove(&p);
            return false;
        }
        *skipped += 1;
        true
    }

    fn bad_payload(&self, e: arrow::error::ArrowError) -> RuntimeError {
        RuntimeError::Input(format!(
            "kafka_source {:?}: a message of topic {:?} is not valid {:?} for the declared schema: {e}",
            self.op_id, self.spec.topic, self.spec.format
        ))
    }
}

#[async_trait]
impl Source for KafkaSource {
    async fn poll_next(&mut self) -> Result<SourcePoll> {
        if Instant::now() >= self.next_discovery {
            self.discover(&BTreeMap::new()).await?;
        }
        let deadline = tokio::time::Instant::now() + LINGER;
        let limit = self.spec.batch_size as usize;
        while self.rows < limit {
            let msg = match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Err(KafkaError::PartitionEOF(p))) => {
                    if self.spec.bounded {
                        debug!(partition = p, "partition ended");
                        self.ended.insert(p);
                    }
                    if self.ended.len() == self.next.len() {
                        break;
                    }
                    continue;
                }
                Ok(Err(e)) => {
                    return Err(kafka_err(
                        &format!("reading topic {:?}", self.spec.topic),
                        e,
                    ))
                }
                Ok(Ok(m)) => m,
            };
            let p = msg.partition();
            if self.spec.bounded && self.ended.contains(&p) {
                continue;
            }
            let ts = msg.timestamp().to_millis();
            if Self::skip_before_start(&mut self.skipping, &self.op_id, p, msg.offset(), ts) {
                continue;
            }
            self.next.insert(p, Some(msg.offset() + 1));
            let idx = match self.index.iter().position(|q| *q == p) {
                Some(i) => i,
                None => {
                    self.index.push(p);
                    self.index.len() - 1
                }
            };
            self.row_parts.push(idx as u32);
            let payload = msg.payload().unwrap_or_default();
            match self.spec.format {
                KafkaFormat::Raw => self.raw.append_option(msg.payload()),
                _ => {
                    self.payloads.extend_from_slice(payload);
                    if payload.last() != Some(&b'\n') {
                        self.payloads.push(b'\n');
                    }
                    self.msg_ends.push(self.payloads.len());
                    self.msg_pos.push((p, msg.offset()));
                }
            }
            if self.spec.metadata_columns {
                self.keys.append_option(msg.key());
                self.partitions.append_value(p);
                self.offsets.append_value(msg.offset());
                self.timestamps.append_option(msg.timestamp().to_millis());
                match msg.headers() {
                    Some(h) => self.headers.append_value(headers_json(h)),
                    None => self.headers.append_null(),
                }
            }
            self.rows += 1;
        }
        if self.rows > 0 {
            return Ok(SourcePoll::Batch(self.take_batch()?));
        }
        if self.spec.bounded && !self.next.is_empty() && self.ended.len() == self.next.len() {
            return Ok(SourcePoll::Exhausted);
        }
        Ok(SourcePoll::Wait(Instant::now() + Duration::from_millis(5)))
    }

    fn snapshot(&mut self, checkpoint: weir_types::CheckpointId) -> Result<Option<Vec<u8>>> {
        // Partitions that have not delivered a record since they were assigned keep their
        // position by asking the consumer (an earliest/latest start resolved by the broker).
        // A partition still looking for its start timestamp records nothing, so a restore
        // starts it by timestamp again.
        let unknown: Vec<i32> = self
            .next
            .iter()
            .filter(|(p, o)| o.is_none() && !self.skipping.contains_key(p))
            .map(|(p, _)| *p)
            .collect();
        if !unknown.is_empty() {
            if let Ok(pos) = self.consumer.position() {
                for e in pos.elements() {
                    if let (true, Offset::Offset(o)) =
                        (unknown.contains(&e.partition()), e.offset())
                    {
                        self.next.insert(e.partition(), Some(o));
                    }
                }
            }
        }
        let offsets: Vec<(i32, i64)> = self
            .next
            .iter()
            .filter(|(p, _)| !self.skipping.contains_key(p))
            .filter_map(|(p, o)| o.map(|o| (*p, o)))
            .collect();
        if self.spec.group_id.is_some() {
            self.snapshots.insert(checkpoint, offsets.clone());
        }
        self.last_offsets.clone_from(&offsets);
        Ok(Some(weir_state::encode(&SourceState { offsets })?))
    }

    fn row_partitions(&self) -> Option<&[u32]> {
        Some(&self.last_parts)
    }

    // A subtask that owns no partition counts one, which holds the watermark back until the
    // idle timeout, as before partitions were told apart.
    fn partition_count(&self) -> usize {
        self.index.len().max(1)
    }

    fn partition_ended(&self, p: usize) -> bool {
        self.index.get(p).is_some_and(|id| self.ended.contains(id))
    }

    fn chained_offsets(&self) -> Option<weir_runtime::operator::SourceOffsets> {
        Some(weir_runtime::operator::SourceOffsets {
            topic: self.spec.topic.clone(),
            partitions: self.last_offsets.clone(),
        })
    }

    async fn checkpoint_complete(&mut self, id: weir_types::CheckpointId) -> Result<()> {
        // Commit (for monitoring only: Weir restores from the checkpoint) the offsets this
        // subtask recorded for the completed checkpoint (or the newest one it subsumes).
        let Some((&seq, offsets)) = self.snapshots.range(..=id).next_back() else {
            return Ok(());
        };
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            tpl.add_partition_offset(&self.spec.topic, *p, Offset::Offset(*o))
                .map_err(|e| kafka_err("building the offset commit", e))?;
        }
        if let Err(e) = self
            .consumer
            .commit(&tpl, rdkafka::consumer::CommitMode::Async)
        {
            // Monitoring only: a failed commit must not fail the job.
            debug!(error = %e, "committing offsets to the consumer group failed");
        }
        self.snapshots = self.snapshots.split_off(&(seq + 1));
        Ok(())
    }
}

/// A message's headers as a JSON object (values as UTF-8 text where they are, else null).
fn headers_json(h: &rdkafka::message::BorrowedHeaders) -> String {
    use rdkafka::message::Headers;
    let map: serde_json::Map<String, serde_json::Value> = h
        .iter()
        .map(|hd| {
            let v = hd
                .value
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(|s| serde_json::Value::String(s.to_string()))
                .unwrap_or(serde_json::Value::Null);
            (hd.key.to_string(), v)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}
