//! OpenAPI v3, as the kube-apiserver serves it: `/openapi/v3` lists one document per group
//! version (`api/v1`, `apis/apps/v1`), each with the paths of its resources and the schemas of
//! its kinds under `components/schemas`, named as Kubernetes names them
//! (`io.k8s.api.core.v1.PodSpec`). `kubectl explain` reads its fields, types and descriptions
//! from here; kubectl's writes read whether the server validates fields itself.
//!
//! The schemas are not written here: they are converted from the JSON Schema that
//! [`skiff_api::explain::schema`] derives from the serde types the API decodes objects into,
//! so `kubectl explain` and `skiff explain` say the same thing, and neither can drift from
//! what the API accepts. Written here are only Kubernetes' own envelope types that Skiff
//! answers with but does not store (ListMeta, Status, DeleteOptions, WatchEvent, the lists),
//! and the merge keys and list types of the lists, which are Kubernetes' and not serde's.
//!
//! Every document is built once and served with its hash as ETag; the root names each
//! group version's document with `?hash=`, which clients cache for good (see discovery.rs).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};
use skiff_api::Kind;

use super::discovery::KUBERNETES_MINOR;
use super::resources::{RESOURCES, Resource};

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const CORE: &str = "io.k8s.api.core.v1";
const APPS: &str = "io.k8s.api.apps.v1";
const INTSTR: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";

/// Where a `$ref` into a document's schemas points.
fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The Kubernetes name of a type the serde schemas call `def`.
/// Types are core/v1 unless they are apps/v1's (a deployment's own) or apimachinery's.
fn kubernetes_name(def: &str) -> String {
    match def {
        "ObjectMeta" | "OwnerReference" | "LabelSelector" | "LabelSelectorRequirement" => {
            format!("{META}.{def}")
        }
        "IntOrString" => INTSTR.to_string(),
        "Deployment"
        | "DeploymentSpec"
        | "DeploymentStatus"
        | "DeploymentStrategy"
        | "DeploymentCondition"
        | "RollingUpdateDeployment" => format!("{APPS}.{def}"),
        // Rust's casing of the acronyms; Kubernetes spells them in capitals.
        "HttpGetAction" => format!("{CORE}.HTTPGetAction"),
        "TcpSocketAction" => format!("{CORE}.TCPSocketAction"),
        _ => format!("{CORE}.{def}"),
    }
}

/// How Kubernetes merges a list field (strategic merge patch and server-side apply): the
/// `x-kubernetes-*` extensions of `field` in the type `owner` (Kubernetes' type name).
/// These are Kubernetes' values for the fields Skiff has; a patch implementation can read
/// them from the served document.
fn list_extensions(owner: &str, field: &str) -> Option<Value> {
    let merge = |key: &str| json!({ "x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge" });
    let short = owner.rsplit('.').next().unwrap_or(owner);
    Some(match (short, field) {
        ("PodSpec", "containers") => merge("name"),
        ("PodSpec", "volumes") => json!({
            "x-kubernetes-patch-merge-key": "name",
            "x-kubernetes-patch-strategy": "merge,retainKeys",
        }),
        ("Container", "env") => merge("name"),
        ("Container", "volumeMounts") => merge("mountPath"),
        ("Container", "ports") => json!({
            "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
            "x-kubernetes-list-type": "map",
            "x-kubernetes-patch-merge-key": "containerPort",
            "x-kubernetes-patch-strategy": "merge",
        }),
        ("PodStatus" | "NodeStatus" | "NamespaceStatus", "conditions") => merge("type"),
        ("DeploymentStatus", "conditions") => merge("type"),
        ("NodeStatus", "addresses") => merge("type"),
        ("NodeSpec", "podCIDRs") => json!({ "x-kubernetes-patch-strategy": "merge" }),
        ("ObjectMeta", "finalizers") => json!({ "x-kubernetes-patch-strategy": "merge" }),
        ("ObjectMeta", "ownerReferences") => merge("uid"),
        ("PodSpec", "nodeSelector") | ("LabelSelector", "matchLabels") => {
            json!({ "x-kubernetes-map-type": "atomic" })
        }
        ("LabelSelector", "matchExpressions") => json!({ "x-kubernetes-list-type": "atomic" }),
        _ => return None,
    })
}

