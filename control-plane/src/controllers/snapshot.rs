//! What a controller pass decides on: the parsed objects, each with the resourceVersion it
//! was read at (so writes are conditional on it), and what the controllers derive from pods.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use skiff_api::Kind;
use skiff_api::types::{Deployment, Node, Pod};

use crate::store::StoredObject;
use crate::store::objects::ObjectSummary;

use super::deployment::OwnedPod;
use super::scheduler::Resources;

/// One parsed object and the version it was read at.
#[derive(Debug)]
pub struct Versioned<T> {
    pub version: u64,
    pub object: Arc<T>,
}

impl<T> Versioned<T> {
    pub fn new(version: u64, object: T) -> Versioned<T> {
        Versioned {
            version,
            object: Arc::new(object),
        }
    }
}

/// Every object one pass looks at.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    pub nodes: &'a [Versioned<Node>],
    pub pods: &'a [Versioned<PodFacts>],
    pub deployments: &'a [Versioned<Deployment>],
}

/// A pod with what the controllers derive from it (derived once per stored version: the
/// cache keeps it). The pod itself is parsed in full only when a controller asks for it
/// ([`LazyPod`]): the leader holds one of these for every pod, and a parsed pod costs several
/// times its JSON, which the object table already holds.
#[derive(Debug)]
pub struct PodFacts {
    pub pod: LazyPod,
    pub requests: Resources,
    /// The uid of its controlling Deployment, if any.
    pub deployment: Option<String>,
    /// Whether some owner reference is marked as its controller.
    pub controlled: bool,
    /// The scheduler it asks for, when not the default one.
    pub scheduler_name: Option<String>,
    pub owned: OwnedPod,
}

impl PodFacts {
    /// The facts of a stored pod; None (with a warning) when it does not parse as a pod.
    pub fn from_stored(stored: &Arc<StoredObject>) -> Option<PodFacts> {
        let pod: Pod = match serde_json::from_slice(&stored.json) {
            Ok(pod) => pod,
            Err(e) => {
                tracing::warn!(key = stored.key(), "unreadable stored pod: {e}");
                return None;
            }
        };
        let mut facts = PodFacts::derive(&pod, stored.clone());
        // The scheduler reads a pod it is to place in full next: keep what was just parsed.
        // Bound pods (nearly all, once scheduled) and pods for other schedulers keep only
        // the facts.
        if facts.node().is_none()
            && facts.scheduler_name.is_none()
            && !facts.owned.terminating
            && !facts.owned.finished
        {
            facts.pod.parsed = OnceLock::from(Box::new(pod));
        }
        Some(facts)
    }

    /// The facts of `pod` as it would be stored (tests build their pods this way).
    pub fn new(pod: impl Into<Pod>) -> PodFacts {
        let pod: Pod = pod.into();
        let json: Arc<[u8]> = serde_json::to_vec(&pod).expect("pods serialize").into();
        let meta = &pod.metadata;
        let stored = Arc::new(StoredObject {
            kind: Kind::Pod,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone(),
            version: meta
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            json,
            summary: ObjectSummary {
                labels: meta.labels.clone(),
                node_name: pod.spec.node_name.clone().filter(|n| !n.is_empty()),
                phase: pod.status.as_ref().and_then(|s| s.phase.clone()),
            },
        });
        let mut facts = PodFacts::derive(&pod, stored);
        facts.pod.parsed = OnceLock::from(Box::new(pod));
        facts
    }

    fn derive(pod: &Pod, stored: Arc<StoredObject>) -> PodFacts {
        let owners = &pod.metadata.owner_references;
        let deployment = owners
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "Deployment")
            .map(|o| o.uid.clone());
        PodFacts {
            requests: Resources::requested_by(pod),
            owned: OwnedPod::from_pod(pod),
            deployment,
            controlled: owners.iter().any(|o| o.controller == Some(true)),
            scheduler_name: pod
                .spec
                .scheduler_name
                .clone()
                .filter(|s| s != skiff_api::object::DEFAULT_SCHEDULER),
            pod: LazyPod {
                stored,
                parsed: OnceLock::new(),
            },
        }
    }

    /// The node it is bound to.
    pub fn node(&self) -> Option<&str> {
        self.pod.stored.summary.node_name.as_deref()
    }

    pub fn namespace(&self) -> &str {
        &self.pod.stored.namespace
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.pod.stored.summary.labels
    }
}

/// A stored pod, parsed on first use (and kept from then on, for as long as this version
/// of the pod is cached). Dereferences to the [`Pod`].
pub struct LazyPod {
    stored: Arc<StoredObject>,
    parsed: OnceLock<Box<Pod>>,
}

impl LazyPod {
    fn parsed(&self) -> &Pod {
        self.parsed.get_or_init(|| {
            // These bytes parsed as a pod when the facts were derived; a failure here
            // could only be memory corruption, and an empty pod makes no valid write.
            Box::new(
                serde_json::from_slice(&self.stored.json).unwrap_or_else(|e| {
                    tracing::error!(key = self.stored.key(), "stored pod no longer parses: {e}");
                    Pod::default()
                }),
            )
        })
    }
}

impl std::ops::Deref for LazyPod {
    type Target = Pod;
    fn deref(&self) -> &Pod {
        self.parsed()
    }
}

impl std::ops::DerefMut for LazyPod {
    fn deref_mut(&mut self) -> &mut Pod {
        self.parsed();
        self.parsed.get_mut().expect("parsed just above")
    }
}

impl From<LazyPod> for Pod {
    fn from(lazy: LazyPod) -> Pod {
        lazy.parsed();
        *lazy.parsed.into_inner().expect("parsed just above")
    }
}

impl Clone for LazyPod {
    fn clone(&self) -> LazyPod {
        LazyPod {
            stored: self.stored.clone(),
            parsed: self.parsed.clone(),
        }
    }
}

impl std::fmt::Debug for LazyPod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyPod")
            .field("key", &self.stored.key())
            .field("parsed", &self.parsed.get().is_some())
            .finish()
    }
}
