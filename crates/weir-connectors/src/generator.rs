//! The deterministic generator source.
//!
//! Events are spread over a fixed number of logical partitions (the unit of rescaling, like a
//! topic's partitions): partition `p` produces ids `p, p + P, p + 2P, …` below `count`. Subtask
//! `s` of `n` owns the partitions with `p % n == s`. Its checkpointed state is the number of
//! events each owned partition has emitted, so a restore at any parallelism resumes every
//! partition exactly where the checkpoint left it.

use arrow::array::Int64Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_planner::generator_schema;
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::operator::{OperatorContext, Restored, Source, SourcePoll};
use weir_types::keygroup::fmix64;
use weir_types::{CheckpointId, GeneratorSpec};

/// Timestamps start here (2023-11-14T22:13:20Z) and advance one millisecond per id.
pub const BASE_TS_MS: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PartitionPos {
    partition: u32,
    emitted: u64,
}

pub struct Generator {
    spec: GeneratorSpec,
    partitions: u32,
    owned: Vec<PartitionPos>,
    next: usize,
    schema: SchemaRef,
    /// Events per second for this subtask, 0 for unlimited.
    rate: f64,
    started: Option<Instant>,
    emitted_since_start: u64,
    /// At-most-once: per owned partition, how far it may emit (the durable lease).
    leased: Option<Vec<u64>>,
}

/// The key of event `id` under `seed` and `keys`: a deterministic function, so tests can
/// compute the expected result independently of the engine.
pub fn key_of(id: u64, seed: u64, keys: u64) -> i64 {
    (fmix64(id ^ seed.rotate_left(17)) % keys) as i64
}

/// The value of event `id`.
pub fn value_of(id: u64, seed: u64) -> i64 {
    (fmix64(id.wrapping_mul(31) ^ seed ^ 0x5bd1_e995) % 1000) as i64
}

impl Generator {
    pub fn new(
        ctx: &OperatorContext,
        spec: &GeneratorSpec,
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
                emitted: 0,
            })
            .collect();
        if let Some(r) = restored {
            for (_, bytes) in &r.snapshots {
                let positions: Vec<PartitionPos> = weir_state::decode(bytes)?;
                for pos in positions {
                    if pos.partition >= partitions {
                        return Err(RuntimeError::Plan(format!(
                            "generator {:?}: the snapshot has partition {} but the job has {partitions}",
                            ctx.op_id, pos.partition
                        )));
                    }
                    // The furthest position wins: checkpoints and at-most-once leases may both
                    // name a partition, and leases are never behind checkpoints.
                    if let Some(o) = owned.iter_mut().find(|o| o.partition == pos.partition) {
                        o.emitted = o.emitted.max(pos.emitted);
                    }
                }
            }
        }
        let share = owned.len() as f64 / f64::from(partitions);
        Ok(Self {
            spec: spec.clone(),
            partitions,
            next: 0,
            schema: generator_schema(),
            rate: spec.rate as f64 * share,
            started: None,
            emitted_since_start: 0,
            leased: (ctx.guarantee == weir_types::DeliveryGuarantee::AtMostOnce)
                .then(|| owned.iter().map(|o| o.emitted).collect()),
            owned,
        })
    }

    fn remaining(&self, pos: &PartitionPos) -> u64 {
        match self.spec.count {
            None => u64::MAX,
            Some(count) => {
                let p = u64::from(pos.partition);
                let total = if count > p {
                    (count - p).div_ceil(u64::from(self.partitions))
                } else {
                    0
                };
                total.saturating_sub(pos.emitted)
            }
        }
    }

    fn batch_rows(&self) -> u64 {
        let max = u64::from(self.spec.batch_size.max(1));
        if self.rate > 0.0 {
            // About 100 batches a second when rate-limited, for smooth pacing.
            max.min(((self.rate / 100.0) as u64).max(1))
        } else {
            max
        }
    }
}