/// Doc comments break lines at 100 columns; kubectl wraps descriptions itself, so single
/// line breaks become spaces and only blank lines (paragraphs) stay.
fn reflow(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn is_null_type(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// One JSON Schema (draft 2020-12, as schemars writes it) in OpenAPI 3.0's Kubernetes
/// dialect: `Option<T>`'s `anyOf: [T, null]` and `["string", "null"]` are just T (absence is
/// how Kubernetes says null), `$ref`s point into `components/schemas` by Kubernetes' names
/// and sit in an `allOf` beside the field's own description, date-times are metav1.Time and
/// quantities resource.Quantity, other unions are `oneOf`, and `additionalProperties: false`
/// is left out (the server checks unknown fields itself, `fieldValidation`).
fn convert(schema: &Value) -> Value {
    let Value::Object(fields) = schema else {
        return schema.clone();
    };
    if let Some(alternatives) = fields.get("anyOf").and_then(Value::as_array) {
        let inner = match alternatives.as_slice() {
            [a, b] if is_null_type(b) => Some(a),
            [a, b] if is_null_type(a) => Some(b),
            _ => None,
        };
        if let Some(inner) = inner {
            let mut out = convert(inner);
            for key in ["description", "default"] {
                if let Some(value) = fields.get(key) {
                    out[key] = convert_value(key, value);
                }
            }
            return out;
        }
    }
    let mut out = Map::new();
    for (key, value) in fields {
        match key.as_str() {
            "$schema" | "$defs" | "title" | "$ref" => {}
            "additionalProperties" if value.is_boolean() => {}
            "anyOf" => {
                let alternatives = value.as_array().map_or(&[][..], Vec::as_slice);
                let converted: Vec<Value> = alternatives
                    .iter()
                    .filter(|a| !is_null_type(a))
                    .map(convert)
                    .collect();
                out.insert("oneOf".into(), converted.into());
            }
            _ => {
                out.insert(key.clone(), convert_value(key, value));
            }
        }
    }
    if let Some(target) = fields.get("$ref").and_then(Value::as_str) {
        let def = target.rsplit('/').next().unwrap_or(target);
        out.insert("allOf".into(), json!([reference(&kubernetes_name(def))]));
    }
    let format = out.get("format").and_then(Value::as_str);
    let named = match format {
        Some("date-time") => Some(TIME),
        Some("quantity") => Some(QUANTITY),
        _ => None,
    };
    if let Some(name) = named {
        out.remove("format");
        out.remove("type");
        out.insert("allOf".into(), json!([reference(name)]));
    }
    Value::Object(out)
}

/// One keyword's value, converted as its keyword needs.
fn convert_value(key: &str, value: &Value) -> Value {
    match (key, value) {
        ("description", Value::String(text)) => Value::String(reflow(text)),
        // `["string", "null"]`: the one type that is not null.
        ("type", Value::Array(types)) => types
            .iter()
            .find(|t| t.as_str() != Some("null"))
            .cloned()
            .unwrap_or(Value::Null),
        ("properties", Value::Object(properties)) => properties
            .iter()
            .map(|(name, schema)| (name.clone(), convert(schema)))
            .collect::<Map<_, _>>()
            .into(),
        ("items" | "additionalProperties" | "not", schema) => convert(schema),
        ("oneOf" | "allOf", Value::Array(schemas)) => schemas.iter().map(convert).collect(),
        (_, other) => other.clone(),
    }
}

/// A named type's schema: converted, with the list extensions of its fields.
fn named_schema(name: &str, schema: &Value) -> Value {
    let mut out = convert(schema);
    if let Some(properties) = out.get_mut("properties").and_then(Value::as_object_mut) {
        for (field, property) in properties.iter_mut() {
            if let (Some(extensions), Some(property)) =
                (list_extensions(name, field), property.as_object_mut())
            {
                property.extend(
                    extensions
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            }
        }
    }
    if name == INTSTR {
        // kube-openapi's own marker for the int-or-string union.
        out["format"] = "int-or-string".into();
    }
    out
}

fn gvk(group: &str, kind: &str) -> Value {
    json!({ "group": group, "version": "v1", "kind": kind })
}

/// The schemas of `kind` and of every type it uses, by Kubernetes' names, into `out`.
fn kind_schemas(kind: Kind, out: &mut BTreeMap<String, Value>) {
    let root = skiff_api::explain::schema(kind).to_value();
    if let Some(defs) = root.get("$defs").and_then(Value::as_object) {
        for (def, schema) in defs {
            let name = kubernetes_name(def);
            let converted = named_schema(&name, schema);
            out.entry(name).or_insert(converted);
        }
    }
    let name = kubernetes_name(kind.as_str());
    let mut converted = named_schema(&name, &root);
    converted["x-kubernetes-group-version-kind"] = json!([gvk(kind.group(), kind.as_str())]);
    out.insert(name, converted);
}

fn string_field(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// `apiVersion` and `kind`, as every object and list has them.
fn type_fields() -> [(String, Value); 2] {
    [
        (
            "apiVersion".into(),
            string_field(
                "APIVersion defines the versioned schema of this representation of an object.",
            ),
        ),
        (
            "kind".into(),
            string_field(
                "Kind is a string value representing the REST resource this object represents.",
            ),
        ),
    ]
}

/// `<Kind>List`: what a list of the kind answers.
fn list_schema(kind: Kind) -> Value {
    let mut properties: Map<String, Value> = type_fields().into_iter().collect();
    properties.insert(
        "items".into(),
        json!({
            "type": "array",
            "description": format!("List of {}.", kind.plural()),
            "items": json!({ "default": {}, "allOf": [reference(&kubernetes_name(kind.as_str()))] }),
        }),
    );
    properties.insert(
        "metadata".into(),
        json!({
            "description": "Standard list metadata.",
            "default": {},
            "allOf": [reference(&format!("{META}.ListMeta"))],
        }),
    );
    json!({
        "type": "object",
        "description": format!("{}List is a list of {}.", kind.as_str(), kind.plural()),
        "required": ["items"],
        "properties": properties,
        "x-kubernetes-group-version-kind": [gvk(kind.group(), &format!("{}List", kind.as_str()))],
    })
}

/// apimachinery's types that Skiff answers with but does not store, and the scalar types
/// the converted schemas point at.
fn envelope_schemas(groups: &[&str], out: &mut BTreeMap<String, Value>) {
    let every_group = |kind: &str| -> Value {
        groups
            .iter()
            .map(|g| gvk(g, kind))
            .collect::<Vec<_>>()
            .into()
    };
    let object = |description: &str, properties: Value| json!({ "type": "object", "description": description, "properties": properties });
    out.insert(
        TIME.into(),
        json!({
            "type": "string",
            "format": "date-time",
            "description": "Time is an RFC 3339 date and time in UTC, to the second (2024-01-02T03:04:05Z).",
        }),
    );
    out.insert(
        QUANTITY.into(),
        json!({
            "description": "Quantity is a decimal number with an optional suffix, as a string. CPU is in cores (\"500m\" is half a core, \"2\" two cores); memory and storage in bytes, with binary (Ki, Mi, Gi, Ti) or decimal (k, M, G, T) suffixes (\"128Mi\", \"1G\").",
            "oneOf": [{ "type": "string" }, { "type": "number" }],
        }),
    );
    out.insert(
        format!("{META}.ListMeta"),
        object(
            "ListMeta describes metadata that synthetic resources must have, including lists.",
            json!({
                "resourceVersion": string_field("String that identifies the server's internal version of this list: a watch from it sees every change after it."),
                "continue": string_field("Set when the list was cut short by a limit: pass it as the continue parameter to get the next page."),
                "remainingItemCount": { "type": "integer", "format": "int64", "description": "How many objects the list has after this page." },
                "selfLink": string_field("Deprecated: not set."),
            }),
        ),
    );
    let mut status = object(
        "Status is a return value for calls that do not return other objects: errors, and deletions.",
        json!({
            "apiVersion": string_field("APIVersion defines the versioned schema of this representation of an object."),
            "kind": string_field("Kind is a string value representing the REST resource this object represents."),
            "code": { "type": "integer", "format": "int32", "description": "Suggested HTTP return code for this status, 0 if not set." },
            "details": {
                "description": "Extended data associated with the reason: the object it is about, and its causes.",
                "allOf": [reference(&format!("{META}.StatusDetails"))],
            },
            "message": string_field("A human-readable description of the status of this operation."),
            "metadata": {
                "description": "Standard list metadata.",
                "default": {},
                "allOf": [reference(&format!("{META}.ListMeta"))],
            },
            "reason": string_field("A machine-readable description of why this operation is in the \"Failure\" status (NotFound, AlreadyExists, Conflict, Invalid, Forbidden…)."),
            "status": string_field("Status of the operation: \"Success\" or \"Failure\"."),
        }),
    );
    status["x-kubernetes-group-version-kind"] = json!([gvk("", "Status")]);
    out.insert(format!("{META}.Status"), status);
    out.insert(
        format!("{META}.StatusDetails"),
        object(
            "StatusDetails is a set of additional properties that may be set by the server to provide additional information about a response.",
            json!({
                "causes": {
                    "type": "array",
                    "description": "The causes of the failure: for Invalid, one per field in error.",
                    "items": { "default": {}, "allOf": [reference(&format!("{META}.StatusCause"))] },
                    "x-kubernetes-list-type": "atomic",
                },
                "group": string_field("The group attribute of the resource associated with the status."),
                "kind": string_field("The kind attribute of the resource associated with the status."),
                "name": string_field("The name attribute of the resource associated with the status."),
                "retryAfterSeconds": { "type": "integer", "format": "int32", "description": "How many seconds the client should wait before retrying." },
                "uid": string_field("UID of the resource."),
            }),
        ),
    );
    out.insert(
        format!("{META}.StatusCause"),
        object(
            "StatusCause provides more information about an api.Status failure, including cases when multiple errors are encountered.",
            json!({
                "field": string_field("The field of the resource that caused this error, as a path (spec.containers[0].name)."),
                "message": string_field("A human-readable description of the cause of the error."),
                "reason": string_field("A machine-readable description of the cause of the error (FieldValueInvalid, FieldValueRequired…)."),
            }),
        ),
    );
    let mut delete_options = object(
        "DeleteOptions may be provided when deleting an API object.",
        json!({
            "apiVersion": string_field("APIVersion defines the versioned schema of this representation of an object."),
            "kind": string_field("Kind is a string value representing the REST resource this object represents."),
            "dryRun": {
                "type": "array",
                "description": "When present, the deletion is checked but not persisted. The only value is All.",
                "items": { "type": "string", "default": "" },
                "x-kubernetes-list-type": "atomic",
            },
            "gracePeriodSeconds": { "type": "integer", "format": "int64", "description": "The duration in seconds before the object should be deleted; 0 deletes at once." },
            "preconditions": {
                "description": "Must be fulfilled before a deletion is carried out.",
                "allOf": [reference(&format!("{META}.Preconditions"))],
            },
            "propagationPolicy": string_field("Whether and how garbage collection is performed: Orphan, Background or Foreground."),
        }),
    );
    delete_options["x-kubernetes-group-version-kind"] = every_group("DeleteOptions");
    out.insert(format!("{META}.DeleteOptions"), delete_options);
    out.insert(
        format!("{META}.Preconditions"),
        object(
            "Preconditions must be fulfilled before an operation (update, delete, etc.) is carried out.",
            json!({
                "resourceVersion": string_field("Specifies the target ResourceVersion."),
                "uid": string_field("Specifies the target UID."),
            }),
        ),
    );
    let mut watch_event = object(
        "Event represents a single event to a watched resource.",
        json!({
            "object": { "type": "object", "description": "The object: for ADDED and MODIFIED its new state, for DELETED its last state, for BOOKMARK only its resourceVersion, for ERROR a Status." },
            "type": string_field("ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."),
        }),
    );
    watch_event["required"] = json!(["type", "object"]);
    watch_event["x-kubernetes-group-version-kind"] = every_group("WatchEvent");
    out.insert(format!("{META}.WatchEvent"), watch_event);
}

/// Query parameters, by name: what a verb takes.
fn parameter(name: &str) -> Value {
    let (kind, description) = match name {
        "allowWatchBookmarks" => ("boolean", "Asks a watch for BOOKMARK events."),
        "continue" => (
            "string",
            "The continue token of the previous page of a list.",
        ),
        "dryRun" => ("string", "All: check the request, persist nothing."),
        "fieldManager" => ("string", "The name of the actor making these changes."),
        "fieldSelector" => (
            "string",
            "Lists only objects whose fields match (metadata.name=x, spec.nodeName=n).",
        ),
        "fieldValidation" => (
            "string",
            "How unknown or duplicate fields in the body are treated: Ignore, Warn or Strict.",
        ),
        "force" => (
            "boolean",
            "Server-side apply: take over fields owned by other managers.",
        ),
        "gracePeriodSeconds" => (
            "integer",
            "The duration in seconds before the object should be deleted; 0 deletes at once.",
        ),
        "labelSelector" => ("string", "Lists only objects whose labels match."),
        "limit" => (
            "integer",
            "The most objects a list answers with; the rest come with its continue token.",
        ),
        "propagationPolicy" => (
            "string",
            "Whether and how dependents are deleted: Orphan, Background or Foreground.",
        ),
        "resourceVersion" => (
            "string",
            "Lists as of at least this version; a watch starts after it.",
        ),
        "resourceVersionMatch" => (
            "string",
            "How resourceVersion applies to a list: NotOlderThan or Exact.",
        ),
        "timeoutSeconds" => (
            "integer",
            "Ends a list or watch call after this many seconds.",
        ),
        "watch" => (
            "boolean",
            "Watches for changes to the described resources instead of listing them.",
        ),
        "pretty" => ("string", "If 'true', the output is pretty printed."),
        _ => ("string", ""),
    };
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": kind, "uniqueItems": true },
    })
}

fn parameters(names: &[&str]) -> Value {
    names
        .iter()
        .map(|n| parameter(n))
        .collect::<Vec<_>>()
        .into()
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": { "type": "string", "uniqueItems": true },
    })
}

