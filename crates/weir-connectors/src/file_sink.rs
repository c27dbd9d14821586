//! The exactly-once file sink: two-phase commit over an object-store folder.
//!
//! Part files move through three states:
//! * in progress: rows encoded into a buffer in memory;
//! * pending: at a barrier (or when the buffer reaches `roll_bytes`) the buffer is written as
//!   `_pending/part-<subtask>-a<attempt>-<seq>.<ext>`, and the names written since the last
//!   barrier are pre-committed under that checkpoint in the sink's state;
//! * committed: when the checkpoint completes, each pending file is copied to its final name
//!   (`part-…` at the top of the folder) and the pending copy deleted.
//!
//! Readers of the folder only ever look at top-level `part-*` files, so they see committed
//! output only. Commits are idempotent (a missing pending file whose final copy exists is
//! already committed), so the restore path can replay them: subtask 0 of a restored job
//! commits every file the restored checkpoint recorded, from all old subtasks, then deletes
//! the pending files that no completed checkpoint recorded and that earlier attempts of this
//! job (or any attempt of the job whose savepoint it started from) left behind. Names carry
//! the job id and the attempt number, which grows with every deployment, so an attempt never
//! reuses or deletes a name of its own, and jobs never collide.
//!
//! Without exactly-once (or with checkpoints off) parts are written straight to final names.

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use tracing::{debug, info, warn};
use weir_checkpoint::TxnLog;
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::message::Barrier;
use weir_runtime::operator::{Operator, OperatorContext, Restored};
use weir_storage::Storage;
use weir_types::{CheckpointId, DeliveryGuarantee, FileFormat, FileSinkSpec};

pub const PENDING_DIR: &str = "_pending";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SinkState {
    pending: Vec<(CheckpointId, String)>,
}

pub struct FileSink {
    storage: Storage,
    format: FileFormat,
    /// CSV: a header line opens every part file.
    header: bool,
    roll_bytes: u64,
    part_bytes: usize,
    roll_interval: Option<std::time::Duration>,
    /// When the open part file got its first row.
    opened_at: Option<std::time::Instant>,
    /// The open part file's name and multipart upload, once it outgrew one part.
    upload: Option<(String, weir_storage::PartWriter)>,
    #[cfg(feature = "parquet")]
    parquet: Option<parquet::arrow::ArrowWriter<Vec<u8>>>,
    transactional: bool,
    job_id: String,
    subtask: u32,
    attempt: u64,
    seq: u64,
    buffer: Vec<u8>,
    buffered_rows: u64,
    /// Pending files written since the last barrier.
    this_epoch: Vec<String>,
    log: TxnLog<String>,
}

/// Timestamps as Flink's csv and json formats write a TIMESTAMP(3): `2024-03-01 00:00:02.481`,
/// the fraction without its trailing zeros (`…:02.4`, `…:02`); arrow's writers write ISO 8601
/// with a `T`.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// `batch` with its timestamp columns as Flink's text.
fn flink_timestamps(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::datatypes::{DataType, Field, Schema};
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Timestamp(_, _)))
    {
        return Ok(batch.clone());
    }
    let options = arrow::util::display::FormatOptions::default()
        .with_timestamp_format(Some(TIMESTAMP_FORMAT));
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(f.data_type(), DataType::Timestamp(_, _)) {
            let fmt = arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options)?;
            let text: arrow::array::StringArray = (0..c.len())
                .map(|i| {
                    c.is_valid(i).then(|| {
                        let t = fmt.value(i).to_string();
                        let t = t.trim_end_matches('0');
                        t.strip_suffix('.').unwrap_or(t).to_string()
                    })
                })
                .collect();
            fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
            cols.push(Arc::new(text) as arrow::array::ArrayRef);
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// (job id, attempt) of a part file name made by [`FileSink::roll`].
fn owner_of(name: &str) -> Option<(String, u64)> {
    let file = name.rsplit('/').next()?.strip_prefix("part-")?;
    let mut parts = file.rsplitn(4, '-');
    let _seq = parts.next()?;
    let attempt = parts.next()?.strip_prefix('a')?.parse().ok()?;
    let _subtask = parts.next()?.strip_prefix('s')?;
    Some((parts.next()?.to_string(), attempt))
}

/// The committed part files of a sink folder, sorted (what a reader of the output sees).
pub async fn committed_files(storage: &Storage) -> Result<Vec<String>> {
    Ok(storage
        .list("")
        .await?
        .into_iter()
        .filter(|p| !p.contains('/') && p.starts_with("part-"))
        .collect())
}

