//! `skiff describe pod|deployment|node NAME`: the object in kubectl's describe layout, with
//! its events (oldest first) at the end. Formatting is pure (tested with fixed objects).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use skiff_api::Kind;
use skiff_api::meta::{ObjectMeta, Time};
use skiff_api::types::{
    ContainerState, Deployment, DeploymentCondition, Event, Node, NodeCondition, Pod, PodCondition,
};
use skiff_client::{Client, ListParams};

use crate::table::{self, Table, human_duration};
use crate::verbs::VerbError;

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

fn state_lines(out: &mut String, label: &str, state: &ContainerState, pad: &str) {
    if let Some(running) = &state.running {
        let _ = writeln!(out, "{pad}{label:<16}Running");
        if let Some(t) = running.started_at {
            let _ = writeln!(out, "{pad}  {:<14}{}", "Started:", t.to_rfc2822());
        }
    } else if let Some(waiting) = &state.waiting {
        let _ = writeln!(out, "{pad}{label:<16}Waiting");
        if let Some(reason) = &waiting.reason {
            let _ = writeln!(out, "{pad}  {:<14}{reason}", "Reason:");
        }
    } else if let Some(t) = &state.terminated {
        let _ = writeln!(out, "{pad}{label:<16}Terminated");
        if let Some(reason) = &t.reason {
            let _ = writeln!(out, "{pad}  {:<14}{reason}", "Reason:");
        }
        let _ = writeln!(out, "{pad}  {:<14}{}", "Exit Code:", t.exit_code);
    }
}

/// The events section, as kubectl prints it.
pub fn events_text(events: &[Event], now: Time) -> String {
    if events.is_empty() {
        return "Events:  <none>\n".into();
    }
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| table::last_seen(e));
    let dashes = ["----", "------", "----", "----", "-------"];
    let rows = std::iter::once(dashes.map(String::from).to_vec())
        .chain(sorted.iter().map(|e| {
            let age = match (table::last_seen(e), e.count.unwrap_or(1), e.first_timestamp) {
                (Some(last), count, Some(first)) if count > 1 => format!(
                    "{} (x{count} over {})",
                    human_duration((now - last).num_seconds()),
                    human_duration((now - first).num_seconds())
                ),
                (Some(last), _, _) => human_duration((now - last).num_seconds()),
                (None, _, _) => "<unknown>".into(),
            };
            vec![
                e.type_.clone().unwrap_or_else(|| "Normal".into()),
                e.reason.clone().unwrap_or_default(),
                age,
                e.source
                    .as_ref()
                    .and_then(|s| s.component.clone())
                    .or(e.reporting_component.clone())
                    .unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            ]
        }))
        .collect();
    let mut out = String::new();
    let header = ["Type", "Reason", "Age", "From", "Message"];
    section(&mut out, "Events:", &Table::new(&header, rows));
    out
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
    name_and_namespace(&mut out, &pod.metadata);
    let node = match (&pod.spec.node_name, &status.host_ip) {
        (Some(node), Some(ip)) => format!("{node}/{ip}"),
        (Some(node), None) => node.clone(),
        (None, _) => "<none>".into(),
    };
    field(&mut out, "Node", node);
    if let Some(t) = status.start_time {
        field(&mut out, "Start Time", t.to_rfc2822());
    }
    field(&mut out, "Labels", map_text(&pod.metadata.labels, 14));
    field(
        &mut out,
        "Annotations",
        map_text(&pod.metadata.annotations, 14),
    );
    field(&mut out, "Status", table::pod_status(pod));
    field(&mut out, "IP", status.pod_ip.clone().unwrap_or_default());
    out.push_str("Containers:\n");
    for c in &pod.spec.containers {
        let _ = writeln!(out, "  {}:", c.name);
        let cs = status.container_statuses.iter().find(|s| s.name == c.name);
        if let Some(id) = cs.and_then(|s| s.container_id.clone()) {
            let _ = writeln!(out, "    {:<16}{id}", "Container ID:");
        }
        let _ = writeln!(out, "    {:<16}{}", "Image:", c.image);
        for (label, items) in [("Command:", &c.command), ("Args:", &c.args)] {
            if !items.is_empty() {
                let _ = writeln!(out, "    {label}");
                for item in items {
                    let _ = writeln!(out, "      {item}");
                }
            }
        }
        if let Some(cs) = cs {
            if let Some(state) = &cs.state {
                state_lines(&mut out, "State:", state, "    ");
            }
            if let Some(last) = &cs.last_state {
                state_lines(&mut out, "Last State:", last, "    ");
            }
            let _ = writeln!(
                out,
                "    {:<16}{}",
                "Ready:",
                if cs.ready { "True" } else { "False" }
            );
            let _ = writeln!(out, "    {:<16}{}", "Restart Count:", cs.restart_count);
        }
    }
    let cells = |c: &PodCondition| condition(&c.type_, &c.status, &c.reason, &c.message);
    conditions(&mut out, 2, status.conditions.iter().map(cells));
    out.push_str(&events_text(events, now));
    out
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

/// Fetches the object and its events and formats them.
pub async fn describe(
    client: &Client,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<String, VerbError> {
    let now = chrono::Utc::now();
    let events_of = |kind: Kind, ns: String| async move {
        let list = client
            .list::<Event>(&ListParams::namespace(ns))
            .await?
            .items;
        Ok::<_, VerbError>(
            list.into_iter()
                .filter(|e| {
                    e.involved_object.name.as_deref() == Some(name)
                        && e.involved_object.kind.as_deref() == Some(kind.as_str())
                })
                .collect::<Vec<_>>(),
        )
    };
    match Kind::parse(kind) {
        Some(Kind::Pod) => {
            let pod = client.get::<Pod>(namespace, name).await?;
            let events = events_of(Kind::Pod, namespace.to_string()).await?;
            Ok(pod_text(&pod, &events, now))
        }
        Some(Kind::Deployment) => {
            let d = client.get::<Deployment>(namespace, name).await?;
            let events = events_of(Kind::Deployment, namespace.to_string()).await?;
            Ok(deployment_text(&d, &events, now))
        }
        Some(Kind::Node) => {
            let node = client.get::<Node>("", name).await?;
            // Node events are recorded in the default namespace, as Kubernetes does.
            let events = events_of(Kind::Node, "default".to_string()).await?;
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
        _ => Err(VerbError::Usage(format!(
            "describe works on pods, deployments and nodes, not {kind:?}"
        ))),
    }
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
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "host-1", "containers": [{
                "name": "main", "image": "busybox", "command": ["/bin/busybox", "httpd"]}]},
            "status": {"phase": "Running", "hostIP": "10.250.0.2", "podIP": "10.244.0.5",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "main", "ready": true, "restartCount": 1,
                    "containerID": "process://u_main_1",
                    "state": {"running": {}},
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
Annotations:  <none>
Status:       Running
IP:           10.244.0.5
Containers:
  main:
    Container ID:   process://u_main_1
    Image:          busybox
    Command:
      /bin/busybox
      httpd
    State:          Running
    Last State:     Terminated
      Reason:       Error
      Exit Code:    137
    Ready:          True
    Restart Count:  1
Conditions:
  Type    Status
  Ready   True
Events:
  Type     Reason    Age                From          Message
  ----     ------    ----               ----          -------
  Normal   Started   30s (x2 over 2m)   skiff-agent   Started container main
";
        assert_eq!(pod_text(&pod, &[event], now()), expected);
        assert_eq!(events_text(&[], now()), "Events:  <none>\n");
    }
}
