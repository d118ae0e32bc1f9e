//! `skiff net check`: proves the flat pod network end to end. It runs a probe pod on every
//! Ready node (an HTTP server whose CGI answers with the caller's address as the server saw
//! it) and a host-network probe beside it, then has every probe pod call every other probe
//! pod, and every host call every probe pod, by pod IP. A pair fails when the call fails or
//! when a pod-to-pod call arrives from an address other than the calling pod's IP (NAT).
//! The probes are deleted afterwards (unless `--keep`).
//!
//! With the `process` runtime the probes run the nodes' `busybox` (`--busybox`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use skiff_api::Kind;
use skiff_api::types::{Namespace, Node, Pod};

use crate::verbs::wait_gone;
use skiff_client::{Client, DeleteParams, ListParams};

/// The namespace the probes run in. Host-network probes need the `privileged` Pod Security
/// level, which no namespace has unless a cluster-admin gives it: the check makes this one,
/// so labelled, when it is missing (and removes it again unless `--keep`).
pub const NAMESPACE: &str = "skiff-net-check";

/// Label on every probe pod, with the run's id as value.
pub const PROBE_LABEL: &str = "skiff.dev/net-check";
/// Where probe servers listen.
const PORT: u16 = 8080;

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub busybox: String,
    /// How long probes may take to start.
    pub timeout: Duration,
    /// Leave the probe pods running afterwards.
    pub keep: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Api(#[from] skiff_client::Error),
    #[error("no Ready node to check")]
    NoNodes,
    #[error(
        "namespace {NAMESPACE} is still terminating after {0:?}: an earlier check's probes are still going"
    )]
    NamespaceTerminating(Duration),
    #[error("probe pods not running after {0:?}: {1}")]
    ProbesNotReady(Duration, String),
}

/// What one call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The server saw this source address instead of the calling pod's IP.
    Nat(String),
    Failed(String),
}

/// Who called: a probe pod (by its node) or a node's host network.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Caller {
    Pod(String),
    Host(String),
}

impl Caller {
    fn label(&self) -> String {
        match self {
            Caller::Pod(node) => format!("pod@{node}"),
            Caller::Host(node) => format!("host {node}"),
        }
    }
}

/// Every call's verdict, by caller and by the node of the probe pod called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Called probes: node → pod IP.
    pub targets: BTreeMap<String, Ipv4Addr>,
    pub results: BTreeMap<(Caller, String), Verdict>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.results.values().all(|v| *v == Verdict::Ok)
    }

    /// A matrix (rows: callers; columns: pods called, by node) and one line per failure.
    pub fn render(&self) -> String {
        let callers: Vec<&Caller> = {
            let mut c: Vec<&Caller> = self.results.keys().map(|(c, _)| c).collect();
            c.dedup();
            c
        };
        let width = callers
            .iter()
            .map(|c| c.label().len())
            .max()
            .unwrap_or(4)
            .max(4);
        let col = |node: &str| node.len().max(4);
        let mut out = String::new();
        let _ = write!(out, "{:width$}", "FROM \\ TO");
        for node in self.targets.keys() {
            let _ = write!(out, "  {:w$}", node, w = col(node));
        }
        out.push('\n');
        for caller in &callers {
            let _ = write!(out, "{:width$}", caller.label());
            for node in self.targets.keys() {
                let cell = match self.results.get(&((*caller).clone(), node.clone())) {
                    None => "-",
                    Some(Verdict::Ok) => "ok",
                    Some(Verdict::Nat(_)) => "NAT",
                    Some(Verdict::Failed(_)) => "FAIL",
                };
                let _ = write!(out, "  {:w$}", cell, w = col(node));
            }
            out.push('\n');
        }
        for ((caller, node), verdict) in &self.results {
            let target = format!("pod@{node} ({})", self.targets[node]);
            match verdict {
                Verdict::Ok => {}
                Verdict::Nat(seen) => {
                    let _ = writeln!(
                        out,
                        "NAT:  {} -> {target}: the server saw {seen}",
                        caller.label()
                    );
                }
                Verdict::Failed(why) => {
                    let _ = writeln!(out, "FAIL: {} -> {target}: {why}", caller.label());
                }
            }
        }
        let failed = self.results.values().filter(|v| **v != Verdict::Ok).count();
        let _ = writeln!(
            out,
            "{} of {} calls ok across {} nodes",
            self.results.len() - failed,
            self.results.len(),
            self.targets.len()
        );
        out
    }
}

