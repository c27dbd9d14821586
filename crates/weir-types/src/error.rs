//! Errors of the job model: all of them are the user's input being wrong.

/// What is wrong with a job specification. Every variant is a user error (external), never a bug.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TypesError {
    #[error("malformed job JSON: {0}")]
    Json(String),
    #[error("invalid job: {0}")]
    Invalid(String),
}

pub type Result<T, E = TypesError> = std::result::Result<T, E>;
