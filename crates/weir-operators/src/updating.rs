//! Running COUNT and SUM over an updating input (`OperatorKind::UpdatingAggregate`).
//!
//! The input is an earlier GROUP BY's result: each row is the newest value of its upstream
//! key (`upsert_keys`). A group's accumulators must count each upstream key once, with its
//! newest value, so the operator remembers every upstream key's last contribution and, when
//! a new row for it arrives, subtracts the old one before adding the new one (a retraction,
//! which is why only COUNT and SUM, and AVG built from them, are allowed here: MIN and MAX
//! cannot be undone from the accumulator alone). The group keys are among the upstream keys,
//! so all rows of an upstream key reach the same group and subtask; both maps are stored
//! under the group's key group and restore at another parallelism like other keyed state.
//! Each input row is emitted with its group's values after it (like `keyed_aggregate`; with
//! `skip_unchanged`, only rows that changed them or are the group's first): the output is
//! again updating, keyed by the group keys.
//!
//! A SUM is NULL while its group holds no non-NULL value (SQL's sum over no values), so each
//! SUM has a hidden count of the upstream keys whose contribution to it is not NULL, kept
//! after the aggregates' accumulators (Flink's SUM with retraction keeps the same count).

use crate::aggregate::{agg_cols, agg_values, initial_accs, kept_columns, Acc, AggCol, Values};
use arrow::array::{Array, ArrayRef};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::hashing::hash_columns;
use weir_runtime::message::Barrier;
use weir_runtime::operator::{Operator, OperatorContext, Restored};
use weir_state::{KeyBytes, KeyTable, PREFETCH_DISTANCE};
use weir_types::keygroup::{key_group, key_group_range};
use weir_types::{AggFn, AggSpec};

pub struct UpdatingAggregate {
    keys: Vec<usize>,
    upsert_keys: Vec<usize>,
    key_rows: RowConverter,
    upsert_rows: RowConverter,
    aggs: Vec<AggCol>,
    /// For each aggregate that is a SUM, the index of its hidden non-NULL count in a group's
    /// accumulators (after the aggregates' own).
    sum_counts: Vec<Option<usize>>,
    /// Group key → accumulators (each entry in its group's key group).
    groups: KeyTable<KeyBytes, Vec<Acc>>,
    /// Upstream key → its last contribution to each aggregate (in its group's key group), in
    /// a table a batch prefetches rows ahead: there is an entry per upstream key (every
    /// auction in q4).
    last: KeyTable<KeyBytes, Vec<Option<Acc>>>,
    max_parallelism: u32,
    range: Range<u32>,
    output: SchemaRef,
    hashes: Vec<u64>,
    skip_unchanged: bool,
}

#[derive(Deserialize)]
struct Snapshot {
    groups: Vec<(u32, KeyBytes, Vec<Acc>)>,
    last: Vec<(u32, KeyBytes, Vec<Option<Acc>>)>,
}

/// (key group, key, values), borrowed from a map.
type Entries<'a, T> = Vec<(u32, &'a [u8], &'a [T])>;

/// What [`Snapshot`] decodes, written from references into the maps (no copy of the state).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    groups: Entries<'a, Acc>,
    last: Entries<'a, Option<Acc>>,
}

fn converter(input: &SchemaRef, cols: &[usize]) -> Result<RowConverter> {
    Ok(RowConverter::new(
        cols.iter()
            .map(|i| SortField::new(input.field(*i).data_type().clone()))
            .collect(),
    )?)
}

