//! Event-time session windows: per key, rows closer than the gap belong to one session.
//!
//! A row at time `t` opens the window `[t, t + gap)`; windows of one key that overlap merge
//! (their accumulators combine), so a session ends `gap` after its last row. A session is
//! emitted once, when the watermark passes its end plus the allowed lateness, as a row of
//! keys, `window_start`, `window_end` and aggregates (the same schema as `window_aggregate`);
//! a row whose own window `[t, t + gap)` already ended by then is late: dropped and counted.
//! State is per key (with its key group, so it restores at another parallelism); sessions
//! to fire are found through an index by end time that may hold stale entries (a session
//! whose end moved on when it merged), checked against the key's sessions when they come up.

use crate::aggregate::{agg_cols, agg_values, fold_row, initial_accs, Acc, AggCol};
use crate::window::LateRows;
use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::hashing::hash_columns;
use weir_runtime::message::Barrier;
use weir_runtime::operator::{Operator, OperatorContext, Restored};
use weir_state::{FastMap, KeyBytes};
use weir_types::keygroup::{key_group, key_group_range};
use weir_types::{AggFn, WindowSpec};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    start: i64,
    end: i64,
    accs: Vec<Acc>,
}

#[derive(Deserialize)]
struct Snapshot {
    watermark: i64,
    late: u64,
    /// (key group, key, sessions)
    keys: Vec<(u32, KeyBytes, Vec<Session>)>,
}

/// What [`Snapshot`] decodes, written from references into the state.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    watermark: i64,
    late: u64,
    keys: Vec<(u32, &'a [u8], &'a [Session])>,
}

pub struct SessionWindows {
    keys: Vec<usize>,
    key_rows: RowConverter,
    time: usize,
    gap: i64,
    lateness: i64,
    aggs: Vec<AggCol>,
    /// Key → (key group, its open sessions, by start).
    state: FastMap<KeyBytes, (u32, Vec<Session>)>,
    /// Session end → keys that had a session ending then.
    by_end: BTreeMap<i64, Vec<KeyBytes>>,
    watermark: i64,
    late: LateRows,
    max_parallelism: u32,
    range: Range<u32>,
    output: SchemaRef,
    hashes: Vec<u64>,
}

impl SessionWindows {
    pub fn new(
        ctx: &OperatorContext,
        spec: &WindowSpec,
        input: &SchemaRef,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let keys = weir_runtime::operator::column_indices(input, &spec.keys)?;
        let time = input
            .index_of(&spec.time)
            .map_err(|_| RuntimeError::Plan(format!("unknown time column {:?}", spec.time)))?;
        let mut op = Self {
            key_rows: RowConverter::new(
                keys.iter()
                    .map(|i| SortField::new(input.field(*i).data_type().clone()))
                    .collect(),
            )?,
            keys,
            time,
            gap: spec.gap_ms as i64,
            lateness: spec.allowed_lateness_ms as i64,
            aggs: agg_cols(ctx, &spec.aggregates, input)?,
            state: FastMap::default(),
            by_end: BTreeMap::new(),
            watermark: i64::MIN,
            late: LateRows::default(),
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
                for (kg, key, sessions) in s.keys {
                    if op.range.contains(&kg) {
                        for s in &sessions {
                            op.by_end.entry(s.end).or_default().push(key.clone());
                        }
                        op.state.insert(key, (kg, sessions));
                    }
                }
            }
            op.watermark = watermark.unwrap_or(i64::MIN);
            op.late.logged = op.late.count;
        }
        Ok(op)
    }

    /// Emits (and forgets) every session whose end plus lateness is at or below `w`.
    fn fire(&mut self, w: i64) -> Result<Option<RecordBatch>> {
        let mut done: Vec<(KeyBytes, Session)> = Vec::new();
        while let Some((&end, _)) = self.by_end.first_key_value() {
            if end.saturating_add(self.lateness) > w {
                break;
            }
            let Some((_, keys)) = self.by_end.pop_first() else {
                break;
            };
            for key in keys {
                let Some((_, sessions)) = self.state.get_mut(&key) else {
                    continue; // fired already through another entry
                };
                let mut i = 0;
                while i < sessions.len() {
                    if sessions[i].end.saturating_add(self.lateness) <= w {
                        done.push((key.clone(), sessions.remove(i)));
                    } else {
                        i += 1;
                    }
                }
                if sessions.is_empty() {
                    self.state.remove(&key);
                }
            }
        }
        if done.is_empty() {
            return Ok(None);
        }
        let parser = self.key_rows.parser();
        let mut cols: Vec<ArrayRef> = self
            .key_rows
            .convert_rows(done.iter().map(|(k, _)| parser.parse(k)))?;
        cols.push(Arc::new(TimestampMillisecondArray::from_iter_values(
            done.iter().map(|(_, s)| s.start),
        )));
        cols.push(Arc::new(TimestampMillisecondArray::from_iter_values(
            done.iter().map(|(_, s)| s.end),
        )));
        for (i, a) in self.aggs.iter().enumerate() {
            cols.push(a.output(done.iter().map(|(_, s)| s.accs[i])));
        }
        Ok(Some(RecordBatch::try_new(self.output.clone(), cols)?))
    }
}

