//! What a controller pass decides to write: Raft commands and events, and the builders the
//! controllers share for them.

use serde::Serialize;
use skiff_api::Kind;
use skiff_api::events::Note;
use skiff_api::meta::{ObjectMeta, Time};
use skiff_api::types::Pod;

use crate::raft_types::{Command, UpdatePart};

/// How the control plane signs its events.
pub const COMPONENT: &str = "skiff-control-plane";

/// What one pass decided to write, in the order it decided it.
#[derive(Debug, Default)]
pub struct Writes {
    pub commands: Vec<Command>,
    pub notes: Vec<Note>,
}

impl Writes {
    pub fn append(&mut self, mut other: Writes) {
        self.commands.append(&mut other.commands);
        self.notes.append(&mut other.notes);
    }

    /// A pod's new status (refused if the pod changed since `version`) and the warning
    /// event that explains it.
    pub fn pod_status_with_warning(
        &mut self,
        updated: &Pod,
        version: u64,
        reason: &'static str,
        message: String,
    ) {
        self.commands
            .push(status_update(Kind::Pod, updated, version));
        self.notes.push(note(
            Kind::Pod,
            &updated.metadata,
            "Warning",
            reason,
            message,
        ));
    }
}

pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("objects serialize")
}

pub fn rfc3339(t: Time) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An event about the object of `kind` with `meta`, signed by the control plane.
pub fn note(
    kind: Kind,
    meta: &ObjectMeta,
    type_: &'static str,
    reason: &'static str,
    message: String,
) -> Note {
    Note::about(kind, meta, type_, reason, message, COMPONENT, None)
}

/// A status write, refused if the object changed since it was read at `version`.
pub fn status_update<T: Serialize>(kind: Kind, object: &T, version: u64) -> Command {
    Command::Update {
        kind,
        object: to_json(object),
        part: UpdatePart::Status,
        expected_version: Some(version),
    }
}

/// Deletes a pod: gracefully (the agent confirms), or at once when `force`.
pub fn delete_pod(pod: &Pod, force: bool, now: Time) -> Command {
    Command::Delete {
        kind: Kind::Pod,
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone(),
        grace_period_seconds: force.then_some(0),
        force,
        now: rfc3339(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_about_a_cluster_scoped_object_has_no_namespace_whatever_its_metadata_says() {
        let meta = ObjectMeta {
            name: "n1".into(),
            namespace: Some("stray".into()),
            uid: Some("u".into()),
            ..ObjectMeta::default()
        };
        let about_node = note(Kind::Node, &meta, "Normal", "NodeReady", "m".into());
        assert_eq!(
            (
                about_node.kind,
                about_node.api_version,
                about_node.namespace.as_str()
            ),
            ("Node", "v1", "")
        );
        let about_deployment = note(Kind::Deployment, &meta, "Normal", "ScalingUp", "m".into());
        assert_eq!(
            (
                about_deployment.api_version,
                about_deployment.namespace.as_str()
            ),
            ("apps/v1", "stray")
        );
        assert_eq!(about_deployment.component, COMPONENT);
    }
}
