//! The subresources with handlers of their own: `pods/log` and `pods/exec` ([`super::stream`]),
//! `pods/eviction` (a graceful delete, what `kubectl drain` asks for) and `deployments/scale`
//! (autoscaling/v1 Scale, what `kubectl scale` reads and writes). The status subresources
//! are the resource verbs' own (resources.rs), with the status part of an update.
//!
//! Every write here is the object API's own (`do_get`, `do_update`, `do_delete`): the same
//! validation, admission, authorization and forwarding, after the subresource's own check
//! (create on pods/eviction, update on deployments/scale), as Kubernetes authorizes it.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use skiff_api::Kind;
use skiff_api::proto::{DeleteRequest, GetRequest, UpdateRequest};
use skiff_api::selector::Selector;
use skiff_api::types::Deployment;
use skiff_pki::{Attributes, NodeTarget, Subject, Verb};

use super::KubeState;
use super::patch::{self, PatchType};
use super::resources::{Request, Target};
use super::status::{Failure, KubeError};
use super::stream;
use crate::raft_types::UpdatePart;
use crate::server::auth::check;

/// How many times a scale without a resourceVersion is retried after losing a race to
/// another write of the deployment (the apiserver retries such updates too).
const SCALE_RETRIES: usize = 5;

/// Whether `target` is one of the subresources served here.
pub fn handles(target: &Target) -> bool {
    matches!(
        (target.kind, target.subresource.as_deref(), &target.name),
        (Kind::Pod, Some("log" | "exec" | "eviction"), Some(_))
            | (Kind::Deployment, Some("scale"), Some(_))
    )
}

/// Serves a request on a subresource [`handles`] says is here.
pub async fn serve(
    state: &KubeState,
    subject: &Subject,
    request: Request<'_>,
    target: Target,
    body: Bytes,
) -> Result<Response, KubeError> {
    let name = target.name.as_deref().unwrap_or_default();
    let namespace = target.namespace.as_deref();
    let sub = target.subresource.as_deref().unwrap_or_default();
    match (target.kind, sub, request.method.clone()) {
        (Kind::Pod, "log", Method::GET) => {
            stream::log(state, subject, namespace, name, request.params).await
        }
        (Kind::Pod, "exec", Method::GET | Method::POST) => {
            let Request {
                uri,
                headers,
                upgrade,
                ..
            } = request;
            stream::exec(state, subject, namespace, name, uri, headers, upgrade).await
        }
        (Kind::Pod, "eviction", Method::POST) => {
            evict(state, subject, namespace, name, &body).await
        }
        (Kind::Deployment, "scale", Method::GET) => {
            let deployment = get_deployment(state, subject, namespace, name, Verb::Get).await?;
            Ok(json_response(StatusCode::OK, &scale_of(&deployment)?))
        }
        (Kind::Deployment, "scale", Method::PUT) => {
            let scale = parse_scale(&body, name)?;
            put_scale(state, subject, namespace, name, &scale, Verb::Update).await
        }
        (Kind::Deployment, "scale", Method::PATCH) => {
            patch_scale(state, subject, namespace, name, request.headers, &body).await
        }
        (kind, sub, method) => Err(KubeError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({method} {}/{sub})",
            kind.plural()
        ))),
    }
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The path's namespace, as the object API takes it.
fn ns(namespace: Option<&str>) -> String {
    namespace.unwrap_or_default().to_string()
}

/// `POST pods/NAME/eviction` (policy/v1 Eviction): the pod is deleted gracefully, with the
/// eviction's deleteOptions. Skiff has no PodDisruptionBudgets, so nothing blocks it (the
/// apiserver answers 429 when one would).
async fn evict(
    state: &KubeState,
    subject: &Subject,
    namespace: Option<&str>,
    name: &str,
    body: &[u8],
) -> Result<Response, KubeError> {
    let eviction = parse_eviction(body, name)?;
    let namespace = ns(namespace);
    let attributes = Attributes::new(Verb::Create, "pods")
        .subresource("eviction")
        .namespace(if namespace.is_empty() {
            "default"
        } else {
            &namespace
        })
        .name(name);
    check(subject, &attributes, || Ok(NodeTarget::None))
        .map_err(|e| KubeError::api(e, Kind::Pod, name))?;
    if let Some(uid) = &eviction.uid {
        let current = state
            .objects
            .do_get(
                subject,
                GetRequest {
                    kind: Kind::Pod.as_str().into(),
                    namespace: namespace.clone(),
                    name: name.into(),
                    stale_ok: false,
                },
            )
            .await
            .map_err(|e| KubeError::api(e, Kind::Pod, name))?;
        let current: Value = serde_json::from_slice(&current)
            .map_err(|e| KubeError::BadRequest(format!("stored pod is unreadable: {e}")))?;
        let actual = current["metadata"]["uid"].as_str().unwrap_or_default();
        if actual != uid {
            let message = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
            );
            return Err(KubeError::api(
                tonic::Status::aborted(message),
                Kind::Pod,
                name,
            ));
        }
    }
    let request = DeleteRequest {
        kind: Kind::Pod.as_str().into(),
        namespace,
        name: name.into(),
        grace_period_seconds: eviction.grace_period_seconds,
        force: eviction.grace_period_seconds == Some(0),
    };
    state
        .objects
        .do_delete(subject, request)
        .await
        .map_err(|e| KubeError::api(e, Kind::Pod, name))?;
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": 201,
    });
    Ok(json_response(StatusCode::CREATED, &status))
}

