//! One side of a join: its rows by key, in an arena, expiring from the front (see
//! [`Side`]).

use super::index::SlotIndex;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, UInt32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, UInt32Type};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use weir_planner::expr::{compile, CompiledExpr};
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::hashing::hash_columns;

/// One side's rows, by join key, without an allocation per row or per key.
///
/// Rows (each its key's bytes then its own, in Arrow's row format) are appended to an arena
/// of large chunks, in arrival order, and listed in `rows` in that order. A key's rows are
/// chained through `next`, from its slot's `head` to its `tail`. Rows arrive in roughly
/// increasing expiry, so expiring pops from the front of `rows`: a row that expires before
/// an earlier one waits for it (memory only: the filter decides matches). A popped row is
/// always its key's head (a key's rows are in arrival order too), and chunks are freed once
/// no row points into them.
pub(super) struct Side {
    schema: SchemaRef,
    pub(super) keys: Vec<usize>,
    pub(super) key_rows: RowConverter,
    pub(super) rows_format: RowConverter,
    expire: Vec<(CompiledExpr, i64)>,
    /// Key hash (the one partitioning used) -> the first slot of that hash; slots of one
    /// hash (different keys) are chained through `Slot::next_in_bucket`.
    index: SlotIndex,
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
/// Rows per record batch of a snapshot: only one batch's columns are built at a time, not
/// a columnar copy of the whole side (q7's peak memory with checkpoints was 2.5 times its
/// peak without).
const SNAPSHOT_BATCH: usize = 65_536;
pub(super) const CHUNK: usize = 1 << 20;

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
    pub(super) fn new(
        schema: &SchemaRef,
        keys: &[String],
        expire: &[weir_types::ExpireBound],
    ) -> Result<Self> {
        let keys = weir_runtime::operator::column_indices(schema, keys)?;
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
            index: SlotIndex::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            rows: VecDeque::new(),
            first_row: 0,
            chunks: VecDeque::new(),
            first_chunk: 0,
        })
    }

    /// How many rows the side holds.
    pub(super) fn held(&self) -> usize {
        self.rows.len()
    }

    /// Each row's expiry: the earliest of the bounds (`i64::MAX` without bounds; a NULL
    /// bound makes the condition false for good, so the row expires at once).
    pub(super) fn expiries(&self, batch: &RecordBatch) -> Result<Vec<i64>> {
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
        let mut s = self.index.get(hash)?;
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

    /// Starts loading where a key of hash `hash` is indexed (a hint for a lookup a few rows
    /// later).
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        self.index.prefetch(hash)
    }

    /// The rows of `key` (with hash `hash`), oldest first.
    pub(super) fn matches(&self, hash: u64, key: &[u8]) -> impl Iterator<Item = &[u8]> {
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

    pub(super) fn insert(
        &mut self,
        hash: u64,
        key_group: u32,
        key: &[u8],
        expires: i64,
        row: &[u8],
    ) {
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
                let next_in_bucket = self.index.get(hash).unwrap_or(NO_SLOT);
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
    pub(super) fn expire(&mut self, w: i64) {
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
        match self.index.get(hash) {
            Some(first) if first == s => {
                if after == NO_SLOT {
                    self.index.remove(hash);
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
    pub(super) fn snapshot(&self) -> Result<Vec<u8>> {
        let schema = snapshot_schema(&self.schema);
        let parser = self.rows_format.parser();
        let mut w = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema)?;
        let n = SNAPSHOT_BATCH.min(self.held());
        let (mut groups, mut expires, mut rows) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut rest = self.held();
        for r in &self.rows {
            groups.push(self.slots[r.slot as usize].key_group);
            expires.push(r.expires);
            rows.push(parser.parse(self.bytes(r).1));
            rest -= 1;
            if rows.len() == SNAPSHOT_BATCH || rest == 0 {
                let mut cols = self.rows_format.convert_rows(rows.drain(..))?;
                cols.push(Arc::new(UInt32Array::from(std::mem::replace(
                    &mut groups,
                    Vec::with_capacity(n),
                ))));
                cols.push(Arc::new(Int64Array::from(std::mem::replace(
                    &mut expires,
                    Vec::with_capacity(n),
                ))));
                w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
            }
        }
        w.finish()?;
        Ok(w.into_inner()?)
    }

    /// Adds the rows of an old subtask's snapshot whose key groups are in `range`.
    pub(super) fn restore(&mut self, bytes: &[u8], range: &Range<u32>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn left() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]))
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

    /// A side larger than one snapshot batch restores whole (several batches in the stream).
    #[test]
    fn a_snapshot_of_several_batches_restores() {
        let schema = left();
        let mut side = Side::new(&schema, &["id".to_string()], &[]).unwrap();
        let n = SNAPSHOT_BATCH + 10;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    (0..n as i64).map(|i| i % 1000),
                )),
                Arc::new(arrow::array::StringArray::from_iter_values(
                    (0..n).map(|i| format!("n{i}")),
                )),
                Arc::new(arrow::array::TimestampMillisecondArray::from_iter_values(
                    0..n as i64,
                )),
            ],
        )
        .unwrap();
        let key_cols = vec![batch.column(0).clone()];
        let mut hashes = Vec::new();
        hash_columns(&key_cols, &mut hashes).unwrap();
        let keys = side.key_rows.convert_columns(&key_cols).unwrap();
        let rows = side.rows_format.convert_columns(batch.columns()).unwrap();
        for (r, h) in hashes.iter().enumerate() {
            side.insert(*h, 0, keys.row(r).as_ref(), r as i64, rows.row(r).as_ref());
        }
        let bytes = side.snapshot().unwrap();
        let mut back = Side::new(&schema, &["id".to_string()], &[]).unwrap();
        back.restore(&bytes, &(0..1)).unwrap();
        assert_eq!(back.held(), n);
        let k7 = keys.row(7);
        assert_eq!(
            back.matches(hashes[7], k7.as_ref()).count(),
            side.matches(hashes[7], k7.as_ref()).count()
        );
        // Expiry times came back too: everything up to row 99 goes.
        back.expire(99);
        assert_eq!(back.held(), n - 100);
    }
}
