//! `skiff explain TYPE[.field.path]`: the documentation of a kind or one of its fields, as
//! kubectl prints it.
//!
//! Everything comes from the JSON Schema that `schemars` derives from the very serde types the
//! API decodes objects into ([`crate::types`], [`crate::meta`]): field names are serde's (with
//! its renames), a field is required when serde requires it (no `Option`, no `default`), and
//! descriptions are the types' doc comments. So explain cannot drift from what the API accepts.

use schemars::Schema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::kind::Kind;
use crate::types::{Deployment, Event, Namespace, Node, Pod};

/// Why a path cannot be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The first segment names no kind.
    #[error("the server doesn't have a resource type {0:?}")]
    UnknownResource(String),
    /// `field` is not a field of the object at `path` (the path as given, up to there).
    #[error("field {field:?} does not exist in {path}")]
    UnknownField { path: String, field: String },
}

/// Width kubectl wraps descriptions to, indentation included.
const WIDTH: usize = 80;

/// The JSON Schema (draft 2020-12) of a kind: its fields at the top, the types they use under
/// `$defs`.
pub fn schema(kind: Kind) -> Schema {
    let generator = SchemaSettings::draft2020_12().into_generator();
    match kind {
        Kind::Namespace => generator.into_root_schema_for::<Namespace>(),
        Kind::Pod => generator.into_root_schema_for::<Pod>(),
        Kind::Deployment => generator.into_root_schema_for::<Deployment>(),
        Kind::Node => generator.into_root_schema_for::<Node>(),
        Kind::Event => generator.into_root_schema_for::<Event>(),
    }
}

/// Explains `TYPE[.field.path]`, e.g. `pod`, `deploy.spec.replicas` or
/// `pod.spec.containers.livenessProbe.httpGet`: the kind is any of its names (case-insensitive),
/// the fields are spelled as in YAML. Arrays are looked through, so `spec.containers.name` is
/// the name of each container.
pub fn explain(path: &str) -> Result<String, ExplainError> {
    explain_with(path, false)
}

/// `explain --recursive`: [`explain`]'s heading and description, then every field below as
/// a tree (names and types, two spaces deeper per level, no descriptions), as kubectl prints
/// it.
pub fn explain_recursive(path: &str) -> Result<String, ExplainError> {
    explain_with(path, true)
}

/// How deep `--recursive` goes: a type that contains itself would never end.
const MAX_DEPTH: usize = 16;

/// Appends the fields of `schema` at `indent`, and theirs below each, for `--recursive`.
fn field_tree(out: &mut String, schemas: &Schemas, schema: &Value, indent: usize) {
    let Some((properties, required)) = schemas.fields(schema) else {
        return;
    };
    let mut names: Vec<&String> = properties.keys().collect();
    names.sort();
    for name in names {
        let field = &properties[name];
        let pad = " ".repeat(indent);
        out.push_str(&format!("{pad}{name}\t<{}>", schemas.type_name(field)));
        if required.contains(&name.as_str()) {
            out.push_str(" -required-");
        }
        out.push('\n');
        if indent / 2 < MAX_DEPTH {
            field_tree(out, schemas, field, indent + 2);
        }
    }
}

