//! Writes beyond a plain create, update or delete: PATCH in its four formats (JSON merge,
//! JSON patch, strategic merge, server-side apply), and the options every write takes —
//! `dryRun`, `fieldValidation`, `fieldManager`, `force`.
//!
//! A PATCH reads the stored object, applies the patch to its JSON ([`super::patch`]) and
//! writes the result through the object API's own update (validation, admission and
//! authorization, as verb `patch`), pinned to the version it read; a patch that names no
//! resourceVersion is re-applied to a fresh read when another write won the race, as the
//! apiserver does.
//!
//! Server-side apply records who applied which fields in `metadata.managedFields`
//! (FieldsV1). Only apply operations are recorded: fields set by plain updates and
//! patches belong to no manager here, so they never conflict with an apply.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use skiff_api::proto::{CreateRequest, UpdateRequest};
use skiff_api::{Kind, Object};
use skiff_pki::Subject;
use tonic::Code;

use super::KubeState;
use super::patch::{self, FieldSet, PatchError, PatchType, Step};
use super::resources::{Params, Target, body_object};
use super::status::{Failure, KubeError};
use crate::raft_types::UpdatePart;
use crate::server::objects::WriteMode;

/// How often a write without a resourceVersion is re-applied after losing a race.
const RETRIES: usize = 5;

/// How many unknown fields one object may have before the rest are left to the decoder's
/// error (each is found by one more decoding pass).
const MAX_UNKNOWN_FIELDS: usize = 32;

/// `fieldValidation`: what a write does with fields its kind does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Refused: 400 `strict decoding error: unknown field "spec.foo"`.
    Strict,
    /// Dropped, each with a `Warning` header (Kubernetes' default).
    Warn,
    /// Dropped silently.
    Ignore,
}

/// The query options of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub validation: FieldValidation,
    pub field_manager: Option<String>,
    pub force: bool,
}

impl WriteOptions {
    pub fn parse(params: &Params) -> Result<WriteOptions, KubeError> {
        let dry_run = match params.get("dryRun").map(String::as_str) {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(KubeError::BadRequest(format!(
                    "dryRun: Unsupported value: {other:?}: supported values: \"All\""
                )));
            }
        };
        let validation = match params.get("fieldValidation").map(String::as_str) {
            None | Some("") | Some("Warn") => FieldValidation::Warn,
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            Some(other) => {
                return Err(KubeError::BadRequest(format!(
                    "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
                )));
            }
        };
        let field_manager = match params.get("fieldManager") {
            None => None,
            Some(manager) => {
                if manager.is_empty()
                    || manager.chars().count() > 128
                    || manager.chars().any(char::is_control)
                {
                    return Err(KubeError::BadRequest(format!(
                        "fieldManager: Invalid value: {manager:?}: must be 1 to 128 printable characters"
                    )));
                }
                Some(manager.clone())
            }
        };
        let force = match params.get("force").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(KubeError::BadRequest(format!(
                    "force: Invalid value: {other:?}: must be true or false"
                )));
            }
        };
        Ok(WriteOptions {
            dry_run,
            validation,
            field_manager,
            force,
        })
    }

    pub fn mode(&self, patch: bool) -> WriteMode {
        WriteMode {
            dry_run: self.dry_run,
            patch,
        }
    }
}

/// Applies `fieldValidation` to an object about to be written: unknown fields are found by
/// the kind's own strict decoder (which names each one's path) and refused or removed.
/// Returns the warnings to send. Errors other than unknown fields are left for the write
/// itself to report.
pub fn check_fields(
    kind: Kind,
    object: &mut Value,
    validation: FieldValidation,
) -> Result<Vec<String>, KubeError> {
    let mut unknown = Vec::new();
    let mut probe = object.clone();
    while unknown.len() < MAX_UNKNOWN_FIELDS {
        let Err(e) = Object::from_value(Some(kind), probe.clone()) else {
            break;
        };
        if e.path.is_empty() || !e.message.starts_with("unknown field") {
            break;
        }
        if !remove_dotted(&mut probe, &e.path) {
            break;
        }
        unknown.push(e.path);
    }
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    match validation {
        FieldValidation::Strict => {
            let fields: Vec<String> = unknown
                .iter()
                .map(|p| format!("unknown field {p:?}"))
                .collect();
            let version = kind.api_version().rsplit('/').next().unwrap_or("v1");
            Err(KubeError::BadRequest(format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                fields.join(", "),
                kind = kind.as_str(),
            )))
        }
        FieldValidation::Warn | FieldValidation::Ignore => {
            *object = probe;
            Ok(match validation {
                FieldValidation::Warn => unknown
                    .iter()
                    .map(|p| format!("unknown field {p:?}"))
                    .collect(),
                _ => Vec::new(),
            })
        }
    }
}

