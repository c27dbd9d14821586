//! Event-time window aggregates: tumbling (`slide == size`) and hopping windows.
//!
//! A row with event time `t` belongs to every window `[s, s + size)` with `s` a multiple of
//! `slide` and `s <= t < s + size`. Accumulators are kept per (key, window start) in a hash
//! map with the key's key group, so the state snapshots by key group and restores at another
//! parallelism. A window's row (keys, `window_start`, `window_end`, aggregates) is emitted
//! once, when the watermark reaches its end plus the allowed lateness; a row that arrives for
//! a window already emitted is late: dropped and counted. End of input closes every window.
//! The operator's watermark is part of its snapshot, so a restored subtask drops exactly the
//! rows its predecessor would have. An `assigned` window aggregate groups rows that are
//! windows already (another window aggregate's output) by their own window.

use super::aggregate::{
    agg_cols, agg_values, fold_row, initial_accs, Accs, AggCol, IntKey, KeyReader, RowKey,
};
use super::{Operator, OperatorContext, Restored};
use crate::error::{Result, RuntimeError};
use crate::hashing::hash_columns;
use crate::message::Barrier;
use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
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
    let keys = super::column_indices(input, &spec.keys)?;
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

/// Rows dropped as late, logged whenever the count has grown.
#[derive(Debug, Default)]
pub(super) struct LateRows {
    pub(super) count: u64,
    pub(super) logged: u64,
}

