//! Validation with Kubernetes' rules and messages; every error carries its field path.

use std::collections::{BTreeMap, BTreeSet};

use crate::meta::ObjectMeta;
use crate::names::{is_dns1123_label, is_dns1123_subdomain, is_label_value, is_qualified_name};
use crate::object::Object;
use crate::pod_security::{ENFORCE_LABEL, Level};
use crate::selector::Selector;
use crate::types::{
    Container, IntOrString, PodSecurityContext, PodSpec, Probe, Quantity, SeccompProfile,
    SecurityContext,
};

/// Total size of all annotation keys and values.
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub errors: Vec<FieldError>,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<String> = self.errors.iter().map(FieldError::to_string).collect();
        f.write_str(&all.join("; "))
    }
}

/// Collects errors as validation walks an object.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn invalid(&mut self, path: impl Into<String>, value: &str, why: impl std::fmt::Display) {
        self.push(path, format!("Invalid value: {value:?}: {why}"));
    }

    fn required(&mut self, path: impl Into<String>, what: &str) {
        self.push(path, format!("Required value: {what}"));
    }

    fn unsupported(&mut self, path: impl Into<String>, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        self.push(
            path,
            format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        );
    }

    fn check(
        &mut self,
        path: impl Into<String>,
        value: &str,
        rule: fn(&str) -> Result<(), String>,
    ) {
        if let Err(why) = rule(value) {
            self.invalid(path, value, why);
        }
    }

    fn finish(self) -> Result<(), ValidationError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { errors: self.0 })
        }
    }
}

fn validate_labels(errors: &mut Errors, path: &str, labels: &BTreeMap<String, String>) {
    for (key, value) in labels {
        errors.check(path, key, is_qualified_name);
        errors.check(format!("{path}.{key}"), value, is_label_value);
    }
}

fn validate_meta(
    errors: &mut Errors,
    meta: &ObjectMeta,
    name_rule: fn(&str) -> Result<(), String>,
    path: &str,
) {
    if meta.name.is_empty() {
        match meta.generate_name.as_deref() {
            Some(prefix) if !prefix.is_empty() => {
                // The generated name appends five characters; the prefix must allow that.
                errors.check(
                    format!("{path}.generateName"),
                    &format!("{prefix}a"),
                    name_rule,
                );
            }
            _ => errors.required(format!("{path}.name"), "name or generateName is required"),
        }
    } else {
        errors.check(format!("{path}.name"), &meta.name, name_rule);
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        errors.check(format!("{path}.namespace"), ns, is_dns1123_label);
    }
    validate_labels(errors, &format!("{path}.labels"), &meta.labels);
    let mut size = 0;
    for (key, value) in &meta.annotations {
        errors.check(format!("{path}.annotations"), key, is_qualified_name);
        size += key.len() + value.len();
    }
    if size > ANNOTATIONS_MAX_BYTES {
        errors.push(
            format!("{path}.annotations"),
            format!("Too long: must have at most {ANNOTATIONS_MAX_BYTES} bytes"),
        );
    }
}

fn validate_quantities(errors: &mut Errors, path: &str, map: &BTreeMap<String, Quantity>) {
    for (name, quantity) in map {
        if let Err(e) = quantity.value() {
            errors.invalid(format!("{path}.{name}"), &quantity.0, e);
        }
    }
}

fn validate_port(errors: &mut Errors, path: &str, port: &IntOrString) {
    match port {
        IntOrString::Int(p) if !(1..=65535).contains(p) => {
            errors.invalid(
                path,
                &p.to_string(),
                "must be between 1 and 65535, inclusive",
            );
        }
        IntOrString::String(name) if name.is_empty() || name.len() > 15 => {
            errors.invalid(
                path,
                name,
                "must be a port number or a port name of at most 15 characters",
            );
        }
        _ => {}
    }
}

fn validate_probe(errors: &mut Errors, path: &str, probe: &Probe) {
    let handlers = [
        probe.exec.is_some(),
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
    ];
    match handlers.iter().filter(|h| **h).count() {
        0 => errors.required(
            path,
            "must specify a handler type (exec, httpGet or tcpSocket)",
        ),
        1 => {}
        _ => errors.push(path, "Forbidden: may not specify more than 1 handler type"),
    }
    if let Some(exec) = &probe.exec
        && exec.command.is_empty()
    {
        errors.required(format!("{path}.exec.command"), "a command is required");
    }
    if let Some(http) = &probe.http_get {
        validate_port(errors, &format!("{path}.httpGet.port"), &http.port);
    }
    if let Some(tcp) = &probe.tcp_socket {
        validate_port(errors, &format!("{path}.tcpSocket.port"), &tcp.port);
    }
    for (field, value, min) in [
        ("initialDelaySeconds", probe.initial_delay_seconds, 0),
        ("periodSeconds", probe.period_seconds, 1),
        ("timeoutSeconds", probe.timeout_seconds, 1),
        ("successThreshold", probe.success_threshold, 1),
        ("failureThreshold", probe.failure_threshold, 1),
    ] {
        if let Some(v) = value.filter(|v| *v < min) {
            errors.invalid(
                format!("{path}.{field}"),
                &v.to_string(),
                format!("must be greater than or equal to {min}"),
            );
        }
    }
}

/// Kubernetes' user and group ids: 0 to 2^31 - 1.
fn validate_id(errors: &mut Errors, path: String, id: Option<i64>) {
    if let Some(id) = id.filter(|id| !(0..=i64::from(i32::MAX)).contains(id)) {
        errors.invalid(
            path,
            &id.to_string(),
            format!("must be between 0 and {}, inclusive", i32::MAX),
        );
    }
}

