//! kubectl's tables: the columns and STATUS texts `kubectl get` prints, as pure functions of
//! the objects and the current time (so they are tested with fixed objects).

use std::collections::BTreeMap;

use skiff_api::meta::{ObjectMeta, Time};
use skiff_api::types::{Deployment, Event, Namespace, Node, Pod};

/// Lays rows out in columns separated by three spaces, like kubectl's tabwriter.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:w$}   ", w = widths[i]));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Adds `-L key` columns (upper-cased key, value or empty) and, with `show_labels`, a LABELS
/// column (`k=v,k2=v2` or `<none>`) to a rendered table whose rows match `labels` in order.
pub fn with_label_columns(
    rendered: &str,
    labels: &[BTreeMap<String, String>],
    keys: &[String],
    show_labels: bool,
) -> String {
    let mut lines = rendered.lines();
    let Some(header_line) = lines.next() else {
        return rendered.to_string();
    };
    let widths = column_starts(header_line);
    let split = |line: &str| -> Vec<String> {
        let mut cells = Vec::new();
        for (i, start) in widths.iter().enumerate() {
            let end = widths
                .get(i + 1)
                .copied()
                .unwrap_or(line.len())
                .min(line.len());
            cells.push(line.get(*start..end).unwrap_or("").trim().to_string());
        }
        cells
    };
    let mut header: Vec<String> = split(header_line);
    header.extend(keys.iter().map(|k| k.to_uppercase()));
    if show_labels {
        header.push("LABELS".into());
    }
    let rows: Vec<Vec<String>> = lines
        .zip(labels)
        .map(|(line, labels)| {
            let mut row = split(line);
            row.extend(
                keys.iter()
                    .map(|k| labels.get(k).cloned().unwrap_or_default()),
            );
            if show_labels {
                row.push(if labels.is_empty() {
                    "<none>".into()
                } else {
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                });
            }
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    render(&header, &rows)
}

/// Where each column of a rendered header starts (columns are separated by 3+ spaces and
/// header names hold at most single spaces, e.g. "NOMINATED NODE").
fn column_starts(header: &str) -> Vec<usize> {
    let bytes = header.as_bytes();
    let mut starts = vec![0];
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' {
            let run = bytes[i..].iter().take_while(|b| **b == b' ').count();
            if run >= 2 && i + run < bytes.len() {
                starts.push(i + run);
            }
            i += run;
        } else {
            i += 1;
        }
    }
    starts
}

/// kubectl's human duration (`45s`, `3m12s`, `5h`, `2d4h`, `400d`, `3y20d`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let (m, h) = (s / 60, s / 3600);
    let with = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        with(m, "m", s % 60, "s")
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        with(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        with(h / 24, "d", h % 24, "h")
    } else if h < 24 * 365 * 2 {
        format!("{}d", h / 24)
    } else if h < 24 * 365 * 8 {
        with(h / (24 * 365), "y", (h % (24 * 365)) / 24, "d")
    } else {
        format!("{}y", h / (24 * 365))
    }
}

fn age(meta: &ObjectMeta, now: Time) -> String {
    match meta.creation_timestamp {
        Some(created) => human_duration((now - created).num_seconds()),
        None => "<unknown>".into(),
    }
}

