//! The Kafka sink (`docs/kafka.md` has the design and its failure cases).
//!
//! At-least-once: an idempotent producer, flushed at every barrier.
//!
//! Exactly-once, per subtask, with only public Kafka APIs:
//! * transactional id `weir-<job>-<operator>-<subtask>`, the same for every attempt, so a new
//!   attempt's `init_transactions` fences the old one and aborts its open transaction;
//! * one Kafka transaction per checkpoint epoch. Rows are produced into it as they arrive; at
//!   barrier *n* the producer is flushed and the epoch is pre-committed. Its rows also go into
//!   the snapshot for *n* (a write-ahead copy, Arrow IPC). Rows that arrive while a
//!   pre-committed transaction awaits its checkpoint wait in memory (one producer has one open
//!   transaction) and are sent once it is committed;
//! * every transaction carries a commit marker: `send_offsets_to_transaction` for the consumer
//!   group `weir-<job>-<operator>-<subtask>`, offset = the epoch's checkpoint id. Kafka applies
//!   transactional offsets only if the transaction commits, so "the group's committed offset
//!   is at least *n*" means "epoch *n* is committed";
//! * restore: for every old subtask this one now owns, `init_transactions` with the old id
//!   (fences zombies; a commit that reached the broker completes, anything else is aborted),
//!   read the marker, and re-send from the write-ahead copy, in a transaction with its
//!   marker, every recorded epoch above it. That covers the commit window: a crash after the
//!   checkpoint completed and before the commit reached the broker loses the transaction, but
//!   not its rows.
//! * `commit_source_offsets`: each transaction also carries the chained Kafka source's offsets
//!   as of the epoch's barrier, for the user's consumer group (recorded in the snapshot with
//!   the epoch, so a re-sent epoch carries them too).

use crate::kafka_client::{kafka_err, probe_metadata};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{debug, info};
use weir_checkpoint::{EpochQueue, TxnAction};
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::exchange::{decode_batch, encode_batch};
use weir_runtime::inflight::InFlight;
use weir_runtime::message::Barrier;
use weir_runtime::operator::{Operator, OperatorContext, Restored, SourceOffsets};
use weir_types::failpoint;
use weir_types::{CheckpointId, KafkaFormat, KafkaPartitioner, KafkaSinkGuarantee, KafkaSinkSpec};

/// Collects the first delivery error; the sink checks it at every flush.
#[derive(Default)]
struct SinkContext {
    failed: Mutex<Option<String>>,
}

impl ClientContext for SinkContext {}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut f) = self.failed.lock() {
                f.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

type KafkaProducer = ThreadedProducer<SinkContext>;

/// What a snapshot records: epochs closed by a barrier and not known to be committed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SinkState {
    transactional_id: String,
    epochs: Vec<EpochRecord>,
}

/// One epoch in a snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct EpochRecord {
    id: CheckpointId,
    /// The epoch's rows as Arrow IPC frames
    frames: Vec<Vec<u8>>,
    /// The chained source's offsets at the epoch's barrier (`commit_source_offsets`)
    source_offsets: Option<SourceOffsets>,
}

/// The consumers whose group metadata goes into transactions: the commit marker's group and,
/// with `commit_source_offsets`, the user's group.
#[derive(Clone)]
struct Groups {
    marker: Arc<BaseConsumer>,
    marker_group: String,
    source: Option<Arc<BaseConsumer>>,
}

pub struct KafkaSink {
    spec: KafkaSinkSpec,
    op_id: String,
    producer: Arc<KafkaProducer>,
    transactional: bool,
    /// Marker (and source-offset) consumers, exactly-once only.
    groups: Option<Groups>,
    marker_group: String,
    txn_open: bool,
    /// The chained source's offsets for the coming barrier (`commit_source_offsets`).
    source_offsets: Option<SourceOffsets>,
    /// Exactly-once: the epochs, and what to send, flush and commit when (the protocol;
    /// this file does the I/O).
    epochs: EpochQueue<RecordBatch, SourceOffsets>,
    key_col: Option<usize>,
    encoded: Vec<u8>,
    inflight: InFlight,
    /// The one partition this subtask writes (`partitioner: fixed`).
    partition: Option<i32>,
}

