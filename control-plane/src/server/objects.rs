//! The public object API: validation in, Raft commands out, reads from the local table
//! behind a linearizability barrier, and watches from the local history.

use std::sync::Arc;
use std::time::Duration;

use skiff_api::pod_security::Level;
use skiff_api::proto::objects_server::Objects;
use skiff_api::proto::{
    CreateRequest, DeleteRequest, DeleteResponse, GetRequest, KeyChange, ListRequest, ListResponse,
    ObjectResponse, PatchRequest, UpdateRequest, WatchEvent, WatchRequest,
};
use skiff_api::selector::{FieldSelector, Selector};
use skiff_api::types::Pod;
use skiff_api::{Kind, Object, names, validate};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use skiff_pki::{Attributes, NodeTarget, Subject, Verb};

use super::auth::{Gate, check};
use crate::admission::{admit_new, effective_namespace, normalize_namespace};
use crate::error::ApiError;
use crate::pod_security;
use crate::raft_node::ControlPlane;
use crate::raft_types::{Command, UpdatePart};
use crate::store::objects::{EventType, SELECTABLE_FIELDS};
use crate::store::{StoredObject, WatchRecord};

pub struct ObjectsServer {
    pub node: Arc<ControlPlane>,
    pub gate: Gate,
    /// How often an idle watch gets a BOOKMARK, so its resume point keeps up.
    pub bookmark_interval: Duration,
    /// Turns true when the node shuts down: open watches end (clients resume elsewhere).
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// How many times an update without a resourceVersion is retried after losing a race.
const UNCONDITIONAL_RETRIES: usize = 5;
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

fn parse_kind(kind: &str) -> Result<Kind, ApiError> {
    Kind::parse(kind).ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "kind: Unsupported value: {kind:?}: supported values: \"Namespace\", \"Pod\", \"Deployment\", \"Node\", \"Event\""
        ))
    })
}

fn parse_object(kind: Kind, bytes: &[u8]) -> Result<Object, ApiError> {
    Object::from_json(Some(kind), bytes).map_err(|e| ApiError::InvalidArgument(e.to_string()))
}

fn parse_version(version: &str) -> Result<Option<u64>, ApiError> {
    if version.is_empty() {
        return Ok(None);
    }
    version.parse().map(Some).map_err(|_| {
        ApiError::InvalidArgument(format!(
            "metadata.resourceVersion: Invalid value: {version:?}: must be a decimal number"
        ))
    })
}

/// The request attributes of an object call: `namespace` is ignored for cluster-scoped
/// kinds, and an empty one (a list or watch across namespaces) is the cluster scope.
fn attributes(verb: Verb, kind: Kind, namespace: &str, name: &str) -> Attributes {
    let mut attributes = Attributes::new(verb, kind.plural());
    if kind.is_namespaced() && !namespace.is_empty() {
        attributes = attributes.namespace(namespace);
    }
    if !name.is_empty() {
        attributes = attributes.name(name);
    }
    attributes
}

/// What a stored pod is to NodeRestriction: where it is bound, whether it is terminating.
fn pod_target(stored: &StoredObject) -> NodeTarget {
    let value = stored.value();
    NodeTarget::Pod {
        node_name: value
            .pointer("/spec/nodeName")
            .and_then(|v| v.as_str())
            .map(String::from),
        terminating: value.pointer("/metadata/deletionTimestamp").is_some(),
    }
}

