//! The resources served, and their REST verbs: each maps onto the object API's own
//! functions (server/objects.rs), so validation, authorization, admission and forwarding
//! are the gRPC API's, never a copy.
//!
//! A verb or subresource not yet served is absent from [`RESOURCES`], so discovery does
//! not claim it and kubectl says so instead of failing half-way; adding one is a table
//! entry and a match arm here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use serde_json::Value;
use skiff_api::Kind;
use skiff_api::proto::{
    CreateRequest, DeleteRequest, GetRequest, ListRequest, UpdateRequest, WatchEvent, WatchRequest,
};
use skiff_pki::Subject;

use super::apply::{WriteOptions, check_fields, respond};
use super::status::{Failure, KubeError};
use super::{KubeState, table};
use crate::raft_types::UpdatePart;
use crate::server::objects::Propagation;

/// One resource: its kind (which gives its group, plural, short name and scope), the verbs
/// served on it, and its subresources with theirs.
pub struct Resource {
    pub kind: Kind,
    pub verbs: &'static [&'static str],
    pub subresources: &'static [(&'static str, &'static [&'static str])],
}

const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

pub const RESOURCES: [Resource; 5] = [
    Resource {
        kind: Kind::Namespace,
        verbs: VERBS,
        subresources: &[],
    },
    Resource {
        kind: Kind::Pod,
        verbs: VERBS,
        subresources: &[
            ("status", &["get", "patch", "update"]),
            ("log", &["get"]),
            ("exec", &["create", "get"]),
            ("eviction", &["create"]),
            ("portforward", &["create", "get"]),
        ],
    },
    Resource {
        kind: Kind::Node,
        verbs: VERBS,
        subresources: &[("status", &["get", "patch", "update"])],
    },
    Resource {
        kind: Kind::Event,
        verbs: VERBS,
        subresources: &[],
    },
    Resource {
        kind: Kind::Deployment,
        verbs: VERBS,
        subresources: &[
            ("scale", &["get", "patch", "update"]),
            ("status", &["get", "patch", "update"]),
        ],
    },
];

/// What a resource path names.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    /// The path's namespace (`…/namespaces/<ns>/…`); `None` for cluster-scoped kinds and
    /// for lists across every namespace.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

fn resource(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.kind.group() == group && version == "v1" && r.kind.plural() == plural)
}

/// The resource path after `/api/v1/` (group "") or `/apis/<group>/<version>/`, split into
/// segments: `plural[/name[/sub]]` or `namespaces/<ns>/plural[/name[/sub]]`. `None`: no
/// such resource here.
pub fn parse_target(group: &str, version: &str, segments: &[&str]) -> Option<Target> {
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let (namespace, rest) = match segments {
        // `namespaces/<ns>/<plural>…` when <plural> is a namespaced resource; otherwise the
        // segments name a namespace object (`namespaces/<name>[/<sub>]`).
        ["namespaces", ns, plural, ..]
            if resource(group, version, plural).is_some_and(|r| r.kind.is_namespaced()) =>
        {
            (Some(ns.to_string()), &segments[2..])
        }
        _ => (None, segments),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    let kind = resource(group, version, plural)?.kind;
    // A namespaced object is only ever named within its namespace.
    if kind.is_namespaced() && namespace.is_none() && name.is_some() {
        return None;
    }
    Some(Target {
        kind,
        namespace,
        name,
        subresource,
    })
}

/// The query parameters of a request (the last value of each).
pub type Params = HashMap<String, String>;

/// Serves one request on a resource path.
/// How a request on a resource path is to be answered.
pub struct Request<'a> {
    pub method: &'a Method,
    pub params: &'a Params,
    /// The client asked for a Table (`kubectl get`).
    pub as_table: bool,
    /// The client's address, for the per-connection watch cap.
    pub remote: Option<SocketAddr>,
    /// The raw request line's target: `command` repeats in exec's query, which `params`
    /// (one value a key) cannot hold.
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// The connection's HTTP/1.1 upgrade, for exec and port-forward (`None` on HTTP/2).
    pub upgrade: Option<OnUpgrade>,
}