fn transactional_id(job: &str, op: &str, subtask: u32) -> String {
    format!("weir-{job}-{op}-{subtask}")
}

const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a blocking client call off the async threads, counted in `inflight` until it returns
/// (a cancelled attempt has stopped only once its commits have).
async fn blocking<T: Send + 'static>(
    inflight: &InFlight,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    inflight
        .spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Internal(format!("kafka client task: {e}")))?
}

impl KafkaSink {
    pub async fn open(
        ctx: &OperatorContext,
        spec: &KafkaSinkSpec,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let schema = ctx.input_schema.clone().ok_or_else(|| {
            RuntimeError::Internal(format!("operator {} has no input schema", ctx.op_id))
        })?;
        let key_col = weir_planner::kafka::sink_key(spec, &schema, &ctx.op_id)?;
        let transactional = spec.guarantee == KafkaSinkGuarantee::ExactlyOnce;
        let my_id = transactional_id(&ctx.job_id.0, &ctx.op_id, ctx.subtask);
        let partitions = reach(spec, &ctx.op_id, &ctx.inflight).await?;
        let partition = (spec.partitioner == KafkaPartitioner::Fixed)
            .then(|| (ctx.subtask as usize % partitions.max(1)) as i32);

        // Recovery first, for every old subtask this one owns: fence, read the marker, re-send.
        let mut states: Vec<SinkState> = Vec::new();
        let mut old_ids: Vec<String> = Vec::new();
        if let Some(r) = &restored {
            for (old, bytes) in &r.snapshots {
                if old % ctx.parallelism == ctx.subtask {
                    let s: SinkState = weir_state::decode(bytes)?;
                    old_ids.push(s.transactional_id.clone());
                    states.push(s);
                }
            }
            // Old subtasks of another job (a savepoint) that left no state still need fencing.
            if r.job_id != ctx.job_id.0 {
                for old in 0..r.old_parallelism {
                    let id = transactional_id(&r.job_id, &ctx.op_id, old);
                    if old % ctx.parallelism == ctx.subtask && !old_ids.contains(&id) {
                        old_ids.push(id);
                        states.push(SinkState {
                            transactional_id: transactional_id(&r.job_id, &ctx.op_id, old),
                            epochs: vec![],
                        });
                    }
                }
            }
        }
        let recovery = Recovery {
            spec,
            op: &ctx.op_id,
            inflight: &ctx.inflight,
            partition,
        };
        if transactional {
            for s in states.iter().filter(|s| s.transactional_id != my_id) {
                let p = producer(spec, Some(&s.transactional_id))?;
                recover(recovery, p, s).await?;
            }
        }
        let producer = producer(spec, transactional.then_some(my_id.as_str()))?;
        let mut groups = None;
        if transactional {
            let p = producer.clone();
            blocking(&ctx.inflight, move || {
                p.init_transactions(TXN_TIMEOUT)
                    .map_err(|e| kafka_err("init_transactions", e))
            })
            .await?;
            let own = states
                .iter()
                .find(|s| s.transactional_id == my_id)
                .cloned()
                .unwrap_or_default();
            let g = Groups::new(spec, &my_id)?;
            resend_missing(recovery, &producer, &g, &own.epochs).await?;
            groups = Some(g);
        }
        Ok(Self {
            spec: spec.clone(),
            op_id: ctx.op_id.clone(),
            producer,
            transactional,
            groups,
            marker_group: my_id,
            txn_open: false,
            source_offsets: None,
            epochs: EpochQueue::default(),
            key_col,
            encoded: Vec::new(),
            inflight: ctx.inflight.clone(),
            partition,
        })
    }

