//! Which control plane to talk to: `--server`, else `SKIFF_SERVER`, else the current
//! cluster of the config file (`~/.skiff/config`, or `SKIFF_CONFIG`), like a kubeconfig:
//!
//! ```yaml
//! current: local
//! clusters:
//!   local:
//!     servers: [10.250.0.2:7000, 10.250.0.3:7000, 10.250.0.4:7000]
//!     # Optional: the network namespace these addresses live in (`skiff up`'s clusters
//!     # exist only inside namespaces); the CLI joins it before connecting.
//!     netns: /run/netns/skiff-local-underlay
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error(
        "no control plane given: use --server HOST:PORT[,HOST:PORT…], set SKIFF_SERVER, or write {0}"
    )]
    NoneGiven(String),
    #[error("{path}: {message}")]
    Config { path: String, message: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliConfig {
    /// The cluster used when none is named.
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    pub servers: Vec<String>,
    /// A network namespace to join before connecting (needs root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
}

/// Where to connect: the endpoints, and the namespace they are reached from (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub servers: Vec<String>,
    pub netns: Option<PathBuf>,
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
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CliConfig::default()),
        Err(e) => {
            return Err(EndpointsError::Config {
                path: path.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    serde_yaml_ng::from_str(&text).map_err(|e| EndpointsError::Config {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The endpoints to use, by the precedence above.
pub fn resolve(
    flag: Option<&str>,
    env: Option<&str>,
    config_file: &Path,
) -> Result<Vec<String>, EndpointsError> {
    resolve_target(flag, env, config_file).map(|target| target.servers)
}

/// Like [`resolve`], with the namespace a config-file cluster is reached from.
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
    for given in [flag, env].into_iter().flatten() {
        let servers = split(given);
        if !servers.is_empty() {
            return Ok(Target {
                servers,
                netns: None,
            });
        }
    }
    let config = read_config(config_file)?;
    let name = config.current.clone().or_else(|| {
        // One cluster and no `current`: that one.
        (config.clusters.len() == 1)
            .then(|| config.clusters.keys().next().cloned())
            .flatten()
    });
    let Some(name) = name else {
        return Err(EndpointsError::NoneGiven(config_file.display().to_string()));
    };
    match config.clusters.get(&name) {
        Some(entry) if !entry.servers.is_empty() => Ok(Target {
            servers: entry.servers.clone(),
            netns: entry.netns.clone(),
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

fn write_config(path: &Path, config: &CliConfig) -> Result<(), EndpointsError> {
    let failed = |message: String| EndpointsError::Config {
        path: path.display().to_string(),
        message,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
    }
    let text = serde_yaml_ng::to_string(config).map_err(|e| failed(e.to_string()))?;
    // Write then rename, so a crash never leaves half a config behind.
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).map_err(|e| failed(e.to_string()))?;
    std::fs::rename(&temporary, path).map_err(|e| failed(e.to_string()))
}

/// Adds (or replaces) cluster `name` in the config file and makes it the current one;
/// the other clusters stay as they are.
pub fn save_cluster(path: &Path, name: &str, entry: ClusterEntry) -> Result<(), EndpointsError> {
    let mut config = read_config(path)?;
    config.clusters.insert(name.to_string(), entry);
    config.current = Some(name.to_string());
    write_config(path, &config)
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
    write_config(path, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_1_flag_then_env_then_config() {
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
    fn endpoints_2_saved_clusters_keep_the_others_and_carry_a_netns() {
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
        assert_eq!(config.clusters.keys().collect::<Vec<_>>(), ["lab"]);
        // Only one cluster left and no current: that one.
        assert_eq!(resolve(None, None, &file).unwrap(), vec!["x:7"]);
    }
}
