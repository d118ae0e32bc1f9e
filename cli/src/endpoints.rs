//! Which control plane to talk to: `--server`, else `SKIFF_SERVER`, else the current
//! cluster of the config file (`--config`, else `SKIFF_CONFIG`, else `~/.skiff/config`),
//! like a kubeconfig. The config's cluster also gives the CA and the client credential
//! (`skiff_pki::config`), whichever endpoints are used:
//!
//! ```yaml
//! current: local
//! clusters:
//!   local:
//!     servers: [10.250.0.2:7000, 10.250.0.3:7000, 10.250.0.4:7000]
//!     # Optional: the network namespace these addresses live in (`skiff up`'s clusters
//!     # exist only inside namespaces); the CLI joins it before connecting.
//!     netns: /run/netns/skiff-local-underlay
//!     # Optional: the state file of that `skiff up` cluster; before connecting the CLI
//!     # checks that the cluster runs, and says how to start it when it does not.
//!     local-state: /var/lib/skiff-local/local/state.json
//!     ca: |
//!       -----BEGIN CERTIFICATE-----
//!     client-certificate: |
//!       …
//!     client-key: |
//!       …
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use skiff_pki::config::{ClusterEntry, SkiffConfig as CliConfig};

#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error(
        "no control plane given: use --server HOST:PORT[,HOST:PORT…], set SKIFF_SERVER, or write {0}"
    )]
    NoneGiven(String),
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    #[error("{0}")]
    File(#[from] skiff_pki::config::ConfigError),
    #[error(
        "no cluster CA to verify the control plane with: use --config FILE (a member's admin.conf) or SKIFF_CONFIG; {0} has none"
    )]
    NoCa(String),
}

/// Where to connect: the endpoints, the namespace they are reached from (if any), and the
/// config file's cluster that supplies the CA and the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub servers: Vec<String>,
    pub netns: Option<PathBuf>,
    /// The state file of the `skiff up` cluster reached in `netns`.
    pub local_state: Option<PathBuf>,
    /// The config cluster's name and entry, when the config file names one.
    pub cluster: Option<(String, ClusterEntry)>,
}

impl Target {
    /// Acts as bearer token `token` (from `--token` or `SKIFF_TOKEN`) instead of the config
    /// cluster's own credential.
    pub fn with_token(mut self, token: Option<String>) -> Target {
        if let (Some(token), Some((_, entry))) = (token, self.cluster.as_mut()) {
            entry.token = Some(token);
            entry.client_certificate = None;
            entry.client_key = None;
            entry.client_certificate_file = None;
            entry.client_key_file = None;
        }
        self
    }

    /// The bearer token calls carry, if the credential is one.
    pub fn bearer_token(&self) -> Option<&str> {
        self.cluster
            .as_ref()
            .and_then(|(_, entry)| entry.token.as_deref())
            .map(str::trim)
    }

    /// The TLS client config for this target: the cluster's CA and client certificate,
    /// members only. Every Skiff port speaks TLS, so a cluster without a CA is an error.
    pub fn tls_config(
        &self,
        config_file: &Path,
    ) -> Result<Arc<rustls::ClientConfig>, EndpointsError> {
        let no_ca = || EndpointsError::NoCa(config_file.display().to_string());
        let (name, entry) = self.cluster.as_ref().ok_or_else(no_ca)?;
        entry
            .tls_config(config_file, name, skiff_pki::tls::ServerCheck::Member)?
            .ok_or_else(no_ca)
    }
}

/// `--config`, else `SKIFF_CONFIG`, else `$HOME/.skiff/config`.
pub fn config_path_from(flag: Option<&Path>) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    config_path()
}

/// `SKIFF_CONFIG`, else `$HOME/.skiff/config`.
pub fn config_path() -> PathBuf {
    if let Some(path) = std::env::var_os("SKIFF_CONFIG") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".skiff").join("config")
}

/// Reads the config file; a missing file is an empty config.
pub fn read_config(path: &Path) -> Result<CliConfig, EndpointsError> {
    Ok(skiff_pki::config::load(path)?)
}

/// The endpoints to use, by the precedence above.
pub fn resolve(
    flag: Option<&str>,
    env: Option<&str>,
    config_file: &Path,
) -> Result<Vec<String>, EndpointsError> {
    resolve_target(flag, env, config_file).map(|target| target.servers)
}

