//! The public object API: validation in, Raft commands out, reads from the local table
//! behind a linearizability barrier, and watches from the local history.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use skiff_api::pod_security::Level;
use skiff_api::proto::objects_server::Objects;
use skiff_api::proto::{
    CreateRequest, DeleteRequest, DeleteResponse, GetRequest, KeyChange, ListRequest, ListResponse,
    ObjectResponse, PatchRequest, UpdateRequest, WatchEvent, WatchRequest,
};
use skiff_api::selector::{FieldSelector, Selector};
use skiff_api::types::Pod;
use skiff_api::{Kind, Object, names, validate};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::{Request, Response, Status};

use skiff_pki::{Attributes, NodeTarget, Subject, Verb};

use super::auth::{Gate, check};
use super::event_limit::EventLimiter;
use super::paging::ContinueToken;
use crate::admission::{admit_new, effective_namespace, normalize_namespace};
use crate::controllers::propagation as deletion;
use crate::error::ApiError;
use crate::pod_security;
use crate::raft_node::ControlPlane;
use crate::raft_types::{Command, UpdatePart};
use crate::store::objects::{
    EventType, SELECTABLE_FIELDS, kind_prefix, namespace_terminating, patched_value,
    terminating_refusal, updated_value,
};
use crate::store::{StoredObject, WatchRecord};

pub struct ObjectsServer {
    pub node: Arc<ControlPlane>,
    pub gate: Gate,
    /// How often an idle watch gets a BOOKMARK, so its resume point keeps up.
    pub bookmark_interval: Duration,
    /// Turns true when the node shuts down: open watches end (clients resume elsewhere).
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The largest object stored (`--max-object-bytes`), in bytes of its JSON.
    pub max_object_bytes: usize,
    /// Open watches per client connection (`--max-watches-per-connection`).
    pub watches: Arc<WatchSlots>,
    /// How often one source may write events about one object.
    pub events: EventLimiter,
}

/// One page of a list: the stored objects (shared with the table, not copies), the
/// version every page of the list reflects, and where the list goes on.
pub(crate) struct ListPage {
    pub items: Vec<Arc<StoredObject>>,
    pub resource_version: u64,
    /// Empty on the last page.
    pub r#continue: String,
    pub remaining_item_count: Option<u64>,
}

/// How many times an update without a resourceVersion is retried after losing a race.
const UNCONDITIONAL_RETRIES: usize = 5;

/// How a write is made: for real, or as a dry run (the Kubernetes API's `dryRun=All`: every
/// check made, nothing written, the would-be object returned); and the verb it is
/// authorized as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteMode {
    pub dry_run: bool,
    /// A PATCH, authorized as `patch` rather than `update`.
    pub patch: bool,
}

/// What happens to an object's dependents (a deployment's pods) when it is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// The owner goes now; the deployment controller deletes its pods after it.
    #[default]
    Background,
    /// The owner goes once its pods no longer refer to it; the pods stay.
    Orphan,
    /// The owner goes once its pods are gone.
    Foreground,
}

/// Events buffered for one watcher before it counts as slow. The buffer holds the stored
/// objects themselves (shared with the table and the history), not copies.
const WATCH_BUFFER: usize = 1024;

/// Bytes of objects one watcher's buffer may hold. The objects are shared, but a slow
/// watcher keeps alive those the history has already let go; this bounds how many.
const WATCH_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// How long a watcher's full buffer may stay full before the watch is closed with "too
/// old", so the client relists instead of the member buffering for it without end.
pub const SLOW_WATCHER_GRACE: Duration = Duration::from_secs(5);

/// Counts open watches per client connection (by its remote address), and refuses those
/// over the cap.
pub struct WatchSlots {
    cap: usize,
    open: Mutex<HashMap<Option<SocketAddr>, usize>>,
}

