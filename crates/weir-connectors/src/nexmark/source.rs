//! The `nexmark` source operator: the partitions a subtask owns, how far each has walked
//! (its checkpointed position), the rate limit, and batches of the projected columns.

use super::sequence::{Sequence, CHANNELS, URLS};
use arrow::array::{ArrayRef, Int64Array, StringArray, StringBuilder, TimestampMillisecondArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_planner::nexmark::{column_indices, table_schema};
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::operator::{OperatorContext, Restored, Source, SourcePoll};
use weir_types::{CheckpointId, NexmarkSpec, NexmarkTable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PartitionPos {
    partition: u32,
    /// Event numbers of this partition walked so far.
    walked: u64,
}

pub struct NexmarkSource {
    seq: Sequence,
    table: NexmarkTable,
    events: Option<u64>,
    partitions: u32,
    owned: Vec<PartitionPos>,
    columns: Vec<usize>,
    schema: SchemaRef,
    batch_size: usize,
    rate: f64,
    started: Option<Instant>,
    walked_since_start: u64,
}

impl NexmarkSource {
    pub fn new(
        ctx: &OperatorContext,
        spec: &NexmarkSpec,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let partitions = if spec.partitions == 0 {
            32
        } else {
            spec.partitions
        };
        let mut owned: Vec<PartitionPos> = (0..partitions)
            .filter(|p| p % ctx.parallelism == ctx.subtask)
            .map(|partition| PartitionPos {
                partition,
                walked: 0,
            })
            .collect();
        if let Some(r) = restored {
            for (_, bytes) in &r.snapshots {
                let positions: Vec<PartitionPos> = weir_state::decode(bytes)?;
                for pos in positions {
                    if pos.partition >= partitions {
                        return Err(RuntimeError::Plan(format!(
                            "nexmark {:?}: the snapshot has partition {} but the job has {partitions}",
                            ctx.op_id, pos.partition
                        )));
                    }
                    if let Some(o) = owned.iter_mut().find(|o| o.partition == pos.partition) {
                        o.walked = o.walked.max(pos.walked);
                    }
                }
            }
        }
        let full = table_schema(spec.table);
        let columns = column_indices(spec, &full)?;
        let share = owned.len() as f64 / f64::from(partitions);
        Ok(Self {
            seq: Sequence::new(spec),
            table: spec.table,
            events: spec.events,
            partitions,
            owned,
            schema: Arc::new(full.project(&columns)?),
            columns,
            batch_size: spec.batch_size.max(1) as usize,
            rate: spec.rate as f64 * share,
            started: None,
            walked_since_start: 0,
        })
    }

    /// Event number of a partition's `k`-th step, if below the sequence's end.
    fn event(&self, partition: u32, k: u64) -> Option<u64> {
        let n = u64::from(partition) + k * u64::from(self.partitions);
        match self.events {
            Some(end) if n >= end => None,
            _ => Some(n),
        }
    }

    /// The batch of events `ns` (all of this source's table), its columns only.
    fn build(&self, ns: &[u64]) -> Result<RecordBatch> {
        let seq = &self.seq;
        let cols: Vec<ArrayRef> = match self.table {
            // Column by column: only the fields the query reads are computed.
            NexmarkTable::Bid => self
                .columns
                .iter()
                .map(|c| match c {
                    0 => ints(ns, |n| seq.bid_auction(*n)),
                    1 => ints(ns, |n| seq.bid_bidder(*n)),
                    2 => ints(ns, |n| seq.bid_price(*n)),
                    3 => strs(ns, |n| CHANNELS[seq.bid_channel(*n)]),
                    4 => strs(ns, |n| URLS[seq.bid_channel(*n)]),
                    5 => times(ns, |n| seq.date_time(*n)),
                    _ => strs(ns, |_| ""),
                })
                .collect(),
            NexmarkTable::Auction => self
                .columns
                .iter()
                .map(|c| match c {
                    0 => ints(ns, |n| seq.auction_id(*n)),
                    1 => texts(ns, |n, out| seq.write_auction_item(n, out)),
                    2 => strs(ns, |n| seq.auction_description(*n)),
                    3 => ints(ns, |n| seq.auction_initial_bid(*n)),
                    4 => ints(ns, |n| seq.auction_reserve(*n)),
                    5 => times(ns, |n| seq.date_time(*n)),
                    6 => times(ns, |n| seq.auction_expires(*n)),
                    7 => ints(ns, |n| seq.auction_seller(*n)),
                    8 => ints(ns, |n| seq.auction_category(*n)),
                    _ => strs(ns, |_| ""),
                })
                .collect(),
            NexmarkTable::Person => self
                .columns
                .iter()
                .map(|c| match c {
                    0 => ints(ns, |n| seq.person_id(*n)),
                    1 => texts(ns, |n, out| seq.write_person_name(n, out)),
                    2 => texts(ns, |n, out| seq.write_person_email(n, out)),
                    3 => texts(ns, |n, out| seq.write_person_card(n, out)),
                    4 => strs(ns, |n| seq.person_city(*n)),
                    5 => strs(ns, |n| seq.person_state(*n)),
                    6 => times(ns, |n| seq.date_time(*n)),
                    _ => strs(ns, |_| ""),
                })
                .collect(),
        };
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }
}

fn ints<T>(rows: &[T], f: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
}

fn times<T>(rows: &[T], f: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(
        rows.iter().map(f),
    ))
}

fn strs<'a, T>(rows: &'a [T], f: impl Fn(&'a T) -> &'a str) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
}

