//! Errors as Kubernetes answers them: a `metav1.Status` body with the HTTP code and reason
//! kubectl reads (`Error from server (NotFound): pods "x" not found`, `The Pod "x" is
//! invalid: …`). The gRPC layer's codes map onto them one way, here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use skiff_api::Kind;
use tonic::Code;

/// How long a client waits before retrying a request refused for want of a quorum or over
/// a limit (Kubernetes' apiserver answers 1 s too).
const RETRY_AFTER_SECONDS: u64 = 1;

/// A request the kube layer itself refuses, before it reaches the object API.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KubeError {
    /// A malformed request: a bad query parameter, body or path/body mismatch.
    #[error("{0}")]
    BadRequest(String),
    /// No credential, or one that does not authenticate.
    #[error("{0}")]
    Unauthorized(String),
    /// A path this server does not serve.
    #[error("{0}")]
    NotFound(String),
    /// A path served, but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A body over the member's --max-request-bytes.
    #[error("{0}")]
    TooLarge(String),
    /// A body in a format, or of a kind, this server does not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The object API refused or failed the request: its gRPC status, and what the request
    /// was about (for the Status' details).
    #[error("{}", .status.message())]
    Api {
        status: tonic::Status,
        kind: Option<Kind>,
        name: String,
    },
}

impl KubeError {
    /// The object API's refusal of a request about `kind` `name`.
    pub fn api(status: tonic::Status, kind: Kind, name: &str) -> KubeError {
        KubeError::Api {
            status,
            kind: Some(kind),
            name: name.to_string(),
        }
    }
}

impl From<tonic::Status> for KubeError {
    fn from(status: tonic::Status) -> Self {
        match status.code() {
            // Kubernetes says only this, whatever failed: a caller learns nothing more.
            Code::Unauthenticated => KubeError::Unauthorized(status.message().to_string()),
            _ => KubeError::Api {
                status,
                kind: None,
                name: String::new(),
            },
        }
    }
}

/// A `metav1.Status` failure with its HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: bool,
}

impl Failure {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: false,
        }
    }

    pub fn body(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.code, axum::Json(self.body())).into_response();
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

impl From<&KubeError> for Failure {
    fn from(e: &KubeError) -> Failure {
        match e {
            KubeError::BadRequest(m) => Failure::new(StatusCode::BAD_REQUEST, "BadRequest", m),
            // The cause stays in the member's log: Kubernetes tells the client only this.
            KubeError::Unauthorized(_) => {
                Failure::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
            }
            KubeError::NotFound(m) => Failure::new(StatusCode::NOT_FOUND, "NotFound", m),
            KubeError::MethodNotAllowed(m) => {
                Failure::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", m)
            }
            KubeError::TooLarge(m) => {
                Failure::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", m)
            }
            KubeError::UnsupportedMediaType(m) => Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                m,
            ),
            KubeError::Api { status, kind, name } => from_status(status, *kind, name),
        }
    }
}

impl IntoResponse for KubeError {
    fn into_response(self) -> Response {
        if let KubeError::Unauthorized(why) = &self {
            tracing::debug!("kube api: unauthorized: {why}");
        }
        Failure::from(&self).into_response()
    }
}

/// The Status for the object API's `status`, about `kind` `name` when known.
fn from_status(status: &tonic::Status, kind: Option<Kind>, name: &str) -> Failure {
    let message = status.message();
    let details =
        |name: &str| kind.map(|k| json!({ "name": name, "kind": k.plural(), "group": k.group() }));
    let mut failure = match status.code() {
        Code::NotFound => Failure::new(StatusCode::NOT_FOUND, "NotFound", message),
        Code::AlreadyExists => Failure::new(StatusCode::CONFLICT, "AlreadyExists", message),
        Code::Aborted => Failure::new(StatusCode::CONFLICT, "Conflict", message),
        Code::PermissionDenied => Failure::new(StatusCode::FORBIDDEN, "Forbidden", message),
        Code::Unauthenticated => Failure::new(StatusCode::UNAUTHORIZED, "Unauthorized", message),
        Code::InvalidArgument => match (kind, field_errors(message)) {
            (Some(kind), Some(causes)) => return invalid(kind, name, message, causes),
            _ => Failure::new(StatusCode::BAD_REQUEST, "BadRequest", message),
        },
        // The watch history or a continue token no longer reaches back that far.
        Code::FailedPrecondition if message.contains("too old") => {
            Failure::new(StatusCode::GONE, "Expired", message)
        }
        Code::FailedPrecondition => Failure::new(StatusCode::BAD_REQUEST, "BadRequest", message),
        Code::Unavailable => Failure {
            retry_after: true,
            ..Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                message,
            )
        },
        Code::ResourceExhausted => Failure {
            retry_after: true,
            ..Failure::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message)
        },
        Code::DeadlineExceeded => Failure::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", message),
        _ => Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message),
    };
    if !name.is_empty() {
        failure.details = details(name);
    }
    if let (Code::PermissionDenied, Some(namespace)) = (status.code(), terminating(message))
        && let Some(details) = failure.details.as_mut()
    {
        // What clients (kubectl, client-go's IsNamespaceTerminating) recognise it by.
        details["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {namespace} is being terminated"),
            "field": "metadata.namespace",
        }]);
    }
    failure
}

/// The namespace a NamespaceLifecycle refusal names (`… unable to create new content in
/// namespace NS because it is being terminated`).
fn terminating(message: &str) -> Option<&str> {
    message
        .strip_suffix(" because it is being terminated")?
        .rsplit_once("unable to create new content in namespace ")
        .map(|(_, namespace)| namespace)
}

