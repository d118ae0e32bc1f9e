//! Manifest files: YAML or JSON, one or more `---`-separated documents.

use serde::Deserialize;
use serde_json::Value;

pub use crate::object::ManifestError;
use crate::object::Object;

/// One object of a manifest, and where it stands in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestEntry {
    /// The document it is in (1-based, counting empty documents).
    pub document: usize,
    /// Its index in `items`, for an item of a `List` document.
    pub item: Option<usize>,
    pub object: Object,
}

impl ManifestEntry {
    /// A path within the object as a path from its document's root: `items[2].spec.replicas`
    /// for an item of a `List`, the path itself otherwise.
    pub fn field_path(&self, path: &str) -> String {
        item_path(self.item, path)
    }
}

fn item_path(item: Option<usize>, path: &str) -> String {
    match item {
        None => path.to_string(),
        Some(i) if path.is_empty() => format!("items[{i}]"),
        Some(i) => format!("items[{i}].{path}"),
    }
}

/// Parses every object in a YAML or JSON text. Empty documents are skipped; a `List`
/// document contributes its items.
pub fn parse_manifests(text: &str) -> Result<Vec<Object>, ManifestError> {
    Ok(parse_entries(text)?.into_iter().map(|e| e.object).collect())
}

/// [`parse_manifests`], with where each object stands.
pub fn parse_entries(text: &str) -> Result<Vec<ManifestEntry>, ManifestError> {
    let mut entries = Vec::new();
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
        let items: Vec<(Option<usize>, Value)> =
            if value.get("kind").and_then(Value::as_str) == Some("List") {
                let items = value.get("items").and_then(Value::as_array);
                let items = items.cloned().unwrap_or_default().into_iter();
                items.enumerate().map(|(i, item)| (Some(i), item)).collect()
            } else {
                vec![(None, value)]
            };
        for (item, value) in items {
            let object = Object::from_value(None, value).map_err(|mut e| {
                e.path = item_path(item, &e.path);
                e.in_document(number)
            })?;
            entries.push(ManifestEntry {
                document: number,
                item,
                object,
            });
        }
    }
    Ok(entries)
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
    fn multi_document_yaml() {
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
    fn errors_name_document_and_field() {
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
    fn json_and_lists() {
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"gpu": "true"}}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}]}"#;
        let objects = parse_manifests(text).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].metadata().labels["gpu"], "true");
    }

    #[test]
    fn entries_know_their_document_and_item() {
        // A leading `---` opens the first document; an empty one still counts.
        let text = "---\n\
            apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n\
            apiVersion: v1\nkind: List\nitems:\n\
            - {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n\
            - {apiVersion: v1, kind: Node, metadata: {name: c}}\n---\n\
            apiVersion: v1\nkind: List\nitems: []\n---\n\
            apiVersion: v1\nkind: Namespace\nmetadata: {name: d}\n";
        let entries = parse_entries(text).unwrap();
        let places: Vec<(usize, Option<usize>, &str)> = entries
            .iter()
            .map(|e| (e.document, e.item, e.object.metadata().name.as_str()))
            .collect();
        assert_eq!(
            places,
            [
                (1, None, "a"),
                (3, Some(0), "b"),
                (3, Some(1), "c"),
                (5, None, "d")
            ]
        );
        assert_eq!(entries[0].field_path("metadata.name"), "metadata.name");
        assert_eq!(
            entries[2].field_path("metadata.name"),
            "items[1].metadata.name"
        );
        assert_eq!(entries[2].field_path(""), "items[1]");
        let objects: Vec<Object> = entries.into_iter().map(|e| e.object).collect();
        assert_eq!(parse_manifests(text).unwrap(), objects);
    }

    #[test]
    fn bad_documents_are_refused_naming_document_and_field() {
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

    /// Every kind, with the optional parts filled in, so a round trip exercises every type.
    const EVERY_KIND: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
  labels: {owner: alice}
  annotations: {example.com/note: "hello"}
spec: {finalizers: [kubernetes]}
status: {phase: Active}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: team-a
  uid: 6f1c1a4e-0000-4000-8000-000000000001
  resourceVersion: "42"
  creationTimestamp: "2024-01-02T03:04:05Z"
  ownerReferences:
  - {apiVersion: apps/v1, kind: Deployment, name: web, uid: u-1, controller: true, blockOwnerDeletion: true}
spec:
  nodeName: node-1
  nodeSelector: {gpu: "true"}
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  hostname: web-0
  volumes:
  - {name: scratch, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
  - {name: logs, hostPath: {path: /var/log, type: Directory}}
  containers:
  - name: web
    image: nginx:1.27
    command: [nginx]
    args: [-g, daemon off;]
    workingDir: /srv
    env: [{name: MODE, value: prod}, {name: EMPTY}]
    ports: [{name: http, containerPort: 80, protocol: TCP}]
    volumeMounts: [{name: scratch, mountPath: /tmp, readOnly: false}]
    resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: "1", memory: 128Mi}}
    imagePullPolicy: IfNotPresent
    livenessProbe: {httpGet: {path: /healthz, port: http, scheme: HTTP}, periodSeconds: 5}
    readinessProbe: {tcpSocket: {port: 80}, initialDelaySeconds: 1, failureThreshold: 3}
  - name: sidecar
    image: busybox
    livenessProbe: {exec: {command: ["true"]}}
