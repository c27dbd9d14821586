//! Inner equi-joins: one operator for regular, interval and window joins.
//!
//! Both inputs arrive hash-partitioned by their join keys, so equal keys meet in one subtask.
//! Each side keeps its rows in keyed state (Arrow's row format, by key, with the key's key
//! group); a row from one side probes the other side's rows of its key, every pair for which
//! the residual filter holds is emitted right away, and the row is stored for the other
//! side's rows still to come. Inner joins of append-only inputs are append-only: nothing is
//! ever retracted, so emitting eagerly gives the same rows as emitting at window end.
//!
//! What bounds the state is the join condition, which the SQL translator turns into expiry
//! bounds (`ExpireBound`): a row whose expiry the watermark has reached can match no row still
//! to come (for `l.t BETWEEN r.t - 10 s AND r.t`, a right row expires at `r.t` plus the left
//! side's slack), so it is dropped. A side without bounds keeps its rows (a regular join). A
//! row that arrives already expired still probes the other side but is not stored.
//!
//! Snapshots hold each side's rows as an Arrow IPC stream (the side's columns plus key group
//! and expiry), so they are checked on restore, independent of the row format's encoding, and
//! restore at another parallelism by key group.

use super::{Operator, OperatorContext, Restored};
use crate::error::{Result, RuntimeError};
use crate::expr::{compile, CompiledExpr};
use crate::hashing::{hash_columns, is_key_type};
use crate::message::Barrier;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, UInt32Array};
use arrow::compute::{cast, filter_record_batch, take};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, UInt32Type};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use tracing::debug;
use weir_state::FastMap;
use weir_types::keygroup::{key_group, key_group_range};
use weir_types::JoinSpec;

/// The output schema: the left side's columns, then the right's, named by `spec.columns`
/// (or their own names).
pub fn schema(spec: &JoinSpec, left: &Schema, right: &Schema, op: &str) -> Result<SchemaRef> {
    let err = |m: String| RuntimeError::Plan(format!("operator {op:?}: {m}"));
    for (l, r) in spec.left_keys.iter().zip(&spec.right_keys) {
        let lf = left
            .field_with_name(l)
            .map_err(|_| err(format!("unknown left key column {l:?}")))?;
        let rf = right
            .field_with_name(r)
            .map_err(|_| err(format!("unknown right key column {r:?}")))?;
        if !is_key_type(lf.data_type()) {
            return Err(err(format!(
                "cannot join on {l:?} of type {}",
                lf.data_type()
            )));
        }
        if lf.data_type() != rf.data_type() {
            return Err(err(format!(
                "join keys {l:?} ({}) and {r:?} ({}) have different types",
                lf.data_type(),
                rf.data_type()
            )));
        }
    }
    let fields: Vec<&Field> = left
        .fields()
        .iter()
        .chain(right.fields().iter())
        .map(|f| f.as_ref())
        .collect();
    let names: Vec<String> = if spec.columns.is_empty() {
        fields.iter().map(|f| f.name().clone()).collect()
    } else if spec.columns.len() == fields.len() {
        spec.columns.clone()
    } else {
        return Err(err(format!(
            "\"columns\" names {} columns; the inputs have {}",
            spec.columns.len(),
            fields.len()
        )));
    };
    let mut out = Vec::with_capacity(fields.len());
    for (f, name) in fields.iter().zip(&names) {
        if out.iter().any(|o: &Field| o.name() == name) {
            return Err(err(format!(
                "output column {name:?} appears twice (name the columns with \"columns\")"
            )));
        }
        out.push(f.as_ref().clone().with_name(name));
    }
    let out: SchemaRef = Arc::new(Schema::new(out));
    if let Some(f) = &spec.filter {
        let e = compile(f, &out).map_err(|e| err(e.to_string()))?;
        if e.data_type != DataType::Boolean {
            return Err(err(format!("join filter {f:?} is not a predicate")));
        }
    }
    Ok(out)
}

