//! Client library: build jobs in Rust ([`JobBuilder`]) and manage them on a job manager over
//! gRPC ([`Client`]). The `weir` CLI is built on this.

pub mod builder;
pub mod status;

pub use builder::{JobBuilder, OperatorBuilder};
pub use status::{CheckpointInfo, JobStatus, JobSummary, TaskManagerInfo, VertexStatus};
pub use weir_types::{CheckpointState, JobState};

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use weir_proto as pb;
use weir_proto::job_manager_service_client::JobManagerServiceClient;
use weir_types::JobSpec;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the job manager at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The job manager refused the request; the message says why.
    #[error("{0}")]
    Refused(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Several job managers were given and none leads (or none answers).
    #[error("no leading job manager: {0}")]
    NoLeader(String),
    /// The job manager's answer makes no sense to this client (a state it does not know).
    #[error("unexpected answer from the job manager: {0}")]
    BadAnswer(String),
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        // A connection broken under a call (the job manager killed while it answered) comes
        // back as UNKNOWN "transport error", not UNAVAILABLE: it is as unreachable.
        let broken = std::error::Error::source(&s)
            .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some())
            || (s.code() == tonic::Code::Unknown && s.message() == "transport error");
        if s.code() == tonic::Code::Unavailable || broken {
            ClientError::Unreachable {
                addr: String::new(),
                reason: s.message().to_string(),
            }
        } else {
            ClientError::Refused(s.message().to_string())
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How long [`Client::wait`] keeps looking for a leading job manager (a failover takes about
/// one lease, 15 s by default).
pub const FAILOVER_PATIENCE: Duration = Duration::from_secs(60);

/// How long [`Client::connect`] waits for a job manager to say whether it leads.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Client {
    inner: JobManagerServiceClient<Channel>,
    /// The addresses it was given, to find the leader again after a failover.
    addrs: String,
}

impl Client {
    /// Connects to the leading job manager: `addrs` is one address, e.g.
    /// `http://127.0.0.1:6123` (a bare `host:port` works too), or a comma list of them (a
    /// leader and its standbys). Each is asked in turn; a standby answers UNAVAILABLE with
    /// the leader's address, which is tried next.
    pub async fn connect(addrs: &str) -> Result<Self> {
        let mut queue = weir_types::endpoint_list(addrs);
        if queue.is_empty() {
            return Err(ClientError::Unreachable {
                addr: addrs.to_string(),
                reason: "no job manager address given".into(),
            });
        }
        let mut reasons: Vec<ClientError> = Vec::new();
        let mut i = 0;
        while i < queue.len() && i < 8 {
            let url = queue[i].clone();
            i += 1;
            let client = match Self::connect_one(&url, addrs).await {
                Ok(c) => c,
                Err(e) => {
                    reasons.push(e);
                    continue;
                }
            };
            // A frozen job manager accepts connections but answers nothing: bounded.
            let mut inner = client.inner.clone();
            let probe = inner.cluster_info(pb::ClusterInfoRequest {});
            let answer = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                Ok(a) => a,
                Err(_) => {
                    reasons.push(ClientError::Unreachable {
                        addr: url.clone(),
                        reason: format!("no answer within {PROBE_TIMEOUT:?}"),
                    });
                    continue;
                }
            };
            match answer {
                Ok(_) => return Ok(client),
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    reasons.push(ClientError::Unreachable {
                        addr: url.clone(),
                        reason: s.message().to_string(),
                    });
                    let leader = s
                        .metadata()
                        .get("weir-leader")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    if let Some(leader) = leader {
                        if !queue.contains(&leader) {
                            queue.push(leader);
                        }
                    }
                }
                Err(s) => return Err(s.into()),
            }
        }
        if reasons.len() == 1 {
            return Err(reasons.remove(0));
        }
        let reasons: Vec<String> = reasons.iter().map(|e| e.to_string()).collect();
        Err(ClientError::NoLeader(reasons.join("; ")))
    }

    async fn connect_one(url: &str, addrs: &str) -> Result<Self> {
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: url.to_string(),
            reason,
        };
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(Duration::from_secs(3));
        let channel = endpoint.connect().await.map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            unreachable(msg)
        })?;
        Ok(Self {
            inner: JobManagerServiceClient::new(channel),
            addrs: addrs.to_string(),
        })
    }

    pub async fn submit(&self, spec: &JobSpec, restore_from: Option<&str>) -> Result<String> {
        self.submit_json(&spec.to_json(), restore_from).await
    }

    /// Submits a job in its JSON form (validated by the job manager).
    pub async fn submit_json(&self, job_json: &str, restore_from: Option<&str>) -> Result<String> {
        let r = self
            .inner
            .clone()
            .submit_job(pb::SubmitJobRequest {
                job_json: job_json.to_string(),
                restore_from: restore_from.unwrap_or_default().to_string(),
            })
            .await?;
        Ok(r.into_inner().job_id)
    }

    pub async fn list(&self) -> Result<Vec<JobSummary>> {
        self.inner
            .clone()
            .list_jobs(pb::ListJobsRequest {})
            .await?
            .into_inner()
            .jobs
            .into_iter()
            .map(JobSummary::try_from)
            .collect()
    }

    pub async fn status(&self, job_id: &str) -> Result<JobStatus> {
        self.inner
            .clone()
            .get_job_status(pb::GetJobStatusRequest {
                job_id: job_id.to_string(),
            })
            .await?
            .into_inner()
            .try_into()
    }

    pub async fn cancel(&self, job_id: &str) -> Result<()> {
        self.inner
            .clone()
            .cancel_job(pb::CancelJobRequest {
                job_id: job_id.to_string(),
            })
            .await?;
        Ok(())
    }

    /// Takes a savepoint; returns its folder and id. With `stop`, the job then finishes.
    pub async fn savepoint(
        &self,
        job_id: &str,
        target_dir: Option<&str>,
        stop: bool,
    ) -> Result<(String, u64)> {
        let r = self
            .inner
            .clone()
            .trigger_savepoint(pb::TriggerSavepointRequest {
                job_id: job_id.to_string(),
                target_dir: target_dir.unwrap_or_default().to_string(),
                stop,
            })
            .await?
            .into_inner();
        Ok((r.location, r.checkpoint_id))
    }

    pub async fn cluster(&self) -> Result<Vec<TaskManagerInfo>> {
        Ok(self
            .inner
            .clone()
            .cluster_info(pb::ClusterInfoRequest {})
            .await?
            .into_inner()
            .task_managers
            .into_iter()
            .map(TaskManagerInfo::from)
            .collect())
    }

    /// Polls until the job reaches a terminal state (or the timeout passes).
    /// Polls the job's status until it ends. Through a failover (the job manager gone or
    /// standing by) it finds the leader again among the addresses it was given, for up to
    /// [`FAILOVER_PATIENCE`] without an answer.
    pub async fn wait(&self, job_id: &str, timeout: Option<Duration>) -> Result<JobStatus> {
        let start = std::time::Instant::now();
        let mut client = self.clone();
        let mut unanswered: Option<std::time::Instant> = None;
        loop {
            match client.status(job_id).await {
                Ok(s) if s.state.is_terminal() => return Ok(s),
                Ok(_) => unanswered = None,
                Err(e @ (ClientError::Unreachable { .. } | ClientError::NoLeader(_))) => {
                    let since = *unanswered.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > FAILOVER_PATIENCE {
                        return Err(e);
                    }
                    if let Ok(c) = Client::connect(&self.addrs).await {
                        client = c;
                    }
                }
                Err(e) => return Err(e),
            }
            if let Some(t) = timeout {
                if start.elapsed() > t {
                    return Err(ClientError::Timeout(t));
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
