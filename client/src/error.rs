//! SDK errors, one per kind of failure a caller may handle differently.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The object changed since the resourceVersion the request named.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    /// A watch asked for history the server no longer has: list again.
    #[error("too old: {0}")]
    TooOld(String),
    /// Nothing answered, or the cluster had no quorum; a write that failed so was not
    /// applied.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A write whose outcome is not known: it reached a leader and may have been applied.
    /// It is not retried (a retry could apply it twice); read the object to find out.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("cannot decode the server's answer: {0}")]
    Decode(String),
    /// No credential, or one the cluster does not accept (made up, expired, removed).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The caller is known but may not do this; the message is Kubernetes' wording.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{code}: {message}")]
    Other { code: String, message: String },
}

impl Error {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists(_))
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    pub fn is_invalid(&self) -> bool {
        matches!(self, Error::Invalid(_))
    }

    pub fn is_too_old(&self) -> bool {
        matches!(self, Error::TooOld(_))
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Error::Unknown(_))
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }

    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Unauthorized(_))
    }

    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::Forbidden(_))
    }
}

/// Status codes worth trying on another endpoint: the node is down, unreachable or has
/// no quorum right now. Transport failures surface as Unavailable or Unknown, and a
/// connection torn down mid-call as Cancelled.
pub(crate) fn is_retriable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::NotFound => Error::NotFound(message),
            tonic::Code::AlreadyExists => Error::AlreadyExists(message),
            tonic::Code::Aborted => Error::Conflict(message),
            tonic::Code::InvalidArgument => Error::Invalid(message),
            tonic::Code::FailedPrecondition if message.contains("too old") => {
                Error::TooOld(message)
            }
            tonic::Code::Unavailable => Error::Unavailable(message),
            tonic::Code::DeadlineExceeded => Error::Timeout(message),
            tonic::Code::Unauthenticated => Error::Unauthorized(message),
            tonic::Code::PermissionDenied => Error::Forbidden(message),
            // The server refused the request by its length before reading it (tonic's
            // own wording, which names the size and the limit).
            tonic::Code::OutOfRange if message.contains("decoded message length too large") => {
                let detail = message
                    .split_once("too large: ")
                    .map_or(message.as_str(), |(_, detail)| detail);
                Error::Invalid(format!(
                    "request too large: {detail} (the server's --max-request-bytes)"
                ))
            }
            code => Error::Other {
                code: format!("{code:?}"),
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;

    #[test]
    fn a_request_over_the_servers_cap_is_invalid_naming_the_size_and_the_limit() {
        let status = Status::out_of_range(
            "Error, decoded message length too large: found 10485873 bytes, the limit is: 3145728 bytes",
        );
        assert_eq!(
            Error::from(status).to_string(),
            "invalid: request too large: found 10485873 bytes, the limit is: 3145728 bytes (the server's --max-request-bytes)"
        );
    }

    #[test]
    fn maps_status_codes() {
        assert_eq!(
            Error::from(Status::not_found("pods \"x\" not found")),
            Error::NotFound("pods \"x\" not found".into())
        );
        assert!(Error::from(Status::aborted("modified")).is_conflict());
        assert!(Error::from(Status::already_exists("x")).is_already_exists());
        assert!(Error::from(Status::unavailable("no quorum")).is_unavailable());
        assert!(matches!(
            Error::from(Status::invalid_argument("metadata.name")),
            Error::Invalid(_)
        ));
        assert!(matches!(
            Error::from(Status::failed_precondition("resource version too old: 3")),
            Error::TooOld(_)
        ));
        assert!(matches!(
            Error::from(Status::failed_precondition("other")),
            Error::Other { .. }
        ));
        assert!(matches!(
            Error::from(Status::new(Code::Internal, "boom")),
            Error::Other { .. }
        ));
    }

    #[test]
    fn unavailable_is_retried_and_definite_answers_are_not() {
        assert!(is_retriable(&Status::unavailable("down")));
        assert!(!is_retriable(&Status::not_found("x")));
        assert!(!is_retriable(&Status::aborted("x")));
    }
}
