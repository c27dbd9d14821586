//! Checkpoints in a task: the synchronous snapshot at a barrier, the upload and its
//! acknowledgement (or decline) in the background, and commits when a checkpoint completes.

use super::{Task, TaskEvent, TaskEventKind};
use crate::error::Result;
use crate::message::Barrier;
use tracing::warn;
use weir_checkpoint::SubtaskHandle;
use weir_storage::Opener;
use weir_types::{CheckpointId, TaskKey};

impl Task {
    pub(super) fn awaiting_commit(&self) -> bool {
        self.chain.iter().any(|op| op.awaiting_commit())
    }

    pub(super) async fn complete(&mut self, id: CheckpointId) -> Result<()> {
        if let Some(src) = &mut self.source {
            src.checkpoint_complete(id).await?;
        }
        for op in &mut self.chain {
            op.checkpoint_complete(id).await?;
        }
        Ok(())
    }

    pub(super) async fn finish_without_checkpoint(&mut self) -> Result<()> {
        for op in &mut self.chain {
            op.finish().await?;
        }
        Ok(())
    }

    /// Takes the snapshot for `barrier`, forwards the barrier, and uploads in the background.
    pub(super) async fn snapshot(&mut self, barrier: &Barrier) -> Result<()> {
        let mut states: Vec<(String, Vec<u8>)> = Vec::new();
        let chain_ids = if self.source.is_some() {
            &self.op_ids[1..]
        } else {
            &self.op_ids[..]
        };
        let mut source_offsets = None;
        if let Some(src) = &mut self.source {
            if let Some(bytes) = src.snapshot(barrier.id)? {
                states.push((self.op_ids[0].clone(), bytes));
            }
            source_offsets = src.chained_offsets();
        }
        for (op, id) in self.chain.iter_mut().zip(chain_ids) {
            if let Some(o) = &source_offsets {
                op.chained_source_offsets(o);
            }
            if let Some(bytes) = op.snapshot(barrier).await? {
                states.push((id.clone(), bytes));
            }
        }
        self.outputs.barrier(barrier).await?;
        let (events, job_id, attempt, key, storage) = (
            self.events.clone(),
            self.job_id.clone(),
            self.attempt,
            self.key,
            self.storage.clone(),
        );
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let kind = match upload(&storage, &barrier, key, attempt, states).await {
                Ok(handles) => TaskEventKind::Acknowledged {
                    checkpoint: barrier.id,
                    handles,
                },
                Err(e) => {
                    warn!(checkpoint = barrier.id, task = %key, error = %e, "snapshot upload failed");
                    TaskEventKind::Declined {
                        checkpoint: barrier.id,
                        reason: e.to_string(),
                    }
                }
            };
            let _ = events.send(TaskEvent {
                job_id,
                attempt,
                task: key,
                kind,
            });
        });
        Ok(())
    }
}

async fn upload(
    storage: &Opener,
    barrier: &Barrier,
    key: TaskKey,
    attempt: u64,
    states: Vec<(String, Vec<u8>)>,
) -> Result<Vec<(String, SubtaskHandle)>> {
    if states.is_empty() {
        return Ok(vec![]);
    }
    let storage = storage.open(&barrier.target_dir)?;
    let mut handles = Vec::with_capacity(states.len());
    for (op_id, bytes) in states {
        let path = format!("{op_id}-{}-a{attempt}.state", key.subtask);
        let size = bytes.len() as u64;
        storage.put(&path, bytes).await?;
        handles.push((op_id, SubtaskHandle { path, size }));
    }
    Ok(handles)
}