/// Makes a pending part file visible under its final name; idempotent (a pending file that is
/// gone but whose final copy exists was committed before).
///
/// A rename, not a copy: on a local folder `object_store`'s copy hard-links the file to a
/// staging name `<final>#0` and then renames that into place, so a kill between the two left
/// a whole second copy of the file next to the committed one, and a retried commit staged
/// under `#1`: a reader of the folder saw that part file's rows twice. A rename is one atomic
/// step locally; on S3 it is a server-side copy (atomic) and a delete, and retries are safe.
async fn commit_file(storage: &Storage, pending: &str) -> Result<()> {
    let final_name = pending
        .strip_prefix(&format!("{PENDING_DIR}/"))
        .ok_or_else(|| RuntimeError::Internal(format!("not a pending file: {pending}")))?;
    match storage.rename(pending, final_name).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {
            if !storage.exists(final_name).await? {
                return Err(RuntimeError::Input(format!(
                    "pre-committed file {pending} is gone and was never committed: output lost"
                )));
            }
            debug!(file = final_name, "already committed");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

impl FileSink {
    pub async fn open(
        ctx: &OperatorContext,
        spec: &FileSinkSpec,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let storage = ctx.storage.open(&spec.path)?;
        let transactional = ctx.guarantee == DeliveryGuarantee::ExactlyOnce && ctx.checkpointing;
        let mut sink = Self {
            storage,
            format: spec.format,
            header: spec.header,
            roll_bytes: spec.roll_bytes.max(1024),
            part_bytes: spec.part_bytes.max(5 << 20) as usize,
            roll_interval: (spec.roll_interval_ms > 0)
                .then(|| std::time::Duration::from_millis(spec.roll_interval_ms)),
            opened_at: None,
            upload: None,
            #[cfg(feature = "parquet")]
            parquet: None,
            transactional,
            job_id: ctx.job_id.0.clone(),
            subtask: ctx.subtask,
            attempt: ctx.attempt,
            seq: 0,
            buffer: Vec::new(),
            buffered_rows: 0,
            this_epoch: Vec::new(),
            log: TxnLog::default(),
        };
        if ctx.subtask == 0 {
            sink.recover(restored).await?;
        }
        Ok(sink)
    }

    /// Commits what the restored checkpoint recorded (from every old subtask) and aborts the
    /// pending files of earlier attempts that no completed checkpoint recorded.
    async fn recover(&mut self, restored: Option<Restored>) -> Result<()> {
        let mut logs = Vec::new();
        let restored_job = restored.as_ref().map(|r| r.job_id.clone());
        if let Some(r) = restored {
            for (_, bytes) in &r.snapshots {
                let s: SinkState = weir_state::decode(bytes)?;
                logs.push(s.pending);
            }
        }
        let (_, to_commit) = TxnLog::restore(logs);
        let recorded: BTreeSet<String> = to_commit.iter().cloned().collect();
        for name in &to_commit {
            commit_file(&self.storage, name).await?;
        }
        let is_earlier = |name: &str| match owner_of(name) {
            Some((job, attempt)) => {
                (job == self.job_id && attempt < self.attempt)
                    || (restored_job.as_ref() == Some(&job) && job != self.job_id)
            }
            None => false,
        };
        let mut aborted = 0;
        for name in self.storage.list(PENDING_DIR).await? {
            if is_earlier(&name) && !recorded.contains(&name) {
                self.storage.delete(&name).await?;
                aborted += 1;
            }
        }
        // Half-written staging files of earlier attempts' writes (local folders only).
        let swept = self.storage.sweep_staging("", |base| !is_earlier(base))?
            + self
                .storage
                .sweep_staging(PENDING_DIR, |base| !is_earlier(base))?;
        if !to_commit.is_empty() || aborted > 0 || swept > 0 {
            info!(
                committed = to_commit.len(),
                aborted, swept, "file sink recovered"
            );
        }
        Ok(())
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        self.opened_at.get_or_insert_with(std::time::Instant::now);
        match self.format {
            #[cfg(feature = "parquet")]
            FileFormat::Parquet => {
                let w = match &mut self.parquet {
                    Some(w) => w,
                    None => self.parquet.insert(
                        parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), None)
                            .map_err(|e| RuntimeError::Internal(format!("parquet writer: {e}")))?,
                    ),
                };
                w.write(batch)
                    .map_err(|e| RuntimeError::Internal(format!("parquet encoding: {e}")))?;
            }
            #[cfg(not(feature = "parquet"))]
            FileFormat::Parquet => {
                return Err(weir_planner::not_built("the parquet format", "parquet").into())
            }
            FileFormat::Jsonl => {
                let batch = flink_timestamps(batch)?;
                crate::json_lines::write(&batch, &mut self.buffer)?;
            }
            FileFormat::Csv => {
                let header = self.header && self.buffer.is_empty() && self.upload.is_none();
                let batch = flink_timestamps(batch)?;
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(header)
                    .build(&mut self.buffer);
                w.write(&batch)?;
            }
            FileFormat::Lines => {
                let col = batch.column(0);
                let lines = col
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .ok_or_else(|| {
                        RuntimeError::Plan("the lines format needs a single string column".into())
                    })?;
                for l in lines.iter().flatten() {
                    self.buffer.extend_from_slice(l.as_bytes());
                    self.buffer.push(b'\n');
                }
            }
        }
        self.buffered_rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Where the next part file goes: `_pending/part-…` (transactional) or its final name.
    fn next_name(&mut self) -> String {
        let name = format!(
            "part-{}-s{:04}-a{}-{:06}.{}",
            self.job_id,
            self.subtask,
            self.attempt,
            self.seq,
            self.format.extension()
        );
        self.seq += 1;
        if self.transactional {
            format!("{PENDING_DIR}/{name}")
        } else {
            name
        }
    }

    /// Size of the open part file so far (uploaded parts and what is buffered).
    fn open_bytes(&self) -> u64 {
        #[cfg(feature = "parquet")]
        if let Some(w) = &self.parquet {
            return (w.bytes_written() + w.in_progress_size()) as u64;
        }
        self.upload.as_ref().map(|(_, u)| u.written()).unwrap_or(0) + self.buffer.len() as u64
    }

    /// Row formats: once the buffer holds a whole part, it goes to the file's multipart
    /// upload (started on the first full part), so memory stays at one part.
    async fn upload_full_part(&mut self) -> Result<()> {
        if self.format == FileFormat::Parquet || self.buffer.len() < self.part_bytes {
            return Ok(());
        }
        if self.upload.is_none() {
            let name = self.next_name();
            let w = self.storage.writer(&name, self.part_bytes).await?;
            self.upload = Some((name, w));
        }
        if let Some((_, w)) = &mut self.upload {
            w.write(&self.buffer).await?;
        }
        self.buffer.clear();
        Ok(())
    }

    /// Completes the open part file: pending (transactional) or final.
    async fn roll(&mut self) -> Result<()> {
        self.opened_at = None;
        #[cfg(feature = "parquet")]
        if let Some(w) = self.parquet.take() {
            let data = w
                .into_inner()
                .map_err(|e| RuntimeError::Internal(format!("parquet encoding: {e}")))?;
            self.buffer = data;
        }
        let name = match self.upload.take() {
            Some((name, mut w)) => {
                w.write(&self.buffer).await?;
                self.buffer.clear();
                let parts = w.parts();
                w.finish().await?;
                debug!(file = %name, parts, "part file uploaded in parts");
                name
            }
            None if self.buffer.is_empty() => return Ok(()),
            None if self.buffer.len() > self.part_bytes => {
                // A Parquet file larger than one part: upload it in parts too.
                let name = self.next_name();
                let mut w = self.storage.writer(&name, self.part_bytes).await?;
                w.write(&std::mem::take(&mut self.buffer)).await?;
                w.finish().await?;
                name
            }
            None => {
                let name = self.next_name();
                let data = bytes::Bytes::from(std::mem::take(&mut self.buffer));
                self.storage.put(&name, data).await?;
                name
            }
        };
        self.buffered_rows = 0;
        if self.transactional {
            self.this_epoch.push(name);
        }
        Ok(())
    }
}

#[async_trait]
impl Operator for FileSink {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        self.encode(&batch)?;
        self.upload_full_part().await?;
        let too_old = match (self.roll_interval, self.opened_at) {
            (Some(i), Some(t)) => t.elapsed() >= i,
            _ => false,
        };
        if too_old || self.open_bytes() >= self.roll_bytes {
            self.roll().await?;
        }
        Ok(None)
    }

    async fn snapshot(&mut self, barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        self.roll().await?;
        if self.transactional {
            self.log
                .pre_commit(barrier.id, std::mem::take(&mut self.this_epoch));
        }
        Ok(Some(weir_state::encode(&SinkState {
            pending: self.log.pending(),
        })?))
    }

    async fn checkpoint_complete(&mut self, id: CheckpointId) -> Result<()> {
        for name in self.log.complete(id) {
            weir_types::failpoint::hit(weir_types::failpoint::FILE_SINK_COMMIT);
            commit_file(&self.storage, &name).await?;
        }
        Ok(())
    }

    fn awaiting_commit(&self) -> bool {
        self.transactional
            && (!self.log.is_empty()
                || !self.this_epoch.is_empty()
                || !self.buffer.is_empty()
                || self.opened_at.is_some())
    }

    async fn finish(&mut self) -> Result<()> {
        if self.transactional {
            // Checkpoints are off or the job ends without a final checkpoint: nothing can make
            // this output exactly-once any more; say so rather than silently dropping it.
            warn!(
                "exactly-once file sink finishing without a final checkpoint; committing directly"
            );
            self.transactional = false;
        }
        self.roll().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_read_from_names() {
        assert_eq!(
            owner_of("_pending/part-j-00ff-s0001-a12-000003.jsonl"),
            Some(("j-00ff".into(), 12))
        );
        assert_eq!(
            owner_of("part-j-1-s0001-a3-000000.csv"),
            Some(("j-1".into(), 3))
        );
        assert_eq!(owner_of("other"), None);
        assert_eq!(owner_of("part-x.csv"), None);
    }

    fn ctx(attempt: u64) -> OperatorContext {
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("x", arrow::datatypes::DataType::Int64, false),
        ]));
        OperatorContext {
            job_id: weir_types::JobId("j-1".into()),
            op_id: "out".into(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: 128,
            attempt,
            guarantee: DeliveryGuarantee::ExactlyOnce,
            checkpointing: true,
            state_backend: Default::default(),
            input_schema: Some(schema.clone()),
            input_schemas: vec![],
            output_schema: schema,
            inflight: Default::default(),
            storage: Default::default(),
        }
    }

    /// A task manager killed inside a commit: the restored subtask commits the recorded file
    /// once, removes what earlier attempts left half-done, and a plain directory reader sees
    /// every committed row once.
    #[tokio::test]
    async fn recovery_after_a_kill_inside_a_commit_leaves_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path().to_str().unwrap()).unwrap();
        let recorded = "_pending/part-j-1-s0000-a1-000000.csv";
        let unrecorded = "_pending/part-j-1-s0001-a1-000004.csv";
        storage.put(recorded, &b"1\n2\n"[..]).await.unwrap();
        storage.put(unrecorded, &b"3\n"[..]).await.unwrap();
        // What object_store's copy left when killed between its hard link and its rename, and
        // a put killed mid-write; plus another job's staging file, which is not ours to touch.
        let top = dir.path();
        std::fs::hard_link(
            top.join(recorded),
            top.join("part-j-1-s0000-a1-000000.csv#0"),
        )
        .unwrap();
        std::fs::write(top.join("_pending/part-j-1-s0001-a1-000005.csv#0"), b"3").unwrap();
        std::fs::write(top.join("part-j-9-s0000-a1-000000.csv#0"), b"9").unwrap();
        let state = weir_state::encode(&SinkState {
            pending: vec![(7, recorded.to_string())],
        })
        .unwrap();
        let restored = Restored {
            job_id: "j-1".into(),
            old_parallelism: 2,
            snapshots: vec![(0, bytes::Bytes::from(state))],
        };
        let spec = FileSinkSpec {
            path: storage.url().to_string(),
            format: FileFormat::Csv,
            roll_bytes: 1 << 20,
            roll_interval_ms: 0,
            part_bytes: 8 << 20,
            header: false,
        };
        FileSink::open(&ctx(2), &spec, Some(restored))
            .await
            .unwrap();
        let mut names: Vec<String> = std::fs::read_dir(top)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "_pending",
                "part-j-1-s0000-a1-000000.csv",
                "part-j-9-s0000-a1-000000.csv#0"
            ]
        );
        assert_eq!(std::fs::read_dir(top.join("_pending")).unwrap().count(), 0);
        // Committing again (a second restore from the same checkpoint) changes nothing.
        commit_file(&storage, recorded).await.unwrap();
        let err = commit_file(&storage, unrecorded).await.unwrap_err();
        assert!(err.to_string().contains("never committed"), "{err}");
    }
}
