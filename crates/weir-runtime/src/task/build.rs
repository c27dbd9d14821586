//! Setting a task up from its [`TaskSetup`]: the chain's operators (a source at its head, if
//! any) with the state they restore (a checkpoint's, and at-most-once leases), its watermark
//! generator and which input each channel feeds.

use super::{RestoreSource, Task, TaskControl, TaskSetup, TimeSlice};
use crate::error::{Result, RuntimeError};
use crate::message::Message;
use crate::operator::{OperatorContext, Restored};
use crate::watermark::WatermarkGen;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};
use tracing::debug;
use weir_storage::Storage;
use weir_types::DeliveryGuarantee;

/// Adds the at-most-once leases of every earlier attempt to what a source restores from.
async fn load_leases(
    dir: &Storage,
    op_id: &str,
    restored: Option<Restored>,
) -> Result<Option<Restored>> {
    let files: Vec<String> = dir
        .list("")
        .await?
        .into_iter()
        .filter(|f| f.starts_with(&format!("{op_id}-")) && f.ends_with(".lease"))
        .collect();
    if files.is_empty() {
        return Ok(restored);
    }
    let mut r = restored.unwrap_or_default();
    for (name, bytes) in dir.get_many(files).await? {
        debug!(lease = %name, "restoring at-most-once lease");
        r.snapshots.push((u32::MAX, bytes));
    }
    Ok(Some(r))
}

async fn load_restored(restore: &Option<RestoreSource>, op_id: &str) -> Result<Option<Restored>> {
    let Some(r) = restore else { return Ok(None) };
    let Some(snap) = r.metadata.operators.get(op_id) else {
        return Ok(None);
    };
    let mut snapshots = Vec::new();
    for (subtask, handle) in &snap.subtasks {
        let bytes = r.storage.get(&handle.path).await?;
        if bytes.len() as u64 != handle.size {
            return Err(RuntimeError::Input(format!(
                "state file {} has {} bytes, the checkpoint recorded {}: corrupt checkpoint",
                handle.path,
                bytes.len(),
                handle.size
            )));
        }
        snapshots.push((*subtask, bytes));
    }
    Ok(Some(Restored {
        job_id: r.metadata.job_id.clone(),
        old_parallelism: snap.parallelism,
        snapshots,
    }))
}

impl Task {
    pub(super) async fn build(
        mut s: TaskSetup,
    ) -> Result<(
        Self,
        Vec<Receiver<Message>>,
        UnboundedReceiver<TaskControl>,
        DeliveryGuarantee,
    )> {
        let vertex = s
            .plan
            .vertex(s.task.vertex)
            .ok_or_else(|| RuntimeError::Internal(format!("no vertex {}", s.task.vertex)))?
            .clone();
        let mut source = None;
        let mut watermarks = None;
        let mut alignment = None;
        let mut chain = Vec::new();
        let mut op_ids = Vec::new();
        for (pos, &op_index) in vertex.operators.iter().enumerate() {
            let op = &s.spec.operators[op_index];
            let input_schema = op
                .inputs
                .first()
                .and_then(|i| s.spec.operator_index(&i.from))
                .map(|i| s.schemas[i].clone())
                .or_else(|| (pos > 0).then(|| s.schemas[vertex.operators[pos - 1]].clone()));
            let input_schemas = if pos == 0 {
                op.inputs
                    .iter()
                    .filter_map(|i| s.spec.operator_index(&i.from))
                    .map(|i| s.schemas[i].clone())
                    .collect()
            } else {
                input_schema.iter().cloned().collect()
            };
            let ctx = OperatorContext {
                job_id: s.job_id.clone(),
                op_id: op.id.clone(),
                subtask: s.task.subtask,
                parallelism: op.parallelism,
                max_parallelism: s.spec.max_parallelism,
                attempt: s.attempt,
                guarantee: s.spec.guarantee,
                checkpointing: s.spec.checkpoint.interval_ms > 0,
                state_backend: s.spec.state_backend,
                input_schema,
                input_schemas,
                output_schema: s.schemas[op_index].clone(),
                inflight: s.inflight.clone(),
                storage: s.storage.clone(),
            };
            let mut restored = load_restored(&s.restore, &op.id).await?;
            if let (Some(dir), true) = (&s.lease_dir, op.kind.is_source()) {
                restored = load_leases(dir, &op.id, restored).await?;
            }
            if pos == 0 && op.kind.is_source() {
                let src = s.registry.build_source(&ctx, op, restored).await?;
                if let Some(w) = &op.watermark {
                    let col = s.schemas[op_index].index_of(&w.column).map_err(|_| {
                        RuntimeError::Plan(format!(
                            "operator {:?}: no watermark column {:?}",
                            op.id, w.column
                        ))
                    })?;
                    let gen = WatermarkGen::new(
                        src.partition_count(),
                        w.delay_ms,
                        w.idle_timeout_ms,
                        std::time::Instant::now(),
                    );
                    watermarks = Some((gen, col));
                    alignment = s.alignment.take();
                }
                source = Some(src);
            } else {
                chain.push(s.registry.build_operator(&ctx, op, restored).await?);
            }
            op_ids.push(op.id.clone());
        }
        // Input channels come edge by edge in the head operator's input order (as the task
        // manager creates them).
        let mut channel_input = Vec::new();
        for (input, edge) in vertex.inputs.iter().enumerate() {
            let n = s.plan.channels_into(*edge, s.task.subtask).len();
            channel_input.extend(std::iter::repeat_n(input, n));
        }
        let task = Task {
            job_id: s.job_id,
            attempt: s.attempt,
            key: s.task,
            op_ids,
            source,
            chain,
            outputs: s.outputs,
            events: s.events,
            metrics: s.metrics,
            checkpointing: s.spec.checkpoint.interval_ms > 0,
            lease_dir: s.lease_dir,
            storage: s.storage,
            watermarks,
            alignment,
            channel_input,
            slice: TimeSlice::new(),
        };
        Ok((task, s.inputs, s.control, s.spec.guarantee))
    }
}