/// One side's rows, by join key, without an allocation per row or per key.
///
/// Rows (each its key's bytes then its own, in Arrow's row format) are appended to an arena
/// of large chunks, in arrival order, and listed in `rows` in that order. A key's rows are
/// chained through `next`, from its slot's `head` to its `tail`. Rows arrive in roughly
/// increasing expiry, so expiring pops from the front of `rows`: a row that expires before
/// an earlier one waits for it (memory only: the filter decides matches). A popped row is
/// always its key's head (a key's rows are in arrival order too), and chunks are freed once
/// no row points into them.
struct Side {
    schema: SchemaRef,
    keys: Vec<usize>,
    key_rows: RowConverter,
    rows_format: RowConverter,
    expire: Vec<(CompiledExpr, i64)>,
    /// Key hash (the one partitioning used) -> the first slot of that hash; slots of one
    /// hash (different keys) are chained through `Slot::next_in_bucket`.
    index: FastMap<u64, u32>,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    /// The stored rows in arrival order; `rows[i]` has id `first_row + i`.
    rows: VecDeque<StoredRow>,
    first_row: u64,
    /// The arena; `chunks[i]` has number `first_chunk + i`.
    chunks: VecDeque<Vec<u8>>,
    first_chunk: u64,
}

const NO_ROW: u64 = u64::MAX;
const NO_SLOT: u32 = u32::MAX;
/// Arena chunk size: big enough that allocations are rare, small enough to free memory as
/// rows expire.
const CHUNK: usize = 1 << 20;

struct Slot {
    hash: u64,
    key_group: u32,
    next_in_bucket: u32,
    head: u64,
    tail: u64,
    /// A short key's bytes (most keys: an integer is 9 bytes in the row format), so a lookup
    /// compares them here instead of in the arena; `key_len` is `LONG_KEY` for longer keys.
    key: [u8; INLINE_KEY],
    key_len: u8,
}

const INLINE_KEY: usize = 16;
const LONG_KEY: u8 = u8::MAX;

impl Slot {
    fn inline(key: &[u8]) -> ([u8; INLINE_KEY], u8) {
        let mut bytes = [0u8; INLINE_KEY];
        if key.len() <= INLINE_KEY {
            bytes[..key.len()].copy_from_slice(key);
            (bytes, key.len() as u8)
        } else {
            (bytes, LONG_KEY)
        }
    }
}

struct StoredRow {
    expires: i64,
    slot: u32,
    /// The key's next row (its id), or `NO_ROW`.
    next: u64,
    chunk: u64,
    start: u32,
    key_len: u32,
    row_len: u32,
}

impl Side {
    fn new(
        schema: &SchemaRef,
        keys: &[String],
        expire: &[weir_types::ExpireBound],
    ) -> Result<Self> {
        let keys = super::column_indices(schema, keys)?;
        let sort = |i: usize| SortField::new(schema.field(i).data_type().clone());
        let expire = expire
            .iter()
            .map(|b| Ok((compile(&b.expr, schema)?, b.offset_ms)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            schema: schema.clone(),
            key_rows: RowConverter::new(keys.iter().map(|i| sort(*i)).collect())?,
            rows_format: RowConverter::new((0..schema.fields().len()).map(sort).collect())?,
            keys,
            expire,
            index: FastMap::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            rows: VecDeque::new(),
            first_row: 0,
            chunks: VecDeque::new(),
            first_chunk: 0,
        })
    }

    /// How many rows the side holds.
    fn held(&self) -> usize {
        self.rows.len()
    }

    /// Each row's expiry: the earliest of the bounds (`i64::MAX` without bounds; a NULL
    /// bound makes the condition false for good, so the row expires at once).
    fn expiries(&self, batch: &RecordBatch) -> Result<Vec<i64>> {
        let mut out = vec![i64::MAX; batch.num_rows()];
        for (e, offset) in &self.expire {
            let v = e.evaluate(batch)?;
            let v = match v.data_type() {
                DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => v,
                DataType::Timestamp(_, _) => {
                    cast(&v, &DataType::Timestamp(TimeUnit::Millisecond, None))?
                }
                _ => v,
            };
            let v = cast(&v, &DataType::Int64)?;
            let v = v.as_primitive::<Int64Type>();
            for (r, o) in out.iter_mut().enumerate() {
                let x = if v.is_null(r) {
                    i64::MIN
                } else {
                    v.value(r).saturating_add(*offset)
                };
                *o = (*o).min(x);
            }
        }
        Ok(out)
    }

