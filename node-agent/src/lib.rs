//! The Skiff node agent (`skiff-agent`): registers its node, heartbeats, watches the pods
//! bound to it and runs them through a [`runtime::Runtime`], writing their status back.

pub mod agent;
pub mod cleanup;
pub mod config;
pub mod credentials;
pub mod events;
pub mod image;
pub mod image_service;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod node;
pub mod pod;
pub mod pod_index;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod usage;

use std::future::Future;
use std::sync::Arc;

use skiff_api::proto::agent_server::AgentServer;
use tokio::net::TcpListener;

pub use agent::AgentError;
pub use config::AgentConfig;

/// The node's image store: the one the runtime runs containers from, else the store at
/// `<data-dir>/images`, where the `oci` runtime keeps it (so images can be imported ahead of
/// a switch of runtime).
fn image_store(
    config: &AgentConfig,
    images: Option<&image::NodeImages>,
) -> Result<image::ImageStore, String> {
    if let Some(images) = images {
        return Ok(images.store.clone());
    }
    let root = config.data_dir.join("images");
    image::ImageStore::open(&root)
        .map(|store| store.with_limits(config.image_limits))
        .map_err(|e| {
            tracing::warn!("image store {}: {e}", root.display());
            e.to_string()
        })
}

/// Runs the agent with `runtime` — registration, heartbeats, pods — and serves logs, exec,
/// port-forward and the image store on `listener`, until `shutdown` resolves. `images`:
/// the store `runtime` runs containers from and how to pull into it (None for runtimes of
/// host programs). Pods keep running afterwards; the next start adopts them. Prometheus
/// metrics are served on `metrics_listener` if given.
pub async fn serve<R: runtime::Runtime>(
    config: AgentConfig,
    runtime: Arc<R>,
    images: Option<image::NodeImages>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    config.check()?;
    let mut shutdown = std::pin::pin!(shutdown);
    // The node's certificate first: the agent's port serves TLS with it, and the agent
    // speaks to the control plane with it.
    let credentials = tokio::select! {
        credentials = credentials::load_or_join(&config) => credentials?,
        _ = &mut shutdown => return Ok(()),
    };
    let server_tls = credentials.server_config()?;
    let client_tls = credentials.client_config()?;
    let pod_index = Arc::new(pod_index::PodIndex::default());
    let runtime = Arc::new(metrics::Instrumented::new(runtime));
    let usage = Arc::new(usage::UsageBook::default());
    let sampler = tokio::spawn(usage::sample_loop(
        runtime.clone(),
        pod_index.clone(),
        usage.clone(),
    ));
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(metrics_listener) = metrics_listener {
        tokio::spawn(skiff_metrics::serve(
            metrics_listener,
            Arc::new(metrics::registry(pod_index.clone(), usage.clone())),
            async {
                let _ = metrics_stopped.await;
            },
        ));
    }
    let service = AgentServer::new(server::AgentService {
        runtime: runtime.clone(),
        pod_index: pod_index.clone(),
        usage,
        images: image_service::ImageService::new(
            image_store(&config, images.as_ref()),
            &config.data_dir,
        ),
        exec_sessions: Arc::new(server::ExecSessions::new(config.exec_limits)),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = tonic::transport::Server::builder().add_service(service);
    let api = tokio::spawn(skiff_pki::tls::serve_tls(
        router,
        listener,
        server_tls,
        async {
            let _ = stopped.await;
        },
    ));
    let result = agent::run_agent(config, runtime, pod_index, images, client_tls, shutdown).await;
    let _ = stop.send(());
    let _ = stop_metrics.send(());
    sampler.abort();
    match api.await {
        Ok(Err(e)) => tracing::warn!("agent api: {e}"),
        Err(e) => tracing::warn!("agent api task: {e}"),
        Ok(Ok(())) => {}
    }
    result
}
