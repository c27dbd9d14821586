//! Event-time window aggregates: tumbling (`slide == size`) and hopping windows.
//!
//! A row with event time `t` belongs to every window `[s, s + size)` with `s` a multiple of
//! `slide` and `s <= t < s + size`. Accumulators are kept per (key, window start) in a hash
//! map with the key's key group, so the state snapshots by key group and restores at another
//! parallelism. A window's row (keys, `window_start`, `window_end`, aggregates) is emitted
//! once, when the watermark reaches its end plus the allowed lateness; a row that arrives for
//! a window already emitted is late: dropped and counted. End of input closes every window.
//! The operator's watermark is part of its snapshot, so a restored subtask drops exactly the
//! rows its predecessor would have.

use super::aggregate::{
    agg_cols, agg_values, fold_row, initial_accs, Accs, AggCol, IntKey, KeyReader, RowKey,
};
use super::{Operator, OperatorContext, Restored};
use crate::error::{Result, RuntimeError};
use crate::hashing::hash_columns;
use crate::message::Barrier;
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use tracing::info;
use weir_types::keygroup::{key_group, key_group_range};
use weir_types::WindowSpec;

/// The operator's output schema: keys, `window_start`, `window_end`, aggregates.
pub fn schema(spec: &WindowSpec, input: &Schema, op: &str) -> Result<SchemaRef> {
    let mut fields = Vec::new();
    for k in &spec.keys {
        let f = input.field_with_name(k).map_err(|_| {
            RuntimeError::Plan(format!("operator {op:?}: unknown key column {k:?}"))
        })?;
        if !crate::hashing::is_key_type(f.data_type()) {
            return Err(RuntimeError::Plan(format!(
                "operator {op:?}: cannot key by {k:?} of type {}",
                f.data_type()
            )));
        }
        fields.push(f.clone());
    }
    let t = input.field_with_name(&spec.time).map_err(|_| {
        RuntimeError::Plan(format!(
            "operator {op:?}: unknown time column {:?}",
            spec.time
        ))
    })?;
    if !matches!(t.data_type(), DataType::Timestamp(_, _) | DataType::Int64) {
        return Err(RuntimeError::Plan(format!(
            "operator {op:?}: the time column {:?} is {}, not a timestamp",
            spec.time,
            t.data_type()
        )));
    }
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    fields.push(Field::new("window_start", ts.clone(), false));
    fields.push(Field::new("window_end", ts, false));
    for a in &spec.aggregates {
        let t = crate::planner::agg_type(input, op, a.func, a.column.as_deref())?;
        if fields.iter().any(|f| f.name() == &a.name) {
            return Err(RuntimeError::Plan(format!(
                "operator {op:?}: output column {:?} already exists",
                a.name
            )));
        }
        fields.push(Field::new(&a.name, t, false));
    }
    Ok(Arc::new(Schema::new(fields)))
}

