//! `skiff describe TYPE [NAME…]`, `TYPE/NAME…`, `TYPE -l SEL`: each object in kubectl's
//! describe layout, with its own events (matched by UID, oldest first) at the end. Formatting
//! is pure (tested with fixed objects); pods are laid out as kubectl lays them out, by a
//! tab writer ([`tabwrite`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use skiff_api::Kind;
use skiff_api::meta::{LabelSelector, ObjectMeta, Time};
use skiff_api::types::{
    Container, ContainerState, ContainerStatus, Deployment, Event, IntOrString, Node, Pod,
    Quantity, Volume,
};
use skiff_client::{Client, ListParams};

use crate::table::{self, human_duration};
use crate::target::Request;
use crate::verbs::VerbError;

/// Lays out `text` as Go's tabwriter does with kubectl's describe settings (padding 2,
/// spaces): cells end at a tab; a column's width is its widest cell plus 2 over each run of
/// consecutive lines that have a cell in that column; a line's last cell is not padded.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<Vec<usize>> = vec![Vec::new(); lines.len()];
    format_block(&lines, &mut widths, 0, lines.len(), 0);
    let mut out = String::new();
    for (cells, widths) in lines.iter().zip(&widths) {
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:w$}", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

/// Gives column `column` of lines `from..to` its widths, block by block, then the next
/// column within each block (the recursion of Go's tabwriter).
fn format_block(
    lines: &[Vec<&str>],
    widths: &mut [Vec<usize>],
    from: usize,
    to: usize,
    column: usize,
) {
    let mut line = from;
    while line < to {
        if column + 1 >= lines[line].len() {
            line += 1;
            continue;
        }
        let start = line;
        let mut width = 0;
        while line < to && column + 1 < lines[line].len() {
            width = width.max(lines[line][column].chars().count() + 2);
            line += 1;
        }
        for w in &mut widths[start..line] {
            w.push(width);
        }
        format_block(lines, widths, start, line, column + 1);
    }
}

/// kubectl's multi-line `Title:\tk=v` (then `\tk2=v2`…) or `Title:\t<none>`, with
/// `separator` between key and value (`=` for labels, `: ` for annotations).
fn tab_map(
    out: &mut String,
    indent: &str,
    title: &str,
    map: &BTreeMap<String, String>,
    separator: &str,
) {
    if map.is_empty() {
        let _ = writeln!(out, "{indent}{title}:\t<none>");
    }
    for (i, (k, v)) in map.iter().enumerate() {
        let lead = if i == 0 {
            format!("{title}:")
        } else {
            String::new()
        };
        let _ = writeln!(out, "{indent}{lead}\t{k}{separator}{v}");
    }
}

/// A container state as kubectl's describe words it (`State:\tRunning`, then its details
/// one level deeper).
fn tab_state(out: &mut String, label: &str, state: &ContainerState) {
    let time = |t: &Option<Time>| t.map(rfc1123z).unwrap_or_default();
    if let Some(running) = &state.running {
        let _ = writeln!(out, "    {label}:\tRunning");
        let _ = writeln!(out, "      Started:\t{}", time(&running.started_at));
    } else if let Some(t) = &state.terminated {
        let _ = writeln!(out, "    {label}:\tTerminated");
        if let Some(reason) = &t.reason {
            let _ = writeln!(out, "      Reason:\t{reason}");
        }
        if let Some(message) = t.message.as_ref().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "      Message:\t{message}");
        }
        let _ = writeln!(out, "      Exit Code:\t{}", t.exit_code);
        if let Some(signal) = t.signal.filter(|s| *s > 0) {
            let _ = writeln!(out, "      Signal:\t{signal}");
        }
        let _ = writeln!(out, "      Started:\t{}", time(&t.started_at));
        let _ = writeln!(out, "      Finished:\t{}", time(&t.finished_at));
    } else {
        let _ = writeln!(out, "    {label}:\tWaiting");
        if let Some(reason) = state.waiting.as_ref().and_then(|w| w.reason.as_ref()) {
            let _ = writeln!(out, "      Reason:\t{reason}");
        }
    }
}