impl UpdatingAggregate {
    pub fn new(
        ctx: &OperatorContext,
        keys: &[String],
        upsert_keys: &[String],
        aggregates: &[AggSpec],
        skip_unchanged: bool,
        input: &SchemaRef,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let keys = weir_runtime::operator::column_indices(input, keys)?;
        let upsert_keys = weir_runtime::operator::column_indices(input, upsert_keys)?;
        let aggs = agg_cols(ctx, aggregates, input)?;
        let mut next = aggs.len();
        let sum_counts = aggs
            .iter()
            .map(|a| {
                (a.func == AggFn::Sum).then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        let width = next;
        let mut op = Self {
            key_rows: converter(input, &keys)?,
            upsert_rows: converter(input, &upsert_keys)?,
            keys,
            upsert_keys,
            aggs,
            sum_counts,
            groups: KeyTable::default(),
            last: KeyTable::default(),
            max_parallelism: ctx.max_parallelism,
            range: key_group_range(ctx.subtask, ctx.max_parallelism, ctx.parallelism),
            output: ctx.output_schema.clone(),
            hashes: Vec::new(),
            skip_unchanged,
        };
        if let Some(r) = restored {
            for (_, bytes) in &r.snapshots {
                let s: Snapshot = weir_state::decode(bytes)?;
                for (kg, key, accs) in s.groups {
                    if accs.len() != width {
                        return Err(RuntimeError::State(weir_state::StateError::Corrupt(format!(
                            "updating aggregate {}: a group holds {} accumulators, the operator has {width} (a snapshot of another version of the query or of Weir)",
                            ctx.op_id,
                            accs.len()
                        ))));
                    }
                    if op.range.contains(&kg) {
                        op.groups.insert(kg, key, accs);
                    }
                }
                for (kg, key, c) in s.last {
                    if op.range.contains(&kg) {
                        op.last.insert(kg, key, c);
                    }
                }
            }
        }
        Ok(op)
    }
}

/// What row `row` adds to each aggregate (`None`: nothing, a NULL value), into `out`.
fn contribution(aggs: &[AggCol], values: &[Values], row: usize, out: &mut [Option<Acc>]) {
    for ((a, v), o) in aggs.iter().zip(values).zip(out) {
        *o = match (a.func, v) {
            (AggFn::Count, v) => v.is_valid(row).then_some(Acc::Int(1)),
            (_, Values::Int(x)) => x.is_valid(row).then(|| Acc::Int(x.value(row))),
            (_, Values::Float(x)) => x.is_valid(row).then(|| Acc::Float(x.value(row))),
            (_, Values::None | Values::Present(_)) => None,
        };
    }
}

fn add(acc: &mut Acc, c: Acc, sign: i64) {
    *acc = match (*acc, c) {
        (Acc::Int(a), Acc::Int(b)) => Acc::Int(a.wrapping_add(sign * b)),
        (a, b) => Acc::Float(a.float() + sign as f64 * b.float()),
    };
}

#[async_trait]
impl Operator for UpdatingAggregate {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let rows = batch.num_rows();
        let key_cols: Vec<ArrayRef> = self.keys.iter().map(|i| batch.column(*i).clone()).collect();
        let upsert_cols: Vec<ArrayRef> = self
            .upsert_keys
            .iter()
            .map(|i| batch.column(*i).clone())
            .collect();
        hash_columns(&key_cols, &mut self.hashes)?;
        let keys = self.key_rows.convert_columns(&key_cols)?;
        let upserts = self.upsert_rows.convert_columns(&upsert_cols)?;
        let values = agg_values(&self.aggs, &batch)?;
        // Sums start at zero here (retractions subtract from them); whether they are NULL is
        // their hidden count's business.
        let mut init: Vec<Acc> = initial_accs(&self.aggs).slice_mut().to_vec();
        for (acc, a) in init.iter_mut().zip(&self.aggs) {
            if a.func == AggFn::Sum {
                *acc = if a.float {
                    Acc::Float(0.0)
                } else {
                    Acc::Int(0)
                };
            }
        }
        init.extend(self.sum_counts.iter().flatten().map(|_| Acc::Int(0)));
        let mut out: Vec<Vec<Acc>> = vec![Vec::with_capacity(rows); self.aggs.len()];
        let mut old: Vec<Option<Acc>> = vec![None; self.aggs.len()];
        let mut before: Vec<Acc> = Vec::with_capacity(self.aggs.len());
        // With `skip_unchanged`: the rows emitted.
        let mut kept: Vec<u32> = Vec::new();
        for row in 0..rows {
            let kg = key_group(self.hashes[row], self.max_parallelism);
            if !self.range.contains(&kg) {
                return Err(RuntimeError::Internal(format!(
                    "key group {kg} arrived at a subtask owning {:?}: upstream partitioning disagrees",
                    self.range
                )));
            }
            // The upstream key's previous contribution is swapped for the new one in place
            // (a key is built on the stack; it is stored only when first seen).
            let upsert = upserts.row(row);
            if row + PREFETCH_DISTANCE < rows {
                self.last
                    .prefetch(upserts.row(row + PREFETCH_DISTANCE).as_ref());
            }
            let n = self.aggs.len();
            let last = self
                .last
                .entry(kg, KeyBytes::new(upsert.as_ref()), || vec![None; n]);
            old.copy_from_slice(last);
            contribution(&self.aggs, &values, row, last);
            let key = keys.row(row);
            let mut first = false;
            let accs = self.groups.entry(kg, KeyBytes::new(key.as_ref()), || {
                first = true;
                init.clone()
            });
            before.clear();
            before.extend_from_slice(accs);
            for (i, acc) in accs.iter_mut().enumerate().take(old.len()) {
                if let Some(c) = old[i] {
                    add(acc, c, -1);
                }
                if let Some(c) = last[i] {
                    add(acc, c, 1);
                }
            }
            for (i, slot) in self.sum_counts.iter().enumerate() {
                if let Some(slot) = *slot {
                    let n = i64::from(last[i].is_some()) - i64::from(old[i].is_some());
                    add(&mut accs[slot], Acc::Int(n), 1);
                }
            }
            if self.skip_unchanged {
                if !first && *accs == before {
                    continue;
                }
                kept.push(row as u32);
            }
            for ((acc, o), count) in accs.iter().zip(out.iter_mut()).zip(&self.sum_counts) {
                let empty = count.is_some_and(|slot| accs[slot] == Acc::Int(0));
                o.push(if empty { Acc::Empty } else { *acc });
            }
        }
        if self.skip_unchanged && kept.is_empty() {
            return Ok(None);
        }
        let mut cols = kept_columns(&batch, self.skip_unchanged.then_some(kept))?;
        for (a, vals) in self.aggs.iter().zip(out) {
            cols.push(a.output(vals.into_iter()));
        }
        Ok(Some(RecordBatch::try_new(self.output.clone(), cols)?))
    }

    async fn snapshot(&mut self, _barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        let snap = SnapshotRef {
            groups: self
                .groups
                .iter()
                .map(|(kg, k, a)| (kg, k.as_slice(), a.as_slice()))
                .collect(),
            last: self
                .last
                .iter()
                .map(|(kg, k, c)| (kg, k.as_slice(), c.as_slice()))
                .collect(),
        };
        Ok(Some(weir_state::encode(&snap)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use bytes::Bytes;
    use std::sync::Arc;

    /// (auction, category, final): the rows of `GROUP BY auction, category` as it updates.
    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("auction", DataType::Int64, false),
            Field::new("category", DataType::Int64, false),
            Field::new("final", DataType::Int64, true),
        ]))
    }

