//! Pod Security admission: a new pod is held to the Pod Security Standard its namespace's
//! label `pod-security.kubernetes.io/enforce` names (`baseline` without the label, stricter
//! than Kubernetes' default), with Kubernetes' checks and words.
//!
//! Every check of Kubernetes' `pod-security-admission` that concerns a field Skiff models is
//! here, in its `latest` version; the rest (host ports, PID and IPC namespaces, AppArmor,
//! SELinux, `/proc` mount types, sysctls, Windows host processes) cannot be expressed in a
//! Skiff pod. A refusal reads like Kubernetes':
//!
//! ```text
//! pods "x" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "root")
//! ```
//!
//! The failed checks are listed in Kubernetes' order (baseline checks, then restricted ones,
//! each group sorted by the check's id) and joined by `, `, each as `reason (detail)`.
//! Pure: the callers find the namespace's level (the object API for a client's pod, the
//! deployment controller for the pods it makes).

use std::collections::{BTreeSet, HashMap};

use skiff_api::pod_security::Level;
use skiff_api::types::{Container, Pod, PodSpec};

/// A pod that its namespace's level does not admit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pods {pod:?} is forbidden: violates PodSecurity \"{level}:latest\": {detail}")]
pub struct Forbidden {
    pub pod: String,
    pub level: Level,
    /// The failed checks, `reason (detail)` each, joined by `, `.
    pub detail: String,
}

/// What one check found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    reason: &'static str,
    detail: String,
}

type CheckFn = fn(&PodSpec) -> Option<Violation>;

/// A check as Kubernetes registers it: its id (which orders the messages), its level, and
/// the baseline checks a restricted one replaces.
struct Check {
    id: &'static str,
    level: Level,
    overrides: &'static [&'static str],
    run: CheckFn,
}

const CHECKS: &[Check] = &[
    Check {
        id: "capabilities_baseline",
        level: Level::Baseline,
        overrides: &[],
        run: capabilities_baseline,
    },
    Check {
        id: "hostNamespaces",
        level: Level::Baseline,
        overrides: &[],
        run: host_namespaces,
    },
    Check {
        id: "hostPathVolumes",
        level: Level::Baseline,
        overrides: &[],
        run: host_path_volumes,
    },
    Check {
        id: "privileged",
        level: Level::Baseline,
        overrides: &[],
        run: privileged,
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        overrides: &[],
        run: seccomp_baseline,
    },
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        overrides: &[],
        run: allow_privilege_escalation,
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        overrides: &["capabilities_baseline"],
        run: capabilities_restricted,
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        overrides: &["hostPathVolumes"],
        run: restricted_volumes,
    },
    Check {
        id: "runAsNonRoot",
        level: Level::Restricted,
        overrides: &[],
        run: run_as_non_root,
    },
    Check {
        id: "runAsUser",
        level: Level::Restricted,
        overrides: &[],
        run: run_as_user,
    },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        overrides: &["seccompProfile_baseline"],
        run: seccomp_restricted,
    },
];

/// The checks of `level` in Kubernetes' order: baseline ids sorted, then restricted ids
/// sorted, without the baseline checks a restricted check of the level overrides.
fn checks_of(level: Level) -> Vec<&'static Check> {
    let mut chosen: Vec<&Check> = CHECKS
        .iter()
        .filter(|c| level != Level::Privileged && c.level <= level)
        .collect();
    let overridden: BTreeSet<&str> = chosen.iter().flat_map(|c| c.overrides).copied().collect();
    chosen.retain(|c| !overridden.contains(c.id));
    chosen.sort_by_key(|c| (c.level, c.id));
    chosen
}

/// Whether `level` admits `pod`; the refusal in Kubernetes' words if not.
pub fn enforce(level: Level, pod: &Pod) -> Result<(), Forbidden> {
    let failed: Vec<String> = checks_of(level)
        .into_iter()
        .filter_map(|check| (check.run)(&pod.spec))
        .map(|v| format!("{} ({})", v.reason, v.detail))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Forbidden {
        pod: pod.metadata.name.clone(),
        level,
        detail: failed.join(", "),
    })
}

/// The enforced level of every namespace, as the deployment controller reads them once per
/// pass; a namespace not (yet) seen is unlabelled.
#[derive(Debug, Clone, Default)]
pub struct NamespaceLevels(HashMap<String, Level>);

