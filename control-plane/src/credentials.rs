//! A member's credentials: the cluster token, the CA derived from it, and the member's own
//! certificate, issued once and kept under `<data-dir>/tls/`. Also `admin.conf`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use skiff_pki::config::{ClusterEntry, SkiffConfig};
use skiff_pki::tls::{ClientAuth, ServerCheck};
use skiff_pki::{CertifiedKey, ClusterToken, Identity};

use crate::raft_types::NodeId;

/// The cluster name `admin.conf` files its entry under.
pub const ADMIN_CLUSTER_NAME: &str = "skiff";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot issue a certificate: {0}")]
    Ca(#[from] skiff_pki::CaError),
    #[error("tls: {0}")]
    Tls(#[from] skiff_pki::tls::TlsError),
    #[error("admin.conf: {0}")]
    Config(#[from] skiff_pki::config::ConfigError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialsError + '_ {
    move |source| CredentialsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What a member proves itself and dials others with.
pub struct MemberCredentials {
    pub token: ClusterToken,
    pub ca_pem: String,
    pub member: CertifiedKey,
}

impl std::fmt::Debug for MemberCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberCredentials")
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

impl MemberCredentials {
    /// Reads `<data_dir>/tls/member.{crt,key}`, or issues them (for `hosts`) on first
    /// start. The directory is 0700 and the key 0600.
    pub fn load_or_issue(
        data_dir: &Path,
        token: ClusterToken,
        id: NodeId,
        hosts: &[String],
    ) -> Result<MemberCredentials, CredentialsError> {
        let dir = data_dir.join("tls");
        skiff_pki::config::private_dir(&dir).map_err(io(&dir))?;
        let cert_path = dir.join("member.crt");
        let key_path = dir.join("member.key");
        let member = match (
            std::fs::read_to_string(&cert_path),
            std::fs::read_to_string(&key_path),
        ) {
            (Ok(cert_pem), Ok(key_pem)) if !cert_pem.is_empty() && !key_pem.is_empty() => {
                CertifiedKey { cert_pem, key_pem }
            }
            _ => {
                let issued = skiff_pki::issue_member_cert(&token, id, hosts)?;
                // Key first: a certificate on disk always has its key beside it.
                write_private(&key_path, issued.key_pem.as_bytes())?;
                write_private(&cert_path, issued.cert_pem.as_bytes())?;
                issued
            }
        };
        Ok(MemberCredentials {
            ca_pem: token.ca_cert_pem(),
            token,
            member,
        })
    }

    /// The control plane's port: API, Raft and agent proxy, client certificates optional.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CredentialsError> {
        Ok(skiff_pki::tls::server_config(
            &self.member.cert_pem,
            &self.member.key_pem,
            ClientAuth::Optional {
                ca_pem: self.ca_pem.clone(),
            },
        )?)
    }

    /// How this member dials a server that must present `server`'s certificate.
    pub fn client_config(
        &self,
        server: ServerCheck,
    ) -> Result<Arc<rustls::ClientConfig>, CredentialsError> {
        Ok(skiff_pki::tls::client_config(
            &self.ca_pem,
            Some((&self.member.cert_pem, &self.member.key_pem)),
            server,
        )?)
    }

    /// Writes `<data_dir>/admin.conf` (0600) unless it exists: every member's endpoint,
    /// the CA and a cluster-admin client certificate.
    pub fn write_admin_conf(
        &self,
        data_dir: &Path,
        peers: &BTreeMap<NodeId, String>,
    ) -> Result<Option<PathBuf>, CredentialsError> {
        let path = data_dir.join("admin.conf");
        if path.exists() {
            return Ok(None);
        }
        let admin = skiff_pki::issue_client_cert(&self.token, &Identity::admin())?;
        let entry = ClusterEntry {
            servers: peers.values().cloned().collect(),
            ca: Some(self.ca_pem.clone()),
            client_certificate: Some(admin.cert_pem),
            client_key: Some(admin.key_pem),
            ..ClusterEntry::default()
        };
        let config = SkiffConfig {
            current: Some(ADMIN_CLUSTER_NAME.into()),
            clusters: [(ADMIN_CLUSTER_NAME.to_string(), entry)].into(),
        };
        skiff_pki::config::save(&path, &config)?;
        Ok(Some(path))
    }
}

/// Writes a file that only its owner may read, through a temporary file and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CredentialsError> {
    let temporary = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io(&temporary))?;
    file.write_all(bytes).map_err(io(&temporary))?;
    file.sync_all().map_err(io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io(path))?;
    Ok(())
}
