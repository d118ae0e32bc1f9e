//! `skiff describe TYPE [NAME…]`, `TYPE/NAME…`, `TYPE -l SEL`: each object in kubectl's
//! describe layout, with its own events (matched by UID, oldest first) at the end. Formatting
//! is pure (tested with fixed objects); pods are laid out as kubectl lays them out, by a
//! tab writer ([`tabwrite`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use skiff_api::Kind;
use skiff_api::meta::{ObjectMeta, Time};
use skiff_api::types::{
    ContainerState, Deployment, DeploymentCondition, Event, Node, NodeCondition, Pod,
};
use skiff_client::{Client, ListParams};

use crate::table::{self, Table, human_duration};
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

fn map_text(map: &BTreeMap<String, String>, indent: usize) -> String {
    if map.is_empty() {
        return "<none>".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(&format!("\n{:indent$}", ""))
}

fn field(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{:<14}{value}", format!("{name}:"));
}

/// The `Name:` and `Namespace:` lines a namespaced object's description starts with.
fn name_and_namespace(out: &mut String, meta: &ObjectMeta) {
    field(out, "Name", &meta.name);
    field(
        out,
        "Namespace",
        meta.namespace.as_deref().unwrap_or_default(),
    );
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

/// A line `title`, then (unless it has no rows) the table indented two spaces, as describe
/// prints sections.
fn section(out: &mut String, title: &str, table: &Table) {
    let _ = writeln!(out, "{title}");
    if !table.rows.is_empty() {
        for line in table.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
}

/// The `Conditions:` section (none without conditions): the first `columns` of Type,
/// Status, Reason and Message, a row per condition as [`condition`] gives it.
fn conditions(out: &mut String, columns: usize, rows: impl Iterator<Item = [String; 4]>) {
    let rows: Vec<Vec<String>> = rows.map(|cells| cells[..columns].to_vec()).collect();
    if !rows.is_empty() {
        let header = &["Type", "Status", "Reason", "Message"][..columns];
        section(out, "Conditions:", &Table::new(header, rows));
    }
}

/// A condition's cells (pods', deployments' and nodes' conditions are alike but for their
/// times).
fn condition(
    type_: &str,
    status: &str,
    reason: &Option<String>,
    message: &Option<String>,
) -> [String; 4] {
    [
        type_.to_string(),
        status.to_string(),
        reason.clone().unwrap_or_default(),
        message.clone().unwrap_or_default(),
    ]
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
    out.push_str("Containers:\n");
    for c in &pod.spec.containers {
        let _ = writeln!(out, "  {}:", c.name);
        let cs = status.container_statuses.iter().find(|s| s.name == c.name);
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
                tab_state(&mut out, "State", state);
            }
            if let Some(last) = cs.last_state.as_ref().filter(|l| l.terminated.is_some()) {
                tab_state(&mut out, "Last State", last);
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
    if !status.conditions.is_empty() {
        out.push_str("Conditions:\n  Type\tStatus\n");
        for c in &status.conditions {
            let _ = writeln!(out, "  {} \t{} ", c.type_, c.status);
        }
    }
    if pod.spec.volumes.is_empty() {
        out.push_str("Volumes:\t<none>\n");
    } else {
        out.push_str("Volumes:\n");
        for v in &pod.spec.volumes {
            let _ = writeln!(out, "  {}:", v.name);
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
    let _ = writeln!(out, "QoS Class:\t{}", qos_class(pod));
    tab_map(&mut out, "", "Node-Selectors", &pod.spec.node_selector, "=");
    out.push_str("Tolerations:\t<none>\n");
    let mut text = tabwrite(&out);
    text.push_str(&events_text(events, now));
    text
}

pub fn deployment_text(d: &Deployment, events: &[Event], now: Time) -> String {
    let mut out = String::new();
    let status = d.status.clone().unwrap_or_default();
    name_and_namespace(&mut out, &d.metadata);
    field(&mut out, "Labels", map_text(&d.metadata.labels, 14));
    field(
        &mut out,
        "Selector",
        map_text(&d.spec.selector.match_labels, 14),
    );
    let wanted = d.spec.replicas.unwrap_or(1);
    field(
        &mut out,
        "Replicas",
        format!(
            "{wanted} desired | {} updated | {} total | {} available | {} unavailable",
            status.updated_replicas.unwrap_or(0),
            status.replicas.unwrap_or(0),
            status.available_replicas.unwrap_or(0),
            status.unavailable_replicas.unwrap_or(0)
        ),
    );
    let strategy = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.clone())
        .unwrap_or_else(|| "RollingUpdate".into());
    field(&mut out, "StrategyType", strategy);
    out.push_str("Pod Template:\n");
    for c in &d.spec.template.spec.containers {
        let _ = writeln!(out, "  {}:", c.name);
        let _ = writeln!(out, "    {:<10}{}", "Image:", c.image);
    }
    let cells = |c: &DeploymentCondition| condition(&c.type_, &c.status, &c.reason, &c.message);
    conditions(&mut out, 3, status.conditions.iter().map(cells));
    out.push_str(&events_text(events, now));
    out
}

pub fn node_text(node: &Node, pods: &[Pod], events: &[Event], now: Time) -> String {
    let mut out = String::new();
    let status = node.status.clone().unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    field(&mut out, "Name", &node.metadata.name);
    field(&mut out, "Labels", map_text(&node.metadata.labels, 14));
    field(
        &mut out,
        "Unschedulable",
        spec.unschedulable.unwrap_or(false),
    );
    field(
        &mut out,
        "PodCIDR",
        spec.pod_cidr.unwrap_or_else(|| "<none>".into()),
    );
    let cells = |c: &NodeCondition| condition(&c.type_, &c.status, &c.reason, &c.message);
    conditions(&mut out, 4, status.conditions.iter().map(cells));
    out.push_str("Addresses:\n");
    for a in &status.addresses {
        let _ = writeln!(out, "  {}:  {}", a.type_, a.address);
    }
    for (title, map) in [
        ("Capacity", &status.capacity),
        ("Allocatable", &status.allocatable),
    ] {
        let _ = writeln!(out, "{title}:");
        for (k, v) in map {
            let _ = writeln!(out, "  {k}:  {}", v.0);
        }
    }
    let rows = pods
        .iter()
        .map(|p| {
            vec![
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone(),
                table::pod_status(p),
            ]
        })
        .collect();
    let title = format!("Non-terminated Pods:  ({} in total)", pods.len());
    section(
        &mut out,
        &title,
        &Table::new(&["Namespace", "Name", "Status"], rows),
    );
    out.push_str(&events_text(events, now));
    out
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
}