const SECCOMP_TYPES: [&str; 3] = ["Localhost", "RuntimeDefault", "Unconfined"];

fn validate_seccomp_profile(errors: &mut Errors, path: &str, profile: &SeccompProfile) {
    match profile.type_.as_str() {
        "" => errors.required(
            format!("{path}.type"),
            "type is required when seccompProfile is set",
        ),
        t if !SECCOMP_TYPES.contains(&t) => {
            errors.unsupported(format!("{path}.type"), t, &SECCOMP_TYPES)
        }
        _ => {}
    }
    let field = format!("{path}.localhostProfile");
    match (profile.type_.as_str(), profile.localhost_profile.as_deref()) {
        ("Localhost", None) => errors.required(field, "must be set when seccomp type is Localhost"),
        ("Localhost", Some(file)) => {
            if file.starts_with('/') {
                errors.invalid(&field, file, "must be a relative path");
            }
            if file.split('/').any(|part| part == "..") {
                errors.invalid(&field, file, "must not contain '..'");
            }
        }
        (_, Some(file)) => errors.invalid(
            field,
            file,
            "can only be set when seccomp type is Localhost",
        ),
        (_, None) => {}
    }
}

fn validate_pod_security_context(errors: &mut Errors, path: &str, sc: &PodSecurityContext) {
    validate_id(errors, format!("{path}.runAsUser"), sc.run_as_user);
    validate_id(errors, format!("{path}.runAsGroup"), sc.run_as_group);
    for (i, group) in sc.supplemental_groups.iter().enumerate() {
        validate_id(
            errors,
            format!("{path}.supplementalGroups[{i}]"),
            Some(*group),
        );
    }
    validate_id(errors, format!("{path}.fsGroup"), sc.fs_group);
    if let Some(profile) = &sc.seccomp_profile {
        validate_seccomp_profile(errors, &format!("{path}.seccompProfile"), profile);
    }
}

fn validate_security_context(errors: &mut Errors, path: &str, sc: &SecurityContext) {
    validate_id(errors, format!("{path}.runAsUser"), sc.run_as_user);
    validate_id(errors, format!("{path}.runAsGroup"), sc.run_as_group);
    if let Some(profile) = &sc.seccomp_profile {
        validate_seccomp_profile(errors, &format!("{path}.seccompProfile"), profile);
    }
    if sc.allow_privilege_escalation == Some(false) {
        // No_new_privs is no boundary for a process holding every capability or
        // CAP_SYS_ADMIN; Kubernetes refuses the combination as a contradiction.
        if sc.privileged == Some(true) {
            errors.invalid(
                path,
                "allowPrivilegeEscalation: false, privileged: true",
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        let added = sc.capabilities.iter().flat_map(|c| &c.add);
        // Kubernetes spells only CAP_SYS_ADMIN; SYS_ADMIN (the usual spelling) is the same.
        if added
            .into_iter()
            .any(|c| matches!(c.as_str(), "CAP_SYS_ADMIN" | "SYS_ADMIN"))
        {
            errors.invalid(
                path,
                "allowPrivilegeEscalation: false, capabilities.Add: CAP_SYS_ADMIN",
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            );
        }
    }
}

fn validate_container(errors: &mut Errors, path: &str, c: &Container, volumes: &BTreeSet<&str>) {
    errors.check(format!("{path}.name"), &c.name, is_dns1123_label);
    if c.image.trim().is_empty() {
        errors.required(format!("{path}.image"), "an image is required");
    }
    if let Some(policy) = &c.image_pull_policy
        && !["Always", "IfNotPresent", "Never"].contains(&policy.as_str())
    {
        errors.unsupported(
            format!("{path}.imagePullPolicy"),
            policy,
            &["Always", "IfNotPresent", "Never"],
        );
    }
    for (i, env) in c.env.iter().enumerate() {
        if env.name.is_empty() || env.name.contains('=') {
            errors.invalid(
                format!("{path}.env[{i}].name"),
                &env.name,
                "a valid environment variable name must not be empty or contain '='",
            );
        }
    }
    for (i, port) in c.ports.iter().enumerate() {
        let p = format!("{path}.ports[{i}]");
        validate_port(
            errors,
            &format!("{p}.containerPort"),
            &IntOrString::Int(port.container_port),
        );
        if let Some(protocol) = &port.protocol
            && !["TCP", "UDP", "SCTP"].contains(&protocol.as_str())
        {
            errors.unsupported(format!("{p}.protocol"), protocol, &["TCP", "UDP", "SCTP"]);
        }
    }
    for (i, mount) in c.volume_mounts.iter().enumerate() {
        let p = format!("{path}.volumeMounts[{i}]");
        if !volumes.contains(mount.name.as_str()) {
            errors.push(format!("{p}.name"), format!("Not found: {:?}", mount.name));
        }
        if !mount.mount_path.starts_with('/') {
            errors.invalid(
                format!("{p}.mountPath"),
                &mount.mount_path,
                "must be an absolute path",
            );
        }
    }
    if let Some(resources) = &c.resources {
        let p = format!("{path}.resources");
        validate_quantities(errors, &format!("{p}.requests"), &resources.requests);
        validate_quantities(errors, &format!("{p}.limits"), &resources.limits);
        for (name, request) in &resources.requests {
            if let Some(limit) = resources.limits.get(name)
                && request.compare(limit) == Ok(std::cmp::Ordering::Greater)
            {
                errors.invalid(
                    format!("{p}.requests.{name}"),
                    &request.0,
                    format!("must be less than or equal to {name} limit of {limit}"),
                );
            }
        }
    }
    if let Some(probe) = &c.liveness_probe {
        validate_probe(errors, &format!("{path}.livenessProbe"), probe);
    }
    if let Some(probe) = &c.readiness_probe {
        validate_probe(errors, &format!("{path}.readinessProbe"), probe);
    }
    if let Some(sc) = &c.security_context {
        validate_security_context(errors, &format!("{path}.securityContext"), sc);
    }
}

fn validate_pod_spec(errors: &mut Errors, path: &str, spec: &PodSpec, allowed_restart: &[&str]) {
    let mut volume_names = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().enumerate() {
        let p = format!("{path}.volumes[{i}]");
        errors.check(format!("{p}.name"), &volume.name, is_dns1123_label);
        if !volume_names.insert(volume.name.as_str()) {
            errors.push(
                format!("{p}.name"),
                format!("Duplicate value: {:?}", volume.name),
            );
        }
        match (&volume.empty_dir, &volume.host_path) {
            (None, None) => {
                errors.required(&p, "must specify a volume type (emptyDir or hostPath)")
            }
            (Some(_), Some(_)) => {
                errors.push(&p, "Forbidden: may not specify more than 1 volume type")
            }
            (_, Some(host)) if !host.path.starts_with('/') => {
                errors.invalid(
                    format!("{p}.hostPath.path"),
                    &host.path,
                    "must be an absolute path",
                );
            }
            (Some(dir), _) => {
                if let Some(limit) = &dir.size_limit
                    && let Err(e) = limit.value()
                {
                    errors.invalid(format!("{p}.emptyDir.sizeLimit"), &limit.0, e);
                }
            }
            _ => {}
        }
    }
    if spec.containers.is_empty() {
        errors.required(
            format!("{path}.containers"),
            "a pod needs at least one container",
        );
    }
    let mut container_names = BTreeSet::new();
    for (i, container) in spec.containers.iter().enumerate() {
        let p = format!("{path}.containers[{i}]");
        validate_container(errors, &p, container, &volume_names);
        if !container_names.insert(container.name.as_str()) {
            errors.push(
                format!("{p}.name"),
                format!("Duplicate value: {:?}", container.name),
            );
        }
    }
    if let Some(policy) = &spec.restart_policy
        && !allowed_restart.contains(&policy.as_str())
    {
        errors.unsupported(format!("{path}.restartPolicy"), policy, allowed_restart);
    }
    // "None" needs a dnsConfig, which Skiff does not have.
    const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default"];
    if let Some(policy) = &spec.dns_policy
        && !DNS_POLICIES.contains(&policy.as_str())
    {
        errors.unsupported(format!("{path}.dnsPolicy"), policy, DNS_POLICIES);
    }
    if let Some(grace) = spec.termination_grace_period_seconds.filter(|g| *g < 0) {
        errors.invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            &grace.to_string(),
            "must be greater than or equal to 0",
        );
    }
    validate_labels(errors, &format!("{path}.nodeSelector"), &spec.node_selector);
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        errors.check(format!("{path}.nodeName"), node, is_dns1123_subdomain);
    }
    if let Some(hostname) = &spec.hostname {
        errors.check(format!("{path}.hostname"), hostname, is_dns1123_label);
    }
    if let Some(scheduler) = &spec.scheduler_name {
        errors.check(
            format!("{path}.schedulerName"),
            scheduler,
            is_dns1123_subdomain,
        );
    }
    if let Some(sc) = &spec.security_context {
        validate_pod_security_context(errors, &format!("{path}.securityContext"), sc);
    }
}