/// The verdict of a pod-to-pod call: `seen` is what the server reported as its peer.
pub fn judge(caller_ip: Option<Ipv4Addr>, seen: &str) -> Verdict {
    // httpd listens on IPv6 too and writes IPv4 peers as `[::ffff:a.b.c.d]`.
    let seen = seen
        .trim()
        .trim_start_matches("[::ffff:")
        .trim_end_matches(']');
    match caller_ip {
        Some(ip) if seen != ip.to_string() => Verdict::Nat(seen.to_string()),
        _ => Verdict::Ok,
    }
}

fn server_pod(run: &str, node: &str, options: &CheckOptions) -> Pod {
    let www = format!("/tmp/skiff-net-check-{run}-{node}");
    let bb = &options.busybox;
    let script = format!(
        "mkdir -p $W/cgi-bin && \
         printf '#!{bb} sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > $W/cgi-bin/ip && \
         chmod +x $W/cgi-bin/ip && exec {bb} httpd -f -p {PORT} -h $W"
    );
    probe(
        run,
        &format!("net-check-{node}"),
        node,
        false,
        json!({
            "name": "server", "image": "busybox",
            "command": [bb, "sh", "-c", script],
            "env": [{"name": "W", "value": www}],
            "volumeMounts": [{"name": "www", "mountPath": www}]
        }),
    )
}

fn host_pod(run: &str, node: &str, options: &CheckOptions) -> Pod {
    probe(
        run,
        &format!("net-check-host-{node}"),
        node,
        true,
        json!({
            "name": "client", "image": "busybox",
            "command": [options.busybox, "sleep", "3600"]
        }),
    )
}

fn probe(
    run: &str,
    name: &str,
    node: &str,
    host_network: bool,
    container: serde_json::Value,
) -> Pod {
    let mut spec = json!({
        "nodeSelector": {"kubernetes.io/hostname": node},
        "terminationGracePeriodSeconds": 0,
        "containers": [container]
    });
    if host_network {
        spec["hostNetwork"] = json!(true);
    } else {
        spec["volumes"] = json!([{"name": "www", "emptyDir": {}}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {PROBE_LABEL: run}},
        "spec": spec
    }))
    .expect("probe pod json")
}

/// Runs the check; the probes (and the namespace, if this run made it) are removed again
/// unless `keep`, also when it fails.
pub async fn run(client: &Client, options: &CheckOptions) -> Result<Report, CheckError> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let made_namespace = ensure_namespace(client, options.timeout).await?;
    let result = check(client, options, &run).await;
    if !options.keep {
        let probes = client
            .list::<Pod>(&ListParams::namespace(NAMESPACE).labels(format!("{PROBE_LABEL}={run}")))
            .await;
        for pod in probes.map(|l| l.items).unwrap_or_default() {
            let _ = client
                .delete::<Pod>(NAMESPACE, &pod.metadata.name, &DeleteParams::force())
                .await;
        }
        if made_namespace {
            // Wait for it to go, as `delete ns` does: a check run right after this one would
            // otherwise find it Terminating and be refused its probes.
            let deadline = tokio::time::Instant::now() + options.timeout;
            if client
                .delete::<Namespace>("", NAMESPACE, &DeleteParams::default())
                .await
                .is_ok()
            {
                let _ = wait_gone(client, Kind::Namespace, "", NAMESPACE, deadline).await;
            }
        }
    }
    result
}