impl WatchSlots {
    pub fn new(cap: usize) -> WatchSlots {
        WatchSlots {
            cap,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn take(self: &Arc<Self>, connection: Option<SocketAddr>) -> Result<WatchSlot, ApiError> {
        let mut open = self.open.lock().expect("watch slots lock");
        let count = open.entry(connection).or_default();
        if *count >= self.cap {
            return Err(ApiError::ResourceExhausted(format!(
                "too many watches on this connection: at most {} at a time (--max-watches-per-connection); close one or open another connection",
                self.cap
            )));
        }
        *count += 1;
        Ok(WatchSlot {
            slots: self.clone(),
            connection,
        })
    }
}

/// One open watch; the slot is given back when the watch's task ends.
struct WatchSlot {
    slots: Arc<WatchSlots>,
    connection: Option<SocketAddr>,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("watch slots lock");
        if let Some(count) = open.get_mut(&self.connection) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.connection);
            }
        }
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

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
    /// Refuses an object whose JSON, as it would be stored, is over `--max-object-bytes`.
    fn check_object_size(&self, kind: Kind, name: &str, json_len: usize) -> Result<(), ApiError> {
        if json_len <= self.max_object_bytes {
            return Ok(());
        }
        Err(ApiError::InvalidArgument(format!(
            "{} \"{name}\": object is {} ({json_len} bytes), larger than the limit of {} ({} bytes, --max-object-bytes)",
            kind.plural(),
            mib(json_len),
            mib(self.max_object_bytes),
            self.max_object_bytes
        )))
    }

    /// The stored object a write changes. The table may lag the leader by a moment, so an
    /// object missing here is looked up again after a read barrier before it counts as
    /// missing.
    async fn current_for_write(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<StoredObject>, ApiError> {
        match self.local_get(kind, namespace, name) {
            Err(ApiError::NotFound(_)) => {
                self.node.read_barrier().await?;
                self.local_get(kind, namespace, name)
            }
            found => found,
        }
    }

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

    /// NamespaceLifecycle admission: nothing new in a namespace being deleted. Judged on
    /// this member's table, which may lag; the state machine checks again when it applies.
    fn refuse_in_terminating_namespace(
        &self,
        kind: Kind,
        name: &str,
        namespace: &str,
    ) -> Result<(), ApiError> {
        if !kind.is_namespaced() {
            return Ok(());
        }
        match self.local_get(Kind::Namespace, "", namespace) {
            Ok(ns) if namespace_terminating(&ns) => Err(ApiError::Forbidden(terminating_refusal(
                kind, name, namespace,
            ))),
            _ => Ok(()),
        }
    }

    /// The Pod Security level of `namespace` as this member's table has it; `None` when this
    /// member has not seen the namespace.
    fn pod_security_level(&self, namespace: &str) -> Option<Level> {
        self.local_get(Kind::Namespace, "", namespace)
            .ok()
            .map(|ns| Level::of_namespace(&ns.summary.labels))
    }

    /// Pod Security admission of a new pod. A refusal, and any pod in a namespace this member
    /// has not seen yet, is decided on the leader's state (after a read barrier): a namespace
    /// made or labelled a moment ago through another member counts (judging an unseen one by
    /// the default level would admit a pod its `restricted` label refuses), while admitted
    /// pods in known namespaces cost no round trip.
    async fn enforce_pod_security(&self, pod: &Pod, namespace: &str) -> Result<(), ApiError> {
        if let Some(level) = self.pod_security_level(namespace)
            && pod_security::enforce(level, pod).is_ok()
        {
            return Ok(());
        }
        self.node.read_barrier().await?;
        let level = self
            .pod_security_level(namespace)
            .unwrap_or(Level::UNLABELLED);
        Ok(pod_security::enforce(level, pod)?)
    }

    pub(crate) async fn do_get(
        &self,
        subject: &Subject,
        request: GetRequest,
    ) -> Result<Vec<u8>, Status> {
        let kind = parse_kind(&request.kind)?;
        check(
            subject,
            &attributes(Verb::Get, kind, &request.namespace, &request.name),
            || Ok(NodeTarget::None),
        )?;
        if !request.stale_ok {
            self.node.read_barrier().await?;
        }
        let object = self.local_get(kind, &request.namespace, &request.name)?;
        Ok(object.json.to_vec())
    }

    pub(crate) async fn do_create(
        &self,
        subject: &Subject,
        request: CreateRequest,
    ) -> Result<Vec<u8>, Status> {
        self.do_create_with(subject, request, WriteMode::default())
            .await
    }

    pub(crate) async fn do_create_with(
        &self,
        subject: &Subject,
        request: CreateRequest,
        mode: WriteMode,
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
        let json = object.to_json();
        self.check_object_size(kind, &name, json.len())?;
        if let Object::Event(event) = &object {
            self.events
                .admit(event, Instant::now())
                .map_err(ApiError::from)?;
        }
        self.ensure_namespace_for(kind, &namespace).await?;
        self.refuse_in_terminating_namespace(kind, &name, &namespace)?;
        if let Object::Pod(pod) = &object {
            self.enforce_pod_security(pod, &namespace).await?;
        }
        if mode.dry_run {
            // What the write would refuse for want of room, the dry run refuses too.
            self.node.read_barrier().await?;
            if self.local_get(kind, &namespace, &name).is_ok() {
                return Err(ApiError::AlreadyExists(format!(
                    "{} \"{name}\" already exists",
                    kind.plural()
                ))
                .into());
            }
            return Ok(json);
        }
        let applied = self
            .node
            .propose(Command::Create { kind, object: json })
            .await?;
        Ok(applied.object)
    }

    /// The stored object's JSON as the leader has it, for a write that starts from it (a
    /// PATCH); authorized by the write that follows, not as a read.
    pub(crate) async fn current_json(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<u8>, Status> {
        let kind = parse_kind(kind)?;
        self.node.read_barrier().await?;
        Ok(self.local_get(kind, namespace, name)?.json.to_vec())
    }

    pub(crate) async fn do_update(
        &self,
        subject: &Subject,
        request: UpdateRequest,
        part: UpdatePart,
    ) -> Result<Vec<u8>, Status> {
        self.do_update_with(subject, request, part, WriteMode::default())
            .await
    }

    pub(crate) async fn do_update_with(
        &self,
        subject: &Subject,
        request: UpdateRequest,
        part: UpdatePart,
        mode: WriteMode,
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
        let verb = if mode.patch {
            Verb::Patch
        } else {
            Verb::Update
        };
        let mut wanted = attributes(verb, kind, &namespace, &name);
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
        // A repeated event is its stored one counted up: an update, limited as a create.
        if let Object::Event(event) = &object {
            self.events
                .admit(event, Instant::now())
                .map_err(ApiError::from)?;
        }
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
            let current = self.current_for_write(kind, &namespace, &name).await?;
            if part == UpdatePart::Main {
                let current = Object::from_json(Some(kind), &current.json)
                    .map_err(|e| ApiError::Internal(format!("stored object is unreadable: {e}")))?;
                validate::validate_update(&current, &object).map_err(validation)?;
            }
            // Measured on what the update makes of the stored object: a status update
            // keeps the stored spec, and an update keeps the stored status.
            let after = updated_value(&current.value(), object.to_value(), part);
            let after_len = serde_json::to_vec(&after).map_or(usize::MAX, |j| j.len());
            self.check_object_size(kind, &name, after_len)?;
            if mode.dry_run {
                if expected.is_some_and(|v| v != current.version) {
                    return Err(ApiError::Conflict(format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                        kind.plural()
                    ))
                    .into());
                }
                return Ok(serde_json::to_vec(&after).map_err(|e| {
                    ApiError::Internal(format!("the updated object does not encode: {e}"))
                })?);
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
        let pairs =
            |changes: Vec<KeyChange>| changes.into_iter().map(|c| (c.key, c.value)).collect();
        let labels: Vec<(String, Option<String>)> = pairs(request.labels);
        let annotations: Vec<(String, Option<String>)> = pairs(request.annotations);
        // The limits hold for the object the patch makes, as for a create or an update.
        let current = self
            .current_for_write(kind, &namespace, &request.name)
            .await?;
        let after = patched_value(&current.value(), &labels, &annotations, request.overwrite)
            .map_err(ApiError::from)?;
        if let Some(map) = after
            .pointer("/metadata/annotations")
            .and_then(|v| v.as_object())
        {
            let size: usize = map
                .iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .sum();
            if size > validate::ANNOTATIONS_MAX_BYTES {
                return Err(ApiError::InvalidArgument(format!(
                    "metadata.annotations: Too long: must have at most {} bytes",
                    validate::ANNOTATIONS_MAX_BYTES
                ))
                .into());
            }
        }
        let after_len = serde_json::to_vec(&after).map_or(usize::MAX, |j| j.len());
        self.check_object_size(kind, &request.name, after_len)?;
        let applied = self
            .node
            .propose(Command::Patch {
                kind,
                namespace,
                name: request.name,
                labels,
                annotations,
                overwrite: request.overwrite,
                expected_version: parse_version(&request.resource_version)?,
            })
            .await?;
        Ok(applied.object)
    }

    pub(crate) async fn do_delete(
        &self,
        subject: &Subject,
        request: DeleteRequest,
    ) -> Result<DeleteResponse, Status> {
        self.do_delete_with(subject, request, false, Propagation::Background)
            .await
    }

    pub(crate) async fn do_delete_with(
        &self,
        subject: &Subject,
        request: DeleteRequest,
        dry_run: bool,
        propagation: Propagation,
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
        if dry_run {
            let current = self
                .current_for_write(kind, &namespace, &request.name)
                .await?;
            return Ok(DeleteResponse {
                object: current.json.to_vec(),
                removed: false,
            });
        }
        let delete = match kind {
            // Only marked: the namespace controller empties it, pods gracefully, and then
            // removes it (controllers/namespace.rs).
            Kind::Namespace => Command::MarkNamespaceTerminating {
                name: request.name.clone(),
                now: now_rfc3339(),
            },
            _ => Command::Delete {
                kind,
                namespace: namespace.clone(),
                name: request.name.clone(),
                grace_period_seconds: request.grace_period_seconds,
                force: request.force,
                now: now_rfc3339(),
            },
        };
        let policy = match propagation {
            Propagation::Background => None,
            Propagation::Orphan => Some(deletion::Policy::Orphan),
            Propagation::Foreground => Some(deletion::Policy::Foreground),
        };
        if let Some(policy) = policy
            && kind == Kind::Deployment
        {
            return self
                .delete_propagating(&namespace, &request.name, policy)
                .await;
        }
        let applied = self.node.propose(delete).await?;
        Ok(DeleteResponse {
            object: applied.object,
            removed: applied.removed,
        })
    }

    /// Deletes a deployment with Orphan or Foreground propagation: the controllers' leader
    /// carries it out (controllers/propagation.rs) from a system record written here; the
    /// answer waits, up to the request timeout, for the deployment to be gone, as kubectl
    /// waits for it.
    async fn delete_propagating(
        &self,
        namespace: &str,
        name: &str,
        policy: deletion::Policy,
    ) -> Result<DeleteResponse, Status> {
        self.node.read_barrier().await?;
        let owner = self.local_get(Kind::Deployment, namespace, name)?;
        let uid = owner
            .value()
            .pointer("/metadata/uid")
            .and_then(|u| u.as_str())
            .unwrap_or_default()
            .to_string();
        let record = deletion::Deleting {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.clone(),
            policy,
        };
        self.node
            .propose(Command::PutSystem {
                key: deletion::record_key(&uid),
                value: record.encode(),
            })
            .await?;
        let shared = &self.node.shared;
        let mut applied = shared.applied.subscribe();
        let deadline = tokio::time::Instant::now() + self.node.request_timeout;
        loop {
            let current = self.local_get(Kind::Deployment, namespace, name);
            match current {
                Ok(current)
                    if current
                        .value()
                        .pointer("/metadata/uid")
                        .and_then(|u| u.as_str())
                        == Some(uid.as_str()) =>
                {
                    let changed = tokio::time::timeout_at(deadline, applied.changed()).await;
                    if !matches!(changed, Ok(Ok(()))) {
                        // Still under way: the deployment as it stands, as Kubernetes answers
                        // a deletion that waits on its finalizers.
                        return Ok(DeleteResponse {
                            object: current.json.to_vec(),
                            removed: false,
                        });
                    }
                }
                _ => {
                    return Ok(DeleteResponse {
                        object: owner.json.to_vec(),
                        removed: true,
                    });
                }
            }
        }
    }

    pub(crate) async fn do_list(
        &self,
        subject: &Subject,
        request: ListRequest,
    ) -> Result<ListResponse, Status> {
        let page = self.list_page(subject, request).await?;
        Ok(ListResponse {
            // Each item shares the stored bytes: the only copy is the message's encoding.
            items: page
                .items
                .iter()
                .map(|o| bytes::Bytes::from_owner(o.json.clone()))
                .collect(),
            resource_version: page.resource_version,
            r#continue: page.r#continue,
            remaining_item_count: page.remaining_item_count,
        })
    }

    /// One page of a list as the stored objects themselves, for callers that write the
    /// response from their shared bytes ([`Self::do_list`], the Kubernetes API's list).
    pub(crate) async fn list_page(
        &self,
        subject: &Subject,
        request: ListRequest,
    ) -> Result<ListPage, Status> {
        let filter = Filter::new(
            &request.kind,
            &request.namespace,
            &request.label_selector,
            &request.field_selector,
        )?;
        check(subject, &filter.attributes(Verb::List), || {
            Ok(NodeTarget::None)
        })?;
        let prefix = kind_prefix(filter.kind, filter.namespace.as_deref());
        let token = match request.r#continue.as_str() {
            "" => None,
            text => Some(ContinueToken::decode(text, &prefix).map_err(ApiError::from)?),
        };
        if !request.stale_ok {
            self.node.read_barrier().await?;
        }
        let shared = &self.node.shared;
        if let Some(token) = &token
            && token.version > shared.applied_index()
        {
            // A token from a member ahead of this one: wait until this one caught up.
            tokio::time::timeout(
                self.node.request_timeout,
                shared.wait_applied(token.version),
            )
            .await
            .map_err(|_| {
                ApiError::Unavailable(format!(
                    "this member has not yet reached the list's version {}",
                    token.version
                ))
            })?;
        }
        let after = token.as_ref().map_or("", |t| t.after.as_str());
        let at = token.as_ref().map(|t| t.version);
        let (resource_version, objects) = shared
            .list_at(filter.kind, filter.namespace.as_deref(), after, at)
            .map_err(|too_old| {
                ApiError::TooOld(format!(
                    "continue: the list's version is too old ({too_old}); list again from the start"
                ))
            })?;
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let mut matching = objects.into_iter().filter(|o| filter.matches(o));
        let page: Vec<Arc<StoredObject>> = match limit {
            0 => matching.by_ref().collect(),
            limit => matching.by_ref().take(limit).collect(),
        };
        let remaining = matching.count();
        let (r#continue, remaining_item_count) = match page.last() {
            Some(last) if remaining > 0 => (
                ContinueToken {
                    version: resource_version,
                    after: last.key(),
                }
                .encode(),
                Some(remaining as u64),
            ),
            _ => (String::new(), None),
        };
        Ok(ListPage {
            items: page,
            resource_version,
            r#continue,
            remaining_item_count,
        })
    }

    pub(crate) fn start_watch(
        &self,
        subject: &Subject,
        connection: Option<SocketAddr>,
        request: WatchRequest,
    ) -> Result<WatchStream, Status> {
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
        let slot = self.watches.take(connection)?;
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
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let evicted = Arc::new(AtomicBool::new(false));
        let sink = Sink {
            tx,
            bytes: Arc::new(Semaphore::new(WATCH_BUFFER_BYTES)),
            evicted: evicted.clone(),
        };
        let bookmark_interval = self.bookmark_interval;
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => {}
                _ = stream_watch(shared, filter, initial, requested, sink, bookmark_interval) => {}
            }
        });
        Ok(WatchStream {
            rx,
            evicted,
            done: false,
        })
    }
}

