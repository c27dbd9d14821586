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

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use tracing::debug;
use weir_planner::expr::{compile, CompiledExpr};
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::hashing::hash_columns;
use weir_runtime::message::Barrier;
use weir_runtime::operator::{Operator, OperatorContext, Restored};
use weir_state::PREFETCH_DISTANCE;
use weir_types::keygroup::{key_group, key_group_range};
use weir_types::JoinSpec;

mod index;
mod side;
use side::Side;

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
            if let Some(&ahead) = self.hashes.get(r + PREFETCH_DISTANCE) {
                other.prefetch(ahead);
                this.prefetch(ahead);
            }
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
        // Encoded as `Snapshot` is, one side at a time, so a side's bytes are copied once into
        // the result instead of both being held twice by `encode`.
        let mut out = weir_state::encode(&self.watermark)?;
        for side in &self.sides {
            let bytes = side.snapshot()?;
            out.extend_from_slice(&weir_state::encode(&(bytes.len() as u64))?);
            out.extend_from_slice(&bytes);
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
    use bytes::Bytes;
    use std::sync::Arc;
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
            weir_planner::join::schema(spec, &left(), &right(), "join").unwrap(),
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

    /// The snapshot written side by side decodes as `Snapshot` (the format restores read).
    #[tokio::test]
    async fn snapshot_bytes_are_a_snapshot() {
        let mut j = op(&spec(), 0, 1, None);
        j.process_input(0, people(&[(1, "ann", 10), (2, "bob", 20)]))
            .await
            .unwrap();
        j.process_input(1, sales(&[(Some(1), 5, 11)]))
            .await
            .unwrap();
        j.on_watermark(7).await.unwrap();
        let bytes = j.snapshot(&Barrier::for_test(1)).await.unwrap().unwrap();
        let expected = weir_state::encode(&Snapshot {
            watermark: 7,
            left: j.sides[0].snapshot().unwrap(),
            right: j.sides[1].snapshot().unwrap(),
        })
        .unwrap();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut s = spec();
        s.columns.clear();
        let e = weir_planner::join::schema(&s, &left(), &right(), "j")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"t\" appears twice"), "{e}");
        let mut s = spec();
        s.right_keys = vec!["t".into()];
        let e = weir_planner::join::schema(&s, &left(), &right(), "j")
            .unwrap_err()
            .to_string();
        assert!(e.contains("different types"), "{e}");
        let mut s = spec();
        s.filter = Some("price + 1".into());
        let e = weir_planner::join::schema(&s, &left(), &right(), "j")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a predicate"), "{e}");
    }
}
