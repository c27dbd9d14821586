//! File source: reads every file below an object-store folder (names starting with `_` or `.`
//! are skipped, as Hadoop-style tools do), as JSON lines, CSV with a header, or plain lines.
//! Files are spread over subtasks by their position in the sorted listing; the checkpointed
//! position is the number of rows emitted from each file.

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
        let storage = Storage::open(&spec.path)?;
        let files: Vec<String> = storage
            .list("")
            .await?
            .into_iter()
            .filter(|f| {
                !f.split('/')
                    .any(|part| part.starts_with('_') || part.starts_with('.'))
            })
            .collect();
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
            FileFormat::Csv => Box::new(
                arrow::csv::ReaderBuilder::new(self.schema.clone())
                    .with_header(true)
                    .with_batch_size(self.batch_size)
                    .build(Cursor::new(data))?,
            ),
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
                    if let Some(p) = self.positions.get_mut(file.as_str()) {
                        *p += batch.num_rows() as u64;
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
