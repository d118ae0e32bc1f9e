//! Events, as Kubernetes records them: one object per (object, reason, message), whose
//! count and lastTimestamp grow when the same thing happens again, expiring after a TTL.
//!
//! The event's name is derived from what it is about, so a repeat finds the stored event
//! by name, even on a new leader (or a restarted agent) that never saw the first occurrence.
//! The control plane's controllers and the node agent both record events this way.

use crate::kind::Kind;
use crate::meta::{ObjectMeta, Time};
use crate::types::{Event, EventSource, ObjectReference};

/// Something worth an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub kind: &'static str,
    pub api_version: &'static str,
    /// Empty for cluster-scoped objects (their events go to `default`, as in Kubernetes).
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Normal or Warning.
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
    /// Who reports it: `skiff-control-plane`, `skiff-agent`.
    pub component: &'static str,
    /// The reporting node, for agents.
    pub host: Option<String>,
}

impl Note {
    /// A note about the object of `kind` with `meta`, reported by `component` (on node
    /// `host`, for agents).
    pub fn about(
        kind: Kind,
        meta: &ObjectMeta,
        type_: &'static str,
        reason: &'static str,
        message: String,
        component: &'static str,
        host: Option<String>,
    ) -> Note {
        Note {
            kind: kind.as_str(),
            api_version: kind.api_version(),
            // Cluster-scoped objects have none, whatever their metadata says (it names the
            // event).
            namespace: if kind.is_namespaced() {
                meta.namespace.clone().unwrap_or_default()
            } else {
                String::new()
            },
            name: meta.name.clone(),
            uid: meta.uid.clone().unwrap_or_default(),
            type_,
            reason,
            message,
            component,
            host,
        }
    }

    pub fn event_namespace(&self) -> &str {
        if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }

    /// `<object>.<16 hex digits>` from the object, reason and message.
    pub fn event_name(&self) -> String {
        let mut hash = crate::hash::Fnv1a64::default();
        for part in [
            self.kind,
            &self.namespace,
            &self.name,
            &self.uid,
            self.reason,
            &self.message,
        ] {
            hash.write(part.as_bytes());
            hash.write(&[0]);
        }
        let hash = hash.finish();
        let prefix: String = self.name.chars().take(200).collect();
        format!("{}.{hash:016x}", prefix.trim_end_matches(['-', '.']))
    }

    /// The event to store: a new one, or `existing` counted once more.
    pub fn merged_into(&self, existing: Option<&Event>, now: Time) -> Event {
        if let Some(existing) = existing {
            let mut event = existing.clone();
            event.count = Some(existing.count.unwrap_or(1) + 1);
            event.last_timestamp = Some(now);
            return event;
        }
        Event {
            api_version: Some("v1".into()),
            kind: Some("Event".into()),
            metadata: ObjectMeta {
                name: self.event_name(),
                namespace: Some(self.event_namespace().to_string()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                kind: Some(self.kind.into()),
                namespace: (!self.namespace.is_empty()).then(|| self.namespace.clone()),
                name: Some(self.name.clone()),
                uid: Some(self.uid.clone()),
                api_version: Some(self.api_version.into()),
                ..ObjectReference::default()
            },
            reason: Some(self.reason.into()),
            message: Some(self.message.clone()),
            type_: Some(self.type_.into()),
            count: Some(1),
            first_timestamp: Some(now),
            last_timestamp: Some(now),
            source: Some(EventSource {
                component: Some(self.component.into()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.into()),
        }
    }
}

/// Whether an event is older than the TTL (judged by its last occurrence).
pub fn expired(event: &Event, now: Time, ttl: std::time::Duration) -> bool {
    let last = event
        .last_timestamp
        .or(event.first_timestamp)
        .or(event.metadata.creation_timestamp);
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    last.is_some_and(|t| now - t > ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(message: &str) -> Note {
        Note {
            kind: "Pod",
            api_version: "v1",
            namespace: "default".into(),
            name: "web-1".into(),
            uid: "u-1".into(),
            type_: "Warning",
            reason: "FailedScheduling",
            message: message.into(),
            component: "skiff-control-plane",
            host: None,
        }
    }

    fn at(seconds: i64) -> Time {
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn same_occurrence_same_name() {
        let a = note("0/1 nodes are available");
        assert_eq!(a.event_name(), note("0/1 nodes are available").event_name());
        assert_ne!(a.event_name(), note("0/2 nodes are available").event_name());
        assert!(a.event_name().starts_with("web-1."));
        let node = Note {
            kind: "Node",
            namespace: String::new(),
            ..note("x")
        };
        assert_eq!(node.event_namespace(), "default");
    }

    #[test]
    fn repeats_count_up() {
        let n = note("m");
        let first = n.merged_into(None, at(0));
        assert_eq!(first.count, Some(1));
        assert_eq!(first.involved_object.name.as_deref(), Some("web-1"));
        let second = n.merged_into(Some(&first), at(5));
        assert_eq!(second.count, Some(2));
        assert_eq!(second.first_timestamp, Some(at(0)));
        assert_eq!(second.last_timestamp, Some(at(5)));
        assert_eq!(second.metadata.name, first.metadata.name);
    }

    #[test]
    fn an_event_expires_once_its_ttl_has_passed_since_it_was_last_seen() {
        let e = note("m").merged_into(None, at(0));
        let hour = std::time::Duration::from_secs(3600);
        assert!(!expired(&e, at(3600), hour));
        assert!(expired(&e, at(3601), hour));
    }
}