    fn aggs() -> Vec<AggSpec> {
        vec![
            AggSpec {
                func: AggFn::Sum,
                column: Some("final".into()),
                name: "total".into(),
            },
            AggSpec {
                func: AggFn::Count,
                column: Some("final".into()),
                name: "n".into(),
            },
        ]
    }

    fn op(subtask: u32, parallelism: u32, restored: Option<Restored>) -> UpdatingAggregate {
        op_skipping(subtask, parallelism, restored, false)
    }

    fn op_skipping(
        subtask: u32,
        parallelism: u32,
        restored: Option<Restored>,
        skip_unchanged: bool,
    ) -> UpdatingAggregate {
        let mut fields: Vec<Field> = input()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        // SUM over only NULLs is NULL.
        fields.push(Field::new("total", DataType::Int64, true));
        fields.push(Field::new("n", DataType::Int64, false));
        let ctx = OperatorContext::for_test(
            "u",
            subtask,
            parallelism,
            vec![input()],
            Arc::new(Schema::new(fields)),
        );
        UpdatingAggregate::new(
            &ctx,
            &["category".into()],
            &["auction".into(), "category".into()],
            &aggs(),
            skip_unchanged,
            &input(),
            restored,
        )
        .unwrap()
    }

    fn batch(rows: &[(i64, i64, Option<i64>)]) -> RecordBatch {
        RecordBatch::try_new(
            input(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    /// The (total, n) emitted for each input row.
    fn emitted(b: RecordBatch) -> Vec<(i64, i64)> {
        let t = b.column(3).as_primitive::<Int64Type>();
        let n = b.column(4).as_primitive::<Int64Type>();
        (0..b.num_rows())
            .map(|i| (t.value(i), n.value(i)))
            .collect()
    }

    #[tokio::test]
    async fn an_update_replaces_its_keys_previous_value() {
        let mut u = op(0, 1, None);
        let got = u
            .process(batch(&[
                (1, 10, Some(5)),
                (2, 10, Some(7)),
                (1, 10, Some(9)), // auction 1's maximum rose: 5 is retracted
                (3, 11, None),
            ]))
            .await
            .unwrap()
            .unwrap();
        assert!(
            got.column(3).is_null(3),
            "auction 3's only value is NULL: its SUM is NULL"
        );
        assert_eq!(emitted(got), vec![(5, 1), (12, 2), (16, 2), (0, 0)]);
        let barrier = Barrier::for_test(1);
        let snap = u.snapshot(&barrier).await.unwrap().unwrap();
        // Restored on two subtasks, the group continues where it was on its owner.
        let mut owner = None;
        for s in 0..2 {
            let r = Restored {
                job_id: "j".into(),
                old_parallelism: 1,
                snapshots: vec![(0, Bytes::from(snap.clone()))],
            };
            let k = op(s, 2, Some(r));
            if k.last.len() >= 2 {
                owner = Some(k);
            }
        }
        let mut k = owner.expect("one subtask owns category 10");
        let got = k
            .process(batch(&[(2, 10, Some(1))]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(emitted(got), vec![(10, 2)]);
    }

    #[tokio::test]
    async fn skipping_unchanged_emits_changes_and_first_rows_only() {
        let mut u = op_skipping(0, 1, None, true);
        let got = u
            .process(batch(&[
                (1, 10, Some(5)),
                (1, 10, Some(5)), // the same value again: the group is unchanged
                (3, 11, None),    // a new group with nothing to add: still emitted once
                (2, 10, Some(7)),
            ]))
            .await
            .unwrap()
            .unwrap();
        let auctions = got.column(0).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(auctions, vec![1, 3, 2], "the rows emitted are the input's");
        assert_eq!(emitted(got), vec![(5, 1), (0, 0), (12, 2)]);
        // Nothing changes: nothing is emitted.
        assert!(u
            .process(batch(&[(2, 10, Some(7)), (3, 11, None)]))
            .await
            .unwrap()
            .is_none());
    }
}
