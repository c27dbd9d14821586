//! A Parquet file read by ranges: the footer, then only the column chunks of the declared
//! columns, row group by row group. Progress is the file's row number, so a restore starts at
//! the row group holding it and skips only within that group.

use super::splits::{Progress, Split};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use weir_runtime::error::{Result, RuntimeError};
use weir_storage::Storage;

/// Ranged reads of one object, counted.
struct StorageReader {
    storage: Storage,
    file: String,
    size: u64,
    bytes: Arc<AtomicU64>,
}

impl AsyncFileReader for StorageReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let b = self
                .storage
                .get_range(&self.file, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            self.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
            Ok(b)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let m = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 << 10))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(m))
        }
        .boxed()
    }
}

pub struct ParquetSplit {
    stream: ParquetRecordBatchStream<StorageReader>,
    schema: SchemaRef,
    file: String,
    /// Rows of the file before the next batch.
    row: u64,
    rows_read: u64,
    done: bool,
    bytes: Arc<AtomicU64>,
}

impl ParquetSplit {
    pub async fn open(
        storage: &Storage,
        split: &Split,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Result<Self> {
        let bytes = Arc::new(AtomicU64::new(0));
        let reader = StorageReader {
            storage: storage.clone(),
            file: split.file.clone(),
            size: split.size,
            bytes: bytes.clone(),
        };
        let unreadable = |e: ParquetError| match e {
            ParquetError::External(e) => RuntimeError::Connector(format!("{}: {e}", split.file)),
            e => RuntimeError::Input(format!("{}: not a readable Parquet file: {e}", split.file)),
        };
        let b = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(unreadable)?;
        let file_schema = b.schema().clone();
        let mut roots = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            match file_schema.index_of(f.name()) {
                Ok(i) => roots.push(i),
                Err(_) => {
                    return Err(RuntimeError::Input(format!(
                        "{}: the file has no column {:?} (it has {})",
                        split.file,
                        f.name(),
                        file_schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
        let mask = ProjectionMask::roots(b.parquet_schema(), roots);
        let resume = match split.resume {
            Progress::At { offset, .. } => offset,
            Progress::SkipRows(n) => n,
            Progress::Done => u64::MAX,
        };
        // The row group holding row `resume`, and the rows of it to skip.
        let groups: Vec<u64> = b
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows().max(0) as u64)
            .collect();
        let mut first = 0;
        let mut before = 0u64;
        while first < groups.len() && before + groups[first] <= resume {
            before += groups[first];
            first += 1;
        }
        let stream = b
            .with_projection(mask)
            .with_batch_size(batch_size)
            .with_row_groups((first..groups.len()).collect())
            .with_offset((resume.saturating_sub(before)) as usize)
            .build()
            .map_err(unreadable)?;
        Ok(Self {
            stream,
            schema,
            file: split.file.clone(),
            row: resume,
            rows_read: 0,
            done: false,
            bytes,
        })
    }

    pub async fn next(&mut self) -> Result<Option<RecordBatch>> {
        match self.stream.next().await {
            None => {
                self.done = true;
                Ok(None)
            }
            Some(Err(e)) => Err(match e {
                ParquetError::External(e) => RuntimeError::Connector(format!("{}: {e}", self.file)),
                e => RuntimeError::Input(format!("{}: {e}", self.file)),
            }),
            Some(Ok(b)) => {
                self.row += b.num_rows() as u64;
                self.rows_read += b.num_rows() as u64;
                let b = project_to(&b, &self.schema)
                    .map_err(|e| RuntimeError::Input(format!("{}: {e}", self.file)))?;
                Ok(Some(b))
            }
        }
    }

    pub fn progress(&self) -> Progress {
        if self.done {
            Progress::Done
        } else {
            Progress::At {
                offset: self.row,
                rows: self.row,
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows_read
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The declared columns of a batch read from a self-describing file, by name, cast to the
/// declared types.
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