fn pod_cidr(value: &serde_json::Value) -> Option<&str> {
    value
        .pointer("/spec/podCIDR")
        .and_then(|v| v.as_str())
        .filter(|c| !c.is_empty())
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn validation(e: validate::ValidationError) -> ApiError {
    ApiError::InvalidArgument(e.to_string())
}

/// Which objects a list or watch wants.
struct Filter {
    kind: Kind,
    namespace: Option<String>,
    labels: Selector,
    fields: FieldSelector,
}

impl Filter {
    fn new(kind: &str, namespace: &str, labels: &str, fields: &str) -> Result<Filter, ApiError> {
        let kind = parse_kind(kind)?;
        let labels =
            Selector::parse(labels).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let fields =
            FieldSelector::parse(fields).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        for requirement in &fields.requirements {
            if !SELECTABLE_FIELDS.contains(&requirement.field.as_str()) {
                return Err(ApiError::InvalidArgument(format!(
                    "field selector: field label not supported: {:?} (supported: {})",
                    requirement.field,
                    SELECTABLE_FIELDS.join(", ")
                )));
            }
        }
        let namespace =
            (kind.is_namespaced() && !namespace.is_empty()).then(|| namespace.to_string());
        Ok(Filter {
            kind,
            namespace,
            labels,
            fields,
        })
    }

    /// The request attributes of listing or watching through this filter.
    fn attributes(&self, verb: Verb) -> Attributes {
        attributes(verb, self.kind, self.namespace.as_deref().unwrap_or(""), "")
    }

    fn matches(&self, object: &StoredObject) -> bool {
        object.kind == self.kind
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == object.namespace)
            && self.labels.matches(&object.summary.labels)
            && self.fields.matches(|f| object.field(f))
    }

    /// How a change looks through this filter: an object that starts matching is ADDED
    /// and one that stops matching is DELETED, as in Kubernetes.
    fn event_for(&self, record: &WatchRecord) -> Option<EventType> {
        let now = self.matches(&record.object);
        let before = record.previous.as_deref().is_some_and(|p| self.matches(p));
        match (record.event, before, now) {
            (EventType::Deleted, true, _) => Some(EventType::Deleted),
            (EventType::Deleted, false, _) => None,
            (_, false, true) => Some(EventType::Added),
            (_, true, true) => Some(EventType::Modified),
            (_, true, false) => Some(EventType::Deleted),
            (_, false, false) => None,
        }
    }
}

impl ObjectsServer {
    async fn ensure_namespace_for(&self, kind: Kind, namespace: &str) -> Result<(), ApiError> {
        // `default` always exists; a fresh cluster may not have written it yet.
        if kind.is_namespaced() && namespace == "default" {
            self.node.ensure_default_namespace().await?;
        }
        Ok(())
    }

