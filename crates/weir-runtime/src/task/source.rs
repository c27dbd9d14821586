//! The loop of a task headed by a source: polling it, watermarks per row and per partition,
//! watermark alignment, at-most-once leases, and ending after the final checkpoint.

use super::{Task, TaskControl, TaskEventKind};
use crate::error::{Result, RuntimeError};
use crate::operator::SourcePoll;
use crate::watermark::END;
use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::debug;
use weir_types::CheckpointId;

/// A source held by watermark alignment checks again at least this often (it is woken sooner
/// when its group's watermarks change).
const ALIGNMENT_RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// Records a source may emit per partition beyond its durable lease (at-most-once).
const LEASE_AHEAD: u64 = 8192;

impl Task {
    /// Pushes a source batch of partition `p` through the chain as if the watermark advanced
    /// after every row, as Flink's does (with `pipeline.auto-watermark-interval` 0; its
    /// periodic default makes lateness depend on timing): where a row is at or behind the
    /// watermark the rows before it would have raised (`ts <= max - delay`), the rows before
    /// it go first and that watermark after them, so a window they complete fires before the
    /// late row arrives and the row is late for it, exactly as in Flink. In-order rows, and
    /// rows out of order by less than the delay, never split a batch. Returns the largest
    /// event time of the rows after the last split (their watermark is the caller's).
    async fn push_with_row_watermarks(
        &mut self,
        b: RecordBatch,
        p: usize,
        col: usize,
    ) -> Result<Option<i64>> {
        use arrow::array::Array;
        let delay = match &self.watermarks {
            Some((gen, _)) => gen.delay(),
            None => return Ok(None),
        };
        let ts = arrow::compute::cast(b.column(col), &arrow::datatypes::DataType::Int64)?;
        let ts = ts.as_primitive::<arrow::datatypes::Int64Type>().clone();
        let (mut start, mut max): (usize, Option<i64>) = (0, None);
        for i in 0..b.num_rows() {
            if ts.is_null(i) {
                continue;
            }
            let t = ts.value(i);
            if let Some(m) = max {
                if t <= m.saturating_sub(delay) {
                    self.push(0, b.slice(start, i - start)).await?;
                    self.source_watermark(Some((p, m))).await?;
                    (start, max) = (i, None);
                }
            }
            max = Some(max.map_or(t, |m| m.max(t)));
        }
        if start == 0 {
            self.push(0, b).await?;
        } else {
            self.push(0, b.slice(start, b.num_rows() - start)).await?;
        }
        Ok(max)
    }

    /// A source task's watermark after a batch (partition, largest event time), or a check
    /// for ended and idle partitions.
    async fn source_watermark(&mut self, batch: Option<(usize, i64)>) -> Result<()> {
        let advanced = {
            let (Some((gen, _)), Some(src)) = (&mut self.watermarks, &self.source) else {
                return Ok(());
            };
            let now = std::time::Instant::now();
            gen.ensure_partitions(src.partition_count(), now);
            let ended = |p: usize| src.partition_ended(p);
            let advanced = gen.update(batch, &ended, now);
            if let Some(a) = &self.alignment {
                a.publish(if gen.idle() { END } else { gen.current() });
            }
            advanced
        };
        match advanced {
            Some(w) => self.on_watermark(w).await,
            None => Ok(()),
        }
    }

    /// Makes the source's next lease durable before it may emit under it.
    async fn extend_lease(&mut self) -> Result<()> {
        let (Some(dir), Some(src)) = (&self.lease_dir, &mut self.source) else {
            return Err(RuntimeError::Internal(
                "a source asked for a lease outside at-most-once".into(),
            ));
        };
        let bytes = src.lease(LEASE_AHEAD)?.ok_or_else(|| {
            RuntimeError::Internal("source asked for a lease but gave none".into())
        })?;
        dir.put(
            &format!(
                "{}-{}-a{}.lease",
                self.op_ids[0], self.key.subtask, self.attempt
            ),
            bytes,
        )
        .await?;
        Ok(())
    }

    /// Whether the source must wait for its alignment group before reading more: `Some(its
    /// watermark)` while it is more than the group's drift ahead. The time it waited is
    /// counted, and does not count as its partitions' silence (idleness).
    fn held_by_alignment(&mut self, paused_since: &mut Option<std::time::Instant>) -> Option<i64> {
        let (Some(a), Some((gen, _))) = (&self.alignment, &mut self.watermarks) else {
            return None;
        };
        let w = gen.current();
        let ahead = a.ahead(w);
        // The time since the last check is counted at every check, so a source that is
        // waiting now shows it in the status.
        let now = std::time::Instant::now();
        if let Some(since) = paused_since.take() {
            let paused = now.duration_since(since);
            gen.paused(paused);
            self.metrics
                .alignment_paused_ms
                .fetch_add(paused.as_millis() as u64, Ordering::Relaxed);
        }
        if ahead {
            *paused_since = Some(now);
            return Some(w);
        }
        None
    }

