//! Keyed running aggregates (count, sum, min, max) in keyed state.
//!
//! Each input row updates its key's accumulators and is emitted with the values after the
//! update (Flink's rolling aggregation), or, with `skip_unchanged` (SQL's GROUP BY, whose
//! consumers keep the newest row per key), only if it changed them or is its key's first.
//! Keys are hashed with `weir_runtime::hashing` to their key group, the same function the upstream
//! hash partitioner used, so every key arriving here is in this subtask's key-group range. A
//! single integer key column takes a fast path (`i64` keys); other keys are encoded to bytes
//! (`KeyBytes`, inline when short).

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::hash::Hash;
use std::sync::Arc;
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::hashing::hash_columns;
use weir_runtime::message::Barrier;
use weir_runtime::operator::{Operator, OperatorContext, Restored};
use weir_state::{KeyBytes, KeyedBackend, PREFETCH_DISTANCE};
use weir_types::keygroup::{key_group, key_group_range};
use weir_types::{AggFn, AggSpec};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) enum Acc {
    Int(i64),
    Float(f64),
    /// SUM, MIN and MAX before the first non-null value: their result is NULL then (SQL's
    /// aggregate over no values), not 0.
    Empty,
}

impl Acc {
    /// The value as an output integer: `None` for an aggregate over no values.
    #[inline]
    pub(super) fn int_opt(self) -> Option<i64> {
        match self {
            Acc::Empty => None,
            a => Some(a.int()),
        }
    }
    /// The value as an output float: `None` for an aggregate over no values.
    #[inline]
    pub(super) fn float_opt(self) -> Option<f64> {
        match self {
            Acc::Empty => None,
            a => Some(a.float()),
        }
    }
    #[inline]
    pub(super) fn int(self) -> i64 {
        match self {
            Acc::Int(i) => i,
            Acc::Float(f) => f as i64,
            Acc::Empty => 0,
        }
    }
    #[inline]
    pub(super) fn float(self) -> f64 {
        match self {
            Acc::Float(f) => f,
            Acc::Int(i) => i as f64,
            Acc::Empty => 0.0,
        }
    }
}

/// A key's accumulators, stored inline in the state map for the common single-aggregate case:
/// the row's update then touches one hash-table slot instead of following a pointer to a
/// separate allocation (that second cache miss was two thirds of the operator's time with
/// 100 000 keys). Two aggregates (COUNT and MAX per window, as in the examples) are inline
/// too: a separate small allocation per key and window, freed window by window while later
/// windows' allocations sit between them, fragmented the heap (a 7 GB file through a
/// windowed COUNT and MAX at parallelism 2: 190 million allocations, and a resident size
/// far above the live heap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum Accs {
    One(Acc),
    Many(Box<[Acc]>),
    /// Added after `One` and `Many`, so snapshots holding only those still decode.
    Two([Acc; 2]),
}

impl Accs {
    #[inline]
    pub(super) fn slice_mut(&mut self) -> &mut [Acc] {
        match self {
            Accs::One(a) => std::slice::from_mut(a),
            Accs::Two(a) => a,
            Accs::Many(b) => b,
        }
    }

    #[inline]
    pub(super) fn slice(&self) -> &[Acc] {
        match self {
            Accs::One(a) => std::slice::from_ref(a),
            Accs::Two(a) => a,
            Accs::Many(b) => b,
        }
    }
}

/// Folds the accumulators `from` (of the same aggregates over other rows) into `into`: the
/// result is what folding both sets of rows would have given (every aggregate here, COUNT,
/// SUM, MIN and MAX, combines that way).
pub(super) fn merge_accs(aggs: &[AggCol], into: &mut [Acc], from: &[Acc]) {
    for ((acc, agg), other) in into.iter_mut().zip(aggs).zip(from) {
        *acc = match (agg.func, *acc, *other) {
            (_, a, Acc::Empty) => a,
            (_, Acc::Empty, b) => b,
            (AggFn::Count | AggFn::Sum, Acc::Int(a), Acc::Int(b)) => Acc::Int(a.wrapping_add(b)),
            (AggFn::Count | AggFn::Sum, Acc::Float(a), Acc::Float(b)) => Acc::Float(a + b),
            (AggFn::Min, Acc::Int(a), Acc::Int(b)) => Acc::Int(a.min(b)),
            (AggFn::Max, Acc::Int(a), Acc::Int(b)) => Acc::Int(a.max(b)),
            (AggFn::Min, Acc::Float(a), Acc::Float(b)) => Acc::Float(a.min(b)),
            (AggFn::Max, Acc::Float(a), Acc::Float(b)) => Acc::Float(a.max(b)),
            (_, a, _) => a,
        }
    }
}

