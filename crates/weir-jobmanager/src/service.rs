//! The job manager's gRPC surface: the client API and the cluster API, served together.
//! Only type conversion happens here.

use crate::alignment::Report;
use crate::driver::{JobEvent, JobManager, JobView, TaskReport};
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};
use weir_checkpoint::leader::Claim;
use weir_checkpoint::SubtaskHandle;
use weir_proto as pb;
use weir_types::TaskKey;

/// The gRPC metadata key under which a standby names the leader's address.
pub const LEADER_METADATA: &str = "weir-leader";

/// What the services answer with: the job manager of the current term, or, on a standby,
/// where the leader is.
pub enum FrontState {
    Standby(Option<Claim>),
    Leading(Arc<JobManager>),
}

pub struct Front {
    state_dir: String,
    state: std::sync::Mutex<FrontState>,
}

impl Front {
    pub fn new(state_dir: &str) -> Self {
        Self {
            state_dir: state_dir.to_string(),
            state: std::sync::Mutex::new(FrontState::Standby(None)),
        }
    }

    pub fn set(&self, s: FrontState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// The readiness probe's answer: ready when this job manager leads with a valid term
    /// (its last lease renewal, a write to the state dir, succeeded within the renew
    /// deadline, so the state dir is writable) and has resumed the jobs it found there.
    pub fn readiness(&self) -> Result<(), String> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &*state {
            FrontState::Leading(jm) if !jm.term.is_valid() => Err(format!(
                "standby: this job manager lost the leadership of {} (epoch {})",
                self.state_dir, jm.term.epoch
            )),
            FrontState::Leading(jm) if !jm.is_resumed() => Err(format!(
                "resuming: leader of {} (epoch {}), resuming the jobs found there",
                self.state_dir, jm.term.epoch
            )),
            FrontState::Leading(_) => Ok(()),
            FrontState::Standby(Some(c)) => Err(format!(
                "standby for {}: the leader is {} at {} (epoch {})",
                self.state_dir, c.holder, c.address, c.epoch
            )),
            FrontState::Standby(None) => {
                Err(format!("standby for {}: no leader yet", self.state_dir))
            }
        }
    }

    /// The leading job manager, or UNAVAILABLE naming the leader (clients and task managers
    /// given several addresses try the next one on UNAVAILABLE).
    pub fn jm(&self) -> Result<Arc<JobManager>, Status> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &*state {
            FrontState::Leading(jm) if jm.term.is_valid() => Ok(jm.clone()),
            FrontState::Leading(jm) => Err(Status::unavailable(format!(
                "standby: this job manager lost the leadership of {} (epoch {})",
                self.state_dir, jm.term.epoch
            ))),
            FrontState::Standby(Some(c)) => {
                let mut status = Status::unavailable(format!(
                    "standby for {}: the leader is {} at {} (epoch {})",
                    self.state_dir, c.holder, c.address, c.epoch
                ));
                if let Ok(v) = c.address.parse() {
                    status.metadata_mut().insert(LEADER_METADATA, v);
                }
                Err(status)
            }
            FrontState::Standby(None) => Err(Status::unavailable(format!(
                "standby for {}: no leader yet",
                self.state_dir
            ))),
        }
    }
}

pub async fn serve(
    front: Arc<Front>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> crate::Result<()> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(
            pb::job_manager_service_server::JobManagerServiceServer::new(ClientApi {
                front: front.clone(),
            }),
        )
        .add_service(pb::cluster_service_server::ClusterServiceServer::new(
            ClusterApi {
                front,
                shutdown: shutdown.clone(),
            },
        ))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await?;
    Ok(())
}

pub struct ClientApi {
    front: Arc<Front>,
}