/// What a watch's task hands its stream: the stored objects themselves, so a full buffer
/// costs pointers, and each is encoded only as the client takes it.
enum Outgoing {
    /// The permit holds the object's bytes of the watcher's budget until it is taken.
    Event(EventType, Arc<StoredObject>, OwnedSemaphorePermit),
    Bookmark(u64),
    Fail(Status),
}

/// The watch task's end of a watch.
struct Sink {
    tx: mpsc::Sender<Outgoing>,
    /// The watcher's budget of buffered bytes ([`WATCH_BUFFER_BYTES`]).
    bytes: Arc<Semaphore>,
    evicted: Arc<AtomicBool>,
}

/// Why a watch's task stops sending.
enum Stop {
    /// The client went away.
    Gone,
    /// The client did not take events for [`SLOW_WATCHER_GRACE`] with its buffer full.
    Slow,
}

impl Sink {
    /// Queues an event, waiting at most [`SLOW_WATCHER_GRACE`] for room in the buffer.
    async fn event(&self, kind: EventType, object: Arc<StoredObject>) -> Result<(), Stop> {
        let deadline = tokio::time::Instant::now() + SLOW_WATCHER_GRACE;
        // An object larger than the whole budget takes all of it.
        let bytes = u32::try_from(object.json.len().min(WATCH_BUFFER_BYTES)).unwrap_or(u32::MAX);
        let permit =
            match tokio::time::timeout_at(deadline, self.bytes.clone().acquire_many_owned(bytes))
                .await
            {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(Stop::Gone),
                Err(_) => return Err(self.evict()),
            };
        self.send_by(deadline, Outgoing::Event(kind, object, permit))
            .await
    }

