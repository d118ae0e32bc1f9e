//! The client config file: `admin.conf`, `node.conf` and `~/.skiff/config` share it. It
//! extends the CLI's format (`current`, `clusters: {name: {servers, netns}}`), so old
//! files still parse; each cluster may add its CA and one credential:
//!
//! ```yaml
//! current: prod
//! clusters:
//!   prod:
//!     servers: [10.0.0.2:7000, 10.0.0.3:7000]
//!     ca: |
//!       -----BEGIN CERTIFICATE-----
//!       …
//!     # either a bearer token …
//!     token: skt.alice.…
//!     # … or a client certificate, inline or in files beside this one
//!     client-certificate-file: admin.crt
//!     client-key-file: admin.key
//! ```
//!
//! [`save`] writes mode 0600 through a temporary file and a rename, so the file is never
//! half-written nor, even briefly, readable by others.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::tls::{self, ServerCheck, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path}: cluster {cluster:?}: {message}")]
    Cluster {
        path: String,
        cluster: String,
        message: String,
    },
    #[error("{path}: cluster {cluster:?}: {source}")]
    Tls {
        path: String,
        cluster: String,
        source: TlsError,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkiffConfig {
    /// The cluster used when none is named.
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterEntry>,
}

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterEntry {
    pub servers: Vec<String>,
    /// A network namespace to join before connecting (needs root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// The state file of the `skiff up` cluster this entry names (`<dir>/<name>/state.json`):
    /// the CLI checks that the cluster runs before connecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_state: Option<PathBuf>,
    /// The cluster CA, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// A bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// Relative paths are relative to the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for ClusterEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("ClusterEntry")
            .field("servers", &self.servers)
            .field("netns", &self.netns)
            .field("local_state", &self.local_state)
            .field("ca", &self.ca.is_some())
            .field("token", &hidden(&self.token))
            .field("client_certificate", &self.client_certificate.is_some())
            .field("client_key", &hidden(&self.client_key))
            .field("client_certificate_file", &self.client_certificate_file)
            .field("client_key_file", &self.client_key_file)
            .finish()
    }
}

/// How a client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Bearer(String),
    Certificate { cert_pem: String, key_pem: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credential::Certificate { cert_pem, .. } => f
                .debug_struct("Certificate")
                .field("cert_pem", cert_pem)
                .field("key_pem", &"<redacted>")
                .finish(),
        }
    }
}

impl ClusterEntry {
    /// The credential this entry carries, reading `*-file` paths relative to `config_path`'s
    /// directory. `Ok(None)`: no credential (an old file, or anonymous).
    pub fn credential(
        &self,
        config_path: &Path,
        cluster: &str,
    ) -> Result<Option<Credential>, ConfigError> {
        let failed = |message: String| ConfigError::Cluster {
            path: config_path.display().to_string(),
            cluster: cluster.to_string(),
            message,
        };
        let cert = pick(
            &self.client_certificate,
            &self.client_certificate_file,
            "client-certificate",
            config_path,
        )
        .map_err(failed)?;
        let key = pick(
            &self.client_key,
            &self.client_key_file,
            "client-key",
            config_path,
        )
        .map_err(failed)?;
        match (&self.token, cert, key) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(failed(
                "give either token or client-certificate and client-key, not both".into(),
            )),
            (Some(token), None, None) => Ok(Some(Credential::Bearer(token.trim().to_string()))),
            (None, Some(cert_pem), Some(key_pem)) => {
                Ok(Some(Credential::Certificate { cert_pem, key_pem }))
            }
            (None, Some(_), None) => Err(failed("client-certificate without client-key".into())),
            (None, None, Some(_)) => Err(failed("client-key without client-certificate".into())),
            (None, None, None) => Ok(None),
        }
    }

    /// A rustls client config for this cluster: its CA, its certificate if it has one, and
    /// `server` demanded of the servers. `Ok(None)` when the entry has no CA (plain text).
    pub fn tls_config(
        &self,
        config_path: &Path,
        cluster: &str,
        server: ServerCheck,
    ) -> Result<Option<Arc<rustls::ClientConfig>>, ConfigError> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let certificate = match self.credential(config_path, cluster)? {
            Some(Credential::Certificate { cert_pem, key_pem }) => Some((cert_pem, key_pem)),
            _ => None,
        };
        let client = certificate
            .as_ref()
            .map(|(cert, key)| (cert.as_str(), key.as_str()));
        tls::client_config(ca, client, server)
            .map(Some)
            .map_err(|source| ConfigError::Tls {
                path: config_path.display().to_string(),
                cluster: cluster.to_string(),
                source,
            })
    }
}

fn pick(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    field: &str,
    config_path: &Path,
) -> Result<Option<String>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("give {field} or {field}-file, not both")),
        (Some(pem), None) => Ok(Some(pem.clone())),
        (None, Some(file)) => {
            let path = config_path.parent().unwrap_or(Path::new(".")).join(file);
            std::fs::read_to_string(&path)
                .map(Some)
                .map_err(|e| format!("{field}-file {}: {e}", path.display()))
        }
        (None, None) => Ok(None),
    }
}

/// Makes `dir` (and its missing parents) and leaves it mode 0700, also when it existed: a
/// daemon's data dir holds its keys, and images' setuid files and device nodes that no
/// other user of the host may reach (the pattern of Moby's CVE-2021-41091).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Reads a config file; a missing file is an empty config.
pub fn load(path: &Path) -> Result<SkiffConfig, ConfigError> {
    let failed = |message: String| ConfigError::File {
        path: path.display().to_string(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SkiffConfig::default()),
        Err(e) => return Err(failed(e.to_string())),
    };
    serde_yaml_ng::from_str(&text).map_err(|e| failed(e.to_string()))
}