/// A JSON response of the type named `schema`.
fn response(code: &str, schema: &str) -> Value {
    json!({
        code: {
            "description": match code { "201" => "Created", "202" => "Accepted", _ => "OK" },
            "content": { "application/json": { "schema": reference(schema) } },
        },
        "401": { "description": "Unauthorized" },
    })
}

const WRITE: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];

/// The operations on one resource's collection path, item path and subresource paths, from
/// its verbs in the table.
fn resource_paths(prefix: &str, resource: &Resource, out: &mut Map<String, Value>) {
    let kind = resource.kind;
    let schema = kubernetes_name(kind.as_str());
    let list_schema = format!("{schema}List");
    let status = format!("{META}.Status");
    let gvk = gvk(kind.group(), kind.as_str());
    let scope = if kind.is_namespaced() {
        "namespaces/{namespace}/"
    } else {
        ""
    };
    let collection = format!("{prefix}/{scope}{}", kind.plural());
    let item = format!("{collection}/{{name}}");
    let operation = |action: &str, description: String, parameters: Value, responses: Value| {
        json!({
            "description": description,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": parameters,
            "responses": responses,
        })
    };
    let body = |schema: &str| json!({ "content": { "*/*": { "schema": reference(schema) } }, "required": true });
    let verbs = resource.verbs;
    let has = |verb: &str| verbs.contains(&verb);
    let common = |mut path: Map<String, Value>, named: bool| {
        let mut shared = vec![];
        if named {
            shared.push(path_parameter(
                "name",
                &format!("name of the {}", kind.as_str()),
            ));
        }
        if kind.is_namespaced() {
            shared.push(path_parameter(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        shared.push(parameter("pretty"));
        path.insert("parameters".into(), shared.into());
        Value::Object(path)
    };
    let kind_name = kind.as_str();

    let mut paths = Map::new();
    if has("list") || has("watch") {
        paths.insert(
            "get".into(),
            operation(
                "list",
                format!("list or watch objects of kind {kind_name}"),
                parameters(&[
                    "allowWatchBookmarks",
                    "continue",
                    "fieldSelector",
                    "labelSelector",
                    "limit",
                    "resourceVersion",
                    "resourceVersionMatch",
                    "timeoutSeconds",
                    "watch",
                ]),
                response("200", &list_schema),
            ),
        );
    }
    if has("create") {
        let mut post = operation(
            "post",
            format!("create a {kind_name}"),
            parameters(WRITE),
            response("201", &schema),
        );
        post["requestBody"] = body(&schema);
        paths.insert("post".into(), post);
    }
    if has("deletecollection") {
        let mut delete = operation(
            "deletecollection",
            format!("delete collection of {kind_name}"),
            parameters(&[
                "dryRun",
                "gracePeriodSeconds",
                "labelSelector",
                "fieldSelector",
                "propagationPolicy",
            ]),
            response("200", &status),
        );
        delete["requestBody"] = body(&format!("{META}.DeleteOptions"));
        paths.insert("delete".into(), delete);
    }
    if !paths.is_empty() {
        out.insert(collection.clone(), common(paths, false));
    }

    let mut paths = Map::new();
    if has("get") {
        paths.insert(
            "get".into(),
            operation(
                "get",
                format!("read the specified {kind_name}"),
                json!([]),
                response("200", &schema),
            ),
        );
    }
    if has("update") {
        let mut put = operation(
            "put",
            format!("replace the specified {kind_name}"),
            parameters(WRITE),
            response("200", &schema),
        );
        put["requestBody"] = body(&schema);
        paths.insert("put".into(), put);
    }
    // kubectl looks for fieldValidation on the PATCH operation before every write to learn
    // whether the server validates fields; Skiff always does, so the operation is declared
    // even while PATCH is not in the table (it then answers 405).
    let mut patch = operation(
        "patch",
        format!("partially update the specified {kind_name}"),
        parameters(&["dryRun", "fieldManager", "fieldValidation", "force"]),
        response("200", &schema),
    );
    patch["requestBody"] = json!({
        "content": {
            "application/json-patch+json": { "schema": { "type": "object" } },
            "application/merge-patch+json": { "schema": { "type": "object" } },
            "application/strategic-merge-patch+json": { "schema": { "type": "object" } },
            "application/apply-patch+yaml": { "schema": { "type": "object" } },
        },
        "required": true,
    });
    paths.insert("patch".into(), patch);
    if has("delete") {
        let mut delete = operation(
            "delete",
            format!("delete a {kind_name}"),
            parameters(&["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            response("200", &status),
        );
        delete["requestBody"] = body(&format!("{META}.DeleteOptions"));
        paths.insert("delete".into(), delete);
    }
    out.insert(item.clone(), common(paths, true));

    for (subresource, verbs) in resource.subresources {
        let mut paths = Map::new();
        // Only status answers with the kind itself; the others (log, exec, scale…) with
        // types of their own, which these documents do not describe.
        let answers = (*subresource == "status").then_some(schema.as_str());
        for verb in *verbs {
            let (method, action) = match *verb {
                "get" => ("get", "get"),
                "update" => ("put", "put"),
                "patch" => ("patch", "patch"),
                "create" => ("post", "post"),
                _ => continue,
            };
            let mut op = operation(
                action,
                format!("{verb} {subresource} of the specified {kind_name}"),
                if method == "get" {
                    json!([])
                } else {
                    parameters(WRITE)
                },
                json!({ "200": { "description": "OK" }, "401": { "description": "Unauthorized" } }),
            );
            if let Some(schema) = answers {
                op["responses"] = response("200", schema);
                if method != "get" {
                    op["requestBody"] = body(schema);
                }
            }
            paths.insert(method.into(), op);
        }
        if !paths.is_empty() {
            out.insert(format!("{item}/{subresource}"), common(paths, true));
        }
    }
}

/// The served group versions as OpenAPI names them (`api/v1`, `apis/apps/v1`), with the
/// group each holds.
pub fn group_versions() -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for resource in &RESOURCES {
        let group = resource.kind.group();
        let path = match group {
            "" => "api/v1".to_string(),
            group => format!("apis/{group}/v1"),
        };
        if !out.iter().any(|(p, _)| *p == path) {
            out.push((path, group));
        }
    }
    out
}

/// The document of one group version (`api/v1`): its paths and every schema they use.
fn build(path: &str, group: &str) -> Value {
    let mut schemas = BTreeMap::new();
    let mut paths = Map::new();
    for resource in RESOURCES.iter().filter(|r| r.kind.group() == group) {
        kind_schemas(resource.kind, &mut schemas);
        schemas.insert(
            format!("{}List", kubernetes_name(resource.kind.as_str())),
            list_schema(resource.kind),
        );
        resource_paths(&format!("/{path}"), resource, &mut paths);
    }
    envelope_schemas(&[group], &mut schemas);
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": format!("v1.{KUBERNETES_MINOR}.0") },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                },
            },
        },
        "security": [{ "BearerToken": [] }],
    })
}

