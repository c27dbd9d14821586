//! The runtime's errors.

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The job as written cannot run: unknown column, bad expression, wrong types.
    #[error("{0}")]
    Plan(String),
    /// Reading or writing data failed (external system, storage).
    #[error("storage: {0}")]
    Storage(#[from] weir_storage::StorageError),
    #[error("state: {0}")]
    State(#[from] weir_state::StateError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("expression: {0}")]
    Expr(String),
    /// Talking to an external system (a database, a broker) failed.
    #[error("{0}")]
    Connector(String),
    /// Bad records or files in the input.
    #[error("bad input: {0}")]
    Input(String),
    /// A channel to another subtask closed without end-of-stream: that subtask failed.
    #[error("channel closed: {0}")]
    ChannelClosed(String),
    /// A bug: an invariant of the runtime did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RuntimeError {
    /// Whether running the same job on the same input again would fail the same way: bad
    /// data, a job or expression that cannot run, a corrupt snapshot. The job manager fails
    /// the job at once on such an error instead of restarting it (a restart replays the same
    /// input from the same checkpoint). Lost peers, storage and external systems are
    /// transient: worth a restart.
    pub fn is_deterministic(&self) -> bool {
        match self {
            RuntimeError::Plan(_)
            | RuntimeError::State(_)
            | RuntimeError::Arrow(_)
            | RuntimeError::Expr(_)
            | RuntimeError::Input(_) => true,
            RuntimeError::Storage(_)
            | RuntimeError::Connector(_)
            | RuntimeError::ChannelClosed(_)
            | RuntimeError::Internal(_) => false,
        }
    }
}

impl From<weir_planner::PlanError> for RuntimeError {
    fn from(e: weir_planner::PlanError) -> Self {
        match e {
            weir_planner::PlanError::Invalid(m) => RuntimeError::Plan(m),
            weir_planner::PlanError::Expr(m) => RuntimeError::Expr(m),
            weir_planner::PlanError::Arrow(e) => RuntimeError::Arrow(e),
            weir_planner::PlanError::Internal(m) => RuntimeError::Internal(m),
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
