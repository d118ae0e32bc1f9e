//! kubectl's tables: the columns and STATUS texts `kubectl get` prints, as pure functions of
//! the objects and the current time (so they are tested with fixed objects). Each builds a
//! [`Table`] (a header and rows of cells); callers may add columns, then [`Table::render`]
//! lays it out. `skiff get` prints them; the control plane's Kubernetes API serves the same
//! ones to kubectl as server-side tables.

use std::collections::BTreeMap;

use crate::meta::{ObjectMeta, Time};
use crate::types::{Deployment, Event, Namespace, Node, Pod};

/// A table before layout: a header and one row of cells per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str], rows: Vec<Vec<String>>) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
        }
    }

    /// Adds a column before column `index`: its header, and a cell per row in row order (an
    /// empty one for rows beyond `cells`).
    pub fn insert_column(
        &mut self,
        index: usize,
        name: &str,
        cells: impl IntoIterator<Item = String>,
    ) {
        self.header.insert(index, name.to_string());
        let mut cells = cells.into_iter();
        for row in &mut self.rows {
            row.insert(index, cells.next().unwrap_or_default());
        }
    }

    /// Adds a column at the end (see [`Table::insert_column`]).
    pub fn push_column(&mut self, name: &str, cells: impl IntoIterator<Item = String>) {
        self.insert_column(self.header.len(), name, cells);
    }

    /// kubectl's `-L KEY` columns (the key upper-cased; each row's value, or nothing) and,
    /// with `show_labels`, its LABELS column (`k=v,k2=v2`, or `<none>`), for rows made from
    /// objects with these `labels`, in row order.
    pub fn add_label_columns(
        &mut self,
        labels: &[&BTreeMap<String, String>],
        keys: &[String],
        show_labels: bool,
    ) {
        for key in keys {
            let values = labels
                .iter()
                .map(|l| l.get(key).cloned().unwrap_or_default());
            self.push_column(&key.to_uppercase(), values);
        }
        if show_labels {
            self.push_column("LABELS", labels.iter().map(|l| labels_text(l)));
        }
    }

    /// Puts `prefix` before every cell of the NAME column (`pod/` when a table is one of
    /// several kinds).
    pub fn prefix_names(&mut self, prefix: &str) {
        if let Some(column) = self.header.iter().position(|h| h == "NAME") {
            for row in &mut self.rows {
                if let Some(cell) = row.get_mut(column) {
                    cell.insert_str(0, prefix);
                }
            }
        }
    }

    /// The lines as printed, header first (none when it is empty: `--no-headers`), without
    /// line ends: every column but the last padded to its widest cell and three spaces
    /// apart, like kubectl's tabwriter.
    pub fn lines(&self) -> Vec<String> {
        let header = (!self.header.is_empty()).then_some(&self.header);
        let all = || header.into_iter().chain(&self.rows);
        let mut widths: Vec<usize> = Vec::new();
        for row in all() {
            for (i, cell) in row.iter().enumerate() {
                let width = cell.chars().count();
                match widths.get_mut(i) {
                    Some(w) => *w = (*w).max(width),
                    None => widths.push(width),
                }
            }
        }
        all()
            .map(|cells| {
                let mut line = String::new();
                for (i, cell) in cells.iter().enumerate() {
                    if i + 1 == cells.len() {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:w$}   ", w = widths[i]));
                    }
                }
                line
            })
            .collect()
    }

    /// The table as printed: [`Table::lines`], each ended by `\n`.
    pub fn render(&self) -> String {
        self.lines().into_iter().map(|line| line + "\n").collect()
    }
}

