//! The object table and the pure apply logic: a command and the current table in, the
//! result and the changes out. No I/O here, so every rule is unit-tested directly.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use serde_json::{Map, Value};
use skiff_api::Kind;

use crate::raft_types::{Applied, ApplyError, Command, CommandResult, UpdatePart};

/// What selectors and field selectors look at, extracted once per write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectSummary {
    pub labels: BTreeMap<String, String>,
    pub node_name: Option<String>,
    pub phase: Option<String>,
}

/// One stored object: its JSON exactly as served, plus what is needed to filter it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub version: u64,
    pub json: Arc<[u8]>,
    pub summary: ObjectSummary,
}

impl StoredObject {
    /// Builds the entry for a JSON document whose metadata is complete.
    pub fn from_value(kind: Kind, value: &Value) -> Result<StoredObject, ApplyError> {
        let meta = value
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| ApplyError::Invalid("metadata: Required value".into()))?;
        let name = str_field(meta, "name").unwrap_or_default();
        if name.is_empty() {
            return Err(ApplyError::Invalid("metadata.name: Required value".into()));
        }
        let namespace = if kind.is_namespaced() {
            str_field(meta, "namespace").unwrap_or_else(|| "default".to_string())
        } else {
            String::new()
        };
        let version = str_field(meta, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let labels = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let node_name = value
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let phase = value
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(StoredObject {
            kind,
            namespace,
            name,
            version,
            json: serde_json::to_vec(value)
                .expect("json values serialize")
                .into(),
            summary: ObjectSummary {
                labels,
                node_name,
                phase,
            },
        })
    }

    pub fn key(&self) -> String {
        object_key(self.kind, &self.namespace, &self.name)
    }

    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).expect("stored objects are valid json")
    }

    /// Values of the fields a field selector may name; None for unsupported fields.
    pub fn field(&self, field: &str) -> Option<String> {
        match field {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone()),
            "spec.nodeName" => Some(self.summary.node_name.clone().unwrap_or_default()),
            "status.phase" => Some(self.summary.phase.clone().unwrap_or_default()),
            // What `kubectl describe` finds an object's events by. Read from the JSON when
            // asked: events are small, and no other object's summary grows for it.
            "involvedObject.kind"
            | "involvedObject.namespace"
            | "involvedObject.name"
            | "involvedObject.uid"
                if self.kind == Kind::Event =>
            {
                #[derive(serde::Deserialize)]
                struct Involved {
                    #[serde(rename = "involvedObject", default)]
                    involved: Map<String, Value>,
                }
                let event: Involved = serde_json::from_slice(&self.json).ok()?;
                let key = field.trim_start_matches("involvedObject.");
                Some(
                    event
                        .involved
                        .get(key)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                )
            }
            _ => None,
        }
    }
}

/// Field names that field selectors accept.
pub const SELECTABLE_FIELDS: [&str; 8] = [
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
];

/// `pods/default/web`; cluster-scoped objects have an empty namespace segment.
pub fn object_key(kind: Kind, namespace: &str, name: &str) -> String {
    format!("{}/{}/{}", kind.plural(), namespace, name)
}

