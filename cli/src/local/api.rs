//! What the local commands ask of the cluster's API: a client inside the underlay namespace
//! (the cluster's addresses exist only there) with member 1's admin credential, and the
//! waits of `skiff up` and `skiff start` — the nodes, the busybox import and the demo, the
//! pods that come back after a restart.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_api::types::{Node, Pod};
use skiff_client::{Client, ListParams};
use skiff_netplugin::netns;

use super::{BUSYBOX, BUSYBOX_IMAGE, DEMO_MANIFEST, registry};
use crate::endpoints::ClusterEntry;
use crate::{apply, get};

/// Runs `work` with a client of the cluster made from `tls`, inside the underlay namespace
/// (the cluster's addresses exist only there).
pub(super) fn with_client<T, F, Fut>(
    underlay: &Path,
    servers: Vec<String>,
    tls: Arc<rustls::ClientConfig>,
    work: F,
) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, String>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start a runtime: {e}"))?;
    let done = netns::run_async_in(underlay, move || async move {
        let client = Client::builder(servers)
            .tls(tls)
            .request_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        work(client).await
    });
    runtime.block_on(done).map_err(|e| e.to_string())?
}

/// Member 1's admin.conf (the CA and a cluster-admin certificate): its entry, and the TLS
/// config for the members.
pub(super) fn admin_credentials(
    cluster: &Path,
) -> Result<(ClusterEntry, Arc<rustls::ClientConfig>), String> {
    let admin_conf = cluster.join("cp-1").join("admin.conf");
    let admin = skiff_pki::config::load(&admin_conf).map_err(|e| e.to_string())?;
    let (name, entry) = skiff_client::select_cluster(&admin, None)?;
    let tls = entry
        .tls_config(&admin_conf, name, skiff_pki::tls::ServerCheck::Member)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} has no CA", admin_conf.display()))?;
    Ok((entry.clone(), tls))
}

