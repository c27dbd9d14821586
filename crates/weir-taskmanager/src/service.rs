//! The task manager's gRPC surface: converts wire types and calls into [`crate::tasks`].

use crate::tasks::{barrier_from_proto, ChannelKey, Deployment, TaskManagerState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};
use weir_proto as pb;
use weir_runtime::exchange::decode_batch;
use weir_runtime::task::TaskControl;
use weir_runtime::Message;
use weir_types::{Channel, JobId, TaskKey};

/// How long a deployment waits for a cancelled attempt of the same job to stop.
const DEPLOY_WAITS_FOR_STOP: Duration = Duration::from_secs(5);

pub struct Service {
    state: Arc<TaskManagerState>,
}

pub async fn serve(
    state: Arc<TaskManagerState>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> crate::Result<()> {
    let svc = pb::task_manager_service_server::TaskManagerServiceServer::new(Service { state })
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    // Data frames are whole Arrow batches (hundreds of KiB): HTTP/2's default windows would
    // make every batch wait for window updates, so the receiver advertises room for several.
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(crate::EXCHANGE_STREAM_WINDOW)
        .initial_connection_window_size(crate::EXCHANGE_CONNECTION_WINDOW)
        .add_service(svc)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await?;
    Ok(())
}

impl Service {
    fn fenced(&self, epoch: u64) -> Result<(), Status> {
        self.state.check_epoch(epoch).map_err(|m| {
            warn!("{m}");
            Status::failed_precondition(m)
        })
    }
}

#[tonic::async_trait]
impl pb::task_manager_service_server::TaskManagerService for Service {
    async fn deploy_tasks(
        &self,
        req: Request<pb::DeployTasksRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.fenced(r.leader_epoch)?;
        let placement: HashMap<TaskKey, String> = r
            .placement
            .into_iter()
            .map(|p| {
                (
                    TaskKey {
                        vertex: p.vertex,
                        subtask: p.subtask,
                    },
                    p.address,
                )
            })
            .collect();
        let d = Deployment {
            job_id: JobId(r.job_id),
            attempt: r.attempt,
            job_json: r.job_json,
            tasks: r
                .tasks
                .into_iter()
                .map(|t| TaskKey {
                    vertex: t.vertex,
                    subtask: t.subtask,
                })
                .collect(),
            placement,
            restore_dir: (!r.restore_checkpoint.is_empty()).then_some(r.restore_checkpoint),
            restore_metadata: (!r.restore_metadata_json.is_empty())
                .then_some(r.restore_metadata_json),
            checkpoint_dir: r.checkpoint_dir,
        };
        // The job manager waits for a cancelled attempt to stop before it deploys the next;
        // this is the backstop when it could not (the attempt was cancelled here on our own,
        // after losing the job manager).
        self.state
            .cancel_job(&d.job_id, Some(d.attempt.saturating_sub(1)));
        self.state
            .stopped(&d.job_id, DEPLOY_WAITS_FOR_STOP)
            .await
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        self.state
            .deploy(d)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn cancel_job(
        &self,
        req: Request<pb::CancelTasksRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.fenced(r.leader_epoch)?;
        let job = JobId(r.job_id);
        self.state.cancel_job(&job, Some(r.attempt));
        if r.wait_ms > 0 {
            self.state
                .stopped(&job, Duration::from_millis(r.wait_ms))
                .await
                .map_err(|e| Status::deadline_exceeded(e.to_string()))?;
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn trigger_checkpoint(
        &self,
        req: Request<pb::TriggerCheckpointRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.fenced(r.leader_epoch)?;
        let barrier = barrier_from_proto(pb::Barrier {
            checkpoint_id: r.checkpoint_id,
            timestamp_ms: r.timestamp_ms,
            savepoint: r.savepoint,
            target_dir: r.target_dir,
        });
        self.state.control(
            &JobId(r.job_id),
            r.attempt,
            true,
            TaskControl::TriggerCheckpoint {
                barrier,
                stop: r.stop,
            },
        );
        Ok(Response::new(pb::Empty {}))
    }

    async fn notify_checkpoint_complete(
        &self,
        req: Request<pb::NotifyCheckpointCompleteRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.fenced(r.leader_epoch)?;
        self.state.control(
            &JobId(r.job_id),
            r.attempt,
            false,
            TaskControl::CheckpointComplete(r.checkpoint_id),
        );
        Ok(Response::new(pb::Empty {}))
    }

    async fn exchange(
        &self,
        req: Request<Streaming<pb::DataFrame>>,
    ) -> Result<Response<pb::ExchangeResponse>, Status> {
        use pb::data_frame::Kind;
        let mut stream = req.into_inner();
        let header = match stream.message().await? {
            Some(pb::DataFrame {
                kind: Some(Kind::Header(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first frame must be a channel header",
                ))
            }
        };
        let key = ChannelKey {
            job_id: header.job_id.clone(),
            attempt: header.attempt,
            channel: Channel {
                edge: header.edge,
                from_subtask: header.from_subtask,
                to_subtask: header.to_subtask,
            },
        };
        let Some(tx) = self.state.take_inbound(&key, Duration::from_secs(30)).await else {
            return Err(Status::not_found(format!(
                "no receiver for {key:?} on this task manager"
            )));
        };
        // Dropping `tx` without an end-of-stream (an error below) tells the receiving task its
        // upstream failed.
        while let Some(frame) = stream.message().await? {
            let msg = match frame.kind {
                Some(Kind::BatchIpc(bytes)) => Message::Batch(
                    decode_batch(&bytes).map_err(|e| Status::invalid_argument(e.to_string()))?,
                ),
                Some(Kind::Barrier(b)) => Message::Barrier(barrier_from_proto(b)),
                Some(Kind::EndOfStream(_)) => Message::EndOfStream,
                Some(Kind::Watermark(w)) => Message::Watermark(w),
                Some(Kind::Header(_)) | None => continue,
            };
            let end = matches!(msg, Message::EndOfStream);
            if tx.send(msg).await.is_err() {
                debug!(?key, "receiving task is gone");
                break;
            }
            if end {
                break;
            }
        }
        Ok(Response::new(pb::ExchangeResponse {}))
    }
}