/// A namespace's Pod Security label must name a level (Kubernetes' Pod Security admission
/// refuses other values on the namespace).
fn validate_pod_security_label(errors: &mut Errors, labels: &BTreeMap<String, String>) {
    if let Some(value) = labels.get(ENFORCE_LABEL)
        && let Err(e) = Level::parse(value)
    {
        errors.invalid(format!("metadata.labels[{ENFORCE_LABEL}]"), value, e);
    }
}

/// The Pod Security label among a namespace's `labels` (also checked where labels are
/// patched, which does not validate the whole object).
pub fn validate_namespace_labels(labels: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    let mut errors = Errors::default();
    validate_pod_security_label(&mut errors, labels);
    errors.finish()
}

fn validate_int_or_percent(errors: &mut Errors, path: &str, value: &IntOrString) -> Option<i64> {
    match value {
        IntOrString::Int(n) if *n >= 0 => Some(i64::from(*n)),
        IntOrString::Int(n) => {
            errors.invalid(path, &n.to_string(), "must be greater than or equal to 0");
            None
        }
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
            Some(p) if (0..=100).contains(&p) => Some(p),
            Some(_) => {
                errors.invalid(path, s, "must not be greater than 100%");
                None
            }
            None => {
                errors.invalid(path, s, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')");
                None
            }
        },
    }
}

