//! A container's security settings as the runtime applies them: the pod's
//! `securityContext` with the container's own over it, field by field, as Kubernetes'
//! `DetermineEffectiveSecurityContext` combines them. What a field means is the runtime's
//! business: the `oci` runtime applies every one, the `process` runtime refuses the ones it
//! cannot honour ([`Security::process_refusal`]).

use skiff_api::types::{PodSecurityContext, SecurityContext};

/// Which seccomp filter a container asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seccomp {
    /// The runtime's default profile (Docker's, for `oci`).
    RuntimeDefault,
    /// No filter.
    Unconfined,
    /// A profile file on the node, relative to the runtime's seccomp directory.
    Localhost(String),
}

/// The effective settings of one container. Ids are validated (0 to 2^31 - 1) by the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub run_as_non_root: bool,
    /// The pod's supplementalGroups.
    pub supplemental_groups: Vec<u32>,
    /// The pod's fsGroup: a supplemental group too, and the group of its emptyDir volumes.
    pub fs_group: Option<u32>,
    pub privileged: bool,
    /// None: not said (Kubernetes' default, escalation allowed, no `no_new_privs`).
    pub allow_privilege_escalation: Option<bool>,
    pub add_capabilities: Vec<String>,
    pub drop_capabilities: Vec<String>,
    pub read_only_root_filesystem: bool,
    /// None: not said (the runtime's default).
    pub seccomp: Option<Seccomp>,
}

