//! What a controller pass decides on: the parsed objects, each with the resourceVersion it
//! was read at (so writes are conditional on it), and what the controllers derive from pods.

use std::sync::Arc;

use skiff_api::types::{Deployment, Node, Pod};

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
/// cache keeps it).
#[derive(Debug)]
pub struct PodFacts {
    pub pod: Pod,
    pub requests: Resources,
    /// The uid of its controlling Deployment, if any.
    pub deployment: Option<String>,
    pub owned: OwnedPod,
}

impl PodFacts {
    pub fn new(pod: Pod) -> PodFacts {
        let deployment = pod
            .metadata
            .owner_references
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "Deployment")
            .map(|o| o.uid.clone());
        PodFacts {
            requests: Resources::requested_by(&pod),
            owned: OwnedPod::from_pod(&pod),
            deployment,
            pod,
        }
    }

    /// The node it is bound to.
    pub fn node(&self) -> Option<&str> {
        self.pod.spec.node_name.as_deref().filter(|n| !n.is_empty())
    }
}
