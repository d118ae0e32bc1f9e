//! Admission: what every new object goes through before it is proposed, whether a client
//! or a controller creates it — its namespace, a generated name, a uid and creation time,
//! server-owned fields cleared, defaults and validation.
//!
//! Uids and random name parts come from an [`Ids`] source, so the controllers' decisions
//! can be tested with predictable names.

use skiff_api::meta::Time;
use skiff_api::{Kind, Object, validate};

use crate::error::ApiError;

/// Where new objects get their uids and the random parts of their names.
pub trait Ids {
    /// A fresh uid.
    fn uid(&mut self) -> String;
    /// Fresh random bits, for generated names.
    fn random(&mut self) -> u128;
}

/// Random v4 UUIDs: what a running control plane uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl Ids for RandomIds {
    fn uid(&mut self) -> String {
        uuid::Uuid::new_v4().to_string()
    }

    fn random(&mut self) -> u128 {
        uuid::Uuid::new_v4().as_u128()
    }
}

/// The namespace an object of `kind` lives in: `default` when unset, none for cluster-scoped kinds.
pub fn effective_namespace(kind: Kind, namespace: Option<&str>) -> String {
    match (kind.is_namespaced(), namespace) {
        (false, _) => String::new(),
        (true, Some(ns)) if !ns.is_empty() => ns.to_string(),
        (true, _) => "default".to_string(),
    }
}

pub fn normalize_namespace(object: &mut Object) {
    let kind = object.kind();
    let meta = object.metadata_mut();
    let ns = effective_namespace(kind, meta.namespace.as_deref());
    meta.namespace = (!ns.is_empty()).then_some(ns);
}

/// Prepares an object a client creates: fresh random ids, created now.
pub fn admit_new(object: &mut Object) -> Result<(), ApiError> {
    admit(object, &mut RandomIds, chrono::Utc::now())
}

/// Prepares an object to be created, by a client or a controller alike: namespace,
/// generated name, uid, creation time, server-owned fields cleared, defaults, validation.
pub fn admit(object: &mut Object, ids: &mut dyn Ids, now: Time) -> Result<(), ApiError> {
    normalize_namespace(object);
    let meta = object.metadata_mut();
    if meta.name.is_empty()
        && let Some(prefix) = meta.generate_name.clone().filter(|p| !p.is_empty())
    {
        // Five hex digits, as the first five of a simple-form UUID.
        let suffix = uuid::Uuid::from_u128(ids.random()).simple().to_string();
        meta.name = format!("{prefix}{}", &suffix[..5]);
    }
    meta.uid = Some(ids.uid());
    meta.creation_timestamp = Some(now);
    meta.resource_version = None;
    meta.generation = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    object.apply_defaults();
    validate::validate(object).map_err(|e| ApiError::InvalidArgument(e.to_string()))
}

/// Predictable ids for tests: uids `uid-1`, `uid-2`, … and random bits counting up from 0.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct CountingIds {
    next: u128,
}

#[cfg(test)]
impl Ids for CountingIds {
    fn uid(&mut self) -> String {
        self.next += 1;
        format!("uid-{}", self.next)
    }

    fn random(&mut self) -> u128 {
        let r = self.next;
        self.next += 1;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(metadata: serde_json::Value) -> Object {
        let value = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        });
        Object::from_json(Some(Kind::Pod), &serde_json::to_vec(&value).unwrap()).unwrap()
    }

    fn now() -> Time {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn admission_names_a_generate_name_object_from_the_id_source() {
        let mut object = pod(serde_json::json!({"generateName": "web-"}));
        let mut ids = CountingIds::default();
        admit(&mut object, &mut ids, now()).unwrap();
        let meta = object.metadata();
        // Random bits 0: the suffix is five zero hex digits; the uid comes next.
        assert_eq!(meta.name, "web-00000");
        assert_eq!(meta.uid.as_deref(), Some("uid-2"));
    }

    #[test]
    fn admission_sets_namespace_uid_and_time_and_clears_server_owned_fields() {
        let mut object = pod(serde_json::json!({
            "name": "web",
            "uid": "client-chosen",
            "resourceVersion": "7",
            "generation": 3,
            "deletionTimestamp": "2025-01-01T00:00:00Z",
            "deletionGracePeriodSeconds": 30,
        }));
        admit(&mut object, &mut CountingIds::default(), now()).unwrap();
        let meta = object.metadata();
        assert_eq!(meta.name, "web");
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        assert_eq!(meta.uid.as_deref(), Some("uid-1"));
        assert_eq!(meta.creation_timestamp, Some(now()));
        assert_eq!(meta.resource_version, None);
        assert_eq!(meta.generation, None);
        assert_eq!(meta.deletion_timestamp, None);
        assert_eq!(meta.deletion_grace_period_seconds, None);
    }

    #[test]
    fn admission_refuses_an_invalid_object_with_the_field_path() {
        let mut object = pod(serde_json::json!({"name": "Not_Valid"}));
        let err = admit(&mut object, &mut CountingIds::default(), now()).unwrap_err();
        assert!(
            matches!(&err, ApiError::InvalidArgument(m) if m.contains("metadata.name")),
            "{err}"
        );
    }
}