    fn local_get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let namespace = effective_namespace(kind, Some(namespace));
        self.node
            .shared
            .table
            .read()
            .expect("table lock")
            .get(kind, &namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("{} \"{}\" not found", kind.plural(), name)))
    }

    /// NodeRestriction judges a node's write by the object as stored, so read it no older
    /// than the leader's state: a pod deleted through another member a moment ago must not
    /// still look running here. Other callers need no object, and pay nothing.
    async fn barrier_for_nodes(&self, subject: &Subject) -> Result<(), ApiError> {
        if matches!(subject, Subject::Node { .. }) {
            self.node.read_barrier().await?;
        }
        Ok(())
    }

    /// NodeRestriction's view of a stored object that a node writes.
    fn stored_target(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<NodeTarget, ApiError> {
        let stored = self.local_get(kind, namespace, name)?;
        Ok(match kind {
            Kind::Pod => pod_target(&stored),
            _ => NodeTarget::None,
        })
    }

    /// The Pod Security level of `namespace` as this member's table has it.
    fn pod_security_level(&self, namespace: &str) -> Level {
        self.local_get(Kind::Namespace, "", namespace)
            .map_or(Level::UNLABELLED, |ns| {
                Level::of_namespace(&ns.summary.labels)
            })
    }

    /// Pod Security admission of a new pod. A refusal is decided on the leader's state (after
    /// a read barrier): a namespace labelled a moment ago through another member counts,
    /// while admitted pods cost no round trip.
    async fn enforce_pod_security(&self, pod: &Pod, namespace: &str) -> Result<(), ApiError> {
        if pod_security::enforce(self.pod_security_level(namespace), pod).is_ok() {
            return Ok(());
        }
        self.node.read_barrier().await?;
        Ok(pod_security::enforce(
            self.pod_security_level(namespace),
            pod,
        )?)
    }

    async fn do_create(
        &self,
        subject: &Subject,
        request: CreateRequest,
    ) -> Result<Vec<u8>, Status> {
        let kind = parse_kind(&request.kind)?;
        let mut object = parse_object(kind, &request.object)?;
        admit_new(&mut object)?;
        let namespace = object.metadata().namespace.clone().unwrap_or_default();
        let name = object.metadata().name.clone();
        check(
            subject,
            &attributes(Verb::Create, kind, &namespace, &name),
            || {
                Ok(match kind {
                    Kind::Node => NodeTarget::Node {
                        pod_cidr_changes: pod_cidr(&object.to_value()).is_some(),
                    },
                    _ => NodeTarget::None,
                })
            },
        )?;
        self.ensure_namespace_for(kind, &namespace).await?;
        if let Object::Pod(pod) = &object {
            self.enforce_pod_security(pod, &namespace).await?;
        }
        let applied = self
            .node
            .propose(Command::Create {
                kind,
                object: object.to_json(),
            })
            .await?;
        Ok(applied.object)
    }

    async fn do_update(
        &self,
        subject: &Subject,
        request: UpdateRequest,
        part: UpdatePart,
    ) -> Result<Vec<u8>, Status> {
        let kind = parse_kind(&request.kind)?;
        let mut object = parse_object(kind, &request.object)?;
        normalize_namespace(&mut object);
        let requested = parse_version(object.metadata().resource_version.as_deref().unwrap_or(""))?;
        if part == UpdatePart::Main {
            object.apply_defaults();
            validate::validate(&object).map_err(validation)?;
        }
        let namespace = object.metadata().namespace.clone().unwrap_or_default();
        let name = object.metadata().name.clone();
        self.barrier_for_nodes(subject).await?;
        let mut wanted = attributes(Verb::Update, kind, &namespace, &name);
        if part == UpdatePart::Status {
            wanted = wanted.subresource("status");
        }
        check(subject, &wanted, || match kind {
            Kind::Node => {
                let stored = self.local_get(kind, &namespace, &name)?;
                Ok(NodeTarget::Node {
                    pod_cidr_changes: part == UpdatePart::Main
                        && pod_cidr(&stored.value()) != pod_cidr(&object.to_value()),
                })
            }
            _ => self.stored_target(kind, &namespace, &name),
        })?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let expected = match (part, requested) {
                (_, Some(v)) => Some(v),
                (UpdatePart::Status, None) => None,
                (UpdatePart::Main, None) => {
                    // Validate against the version we replace, and replace only that one.
                    self.node.read_barrier().await?;
                    Some(self.local_get(kind, &namespace, &name)?.version)
                }
            };
            if part == UpdatePart::Main {
                let current = self.local_get(kind, &namespace, &name)?;
                let current = Object::from_json(Some(kind), &current.json)
                    .map_err(|e| ApiError::Internal(format!("stored object is unreadable: {e}")))?;
                validate::validate_update(&current, &object).map_err(validation)?;
            }
            let command = Command::Update {
                kind,
                object: object.to_json(),
                part,
                expected_version: expected,
            };
            match self.node.propose(command).await {
                Err(ApiError::Conflict(_))
                    if requested.is_none() && attempts < UNCONDITIONAL_RETRIES =>
                {
                    continue;
                }
                result => return Ok(result?.object),
            }
        }
    }

    async fn do_patch(&self, subject: &Subject, request: PatchRequest) -> Result<Vec<u8>, Status> {
        let kind = parse_kind(&request.kind)?;
        let namespace = effective_namespace(kind, Some(&request.namespace));
        self.barrier_for_nodes(subject).await?;
        check(
            subject,
            &attributes(Verb::Patch, kind, &namespace, &request.name),
            // Labels and annotations only: a node's own Node keeps its pod CIDR.
            || match kind {
                Kind::Node => Ok(NodeTarget::Node {
                    pod_cidr_changes: false,
                }),
                _ => self.stored_target(kind, &namespace, &request.name),
            },
        )?;
        for change in &request.labels {
            names::is_qualified_name(&change.key).map_err(|m| {
                ApiError::InvalidArgument(format!(
                    "metadata.labels: Invalid value: {:?}: {m}",
                    change.key
                ))
            })?;
            if let Some(value) = &change.value {
                names::is_label_value(value).map_err(|m| {
                    ApiError::InvalidArgument(format!(
                        "metadata.labels: Invalid value: {value:?}: {m}"
                    ))
                })?;
            }
        }
        if kind == Kind::Namespace {
            let set = request
                .labels
                .iter()
                .filter_map(|c| Some((c.key.clone(), c.value.clone()?)))
                .collect();
            validate::validate_namespace_labels(&set).map_err(validation)?;
        }
        for change in &request.annotations {
            names::is_qualified_name(&change.key).map_err(|m| {
                ApiError::InvalidArgument(format!(
                    "metadata.annotations: Invalid value: {:?}: {m}",
                    change.key
                ))
            })?;
        }
        if !request.annotations.is_empty() {
            let current = self.local_get(kind, &namespace, &request.name)?;
            let value = current.value();
            let mut annotations: std::collections::BTreeMap<String, String> = value
                .pointer("/metadata/annotations")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            for KeyChange { key, value } in &request.annotations {
                match value {
                    Some(v) => annotations.insert(key.clone(), v.clone()),
                    None => annotations.remove(key),
                };
            }
            let size: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
            if size > ANNOTATIONS_LIMIT {
                return Err(ApiError::InvalidArgument(format!(
                    "metadata.annotations: Too long: must have at most {ANNOTATIONS_LIMIT} bytes"
                ))
                .into());
            }
        }
        let pairs =
            |changes: Vec<KeyChange>| changes.into_iter().map(|c| (c.key, c.value)).collect();
        let applied = self
            .node
            .propose(Command::Patch {
                kind,
                namespace,
                name: request.name,
                labels: pairs(request.labels),
                annotations: pairs(request.annotations),
                overwrite: request.overwrite,
                expected_version: parse_version(&request.resource_version)?,
            })
            .await?;
        Ok(applied.object)
    }

    async fn do_delete(
        &self,
        subject: &Subject,
        request: DeleteRequest,
    ) -> Result<DeleteResponse, Status> {
        let kind = parse_kind(&request.kind)?;
        let namespace = effective_namespace(kind, Some(&request.namespace));
        self.barrier_for_nodes(subject).await?;
        check(
            subject,
            &attributes(Verb::Delete, kind, &namespace, &request.name),
            || self.stored_target(kind, &namespace, &request.name),
        )?;
        if let Some(grace) = request.grace_period_seconds.filter(|g| *g < 0) {
            return Err(ApiError::InvalidArgument(format!(
                "gracePeriodSeconds: Invalid value: {grace}: must be greater than or equal to 0"
            ))
            .into());
        }
        let applied = self
            .node
            .propose(Command::Delete {
                kind,
                namespace,
                name: request.name,
                grace_period_seconds: request.grace_period_seconds,
                force: request.force,
                now: now_rfc3339(),
            })
            .await?;
        Ok(DeleteResponse {
            object: applied.object,
            removed: applied.removed,
        })
    }

    async fn do_list(
        &self,
        subject: &Subject,
        request: ListRequest,
    ) -> Result<ListResponse, Status> {
        let filter = Filter::new(
            &request.kind,
            &request.namespace,
            &request.label_selector,
            &request.field_selector,
        )?;
        check(subject, &filter.attributes(Verb::List), || {
            Ok(NodeTarget::None)
        })?;
        if !request.stale_ok {
            self.node.read_barrier().await?;
        }
        let table = self.node.shared.table.read().expect("table lock");
        // Read under the table lock, so the version is exactly the listed state's.
        let resource_version = self.node.shared.applied_index();
        let items = table
            .list(filter.kind, filter.namespace.as_deref())
            .filter(|o| filter.matches(o))
            .map(|o| o.json.to_vec())
            .collect();
        Ok(ListResponse {
            items,
            resource_version,
        })
    }

    fn start_watch(
        &self,
        subject: &Subject,
        request: WatchRequest,
    ) -> Result<ReceiverStream<Result<WatchEvent, Status>>, Status> {
        let filter = Filter::new(
            &request.kind,
            &request.namespace,
            &request.label_selector,
            &request.field_selector,
        )?;
        check(subject, &filter.attributes(Verb::Watch), || {
            Ok(NodeTarget::None)
        })?;
        let requested = parse_version(&request.resource_version)?;
        let shared = self.node.shared.clone();
        // Fail before streaming when the history no longer reaches back that far.
        if let Some(v) = requested
            && v <= shared.applied_index()
        {
            shared.hub.since(v).map_err(ApiError::from)?;
        }
        let initial = match requested {
            Some(_) => None,
            None => {
                let table = shared.table.read().expect("table lock");
                let version = shared.applied_index();
                let objects: Vec<_> = table
                    .list(filter.kind, filter.namespace.as_deref())
                    .filter(|o| filter.matches(o))
                    .cloned()
                    .collect();
                Some((version, objects))
            }
        };
        let (tx, rx) = mpsc::channel(1024);
        let bookmark_interval = self.bookmark_interval;
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => {}
                _ = stream_watch(shared, filter, initial, requested, tx, bookmark_interval) => {}
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}

