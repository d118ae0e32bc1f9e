//! The node's credential: on first start the agent makes a key, sends a CSR with a proof
//! that it holds the cluster token (never the token itself) to a control-plane member, checks
//! the CA it gets back against the token, and keeps everything in `<data-dir>/node.conf`
//! (0600). Later starts read that file and need no network round to join.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_api::proto::JoinNodeRequest;
use skiff_api::proto::cluster_client::ClusterClient;
use skiff_pki::config::{ClusterEntry, SkiffConfig};
use skiff_pki::tls::{ClientAuth, ServerCheck};
use skiff_pki::{ClusterToken, NodeKey};

use crate::config::AgentConfig;

/// The cluster name `node.conf` files its entry under.
pub const NODE_CLUSTER_NAME: &str = "skiff";

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{0}")]
    Config(#[from] skiff_pki::config::ConfigError),
    #[error("node.conf {path}: {message}")]
    NodeConf { path: String, message: String },
    #[error("no node.conf yet and no cluster token to join with")]
    NoToken,
    #[error("cannot make the node key: {0}")]
    Key(#[from] skiff_pki::CaError),
    #[error("tls: {0}")]
    Tls(#[from] skiff_pki::tls::TlsError),
    #[error("the control plane refused to join node {node:?}: {message}")]
    Refused { node: String, message: String },
}

/// The node's certificate, key and cluster CA (PEM).
#[derive(Clone)]
pub struct NodeCredentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCredentials(<redacted>)")
    }
}

impl NodeCredentials {
    /// How the agent dials the control plane: its node certificate, members only.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, CredentialError> {
        Ok(skiff_pki::tls::client_config(
            &self.ca_pem,
            Some((&self.cert_pem, &self.key_pem)),
            ServerCheck::Member,
        )?)
    }

    /// The agent's own port: only members' client certificates pass the handshake.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CredentialError> {
        Ok(skiff_pki::tls::server_config(
            &self.cert_pem,
            &self.key_pem,
            ClientAuth::RequiredMembers {
                ca_pem: self.ca_pem.clone(),
            },
        )?)
    }
}

pub fn node_conf_path(data_dir: &Path) -> PathBuf {
    data_dir.join("node.conf")
}

/// Reads `node.conf` if it exists.
pub fn load(data_dir: &Path) -> Result<Option<NodeCredentials>, CredentialError> {
    let path = node_conf_path(data_dir);
    if !path.exists() {
        return Ok(None);
    }
    let failed = |message: String| CredentialError::NodeConf {
        path: path.display().to_string(),
        message,
    };
    let config = skiff_pki::config::load(&path)?;
    let (name, entry) = match config.clusters.iter().next() {
        Some(first) if config.clusters.len() == 1 => first,
        _ => return Err(failed("expected exactly one cluster".into())),
    };
    let ca_pem = entry.ca.clone().ok_or_else(|| failed("no ca".into()))?;
    match entry.credential(&path, name)? {
        Some(skiff_pki::config::Credential::Certificate { cert_pem, key_pem }) => {
            Ok(Some(NodeCredentials {
                ca_pem,
                cert_pem,
                key_pem,
            }))
        }
        _ => Err(failed("no client certificate".into())),
    }
}

/// The stored credential, or a fresh one obtained from the control plane (retrying while
/// no member answers). Refusals (a wrong token, a node name claimed by another key) are
/// final.
pub async fn load_or_join(config: &AgentConfig) -> Result<NodeCredentials, CredentialError> {
    if let Some(credentials) = load(&config.data_dir)? {
        return Ok(credentials);
    }
    let token = config.token.as_ref().ok_or(CredentialError::NoToken)?;
    let key = NodeKey::generate()?;
    let csr_pem = key.csr_pem(&config.name)?;
    let proof = skiff_pki::join_proof(token, &skiff_pki::csr_der(&csr_pem)?);
    // Only the token's own CA is trusted, and only a member's certificate: a man in the
    // middle cannot hand out a CA of its own.
    let tls = skiff_pki::tls::client_config(&token.ca_cert_pem(), None, ServerCheck::Member)?;
    let request = JoinNodeRequest {
        node_name: config.name.clone(),
        csr_pem,
        proof,
        node_ip: config.node_ip.clone(),
    };
    let mut attempt = 0usize;
    let (certificate_pem, ca_pem) = loop {
        let server = &config.servers[attempt % config.servers.len()];
        attempt += 1;
        match join_once(server, tls.clone(), request.clone()).await {
            Ok(answer) => break answer,
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::PermissionDenied
                        | tonic::Code::Unauthenticated
                        | tonic::Code::InvalidArgument
                ) =>
            {
                return Err(CredentialError::Refused {
                    node: config.name.clone(),
                    message: status.message().to_string(),
                });
            }
            Err(status) => {
                tracing::warn!(%server, "cannot join yet, retrying: {}", status.message());
                if attempt.is_multiple_of(config.servers.len()) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    };
    check_ca(token, &ca_pem)?;
    let credentials = NodeCredentials {
        ca_pem,
        cert_pem: certificate_pem,
        key_pem: key.key_pem(),
    };
    save(&config.data_dir, &config.servers, &credentials)?;
    tracing::info!(node = %config.name, "joined the cluster; credential kept in node.conf");
    Ok(credentials)
}

fn check_ca(token: &ClusterToken, ca_pem: &str) -> Result<(), CredentialError> {
    token.verify_ca(ca_pem.as_bytes())?;
    Ok(())
}

async fn join_once(
    server: &str,
    tls: Arc<rustls::ClientConfig>,
    request: JoinNodeRequest,
) -> Result<(String, String), tonic::Status> {
    let channel = skiff_pki::tls::endpoint(server)
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect_with_connector(skiff_pki::tls::connector(tls))
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connect: {e}")))?;
    let answer = ClusterClient::new(channel)
        .join_node(request)
        .await?
        .into_inner();
    Ok((answer.certificate_pem, answer.ca_pem))
}

fn save(
    data_dir: &Path,
    servers: &[String],
    credentials: &NodeCredentials,
) -> Result<(), CredentialError> {
    let entry = ClusterEntry {
        servers: servers.to_vec(),
        ca: Some(credentials.ca_pem.clone()),
        client_certificate: Some(credentials.cert_pem.clone()),
        client_key: Some(credentials.key_pem.clone()),
        ..ClusterEntry::default()
    };
    let config = SkiffConfig {
        current: Some(NODE_CLUSTER_NAME.into()),
        clusters: [(NODE_CLUSTER_NAME.to_string(), entry)].into(),
    };
    skiff_pki::config::save(&node_conf_path(data_dir), &config)?;
    Ok(())
}
