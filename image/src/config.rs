//! The image config (JSON): the platform, the runtime defaults (`config`), and the layers'
//! diff_ids (`rootfs`).

use serde_json::{Map, Value, json};

use crate::{host_architecture, sha256};

/// What an image config says. [`Config::default`] is a linux image for this host's
/// architecture, created at [`crate::MTIME`], with no runtime defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub architecture: String,
    pub os: String,
    /// RFC 3339.
    pub created: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value`.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// `created_by` of each history entry (none: no history).
    pub history: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            architecture: host_architecture().to_string(),
            os: "linux".to_string(),
            created: "2023-11-14T22:13:20Z".to_string(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            exposed_ports: Vec::new(),
            history: Vec::new(),
        }
    }
}

impl Config {
    /// The config as JSON, for layers with these `diff_ids` (see [`diff_ids`]). An empty
    /// Entrypoint or Cmd is `null`; no WorkingDir, ExposedPorts or history is no key.
    pub fn to_value(&self, diff_ids: &[String]) -> Value {
        let mut runtime = Map::new();
        let list = |items: &[String]| match items {
            [] => Value::Null,
            items => json!(items),
        };
        runtime.insert("Entrypoint".into(), list(&self.entrypoint));
        runtime.insert("Cmd".into(), list(&self.cmd));
        runtime.insert("Env".into(), json!(self.env));
        if let Some(dir) = &self.working_dir {
            runtime.insert("WorkingDir".into(), json!(dir));
        }
        if !self.exposed_ports.is_empty() {
            let ports: Map<String, Value> = self
                .exposed_ports
                .iter()
                .map(|port| (port.clone(), json!({})))
                .collect();
            runtime.insert("ExposedPorts".into(), Value::Object(ports));
        }
        let mut config = json!({
            "architecture": self.architecture,
            "os": self.os,
            "created": self.created,
            "config": runtime,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        if !self.history.is_empty() {
            config["history"] = self
                .history
                .iter()
                .map(|created_by| json!({"created_by": created_by}))
                .collect();
        }
        config
    }

    /// [`Config::to_value`], serialized.
    pub fn to_json(&self, diff_ids: &[String]) -> Vec<u8> {
        serde_json::to_vec(&self.to_value(diff_ids)).expect("JSON of a JSON value")
    }
}

/// The diff_ids (`sha256:<hex>`) of uncompressed layer tars.
pub fn diff_ids(layers: &[Vec<u8>]) -> Vec<String> {
    layers.iter().map(|layer| sha256(layer)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_holds_what_is_set_and_only_that() {
        let bare: Value =
            serde_json::from_slice(&Config::default().to_json(&["sha256:ab".into()])).unwrap();
        assert_eq!(
            bare,
            json!({
                "architecture": host_architecture(),
                "os": "linux",
                "created": "2023-11-14T22:13:20Z",
                "config": {"Entrypoint": null, "Cmd": null, "Env": []},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:ab"]},
            })
        );
        let full = Config {
            architecture: "s390x".into(),
            entrypoint: vec!["/bin/busybox".into()],
            cmd: vec!["httpd".into()],
            env: vec!["PATH=/bin".into()],
            working_dir: Some("/data".into()),
            exposed_ports: vec!["8080/tcp".into()],
            history: vec!["layer 1".into()],
            ..Config::default()
        }
        .to_value(&[]);
        assert_eq!(full["architecture"], "s390x");
        assert_eq!(
            full["config"],
            json!({
                "Entrypoint": ["/bin/busybox"], "Cmd": ["httpd"], "Env": ["PATH=/bin"],
                "WorkingDir": "/data", "ExposedPorts": {"8080/tcp": {}},
            })
        );
        assert_eq!(full["history"], json!([{"created_by": "layer 1"}]));
    }
}
