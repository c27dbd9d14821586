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
//!
//! Hopping windows whose size is a multiple of the slide are sliced, as Flink does: state is
//! kept per pane (`slide` long), a row updates the one pane it falls in instead of every
//! window it belongs to (5 with Nexmark's 10 s every 2 s), and a firing window merges its
//! panes' accumulators. A pane is dropped once the last window over it (the one starting at
//! it) has fired. Windows fire in start order, each at most once: the ones ending (plus the
//! lateness) at or before the watermark of the previous firing have fired already, so a row
//! arriving after its earlier windows fired is counted late for those and still reaches its
//! later ones, as without panes.

use crate::aggregate::{
    agg_cols, agg_values, fold_row, initial_accs, merge_accs, Accs, AggCol, IntKey, KeyReader,
    RowKey,
};
use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;
use tracing::info;
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::hashing::hash_columns;
use weir_runtime::message::Barrier;
use weir_runtime::operator::{Operator, OperatorContext, Restored};
use weir_types::keygroup::{key_group, key_group_range};
use weir_types::WindowSpec;

pub fn build(
    ctx: &OperatorContext,
    spec: &WindowSpec,
    input: &SchemaRef,
    restored: Option<Restored>,
) -> Result<Box<dyn Operator>> {
    let keys = weir_runtime::operator::column_indices(input, &spec.keys)?;
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
    /// Whether `windows` holds panes (sliced hopping windows) or whole windows.
    panes: bool,
    /// (key group, key, window or pane start, accumulators)
    windows: Vec<(u32, K, i64, Accs)>,
}

/// What [`Snapshot`] decodes, written from references into the state: a snapshot costs one
/// reference per entry, not a copy of every key and accumulator.
#[derive(Serialize)]
struct SnapshotRef<'a, K> {
    watermark: i64,
    late: u64,
    panes: bool,
    windows: Vec<(u32, &'a K, i64, &'a Accs)>,
}