/// A document as served: its bytes and their hash (the ETag, and the root's `?hash=`).
pub struct Document {
    pub bytes: Vec<u8>,
    pub hash: String,
}

impl Document {
    fn new(value: &Value) -> Document {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        let hash = hex::encode_upper(Sha512::digest(&bytes));
        Document { bytes, hash }
    }
}

/// Every group version's document (keyed by its path, `api/v1`), and the root.
struct Documents {
    root: Document,
    group_versions: BTreeMap<String, Document>,
}

fn documents() -> &'static Documents {
    static DOCUMENTS: OnceLock<Documents> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let group_versions: BTreeMap<String, Document> = group_versions()
            .into_iter()
            .map(|(path, group)| {
                let document = Document::new(&build(&path, group));
                (path, document)
            })
            .collect();
        let paths: Map<String, Value> = group_versions
            .iter()
            .map(|(path, document)| {
                let url = format!("/openapi/v3/{path}?hash={}", document.hash);
                (path.clone(), json!({ "serverRelativeURL": url }))
            })
            .collect();
        Documents {
            root: Document::new(&json!({ "paths": paths })),
            group_versions,
        }
    })
}

/// `/openapi/v3`: where each group version's document is, with its hash.
pub fn root() -> &'static Document {
    &documents().root
}