/// Feeds one watch: the initial list (if any), then every matching change, with bookmarks
/// while idle. Returns when the client goes away or the history is too old.
async fn stream_watch(
    shared: Arc<crate::store::SharedState>,
    filter: Filter,
    initial: Option<(u64, Vec<Arc<StoredObject>>)>,
    requested: Option<u64>,
    tx: mpsc::Sender<Result<WatchEvent, Status>>,
    bookmark_interval: Duration,
) {
    let mut cursor = match initial {
        Some((version, objects)) => {
            for object in objects {
                if tx.send(Ok(event(EventType::Added, &object))).await.is_err() {
                    return;
                }
            }
            // Marks the end of the initial list: resuming from here misses nothing.
            let bookmark = WatchEvent {
                r#type: "BOOKMARK".into(),
                object: Vec::new(),
                resource_version: version,
            };
            if tx.send(Ok(bookmark)).await.is_err() {
                return;
            }
            version
        }
        None => {
            let version = requested.unwrap_or(0);
            tokio::select! {
                _ = shared.wait_applied(version) => {}
                _ = tx.closed() => return,
            }
            version
        }
    };
    let mut applied_rx = shared.applied.subscribe();
    let mut last_sent_version = cursor;
    loop {
        let applied = *applied_rx.borrow_and_update();
        let records = match shared.hub.since(cursor) {
            Ok(records) => records,
            Err(too_old) => {
                let _ = tx.send(Err(ApiError::from(too_old).into())).await;
                return;
            }
        };
        for record in &records {
            if let Some(kind) = filter.event_for(record) {
                if tx.send(Ok(event(kind, &record.object))).await.is_err() {
                    return;
                }
                last_sent_version = record.version;
            }
            cursor = cursor.max(record.version);
        }
        // Everything up to `applied` was published before it was announced.
        cursor = cursor.max(applied);
        tokio::select! {
            changed = applied_rx.changed() => if changed.is_err() { return },
            _ = tx.closed() => return,
            _ = tokio::time::sleep(bookmark_interval) => {
                if cursor > last_sent_version {
                    let bookmark = WatchEvent { r#type: "BOOKMARK".into(), object: Vec::new(), resource_version: cursor };
                    if tx.send(Ok(bookmark)).await.is_err() {
                        return;
                    }
                    last_sent_version = cursor;
                }
            }
        }
    }
}

fn event(kind: EventType, object: &StoredObject) -> WatchEvent {
    WatchEvent {
        r#type: kind.as_str().to_string(),
        object: object.json.to_vec(),
        resource_version: object.version,
    }
}

#[tonic::async_trait]
impl Objects for ObjectsServer {
    async fn create(
        &self,
        request: Request<CreateRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        let object = self.do_create(&subject, request.into_inner()).await?;
        Ok(Response::new(ObjectResponse { object }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<ObjectResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        check(
            &subject,
            &attributes(Verb::Get, kind, &request.namespace, &request.name),
            || Ok(NodeTarget::None),
        )?;
        if !request.stale_ok {
            self.node.read_barrier().await?;
        }
        let object = self.local_get(kind, &request.namespace, &request.name)?;
        Ok(Response::new(ObjectResponse {
            object: object.json.to_vec(),
        }))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        Ok(Response::new(
            self.do_list(&subject, request.into_inner()).await?,
        ))
    }

    async fn update(
        &self,
        request: Request<UpdateRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        let object = self
            .do_update(&subject, request.into_inner(), UpdatePart::Main)
            .await?;
        Ok(Response::new(ObjectResponse { object }))
    }

    async fn update_status(
        &self,
        request: Request<UpdateRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        let object = self
            .do_update(&subject, request.into_inner(), UpdatePart::Status)
            .await?;
        Ok(Response::new(ObjectResponse { object }))
    }

    async fn patch(
        &self,
        request: Request<PatchRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        let object = self.do_patch(&subject, request.into_inner()).await?;
        Ok(Response::new(ObjectResponse { object }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        Ok(Response::new(
            self.do_delete(&subject, request.into_inner()).await?,
        ))
    }

    type WatchStream = ReceiverStream<Result<WatchEvent, Status>>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let subject = self.gate.subject(&request).await?;
        Ok(Response::new(
            self.start_watch(&subject, request.into_inner())?,
        ))
    }
}
