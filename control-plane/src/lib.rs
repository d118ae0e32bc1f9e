//! The Skiff control plane: an openraft cluster whose state machine (in sled) holds every
//! object, served over one gRPC port for clients and peers alike.
//!
//! Library-first: [`run`] serves a node on a listener until a shutdown future resolves;
//! `main.rs` only parses flags.

pub mod admission;
pub mod bootstrap;
pub mod config;
pub mod controllers;
pub mod credentials;
pub mod election;
pub mod error;
pub mod kube;
pub mod metrics;
pub mod pod_security;
pub mod raft_node;
pub mod raft_transport;
pub mod raft_types;
pub mod server;
pub mod staging;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, ServerState};
use skiff_api::proto::agent_server::AgentServer as AgentService;
use skiff_api::proto::cluster_server::ClusterServer as ClusterService;
use skiff_api::proto::metrics_server::MetricsServer as MetricsService;
use skiff_api::proto::objects_server::ObjectsServer as ObjectsService;
use skiff_api::proto::raft_server::RaftServer as RaftService;
use skiff_pki::tls::ServerCheck;
use tokio::net::TcpListener;

pub use config::{Config, ConfigError, InitialClusterState};
use credentials::{CredentialsError, MemberCredentials};
use raft_node::ControlPlane;
use raft_transport::{NetworkFactory, PeerPool};

/// HTTP/2 flow-control windows for peer and API traffic: large enough that one round trip
/// carries a whole large request.
pub const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// HTTP/2 streams a connection may open beyond its watches: unary calls and Raft traffic.
const EXTRA_STREAMS: u32 = 128;