/// Combines two sessions' accumulators of one aggregate.
fn merge(f: AggFn, a: Acc, b: Acc) -> Acc {
    match (a, b) {
        (Acc::Empty, x) | (x, Acc::Empty) => x,
        (Acc::Int(x), Acc::Int(y)) => Acc::Int(match f {
            AggFn::Min => x.min(y),
            AggFn::Max => x.max(y),
            _ => x.wrapping_add(y),
        }),
        (x, y) => {
            let (x, y) = (x.float(), y.float());
            Acc::Float(match f {
                AggFn::Min => x.min(y),
                AggFn::Max => x.max(y),
                _ => x + y,
            })
        }
    }
}

#[async_trait]
impl Operator for SessionWindows {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let key_cols: Vec<ArrayRef> = self.keys.iter().map(|i| batch.column(*i).clone()).collect();
        hash_columns(&key_cols, &mut self.hashes)?;
        let keys = self.key_rows.convert_columns(&key_cols)?;
        let values = agg_values(&self.aggs, &batch)?;
        let ts = cast(batch.column(self.time), &DataType::Int64)?;
        let ts = ts.as_primitive::<Int64Type>();
        let init = initial_accs(&self.aggs).slice_mut().to_vec();
        for row in 0..batch.num_rows() {
            if ts.is_null(row) {
                self.late.count += 1;
                continue;
            }
            let t = ts.value(row);
            let (start, end) = (t, t.saturating_add(self.gap));
            let key = keys.row(row);
            // As Flink's merging windows: a row whose own window is complete is late only if
            // it joins no open session; one that touches an open session extends it.
            if end.saturating_add(self.lateness) <= self.watermark {
                let joins_open = self
                    .state
                    .get(key.as_ref())
                    .is_some_and(|(_, open)| open.iter().any(|o| o.start <= end && start <= o.end));
                if !joins_open {
                    self.late.count += 1;
                    continue;
                }
            }
            let kg = key_group(self.hashes[row], self.max_parallelism);
            if !self.range.contains(&kg) {
                return Err(RuntimeError::Internal(format!(
                    "key group {kg} arrived at a subtask owning {:?}: upstream partitioning disagrees",
                    self.range
                )));
            }
            let sessions = match self.state.get_mut(key.as_ref()) {
                Some((_, sessions)) => sessions,
                None => {
                    &mut self
                        .state
                        .entry(KeyBytes::new(key.as_ref()))
                        .or_insert_with(|| (kg, Vec::new()))
                        .1
                }
            };
            let mut s = Session {
                start,
                end,
                accs: init.clone(),
            };
            fold_row(&self.aggs, &values, row, &mut s.accs);
            // Merge every open session this row's window overlaps.
            let mut i = 0;
            while i < sessions.len() {
                let o = &sessions[i];
                // Flink merges sessions that touch: rows exactly the gap apart are one
                // session (its windows intersect when `start <= other.end`).
                if o.start <= s.end && s.start <= o.end {
                    let o = sessions.remove(i);
                    s.start = s.start.min(o.start);
                    s.end = s.end.max(o.end);
                    for ((acc, other), a) in s.accs.iter_mut().zip(o.accs).zip(&self.aggs) {
                        *acc = merge(a.func, *acc, other);
                    }
                } else {
                    i += 1;
                }
            }
            self.by_end
                .entry(s.end)
                .or_default()
                .push(KeyBytes::new(key.as_ref()));
            sessions.push(s);
        }
        Ok(None)
    }

    async fn on_watermark(&mut self, w: i64) -> Result<Option<RecordBatch>> {
        // As the window aggregate: a session whose last millisecond (`end - 1`) is at or
        // before `w` is complete (Flink fires it then), so the operator keeps `w + 1`.
        self.watermark = self.watermark.max(if w == i64::MIN {
            w
        } else {
            w.saturating_add(1)
        });
        self.late.log("session windows");
        self.fire(self.watermark)
    }

    async fn end_of_input(&mut self) -> Result<Option<RecordBatch>> {
        self.fire(i64::MAX)
    }

    async fn snapshot(&mut self, _barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        let snap = SnapshotRef {
            watermark: self.watermark,
            late: self.late.count,
            keys: self
                .state
                .iter()
                .map(|(k, (kg, s))| (*kg, k.as_slice(), s.as_slice()))
                .collect(),
        };
        Ok(Some(weir_state::encode(&snap)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use weir_types::AggSpec;

    fn input() -> SchemaRef {
        crate::key_value_time_schema(false)
    }

    fn spec() -> WindowSpec {
        WindowSpec {
            keys: vec!["k".into()],
            time: "ts".into(),
            size_ms: 0,
            slide_ms: 0,
            aggregates: vec![
                AggSpec {
                    func: AggFn::Count,
                    column: None,
                    name: "n".into(),
                },
                AggSpec {
                    func: AggFn::Max,
                    column: Some("v".into()),
                    name: "top".into(),
                },
            ],
            allowed_lateness_ms: 0,
            assigned: false,
            gap_ms: 10,
        }
    }

    fn op(restored: Option<Restored>) -> SessionWindows {
        let ctx = OperatorContext::for_test(
            "s",
            0,
            1,
            vec![input()],
            weir_planner::window::schema(&spec(), &input(), "s").unwrap(),
        );
        SessionWindows::new(&ctx, &spec(), &input(), restored).unwrap()
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

    /// (key, start, end, count, max), sorted.
    fn rows(b: Option<RecordBatch>) -> Vec<(i64, i64, i64, i64, i64)> {
        let Some(b) = b else { return vec![] };
        let c = |i: usize| cast(b.column(i), &DataType::Int64).unwrap();
        let (k, s, e, n, m) = (c(0), c(1), c(2), c(3), c(4));
        let v = |a: &ArrayRef, i| a.as_primitive::<Int64Type>().value(i);
        let mut out: Vec<_> = (0..b.num_rows())
            .map(|i| (v(&k, i), v(&s, i), v(&e, i), v(&n, i), v(&m, i)))
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn rows_within_the_gap_merge_into_one_session() {
        let mut s = op(None);
        // Key 1 at 0 and 30 (two sessions so far), key 2 at 12.
        s.process(batch(&[(1, 4, 0), (2, 7, 12), (1, 9, 30)]))
            .await
            .unwrap();
        // Key 1 at 5 joins [0, 10) into [0, 15); key 2 at 20 extends [12, 22) to [12, 30).
        s.process(batch(&[(1, 1, 5), (2, 3, 20)])).await.unwrap();
        let got = rows(s.on_watermark(30).await.unwrap());
        assert_eq!(got, vec![(1, 0, 15, 2, 4), (2, 12, 30, 2, 7)]);
        // A row whose own window ended before the watermark is late.
        s.process(batch(&[(1, 100, 10)])).await.unwrap();
        assert_eq!(s.late.count, 1);
        let barrier = Barrier::for_test(1);
        let snap = s.snapshot(&barrier).await.unwrap().unwrap();
        let mut r = op(Some(Restored {
            job_id: "j".into(),
            old_parallelism: 1,
            snapshots: vec![(0, bytes::Bytes::from(snap))],
        }));
        r.process(batch(&[(1, 2, 35)])).await.unwrap();
        let got = rows(r.end_of_input().await.unwrap());
        assert_eq!(got, vec![(1, 30, 45, 2, 9)]);
    }
}