impl LateRows {
    pub(super) fn log(&mut self, operator: &str) {
        if self.count > self.logged {
            info!(late = self.count, "{operator}: late rows dropped so far");
            self.logged = self.count;
        }
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
    /// The rows are windows already: the time column is the window start.
    assigned: bool,
    lateness: i64,
    /// Open windows by start, each with its keys' (key group, accumulators). Closing a
    /// window drops its whole map: no scan of the other windows, no tombstones left behind.
    windows: BTreeMap<i64, HashMap<R::Key, (u32, Accs)>>,
    watermark: i64,
    late: LateRows,
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
            // An assigned row is in exactly one window: its own.
            slide: if spec.assigned {
                spec.size_ms as i64
            } else {
                spec.slide() as i64
            },
            assigned: spec.assigned,
            lateness: spec.allowed_lateness_ms as i64,
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            late: LateRows::default(),
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
                op.late.count += s.late;
                for (kg, key, start, accs) in s.windows {
                    if op.range.contains(&kg) {
                        op.windows.entry(start).or_default().insert(key, (kg, accs));
                    }
                }
            }
            op.watermark = watermark.unwrap_or(i64::MIN);
            op.late.logged = op.late.count;
        }
        Ok(op)
    }

    /// Emits (and forgets) every window whose end plus lateness is at or below `w`.
    fn fire(&mut self, w: i64) -> Result<Option<RecordBatch>> {
        let (size, lateness) = (self.size, self.lateness);
        let mut done: Vec<(R::Key, i64, Accs)> = Vec::new();
        while let Some((&start, _)) = self.windows.first_key_value() {
            if (start + size).saturating_add(lateness) > w {
                break;
            }
            if let Some((start, keys)) = self.windows.pop_first() {
                done.extend(keys.into_iter().map(|(k, (_, accs))| (k, start, accs)));
            }
        }
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
            cols.push(a.output(done.iter().map(|(_, _, accs)| match accs {
                Accs::One(x) => *x,
                Accs::Many(xs) => xs[i],
            })));
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
                self.late.count += 1; // no event time: cannot be placed in a window
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
            let mut start = if self.assigned {
                t
            } else {
                t - t.rem_euclid(self.slide)
            };
            while start > t - self.size {
                let end = start + self.size;
                if end.saturating_add(self.lateness) <= self.watermark {
                    self.late.count += 1;
                } else {
                    let (_, accs) = self
                        .windows
                        .entry(start)
                        .or_default()
                        .entry(key.clone())
                        .or_insert_with(|| (kg, init.clone()));
                    fold_row(&self.aggs, &values, row, accs.slice_mut());
                }
                start -= self.slide;
            }
        }
        Ok(None)
    }

    async fn on_watermark(&mut self, w: i64) -> Result<Option<RecordBatch>> {
        self.watermark = self.watermark.max(w);
        self.late.log("window aggregate");
        self.fire(self.watermark)
    }

    async fn end_of_input(&mut self) -> Result<Option<RecordBatch>> {
        self.fire(i64::MAX)
    }

    async fn snapshot(&mut self, _barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        let snap = Snapshot {
            watermark: self.watermark,
            late: self.late.count,
            windows: self
                .windows
                .iter()
                .flat_map(|(s, keys)| {
                    keys.iter()
                        .map(move |(k, (kg, accs))| (*kg, k.clone(), *s, accs.clone()))
                })
                .collect(),
        };
        Ok(Some(weir_state::encode(&snap)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use weir_types::{AggFn, AggSpec};

    fn input() -> SchemaRef {
        super::super::key_value_time_schema(false)
    }

    fn spec(size: u64, slide: u64, lateness: u64) -> WindowSpec {
        WindowSpec {
            keys: vec!["k".into()],
            time: "ts".into(),
            size_ms: size,
            slide_ms: slide,
            aggregates: vec![
                AggSpec {
                    func: AggFn::Count,
                    column: None,
                    name: "n".into(),
                },
                AggSpec {
                    func: AggFn::Sum,
                    column: Some("v".into()),
                    name: "s".into(),
                },
            ],
            allowed_lateness_ms: lateness,
            assigned: false,
            gap_ms: 0,
        }
    }

    fn op(
        w: &WindowSpec,
        subtask: u32,
        parallelism: u32,
        restored: Option<Restored>,
    ) -> Box<dyn Operator> {
        let ctx = OperatorContext::for_test(
            "w",
            subtask,
            parallelism,
            vec![input()],
            schema(w, &input(), "w").unwrap(),
        );
        build(&ctx, w, &input(), restored).unwrap()
    }

    fn batch(rows: &[(i64, i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            input(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.2),
                )),
            ],
        )
        .unwrap()
    }

    /// (key, window start, count, sum), sorted.
    fn rows(b: Option<RecordBatch>) -> Vec<(i64, i64, i64, i64)> {
        let Some(b) = b else { return vec![] };
        let k = b.column(0).as_primitive::<Int64Type>();
        let s = b
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        let n = b.column(3).as_primitive::<Int64Type>();
        let v = b.column(4).as_primitive::<Int64Type>();
        let mut out: Vec<_> = (0..b.num_rows())
            .map(|i| (k.value(i), s.value(i), n.value(i), v.value(i)))
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn tumbling_windows_fire_on_the_watermark_and_drop_late_rows() {
        let w = spec(10, 10, 0);
        let mut o = op(&w, 0, 1, None);
        o.process(batch(&[(1, 5, 3), (1, 7, 9), (2, 1, 12), (1, 1, -1)]))
            .await
            .unwrap();
        assert_eq!(
            rows(o.on_watermark(9).await.unwrap()),
            vec![(1, -10, 1, 1)],
            "[-10,0) closed, [0,10) still open"
        );
        assert_eq!(rows(o.on_watermark(10).await.unwrap()), vec![(1, 0, 2, 12)]);
        o.process(batch(&[(1, 100, 4)])).await.unwrap(); // late: [0,10) was emitted
        assert_eq!(
            rows(o.on_watermark(20).await.unwrap()),
            vec![(2, 10, 1, 1)],
            "the late row is dropped"
        );
        assert_eq!(rows(o.end_of_input().await.unwrap()), vec![]);
    }

    #[tokio::test]
    async fn hopping_windows_and_allowed_lateness() {
        let w = spec(10, 5, 5);
        let mut o = op(&w, 0, 1, None);
        o.process(batch(&[(7, 1, 12)])).await.unwrap(); // in [5,15) and [10,20)
        assert_eq!(
            rows(o.on_watermark(15).await.unwrap()),
            vec![],
            "lateness keeps [5,15) open"
        );
        // ts 6 is in [0,10) (late even with 5 ms lateness: dropped) and [5,15) (ended at
        // the watermark, but within the allowed lateness: accepted).
        o.process(batch(&[(7, 2, 6)])).await.unwrap();
        assert_eq!(rows(o.on_watermark(20).await.unwrap()), vec![(7, 5, 2, 3)]);
        assert_eq!(rows(o.end_of_input().await.unwrap()), vec![(7, 10, 1, 1)]);
    }

    #[tokio::test]
    async fn state_restores_by_key_group_at_another_parallelism() {
        let w = spec(10, 10, 0);
        let mut o = op(&w, 0, 1, None);
        let keys: Vec<i64> = (0..50).collect();
        let input: Vec<(i64, i64, i64)> = keys.iter().map(|k| (*k, 1, 3)).collect();
        o.process(batch(&input)).await.unwrap();
        o.on_watermark(2).await.unwrap();
        let barrier = Barrier {
            id: 1,
            timestamp_ms: 0,
            savepoint: false,
            target_dir: "x".into(),
        };
        let snap = o.snapshot(&barrier).await.unwrap().unwrap();
        let restored = Restored {
            job_id: "j".into(),
            old_parallelism: 1,
            snapshots: vec![(0, bytes::Bytes::from(snap))],
        };
        let mut all = Vec::new();
        for sub in 0..2 {
            let mut r = op(&w, sub, 2, Some(restored.clone()));
            // The restored watermark (2) still drops nothing of [0,10); a row for [0,10) of
            // a key this subtask owns is added to the restored window.
            all.extend(rows(r.end_of_input().await.unwrap()));
        }
        all.sort();
        assert_eq!(all.len(), 50, "every key's window once");
        assert!(all.iter().all(|(_, s, n, v)| (*s, *n, *v) == (0, 1, 1)));
    }
}