/// The prefix of every key a list of `kind` (in `namespace`, or all) covers.
pub fn kind_prefix(kind: Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{}/{}/", kind.plural(), ns),
        None => format!("{}/", kind.plural()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change made by an applied command, as watchers see it.
#[derive(Debug, Clone)]
pub struct WatchRecord {
    pub version: u64,
    pub event: EventType,
    pub object: Arc<StoredObject>,
    /// The state before this change, so selector watches can tell "left" from "changed".
    pub previous: Option<Arc<StoredObject>>,
}

/// Every object, keyed by [`object_key`]. The state machine's in-memory view.
#[derive(Debug, Default, Clone)]
pub struct ObjectTable {
    objects: BTreeMap<String, Arc<StoredObject>>,
    /// The cluster's own records, never served as API objects (e.g. which members have
    /// held data: `member/<id>/started`). Replicated and snapshotted with the objects.
    system: BTreeMap<String, Vec<u8>>,
}

impl ObjectTable {
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Arc<StoredObject>> {
        self.objects.get(&object_key(kind, namespace, name))
    }

    /// Objects of one kind, in one namespace or all (`None`), in key order.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = &Arc<StoredObject>> + '_ {
        let prefix = kind_prefix(kind, namespace);
        self.objects
            .range::<String, _>((Bound::Included(prefix.clone()), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
    }

    /// Like [`ObjectTable::list`], only the objects whose key sorts after `after`.
    pub fn list_after<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&str>,
        after: &'a str,
    ) -> impl Iterator<Item = &'a Arc<StoredObject>> + 'a {
        let prefix = kind_prefix(kind, namespace);
        let start = if after.as_bytes() > prefix.as_bytes() {
            Bound::Excluded(after.to_string())
        } else {
            Bound::Included(prefix.clone())
        };
        self.objects
            .range::<String, _>((start, Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
    }

    pub fn insert(&mut self, object: Arc<StoredObject>) {
        self.objects.insert(object.key(), object);
    }

    pub fn remove(&mut self, key: &str) -> Option<Arc<StoredObject>> {
        self.objects.remove(key)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<StoredObject>> + '_ {
        self.objects.values()
    }

    pub fn clear(&mut self) {
        self.objects.clear();
        self.system.clear();
    }

    pub fn system(&self, key: &str) -> Option<&[u8]> {
        self.system.get(key).map(Vec::as_slice)
    }

    /// System records whose keys start with `prefix`, in key order.
    pub fn system_prefixed<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.system
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    pub fn system_records(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.system
    }

    pub fn set_system_records(&mut self, records: BTreeMap<String, Vec<u8>>) {
        self.system = records;
    }
}

fn str_field(meta: &Map<String, Value>, key: &str) -> Option<String> {
    meta.get(key).and_then(Value::as_str).map(str::to_string)
}

fn metadata_mut(value: &mut Value) -> &mut Map<String, Value> {
    if !value.get("metadata").is_some_and(Value::is_object) {
        value["metadata"] = Value::Object(Map::new());
    }
    value["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn parse_object(kind: Kind, bytes: &[u8]) -> Result<Value, ApplyError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApplyError::Invalid(format!("object is not valid json: {e}")))?;
    if !value.is_object() {
        return Err(ApplyError::Invalid(format!(
            "a {kind} must be a json object"
        )));
    }
    Ok(value)
}

fn not_found(kind: Kind, name: &str) -> ApplyError {
    ApplyError::NotFound(format!("{} \"{}\" not found", kind.plural(), name))
}

fn conflict(kind: Kind, name: &str) -> ApplyError {
    ApplyError::Conflict(format!(
        "operation cannot be fulfilled on {} \"{}\": the object has been modified; \
         please apply your changes to the latest version and try again",
        kind.plural(),
        name
    ))
}

fn without_version(value: &Value) -> Value {
    let mut v = value.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    v
}

/// Applies one log entry's command: a batch yields one result per command, in order.
pub fn apply_entry(
    table: &mut ObjectTable,
    index: u64,
    command: &Command,
) -> (Vec<CommandResult>, Vec<WatchRecord>) {
    let mut records = Vec::new();
    let results = match command {
        Command::Batch(commands) => commands
            .iter()
            .map(|c| apply_inner(table, index, c, &mut records))
            .collect(),
        single => vec![apply_inner(table, index, single, &mut records)],
    };
    (results, records)
}

/// Applies one command at log `index`, changing `table` and returning the result and the
/// watch records describing every change (in order).
pub fn apply_command(
    table: &mut ObjectTable,
    index: u64,
    command: &Command,
) -> (CommandResult, Vec<WatchRecord>) {
    let mut records = Vec::new();
    let result = apply_inner(table, index, command, &mut records);
    (result, records)
}

fn apply_inner(
    table: &mut ObjectTable,
    index: u64,
    command: &Command,
    records: &mut Vec<WatchRecord>,
) -> CommandResult {
    match command {
        Command::Create { kind, object } => {
            let mut value = parse_object(*kind, object)?;
            let meta = metadata_mut(&mut value);
            meta.insert("resourceVersion".into(), Value::String(index.to_string()));
            meta.insert("generation".into(), Value::from(1));
            let stored = StoredObject::from_value(*kind, &value)?;
            if kind.is_namespaced() {
                match table.get(Kind::Namespace, "", &stored.namespace) {
                    None => {
                        return Err(ApplyError::NotFound(format!(
                            "namespaces \"{}\" not found",
                            stored.namespace
                        )));
                    }
                    // Checked here too, not only by the server: a create proposed just
                    // before the namespace was marked must not slip in behind the mark.
                    Some(ns) if namespace_terminating(ns) => {
                        return Err(ApplyError::Forbidden(terminating_refusal(
                            *kind,
                            &stored.name,
                            &stored.namespace,
                        )));
                    }
                    Some(_) => {}
                }
            }
            if table.get(*kind, &stored.namespace, &stored.name).is_some() {
                return Err(ApplyError::AlreadyExists(format!(
                    "{} \"{}\" already exists",
                    kind.plural(),
                    stored.name
                )));
            }
            Ok(put(table, index, stored, None, EventType::Added, records))
        }
        Command::Update {
            kind,
            object,
            part,
            expected_version,
        } => {
            let incoming = parse_object(*kind, object)?;
            let probe = StoredObject::from_value(*kind, &incoming)?;
            let old = table
                .get(*kind, &probe.namespace, &probe.name)
                .cloned()
                .ok_or_else(|| not_found(*kind, &probe.name))?;
            if expected_version.is_some_and(|v| v != old.version) {
                return Err(conflict(*kind, &old.name));
            }
            let old_value = old.value();
            let mut new_value = updated_value(&old_value, incoming, *part);
            // A terminating namespace stays Terminating whatever a status write says: its
            // phase is what admission and the namespace controller go by.
            if *kind == Kind::Namespace && namespace_terminating(&old) {
                set_phase(&mut new_value, TERMINATING);
            }
            write_if_changed(table, index, &old, old_value, new_value, records)
        }
        Command::Patch {
            kind,
            namespace,
            name,
            labels,
            annotations,
            overwrite,
            expected_version,
        } => {
            let namespace = scoped_namespace(*kind, namespace);
            let old = table
                .get(*kind, &namespace, name)
                .cloned()
                .ok_or_else(|| not_found(*kind, name))?;
            if expected_version.is_some_and(|v| v != old.version) {
                return Err(conflict(*kind, name));
            }
            let old_value = old.value();
            let new_value = patched_value(&old_value, labels, annotations, *overwrite)?;
            write_if_changed(table, index, &old, old_value, new_value, records)
        }
        Command::Delete {
            kind,
            namespace,
            name,
            grace_period_seconds,
            force,
            now,
        } => {
            let namespace = scoped_namespace(*kind, namespace);
            let old = table
                .get(*kind, &namespace, name)
                .cloned()
                .ok_or_else(|| not_found(*kind, name))?;
            if *kind == Kind::Namespace {
                refuse_default_namespace(name)?;
                // Objects in a namespace go with it, in one entry, so none is orphaned.
                for k in Kind::ALL.into_iter().filter(|k| k.is_namespaced()) {
                    let inside: Vec<_> = table.list(k, Some(name)).cloned().collect();
                    for object in inside {
                        remove(table, index, &object, records);
                    }
                }
            } else if let Some(grace) =
                graceful_pod_deletion(*kind, &old, *grace_period_seconds, *force)
            {
                return mark_terminating(table, index, &old, grace, now, records);
            }
            Ok(remove(table, index, &old, records))
        }
        Command::Batch(_) => Err(ApplyError::Invalid(
            "a batch may not contain a batch".into(),
        )),
        Command::PutSystem { key, value } => {
            table.system.insert(key.clone(), value.clone());
            Ok(Applied::default())
        }
        Command::CreateSystem { key, value } => {
            if table.system.contains_key(key) {
                return Err(ApplyError::AlreadyExists(format!(
                    "record {key:?} already exists"
                )));
            }
            table.system.insert(key.clone(), value.clone());
            Ok(Applied::default())
        }
        Command::DeleteSystem { key } => match table.system.remove(key) {
            Some(_) => Ok(Applied {
                removed: true,
                ..Applied::default()
            }),
            None => Err(ApplyError::NotFound(format!("record {key:?} not found"))),
        },
        Command::Bind {
            namespace,
            name,
            uid,
            node_name,
            now,
        } => bind(table, index, namespace, name, uid, node_name, now, records),
        Command::MarkNamespaceTerminating { name, now } => {
            mark_namespace_terminating(table, index, name, now, records)
        }
        Command::EnsureNamespace { name, uid, now } => {
            if let Some(existing) = table.get(Kind::Namespace, "", name) {
                return Ok(Applied {
                    object: existing.json.to_vec(),
                    removed: false,
                });
            }
            let value = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": name,
                    "uid": uid,
                    "creationTimestamp": now,
                    "resourceVersion": index.to_string(),
                    "generation": 1,
                },
                "status": {"phase": "Active"},
            });
            let stored = StoredObject::from_value(Kind::Namespace, &value)?;
            Ok(put(table, index, stored, None, EventType::Added, records))
        }
    }
}

/// The phase of a namespace that is being deleted.
pub const TERMINATING: &str = "Terminating";

/// Whether a stored namespace is being deleted. The phase is the cheap look (every create
/// asks); the deletion timestamp, which no client write can set, is what counts.
pub fn namespace_terminating(ns: &StoredObject) -> bool {
    ns.summary.phase.as_deref() == Some(TERMINATING)
        && ns.value().pointer("/metadata/deletionTimestamp").is_some()
}

/// NamespaceLifecycle admission's refusal of a create in a terminating namespace, in
/// Kubernetes' words.
pub fn terminating_refusal(kind: Kind, name: &str, namespace: &str) -> String {
    format!(
        "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} \
         because it is being terminated",
        kind.plural()
    )
}

/// Sets status.phase, making status an object if it is not one (indexing into anything
/// else would panic).
fn set_phase(value: &mut Value, phase: &str) {
    if !value.get("status").is_some_and(Value::is_object) {
        value["status"] = Value::Object(Map::new());
    }
    value["status"]["phase"] = Value::String(phase.into());
}

fn refuse_default_namespace(name: &str) -> Result<(), ApplyError> {
    if name == "default" {
        return Err(ApplyError::Invalid(
            "namespaces \"default\" may not be deleted".into(),
        ));
    }
    Ok(())
}

/// Deleting a namespace, as Kubernetes does it: the namespace stays, marked, until the
/// namespace controller has emptied it (pods stop gracefully first).
fn mark_namespace_terminating(
    table: &mut ObjectTable,
    index: u64,
    name: &str,
    now: &str,
    records: &mut Vec<WatchRecord>,
) -> CommandResult {
    refuse_default_namespace(name)?;
    let old = table
        .get(Kind::Namespace, "", name)
        .cloned()
        .ok_or_else(|| not_found(Kind::Namespace, name))?;
    if namespace_terminating(&old) {
        return Ok(Applied {
            object: old.json.to_vec(),
            removed: false,
        });
    }
    let now = chrono::DateTime::parse_from_rfc3339(now)
        .map_err(|e| ApplyError::Invalid(format!("deletion time {now:?} is not rfc 3339: {e}")))?
        .with_timezone(&chrono::Utc);
    let mut value = old.value();
    let meta = metadata_mut(&mut value);
    meta.insert(
        "deletionTimestamp".into(),
        Value::String(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    meta.insert("deletionGracePeriodSeconds".into(), Value::from(0));
    meta.insert("resourceVersion".into(), Value::String(index.to_string()));
    set_phase(&mut value, TERMINATING);
    let stored = StoredObject::from_value(Kind::Namespace, &value)?;
    Ok(put(
        table,
        index,
        stored,
        Some(old),
        EventType::Modified,
        records,
    ))
}

#[allow(clippy::too_many_arguments)]
fn bind(
    table: &mut ObjectTable,
    index: u64,
    namespace: &str,
    name: &str,
    uid: &str,
    node_name: &str,
    now: &str,
    records: &mut Vec<WatchRecord>,
) -> CommandResult {
    let old = table
        .get(Kind::Pod, &scoped_namespace(Kind::Pod, namespace), name)
        .cloned()
        .ok_or_else(|| not_found(Kind::Pod, name))?;
    let mut value = old.value();
    if value.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
        return Err(ApplyError::Conflict(format!(
            "pods \"{name}\": the pod was replaced (uid is not {uid})"
        )));
    }
    if let Some(bound) = &old.summary.node_name {
        return Err(ApplyError::Conflict(format!(
            "pod {name} is already assigned to node \"{bound}\""
        )));
    }
    if value.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(ApplyError::Conflict(format!("pod {name} is being deleted")));
    }
    if value.get("spec").is_none_or(|s| !s.is_object()) {
        value["spec"] = Value::Object(Map::new());
    }
    value["spec"]["nodeName"] = Value::String(node_name.to_string());
    if value.get("status").is_none_or(|s| !s.is_object()) {
        value["status"] = Value::Object(Map::new());
    }
    let status = value["status"]
        .as_object_mut()
        .expect("status is an object");
    status
        .entry("phase")
        .or_insert_with(|| Value::String("Pending".into()));
    let conditions = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    let conditions = conditions.as_array_mut().expect("conditions is an array");
    conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
    conditions.insert(
        0,
        serde_json::json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now}),
    );
    metadata_mut(&mut value).insert("resourceVersion".into(), Value::String(index.to_string()));
    let stored = StoredObject::from_value(Kind::Pod, &value)?;
    Ok(put(
        table,
        index,
        stored,
        Some(old),
        EventType::Modified,
        records,
    ))
}