    fn row(&self, id: u64) -> &StoredRow {
        &self.rows[(id - self.first_row) as usize]
    }

    /// A stored row's (key, row) bytes.
    fn bytes(&self, r: &StoredRow) -> (&[u8], &[u8]) {
        let chunk = &self.chunks[(r.chunk - self.first_chunk) as usize];
        let start = r.start as usize;
        let mid = start + r.key_len as usize;
        (&chunk[start..mid], &chunk[mid..mid + r.row_len as usize])
    }

    /// The slot of `key` (with hash `hash`), if the side holds rows of it.
    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let mut s = *self.index.get(&hash)?;
        let short = key.len() <= INLINE_KEY;
        while s != NO_SLOT {
            let slot = &self.slots[s as usize];
            let same = if short {
                slot.key_len as usize == key.len() && slot.key[..key.len()] == *key
            } else {
                slot.key_len == LONG_KEY && self.bytes(self.row(slot.head)).0 == key
            };
            if same {
                return Some(s);
            }
            s = slot.next_in_bucket;
        }
        None
    }

    /// The rows of `key` (with hash `hash`), oldest first.
    fn matches(&self, hash: u64, key: &[u8]) -> impl Iterator<Item = &[u8]> {
        let mut id = self
            .find(hash, key)
            .map_or(NO_ROW, |s| self.slots[s as usize].head);
        std::iter::from_fn(move || {
            if id == NO_ROW {
                return None;
            }
            let r = self.row(id);
            id = r.next;
            Some(self.bytes(r).1)
        })
    }

    fn insert(&mut self, hash: u64, key_group: u32, key: &[u8], expires: i64, row: &[u8]) {
        let id = self.first_row + self.rows.len() as u64;
        // the bytes, into the last chunk if they fit
        let len = key.len() + row.len();
        if self
            .chunks
            .back()
            .is_none_or(|c| c.capacity() - c.len() < len)
        {
            self.chunks.push_back(Vec::with_capacity(CHUNK.max(len)));
        }
        let chunk_no = self.first_chunk + self.chunks.len() as u64 - 1;
        let chunk = self.chunks.back_mut().expect("a chunk was just ensured");
        let start = chunk.len() as u32;
        chunk.extend_from_slice(key);
        chunk.extend_from_slice(row);
        let slot = match self.find(hash, key) {
            Some(s) => {
                let tail = self.slots[s as usize].tail;
                let i = (tail - self.first_row) as usize;
                self.rows[i].next = id;
                self.slots[s as usize].tail = id;
                s
            }
            None => {
                let next_in_bucket = self.index.get(&hash).copied().unwrap_or(NO_SLOT);
                let (inline, key_len) = Slot::inline(key);
                let slot = Slot {
                    hash,
                    key_group,
                    next_in_bucket,
                    head: id,
                    tail: id,
                    key: inline,
                    key_len,
                };
                let s = match self.free_slots.pop() {
                    Some(s) => {
                        self.slots[s as usize] = slot;
                        s
                    }
                    None => {
                        self.slots.push(slot);
                        (self.slots.len() - 1) as u32
                    }
                };
                self.index.insert(hash, s);
                s
            }
        };
        self.rows.push_back(StoredRow {
            expires,
            slot,
            next: NO_ROW,
            chunk: chunk_no,
            start,
            key_len: key.len() as u32,
            row_len: row.len() as u32,
        });
    }

    /// Drops rows whose expiry is at or below `w`, from the oldest, up to the first one that
    /// has not expired.
    fn expire(&mut self, w: i64) {
        while self.rows.front().is_some_and(|r| r.expires <= w) {
            let Some(r) = self.rows.pop_front() else {
                break;
            };
            self.first_row += 1;
            let s = r.slot;
            let slot = &mut self.slots[s as usize];
            slot.head = r.next;
            if r.next == NO_ROW {
                self.unlink(s);
            }
        }
        // Free the chunks no row points into any more (all of them once the side is empty,
        // but the last one, which is reused).
        let keep_from = match self.rows.front() {
            Some(r) => r.chunk,
            None => {
                if let Some(c) = self.chunks.back_mut() {
                    c.clear();
                }
                self.first_chunk + self.chunks.len().saturating_sub(1) as u64
            }
        };
        while self.first_chunk < keep_from && !self.chunks.is_empty() {
            self.chunks.pop_front();
            self.first_chunk += 1;
        }
    }

    /// Removes slot `s` (its key has no rows left) from its hash's chain.
    fn unlink(&mut self, s: u32) {
        let (hash, after) = {
            let slot = &self.slots[s as usize];
            (slot.hash, slot.next_in_bucket)
        };
        match self.index.get(&hash).copied() {
            Some(first) if first == s => {
                if after == NO_SLOT {
                    self.index.remove(&hash);
                } else {
                    self.index.insert(hash, after);
                }
            }
            Some(mut prev) => {
                while prev != NO_SLOT {
                    let next = self.slots[prev as usize].next_in_bucket;
                    if next == s {
                        self.slots[prev as usize].next_in_bucket = after;
                        break;
                    }
                    prev = next;
                }
            }
            None => {}
        }
        self.free_slots.push(s);
    }

    /// The rows as an IPC stream: the side's columns, then `__key_group` and `__expires`.
    fn snapshot(&self) -> Result<Vec<u8>> {
        let parser = self.rows_format.parser();
        let mut groups = Vec::with_capacity(self.held());
        let mut expires = Vec::with_capacity(self.held());
        let mut rows = Vec::with_capacity(self.held());
        for r in &self.rows {
            groups.push(self.slots[r.slot as usize].key_group);
            expires.push(r.expires);
            rows.push(parser.parse(self.bytes(r).1));
        }
        let mut cols = self.rows_format.convert_rows(rows)?;
        cols.push(Arc::new(UInt32Array::from(groups)));
        cols.push(Arc::new(Int64Array::from(expires)));
        let schema = snapshot_schema(&self.schema);
        let batch = RecordBatch::try_new(schema.clone(), cols)?;
        let mut w = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema)?;
        w.write(&batch)?;
        w.finish()?;
        Ok(w.into_inner()?)
    }

    /// Adds the rows of an old subtask's snapshot whose key groups are in `range`.
    fn restore(&mut self, bytes: &[u8], range: &Range<u32>) -> Result<()> {
        let corrupt = |m: String| RuntimeError::State(weir_state::StateError::Corrupt(m));
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| corrupt(format!("join state: {e}")))?;
        let expected = snapshot_schema(&self.schema);
        for batch in reader {
            let batch = batch.map_err(|e| corrupt(format!("join state: {e}")))?;
            let same = batch.num_columns() == expected.fields().len()
                && batch
                    .schema()
                    .fields()
                    .iter()
                    .zip(expected.fields())
                    .all(|(a, b)| a.data_type() == b.data_type());
            if !same {
                return Err(RuntimeError::Plan(format!(
                    "the restored join state has columns {:?}, the join's input now has {:?}",
                    batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>(),
                    self.schema
                        .fields()
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                )));
            }
            let n = self.schema.fields().len();
            let groups = batch.column(n).as_primitive::<UInt32Type>().clone();
            let expires = batch.column(n + 1).as_primitive::<Int64Type>().clone();
            let data = RecordBatch::try_new(self.schema.clone(), batch.columns()[..n].to_vec())
                .map_err(|e| corrupt(format!("join state: {e}")))?;
            let key_cols: Vec<ArrayRef> =
                self.keys.iter().map(|i| data.column(*i).clone()).collect();
            let mut hashes = Vec::new();
            hash_columns(&key_cols, &mut hashes)?;
            let keys = self.key_rows.convert_columns(&key_cols)?;
            let rows = self.rows_format.convert_columns(data.columns())?;
            for (r, h) in hashes.iter().enumerate() {
                let kg = groups.value(r);
                if range.contains(&kg) {
                    self.insert(
                        *h,
                        kg,
                        keys.row(r).as_ref(),
                        expires.value(r),
                        rows.row(r).as_ref(),
                    );
                }
            }
        }
        Ok(())
    }
}