pub async fn serve(
    state: &KubeState,
    subject: &Subject,
    request: Request<'_>,
    target: Target,
    body: Bytes,
) -> Result<Response, KubeError> {
    if let (Kind::Pod, Some("portforward"), Some(name)) = (
        target.kind,
        target.subresource.as_deref(),
        target.name.as_deref(),
    ) {
        let namespace = target.namespace.as_deref();
        let (headers, upgrade) = (request.headers, request.upgrade);
        return super::portforward::portforward(state, subject, namespace, name, headers, upgrade)
            .await;
    }
    if super::subresources::handles(&target) {
        return super::subresources::serve(state, subject, request, target, body).await;
    }
    let headers = request.headers;
    let Request {
        method,
        params,
        as_table,
        remote,
        ..
    } = request;
    if params.get("watch").is_some_and(|w| w == "1" || w == "true") {
        if *method != Method::GET || target.subresource.is_some() {
            return Err(KubeError::MethodNotAllowed(format!(
                "watch is a GET of {} or one of them",
                target.kind.plural()
            )));
        }
        return watch(state, subject, &target, params, as_table, remote);
    }
    let served_sub = target.subresource.as_deref().is_none_or(|sub| {
        RESOURCES
            .iter()
            .any(|r| r.kind == target.kind && r.subresources.iter().any(|(s, _)| *s == sub))
    });
    if !served_sub {
        return Err(KubeError::NotFound(format!(
            "the server could not find the requested resource ({}/{})",
            target.kind.plural(),
            target.subresource.as_deref().unwrap_or_default()
        )));
    }
    match (
        method.clone(),
        target.name.clone(),
        target.subresource.as_deref(),
    ) {
        (Method::GET, None, None) => list(state, subject, &target, params, as_table).await,
        (Method::POST, None, None)
            if target.namespace.is_some() || !target.kind.is_namespaced() =>
        {
            create(state, subject, &target, params, body).await
        }
        (Method::GET, Some(name), None | Some("status")) => {
            get(state, subject, &target, &name, params, as_table).await
        }
        (Method::PUT, Some(name), sub) => {
            let part = match sub {
                Some("status") => UpdatePart::Status,
                _ => UpdatePart::Main,
            };
            update(state, subject, &target, &name, part, params, body).await
        }
        (Method::PATCH, Some(name), None | Some("status")) => {
            let part = match target.subresource.as_deref() {
                Some("status") => UpdatePart::Status,
                _ => UpdatePart::Main,
            };
            let write = super::apply::patch;
            write(state, subject, &target, &name, part, params, headers, body).await
        }
        (Method::DELETE, Some(name), None) => {
            delete(state, subject, &target, &name, params, body).await
        }
        (method, _, _) => Err(KubeError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            target.kind.plural()
        ))),
    }
}

/// A JSON response; `bytes` are already JSON (a stored object's encoding).
fn json(code: StatusCode, bytes: impl Into<axum::body::Body>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        bytes.into(),
    )
        .into_response()
}

fn now() -> skiff_api::meta::Time {
    chrono::Utc::now()
}

/// `resourceVersion=0` asks for any version: served from this member without a barrier.
fn stale_ok(params: &Params) -> bool {
    params.get("resourceVersion").is_some_and(|v| v == "0")
}

