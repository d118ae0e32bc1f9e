//! `Object`: any stored object, with strict JSON/YAML decoding and Kubernetes' defaults.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::kind::Kind;
use crate::meta::ObjectMeta;
use crate::types::{
    Container, Deployment, DeploymentStrategy, Event, IntOrString, Namespace, NamespaceStatus,
    Node, Pod, PodSpec, Probe, RollingUpdateDeployment,
};

/// Any stored object. Variants are held inline: objects are built and dropped one at a time,
/// so the size difference between kinds costs nothing worth an allocation per object.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Namespace(Namespace),
    Pod(Pod),
    Deployment(Deployment),
    Node(Node),
    Event(Event),
}

/// What is wrong with a manifest, and where: document number (1-based), field path, message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ManifestError {
    pub document: Option<usize>,
    /// Dotted path of the offending field, e.g. `spec.containers[0].imagee`; empty when the
    /// whole document is at fault.
    pub path: String,
    pub message: String,
}

impl ManifestError {
    /// `document 2: spec.containers[0].imagee: unknown field ...`, leaving out empty parts.
    fn describe(&self) -> String {
        let mut shown = String::new();
        if let Some(document) = self.document {
            shown.push_str(&format!("document {document}: "));
        }
        if !self.path.is_empty() {
            shown.push_str(&self.path);
            shown.push_str(": ");
        }
        shown.push_str(&self.message);
        shown
    }

    /// Turns a serde error at `path` into a manifest error. serde_path_to_error records an
    /// unknown key itself as the last path segment, so the path alone shows where a typo is.
    pub(crate) fn at_path(path: &serde_path_to_error::Path, message: String) -> ManifestError {
        let path = path.to_string();
        ManifestError {
            document: None,
            // The document root displays as ".".
            path: if path == "." { String::new() } else { path },
            message,
        }
    }

    pub(crate) fn in_document(mut self, document: usize) -> ManifestError {
        self.document = Some(document);
        self
    }
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| ManifestError::at_path(e.path(), e.inner().to_string()))
}

fn decode_from<'de, T: serde::Deserialize<'de>>(
    deserializer: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(deserializer)
        .map_err(|e| ManifestError::at_path(e.path(), e.inner().to_string()))
}

/// Only the type fields of a document; everything else is skipped unparsed.
#[derive(serde::Deserialize)]
struct TypeMeta {
    kind: Option<Value>,
    #[serde(rename = "apiVersion")]
    api_version: Option<Value>,
}

/// Which kind a document is, checking its `kind` and `apiVersion` against `expected`.
fn resolve_kind(
    expected: Option<Kind>,
    kind: Option<&Value>,
    api_version: Option<&Value>,
) -> Result<Kind, ManifestError> {
    let at = |path: &str, message: String| ManifestError {
        document: None,
        path: path.to_string(),
        message,
    };
    let kind = match (kind, expected) {
        (Some(Value::String(name)), _) => {
            let kind = Kind::ALL.into_iter().find(|k| k.as_str() == name).ok_or_else(|| {
                at(
                    "kind",
                    format!("unknown kind {name:?}: supported kinds are Namespace, Pod, Deployment, Node, Event"),
                )
            })?;
            if let Some(expected) = expected.filter(|e| *e != kind) {
                return Err(at("kind", format!("expected {expected}, found {kind}")));
            }
            kind
        }
        (Some(other), _) => return Err(at("kind", format!("must be a string, found {other}"))),
        (None, Some(expected)) => expected,
        (None, None) => return Err(at("kind", "Required value".into())),
    };
    match api_version {
        Some(Value::String(v)) if v == kind.api_version() => {}
        Some(Value::String(v)) => {
            return Err(at(
                "apiVersion",
                format!("{kind} is served as {:?}, not {v:?}", kind.api_version()),
            ));
        }
        Some(other) => return Err(at("apiVersion", format!("must be a string, found {other}"))),
        None if expected.is_some() => {}
        None => return Err(at("apiVersion", "Required value".into())),
    }
    Ok(kind)
}