    /// Encodes and produces a batch's rows into the producer (the open transaction, if any).
    async fn send(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.transactional && !self.txn_open {
            self.producer
                .begin_transaction()
                .map_err(|e| kafka_err("begin_transaction", e))?;
            self.txn_open = true;
        }
        produce_rows(
            &self.producer,
            &self.spec,
            (self.key_col, self.partition),
            batch,
            &mut self.encoded,
        )
        .await
    }

    /// Runs what the epoch queue asks for, in order.
    async fn run(&mut self, actions: Vec<TxnAction<RecordBatch, SourceOffsets>>) -> Result<()> {
        for action in actions {
            match action {
                TxnAction::Send(batch) => self.send(&batch).await?,
                TxnAction::Flush => self.flush().await?,
                TxnAction::Commit { id, extra } => self.commit(id, extra).await?,
            }
        }
        Ok(())
    }

    /// Waits until everything produced is acknowledged; fails on any delivery error.
    async fn flush(&self) -> Result<()> {
        let p = self.producer.clone();
        blocking(&self.inflight, move || {
            p.flush(TXN_TIMEOUT).map_err(|e| kafka_err("flush", e))
        })
        .await?;
        if let Some(e) = self
            .producer
            .context()
            .failed
            .lock()
            .ok()
            .and_then(|f| f.clone())
        {
            return Err(RuntimeError::Connector(format!(
                "kafka_sink {:?}: a message could not be delivered to {}: {e}",
                self.op_id, self.spec.topic
            )));
        }
        Ok(())
    }

    /// Commits the open transaction (begun here if the epoch sent nothing) with marker `id`
    /// and the epoch's source offsets.
    async fn commit(&mut self, id: CheckpointId, source: Option<SourceOffsets>) -> Result<()> {
        if !self.txn_open {
            self.producer
                .begin_transaction()
                .map_err(|e| kafka_err("begin_transaction", e))?;
            self.txn_open = true;
        }
        let (p, topic) = (self.producer.clone(), self.spec.topic.clone());
        let g = self
            .groups
            .clone()
            .ok_or_else(|| RuntimeError::Internal("no marker consumer".into()))?;
        failpoint::hit(failpoint::KAFKA_SINK_COMMIT);
        blocking(&self.inflight, move || {
            mark_and_commit(&p, &g, &topic, id, source.as_ref())
        })
        .await?;
        self.txn_open = false;
        debug!(checkpoint = id, "kafka transaction committed");
        Ok(())
    }
}

impl Groups {
    fn new(spec: &KafkaSinkSpec, marker_group: &str) -> Result<Self> {
        Ok(Self {
            marker: marker_consumer(spec, marker_group)?,
            marker_group: marker_group.to_string(),
            source: spec
                .commit_source_offsets
                .as_deref()
                .map(|g| marker_consumer(spec, g))
                .transpose()?,
        })
    }
}

/// Sends marker `id` (and the epoch's source offsets) into the open transaction and commits it.
fn mark_and_commit(
    p: &KafkaProducer,
    groups: &Groups,
    topic: &str,
    id: CheckpointId,
    source: Option<&SourceOffsets>,
) -> Result<()> {
    let cgm = groups.marker.group_metadata().ok_or_else(|| {
        RuntimeError::Internal(format!("no group metadata for {}", groups.marker_group))
    })?;
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, 0, Offset::Offset(id as i64))
        .map_err(|e| kafka_err("building the commit marker", e))?;
    p.send_offsets_to_transaction(&offsets, &cgm, TXN_TIMEOUT)
        .map_err(|e| kafka_err("send_offsets_to_transaction (commit marker)", e))?;
    if let (Some(consumer), Some(source)) = (&groups.source, source) {
        let cgm = consumer.group_metadata().ok_or_else(|| {
            RuntimeError::Internal("no group metadata for commit_source_offsets".into())
        })?;
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &source.partitions {
            offsets
                .add_partition_offset(&source.topic, *partition, Offset::Offset(*next))
                .map_err(|e| kafka_err("building the source offsets", e))?;
        }
        if offsets.count() > 0 {
            p.send_offsets_to_transaction(&offsets, &cgm, TXN_TIMEOUT)
                .map_err(|e| kafka_err("send_offsets_to_transaction (source offsets)", e))?;
        }
    }
    failpoint::hit(failpoint::KAFKA_SINK_END_TXN);
    p.commit_transaction(TXN_TIMEOUT)
        .map_err(|e| kafka_err("commit_transaction", e))
}

