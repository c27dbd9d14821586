//! File source: reads every file below an object-store folder (names starting with `_` or `.`
//! are skipped, as Hadoop-style tools do), as JSON lines, CSV, or plain lines.
//! Files are spread over subtasks by their position in the sorted listing; the checkpointed
//! position is the number of rows emitted from each file.
//!
//! CSV as Flink's csv format reads it: no header line (unless the spec says `header`); an
//! empty field is the empty string in a VARCHAR column and an error in any other, unless the
//! spec names a `null_literal` (Flink's `csv.null-literal`): then that text is NULL in every
//! column (`""`: every empty field).

use super::{OperatorContext, Restored, Source, SourcePoll};
use crate::error::{Result, RuntimeError};
use arrow::array::StringArray;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;
use weir_storage::Storage;
use weir_types::{CheckpointId, FileFormat, FileSourceSpec};

type BatchIter =
    Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>> + Send>;

pub struct FileSource {
    storage: Storage,
    format: FileFormat,
    schema: SchemaRef,
    batch_size: usize,
    header: bool,
    null_literal: Option<String>,
    /// Owned files and rows emitted from each.
    positions: BTreeMap<String, u64>,
    queue: Vec<String>,
    current: Option<(String, BatchIter, u64)>,
}

impl FileSource {
    pub async fn open(
        ctx: &OperatorContext,
        spec: &FileSourceSpec,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let (storage, files) = resolve(&spec.path).await?;
        let mut positions: BTreeMap<String, u64> = files
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 % ctx.parallelism == ctx.subtask)
            .map(|(_, f)| (f.clone(), 0))
            .collect();
        if let Some(r) = restored {
            for (_, bytes) in &r.snapshots {
                let old: Vec<(String, u64)> = weir_state::decode(bytes)?;
                for (f, n) in old {
                    if let Some(p) = positions.get_mut(&f) {
                        *p = n;
                    }
                }
            }
        }
        let queue = positions.keys().rev().cloned().collect();
        Ok(Self {
            storage,
            format: spec.format,
            schema: ctx.output_schema.clone(),
            batch_size: spec.batch_size.max(1) as usize,
            header: spec.header,
            null_literal: spec.null_literal.clone(),
            positions,
            queue,
            current: None,
        })
    }

    async fn open_next(&mut self) -> Result<bool> {
        let Some(file) = self.queue.pop() else {
            return Ok(false);
        };
        let data = self.storage.get(&file).await?;
        let iter: BatchIter = match self.format {
            FileFormat::Jsonl => Box::new(
                arrow::json::ReaderBuilder::new(self.schema.clone())
                    .with_batch_size(self.batch_size)
                    .build(Cursor::new(data))?,
            ),
            FileFormat::Csv => {
                let mut b = arrow::csv::ReaderBuilder::new(self.schema.clone())
                    .with_header(self.header)
                    .with_batch_size(self.batch_size);
                if let Some(l) = self.null_literal.as_deref().filter(|l| !l.is_empty()) {
                    let re = regex::Regex::new(&format!("^{}$", regex::escape(l)))
                        .map_err(|e| RuntimeError::Plan(format!("csv null literal: {e}")))?;
                    b = b.with_null_regex(re);
                }
                Box::new(b.build(Cursor::new(data))?)
            }
            #[cfg(feature = "parquet")]
            FileFormat::Parquet => {
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)
                        .and_then(|b| b.with_batch_size(self.batch_size).build())
                        .map_err(|e| {
                            RuntimeError::Input(format!("{file}: not a readable Parquet file: {e}"))
                        })?;
                let schema = self.schema.clone();
                Box::new(reader.map(move |b| project_to(&b?, &schema)))
            }
            #[cfg(not(feature = "parquet"))]
            FileFormat::Parquet => {
                return Err(crate::planner::not_built("the parquet format", "parquet"))
            }
            FileFormat::Lines => {
                let text = String::from_utf8(data.to_vec())
                    .map_err(|e| RuntimeError::Input(format!("{file}: not UTF-8: {e}")))?;
                let lines: Vec<String> = text.lines().map(str::to_string).collect();
                let schema = self.schema.clone();
                let size = self.batch_size;
                let chunks: Vec<Vec<String>> = lines.chunks(size).map(|c| c.to_vec()).collect();
                Box::new(chunks.into_iter().map(move |c| {
                    RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(c))])
                }))
            }
        };
        let skip = self.positions.get(&file).copied().unwrap_or(0);
        self.current = Some((file, iter, skip));
        Ok(true)
    }
}