/// `/openapi/v3/<path>` (`api/v1`, `apis/apps/v1`), or `None` for one not served.
pub fn group_version(path: &str) -> Option<&'static Document> {
    documents().group_versions.get(path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn parsed(path: &str) -> Value {
        serde_json::from_slice(&group_version(path).unwrap().bytes).unwrap()
    }

    /// Every `$ref` anywhere inside `value`.
    fn refs(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(fields) => {
                for (key, field) in fields {
                    match (key.as_str(), field) {
                        ("$ref", Value::String(target)) => {
                            out.insert(target.clone());
                        }
                        _ => refs(field, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
            _ => {}
        }
    }

    #[test]
    fn every_ref_in_every_document_resolves_to_a_schema_of_that_document() {
        for (path, _) in group_versions() {
            let document = parsed(&path);
            assert_eq!(document["openapi"], "3.0.0");
            let schemas = document["components"]["schemas"].as_object().unwrap();
            let mut targets = BTreeSet::new();
            refs(&document, &mut targets);
            assert!(targets.len() > 20, "{path}: {targets:?}");
            for target in targets {
                let name = target
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("{path}: {target} points outside the schemas"));
                assert!(
                    schemas.contains_key(name),
                    "{path}: {target} is not defined"
                );
            }
            // Nothing of JSON Schema's draft 2020-12 is left over.
            let text = String::from_utf8(group_version(&path).unwrap().bytes.clone()).unwrap();
            for leftover in [
                "$defs",
                "\"null\"",
                "\"anyOf\"",
                "additionalProperties\":false",
            ] {
                assert!(!text.contains(leftover), "{path} has {leftover}");
            }
        }
    }

    #[test]
    fn each_kind_and_its_list_carry_their_group_version_kind() {
        let core = parsed("api/v1");
        let apps = parsed("apis/apps/v1");
        for kind in Kind::ALL {
            let document = if kind.group().is_empty() {
                &core
            } else {
                &apps
            };
            let schemas = &document["components"]["schemas"];
            let name = kubernetes_name(kind.as_str());
            for (schema, kind_name) in [
                (&schemas[&name], kind.as_str().to_string()),
                (&schemas[format!("{name}List")], format!("{kind}List")),
            ] {
                assert_eq!(
                    schema["x-kubernetes-group-version-kind"],
                    json!([{ "group": kind.group(), "version": "v1", "kind": kind_name }]),
                    "{kind_name}"
                );
            }
            // kubectl explain finds the kind by the GVK of its resource's paths.
            let scope = if kind.is_namespaced() {
                "namespaces/{namespace}/"
            } else {
                ""
            };
            let prefix = if kind.group().is_empty() {
                "/api/v1".to_string()
            } else {
                format!("/apis/{}/v1", kind.group())
            };
            let collection = &document["paths"][format!("{prefix}/{scope}{}", kind.plural())];
            assert_eq!(
                collection["get"]["x-kubernetes-group-version-kind"]["kind"],
                kind.as_str()
            );
            assert_eq!(collection["get"]["x-kubernetes-action"], "list");
        }
        assert_eq!(
            core["components"]["schemas"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["allOf"]
                [0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodSpec"
        );
        assert!(
            core["components"]["schemas"]
                .get("io.k8s.api.apps.v1.Deployment")
                .is_none()
        );
        // A deployment's document holds the pod types its template uses, under core/v1.
        assert!(apps["components"]["schemas"]["io.k8s.api.core.v1.PodTemplateSpec"].is_object());
        assert!(group_version("apis/batch/v1").is_none());
    }

    #[test]
    fn fields_read_as_kubernetes_writes_them() {
        let core = parsed("api/v1");
        let schemas = &core["components"]["schemas"];
        let spec = &schemas["io.k8s.api.core.v1.PodSpec"];
        // Required is serde's: what has no default.
        assert!(spec.get("required").is_none());
        let condition = &schemas["io.k8s.api.core.v1.PodCondition"];
        assert_eq!(condition["required"], json!(["type", "status"]));
        let node_selector = &spec["properties"]["nodeSelector"];
        assert_eq!(node_selector["type"], "object");
        assert_eq!(node_selector["additionalProperties"]["type"], "string");
        assert_eq!(node_selector["x-kubernetes-map-type"], "atomic");
        assert!(
            !node_selector["description"]
                .as_str()
                .unwrap()
                .contains('\n')
        );
        // Optional fields are their type, not a union with null.
        assert_eq!(spec["properties"]["nodeName"]["type"], "string");
        assert_eq!(spec["properties"]["hostNetwork"]["type"], "boolean");
        // Times, quantities and int-or-strings are apimachinery's named types.
        let meta = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"];
        assert_eq!(
            meta["properties"]["creationTimestamp"]["allOf"][0]["$ref"],
            format!("#/components/schemas/{TIME}")
        );
        let limits = &schemas["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"];
        assert_eq!(
            limits["additionalProperties"]["allOf"][0]["$ref"],
            format!("#/components/schemas/{QUANTITY}")
        );
        let port = &schemas["io.k8s.api.core.v1.HTTPGetAction"]["properties"]["port"];
        assert_eq!(
            port["allOf"][0]["$ref"],
            format!("#/components/schemas/{INTSTR}")
        );
        assert_eq!(schemas[INTSTR]["format"], "int-or-string");
        assert_eq!(schemas[INTSTR]["oneOf"][1]["type"], "string");
        // Merge keys of the lists strategic merge patch merges by name.
        let container = &schemas["io.k8s.api.core.v1.Container"]["properties"];
        for (list, key) in [
            (&spec["properties"]["containers"], "name"),
            (&spec["properties"]["volumes"], "name"),
            (&container["env"], "name"),
            (&container["ports"], "containerPort"),
            (&container["volumeMounts"], "mountPath"),
        ] {
            assert_eq!(list["x-kubernetes-patch-merge-key"], key, "{list}");
            assert!(
                list["x-kubernetes-patch-strategy"]
                    .as_str()
                    .unwrap()
                    .starts_with("merge")
            );
        }
        assert_eq!(container["ports"]["x-kubernetes-list-type"], "map");
        assert_eq!(
            container["ports"]["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
    }

    #[test]
    fn writes_declare_field_validation_and_dry_run_and_deletes_take_propagation() {
        let core = parsed("api/v1");
        let item = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
        let names = |op: &Value| -> Vec<String> {
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect()
        };
        for method in ["put", "patch"] {
            let names = names(&item[method]);
            assert!(
                names.contains(&"fieldValidation".into()) && names.contains(&"dryRun".into()),
                "{method}: {names:?}"
            );
        }
        assert!(names(&item["delete"]).contains(&"propagationPolicy".into()));
        assert!(names(&item["delete"]).contains(&"gracePeriodSeconds".into()));
        let path_params = names(item);
        assert_eq!(path_params, ["name", "namespace", "pretty"]);
        assert_eq!(
            core["paths"]["/api/v1/nodes/{name}"]["parameters"][0]["name"],
            "name"
        );
        assert_eq!(
            core["paths"]["/api/v1/nodes/{name}"]["parameters"][1]["name"],
            "pretty"
        );
        let list = names(&core["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]);
        for name in [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "watch",
        ] {
            assert!(list.contains(&name.to_string()), "{name}");
        }
        assert!(
            core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/status"]["put"].is_object()
        );
    }

    #[test]
    fn the_root_names_each_document_by_its_hash() {
        let root: Value = serde_json::from_slice(&root().bytes).unwrap();
        for (path, _) in group_versions() {
            let hash = &group_version(&path).unwrap().hash;
            assert_eq!(hash.len(), 128);
            assert_eq!(
                root["paths"][&path]["serverRelativeURL"],
                format!("/openapi/v3/{path}?hash={hash}")
            );
        }
        // The same bytes every time: a client's cache stays valid across members.
        assert_eq!(
            Document::new(&build("api/v1", "")).hash,
            group_version("api/v1").unwrap().hash
        );
    }

    #[test]
    fn types_shared_by_kinds_convert_the_same_in_each() {
        let mut seen: BTreeMap<String, Value> = BTreeMap::new();
        for kind in Kind::ALL {
            let mut schemas = BTreeMap::new();
            kind_schemas(kind, &mut schemas);
            for (name, schema) in schemas {
                if let Some(earlier) = seen.get(&name) {
                    assert_eq!(earlier, &schema, "{name} differs in {kind}");
                }
                seen.insert(name, schema);
            }
        }
    }
}