status:
  phase: Running
  podIP: 10.244.1.5
  hostIP: 10.250.0.2
  startTime: "2024-01-02T03:04:06Z"
  conditions:
  - {type: Ready, status: "True", lastTransitionTime: "2024-01-02T03:04:07Z"}
  containerStatuses:
  - name: web
    ready: true
    restartCount: 2
    image: nginx:1.27
    containerID: process://abc
    started: true
    state: {running: {startedAt: "2024-01-02T03:04:06Z"}}
    lastState: {terminated: {exitCode: 137, signal: 9, reason: Error, finishedAt: "2024-01-02T03:04:05Z", containerID: process://abb}}
  - name: sidecar
    ready: false
    restartCount: 5
    image: busybox
    state: {waiting: {reason: CrashLoopBackOff, message: back-off 40s}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-a, generation: 3}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
    matchExpressions: [{key: tier, operator: NotIn, values: [db]}]
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}}
  minReadySeconds: 2
  revisionHistoryLimit: 5
  paused: false
status:
  observedGeneration: 3
  replicas: 3
  updatedReplicas: 3
  readyReplicas: 2
  availableReplicas: 2
  unavailableReplicas: 1
  conditions:
  - {type: Available, status: "False", reason: MinimumReplicasUnavailable, lastUpdateTime: "2024-01-02T03:04:05Z"}
---
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {kubernetes.io/hostname: node-1}}
spec:
  podCIDR: 10.244.1.0/24
  podCIDRs: [10.244.1.0/24]
  unschedulable: true
  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
