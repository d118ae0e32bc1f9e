//! How `skiff` words a failure, as kubectl does: the server's answers it words itself
//! (`Error from server (NotFound): …`) as they are, everything else after `error: `.

use skiff_client::Error;

/// kubectl's words for the server turning the caller away: `Error from server (Forbidden):
/// …` for what its role does not allow, `You must be logged in to the server
/// (Unauthorized): …` for a credential the cluster does not accept. None for other errors.
pub fn refusal(error: &Error) -> Option<String> {
    match error {
        Error::Forbidden(m) => Some(format!("Error from server (Forbidden): {m}")),
        Error::Unauthorized(m) => Some(format!(
            "You must be logged in to the server (Unauthorized): {m}"
        )),
        _ => None,
    }
}

/// The reason kubectl shows for a server's answer that has no kind of its own in the SDK
/// (the HTTP status Kubernetes would have sent): never the gRPC code's name.
fn reason(code: &str) -> &'static str {
    match code {
        "FailedPrecondition" | "OutOfRange" => "BadRequest",
        "ResourceExhausted" => "TooManyRequests",
        "Unimplemented" => "MethodNotAllowed",
        "Cancelled" => "Timeout",
        _ => "InternalError",
    }
}

/// An SDK error as the verbs' errors show it: the server's answers in kubectl's `Error from
/// server (Reason): …` form (its [`refusal`]s in their own words); what never reached a
/// server (or left its answer unknown) as the SDK says it (`unavailable: …`).
pub fn api_message(error: &Error) -> String {
    match error {
        Error::NotFound(m) => format!("Error from server (NotFound): {m}"),
        Error::AlreadyExists(m) => format!("Error from server (AlreadyExists): {m}"),
        Error::Conflict(m) => format!("Error from server (Conflict): {m}"),
        Error::Invalid(m) => format!("Error from server (Invalid): {m}"),
        Error::TooOld(m) => format!("Error from server (Expired): {m}"),
        Error::Other { code, message } => {
            format!("Error from server ({}): {message}", reason(code))
        }
        other => refusal(other).unwrap_or_else(|| other.to_string()),
    }
}

/// The line `skiff` prints on standard error for a failure: kubectl's server errors as they
/// are, anything else after `error: `.
pub fn stderr_line(message: &str) -> String {
    if message.starts_with("Error from server") {
        message.to_string()
    } else {
        format!("error: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_like_kubectls() {
        let cases = [
            (
                Error::NotFound("pods \"x\" not found".into()),
                "Error from server (NotFound): pods \"x\" not found",
            ),
            (
                Error::Forbidden("no".into()),
                "Error from server (Forbidden): no",
            ),
            (
                Error::Unauthorized("bad token".into()),
                "error: You must be logged in to the server (Unauthorized): bad token",
            ),
            (
                Error::Unavailable("no quorum".into()),
                "error: unavailable: no quorum",
            ),
            (
                Error::Other {
                    code: "FailedPrecondition".into(),
                    message: "pod web is not scheduled to a node yet".into(),
                },
                "Error from server (BadRequest): pod web is not scheduled to a node yet",
            ),
            (
                Error::Other {
                    code: "Internal".into(),
                    message: "boom".into(),
                },
                "Error from server (InternalError): boom",
            ),
        ];
        for (error, line) in cases {
            assert_eq!(stderr_line(&api_message(&error)), line);
        }
        assert_eq!(refusal(&Error::NotFound("x".into())), None);
    }
}
