//! Aggregates over each row's preceding rows in its partition, in event-time order
//! (`OperatorKind::OverAggregate`; SQL's `AGG(x) OVER (PARTITION BY k ORDER BY t ROWS
//! BETWEEN n PRECEDING AND CURRENT ROW)`).
//!
//! Rows wait in a buffer until the watermark shows that no row with an earlier time can
//! still come (time plus the column's slack at or below the watermark); then the buffered
//! rows that are due are sorted by time (ties by the whole row's values, so the order does
//! not depend on which channel delivered first) and emitted one by one, each with the
//! aggregates over its frame: the last `preceding` rows of its partition before it and
//! itself. A row arriving after the watermark passed it would have to go before rows already
//! emitted: it is dropped and counted, as Flink drops late rows of OVER aggregates.
//!
//! State, all by key group so it restores at another parallelism: the buffered rows (Arrow
//! IPC), and per partition the frame's values (bounded frames) or running accumulators
//! (`UNBOUNDED PRECEDING`).

use crate::aggregate::{agg_cols, agg_values, initial_accs, Acc, AggCol, Values};
use crate::window::LateRows;
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt32Array};
use arrow::compute::{cast, concat_batches, filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::ops::Range;
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::exchange::{decode_batch, encode_batch};
use weir_runtime::hashing::hash_columns;
use weir_runtime::message::Barrier;
use weir_runtime::operator::{Operator, OperatorContext, Restored};
use weir_state::FastMap;
use weir_types::keygroup::{key_group, key_group_range};
use weir_types::{AggFn, OverSpec};

/// A partition's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Partition {
    key_group: u32,
    /// Bounded frames: the contributions of the last `preceding` rows, oldest first.
    frame: VecDeque<Vec<Option<Acc>>>,
    /// Unbounded frames: the running accumulators.
    running: Option<Vec<Acc>>,
    /// Bounded frames: (emission, time) of the partition's last row emitted. As in Flink's
    /// bounded ROWS OVER, a row is late when an earlier emission of its partition already
    /// went up to its time (rows of one time go out together, as Flink's timer fires once per
    /// time); not when it is behind the watermark, which decides only unbounded frames.
    last_emitted: Option<(u64, i64)>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    watermark: i64,
    late: u64,
    /// Buffered rows, Arrow IPC (empty: none)
    buffered: Vec<u8>,
    partitions: Vec<(Vec<u8>, Partition)>,
}

pub struct OverAggregate {
    keys: Vec<usize>,
    time: usize,
    preceding: Option<usize>,
    slack: i64,
    aggs: Vec<AggCol>,
    key_rows: RowConverter,
    /// The whole row, for a deterministic order among rows with equal times.
    all_rows: RowConverter,
    input: SchemaRef,
    buffered: Vec<RecordBatch>,
    partitions: FastMap<Vec<u8>, Partition>,
    watermark: i64,
    late: LateRows,
    /// Emissions so far (each `emit_due` is one), for `Partition::last_emitted`.
    emissions: u64,
    max_parallelism: u32,
    range: Range<u32>,
    output: SchemaRef,
    hashes: Vec<u64>,
}