/// Waits until `workers` nodes are Ready; the line to print.
async fn wait_nodes(client: &Client, workers: usize, deadline: Instant) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let ready = ready_nodes(client).await?;
        if ready.len() >= workers {
            return Ok(format!(
                "Nodes ready after {:.1} s: {}\n",
                started.elapsed().as_secs_f64(),
                ready.join(", ")
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nodes not ready in time: {} of {workers} ready",
                ready.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for the API and the nodes, applies the demo and waits for its pods; returns the
/// report to print.
pub(super) async fn bring_up(
    client: &Client,
    workers: usize,
    demo: bool,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    client
        .wait_ready(timeout)
        .await
        .map_err(|e| e.to_string())?;
    let mut report = wait_nodes(client, workers, deadline).await?;
    if Path::new(BUSYBOX).is_file() {
        let nodes: Vec<String> = ready_nodes(client).await?;
        let busybox = std::fs::read(BUSYBOX).map_err(|e| format!("read {BUSYBOX}: {e}"))?;
        import_busybox(client, &busybox, &nodes).await?;
        report.push_str(&format!(
            "Imported {BUSYBOX_IMAGE} (built from this host's {BUSYBOX}) into {}\n",
            nodes.join(", ")
        ));
        // Pulls (imagePullPolicy Always, what busybox and busybox:latest mean) find it there.
        let image = skiff_image::busybox_manifest(&busybox)
            .map_err(|e| format!("build the busybox image: {e}"))?;
        registry::push(BUSYBOX_IMAGE, &image).await?;
        report.push_str(&format!(
            "Pushed {BUSYBOX_IMAGE} into the cluster's registry ({})\n",
            registry::address()
        ));
    }
    if !demo {
        return Ok(report);
    }
    let source = apply::parse_source("examples/demo.yaml", DEMO_MANIFEST)
        .map_err(|e| format!("the demo manifest: {e}"))?;
    let applied = apply::apply(client, &[source], "default")
        .await
        .map_err(|e| format!("apply the demo: {e}"))?;
    for line in applied {
        report.push_str(&line);
        report.push('\n');
    }
    let selector = ListParams::namespace("default").labels("app=demo");
    loop {
        let pods = client
            .list::<Pod>(&selector)
            .await
            .map_err(|e| e.to_string())?;
        let ready = pods.items.iter().filter(|p| pod_ready(p)).count();
        if ready >= 3 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "demo pods not ready within {timeout:?}: {ready} of 3 demo pods ready"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report.push_str("\n$ skiff get pods -o wide\n");
    report.push_str(&pods_table(client, false, Some("app=demo")).await?);
    Ok(report)
}

/// Waits for the nodes, then for the pods on the `cold` nodes (whose containers had all
/// stopped) to run again; returns the report to print. `before`: each pod's
/// resourceVersion before the agents started (its agent writes it again once it restarted
/// the pod's containers). Pods that do not come back in time are named, not an error: the
/// cluster runs.
pub(super) async fn come_back(
    client: &Client,
    workers: usize,
    cold: &[String],
    before: &HashMap<String, String>,
    timeout: Duration,
) -> Result<String, String> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut report = wait_nodes(client, workers, deadline).await?;
    if cold.is_empty() {
        report.push_str("No pod had stopped: their containers kept running\n");
    } else {
        report.push_str(&pods_back(client, cold, before, started, deadline).await?);
    }
    report.push_str("\n$ skiff get pods -A -o wide\n");
    report.push_str(&pods_table(client, true, None).await?);
    Ok(report)
}

/// Waits for the pods on the `cold` nodes to run again (see [`come_back`]); the line to
/// print.
async fn pods_back(
    client: &Client,
    cold: &[String],
    before: &HashMap<String, String>,
    started: Instant,
    deadline: Instant,
) -> Result<String, String> {
    loop {
        let pods = all::<Pod>(client).await?;
        let mine: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.spec.node_name.as_ref().is_some_and(|n| cold.contains(n))
                    && p.metadata.deletion_timestamp.is_none()
                    && !pod_finished(p)
            })
            .collect();
        let waiting: Vec<String> = mine
            .iter()
            .filter(|p| !pod_back(p, before))
            .map(|p| {
                format!(
                    "{}/{} ({})",
                    p.metadata.namespace.as_deref().unwrap_or_default(),
                    p.metadata.name,
                    crate::table::pod_status(p)
                )
            })
            .collect();
        if waiting.is_empty() {
            let nodes: BTreeSet<&str> = mine
                .iter()
                .filter_map(|p| p.spec.node_name.as_deref())
                .collect();
            return Ok(format!(
                "Pods running again after {:.1} s: {}{}\n",
                started.elapsed().as_secs_f64(),
                mine.len(),
                if nodes.is_empty() {
                    String::new()
                } else {
                    format!(" (on {})", nodes.into_iter().collect::<Vec<_>>().join(", "))
                }
            ));
        }
        if Instant::now() > deadline {
            return Ok(format!(
                "Not running again after {:.0} s: {}\n",
                started.elapsed().as_secs_f64(),
                waiting.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a pod on a restarted node is back: written since its agent restarted (or new)
/// and Ready — or waiting for something (a back-off, an image), which its agent reports.
fn pod_back(pod: &Pod, before: &HashMap<String, String>) -> bool {
    let waiting = pod.status.as_ref().is_some_and(|s| {
        s.container_statuses
            .iter()
            .any(|c| c.state.as_ref().is_some_and(|s| s.waiting.is_some()))
    });
    let rewritten = match pod.metadata.uid.as_ref().and_then(|uid| before.get(uid)) {
        Some(version) => pod.metadata.resource_version.as_ref() != Some(version),
        None => true,
    };
    waiting || (rewritten && pod_ready(pod))
}

fn pod_finished(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| phase == "Succeeded" || phase == "Failed")
}

/// `skiff get pods -o wide` (of every namespace, or of `default`).
async fn pods_table(
    client: &Client,
    all_namespaces: bool,
    selector: Option<&str>,
) -> Result<String, String> {
    get::get(
        client,
        &get::GetArgs {
            kind: skiff_api::Kind::Pod,
            names: Vec::new(),
            namespace: "default".into(),
            all_namespaces,
            selector: selector.map(str::to_string),
            field_selector: None,
            show_labels: false,
            no_headers: false,
            label_columns: Vec::new(),
            output: get::Output::Wide,
            chunk_size: 500,
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// Every object of kind `T`, in every namespace.
pub(super) async fn all<T: skiff_client::Resource>(client: &Client) -> Result<Vec<T>, String> {
    client
        .list::<T>(&ListParams::all_namespaces())
        .await
        .map(|list| list.items)
        .map_err(|e| e.to_string())
}

async fn ready_nodes(client: &Client) -> Result<Vec<String>, String> {
    Ok(all::<Node>(client)
        .await?
        .iter()
        .filter(|n| n.is_ready())
        .map(|n| n.metadata.name.clone())
        .collect())
}

/// Puts a busybox image into every node's image store, so that pods (the demo's too) can
/// name `busybox` with no registry in reach: the `oci` runtime runs images only.
async fn import_busybox(client: &Client, busybox: &[u8], nodes: &[String]) -> Result<(), String> {
    let archive = skiff_image::busybox_archive(busybox, BUSYBOX_IMAGE)
        .map_err(|e| format!("build the busybox image: {e}"))?;
    for node in nodes {
        client
            .import_image(node, std::io::Cursor::new(archive.clone()))
            .await
            .map_err(|e| format!("import {BUSYBOX_IMAGE} into node {node}: {e}"))?;
    }
    Ok(())
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_back_pod_was_written_since_and_is_ready_or_waits_for_something() {
        let pod = |rv: &str, ready: bool, waiting: bool| -> Pod {
            let state = if waiting {
                serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}})
            } else {
                serde_json::json!({"running": {"startedAt": "2024-05-01T12:00:00Z"}})
            };
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "namespace": "default", "uid": "u1", "resourceVersion": rv},
                "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "worker-1"},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                    "containerStatuses": [{"name": "c", "ready": ready, "state": state}]
                }
            }))
            .unwrap()
        };
        let before: HashMap<String, String> = [("u1".to_string(), "10".to_string())].into();
        // Its status from before the stop says Ready: not back until written again.
        assert!(!pod_back(&pod("10", true, false), &before));
        assert!(!pod_back(&pod("12", false, false), &before));
        assert!(pod_back(&pod("12", true, false), &before));
        assert!(pod_back(&pod("10", false, true), &before));
        // A pod made since (a deployment's replacement) needs only to be Ready.
        assert!(pod_back(&pod("12", true, false), &HashMap::new()));
    }
}
