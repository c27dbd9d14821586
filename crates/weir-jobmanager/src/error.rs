//! The job manager's errors, and how they reach a gRPC caller.

#[derive(Debug, thiserror::Error)]
pub enum JmError {
    /// The request is wrong: bad job, unknown id, impossible resources.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("job {0} not found")]
    NotFound(String),
    /// The cluster cannot do it now (not enough slots, checkpoint storage unwritable).
    #[error("{0}")]
    Unavailable(String),
    #[error("storage: {0}")]
    Storage(#[from] weir_storage::StorageError),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<JmError> for tonic::Status {
    fn from(e: JmError) -> Self {
        match e {
            JmError::InvalidRequest(m) => tonic::Status::invalid_argument(m),
            JmError::NotFound(m) => tonic::Status::not_found(format!("job {m} not found")),
            JmError::Unavailable(m) => tonic::Status::failed_precondition(m),
            other => tonic::Status::internal(other.to_string()),
        }
    }
}

pub type Result<T, E = JmError> = std::result::Result<T, E>;