status:
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  allocatable: {cpu: 3800m, memory: 7Gi}
  conditions:
  - {type: Ready, status: "True", reason: AgentReady, lastHeartbeatTime: "2024-01-02T03:04:05Z"}
  addresses: [{type: InternalIP, address: 10.250.0.2}, {type: Hostname, address: node-1}]
  nodeInfo: {kernelVersion: 6.1.0, osImage: Debian, architecture: amd64, operatingSystem: linux, containerRuntimeVersion: process://0.1, kubeletVersion: skiff-0.1}
---
apiVersion: v1
kind: Event
metadata: {name: web-0.17a, namespace: team-a}
involvedObject: {kind: Pod, namespace: team-a, name: web-0, uid: u-2, apiVersion: v1, resourceVersion: "42", fieldPath: "spec.containers{web}"}
reason: BackOff
message: Back-off restarting failed container
type: Warning
count: 4
firstTimestamp: "2024-01-02T03:04:05Z"
lastTimestamp: "2024-01-02T03:05:05Z"
source: {component: skiff-agent, host: node-1}
reportingComponent: skiff-agent
"#;

    #[test]
    fn every_kind_round_trips_through_json_and_yaml() {
        let objects = parse_manifests(EVERY_KIND).unwrap();
        let kinds: Vec<Kind> = objects.iter().map(Object::kind).collect();
        assert_eq!(kinds, Kind::ALL.to_vec());
        for object in &objects {
            let json = object.to_json();
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(value["apiVersion"], object.kind().api_version());
            assert_eq!(value["kind"], object.kind().as_str());
            assert_eq!(&Object::from_json(None, &json).unwrap(), object);
            assert_eq!(
                &Object::from_json(Some(object.kind()), &json).unwrap(),
                object
            );
            assert_eq!(&Object::from_value(None, value).unwrap(), object);
            assert_eq!(&parse_manifests(&object.to_yaml()).unwrap()[0], object);
        }
        // Spot checks that the fields landed where they belong.
        let pod = objects[1].as_pod().unwrap();
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.1.5"));
        assert_eq!(status.container_statuses[1].restart_count, 5);
        let last = status.container_statuses[0].last_state.as_ref().unwrap();
        assert_eq!(last.terminated.as_ref().unwrap().exit_code, 137);
        assert_eq!(
            pod.spec.volumes[1]
                .host_path
                .as_ref()
                .unwrap()
                .type_
                .as_deref(),
            Some("Directory")
        );
        let node = objects[3].as_node().unwrap();
        assert_eq!(
            node.status.as_ref().unwrap().allocatable["cpu"].cpu_millis(),
            Ok(3800)
        );
        let event = objects[4].as_event().unwrap();
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        // Timestamps are written back exactly as Kubernetes writes them.
        let text = String::from_utf8(objects[4].to_json()).unwrap();
        assert!(
            text.contains(r#""lastTimestamp":"2024-01-02T03:05:05Z""#),
            "{text}"
        );
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let table = [
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, imagee: i}\n",
                "spec.containers[0].imagee",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p, lables: {a: b}}\n",
                "metadata.lables",
            ),
            (
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\nspecc: {}\n",
                "specc",
            ),
            (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: i, ports: [{containerPort: 80, hostPort: 80}]}]\n",
                "spec.template.spec.containers[0].ports[0].hostPort",
            ),
        ];
        for (text, path) in table {
            let err = parse_manifests(text).unwrap_err();
            assert_eq!(err.path, path, "{err}");
            let field = path.rsplit('.').next().unwrap();
            assert!(
                err.message.contains(&format!("unknown field `{field}`")),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                format!("document 1: {path}: {}", err.message)
            );
        }
    }

    #[test]
    fn kind_and_api_version_must_be_known() {
        let unknown_kind = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n";
        let err = parse_manifests(unknown_kind).unwrap_err();
        assert_eq!((err.document, err.path.as_str()), (Some(2), "kind"));
        assert!(err.message.contains("unknown kind \"Service\""), "{err}");

        let wrong_version = "apiVersion: v1\nkind: Deployment\nmetadata: {name: d}\n";
        let err = parse_manifests(wrong_version).unwrap_err();
        assert_eq!(err.path, "apiVersion");
        assert!(err.message.contains("\"apps/v1\""), "{err}");
        assert!(err.message.contains("\"v1\""), "{err}");

        let missing_kind = "apiVersion: v1\nmetadata: {name: d}\n";
        assert_eq!(parse_manifests(missing_kind).unwrap_err().path, "kind");
        // Kind names are exact in manifests, as in Kubernetes.
        let lowercase = "apiVersion: v1\nkind: pod\nmetadata: {name: p}\n";
        assert!(parse_manifests(lowercase).is_err());
        let scalar = "just text\n";
        assert!(
            parse_manifests(scalar)
                .unwrap_err()
                .message
                .contains("mapping")
        );
    }

    #[test]
    fn empty_input_and_empty_documents() {
        assert!(parse_manifests("").unwrap().is_empty());
        assert!(
            parse_manifests("---\n---\n# only a comment\n")
                .unwrap()
                .is_empty()
        );
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n";
        assert_eq!(parse_manifests(text).unwrap().len(), 1);
        let err = ManifestError {
            document: None,
            path: String::new(),
            message: "bad".into(),
        };
        assert_eq!(err.to_string(), "bad");
    }
}
