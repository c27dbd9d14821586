//! Reading one split of a line-oriented file (CSV, JSON lines, plain lines) from byte chunks,
//! without I/O: the source fetches the ranges [`RangeReader::wants`] names and pushes them in;
//! the reader hands out batches and, between them, the byte offset of the next record.
//!
//! A split `start..end` reads the records that start in it: one that starts at `start`
//! (the file's start, or the byte after a line break at `start - 1`) through the one that
//! crosses `end`, which ends at the first line break at or after `end - 1`. The next split
//! skips to just that place, so each record is read once. Memory is one fetched chunk and
//! the record being decoded, whatever the file's size.

use arrow::array::{ArrayBuilder, ArrayRef, StringBuilder};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

use super::splits::Progress;

/// A push decoder of rows: arrow's CSV and JSON decoders, and plain lines.
pub trait RowDecoder: Send {
    /// Decodes from `buf` until a batch is full or `buf` is used; returns the bytes used.
    /// Bytes of a record not yet complete are kept by the decoder.
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError>;
    /// Rows that may still be decoded before [`RowDecoder::flush`].
    fn capacity(&self) -> usize;
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError>;
    /// The input ended: completes a last record without a line break, and flushes.
    fn finish(&mut self) -> Result<Option<RecordBatch>, ArrowError>;
}

pub struct Csv(pub arrow::csv::reader::Decoder);

impl RowDecoder for Csv {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError> {
        self.0.decode(buf)
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        self.0.flush()
    }
    fn finish(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        // An empty input is the end for csv-core: the last record is complete.
        self.0.decode(&[])?;
        self.0.flush()
    }
}

pub struct Json {
    pub decoder: arrow::json::reader::Decoder,
    pub batch_size: usize,
}

impl RowDecoder for Json {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError> {
        self.decoder.decode(buf)
    }
    fn capacity(&self) -> usize {
        // `len` counts a record begun but not complete.
        let complete = self.decoder.len() - usize::from(self.decoder.has_partial_record());
        self.batch_size.saturating_sub(complete)
    }
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        self.decoder.flush()
    }
    fn finish(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.decoder.has_partial_record() {
            return Err(ArrowError::JsonError(
                "the input ends inside a JSON value".into(),
            ));
        }
        self.decoder.flush()
    }
}

/// Plain lines: one `line` column; a line ends at `\n` or `\r\n`, and the last one needs
/// neither (as Rust's `str::lines`).
pub struct Lines {
    schema: SchemaRef,
    batch_size: usize,
    rows: StringBuilder,
    partial: Vec<u8>,
}

impl Lines {
    pub fn new(schema: SchemaRef, batch_size: usize) -> Self {
        Self {
            schema,
            batch_size,
            rows: StringBuilder::new(),
            partial: Vec::new(),
        }
    }

    fn push(&mut self, line: &[u8]) -> Result<(), ArrowError> {
        let text = std::str::from_utf8(line)
            .map_err(|e| ArrowError::ParseError(format!("a line is not UTF-8: {e}")))?;
        self.rows.append_value(text);
        Ok(())
    }
}

impl RowDecoder for Lines {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError> {
        let mut used = 0;
        while self.capacity() > 0 {
            let Some(i) = buf[used..].iter().position(|b| *b == b'\n') else {
                self.partial.extend_from_slice(&buf[used..]);
                return Ok(buf.len());
            };
            let rest = &buf[used..used + i];
            if self.partial.is_empty() {
                self.push(rest.strip_suffix(b"\r").unwrap_or(rest))?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(rest);
                self.push(line.strip_suffix(b"\r").unwrap_or(&line))?;
            }
            used += i + 1;
        }
        Ok(used)
    }
    fn capacity(&self) -> usize {
        self.batch_size.saturating_sub(self.rows.len())
    }
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let col: ArrayRef = Arc::new(self.rows.finish());
        RecordBatch::try_new(self.schema.clone(), vec![col]).map(Some)
    }
    fn finish(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.push(&last)?;
        }
        self.flush()
    }
}

/// What the reader needs next.
#[derive(Debug)]
pub enum Step {
    Batch(RecordBatch),
    /// Push bytes `from..to` of the file.
    Fetch(u64, u64),
    Done,
}

/// One split being read.
pub struct RangeReader {
    decoder: Box<dyn RowDecoder>,
    buf: Vec<u8>,
    /// `buf[cur..]` is not yet decoded; `buf[cur]` is byte `pos` of the file.
    cur: usize,
    pos: u64,
    fetched_to: u64,
    end: u64,
    size: u64,
    chunk: u64,
    /// Where the last record of the split ends, once known.
    stop: Option<u64>,
    scan_from: u64,
    /// A split's first record: skip to the byte after the first line break.
    skip_to_line: bool,
    skip_rows: u64,
    rows: u64,
    done: bool,
}