fn producer(spec: &KafkaSinkSpec, transactional_id: Option<&str>) -> Result<Arc<KafkaProducer>> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &spec.bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set(
            "socket.connection.setup.timeout.ms",
            spec.connect_timeout_ms.max(1000).to_string(),
        );
    if let Some(id) = transactional_id {
        config.set("transactional.id", id).set(
            "transaction.timeout.ms",
            spec.transaction_timeout_ms.to_string(),
        );
    }
    for (k, v) in &spec.properties {
        config.set(k, v);
    }
    config
        .create_with_context(SinkContext::default())
        .map(Arc::new)
        .map_err(|e| kafka_err("creating the producer", e))
}

/// A consumer of the marker group, never subscribed: its group metadata and committed offsets.
fn marker_consumer(spec: &KafkaSinkSpec, group: &str) -> Result<Arc<BaseConsumer>> {
    consumer_config(spec, group)
        .create()
        .map(Arc::new)
        .map_err(|e| kafka_err("creating the marker consumer", e))
}

/// A consumer's settings for the sink's own reads (commit markers, the topic probe): the
/// user's `properties` (security settings) too, so it reaches a broker the producer reaches.
fn consumer_config(spec: &KafkaSinkSpec, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (k, v) in &spec.properties {
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", &spec.bootstrap_servers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    config
}

/// Fails with the bootstrap address if the topic's metadata cannot be read in time; returns
/// the topic's partition count.
async fn reach(spec: &KafkaSinkSpec, op: &str, inflight: &InFlight) -> Result<usize> {
    let (servers, topic, op) = (
        spec.bootstrap_servers.clone(),
        spec.topic.clone(),
        op.to_string(),
    );
    let timeout = Duration::from_millis(spec.connect_timeout_ms.max(1000));
    let config = consumer_config(spec, &format!("weir-probe-{op}"));
    blocking(inflight, move || {
        let md = probe_metadata(&config, &topic, timeout).map_err(|e| {
            RuntimeError::Connector(format!(
                "kafka_sink {op:?}: cannot read metadata of topic {topic:?} from {servers} within {} ms: {e}",
                timeout.as_millis(),
            ))
        })?;
        match md.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() => Ok(t.partitions().len()),
            _ => Err(RuntimeError::Connector(format!(
                "kafka_sink {op:?}: topic {topic:?} does not exist on {servers}"
            ))),
        }
    })
    .await
}

/// What recovering a restored sink subtask's transactions needs: the sink, the in-flight
/// count of its attempt (every client call is counted) and its fixed partition, if any.
#[derive(Clone, Copy)]
struct Recovery<'a> {
    spec: &'a KafkaSinkSpec,
    op: &'a str,
    inflight: &'a InFlight,
    partition: Option<i32>,
}

/// Fences `state`'s transactional id and re-sends its recorded epochs the marker lacks.
async fn recover(r: Recovery<'_>, producer: Arc<KafkaProducer>, state: &SinkState) -> Result<()> {
    let p = producer.clone();
    blocking(r.inflight, move || {
        p.init_transactions(TXN_TIMEOUT)
            .map_err(|e| kafka_err("init_transactions (fencing an old subtask)", e))
    })
    .await?;
    let g = Groups::new(r.spec, &state.transactional_id)?;
    resend_missing(r, &producer, &g, &state.epochs).await
}