pub fn build(
    ctx: &OperatorContext,
    spec: &WindowSpec,
    input: &SchemaRef,
    restored: Option<Restored>,
) -> Result<Box<dyn Operator>> {
    let keys = spec
        .keys
        .iter()
        .map(|k| {
            input
                .index_of(k)
                .map_err(|_| RuntimeError::Plan(format!("unknown key column {k:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let single_int = keys.len() == 1 && input.field(keys[0]).data_type().is_integer();
    if single_int {
        Ok(Box::new(WindowAggregate::new(
            ctx,
            spec,
            input,
            IntKey(None),
            keys,
            restored,
        )?))
    } else {
        let fields = keys
            .iter()
            .map(|i| arrow::row::SortField::new(input.field(*i).data_type().clone()))
            .collect();
        let reader = RowKey {
            converter: arrow::row::RowConverter::new(fields)?,
            rows: None,
        };
        Ok(Box::new(WindowAggregate::new(
            ctx, spec, input, reader, keys, restored,
        )?))
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot<K> {
    watermark: i64,
    late: u64,
    /// (key group, key, window start, accumulators)
    windows: Vec<(u32, K, i64, Accs)>,
}

pub struct WindowAggregate<R: KeyReader> {
    reader: R,
    keys: Vec<usize>,
    key_types: Vec<DataType>,
    time: usize,
    aggs: Vec<AggCol>,
    size: i64,
    slide: i64,
    lateness: i64,
    windows: HashMap<(R::Key, i64), (u32, Accs)>,
    /// The smallest end of an open window (`i64::MAX`: none).
    next_end: i64,
    watermark: i64,
    late: u64,
    late_logged: u64,
    max_parallelism: u32,
    range: Range<u32>,
    output: SchemaRef,
    hashes: Vec<u64>,
}

impl<R: KeyReader> WindowAggregate<R> {
    fn new(
        ctx: &OperatorContext,
        spec: &WindowSpec,
        input: &SchemaRef,
        reader: R,
        keys: Vec<usize>,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let time = input
            .index_of(&spec.time)
            .map_err(|_| RuntimeError::Plan(format!("unknown time column {:?}", spec.time)))?;
        let range = key_group_range(ctx.subtask, ctx.max_parallelism, ctx.parallelism);
        let mut op = Self {
            reader,
            key_types: keys
                .iter()
                .map(|i| input.field(*i).data_type().clone())
                .collect(),
            keys,
            time,
            aggs: agg_cols(ctx, &spec.aggregates, input)?,
            size: spec.size_ms as i64,
            slide: spec.slide() as i64,
            lateness: spec.allowed_lateness_ms as i64,
            windows: HashMap::new(),
            next_end: i64::MAX,
            watermark: i64::MIN,
            late: 0,
            late_logged: 0,
            max_parallelism: ctx.max_parallelism,
            range,
            output: ctx.output_schema.clone(),
            hashes: Vec::new(),
        };
        if let Some(r) = restored {
            let mut watermark = None::<i64>;
            for (_, bytes) in &r.snapshots {
                let s: Snapshot<R::Key> = weir_state::decode(bytes)?;
                // The lowest watermark of the old subtasks: a restored key may come from any.
                watermark = Some(watermark.map_or(s.watermark, |w| w.min(s.watermark)));
                op.late += s.late;
                for (kg, key, start, accs) in s.windows {
                    if op.range.contains(&kg) {
                        op.next_end = op.next_end.min(start + op.size);
                        op.windows.insert((key, start), (kg, accs));
                    }
                }
            }
            op.watermark = watermark.unwrap_or(i64::MIN);
            op.late_logged = op.late;
        }
        Ok(op)
    }

    /// Emits (and forgets) every window whose end plus lateness is at or below `w`.
    fn fire(&mut self, w: i64) -> Result<Option<RecordBatch>> {
        if self.next_end == i64::MAX || self.next_end.saturating_add(self.lateness) > w {
            return Ok(None);
        }
        let (size, lateness) = (self.size, self.lateness);
        let mut done: Vec<(R::Key, i64, Accs)> = Vec::new();
        let mut next_end = i64::MAX;
        self.windows.retain(|(key, start), (_, accs)| {
            let end = *start + size;
            if end.saturating_add(lateness) <= w {
                done.push((key.clone(), *start, accs.clone()));
                false
            } else {
                next_end = next_end.min(end);
                true
            }
        });
        self.next_end = next_end;
        if done.is_empty() {
            return Ok(None);
        }
        let keys: Vec<&R::Key> = done.iter().map(|(k, _, _)| k).collect();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for (c, t) in self.reader.columns(&keys)?.into_iter().zip(&self.key_types) {
            cols.push(if c.data_type() == t { c } else { cast(&c, t)? });
        }
        cols.push(Arc::new(TimestampMillisecondArray::from_iter_values(
            done.iter().map(|(_, s, _)| *s),
        )));
        cols.push(Arc::new(TimestampMillisecondArray::from_iter_values(
            done.iter().map(|(_, s, _)| *s + size),
        )));
        for (i, a) in self.aggs.iter().enumerate() {
            let mut accs = done.iter().map(|(_, _, accs)| match accs {
                Accs::One(x) => *x,
                Accs::Many(xs) => xs[i],
            });
            cols.push(if a.float {
                Arc::new(Float64Array::from_iter_values(
                    accs.by_ref().map(|x| x.float()),
                ))
            } else {
                Arc::new(Int64Array::from_iter_values(accs.by_ref().map(|x| x.int())))
            });
        }
        Ok(Some(RecordBatch::try_new(self.output.clone(), cols)?))
    }
}

#[async_trait]
impl<R: KeyReader> Operator for WindowAggregate<R> {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let key_cols: Vec<ArrayRef> = self.keys.iter().map(|i| batch.column(*i).clone()).collect();
        hash_columns(&key_cols, &mut self.hashes)?;
        self.reader.prepare(&key_cols)?;
        let values = agg_values(&self.aggs, &batch)?;
        let ts = cast(batch.column(self.time), &DataType::Int64)?;
        let ts = ts.as_primitive::<Int64Type>();
        let init = initial_accs(&self.aggs);
        for row in 0..batch.num_rows() {
            if ts.is_null(row) {
                self.late += 1; // no event time: cannot be placed in a window
                continue;
            }
            let t = ts.value(row);
            let kg = key_group(self.hashes[row], self.max_parallelism);
            if !self.range.contains(&kg) {
                return Err(RuntimeError::Internal(format!(
                    "key group {kg} arrived at a subtask owning {:?}: upstream partitioning disagrees",
                    self.range
                )));
            }
            let key = self.reader.key(row);
            let mut start = t - t.rem_euclid(self.slide);
            while start > t - self.size {
                let end = start + self.size;
                if end.saturating_add(self.lateness) <= self.watermark {
                    self.late += 1;
                } else {
                    let (_, accs) = self
                        .windows
                        .entry((key.clone(), start))
                        .or_insert_with(|| (kg, init.clone()));
                    fold_row(&self.aggs, &values, row, accs.slice_mut());
                    self.next_end = self.next_end.min(end);
                }
                start -= self.slide;
            }
        }
        Ok(None)
    }

    async fn on_watermark(&mut self, w: i64) -> Result<Option<RecordBatch>> {
        self.watermark = self.watermark.max(w);
        if self.late > self.late_logged {
            info!(
                late = self.late,
                "window aggregate: late rows dropped so far"
            );
            self.late_logged = self.late;
        }
        self.fire(self.watermark)
    }

    async fn end_of_input(&mut self) -> Result<Option<RecordBatch>> {
        self.fire(i64::MAX)
    }

    async fn snapshot(&mut self, _barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        let snap = Snapshot {
            watermark: self.watermark,
            late: self.late,
            windows: self
                .windows
                .iter()
                .map(|((k, s), (kg, accs))| (*kg, k.clone(), *s, accs.clone()))
                .collect(),
        };
        Ok(Some(weir_state::encode(&snap)))
    }
}