/// `k=v,k2=v2`, or `<none>`.
fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The NAMESPACE column `-A` puts first, for rows made from objects with these `metas`.
fn namespace_column<'a>(table: &mut Table, metas: impl IntoIterator<Item = &'a ObjectMeta>) {
    let namespaces = metas
        .into_iter()
        .map(|m| m.namespace.clone().unwrap_or_default());
    table.insert_column(0, "NAMESPACE", namespaces);
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

/// The RESTARTS column: the containers' restarts, and how long ago the last one ended
/// when known (`3 (2m ago)`), as kubectl prints it.
fn restarts(pod: &Pod, now: Time) -> String {
    let statuses = pod
        .status
        .as_ref()
        .map(|s| s.container_statuses.as_slice())
        .unwrap_or_default();
    let count: i32 = statuses.iter().map(|c| c.restart_count).sum();
    let last = statuses
        .iter()
        .filter_map(|c| c.last_state.as_ref()?.terminated.as_ref()?.finished_at)
        .max();
    match last {
        Some(at) if count > 0 => {
            format!("{count} ({} ago)", human_duration((now - at).num_seconds()))
        }
        _ => count.to_string(),
    }
}

/// `kubectl get pods` (`wide` adds IP, NODE, NOMINATED NODE and READINESS GATES;
/// `namespaces` adds NAMESPACE first).
pub fn pods(pods: &[Pod], wide: bool, namespaces: bool, now: Time) -> Table {
    let rows = pods
        .iter()
        .map(|pod| {
            let status = pod.status.clone().unwrap_or_default();
            let ready = status.container_statuses.iter().filter(|c| c.ready).count();
            vec![
                pod.metadata.name.clone(),
                format!("{ready}/{}", pod.spec.containers.len()),
                pod_status(pod),
                restarts(pod, now),
                age(&pod.metadata, now),
            ]
        })
        .collect();
    let mut table = Table::new(&["NAME", "READY", "STATUS", "RESTARTS", "AGE"], rows);
    if wide {
        let ip = |pod: &Pod| pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        table.push_column("IP", pods.iter().map(|p| or_none(ip(p))));
        let node = pods.iter().map(|p| or_none(p.spec.node_name.clone()));
        table.push_column("NODE", node);
        // Skiff has no preemption and no readiness gates: kubectl's `<none>` for both.
        table.push_column("NOMINATED NODE", pods.iter().map(|_| or_none(None)));
        table.push_column("READINESS GATES", pods.iter().map(|_| or_none(None)));
    }
    if namespaces {
        namespace_column(&mut table, pods.iter().map(|p| &p.metadata));
    }
    table
}

/// The value, or `<none>`.
fn or_none(value: Option<String>) -> String {
    value.unwrap_or_else(|| "<none>".into())
}

/// A node's roles from its `node-role.kubernetes.io/ROLE` labels (and
/// `kubernetes.io/role`), sorted and comma-separated, or `<none>`, as kubectl finds them.
fn node_roles(node: &Node) -> String {
    let mut roles: Vec<&str> = node
        .metadata
        .labels
        .iter()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) => Some(role),
            None if k == "kubernetes.io/role" => Some(v.as_str()),
            None => None,
        })
        .filter(|role| !role.is_empty())
        .collect();
    roles.sort_unstable();
    roles.dedup();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

/// `kubectl get nodes`: NAME STATUS ROLES AGE VERSION (`wide` adds INTERNAL-IP,
/// EXTERNAL-IP, OS-IMAGE, KERNEL-VERSION and CONTAINER-RUNTIME).
pub fn nodes(nodes: &[Node], wide: bool, now: Time) -> Table {
    let info = |node: &Node| {
        node.status
            .as_ref()
            .and_then(|s| s.node_info.clone())
            .unwrap_or_default()
    };
    let rows = nodes
        .iter()
        .map(|node| {
            let status = node.status.clone().unwrap_or_default();
            let mut state = match status.conditions.iter().find(|c| c.type_ == "Ready") {
                Some(c) if c.status == "True" => "Ready".to_string(),
                Some(c) if c.status == "False" => "NotReady".to_string(),
                _ => "Unknown".to_string(),
            };
            if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
                state.push_str(",SchedulingDisabled");
            }
            vec![
                node.metadata.name.clone(),
                state,
                node_roles(node),
                age(&node.metadata, now),
                info(node).kubelet_version,
            ]
        })
        .collect();
    let mut table = Table::new(&["NAME", "STATUS", "ROLES", "AGE", "VERSION"], rows);
    if wide {
        let address = |node: &Node, type_: &str| {
            let addresses = &node.status.as_ref()?.addresses;
            let found = addresses.iter().find(|a| a.type_ == type_)?;
            Some(found.address.clone())
        };
        let unknown = |text: String| {
            if text.is_empty() {
                "<unknown>".to_string()
            } else {
                text
            }
        };
        let internal = nodes.iter().map(|n| or_none(address(n, "InternalIP")));
        table.push_column("INTERNAL-IP", internal);
        let external = nodes.iter().map(|n| or_none(address(n, "ExternalIP")));
        table.push_column("EXTERNAL-IP", external);
        table.push_column("OS-IMAGE", nodes.iter().map(|n| unknown(info(n).os_image)));
        let kernel = nodes.iter().map(|n| unknown(info(n).kernel_version));
        table.push_column("KERNEL-VERSION", kernel);
        let runtime = nodes
            .iter()
            .map(|n| unknown(info(n).container_runtime_version));
        table.push_column("CONTAINER-RUNTIME", runtime);
    }
    table
}