/// A time as kubectl's describe prints it (Go's RFC1123Z: `Mon, 07 Dec 2026 02:55:06 +0000`).
fn rfc1123z(t: Time) -> String {
    t.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// The annotation kubectl's describe leaves out: `apply`'s copy of the manifest.
const HIDDEN_ANNOTATIONS: [&str; 1] = [crate::apply::LAST_APPLIED];

/// Kubernetes' QoS class: Guaranteed when every container's cpu and memory limits are set
/// and its requests (defaulting to them) equal them, BestEffort with no requests or limits
/// at all, Burstable otherwise.
pub fn qos_class(pod: &Pod) -> &'static str {
    let resources: Vec<_> = pod
        .spec
        .containers
        .iter()
        .map(|c| c.resources.clone().unwrap_or_default())
        .collect();
    if resources
        .iter()
        .all(|r| r.requests.is_empty() && r.limits.is_empty())
    {
        return "BestEffort";
    }
    let guaranteed = resources.iter().all(|r| {
        ["cpu", "memory"].iter().all(|name| {
            let limit = r.limits.get(*name);
            let request = r.requests.get(*name).or(limit);
            match (limit, request) {
                (Some(l), Some(q)) => l.compare(q).is_ok_and(|o| o.is_eq()),
                _ => false,
            }
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The events section, as kubectl prints it (tab-aligned, oldest first).
pub fn events_text(events: &[Event], now: Time) -> String {
    if events.is_empty() {
        return "Events:  <none>\n".into();
    }
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| table::last_seen(e));
    let mut text = String::from("Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    text.push_str("  ----\t------\t----\t----\t-------\n");
    for e in sorted {
        let age = match (table::last_seen(e), e.count.unwrap_or(1), e.first_timestamp) {
            (Some(last), count, Some(first)) if count > 1 => format!(
                "{} (x{count} over {})",
                human_duration((now - last).num_seconds()),
                human_duration((now - first).num_seconds())
            ),
            (Some(last), _, _) => human_duration((now - last).num_seconds()),
            (None, _, _) => "<unknown>".into(),
        };
        let from = e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .or(e.reporting_component.clone())
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "  {}\t{}\t{age}\t{from}\t{}",
            e.type_.as_deref().unwrap_or("Normal"),
            e.reason.as_deref().unwrap_or_default(),
            e.message.as_deref().unwrap_or_default().trim()
        );
    }
    tabwrite(&text)
}

/// kubectl's container descriptions: a pod's with their `statuses`, a pod template's
/// (`statuses` None) under `space` (two spaces).
fn describe_containers(
    out: &mut String,
    containers: &[Container],
    statuses: Option<&[ContainerStatus]>,
    space: &str,
) {
    let none = if containers.is_empty() { " <none>" } else { "" };
    let _ = writeln!(out, "{space}Containers:{none}");
    // Under a pod template the names are one space deeper than the section's title.
    let name_indent = if space.is_empty() { "" } else { " " };
    for c in containers {
        let _ = writeln!(out, "  {name_indent}{}:", c.name);
        let cs = statuses.and_then(|all| all.iter().find(|s| s.name == c.name));
        if let Some(id) = cs.and_then(|s| s.container_id.clone()) {
            let _ = writeln!(out, "    Container ID:\t{id}");
        }
        let _ = writeln!(out, "    Image:\t{}", c.image);
        let ports = |port: fn(&skiff_api::types::ContainerPort) -> i32| {
            c.ports
                .iter()
                .map(|p| format!("{}/{}", port(p), p.protocol.as_deref().unwrap_or("TCP")))
                .collect::<Vec<_>>()
        };
        for (one, several, list) in [
            ("Port", "Ports", ports(|p| p.container_port)),
            // Skiff has no host ports: kubectl shows 0 for a port without one.
            ("Host Port", "Host Ports", ports(|_| 0)),
        ] {
            match list.len() {
                0 => {
                    let _ = writeln!(out, "    {one}:\t<none>");
                }
                1 => {
                    let _ = writeln!(out, "    {one}:\t{}", list[0]);
                }
                _ => {
                    let _ = writeln!(out, "    {several}:\t{}", list.join(", "));
                }
            }
        }
        for (label, items) in [("Command", &c.command), ("Args", &c.args)] {
            if !items.is_empty() {
                let _ = writeln!(out, "    {label}:");
                for line in items.iter().flat_map(|item| item.split('\n')) {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        if let Some(cs) = cs {
            if let Some(state) = &cs.state {
                tab_state(out, "State", state);
            }
            if let Some(last) = cs.last_state.as_ref().filter(|l| l.terminated.is_some()) {
                tab_state(out, "Last State", last);
            }
            let ready = if cs.ready { "True" } else { "False" };
            let _ = writeln!(out, "    Ready:\t{ready}");
            let _ = writeln!(out, "    Restart Count:\t{}", cs.restart_count);
        }
        let resources = c.resources.clone().unwrap_or_default();
        for (title, map) in [
            ("Limits", &resources.limits),
            ("Requests", &resources.requests),
        ] {
            if !map.is_empty() {
                let _ = writeln!(out, "    {title}:");
                for (name, quantity) in map {
                    let _ = writeln!(out, "      {name}:\t{}", quantity.0);
                }
            }
        }
        if c.env.is_empty() {
            out.push_str("    Environment:\t<none>\n");
        } else {
            out.push_str("    Environment:\n");
            for e in &c.env {
                let value = e.value.clone().unwrap_or_default();
                for (i, line) in value.split('\n').enumerate() {
                    let name = if i == 0 {
                        format!("{}:", e.name)
                    } else {
                        String::new()
                    };
                    let _ = writeln!(out, "      {name}\t{line}");
                }
            }
        }
        if c.volume_mounts.is_empty() {
            out.push_str("    Mounts:\t<none>\n");
        } else {
            out.push_str("    Mounts:\n");
            let mut mounts: Vec<_> = c.volume_mounts.iter().collect();
            mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
            for m in mounts {
                let mode = if m.read_only == Some(true) {
                    "ro"
                } else {
                    "rw"
                };
                let _ = writeln!(out, "      {} from {} ({mode})", m.mount_path, m.name);
            }
        }
    }
}

/// kubectl's volume descriptions, of a pod or (under `space`) of a pod template.
fn describe_volumes(out: &mut String, volumes: &[Volume], space: &str) {
    if volumes.is_empty() {
        let _ = writeln!(out, "{space}Volumes:\t<none>");
    } else {
        let _ = writeln!(out, "{space}Volumes:");
        let name_indent = if space.is_empty() { "" } else { " " };
        for v in volumes {
            let _ = writeln!(out, "  {name_indent}{}:", v.name);
            if let Some(host) = &v.host_path {
                out.push_str("    Type:\tHostPath (bare host directory volume)\n");
                let _ = writeln!(out, "    Path:\t{}", host.path);
                let kind = host.type_.as_deref().unwrap_or("<none>");
                let _ = writeln!(out, "    HostPathType:\t{kind}");
            } else if let Some(dir) = &v.empty_dir {
                out.push_str(
                    "    Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n",
                );
                let medium = dir.medium.as_deref().unwrap_or_default();
                let _ = writeln!(out, "    Medium:\t{medium}");
                let limit = dir.size_limit.as_ref().map(|q| q.0.clone());
                let limit = limit.unwrap_or_else(|| "<unset>".into());
                let _ = writeln!(out, "    SizeLimit:\t{limit}");
            }
        }
    }
}

pub fn pod_text(pod: &Pod, events: &[Event], now: Time) -> String {
    let mut out = String::new();
    let status = pod.status.clone().unwrap_or_default();
    let meta = &pod.metadata;
    let _ = writeln!(out, "Name:\t{}", meta.name);
    let _ = writeln!(
        out,
        "Namespace:\t{}",
        meta.namespace.as_deref().unwrap_or_default()
    );
    let node = match (&pod.spec.node_name, &status.host_ip) {
        (Some(node), ip) => format!("{node}/{}", ip.as_deref().unwrap_or_default()),
        (None, _) => "<none>".into(),
    };
    let _ = writeln!(out, "Node:\t{node}");
    if let Some(t) = status.start_time {
        let _ = writeln!(out, "Start Time:\t{}", rfc1123z(t));
    }
    tab_map(&mut out, "", "Labels", &meta.labels, "=");
    let mut annotations = meta.annotations.clone();
    annotations.retain(|k, _| !HIDDEN_ANNOTATIONS.contains(&k.as_str()));
    tab_map(&mut out, "", "Annotations", &annotations, ": ");
    if let Some(deleted) = meta.deletion_timestamp {
        let _ = writeln!(
            out,
            "Status:\tTerminating (lasts {})",
            human_duration((now - deleted).num_seconds())
        );
    } else {
        let phase = status.phase.as_deref().unwrap_or("Pending");
        let _ = writeln!(out, "Status:\t{phase}");
    }
    if let Some(reason) = status.reason.as_ref().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "Reason:\t{reason}");
    }
    if let Some(message) = status.message.as_ref().filter(|m| !m.is_empty()) {
        let _ = writeln!(out, "Message:\t{message}");
    }
    let ip = status.pod_ip.clone().unwrap_or_default();
    let _ = writeln!(out, "IP:\t{ip}");
    if ip.is_empty() {
        out.push_str("IPs:\t<none>\n");
    } else {
        let _ = writeln!(out, "IPs:\n  IP:\t{ip}");
    }
    if let Some(owner) = meta
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
    {
        let _ = writeln!(out, "Controlled By:\t{}/{}", owner.kind, owner.name);
    }
    describe_containers(
        &mut out,
        &pod.spec.containers,
        Some(&status.container_statuses),
        "",
    );
    if !status.conditions.is_empty() {
        out.push_str("Conditions:\n  Type\tStatus\n");
        for c in &status.conditions {
            let _ = writeln!(out, "  {} \t{} ", c.type_, c.status);
        }
    }
    describe_volumes(&mut out, &pod.spec.volumes, "");
    let _ = writeln!(out, "QoS Class:\t{}", qos_class(pod));
    tab_map(&mut out, "", "Node-Selectors", &pod.spec.node_selector, "=");
    out.push_str("Tolerations:\t<none>\n");
    let mut text = tabwrite(&out);
    text.push_str(&events_text(events, now));
    text
}

/// A label selector as Kubernetes prints one (`app=web,tier in (a,b)`, keys sorted).
fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<(String, String)> = selector
        .match_labels
        .iter()
        .map(|(k, v)| (k.clone(), format!("{k}={v}")))
        .collect();
    for e in &selector.match_expressions {
        let values = e.values.join(",");
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        };
        parts.push((e.key.clone(), text));
    }
    parts.sort();
    let text: Vec<String> = parts.into_iter().map(|(_, t)| t).collect();
    text.join(",")
}

/// An int-or-percent as Kubernetes prints it.
fn int_or_string(value: &Option<IntOrString>, default: &str) -> String {
    match value {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => default.to_string(),
    }
}

/// Annotations as describe shows them: all but `apply`'s copy of the manifest.
fn shown_annotations(meta: &ObjectMeta) -> BTreeMap<String, String> {
    let mut annotations = meta.annotations.clone();
    annotations.retain(|k, _| !HIDDEN_ANNOTATIONS.contains(&k.as_str()));
    annotations
}

/// `kubectl describe deployment`, in its layout (kubectl's DeploymentDescriber without
/// ReplicaSets, which Skiff does not have).
pub fn deployment_text(d: &Deployment, events: &[Event], now: Time) -> String {
    let mut out = String::new();
    let status = d.status.clone().unwrap_or_default();
    let meta = &d.metadata;
    let _ = writeln!(out, "Name:\t{}", meta.name);
    let _ = writeln!(
        out,
        "Namespace:\t{}",
        meta.namespace.as_deref().unwrap_or_default()
    );
    let created = meta.creation_timestamp.map(rfc1123z).unwrap_or_default();
    let _ = writeln!(out, "CreationTimestamp:\t{created}");
    tab_map(&mut out, "", "Labels", &meta.labels, "=");
    tab_map(&mut out, "", "Annotations", &shown_annotations(meta), ": ");
    let _ = writeln!(out, "Selector:\t{}", selector_text(&d.spec.selector));
    let _ = writeln!(
        out,
        "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable",
        d.spec.replicas.unwrap_or(1),
        status.updated_replicas.unwrap_or(0),
        status.replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
        status.unavailable_replicas.unwrap_or(0)
    );
    let strategy = d.spec.strategy.clone().unwrap_or_default();
    let strategy_type = strategy.type_.as_deref().unwrap_or("RollingUpdate");
    let _ = writeln!(out, "StrategyType:\t{strategy_type}");
    let _ = writeln!(
        out,
        "MinReadySeconds:\t{}",
        d.spec.min_ready_seconds.unwrap_or(0)
    );
    if strategy_type == "RollingUpdate" {
        // The API server's defaults, as a Kubernetes deployment shows them.
        let rolling = strategy.rolling_update.unwrap_or_default();
        let _ = writeln!(
            out,
            "RollingUpdateStrategy:\t{} max unavailable, {} max surge",
            int_or_string(&rolling.max_unavailable, "25%"),
            int_or_string(&rolling.max_surge, "25%")
        );
    }
    let template = &d.spec.template;
    out.push_str("Pod Template:\n");
    let template_meta = &template.metadata;
    tab_map(&mut out, "  ", "Labels", &template_meta.labels, "=");
    if !template_meta.annotations.is_empty() {
        tab_map(
            &mut out,
            "  ",
            "Annotations",
            &template_meta.annotations,
            ": ",
        );
    }
    describe_containers(&mut out, &template.spec.containers, None, "  ");
    describe_volumes(&mut out, &template.spec.volumes, "  ");
    tab_map(
        &mut out,
        "  ",
        "Node-Selectors",
        &template.spec.node_selector,
        "=",
    );
    out.push_str("  Tolerations:\t<none>\n");
    if !status.conditions.is_empty() {
        out.push_str("Conditions:\n  Type\tStatus\tReason\n  ----\t------\t------\n");
        for c in &status.conditions {
            let reason = c.reason.as_deref().unwrap_or_default();
            let _ = writeln!(out, "  {} \t{}\t{reason}", c.type_, c.status);
        }
    }
    let mut text = tabwrite(&out);
    text.push_str(&events_text(events, now));
    text
}

/// A node's roles, as kubectl finds them: `node-role.kubernetes.io/ROLE` labels and the
/// `kubernetes.io/role` label, sorted.
fn node_roles(node: &Node) -> Vec<String> {
    let mut roles: Vec<String> = node
        .metadata
        .labels
        .iter()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role.to_string()),
            _ => (k == "kubernetes.io/role" && !v.is_empty()).then(|| v.clone()),
        })
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

/// A quantity as Kubernetes writes a sum of them: cores or millicores, and bytes in the
/// largest binary unit that divides them.
fn cpu_text(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

fn memory_text(bytes: u64) -> String {
    for (unit, size) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes != 0 && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// A pod's cpu (millicores) and memory (bytes) requests and limits, summed over its
/// containers; a container's request defaults to its limit, as the API server defaults it.
fn pod_resources(pod: &Pod) -> [u64; 4] {
    let mut sums = [0u64; 4];
    for c in &pod.spec.containers {
        let r = c.resources.clone().unwrap_or_default();
        let request = |name: &str| r.requests.get(name).or_else(|| r.limits.get(name));
        let cpu = |q: Option<&Quantity>| q.and_then(|q| q.cpu_millis().ok()).unwrap_or(0);
        let memory = |q: Option<&Quantity>| q.and_then(|q| q.bytes().ok()).unwrap_or(0);
        sums[0] += cpu(request("cpu"));
        sums[1] += cpu(r.limits.get("cpu"));
        sums[2] += memory(request("memory"));
        sums[3] += memory(r.limits.get("memory"));
    }
    sums
}

/// `amount` as kubectl's describe node shows it: `100m (5%)` of `of` (0% when `of` is 0).
fn share(text: String, amount: u64, of: u64) -> String {
    let percent = if of == 0 {
        0
    } else {
        (amount as f64 / of as f64 * 100.0) as i64
    };
    format!("{text} ({percent}%)")
}

/// `kubectl describe node`, in its layout: `pods` are the node's non-terminated pods.
pub fn node_text(node: &Node, pods: &[Pod], events: &[Event], now: Time) -> String {
    let mut out = String::new();
    let status = node.status.clone().unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    let meta = &node.metadata;
    let _ = writeln!(out, "Name:\t{}", meta.name);
    let roles = node_roles(node);
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let _ = writeln!(out, "Roles:\t{roles}");
    tab_map(&mut out, "", "Labels", &meta.labels, "=");
    tab_map(&mut out, "", "Annotations", &shown_annotations(meta), ": ");
    let created = meta.creation_timestamp.map(rfc1123z).unwrap_or_default();
    let _ = writeln!(out, "CreationTimestamp:\t{created}");
    if spec.taints.is_empty() {
        out.push_str("Taints:\t<none>\n");
    }
    for (i, t) in spec.taints.iter().enumerate() {
        let title = if i == 0 { "Taints:" } else { "" };
        let value = t
            .value
            .as_ref()
            .map(|v| format!("={v}"))
            .unwrap_or_default();
        let _ = writeln!(out, "{title}\t{}{value}:{}", t.key, t.effect);
    }
    let _ = writeln!(
        out,
        "Unschedulable:\t{}",
        spec.unschedulable.unwrap_or(false)
    );
    if !status.conditions.is_empty() {
        out.push_str(
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        );
        out.push_str("  ----\t------\t-----------------\t------------------\t------\t-------\n");
        let time = |t: &Option<Time>| t.map(rfc1123z).unwrap_or_default();
        for c in &status.conditions {
            let _ = writeln!(
                out,
                "  {} \t{} \t{} \t{} \t{} \t{}",
                c.type_,
                c.status,
                time(&c.last_heartbeat_time),
                time(&c.last_transition_time),
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default()
            );
        }
    }
    out.push_str("Addresses:\n");
    for a in &status.addresses {
        let _ = writeln!(out, "  {}:\t{}", a.type_, a.address);
    }
    for (title, map) in [
        ("Capacity", &status.capacity),
        ("Allocatable", &status.allocatable),
    ] {
        if !map.is_empty() {
            let _ = writeln!(out, "{title}:");
            for (k, v) in map {
                let _ = writeln!(out, "  {k}:\t{}", v.0);
            }
        }
    }
    let info = status.node_info.clone().unwrap_or_default();
    out.push_str("System Info:\n");
    for (name, value) in [
        ("Machine ID", info.machine_id.as_str()),
        ("System UUID", info.system_uuid.as_str()),
        ("Boot ID", info.boot_id.as_str()),
        ("Kernel Version", info.kernel_version.as_str()),
        ("OS Image", info.os_image.as_str()),
        ("Operating System", info.operating_system.as_str()),
        ("Architecture", info.architecture.as_str()),
        (
            "Container Runtime Version",
            info.container_runtime_version.as_str(),
        ),
        ("Kubelet Version", info.kubelet_version.as_str()),
    ] {
        let _ = writeln!(out, "  {name}:\t{value}");
    }
    if let Some(cidr) = &spec.pod_cidr {
        let _ = writeln!(out, "PodCIDR:\t{cidr}");
    }
    if !spec.pod_cidrs.is_empty() {
        let _ = writeln!(out, "PodCIDRs:\t{}", spec.pod_cidrs.join(","));
    }
    let offered = if status.allocatable.is_empty() {
        &status.capacity
    } else {
        &status.allocatable
    };
    let cpu = offered
        .get("cpu")
        .and_then(|q| q.cpu_millis().ok())
        .unwrap_or(0);
    let memory = offered
        .get("memory")
        .and_then(|q| q.bytes().ok())
        .unwrap_or(0);
    let _ = writeln!(out, "Non-terminated Pods:\t({} in total)", pods.len());
    out.push_str(
        "  Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    out.push_str(
        "  ---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let mut totals = [0u64; 4];
    for p in pods {
        let sums = pod_resources(p);
        for (total, sum) in totals.iter_mut().zip(sums) {
            *total += sum;
        }
        let age = p
            .metadata
            .creation_timestamp
            .map(|t| human_duration((now - t).num_seconds()))
            .unwrap_or_else(|| "<unknown>".into());
        let _ = writeln!(
            out,
            "  {}\t{}\t\t{}\t{}\t{}\t{}\t{age}",
            p.metadata.namespace.as_deref().unwrap_or_default(),
            p.metadata.name,
            share(cpu_text(sums[0]), sums[0], cpu),
            share(cpu_text(sums[1]), sums[1], cpu),
            share(memory_text(sums[2]), sums[2], memory),
            share(memory_text(sums[3]), sums[3], memory),
        );
    }
    out.push_str(
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    out.push_str("  Resource\tRequests\tLimits\n  --------\t--------\t------\n");
    let _ = writeln!(
        out,
        "  cpu\t{}\t{}",
        share(cpu_text(totals[0]), totals[0], cpu),
        share(cpu_text(totals[1]), totals[1], cpu)
    );
    let _ = writeln!(
        out,
        "  memory\t{}\t{}",
        share(memory_text(totals[2]), totals[2], memory),
        share(memory_text(totals[3]), totals[3], memory)
    );
    // Skiff does not account for ephemeral storage: nothing is requested.
    out.push_str("  ephemeral-storage\t0 (0%)\t0 (0%)\n");
    let mut text = tabwrite(&out);
    text.push_str(&events_text(events, now));
    text
}

/// The events about the object with this UID, in `namespace` (those of another object
/// that had the same name before are not its own).
async fn events_of(
    client: &Client,
    namespace: &str,
    meta: &ObjectMeta,
) -> Result<Vec<Event>, VerbError> {
    let Some(uid) = meta.uid.as_deref() else {
        return Ok(Vec::new());
    };
    let list = client
        .list::<Event>(&ListParams::namespace(namespace))
        .await?
        .items;
    Ok(list
        .into_iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(uid))
        .collect())
}

/// One object's description.
async fn describe_one(
    client: &Client,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Result<String, VerbError> {
    let now = chrono::Utc::now();
    match kind {
        Kind::Pod => {
            let pod = client.get::<Pod>(namespace, name).await?;
            let events = events_of(client, namespace, &pod.metadata).await?;
            Ok(pod_text(&pod, &events, now))
        }
        Kind::Deployment => {
            let d = client.get::<Deployment>(namespace, name).await?;
            let events = events_of(client, namespace, &d.metadata).await?;
            Ok(deployment_text(&d, &events, now))
        }
        Kind::Node => {
            let node = client.get::<Node>("", name).await?;
            // Node events are recorded in the default namespace, as Kubernetes does.
            let events = events_of(client, "default", &node.metadata).await?;
            let pods = client
                .list::<Pod>(&ListParams::all_namespaces().fields(format!("spec.nodeName={name}")))
                .await?
                .items
                .into_iter()
                .filter(|p| {
                    !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
                })
                .collect::<Vec<_>>();
            Ok(node_text(&node, &pods, &events, now))
        }
        other => Err(VerbError::Usage(format!(
            "describe works on pods, deployments and nodes, not {}",
            other.plural()
        ))),
    }
}

/// The names describe takes for `request`: its names as given (a name that matches no
/// object stands for those it is a prefix of, as in kubectl), or every object the selector
/// picks. Missing names add kubectl's NotFound line to `missing`.
async fn names_for(
    client: &Client,
    request: &Request,
    namespace: &str,
    selector: Option<&str>,
    missing: &mut Vec<String>,
) -> Result<Vec<String>, VerbError> {
    let ns = if request.kind.is_namespaced() {
        namespace
    } else {
        ""
    };
    let mut list = if request.kind.is_namespaced() {
        ListParams::namespace(namespace)
    } else {
        ListParams::all_namespaces()
    };
    if let Some(selector) = selector {
        list = list.labels(selector.to_string());
    }
    let listed = || async {
        let objects = client.list_objects(request.kind, &list).await?.items;
        Ok::<_, VerbError>(
            objects
                .iter()
                .map(|o| o.metadata().name.clone())
                .collect::<Vec<_>>(),
        )
    };
    if request.names.is_empty() {
        return listed().await;
    }
    let mut names = Vec::new();
    for name in &request.names {
        match client.get_object(request.kind, ns, name).await {
            Ok(_) => names.push(name.clone()),
            Err(e) if e.is_not_found() => {
                let prefixed: Vec<String> = listed()
                    .await?
                    .into_iter()
                    .filter(|n| n.starts_with(name.as_str()))
                    .collect();
                if prefixed.is_empty() {
                    missing.push(crate::error::api_message(&e));
                }
                names.extend(prefixed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(names)
}

/// `skiff describe`: every object the requests name, two blank lines apart, as kubectl
/// prints them; the names that match nothing in [`crate::get::Got::missing`].
pub async fn describe(
    client: &Client,
    requests: &[Request],
    namespace: &str,
    selector: Option<&str>,
) -> Result<crate::get::Got, VerbError> {
    let mut got = crate::get::Got::default();
    for request in requests {
        let names = names_for(client, request, namespace, selector, &mut got.missing).await?;
        for name in names {
            if !got.out.is_empty() {
                got.out.push_str("\n\n");
            }
            got.out
                .push_str(&describe_one(client, request.kind, namespace, &name).await?);
        }
    }
    if got.out.is_empty() && got.missing.is_empty() {
        got.out = format!("No resources found in {namespace} namespace.\n");
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn describe_pod_prints_what_kubectl_prints() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "default",
                         "labels": {"app": "web", "tier": "fe"}, "annotations": {"note": "a b"}},
            "spec": {"nodeName": "host-1", "containers": [{
                "name": "main", "image": "busybox", "command": ["/bin/busybox", "httpd"],
                "ports": [{"containerPort": 8080}], "env": [{"name": "MODE", "value": "fast"}],
                "resources": {"limits": {"memory": "64Mi"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]}],
                "volumes": [{"name": "data", "emptyDir": {}}]},
            "status": {"phase": "Running", "hostIP": "10.250.0.2", "podIP": "10.244.0.5",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "main", "ready": true, "restartCount": 1,
                    "containerID": "process://u_main_1",
                    "state": {"running": {"startedAt": "2026-11-23T11:59:00Z"}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "Error"}}}]}
        }))
        .unwrap();
        let event: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default"},
            "reason": "Started", "message": "Started container main", "type": "Normal",
            "count": 2, "firstTimestamp": "2026-11-23T11:58:00Z",
            "lastTimestamp": "2026-11-23T11:59:30Z",
            "source": {"component": "skiff-agent", "host": "host-1"}
        }))
        .unwrap();
        let expected = "\
Name:         web-1
Namespace:    default
Node:         host-1/10.250.0.2
Labels:       app=web
              tier=fe
Annotations:  note: a b
Status:       Running
IP:           10.244.0.5
IPs:
  IP:  10.244.0.5
Containers:
  main:
    Container ID:  process://u_main_1
    Image:         busybox
    Port:          8080/TCP
    Host Port:     0/TCP
    Command:
      /bin/busybox
      httpd
    State:          Running
      Started:      Mon, 23 Nov 2026 11:59:00 +0000
    Last State:     Terminated
      Reason:       Error
      Exit Code:    137
      Started:      
      Finished:     
    Ready:          True
    Restart Count:  1
    Limits:
      memory:  64Mi
    Environment:
      MODE:  fast
    Mounts:
      /data from data (ro)
Conditions:
  Type    Status
  Ready   True 
Volumes:
  data:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      
    SizeLimit:   <unset>
QoS Class:       Burstable
Node-Selectors:  <none>
Tolerations:     <none>
Events:
  Type    Reason   Age               From         Message
  ----    ------   ----              ----         -------
  Normal  Started  30s (x2 over 2m)  skiff-agent  Started container main
";
        assert_eq!(pod_text(&pod, &[event], now()), expected);
        assert_eq!(events_text(&[], now()), "Events:  <none>\n");
    }

    #[test]
    fn describe_deployment_prints_kubectls_layout() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d1",
                         "creationTimestamp": "2026-11-23T11:00:00Z",
                         "labels": {"app": "web"},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "main", "image": "busybox",
                        "command": ["httpd", "-f"], "ports": [{"containerPort": 8080}]}]}}},
            "status": {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2,
                "unavailableReplicas": 1, "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
        }))
        .unwrap();
        let expected = "\
Name:                   web
Namespace:              default
CreationTimestamp:      Mon, 23 Nov 2026 11:00:00 +0000
Labels:                 app=web
Annotations:            <none>
Selector:               app=web
Replicas:               3 desired | 3 updated | 3 total | 2 available | 1 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 25% max surge
Pod Template:
  Labels:  app=web
  Containers:
   main:
    Image:      busybox
    Port:       8080/TCP
    Host Port:  0/TCP
    Command:
      httpd
      -f
    Environment:   <none>
    Mounts:        <none>
  Volumes:         <none>
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type          Status  Reason
  ----          ------  ------
  Available     True    MinimumReplicasAvailable
  Progressing   True    NewReplicaSetAvailable
