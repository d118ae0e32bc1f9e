//! Manifest files: YAML or JSON, one or more `---`-separated documents.

use serde::Deserialize;
use serde_json::Value;

use crate::object::Object;

/// What is wrong with a manifest, and where: document number (1-based), field path, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub document: Option<usize>,
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(document) = self.document {
            write!(f, "document {document}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ManifestError {}

impl ManifestError {
    fn in_document(mut self, document: usize) -> ManifestError {
        self.document = Some(document);
        self
    }
}

/// Parses every object in a YAML or JSON text. Empty documents are skipped; a `List`
/// document contributes its items.
pub fn parse_manifests(text: &str) -> Result<Vec<Object>, ManifestError> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let value = Value::deserialize(document).map_err(|e| ManifestError {
            document: Some(number),
            path: String::new(),
            message: format!("invalid yaml: {e}"),
        })?;
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(Value::as_str) == Some("List") {
            let items = value
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (i, item) in items.into_iter().enumerate() {
                let object = Object::from_value(None, item).map_err(|mut e| {
                    e.path = if e.path.is_empty() {
                        format!("items[{i}]")
                    } else {
                        format!("items[{i}].{}", e.path)
                    };
                    e.in_document(number)
                })?;
                objects.push(object);
            }
            continue;
        }
        objects.push(Object::from_value(None, value).map_err(|e| e.in_document(number))?);
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::Kind;

    const MULTI: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: team-a
  labels: {app: web}
spec:
  containers:
  - name: web
    image: busybox
    command: ["httpd", "-f"]
    ports: [{containerPort: 80}]
    resources:
      requests: {cpu: 100m, memory: 64Mi}
  volumes:
  - name: scratch
    emptyDir: {}
---
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 3
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: busybox
"#;

    #[test]
    fn manifest_1_multi_document_yaml() {
        let objects = parse_manifests(MULTI).unwrap();
        let kinds: Vec<Kind> = objects.iter().map(Object::kind).collect();
        assert_eq!(kinds, vec![Kind::Namespace, Kind::Pod, Kind::Deployment]);
        let pod = objects[1].as_pod().unwrap();
        assert_eq!(
            pod.spec.containers[0].resources.as_ref().unwrap().requests["cpu"]
                .cpu_millis()
                .unwrap(),
            100
        );
        // YAML in, JSON out, and back: the same objects.
        for object in &objects {
            let again = Object::from_json(None, &object.to_json()).unwrap();
            assert_eq!(&again, object);
            let from_yaml = parse_manifests(&object.to_yaml()).unwrap();
            assert_eq!(&from_yaml[0], object);
        }
    }

    #[test]
    fn manifest_2_errors_name_document_and_field() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n    imagePullPolicyy: Always\n";
        let err = parse_manifests(text).unwrap_err();
        assert_eq!(err.document, Some(2));
        let shown = err.to_string();
        assert!(
            shown.starts_with("document 2: spec.containers[0]"),
            "{shown}"
        );
        assert!(shown.contains("imagePullPolicyy"), "{shown}");
    }

    #[test]
    fn manifest_3_json_and_lists() {
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"gpu": "true"}}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}]}"#;
        let objects = parse_manifests(text).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].metadata().labels["gpu"], "true");
    }

    #[test]
    fn manifest_4_bad_documents() {
        assert!(
            parse_manifests("kind: Pod\nmetadata: {name: p}\n")
                .unwrap_err()
                .to_string()
                .contains("apiVersion")
        );
        assert!(
            parse_manifests("apiVersion: v1\nkind: Pod\nmetadata: [\n")
                .unwrap_err()
                .message
                .contains("invalid yaml")
        );
        let unquoted_bool =
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: n\n  labels: {gpu: true}\n";
        let err = parse_manifests(unquoted_bool).unwrap_err();
        assert_eq!(err.path, "metadata.labels.gpu");
    }
}