impl OverAggregate {
    pub fn new(
        ctx: &OperatorContext,
        spec: &OverSpec,
        input: &SchemaRef,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let keys = weir_runtime::operator::column_indices(input, &spec.keys)?;
        let time =
            weir_runtime::operator::column_indices(input, std::slice::from_ref(&spec.time))?[0];
        let fields = |cols: &mut dyn Iterator<Item = usize>| -> Result<RowConverter> {
            Ok(RowConverter::new(
                cols.map(|i| SortField::new(input.field(i).data_type().clone()))
                    .collect(),
            )?)
        };
        let mut op = Self {
            key_rows: fields(&mut keys.iter().copied())?,
            all_rows: fields(&mut (0..input.fields().len()))?,
            keys,
            time,
            preceding: spec.preceding.map(|n| n as usize),
            slack: spec.slack_ms,
            aggs: agg_cols(ctx, &spec.aggregates, input)?,
            input: input.clone(),
            buffered: Vec::new(),
            partitions: FastMap::default(),
            watermark: i64::MIN,
            late: LateRows::default(),
            emissions: 0,
            max_parallelism: ctx.max_parallelism,
            range: key_group_range(ctx.subtask, ctx.max_parallelism, ctx.parallelism),
            output: ctx.output_schema.clone(),
            hashes: Vec::new(),
        };
        if let Some(r) = restored {
            let mut watermark = None::<i64>;
            for (_, bytes) in &r.snapshots {
                let s: Snapshot = weir_state::decode(bytes)?;
                watermark = Some(watermark.map_or(s.watermark, |w| w.min(s.watermark)));
                op.late.count += s.late;
                for (key, p) in s.partitions {
                    if op.range.contains(&p.key_group) {
                        op.partitions.insert(key, p);
                    }
                }
                if !s.buffered.is_empty() {
                    let batch = decode_batch(&s.buffered)?;
                    let mine = op.owned_rows(&batch)?;
                    op.buffered.push(filter_record_batch(&batch, &mine)?);
                }
            }
            op.watermark = watermark.unwrap_or(i64::MIN);
            op.late.logged = op.late.count;
            op.emissions = op
                .partitions
                .values()
                .filter_map(|p| p.last_emitted.map(|(e, _)| e))
                .max()
                .unwrap_or(0);
        }
        Ok(op)
    }

    fn key_groups(&mut self, batch: &RecordBatch) -> Result<Vec<u32>> {
        let key_cols: Vec<ArrayRef> = self.keys.iter().map(|i| batch.column(*i).clone()).collect();
        hash_columns(&key_cols, &mut self.hashes)?;
        Ok(self
            .hashes
            .iter()
            .map(|h| key_group(*h, self.max_parallelism))
            .collect())
    }

    /// Which rows of `batch` belong to this subtask's key groups.
    fn owned_rows(&mut self, batch: &RecordBatch) -> Result<BooleanArray> {
        let range = self.range.clone();
        Ok(self
            .key_groups(batch)?
            .into_iter()
            .map(|kg| Some(range.contains(&kg)))
            .collect())
    }

    fn times(&self, batch: &RecordBatch) -> Result<Vec<Option<i64>>> {
        let t = cast(batch.column(self.time), &DataType::Int64)?;
        Ok(t.as_primitive::<Int64Type>().iter().collect())
    }