async fn get(
    state: &KubeState,
    subject: &Subject,
    target: &Target,
    name: &str,
    params: &Params,
    as_table: bool,
) -> Result<Response, KubeError> {
    let include = table::Include::parse(params.get("includeObject").map(String::as_str))?;
    let request = GetRequest {
        kind: target.kind.as_str().into(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: name.into(),
        stale_ok: stale_ok(params),
    };
    let object = state
        .objects
        .do_get(subject, request)
        .await
        .map_err(|e| KubeError::api(e, target.kind, name))?;
    if as_table {
        let table = table::build(
            target.kind,
            &[object],
            serde_json::json!({}),
            include,
            now(),
        )?;
        return Ok(json(StatusCode::OK, table.to_string()));
    }
    Ok(json(StatusCode::OK, object))
}

async fn list(
    state: &KubeState,
    subject: &Subject,
    target: &Target,
    params: &Params,
    as_table: bool,
) -> Result<Response, KubeError> {
    let include = table::Include::parse(params.get("includeObject").map(String::as_str))?;
    let param = |key: &str| params.get(key).cloned().unwrap_or_default();
    let limit = match params.get("limit") {
        None => 0,
        Some(text) => text.parse().map_err(|_| {
            KubeError::BadRequest(format!(
                "limit: Invalid value: {text:?}: must be a non-negative integer"
            ))
        })?,
    };
    let request = ListRequest {
        kind: target.kind.as_str().into(),
        namespace: target.namespace.clone().unwrap_or_default(),
        label_selector: param("labelSelector"),
        field_selector: param("fieldSelector"),
        stale_ok: stale_ok(params),
        limit,
        r#continue: param("continue"),
    };
    let listed = state
        .objects
        .list_page(subject, request)
        .await
        .map_err(|e| KubeError::api(e, target.kind, ""))?;
    let kind = target.kind;
    let mut metadata =
        serde_json::json!({ "resourceVersion": listed.resource_version.to_string() });
    if !listed.r#continue.is_empty() {
        metadata["continue"] = listed.r#continue.into();
    }
    if let Some(remaining) = listed.remaining_item_count {
        metadata["remainingItemCount"] = remaining.into();
    }
    let items: Vec<Arc<[u8]>> = listed.items.iter().map(|o| o.json.clone()).collect();
    drop(listed.items);
    if as_table {
        if !table::rows_stand_alone(kind) {
            let table = table::build(kind, &items, metadata, include, now())?;
            return Ok(json(StatusCode::OK, table.to_string()));
        }
        let now = now();
        let (columns, _) = table::parts(kind, &[] as &[&[u8]], include, now)?;
        let head = format!(
            r#"{{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{metadata},"columnDefinitions":{},"rows":["#,
            Value::Array(columns)
        );
        let body = streamed_list(head.into_bytes(), items, move |part, out| {
            let (_, rows) = table::parts(kind, part, include, now)?;
            for (i, row) in rows.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, row).expect("a value writes to a vec");
            }
            Ok(())
        });
        return Ok(json(StatusCode::OK, body));
    }
    // The items are stored JSON already: the list is written around them, not re-encoded.
    let head = format!(
        r#"{{"kind":"{}List","apiVersion":"{}","metadata":{metadata},"items":["#,
        kind.as_str(),
        kind.api_version(),
    );
    let body = streamed_list(head.into_bytes(), items, |part, out| {
        for (i, item) in part.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item);
        }
        Ok(())
    });
    Ok(json(StatusCode::OK, body))
}

/// Stored bytes of objects per chunk of a streamed list (at least one object a chunk).
const LIST_CHUNK_BYTES: usize = 64 * 1024;

/// A list's body, written a chunk at a time as the client takes it: `head` (which opens the
/// JSON array), `write` of each run of items into a chunk, commas between runs, and `]}`.
/// The member holds the page's shared objects and the chunk being sent, never the whole
/// body (a list of 20,000 pods is tens of MiB), and hyper asks for the next chunk only as
/// the connection drains. The items are already chosen, so every page keeps its version.
fn streamed_list<F>(head: Vec<u8>, items: Vec<Arc<[u8]>>, mut write: F) -> axum::body::Body
where
    F: FnMut(&[Arc<[u8]>], &mut Vec<u8>) -> Result<(), KubeError> + Send + 'static,
{
    let mut head = Some(head);
    let mut next = 0;
    let mut done = false;
    let chunks = std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut chunk = head.take().unwrap_or_default();
        let start = next;
        let mut bytes = 0;
        while next < items.len() && (next == start || bytes < LIST_CHUNK_BYTES) {
            bytes += items[next].len();
            next += 1;
        }
        if start > 0 && start < next {
            chunk.push(b',');
        }
        if let Err(e) = write(&items[start..next], &mut chunk) {
            // The status line is out already: the client sees the body cut short.
            tracing::warn!("list cut short: {e}");
            done = true;
            return Some(Err(std::io::Error::other(e.to_string())));
        }
        if next == items.len() {
            chunk.extend_from_slice(b"]}");
            done = true;
        }
        Some(Ok(Bytes::from(chunk)))
    });
    axum::body::Body::from_stream(futures::stream::iter(chunks))
}

