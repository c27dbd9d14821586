//! Keyed running aggregates (count, sum, min, max) in keyed state.
//!
//! Each input row updates its key's accumulators and is emitted with the values after the
//! update (Flink's rolling aggregation). Keys are hashed with `crate::hashing` to their key
//! group, the same function the upstream hash partitioner used, so every key arriving here is
//! in this subtask's key-group range. A single integer key column takes a fast path (`i64`
//! keys); other keys are encoded to bytes.

use super::{Operator, OperatorContext, Restored};
use crate::error::{Result, RuntimeError};
use crate::hashing::hash_columns;
use crate::message::Barrier;
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::hash::Hash;
use std::sync::Arc;
use weir_state::{KeyedBackend, PREFETCH_DISTANCE};
use weir_types::keygroup::{key_group, key_group_range};
use weir_types::{AggFn, AggSpec};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) enum Acc {
    Int(i64),
    Float(f64),
    /// min/max before the first non-null value
    Empty,
}

impl Acc {
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
/// 100 000 keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum Accs {
    One(Acc),
    Many(Box<[Acc]>),
}

impl Accs {
    #[inline]
    pub(super) fn slice_mut(&mut self) -> &mut [Acc] {
        match self {
            Accs::One(a) => std::slice::from_mut(a),
            Accs::Many(b) => b,
        }
    }