/// Like [`resolve`], with the namespace a config-file cluster is reached from and the
/// cluster itself (its CA and credential apply whichever endpoints are used).
pub fn resolve_target(
    flag: Option<&str>,
    env: Option<&str>,
    config_file: &Path,
) -> Result<Target, EndpointsError> {
    let split = |text: &str| -> Vec<String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let config = read_config(config_file)?;
    let name = config.current.clone().or_else(|| {
        // One cluster and no `current`: that one.
        (config.clusters.len() == 1)
            .then(|| config.clusters.keys().next().cloned())
            .flatten()
    });
    let cluster = name
        .as_ref()
        .and_then(|name| config.clusters.get(name).map(|e| (name.clone(), e.clone())));
    for given in [flag, env].into_iter().flatten() {
        let servers = split(given);
        if !servers.is_empty() {
            return Ok(Target {
                servers,
                netns: None,
                local_state: None,
                cluster,
            });
        }
    }
    let Some(name) = name else {
        return Err(EndpointsError::NoneGiven(config_file.display().to_string()));
    };
    match cluster {
        Some((_, entry)) if !entry.servers.is_empty() => Ok(Target {
            servers: entry.servers.clone(),
            netns: entry.netns.clone(),
            local_state: entry.local_state.clone(),
            cluster: Some((name, entry)),
        }),
        Some(_) => Err(EndpointsError::Config {
            path: config_file.display().to_string(),
            message: format!("cluster {name:?} lists no servers"),
        }),
        None => Err(EndpointsError::Config {
            path: config_file.display().to_string(),
            message: format!("current cluster {name:?} is not defined under clusters"),
        }),
    }
}

/// Adds (or replaces) cluster `name` in the config file (0600) and makes it the current
/// one; the other clusters stay as they are.
pub fn save_cluster(path: &Path, name: &str, entry: ClusterEntry) -> Result<(), EndpointsError> {
    Ok(skiff_pki::config::save_cluster(path, name, entry)?)
}

/// Removes cluster `name` from the config file (and `current` if it named it).
pub fn forget_cluster(path: &Path, name: &str) -> Result<(), EndpointsError> {
    let mut config = read_config(path)?;
    if config.clusters.remove(name).is_none() && config.current.as_deref() != Some(name) {
        return Ok(());
    }
    if config.current.as_deref() == Some(name) {
        config.current = None;
    }
    Ok(skiff_pki::config::save(path, &config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_env_then_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        assert_eq!(
            resolve(Some("a:1, b:2"), Some("c:3"), &file).unwrap(),
            vec!["a:1", "b:2"]
        );
        assert_eq!(resolve(None, Some("c:3"), &file).unwrap(), vec!["c:3"]);
        let err = resolve(None, None, &file).unwrap_err().to_string();
        assert!(
            err.contains("--server") && err.contains("SKIFF_SERVER"),
            "{err}"
        );

        std::fs::write(&file, "clusters:\n  lab:\n    servers: [x:7]\n").unwrap();
        assert_eq!(resolve(None, None, &file).unwrap(), vec!["x:7"]);
        std::fs::write(
            &file,
            "current: b\nclusters:\n  a:\n    servers: [x:7]\n  b:\n    servers: [y:8]\n",
        )
        .unwrap();
        assert_eq!(resolve(None, None, &file).unwrap(), vec!["y:8"]);
        std::fs::write(&file, "current: c\nclusters: {}\n").unwrap();
        assert!(
            resolve(None, None, &file)
                .unwrap_err()
                .to_string()
                .contains("\"c\"")
        );
        std::fs::write(&file, "curent: a\n").unwrap();
        let err = resolve(None, None, &file).unwrap_err().to_string();
        assert!(err.contains("curent"), "{err}");
    }

    #[test]
    fn saved_clusters_keep_the_others_and_carry_a_netns() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/config");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            "current: lab\nclusters:\n  lab:\n    servers: [x:7]\n",
        )
        .unwrap();
        let entry = ClusterEntry {
            servers: vec!["10.250.0.2:7000".into()],
            netns: Some("/run/netns/skiff-local-underlay".into()),
            ..ClusterEntry::default()
        };
        save_cluster(&file, "local", entry.clone()).unwrap();
        let target = resolve_target(None, None, &file).unwrap();
        assert_eq!(target.servers, entry.servers);
        assert_eq!(target.netns, entry.netns);
        // --server wins, and never joins a namespace.
        assert_eq!(
            resolve_target(Some("y:1"), None, &file).unwrap().netns,
            None
        );
        forget_cluster(&file, "local").unwrap();
        let config = read_config(&file).unwrap();
        assert_eq!(config.current, None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the config holds credentials");
        assert_eq!(config.clusters.keys().collect::<Vec<_>>(), ["lab"]);
        // Only one cluster left and no current: that one.
        assert_eq!(resolve(None, None, &file).unwrap(), vec!["x:7"]);
    }
}