/// The commit marker: the highest epoch whose transaction committed (0: none ever did).
/// A partition error (a transactional offset commit still pending, `UNSTABLE_OFFSET_COMMIT`,
/// or any other) is retried and then fails the restore; it is never read as "nothing
/// committed", which would re-send epochs that did commit.
fn read_marker(marker: &BaseConsumer, topic: &str) -> Result<u64> {
    let mut last_error = String::new();
    for attempt in 0..40 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(250));
        }
        let mut q = TopicPartitionList::new();
        q.add_partition(topic, 0);
        let c = match marker.committed_offsets(q, TXN_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                last_error = e.to_string();
                continue;
            }
        };
        let Some(e) = c.elements().into_iter().next() else {
            last_error = "no partition in the answer".into();
            continue;
        };
        if let Err(err) = e.error() {
            last_error = err.to_string();
            continue;
        }
        return Ok(match e.offset() {
            Offset::Offset(o) if o >= 0 => o as u64,
            _ => 0,
        });
    }
    Err(RuntimeError::Connector(format!(
        "kafka: reading the commit marker of {topic:?} failed for 10 s: {last_error}"
    )))
}

/// Re-sends, one transaction each with its marker, the recorded epochs above the committed
/// marker. The producer has been initialised (so the old transaction is resolved).
async fn resend_missing(
    r: Recovery<'_>,
    producer: &Arc<KafkaProducer>,
    groups: &Groups,
    epochs: &[EpochRecord],
) -> Result<()> {
    let Recovery {
        spec,
        op,
        inflight,
        partition,
    } = r;
    if epochs.is_empty() {
        return Ok(());
    }
    let (m, topic) = (groups.marker.clone(), spec.topic.clone());
    let committed = blocking(inflight, move || read_marker(&m, &topic)).await?;
    let mut resent = 0;
    for epoch in weir_checkpoint::epochs::to_resend(epochs, |e| e.id, committed) {
        producer
            .begin_transaction()
            .map_err(|e| kafka_err("begin_transaction (re-send)", e))?;
        let mut encoded = Vec::new();
        for f in &epoch.frames {
            let batch = decode_batch(f)?;
            let key_col = spec
                .key
                .as_ref()
                .map(|k| batch.schema().index_of(k))
                .transpose()?;
            produce_rows(producer, spec, (key_col, partition), &batch, &mut encoded).await?;
        }
        let (p, g, t, id, source) = (
            producer.clone(),
            groups.clone(),
            spec.topic.clone(),
            epoch.id,
            epoch.source_offsets.clone(),
        );
        blocking(inflight, move || {
            p.flush(TXN_TIMEOUT)
                .map_err(|e| kafka_err("flush (re-send)", e))?;
            mark_and_commit(&p, &g, &t, id, source.as_ref())
        })
        .await?;
        resent += 1;
    }
    info!(
        operator = op,
        transactional_id = groups.marker_group,
        committed_marker = committed,
        recorded = epochs.len(),
        resent,
        "kafka sink recovered"
    );
    Ok(())
}

/// Produces one message per row of `batch` (encoded into the reused `encoded` buffer), keyed
/// by column `key_col` as text; waits while the producer's queue is full.
async fn produce_rows(
    producer: &KafkaProducer,
    spec: &KafkaSinkSpec,
    (key_col, partition): (Option<usize>, Option<i32>),
    batch: &RecordBatch,
    encoded: &mut Vec<u8>,
) -> Result<()> {
    let payloads = encode_rows(spec.format, batch, encoded)?;
    let keys = match key_col {
        Some(k) => Some(arrow::compute::cast(batch.column(k), &DataType::Utf8)?),
        None => None,
    };
    let keys = keys.as_ref().map(|k| k.as_string::<i32>());
    for (row, (a, b)) in payloads.iter().enumerate() {
        let mut record: BaseRecord<'_, str, [u8]> =
            BaseRecord::to(&spec.topic).payload(&encoded[*a..*b]);
        if let Some(k) = keys.and_then(|k| k.is_valid(row).then(|| k.value(row))) {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(kafka_err(&format!("producing to {}", spec.topic), e)),
            }
        }
    }
    Ok(())
}

