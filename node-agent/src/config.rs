//! The agent's configuration, from `skiff-agent`'s flags.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::logs::Rotation;
use crate::pod::restart::BackoffPolicy;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--labels: invalid entry {0:?}: expected KEY=VALUE")]
    Label(String),
    #[error("--labels: {0}")]
    LabelValue(String),
    #[error("--name: {0}")]
    Name(String),
    #[error("--node-ip: {0:?} is not an IP address")]
    NodeIp(String),
    #[error("--servers: give at least one control-plane HOST:PORT")]
    NoServers,
    #[error("--listen: {0:?} is not HOST:PORT")]
    Listen(String),
    #[error("--cluster-cidr: {0}")]
    ClusterCidr(String),
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: String,
    pub servers: Vec<String>,
    pub node_ip: String,
    pub labels: BTreeMap<String, String>,
    pub data_dir: PathBuf,
    /// Where the agent serves logs, exec and port-forward (HOST:PORT).
    pub listen: String,
    /// Overrides of what the host reports: cpu (cores, "4" or "3500m"), memory ("8Gi").
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub max_pods: u32,
    pub heartbeat_interval: Duration,
    pub backoff: BackoffPolicy,
    pub log_rotation: Rotation,
    /// Give pods an `eth0` on the node's bridge and keep routes to other nodes (off: pods
    /// have only `lo`, for hosts whose network must not be touched).
    pub pod_network: bool,
    /// Masquerade traffic from pods to outside `cluster_cidr` (never pod-to-pod traffic).
    pub masquerade: bool,
    /// The whole pod address range (all nodes' CIDRs), for masquerade.
    pub cluster_cidr: String,
    /// Routes are recomputed on every Node change and at least this often.
    pub route_resync: Duration,
    /// The cluster token (`--token-file`), needed to join on first start.
    pub token: Option<skiff_pki::ClusterToken>,
    /// At most this many processes in each container of the `oci` runtime
    /// (`--pod-pids-limit`); -1 (or any value below 1) for no limit, as the kubelet's
    /// `podPidsLimit`.
    pub pod_pids_limit: i64,
    /// Exec sessions open at once, per pod and on the node.
    pub exec_limits: crate::server::ExecLimits,
    /// What imports and pulls may cost (unpacked bytes, entries, manifest size, how many
    /// at once).
    pub image_limits: crate::image::ImageLimits,
    /// What the node reports as `containerRuntimeVersion` (`oci://runc-1.1.5`,
    /// `process://0.1.0`): the runtime it really uses.
    pub runtime_version: String,
}

impl AgentConfig {
    pub fn new(name: &str, servers: Vec<String>, node_ip: &str, data_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            name: name.into(),
            servers,
            node_ip: node_ip.into(),
            labels: BTreeMap::new(),
            data_dir,
            listen: "0.0.0.0:10250".into(),
            cpu: None,
            memory: None,
            max_pods: 110,
            heartbeat_interval: Duration::from_secs(2),
            backoff: BackoffPolicy::default(),
            log_rotation: Rotation::default(),
            pod_network: true,
            masquerade: false,
            cluster_cidr: "10.244.0.0/16".into(),
            route_resync: Duration::from_secs(10),
            token: None,
            pod_pids_limit: 4096,
            exec_limits: Default::default(),
            image_limits: Default::default(),
            runtime_version: crate::node::process_runtime_version(),
        }
    }

    /// The pids limit for the `oci` runtime: None for no limit.
    pub fn pids_limit(&self) -> Option<u64> {
        u64::try_from(self.pod_pids_limit).ok().filter(|n| *n > 0)
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        skiff_api::names::is_dns1123_subdomain(&self.name).map_err(ConfigError::Name)?;
        if self.node_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::NodeIp(self.node_ip.clone()));
        }
        if self.servers.is_empty() {
            return Err(ConfigError::NoServers);
        }
        self.listen_port()?;
        skiff_api::cidr::Cidr::parse(&self.cluster_cidr)
            .map_err(|e| ConfigError::ClusterCidr(e.to_string()))?;
        Ok(())
    }

    /// The agent's default --listen: its node IP (not every address), port 10250.
    pub fn default_listen(node_ip: &str) -> String {
        if node_ip.contains(':') {
            format!("[{node_ip}]:10250")
        } else {
            format!("{node_ip}:10250")
        }
    }

    pub fn listen_port(&self) -> Result<u16, ConfigError> {
        self.listen
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .ok_or_else(|| ConfigError::Listen(self.listen.clone()))
    }
}

/// Parses `k=v,k2=v2` (keys and values checked like Kubernetes labels).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut labels = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| ConfigError::Label(entry.to_string()))?;
        skiff_api::names::is_qualified_name(key)
            .map_err(|m| ConfigError::LabelValue(format!("key {key:?}: {m}")))?;
        skiff_api::names::is_label_value(value)
            .map_err(|m| ConfigError::LabelValue(format!("value {value:?}: {m}")))?;
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

/// Parses `HOST:PORT,HOST:PORT`.
pub fn parse_servers(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_labels_parse_and_bad_ones_are_named() {
        let labels = parse_labels("gpu=true, zone=a,example.com/tier=web").unwrap();
        assert_eq!(labels.len(), 3);
        assert_eq!(labels["example.com/tier"], "web");
        assert_eq!(parse_labels(""), Ok(BTreeMap::new()));
        assert!(matches!(parse_labels("gpu"), Err(ConfigError::Label(_))));
        assert!(matches!(
            parse_labels("bad key=x"),
            Err(ConfigError::LabelValue(_))
        ));
        assert!(matches!(
            parse_labels("k=bad value"),
            Err(ConfigError::LabelValue(_))
        ));
    }

    #[test]
    fn an_agent_config_is_checked_before_use() {
        let ok = AgentConfig::new(
            "node-1",
            vec!["127.0.0.1:7001".into()],
            "10.250.0.2",
            "d".into(),
        );
        assert_eq!(ok.check(), Ok(()));
        let mut bad = ok.clone();
        bad.node_ip = "ten".into();
        assert!(matches!(bad.check(), Err(ConfigError::NodeIp(_))));
        let mut bad = ok.clone();
        bad.name = "Node_1".into();
        assert!(matches!(bad.check(), Err(ConfigError::Name(_))));
        let mut bad = ok;
        bad.servers.clear();
        assert_eq!(bad.check(), Err(ConfigError::NoServers));
        assert_eq!(parse_servers("a:1, b:2,"), vec!["a:1", "b:2"]);
    }

    #[test]
    fn the_pids_limit_defaults_to_4096_and_minus_one_lifts_it() {
        let mut config = AgentConfig::new("n", vec!["a:1".into()], "10.0.0.1", "d".into());
        assert_eq!(config.pids_limit(), Some(4096));
        config.pod_pids_limit = -1;
        assert_eq!(config.pids_limit(), None);
        config.pod_pids_limit = 0;
        assert_eq!(config.pids_limit(), None);
        config.pod_pids_limit = 100;
        assert_eq!(config.pids_limit(), Some(100));
    }
}