/// What an Eviction asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Eviction {
    grace_period_seconds: Option<i64>,
    uid: Option<String>,
}

fn parse_eviction(body: &[u8], name: &str) -> Result<Eviction, KubeError> {
    let eviction: Value = serde_json::from_slice(body)
        .map_err(|e| KubeError::BadRequest(format!("the request body is not an Eviction: {e}")))?;
    if !eviction.is_object() {
        return Err(KubeError::BadRequest(
            "the request body is not an Eviction".into(),
        ));
    }
    match eviction.pointer("/metadata/name").and_then(Value::as_str) {
        None | Some("") => {}
        Some(given) if given == name => {}
        Some(_) => {
            return Err(KubeError::BadRequest(
                "name in URL does not match name in Eviction object".into(),
            ));
        }
    }
    let options = &eviction["deleteOptions"];
    if options
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty())
    {
        return Err(KubeError::BadRequest(
            "dryRun: evictions are not served as dry runs".into(),
        ));
    }
    let grace_period_seconds = match &options["gracePeriodSeconds"] {
        Value::Null => None,
        value => Some(value.as_i64().ok_or_else(|| {
            KubeError::BadRequest(format!(
                "deleteOptions.gracePeriodSeconds: Invalid value: {value}: must be an integer"
            ))
        })?),
    };
    if grace_period_seconds.is_some_and(|g| g < 0) {
        return Err(KubeError::BadRequest(
            "deleteOptions.gracePeriodSeconds: Invalid value: must be non-negative".into(),
        ));
    }
    let uid = options
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    if options
        .pointer("/preconditions/resourceVersion")
        .is_some_and(|v| !v.is_null())
    {
        // A version precondition cannot be checked and acted on in one step by a delete
        // here: refused rather than ignored.
        return Err(KubeError::BadRequest(
            "deleteOptions.preconditions.resourceVersion: not supported for evictions".into(),
        ));
    }
    match options["propagationPolicy"].as_str() {
        None | Some("Background") => {}
        Some(other) => {
            return Err(KubeError::BadRequest(format!(
                "deleteOptions.propagationPolicy: Unsupported value: {other:?}: supported values: \"Background\""
            )));
        }
    }
    Ok(Eviction {
        grace_period_seconds,
        uid,
    })
}

/// The deployment `namespace/name`, after `verb` on deployments/scale is authorized.
async fn get_deployment(
    state: &KubeState,
    subject: &Subject,
    namespace: Option<&str>,
    name: &str,
    verb: Verb,
) -> Result<Value, KubeError> {
    let namespace = ns(namespace);
    let attributes = Attributes::new(verb, "deployments")
        .subresource("scale")
        .namespace(if namespace.is_empty() {
            "default"
        } else {
            &namespace
        })
        .name(name);
    check(subject, &attributes, || Ok(NodeTarget::None))
        .map_err(|e| KubeError::api(e, Kind::Deployment, name))?;
    let object = state
        .objects
        .do_get(
            subject,
            GetRequest {
                kind: Kind::Deployment.as_str().into(),
                namespace,
                name: name.into(),
                stale_ok: false,
            },
        )
        .await
        .map_err(|e| KubeError::api(e, Kind::Deployment, name))?;
    serde_json::from_slice(&object)
        .map_err(|e| KubeError::BadRequest(format!("stored deployment is unreadable: {e}")))
}