    /// Emits, in time order, the buffered rows whose time plus slack is at or below `w`.
    fn emit_due(&mut self, w: i64) -> Result<Option<RecordBatch>> {
        if self.buffered.is_empty() {
            return Ok(None);
        }
        let all = concat_batches(&self.input, &self.buffered)?;
        self.buffered.clear();
        let times = self.times(&all)?;
        let due: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some_and(|t| t.saturating_add(self.slack) <= w)))
            .collect();
        let rest = filter_record_batch(&all, &arrow::compute::not(&due)?)?;
        if rest.num_rows() > 0 {
            self.buffered.push(rest);
        }
        let batch = filter_record_batch(&all, &due)?;
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let times: Vec<i64> = self.times(&batch)?.into_iter().flatten().collect();
        let whole = self.all_rows.convert_columns(batch.columns())?;
        let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
        order.sort_by(|a, b| {
            (times[*a as usize], whole.row(*a as usize))
                .cmp(&(times[*b as usize], whole.row(*b as usize)))
        });
        let sorted_times: Vec<i64> = order.iter().map(|i| times[*i as usize]).collect();
        let sorted = take_record_batch(&batch, &UInt32Array::from(order))?;
        let key_groups = self.key_groups(&sorted)?;
        let key_cols: Vec<ArrayRef> = self
            .keys
            .iter()
            .map(|i| sorted.column(*i).clone())
            .collect();
        let keys = self.key_rows.convert_columns(&key_cols)?;
        let values = agg_values(&self.aggs, &sorted)?;
        let mut results: Vec<Vec<Acc>> =
            vec![Vec::with_capacity(sorted.num_rows()); self.aggs.len()];
        let init: Vec<Acc> = initial_accs(&self.aggs).slice_mut().to_vec();
        let mut kept: Vec<bool> = Vec::with_capacity(sorted.num_rows());
        self.emissions += 1;
        for (row, kg) in key_groups.iter().enumerate() {
            if !self.range.contains(kg) {
                return Err(RuntimeError::Internal(format!(
                    "key group {kg} arrived at a subtask owning {:?}: upstream partitioning disagrees",
                    self.range
                )));
            }
            let contribution = contributions(&self.aggs, &values, row);
            let key = keys.row(row);
            let p = match self.partitions.get_mut(key.as_ref()) {
                Some(p) => p,
                None => self
                    .partitions
                    .entry(key.as_ref().to_vec())
                    .or_insert_with(|| Partition {
                        key_group: *kg,
                        ..Default::default()
                    }),
            };
            if self.preceding.is_some() {
                let t = sorted_times[row];
                let emission = self.emissions;
                if p.last_emitted
                    .is_some_and(|(e, last)| e != emission && t <= last)
                {
                    self.late.count += 1;
                    kept.push(false);
                    continue;
                }
                p.last_emitted = Some((emission, t));
            }
            kept.push(true);
            let accs = match self.preceding {
                None => {
                    let running = p.running.get_or_insert_with(|| init.clone());
                    fold(&self.aggs, running, &contribution);
                    running.clone()
                }
                Some(n) => {
                    let mut accs = init.clone();
                    for earlier in &p.frame {
                        fold(&self.aggs, &mut accs, earlier);
                    }
                    fold(&self.aggs, &mut accs, &contribution);
                    if n > 0 {
                        if p.frame.len() == n {
                            p.frame.pop_front();
                        }
                        p.frame.push_back(contribution);
                    }
                    accs
                }
            };
            for (out, acc) in results.iter_mut().zip(accs) {
                out.push(acc);
            }
        }
        let sorted = if kept.iter().all(|k| *k) {
            sorted
        } else {
            filter_record_batch(&sorted, &BooleanArray::from(kept))?
        };
        if sorted.num_rows() == 0 {
            return Ok(None);
        }
        let mut cols: Vec<ArrayRef> = sorted.columns().to_vec();
        for (a, accs) in self.aggs.iter().zip(results) {
            cols.push(a.output(accs.into_iter()));
        }
        Ok(Some(RecordBatch::try_new(self.output.clone(), cols)?))
    }
}

/// Each aggregate's contribution of row `row`: `None` for a NULL value (COUNT(x), SUM, MIN
/// and MAX skip it).
fn contributions(aggs: &[AggCol], values: &[Values], row: usize) -> Vec<Option<Acc>> {
    aggs.iter()
        .zip(values)
        .map(|(a, v)| match (a.func, v) {
            (AggFn::Count, v) => v.is_valid(row).then_some(Acc::Int(1)),
            (_, Values::Int(x)) => x.is_valid(row).then(|| Acc::Int(x.value(row))),
            (_, Values::Float(x)) => x.is_valid(row).then(|| Acc::Float(x.value(row))),
            (_, Values::None | Values::Present(_)) => None,
        })
        .collect()
}

fn fold(aggs: &[AggCol], accs: &mut [Acc], contribution: &[Option<Acc>]) {
    for ((acc, a), c) in accs.iter_mut().zip(aggs).zip(contribution) {
        let Some(v) = c else { continue };
        *acc = match (a.func, *acc, *v) {
            (AggFn::Count, Acc::Int(n), _) => Acc::Int(n + 1),
            (AggFn::Sum, Acc::Int(s), Acc::Int(x)) => Acc::Int(s.wrapping_add(x)),
            (AggFn::Sum, Acc::Float(s), x) => Acc::Float(s + x.float()),
            (AggFn::Sum | AggFn::Min | AggFn::Max, Acc::Empty, x) => x,
            (AggFn::Min, Acc::Int(m), Acc::Int(x)) => Acc::Int(m.min(x)),
            (AggFn::Max, Acc::Int(m), Acc::Int(x)) => Acc::Int(m.max(x)),
            (AggFn::Min, Acc::Float(m), x) => Acc::Float(m.min(x.float())),
            (AggFn::Max, Acc::Float(m), x) => Acc::Float(m.max(x.float())),
            (_, other, _) => other,
        };
    }
}