fn encode<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("object types always serialize")
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Pod(_) => Kind::Pod,
            Object::Deployment(_) => Kind::Deployment,
            Object::Node(_) => Kind::Node,
            Object::Event(_) => Kind::Event,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Node(o) => &o.metadata,
            Object::Event(o) => &o.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Namespace(o) => &mut o.metadata,
            Object::Pod(o) => &mut o.metadata,
            Object::Deployment(o) => &mut o.metadata,
            Object::Node(o) => &mut o.metadata,
            Object::Event(o) => &mut o.metadata,
        }
    }

    /// Decodes one JSON document strictly (unknown fields are errors naming their path).
    /// With `expected`, the document's kind must agree or be absent.
    pub fn from_json(expected: Option<Kind>, bytes: &[u8]) -> Result<Object, ManifestError> {
        let type_meta: TypeMeta = serde_json::from_slice(bytes).map_err(|e| ManifestError {
            document: None,
            path: String::new(),
            message: format!("invalid json: {e}"),
        })?;
        let kind = resolve_kind(
            expected,
            type_meta.kind.as_ref(),
            type_meta.api_version.as_ref(),
        )?;
        // Straight from the bytes into the typed object: no intermediate tree.
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let mut object = match kind {
            Kind::Namespace => Object::Namespace(decode_from(&mut deserializer)?),
            Kind::Pod => Object::Pod(decode_from(&mut deserializer)?),
            Kind::Deployment => Object::Deployment(decode_from(&mut deserializer)?),
            Kind::Node => Object::Node(decode_from(&mut deserializer)?),
            Kind::Event => Object::Event(decode_from(&mut deserializer)?),
        };
        object.set_type_meta();
        Ok(object)
    }

    pub fn from_value(expected: Option<Kind>, value: Value) -> Result<Object, ManifestError> {
        let Value::Object(map) = &value else {
            return Err(ManifestError {
                document: None,
                path: String::new(),
                message: "an object must be a mapping".into(),
            });
        };
        let kind = resolve_kind(expected, map.get("kind"), map.get("apiVersion"))?;
        let mut object = match kind {
            Kind::Namespace => Object::Namespace(decode(value)?),
            Kind::Pod => Object::Pod(decode(value)?),
            Kind::Deployment => Object::Deployment(decode(value)?),
            Kind::Node => Object::Node(decode(value)?),
            Kind::Event => Object::Event(decode(value)?),
        };
        object.set_type_meta();
        Ok(object)
    }

    /// Fills in apiVersion and kind, so every encoding carries them.
    fn set_type_meta(&mut self) {
        let (api_version, kind) = (self.kind().api_version(), self.kind().as_str());
        let (a, k) = match self {
            Object::Namespace(o) => (&mut o.api_version, &mut o.kind),
            Object::Pod(o) => (&mut o.api_version, &mut o.kind),
            Object::Deployment(o) => (&mut o.api_version, &mut o.kind),
            Object::Node(o) => (&mut o.api_version, &mut o.kind),
            Object::Event(o) => (&mut o.api_version, &mut o.kind),
        };
        *a = Some(api_version.to_string());
        *k = Some(kind.to_string());
    }

    pub fn to_value(&self) -> Value {
        let mut object = self.clone();
        object.set_type_meta();
        match &object {
            Object::Namespace(o) => encode(o),
            Object::Pod(o) => encode(o),
            Object::Deployment(o) => encode(o),
            Object::Node(o) => encode(o),
            Object::Event(o) => encode(o),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        fn bytes<T: Serialize>(value: &T) -> Vec<u8> {
            serde_json::to_vec(value).expect("object types always serialize")
        }
        if !self.has_type_meta() {
            let mut object = self.clone();
            object.set_type_meta();
            return object.to_json();
        }
        match self {
            Object::Namespace(o) => bytes(o),
            Object::Pod(o) => bytes(o),
            Object::Deployment(o) => bytes(o),
            Object::Node(o) => bytes(o),
            Object::Event(o) => bytes(o),
        }
    }

    fn has_type_meta(&self) -> bool {
        let (a, k) = match self {
            Object::Namespace(o) => (&o.api_version, &o.kind),
            Object::Pod(o) => (&o.api_version, &o.kind),
            Object::Deployment(o) => (&o.api_version, &o.kind),
            Object::Node(o) => (&o.api_version, &o.kind),
            Object::Event(o) => (&o.api_version, &o.kind),
        };
        a.as_deref() == Some(self.kind().api_version())
            && k.as_deref() == Some(self.kind().as_str())
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.to_value()).expect("json values serialize")
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.to_value()).expect("json values serialize as yaml")
    }

    /// Kubernetes' defaults for fields a manifest may leave out.
    pub fn apply_defaults(&mut self) {
        match self {
            Object::Pod(pod) => default_pod_spec(&mut pod.spec),
            Object::Deployment(d) => {
                d.spec.replicas.get_or_insert(1);
                d.spec.revision_history_limit.get_or_insert(10);
                let strategy = d
                    .spec
                    .strategy
                    .get_or_insert_with(DeploymentStrategy::default);
                let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
                if kind == "RollingUpdate" {
                    let rolling = strategy
                        .rolling_update
                        .get_or_insert_with(RollingUpdateDeployment::default);
                    rolling
                        .max_surge
                        .get_or_insert_with(|| IntOrString::String("25%".into()));
                    rolling
                        .max_unavailable
                        .get_or_insert_with(|| IntOrString::String("25%".into()));
                }
                default_pod_spec(&mut d.spec.template.spec);
            }
            Object::Namespace(ns) => {
                ns.status
                    .get_or_insert_with(NamespaceStatus::default)
                    .phase
                    .get_or_insert_with(|| "Active".into());
            }
            Object::Node(_) | Object::Event(_) => {}
        }
    }
}

