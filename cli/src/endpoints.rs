//! Which control plane to talk to: `--server`, else `SKIFF_SERVER`, else the current
//! cluster of the config file (`~/.skiff/config`, or `SKIFF_CONFIG`), like a kubeconfig:
//!
//! ```yaml
//! current: local
//! clusters:
//!   local:
//!     servers: [10.250.0.2:7000, 10.250.0.3:7000, 10.250.0.4:7000]
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
            return Ok(servers);
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
        Some(entry) if !entry.servers.is_empty() => Ok(entry.servers.clone()),
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
}