    async fn send(&self, item: Outgoing) -> Result<(), Stop> {
        self.send_by(tokio::time::Instant::now() + SLOW_WATCHER_GRACE, item)
            .await
    }

    async fn send_by(&self, deadline: tokio::time::Instant, item: Outgoing) -> Result<(), Stop> {
        match tokio::time::timeout_at(deadline, self.tx.send(item)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(self.evict()),
        }
    }

    /// The buffer cannot take the error either: the stream reports it first.
    fn evict(&self) -> Stop {
        self.evicted.store(true, Ordering::SeqCst);
        Stop::Slow
    }
}

/// The stream a watch answers with. A slow watcher's buffered events are dropped and it
/// gets the "too old" error next, which tells it to list again.
pub struct WatchStream {
    rx: mpsc::Receiver<Outgoing>,
    evicted: Arc<AtomicBool>,
    done: bool,
}

fn slow_watcher() -> Status {
    ApiError::TooOld(format!(
        "resource version too old: this watcher did not keep up (its buffer stayed full for {} s); list again",
        SLOW_WATCHER_GRACE.as_secs()
    ))
    .into()
}

impl tokio_stream::Stream for WatchStream {
    type Item = Result<WatchEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.evicted.load(Ordering::SeqCst) {
            self.done = true;
            return Poll::Ready(Some(Err(slow_watcher())));
        }
        match self.rx.poll_recv(cx) {
            // The permit goes with the event: its bytes leave the budget.
            Poll::Ready(Some(Outgoing::Event(kind, object, _permit))) => {
                Poll::Ready(Some(Ok(event(kind, &object))))
            }
            Poll::Ready(Some(Outgoing::Bookmark(version))) => Poll::Ready(Some(Ok(WatchEvent {
                r#type: "BOOKMARK".into(),
                object: Vec::new(),
                resource_version: version,
            }))),
            Poll::Ready(Some(Outgoing::Fail(status))) => {
                self.done = true;
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(None) => {
                self.done = true;
                // Evicted between the check above and the task dropping its sender.
                Poll::Ready(
                    self.evicted
                        .load(Ordering::SeqCst)
                        .then(|| Err(slow_watcher())),
                )
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Feeds one watch: the initial list (if any), then every matching change, with bookmarks
/// while idle. Returns when the client goes away, falls behind, or the history is too old.
async fn stream_watch(
    shared: Arc<crate::store::SharedState>,
    filter: Filter,
    initial: Option<(u64, Vec<Arc<StoredObject>>)>,
    requested: Option<u64>,
    sink: Sink,
    bookmark_interval: Duration,
) -> Result<(), Stop> {
    let _watching = crate::metrics::WatchGuard::new();
    let mut cursor = match initial {
        Some((version, objects)) => {
            for object in objects {
                sink.event(EventType::Added, object).await?;
            }
            // Marks the end of the initial list: resuming from here misses nothing.
            sink.send(Outgoing::Bookmark(version)).await?;
            version
        }
        None => {
            let version = requested.unwrap_or(0);
            tokio::select! {
                _ = shared.wait_applied(version) => {}
                _ = sink.tx.closed() => return Err(Stop::Gone),
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
                let status = ApiError::from(too_old).into();
                return sink.send(Outgoing::Fail(status)).await;
            }
        };
        for record in records {
            if let Some(kind) = filter.event_for(&record) {
                sink.event(kind, record.object).await?;
                last_sent_version = record.version;
            }
            cursor = cursor.max(record.version);
        }
        // Everything up to `applied` was published before it was announced.
        cursor = cursor.max(applied);
        tokio::select! {
            changed = applied_rx.changed() => if changed.is_err() { return Ok(()) },
            _ = sink.tx.closed() => return Err(Stop::Gone),
            _ = tokio::time::sleep(bookmark_interval) => {
                if cursor > last_sent_version {
                    sink.send(Outgoing::Bookmark(cursor)).await?;
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
        let timer = crate::metrics::RequestTimer::start("CREATE", &request.get_ref().kind);
        timer.finish(
            async move {
                let subject = self.gate.subject(&request).await?;
                let object = self.do_create(&subject, request.into_inner()).await?;
                Ok(Response::new(ObjectResponse { object }))
            }
            .await,
        )
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<ObjectResponse>, Status> {
        let timer = crate::metrics::RequestTimer::start("GET", &request.get_ref().kind);
        timer.finish(
            async move {
                let subject = self.gate.subject(&request).await?;
                let object = self.do_get(&subject, request.into_inner()).await?;
                Ok(Response::new(ObjectResponse { object }))
            }
            .await,
        )
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let timer = crate::metrics::RequestTimer::start("LIST", &request.get_ref().kind);
        timer.finish(
            async move {
                let subject = self.gate.subject(&request).await?;
                Ok(Response::new(
                    self.do_list(&subject, request.into_inner()).await?,
                ))
            }
            .await,
        )
    }

    async fn update(
        &self,
        request: Request<UpdateRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let timer = crate::metrics::RequestTimer::start("UPDATE", &request.get_ref().kind);
        timer.finish(
            async move {
                let subject = self.gate.subject(&request).await?;
                let object = self
                    .do_update(&subject, request.into_inner(), UpdatePart::Main)
                    .await?;
                Ok(Response::new(ObjectResponse { object }))
            }
            .await,
        )
    }

    async fn update_status(
        &self,
        request: Request<UpdateRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let timer = crate::metrics::RequestTimer::start("UPDATE_STATUS", &request.get_ref().kind);
        timer.finish(
            async move {
                let subject = self.gate.subject(&request).await?;
                let object = self
                    .do_update(&subject, request.into_inner(), UpdatePart::Status)
                    .await?;
                Ok(Response::new(ObjectResponse { object }))
            }
            .await,
        )
    }

    async fn patch(
        &self,
        request: Request<PatchRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let timer = crate::metrics::RequestTimer::start("PATCH", &request.get_ref().kind);
        timer.finish(
            async move {
                let subject = self.gate.subject(&request).await?;
                let object = self.do_patch(&subject, request.into_inner()).await?;
                Ok(Response::new(ObjectResponse { object }))
            }
            .await,
        )
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let timer = crate::metrics::RequestTimer::start("DELETE", &request.get_ref().kind);
        timer.finish(
            async move {
                let subject = self.gate.subject(&request).await?;
                Ok(Response::new(
                    self.do_delete(&subject, request.into_inner()).await?,
                ))
            }
            .await,
        )
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // Until the watch is set up; `skiff_apiserver_watches` counts it while it runs.
        let timer = crate::metrics::RequestTimer::start("WATCH", &request.get_ref().kind);
        let subject = match self.gate.subject(&request).await {
            Ok(subject) => subject,
            Err(e) => return timer.finish(Err(e)),
        };
        let connection = request.remote_addr();
        timer.finish(
            self.start_watch(&subject, connection, request.into_inner())
                .map(Response::new),
        )
    }
}
