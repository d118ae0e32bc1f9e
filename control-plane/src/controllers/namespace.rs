//! Namespace deletion, pure, as kube-controller-manager's namespace controller does it: a
//! namespace marked Terminating (the API only marks it) is emptied, then removed.
//!
//! Its deployments go first, so none replaces the pods being stopped; then its pods, each
//! deleted as `delete pod` deletes it (its own grace period; the agent stops it and confirms).
//! Once no pod is left, one whole-namespace delete removes the namespace with what remains
//! in it (events), none of which needs time to stop. A pod on a node whose agent is gone
//! does not hold the namespace forever: the node lifecycle controller fails it or finishes
//! its deletion once the node is lost (node_lifecycle.rs), as Kubernetes' does.

use std::time::Duration;

use skiff_api::Kind;
use skiff_api::meta::Time;

use super::snapshot::Snapshot;
use super::writes::{Writes, delete_pod, rfc3339};
use crate::raft_types::Command;

/// How soon to look again while a namespace waits for its pods to stop.
const REQUEUE: Duration = Duration::from_secs(1);

/// What one pass decided for the terminating namespaces.
#[derive(Debug, Default)]
pub struct Reconciled {
    pub writes: Writes,
    /// Set while some namespace still waits for its pods.
    pub requeue_after: Option<Duration>,
}

/// One step for each namespace in `terminating` (their names). Idempotent: a pod already
/// terminating is left to its agent, and nothing is written twice for the same state.
pub fn reconcile(terminating: &[String], snapshot: Snapshot, wall: Time) -> Reconciled {
    let mut out = Reconciled::default();
    for namespace in terminating {
        let deployments = snapshot
            .deployments
            .iter()
            .filter(|d| d.object.metadata.namespace.as_deref() == Some(namespace.as_str()));
        let mut waiting = false;
        for deployment in deployments {
            waiting = true;
            out.writes.commands.push(Command::Delete {
                kind: Kind::Deployment,
                namespace: namespace.clone(),
                name: deployment.object.metadata.name.clone(),
                grace_period_seconds: None,
                force: false,
                now: rfc3339(wall),
            });
        }
        for entry in snapshot
            .pods
            .iter()
            .filter(|p| p.object.namespace() == namespace)
        {
            waiting = true;
            if !entry.object.owned.terminating {
                out.writes
                    .commands
                    .push(delete_pod(&entry.object.pod, false, wall));
            }
        }
        if waiting {
            out.requeue_after = Some(REQUEUE);
        } else {
            out.writes.commands.push(Command::Delete {
                kind: Kind::Namespace,
                namespace: String::new(),
                name: namespace.clone(),
                grace_period_seconds: None,
                force: false,
                now: rfc3339(wall),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{deletes, deployment, merge, owned_by, pod, wall};
    use super::super::snapshot::{PodFacts, Versioned};
    use super::*;
    use skiff_api::types::{Deployment, Node};

    fn run(
        terminating: &[&str],
        deployments: &[Versioned<Deployment>],
        pods: &[Versioned<PodFacts>],
    ) -> Reconciled {
        let nodes: [Versioned<Node>; 0] = [];
        let snapshot = Snapshot {
            nodes: &nodes,
            pods,
            deployments,
        };
        let names: Vec<String> = terminating.iter().map(|s| s.to_string()).collect();
        reconcile(&names, snapshot, wall(0))
    }

    /// The (kind, namespace, name) of every non-pod delete written.
    fn other_deletes(writes: &Writes) -> Vec<(Kind, String, String)> {
        writes
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Delete {
                    kind,
                    namespace,
                    name,
                    ..
                } if *kind != Kind::Pod => Some((*kind, namespace.clone(), name.clone())),
                _ => None,
            })
            .collect()
    }

    fn in_team_a(name: &str, version: u64, patch: serde_json::Value) -> Versioned<PodFacts> {
        let mut with_namespace = json!({"metadata": {"namespace": "team-a"}});
        merge(&mut with_namespace, patch);
        pod(name, version, with_namespace)
    }

    #[test]
    fn a_terminating_namespace_loses_its_deployments_and_its_pods_are_deleted_gracefully() {
        let web = deployment(2, json!({"metadata": {"namespace": "team-a"}}));
        let owned = in_team_a("web-1", 7, owned_by("d-web"));
        let bare = in_team_a("bare", 8, json!({"spec": {"nodeName": "n1"}}));
        let elsewhere = pod("other", 9, json!({"spec": {"nodeName": "n1"}}));
        let out = run(&["team-a"], &[web], &[owned, bare, elsewhere]);
        assert_eq!(
            other_deletes(&out.writes),
            [(Kind::Deployment, "team-a".to_string(), "web".to_string())]
        );
        // Not forced: each pod keeps its own grace period, and its agent confirms.
        assert_eq!(
            deletes(&out.writes),
            [("web-1".to_string(), false), ("bare".to_string(), false)]
        );
        assert_eq!(out.requeue_after, Some(REQUEUE));
    }

    #[test]
    fn pods_still_terminating_hold_the_namespace_and_are_not_deleted_again() {
        let going = in_team_a(
            "bare",
            8,
            json!({"metadata": {"deletionTimestamp": wall(3)}, "spec": {"nodeName": "n1"}}),
        );
        let out = run(&["team-a"], &[], &[going]);
        assert!(out.writes.commands.is_empty(), "{:?}", out.writes.commands);
        assert_eq!(out.requeue_after, Some(REQUEUE));
    }

    #[test]
    fn a_terminating_namespace_without_pods_or_deployments_is_removed() {
        let elsewhere = pod("other", 9, json!({"spec": {"nodeName": "n1"}}));
        let out = run(&["team-a"], &[], &[elsewhere]);
        assert_eq!(
            other_deletes(&out.writes),
            [(Kind::Namespace, String::new(), "team-a".to_string())]
        );
        assert_eq!(out.writes.commands.len(), 1);
        assert_eq!(out.requeue_after, None);
    }

    #[test]
    fn namespaces_not_terminating_are_left_alone() {
        let web = deployment(1, json!({}));
        let running = pod("web-1", 7, json!({"spec": {"nodeName": "n1"}}));
        let out = run(&[], &[web], &[running]);
        assert!(out.writes.commands.is_empty());
        assert_eq!(out.requeue_after, None);
    }
}
