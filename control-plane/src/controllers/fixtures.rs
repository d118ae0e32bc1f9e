//! Objects and readers for the controllers' tests: snapshots built from JSON, and writes
//! read back as JSON, so a test states what it expects in the API's own terms.

use std::time::Duration;

use serde_json::{Value, json};
use skiff_api::Kind;
use skiff_api::meta::Time;
use skiff_api::types::{Deployment, Node, Pod};

use super::Settings;
use super::node_lifecycle::ClusterCidr;
use super::snapshot::{PodFacts, Versioned};
use super::writes::Writes;
use crate::raft_types::{Command, UpdatePart};

pub const GRACE: Duration = Duration::from_secs(10);
pub const EVICTION: Duration = Duration::from_secs(30);

pub fn settings(cidr: &str) -> Settings {
    Settings {
        node_grace: GRACE,
        pod_eviction_timeout: EVICTION,
        cluster_cidr: ClusterCidr::parse(cidr).unwrap(),
        event_ttl: Duration::from_secs(3600),
    }
}

/// `seconds` after the tests' fixed "now".
pub fn wall(seconds: i64) -> Time {
    "2026-01-01T00:00:00Z".parse::<Time>().unwrap() + chrono::Duration::seconds(seconds)
}

/// Deep-merges `patch` into `base` (objects key by key, anything else replaced).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (k, v) in patch {
                merge(base.entry(k).or_insert(Value::Null), v);
            }
        }
        (base, patch) => *base = patch,
    }
}

/// A node with `patch` merged in (no conditions, no pod CIDR unless patched).
pub fn node(name: &str, version: u64, patch: Value) -> Versioned<Node> {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}")},
    });
    merge(&mut v, patch);
    Versioned::new(version, serde_json::from_value(v).unwrap())
}

/// A node that is Ready since long ago and has a pod CIDR.
pub fn ready_node(name: &str, version: u64, cidr: &str) -> Versioned<Node> {
    node(
        name,
        version,
        json!({
            "spec": {"podCIDR": cidr},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
            ]},
        }),
    )
}

/// A pod in `default` created at `wall(-60)`, with `patch` merged in.
pub fn pod(name: &str, version: u64, patch: Value) -> Versioned<PodFacts> {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "creationTimestamp": "2025-12-31T23:59:00Z",
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    });
    merge(&mut v, patch);
    let pod: Pod = serde_json::from_value(v).unwrap();
    Versioned::new(version, PodFacts::new(pod))
}

/// A deployment `web` in `default` (uid `d-web`) of `replicas` pods labelled app=web.
pub fn deployment(replicas: i32, patch: Value) -> Versioned<Deployment> {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-web", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    });
    merge(&mut v, patch);
    Versioned::new(3, serde_json::from_value(v).unwrap())
}

/// The controller reference a deployment's pod carries.
pub fn owned_by(uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid, "controller": true}
    ]}})
}

/// The updates of `kind` written: (object, part, expected version).
pub fn updates(writes: &Writes, of: Kind) -> Vec<(Value, UpdatePart, Option<u64>)> {
    writes
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Update {
                kind,
                object,
                part,
                expected_version,
            } if *kind == of => Some((
                serde_json::from_slice(object).unwrap(),
                *part,
                *expected_version,
            )),
            _ => None,
        })
        .collect()
}

/// The pods created: their objects.
pub fn creates(writes: &Writes) -> Vec<Value> {
    writes
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Create {
                kind: Kind::Pod,
                object,
            } => Some(serde_json::from_slice(object).unwrap()),
            _ => None,
        })
        .collect()
}

/// The pods deleted: (name, forced).
pub fn deletes(writes: &Writes) -> Vec<(String, bool)> {
    writes
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Delete {
                kind: Kind::Pod,
                name,
                force,
                grace_period_seconds,
                ..
            } => {
                assert_eq!(grace_period_seconds.is_some(), *force, "{name}");
                Some((name.clone(), *force))
            }
            _ => None,
        })
        .collect()
}

/// The events noted: (object name, type, reason, message).
pub fn notes(writes: &Writes) -> Vec<(String, &'static str, &'static str, String)> {
    writes
        .notes
        .iter()
        .map(|n| (n.name.clone(), n.type_, n.reason, n.message.clone()))
        .collect()
}

/// A condition of `type_` in an object's status, as JSON.
pub fn condition<'a>(object: &'a Value, type_: &str) -> &'a Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {object}"))
}
