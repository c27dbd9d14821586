//! File source: reads the files a path names (one file, or every file below a folder, names
//! starting with `_` or `.` skipped), as JSON lines, CSV, plain lines or Parquet, streaming:
//! memory holds a fetched chunk and a batch, never a whole file.
//!
//! Large line-oriented files are read in byte ranges (splits) spread over the subtasks;
//! the checkpoint records, per split, the byte offset of the next record (Parquet: the next
//! row), so a restored source seeks there (`splits.rs` holds that protocol, `decode.rs` the
//! reading of one range). With `monitor_interval_ms` the source keeps listing its path and
//! reads each new file once.
//!
//! CSV as Flink's csv format reads it: no header line (unless the spec says `header`); an
//! empty field is the empty string in a VARCHAR column and an error in any other, unless the
//! spec names a `null_literal` (Flink's `csv.null-literal`): then that text is NULL in every
//! column (`""`: every empty field).

mod decode;
#[cfg(feature = "parquet")]
mod parquet_reader;
pub mod splits;

use arrow::array::{Array, StringArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use decode::{RangeReader, RowDecoder, Step};
use splits::{Layout, Listed, Progress, Split, Splits};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::operator::{OperatorContext, Restored, Source, SourcePoll};
use weir_storage::{SourcePath, StorageError};
use weir_types::{CheckpointId, FileFormat, FileSourceSpec};

/// Bytes fetched per read of a line-oriented file.
const CHUNK: u64 = 4 << 20;

pub struct FileSource {
    path: SourcePath,
    format: FileFormat,
    schema: SchemaRef,
    batch_size: usize,
    header: bool,
    null_literal: Option<String>,
    splits: Splits,
    monitor: Option<Duration>,
    next_scan: Instant,
    current: Option<Reading>,
    /// `op#subtask`, for logs and errors.
    name: String,
}

type Prefetch = (
    u64,
    tokio::task::JoinHandle<std::result::Result<Vec<u8>, StorageError>>,
);

/// The split being read.
struct Reading {
    split: Split,
    kind: ReadingKind,
    /// Bytes fetched from storage for this split.
    bytes: u64,
    /// Where the split was resumed.
    from: u64,
}

enum ReadingKind {
    Lines {
        reader: RangeReader,
        /// The next chunk, fetched while the current one is decoded.
        prefetch: Option<Prefetch>,
        /// Chunk buffers to read into again (two at most: the one decoded, the one fetched).
        spare: Vec<Vec<u8>>,
    },
    #[cfg(feature = "parquet")]
    Parquet(parquet_reader::ParquetSplit),
}

impl FileSource {
    pub async fn open(
        ctx: &OperatorContext,
        spec: &FileSourceSpec,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let monitor = spec.monitor_interval_ms.map(Duration::from_millis);
        let path = SourcePath::open(&ctx.storage, &spec.path, monitor.is_some())
            .await
            .map_err(source_path_error)?;
        let line_format = spec.format != FileFormat::Parquet;
        let mut splits = Splits::new(Layout {
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
            split_bytes: if line_format {
                spec.split_bytes
                    .unwrap_or(weir_types::job::DEFAULT_SPLIT_BYTES)
            } else {
                0
            },
            monitoring: monitor.is_some(),
            forget_after_ms: spec
                .forget_after_ms
                .unwrap_or(weir_types::job::DEFAULT_FORGET_AFTER_MS),
        });
        let mut list = true;
        if let Some(r) = restored {
            let mut old = Vec::with_capacity(r.snapshots.len());
            for (i, bytes) in &r.snapshots {
                old.push(splits::decode(bytes).map_err(|e| {
                    RuntimeError::State(weir_state::StateError::Corrupt(format!(
                        "file source snapshot of subtask {i}: {e}"
                    )))
                })?);
            }
            let legacy = splits.restore(old);
            // A bounded source reads the files its first attempt listed.
            list = legacy || monitor.is_some();
        }
        let listing = if list {
            list_files(&path).await?
        } else {
            Vec::new()
        };
        splits.discover(listing);
        Ok(Self {
            path,
            format: spec.format,
            schema: ctx.output_schema.clone(),
            batch_size: spec.batch_size.max(1) as usize,
            header: spec.header,
            null_literal: spec.null_literal.clone(),
            splits,
            monitor,
            next_scan: Instant::now() + monitor.unwrap_or_default(),
            current: None,
            name: format!("{}#{}", ctx.op_id, ctx.subtask),
        })
    }

    fn decoder(&self, at_file_start: bool) -> Result<Box<dyn RowDecoder>> {
        Ok(match self.format {
            FileFormat::Jsonl => Box::new(decode::Json {
                decoder: arrow::json::ReaderBuilder::new(self.schema.clone())
                    .with_batch_size(self.batch_size)
                    .build_decoder()?,
                batch_size: self.batch_size,
            }),
            FileFormat::Csv => {
                let mut b = arrow::csv::ReaderBuilder::new(self.schema.clone())
                    .with_header(self.header && at_file_start)
                    .with_batch_size(self.batch_size);
                if let Some(l) = self.null_literal.as_deref().filter(|l| !l.is_empty()) {
                    let re = regex::Regex::new(&format!("^{}$", regex::escape(l)))
                        .map_err(|e| RuntimeError::Plan(format!("csv null literal: {e}")))?;
                    b = b.with_null_regex(re);
                }
                Box::new(decode::Csv(b.build_decoder()))
            }
            FileFormat::Lines => Box::new(decode::Lines::new(self.schema.clone(), self.batch_size)),
            FileFormat::Parquet => {
                return Err(RuntimeError::Internal("parquet is no line format".into()))
            }
        })
    }

    async fn open_split(&mut self, split: Split) -> Result<()> {
        let from = match split.resume {
            Progress::At { offset, .. } => offset,
            _ => split.start,
        };
        info!(
            source = %self.name, file = %split.file, split = split.index, start = split.start,
            end = split.end, from, "reading file split"
        );
        let kind = if self.format == FileFormat::Parquet {
            #[cfg(feature = "parquet")]
            {
                ReadingKind::Parquet(
                    parquet_reader::ParquetSplit::open(
                        &self.path.storage,
                        &split,
                        self.schema.clone(),
                        self.batch_size,
                    )
                    .await?,
                )
            }
            #[cfg(not(feature = "parquet"))]
            {
                return Err(weir_planner::not_built("the parquet format", "parquet").into());
            }
        } else {
            let at_file_start = from == 0;
            ReadingKind::Lines {
                reader: RangeReader::new(
                    self.decoder(at_file_start)?,
                    split.start,
                    split.end,
                    split.size,
                    split.resume,
                    CHUNK,
                ),
                prefetch: None,
                spare: Vec::new(),
            }
        };
        self.current = Some(Reading {
            split,
            kind,
            bytes: 0,
            from,
        });
        Ok(())
    }

    /// The next batch of the current split, or `None` when it is done.
    async fn read_current(&mut self) -> Result<Option<RecordBatch>> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(None);
        };
        let storage = &self.path.storage;
        let file = cur.split.file.clone();
        match &mut cur.kind {
            ReadingKind::Lines {
                reader,
                prefetch,
                spare,
            } => loop {
                let step = reader
                    .next()
                    .map_err(|e| input_error(&file, reader.position(), e))?;
                match step {
                    Step::Batch(b) => return Ok(Some(b)),
                    Step::Done => return Ok(None),
                    Step::Fetch(from, to) => {
                        let data = match prefetch.take() {
                            Some((at, h)) if at == from => h.await.map_err(|e| {
                                RuntimeError::Internal(format!("file read task: {e}"))
                            })??,
                            _ => {
                                let buf = spare.pop().unwrap_or_default();
                                storage.read_range_into(&file, from..to, buf).await?
                            }
                        };
                        cur.bytes += data.len() as u64;
                        reader.push(&data);
                        let next = from + data.len() as u64;
                        let fetched_any = !data.is_empty();
                        spare.push(data);
                        // Read ahead within the split (past its end only on demand).
                        if fetched_any && next < cur.split.end {
                            let (s, f) = (storage.clone(), file.clone());
                            let to = (next + CHUNK).min(cur.split.size);
                            let buf = spare.pop().unwrap_or_default();
                            prefetch.replace((
                                next,
                                tokio::spawn(
                                    async move { s.read_range_into(&f, next..to, buf).await },
                                ),
                            ));
                        }
                    }
                }
            },
            #[cfg(feature = "parquet")]
            ReadingKind::Parquet(p) => {
                let b = p.next().await?;
                cur.bytes = p.bytes_read();
                Ok(b)
            }
        }
    }

    fn progress(&self) -> Option<(String, u32, Progress)> {
        let cur = self.current.as_ref()?;
        let p = match &cur.kind {
            ReadingKind::Lines { reader, .. } => reader.progress(),
            #[cfg(feature = "parquet")]
            ReadingKind::Parquet(p) => p.progress(),
        };
        Some((cur.split.file.clone(), cur.split.index, p))
    }

    /// Flink's CSV rules for empty fields, and no line break inside a quoted field of a file
    /// read in several splits (a split boundary could fall inside it).
    fn check_csv(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.format != FileFormat::Csv {
            return Ok(batch);
        }
        let Some(cur) = self.current.as_ref() else {
            return Ok(batch);
        };
        let (file, start) = (&cur.split.file, cur.split.start);
        let first = cur.rows().saturating_sub(batch.num_rows() as u64);
        let header = u64::from(self.header);
        let at = |row: usize| {
            if start == 0 {
                format!("{file}, line {}", first + header + 1 + row as u64)
            } else {
                format!(
                    "{file}, record {} of the range from byte {start}",
                    first + 1 + row as u64
                )
            }
        };
        if cur.split.start > 0 || cur.split.end < cur.split.size {
            check_no_line_breaks(&batch, &at)?;
        }
        if self.null_literal.is_none() {
            return csv_empty_fields(&batch, &at);
        }
        Ok(batch)
    }

    fn finish_current(&mut self) {
        if let Some(cur) = self.current.take() {
            let rows = cur.rows();
            info!(
                source = %self.name, file = %cur.split.file, split = cur.split.index,
                from = cur.from, bytes_read = cur.bytes, rows, "file split read"
            );
            self.splits
                .advance(&cur.split.file, cur.split.index, Progress::Done);
        }
    }
}

