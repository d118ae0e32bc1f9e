//! Errors of the public API, and their one mapping onto gRPC status codes.

use crate::raft_types::ApplyError;
use crate::watch::TooOld;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// A resourceVersion precondition failed.
    #[error("{0}")]
    Conflict(String),
    /// No quorum, no leader, or the node is shutting down.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    TooOld(String),
    /// The request is valid but the object is not in a state to serve it.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Internal(String),
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::NotFound(m) => ApiError::NotFound(m),
            ApplyError::AlreadyExists(m) => ApiError::AlreadyExists(m),
            ApplyError::Conflict(m) => ApiError::Conflict(m),
            ApplyError::Invalid(m) => ApiError::InvalidArgument(m),
        }
    }
}

impl From<TooOld> for ApiError {
    fn from(e: TooOld) -> Self {
        ApiError::TooOld(e.to_string())
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            ApiError::NotFound(m) => tonic::Status::not_found(m),
            ApiError::AlreadyExists(m) => tonic::Status::already_exists(m),
            ApiError::Conflict(m) => tonic::Status::aborted(m),
            ApiError::Unavailable(m) => tonic::Status::unavailable(m),
            ApiError::TooOld(m) | ApiError::FailedPrecondition(m) => {
                tonic::Status::failed_precondition(m)
            }
            ApiError::Internal(m) => tonic::Status::internal(m),
        }
    }
}