/// Removes the field at a decoder path (`spec.containers[0].imagee`); false when the path
/// does not lead to a field.
fn remove_dotted(value: &mut Value, path: &str) -> bool {
    let mut steps: Vec<Result<&str, usize>> = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            steps.push(Ok(name));
        }
        while let Some(open) = rest.strip_prefix('[') {
            let Some((index, after)) = open.split_once(']') else {
                return false;
            };
            let Ok(index) = index.parse() else {
                return false;
            };
            steps.push(Err(index));
            rest = after;
        }
    }
    let Some((Ok(last), parents)) = steps.split_last() else {
        return false;
    };
    let mut here = value;
    for step in parents {
        let next = match step {
            Ok(name) => here.get_mut(*name),
            Err(index) => here.get_mut(*index),
        };
        match next {
            Some(next) => here = next,
            None => return false,
        }
    }
    here.as_object_mut()
        .is_some_and(|map| map.remove(*last).is_some())
}

/// A JSON response carrying `warnings` as `Warning: 299 - "…"` headers.
pub fn respond(code: StatusCode, body: Vec<u8>, warnings: &[String]) -> Response {
    let mut response = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    for warning in warnings {
        let text = format!("299 - {}", serde_json::Value::String(warning.clone()));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

fn failure(
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
) -> Response {
    Failure {
        code,
        reason,
        message,
        details,
        retry_after: false,
    }
    .into_response()
}

fn patch_failure(e: PatchError) -> Response {
    match e {
        PatchError::Malformed(m) => failure(StatusCode::BAD_REQUEST, "BadRequest", m, None),
        PatchError::Unapplicable(m) => {
            failure(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", m, None)
        }
    }
}

fn decode(bytes: &[u8]) -> Result<Value, KubeError> {
    serde_json::from_slice(bytes)
        .map_err(|e| KubeError::BadRequest(format!("the stored object does not decode: {e}")))
}

fn encode(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value encodes")
}

fn resource_version(value: &Value) -> Option<&Value> {
    value.pointer("/metadata/resourceVersion")
}

fn set_resource_version(value: &mut Value, version: Option<Value>) {
    if let (Some(meta), Some(version)) = (
        value.get_mut("metadata").and_then(Value::as_object_mut),
        version,
    ) {
        meta.insert("resourceVersion".into(), version);
    }
}

/// PATCH on an object (`part` Main) or its status.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    state: &KubeState,
    subject: &Subject,
    target: &Target,
    name: &str,
    part: UpdatePart,
    params: &Params,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, KubeError> {
    let options = WriteOptions::parse(params)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(patch_type) = PatchType::from_content_type(content_type) else {
        return Ok(failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
            ),
            None,
        ));
    };
    if patch_type == PatchType::Apply {
        return apply(state, subject, target, name, part, &options, body).await;
    }
    let document: Value = serde_json::from_slice(&body)
        .map_err(|e| KubeError::BadRequest(format!("the patch is not valid JSON: {e}")))?;
    let kind = target.kind;
    let namespace = target.namespace.clone().unwrap_or_default();
    let budget = state.objects.max_object_bytes.saturating_mul(2);
    for attempt in 1..=RETRIES {
        let current = state
            .objects
            .current_json(kind.as_str(), &namespace, name)
            .await
            .map_err(|e| KubeError::api(e, kind, name))?;
        let mut value = decode(&current)?;
        let read_version = resource_version(&value).cloned();
        let applied = match patch_type {
            PatchType::Merge => patch::merge_patch(&mut value, &document),
            PatchType::Json => patch::json_patch(&mut value, &document, budget),
            PatchType::Strategic => patch::strategic_merge_patch(&mut value, &document),
            PatchType::Apply => unreachable!("apply is served above"),
        };
        if let Err(e) = applied {
            return Ok(patch_failure(e));
        }
        // A patch that sets a resourceVersion is a precondition: never retried.
        let pinned = resource_version(&value) != read_version.as_ref();
        if resource_version(&value).is_none() {
            set_resource_version(&mut value, read_version);
        }
        let same_identity = value.pointer("/metadata/name").and_then(Value::as_str) == Some(name);
        if !same_identity {
            return Err(KubeError::BadRequest(
                "metadata.name: the patch may not change the object's name".into(),
            ));
        }
        let warnings = check_fields(kind, &mut value, options.validation)?;
        let request = UpdateRequest {
            kind: kind.as_str().into(),
            object: encode(&value),
        };
        match state
            .objects
            .do_update_with(subject, request, part, options.mode(true))
            .await
        {
            Ok(updated) => return Ok(respond(StatusCode::OK, updated, &warnings)),
            Err(e) if e.code() == Code::Aborted && !pinned && attempt < RETRIES => continue,
            Err(e) => return Err(KubeError::api(e, kind, name)),
        }
    }
    unreachable!("the last attempt returns")
}

/// One managedFields entry, read.
struct Managed {
    manager: String,
    operation: String,
    fields: FieldSet,
    /// The entry as stored, kept as it is when it does not change.
    raw: Value,
}

fn managed_entries(object: &Value) -> Vec<Managed> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|raw| Managed {
                    manager: raw["manager"].as_str().unwrap_or_default().to_string(),
                    operation: raw["operation"].as_str().unwrap_or_default().to_string(),
                    fields: raw
                        .get("fieldsV1")
                        .map(FieldSet::from_fields_v1)
                        .unwrap_or_default(),
                    raw: raw.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn entry(kind: Kind, manager: &str, operation: &str, fields: &FieldSet) -> Value {
    json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": kind.api_version(),
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields.to_fields_v1(),
    })
}