/// A string with a line break in a CSV file read in splits: its field was quoted, and a split
/// boundary may have cut such a record in two. Fails instead of reading it wrong.
fn check_no_line_breaks(batch: &RecordBatch, at: &dyn Fn(usize) -> String) -> Result<()> {
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        let Some(s) = c.as_any().downcast_ref::<StringArray>() else {
            continue;
        };
        if !s.values().iter().any(|b| *b == b'\n' || *b == b'\r') {
            continue;
        }
        let row = (0..s.len())
            .find(|r| s.is_valid(*r) && s.value(*r).contains(['\n', '\r']))
            .unwrap_or(0);
        return Err(RuntimeError::Input(format!(
            "{}: column {} holds a line break inside a quoted field, and this file is read in byte ranges cut at line breaks; set 'source.split-size' = '0' (JSON jobs: \"split_bytes\": 0) to read it whole",
            at(row),
            f.name()
        )));
    }
    Ok(())
}

impl Reading {
    /// Rows of the split read so far.
    fn rows(&self) -> u64 {
        match &self.kind {
            ReadingKind::Lines { reader, .. } => reader.rows(),
            #[cfg(feature = "parquet")]
            ReadingKind::Parquet(p) => p.rows(),
        }
    }
}

fn source_path_error(e: StorageError) -> RuntimeError {
    match e {
        StorageError::MissingSource { .. } => RuntimeError::Input(e.to_string()),
        e => RuntimeError::Storage(e),
    }
}