impl RangeReader {
    pub fn new(
        decoder: Box<dyn RowDecoder>,
        start: u64,
        end: u64,
        size: u64,
        resume: Progress,
        chunk: u64,
    ) -> Self {
        let (pos, rows, skip_rows, skip_to_line, done) = match resume {
            Progress::Done => (end, 0, 0, false, true),
            // A record starts at every offset recorded; none of this split starts at `end`.
            Progress::At { offset, rows } if offset >= end => (offset, rows, 0, false, true),
            Progress::SkipRows(n) => (start, 0, n, start > 0, false),
            Progress::At { offset, rows } if offset == start && start > 0 => {
                (start - 1, rows, 0, true, false)
            }
            Progress::At { offset, rows } => (offset, rows, 0, false, false),
        };
        Self {
            decoder,
            buf: Vec::new(),
            cur: 0,
            pos,
            fetched_to: pos,
            end,
            size,
            chunk: chunk.max(1),
            stop: (end >= size).then_some(size),
            scan_from: end.saturating_sub(1),
            skip_to_line,
            skip_rows,
            rows,
            done,
        }
    }

    /// Where to resume: valid between batches (the decoder then holds no record).
    pub fn progress(&self) -> Progress {
        if self.done {
            Progress::Done
        } else {
            Progress::At {
                offset: self.pos,
                rows: self.rows,
            }
        }
    }