/// Largest message on the wire: snapshots travel in one piece per chunk.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("no cluster token given (--token-file)")]
    NoToken,
    #[error("credentials: {0}")]
    Credentials(#[from] CredentialsError),
    #[error("cannot open the store: {0}")]
    Store(String),
    #[error("cannot start raft: {0}")]
    Raft(String),
    #[error("refusing to start: {0}")]
    Refused(#[from] bootstrap::Refusal),
    #[error("grpc server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("{0}")]
    KubeListen(#[from] kube::ListenError),
}

/// Serves one control-plane node on `listener` until `shutdown` resolves, and its
/// Prometheus metrics on `metrics_listener` if given.
pub async fn run(
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    config.check()?;
    let token = config.token.clone().ok_or(RunError::NoToken)?;
    skiff_pki::config::private_dir(&config.data_dir).map_err(|source| RunError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    // The member certificate names how peers and clients reach this member: its --peers
    // entry, and the address it listens on unless that is every address.
    let mut hosts = vec![config.peers[&config.id].clone()];
    if let Ok(address) = listener.local_addr()
        && !address.ip().is_unspecified()
    {
        hosts.push(address.to_string());
    }
    // The Kubernetes API's address too, when it names a host of its own.
    let kube_listener = config.kube_listen.bind().await?;
    let kube_address = kube_listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(address) = kube_address
        && !address.ip().is_unspecified()
    {
        hosts.push(address.to_string());
    }
    let credentials = Arc::new(MemberCredentials::load_or_issue(
        &config.data_dir,
        token,
        config.id,
        &hosts,
    )?);
    if let Some(path) = credentials.write_admin_conf(&config.data_dir, &config.peers)? {
        tracing::info!(path = %path.display(), "wrote the cluster-admin config");
    }
    let server_tls = credentials.server_config()?;
    let window = store::watch::Window {
        records: config.watch_history,
        bytes: config.watch_history_bytes,
    };
    let (log, sm, shared) = store::open_with(&config.data_dir, window, config.storage_cache_bytes)
        .map_err(|e| RunError::Store(e.to_string()))?;
    let fresh = log.is_fresh().map_err(|e| RunError::Store(e.to_string()))?;
    if log
        .forget_own_leadership(config.id)
        .map_err(|e| RunError::Store(e.to_string()))?
    {
        tracing::info!("was leader when stopped: standing for election instead of resuming");
    }
    let peers = Arc::new(PeerPool::new(
        credentials.client_config(ServerCheck::Member)?,
    ));
    let rejoin = bootstrap::RejoinGuard::open(&config.data_dir);
    let initialize = match (fresh, config.initial_cluster_state) {
        (false, _) => false,
        (true, InitialClusterState::New) => {
            let views = bootstrap::probe_peers(
                config.id,
                &config.peers,
                &peers,
                Duration::from_millis(1000),
            )
            .await;
            bootstrap::may_initialize(config.id, &views)?;
            true
        }
        (true, InitialClusterState::Existing) => {
            rejoin.begin().map_err(|source| RunError::DataDir {
                path: config.data_dir.display().to_string(),
                source,
            })?;
            false
        }
    };
    let raft = raft_types::Raft::new(
        config.id,
        Arc::new(config.raft_config()?),
        NetworkFactory::new(peers.clone()),
        log,
        sm,
    )
    .await
    .map_err(|e| RunError::Raft(e.to_string()))?;
    let node = Arc::new(ControlPlane {
        id: config.id,
        proposals: raft_node::spawn_raft_batcher(raft.clone(), config.request_timeout),
        forwards: raft_node::spawn_forwarder(
            raft.clone(),
            peers.clone(),
            config.peers.clone(),
            config.request_timeout,
        ),
        raft: raft.clone(),
        shared,
        peers,
        request_timeout: config.request_timeout,
        initial_peers: config.peers.clone(),
        heartbeats: Default::default(),
        rejoin,
        elections: election::Elections::new(election::Timing {
            lease: config.election_timeout_max,
            min: config.election_timeout_min,
            max: config.election_timeout_max,
        }),
        credentials,
    });

    if initialize {
        let members: std::collections::BTreeMap<u64, BasicNode> = config
            .peers
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        // Every initial member, on a brand-new data dir only: the same membership at log
        // index 0 everywhere (openraft documents this as safe), so no single member's early
        // death leaves the others without one. A restart never re-initializes.
        if let Err(e) = raft.initialize(members).await {
            tracing::warn!("cluster initialization skipped: {e}");
        }
    }
    if node.rejoin.is_active() {
        tokio::spawn(bootstrap::rejoin(node.clone()));
    }
    tokio::spawn(election::run(node.clone()));
    let settings = controllers::Settings {
        node_grace: config.node_grace,
        pod_eviction_timeout: config.pod_eviction_timeout,
        cluster_cidr: config.pod_cidr_range()?,
        event_ttl: config.event_ttl,
    };
    tokio::spawn(leader_duties(node.clone(), settings));
    tokio::spawn(metrics::count_leader_changes(node.clone()));

    // Watches stream forever; they end when shutdown begins so the graceful stop can finish.
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    if let Some(metrics_listener) = metrics_listener {
        let mut stopping = stopping_rx.clone();
        tokio::spawn(skiff_metrics::serve(
            metrics_listener,
            Arc::new(metrics::registry(node.clone())),
            async move {
                let _ = stopping.wait_for(|stopping| *stopping).await;
            },
        ));
    }

    // Who may do what: each public method asks the gate (server/auth.rs); Raft's methods
    // need a member's certificate (server/raft.rs).
    let gate = server::auth::Gate::new(node.clone());
    let objects_api = Arc::new(server::objects::ObjectsServer {
        node: node.clone(),
        gate: gate.clone(),
        bookmark_interval: Duration::from_secs(1),
        stopping: stopping_rx.clone(),
        max_object_bytes: config.max_object_bytes,
        watches: Arc::new(server::objects::WatchSlots::new(
            config.max_watches_per_connection,
        )),
        events: Default::default(),
    });
    let objects = ObjectsService::from_arc(objects_api.clone())
        // A request over the cap is refused as it arrives (tonic reads the length first), so
        // nothing larger than replication can carry ever reaches the log.
        .max_decoding_message_size(config.max_request_bytes);
    if let (Some(kube_listener), Some(address)) = (kube_listener, kube_address) {
        // Where clients reach it: the advertised host when it listens on every address.
        let host = match address.ip().is_unspecified() {
            true => skiff_pki::host_of(&config.peers[&config.id]).unwrap_or_default(),
            false => address.ip().to_string(),
        };
        let state = Arc::new(kube::KubeState {
            objects: objects_api.clone(),
            gate: gate.clone(),
            address: format!("{host}:{}", address.port()),
        });
        let mut stopping = stopping_rx.clone();
        tracing::info!(addr = %address, "kubernetes api serving");
        tokio::spawn(kube::serve(
            kube_listener,
            (*server_tls).clone(),
            state,
            config.max_request_bytes,
            async move {
                let _ = stopping.wait_for(|stopping| *stopping).await;
            },
        ));
    }
    let cluster = ClusterService::new(server::cluster::ClusterServer {
        node: node.clone(),
        gate: gate.clone(),
    });
    let staging_limit = (4 * config.max_request_bytes as u64).max(64 * 1024 * 1024);
    let raft_service = RaftService::new(server::raft::RaftServer {
        node: node.clone(),
        staging: Arc::new(staging::StagingArea::new(staging_limit)),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tracing::info!(id = config.id, addr = ?listener.local_addr().ok(), "control plane serving");
    // Small Raft and API messages must not wait for Nagle's algorithm (`tls_incoming` sets
    // it on every accepted connection too).
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // HTTP/2's default 64 KiB window caps a stream at 64 KiB per round trip (320 KiB/s
        // over a 200 ms link): far too little for a forwarded or staged multi-MiB write.
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        // Streams per connection are bounded too: the watch cap, and room for the calls a
        // client makes beside its watches (a watch over the cap is refused by name, not
        // queued by HTTP/2).
        .max_concurrent_streams(Some(
            u32::try_from(config.max_watches_per_connection)
                .unwrap_or(u32::MAX)
                .saturating_add(EXTRA_STREAMS),
        ))
        .add_service(objects)
        .add_service(cluster)
        .add_service(raft_service)
        .add_service(AgentService::new(server::agent_proxy::AgentProxy {
            node: node.clone(),
            gate: gate.clone(),
        }))
        .add_service(MetricsService::new(server::top::MetricsServer {
            node: node.clone(),
            agents: server::agent_proxy::AgentProxy {
                node: node.clone(),
                gate,
            },
        }));
    let served = skiff_pki::tls::serve_tls(router, listener, server_tls, shutdown).await;
    let _ = raft.shutdown().await;
    served?;
    Ok(())
}

/// Work only the leader does. Each time this node becomes leader it makes sure the
/// built-in `default` namespace exists and starts the controllers for that term.
async fn leader_duties(node: Arc<ControlPlane>, settings: controllers::Settings) {
    let mut metrics = node.raft.metrics();
    let mut led_term = None;
    // Members the replicated state records as started, as this leader knows them.
    let mut started = std::collections::BTreeSet::new();
    loop {
        let (state, term) = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_term)
        };
        if state == ServerState::Shutdown {
            return;
        }
        if state == ServerState::Leader && led_term != Some(term) {
            led_term = Some(term);
            if let Err(e) = node.ensure_default_namespace().await {
                tracing::warn!("could not create the default namespace: {e}");
                led_term = None;
            } else {
                // A fresh start each term: heartbeats heard in an earlier term are stale.
                node.heartbeats.lock().expect("heartbeats lock").clear();
                started = node.started_members().into_iter().collect();
                tokio::spawn(controllers::run_while_leading(node.clone(), settings, term));
            }
        }
        if state == ServerState::Leader {
            bootstrap::record_started_members(&node, &mut started).await;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