/// Writes `config` to `path` with mode 0600: a fresh temporary file created 0600 beside
/// it, flushed, then renamed over `path`. A new parent directory is made 0700.
pub fn save(path: &Path, config: &SkiffConfig) -> Result<(), ConfigError> {
    let failed = |message: String| ConfigError::File {
        path: path.display().to_string(),
        message,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| failed(e.to_string()))?;
    }
    let text = serde_yaml_ng::to_string(config).map_err(|e| failed(e.to_string()))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| failed("not a file path".into()))?
        .to_string_lossy()
        .into_owned();
    let mut suffix = [0u8; 6];
    crate::token::fill_random(&mut suffix);
    let temporary = dir.join(format!(".{file_name}.{}.tmp", hex::encode(suffix)));
    // create_new + mode: the file never exists with a wider mode, whatever the umask
    // (which can only narrow it).
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // The rename itself durable too.
        std::fs::File::open(&dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(failed(e.to_string()));
    }
    Ok(())
}

/// Adds (or replaces) cluster `name` and makes it the current one; others stay.
pub fn save_cluster(path: &Path, name: &str, entry: ClusterEntry) -> Result<(), ConfigError> {
    let mut config = load(path)?;
    config.clusters.insert(name.to_string(), entry);
    config.current = Some(name.to_string());
    save(path, &config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::issue_client_cert;
    use crate::identity::Identity;
    use crate::token::{ClusterToken, generate_token};

    #[test]
    fn todays_cli_files_still_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "current: local\nclusters:\n  local:\n    servers: [10.250.0.2:7000]\n    netns: /run/netns/skiff-local-underlay\n",
        )
        .unwrap();
        let config = load(&path).unwrap();
        let entry = &config.clusters["local"];
        assert_eq!(entry.servers, ["10.250.0.2:7000"]);
        assert_eq!(
            entry.netns.as_deref(),
            Some(Path::new("/run/netns/skiff-local-underlay"))
        );
        assert_eq!(entry.credential(&path, "local").unwrap(), None);
        assert!(
            entry
                .tls_config(&path, "local", ServerCheck::Member)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            load(&dir.path().join("missing")).unwrap(),
            SkiffConfig::default()
        );
        std::fs::write(&path, "clusters:\n  a:\n    servers: []\n    tokn: x\n").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("tokn") && err.contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn a_private_dir_is_0700_whether_made_or_found_open() {
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let made = dir.path().join("a/b");
        private_dir(&made).unwrap();
        assert_eq!(mode(&made), 0o700);
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
    }

    #[test]
    fn saved_files_are_0600_round_trip_and_leave_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/admin.conf");
        let entry = ClusterEntry {
            servers: vec!["127.0.0.1:7000".into()],
            ca: Some("-----BEGIN CERTIFICATE-----\n".into()),
            token: Some("skt.a.b".into()),
            ..Default::default()
        };
        save_cluster(&path, "prod", entry.clone()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let config = load(&path).unwrap();
        assert_eq!(config.current.as_deref(), Some("prod"));
        assert_eq!(config.clusters["prod"], entry);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("token: skt.a.b"), "{text}");
        assert!(!text.contains("client-key"), "{text}");

        // Replacing a file that was wider leaves it 0600.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        save_cluster(&path, "dev", entry).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap().clusters.len(), 2);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["admin.conf"]);
    }

    #[test]
    fn credentials_come_inline_or_from_files_beside_the_config_and_never_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.conf");
        let token = ClusterToken::parse(&generate_token()).unwrap();
        let issued = issue_client_cert(&token, &Identity::admin()).unwrap();
        std::fs::write(dir.path().join("admin.crt"), &issued.cert_pem).unwrap();
        std::fs::write(dir.path().join("admin.key"), &issued.key_pem).unwrap();
        let from_files = ClusterEntry {
            servers: vec!["127.0.0.1:7000".into()],
            ca: Some(token.ca_cert_pem()),
            client_certificate_file: Some("admin.crt".into()),
            client_key_file: Some("admin.key".into()),
            ..Default::default()
        };
        let want = Credential::Certificate {
            cert_pem: issued.cert_pem.clone(),
            key_pem: issued.key_pem.clone(),
        };
        assert_eq!(
            from_files.credential(&path, "c").unwrap(),
            Some(want.clone())
        );
        assert!(
            from_files
                .tls_config(&path, "c", ServerCheck::Member)
                .unwrap()
                .is_some()
        );
        let inline = ClusterEntry {
            client_certificate: Some(issued.cert_pem.clone()),
            client_key: Some(issued.key_pem.clone()),
            client_certificate_file: None,
            client_key_file: None,
            ..from_files.clone()
        };
        assert_eq!(inline.credential(&path, "c").unwrap(), Some(want));
        assert!(!format!("{inline:?}").contains("PRIVATE KEY"));

        let bearer = ClusterEntry {
            token: Some("skt.a.b\n".into()),
            ..Default::default()
        };
        assert_eq!(
            bearer.credential(&path, "c").unwrap(),
            Some(Credential::Bearer("skt.a.b".into()))
        );

        let refused = [
            ClusterEntry {
                token: Some("skt.a.b".into()),
                ..inline.clone()
            },
            ClusterEntry {
                client_key: None,
                ..inline.clone()
            },
            ClusterEntry {
                client_certificate_file: Some("admin.crt".into()),
                ..inline.clone()
            },
            ClusterEntry {
                client_certificate_file: Some("missing.crt".into()),
                client_certificate: None,
                ..inline
            },
        ];
        for entry in refused {
            let err = entry.credential(&path, "c").unwrap_err().to_string();
            assert!(err.contains("node.conf") && err.contains("\"c\""), "{err}");
        }
    }
}