fn status_of(jm: &JobManager, v: JobView) -> pb::JobStatus {
    let r = v.record;
    let metrics = jm.cluster.job_metrics(&r.job_id, r.attempt);
    let vertices = weir_types::JobSpec::from_json(&r.job_json)
        .ok()
        .and_then(|spec| {
            let plan = weir_types::ExecutionPlan::new(&spec).ok()?;
            Some(
                plan.vertices
                    .iter()
                    .map(|vx| {
                        let names: Vec<&str> = vx
                            .operators
                            .iter()
                            .map(|i| spec.operators[*i].id.as_str())
                            .collect();
                        let m = metrics.get(&vx.id).copied().unwrap_or_default();
                        pb::VertexStatus {
                            name: names.join(" -> "),
                            parallelism: vx.parallelism,
                            records_in: m.records_in,
                            records_out: m.records_out,
                            alignment_paused_ms: m.alignment_paused_ms,
                        }
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    pb::JobStatus {
        job_id: r.job_id,
        name: r.name,
        state: job_state(r.state).into(),
        restarts: r.restarts,
        attempt: r.attempt,
        failure: r.failure,
        checkpoints: v
            .checkpoints
            .into_iter()
            .map(|c| pb::CheckpointInfo {
                checkpoint_id: c.id,
                state: checkpoint_state(c.status).into(),
                savepoint: c.savepoint,
                location: c.location,
                state_bytes: c.state_bytes,
                duration_ms: c.duration_ms,
                failure: c.failure,
                triggered_at_ms: c.triggered_at_ms,
            })
            .collect(),
        vertices,
        job_json: r.job_json,
        submitted_at_ms: r.submitted_at_ms,
    }
}

fn job_state(s: weir_types::JobState) -> pb::JobState {
    use weir_types::JobState as S;
    match s {
        S::Created => pb::JobState::Created,
        S::Running => pb::JobState::Running,
        S::Restarting => pb::JobState::Restarting,
        S::Finished => pb::JobState::Finished,
        S::Canceled => pb::JobState::Canceled,
        S::Failed => pb::JobState::Failed,
    }
}

fn checkpoint_state(s: weir_types::CheckpointState) -> pb::CheckpointState {
    use weir_types::CheckpointState as S;
    match s {
        S::InProgress => pb::CheckpointState::InProgress,
        S::Completed => pb::CheckpointState::Completed,
        S::Failed => pb::CheckpointState::Failed,
    }
}

#[tonic::async_trait]
impl pb::job_manager_service_server::JobManagerService for ClientApi {
    async fn submit_job(
        &self,
        req: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let r = req.into_inner();
        let id = self
            .front
            .jm()?
            .submit(&r.job_json, r.restore_from.trim())
            .await?;
        Ok(Response::new(pb::SubmitJobResponse { job_id: id.0 }))
    }

    async fn list_jobs(
        &self,
        _: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let jobs = self
            .front
            .jm()?
            .views()
            .into_iter()
            .map(|v| pb::JobSummary {
                job_id: v.record.job_id,
                name: v.record.name,
                state: job_state(v.record.state).into(),
                restarts: v.record.restarts,
                submitted_at_ms: v.record.submitted_at_ms,
            })
            .collect();
        Ok(Response::new(pb::ListJobsResponse { jobs }))
    }

    async fn get_job_status(
        &self,
        req: Request<pb::GetJobStatusRequest>,
    ) -> Result<Response<pb::JobStatus>, Status> {
        let jm = self.front.jm()?;
        let v = jm.view(&req.into_inner().job_id)?;
        Ok(Response::new(status_of(&jm, v)))
    }

    async fn cancel_job(
        &self,
        req: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        self.front.jm()?.cancel(&req.into_inner().job_id).await?;
        Ok(Response::new(pb::CancelJobResponse {}))
    }

    async fn trigger_savepoint(
        &self,
        req: Request<pb::TriggerSavepointRequest>,
    ) -> Result<Response<pb::TriggerSavepointResponse>, Status> {
        let r = req.into_inner();
        let target = (!r.target_dir.is_empty()).then_some(r.target_dir);
        let (location, checkpoint_id) = self
            .front
            .jm()?
            .savepoint(&r.job_id, target, r.stop)
            .await?;
        Ok(Response::new(pb::TriggerSavepointResponse {
            location,
            checkpoint_id,
        }))
    }

    async fn cluster_info(
        &self,
        _: Request<pb::ClusterInfoRequest>,
    ) -> Result<Response<pb::ClusterInfoResponse>, Status> {
        let jm = self.front.jm()?;
        let task_managers = jm
            .cluster
            .list()
            .into_iter()
            .map(|t| pb::TaskManagerInfo {
                free_slots: jm.cluster.free_slots(&t.id),
                id: t.id,
                address: t.address,
                slots: t.slots,
            })
            .collect();
        Ok(Response::new(pb::ClusterInfoResponse { task_managers }))
    }
}

pub struct ClusterApi {
    front: Arc<Front>,
    /// The job manager's own shutdown: task managers leaving then are expected.
    shutdown: CancellationToken,
}

fn task_key(t: Option<pb::TaskId>) -> Result<(String, u64, TaskKey), Status> {
    let t = t.ok_or_else(|| Status::invalid_argument("missing task id"))?;
    Ok((
        t.job_id,
        t.attempt,
        TaskKey {
            vertex: t.vertex,
            subtask: t.subtask,
        },
    ))
}

/// Records a heartbeat's source watermarks and answers each reported alignment group's
/// minimum on the other task managers.
fn aligned_minima(
    jm: &JobManager,
    tm: &str,
    watermarks: Vec<pb::SourceWatermark>,
) -> Vec<pb::GroupWatermark> {
    let reports = watermarks
        .into_iter()
        .map(|w| Report {
            group: (w.job_id, w.attempt, w.group),
            vertex: w.vertex,
            subtask: w.subtask,
            watermark: w.watermark,
        })
        .collect();
    let minima = jm
        .alignment
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .report(tm, reports);
    minima
        .into_iter()
        .map(|((job_id, attempt, group), minimum)| pb::GroupWatermark {
            job_id,
            attempt,
            group,
            minimum,
        })
        .collect()
}

type HeartbeatStream = Pin<Box<dyn Stream<Item = Result<pb::HeartbeatResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::cluster_service_server::ClusterService for ClusterApi {
    async fn register_task_manager(
        &self,
        req: Request<pb::RegisterTaskManagerRequest>,
    ) -> Result<Response<pb::RegisterTaskManagerResponse>, Status> {
        let r = req.into_inner();
        if r.slots == 0 {
            return Err(Status::invalid_argument(
                "a task manager needs at least one slot",
            ));
        }
        let jm = self.front.jm()?;
        let (session, replaced) = jm
            .cluster
            .register(&r.tm_id, &r.address, r.slots)
            .map_err(Status::invalid_argument)?;
        info!(tm = %r.tm_id, address = %r.address, slots = r.slots, "task manager registered");
        if replaced {
            jm.task_manager_lost(&r.tm_id);
        }
        Ok(Response::new(pb::RegisterTaskManagerResponse {
            jm_session: session.to_string(),
            heartbeat_interval_ms: 300,
            leader_epoch: jm.term.epoch,
        }))
    }

    type HeartbeatStream = HeartbeatStream;

    async fn heartbeat(
        &self,
        req: Request<Streaming<pb::HeartbeatRequest>>,
    ) -> Result<Response<Self::HeartbeatStream>, Status> {
        let mut inbound = req.into_inner();
        let jm = self.front.jm()?;
        let shutdown = self.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut session: Option<(String, u64)> = None;
            while let Some(Ok(mut hb)) = inbound.next().await {
                if session.is_none() {
                    session = jm
                        .cluster
                        .list()
                        .into_iter()
                        .find(|t| t.id == hb.tm_id)
                        .map(|t| (t.id, t.session));
                }
                let watermarks = std::mem::take(&mut hb.watermarks);
                // A term that ended sends its task managers away: they cancel their tasks and
                // register with whoever leads now.
                let known = jm.term.is_valid()
                    && session
                        .as_ref()
                        .is_some_and(|(id, s)| jm.cluster.heartbeat(id, *s, hb.metrics));
                let alignment = if known {
                    aligned_minima(&jm, &hb.tm_id, watermarks)
                } else {
                    Vec::new()
                };
                if tx
                    .send(Ok(pb::HeartbeatResponse {
                        reregister: !known,
                        alignment,
                    }))
                    .await
                    .is_err()
                    || !known
                {
                    break;
                }
            }
            // The stream broke: the task manager is gone (or will register anew).
            if let Some((id, s)) = session {
                if jm.cluster.remove(&id, Some(s)) {
                    if shutdown.is_cancelled() {
                        debug!(tm = %id, "heartbeat stream closed while shutting down");
                    } else {
                        warn!(tm = %id, "heartbeat stream closed; task manager lost");
                    }
                    jm.task_manager_lost(&id);
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn report_task_state(
        &self,
        req: Request<pb::TaskStateReport>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        let report = match r.state() {
            pb::TaskState::Running => TaskReport::Running,
            pb::TaskState::SourceExhausted => TaskReport::SourceExhausted,
            pb::TaskState::Finished => TaskReport::Finished,
            pb::TaskState::Failed => TaskReport::Failed {
                message: r.failure.clone(),
                deterministic: r.deterministic,
            },
            pb::TaskState::Unspecified => {
                return Err(Status::invalid_argument(format!(
                    "a task state report without a state (value {})",
                    r.state
                )))
            }
        };
        let (job, attempt, task) = task_key(r.task)?;
        self.front.jm()?.route(
            &job,
            JobEvent::TaskState {
                attempt,
                task,
                report,
            },
        );
        Ok(Response::new(pb::Empty {}))
    }

    async fn acknowledge_checkpoint(
        &self,
        req: Request<pb::CheckpointAck>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        let (job, attempt, task) = task_key(r.task)?;
        let handles = r
            .handles
            .into_iter()
            .map(|h| {
                (
                    h.operator_id,
                    SubtaskHandle {
                        path: h.path,
                        size: h.size,
                    },
                )
            })
            .collect();
        self.front.jm()?.route(
            &job,
            JobEvent::Ack {
                attempt,
                task,
                checkpoint: r.checkpoint_id,
                handles,
            },
        );
        Ok(Response::new(pb::Empty {}))
    }

    async fn decline_checkpoint(
        &self,
        req: Request<pb::CheckpointDecline>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        let (job, attempt, _) = task_key(r.task)?;
        self.front.jm()?.route(
            &job,
            JobEvent::Decline {
                attempt,
                checkpoint: r.checkpoint_id,
                reason: r.reason,
            },
        );
        Ok(Response::new(pb::Empty {}))
    }
}