/// The STATUS column of `kubectl get pods`.
pub fn pod_status(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .or(status.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let mut running = false;
    for container in status.container_statuses.iter().rev() {
        let state = container.state.clone().unwrap_or_default();
        if let Some(r) = state.waiting.as_ref().and_then(|w| w.reason.clone()) {
            reason = r;
        } else if let Some(t) = &state.terminated {
            reason = match (&t.reason, t.signal) {
                (Some(r), _) => r.clone(),
                (None, Some(signal)) => format!("Signal:{signal}"),
                (None, None) => format!("ExitCode:{}", t.exit_code),
            };
        } else if container.ready && state.running.is_some() {
            running = true;
        }
    }
    if reason == "Completed" && running {
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        reason = if ready { "Running" } else { "NotReady" }.into();
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = if status.reason.as_deref() == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

/// `kubectl get pods` (`wide` adds IP and NODE; `namespaces` adds NAMESPACE first).
pub fn pods(pods: &[Pod], wide: bool, namespaces: bool, now: Time) -> String {
    let mut header = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if wide {
        header.extend(["IP", "NODE"]);
    }
    if namespaces {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = pods
        .iter()
        .map(|pod| {
            let status = pod.status.clone().unwrap_or_default();
            let ready = status.container_statuses.iter().filter(|c| c.ready).count();
            let restarts: i32 = status
                .container_statuses
                .iter()
                .map(|c| c.restart_count)
                .sum();
            let mut row = vec![
                pod.metadata.name.clone(),
                format!("{ready}/{}", pod.spec.containers.len()),
                pod_status(pod),
                restarts.to_string(),
                age(&pod.metadata, now),
            ];
            if wide {
                row.push(status.pod_ip.unwrap_or_else(|| "<none>".into()));
                row.push(
                    pod.spec
                        .node_name
                        .clone()
                        .unwrap_or_else(|| "<none>".into()),
                );
            }
            if namespaces {
                row.insert(0, pod.metadata.namespace.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    render(&header, &rows)
}

/// `kubectl get nodes` (`wide` adds INTERNAL-IP and POD-CIDR).
pub fn nodes(nodes: &[Node], wide: bool, now: Time) -> String {
    let mut header = vec!["NAME", "STATUS", "AGE"];
    if wide {
        header.extend(["INTERNAL-IP", "POD-CIDR"]);
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|node| {
            let status = node.status.clone().unwrap_or_default();
            let spec = node.spec.clone().unwrap_or_default();
            let mut state = match status.conditions.iter().find(|c| c.type_ == "Ready") {
                Some(c) if c.status == "True" => "Ready".to_string(),
                Some(c) if c.status == "False" => "NotReady".to_string(),
                _ => "Unknown".to_string(),
            };
            if spec.unschedulable.unwrap_or(false) {
                state.push_str(",SchedulingDisabled");
            }
            let mut row = vec![node.metadata.name.clone(), state, age(&node.metadata, now)];
            if wide {
                row.push(
                    status
                        .addresses
                        .iter()
                        .find(|a| a.type_ == "InternalIP")
                        .map(|a| a.address.clone())
                        .unwrap_or_else(|| "<none>".into()),
                );
                row.push(spec.pod_cidr.unwrap_or_else(|| "<none>".into()));
            }
            row
        })
        .collect();
    render(&header, &rows)
}

/// `kubectl get deployments`.
pub fn deployments(deployments: &[Deployment], namespaces: bool, now: Time) -> String {
    let mut header = vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"];
    if namespaces {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = deployments
        .iter()
        .map(|d| {
            let status = d.status.clone().unwrap_or_default();
            let mut row = vec![
                d.metadata.name.clone(),
                format!(
                    "{}/{}",
                    status.ready_replicas.unwrap_or(0),
                    d.spec.replicas.unwrap_or(1)
                ),
                status.updated_replicas.unwrap_or(0).to_string(),
                status.available_replicas.unwrap_or(0).to_string(),
                age(&d.metadata, now),
            ];
            if namespaces {
                row.insert(0, d.metadata.namespace.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    render(&header, &rows)
}

/// `kubectl get namespaces`.
pub fn namespaces(namespaces: &[Namespace], now: Time) -> String {
    let rows: Vec<Vec<String>> = namespaces
        .iter()
        .map(|ns| {
            let phase = ns
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Active".into());
            vec![ns.metadata.name.clone(), phase, age(&ns.metadata, now)]
        })
        .collect();
    render(&["NAME", "STATUS", "AGE"], &rows)
}

/// `kubectl get events`: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, oldest first.
pub fn events(events: &[Event], namespaces: bool, now: Time) -> String {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.last_timestamp.or(e.metadata.creation_timestamp));
    let mut header = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];
    if namespaces {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|e| {
            let object = &e.involved_object;
            let mut row = vec![
                match e.last_timestamp.or(e.metadata.creation_timestamp) {
                    Some(t) => human_duration((now - t).num_seconds()),
                    None => "<unknown>".into(),
                },
                e.type_.clone().unwrap_or_else(|| "Normal".into()),
                e.reason.clone().unwrap_or_default(),
                format!(
                    "{}/{}",
                    object.kind.clone().unwrap_or_default().to_lowercase(),
                    object.name.clone().unwrap_or_default()
                ),
                e.message.clone().unwrap_or_default(),
            ];
            if namespaces {
                row.insert(0, e.metadata.namespace.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    render(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn human_durations_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (192, "3m12s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (5 * 3600, "5h"),
            (30 * 3600, "30h"),
            (52 * 3600, "2d4h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400 + 20 * 86400, "3y20d"),
            (10 * 365 * 86400, "10y"),
        ];
        for (seconds, text) in cases {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn table_2_pod_statuses() {
        let status = |s: serde_json::Value| {
            pod_status(&pod(serde_json::json!({
                "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": s
            })))
        };
        assert_eq!(status(serde_json::json!({})), "Pending");
        assert_eq!(
            status(
                serde_json::json!({"phase": "Pending", "containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}]})
            ),
            "ContainerCreating"
        );
        assert_eq!(
            status(
                serde_json::json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "state": {"running": {}}},
                {"name": "b", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]})
            ),
            "CrashLoopBackOff"
        );
        assert_eq!(
            status(
                serde_json::json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})
            ),
            "Completed"
        );
        assert_eq!(
            status(serde_json::json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]})),
            "Error"
        );
        assert_eq!(
            status(serde_json::json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]})),
            "Signal:9"
        );
        let terminating = pod(serde_json::json!({
            "metadata": {"name": "p", "deletionTimestamp": "2026-11-23T11:59:00Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running"}
        }));
        assert_eq!(pod_status(&terminating), "Terminating");
    }

    #[test]
    fn pods_wide_golden() {
        let pods = vec![
            pod(serde_json::json!({
                "metadata": {"name": "web-7d4b9-x2x9q", "namespace": "default",
                             "creationTimestamp": "2026-11-23T11:57:00Z"},
                "spec": {"nodeName": "host-1", "containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running", "podIP": "10.244.0.2", "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "b", "ready": false, "restartCount": 3,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
            })),
            pod(serde_json::json!({
                "metadata": {"name": "pending", "namespace": "team-a",
                             "creationTimestamp": "2026-11-23T11:59:30Z"},
                "spec": {"containers": [{"name": "a"}]}
            })),
        ];
        assert_eq!(
            pods_table(&pods, false, false),
            "\
NAME              READY   STATUS             RESTARTS   AGE
web-7d4b9-x2x9q   1/2     CrashLoopBackOff   3          3m
pending           0/1     Pending            0          30s
"
        );
        assert_eq!(
            pods_table(&pods, true, true),
            "\
NAMESPACE   NAME              READY   STATUS             RESTARTS   AGE   IP           NODE
default     web-7d4b9-x2x9q   1/2     CrashLoopBackOff   3          3m    10.244.0.2   host-1
team-a      pending           0/1     Pending            0          30s   <none>       <none>
"
        );
    }

    #[test]
    fn table_5_label_columns() {
        let rendered = "NAME   READY   STATUS\nweb    1/1     Running\ndb     0/1     Pending\n";
        let labels = vec![
            BTreeMap::from([
                ("app".to_string(), "web".to_string()),
                ("tier".to_string(), "fe".to_string()),
            ]),
            BTreeMap::new(),
        ];
        assert_eq!(
            with_label_columns(rendered, &labels, &["tier".to_string()], true),
            "NAME   READY   STATUS    TIER   LABELS\nweb    1/1     Running   fe     app=web,tier=fe\ndb     0/1     Pending          <none>\n"
        );
    }

    #[test]
    fn table_6_events_golden() {
        let event = |name: &str,
                     reason: &str,
                     at: &str,
                     kind: &str,
                     object: &str,
                     message: &str|
         -> Event {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default"},
                "involvedObject": {"kind": kind, "name": object},
                "reason": reason, "message": message, "type": "Normal", "lastTimestamp": at
            }))
            .unwrap()
        };
        let events = vec![
            event(
                "b",
                "Started",
                "2026-11-23T11:59:50Z",
                "Pod",
                "web-1",
                "Started container main",
            ),
            event(
                "a",
                "Scheduled",
                "2026-11-23T11:58:00Z",
                "Pod",
                "web-1",
                "Successfully assigned default/web-1 to host-1",
            ),
        ];
        assert_eq!(
            super::events(&events, false, now()),
            "\
LAST SEEN   TYPE     REASON      OBJECT      MESSAGE
2m          Normal   Scheduled   pod/web-1   Successfully assigned default/web-1 to host-1
10s         Normal   Started     pod/web-1   Started container main
"
        );
    }

    fn pods_table(p: &[Pod], wide: bool, namespaces: bool) -> String {
        pods(p, wide, namespaces, now())
    }

    #[test]
    fn nodes_deployments_namespaces_golden() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "host-1", "creationTimestamp": "2026-11-21T12:00:00Z"},
            "spec": {"podCIDR": "10.244.0.0/24", "unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.250.0.2"}]}
        }))
        .unwrap();
        assert_eq!(
            nodes(&[node], true, now()),
            "\
NAME     STATUS                     AGE   INTERNAL-IP   POD-CIDR
host-1   Ready,SchedulingDisabled   2d    10.250.0.2    10.244.0.0/24
"
        );
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "creationTimestamp": "2026-11-23T11:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "a"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        }))
        .unwrap();
        assert_eq!(
            deployments(&[d], false, now()),
            "NAME   READY   UP-TO-DATE   AVAILABLE   AGE\nweb    2/3     3            2           60m\n"
        );
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "default", "creationTimestamp": "2026-11-23T11:59:00Z"}
        }))
        .unwrap();
        assert_eq!(
            namespaces(&[ns], now()),
            "NAME      STATUS   AGE\ndefault   Active   60s\n"
        );
    }
}