/// One output column of aggregate values, filled row by row (NULL for SUM, MIN and MAX over
/// no values).
enum OutCol {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
}

pub(super) struct AggCol {
    pub(super) func: AggFn,
    /// Index of the aggregated column, None for count(*)
    pub(super) column: Option<usize>,
    pub(super) float: bool,
}

impl AggCol {
    /// The output column of accumulated values (Float64 or Int64, as the aggregate's type;
    /// NULL where SUM, MIN or MAX saw no value).
    pub(super) fn output(&self, accs: impl Iterator<Item = Acc>) -> ArrayRef {
        if self.float {
            Arc::new(accs.map(Acc::float_opt).collect::<Float64Array>())
        } else {
            Arc::new(accs.map(Acc::int_opt).collect::<Int64Array>())
        }
    }
}

/// How a key is read from a row.
pub(super) trait KeyReader: Send + 'static {
    type Key: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static;
    fn prepare(&mut self, cols: &[ArrayRef]) -> Result<()>;
    fn key(&self, row: usize) -> Self::Key;
    /// Prefetches `row`'s key in `state` (without building the key).
    fn prefetch(&self, state: &KeyedBackend<Self::Key, Accs>, row: usize);
    /// The key columns of `keys` (integer keys as Int64).
    fn columns(&self, keys: &[&Self::Key]) -> Result<Vec<ArrayRef>>;
}

/// One integer key column (any width), as i64; a NULL key is `None`, a group of its own (SQL
/// groups NULLs together, apart from every value: 0 included).
pub(super) struct IntKey(pub(super) Option<Int64Array>);

impl KeyReader for IntKey {
    type Key = Option<i64>;
    fn prepare(&mut self, cols: &[ArrayRef]) -> Result<()> {
        let c = cast(&cols[0], &DataType::Int64)?;
        self.0 = Some(c.as_primitive::<Int64Type>().clone());
        Ok(())
    }
    #[inline]
    fn key(&self, row: usize) -> Option<i64> {
        self.0
            .as_ref()
            .and_then(|a| a.is_valid(row).then(|| a.value(row)))
    }
    #[inline]
    fn prefetch(&self, state: &KeyedBackend<Option<i64>, Accs>, row: usize) {
        state.prefetch(&self.key(row))
    }
    fn columns(&self, keys: &[&Option<i64>]) -> Result<Vec<ArrayRef>> {
        Ok(vec![Arc::new(
            keys.iter().map(|k| **k).collect::<Int64Array>(),
        )])
    }
}

/// Any key columns, encoded to bytes with arrow's row format (short keys kept inline).
pub(super) struct RowKey {
    pub(super) converter: arrow::row::RowConverter,
    pub(super) rows: Option<arrow::row::Rows>,
}

impl KeyReader for RowKey {
    type Key = KeyBytes;
    fn prepare(&mut self, cols: &[ArrayRef]) -> Result<()> {
        self.rows = Some(self.converter.convert_columns(cols)?);
        Ok(())
    }
    #[inline]
    fn key(&self, row: usize) -> KeyBytes {
        self.rows
            .as_ref()
            .map(|r| KeyBytes::new(r.row(row).as_ref()))
            .unwrap_or_else(|| KeyBytes::new(&[]))
    }
    #[inline]
    fn prefetch(&self, state: &KeyedBackend<KeyBytes, Accs>, row: usize) {
        if let Some(r) = &self.rows {
            state.prefetch(r.row(row).as_ref())
        }
    }
    fn columns(&self, keys: &[&KeyBytes]) -> Result<Vec<ArrayRef>> {
        let parser = self.converter.parser();
        Ok(self
            .converter
            .convert_rows(keys.iter().map(|k| parser.parse(k)))?)
    }
}