/// The start of the first window (starts are multiples of `slide`) that a firing at watermark
/// `w` leaves open: the first whose end plus `lateness` is after `w`.
fn first_open(w: i64, size: i64, slide: i64, lateness: i64) -> i64 {
    if w == i64::MIN {
        return i64::MIN;
    }
    let x = w.saturating_sub(size).saturating_sub(lateness);
    (x - x.rem_euclid(slide)).saturating_add(slide)
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
    /// Open windows (or, with `panes`, panes) by start, each with its keys' (key group,
    /// accumulators). Closing one drops its whole map: no scan of the others, no tombstones.
    windows: BTreeMap<i64, HashMap<R::Key, (u32, Accs)>>,
    /// Hopping windows sliced into panes of `slide` (size a multiple of slide).
    panes: bool,
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
            panes: !spec.assigned
                && spec.slide() < spec.size_ms
                && spec.slide() > 0
                && spec.size_ms.is_multiple_of(spec.slide()),
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
                if s.panes != op.panes {
                    return Err(RuntimeError::Internal(format!(
                        "window state was written {} panes and this operator keeps it {}",
                        if s.panes { "in" } else { "without" },
                        if op.panes { "in panes" } else { "by window" }
                    )));
                }
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

    /// Emits (and forgets) every window whose end plus lateness is at or below `w`; `from` is
    /// the watermark of the previous firing.
    fn fire(&mut self, from: i64, w: i64) -> Result<Option<RecordBatch>> {
        if self.panes {
            return self.fire_panes(from, w);
        }
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
        self.emit(done)
    }

    /// [`Self::fire`] over panes: each window due merges the panes it covers.
    fn fire_panes(&mut self, from: i64, w: i64) -> Result<Option<RecordBatch>> {
        let (size, slide, lateness) = (self.size, self.slide, self.lateness);
        let mut next = first_open(from, size, slide, lateness);
        let mut done: Vec<(R::Key, i64, Accs)> = Vec::new();
        while let Some((&first, _)) = self.windows.first_key_value() {
            // The first window not yet fired that covers the first pane.
            let start = next.max(first - size + slide);
            if start > first {
                // Every window over this pane has fired (its rows were all late).
                self.windows.pop_first();
                continue;
            }
            if (start + size).saturating_add(lateness) > w {
                break;
            }
            let mut merged: HashMap<R::Key, (u32, Accs)> = HashMap::new();
            for (_, pane) in self.windows.range(start..start + size) {
                for (k, (kg, accs)) in pane {
                    match merged.get_mut(k) {
                        Some((_, into)) => merge_accs(&self.aggs, into.slice_mut(), accs.slice()),
                        None => {
                            merged.insert(k.clone(), (*kg, accs.clone()));
                        }
                    }
                }
            }
            done.extend(merged.into_iter().map(|(k, (_, accs))| (k, start, accs)));
            if start == first {
                // The last window over the first pane.
                self.windows.pop_first();
            }
            next = start + slide;
        }
        self.emit(done)
    }

    /// The output rows of closed windows: (key, window start, accumulators).
    fn emit(&mut self, done: Vec<(R::Key, i64, Accs)>) -> Result<Option<RecordBatch>> {
        let size = self.size;
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
            cols.push(a.output(done.iter().map(|(_, _, accs)| accs.slice()[i])));
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
        // Panes: the first window not yet fired (the watermark does not move within a batch).
        let open = first_open(self.watermark, self.size, self.slide, self.lateness);
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
            if self.panes {
                let (size, slide) = (self.size, self.slide);
                let pane = t - t.rem_euclid(slide);
                let earliest = pane - size + slide;
                if open > pane {
                    self.late.count += (size / slide) as u64;
                    continue;
                }
                if open > earliest {
                    self.late.count += ((open - earliest) / slide) as u64;
                }
                let (_, accs) = self
                    .windows
                    .entry(pane)
                    .or_default()
                    .entry(key)
                    .or_insert_with(|| (kg, init.clone()));
                fold_row(&self.aggs, &values, row, accs.slice_mut());
                continue;
            }
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
        let from = self.watermark;
        // A watermark `w` promises no more rows at or before `w`, so a window whose last
        // millisecond (`end - 1`) is at or before `w` is complete: Flink fires it then and
        // counts later rows for it as late. The operator keeps `w + 1`, the first time still
        // to come, and compares ends with it.
        self.watermark = self.watermark.max(if w == i64::MIN {
            w
        } else {
            w.saturating_add(1)
        });
        self.late.log("window aggregate");
        self.fire(from, self.watermark)
    }

    async fn end_of_input(&mut self) -> Result<Option<RecordBatch>> {
        self.fire(self.watermark, i64::MAX)
    }

    async fn snapshot(&mut self, _barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        let snap = SnapshotRef {
            watermark: self.watermark,
            late: self.late.count,
            panes: self.panes,
            windows: self
                .windows
                .iter()
                .flat_map(|(s, keys)| keys.iter().map(move |(k, (kg, accs))| (*kg, k, *s, accs)))
                .collect(),
        };
        Ok(Some(weir_state::encode(&snap)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use weir_types::{AggFn, AggSpec};

    fn input() -> SchemaRef {
        crate::key_value_time_schema(false)
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
            weir_planner::window::schema(w, &input(), "w").unwrap(),
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

    /// A snapshot of single-subtask operator `o`, as the state a restore gets.
    async fn snapshot(o: &mut dyn Operator) -> Restored {
        let barrier = Barrier {
            id: 1,
            timestamp_ms: 0,
            savepoint: false,
            target_dir: "x".into(),
        };
        let snap = o.snapshot(&barrier).await.unwrap().unwrap();
        Restored {
            job_id: "j".into(),
            old_parallelism: 1,
            snapshots: vec![(0, bytes::Bytes::from(snap))],
        }
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
            rows(o.on_watermark(8).await.unwrap()),
            vec![(1, -10, 1, 1)],
            "[-10,0) closed, [0,10) still open"
        );
        // A window is complete when its last millisecond is behind the watermark (Flink).
        assert_eq!(rows(o.on_watermark(9).await.unwrap()), vec![(1, 0, 2, 12)]);
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

    /// Sliced hopping windows (panes) against a direct model of the window semantics: every
    /// row is added to each of its windows that has not fired (its end plus lateness after the
    /// watermark) and each window fires once, when the watermark passes its end plus lateness.
    /// Rows arrive out of order, some late for some or all of their windows, with snapshots
    /// and restores in between.
    #[tokio::test]
    async fn sliced_hopping_windows_match_the_window_semantics() {
        for (size, slide, lateness) in [(10, 2, 0), (10, 2, 3), (9, 3, 1), (12, 4, 7)] {
            let w = spec(size, slide, lateness);
            let mut o = op(&w, 0, 1, None);
            let mut model: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
            let mut wm = i64::MIN;
            let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ size;
            let mut rand = |n: u64| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (seed >> 33) % n
            };
            let (mut got, mut want) = (Vec::new(), Vec::new());
            let mut clock = 0i64;
            for step in 0..400 {
                let arriving: Vec<(i64, i64, i64)> = (0..1 + rand(6))
                    .map(|_| {
                        let t = clock - 15 + rand(40) as i64;
                        (rand(5) as i64, rand(100) as i64, t)
                    })
                    .collect();
                for &(k, v, t) in &arriving {
                    let mut start = t - t.rem_euclid(slide as i64);
                    while start > t - size as i64 {
                        if (start + size as i64 + lateness as i64) > wm {
                            let e = model.entry((k, start)).or_default();
                            e.0 += 1;
                            e.1 += v;
                        }
                        start -= slide as i64;
                    }
                }
                o.process(batch(&arriving)).await.unwrap();
                clock += rand(5) as i64;
                // The operator keeps the first time still to come: watermark + 1.
                wm = wm.max(clock - 10 + 1);
                got.extend(rows(o.on_watermark(clock - 10).await.unwrap()));
                let due: Vec<(i64, i64)> = model
                    .keys()
                    .filter(|(_, s)| s + size as i64 + lateness as i64 <= wm)
                    .cloned()
                    .collect();
                for key in due {
                    let (n, v) = model.remove(&key).unwrap();
                    want.push((key.0, key.1, n, v));
                }
                if step % 97 == 96 {
                    o = op(&w, 0, 1, Some(snapshot(o.as_mut()).await));
                }
            }
            got.extend(rows(o.end_of_input().await.unwrap()));
            want.extend(model.iter().map(|((k, s), (n, v))| (*k, *s, *n, *v)));
            got.sort();
            want.sort();
            assert!(want.len() > 100, "{size}/{slide}: {} windows", want.len());
            assert_eq!(got, want, "size {size} slide {slide} lateness {lateness}");
        }
    }

    #[tokio::test]
    async fn state_restores_by_key_group_at_another_parallelism() {
        let w = spec(10, 10, 0);
        let mut o = op(&w, 0, 1, None);
        let keys: Vec<i64> = (0..50).collect();
        let input: Vec<(i64, i64, i64)> = keys.iter().map(|k| (*k, 1, 3)).collect();
        o.process(batch(&input)).await.unwrap();
        o.on_watermark(2).await.unwrap();
        let restored = snapshot(o.as_mut()).await;
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