impl NamespaceLevels {
    pub fn level(&self, namespace: &str) -> Level {
        self.0.get(namespace).copied().unwrap_or(Level::UNLABELLED)
    }
}

impl FromIterator<(String, Level)> for NamespaceLevels {
    fn from_iter<I: IntoIterator<Item = (String, Level)>>(iter: I) -> Self {
        NamespaceLevels(iter.into_iter().collect())
    }
}

// ------------------------------------------------------------------ wording helpers

/// `"a", "b"`.
fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|i| format!("\"{}\"", i.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pluralize(singular: &'static str, plural: &'static str, count: usize) -> &'static str {
    if count == 1 { singular } else { plural }
}

/// `container "a"` / `containers "a", "b"`.
fn containers_named(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// The names of the containers for which `bad` holds.
fn containers_where(spec: &PodSpec, bad: impl Fn(&Container) -> bool) -> Vec<&str> {
    spec.containers
        .iter()
        .filter(|c| bad(c))
        .map(|c| c.name.as_str())
        .collect()
}

fn violation(reason: &'static str, detail: String) -> Option<Violation> {
    Some(Violation { reason, detail })
}

/// The setters (`pod`, `containers "a"`) of a field that some of them set to a bad value,
/// for the checks that word it `pod and container "a" must not set …`.
fn bad_setters(pod_bad: bool, containers: &[&str]) -> Vec<String> {
    let mut setters = Vec::new();
    if pod_bad {
        setters.push("pod".to_string());
    }
    if !containers.is_empty() {
        setters.push(containers_named(containers));
    }
    setters
}

// ------------------------------------------------------------------ baseline

/// Capabilities a baseline pod may add: Docker's defaults without NET_RAW.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(c: &Container) -> &[String] {
    c.security_context
        .as_ref()
        .and_then(|sc| sc.capabilities.as_ref())
        .map_or(&[], |caps| caps.add.as_slice())
}

fn capabilities_baseline(spec: &PodSpec) -> Option<Violation> {
    let extra = |c: &Container| {
        added_capabilities(c)
            .iter()
            .filter(|cap| !BASELINE_CAPABILITIES.contains(&cap.as_str()))
            .cloned()
            .collect::<Vec<_>>()
    };
    let bad = containers_where(spec, |c| !extra(c).is_empty());
    if bad.is_empty() {
        return None;
    }
    let capabilities: BTreeSet<String> = spec.containers.iter().flat_map(extra).collect();
    let capabilities: Vec<_> = capabilities.into_iter().collect();
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&bad),
            join_quote(&capabilities)
        ),
    )
}

fn host_namespaces(spec: &PodSpec) -> Option<Violation> {
    // hostPID and hostIPC are not modelled: a Skiff pod always has its own.
    (spec.host_network == Some(true)).then(|| Violation {
        reason: "host namespaces",
        detail: "hostNetwork=true".into(),
    })
}

/// The names of the pod's hostPath volumes.
fn host_path_volume_names(spec: &PodSpec) -> Vec<&str> {
    spec.volumes
        .iter()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.as_str())
        .collect()
}

fn host_path_volumes(spec: &PodSpec) -> Option<Violation> {
    let volumes = host_path_volume_names(spec);
    if volumes.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", volumes.len()),
            join_quote(&volumes)
        ),
    )
}

fn privileged(spec: &PodSpec) -> Option<Violation> {
    let bad = containers_where(spec, |c| {
        c.security_context.as_ref().and_then(|sc| sc.privileged) == Some(true)
    });
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_named(&bad)
        ),
    )
}

/// Seccomp types a pod may ask for at every level but privileged.
fn confined(profile_type: &str) -> bool {
    matches!(profile_type, "RuntimeDefault" | "Localhost")
}

fn container_seccomp(c: &Container) -> Option<&str> {
    c.security_context
        .as_ref()
        .and_then(|sc| sc.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str())
}

fn pod_seccomp(spec: &PodSpec) -> Option<&str> {
    spec.security_context
        .as_ref()
        .and_then(|sc| sc.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str())
}