/// `?watch=1`: the object API's watch, streamed as Kubernetes' JSON watch events, one per
/// line (`{"type":"ADDED","object":{…}}`); a failure mid-stream (the history no longer
/// reaching back, a slow watcher) is an ERROR event with its Status, and ends the stream.
/// A watch of one object is a watch with its name as a field selector, as Kubernetes has it.
fn watch(
    state: &KubeState,
    subject: &Subject,
    target: &Target,
    params: &Params,
    as_table: bool,
    remote: Option<SocketAddr>,
) -> Result<Response, KubeError> {
    let param = |key: &str| params.get(key).cloned().unwrap_or_default();
    let include = table::Include::parse(params.get("includeObject").map(String::as_str))?;
    let mut field_selector = param("fieldSelector");
    if let Some(name) = &target.name {
        let by_name = format!("metadata.name={name}");
        field_selector = match field_selector.is_empty() {
            true => by_name,
            false => format!("{field_selector},{by_name}"),
        };
    }
    // "0" is any version: Kubernetes then starts with the current objects, as an empty one.
    let resource_version = match param("resourceVersion").as_str() {
        "0" => String::new(),
        other => other.to_string(),
    };
    let timeout = match params.get("timeoutSeconds") {
        None => None,
        Some(text) => Some(Duration::from_secs(text.parse().map_err(|_| {
            KubeError::BadRequest(format!(
                "timeoutSeconds: Invalid value: {text:?}: must be a non-negative integer"
            ))
        })?)),
    };
    let bookmarks = params
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let request = WatchRequest {
        kind: target.kind.as_str().into(),
        namespace: target.namespace.clone().unwrap_or_default(),
        label_selector: param("labelSelector"),
        field_selector,
        resource_version,
    };
    let kind = target.kind;
    let events = state
        .objects
        .start_watch(subject, remote, request)
        .map_err(|e| KubeError::api(e, kind, ""))?;
    let lines = tokio_stream::StreamExt::filter_map(events, move |event| {
        watch_line(kind, event, bookmarks, as_table, include)
            .map(|line| Ok::<_, std::convert::Infallible>(Bytes::from(line)))
    });
    let body = match timeout {
        // The client asked the watch to end after this long; it then watches again.
        Some(after) => axum::body::Body::from_stream(futures::StreamExt::take_until(
            lines,
            tokio::time::sleep(after),
        )),
        None => axum::body::Body::from_stream(lines),
    };
    Ok(json(StatusCode::OK, body))
}

/// One watch event as a line of the stream, or `None` for a bookmark not asked for.
fn watch_line(
    kind: Kind,
    event: Result<WatchEvent, tonic::Status>,
    bookmarks: bool,
    as_table: bool,
    include: table::Include,
) -> Option<Vec<u8>> {
    let event = match event {
        Ok(event) => event,
        Err(status) => {
            let failure = Failure::from(&KubeError::api(status, kind, ""));
            let line = serde_json::json!({ "type": "ERROR", "object": failure.body() });
            return Some(format!("{line}\n").into_bytes());
        }
    };
    let version = event.resource_version.to_string();
    if event.r#type == "BOOKMARK" {
        let object = serde_json::json!({
            "kind": kind.as_str(),
            "apiVersion": kind.api_version(),
            "metadata": { "resourceVersion": version },
        });
        let line = serde_json::json!({ "type": "BOOKMARK", "object": object });
        return bookmarks.then(|| format!("{line}\n").into_bytes());
    }
    let object = match as_table {
        true => {
            let metadata = serde_json::json!({ "resourceVersion": version });
            match table::build(kind, &[event.object], metadata, include, now()) {
                Ok(table) => serde_json::to_vec(&table).expect("a JSON value encodes"),
                Err(e) => {
                    let line =
                        serde_json::json!({ "type": "ERROR", "object": Failure::from(&e).body() });
                    return Some(format!("{line}\n").into_bytes());
                }
            }
        }
        // The stored JSON as it is: the line is written around it.
        false => event.object,
    };
    let mut line = format!(r#"{{"type":"{}","object":"#, event.r#type).into_bytes();
    line.extend_from_slice(&object);
    line.extend_from_slice(b"}\n");
    Some(line)
}