    pub(super) async fn run_source(
        &mut self,
        mut control: UnboundedReceiver<TaskControl>,
    ) -> Result<()> {
        let mut exhausted = false;
        let mut final_checkpoint: Option<CheckpointId> = None;
        let mut wait_until: Option<tokio::time::Instant> = None;
        let mut paused_since: Option<std::time::Instant> = None;
        loop {
            let ctrl = if exhausted {
                control.recv().await
            } else if let Some(t) = wait_until {
                tokio::select! {
                    c = control.recv() => c,
                    _ = tokio::time::sleep_until(t) => { wait_until = None; continue; }
                }
            } else if let Some(w) = self.held_by_alignment(&mut paused_since) {
                let Some(a) = &self.alignment else { continue };
                tokio::select! {
                    c = control.recv() => c,
                    _ = a.wait(w, ALIGNMENT_RECHECK) => continue,
                }
            } else {
                match control.try_recv() {
                    Ok(c) => Some(c),
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                        let poll = match &mut self.source {
                            Some(s) => s.poll_next().await?,
                            None => {
                                return Err(RuntimeError::Internal(
                                    "source task without source".into(),
                                ))
                            }
                        };
                        match poll {
                            SourcePoll::Batch(b) => {
                                self.metrics
                                    .records_in
                                    .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                                // (partition, largest event time) of the batch's rows
                                // Rows of several partitions (Kafka): per partition; one
                                // partition: per row (see push_with_row_watermarks).
                                let mixed = match (&self.watermarks, &self.source) {
                                    (Some((_, col)), Some(src)) => match src.row_partitions() {
                                        Some(parts) if parts.len() == b.num_rows() => {
                                            Some(Some(max_time_by_partition(&b, *col, parts)?))
                                        }
                                        _ => Some(None),
                                    },
                                    _ => None,
                                };
                                let event_times = match mixed {
                                    Some(Some(times)) => {
                                        self.push(0, b).await?;
                                        times
                                    }
                                    Some(None) => {
                                        let (p, col) = match (&self.watermarks, &self.source) {
                                            (Some((_, col)), Some(src)) => {
                                                (src.last_partition(), *col)
                                            }
                                            _ => (0, 0),
                                        };
                                        self.push_with_row_watermarks(b, p, col)
                                            .await?
                                            .map(|ts| vec![(p, ts)])
                                            .unwrap_or_default()
                                    }
                                    None => {
                                        self.push(0, b).await?;
                                        Vec::new()
                                    }
                                };
                                // A chain that ends in a sink never waits on a channel:
                                // give the worker thread back every time slice.
                                self.slice.yield_if_spent().await;
                                for pt in event_times {
                                    self.source_watermark(Some(pt)).await?;
                                }
                            }
                            SourcePoll::Wait(t) => {
                                let progress = self.source.as_ref().and_then(|s| {
                                    s.progress_time().map(|time| (s.last_partition(), time))
                                });
                                self.source_watermark(progress).await?;
                                wait_until = Some(t.into())
                            }
                            SourcePoll::NeedLease => self.extend_lease().await?,
                            SourcePoll::Exhausted => {
                                exhausted = true;
                                if let Some(a) = &self.alignment {
                                    a.publish(END);
                                }
                                if self.watermarks.is_some() {
                                    self.on_watermark(crate::watermark::END).await?;
                                }
                                self.flush_chain().await?;
                                self.event(TaskEventKind::SourceExhausted);
                                if !self.checkpointing {
                                    self.finish_without_checkpoint().await?;
                                    self.outputs.end_of_stream().await?;
                                    return Ok(());
                                }
                                debug!("source exhausted; waiting for a final checkpoint");
                            }
                        }
                        continue;
                    }
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match ctrl {
                None => {
                    return Err(RuntimeError::ChannelClosed(
                        "control channel closed (task cancelled)".into(),
                    ))
                }
                Some(TaskControl::TriggerCheckpoint { barrier, stop }) => {
                    // Only a barrier the job manager marks as the last one ends a source: the
                    // final checkpoint after every source ran dry, or stop-with-savepoint. All
                    // sources then end on the same checkpoint, so none ends while another
                    // still needs a checkpoint that would lack the ended one's position.
                    if stop {
                        if !exhausted {
                            exhausted = true;
                            if let Some(a) = &self.alignment {
                                a.publish(END);
                            }
                            self.flush_chain().await?;
                        }
                        final_checkpoint.get_or_insert(barrier.id);
                    }
                    self.snapshot(&barrier).await?;
                }
                Some(TaskControl::CheckpointComplete(id)) => {
                    self.complete(id).await?;
                    if final_checkpoint.is_some_and(|f| id >= f) {
                        self.outputs.end_of_stream().await?;
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// The largest time of column `col` per partition, for rows whose partitions are `parts`.
fn max_time_by_partition(
    batch: &RecordBatch,
    col: usize,
    parts: &[u32],
) -> Result<Vec<(usize, i64)>> {
    let c = arrow::compute::cast(batch.column(col), &arrow::datatypes::DataType::Int64)?;
    let times = c.as_primitive::<arrow::datatypes::Int64Type>();
    let mut max: Vec<Option<i64>> = Vec::new();
    for (t, p) in times.iter().zip(parts) {
        let (Some(t), p) = (t, *p as usize) else {
            continue;
        };
        if p >= max.len() {
            max.resize(p + 1, None);
        }
        max[p] = Some(max[p].map_or(t, |m| m.max(t)));
    }
    Ok(max
        .into_iter()
        .enumerate()
        .filter_map(|(p, m)| m.map(|m| (p, m)))
        .collect())
}
