//! A task's outputs: one [`EdgeOutput`] per outgoing edge, each spreading batches over the
//! receiving subtasks' channels by the edge's partitioning. Barriers and end-of-stream go to
//! every channel. Sends wait when a channel is full: that is how backpressure reaches sources.

use crate::error::{Result, RuntimeError};
use crate::hashing::hash_columns;
use crate::message::{Barrier, Message};
use arrow::array::{ArrayRef, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::Sender;
use weir_types::keygroup::{key_group, subtask_for_key_group};
use weir_types::Partitioning;

pub enum Router {
    Forward,
    Rebalance {
        next: usize,
    },
    Broadcast,
    Hash {
        columns: Vec<usize>,
        max_parallelism: u32,
        hashes: Vec<u64>,
        buckets: Vec<Vec<u32>>,
    },
}

pub struct EdgeOutput {
    router: Router,
    /// Senders by receiving subtask (one for forward edges).
    channels: Vec<Sender<Message>>,
}

impl EdgeOutput {
    /// `key_columns` are the hash keys' column indices in the batches this edge carries.
    pub fn new(
        partitioning: &Partitioning,
        key_columns: Vec<usize>,
        max_parallelism: u32,
        channels: Vec<Sender<Message>>,
    ) -> Self {
        let router = match partitioning {
            Partitioning::Forward => Router::Forward,
            Partitioning::Rebalance => Router::Rebalance { next: 0 },
            Partitioning::Broadcast => Router::Broadcast,
            Partitioning::Hash(_) => Router::Hash {
                columns: key_columns,
                max_parallelism,
                hashes: Vec::new(),
                buckets: vec![Vec::new(); channels.len()],
            },
        };
        Self { router, channels }
    }

    async fn send_to(&self, i: usize, msg: Message) -> Result<()> {
        self.channels[i].send(msg).await.map_err(|_| {
            RuntimeError::ChannelClosed(format!("output channel to subtask {i} closed"))
        })
    }

    pub async fn send_batch(&mut self, batch: RecordBatch) -> Result<()> {
        match &mut self.router {
            Router::Forward => self.send_to(0, Message::Batch(batch)).await,
            Router::Rebalance { next } => {
                let i = *next % self.channels.len();
                *next = next.wrapping_add(1);
                self.send_to(i, Message::Batch(batch)).await
            }
            Router::Broadcast => {
                for i in 0..self.channels.len() {
                    self.send_to(i, Message::Batch(batch.clone())).await?;
                }
                Ok(())
            }
            Router::Hash {
                columns,
                max_parallelism,
                hashes,
                buckets,
            } => {
                let n = buckets.len() as u32;
                let cols: Vec<ArrayRef> =
                    columns.iter().map(|c| batch.column(*c).clone()).collect();
                hash_columns(&cols, hashes)?;
                for b in buckets.iter_mut() {
                    b.clear();
                }
                for (row, h) in hashes.iter().enumerate() {
                    let target =
                        subtask_for_key_group(key_group(*h, *max_parallelism), *max_parallelism, n);
                    buckets[target as usize].push(row as u32);
                }
                let mut parts = Vec::with_capacity(buckets.len());
                for b in buckets.iter() {
                    parts.push(match b.len() {
                        0 => None,
                        len if len == batch.num_rows() => Some(batch.clone()),
                        _ => Some(take_record_batch(&batch, &UInt32Array::from(b.clone()))?),
                    });
                }
                for (i, part) in parts.into_iter().enumerate() {
                    if let Some(p) = part {
                        self.send_to(i, Message::Batch(p)).await?;
                    }
                }
                Ok(())
            }
        }
    }

    pub async fn send_all(&self, msg: Message) -> Result<()> {
        for i in 0..self.channels.len() {
            self.send_to(i, msg.clone()).await?;
        }
        Ok(())
    }
}

/// All outputs of a task.
#[derive(Default)]
pub struct Outputs {
    pub edges: Vec<EdgeOutput>,
}

impl Outputs {
    pub async fn batch(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let last = self.edges.len().saturating_sub(1);
        for (i, e) in self.edges.iter_mut().enumerate() {
            if i == last {
                return e.send_batch(batch).await;
            }
            e.send_batch(batch.clone()).await?;
        }
        Ok(())
    }

    pub async fn barrier(&self, b: &Barrier) -> Result<()> {
        for e in &self.edges {
            e.send_all(Message::Barrier(b.clone())).await?;
        }
        Ok(())
    }

    pub async fn watermark(&self, w: i64) -> Result<()> {
        for e in &self.edges {
            e.send_all(Message::Watermark(w)).await?;
        }
        Ok(())
    }

    pub async fn end_of_stream(&self) -> Result<()> {
        for e in &self.edges {
            e.send_all(Message::EndOfStream).await?;
        }
        Ok(())
    }
}