/// Explicitly unconfined seccomp, at the pod or in containers: the violation, if any.
fn explicit_seccomp_violation(spec: &PodSpec) -> Option<Violation> {
    let pod_bad = pod_seccomp(spec).is_some_and(|t| !confined(t));
    let containers = containers_where(spec, |c| container_seccomp(c).is_some_and(|t| !confined(t)));
    let setters = bad_setters(pod_bad, &containers);
    if setters.is_empty() {
        return None;
    }
    let values: BTreeSet<&str> = pod_seccomp(spec)
        .into_iter()
        .chain(spec.containers.iter().filter_map(container_seccomp))
        .filter(|t| !confined(t))
        .collect();
    let values: Vec<_> = values.into_iter().collect();
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn seccomp_baseline(spec: &PodSpec) -> Option<Violation> {
    explicit_seccomp_violation(spec)
}

// ------------------------------------------------------------------ restricted

fn allow_privilege_escalation(spec: &PodSpec) -> Option<Violation> {
    let bad = containers_where(spec, |c| {
        c.security_context
            .as_ref()
            .and_then(|sc| sc.allow_privilege_escalation)
            != Some(false)
    });
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_named(&bad)
        ),
    )
}

fn capabilities_restricted(spec: &PodSpec) -> Option<Violation> {
    let dropped_all = |c: &Container| {
        c.security_context
            .as_ref()
            .and_then(|sc| sc.capabilities.as_ref())
            .is_some_and(|caps| caps.drop.iter().any(|d| d == "ALL"))
    };
    let forbidden = |c: &Container| {
        added_capabilities(c)
            .iter()
            .filter(|cap| *cap != "NET_BIND_SERVICE")
            .cloned()
            .collect::<Vec<_>>()
    };
    let missing_drop = containers_where(spec, |c| !dropped_all(c));
    let adding = containers_where(spec, |c| !forbidden(c).is_empty());
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_named(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let capabilities: BTreeSet<String> = spec.containers.iter().flat_map(forbidden).collect();
        let capabilities: Vec<_> = capabilities.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&adding),
            join_quote(&capabilities)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

fn restricted_volumes(spec: &PodSpec) -> Option<Violation> {
    // Of the volume types Skiff models only hostPath is restricted (emptyDir is allowed).
    let volumes = host_path_volume_names(spec);
    if volumes.is_empty() {
        return None;
    }
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} \"hostPath\"",
            pluralize("volume", "volumes", volumes.len()),
            join_quote(&volumes),
            pluralize("uses", "use", volumes.len()),
            "restricted volume type",
        ),
    )
}

fn run_as_non_root(spec: &PodSpec) -> Option<Violation> {
    let pod_value = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.run_as_non_root);
    let container_value = |c: &Container| {
        c.security_context
            .as_ref()
            .and_then(|sc| sc.run_as_non_root)
    };
    let explicit = containers_where(spec, |c| container_value(c) == Some(false));
    let setters = bad_setters(pod_value == Some(false), &explicit);
    if !setters.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    let implicit = containers_where(spec, |c| {
        container_value(c).is_none() && pod_value != Some(true)
    });
    if implicit.is_empty() {
        return None;
    }
    violation(
        "runAsNonRoot != true",
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_named(&implicit)
        ),
    )
}