/// The request's object, with the path's namespace: filled in when the body has none, and
/// a body naming another namespace is refused, as Kubernetes does.
pub(super) fn body_object(target: &Target, body: &[u8]) -> Result<(Value, String), KubeError> {
    let mut object: Value = serde_json::from_slice(body).map_err(|e| {
        KubeError::BadRequest(format!("the request body is not a JSON object: {e}"))
    })?;
    let Some(map) = object.as_object_mut() else {
        return Err(KubeError::BadRequest(
            "the request body is not a JSON object".into(),
        ));
    };
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(KubeError::BadRequest("metadata: must be an object".into()));
    };
    if let Some(namespace) = &target.namespace {
        match metadata.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                metadata.insert("namespace".into(), Value::String(namespace.clone()));
            }
            Some(given) if given == namespace => {}
            Some(_) => {
                return Err(KubeError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
        }
    }
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((object, name))
}

async fn create(
    state: &KubeState,
    subject: &Subject,
    target: &Target,
    params: &Params,
    body: Bytes,
) -> Result<Response, KubeError> {
    let options = WriteOptions::parse(params)?;
    let (mut object, name) = body_object(target, &body)?;
    let warnings = check_fields(target.kind, &mut object, options.validation)?;
    let request = CreateRequest {
        kind: target.kind.as_str().into(),
        object: serde_json::to_vec(&object).expect("a JSON value encodes"),
    };
    let created = state
        .objects
        .do_create_with(subject, request, options.mode(false))
        .await
        .map_err(|e| KubeError::api(e, target.kind, &name))?;
    Ok(respond(StatusCode::CREATED, created, &warnings))
}

async fn update(
    state: &KubeState,
    subject: &Subject,
    target: &Target,
    name: &str,
    part: UpdatePart,
    params: &Params,
    body: Bytes,
) -> Result<Response, KubeError> {
    let options = WriteOptions::parse(params)?;
    let (mut object, body_name) = body_object(target, &body)?;
    if body_name != name {
        return Err(KubeError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let warnings = check_fields(target.kind, &mut object, options.validation)?;
    let request = UpdateRequest {
        kind: target.kind.as_str().into(),
        object: serde_json::to_vec(&object).expect("a JSON value encodes"),
    };
    let updated = state
        .objects
        .do_update_with(subject, request, part, options.mode(false))
        .await
        .map_err(|e| KubeError::api(e, target.kind, name))?;
    Ok(respond(StatusCode::OK, updated, &warnings))
}

/// DeleteOptions, from the body (what kubectl sends) and the query (what curl sends).
#[derive(Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    grace_period_seconds: Option<i64>,
    propagation_policy: Option<String>,
    #[serde(default)]
    dry_run: Vec<String>,
}

fn delete_options(params: &Params, body: &[u8]) -> Result<DeleteOptions, KubeError> {
    let mut options = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| KubeError::BadRequest(format!("DeleteOptions: {e}")))?
    };
    if let Some(grace) = params.get("gracePeriodSeconds") {
        options.grace_period_seconds = Some(grace.parse().map_err(|_| {
            KubeError::BadRequest(format!(
                "gracePeriodSeconds: Invalid value: {grace:?}: must be an integer"
            ))
        })?);
    }
    if let Some(policy) = params.get("propagationPolicy") {
        options.propagation_policy = Some(policy.clone());
    }
    if let Some(dry) = params.get("dryRun") {
        options.dry_run = vec![dry.clone()];
    }
    if let Some(other) = options.dry_run.iter().find(|d| *d != "All") {
        return Err(KubeError::BadRequest(format!(
            "dryRun: Unsupported value: {other:?}: supported values: \"All\""
        )));
    }
    match options.propagation_policy.as_deref() {
        None | Some("Background" | "Orphan" | "Foreground") => Ok(options),
        Some(other) => Err(KubeError::BadRequest(format!(
            "propagationPolicy: Unsupported value: {other:?}: supported values: \"Background\", \"Foreground\", \"Orphan\""
        ))),
    }
}

/// What a delete does with the object's dependents.
fn propagation(options: &DeleteOptions) -> Propagation {
    match options.propagation_policy.as_deref() {
        Some("Orphan") => Propagation::Orphan,
        Some("Foreground") => Propagation::Foreground,
        _ => Propagation::Background,
    }
}