/// A deployment's autoscaling/v1 Scale: its replicas wanted and had, and its selector in
/// the string form a label selector query takes.
fn scale_of(deployment: &Value) -> Result<Value, KubeError> {
    let typed: Deployment = serde_json::from_value(deployment.clone())
        .map_err(|e| KubeError::BadRequest(format!("stored deployment is unreadable: {e}")))?;
    let selector = Selector::from_label_selector(&typed.spec.selector)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let metadata = &deployment["metadata"];
    let mut scale_metadata = serde_json::Map::new();
    for key in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(value) = metadata.get(key) {
            scale_metadata.insert(key.into(), value.clone());
        }
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_metadata,
        "spec": { "replicas": typed.spec.replicas.unwrap_or(1) },
        "status": {
            "replicas": typed.status.and_then(|s| s.replicas).unwrap_or(0),
            "selector": selector,
        },
    }))
}

/// What a Scale written asks for.
#[derive(Debug, PartialEq, Eq)]
struct ScaleWrite {
    replicas: i32,
    /// The deployment's version the write is for (a precondition), if given.
    resource_version: Option<String>,
}

fn parse_scale(body: &[u8], name: &str) -> Result<ScaleWrite, KubeError> {
    let scale: Value = serde_json::from_slice(body)
        .map_err(|e| KubeError::BadRequest(format!("the request body is not a Scale: {e}")))?;
    scale_write(&scale, name)
}

fn scale_write(scale: &Value, name: &str) -> Result<ScaleWrite, KubeError> {
    if !scale.is_object() {
        return Err(KubeError::BadRequest(
            "the request body is not a Scale".into(),
        ));
    }
    let invalid = |message: String| {
        KubeError::api(
            tonic::Status::invalid_argument(message),
            Kind::Deployment,
            name,
        )
    };
    match scale.pointer("/metadata/name").and_then(Value::as_str) {
        None | Some("") => {}
        Some(given) if given == name => {}
        Some(_) => {
            return Err(KubeError::BadRequest(format!(
                "the name of the object does not match the name on the URL ({name})"
            )));
        }
    }
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(value) => value.as_i64().ok_or_else(|| {
            invalid(format!(
                "spec.replicas: Invalid value: {value}: must be an integer"
            ))
        })?,
    };
    let replicas = i32::try_from(replicas)
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            invalid(format!(
                "spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
            ))
        })?;
    let resource_version = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    Ok(ScaleWrite {
        replicas,
        resource_version,
    })
}

/// Writes a Scale's replicas into the deployment (its own update, so validation and the
/// controller see an ordinary spec change) and answers with the new Scale.
async fn put_scale(
    state: &KubeState,
    subject: &Subject,
    namespace: Option<&str>,
    name: &str,
    scale: &ScaleWrite,
    verb: Verb,
) -> Result<Response, KubeError> {
    let mut attempt = 0;
    loop {
        let mut deployment = get_deployment(state, subject, namespace, name, verb).await?;
        deployment["spec"]["replicas"] = scale.replicas.into();
        if let Some(version) = &scale.resource_version {
            deployment["metadata"]["resourceVersion"] = version.clone().into();
        }
        let request = UpdateRequest {
            kind: Kind::Deployment.as_str().into(),
            object: serde_json::to_vec(&deployment).expect("a JSON value encodes"),
        };
        match state
            .objects
            .do_update(subject, request, UpdatePart::Main)
            .await
        {
            Ok(updated) => {
                let updated: Value = serde_json::from_slice(&updated).map_err(|e| {
                    KubeError::BadRequest(format!("stored deployment is unreadable: {e}"))
                })?;
                return Ok(json_response(StatusCode::OK, &scale_of(&updated)?));
            }
            // Another write came first: without a version of its own the scale applies
            // to the newest deployment.
            Err(e)
                if e.code() == tonic::Code::Aborted
                    && scale.resource_version.is_none()
                    && attempt < SCALE_RETRIES =>
            {
                attempt += 1;
            }
            Err(e) => return Err(KubeError::api(e, Kind::Deployment, name)),
        }
    }
}