Events:  <none>
";
        let text = deployment_text(&d, &[], now());
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn describe_node_prints_kubectls_layout() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "node-1", "uid": "n1",
                         "creationTimestamp": "2026-11-23T10:00:00Z",
                         "labels": {"kubernetes.io/hostname": "node-1",
                                    "node-role.kubernetes.io/worker": ""}},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
                     "taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]},
            "status": {
                "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady",
                    "message": "skiff-agent is posting heartbeats",
                    "lastHeartbeatTime": "2026-11-23T11:59:50Z",
                    "lastTransitionTime": "2026-11-23T10:00:05Z"}],
                "addresses": [{"type": "InternalIP", "address": "10.250.0.2"},
                              {"type": "Hostname", "address": "node-1"}],
                "nodeInfo": {"kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                    "architecture": "amd64", "operatingSystem": "linux",
                    "containerRuntimeVersion": "oci://runc-1.1.5", "kubeletVersion": "v0.1.0"}}
        }))
        .unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "default",
                         "creationTimestamp": "2026-11-23T11:55:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "busybox",
                "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}}]}
        }))
        .unwrap();
        let expected = "\
Name:               node-1
Roles:              worker
Labels:             kubernetes.io/hostname=node-1
                    node-role.kubernetes.io/worker=