/// `kubectl get deployments`.
pub fn deployments(deployments: &[Deployment], namespaces: bool, now: Time) -> Table {
    let rows = deployments
        .iter()
        .map(|d| {
            let status = d.status.clone().unwrap_or_default();
            vec![
                d.metadata.name.clone(),
                format!(
                    "{}/{}",
                    status.ready_replicas.unwrap_or(0),
                    d.spec.replicas.unwrap_or(1)
                ),
                status.updated_replicas.unwrap_or(0).to_string(),
                status.available_replicas.unwrap_or(0).to_string(),
                age(&d.metadata, now),
            ]
        })
        .collect();
    let header = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"];
    let mut table = Table::new(&header, rows);
    if namespaces {
        namespace_column(&mut table, deployments.iter().map(|d| &d.metadata));
    }
    table
}

/// `kubectl get namespaces`.
pub fn namespaces(namespaces: &[Namespace], now: Time) -> Table {
    let rows = namespaces
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
    Table::new(&["NAME", "STATUS", "AGE"], rows)
}

/// When an event was last seen: its last timestamp, else its creation.
pub fn last_seen(event: &Event) -> Option<Time> {
    event.last_timestamp.or(event.metadata.creation_timestamp)
}

/// `kubectl get events`: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, oldest first. `events`
/// are sorted so in place, and so stay in row order for columns the caller adds.
pub fn events(events: &mut [Event], namespaces: bool, now: Time) -> Table {
    events.sort_by_key(last_seen);
    let rows = events
        .iter()
        .map(|e| {
            let object = &e.involved_object;
            vec![
                match last_seen(e) {
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
            ]
        })
        .collect();
    let header = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];
    let mut table = Table::new(&header, rows);
    if namespaces {
        namespace_column(&mut table, events.iter().map(|e| &e.metadata));
    }
    table
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
    fn a_table_without_its_header_lays_out_its_rows_by_their_own_widths() {
        let mut table = Table::new(
            &["NAME", "STATUS"],
            vec![
                vec!["a".into(), "Active".into()],
                vec!["bb".into(), "Terminating".into()],
            ],
        );
        assert_eq!(
            table.render(),
            "NAME   STATUS\na      Active\nbb     Terminating\n"
        );
        table.header.clear();
        assert_eq!(table.render(), "a    Active\nbb   Terminating\n");
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
    fn pod_status_column_follows_kubectl() {
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
NAMESPACE   NAME              READY   STATUS             RESTARTS   AGE   IP           NODE     NOMINATED NODE   READINESS GATES
default     web-7d4b9-x2x9q   1/2     CrashLoopBackOff   3          3m    10.244.0.2   host-1   <none>           <none>
team-a      pending           0/1     Pending            0          30s   <none>       <none>   <none>           <none>
"
        );
        // The last restart's age, when the container's last state says when it ended.
        let mut restarted = pods[0].clone();
        let statuses = &mut restarted.status.as_mut().unwrap().container_statuses;
        statuses[1].last_state = Some(
            serde_json::from_value(serde_json::json!({"terminated": {
                "exitCode": 1, "finishedAt": "2026-11-23T11:58:00Z"}}))
            .unwrap(),
        );
        assert_eq!(restarts(&restarted, now()), "3 (2m ago)");
    }

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn rows_are_laid_out_in_padded_columns() {
        let mut table = Table::new(
            &["NAME", "STATUS"],
            vec![row(&["web", "Running"]), row(&["database-0", "Pending"])],
        );
        assert_eq!(
            table.lines(),
            [
                "NAME         STATUS",
                "web          Running",
                "database-0   Pending"
            ]
        );
        // Columns go in anywhere; cells are counted in characters, not bytes; the last
        // column is never padded.
        table.insert_column(0, "NAMESPACE", ["défaut".to_string(), "team-a".into()]);
        table.push_column("NOTE", ["".to_string()]);
        assert_eq!(
            table.render(),
            "NAMESPACE   NAME         STATUS    NOTE\n\
             défaut      web          Running   \n\
             team-a      database-0   Pending   \n"
        );
        assert_eq!(
            Table::new(&["NAME", "AGE"], vec![]).render(),
            "NAME   AGE\n"
        );
    }

    #[test]
    fn label_columns_follow_the_rows() {
        let mut table = Table::new(
            &["NAME", "READY", "STATUS"],
            vec![
                row(&["web", "1/1", "Running"]),
                row(&["db", "0/1", "Pending"]),
            ],
        );
        let web = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "fe".to_string()),
        ]);
        let none = BTreeMap::new();
        table.add_label_columns(&[&web, &none], &["tier".to_string()], true);
        assert_eq!(
            table.render(),
            "NAME   READY   STATUS    TIER   LABELS\nweb    1/1     Running   fe     app=web,tier=fe\ndb     0/1     Pending          <none>\n"
        );
        // Header cells with a space ("LAST SEEN") are cells like any other.
        let mut events = Table::new(&["LAST SEEN", "MESSAGE"], vec![row(&["2m", "a  b"])]);
        events.add_label_columns(&[&web], &["app".to_string()], false);
        assert_eq!(
            events.render(),
            "LAST SEEN   MESSAGE   APP\n2m          a  b      web\n"
        );
    }

    #[test]
    fn events_table_prints_what_kubectl_prints() {
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
        let mut events = vec![
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
            super::events(&mut events, false, now()).render(),
            "\
LAST SEEN   TYPE     REASON      OBJECT      MESSAGE
2m          Normal   Scheduled   pod/web-1   Successfully assigned default/web-1 to host-1
10s         Normal   Started     pod/web-1   Started container main
"
        );
    }

    fn pods_table(p: &[Pod], wide: bool, namespaces: bool) -> String {
        pods(p, wide, namespaces, now()).render()
    }

    #[test]
    fn nodes_deployments_namespaces_golden() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "host-1", "creationTimestamp": "2026-11-21T12:00:00Z",
                         "labels": {"node-role.kubernetes.io/worker": "",
                                    "node-role.kubernetes.io/edge": "", "app": "x"}},
            "spec": {"podCIDR": "10.244.0.0/24", "unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.250.0.2"}],
                       "nodeInfo": {"kubeletVersion": "v0.1.0", "kernelVersion": "6.1.0",
                                    "containerRuntimeVersion": "runc://1.1.12"}}
        }))
        .unwrap();
        assert_eq!(
            nodes(&[node], true, now()).render(),
            "\
NAME     STATUS                     ROLES         AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE    KERNEL-VERSION   CONTAINER-RUNTIME
host-1   Ready,SchedulingDisabled   edge,worker   2d    v0.1.0    10.250.0.2    <none>        <unknown>   6.1.0            runc://1.1.12
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
            deployments(&[d], false, now()).render(),
            "NAME   READY   UP-TO-DATE   AVAILABLE   AGE\nweb    2/3     3            2           60m\n"
        );
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "default", "creationTimestamp": "2026-11-23T11:59:00Z"}
        }))
        .unwrap();
        assert_eq!(
            namespaces(&[ns], now()).render(),
            "NAME      STATUS   AGE\ndefault   Active   60s\n"
        );
    }
}