/// Create-time validation of any object.
pub fn validate(object: &Object) -> Result<(), ValidationError> {
    let mut errors = Errors::default();
    match object {
        Object::Namespace(ns) => {
            validate_meta(&mut errors, &ns.metadata, is_dns1123_label, "metadata");
            validate_pod_security_label(&mut errors, &ns.metadata.labels);
        }
        Object::Node(node) => {
            validate_meta(
                &mut errors,
                &node.metadata,
                is_dns1123_subdomain,
                "metadata",
            );
            for (i, taint) in node.spec.iter().flat_map(|s| &s.taints).enumerate() {
                let effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
                if !effects.contains(&taint.effect.as_str()) {
                    errors.unsupported(format!("spec.taints[{i}].effect"), &taint.effect, &effects);
                }
            }
        }
        Object::Event(event) => {
            validate_meta(
                &mut errors,
                &event.metadata,
                is_dns1123_subdomain,
                "metadata",
            );
            if let Some(t) = &event.type_
                && !["Normal", "Warning"].contains(&t.as_str())
            {
                errors.unsupported("type", t, &["Normal", "Warning"]);
            }
        }
        Object::Pod(pod) => {
            validate_meta(&mut errors, &pod.metadata, is_dns1123_subdomain, "metadata");
            validate_pod_spec(
                &mut errors,
                "spec",
                &pod.spec,
                &["Always", "OnFailure", "Never"],
            );
        }
        Object::Deployment(d) => {
            validate_meta(&mut errors, &d.metadata, is_dns1123_subdomain, "metadata");
            if let Some(r) = d.spec.replicas.filter(|r| *r < 0) {
                errors.invalid(
                    "spec.replicas",
                    &r.to_string(),
                    "must be greater than or equal to 0",
                );
            }
            validate_labels(
                &mut errors,
                "spec.template.metadata.labels",
                &d.spec.template.metadata.labels,
            );
            validate_pod_spec(
                &mut errors,
                "spec.template.spec",
                &d.spec.template.spec,
                &["Always"],
            );
            if d.spec.selector.is_empty() {
                errors.required("spec.selector", "a deployment needs a non-empty selector");
            } else {
                match Selector::from_label_selector(&d.spec.selector) {
                    Err(e) => errors.invalid(
                        "spec.selector",
                        &format!("{:?}", d.spec.selector),
                        e.message,
                    ),
                    Ok(s) if !s.matches(&d.spec.template.metadata.labels) => errors.invalid(
                        "spec.template.metadata.labels",
                        &format!("{:?}", d.spec.template.metadata.labels),
                        "`selector` does not match template `labels`",
                    ),
                    Ok(_) => {}
                }
            }
            if let Some(strategy) = &d.spec.strategy {
                let kinds = ["RollingUpdate", "Recreate"];
                let kind = strategy.type_.as_deref().unwrap_or("RollingUpdate");
                if !kinds.contains(&kind) {
                    errors.unsupported("spec.strategy.type", kind, &kinds);
                }
                if let Some(rolling) = &strategy.rolling_update {
                    if kind == "Recreate" {
                        errors.push(
                            "spec.strategy.rollingUpdate",
                            "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                        );
                    }
                    let path = "spec.strategy.rollingUpdate";
                    let surge = rolling.max_surge.as_ref().and_then(|v| {
                        validate_int_or_percent(&mut errors, &format!("{path}.maxSurge"), v)
                    });
                    let unavailable = rolling.max_unavailable.as_ref().and_then(|v| {
                        validate_int_or_percent(&mut errors, &format!("{path}.maxUnavailable"), v)
                    });
                    if surge == Some(0) && unavailable == Some(0) {
                        errors.invalid(
                            format!("{path}.maxUnavailable"),
                            "0",
                            "may not be 0 when `maxSurge` is 0",
                        );
                    }
                }
            }
        }
    }
    errors.finish()
}

/// Update-time validation: the new object is valid, and nothing immutable changed.
pub fn validate_update(old: &Object, new: &Object) -> Result<(), ValidationError> {
    let mut errors = match validate(new) {
        Ok(()) => Errors::default(),
        Err(e) => Errors(e.errors),
    };
    if old.kind() != new.kind() {
        errors.push("kind", "Invalid value: field is immutable");
    }
    let (old_meta, new_meta) = (old.metadata(), new.metadata());
    if old_meta.name != new_meta.name {
        errors.invalid("metadata.name", &new_meta.name, "field is immutable");
    }
    // An update that leaves namespace or uid out means "unchanged": clients replace objects
    // they built themselves, and the server fills these in from the stored object.
    if let Some(namespace) = new_meta.namespace.as_deref().filter(|ns| !ns.is_empty())
        && old_meta.namespace.as_deref().unwrap_or_default() != namespace
    {
        errors.invalid("metadata.namespace", namespace, "field is immutable");
    }
    if let Some(uid) = new_meta.uid.as_deref().filter(|uid| !uid.is_empty())
        && old_meta.uid.as_deref() != Some(uid)
    {
        errors.invalid("metadata.uid", uid, "field is immutable");
    }
    match (old, new) {
        (Object::Pod(old), Object::Pod(new)) => {
            // Only images may change, and an unbound pod may be bound to a node once.
            let mut comparable = new.spec.clone();
            for (c, o) in comparable.containers.iter_mut().zip(&old.spec.containers) {
                c.image = o.image.clone();
            }
            if old.spec.node_name.is_none() {
                comparable.node_name = None;
            }
            if comparable != old.spec {
                errors.push(
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image` (and `spec.nodeName` of an unscheduled pod)",
                );
            }
        }
        (Object::Deployment(old), Object::Deployment(new))
            if old.spec.selector != new.spec.selector =>
        {
            errors.invalid(
                "spec.selector",
                &format!("{:?}", new.spec.selector),
                "field is immutable",
            );
        }
        _ => {}
    }
    errors.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::names::SUBDOMAIN_MSG;

    use super::*;

    #[test]
    fn names_labels_and_keys_follow_kubernetes_rules() {
        let long_label = "a".repeat(64);
        let max_label = "a".repeat(63);
        let long_subdomain = format!("{}.{}", "a".repeat(63), "b".repeat(190));
        let labels = [
            ("a", true),
            ("abc-123", true),
            ("1abc", true),
            (max_label.as_str(), true),
            ("", false),
            ("A", false),
            ("-a", false),
            ("a-", false),
            ("a.b", false),
            ("a_b", false),
            (long_label.as_str(), false),
        ];
        for (name, ok) in labels {
            assert_eq!(is_dns1123_label(name).is_ok(), ok, "label {name:?}");
        }
        let subdomains = [
            ("example.com", true),
            ("a.b-c.d", true),
            ("web-0", true),
            ("Example.com", false),
            ("a..b", false),
            (".a", false),
            ("a.", false),
            ("a_b", false),
            (long_subdomain.as_str(), false),
        ];
        for (name, ok) in subdomains {
            assert_eq!(is_dns1123_subdomain(name).is_ok(), ok, "subdomain {name:?}");
        }
    }

    #[test]
    fn label_keys_and_values_table() {
        let long_name = "a".repeat(64);
        let keys = [
            ("app", true),
            ("App_Name.v1", true),
            ("example.com/app", true),
            ("kubernetes.io/os", true),
            ("", false),
            ("/app", false),
            ("example.com/", false),
            ("Example.com/app", false),
            ("a/b/c", false),
            ("-app", false),
            ("app-", false),
            (long_name.as_str(), false),
            ("app name", false),
        ];
        for (key, ok) in keys {
            assert_eq!(is_qualified_name(key).is_ok(), ok, "key {key:?}");
        }
        let values = [
            ("", true),
            ("prod", true),
            ("v1.2_3-x", true),
            ("A", true),
            ("-prod", false),
            ("prod.", false),
            ("a b", false),
            ("a/b", false),
            (long_name.as_str(), false),
        ];
        for (value, ok) in values {
            assert_eq!(is_label_value(value).is_ok(), ok, "value {value:?}");
        }
    }

    fn object(value: serde_json::Value) -> Object {
        Object::from_value(None, value).unwrap()
    }

    fn errors_of(value: serde_json::Value) -> Vec<String> {
        match validate(&object(value)) {
            Ok(()) => vec![],
            Err(e) => e.errors.iter().map(|f| f.path.clone()).collect(),
        }
    }

    #[test]
    fn pod_rules_carry_field_paths() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name", "labels": {"-x": "ok"}},
            "spec": {"restartPolicy": "Sometimes", "containers": [
                {"name": "web", "image": "busybox", "ports": [{"containerPort": 70000}],
                 "volumeMounts": [{"name": "missing", "mountPath": "relative"}],
                 "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
                {"name": "web", "image": ""}]}});
        let paths = errors_of(pod);
        for expected in [
            "metadata.name",
            "metadata.labels",
            "spec.restartPolicy",
            "spec.containers[0].ports[0].containerPort",
            "spec.containers[0].volumeMounts[0].name",
            "spec.containers[0].volumeMounts[0].mountPath",
            "spec.containers[0].resources.requests.cpu",
            "spec.containers[1].name",
            "spec.containers[1].image",
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "missing {expected} in {paths:?}"
            );
        }
        let empty = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}});
        assert_eq!(errors_of(empty), vec!["spec.containers"]);
    }

    #[test]
    fn duplicate_container_message() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "a", "image": "i"}]}});
        let err = validate(&object(pod)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.containers[1].name: Duplicate value: \"a\""
        );
    }

    #[test]
    fn annotations_over_256_kib_are_refused_naming_the_limit() {
        let big = "x".repeat(ANNOTATIONS_MAX_BYTES);
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "annotations": {"k": big}}});
        let err = validate(&object(ns)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "metadata.annotations: Too long: must have at most 262144 bytes"
        );
        let ok = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "annotations": {"k": "x".repeat(1000)}}});
        assert!(validate(&object(ok)).is_ok());
    }

    #[test]
    fn namespace_names_are_labels() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}});
        assert_eq!(errors_of(ns), vec!["metadata.name"]);
        let unnamed = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert_eq!(errors_of(unnamed), vec!["metadata.name"]);
        let generated = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert!(errors_of(generated).is_empty());
    }

    fn deployment(selector: serde_json::Value, labels: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 2, "selector": selector, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn deployment_selector_must_match_template() {
        assert!(
            errors_of(deployment(
                json!({"matchLabels": {"app": "a"}}),
                json!({"app": "a", "x": "y"})
            ))
            .is_empty()
        );
        let err = validate(&object(deployment(
            json!({"matchLabels": {"app": "a"}}),
            json!({"app": "b"}),
        )))
        .unwrap_err();
        assert_eq!(err.errors[0].path, "spec.template.metadata.labels");
        assert!(
            err.to_string()
                .contains("`selector` does not match template `labels`")
        );
        assert_eq!(
            errors_of(deployment(json!({}), json!({"app": "a"}))),
            vec!["spec.selector"]
        );
        let mut never = deployment(json!({"matchLabels": {"app": "a"}}), json!({"app": "a"}));
        never["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(errors_of(never), vec!["spec.template.spec.restartPolicy"]);
        let mut zero = deployment(json!({"matchLabels": {"app": "a"}}), json!({"app": "a"}));
        zero["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
        assert_eq!(
            errors_of(zero),
            vec!["spec.strategy.rollingUpdate.maxUnavailable"]
        );
    }

    #[test]
    fn pod_spec_is_immutable() {
        let old = object(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1", "command": ["sleep", "1"]}]}}),
        );
        let mut relabelled = old.clone();
        relabelled
            .metadata_mut()
            .labels
            .insert("a".into(), "2".into());
        assert!(validate_update(&old, &relabelled).is_ok());
        let Object::Pod(mut pod) = old.clone() else {
            unreachable!()
        };
        pod.spec.containers[0].image = "busybox:2".into();
        pod.spec.node_name = Some("node-1".into());
        assert!(
            validate_update(&old, &Object::Pod(pod.clone())).is_ok(),
            "image change and first binding"
        );
        pod.spec.containers[0].command = vec!["true".into()];
        let err = validate_update(&old, &Object::Pod(pod)).unwrap_err();
        assert_eq!(err.errors[0].path, "spec");
    }

    fn push(array: &mut serde_json::Value, item: serde_json::Value) {
        array.as_array_mut().expect("an array").push(item);
    }

    fn valid_pod() -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {
                "volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [{"name": "web", "image": "nginx:1.27",
                    "ports": [{"containerPort": 80}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "0.5"}},
                    "livenessProbe": {"httpGet": {"port": 80}}}]}})
    }

    #[test]
    fn each_pod_rule_reports_its_path() {
        assert!(
            errors_of(valid_pod()).is_empty(),
            "{:?}",
            errors_of(valid_pod())
        );
        type Mutation = fn(&mut serde_json::Value);
        let table: [(Mutation, &str, &str); 18] = [
            (
                |p| p["metadata"]["namespace"] = json!("Team_A"),
                "metadata.namespace",
                "Invalid value: \"Team_A\": a lowercase RFC 1123 label",
            ),
            (
                |p| p["metadata"]["annotations"] = json!({"bad key": "v"}),
                "metadata.annotations",
                "Invalid value: \"bad key\"",
            ),
            (
                |p| p["metadata"]["labels"] = json!({"app": "bad value"}),
                "metadata.labels.app",
                "Invalid value: \"bad value\"",
            ),
            (
                |p| p["metadata"]["name"] = json!("x".repeat(254)),
                "metadata.name",
                "must be no more than 253 characters",
            ),
            (
                |p| p["spec"]["volumes"][0] = json!({"name": "data"}),
                "spec.volumes[0]",
                "Required value: must specify a volume type",
            ),
            (
                |p| p["spec"]["volumes"][0]["hostPath"] = json!({"path": "/x"}),
                "spec.volumes[0]",
                "Forbidden: may not specify more than 1 volume type",
            ),
            (
                |p| {
                    push(
                        &mut p["spec"]["volumes"],
                        json!({"name": "data", "emptyDir": {}}),
                    )
                },
                "spec.volumes[1].name",
                "Duplicate value: \"data\"",
            ),
            (
                |p| {
                    p["spec"]["volumes"][0]["name"] = json!("Data");
                    p["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("Data");
                },
                "spec.volumes[0].name",
                "Invalid value: \"Data\"",
            ),
            (
                |p| p["spec"]["terminationGracePeriodSeconds"] = json!(-1),
                "spec.terminationGracePeriodSeconds",
                "must be greater than or equal to 0",
            ),
            (
                |p| p["spec"]["nodeSelector"] = json!({"gpu/": "true"}),
                "spec.nodeSelector",
                "name part must be non-empty",
            ),
            (
                |p| p["spec"]["containers"][0]["name"] = json!("web.1"),
                "spec.containers[0].name",
                "a lowercase RFC 1123 label",
            ),
            (
                |p| p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(0),
                "spec.containers[0].ports[0].containerPort",
                "must be between 1 and 65535, inclusive",
            ),
            (
                |p| p["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("499m"),
                "spec.containers[0].resources.requests.cpu",
                "must be less than or equal to cpu limit of 499m",
            ),
            (
                |p| p["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("lots"),
                "spec.containers[0].resources.limits.memory",
                "quantities must match the regular expression",
            ),
            (
                |p| {
                    p["spec"]["containers"][0]["livenessProbe"]["exec"] =
                        json!({"command": ["true"]})
                },
                "spec.containers[0].livenessProbe",
                "Forbidden: may not specify more than 1 handler type",
            ),
            (
                |p| p["spec"]["containers"][0]["readinessProbe"] = json!({"periodSeconds": 3}),
                "spec.containers[0].readinessProbe",
                "Required value: must specify a handler type",
            ),
            (
                |p| p["spec"]["containers"][0]["imagePullPolicy"] = json!("Sometimes"),
                "spec.containers[0].imagePullPolicy",
                "Unsupported value: \"Sometimes\"",
            ),
            (
                |p| p["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!("data"),
                "spec.containers[0].volumeMounts[0].mountPath",
                "must be an absolute path",
            ),
        ];
        for (mutate, path, message) in table {
            let mut pod = valid_pod();
            mutate(&mut pod);
            let err = validate(&object(pod)).expect_err(path);
            assert_eq!(err.errors.len(), 1, "{path}: {err}");
            assert_eq!(err.errors[0].path, path, "{err}");
            assert!(err.errors[0].message.contains(message), "{path}: {err}");
        }
    }

    #[test]
    fn messages_read_like_kubernetes() {
        let mut pod = valid_pod();
        pod["metadata"]["name"] = json!("Foo_Bar");
        push(
            &mut pod["spec"]["containers"],
            json!({"name": "web", "image": "busybox"}),
        );
        let err = validate(&object(pod)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "metadata.name: Invalid value: \"Foo_Bar\": {SUBDOMAIN_MSG}; spec.containers[1].name: Duplicate value: \"web\""
            )
        );
        let generated = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "Web-"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert_eq!(errors_of(generated), vec!["metadata.generateName"]);
        let nameless = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}});
        let err = validate(&object(nameless)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
    }

    #[test]
    fn security_context_rules_carry_their_paths_and_kubernetes_messages() {
        let mut pod = valid_pod();
        pod["spec"]["securityContext"] = json!({"runAsUser": 1000, "runAsGroup": 1000,
            "runAsNonRoot": true, "supplementalGroups": [5, 6], "fsGroup": 2000,
            "seccompProfile": {"type": "RuntimeDefault"}});
        pod["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 0,
            "privileged": false, "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}});
        assert!(errors_of(pod.clone()).is_empty(), "{:?}", errors_of(pod));

        type Mutation = fn(&mut serde_json::Value);
        let table: [(Mutation, &str); 12] = [
            (
                |p| p["spec"]["securityContext"] = json!({"runAsUser": -1}),
                "spec.securityContext.runAsUser: Invalid value: \"-1\": must be between 0 and 2147483647, inclusive",
            ),
            (
                |p| p["spec"]["securityContext"] = json!({"runAsGroup": 2147483648_i64}),
                "spec.securityContext.runAsGroup: Invalid value: \"2147483648\": must be between 0 and 2147483647, inclusive",
            ),
            (
                |p| p["spec"]["securityContext"] = json!({"supplementalGroups": [1, -5]}),
                "spec.securityContext.supplementalGroups[1]: Invalid value: \"-5\": must be between 0 and 2147483647, inclusive",
            ),
            (
                |p| p["spec"]["securityContext"] = json!({"fsGroup": -2}),
                "spec.securityContext.fsGroup: Invalid value: \"-2\": must be between 0 and 2147483647, inclusive",
            ),
            (
                |p| p["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": -1}),
                "spec.containers[0].securityContext.runAsUser: Invalid value: \"-1\": must be between 0 and 2147483647, inclusive",
            ),
            (
                |p| {
                    p["spec"]["containers"][0]["securityContext"] =
                        json!({"privileged": true, "allowPrivilegeEscalation": false})
                },
                "spec.containers[0].securityContext: Invalid value: \"allowPrivilegeEscalation: false, privileged: true\": cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ),
            (
                |p| {
                    p["spec"]["containers"][0]["securityContext"] = json!({
                        "capabilities": {"add": ["SYS_ADMIN"]}, "allowPrivilegeEscalation": false})
                },
                "spec.containers[0].securityContext: Invalid value: \"allowPrivilegeEscalation: false, capabilities.Add: CAP_SYS_ADMIN\": cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ),
            (
                |p| p["spec"]["securityContext"] = json!({"seccompProfile": {"type": "Default"}}),
                "spec.securityContext.seccompProfile.type: Unsupported value: \"Default\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"",
            ),
            (
                |p| p["spec"]["securityContext"] = json!({"seccompProfile": {}}),
                "spec.securityContext.seccompProfile.type: Required value: type is required when seccompProfile is set",
            ),
            (
                |p| {
                    p["spec"]["containers"][0]["securityContext"] =
                        json!({"seccompProfile": {"type": "Localhost"}})
                },
                "spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
            ),
            (
                |p| {
                    p["spec"]["containers"][0]["securityContext"] = json!({"seccompProfile":
                        {"type": "Localhost", "localhostProfile": "../../etc/profile.json"}})
                },
                "spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: \"../../etc/profile.json\": must not contain '..'",
            ),
            (
                |p| {
                    p["spec"]["securityContext"] = json!({"seccompProfile":
                        {"type": "RuntimeDefault", "localhostProfile": "p.json"}})
                },
                "spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"p.json\": can only be set when seccomp type is Localhost",
            ),
        ];
        for (mutate, message) in table {
            let mut pod = valid_pod();
            mutate(&mut pod);
            let err = validate(&object(pod)).expect_err(message);
            assert_eq!(err.to_string(), message);
        }
        let mut absolute = valid_pod();
        absolute["spec"]["securityContext"] =
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "/etc/p.json"}});
        assert_eq!(
            validate(&object(absolute)).unwrap_err().to_string(),
            "spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"/etc/p.json\": must be a relative path"
        );
    }

    #[test]
    fn security_context_fields_are_kubernetes_names_and_unknown_ones_are_refused() {
        let mut pod = valid_pod();
        pod["spec"]["containers"][0]["securityContext"] =
            json!({"runAsUser": 1000, "runAsRoot": false});
        let err = Object::from_value(None, pod).unwrap_err().to_string();
        assert!(err.contains("runAsRoot"), "{err}");
        let mut pod = valid_pod();
        pod["spec"]["securityContext"] = json!({"privileged": true});
        let err = Object::from_value(None, pod).unwrap_err().to_string();
        assert!(err.contains("privileged"), "{err}");
    }

    #[test]
    fn a_namespace_pod_security_label_must_name_a_level() {
        let ns = |value: &str| {
            object(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "team", "labels": {ENFORCE_LABEL: value}}}))
        };
        for level in ["privileged", "baseline", "restricted"] {
            assert!(validate(&ns(level)).is_ok(), "{level}");
        }
        let expected = "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted";
        assert_eq!(validate(&ns("strict")).unwrap_err().to_string(), expected);
        let labels = BTreeMap::from([(ENFORCE_LABEL.to_string(), "strict".to_string())]);
        assert_eq!(
            validate_namespace_labels(&labels).unwrap_err().to_string(),
            expected
        );
        assert!(validate_namespace_labels(&BTreeMap::new()).is_ok());
    }

    #[test]
    fn annotation_limit_counts_keys_and_values() {
        let at_limit = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n",
            "annotations": {"k": "x".repeat(ANNOTATIONS_MAX_BYTES - 1)}}});
        assert!(validate(&object(at_limit)).is_ok());
        let over = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n",
            "annotations": {"k": "x".repeat(ANNOTATIONS_MAX_BYTES - 1), "l": ""}}});
        assert_eq!(errors_of(over), vec!["metadata.annotations"]);
    }

    #[test]
    fn invalid_deployment_fields_are_refused_with_their_paths() {
        let base = || deployment(json!({"matchLabels": {"app": "a"}}), json!({"app": "a"}));
        type Mutation = fn(&mut serde_json::Value);
        let table: [(Mutation, &str); 7] = [
            (|d| d["spec"]["replicas"] = json!(-1), "spec.replicas"),
            (
                |d| d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": "25"}}),
                "spec.strategy.rollingUpdate.maxSurge",
            ),
            (
                |d| d["spec"]["strategy"] = json!({"rollingUpdate": {"maxUnavailable": "150%"}}),
                "spec.strategy.rollingUpdate.maxUnavailable",
            ),
            (
                |d| d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}}),
                "spec.strategy.rollingUpdate",
            ),
            (
                |d| d["spec"]["strategy"] = json!({"type": "BlueGreen"}),
                "spec.strategy.type",
            ),
            (
                |d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(""),
                "spec.template.spec.containers[0].image",
            ),
            (
                |d| {
                    d["spec"]["selector"] = json!({"matchExpressions": [
                        {"key": "app", "operator": "In", "values": []}]})
                },
                "spec.selector",
            ),
        ];
        for (mutate, path) in table {
            let mut d = base();
            mutate(&mut d);
            assert_eq!(errors_of(d), vec![path]);
        }
        let mut expressions = base();
        expressions["spec"]["selector"] = json!({"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["a", "b"]},
            {"key": "legacy", "operator": "DoesNotExist"}]});
        assert!(errors_of(expressions).is_empty());
        let mut excluded = base();
        excluded["spec"]["selector"] = json!({"matchLabels": {"app": "a"},
            "matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]});
        assert_eq!(errors_of(excluded), vec!["spec.template.metadata.labels"]);
        // Defaults applied by the server never make a valid deployment invalid.
        let mut defaulted = object(base());
        defaulted.apply_defaults();
        assert!(validate(&defaulted).is_ok());
    }

    #[test]
    fn identity_is_immutable_for_every_kind() {
        let old = object(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "uid": "u-1"}}));
        let mut renamed = old.clone();
        renamed.metadata_mut().name = "n2".into();
        assert_eq!(
            validate_update(&old, &renamed).unwrap_err().errors[0].path,
            "metadata.name"
        );
        let mut new_uid = old.clone();
        new_uid.metadata_mut().uid = Some("u-2".into());
        assert_eq!(
            validate_update(&old, &new_uid).unwrap_err().errors[0].path,
            "metadata.uid"
        );
        // Leaving the uid out of an update keeps the stored one.
        let mut no_uid = old.clone();
        no_uid.metadata_mut().uid = None;
        assert!(validate_update(&old, &no_uid).is_ok());

        let pod = object(valid_pod());
        let mut moved = pod.clone();
        moved.metadata_mut().namespace = Some("team-b".into());
        let err = validate_update(&pod, &moved).unwrap_err();
        assert_eq!(err.errors[0].path, "metadata.namespace");
        assert!(err.to_string().contains("field is immutable"), "{err}");
        let mut status_change = pod.clone();
        status_change.as_pod_mut().unwrap().status = Some(Default::default());
        status_change
            .metadata_mut()
            .annotations
            .insert("note".into(), "x".into());
        assert!(validate_update(&pod, &status_change).is_ok());
    }

    #[test]
    fn deployment_selector_is_immutable_but_scale_is_not() {
        let old = object(deployment(
            json!({"matchLabels": {"app": "a"}}),
            json!({"app": "a"}),
        ));
        let mut scaled = old.clone();
        let d = scaled.as_deployment_mut().unwrap();
        d.spec.replicas = Some(10);
        d.spec.template.spec.containers[0].image = "i:2".into();
        assert!(validate_update(&old, &scaled).is_ok());
        let mut reselected = scaled.clone();
        let d = reselected.as_deployment_mut().unwrap();
        d.spec
            .selector
            .match_labels
            .insert("tier".into(), "web".into());
        d.spec
            .template
            .metadata
            .labels
            .insert("tier".into(), "web".into());
        let err = validate_update(&old, &reselected).unwrap_err();
        assert_eq!(err.errors.len(), 1, "{err}");
        assert_eq!(err.errors[0].path, "spec.selector");
        assert!(
            err.errors[0].message.ends_with("field is immutable"),
            "{err}"
        );
    }

    #[test]
    fn pod_updates_reject_spec_changes_and_invalid_results() {
        let old = object(valid_pod());
        let mut regraced = old.clone();
        regraced
            .as_pod_mut()
            .unwrap()
            .spec
            .termination_grace_period_seconds = Some(1);
        let err = validate_update(&old, &regraced).unwrap_err();
        assert_eq!(err.errors.len(), 1);
        assert_eq!(err.errors[0].path, "spec");
        assert!(
            err.errors[0]
                .message
                .starts_with("Forbidden: pod updates may not change fields")
        );
        // A second binding to another node is a spec change too.
        let mut bound = old.clone();
        bound.as_pod_mut().unwrap().spec.node_name = Some("node-1".into());
        assert!(validate_update(&old, &bound).is_ok());
        let mut rebound = bound.clone();
        rebound.as_pod_mut().unwrap().spec.node_name = Some("node-2".into());
        assert!(validate_update(&bound, &rebound).is_err());
        // The new object must itself be valid, even when only labels change.
        let mut bad_label = old.clone();
        bad_label
            .metadata_mut()
            .labels
            .insert("a".into(), "-x".into());
        assert_eq!(
            validate_update(&old, &bad_label).unwrap_err().errors[0].path,
            "metadata.labels.a"
        );
    }
}