Annotations:        <none>
CreationTimestamp:  Mon, 23 Nov 2026 10:00:00 +0000
Taints:             gpu=yes:NoSchedule
Unschedulable:      false
Conditions:
  Type    Status  LastHeartbeatTime                 LastTransitionTime                Reason       Message
  ----    ------  -----------------                 ------------------                ------       -------
  Ready   True    Mon, 23 Nov 2026 11:59:50 +0000   Mon, 23 Nov 2026 10:00:05 +0000   AgentReady   skiff-agent is posting heartbeats
Addresses:
  InternalIP:  10.250.0.2
  Hostname:    node-1
Capacity:
  cpu:     2
  memory:  4Gi
  pods:    110
Allocatable:
  cpu:     2
  memory:  4Gi
  pods:    110
System Info:
  Machine ID:                 
  System UUID:                
  Boot ID:                    
  Kernel Version:             6.1.0
  OS Image:                   Debian GNU/Linux 12
  Operating System:           linux
  Architecture:               amd64
  Container Runtime Version:  oci://runc-1.1.5
  Kubelet Version:            v0.1.0
PodCIDR:                      10.244.1.0/24
PodCIDRs:                     10.244.1.0/24
Non-terminated Pods:          (1 in total)
  Namespace                   Name     CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age
  ---------                   ----     ------------  ----------  ---------------  -------------  ---
  default                     web-1    500m (25%)    0 (0%)      1Gi (25%)        1Gi (25%)      5m
Allocated resources:
  (Total limits may be over 100 percent, i.e., overcommitted.)
  Resource           Requests    Limits
  --------           --------    ------
  cpu                500m (25%)  0 (0%)
  memory             1Gi (25%)   1Gi (25%)
  ephemeral-storage  0 (0%)      0 (0%)
Events:  <none>
";
        let text = node_text(&node, &[pod], &[], now());
        assert_eq!(text, expected, "\n{text}");
    }
}
