//! The planner's errors.

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The job as written cannot run: unknown column, bad expression, wrong types, a part
    /// this build lacks.
    #[error("{0}")]
    Invalid(String),
    /// Evaluating a compiled expression failed.
    #[error("expression: {0}")]
    Expr(String),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A bug: an invariant of the planner did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<datafusion::error::DataFusionError> for PlanError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        PlanError::Expr(e.to_string())
    }
}

pub type Result<T, E = PlanError> = std::result::Result<T, E>;