    #[inline]
    pub(super) fn slice(&self) -> &[Acc] {
        match self {
            Accs::One(a) => std::slice::from_ref(a),
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

/// One output column of aggregate values, filled row by row.
enum OutCol {
    Int(Vec<i64>),
    Float(Vec<f64>),
}

pub(super) struct AggCol {
    pub(super) func: AggFn,
    /// Index of the aggregated column, None for count(*)
    pub(super) column: Option<usize>,
    pub(super) float: bool,
}

impl AggCol {
    /// The output column of accumulated values (Float64 or Int64, as the aggregate's type).
    pub(super) fn output(&self, accs: impl Iterator<Item = Acc>) -> ArrayRef {
        if self.float {
            Arc::new(Float64Array::from_iter_values(accs.map(Acc::float)))
        } else {
            Arc::new(Int64Array::from_iter_values(accs.map(Acc::int)))
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

/// One integer key column (any width), as i64.
pub(super) struct IntKey(pub(super) Option<Int64Array>);

impl KeyReader for IntKey {
    type Key = i64;
    fn prepare(&mut self, cols: &[ArrayRef]) -> Result<()> {
        let c = cast(&cols[0], &DataType::Int64)?;
        self.0 = Some(c.as_primitive::<Int64Type>().clone());
        Ok(())
    }
    #[inline]
    fn key(&self, row: usize) -> i64 {
        self.0.as_ref().map(|a| a.value(row)).unwrap_or_default()
    }
    #[inline]
    fn prefetch(&self, state: &KeyedBackend<i64, Accs>, row: usize) {
        state.prefetch(&self.key(row))
    }
    fn columns(&self, keys: &[&i64]) -> Result<Vec<ArrayRef>> {
        Ok(vec![Arc::new(Int64Array::from_iter_values(
            keys.iter().map(|k| **k),
        ))])
    }
}

/// Any key columns, encoded to bytes with arrow's row format.
pub(super) struct RowKey {
    pub(super) converter: arrow::row::RowConverter,
    pub(super) rows: Option<arrow::row::Rows>,
}

impl KeyReader for RowKey {
    type Key = Vec<u8>;
    fn prepare(&mut self, cols: &[ArrayRef]) -> Result<()> {
        self.rows = Some(self.converter.convert_columns(cols)?);
        Ok(())
    }
    fn key(&self, row: usize) -> Vec<u8> {
        self.rows
            .as_ref()
            .map(|r| r.row(row).as_ref().to_vec())
            .unwrap_or_default()
    }
    #[inline]
    fn prefetch(&self, state: &KeyedBackend<Vec<u8>, Accs>, row: usize) {
        if let Some(r) = &self.rows {
            state.prefetch(r.row(row).as_ref())
        }
    }
    fn columns(&self, keys: &[&Vec<u8>]) -> Result<Vec<ArrayRef>> {
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
}

pub fn build(
    ctx: &OperatorContext,
    keys: &[String],
    aggregates: &[AggSpec],
    input: &SchemaRef,
    restored: Option<Restored>,
) -> Result<Box<dyn Operator>> {
    let key_idx = super::column_indices(input, keys)?;
    let aggs = agg_cols(ctx, aggregates, input)?;
    let single_int = key_idx.len() == 1 && input.field(key_idx[0]).data_type().is_integer();
    if single_int {
        Ok(Box::new(KeyedAggregate::new(
            ctx,
            IntKey(None),
            key_idx,
            aggs,
            restored,
        )?))
    } else {
        let fields = key_idx
            .iter()
            .map(|i| arrow::row::SortField::new(input.field(*i).data_type().clone()))
            .collect();
        let converter = arrow::row::RowConverter::new(fields)?;
        Ok(Box::new(KeyedAggregate::new(
            ctx,
            RowKey {
                converter,
                rows: None,
            },
            key_idx,
            aggs,
            restored,
        )?))
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
        })
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
            let t = crate::planner::agg_type(input, &ctx.op_id, a.func, a.column.as_deref())?;
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
    let mut accs: Vec<Acc> = aggs
        .iter()
        .map(|a| match (a.func, a.float) {
            (AggFn::Min | AggFn::Max, _) => Acc::Empty,
            (_, true) => Acc::Float(0.0),
            (_, false) => Acc::Int(0),
        })
        .collect();
    match accs.len() {
        1 => Accs::One(accs.remove(0)),
        _ => Accs::Many(accs.into_boxed_slice()),
    }
}

/// The aggregated columns of a batch, cast to what the accumulators take.
pub(super) fn agg_values(aggs: &[AggCol], batch: &RecordBatch) -> Result<Vec<Values>> {
    aggs.iter()
        .map(|a| match a.column {
            None => Ok(Values::None),
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

/// Folds row `row` into `accs`.
#[inline]
pub(super) fn fold_row(aggs: &[AggCol], values: &[Values], row: usize, accs: &mut [Acc]) {
    for (acc, (agg, vals)) in accs.iter_mut().zip(aggs.iter().zip(values)) {
        match (agg.func, vals) {
            (AggFn::Count, v) if v.is_valid(row) => bump(acc),
            (AggFn::Count, _) => {}
            (f, Values::Int(v)) if v.is_valid(row) => fold_int(acc, f, v.value(row)),
            (f, Values::Float(v)) if v.is_valid(row) => fold_float(acc, f, v.value(row)),
            _ => {}
        }
    }
}

pub(super) enum Values {
    None,
    Int(Int64Array),
    Float(Float64Array),
}

impl Values {
    /// Whether row `row` has a value (count(*) has one in every row).
    #[inline]
    pub(super) fn is_valid(&self, row: usize) -> bool {
        match self {
            Values::None => true,
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
            self.state.update(
                kg,
                self.reader.key(row),
                || init.clone(),
                |accs| {
                    let accs = accs.slice_mut();
                    fold_row(aggs, &values, row, accs);
                    for (acc, col) in accs.iter().zip(out.iter_mut()) {
                        match col {
                            OutCol::Int(v) => v.push(acc.int()),
                            OutCol::Float(v) => v.push(acc.float()),
                        }
                    }
                },
            )?;
        }
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
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
        (AggFn::Sum, Acc::Int(s)) => Acc::Int(s.wrapping_add(v)),
        (AggFn::Min, Acc::Int(m)) => Acc::Int(m.min(v)),
        (AggFn::Max, Acc::Int(m)) => Acc::Int(m.max(v)),
        (AggFn::Min | AggFn::Max, Acc::Empty) => Acc::Int(v),
        (_, other) => other,
    }
}

#[inline]
fn fold_float(acc: &mut Acc, f: AggFn, v: f64) {
    *acc = match (f, *acc) {
        (AggFn::Sum, Acc::Float(s)) => Acc::Float(s + v),
        (AggFn::Min, Acc::Float(m)) => Acc::Float(m.min(v)),
        (AggFn::Max, Acc::Float(m)) => Acc::Float(m.max(v)),
        (AggFn::Min | AggFn::Max, Acc::Empty) => Acc::Float(v),
        (_, other) => other,
    }
}