fn explain_with(path: &str, recursive: bool) -> Result<String, ExplainError> {
    let mut segments = path.trim().split('.');
    let resource = segments.next().unwrap_or_default();
    let kind =
        Kind::parse(resource).ok_or_else(|| ExplainError::UnknownResource(resource.to_string()))?;
    let root = schema(kind).to_value();
    let schemas = Schemas::new(&root);

    let mut walked = resource.to_string();
    // The field being explained: its name and schema; None for the kind itself.
    let mut field: Option<(&str, &Value)> = None;
    for segment in segments {
        let current = field.map_or(&root, |(_, s)| s);
        let child = schemas
            .fields(current)
            .and_then(|(properties, _)| properties.get(segment));
        let Some(child) = child else {
            return Err(ExplainError::UnknownField {
                path: walked,
                field: segment.to_string(),
            });
        };
        field = Some((segment, child));
        walked = format!("{walked}.{segment}");
    }

    let mut out = String::new();
    let (group, version) = match kind.api_version().split_once('/') {
        Some((group, version)) => (Some(group), version),
        None => (None, kind.api_version()),
    };
    if let Some(group) = group {
        out.push_str(&format!("GROUP:      {group}\n"));
    }
    out.push_str(&format!("KIND:       {kind}\nVERSION:    {version}\n\n"));
    let current = match field {
        Some((name, schema)) => {
            out.push_str(&format!(
                "FIELD: {name} <{}>\n\n",
                schemas.type_name(schema)
            ));
            schema
        }
        None => &root,
    };

    out.push_str("DESCRIPTION:\n");
    let description = match field {
        Some((_, schema)) => schemas.field_description(schema, true),
        None => description_of(&root).to_string(),
    };
    if description.trim().is_empty() {
        out.push_str("    <empty>\n");
    } else {
        wrap_into(&mut out, &description, 4);
    }

    if recursive {
        if schemas.fields(current).is_some() {
            out.push_str("\nFIELDS:\n");
            field_tree(&mut out, &schemas, current, 2);
        }
        return Ok(out);
    }
    if let Some((properties, required)) = schemas.fields(current) {
        out.push_str("\nFIELDS:\n");
        let mut names: Vec<&String> = properties.keys().collect();
        names.sort();
        for (i, name) in names.into_iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let schema = &properties[name];
            out.push_str(&format!("  {name}\t<{}>", schemas.type_name(schema)));
            if required.contains(&name.as_str()) {
                out.push_str(" -required-");
            }
            out.push('\n');
            wrap_into(&mut out, &schemas.field_description(schema, false), 4);
        }
    }
    Ok(out)
}

/// A root schema's `$defs`, to follow `$ref`s with.
struct Schemas<'a> {
    defs: Option<&'a Map<String, Value>>,
}