fn scoped_namespace(kind: Kind, namespace: &str) -> String {
    if kind.is_namespaced() {
        if namespace.is_empty() {
            "default".to_string()
        } else {
            namespace.to_string()
        }
    } else {
        String::new()
    }
}

/// Kubernetes' rule: a pod that runs on a node is given time to stop; an unscheduled or
/// finished pod, or a forced or zero-grace delete, goes at once.
fn graceful_pod_deletion(
    kind: Kind,
    old: &StoredObject,
    grace_period_seconds: Option<i64>,
    force: bool,
) -> Option<i64> {
    if kind != Kind::Pod || force || old.summary.node_name.is_none() {
        return None;
    }
    if matches!(old.summary.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let grace = grace_period_seconds.unwrap_or_else(|| {
        old.value()
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    });
    (grace > 0).then_some(grace)
}

fn mark_terminating(
    table: &mut ObjectTable,
    index: u64,
    old: &Arc<StoredObject>,
    grace: i64,
    now: &str,
    records: &mut Vec<WatchRecord>,
) -> CommandResult {
    let old_value = old.value();
    let current_grace = old_value
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    // A second delete may shorten the grace period, never lengthen it.
    if current_grace.is_some_and(|g| g <= grace) {
        return Ok(Applied {
            object: old.json.to_vec(),
            removed: false,
        });
    }
    let now = chrono::DateTime::parse_from_rfc3339(now)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| ApplyError::Invalid(format!("deletion time {now:?} is not rfc 3339: {e}")))?;
    let deadline = now + chrono::Duration::seconds(grace);
    let mut new_value = old_value;
    let meta = metadata_mut(&mut new_value);
    meta.insert(
        "deletionTimestamp".into(),
        Value::String(deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    meta.insert("deletionGracePeriodSeconds".into(), Value::from(grace));
    meta.insert("resourceVersion".into(), Value::String(index.to_string()));
    let stored = StoredObject::from_value(old.kind, &new_value)?;
    Ok(put(
        table,
        index,
        stored,
        Some(old.clone()),
        EventType::Modified,
        records,
    ))
}

/// The object an update of `part` makes of `old` (before its resourceVersion is set): the
/// API server measures it against the object size cap before proposing the update.
pub fn updated_value(old: &Value, incoming: Value, part: UpdatePart) -> Value {
    match part {
        UpdatePart::Main => merge_main(old, incoming),
        UpdatePart::Status => {
            let mut v = old.clone();
            match incoming.get("status") {
                Some(status) => v["status"] = status.clone(),
                None => {
                    v.as_object_mut().map(|o| o.remove("status"));
                }
            }
            v
        }
    }
}

/// The object a label and annotation patch makes of `old` (before its resourceVersion is
/// set).
pub fn patched_value(
    old: &Value,
    labels: &[(String, Option<String>)],
    annotations: &[(String, Option<String>)],
    overwrite: bool,
) -> Result<Value, ApplyError> {
    let mut value = old.clone();
    let meta = metadata_mut(&mut value);
    patch_map(meta, "labels", labels, overwrite)?;
    patch_map(meta, "annotations", annotations, overwrite)?;
    Ok(value)
}

/// An update replaces spec, labels and annotations; the server keeps identity, timestamps
/// and status, and bumps generation when the spec changed.
fn merge_main(old: &Value, mut incoming: Value) -> Value {
    const SERVER_OWNED: [&str; 7] = [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "resourceVersion",
    ];
    let old_meta = old.get("metadata").and_then(Value::as_object);
    let meta = metadata_mut(&mut incoming);
    for key in SERVER_OWNED {
        match old_meta.and_then(|m| m.get(key)) {
            Some(v) => meta.insert(key.into(), v.clone()),
            None => meta.remove(key),
        };
    }
    match old.get("status") {
        Some(status) => incoming["status"] = status.clone(),
        None => {
            incoming.as_object_mut().map(|o| o.remove("status"));
        }
    }
    if old.get("spec") != incoming.get("spec") {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        metadata_mut(&mut incoming).insert("generation".into(), Value::from(generation + 1));
    }
    incoming
}

fn patch_map(
    meta: &mut Map<String, Value>,
    field: &str,
    changes: &[(String, Option<String>)],
    overwrite: bool,
) -> Result<(), ApplyError> {
    if changes.is_empty() {
        return Ok(());
    }
    let map = meta
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    let map = map
        .as_object_mut()
        .ok_or_else(|| ApplyError::Invalid(format!("metadata.{field} is not a map")))?;
    for (key, value) in changes {
        match value {
            Some(value) => {
                if let Some(current) = map.get(key).and_then(Value::as_str)
                    && current != value
                    && !overwrite
                {
                    return Err(ApplyError::Invalid(format!(
                        "'{key}' already has a value ({current}), and --overwrite is false"
                    )));
                }
                map.insert(key.clone(), Value::String(value.clone()));
            }
            None => {
                map.remove(key);
            }
        }
    }
    if map.is_empty() {
        meta.remove(field);
    }
    Ok(())
}

fn write_if_changed(
    table: &mut ObjectTable,
    index: u64,
    old: &Arc<StoredObject>,
    old_value: Value,
    mut new_value: Value,
    records: &mut Vec<WatchRecord>,
) -> CommandResult {
    // A write that changes nothing keeps the version, as in Kubernetes.
    if without_version(&old_value) == without_version(&new_value) {
        return Ok(Applied {
            object: old.json.to_vec(),
            removed: false,
        });
    }
    metadata_mut(&mut new_value).insert("resourceVersion".into(), Value::String(index.to_string()));
    let stored = StoredObject::from_value(old.kind, &new_value)?;
    Ok(put(
        table,
        index,
        stored,
        Some(old.clone()),
        EventType::Modified,
        records,
    ))
}

fn put(
    table: &mut ObjectTable,
    index: u64,
    stored: StoredObject,
    previous: Option<Arc<StoredObject>>,
    event: EventType,
    records: &mut Vec<WatchRecord>,
) -> Applied {
    let stored = Arc::new(stored);
    table.insert(stored.clone());
    records.push(WatchRecord {
        version: index,
        event,
        object: stored.clone(),
        previous,
    });
    Applied {
        object: stored.json.to_vec(),
        removed: false,
    }
}

fn remove(
    table: &mut ObjectTable,
    index: u64,
    old: &Arc<StoredObject>,
    records: &mut Vec<WatchRecord>,
) -> Applied {
    table.remove(&old.key());
    // The DELETED event carries the last state at the deleting version, as Kubernetes does.
    let mut last = old.value();
    metadata_mut(&mut last).insert("resourceVersion".into(), Value::String(index.to_string()));
    let last = StoredObject::from_value(old.kind, &last).unwrap_or_else(|_| (**old).clone());
    let last = Arc::new(last);
    records.push(WatchRecord {
        version: index,
        event: EventType::Deleted,
        object: last.clone(),
        previous: Some(old.clone()),
    });
    Applied {
        object: last.json.to_vec(),
        removed: true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: &str = "2024-05-01T10:00:00Z";

    fn table_with_default() -> ObjectTable {
        let mut table = ObjectTable::default();
        let (r, _) = apply_command(
            &mut table,
            1,
            &Command::EnsureNamespace {
                name: "default".into(),
                uid: "ns-uid".into(),
                now: NOW.into(),
            },
        );
        r.unwrap();
        table
    }

    fn pod(name: &str, node: Option<&str>) -> Value {
        let mut v = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "terminationGracePeriodSeconds": 30}});
        if let Some(node) = node {
            v["spec"]["nodeName"] = json!(node);
        }
        v
    }

    fn create(table: &mut ObjectTable, index: u64, value: &Value) -> CommandResult {
        apply_command(
            table,
            index,
            &Command::Create {
                kind: Kind::Pod,
                object: serde_json::to_vec(value).unwrap(),
            },
        )
        .0
    }

    fn delete(
        table: &mut ObjectTable,
        index: u64,
        name: &str,
        grace: Option<i64>,
        force: bool,
    ) -> (CommandResult, Vec<WatchRecord>) {
        apply_command(
            table,
            index,
            &Command::Delete {
                kind: Kind::Pod,
                namespace: "default".into(),
                name: name.into(),
                grace_period_seconds: grace,
                force,
                now: NOW.into(),
            },
        )
    }

    fn version_of(applied: &Applied) -> String {
        let v: Value = serde_json::from_slice(&applied.object).unwrap();
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn create_sets_version_and_rejects_duplicates() {
        let mut table = table_with_default();
        let applied = create(&mut table, 5, &pod("a", None)).unwrap();
        assert_eq!(version_of(&applied), "5");
        assert_eq!(
            create(&mut table, 6, &pod("a", None)),
            Err(ApplyError::AlreadyExists(
                "pods \"a\" already exists".into()
            ))
        );
    }

    #[test]
    fn create_needs_existing_namespace() {
        let mut table = table_with_default();
        let mut p = pod("a", None);
        p["metadata"]["namespace"] = json!("nope");
        assert_eq!(
            create(&mut table, 2, &p),
            Err(ApplyError::NotFound("namespaces \"nope\" not found".into()))
        );
        assert!(table.get(Kind::Pod, "nope", "a").is_none());
    }

    #[test]
    fn stale_update_is_a_conflict_and_changes_nothing() {
        let mut table = table_with_default();
        create(&mut table, 2, &pod("a", None)).unwrap();
        let mut p = pod("a", None);
        p["metadata"]["labels"]["app"] = json!("api");
        let update = |expected| Command::Update {
            kind: Kind::Pod,
            object: serde_json::to_vec(&p).unwrap(),
            part: UpdatePart::Main,
            expected_version: Some(expected),
        };
        let (r, records) = apply_command(&mut table, 3, &update(1));
        assert!(matches!(r, Err(ApplyError::Conflict(_))));
        assert!(records.is_empty());
        let (r, records) = apply_command(&mut table, 4, &update(2));
        assert_eq!(version_of(&r.unwrap()), "4");
        assert_eq!(records.len(), 1);
        assert_eq!(
            table.get(Kind::Pod, "default", "a").unwrap().summary.labels["app"],
            "api"
        );
    }

    #[test]
    fn update_keeps_status_and_identity_and_noop_keeps_version() {
        let mut table = table_with_default();
        create(&mut table, 2, &pod("a", None)).unwrap();
        let mut status = pod("a", None);
        status["status"] = json!({"phase": "Running"});
        apply_command(
            &mut table,
            3,
            &Command::Update {
                kind: Kind::Pod,
                object: serde_json::to_vec(&status).unwrap(),
                part: UpdatePart::Status,
                expected_version: None,
            },
        )
        .0
        .unwrap();
        let mut main = pod("a", None);
        main["metadata"]["uid"] = json!("forged");
        main["status"] = json!({"phase": "Failed"});
        let (r, _) = apply_command(
            &mut table,
            4,
            &Command::Update {
                kind: Kind::Pod,
                object: serde_json::to_vec(&main).unwrap(),
                part: UpdatePart::Main,
                expected_version: None,
            },
        );
        // Only uid and status differed, and both are server-owned: nothing changes.
        assert_eq!(version_of(&r.unwrap()), "3");
        let stored = table.get(Kind::Pod, "default", "a").unwrap().value();
        assert_eq!(stored["status"]["phase"], "Running");
        assert_eq!(stored["metadata"]["uid"], "uid-a");
    }

    #[test]
    fn bound_pod_deletes_gracefully_then_on_confirmation() {
        let mut table = table_with_default();
        create(&mut table, 2, &pod("a", Some("node-1"))).unwrap();
        let (r, records) = delete(&mut table, 3, "a", None, false);
        let applied = r.unwrap();
        assert!(!applied.removed);
        assert_eq!(records[0].event, EventType::Modified);
        let stored = table.get(Kind::Pod, "default", "a").unwrap().value();
        assert_eq!(
            stored["metadata"]["deletionTimestamp"],
            "2024-05-01T10:00:30Z"
        );
        assert_eq!(stored["metadata"]["deletionGracePeriodSeconds"], 30);
        let (r, records) = delete(&mut table, 4, "a", Some(0), false);
        assert!(r.unwrap().removed);
        assert_eq!(records[0].event, EventType::Deleted);
        assert!(table.get(Kind::Pod, "default", "a").is_none());
    }

    #[test]
    fn unbound_or_forced_pods_go_at_once() {
        let mut table = table_with_default();
        create(&mut table, 2, &pod("a", None)).unwrap();
        create(&mut table, 3, &pod("b", Some("node-1"))).unwrap();
        assert!(delete(&mut table, 4, "a", None, false).0.unwrap().removed);
        assert!(delete(&mut table, 5, "b", None, true).0.unwrap().removed);
        assert!(matches!(
            delete(&mut table, 6, "b", None, true).0,
            Err(ApplyError::NotFound(_))
        ));
    }

    #[test]
    fn patch_needs_overwrite_to_change_a_label() {
        let mut table = table_with_default();
        create(&mut table, 2, &pod("a", None)).unwrap();
        let patch = |labels: Vec<(String, Option<String>)>, overwrite| Command::Patch {
            kind: Kind::Pod,
            namespace: "default".into(),
            name: "a".into(),
            labels,
            annotations: vec![],
            overwrite,
            expected_version: None,
        };
        let change = vec![("app".to_string(), Some("db".to_string()))];
        let (r, _) = apply_command(&mut table, 3, &patch(change.clone(), false));
        assert_eq!(
            r,
            Err(ApplyError::Invalid(
                "'app' already has a value (web), and --overwrite is false".into()
            ))
        );
        apply_command(&mut table, 4, &patch(change, true))
            .0
            .unwrap();
        apply_command(
            &mut table,
            5,
            &patch(
                vec![("tier".into(), Some("x".into())), ("app".into(), None)],
                false,
            ),
        )
        .0
        .unwrap();
        let labels = &table.get(Kind::Pod, "default", "a").unwrap().summary.labels;
        assert_eq!(labels.len(), 1);
        assert_eq!(labels["tier"], "x");
    }

    #[test]
    fn namespace_delete_removes_its_objects_and_default_stays() {
        let mut table = table_with_default();
        let ns = Command::EnsureNamespace {
            name: "team".into(),
            uid: "t".into(),
            now: NOW.into(),
        };
        apply_command(&mut table, 2, &ns).0.unwrap();
        let mut p = pod("a", Some("n1"));
        p["metadata"]["namespace"] = json!("team");
        create(&mut table, 3, &p).unwrap();
        let del = |name: &str| Command::Delete {
            kind: Kind::Namespace,
            namespace: String::new(),
            name: name.into(),
            grace_period_seconds: None,
            force: false,
            now: NOW.into(),
        };
        let (r, records) = apply_command(&mut table, 4, &del("team"));
        assert!(r.unwrap().removed);
        assert_eq!(records.len(), 2);
        assert!(table.get(Kind::Pod, "team", "a").is_none());
        assert!(matches!(
            apply_command(&mut table, 5, &del("default")).0,
            Err(ApplyError::Invalid(_))
        ));
    }

    #[test]
    fn a_marked_namespace_is_terminating_keeps_its_pods_and_refuses_new_objects() {
        let mut table = table_with_default();
        let ns = Command::EnsureNamespace {
            name: "team".into(),
            uid: "t".into(),
            now: NOW.into(),
        };
        apply_command(&mut table, 2, &ns).0.unwrap();
        let mut a = pod("a", Some("n1"));
        a["metadata"]["namespace"] = json!("team");
        create(&mut table, 3, &a).unwrap();
        let mark = |name: &str| Command::MarkNamespaceTerminating {
            name: name.into(),
            now: NOW.into(),
        };
        let (r, records) = apply_command(&mut table, 4, &mark("team"));
        let marked: Value = serde_json::from_slice(&r.unwrap().object).unwrap();
        assert_eq!(marked["status"]["phase"], "Terminating");
        assert_eq!(marked["metadata"]["deletionTimestamp"], NOW);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].event, EventType::Modified);
        assert!(table.get(Kind::Pod, "team", "a").is_some());

        // Marking again changes nothing, not even the version.
        let (again, records) = apply_command(&mut table, 5, &mark("team"));
        assert_eq!(version_of(&again.unwrap()), "4");
        assert!(records.is_empty());

        let mut b = pod("b", None);
        b["metadata"]["namespace"] = json!("team");
        assert_eq!(
            create(&mut table, 6, &b),
            Err(ApplyError::Forbidden(
                "pods \"b\" is forbidden: unable to create new content in namespace team \
                 because it is being terminated"
                    .into()
            ))
        );
        assert!(table.get(Kind::Pod, "team", "b").is_none());

        // A status write cannot make it Active again.
        let active = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team"}, "status": {"phase": "Active"}});
        let update = Command::Update {
            kind: Kind::Namespace,
            object: serde_json::to_vec(&active).unwrap(),
            part: UpdatePart::Status,
            expected_version: None,
        };
        apply_command(&mut table, 7, &update).0.unwrap();
        assert!(namespace_terminating(
            table.get(Kind::Namespace, "", "team").unwrap()
        ));
        assert!(matches!(
            create(&mut table, 8, &b),
            Err(ApplyError::Forbidden(_))
        ));

        assert!(matches!(
            apply_command(&mut table, 9, &mark("default")).0,
            Err(ApplyError::Invalid(_))
        ));
        assert!(matches!(
            apply_command(&mut table, 10, &mark("nope")).0,
            Err(ApplyError::NotFound(_))
        ));
    }

    #[test]
    fn an_events_involved_object_is_selectable_and_other_kinds_have_none() {
        let event = serde_json::json!({
            "metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1"},
        });
        let stored = StoredObject::from_value(Kind::Event, &event).unwrap();
        assert_eq!(stored.field("involvedObject.name").as_deref(), Some("web"));
        assert_eq!(stored.field("involvedObject.uid").as_deref(), Some("u1"));
        assert_eq!(stored.field("involvedObject.kind").as_deref(), Some("Pod"));
        assert_eq!(
            stored.field("involvedObject.namespace").as_deref(),
            Some("default")
        );
        let pod = StoredObject::from_value(Kind::Pod, &pod("web", None)).unwrap();
        assert_eq!(pod.field("involvedObject.name"), None);
    }

    #[test]
    fn list_is_scoped_by_kind_and_namespace() {
        let mut table = table_with_default();
        create(&mut table, 2, &pod("a", None)).unwrap();
        create(&mut table, 3, &pod("b", None)).unwrap();
        assert_eq!(table.list(Kind::Pod, Some("default")).count(), 2);
        assert_eq!(table.list(Kind::Pod, None).count(), 2);
        assert_eq!(table.list(Kind::Pod, Some("def")).count(), 0);
        assert_eq!(table.list(Kind::Namespace, None).count(), 1);
    }

    fn bind_command(name: &str, uid: &str, node: &str) -> Command {
        Command::Bind {
            namespace: "default".into(),
            name: name.into(),
            uid: uid.into(),
            node_name: node.into(),
            now: NOW.into(),
        }
    }

    #[test]
    fn bind_sets_node_and_condition_once() {
        let mut table = table_with_default();
        create(&mut table, 2, &pod("web", None)).unwrap();
        let (r, records) = apply_command(&mut table, 3, &bind_command("web", "uid-web", "n1"));
        let bound: Value = serde_json::from_slice(&r.unwrap().object).unwrap();
        assert_eq!(bound["spec"]["nodeName"], "n1");
        assert_eq!(bound["status"]["phase"], "Pending");
        assert_eq!(bound["status"]["conditions"][0]["type"], "PodScheduled");
        assert_eq!(bound["status"]["conditions"][0]["status"], "True");
        assert_eq!(bound["metadata"]["resourceVersion"], "3");
        assert_eq!(records.len(), 1);
        let stored = table.get(Kind::Pod, "default", "web").unwrap();
        assert_eq!(stored.summary.node_name.as_deref(), Some("n1"));

        // Bound already, or a different pod by the same name: no change.
        let (r, _) = apply_command(&mut table, 4, &bind_command("web", "uid-web", "n2"));
        assert!(matches!(r, Err(ApplyError::Conflict(_))));
        create(&mut table, 5, &pod("other", None)).unwrap();
        let (r, _) = apply_command(&mut table, 6, &bind_command("other", "stale-uid", "n1"));
        assert!(matches!(r, Err(ApplyError::Conflict(_))));
        let (r, _) = apply_command(&mut table, 7, &bind_command("missing", "u", "n1"));
        assert!(matches!(r, Err(ApplyError::NotFound(_))));
    }

    fn create_command(value: &Value) -> Command {
        Command::Create {
            kind: Kind::Pod,
            object: serde_json::to_vec(value).unwrap(),
        }
    }

    #[test]
    fn a_failing_command_in_a_batch_fails_alone_and_the_others_apply() {
        let mut table = table_with_default();
        let batch = Command::Batch(vec![
            create_command(&pod("a", None)),
            create_command(&pod("a", None)),
            create_command(&pod("b", None)),
        ]);
        let (results, records) = apply_entry(&mut table, 7, &batch);
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok());
        assert_eq!(
            results[1],
            Err(ApplyError::AlreadyExists(
                "pods \"a\" already exists".into()
            ))
        );
        assert!(results[2].is_ok());
        assert_eq!(records.len(), 2);
        assert_eq!(table.list(Kind::Pod, Some("default")).count(), 2);
    }

    #[test]
    fn commands_in_one_entry_share_its_index_as_resource_version() {
        let mut table = table_with_default();
        create(&mut table, 2, &pod("old", None)).unwrap();
        let batch = Command::Batch(vec![
            create_command(&pod("a", None)),
            create_command(&pod("b", None)),
            Command::Delete {
                kind: Kind::Pod,
                namespace: "default".into(),
                name: "old".into(),
                grace_period_seconds: None,
                force: false,
                now: NOW.into(),
            },
        ]);
        let (results, records) = apply_entry(&mut table, 9, &batch);
        for applied in [&results[0], &results[1]] {
            assert_eq!(version_of(applied.as_ref().unwrap()), "9");
        }
        assert!(results[2].as_ref().unwrap().removed);
        for name in ["a", "b"] {
            assert_eq!(table.get(Kind::Pod, "default", name).unwrap().version, 9);
        }
        let versions: Vec<u64> = records.iter().map(|r| r.version).collect();
        assert_eq!(versions, [9, 9, 9]);
    }

    #[test]
    fn a_batch_inside_a_batch_is_refused_and_the_rest_apply() {
        let mut table = table_with_default();
        let batch = Command::Batch(vec![
            create_command(&pod("a", None)),
            Command::Batch(vec![create_command(&pod("nested", None))]),
            create_command(&pod("b", None)),
        ]);
        let (results, _) = apply_entry(&mut table, 4, &batch);
        assert!(results[0].is_ok());
        assert_eq!(
            results[1],
            Err(ApplyError::Invalid(
                "a batch may not contain a batch".into()
            ))
        );
        assert!(results[2].is_ok());
        assert!(table.get(Kind::Pod, "default", "nested").is_none());
    }

    #[test]
    fn create_system_claims_a_key_once_and_a_second_claim_changes_nothing() {
        let mut table = table_with_default();
        let claim = |value: &[u8]| Command::CreateSystem {
            key: "node/w1/key".into(),
            value: value.to_vec(),
        };
        let (first, _) = apply_command(&mut table, 2, &claim(b"a"));
        first.unwrap();
        let (second, _) = apply_command(&mut table, 3, &claim(b"b"));
        assert_eq!(
            second,
            Err(ApplyError::AlreadyExists(
                "record \"node/w1/key\" already exists".into()
            ))
        );
        assert_eq!(table.system("node/w1/key"), Some(&b"a"[..]));
    }
}
