//! Deleting a deployment with `propagationPolicy` Orphan or Foreground, as a pure function.
//!
//! The object API records the request as a system record ([`record_key`]) rather than
//! deleting at once; each pass then works towards it, one step per pass so no pass acts on
//! a half-done step:
//! - Orphan: the deployment's pods lose their references to it; once none refers to it,
//!   the deployment goes (Kubernetes' `orphan` finalizer).
//! - Foreground: its pods are deleted; once they are gone, the deployment goes
//!   (Kubernetes' `foregroundDeletion` finalizer).
//!
//! Meanwhile the deployment controller does not see the deployment or its pods: it neither
//! adopts them back, nor replaces them, nor collects them. Skiff's metadata has no
//! finalizers, so the deployment being deleted carries no deletionTimestamp; the record is
//! what marks it.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use skiff_api::Kind;
use skiff_api::meta::Time;
use skiff_api::types::{Deployment, Pod};

use super::snapshot::{PodFacts, Snapshot, Versioned};
use super::writes::{Writes, delete_pod, to_json};
use crate::raft_types::{Command, UpdatePart};

/// The system records of deletions under way.
pub const RECORD_PREFIX: &str = "deleting/";

/// The system record of one deployment's deletion, by its uid.
pub fn record_key(uid: &str) -> String {
    format!("{RECORD_PREFIX}{uid}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Policy {
    Orphan,
    Foreground,
}

/// What a record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleting {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub policy: Policy,
}

impl Deleting {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("records serialize")
    }
}

/// What one pass does about the deletions under way.
#[derive(Debug, Default)]
pub struct PropagationPass {
    pub writes: Writes,
    /// Deployments (by uid) the deployment controller leaves alone, with their pods.
    pub hidden: HashSet<String>,
}

/// Whether the deployment with `uid` controls the pod (read from the facts, without
/// parsing the pod).
fn refers_to(facts: &PodFacts, uid: &str) -> bool {
    facts.deployment.as_deref() == Some(uid)
}

/// One step for each record (`key`, value) in `records`.
pub fn reconcile(records: &[(String, Vec<u8>)], snapshot: Snapshot, wall: Time) -> PropagationPass {
    let mut out = PropagationPass::default();
    for (key, value) in records {
        let Ok(deleting) = serde_json::from_slice::<Deleting>(value) else {
            tracing::warn!("system record {key} does not decode: dropped");
            out.writes
                .commands
                .push(Command::DeleteSystem { key: key.clone() });
            continue;
        };
        let owner = snapshot
            .deployments
            .iter()
            .find(|d| d.object.metadata.uid.as_deref() == Some(deleting.uid.as_str()));
        let Some(owner) = owner else {
            out.writes
                .commands
                .push(Command::DeleteSystem { key: key.clone() });
            continue;
        };
        out.hidden.insert(deleting.uid.clone());
        let dependents: Vec<&Versioned<PodFacts>> = snapshot
            .pods
            .iter()
            .filter(|p| refers_to(&p.object, &deleting.uid))
            .collect();
        if dependents.is_empty() {
            out.writes.commands.push(Command::Delete {
                kind: Kind::Deployment,
                namespace: deleting.namespace.clone(),
                name: owner.object.metadata.name.clone(),
                grace_period_seconds: None,
                force: false,
                now: super::writes::rfc3339(wall),
            });
            out.writes
                .commands
                .push(Command::DeleteSystem { key: key.clone() });
            continue;
        }
        for pod in dependents {
            match deleting.policy {
                Policy::Orphan => {
                    let mut released = Pod::clone(&pod.object.pod);
                    released
                        .metadata
                        .owner_references
                        .retain(|o| o.uid != deleting.uid);
                    out.writes.commands.push(Command::Update {
                        kind: Kind::Pod,
                        object: to_json(&released),
                        part: UpdatePart::Main,
                        expected_version: Some(pod.version),
                    });
                }
                Policy::Foreground => {
                    if pod.object.pod.metadata.deletion_timestamp.is_none() {
                        out.writes
                            .commands
                            .push(delete_pod(&pod.object.pod, false, wall));
                    }
                }
            }
        }
    }
    out
}

/// Copies (sharing the parsed objects) of the snapshot's pods and deployments, without
/// those `hidden` covers: what the deployment controller looks at.
pub fn visible(
    snapshot: Snapshot<'_>,
    hidden: &HashSet<String>,
) -> (Vec<Versioned<PodFacts>>, Vec<Versioned<Deployment>>) {
    fn share<T>(v: &Versioned<T>) -> Versioned<T> {
        Versioned {
            version: v.version,
            object: v.object.clone(),
        }
    }
    let pods = snapshot
        .pods
        .iter()
        .filter(|p| !hidden.iter().any(|uid| refers_to(&p.object, uid)))
        .map(share)
        .collect();
    let deployments = snapshot
        .deployments
        .iter()
        .filter(|d| {
            d.object
                .metadata
                .uid
                .as_deref()
                .is_none_or(|uid| !hidden.contains(uid))
        })
        .map(share)
        .collect();
    (pods, deployments)
}