#[async_trait]
impl Source for FileSource {
    async fn poll_next(&mut self) -> Result<SourcePoll> {
        loop {
            if self.current.is_none() && !self.open_next().await? {
                return Ok(SourcePoll::Exhausted);
            }
            let Some((file, iter, skip)) = self.current.as_mut() else {
                continue;
            };
            match iter.next() {
                None => self.current = None,
                Some(Err(e)) => return Err(RuntimeError::Input(format!("{file}: {e}"))),
                Some(Ok(mut batch)) => {
                    if *skip > 0 {
                        let n = (*skip as usize).min(batch.num_rows());
                        *skip -= n as u64;
                        batch = batch.slice(n, batch.num_rows() - n);
                        if batch.num_rows() == 0 {
                            continue;
                        }
                    }
                    let before = self.positions.get(file.as_str()).copied().unwrap_or(0);
                    if self.format == FileFormat::Csv && self.null_literal.is_none() {
                        let first_line = before + 1 + u64::from(self.header);
                        batch = csv_empty_fields(&batch, file, first_line)?;
                    }
                    if let Some(p) = self.positions.get_mut(file.as_str()) {
                        *p = before + batch.num_rows() as u64;
                    }
                    return Ok(SourcePoll::Batch(batch));
                }
            }
        }
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>> {
        let v: Vec<(String, u64)> = self
            .positions
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        Ok(Some(weir_state::encode(&v)?))
    }
}

/// The storage and files a source `path` names: every file below a folder (names starting
/// with `_` or `.` skipped), or one file (Flink's filesystem source takes either). A path that
/// names nothing is an error, as in Flink, not an empty input.
pub(crate) async fn resolve(path: &str) -> Result<(Storage, Vec<String>)> {
    let trimmed = path.trim();
    let missing = || {
        RuntimeError::Input(format!(
            "the source path {trimmed:?} does not exist (give a file or a folder)"
        ))
    };
    if !trimmed.contains("://") || trimmed.starts_with("file://") {
        let local = std::path::Path::new(trimmed.strip_prefix("file://").unwrap_or(trimmed));
        let meta = std::fs::metadata(local).map_err(|_| missing())?;
        if meta.is_file() {
            let name = local
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(missing)?;
            let parent = match local.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let storage = Storage::open(&parent.to_string_lossy())?;
            return Ok((storage, vec![name]));
        }
    }
    let storage = Storage::open(trimmed)?;
    let files: Vec<String> = storage
        .list("")
        .await?
        .into_iter()
        .filter(|f| {
            !f.split('/')
                .any(|part| part.starts_with('_') || part.starts_with('.'))
        })
        .collect();
    if !files.is_empty() {
        return Ok((storage, files));
    }
    // An object store has no folders: the path may name one object.
    if let Some((parent, name)) = trimmed.trim_end_matches('/').rsplit_once('/') {
        let bucket_and_more = parent
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty());
        if bucket_and_more && !name.is_empty() {
            let parent_storage = Storage::open(parent)?;
            if parent_storage.exists(name).await? {
                return Ok((parent_storage, vec![name.to_string()]));
            }
            return Err(missing());
        }
    }
    Ok((storage, files))
}

/// A CSV batch (without a null literal) as Flink's csv format reads it: arrow's reader reads
/// an empty field as NULL; in a string column it is the empty string, in any other an error
/// (Flink: "Fail to deserialize at field", an empty String is no number), naming the file,
/// line and column. `first_line` is the file line of the batch's first row.
fn csv_empty_fields(batch: &RecordBatch, file: &str, first_line: u64) -> Result<RecordBatch> {
    use arrow::array::Array;
    let schema = batch.schema();
    let mut cols: Vec<arrow::array::ArrayRef> = batch.columns().to_vec();
    for (f, c) in schema.fields().iter().zip(cols.iter_mut()) {
        // Flink reads a boolean field as `true` when it says so (any case) and `false`
        // otherwise: an empty one is false.
        if f.data_type() == &arrow::datatypes::DataType::Boolean && c.null_count() > 0 {
            let b = c.as_any().downcast_ref::<arrow::array::BooleanArray>();
            if let Some(b) = b {
                *c = Arc::new(
                    b.iter()
                        .map(|v| Some(v.unwrap_or(false)))
                        .collect::<arrow::array::BooleanArray>(),
                );
            }
            continue;
        }
        if f.data_type() != &arrow::datatypes::DataType::Utf8 && c.null_count() > 0 {
            let row = (0..c.len()).find(|r| c.is_null(*r)).unwrap_or(0);
            return Err(RuntimeError::Input(format!(
                "{file}, line {}: column {} ({}) is empty, which is no value of its type (as in Flink's csv format); set 'csv.null-literal' = '' (JSON jobs: \"null_literal\": \"\") to read empty fields as NULL",
                first_line + row as u64,
                f.name(),
                f.data_type()
            )));
        }
    }
    if !cols
        .iter()
        .any(|c| c.data_type() == &arrow::datatypes::DataType::Utf8 && c.null_count() > 0)
    {
        return Ok(RecordBatch::try_new(batch.schema(), cols)?);
    }
    let cols = cols
        .iter()
        .map(|c| match c.as_any().downcast_ref::<StringArray>() {
            Some(s) if s.null_count() > 0 => Arc::new(
                s.iter()
                    .map(|v| Some(v.unwrap_or("")))
                    .collect::<StringArray>(),
            ) as arrow::array::ArrayRef,
            _ => c.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), cols)?)
}

/// The declared columns of a batch read from a self-describing file, by name, cast to the
/// declared types.
#[cfg(feature = "parquet")]
fn project_to(
    batch: &RecordBatch,
    schema: &arrow::datatypes::SchemaRef,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let cols = schema
        .fields()
        .iter()
        .map(|f| {
            let c = batch.column_by_name(f.name()).ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!(
                    "the file has no column {:?}",
                    f.name()
                ))
            })?;
            arrow::compute::cast(c, f.data_type())
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), cols)
}
