//! The task manager's link to its job manager: register, keep a heartbeat stream open, and
//! forward task events. When the stream breaks (the job manager died or restarted), every task
//! is cancelled and the task manager registers again as soon as the job manager answers.

use crate::tasks::TaskManagerState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::{info, warn};
use weir_proto as pb;
use weir_proto::cluster_service_client::ClusterServiceClient;
use weir_runtime::alignment::GroupKey;
use weir_runtime::task::{TaskEvent, TaskEventKind};

type Client = ClusterServiceClient<Channel>;

pub async fn run(state: Arc<TaskManagerState>, shutdown: CancellationToken) {
    let client: Arc<Mutex<Option<Client>>> = Arc::new(Mutex::new(None));
    if let Some(events) = state.take_events() {
        tokio::spawn(forward_events(
            state.clone(),
            client.clone(),
            events,
            shutdown.clone(),
        ));
    }
    // `--jobmanager` may list several job managers (a leader and standbys): a standby refuses
    // the registration (UNAVAILABLE), and the next address is tried.
    let addresses = weir_types::endpoint_list(&state.cfg.jobmanager);
    let mut next = 0;
    let mut logged_unreachable = false;
    while !shutdown.is_cancelled() {
        let address = addresses
            .get(next % addresses.len().max(1))
            .cloned()
            .unwrap_or_default();
        match session(&state, &address, &client, &shutdown).await {
            Ok(()) => logged_unreachable = false,
            Err(e) => {
                next += 1;
                if !logged_unreachable && next % addresses.len().max(1) == 0 {
                    warn!(jobmanager = %state.cfg.jobmanager, error = %e, "no job manager of --jobmanager accepts this task manager; retrying");
                    logged_unreachable = true;
                }
            }
        }
        *client.lock().await = None;
        state.cancel_all("lost the job manager");
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
}

/// The longest a call to the job manager may take (registration, opening the heartbeat
/// stream, a report): a frozen one must not hold the task manager.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A call to the job manager, bounded by [`CALL_TIMEOUT`]: one report stuck on a frozen job
/// manager would hold up every later one (they go out in order), the next attempt's too.
async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(tonic::Status::deadline_exceeded(format!(
                "no answer within {CALL_TIMEOUT:?}"
            )))
        })
}

/// One registration and heartbeat stream; returns when the stream ends.
async fn session(
    state: &Arc<TaskManagerState>,
    address: &str,
    shared: &Arc<Mutex<Option<Client>>>,
    shutdown: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // A frozen job manager accepts connections (the kernel does) but answers nothing: every
    // call here is bounded, and HTTP/2 keepalives find a dead connection.
    let endpoint = tonic::transport::Endpoint::from_shared(address.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    let channel = endpoint.connect().await?;
    let mut client = ClusterServiceClient::new(channel);
    let register = client.register_task_manager(pb::RegisterTaskManagerRequest {
        tm_id: state.cfg.id.clone(),
        address: state.address.clone(),
        slots: state.cfg.slots,
    });
    let registered = tokio::time::timeout(CALL_TIMEOUT, register)
        .await
        .map_err(|_| format!("{address} did not answer the registration within {CALL_TIMEOUT:?}"))??
        .into_inner();
    state.registered_under(registered.leader_epoch);
    info!(jobmanager = %address, leader_epoch = registered.leader_epoch, "registered with the job manager");
    *shared.lock().await = Some(client.clone());
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::HeartbeatRequest>(4);
    let id = state.cfg.id.clone();
    let beat_state = state.clone();
    let interval = state.cfg.heartbeat_interval;
    let beats = tokio::spawn(async move {
        loop {
            let hb = pb::HeartbeatRequest {
                tm_id: id.clone(),
                metrics: beat_state.metrics(),
                watermarks: beat_state
                    .alignments
                    .reports()
                    .into_iter()
                    .map(|r| pb::SourceWatermark {
                        job_id: r.group.job_id,
                        attempt: r.group.attempt,
                        group: r.group.group,
                        vertex: r.vertex,
                        subtask: r.subtask,
                        watermark: r.watermark,
                    })
                    .collect(),
            };
            if tx.send(hb).await.is_err() {
                break;
            }
            tokio::time::sleep(interval).await;
        }
    });
    let result = async {
        let open = client.heartbeat(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut responses = tokio::time::timeout(CALL_TIMEOUT, open)
            .await
            .map_err(|_| format!("the heartbeat stream did not open within {CALL_TIMEOUT:?}"))??
            .into_inner();
        state.set_connected(Some(address.to_string()));
        let timeout = state.cfg.jm_timeout;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                // A frozen or cut-off job manager keeps the stream open but answers nothing:
                // after `jm_timeout` this one looks for whoever leads now.
                _ = tokio::time::sleep(timeout) => {
                    return Err(format!("the job manager answered no heartbeat for {timeout:?}").into())
                }
                r = responses.message() => match r? {
                    Some(resp) if resp.reregister => return Ok(()),
                    Some(resp) => {
                        for g in resp.alignment {
                            let key = GroupKey {
                                job_id: g.job_id,
                                attempt: g.attempt,
                                group: g.group,
                            };
                            state.alignments.set_remote(&key, g.minimum);
                        }
                    }
                    None => return Err("heartbeat stream closed by the job manager".into()),
                }
            }
        }
    }
    .await;
    beats.abort();
    state.set_connected(None);
    if let Err(e) = &result {
        warn!(error = %e, "lost the job manager");
    }
    result
}

