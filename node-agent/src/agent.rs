//! The agent's main loop: register, heartbeat, and keep one worker per pod bound to this
//! node, fed from a watch that resumes across disconnects and control-plane failovers.
//! While the control plane is unreachable the workers keep their pods running.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skiff_api::types::Pod;
use skiff_client::{Client, ListParams, WatchEvent, WatchParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::AgentConfig;
use crate::events::Recorder;
use crate::network;
use crate::node;
use crate::pod::api::{ClientApi, PodImages};
use crate::pod::worker::{PodWorker, Shared};
use crate::pod_index::PodIndex;
use crate::runtime::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("control plane: {0}")]
    Client(#[from] skiff_client::Error),
    #[error("node credential: {0}")]
    Credential(#[from] crate::credentials::CredentialError),
}

struct Worker {
    pod: watch::Sender<Option<Pod>>,
    task: JoinHandle<()>,
}

/// Runs the agent until `shutdown` resolves. Pods keep running after it returns (a
/// restarted agent adopts them).
pub async fn run_agent<R: Runtime>(
    config: AgentConfig,
    runtime: Arc<R>,
    pod_index: Arc<PodIndex>,
    images: Option<crate::image::NodeImages>,
    tls: Arc<rustls::ClientConfig>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    config.check()?;
    let mut shutdown = std::pin::pin!(shutdown);
    let client = Client::connect(config.servers.clone(), tls)?;
    let registered = loop {
        match node::register(&client, &config).await {
            Ok(node) => break node,
            Err(e) if e.is_unavailable() || e.is_timeout() => {
                tracing::warn!("control plane unavailable, retrying registration: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    tracing::info!(node = registered.metadata.name, "registered");
    let heartbeats = tokio::spawn(node::heartbeat_loop(client.clone(), config.clone()));
    let network = if config.pod_network {
        tokio::select! {
            _ = &mut shutdown => {
                heartbeats.abort();
                return Ok(());
            }
            network = network::setup(&client, &config) => Some(network),
        }
    } else {
        None
    };
    let routes = network.clone().map(|network| {
        tokio::spawn(network::sync_routes_loop(
            client.clone(),
            network,
            config.name.clone(),
            config.route_resync,
        ))
    });
    let shared = Arc::new(Shared {
        network,
        runtime,
        api: Arc::new(ClientApi {
            client: client.clone(),
            events: Recorder::new(client.clone(), config.name.clone()),
        }),
        node_name: config.name.clone(),
        node_ip: config.node_ip.clone(),
        backoff: config.backoff,
        pod_index,
        images: images.map(|i| Arc::new(i) as Arc<dyn PodImages>),
    });
    tokio::select! {
        _ = &mut shutdown => {}
        _ = follow_pods(&client, shared) => {}
    }
    heartbeats.abort();
    if let Some(routes) = routes {
        routes.abort();
    }
    Ok(())
}

/// Lists and watches this node's pods forever, starting and feeding workers.
async fn follow_pods<R: Runtime>(client: &Client, shared: Arc<Shared<R>>) {
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let selector = format!("spec.nodeName={}", shared.node_name);
    let mut first = true;
    loop {
        let listed = match client
            .list::<Pod>(&ListParams::all_namespaces().fields(selector.clone()))
            .await
        {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!("listing pods failed (pods keep running): {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let listed_uids: HashSet<String> = listed.items.iter().filter_map(uid_of).collect();
        if first {
            first = false;
            remove_orphans(&shared, &listed_uids).await;
        }
        // Pods that went while we were not watching.
        for (uid, worker) in &workers {
            if !listed_uids.contains(uid) {
                let _ = worker.pod.send(None);
            }
        }
        for pod in listed.items {
            dispatch(&shared, &mut workers, Some(pod), None);
        }
        let params = WatchParams::all_namespaces()
            .fields(selector.clone())
            .from_version(listed.resource_version);
        let mut events = client.watch::<Pod>(params);
        while let Some(event) = events.next().await {
            match event {
                Ok(WatchEvent::Added(pod)) | Ok(WatchEvent::Modified(pod)) => {
                    dispatch(&shared, &mut workers, Some(pod), None)
                }
                Ok(WatchEvent::Deleted(pod)) => {
                    if let Some(uid) = uid_of(&pod) {
                        dispatch(&shared, &mut workers, None, Some(uid));
                    }
                }
                Ok(WatchEvent::Bookmark(_)) => {}
                Err(e) => {
                    tracing::warn!("pod watch ended, listing again: {e}");
                    break;
                }
            }
            workers.retain(|_, w| !w.task.is_finished());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn uid_of(pod: &Pod) -> Option<String> {
    pod.metadata.uid.clone()
}

/// Hands a pod's latest state (None: deleted) to its worker, starting one if needed.
fn dispatch<R: Runtime>(
    shared: &Arc<Shared<R>>,
    workers: &mut HashMap<String, Worker>,
    pod: Option<Pod>,
    deleted_uid: Option<String>,
) {
    let Some(uid) = pod.as_ref().and_then(uid_of).or(deleted_uid) else {
        return;
    };
    if let Some(worker) = workers.get(&uid)
        && !worker.task.is_finished()
    {
        let _ = worker.pod.send(pod);
        return;
    }
    let Some(pod) = pod else {
        return;
    };
    let (sender, receiver) = watch::channel(Some(pod));
    let worker = PodWorker::new(shared.clone(), uid.clone(), receiver);
    workers.insert(
        uid,
        Worker {
            pod: sender,
            task: tokio::spawn(worker.run()),
        },
    );
}

/// Sandboxes of pods that no longer exist (deleted while the agent was down): stop and
/// remove them, so nothing is left behind.
async fn remove_orphans<R: Runtime>(shared: &Arc<Shared<R>>, live: &HashSet<String>) {
    let sandboxes = match shared.runtime.list_sandboxes().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot list sandboxes: {e}");
            return;
        }
    };
    for sandbox in sandboxes.into_iter().filter(|s| !live.contains(&s.pod_uid)) {
        tracing::info!(
            sandbox = sandbox.id,
            "removing the sandbox of a deleted pod"
        );
        let containers = shared
            .runtime
            .list_containers(Some(&sandbox.id))
            .await
            .unwrap_or_default();
        for c in containers {
            let _ = shared.runtime.stop_container(&c.id, Duration::ZERO).await;
        }
        if let Err(e) = shared.runtime.remove_sandbox(&sandbox.id).await {
            tracing::warn!(sandbox = sandbox.id, "cannot remove: {e}");
        }
    }
    // Addresses of pods that went while the agent was away.
    if let Some(network) = &shared.network {
        let kept: HashSet<String> = match shared.runtime.list_sandboxes().await {
            Ok(s) => s.into_iter().map(|s| s.pod_uid).collect(),
            Err(_) => return,
        };
        match network.retain(|uid| kept.contains(uid)).await {
            Ok(freed) if !freed.is_empty() => tracing::info!(?freed, "freed pod addresses"),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot free stale pod addresses: {e}"),
        }
    }
}