#[async_trait]
impl Operator for OverAggregate {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        // Rows already passed by the watermark (or without a time) are late.
        let times = self.times(&batch)?;
        // Bounded frames decide lateness per partition when the rows are emitted.
        let bounded = self.preceding.is_some();
        let on_time: BooleanArray = times
            .iter()
            .map(|t| {
                Some(t.is_some_and(|t| {
                    bounded
                        || self.watermark == i64::MIN
                        || t.saturating_add(self.slack) > self.watermark
                }))
            })
            .collect();
        let kept = filter_record_batch(&batch, &on_time)?;
        self.late.count += (batch.num_rows() - kept.num_rows()) as u64;
        if kept.num_rows() > 0 {
            self.buffered.push(kept);
        }
        Ok(None)
    }

    async fn on_watermark(&mut self, w: i64) -> Result<Option<RecordBatch>> {
        self.watermark = self.watermark.max(w);
        self.late.log("over aggregate");
        self.emit_due(self.watermark)
    }

    async fn end_of_input(&mut self) -> Result<Option<RecordBatch>> {
        self.emit_due(i64::MAX)
    }

    async fn snapshot(&mut self, _barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        let buffered = if self.buffered.is_empty() {
            Vec::new()
        } else {
            let all = concat_batches(&self.input, &self.buffered)?;
            self.buffered = vec![all.clone()];
            encode_batch(&all)?
        };
        let snap = Snapshot {
            watermark: self.watermark,
            late: self.late.count,
            buffered,
            partitions: self
                .partitions
                .iter()
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect(),
        };
        Ok(Some(weir_state::encode(&snap)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    use weir_types::AggSpec;

    fn input() -> SchemaRef {
        crate::key_value_time_schema(true)
    }

    fn output() -> SchemaRef {
        let mut f: Vec<Field> = input()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        f.push(Field::new("s", DataType::Int64, false));
        f.push(Field::new("n", DataType::Int64, false));
        f.push(Field::new("m", DataType::Int64, false));
        Arc::new(Schema::new(f))
    }

    fn spec(preceding: Option<u64>) -> OverSpec {
        let agg = |func, column: Option<&str>, name: &str| AggSpec {
            func,
            column: column.map(String::from),
            name: name.into(),
        };
        OverSpec {
            keys: vec!["k".into()],
            time: "ts".into(),
            preceding,
            slack_ms: 0,
            aggregates: vec![
                agg(AggFn::Sum, Some("v"), "s"),
                agg(AggFn::Count, Some("v"), "n"),
                agg(AggFn::Max, Some("v"), "m"),
            ],
        }
    }

    fn op(
        subtask: u32,
        parallelism: u32,
        preceding: Option<u64>,
        r: Option<Restored>,
    ) -> OverAggregate {
        let ctx = OperatorContext::for_test("over", subtask, parallelism, vec![input()], output());
        OverAggregate::new(&ctx, &spec(preceding), &input(), r).unwrap()
    }

    fn rows(rows: &[(i64, Option<i64>, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            input(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.2),
                )),
            ],
        )
        .unwrap()
    }

    /// (k, ts, s, n, m) of each output row
    fn out(b: Option<RecordBatch>) -> Vec<(i64, i64, i64, i64, i64)> {
        let Some(b) = b else { return vec![] };
        let col = |i: usize| -> Vec<i64> {
            cast(b.column(i), &DataType::Int64)
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        };
        let (k, ts, s, n, m) = (col(0), col(2), col(3), col(4), col(5));
        (0..b.num_rows())
            .map(|i| (k[i], ts[i], s[i], n[i], m[i]))
            .collect()
    }

    #[tokio::test]
    async fn rows_frames_in_event_time_order_and_late_rows_dropped() {
        let mut o = op(0, 1, Some(2), None);
        // out of order within the buffer; key 2 interleaved; a NULL value
        o.process(rows(&[
            (1, Some(10), 30),
            (1, Some(1), 10),
            (2, Some(5), 15),
            (1, Some(4), 20),
        ]))
        .await
        .unwrap();
        assert_eq!(
            out(o.on_watermark(19).await.unwrap()),
            vec![(1, 10, 1, 1, 1), (2, 15, 5, 1, 5)]
        );
        // ts 19 is behind the watermark but after key 1's last emitted row (10): kept, as in
        // Flink's bounded ROWS OVER; ts 10 is not after it: late.
        o.process(rows(&[(1, None, 25), (1, Some(7), 19), (1, Some(3), 10)]))
            .await
            .unwrap();
        // frame = 2 preceding + current
        assert_eq!(
            out(o.on_watermark(40).await.unwrap()),
            vec![
                (1, 19, 8, 2, 7),
                (1, 20, 12, 3, 7),
                (1, 25, 11, 2, 7),
                (1, 30, 14, 2, 10)
            ]
        );
        assert_eq!(
            o.late.count, 1,
            "ts 10 of key 1 came after key 1 emitted ts 10"
        );
        o.process(rows(&[(1, Some(100), 50)])).await.unwrap();
        assert_eq!(
            out(o.end_of_input().await.unwrap()),
            vec![(1, 50, 110, 2, 100)],
            "frame: ts 25 (NULL), 30 (10), 50 (100)"
        );
    }

    #[tokio::test]
    async fn unbounded_frames_run_and_state_restores_at_another_parallelism() {
        // parallelism 1 holds everything; restore into 2 subtasks and check each key continues
        let mut o = op(0, 1, None, None);
        let keys: Vec<i64> = (0..20).collect();
        let first: Vec<(i64, Option<i64>, i64)> = keys.iter().map(|k| (*k, Some(*k), 10)).collect();
        o.process(rows(&first)).await.unwrap();
        o.on_watermark(10).await.unwrap();
        let pending: Vec<(i64, Option<i64>, i64)> =
            keys.iter().map(|k| (*k, Some(1), 20)).collect();
        o.process(rows(&pending)).await.unwrap();
        let snap = o.snapshot(&Barrier::for_test(1)).await.unwrap().unwrap();
        let restored = Restored {
            job_id: "j".into(),
            old_parallelism: 1,
            snapshots: vec![(0, snap.into())],
        };
        let mut seen = Vec::new();
        for s in 0..2 {
            let mut o = op(s, 2, None, Some(restored.clone()));
            seen.extend(out(o.end_of_input().await.unwrap()));
        }
        seen.sort();
        let want: Vec<_> = keys
            .iter()
            .map(|k| (*k, 20, k + 1, 2, (*k).max(1)))
            .collect();
        assert_eq!(seen, want);
    }

    #[tokio::test]
    async fn float_sums_and_ties_in_a_stable_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Float64, false),
            Field::new("ts", DataType::Int64, false),
        ]));
        let mut f: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        f.push(Field::new("s", DataType::Float64, false));
        let output = Arc::new(Schema::new(f));
        let ctx = OperatorContext::for_test("over", 0, 1, vec![schema.clone()], output);
        let spec = OverSpec {
            keys: vec!["k".into()],
            time: "ts".into(),
            preceding: Some(1),
            slack_ms: 5,
            aggregates: vec![AggSpec {
                func: AggFn::Sum,
                column: Some("v".into()),
                name: "s".into(),
            }],
        };
        let mut o = OverAggregate::new(&ctx, &spec, &schema, None).unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 1])),
                Arc::new(Float64Array::from(vec![2.5, 0.5, 1.0])),
                Arc::new(Int64Array::from(vec![7, 7, 3])),
            ],
        )
        .unwrap();
        o.process(batch).await.unwrap();
        assert!(
            o.on_watermark(7).await.unwrap().is_none(),
            "ts 3 waits for 8, ts 7 for 12"
        );
        let b = o.on_watermark(12).await.unwrap().unwrap();
        let s: Vec<f64> = b
            .column(3)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .values()
            .to_vec();
        // order: ts 3 (1.0), then ts 7 by value: 0.5, 2.5
        assert_eq!(s, vec![1.0, 1.5, 3.0]);
    }
}