async fn forward_events(
    state: Arc<TaskManagerState>,
    client: Arc<Mutex<Option<Client>>>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<TaskEvent>,
    shutdown: CancellationToken,
) {
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = events.recv() => match ev { Some(ev) => ev, None => return },
        };
        if matches!(
            ev.kind,
            TaskEventKind::Finished | TaskEventKind::Failed { .. }
        ) {
            state.task_ended(&ev.job_id, ev.attempt, ev.task);
        }
        // Wait for the session's client rather than drop the event: the job manager deploys
        // as soon as it has registered this task manager, which can be before the
        // registration call has returned here, and a fast source's `EXHAUSTED` sent in that
        // window was lost, so the job never took its final checkpoint and never ended. Events
        // of tasks that a lost session cancelled reach the next job manager, which ignores
        // them (their attempt is not current).
        let mut c = loop {
            if let Some(c) = client.lock().await.clone() {
                break c;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        };
        let task = Some(pb::TaskId {
            job_id: ev.job_id.0.clone(),
            attempt: ev.attempt,
            vertex: ev.task.vertex,
            subtask: ev.task.subtask,
        });
        let result = match ev.kind {
            TaskEventKind::Acknowledged {
                checkpoint,
                handles,
            } => bounded(
                c.acknowledge_checkpoint(pb::CheckpointAck {
                    task,
                    checkpoint_id: checkpoint,
                    handles: handles
                        .into_iter()
                        .map(|(op, h)| pb::StateHandle {
                            operator_id: op,
                            path: h.path,
                            size: h.size,
                        })
                        .collect(),
                }),
            )
            .await
            .map(|_| ()),
            TaskEventKind::Declined { checkpoint, reason } => {
                bounded(c.decline_checkpoint(pb::CheckpointDecline {
                    task,
                    checkpoint_id: checkpoint,
                    reason,
                }))
                .await
                .map(|_| ())
            }
            kind => {
                use pb::TaskState as S;
                let (state, failure, deterministic) = match kind {
                    TaskEventKind::Running => (S::Running, String::new(), false),
                    TaskEventKind::SourceExhausted => (S::SourceExhausted, String::new(), false),
                    TaskEventKind::Finished => (S::Finished, String::new(), false),
                    TaskEventKind::Failed {
                        message,
                        deterministic,
                    } => (S::Failed, message, deterministic),
                    _ => continue,
                };
                bounded(c.report_task_state(pb::TaskStateReport {
                    task,
                    state: state.into(),
                    failure,
                    deterministic,
                }))
                .await
                .map(|_| ())
            }
        };
        if let Err(e) = result {
            warn!(error = %e, "could not report to the job manager");
        }
    }
}