async fn list_files(path: &SourcePath) -> Result<Vec<Listed>> {
    Ok(path
        .list()
        .await
        .map_err(source_path_error)?
        .into_iter()
        .map(|f| Listed {
            path: f.rel,
            size: f.size,
            modified_ms: f.modified_ms,
        })
        .collect())
}

fn input_error(file: &str, offset: u64, e: arrow::error::ArrowError) -> RuntimeError {
    RuntimeError::Input(format!("{file}, record at byte {offset}: {e}"))
}

#[async_trait]
impl Source for FileSource {
    async fn poll_next(&mut self) -> Result<SourcePoll> {
        loop {
            if self.current.is_none() {
                match self.splits.next() {
                    Some(split) => self.open_split(split).await?,
                    None => {
                        let Some(every) = self.monitor else {
                            return Ok(SourcePoll::Exhausted);
                        };
                        let now = Instant::now();
                        if now < self.next_scan {
                            return Ok(SourcePoll::Wait(self.next_scan));
                        }
                        self.next_scan = now + every;
                        let listing = list_files(&self.path).await?;
                        let new = self.splits.discover(listing);
                        if new > 0 {
                            info!(source = %self.name, new, "new files found");
                        }
                        continue;
                    }
                }
            }
            match self.read_current().await? {
                None => self.finish_current(),
                Some(batch) => {
                    let Some((file, index, p)) = self.progress() else {
                        return Err(RuntimeError::Internal("a batch without a split".into()));
                    };
                    self.splits.advance(&file, index, p);
                    let batch = self.check_csv(batch)?;
                    return Ok(SourcePoll::Batch(batch));
                }
            }
        }
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>> {
        if let Some((file, index, p)) = self.progress() {
            self.splits.advance(&file, index, p);
        }
        Ok(Some(self.splits.snapshot()?))
    }
}

/// A CSV batch (without a null literal) as Flink's csv format reads it: arrow's reader reads
/// an empty field as NULL; in a string column it is the empty string, in any other an error
/// (Flink: "Fail to deserialize at field", an empty String is no number), naming the file,
/// line and column. `at(row)` says where a row of the batch is.
fn csv_empty_fields(batch: &RecordBatch, at: &dyn Fn(usize) -> String) -> Result<RecordBatch> {
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
                "{}: column {} ({}) is empty, which is no value of its type (as in Flink's csv format); set 'csv.null-literal' = '' (JSON jobs: \"null_literal\": \"\") to read empty fields as NULL",
                at(row),
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    fn strings(values: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(values.to_vec())) as arrow::array::ArrayRef],
        )
        .unwrap()
    }

    #[test]
    fn a_quoted_line_break_in_a_split_csv_file_is_an_error_naming_the_fix() {
        let at = |row: usize| format!("f.csv, record {} of the range from byte 64", row + 1);
        assert!(check_no_line_breaks(&strings(&["a", "b c", ""]), &at).is_ok());
        let err = check_no_line_breaks(&strings(&["a", "two\nlines"]), &at)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("f.csv, record 2 of the range from byte 64"),
            "{err}"
        );
        assert!(err.contains("'source.split-size' = '0'"), "{err}");
    }

    #[test]
    fn empty_csv_fields_are_empty_strings_or_an_error_with_the_line() {
        let at = |row: usize| format!("f.csv, line {}", row + 3);
        let b = csv_empty_fields(
            &RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)])),
                vec![Arc::new(StringArray::from(vec![Some("x"), None]))],
            )
            .unwrap(),
            &at,
        )
        .unwrap();
        let s = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((s.value(1), s.null_count()), ("", 0));
        let ints = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)])),
            vec![Arc::new(arrow::array::Int64Array::from(vec![
                Some(1),
                None,
            ]))],
        )
        .unwrap();
        let err = csv_empty_fields(&ints, &at).unwrap_err().to_string();
        assert!(err.contains("f.csv, line 4: column n"), "{err}");
    }
}