fn set_managed(object: &mut Value, entries: Vec<Value>) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        match entries.is_empty() {
            true => meta.remove("managedFields"),
            false => meta.insert("managedFields".into(), Value::Array(entries)),
        };
    }
}

/// What the applied configuration may not set: the server's own metadata.
fn strip_server_fields(config: &mut Value) {
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["managedFields", "uid", "creationTimestamp", "generation"] {
            meta.remove(key);
        }
    }
    if let Some(map) = config.as_object_mut() {
        map.remove("status");
    }
}

/// `application/apply-patch+yaml`: server-side apply.
async fn apply(
    state: &KubeState,
    subject: &Subject,
    target: &Target,
    name: &str,
    part: UpdatePart,
    options: &WriteOptions,
    body: Bytes,
) -> Result<Response, KubeError> {
    let kind = target.kind;
    let Some(manager) = options.field_manager.as_deref() else {
        return Err(KubeError::BadRequest(
            "fieldManager: Required value: is required for apply patch".into(),
        ));
    };
    if part == UpdatePart::Status {
        return Err(KubeError::BadRequest(
            "server-side apply of the status subresource is not supported".into(),
        ));
    }
    let config: Value = serde_yaml_ng::from_slice(&body).map_err(|e| {
        KubeError::BadRequest(format!("the applied configuration is not valid YAML: {e}"))
    })?;
    for (field, expected) in [("kind", kind.as_str()), ("apiVersion", kind.api_version())] {
        match config.get(field).and_then(Value::as_str) {
            Some(given) if given == expected => {}
            Some(given) => {
                return Err(KubeError::BadRequest(format!(
                    "{field}: Invalid value: {given:?}: this is the {expected} endpoint"
                )));
            }
            None => {
                return Err(KubeError::BadRequest(format!(
                    "{field}: Required value: an applied configuration must set {field}"
                )));
            }
        }
    }
    let (mut config, body_name) = body_object(target, &encode(&config))?;
    if body_name != name {
        return Err(KubeError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    strip_server_fields(&mut config);
    let applied_fields = FieldSet::of(&config);
    let namespace = target.namespace.clone().unwrap_or_default();
    for attempt in 1..=RETRIES {
        let current = match state
            .objects
            .current_json(kind.as_str(), &namespace, name)
            .await
        {
            Ok(current) => current,
            Err(e) if e.code() == Code::NotFound => {
                let mut object = config.clone();
                set_managed(
                    &mut object,
                    vec![entry(kind, manager, "Apply", &applied_fields)],
                );
                let warnings = check_fields(kind, &mut object, options.validation)?;
                let request = CreateRequest {
                    kind: kind.as_str().into(),
                    object: encode(&object),
                };
                match state
                    .objects
                    .do_create_with(subject, request, options.mode(true))
                    .await
                {
                    Ok(created) => return Ok(respond(StatusCode::CREATED, created, &warnings)),
                    Err(e) if e.code() == Code::AlreadyExists && attempt < RETRIES => continue,
                    Err(e) => return Err(KubeError::api(e, kind, name)),
                }
            }
            Err(e) => return Err(KubeError::api(e, kind, name)),
        };
        let live = decode(&current)?;
        let (merged, pinned) = match merge_applied(
            kind,
            &live,
            &config,
            &applied_fields,
            manager,
            options.force,
        ) {
            Ok(merged) => merged,
            Err(conflicts) => return Ok(conflict_response(kind, name, &conflicts)),
        };
        let mut merged = merged;
        let warnings = check_fields(kind, &mut merged, options.validation)?;
        let request = UpdateRequest {
            kind: kind.as_str().into(),
            object: encode(&merged),
        };
        match state
            .objects
            .do_update_with(subject, request, UpdatePart::Main, options.mode(true))
            .await
        {
            Ok(updated) => return Ok(respond(StatusCode::OK, updated, &warnings)),
            Err(e) if e.code() == Code::Aborted && !pinned && attempt < RETRIES => continue,
            Err(e) => return Err(KubeError::api(e, kind, name)),
        }
    }
    unreachable!("the last attempt returns")
}

/// A field another manager owns with another value: (manager, field path).
type Conflict = (String, Vec<Step>);

/// The object an apply makes of `live`, and whether the configuration pins a
/// resourceVersion; or the conflicts that refuse it.
fn merge_applied(
    kind: Kind,
    live: &Value,
    config: &Value,
    applied: &FieldSet,
    manager: &str,
    force: bool,
) -> Result<(Value, bool), Vec<Conflict>> {
    let mut entries = managed_entries(live);
    let mine = |m: &Managed| m.manager == manager && m.operation == "Apply";
    let mut conflicts = Vec::new();
    for path in &applied.0 {
        // A list element both apply is shared; its fields may conflict, not its presence.
        if path
            .last()
            .is_some_and(|s| s.starts_with("k:") || s.starts_with("v:"))
        {
            continue;
        }
        for other in entries.iter_mut().filter(|m| !mine(m)) {
            if !other.fields.contains(path) {
                continue;
            }
            if patch::value_at(live, path) == patch::value_at(config, path) {
                // Same value: both own it.
                continue;
            }
            match force {
                true => {
                    other.fields.0.remove(path);
                }
                false => conflicts.push((other.manager.clone(), path.clone())),
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut merged = live.clone();
    let mut patch_doc = config.clone();
    let pinned = resource_version(config).is_some();
    if !pinned && let Some(meta) = patch_doc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    if patch::strategic_merge_patch(&mut merged, &patch_doc).is_err() {
        // The configuration was already read as an object; a merge key missing from a list
        // element is the only way here. Owned fields are kept rather than half-merged.
        return Err(vec![]);
    }
    // Fields this manager applied before and applies no longer, owned by no one else, go.
    let before: FieldSet = entries
        .iter()
        .find(|m| mine(m))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    let others: Vec<&FieldSet> = entries
        .iter()
        .filter(|m| !mine(m))
        .map(|m| &m.fields)
        .collect();
    let mut dropped: Vec<&Vec<Step>> = before
        .0
        .iter()
        .filter(|path| !applied.0.iter().any(|p| p.starts_with(path)))
        .filter(|path| {
            !others
                .iter()
                .any(|o| o.0.iter().any(|p| p.starts_with(path)))
        })
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in dropped {
        patch::remove_at(&mut merged, path);
    }
    let mut kept: Vec<Value> = entries
        .iter()
        .filter(|m| !mine(m) && !m.fields.0.is_empty())
        .map(|m| {
            let mut raw = m.raw.clone();
            raw["fieldsV1"] = m.fields.to_fields_v1();
            raw
        })
        .collect();
    if !applied.0.is_empty() {
        kept.push(entry(kind, manager, "Apply", applied));
    }
    set_managed(&mut merged, kept);
    if !pinned {
        set_resource_version(&mut merged, resource_version(live).cloned());
    }
    Ok((merged, pinned))
}

/// 409 Conflict as the apiserver words it, one cause per field, which kubectl prints with
/// its advice on `--force-conflicts`.
fn conflict_response(kind: Kind, name: &str, conflicts: &[Conflict]) -> Response {
    if conflicts.is_empty() {
        return failure(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the applied configuration has a list element without its merge key".into(),
            None,
        );
    }
    let lines: Vec<String> = conflicts
        .iter()
        .map(|(manager, path)| format!("conflict with {manager:?}: {}", patch::display_path(path)))
        .collect();
    let count = conflicts.len();
    let message = format!(
        "Apply failed with {count} conflict{}: {}",
        if count == 1 { "" } else { "s" },
        lines.join("\n")
    );
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, path)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {manager:?}"),
                "field": patch::display_path(path),
            })
        })
        .collect();
    let details = json!({
        "name": name,
        "group": kind.group(),
        "kind": kind.plural(),
        "causes": causes,
    });
    failure(StatusCode::CONFLICT, "Conflict", message, Some(details))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn write_options_read_dry_run_validation_manager_and_force() {
        let options = WriteOptions::parse(&params(&[
            ("dryRun", "All"),
            ("fieldValidation", "Strict"),
            ("fieldManager", "kubectl"),
            ("force", "true"),
        ]))
        .unwrap();
        assert!(options.dry_run && options.force);
        assert_eq!(options.validation, FieldValidation::Strict);
        assert_eq!(options.field_manager.as_deref(), Some("kubectl"));
        let default = WriteOptions::parse(&Params::new()).unwrap();
        assert_eq!(default.validation, FieldValidation::Warn);
        assert!(!default.dry_run);
        for bad in [
            ("dryRun", "Some"),
            ("fieldValidation", "strictly"),
            ("force", "yes"),
            ("fieldManager", ""),
        ] {
            let err = WriteOptions::parse(&params(&[bad])).unwrap_err();
            assert!(err.to_string().contains(bad.0), "{bad:?}: {err}");
        }
        let long = "m".repeat(129);
        assert!(WriteOptions::parse(&params(&[("fieldManager", &long)])).is_err());
    }

    fn pod_with_unknown_fields() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": {"foo": 1, "containers": [{"name": "web", "image": "nginx", "imagee": "x"}]}
        })
    }

    #[test]
    fn strict_validation_names_every_unknown_field_as_the_apiserver_does() {
        let mut pod = pod_with_unknown_fields();
        let err = check_fields(Kind::Pod, &mut pod, FieldValidation::Strict).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(
                "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field "
            ),
            "{message}"
        );
        assert!(message.contains("unknown field \"spec.foo\""), "{message}");
        assert!(
            message.contains("unknown field \"spec.containers[0].imagee\""),
            "{message}"
        );
        assert_eq!(
            pod,
            pod_with_unknown_fields(),
            "strict leaves the object alone"
        );
    }

    #[test]
    fn warn_and_ignore_drop_unknown_fields_and_only_warn_says_so() {
        let mut pod = pod_with_unknown_fields();
        let warnings = check_fields(Kind::Pod, &mut pod, FieldValidation::Warn).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(pod["spec"].get("foo").is_none());
        assert!(pod["spec"]["containers"][0].get("imagee").is_none());
        Object::from_value(Some(Kind::Pod), pod).unwrap();
        let mut pod = pod_with_unknown_fields();
        let warnings = check_fields(Kind::Pod, &mut pod, FieldValidation::Ignore).unwrap();
        assert!(warnings.is_empty());
        assert!(pod["spec"].get("foo").is_none());
    }

    #[test]
    fn warnings_are_299_headers_with_quoted_text() {
        let response = respond(
            StatusCode::OK,
            b"{}".to_vec(),
            &["unknown field \"spec.foo\"".into()],
        );
        let warning = response.headers().get(header::WARNING).unwrap();
        assert_eq!(warning, r#"299 - "unknown field \"spec.foo\"""#);
    }

    fn live_with(manager: &str, image: &str, labels: Value) -> Value {
        let config = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"containers": [{"name": "web", "image": image}]}
        });
        let mut live = config.clone();
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["managedFields"] =
            json!([entry(Kind::Pod, manager, "Apply", &FieldSet::of(&config))]);
        live
    }

    fn config(image: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"containers": [{"name": "web", "image": image}]}
        })
    }

    #[test]
    fn an_apply_removes_the_fields_its_manager_stopped_applying() {
        let live = live_with("kubectl", "nginx", json!({"app": "web", "tier": "front"}));
        let next = config("nginx:2", json!({"app": "web"}));
        let (merged, pinned) = merge_applied(
            Kind::Pod,
            &live,
            &next,
            &FieldSet::of(&next),
            "kubectl",
            false,
        )
        .unwrap();
        assert!(!pinned);
        assert_eq!(merged["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(merged["spec"]["containers"][0]["image"], "nginx:2");
        assert_eq!(merged["metadata"]["resourceVersion"], "7");
        let entries = managed_entries(&merged);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].fields, FieldSet::of(&next));
    }

    #[test]
    fn another_managers_different_value_conflicts_unless_forced() {
        let live = live_with("kubectl", "nginx", json!({"app": "web"}));
        let next = config("nginx:2", json!({"app": "web"}));
        let conflicts = merge_applied(
            Kind::Pod,
            &live,
            &next,
            &FieldSet::of(&next),
            "other",
            false,
        )
        .unwrap_err();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(conflicts[0].0, "kubectl");
        assert_eq!(
            patch::display_path(&conflicts[0].1),
            r#".spec.containers[name="web"].image"#
        );
        let response = conflict_response(Kind::Pod, "web", &conflicts);
        assert_eq!(response.status(), StatusCode::CONFLICT);

        let (merged, _) =
            merge_applied(Kind::Pod, &live, &next, &FieldSet::of(&next), "other", true).unwrap();
        assert_eq!(merged["spec"]["containers"][0]["image"], "nginx:2");
        let entries = managed_entries(&merged);
        let kubectl = entries.iter().find(|m| m.manager == "kubectl").unwrap();
        let image = FieldSet::of(&next)
            .0
            .into_iter()
            .find(|p| p.last().is_some_and(|s| s == "f:image"))
            .unwrap();
        assert!(
            !kubectl.fields.contains(&image),
            "forcing takes the field over"
        );
        // The same value is shared, not a conflict.
        let same = config("nginx", json!({"app": "web"}));
        assert!(
            merge_applied(
                Kind::Pod,
                &live,
                &same,
                &FieldSet::of(&same),
                "other",
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn fields_another_manager_also_applies_stay_when_one_stops() {
        let mut live = live_with("kubectl", "nginx", json!({"app": "web"}));
        let also = config("nginx", json!({"app": "web"}));
        let mut entries = live["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .clone();
        entries.push(entry(Kind::Pod, "other", "Apply", &FieldSet::of(&also)));
        live["metadata"]["managedFields"] = Value::Array(entries);
        let next = config("nginx", json!({}));
        let (merged, _) = merge_applied(
            Kind::Pod,
            &live,
            &next,
            &FieldSet::of(&next),
            "kubectl",
            false,
        )
        .unwrap();
        assert_eq!(merged["metadata"]["labels"], json!({"app": "web"}));
    }

    #[test]
    fn decoder_paths_lead_to_the_field_they_name() {
        let mut value = json!({"a": {"b": [{"c": 1, "d": 2}]}});
        assert!(remove_dotted(&mut value, "a.b[0].c"));
        assert_eq!(value, json!({"a": {"b": [{"d": 2}]}}));
        assert!(!remove_dotted(&mut value, "a.b[3].d"));
        assert!(!remove_dotted(&mut value, "a.b[x].d"));
        assert!(!remove_dotted(&mut value, "a.b[0"));
    }
}