pub struct KeyedAggregate<R: KeyReader> {
    reader: R,
    keys: Vec<usize>,
    aggs: Vec<AggCol>,
    state: KeyedBackend<R::Key, Accs>,
    max_parallelism: u32,
    output: SchemaRef,
    hashes: Vec<u64>,
    skip_unchanged: bool,
}

pub fn build(
    ctx: &OperatorContext,
    keys: &[String],
    aggregates: &[AggSpec],
    skip_unchanged: bool,
    input: &SchemaRef,
    restored: Option<Restored>,
) -> Result<Box<dyn Operator>> {
    let key_idx = weir_runtime::operator::column_indices(input, keys)?;
    let aggs = agg_cols(ctx, aggregates, input)?;
    let single_int = key_idx.len() == 1 && input.field(key_idx[0]).data_type().is_integer();
    if single_int {
        Ok(Box::new(
            KeyedAggregate::new(ctx, IntKey(None), key_idx, aggs, restored)?
                .skipping_unchanged(skip_unchanged),
        ))
    } else {
        let fields = key_idx
            .iter()
            .map(|i| arrow::row::SortField::new(input.field(*i).data_type().clone()))
            .collect();
        let converter = arrow::row::RowConverter::new(fields)?;
        Ok(Box::new(
            KeyedAggregate::new(
                ctx,
                RowKey {
                    converter,
                    rows: None,
                },
                key_idx,
                aggs,
                restored,
            )?
            .skipping_unchanged(skip_unchanged),
        ))
    }
}

impl<R: KeyReader> KeyedAggregate<R> {
    fn new(
        ctx: &OperatorContext,
        reader: R,
        keys: Vec<usize>,
        aggs: Vec<AggCol>,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let range = key_group_range(ctx.subtask, ctx.max_parallelism, ctx.parallelism);
        let mut state = match ctx.state_backend {
            weir_types::StateBackend::Memory => KeyedBackend::memory(range, ctx.max_parallelism),
            #[cfg(feature = "rocksdb")]
            weir_types::StateBackend::Rocksdb => KeyedBackend::rocksdb(
                &std::env::temp_dir().join("weir-state"),
                range,
                ctx.max_parallelism,
            )?,
            #[cfg(not(feature = "rocksdb"))]
            weir_types::StateBackend::Rocksdb => {
                return Err(RuntimeError::Plan(
                    "this build has no RocksDB state backend".into(),
                ))
            }
        };
        if let Some(r) = restored {
            for (_, bytes) in &r.snapshots {
                state.restore_from(bytes)?;
            }
        }
        Ok(Self {
            reader,
            keys,
            aggs,
            state,
            max_parallelism: ctx.max_parallelism,
            output: ctx.output_schema.clone(),
            hashes: Vec::new(),
            skip_unchanged: false,
        })
    }

    fn skipping_unchanged(mut self, skip: bool) -> Self {
        self.skip_unchanged = skip;
        self
    }

    fn initial(&self) -> Accs {
        initial_accs(&self.aggs)
    }
}

/// The aggregates' input columns and accumulator kinds.
pub(super) fn agg_cols(
    ctx: &OperatorContext,
    aggregates: &[AggSpec],
    input: &SchemaRef,
) -> Result<Vec<AggCol>> {
    aggregates
        .iter()
        .map(|a| {
            let column = match &a.column {
                Some(c) => Some(
                    input
                        .index_of(c)
                        .map_err(|_| RuntimeError::Plan(format!("unknown column {c:?}")))?,
                ),
                None => None,
            };
            let t = weir_planner::agg_type(input, &ctx.op_id, a.func, a.column.as_deref())?;
            Ok(AggCol {
                func: a.func,
                column,
                float: t == DataType::Float64,
            })
        })
        .collect()
}

/// Fresh accumulators for `aggs`.
pub(super) fn initial_accs(aggs: &[AggCol]) -> Accs {
    let accs: Vec<Acc> = aggs
        .iter()
        .map(|a| match a.func {
            AggFn::Count => Acc::Int(0),
            AggFn::Sum | AggFn::Min | AggFn::Max => Acc::Empty,
        })
        .collect();
    match accs.len() {
        1 => Accs::One(accs[0]),
        2 => Accs::Two([accs[0], accs[1]]),
        _ => Accs::Many(accs.into_boxed_slice()),
    }
}