#[async_trait]
impl Source for Generator {
    async fn poll_next(&mut self) -> Result<SourcePoll> {
        let n = self.owned.len();
        let Some(i) = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| self.remaining(&self.owned[i]) > 0)
        else {
            return Ok(SourcePoll::Exhausted);
        };
        let mut rows = self.batch_rows().min(self.remaining(&self.owned[i]));
        if let Some(leased) = &self.leased {
            rows = rows.min(leased[i].saturating_sub(self.owned[i].emitted));
            if rows == 0 {
                return Ok(SourcePoll::NeedLease);
            }
        }
        if self.rate > 0.0 {
            let started = *self.started.get_or_insert_with(Instant::now);
            let due =
                started + Duration::from_secs_f64(self.emitted_since_start as f64 / self.rate);
            if due > Instant::now() {
                return Ok(SourcePoll::Wait(due));
            }
        }
        let pos = &mut self.owned[i];
        let step = u64::from(self.partitions);
        let first = u64::from(pos.partition) + pos.emitted * step;
        let seed = self.spec.seed;
        let keys = self.spec.keys;
        let ids: Vec<i64> = (0..rows).map(|r| (first + r * step) as i64).collect();
        let key: Vec<i64> = ids
            .iter()
            .map(|id| key_of(*id as u64, seed, keys))
            .collect();
        let value: Vec<i64> = ids.iter().map(|id| value_of(*id as u64, seed)).collect();
        let ts: Vec<i64> = ids.iter().map(|id| BASE_TS_MS + id).collect();
        pos.emitted += rows;
        self.emitted_since_start += rows;
        self.next = (i + 1) % n;
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Int64Array::from(key)),
                Arc::new(Int64Array::from(value)),
                Arc::new(Int64Array::from(ts)),
            ],
        )?;
        Ok(SourcePoll::Batch(batch))
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>> {
        Ok(Some(weir_state::encode(&self.owned)?))
    }

    fn lease(&mut self, ahead: u64) -> Result<Option<Vec<u8>>> {
        let Some(leased) = self.leased.as_mut() else {
            return Ok(None);
        };
        let mut ahead_positions = self.owned.clone();
        for (i, pos) in ahead_positions.iter_mut().enumerate() {
            pos.emitted += ahead;
            leased[i] = pos.emitted;
        }
        Ok(Some(weir_state::encode(&ahead_positions)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use std::collections::BTreeSet;
    use weir_types::{DeliveryGuarantee, JobId};

    fn ctx(subtask: u32, parallelism: u32) -> OperatorContext {
        OperatorContext {
            job_id: JobId("j".into()),
            op_id: "g".into(),
            subtask,
            parallelism,
            max_parallelism: 128,
            attempt: 0,
            guarantee: DeliveryGuarantee::ExactlyOnce,
            checkpointing: true,
            state_backend: Default::default(),
            input_schema: None,
            input_schemas: vec![],
            output_schema: generator_schema(),
            inflight: Default::default(),
            storage: Default::default(),
        }
    }

    async fn drain(g: &mut Generator, max_batches: usize, ids: &mut Vec<i64>) -> bool {
        for _ in 0..max_batches {
            match g.poll_next().await.unwrap() {
                SourcePoll::Batch(b) => {
                    ids.extend(b.column(0).as_primitive::<Int64Type>().values().iter())
                }
                SourcePoll::Exhausted => return true,
                SourcePoll::Wait(_) | SourcePoll::NeedLease => {
                    unreachable!("no rate limit, no lease")
                }
            }
        }
        false
    }

    #[tokio::test]
    async fn every_id_once_across_a_rescale() {
        let spec = GeneratorSpec {
            count: Some(10_007),
            partitions: 8,
            batch_size: 100,
            ..Default::default()
        };
        let mut ids = Vec::new();
        // Run at parallelism 2 for a while, snapshot, restore at parallelism 3, run to the end.
        let mut snaps = Vec::new();
        for s in 0..2 {
            let mut g = Generator::new(&ctx(s, 2), &spec, None).unwrap();
            drain(&mut g, 7, &mut ids).await;
            snaps.push((s, bytes::Bytes::from(g.snapshot(1).unwrap().unwrap())));
        }
        let restored = Restored {
            job_id: "j".into(),
            old_parallelism: 2,
            snapshots: snaps,
        };
        for s in 0..3 {
            let mut g = Generator::new(&ctx(s, 3), &spec, Some(restored.clone())).unwrap();
            assert!(drain(&mut g, 1000, &mut ids).await);
        }
        let unique: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(ids.len(), 10_007);
        assert_eq!(unique.len(), 10_007);
        assert_eq!(*unique.iter().next_back().unwrap(), 10_006);
    }
}
