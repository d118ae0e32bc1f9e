//! Errors of the public API, and their one mapping onto gRPC status codes.

use skiff_api::outcome;

use crate::raft_types::ApplyError;
use crate::store::watch::TooOld;

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
    /// No quorum, no leader, or the node is shutting down; a write that fails so was not
    /// applied.
    #[error("{0}")]
    Unavailable(String),
    /// A write that reached a leader and whose outcome is not known: it may have been
    /// applied.
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    TooOld(String),
    /// An admission policy refuses the request (Pod Security): PERMISSION_DENIED, as
    /// Kubernetes answers 403 Forbidden.
    #[error("{0}")]
    Forbidden(String),
    /// A per-client limit is reached (watches on one connection, event rate).
    #[error("{0}")]
    ResourceExhausted(String),
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
            ApplyError::Forbidden(m) => ApiError::Forbidden(m),
        }
    }
}

impl From<crate::pod_security::Forbidden> for ApiError {
    fn from(e: crate::pod_security::Forbidden) -> Self {
        ApiError::Forbidden(e.to_string())
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
            ApiError::Unavailable(m) => {
                outcome::mark(tonic::Status::unavailable(m), outcome::NOT_APPLIED)
            }
            ApiError::Unknown(m) => outcome::mark(
                tonic::Status::unavailable(format!(
                    "{m} (the write may or may not have been applied)"
                )),
                outcome::UNKNOWN,
            ),
            ApiError::TooOld(m) | ApiError::FailedPrecondition(m) => {
                tonic::Status::failed_precondition(m)
            }
            ApiError::Forbidden(m) => tonic::Status::permission_denied(m),
            ApiError::ResourceExhausted(m) => tonic::Status::resource_exhausted(m),
            ApiError::Internal(m) => tonic::Status::internal(m),
        }
    }
}