fn description_of(schema: &Value) -> &str {
    schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn is_null_type(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

impl<'a> Schemas<'a> {
    fn new(root: &'a Value) -> Schemas<'a> {
        Schemas {
            defs: root.get("$defs").and_then(Value::as_object),
        }
    }

    /// The name and schema a `{"$ref": "#/$defs/Name"}` points at.
    fn referenced(&self, schema: &'a Value) -> Option<(&'a str, &'a Value)> {
        let name = schema
            .get("$ref")
            .and_then(Value::as_str)?
            .strip_prefix("#/$defs/")?;
        Some((name, self.defs?.get(name)?))
    }

    /// Looks through `Option`'s `anyOf: [T, null]` and `$ref`s to the schema of the value.
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        if let Some((_, target)) = self.referenced(schema) {
            return self.resolve(target);
        }
        match self.non_null_alternative(schema) {
            Some(inner) => self.resolve(inner),
            None => schema,
        }
    }

    /// For `anyOf: [T, {"type": "null"}]` (an `Option<T>`), T.
    fn non_null_alternative(&self, schema: &'a Value) -> Option<&'a Value> {
        let alternatives = schema.get("anyOf")?.as_array()?;
        match alternatives.as_slice() {
            [a, b] if is_null_type(b) => Some(a),
            [a, b] if is_null_type(a) => Some(b),
            _ => None,
        }
    }

    /// The JSON type of a schema, ignoring `null` (`["string", "null"]` is an optional string).
    fn json_type(schema: &Value) -> Option<&str> {
        match schema.get("type")? {
            Value::String(t) => Some(t),
            Value::Array(types) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null"),
            _ => None,
        }
    }

    /// The type as kubectl shows it: `string`, `integer`, `[]Container`, `map[string]string`,
    /// or a named type (`ObjectMeta`, `IntOrString`).
    fn type_name(&self, schema: &'a Value) -> String {
        if let Some((name, target)) = self.referenced(schema) {
            let named = target.get("properties").is_some()
                || target.get("anyOf").is_some()
                || target.get("oneOf").is_some();
            return if named {
                name.to_string()
            } else {
                self.type_name(target)
            };
        }
        if let Some(inner) = self.non_null_alternative(schema) {
            return self.type_name(inner);
        }
        match Self::json_type(schema) {
            Some("array") => match schema.get("items") {
                Some(items) => format!("[]{}", self.type_name(items)),
                None => "[]Object".into(),
            },
            Some("object") => match schema.get("additionalProperties") {
                Some(values) if values.is_object() && schema.get("properties").is_none() => {
                    format!("map[string]{}", self.type_name(values))
                }
                _ => "Object".into(),
            },
            Some(other) => other.to_string(),
            None => "Object".into(),
        }
    }

    /// The element schema of arrays (of arrays…), resolved.
    fn element(&self, schema: &'a Value) -> &'a Value {
        let schema = self.resolve(schema);
        match (Self::json_type(schema), schema.get("items")) {
            (Some("array"), Some(items)) => self.element(items),
            _ => schema,
        }
    }

    /// The fields of an object (or of the elements of an array): properties and the names of
    /// the required ones. None for anything without fields.
    fn fields(&self, schema: &'a Value) -> Option<(&'a Map<String, Value>, Vec<&'a str>)> {
        let object = self.element(schema);
        let properties = object.get("properties")?.as_object()?;
        let required = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        Some((properties, required))
    }

    /// The field's own description, then (with `of_type`, as kubectl's DESCRIPTION does) that
    /// of its type: the named type of the field or of its elements or values.
    fn field_description(&self, schema: &'a Value, of_type: bool) -> String {
        let own = description_of(schema).trim();
        if !of_type && !own.is_empty() {
            return own.to_string();
        }
        let mut target = schema;
        loop {
            if let Some(inner) = self.non_null_alternative(target) {
                target = inner;
            } else if let Some(items) = target.get("items") {
                target = items;
            } else if let Some(values) =
                target.get("additionalProperties").filter(|v| v.is_object())
            {
                target = values;
            } else {
                break;
            }
        }
        let type_description = match self.referenced(target) {
            Some((_, def)) => description_of(def),
            None if !std::ptr::eq(target, schema) => description_of(target),
            None => "",
        };
        match (own, type_description.trim()) {
            (own, "") => own.to_string(),
            ("", of_type) => of_type.to_string(),
            (own, of_type) if own == of_type => own.to_string(),
            (own, of_type) => format!("{own}\n\n{of_type}"),
        }
    }
}

/// Appends `text` word-wrapped to [`WIDTH`], each line indented by `indent` spaces. Blank
/// lines separate paragraphs; other line breaks (from doc comments) are reflowed.
fn wrap_into(out: &mut String, text: &str, indent: usize) {
    let width = WIDTH.saturating_sub(indent).max(20);
    let pad = " ".repeat(indent);
    for (i, paragraph) in text.split("\n\n").enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                out.push_str(&format!("{pad}{line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            out.push_str(&format!("{pad}{line}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::object::Object;

    #[test]
    fn recursive_lists_every_field_below_as_a_tree() {
        let out = explain_recursive("deploy.spec.template").unwrap();
        assert!(out.contains("FIELD: template <PodTemplateSpec>\n"), "{out}");
        for line in [
            "\nFIELDS:\n  metadata\t<ObjectMeta>\n    annotations\t<map[string]string>\n",
            "  spec\t<PodSpec>\n    containers\t<[]Container>",
            "      env\t<[]EnvVar>\n        name\t<string> -required-\n",
        ] {
            assert!(out.contains(line), "{line:?} in\n{out}");
        }
        // Only names and types below FIELDS.
        let fields = &out[out.find("FIELDS:").unwrap()..];
        assert!(
            fields.lines().skip(1).all(|l| l.contains("\t<")),
            "{fields}"
        );
    }

    #[test]
    fn kind_lists_its_top_level_fields() {
        let out = explain("pod").unwrap();
        assert!(out.starts_with("KIND:       Pod\nVERSION:    v1\n\nDESCRIPTION:\n    Pod is"));
        for line in [
            "  apiVersion\t<string>\n",
            "  kind\t<string>\n",
            "  metadata\t<ObjectMeta>\n",
            "  spec\t<PodSpec>\n",
            "  status\t<PodStatus>\n",
        ] {
            assert!(out.contains(line), "{line:?} in\n{out}");
        }
        assert!(!out.contains("FIELD:"), "{out}");
        // Every name of the kind, in any case.
        for alias in ["pods", "po", "POD", " Pod "] {
            assert_eq!(explain(alias).unwrap(), out, "{alias}");
        }
        for (alias, head) in [
            ("ns", "KIND:       Namespace\nVERSION:    v1\n"),
            ("no", "KIND:       Node\nVERSION:    v1\n"),
            ("ev", "KIND:       Event\nVERSION:    v1\n"),
            (
                "Deployments",
                "GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n",
            ),
        ] {
            assert!(explain(alias).unwrap().starts_with(head), "{alias}");
        }
    }

    #[test]
    fn array_field_shows_element_type_and_its_fields() {
        let out = explain("pod.spec.containers").unwrap();
        assert!(out.contains("\nFIELD: containers <[]Container>\n"), "{out}");
        assert!(out.contains("\n  name\t<string> -required-\n"), "{out}");
        // Defaulted and optional fields are not required.
        assert!(out.contains("\n  image\t<string>\n"), "{out}");
        assert!(out.contains("\n  ports\t<[]ContainerPort>\n"), "{out}");
        assert!(out.contains("\n  livenessProbe\t<Probe>\n"), "{out}");
        // DESCRIPTION has the field's description, then its type's.
        let description = out.split("DESCRIPTION:\n").nth(1).unwrap();
        assert!(description.starts_with("    List of containers belonging to the pod."));
        assert!(description.contains("\n    A single application container"));
        // Arrays are looked through on the way down.
        let port = explain("po.spec.containers.livenessProbe.httpGet.port").unwrap();
        assert!(port.contains("FIELD: port <IntOrString>\n"), "{port}");
    }

    #[test]
    fn explain_of_a_scalar_field_names_its_group_kind_and_type() {
        let out = explain("deploy.spec.replicas").unwrap();
        assert!(
            out.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\n"),
            "{out}"
        );
        assert!(out.contains("FIELD: replicas <integer>\n"), "{out}");
        assert!(out.contains("Number of desired pods."), "{out}");
        assert!(!out.contains("FIELDS:"), "{out}");
        let cases = [
            ("pod.spec.hostNetwork", "<boolean>"),
            ("pod.metadata.labels", "<map[string]string>"),
            ("pod.spec.nodeSelector", "<map[string]string>"),
            ("pod.spec.containers.command", "<[]string>"),
            // Custom serde formats are strings on the wire.
            ("pod.metadata.creationTimestamp", "<string>"),
            (
                "pod.spec.containers.resources.limits",
                "<map[string]string>",
            ),
            ("pod.spec.volumes.emptyDir.sizeLimit", "<string>"),
            (
                "deploy.spec.strategy.rollingUpdate.maxSurge",
                "<IntOrString>",
            ),
            ("node.status.capacity", "<map[string]string>"),
            ("ev.involvedObject", "<ObjectReference>"),
        ];
        for (path, type_name) in cases {
            let out = explain(path).unwrap();
            let name = path.rsplit('.').next().unwrap();
            assert!(
                out.contains(&format!("\nFIELD: {name} {type_name}\n")),
                "{path}:\n{out}"
            );
        }
        // Formats are described: the quantity map's values, the time's field.
        let limits = explain("pod.spec.containers.resources.limits").unwrap();
        assert!(limits.contains("\"500m\""), "{limits}");
        let created = explain("pod.metadata.creationTimestamp").unwrap();
        assert!(created.contains("RFC 3339"), "{created}");
    }

    #[test]
    fn unknown_fields_and_kinds() {
        let err = explain("pod.spec.containerz").unwrap_err();
        assert_eq!(
            err,
            ExplainError::UnknownField {
                path: "pod.spec".into(),
                field: "containerz".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "field \"containerz\" does not exist in pod.spec"
        );
        assert_eq!(
            explain("po.spec.containers.nam").unwrap_err().to_string(),
            "field \"nam\" does not exist in po.spec.containers"
        );
        // Serde's names, not Rust's: renamed fields are found only by their wire names.
        for (path, field) in [
            ("pod.spec.node_name", "node_name"),
            ("pod.status.podIp", "podIp"),
            ("pod.spec.volumes.hostPath.type_", "type_"),
            ("pod.Spec", "Spec"),
            // Scalars and maps have no fields.
            ("pod.spec.nodeName.x", "x"),
            ("pod.metadata.labels.app", "app"),
            ("pod.", ""),
        ] {
            match explain(path) {
                Err(ExplainError::UnknownField { field: f, .. }) => assert_eq!(f, field, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
        for resource in ["service", "", "pod s", "pods,spec"] {
            let err = explain(resource).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("the server doesn't have a resource type {resource:?}")
            );
        }
        assert_eq!(
            explain("svc.spec").unwrap_err(),
            ExplainError::UnknownResource("svc".into())
        );
    }

    #[test]
    fn explain_prints_what_kubectl_explain_prints() {
        let expected = [
            "KIND:       Pod",
            "VERSION:    v1",
            "",
            "FIELD: env <[]EnvVar>",
            "",
            "DESCRIPTION:",
            "    List of environment variables to set in the container. Cannot be updated.",
            "",
            "    EnvVar represents an environment variable present in a container.",
            "",
            "FIELDS:",
            "  name\t<string> -required-",
            "    Name of the environment variable. Must not be empty or contain `=`.",
            "",
            "  value\t<string>",
            "    Value of the environment variable. Defaults to \"\".",
            "",
        ]
        .join("\n");
        assert_eq!(explain("pod.spec.containers.env").unwrap(), expected);
    }

    #[test]
    fn renamed_fields_are_listed_by_their_wire_names() {
        let listed = |path: &str| explain(path).unwrap();
        let status = listed("pod.status");
        for line in [
            "  podIP\t<string>\n",
            "  hostIP\t<string>\n",
            "  startTime\t<string>\n",
        ] {
            assert!(status.contains(line), "{line:?} in\n{status}");
        }
        assert!(listed("pod.status.containerStatuses").contains("  containerID\t<string>\n"));
        assert!(listed("pod.status.conditions").contains("  type\t<string> -required-\n"));
        assert!(listed("pod.spec.volumes.hostPath").contains("  type\t<string>\n"));
        assert!(listed("no.spec").contains("  podCIDR\t<string>\n  "));
        assert!(listed("no.spec").contains("  podCIDRs\t<[]string>\n"));
        assert!(
            listed("no.status.daemonEndpoints.kubeletEndpoint")
                .contains("  Port\t<integer> -required-\n")
        );
        assert!(listed("ev").contains("  type\t<string>\n"));
    }

    #[test]
    fn spot_checks_decode_like_the_api() {
        // Fields explain lists are accepted by the API's decoder...
        for (path, field) in [
            ("pod.spec", "nodeName"),
            ("pod.status", "podIP"),
            ("pod.metadata", "creationTimestamp"),
        ] {
            assert!(explain(path).unwrap().contains(&format!("\n  {field}\t")));
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "creationTimestamp": "2024-01-02T03:04:05Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"podIP": "10.244.1.5"}});
        let object = Object::from_value(None, pod.clone()).unwrap();
        assert_eq!(object.to_value(), pod);
        // ...and one it does not list is rejected.
        for (parent, made_up) in [
            ("spec", "nodeNam"),
            ("status", "podIp"),
            ("metadata", "created"),
        ] {
            assert!(explain(&format!("pod.{parent}.{made_up}")).is_err());
            let mut bad = pod.clone();
            bad[parent][made_up] = json!("x");
            let err = Object::from_value(None, bad).unwrap_err();
            assert_eq!(err.path, format!("{parent}.{made_up}"), "{err}");
            assert!(err.message.contains("unknown field"), "{err}");
        }
    }

    /// A value for every field the schema names (arrays and maps with one entry).
    fn sample(schemas: &Schemas<'_>, schema: &Value) -> Value {
        let schema = schemas.resolve(schema);
        if let Some(first) = schema
            .get("anyOf")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return sample(schemas, first);
        }
        match Schemas::json_type(schema) {
            Some("object") => match schema.get("properties").and_then(Value::as_object) {
                Some(properties) => properties
                    .iter()
                    .map(|(k, v)| (k.clone(), sample(schemas, v)))
                    .collect::<Map<_, _>>()
                    .into(),
                None => json!({"key": sample(schemas, &schema["additionalProperties"])}),
            },
            Some("array") => json!([sample(schemas, &schema["items"])]),
            Some("string") => match schema.get("format").and_then(Value::as_str) {
                Some("date-time") => json!("2024-01-02T03:04:05Z"),
                Some("quantity") => json!("250m"),
                _ => json!("x"),
            },
            Some("integer") => json!(7),
            Some("boolean") => json!(true),
            // Any JSON (managedFields' fieldsV1): an empty object is one.
            None if schema.get("type").is_none() => json!({}),
            other => panic!("no sample for {other:?}: {schema}"),
        }
    }

    /// JSON pointers to every struct (schema object with properties) inside `value`.
    fn structs(schemas: &Schemas<'_>, schema: &Value, pointer: String, out: &mut Vec<String>) {
        let schema = schemas.resolve(schema);
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            assert_eq!(
                schema.get("additionalProperties"),
                Some(&json!(false)),
                "{pointer}: structs deny unknown fields"
            );
            for (name, property) in properties {
                structs(schemas, property, format!("{pointer}/{name}"), out);
            }
            out.push(pointer);
        } else if let Some(items) = schema.get("items") {
            structs(schemas, items, format!("{pointer}/0"), out);
        }
    }

    /// Every field path explain lists under `path`, recursively (`spec.containers.name`).
    fn listed_paths(path: &str, prefix: &str, out: &mut BTreeSet<String>) {
        let text = explain(path).unwrap();
        let Some(fields) = text.split("\nFIELDS:\n").nth(1) else {
            return;
        };
        let mut lines = fields.lines().peekable();
        while let Some(line) = lines.next() {
            let Some(entry) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) else {
                continue;
            };
            let name = entry.split('\t').next().unwrap();
            let described = lines
                .peek()
                .is_some_and(|next| next.starts_with("    ") && next.trim().len() > 1);
            assert!(described, "{path}.{name} has no description");
            let full = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            assert!(full.matches('.').count() < 10, "{full}: too deep");
            out.insert(full.clone());
            listed_paths(&format!("{path}.{name}"), &full, out);
        }
    }

    /// Dotted field paths of a sample, looking through arrays and not into maps.
    fn sample_paths(
        schemas: &Schemas<'_>,
        schema: &Value,
        prefix: &str,
        out: &mut BTreeSet<String>,
    ) {
        if let Some((properties, _)) = schemas.fields(schema) {
            for (name, property) in properties {
                let full = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                out.insert(full.clone());
                sample_paths(schemas, property, &full, out);
            }
        }
    }

    #[test]
    fn schema_matches_what_serde_accepts_for_every_kind() {
        for kind in Kind::ALL {
            let root = schema(kind).to_value();
            let schemas = Schemas::new(&root);
            // A document with every field the schema has decodes through the API's path and
            // encodes back unchanged: serde knows each field, under the same name and type.
            let mut full = sample(&schemas, &root);
            full["apiVersion"] = json!(kind.api_version());
            full["kind"] = json!(kind.as_str());
            let object = Object::from_value(None, full.clone())
                .unwrap_or_else(|e| panic!("{kind}: {e}\n{full:#}"));
            assert_eq!(object.to_value(), full, "{kind}");
            // A made-up key in any struct is rejected, naming where it is.
            let mut pointers = Vec::new();
            structs(&schemas, &root, String::new(), &mut pointers);
            assert!(pointers.len() > 2, "{kind}");
            for pointer in pointers {
                let mut bad = full.clone();
                bad.pointer_mut(&pointer)
                    .and_then(Value::as_object_mut)
                    .unwrap_or_else(|| panic!("{kind}: {pointer}"))
                    .insert("madeUpField".into(), json!(1));
                let err = Object::from_value(None, bad).unwrap_err();
                assert!(
                    err.message.contains("unknown field `madeUpField`")
                        && err.path.ends_with("madeUpField"),
                    "{kind} {pointer}: {err}"
                );
            }
            // And explain lists exactly the schema's fields, each with a description.
            let mut listed = BTreeSet::new();
            listed_paths(kind.as_str(), "", &mut listed);
            let mut expected = BTreeSet::new();
            sample_paths(&schemas, &root, "", &mut expected);
            assert_eq!(listed, expected, "{kind}");
        }
    }

    #[test]
    fn descriptions_wrap_at_80_columns() {
        for kind in Kind::ALL {
            let mut paths = BTreeSet::new();
            listed_paths(kind.as_str(), "", &mut paths);
            for path in std::iter::once(String::new()).chain(paths) {
                let full = if path.is_empty() {
                    kind.as_str().to_string()
                } else {
                    format!("{kind}.{path}")
                };
                for line in explain(&full).unwrap().lines() {
                    let long = line.chars().count() > WIDTH;
                    assert!(
                        !long || !line.trim().contains(' '),
                        "{full}: {line:?} is longer than {WIDTH}"
                    );
                }
            }
        }
        let mut out = String::new();
        wrap_into(&mut out, "one two\nthree\n\nfour", 2);
        assert_eq!(out, "  one two three\n\n  four\n");
    }
}