/// An id from the API (validated non-negative and below 2^31).
fn id(value: Option<i64>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

fn seccomp(profile: &skiff_api::types::SeccompProfile) -> Seccomp {
    match profile.type_.as_str() {
        "Unconfined" => Seccomp::Unconfined,
        "Localhost" => Seccomp::Localhost(profile.localhost_profile.clone().unwrap_or_default()),
        _ => Seccomp::RuntimeDefault,
    }
}

impl Security {
    /// The container's settings over the pod's.
    pub fn effective(
        pod: Option<&PodSecurityContext>,
        container: Option<&SecurityContext>,
    ) -> Security {
        let pod_field = |f: fn(&PodSecurityContext) -> Option<i64>| pod.and_then(f);
        let container_field = |f: fn(&SecurityContext) -> Option<i64>| container.and_then(f);
        let capabilities = container.and_then(|c| c.capabilities.as_ref());
        Security {
            run_as_user: id(container_field(|c| c.run_as_user).or(pod_field(|p| p.run_as_user))),
            run_as_group: id(container_field(|c| c.run_as_group).or(pod_field(|p| p.run_as_group))),
            run_as_non_root: container
                .and_then(|c| c.run_as_non_root)
                .or(pod.and_then(|p| p.run_as_non_root))
                .unwrap_or(false),
            supplemental_groups: pod
                .map(|p| {
                    p.supplemental_groups
                        .iter()
                        .filter_map(|g| id(Some(*g)))
                        .collect()
                })
                .unwrap_or_default(),
            fs_group: id(pod_field(|p| p.fs_group)),
            privileged: container.and_then(|c| c.privileged).unwrap_or(false),
            allow_privilege_escalation: container.and_then(|c| c.allow_privilege_escalation),
            add_capabilities: capabilities.map(|c| c.add.clone()).unwrap_or_default(),
            drop_capabilities: capabilities.map(|c| c.drop.clone()).unwrap_or_default(),
            read_only_root_filesystem: container
                .and_then(|c| c.read_only_root_filesystem)
                .unwrap_or(false),
            seccomp: container
                .and_then(|c| c.seccomp_profile.as_ref())
                .or(pod.and_then(|p| p.seccomp_profile.as_ref()))
                .map(seccomp),
        }
    }

    /// `no_new_privs`: only when escalation is explicitly refused, as the kubelet asks.
    pub fn no_new_privileges(&self) -> bool {
        self.allow_privilege_escalation == Some(false)
    }

    /// Every supplemental group of the process: the pod's supplementalGroups, then its
    /// fsGroup.
    pub fn extra_groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.supplemental_groups
            .iter()
            .copied()
            .chain(self.fs_group)
    }

    /// Why a runtime that runs containers as host processes of the agent's user (`uid`,
    /// `gid`), with the agent's capabilities, no seccomp filter and the host's root, cannot
    /// honour these settings: the first field it cannot, named as in the pod. None: nothing
    /// asked for differs from what such a process gets anyway.
    pub fn process_refusal(&self, uid: u32, gid: u32) -> Option<String> {
        let field = |name: &str, why: String| {
            Some(format!(
                "the process runtime cannot honour securityContext.{name}: {why}; run the pod on a node with the oci runtime"
            ))
        };
        if let Some(user) = self.run_as_user.filter(|u| *u != uid) {
            return field(
                "runAsUser",
                format!("{user} (containers run as the agent's user {uid})"),
            );
        }
        if let Some(group) = self.run_as_group.filter(|g| *g != gid) {
            return field(
                "runAsGroup",
                format!("{group} (containers run with the agent's group {gid})"),
            );
        }
        if self.run_as_non_root && uid == 0 {
            return field(
                "runAsNonRoot",
                "containers run as the agent's user, root".into(),
            );
        }
        if !self.supplemental_groups.is_empty() {
            return field(
                "supplementalGroups",
                "containers keep the agent's groups".into(),
            );
        }
        if self.fs_group.is_some() {
            return field("fsGroup", "volumes and groups are the agent's".into());
        }
        if self.privileged && uid != 0 {
            return field("privileged", "the agent does not run as root".into());
        }
        if self.no_new_privileges() {
            return field(
                "allowPrivilegeEscalation",
                "false needs no_new_privs, which the process runtime does not set".into(),
            );
        }
        if !self.add_capabilities.is_empty() || !self.drop_capabilities.is_empty() {
            return field(
                "capabilities",
                "containers keep the agent's capabilities".into(),
            );
        }
        if self.read_only_root_filesystem {
            return field(
                "readOnlyRootFilesystem",
                "containers share the host's root filesystem".into(),
            );
        }
        match &self.seccomp {
            Some(Seccomp::RuntimeDefault) => field(
                "seccompProfile",
                "RuntimeDefault (the process runtime applies no seccomp filter)".into(),
            ),
            Some(Seccomp::Localhost(_)) => field(
                "seccompProfile",
                "Localhost (the process runtime applies no seccomp filter)".into(),
            ),
            Some(Seccomp::Unconfined) | None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn effective(pod: serde_json::Value, container: serde_json::Value) -> Security {
        let pod: PodSecurityContext = serde_json::from_value(pod).unwrap();
        let container: SecurityContext = serde_json::from_value(container).unwrap();
        Security::effective(Some(&pod), Some(&container))
    }

    #[test]
    fn container_values_override_the_pods_field_by_field() {
        let s = effective(
            json!({"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": true,
                   "supplementalGroups": [4, 5], "fsGroup": 2000,
                   "seccompProfile": {"type": "Unconfined"}}),
            json!({"runAsUser": 1001, "runAsNonRoot": false, "privileged": false,
                   "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                   "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}),
        );
        assert_eq!(s.run_as_user, Some(1001));
        assert_eq!(s.run_as_group, Some(3000));
        assert!(!s.run_as_non_root);
        assert_eq!(s.extra_groups().collect::<Vec<_>>(), [4, 5, 2000]);
        assert_eq!(s.seccomp, Some(Seccomp::Unconfined));
        assert!(s.no_new_privileges());
        assert!(s.read_only_root_filesystem);
        assert_eq!(s.add_capabilities, ["NET_ADMIN"]);
        assert_eq!(s.drop_capabilities, ["ALL"]);

        let s = effective(
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "a/b.json"}}),
        );
        assert_eq!(s.seccomp, Some(Seccomp::Localhost("a/b.json".into())));
        assert_eq!(Security::effective(None, None), Security::default());
    }

    #[test]
    fn escalation_is_refused_only_when_it_is_explicitly_false() {
        assert!(!effective(json!({}), json!({})).no_new_privileges());
        assert!(
            !effective(json!({}), json!({"allowPrivilegeEscalation": true})).no_new_privileges()
        );
        assert!(
            effective(json!({}), json!({"allowPrivilegeEscalation": false})).no_new_privileges()
        );
    }

    #[test]
    fn the_process_runtime_refuses_each_field_it_cannot_honour_by_name() {
        let cases = [
            (json!({"runAsUser": 1000}), json!({}), "runAsUser"),
            (json!({}), json!({"runAsGroup": 7}), "runAsGroup"),
            (json!({"runAsNonRoot": true}), json!({}), "runAsNonRoot"),
            (
                json!({"supplementalGroups": [5]}),
                json!({}),
                "supplementalGroups",
            ),
            (json!({"fsGroup": 5}), json!({}), "fsGroup"),
            (
                json!({}),
                json!({"allowPrivilegeEscalation": false}),
                "allowPrivilegeEscalation",
            ),
            (
                json!({}),
                json!({"capabilities": {"drop": ["ALL"]}}),
                "capabilities",
            ),
            (
                json!({}),
                json!({"readOnlyRootFilesystem": true}),
                "readOnlyRootFilesystem",
            ),
            (
                json!({"seccompProfile": {"type": "RuntimeDefault"}}),
                json!({}),
                "seccompProfile",
            ),
        ];
        for (pod, container, name) in cases {
            let refusal = effective(pod, container).process_refusal(0, 0);
            let refusal = refusal.unwrap_or_else(|| panic!("{name} was not refused"));
            assert!(
                refusal.starts_with(&format!(
                    "the process runtime cannot honour securityContext.{name}: "
                )),
                "{refusal}"
            );
        }
        // What a root host process is anyway is no reason to refuse.
        let honoured = effective(
            json!({"runAsUser": 0, "runAsGroup": 0, "seccompProfile": {"type": "Unconfined"}}),
            json!({"privileged": true, "allowPrivilegeEscalation": true, "runAsNonRoot": false,
                   "readOnlyRootFilesystem": false}),
        );
        assert_eq!(honoured.process_refusal(0, 0), None);
        assert!(
            honoured
                .process_refusal(1000, 1000)
                .unwrap()
                .contains("runAsUser")
        );
    }
}
