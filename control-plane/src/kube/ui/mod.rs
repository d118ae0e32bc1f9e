//! The web console under `/ui/` on the Kubernetes API port: one page, one script and one
//! style sheet, built into the binary. Only these three files are served without a
//! credential; the script asks the Kubernetes API itself for every piece of data, with the
//! bearer token the user signed in with, so the console can show and do exactly what that
//! token may (reads, watches, deleting pods, scaling, cordoning).
//!
//! The one thing the Kubernetes API has no resource for is the Raft group, so
//! `/ui/api/cluster` serves the `skiff cluster status` figures as JSON, authenticated like any
//! request and authorized as `skiff cluster status` is.
//!
//! Security: a strict Content-Security-Policy (scripts and styles from this origin only, no
//! inline script, fetches to this origin only, no framing), `X-Frame-Options: DENY`, and the
//! script builds the page with `textContent`, never HTML from data.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use skiff_api::proto::ClusterStatusResponse;
use skiff_pki::{Attributes, NodeTarget, Subject, Verb};

use super::KubeState;
use super::status::KubeError;
use crate::server::auth::check;
use crate::server::cluster::ClusterServer;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// Where the console lives.
pub const PREFIX: &str = "/ui";

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The console's own files (the page, its script and style), served before authentication;
/// `None` for every other path, including the console's data endpoint.
pub fn public(method: &Method, uri: &Uri) -> Option<Response> {
    let path = uri.path();
    if path != PREFIX && !path.starts_with("/ui/") {
        return None;
    }
    if path.starts_with("/ui/api/") {
        return None;
    }
    if *method != Method::GET && *method != Method::HEAD {
        return Some(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the console's files are only read",
        ));
    }
    let (content_type, body) = match path {
        // The page's relative links need the trailing slash.
        "/ui" => {
            return Some(
                (
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, "/ui/")],
                    "",
                )
                    .into_response(),
            );
        }
        "/ui/" | "/ui/index.html" => ("text/html; charset=utf-8", INDEX),
        "/ui/app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/ui/app.css" => ("text/css; charset=utf-8", STYLE),
        _ => return Some(plain(StatusCode::NOT_FOUND, "no such console page")),
    };
    Some(hardened(
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response(),
    ))
}

/// The console's data endpoint (`/ui/api/cluster`) for an authenticated `subject`; `None`
/// for a path outside `/ui/api/`.
pub async fn data(
    state: &KubeState,
    subject: &Subject,
    method: &Method,
    segments: &[&str],
) -> Option<Result<Response, KubeError>> {
    let rest = match segments {
        ["ui", "api", rest @ ..] => rest,
        _ => return None,
    };
    Some(match (method, rest) {
        (&Method::GET, ["cluster"]) => cluster(state, subject).await,
        (&Method::GET, _) => Err(KubeError::NotFound(format!(
            "the console has no data at /ui/api/{}",
            rest.join("/")
        ))),
        _ => Err(KubeError::MethodNotAllowed(format!(
            "{method} is not allowed on the console's data"
        ))),
    })
}

async fn cluster(state: &KubeState, subject: &Subject) -> Result<Response, KubeError> {
    check(subject, &Attributes::new(Verb::Get, "members"), || {
        Ok(NodeTarget::None)
    })?;
    let server = ClusterServer {
        node: state.objects.node.clone(),
        gate: state.gate.clone(),
    };
    let status = server.status().await;
    let body = cluster_json(&status);
    Ok(hardened(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
    ))
}

/// The Raft group as the console shows it: each member's state, term, applied and last log
/// index, and its lag (how many entries its applied index trails the leader's log).
fn cluster_json(status: &ClusterStatusResponse) -> Value {
    let leader_log = status
        .leader_id
        .and_then(|id| status.members.iter().find(|m| m.id == id && m.healthy))
        .map(|m| m.last_log_index);
    let members: Vec<Value> = status
        .members
        .iter()
        .map(|m| {
            let lag = match (leader_log, m.healthy) {
                (Some(log), true) => json!(log.saturating_sub(m.last_applied)),
                _ => Value::Null,
            };
            json!({
                "id": m.id,
                "address": m.address,
                "voter": m.voter,
                "healthy": m.healthy,
                "state": m.state,
                "term": m.term,
                "applied": m.last_applied,
                "lastLogIndex": m.last_log_index,
                "lag": lag,
                "leader": Some(m.id) == status.leader_id,
                "error": m.error,
            })
        })
        .collect();
    json!({
        "answeredBy": status.node_id,
        "leader": status.leader_id,
        "term": status.term,
        "applied": status.last_applied,
        "members": members,
    })
}

fn plain(code: StatusCode, text: &'static str) -> Response {
    hardened(
        (
            code,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response(),
    )
}

/// The headers every console response carries.
fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // The page holds no data, but a token may be in its URL's fragment: keep nothing.
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::proto::Member;

    fn get(path: &str) -> Option<Response> {
        public(&Method::GET, &path.parse().unwrap())
    }

    #[test]
    fn the_page_script_and_style_are_served_with_a_strict_policy() {
        for path in ["/ui/", "/ui/app.js", "/ui/app.css"] {
            let response = get(path).unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
            assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        }
        assert_eq!(get("/ui").unwrap().status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(get("/ui/x.js").unwrap().status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn data_and_the_kubernetes_api_are_not_public() {
        assert!(get("/ui/api/cluster").is_none());
        assert!(get("/api/v1/pods").is_none());
        assert!(get("/uix").is_none());
        let post = public(&Method::POST, &"/ui/".parse().unwrap()).unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_page_has_no_inline_script() {
        assert!(!INDEX.contains("<script>"));
        assert!(INDEX.contains(r#"<script src="app.js""#));
        assert!(!INDEX.contains("style="));
    }

    #[test]
    fn lag_is_how_far_a_members_applied_index_trails_the_leaders_log() {
        let member = |id, applied, log, healthy| Member {
            id,
            healthy,
            last_applied: applied,
            last_log_index: log,
            ..Member::default()
        };
        let status = ClusterStatusResponse {
            node_id: 2,
            leader_id: Some(1),
            term: 3,
            last_applied: 90,
            members: vec![
                member(1, 100, 100, true),
                member(2, 90, 100, true),
                member(3, 0, 0, false),
            ],
        };
        let json = cluster_json(&status);
        assert_eq!(json["members"][0]["lag"], 0);
        assert_eq!(json["members"][0]["leader"], true);
        assert_eq!(json["members"][1]["lag"], 10);
        assert_eq!(json["members"][2]["lag"], Value::Null);
    }
}