    /// Rows of the split read so far (with those before a resume).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The file offset of the next record.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Appends the bytes from `fetched_to` on (the range [`Step::Fetch`] asked for).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.cur > 0 {
            self.buf.drain(..self.cur);
            self.cur = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.fetched_to += bytes.len() as u64;
        if self.stop.is_none() {
            let from = self.scan_from.max(self.pos);
            if from < self.fetched_to {
                let i = (from - self.pos) as usize + self.cur;
                match self.buf[i..].iter().position(|b| *b == b'\n') {
                    Some(j) => self.stop = Some(from + j as u64 + 1),
                    None => self.scan_from = self.fetched_to,
                }
            }
            if self.stop.is_none() && (self.fetched_to >= self.size || bytes.is_empty()) {
                self.stop = Some(self.fetched_to);
            }
        }
    }

    pub fn next(&mut self) -> Result<Step, ArrowError> {
        loop {
            if self.done {
                return Ok(Step::Done);
            }
            if self.skip_to_line {
                match self.buf[self.cur..].iter().position(|b| *b == b'\n') {
                    Some(j) => {
                        self.cur += j + 1;
                        self.pos += j as u64 + 1;
                        self.skip_to_line = false;
                        if self.pos >= self.end {
                            // A line crossing the whole split: it belongs to an earlier one.
                            self.done = true;
                            return Ok(Step::Done);
                        }
                    }
                    None => {
                        self.pos += (self.buf.len() - self.cur) as u64;
                        self.cur = self.buf.len();
                        if self.fetched_to >= self.size || self.pos >= self.end {
                            self.done = true;
                            return Ok(Step::Done);
                        }
                        return Ok(self.fetch());
                    }
                }
            }
            let limit = self.stop.unwrap_or(self.scan_from).min(self.fetched_to);
            let mut used = 0;
            if limit > self.pos {
                let n = (limit - self.pos) as usize;
                used = self.decoder.decode(&self.buf[self.cur..self.cur + n])?;
                self.cur += used;
                self.pos += used as u64;
            }
            if self.decoder.capacity() == 0 {
                if self.stop == Some(self.pos) {
                    self.done = true;
                }
                if let Some(b) = self.decoder.flush()? {
                    if let Some(b) = self.emit(b) {
                        return Ok(Step::Batch(b));
                    }
                }
                continue;
            }
            if self.stop == Some(self.pos) {
                self.done = true;
                return Ok(match self.decoder.finish()?.and_then(|b| self.emit(b)) {
                    Some(b) => Step::Batch(b),
                    None => Step::Done,
                });
            }
            if used > 0 && limit > self.pos {
                // The decoder stopped early (after a CSV header): feed it the rest.
                continue;
            }
            if self.fetched_to >= self.size {
                return Err(ArrowError::ParseError(format!(
                    "the decoder took no more of the last {} bytes",
                    limit.saturating_sub(self.pos)
                )));
            }
            return Ok(self.fetch());
        }
    }

    fn fetch(&self) -> Step {
        Step::Fetch(
            self.fetched_to,
            (self.fetched_to + self.chunk).min(self.size),
        )
    }

    fn emit(&mut self, b: RecordBatch) -> Option<RecordBatch> {
        let n = b.num_rows() as u64;
        self.rows += n;
        if self.skip_rows >= n {
            self.skip_rows -= n;
            return None;
        }
        let skip = self.skip_rows as usize;
        self.skip_rows = 0;
        Some(b.slice(skip, b.num_rows() - skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    /// Runs `r` to its end over `data`; returns its batches and where each fetch started
    /// (no fetch may be empty).
    fn drive(r: &mut RangeReader, data: &[u8]) -> (Vec<RecordBatch>, Vec<u64>) {
        let (mut batches, mut fetches) = (Vec::new(), Vec::new());
        loop {
            match r.next().unwrap() {
                Step::Batch(b) => batches.push(b),
                Step::Fetch(f, t) => {
                    assert!(f < t, "an empty fetch {f}..{t}");
                    fetches.push(f);
                    r.push(&data[f as usize..t as usize]);
                }
                Step::Done => return (batches, fetches),
            }
        }
    }

    /// The first column of `batches`, as integers.
    fn ints(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                c.iter().map(|v| v.unwrap()).collect::<Vec<_>>()
            })
            .collect()
    }

    fn lines_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]))
    }

    /// Reads `data[start..end]` as split of plain lines, fetching `chunk` bytes at a time,
    /// and returns the lines.
    fn read_lines(data: &[u8], start: u64, end: u64, chunk: u64, batch: usize) -> Vec<String> {
        let mut r = RangeReader::new(
            Box::new(Lines::new(lines_schema(), batch)),
            start,
            end,
            data.len() as u64,
            Progress::At {
                offset: start,
                rows: 0,
            },
            chunk,
        );
        let (batches, _) = drive(&mut r, data);
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                c.iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_line_is_read_once_whatever_the_cuts() {
        let data = b"alpha\r\nbeta\n\ngamma-long-line\nd\nlast-without-newline";
        let whole = read_lines(data, 0, data.len() as u64, 3, 2);
        assert_eq!(
            whole,
            vec![
                "alpha",
                "beta",
                "",
                "gamma-long-line",
                "d",
                "last-without-newline"
            ]
        );
        for split in 1..=data.len() as u64 {
            for chunk in [1, 2, 5, 64] {
                let mut got = Vec::new();
                let mut s = 0;
                while s < data.len() as u64 {
                    let e = (s + split).min(data.len() as u64);
                    got.extend(read_lines(data, s, e, chunk, 2));
                    s = e;
                }
                assert_eq!(got, whole, "split {split}, chunk {chunk}");
            }
        }
    }

    #[test]
    fn a_resumed_split_starts_at_its_offset_and_reads_nothing_before() {
        let data = b"1,a\n2,b\n3,c\n4,d\n";
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let csv = |schema: &SchemaRef| -> Box<dyn RowDecoder> {
            Box::new(Csv(arrow::csv::ReaderBuilder::new(schema.clone())
                .with_batch_size(2)
                .build_decoder()))
        };
        let mut r = RangeReader::new(
            csv(&schema),
            0,
            16,
            16,
            Progress::At { offset: 0, rows: 0 },
            4,
        );
        let mut first = None;
        while first.is_none() {
            match r.next().unwrap() {
                Step::Batch(b) => first = Some(b),
                Step::Fetch(f, t) => r.push(&data[f as usize..t as usize]),
                Step::Done => panic!("ended early"),
            }
        }
        assert_eq!(first.unwrap().num_rows(), 2);
        let at = r.progress();
        assert_eq!(at, Progress::At { offset: 8, rows: 2 });
        let mut r = RangeReader::new(csv(&schema), 0, 16, 16, at, 4);
        let (batches, fetched) = drive(&mut r, data);
        assert_eq!(ints(&batches), vec![3, 4]);
        assert_eq!(fetched[0], 8, "the resumed reader fetches from its offset");
        assert_eq!(r.progress(), Progress::Done);
        assert_eq!(r.rows(), 4);
    }

    #[test]
    fn a_csv_header_is_skipped_and_the_rest_read() {
        let data = b"n\n1\n2\n3";
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let mut r = RangeReader::new(
            Box::new(Csv(arrow::csv::ReaderBuilder::new(schema)
                .with_header(true)
                .with_batch_size(10)
                .build_decoder())),
            0,
            7,
            7,
            Progress::At { offset: 0, rows: 0 },
            3,
        );
        assert_eq!(ints(&drive(&mut r, data).0), vec![1, 2, 3]);
    }

    #[test]
    fn old_snapshots_skip_rows_from_the_start() {
        let data = b"a\nb\nc\n";
        let mut r = RangeReader::new(
            Box::new(Lines::new(lines_schema(), 2)),
            0,
            6,
            6,
            Progress::SkipRows(1),
            100,
        );
        let rows: usize = drive(&mut r, data).0.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2);
    }

    #[test]
    fn json_lines_split_at_any_byte_read_every_record_once() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let data: Vec<u8> = (0..50)
            .map(|i| format!("{{\"k\": {i}}}\n"))
            .collect::<String>()
            .into_bytes();
        for split in [1u64, 7, 13, 100, 1000] {
            let mut got = Vec::new();
            let mut s = 0;
            while s < data.len() as u64 {
                let e = (s + split).min(data.len() as u64);
                let mut r = RangeReader::new(
                    Box::new(Json {
                        decoder: arrow::json::ReaderBuilder::new(schema.clone())
                            .with_batch_size(4)
                            .build_decoder()
                            .unwrap(),
                        batch_size: 4,
                    }),
                    s,
                    e,
                    data.len() as u64,
                    Progress::At { offset: s, rows: 0 },
                    5,
                );
                got.extend(ints(&drive(&mut r, &data).0));
                s = e;
            }
            assert_eq!(got, (0..50).collect::<Vec<i64>>(), "split {split}");
        }
    }
}