/// The aggregated columns of a batch, cast to what the accumulators take. COUNT(x) reads only
/// which rows of x are NULL, so it counts a column of any type (casting a VARCHAR to an
/// integer made every value NULL and every count 0).
pub(super) fn agg_values(aggs: &[AggCol], batch: &RecordBatch) -> Result<Vec<Values>> {
    aggs.iter()
        .map(|a| match a.column {
            None => Ok(Values::None),
            Some(c) if a.func == AggFn::Count => {
                Ok(Values::Present(batch.column(c).logical_nulls()))
            }
            Some(c) if a.float => Ok(Values::Float(
                cast(batch.column(c), &DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            )),
            Some(c) => Ok(Values::Int(
                cast(batch.column(c), &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            )),
        })
        .collect()
}

/// The input columns of the output rows: those of the rows `kept` (`skip_unchanged`), or all
/// of them when `kept` is `None` or every row was kept.
pub(super) fn kept_columns(batch: &RecordBatch, kept: Option<Vec<u32>>) -> Result<Vec<ArrayRef>> {
    match kept {
        Some(kept) if kept.len() < batch.num_rows() => {
            let kept = arrow::array::UInt32Array::from(kept);
            Ok(batch
                .columns()
                .iter()
                .map(|c| arrow::compute::take(c, &kept, None))
                .collect::<std::result::Result<_, _>>()?)
        }
        _ => Ok(batch.columns().to_vec()),
    }
}

/// Folds row `row` into `accs`; whether any of them changed.
#[inline]
pub(super) fn fold_row(aggs: &[AggCol], values: &[Values], row: usize, accs: &mut [Acc]) -> bool {
    let mut changed = false;
    for (acc, (agg, vals)) in accs.iter_mut().zip(aggs.iter().zip(values)) {
        let before = *acc;
        match (agg.func, vals) {
            (AggFn::Count, v) if v.is_valid(row) => bump(acc),
            (AggFn::Count, _) => {}
            (f, Values::Int(v)) if v.is_valid(row) => fold_int(acc, f, v.value(row)),
            (f, Values::Float(v)) if v.is_valid(row) => fold_float(acc, f, v.value(row)),
            _ => {}
        }
        changed |= *acc != before;
    }
    changed
}

pub(super) enum Values {
    /// COUNT(*): every row counts.
    None,
    /// COUNT(x): the rows where x is not NULL (`None`: no NULLs in this batch).
    Present(Option<arrow::buffer::NullBuffer>),
    Int(Int64Array),
    Float(Float64Array),
}

impl Values {
    /// Whether row `row` has a value (count(*) has one in every row).
    #[inline]
    pub(super) fn is_valid(&self, row: usize) -> bool {
        match self {
            Values::None => true,
            Values::Present(nulls) => nulls.as_ref().is_none_or(|n| n.is_valid(row)),
            Values::Int(x) => x.is_valid(row),
            Values::Float(x) => x.is_valid(row),
        }
    }
}

#[async_trait]
impl<R: KeyReader> Operator for KeyedAggregate<R> {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let rows = batch.num_rows();
        let key_cols: Vec<ArrayRef> = self.keys.iter().map(|i| batch.column(*i).clone()).collect();
        hash_columns(&key_cols, &mut self.hashes)?;
        self.reader.prepare(&key_cols)?;
        let values = agg_values(&self.aggs, &batch)?;
        let mut out: Vec<OutCol> = self
            .aggs
            .iter()
            .map(|a| {
                if a.float {
                    OutCol::Float(Vec::with_capacity(rows))
                } else {
                    OutCol::Int(Vec::with_capacity(rows))
                }
            })
            .collect();
        let init = self.initial();
        // With `skip_unchanged`: the rows emitted (all of them when every row changed its key).
        let mut kept: Vec<u32> = Vec::new();
        let skip = self.skip_unchanged;
        for row in 0..rows {
            if row + PREFETCH_DISTANCE < rows {
                self.reader.prefetch(&self.state, row + PREFETCH_DISTANCE);
            }
            let kg = key_group(self.hashes[row], self.max_parallelism);
            if !self.state.owns(kg) {
                return Err(RuntimeError::Internal(format!(
                    "key group {kg} arrived at a subtask owning {:?}: upstream partitioning disagrees",
                    self.state.key_groups()
                )));
            }
            let aggs = &self.aggs;
            let first = std::cell::Cell::new(false);
            self.state.update(
                kg,
                self.reader.key(row),
                || {
                    first.set(true);
                    init.clone()
                },
                |accs| {
                    let accs = accs.slice_mut();
                    let changed = fold_row(aggs, &values, row, accs);
                    if skip {
                        if !changed && !first.get() {
                            return;
                        }
                        kept.push(row as u32);
                    }
                    for (acc, col) in accs.iter().zip(out.iter_mut()) {
                        match col {
                            OutCol::Int(v) => v.push(acc.int_opt()),
                            OutCol::Float(v) => v.push(acc.float_opt()),
                        }
                    }
                },
            )?;
        }
        if skip && kept.is_empty() {
            return Ok(None);
        }
        let mut cols = kept_columns(&batch, skip.then_some(kept))?;
        for col in out {
            cols.push(match col {
                OutCol::Int(v) => Arc::new(Int64Array::from(v)),
                OutCol::Float(v) => Arc::new(Float64Array::from(v)),
            });
        }
        Ok(Some(RecordBatch::try_new(self.output.clone(), cols)?))
    }

    async fn snapshot(&mut self, _barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        Ok(Some(self.state.snapshot()?))
    }
}

#[inline]
fn bump(acc: &mut Acc) {
    if let Acc::Int(n) = acc {
        *n += 1;
    }
}

#[inline]
fn fold_int(acc: &mut Acc, f: AggFn, v: i64) {
    *acc = match (f, *acc) {
        (AggFn::Sum | AggFn::Min | AggFn::Max, Acc::Empty) => Acc::Int(v),
        (AggFn::Sum, Acc::Int(s)) => Acc::Int(s.wrapping_add(v)),
        (AggFn::Min, Acc::Int(m)) => Acc::Int(m.min(v)),
        (AggFn::Max, Acc::Int(m)) => Acc::Int(m.max(v)),
        (_, other) => other,
    }
}

#[inline]
fn fold_float(acc: &mut Acc, f: AggFn, v: f64) {
    *acc = match (f, *acc) {
        (AggFn::Sum | AggFn::Min | AggFn::Max, Acc::Empty) => Acc::Float(v),
        (AggFn::Sum, Acc::Float(s)) => Acc::Float(s + v),
        (AggFn::Min, Acc::Float(m)) => Acc::Float(m.min(v)),
        (AggFn::Max, Acc::Float(m)) => Acc::Float(m.max(v)),
        (_, other) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::datatypes::{Field, Schema};

    /// `GROUP BY` keys `keys` with MAX(v) and SUM(v), skipping unchanged rows; returns for
    /// each batch the (row's v, max, sum) of the rows emitted.
    async fn run(keys: &[&str], batches: &[&[(i64, &str, i64)]]) -> Vec<Vec<(i64, i64, i64)>> {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let mut fields = input.fields().to_vec();
        fields.push(Arc::new(Field::new("top", DataType::Int64, false)));
        fields.push(Arc::new(Field::new("total", DataType::Int64, false)));
        let ctx = OperatorContext::for_test(
            "a",
            0,
            1,
            vec![input.clone()],
            Arc::new(Schema::new(fields)),
        );
        let aggs = [(AggFn::Max, "top"), (AggFn::Sum, "total")].map(|(func, name)| AggSpec {
            func,
            column: Some("v".into()),
            name: name.into(),
        });
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let mut op = build(&ctx, &keys, &aggs, true, &input, None).unwrap();
        let mut out = Vec::new();
        for rows in batches {
            let b = RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                ],
            )
            .unwrap();
            out.push(match op.process(b).await.unwrap() {
                None => vec![],
                Some(b) => {
                    let col = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
                    let (v, top, total) = (col(2), col(3), col(4));
                    (0..b.num_rows())
                        .map(|i| (v.value(i), top.value(i), total.value(i)))
                        .collect()
                }
            });
        }
        out
    }

    /// The six rows of issue 15: (k, s, x) with NULL keys, strings and numbers.
    fn nullable_rows() -> (SchemaRef, RecordBatch) {
        use arrow::array::Float64Array;
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            input.clone(),
            vec![
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(1),
                    Some(2),
                    Some(0),
                    None,
                    None,
                ])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    None,
                    Some("b"),
                    Some("c"),
                    Some("d"),
                ])),
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    None,
                    None,
                    Some(2.0),
                    Some(3.0),
                    Some(4.0),
                ])),
            ],
        )
        .unwrap();
        (input, batch)
    }

    #[tokio::test]
    async fn null_keys_group_apart_count_reads_any_type_and_no_values_sum_to_null() {
        let (input, batch) = nullable_rows();
        let aggs: Vec<AggSpec> = [
            (AggFn::Count, Some("s"), "cs"),
            (AggFn::Count, None, "n"),
            (AggFn::Sum, Some("x"), "sx"),
            (AggFn::Min, Some("x"), "mn"),
            (AggFn::Max, Some("x"), "mx"),
        ]
        .into_iter()
        .map(|(func, column, name)| AggSpec {
            func,
            column: column.map(String::from),
            name: name.into(),
        })
        .collect();
        let mut fields = input.fields().to_vec();
        for a in &aggs {
            let t = if a.func == AggFn::Count {
                DataType::Int64
            } else {
                DataType::Float64
            };
            fields.push(Arc::new(Field::new(&a.name, t, a.func != AggFn::Count)));
        }
        let ctx = OperatorContext::for_test(
            "a",
            0,
            1,
            vec![input.clone()],
            Arc::new(Schema::new(fields)),
        );
        // One integer key (the fast path) and the same key with a string (row-encoded).
        for keys in [
            vec!["k".to_string()],
            vec!["k".to_string(), "k".to_string()],
        ] {
            let mut op = build(&ctx, &keys, &aggs, true, &input, None).unwrap();
            let out = op.process(batch.clone()).await.unwrap().unwrap();
            // The last row of each key: (k, COUNT(s), COUNT(*), SUM(x), MIN(x), MAX(x)).
            let mut last = std::collections::BTreeMap::new();
            let k = out.column(0).as_primitive::<Int64Type>();
            for r in 0..out.num_rows() {
                let int = |c: usize| out.column(c).as_primitive::<Int64Type>().value(r);
                let float = |c: usize| {
                    let a = out.column(c).as_primitive::<Float64Type>();
                    a.is_valid(r).then(|| a.value(r))
                };
                last.insert(
                    k.is_valid(r).then(|| k.value(r)),
                    (int(3), int(4), float(5), float(6), float(7)),
                );
            }
            assert_eq!(
                last.into_iter().collect::<Vec<_>>(),
                vec![
                    (None, (2, 2, Some(7.0), Some(3.0), Some(4.0))),
                    (Some(0), (1, 1, Some(2.0), Some(2.0), Some(2.0))),
                    (Some(1), (1, 2, Some(1.5), Some(1.5), Some(1.5))),
                    (Some(2), (0, 1, None, None, None)),
                ],
                "keys {keys:?}"
            );
        }
    }

    #[tokio::test]
    async fn skipping_unchanged_emits_only_rows_that_change_their_key_or_start_it() {
        // One integer key (the fast path) and two keys (row-encoded) behave alike.
        for keys in [&["k"][..], &["k", "s"][..]] {
            let got = run(
                keys,
                &[
                    &[(1, "x", 5), (1, "x", 0), (2, "x", 0), (1, "x", 9)],
                    &[(2, "x", 0), (1, "x", 0)],
                ],
            )
            .await;
            assert_eq!(
                got,
                vec![
                    // (1, 0) leaves MAX and SUM as they were; key 2's first row is
                    // emitted although it changes nothing from the initial values.
                    vec![(5, 5, 5), (0, 0, 0), (9, 9, 14)],
                    vec![],
                ],
                "keys {keys:?}"
            );
        }
    }
}