async fn delete(
    state: &KubeState,
    subject: &Subject,
    target: &Target,
    name: &str,
    params: &Params,
    body: Bytes,
) -> Result<Response, KubeError> {
    let options = delete_options(params, &body)?;
    let request = DeleteRequest {
        kind: target.kind.as_str().into(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: name.into(),
        grace_period_seconds: options.grace_period_seconds,
        // Kubernetes removes an object deleted with a grace period of 0 at once (kubectl
        // delete --force --grace-period=0).
        force: options.grace_period_seconds == Some(0),
    };
    let deleted = state
        .objects
        .do_delete_with(
            subject,
            request,
            !options.dry_run.is_empty(),
            propagation(&options),
        )
        .await
        .map_err(|e| KubeError::api(e, target.kind, name))?;
    Ok(json(StatusCode::OK, deleted.object))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks of a streamed list body, as the client receives them.
    async fn chunks(body: axum::body::Body) -> Vec<Bytes> {
        use futures::TryStreamExt;
        body.into_data_stream().try_collect().await.unwrap()
    }

    #[tokio::test]
    async fn a_streamed_list_is_the_whole_json_list_in_chunks_of_bounded_size() {
        let items: Vec<Arc<[u8]>> = (0..100)
            .map(|i| {
                let padding = "x".repeat(2000);
                Arc::from(format!(r#"{{"n":{i},"pad":"{padding}"}}"#).into_bytes())
            })
            .collect();
        let body = streamed_list(b"{\"items\":[".to_vec(), items.clone(), |part, out| {
            for (i, item) in part.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(item);
            }
            Ok(())
        });
        let chunks = chunks(body).await;
        assert!(chunks.len() > 2, "{} chunks", chunks.len());
        // A chunk stops at the first item that takes it past the bound.
        let largest = items.iter().map(|i| i.len()).max().unwrap();
        assert!(
            chunks
                .iter()
                .all(|c| c.len() <= LIST_CHUNK_BYTES + largest + 16)
        );
        let whole: Value = serde_json::from_slice(&chunks.concat()).unwrap();
        let numbers: Vec<u64> = whole["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["n"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn an_empty_streamed_list_is_an_empty_array() {
        let body = streamed_list(b"{\"items\":[".to_vec(), Vec::new(), |_, _| Ok(()));
        assert_eq!(chunks(body).await.concat(), b"{\"items\":[]}");
    }

    #[tokio::test]
    async fn a_streamed_list_that_fails_midway_ends_in_an_error_not_a_short_list() {
        let items: Vec<Arc<[u8]>> = (0..40).map(|_| Arc::from(vec![b'1'; 4096])).collect();
        let mut parts = 0;
        let body = streamed_list(b"[".to_vec(), items, move |_, _| {
            parts += 1;
            match parts {
                1 => Ok(()),
                _ => Err(KubeError::BadRequest(
                    "a stored object did not decode".into(),
                )),
            }
        });
        let mut stream = body.into_data_stream();
        use futures::StreamExt;
        assert!(stream.next().await.unwrap().is_ok());
        assert!(stream.next().await.unwrap().is_err());
        assert!(stream.next().await.is_none());
    }

    fn target(
        kind: Kind,
        namespace: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Target {
        Target {
            kind,
            namespace: namespace.map(String::from),
            name: name.map(String::from),
            subresource: sub.map(String::from),
        }
    }

    #[test]
    fn resource_paths_name_their_kind_namespace_name_and_subresource() {
        let cases: [(&str, &str, &[&str], Option<Target>); 10] = [
            (
                "",
                "v1",
                &["pods"],
                Some(target(Kind::Pod, None, None, None)),
            ),
            (
                "",
                "v1",
                &["namespaces", "default", "pods"],
                Some(target(Kind::Pod, Some("default"), None, None)),
            ),
            (
                "",
                "v1",
                &["namespaces", "a", "pods", "web", "status"],
                Some(target(Kind::Pod, Some("a"), Some("web"), Some("status"))),
            ),
            (
                "",
                "v1",
                &["namespaces", "a"],
                Some(target(Kind::Namespace, None, Some("a"), None)),
            ),
            (
                "",
                "v1",
                &["namespaces", "a", "status"],
                Some(target(Kind::Namespace, None, Some("a"), Some("status"))),
            ),
            (
                "",
                "v1",
                &["nodes", "n1"],
                Some(target(Kind::Node, None, Some("n1"), None)),
            ),
            (
                "apps",
                "v1",
                &["namespaces", "a", "deployments", "web"],
                Some(target(Kind::Deployment, Some("a"), Some("web"), None)),
            ),
            // A namespaced object outside its namespace, a kind of another group, too deep.
            ("", "v1", &["pods", "web"], None),
            ("", "v1", &["deployments"], None),
            (
                "",
                "v1",
                &["namespaces", "a", "pods", "web", "status", "x"],
                None,
            ),
        ];
        for (group, version, segments, expected) in cases {
            assert_eq!(
                parse_target(group, version, segments),
                expected,
                "{segments:?}"
            );
        }
    }

    #[test]
    fn delete_options_come_from_the_body_and_the_query() {
        let params = Params::from([("gracePeriodSeconds".to_string(), "5".to_string())]);
        let options = delete_options(
            &params,
            br#"{"kind":"DeleteOptions","propagationPolicy":"Background"}"#,
        )
        .unwrap();
        assert_eq!(options.grace_period_seconds, Some(5));
        assert!(delete_options(&Params::new(), b"").is_ok());
        let orphan = delete_options(&Params::new(), br#"{"propagationPolicy":"Orphan"}"#);
        assert_eq!(propagation(&orphan.unwrap()), Propagation::Orphan);
        let odd = delete_options(&Params::new(), br#"{"propagationPolicy":"Sideways"}"#);
        assert!(matches!(odd, Err(KubeError::BadRequest(m)) if m.contains("Sideways")));
        let dry = delete_options(&Params::new(), br#"{"dryRun":["All"]}"#).unwrap();
        assert_eq!(dry.dry_run, vec!["All".to_string()]);
        let dry = delete_options(&Params::new(), br#"{"dryRun":["Some"]}"#);
        assert!(matches!(dry, Err(KubeError::BadRequest(m)) if m.contains("dryRun")));
        let bad = Params::from([("gracePeriodSeconds".to_string(), "soon".to_string())]);
        assert!(delete_options(&bad, b"").is_err());
    }

    #[test]
    fn watch_events_are_lines_of_kubernetes_json_and_a_failure_is_an_error_event() {
        let added = WatchEvent {
            r#type: "ADDED".into(),
            object: br#"{"kind":"Pod","metadata":{"name":"web"}}"#.to_vec(),
            resource_version: 7,
        };
        let line = watch_line(Kind::Pod, Ok(added), false, false, table::Include::Metadata);
        let line = String::from_utf8(line.unwrap()).unwrap();
        assert!(line.ends_with('\n'));
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["type"], "ADDED");
        assert_eq!(event["object"]["metadata"]["name"], "web");

        let bookmark = || WatchEvent {
            r#type: "BOOKMARK".into(),
            object: Vec::new(),
            resource_version: 9,
        };
        let include = table::Include::Metadata;
        assert!(watch_line(Kind::Pod, Ok(bookmark()), false, false, include).is_none());
        let line = watch_line(Kind::Pod, Ok(bookmark()), true, false, include).unwrap();
        let event: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(event["object"]["metadata"]["resourceVersion"], "9");
        assert_eq!(event["object"]["kind"], "Pod");

        let too_old = tonic::Status::failed_precondition("resource version too old");
        let line = watch_line(Kind::Pod, Err(too_old), true, false, include).unwrap();
        let event: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(event["type"], "ERROR");
        assert_eq!(event["object"]["code"], 410);
        assert_eq!(event["object"]["reason"], "Expired");
    }

    #[test]
    fn a_body_gets_the_paths_namespace_and_may_not_name_another() {
        let t = target(Kind::Pod, Some("team"), None, None);
        let (object, name) = body_object(&t, br#"{"metadata":{"name":"web"}}"#).unwrap();
        assert_eq!(object["metadata"]["namespace"], "team");
        assert_eq!(name, "web");
        let other = body_object(&t, br#"{"metadata":{"name":"web","namespace":"x"}}"#);
        assert!(matches!(other, Err(KubeError::BadRequest(m)) if m.contains("does not match")));
        assert!(body_object(&t, b"[1]").is_err());
        assert!(body_object(&t, b"not json").is_err());
    }
}