/// 422 Invalid, as apierrors.NewInvalid: `Pod "x" is invalid: <errors>`, each error a cause
/// naming its field, which kubectl prints as `The Pod "x" is invalid: <field>: <message>`.
fn invalid(kind: Kind, name: &str, message: &str, causes: Vec<Value>) -> Failure {
    let qualified = match kind.group() {
        "" => kind.as_str().to_string(),
        group => format!("{}.{group}", kind.as_str()),
    };
    Failure {
        details: Some(json!({
            "name": name,
            "group": kind.group(),
            "kind": qualified,
            "causes": causes,
        })),
        ..Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{qualified} {name:?} is invalid: {message}"),
        )
    }
}

/// The field errors in a validation message (`path: Invalid value: …; path: Required
/// value`, the api crate's `ValidationError` and field.Error's wording), each a
/// `metav1.StatusCause`. `None` when the message is not made of field errors.
fn field_errors(message: &str) -> Option<Vec<Value>> {
    // field.ErrorType's words, and the StatusCause reason each stands for.
    const TYPES: [(&str, &str); 8] = [
        ("Invalid value", "FieldValueInvalid"),
        ("Required value", "FieldValueRequired"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Forbidden", "FieldValueForbidden"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Not found", "FieldValueNotFound"),
    ];
    message
        .split("; ")
        .map(|error| {
            let (field, text) = error.split_once(": ")?;
            if field.is_empty() || field.contains(char::is_whitespace) {
                return None;
            }
            let (_, reason) = TYPES.iter().find(|(words, _)| text.starts_with(words))?;
            Some(json!({ "reason": reason, "message": text, "field": field }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validation_message_becomes_422_invalid_with_a_cause_per_field() {
        let status = tonic::Status::invalid_argument(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain; spec.containers: Required value",
        );
        let failure = Failure::from(&KubeError::api(status, Kind::Pod, "Bad_Name"));
        assert_eq!(failure.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(failure.reason, "Invalid");
        assert!(
            failure
                .message
                .starts_with("Pod \"Bad_Name\" is invalid: metadata.name")
        );
        let details = failure.details.unwrap();
        assert_eq!(details["kind"], "Pod");
        assert_eq!(details["causes"][0]["field"], "metadata.name");
        assert_eq!(details["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(
            details["causes"][0]["message"],
            "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        );
        assert_eq!(details["causes"][1]["field"], "spec.containers");
        assert_eq!(details["causes"][1]["reason"], "FieldValueRequired");
    }

    #[test]
    fn a_create_in_a_terminating_namespace_is_403_forbidden_with_a_namespace_terminating_cause() {
        let message = crate::store::objects::terminating_refusal(Kind::Pod, "x", "team-a");
        let status = tonic::Status::permission_denied(message.clone());
        let failure = Failure::from(&KubeError::api(status, Kind::Pod, "x"));
        assert_eq!(
            (failure.code, failure.reason),
            (StatusCode::FORBIDDEN, "Forbidden")
        );
        assert_eq!(
            failure.message,
            "pods \"x\" is forbidden: unable to create new content in namespace team-a \
             because it is being terminated"
        );
        let cause = &failure.details.unwrap()["causes"][0];
        assert_eq!(cause["reason"], "NamespaceTerminating");
        assert_eq!(cause["message"], "namespace team-a is being terminated");
        assert_eq!(cause["field"], "metadata.namespace");
        // Other refusals carry no such cause.
        let other = tonic::Status::permission_denied("pods \"x\" is forbidden: User \"v\" cannot");
        let failure = Failure::from(&KubeError::api(other, Kind::Pod, "x"));
        assert!(failure.details.unwrap().get("causes").is_none());
    }

    #[test]
    fn an_invalid_argument_that_names_no_field_is_400_bad_request() {
        let status = tonic::Status::invalid_argument("field selector: field label not supported");
        let failure = Failure::from(&KubeError::api(status, Kind::Pod, ""));
        assert_eq!(failure.code, StatusCode::BAD_REQUEST);
        assert_eq!(failure.reason, "BadRequest");
    }

    #[test]
    fn grpc_codes_map_to_kubernetes_codes_and_reasons() {
        let cases = [
            (
                tonic::Status::not_found("pods \"x\" not found"),
                404,
                "NotFound",
            ),
            (
                tonic::Status::already_exists("exists"),
                409,
                "AlreadyExists",
            ),
            (tonic::Status::aborted("changed"), 409, "Conflict"),
            (tonic::Status::permission_denied("no"), 403, "Forbidden"),
            (
                tonic::Status::unavailable("no quorum"),
                503,
                "ServiceUnavailable",
            ),
            (
                tonic::Status::resource_exhausted("slow down"),
                429,
                "TooManyRequests",
            ),
            (
                tonic::Status::failed_precondition("resource version too old"),
                410,
                "Expired",
            ),
            (tonic::Status::internal("boom"), 500, "InternalError"),
        ];
        for (status, code, reason) in cases {
            let failure = Failure::from(&KubeError::api(status, Kind::Pod, "x"));
            assert_eq!((failure.code.as_u16(), failure.reason), (code, reason));
            assert_eq!(failure.body()["code"], code);
            assert_eq!(failure.body()["details"]["name"], "x");
        }
    }

    #[test]
    fn no_quorum_tells_the_client_when_to_retry() {
        let response = KubeError::from(tonic::Status::unavailable("no leader")).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn an_unauthenticated_caller_learns_only_unauthorized() {
        let e = KubeError::from(tonic::Status::unauthenticated("invalid bearer token"));
        let failure = Failure::from(&e);
        assert_eq!(failure.code, StatusCode::UNAUTHORIZED);
        assert_eq!(failure.message, "Unauthorized");
    }
}