/// The name of Skiff's scheduler, as Kubernetes names its own.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

fn default_pod_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name
        .get_or_insert_with(|| DEFAULT_SCHEDULER.into());
    for container in &mut spec.containers {
        default_container(container);
    }
}

fn default_container(container: &mut Container) {
    if container.image_pull_policy.is_none() {
        // Kubernetes: an untagged or :latest image is always pulled.
        let last = container.image.rsplit('/').next().unwrap_or_default();
        let tag = last.split_once(':').map(|(_, t)| t);
        let always = !container.image.contains('@') && matches!(tag, None | Some("latest"));
        container.image_pull_policy = Some(if always { "Always" } else { "IfNotPresent" }.into());
    }
    for port in &mut container.ports {
        port.protocol.get_or_insert_with(|| "TCP".into());
    }
    for probe in [
        &mut container.liveness_probe,
        &mut container.readiness_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
}

fn default_probe(probe: &mut Probe) {
    probe.timeout_seconds.get_or_insert(1);
    probe.period_seconds.get_or_insert(10);
    probe.success_threshold.get_or_insert(1);
    probe.failure_threshold.get_or_insert(3);
    if let Some(http) = &mut probe.http_get {
        http.path.get_or_insert_with(|| "/".into());
        http.scheme.get_or_insert_with(|| "HTTP".into());
    }
}

/// Per-kind conversions: `From<Pod> for Object`, `TryFrom<Object> for Pod` (handing the
/// object back when it is another kind), and `as_pod` / `as_pod_mut` accessors.
macro_rules! object_conversions {
    ($($variant:ident => $as_ref:ident, $as_mut:ident;)*) => {
        $(
            impl From<$variant> for Object {
                fn from(o: $variant) -> Object {
                    Object::$variant(o)
                }
            }

            impl TryFrom<Object> for $variant {
                type Error = Object;
                fn try_from(object: Object) -> Result<$variant, Object> {
                    match object {
                        Object::$variant(o) => Ok(o),
                        other => Err(other),
                    }
                }
            }
        )*

        impl Object {
            $(
                pub fn $as_ref(&self) -> Option<&$variant> {
                    match self {
                        Object::$variant(o) => Some(o),
                        _ => None,
                    }
                }

                pub fn $as_mut(&mut self) -> Option<&mut $variant> {
                    match self {
                        Object::$variant(o) => Some(o),
                        _ => None,
                    }
                }
            )*
        }
    };
}
object_conversions! {
    Namespace => as_namespace, as_namespace_mut;
    Pod => as_pod, as_pod_mut;
    Deployment => as_deployment, as_deployment_mut;
    Node => as_node, as_node_mut;
    Event => as_event, as_event_mut;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_round_trip_keeps_type_meta() {
        let json = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": "10.244.1.5", "hostIP": "10.250.0.2"}});
        let object = Object::from_value(None, json.clone()).unwrap();
        assert_eq!(object.to_value(), json);
        let again = Object::from_json(Some(Kind::Pod), &object.to_json()).unwrap();
        assert_eq!(again, object);
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let json = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c", "imagee": "busybox"}]}});
        let err = Object::from_value(None, json.clone()).unwrap_err();
        assert_eq!(err.path, "spec.containers[0].imagee", "{err}");
        assert!(err.message.contains("unknown field `imagee`"), "{err}");
        // The byte decoder reports the same path.
        let err = Object::from_json(None, json.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.path, "spec.containers[0].imagee", "{err}");
        // A stray key named like its parent still gets its own path segment.
        let nested = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"},
            "spec": {"spec": {}}});
        assert_eq!(
            Object::from_value(None, nested.clone()).unwrap_err().path,
            "spec.spec"
        );
        assert_eq!(
            Object::from_json(None, nested.to_string().as_bytes())
                .unwrap_err()
                .path,
            "spec.spec"
        );
    }

    #[test]
    fn kind_and_api_version_are_checked() {
        let wrong_version =
            json!({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let err = Object::from_value(None, wrong_version).unwrap_err();
        assert_eq!(err.path, "apiVersion");
        let unknown = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
        assert!(
            Object::from_value(None, unknown)
                .unwrap_err()
                .message
                .contains("unknown kind \"Service\"")
        );
        let mismatch = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert!(Object::from_value(Some(Kind::Node), mismatch).is_err());
        // The API path may omit type meta: the request names the kind.
        let bare = json!({"metadata": {"name": "n1"}});
        assert_eq!(
            Object::from_value(Some(Kind::Node), bare).unwrap().kind(),
            Kind::Node
        );
    }

    #[test]
    fn defaults_match_kubernetes() {
        let json = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}, {"name": "s", "image": "busybox"}]}}}});
        let mut object = Object::from_value(None, json).unwrap();
        object.apply_defaults();
        let d = object.as_deployment().unwrap();
        assert_eq!(d.spec.replicas, Some(1));
        let rolling = d
            .spec
            .strategy
            .as_ref()
            .unwrap()
            .rolling_update
            .as_ref()
            .unwrap();
        assert_eq!(rolling.max_surge, Some(IntOrString::String("25%".into())));
        let spec = &d.spec.template.spec;
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("IfNotPresent")
        );
        assert_eq!(
            spec.containers[1].image_pull_policy.as_deref(),
            Some("Always")
        );
    }

    #[test]
    fn pod_defaults_and_image_pull_policy() {
        let json = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "a", "image": "registry:5000/app", "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                 "readinessProbe": {"httpGet": {"port": 80}}},
                {"name": "b", "image": "app:latest"},
                {"name": "c", "image": "registry:5000/app:v2"},
                {"name": "d", "image": "app@sha256:abcd"},
                {"name": "e", "image": "app", "imagePullPolicy": "Never"}]}});
        let mut object = Object::from_value(None, json).unwrap();
        object.apply_defaults();
        let again = object.clone();
        object.apply_defaults();
        assert_eq!(object, again, "defaulting twice changes nothing");
        let spec = &object.as_pod().unwrap().spec;
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"), "kept");
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        let policies: Vec<&str> = spec
            .containers
            .iter()
            .map(|c| c.image_pull_policy.as_deref().unwrap())
            .collect();
        assert_eq!(
            policies,
            ["Always", "Always", "IfNotPresent", "IfNotPresent", "Never"]
        );
        let ports = &spec.containers[0].ports;
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(ports[1].protocol.as_deref(), Some("UDP"));
        let probe = spec.containers[0].readiness_probe.as_ref().unwrap();
        assert_eq!(
            (
                probe.period_seconds,
                probe.timeout_seconds,
                probe.failure_threshold
            ),
            (Some(10), Some(1), Some(3))
        );
        assert_eq!(probe.http_get.as_ref().unwrap().path.as_deref(), Some("/"));
    }

    #[test]
    fn objects_convert_to_and_from_their_typed_forms() {
        let node = Node {
            metadata: ObjectMeta {
                name: "n1".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let object = Object::from(node.clone());
        assert_eq!(object.kind(), Kind::Node);
        assert!(object.as_pod().is_none());
        assert_eq!(
            object.as_node().map(|n| n.metadata.name.as_str()),
            Some("n1")
        );
        // Built in code without type fields, the encodings still carry them.
        let value = object.to_value();
        assert_eq!(
            (value["apiVersion"].as_str(), value["kind"].as_str()),
            (Some("v1"), Some("Node"))
        );
        assert!(object.to_yaml().contains("kind: Node"));
        let back = Object::from_json(None, &object.to_json()).unwrap();
        let as_pod: Result<Pod, Object> = back.clone().try_into();
        assert_eq!(as_pod.unwrap_err(), back);
        let as_node: Node = back.try_into().unwrap();
        assert_eq!(as_node.metadata, node.metadata);
        let mut ns = Object::from(Namespace::default());
        ns.apply_defaults();
        let status = ns.as_namespace().unwrap().status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Active"));
    }
}