/// Encodes each row of `batch` into `out`; returns each row's byte range.
fn encode_rows(
    format: KafkaFormat,
    batch: &RecordBatch,
    out: &mut Vec<u8>,
) -> Result<Vec<(usize, usize)>> {
    out.clear();
    let mut ranges = Vec::with_capacity(batch.num_rows());
    match format {
        KafkaFormat::Json | KafkaFormat::Csv => {
            if format == KafkaFormat::Json {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut *out);
                w.write(batch)?;
                w.finish()?;
            } else {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .build(&mut *out);
                w.write(batch)?;
            }
            let mut start = 0;
            for (i, b) in out.iter().enumerate() {
                if *b == b'\n' {
                    ranges.push((start, i));
                    start = i + 1;
                }
            }
        }
        KafkaFormat::Raw => {
            let col = batch.column(0);
            for row in 0..batch.num_rows() {
                let start = out.len();
                match col.data_type() {
                    DataType::Binary => out.extend_from_slice(col.as_binary::<i32>().value(row)),
                    _ => out.extend_from_slice(col.as_string::<i32>().value(row).as_bytes()),
                }
                ranges.push((start, out.len()));
            }
        }
    }
    if ranges.len() != batch.num_rows() {
        return Err(RuntimeError::Internal(format!(
            "encoded {} rows into {} messages",
            batch.num_rows(),
            ranges.len()
        )));
    }
    Ok(ranges)
}

#[async_trait]
impl Operator for KafkaSink {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        if !self.transactional {
            self.send(&batch).await?;
            return Ok(None);
        }
        let actions = self.epochs.rows(batch);
        self.run(actions).await?;
        Ok(None)
    }

    async fn snapshot(&mut self, barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        if !self.transactional {
            self.flush().await?;
            return Ok(None);
        }
        let source_offsets = self.source_offsets.take();
        if self.spec.commit_source_offsets.is_some() && source_offsets.is_none() {
            return Err(RuntimeError::Internal(format!(
                "kafka_sink {:?}: commit_source_offsets, but no source offsets reached the barrier",
                self.op_id
            )));
        }
        // With source offsets, an epoch without rows still commits (the offsets move).
        let actions = self.epochs.barrier(barrier.id, source_offsets);
        self.run(actions).await?;
        let epochs = self
            .epochs
            .pending()
            .map(|e| {
                Ok(EpochRecord {
                    id: e.id,
                    frames: e
                        .batches
                        .iter()
                        .map(encode_batch)
                        .collect::<Result<Vec<_>>>()?,
                    source_offsets: e.extra.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(weir_state::encode(&SinkState {
            transactional_id: self.marker_group.clone(),
            epochs,
        })?))
    }

    async fn checkpoint_complete(&mut self, id: CheckpointId) -> Result<()> {
        if !self.transactional {
            return Ok(());
        }
        let actions = self.epochs.complete(id);
        self.run(actions).await
    }

    fn chained_source_offsets(&mut self, offsets: &SourceOffsets) {
        if self.spec.commit_source_offsets.is_some() {
            self.source_offsets = Some(offsets.clone());
        }
    }

    fn awaiting_commit(&self) -> bool {
        self.transactional && self.epochs.awaiting_commit()
    }

    async fn finish(&mut self) -> Result<()> {
        self.flush().await?;
        if self.transactional && self.txn_open {
            let p = self.producer.clone();
            blocking(&self.inflight, move || {
                p.commit_transaction(TXN_TIMEOUT)
                    .map_err(|e| kafka_err("commit_transaction", e))
            })
            .await?;
            self.txn_open = false;
        }
        Ok(())
    }
}