fn run_as_user(spec: &PodSpec) -> Option<Violation> {
    let pod_root = spec.security_context.as_ref().and_then(|sc| sc.run_as_user) == Some(0);
    let containers = containers_where(spec, |c| {
        c.security_context.as_ref().and_then(|sc| sc.run_as_user) == Some(0)
    });
    let setters = bad_setters(pod_root, &containers);
    if setters.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

fn seccomp_restricted(spec: &PodSpec) -> Option<Violation> {
    if let Some(explicit) = explicit_seccomp_violation(spec) {
        return Some(explicit);
    }
    let pod_set = pod_seccomp(spec).is_some();
    let unset = containers_where(spec, |c| container_seccomp(c).is_none() && !pod_set);
    if unset.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_named(&unset)
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": spec})).unwrap()
    }

    fn container(name: &str, security: Value) -> Value {
        json!({"name": name, "image": "busybox", "securityContext": security})
    }

    /// A pod `restricted` admits: every container locked down.
    fn hardened() -> Value {
        json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container("app", json!({
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}))],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        })
    }

    fn refusal(level: Level, spec: Value) -> String {
        enforce(level, &pod(spec)).unwrap_err().to_string()
    }

    fn detail(level: Level, spec: Value) -> String {
        enforce(level, &pod(spec)).unwrap_err().detail
    }

    #[test]
    fn a_hostpath_volume_is_refused_at_baseline_in_kubernetes_words() {
        let spec = json!({"containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]});
        assert_eq!(
            refusal(Level::Baseline, spec.clone()),
            r#"pods "x" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "root")"#
        );
        let two = json!({"containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "a", "hostPath": {"path": "/a"}}, {"name": "s", "emptyDir": {}},
                        {"name": "b", "hostPath": {"path": "/b"}}]});
        assert_eq!(
            detail(Level::Baseline, two),
            r#"hostPath volumes (volumes "a", "b")"#
        );
    }

    #[test]
    fn host_network_is_refused_as_a_host_namespace() {
        let spec = json!({"hostNetwork": true, "containers": [{"name": "c", "image": "busybox"}]});
        assert_eq!(
            refusal(Level::Baseline, spec),
            r#"pods "x" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)"#
        );
        let off = json!({"hostNetwork": false, "containers": [{"name": "c", "image": "busybox"}]});
        assert!(enforce(Level::Baseline, &pod(off)).is_ok());
    }

    #[test]
    fn privileged_containers_are_named() {
        let spec = json!({"containers": [
            container("a", json!({"privileged": true})),
            container("b", json!({"privileged": false})),
            container("c", json!({"privileged": true}))]});
        assert_eq!(
            detail(Level::Baseline, spec),
            r#"privileged (containers "a", "c" must not set securityContext.privileged=true)"#
        );
    }

    #[test]
    fn capabilities_beyond_the_baseline_set_are_refused_and_listed_once_sorted() {
        let spec = json!({"containers": [
            container("a", json!({"capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]}})),
            container("b", json!({"capabilities": {"add": ["NET_ADMIN"]}})),
            container("c", json!({"capabilities": {"add": ["KILL", "NET_BIND_SERVICE"]}}))]});
        assert_eq!(
            detail(Level::Baseline, spec),
            r#"non-default capabilities (containers "a", "b" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add)"#
        );
        // NET_RAW is in Docker's default set but not in baseline's.
        let raw =
            json!({"containers": [container("a", json!({"capabilities": {"add": ["NET_RAW"]}}))]});
        assert_eq!(
            detail(Level::Baseline, raw),
            r#"non-default capabilities (container "a" must not include "NET_RAW" in securityContext.capabilities.add)"#
        );
    }

    #[test]
    fn unconfined_seccomp_is_refused_where_it_is_set() {
        let spec = json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [container("a", json!({"seccompProfile": {"type": "Unconfined"}})),
                           container("b", json!({"seccompProfile": {"type": "RuntimeDefault"}}))]});
        assert_eq!(
            detail(Level::Baseline, spec),
            r#"seccompProfile (pod and container "a" must not set securityContext.seccompProfile.type to "Unconfined")"#
        );
        let localhost = json!({"containers": [container("a", json!({"seccompProfile":
            {"type": "Localhost", "localhostProfile": "p.json"}}))]});
        assert!(enforce(Level::Baseline, &pod(localhost)).is_ok());
    }

    #[test]
    fn violations_are_listed_in_kubernetes_order_joined_by_commas() {
        let spec = json!({"hostNetwork": true,
            "securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [container("c", json!({"privileged": true, "capabilities": {"add": ["SYS_TIME"]}}))],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]});
        assert_eq!(
            refusal(Level::Baseline, spec),
            concat!(
                r#"pods "x" is forbidden: violates PodSecurity "baseline:latest": "#,
                r#"non-default capabilities (container "c" must not include "SYS_TIME" in securityContext.capabilities.add), "#,
                r#"host namespaces (hostNetwork=true), "#,
                r#"hostPath volumes (volume "root"), "#,
                r#"privileged (container "c" must not set securityContext.privileged=true), "#,
                r#"seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#
            )
        );
    }

    #[test]
    fn privileged_admits_anything_and_baseline_admits_the_default_pod() {
        let anything = json!({"hostNetwork": true,
            "containers": [container("c", json!({"privileged": true, "capabilities": {"add": ["ALL"]},
                "seccompProfile": {"type": "Unconfined"}}))],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]});
        assert!(enforce(Level::Privileged, &pod(anything)).is_ok());
        let plain = json!({"containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "scratch", "emptyDir": {}}]});
        assert!(enforce(Level::Baseline, &pod(plain.clone())).is_ok());
        assert!(enforce(Level::Baseline, &pod(hardened())).is_ok());
        assert!(enforce(Level::Restricted, &pod(hardened())).is_ok());
    }

    #[test]
    fn restricted_refuses_the_default_pod_with_every_missing_setting() {
        let plain = json!({"containers": [{"name": "c", "image": "busybox"}]});
        assert_eq!(
            refusal(Level::Restricted, plain),
            concat!(
                r#"pods "x" is forbidden: violates PodSecurity "restricted:latest": "#,
                r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), "#,
                r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), "#,
                r#"runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), "#,
                r#"seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
            )
        );
    }

    #[test]
    fn restricted_replaces_the_baseline_checks_it_overrides() {
        let mut spec = hardened();
        spec["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
        spec["containers"][0]["securityContext"]["capabilities"]["add"] =
            json!(["SYS_ADMIN", "CHOWN"]);
        assert_eq!(
            detail(Level::Restricted, spec),
            concat!(
                r#"unrestricted capabilities (container "app" must not include "CHOWN", "SYS_ADMIN" in securityContext.capabilities.add), "#,
                r#"restricted volume types (volume "root" uses restricted volume type "hostPath")"#
            )
        );
        let mut two = hardened();
        two["volumes"] = json!([{"name": "a", "hostPath": {"path": "/a"}}, {"name": "b", "hostPath": {"path": "/b"}}]);
        assert_eq!(
            detail(Level::Restricted, two),
            r#"restricted volume types (volumes "a", "b" use restricted volume type "hostPath")"#
        );
    }

    #[test]
    fn restricted_capabilities_want_drop_all_and_at_most_net_bind_service() {
        let spec = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                container("a", json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["NET_RAW"]}})),
                container("b", json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}))]});
        assert_eq!(
            detail(Level::Restricted, spec),
            r#"unrestricted capabilities (container "a" must set securityContext.capabilities.drop=["ALL"]; container "b" must not include "CHOWN" in securityContext.capabilities.add)"#
        );
    }

    #[test]
    fn restricted_escalation_must_be_false_in_every_container() {
        let mut spec = hardened();
        spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
        assert_eq!(
            detail(Level::Restricted, spec),
            r#"allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)"#
        );
    }

    #[test]
    fn restricted_run_as_non_root_may_come_from_the_pod_or_each_container() {
        let mut from_containers = hardened();
        from_containers["securityContext"] = json!({"seccompProfile": {"type": "RuntimeDefault"}});
        from_containers["containers"][0]["securityContext"]["runAsNonRoot"] = json!(true);
        assert!(enforce(Level::Restricted, &pod(from_containers)).is_ok());

        let mut explicit_false = hardened();
        explicit_false["securityContext"]["runAsNonRoot"] = json!(false);
        explicit_false["containers"][0]["securityContext"]["runAsNonRoot"] = json!(false);
        assert_eq!(
            detail(Level::Restricted, explicit_false),
            r#"runAsNonRoot != true (pod and container "app" must not set securityContext.runAsNonRoot=false)"#
        );
    }

    #[test]
    fn restricted_refuses_run_as_user_zero_where_it_is_set() {
        let mut spec = hardened();
        spec["securityContext"]["runAsUser"] = json!(0);
        spec["containers"][0]["securityContext"]["runAsUser"] = json!(0);
        assert_eq!(
            detail(Level::Restricted, spec),
            r#"runAsUser=0 (pod and container "app" must not set runAsUser=0)"#
        );
        let mut baseline_ok = hardened();
        baseline_ok["securityContext"]["runAsUser"] = json!(0);
        assert!(enforce(Level::Baseline, &pod(baseline_ok)).is_ok());
    }

    #[test]
    fn restricted_seccomp_may_come_from_the_pod_or_each_container() {
        let mut per_container = hardened();
        per_container["securityContext"] = json!({"runAsNonRoot": true});
        per_container["containers"][0]["securityContext"]["seccompProfile"] =
            json!({"type": "Localhost", "localhostProfile": "p.json"});
        assert!(enforce(Level::Restricted, &pod(per_container)).is_ok());

        let mut unconfined = hardened();
        unconfined["containers"][0]["securityContext"]["seccompProfile"] =
            json!({"type": "Unconfined"});
        assert_eq!(
            detail(Level::Restricted, unconfined),
            r#"seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined")"#
        );
    }

    #[test]
    fn namespaces_not_seen_are_unlabelled() {
        let levels: NamespaceLevels = [("open".to_string(), Level::Privileged)]
            .into_iter()
            .collect();
        assert_eq!(levels.level("open"), Level::Privileged);
        assert_eq!(levels.level("elsewhere"), Level::Baseline);
    }
}
