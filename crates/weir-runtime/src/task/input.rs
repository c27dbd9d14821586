//! The loop of a task fed by input channels: barrier alignment (blocking for exactly-once),
//! watermarks combined over inputs, and end of input.

use super::{Task, TaskControl, TaskEventKind};
use crate::error::{Result, RuntimeError};
use crate::message::{Barrier, Message};
use crate::watermark::InputWatermarks;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::task::Poll;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};
use tracing::debug;
use weir_checkpoint::{AlignEvent, BarrierAligner};

impl Task {
    pub(super) async fn run_inputs(
        &mut self,
        mut inputs: Vec<Receiver<Message>>,
        mut control: UnboundedReceiver<TaskControl>,
        aligned: bool,
    ) -> Result<()> {
        enum Next {
            Control(Option<TaskControl>),
            Input(usize, Option<Message>),
        }
        let n = inputs.len();
        let mut aligner = BarrierAligner::new(n, aligned);
        let mut input_watermarks = InputWatermarks::new(n);
        let mut ended = vec![false; n];
        let mut ended_all = n == 0;
        let mut pending_barrier: Option<Barrier> = None;
        let mut start = 0usize;
        let mut skip = vec![false; n];
        loop {
            for (i, s) in skip.iter_mut().enumerate() {
                *s = ended[i] || aligner.is_blocked(i);
            }
            let next = poll_fn(|cx| {
                if let Poll::Ready(c) = control.poll_recv(cx) {
                    return Poll::Ready(Next::Control(c));
                }
                if !ended_all {
                    for k in 0..n {
                        let i = (start + k) % n;
                        if skip[i] {
                            continue;
                        }
                        if let Poll::Ready(m) = inputs[i].poll_recv(cx) {
                            start = i + 1;
                            return Poll::Ready(Next::Input(i, m));
                        }
                    }
                }
                Poll::Pending
            })
            .await;
            let align_events = match next {
                Next::Control(None) => {
                    return Err(RuntimeError::ChannelClosed(
                        "control channel closed (task cancelled)".into(),
                    ))
                }
                Next::Control(Some(TaskControl::CheckpointComplete(id))) => {
                    self.complete(id).await?;
                    if ended_all && !self.awaiting_commit() {
                        return Ok(());
                    }
                    continue;
                }
                Next::Control(Some(TaskControl::TriggerCheckpoint { .. })) => continue,
                Next::Input(i, None) => {
                    return Err(RuntimeError::ChannelClosed(format!(
                        "input channel {i} closed without end of stream: an upstream task failed"
                    )))
                }
                Next::Input(i, Some(Message::Batch(b))) => {
                    self.metrics
                        .records_in
                        .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                    self.push_input(i, b).await?;
                    self.slice.yield_if_spent().await;
                    continue;
                }
                Next::Input(i, Some(Message::Barrier(b))) => {
                    let ev = aligner.on_barrier(i, b.id);
                    if pending_barrier.as_ref().is_none_or(|p| p.id < b.id) {
                        pending_barrier = Some(b);
                    }
                    ev
                }
                Next::Input(i, Some(Message::Watermark(w))) => {
                    if let Some(w) = input_watermarks.on_watermark(i, w) {
                        self.on_watermark(w).await?;
                    }
                    continue;
                }
                Next::Input(i, Some(Message::EndOfStream)) => {
                    ended[i] = true;
                    if let Some(w) = input_watermarks.on_end(i) {
                        self.on_watermark(w).await?;
                    }
                    aligner.on_end_of_input(i)
                }
            };
            for ev in align_events {
                match ev {
                    AlignEvent::Snapshot(id) => {
                        let b =
                            pending_barrier
                                .clone()
                                .filter(|b| b.id == id)
                                .ok_or_else(|| {
                                    RuntimeError::Internal(format!("no barrier {id} to snapshot"))
                                })?;
                        self.snapshot(&b).await?;
                    }
                    AlignEvent::Aborted(id) => {
                        self.event(TaskEventKind::Declined {
                            checkpoint: id,
                            reason: "alignment abandoned for a newer barrier".into(),
                        });
                    }
                }
            }
            if !ended_all && aligner.all_ended() {
                ended_all = true;
                self.flush_chain().await?;
                self.outputs.end_of_stream().await?;
                if !self.checkpointing {
                    self.finish_without_checkpoint().await?;
                    return Ok(());
                }
                if !self.awaiting_commit() {
                    return Ok(());
                }
                debug!("inputs ended; waiting for the final checkpoint to commit");
            }
        }
    }
}