fn snapshot_schema(side: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = side.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("__key_group", DataType::UInt32, false));
    fields.push(Field::new("__expires", DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    watermark: i64,
    left: Vec<u8>,
    right: Vec<u8>,
}

pub struct Join {
    op_id: String,
    sides: [Side; 2],
    filter: Option<CompiledExpr>,
    output: SchemaRef,
    watermark: i64,
    max_parallelism: u32,
    range: Range<u32>,
    hashes: Vec<u64>,
}

impl Join {
    pub fn new(ctx: &OperatorContext, spec: &JoinSpec, restored: Option<Restored>) -> Result<Self> {
        let [left, right] = ctx.input_schemas.as_slice() else {
            return Err(RuntimeError::Internal(format!(
                "join {} has {} input schemas, not 2",
                ctx.op_id,
                ctx.input_schemas.len()
            )));
        };
        let filter = spec
            .filter
            .as_deref()
            .map(|f| compile(f, &ctx.output_schema))
            .transpose()?;
        let mut op = Self {
            op_id: ctx.op_id.clone(),
            sides: [
                Side::new(left, &spec.left_keys, &spec.left_expire)?,
                Side::new(right, &spec.right_keys, &spec.right_expire)?,
            ],
            filter,
            output: ctx.output_schema.clone(),
            watermark: i64::MIN,
            max_parallelism: ctx.max_parallelism,
            range: key_group_range(ctx.subtask, ctx.max_parallelism, ctx.parallelism),
            hashes: Vec::new(),
        };
        if let Some(r) = restored {
            let mut watermark = None::<i64>;
            for (_, bytes) in &r.snapshots {
                let s: Snapshot = weir_state::decode(bytes)?;
                // The lowest of the old subtasks' watermarks: a restored key may come from any.
                watermark = Some(watermark.map_or(s.watermark, |w| w.min(s.watermark)));
                op.sides[0].restore(&s.left, &op.range)?;
                op.sides[1].restore(&s.right, &op.range)?;
            }
            op.watermark = watermark.unwrap_or(i64::MIN);
        }
        Ok(op)
    }
}

#[async_trait]
impl Operator for Join {
    async fn process(&mut self, _batch: RecordBatch) -> Result<Option<RecordBatch>> {
        Err(RuntimeError::Internal(format!(
            "join {} got a batch without its input",
            self.op_id
        )))
    }

    async fn process_input(
        &mut self,
        input: usize,
        batch: RecordBatch,
    ) -> Result<Option<RecordBatch>> {
        if input > 1 {
            return Err(RuntimeError::Internal(format!(
                "join {} has no input {input}",
                self.op_id
            )));
        }
        let n = batch.num_rows();
        if n == 0 {
            return Ok(None);
        }
        let [left, right] = &mut self.sides;
        let (this, other) = if input == 0 {
            (left, &*right)
        } else {
            (right, &*left)
        };
        let key_cols: Vec<ArrayRef> = this.keys.iter().map(|i| batch.column(*i).clone()).collect();
        hash_columns(&key_cols, &mut self.hashes)?;
        let keys = this.key_rows.convert_columns(&key_cols)?;
        let rows = this.rows_format.convert_columns(batch.columns())?;
        let expiries = this.expiries(&batch)?;
        let mut probe: Vec<u32> = Vec::new();
        let mut matched: Vec<&[u8]> = Vec::new();
        for (r, &expires) in expiries.iter().enumerate() {
            if key_cols.iter().any(|c| c.is_null(r)) {
                continue; // NULL equals nothing
            }
            let kg = key_group(self.hashes[r], self.max_parallelism);
            if !self.range.contains(&kg) {
                return Err(RuntimeError::Internal(format!(
                    "key group {kg} arrived at a subtask owning {:?}: upstream partitioning disagrees",
                    self.range
                )));
            }
            let key = keys.row(r);
            let hash = self.hashes[r];
            for row in other.matches(hash, key.as_ref()) {
                probe.push(r as u32);
                matched.push(row);
            }
            if expires > self.watermark {
                this.insert(hash, kg, key.as_ref(), expires, rows.row(r).as_ref());
            }
        }
        if probe.is_empty() {
            return Ok(None);
        }
        let idx = UInt32Array::from(probe);
        let mut mine = Vec::with_capacity(batch.num_columns());
        for c in batch.columns() {
            mine.push(take(c, &idx, None)?);
        }
        let parser = other.rows_format.parser();
        let theirs = other
            .rows_format
            .convert_rows(matched.iter().map(|b| parser.parse(b)))?;
        let cols = if input == 0 {
            mine.into_iter().chain(theirs).collect()
        } else {
            theirs.into_iter().chain(mine).collect()
        };
        let out = RecordBatch::try_new(self.output.clone(), cols)?;
        let out = match &self.filter {
            Some(f) => filter_record_batch(&out, &f.evaluate_predicate(&out)?)?,
            None => out,
        };
        Ok((out.num_rows() > 0).then_some(out))
    }

    async fn on_watermark(&mut self, w: i64) -> Result<Option<RecordBatch>> {
        if w > self.watermark {
            self.watermark = w;
            for s in &mut self.sides {
                s.expire(w);
            }
            debug!(
                op = %self.op_id,
                left = self.sides[0].held(),
                right = self.sides[1].held(),
                "join rows held"
            );
        }
        Ok(None)
    }

    async fn snapshot(&mut self, _barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        let snap = Snapshot {
            watermark: self.watermark,
            left: self.sides[0].snapshot()?,
            right: self.sides[1].snapshot()?,
        };
        Ok(Some(weir_state::encode(&snap)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use bytes::Bytes;
    use weir_types::ExpireBound;

    fn left() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]))
    }

    fn right() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("seller", DataType::Int64, true),
            Field::new("price", DataType::Int64, false),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]))
    }

    fn spec() -> JoinSpec {
        JoinSpec {
            left_keys: vec!["id".into()],
            right_keys: vec!["seller".into()],
            filter: None,
            columns: ["id", "name", "lt", "seller", "price", "rt"]
                .map(String::from)
                .to_vec(),
            left_expire: vec![],
            right_expire: vec![],
        }
    }

    fn op(spec: &JoinSpec, subtask: u32, parallelism: u32, restored: Option<Restored>) -> Join {
        let ctx = OperatorContext::for_test(
            "join",
            subtask,
            parallelism,
            vec![left(), right()],
            schema(spec, &left(), &right(), "join").unwrap(),
        );
        Join::new(&ctx, spec, restored).unwrap()
    }

    fn people(rows: &[(i64, &str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            left(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.2),
                )),
            ],
        )
        .unwrap()
    }

    fn sales(rows: &[(Option<i64>, i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            right(),
            vec![
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.2),
                )),
            ],
        )
        .unwrap()
    }

    /// (id, name, price), sorted.
    fn out(b: Option<RecordBatch>) -> Vec<(i64, String, i64)> {
        let Some(b) = b else { return vec![] };
        let id = b.column(0).as_primitive::<Int64Type>();
        let name = b.column(1).as_string::<i32>();
        let price = b.column(4).as_primitive::<Int64Type>();
        let mut v: Vec<_> = (0..b.num_rows())
            .map(|i| (id.value(i), name.value(i).to_string(), price.value(i)))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn both_sides_probe_and_store() {
        let mut j = op(&spec(), 0, 1, None);
        assert!(j
            .process_input(1, sales(&[(Some(1), 10, 0), (None, 11, 0)]))
            .await
            .unwrap()
            .is_none());
        let got = out(j
            .process_input(0, people(&[(1, "ann", 0), (2, "bob", 0)]))
            .await
            .unwrap());
        assert_eq!(got, vec![(1, "ann".into(), 10)]);
        let got = out(j
            .process_input(1, sales(&[(Some(2), 20, 0), (Some(1), 12, 0)]))
            .await
            .unwrap());
        assert_eq!(got, vec![(1, "ann".into(), 12), (2, "bob".into(), 20)]);
        // The NULL seller was never stored: a left row with no id cannot reach it anyway.
        assert_eq!(j.sides[1].held(), 3);
    }

    #[tokio::test]
    async fn the_filter_applies_to_pairs() {
        let mut s = spec();
        s.filter = Some("price > 10".into());
        let mut j = op(&s, 0, 1, None);
        j.process_input(0, people(&[(1, "ann", 0)])).await.unwrap();
        let got = out(j
            .process_input(1, sales(&[(Some(1), 10, 0), (Some(1), 11, 0)]))
            .await
            .unwrap());
        assert_eq!(got, vec![(1, "ann".into(), 11)]);
    }

    /// An interval join: `rt BETWEEN lt AND lt + 10`: left rows expire at `lt + 10`, right rows
    /// at `rt` (no left row still to come is older).
    #[tokio::test]
    async fn rows_expire_with_the_watermark() {
        let mut s = spec();
        s.filter = Some("rt >= lt AND rt <= lt + INTERVAL '10' MILLISECOND".into());
        s.left_expire = vec![ExpireBound {
            expr: "t".into(),
            offset_ms: 10,
        }];
        s.right_expire = vec![ExpireBound {
            expr: "t".into(),
            offset_ms: 0,
        }];
        let mut j = op(&s, 0, 1, None);
        j.process_input(0, people(&[(1, "old", 50), (1, "ann", 100)]))
            .await
            .unwrap();
        j.on_watermark(70).await.unwrap();
        assert_eq!(j.sides[0].held(), 1, "old expired at 60");
        let got = out(j
            .process_input(1, sales(&[(Some(1), 5, 105), (Some(1), 6, 120)]))
            .await
            .unwrap());
        assert_eq!(got, vec![(1, "ann".into(), 5)]);
        j.on_watermark(110).await.unwrap();
        assert_eq!((j.sides[0].held(), j.sides[1].held()), (0, 1));
        // Arrives expired: probes, is not kept.
        j.process_input(0, people(&[(1, "late", 100)]))
            .await
            .unwrap();
        assert_eq!(j.sides[0].held(), 0);
    }

    /// One key's rows share a buffer; expiring most of them compacts it and the rest still
    /// read back right.
    #[tokio::test]
    async fn a_keys_rows_survive_compaction() {
        let mut s = spec();
        s.left_expire = vec![ExpireBound {
            expr: "t".into(),
            offset_ms: 0,
        }];
        let mut j = op(&s, 0, 1, None);
        let names: Vec<String> = (0..1000).map(|i| format!("p{i}")).collect();
        let rows: Vec<(i64, &str, i64)> = (0..1000)
            .map(|i| (1, names[i].as_str(), i as i64))
            .collect();
        j.process_input(0, people(&rows)).await.unwrap();
        j.on_watermark(599).await.unwrap();
        assert_eq!(j.sides[0].held(), 400);
        let got = out(j.process_input(1, sales(&[(Some(1), 7, 0)])).await.unwrap());
        let want: Vec<(i64, String, i64)> = (600..1000).map(|i| (1, format!("p{i}"), 7)).collect();
        let mut want = want;
        want.sort();
        assert_eq!(got, want);
    }

    /// Two keys with one hash (a collision) keep their rows apart; expiring them frees their
    /// slots for reuse, and the arena's chunks once no row is left in them.
    #[test]
    fn short_and_long_keys_sharing_a_hash_stay_apart() {
        // Keys up to 16 bytes are compared in their slot, longer ones in the arena; a
        // 16-byte key and longer keys with the same first 16 bytes must all stay apart.
        let mut side = Side::new(&left(), &["id".to_string()], &[]).unwrap();
        let short = b"0123456789abcdef".to_vec();
        let long1 = b"0123456789abcdef-one".to_vec();
        let long2 = b"0123456789abcdef-two".to_vec();
        side.insert(9, 1, &short, 10, b"s");
        side.insert(9, 1, &long1, 10, b"l1");
        side.insert(9, 1, &long2, 10, b"l2x");
        side.insert(9, 1, &long1, 10, b"l1yy");
        let rows = |s: &Side, k: &[u8]| s.matches(9, k).map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(rows(&side, &short), vec![1]);
        assert_eq!(rows(&side, &long1), vec![2, 4]);
        assert_eq!(rows(&side, &long2), vec![3]);
        assert_eq!(rows(&side, b"0123456789abcde"), Vec::<usize>::new());
        assert_eq!(rows(&side, b"0123456789abcdef-on"), Vec::<usize>::new());
        assert_eq!(side.slots.len(), 3);
    }

    #[test]
    fn keys_sharing_a_hash_stay_apart() {
        let mut side = Side::new(&left(), &["id".to_string()], &[]).unwrap();
        let big = vec![7u8; CHUNK / 2];
        side.insert(42, 1, b"k1", 10, b"a");
        side.insert(42, 1, b"k2", 20, b"b");
        side.insert(42, 1, b"k1", 30, &big);
        side.insert(43, 2, b"k3", 40, &big);
        let rows = |s: &Side, k: &[u8], h| s.matches(h, k).map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(rows(&side, b"k1", 42), vec![1, CHUNK / 2]);
        assert_eq!(rows(&side, b"k2", 42), vec![1]);
        assert_eq!(rows(&side, b"k3", 42), Vec::<usize>::new());
        assert_eq!(side.chunks.len(), 2, "the second big row opens a chunk");
        side.expire(20); // k1's first row, then k2's only one: k2's slot is free
        assert_eq!(side.held(), 2);
        assert_eq!(rows(&side, b"k1", 42), vec![CHUNK / 2]);
        assert_eq!(rows(&side, b"k2", 42), Vec::<usize>::new());
        assert_eq!(side.free_slots.len(), 1);
        side.insert(42, 1, b"k2", 50, b"c");
        assert!(side.free_slots.is_empty(), "the freed slot is reused");
        assert_eq!(rows(&side, b"k2", 42), vec![1]);
        side.expire(40);
        assert_eq!(side.held(), 1);
        assert_eq!(side.chunks.len(), 1, "the first chunk is freed");
        assert_eq!(rows(&side, b"k1", 42), Vec::<usize>::new());
        side.expire(50);
        assert_eq!((side.held(), side.index.len()), (0, 0));
    }

    #[tokio::test]
    async fn state_restores_at_another_parallelism() {
        let s = spec();
        let mut j = op(&s, 0, 1, None);
        let ids: Vec<(i64, &str, i64)> = (0..40).map(|i| (i, "p", 0)).collect();
        j.process_input(0, people(&ids)).await.unwrap();
        j.process_input(1, sales(&[(Some(3), 1, 0)])).await.unwrap();
        let barrier = Barrier::for_test(1);
        let snap = j.snapshot(&barrier).await.unwrap().unwrap();
        let restored = || Restored {
            job_id: "j".into(),
            old_parallelism: 1,
            snapshots: vec![(0, Bytes::from(snap.clone()))],
        };
        let mut total = 0;
        let mut matches = Vec::new();
        for subtask in 0..2 {
            let mut k = op(&s, subtask, 2, Some(restored()));
            total += k.sides[0].held();
            let range = k.range.clone();
            let mine: Vec<(Option<i64>, i64, i64)> = (0..40)
                .filter(|i| {
                    let mut h = Vec::new();
                    hash_columns(&[Arc::new(Int64Array::from(vec![*i])) as ArrayRef], &mut h)
                        .unwrap();
                    range.contains(&key_group(h[0], 128))
                })
                .map(|i| (Some(i), 100 + i, 0))
                .collect();
            matches.extend(out(k.process_input(1, sales(&mine)).await.unwrap()));
            if mine.iter().any(|m| m.0 == Some(3)) {
                assert_eq!(k.sides[1].held(), 1 + mine.len());
            }
        }
        assert_eq!(total, 40);
        assert_eq!(matches.len(), 40);
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut s = spec();
        s.columns.clear();
        let e = schema(&s, &left(), &right(), "j").unwrap_err().to_string();
        assert!(e.contains("\"t\" appears twice"), "{e}");
        let mut s = spec();
        s.right_keys = vec!["t".into()];
        let e = schema(&s, &left(), &right(), "j").unwrap_err().to_string();
        assert!(e.contains("different types"), "{e}");
        let mut s = spec();
        s.filter = Some("price + 1".into());
        let e = schema(&s, &left(), &right(), "j").unwrap_err().to_string();
        assert!(e.contains("not a predicate"), "{e}");
    }
}