/// `PATCH deployments/NAME/scale` (what a plain `kubectl scale` sends: a merge patch of
/// spec.replicas): the patch applies to the Scale, which is then written as a PUT is.
async fn patch_scale(
    state: &KubeState,
    subject: &Subject,
    namespace: Option<&str>,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, KubeError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let patch_type = PatchType::from_content_type(content_type).filter(|t| *t != PatchType::Apply);
    let Some(patch_type) = patch_type else {
        return Ok(Failure {
            code: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
            ),
            details: None,
            retry_after: false,
        }
        .into_response());
    };
    let document: Value = serde_json::from_slice(body)
        .map_err(|e| KubeError::BadRequest(format!("the patch is not valid JSON: {e}")))?;
    let deployment = get_deployment(state, subject, namespace, name, Verb::Patch).await?;
    let mut scale = scale_of(&deployment)?;
    let read_version = scale["metadata"]["resourceVersion"].clone();
    // A Scale is a few numbers: the byte budget of a JSON patch's copies is small too.
    let applied = match patch_type {
        PatchType::Merge => patch::merge_patch(&mut scale, &document),
        PatchType::Json => patch::json_patch(&mut scale, &document, 64 * 1024),
        PatchType::Strategic | PatchType::Apply => {
            patch::strategic_merge_patch(&mut scale, &document)
        }
    };
    applied.map_err(|e| KubeError::BadRequest(e.to_string()))?;
    let mut write = scale_write(&scale, name)?;
    // Only a version the patch itself sets is a precondition; the one read is not.
    if scale["metadata"]["resourceVersion"] == read_version {
        write.resource_version = None;
    }
    put_scale(state, subject, namespace, name, &write, Verb::Patch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: Kind, name: Option<&str>, sub: Option<&str>) -> Target {
        Target {
            kind,
            namespace: Some("default".into()),
            name: name.map(String::from),
            subresource: sub.map(String::from),
        }
    }

    #[test]
    fn logs_exec_eviction_and_scale_of_a_named_object_are_served_here() {
        assert!(handles(&target(Kind::Pod, Some("web"), Some("log"))));
        assert!(handles(&target(Kind::Pod, Some("web"), Some("exec"))));
        assert!(handles(&target(Kind::Pod, Some("web"), Some("eviction"))));
        assert!(handles(&target(
            Kind::Deployment,
            Some("web"),
            Some("scale")
        )));
        assert!(!handles(&target(Kind::Pod, Some("web"), Some("status"))));
        assert!(!handles(&target(Kind::Pod, Some("web"), None)));
        assert!(!handles(&target(Kind::Pod, Some("web"), Some("scale"))));
        assert!(!handles(&target(Kind::Deployment, None, Some("scale"))));
    }

    #[test]
    fn a_scale_shows_the_deployments_replicas_and_its_selector_as_a_query() {
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web", "tier": "front"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "tier": "front"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}
                }
            },
            "status": {"replicas": 2}
        });
        let scale = scale_of(&deployment).unwrap();
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["apiVersion"], "autoscaling/v1");
        assert_eq!(scale["metadata"]["resourceVersion"], "7");
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"]["replicas"], 2);
        assert_eq!(scale["status"]["selector"], "app=web,tier=front");
    }

    #[test]
    fn a_scale_written_needs_replicas_of_zero_or_more_and_the_urls_name() {
        let ok = scale_write(
            &json!({"spec": {"replicas": 3}, "metadata": {"name": "web", "resourceVersion": "9"}}),
            "web",
        )
        .unwrap();
        assert_eq!(ok.replicas, 3);
        assert_eq!(ok.resource_version.as_deref(), Some("9"));
        let negative = scale_write(&json!({"spec": {"replicas": -1}}), "web");
        let Err(KubeError::Api { status, .. }) = negative else {
            panic!("{negative:?}");
        };
        assert!(status.message().contains("greater than or equal to 0"));
        assert!(scale_write(&json!({"spec": {"replicas": "3"}}), "web").is_err());
        assert!(scale_write(&json!({"metadata": {"name": "db"}}), "web").is_err());
        assert!(scale_write(&json!([1]), "web").is_err());
    }

    #[test]
    fn an_eviction_carries_its_delete_options_and_refuses_what_it_cannot_honour() {
        let eviction = parse_eviction(
            br#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"web"},"deleteOptions":{"gracePeriodSeconds":5,"preconditions":{"uid":"u1"}}}"#,
            "web",
        )
        .unwrap();
        assert_eq!(eviction.grace_period_seconds, Some(5));
        assert_eq!(eviction.uid.as_deref(), Some("u1"));
        assert_eq!(
            parse_eviction(br#"{"metadata":{"name":"web"}}"#, "web").unwrap(),
            Eviction::default()
        );
        let other = parse_eviction(br#"{"metadata":{"name":"db"}}"#, "web");
        assert!(matches!(other, Err(KubeError::BadRequest(m)) if m.contains("does not match")));
        assert!(parse_eviction(br#"{"deleteOptions":{"dryRun":["All"]}}"#, "web").is_err());
        assert!(parse_eviction(br#"{"deleteOptions":{"gracePeriodSeconds":-2}}"#, "web").is_err());
        assert!(
            parse_eviction(
                br#"{"deleteOptions":{"propagationPolicy":"Orphan"}}"#,
                "web"
            )
            .is_err()
        );
        assert!(parse_eviction(b"nope", "web").is_err());
    }
}