/// Makes [`NAMESPACE`] at the `privileged` level when it does not exist; whether it did.
/// One left Terminating by an earlier run is waited out (up to `timeout`) and made anew.
async fn ensure_namespace(client: &Client, timeout: Duration) -> Result<bool, CheckError> {
    let existing = match client.get::<Namespace>("", NAMESPACE).await {
        Ok(namespace) => Some(namespace),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(namespace) = existing {
        if namespace.metadata.deletion_timestamp.is_none() {
            return Ok(false);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        if !wait_gone(client, Kind::Namespace, "", NAMESPACE, deadline).await? {
            return Err(CheckError::NamespaceTerminating(timeout));
        }
    }
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {
            "name": NAMESPACE,
            "labels": {"pod-security.kubernetes.io/enforce": "privileged"}
        }
    }))
    .expect("namespace json");
    match client.create(&namespace).await {
        Ok(_) => Ok(true),
        // Another run made it meanwhile.
        Err(e) if e.is_already_exists() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn check(client: &Client, options: &CheckOptions, run: &str) -> Result<Report, CheckError> {
    let nodes: Vec<String> = client
        .list::<Node>(&ListParams::all_namespaces())
        .await?
        .items
        .iter()
        .filter(|n| n.is_ready())
        .map(|n| n.metadata.name.clone())
        .collect();
    if nodes.is_empty() {
        return Err(CheckError::NoNodes);
    }
    for node in &nodes {
        client.create(&server_pod(run, node, options)).await?;
        client.create(&host_pod(run, node, options)).await?;
    }
    // Wait for every probe to run (servers with their pod IPs).
    let deadline = tokio::time::Instant::now() + options.timeout;
    let targets = loop {
        let pods = client
            .list::<Pod>(&ListParams::namespace(NAMESPACE).labels(format!("{PROBE_LABEL}={run}")))
            .await?
            .items;
        let running =
            |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let mut targets = BTreeMap::new();
        let mut waiting = Vec::new();
        for node in &nodes {
            let server = pods
                .iter()
                .find(|p| p.metadata.name == format!("net-check-{node}"));
            let host = pods
                .iter()
                .find(|p| p.metadata.name == format!("net-check-host-{node}"));
            let ip = server
                .filter(|p| running(p))
                .and_then(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse::<Ipv4Addr>().ok());
            match (ip, host.is_some_and(running)) {
                (Some(ip), true) => {
                    targets.insert(node.clone(), ip);
                }
                _ => waiting.push(node.clone()),
            }
        }
        if waiting.is_empty() {
            break targets;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CheckError::ProbesNotReady(
                options.timeout,
                format!("waiting on node(s) {}", waiting.join(", ")),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Give the servers a moment to listen, then call in parallel.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut calls = Vec::new();
    for from in &nodes {
        for to in &nodes {
            if from != to {
                calls.push((Caller::Pod(from.clone()), to.clone()));
            }
            calls.push((Caller::Host(from.clone()), to.clone()));
        }
    }
    let results = futures::stream::iter(calls)
        .map(|(caller, to)| {
            let targets = &targets;
            async move {
                let (pod, caller_ip) = match &caller {
                    Caller::Pod(node) => (format!("net-check-{node}"), Some(targets[node])),
                    Caller::Host(node) => (format!("net-check-host-{node}"), None),
                };
                let url = format!("http://{}:{PORT}/cgi-bin/ip", targets[&to]);
                let bb = options.busybox.clone();
                let argv: Vec<String> = [&bb, "timeout", "3", &bb, "wget", "-qO-", &url]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                let verdict = match client.exec_output(NAMESPACE, &pod, None, &argv).await {
                    Ok(out) if out.exit_code == 0 => {
                        judge(caller_ip, &String::from_utf8_lossy(&out.stdout))
                    }
                    Ok(out) => Verdict::Failed(format!(
                        "no answer (exit {}{})",
                        out.exit_code,
                        match String::from_utf8_lossy(&out.stderr).trim() {
                            "" => String::new(),
                            e => format!(": {e}"),
                        }
                    )),
                    Err(e) => Verdict::Failed(format!("exec failed: {e}")),
                };
                ((caller, to), verdict)
            }
        })
        .buffer_unordered(8)
        .collect::<BTreeMap<_, _>>()
        .await;
    Ok(Report { targets, results })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_the_peer_address() {
        let ip: Ipv4Addr = "10.244.1.2".parse().unwrap();
        assert_eq!(judge(Some(ip), "[::ffff:10.244.1.2]\n"), Verdict::Ok);
        assert_eq!(judge(Some(ip), "10.244.1.2"), Verdict::Ok);
        assert_eq!(
            judge(Some(ip), "[::ffff:10.250.0.2]"),
            Verdict::Nat("10.250.0.2".into())
        );
        // Hosts have several addresses; any answer will do.
        assert_eq!(judge(None, "10.244.0.1"), Verdict::Ok);
    }

    #[test]
    fn report_matrix_and_failures() {
        let mut report = Report::default();
        report
            .targets
            .insert("node-a".into(), "10.244.0.2".parse().unwrap());
        report
            .targets
            .insert("node-b".into(), "10.244.1.2".parse().unwrap());
        let ok = |c: Caller, to: &str| ((c, to.to_string()), Verdict::Ok);
        report.results.extend([
            ok(Caller::Pod("node-a".into()), "node-b"),
            ok(Caller::Host("node-a".into()), "node-a"),
            ok(Caller::Host("node-a".into()), "node-b"),
            ok(Caller::Host("node-b".into()), "node-a"),
            ok(Caller::Host("node-b".into()), "node-b"),
        ]);
        report.results.insert(
            (Caller::Pod("node-b".into()), "node-a".into()),
            Verdict::Failed("no answer (exit 1)".into()),
        );
        assert!(!report.passed());
        let text = report.render();
        let expected = "\
FROM \\ TO    node-a  node-b
pod@node-a   -       ok    
pod@node-b   FAIL    -     
host node-a  ok      ok    
host node-b  ok      ok    
FAIL: pod@node-b -> pod@node-a (10.244.0.2): no answer (exit 1)
5 of 6 calls ok across 2 nodes
";
        assert_eq!(text, expected);
    }
}