/// A string column written row by row into one reused buffer.
fn texts(ns: &[u64], write: impl Fn(u64, &mut String)) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(ns.len(), ns.len() * 16);
    let mut buf = String::new();
    for n in ns {
        buf.clear();
        write(*n, &mut buf);
        b.append_value(&buf);
    }
    Arc::new(b.finish())
}

#[async_trait]
impl Source for NexmarkSource {
    async fn poll_next(&mut self) -> Result<SourcePoll> {
        let count = self.owned.len();
        let open = |s: &Self, i: usize| s.event(s.owned[i].partition, s.owned[i].walked);
        if (0..count).all(|i| open(self, i).is_none()) {
            return Ok(SourcePoll::Exhausted);
        }
        if self.rate > 0.0 {
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = started + Duration::from_secs_f64(self.walked_since_start as f64 / self.rate);
            if due > Instant::now() {
                return Ok(SourcePoll::Wait(due));
            }
        }
        // Walk the owned partitions in lockstep, one step of each at a time, far enough for
        // a full batch of this table's rows (or less under a rate limit). A batch then spans
        // a short stretch of event time over all partitions, so the watermark advances with
        // every batch; walking one partition per batch made it advance once per round of
        // all of them (about 28 s of event time with 16 partitions), which held windows and
        // join state that much longer.
        let mut max_walk = (self.batch_size as u64) * self.seq.total;
        if self.rate > 0.0 {
            max_walk = max_walk.min(((self.rate / 100.0) as u64).max(1));
        }
        let mut ns = Vec::with_capacity(self.batch_size);
        let mut walked = 0;
        while walked < max_walk && ns.len() < self.batch_size {
            let mut any = false;
            for i in 0..count {
                let Some(n) = open(self, i) else { continue };
                any = true;
                self.owned[i].walked += 1;
                walked += 1;
                if self.seq.kind(n) == self.table {
                    ns.push(n);
                }
            }
            if !any {
                break;
            }
        }
        self.walked_since_start += walked;
        if ns.is_empty() {
            return Ok(SourcePoll::Wait(Instant::now()));
        }
        Ok(SourcePoll::Batch(self.build(&ns)?))
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>> {
        Ok(Some(weir_state::encode(&self.owned)?))
    }

    // The next event each partition will walk is the earliest it can still produce, and
    // event time only grows with the event number (`date_time`; an auction's `expires` is
    // later still). With the sequence's proportions (1, 3, 46 of 50) and 32 partitions, the
    // odd partitions never hold a person: without this, a person subtask owning only odd
    // partitions read the whole run without a watermark and held every window downstream.
    fn progress_time(&self) -> Option<i64> {
        self.owned
            .iter()
            .filter_map(|o| self.event(o.partition, o.walked))
            .min()
            .map(|n| self.seq.date_time(n) - 1)
    }

    // One watermark for the subtask: its partitions advance in lockstep (their positions
    // differ by at most one batch, even after a rescale), so the largest time of a batch
    // minus the delay holds for all of them.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nexmark::schema;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use weir_types::{DeliveryGuarantee, JobId};

    fn ctx(subtask: u32, parallelism: u32) -> OperatorContext {
        OperatorContext {
            job_id: JobId("j".into()),
            op_id: "n".into(),
            subtask,
            parallelism,
            max_parallelism: 128,
            attempt: 0,
            guarantee: DeliveryGuarantee::ExactlyOnce,
            checkpointing: true,
            state_backend: Default::default(),
            input_schema: None,
            input_schemas: vec![],
            output_schema: table_schema(NexmarkTable::Bid),
            inflight: Default::default(),
            storage: Default::default(),
        }
    }

    async fn drain(s: &mut NexmarkSource, limit: usize, out: &mut Vec<RecordBatch>) -> bool {
        for _ in 0..limit {
            match s.poll_next().await.unwrap() {
                SourcePoll::Batch(b) => out.push(b),
                SourcePoll::Exhausted => return true,
                SourcePoll::Wait(_) => {}
                SourcePoll::NeedLease => unreachable!(),
            }
        }
        false
    }

    fn spec(table: NexmarkTable, events: u64) -> NexmarkSpec {
        NexmarkSpec {
            table,
            events: Some(events),
            partitions: 8,
            batch_size: 100,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn every_bid_once_across_a_rescale_and_a_restore() {
        let s = spec(NexmarkTable::Bid, 10_007);
        // Two subtasks run a while and snapshot; three restore from it and finish.
        let mut first = Vec::new();
        let mut snaps = Vec::new();
        for sub in 0..2 {
            let mut src = NexmarkSource::new(&ctx(sub, 2), &s, None).unwrap();
            drain(&mut src, 7, &mut first).await;
            snaps.push((sub, bytes::Bytes::from(src.snapshot(1).unwrap().unwrap())));
        }
        let restored = Restored {
            job_id: "j".into(),
            old_parallelism: 2,
            snapshots: snaps,
        };
        let mut rest = Vec::new();
        for sub in 0..3 {
            let mut src = NexmarkSource::new(&ctx(sub, 3), &s, Some(restored.clone())).unwrap();
            assert!(drain(&mut src, 10_000, &mut rest).await);
        }
        let seq = Sequence::new(&s);
        let expected: Vec<(i64, i64, i64)> = (0..10_007)
            .filter(|n| seq.kind(*n) == NexmarkTable::Bid)
            .map(|n| {
                let b = seq.bid(n);
                (b.date_time, b.auction, b.price)
            })
            .collect();
        let mut got: Vec<(i64, i64, i64)> = first
            .iter()
            .chain(&rest)
            .flat_map(|b| {
                let t = b
                    .column(5)
                    .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
                let a = b.column(0).as_primitive::<Int64Type>();
                let p = b.column(2).as_primitive::<Int64Type>();
                (0..b.num_rows())
                    .map(|i| (t.value(i), a.value(i), p.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect();
        got.sort_unstable();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort_unstable();
        assert_eq!(got.len(), expected.len());
        assert_eq!(got, expected_sorted);
    }

    #[tokio::test]
    async fn columns_are_projected_in_the_asked_order() {
        let mut s = spec(NexmarkTable::Person, 500);
        s.columns = vec!["state".into(), "id".into()];
        let mut src = NexmarkSource::new(&ctx(0, 1), &s, None).unwrap();
        let mut out = Vec::new();
        assert!(drain(&mut src, 100, &mut out).await);
        let got = out[0].schema();
        let names: Vec<&str> = got.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, vec!["state", "id"]);
        let ids: usize = out.iter().map(|b| b.num_rows()).sum();
        assert_eq!(ids, 10, "one person per 50 events");
        s.columns = vec!["nope".into()];
        let err = schema(&s).unwrap_err().to_string();
        assert!(err.contains("no column \"nope\""), "{err}");
    }
}
