//! This host as a Node object: registration (labels, addresses, capacity) and heartbeats.

use std::collections::BTreeMap;

use skiff_api::types::{
    DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo, Quantity,
};
use skiff_client::Client;

use crate::config::AgentConfig;

/// What the host offers: flags first, else what the kernel reports.
pub fn capacity(config: &AgentConfig) -> BTreeMap<String, Quantity> {
    let cpu = config.cpu.clone().unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .to_string()
    });
    let memory = config.memory.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_total_kib(&text))
            .map(|kib| format!("{kib}Ki"))
            .unwrap_or_else(|| "0".into())
    });
    [
        ("cpu", cpu),
        ("memory", memory),
        ("pods", config.max_pods.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity::from(v.as_str())))
    .collect()
}

/// `MemTotal:  16316412 kB` → 16316412.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The `process` runtime's `containerRuntimeVersion`: the agent's own version.
pub fn process_runtime_version() -> String {
    format!("process://{}", env!("CARGO_PKG_VERSION"))
}

/// The `oci` runtime's `containerRuntimeVersion`, from `runc --version`'s first line
/// (`runc version 1.1.5+ds1` → `oci://runc-1.1.5+ds1`), as containerd reports
/// `containerd://1.7.2`; `oci://runc` when it says nothing readable.
pub fn oci_runtime_version(runc_version_output: &str) -> String {
    let version = runc_version_output
        .lines()
        .next()
        .and_then(|line| line.trim().strip_prefix("runc version "))
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.contains(char::is_whitespace));
    match version {
        Some(v) => format!("oci://runc-{v}"),
        None => "oci://runc".into(),
    }
}

fn system_info(config: &AgentConfig) -> NodeSystemInfo {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    NodeSystemInfo {
        kernel_version: read("/proc/sys/kernel/osrelease"),
        os_image: String::new(),
        architecture: std::env::consts::ARCH.into(),
        operating_system: std::env::consts::OS.into(),
        container_runtime_version: config.runtime_version.clone(),
        // One word, as kubectl's VERSION column shows a kubelet's (`v1.32.0`).
        kubelet_version: format!("v{}", env!("CARGO_PKG_VERSION")),
    }
}

/// The status fields the agent reports (conditions belong to the node controller).
fn reported_status(config: &AgentConfig) -> NodeStatus {
    let capacity = capacity(config);
    NodeStatus {
        allocatable: capacity.clone(),
        capacity,
        conditions: Vec::new(),
        addresses: vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: config.node_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.name.clone(),
            },
        ],
        node_info: Some(system_info(config)),
        daemon_endpoints: config.listen_port().ok().map(|port| NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(port),
            }),
        }),
    }
}

/// The label naming the node, as Kubernetes sets it.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Creates the Node, or brings an existing one up to date: our labels are set (others,
/// added with `skiff label`, stay), addresses and capacity replaced, conditions kept.
pub async fn register(client: &Client, config: &AgentConfig) -> Result<Node, skiff_client::Error> {
    // Like the kubelet, every node carries its name as a label for nodeSelector.
    let mut labels = config.labels.clone();
    labels
        .entry(HOSTNAME_LABEL.to_string())
        .or_insert_with(|| config.name.clone());
    loop {
        let existing = match client.get::<Node>("", &config.name).await {
            Ok(node) => node,
            Err(e) if e.is_not_found() => {
                let mut node = Node::default();
                node.metadata.name = config.name.clone();
                node.metadata.labels = labels.clone();
                node.status = Some(reported_status(config));
                match client.create(&node).await {
                    Err(e) if e.is_already_exists() => continue,
                    other => return other,
                }
            }
            Err(e) => return Err(e),
        };
        let mut node = existing.clone();
        node.metadata.labels.extend(labels.clone());
        if node.metadata.labels != existing.metadata.labels {
            match client.update(&node).await {
                Ok(updated) => node = updated,
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
        let mut status = reported_status(config);
        status.conditions = node.status.take().unwrap_or_default().conditions;
        node.status = Some(status);
        match client.update_status(&node).await {
            Err(e) if e.is_conflict() => continue,
            other => return other,
        }
    }
}

/// Heartbeats until the future is dropped; registers again when the Node disappears.
pub async fn heartbeat_loop(client: Client, config: AgentConfig) {
    loop {
        match client.node_heartbeat(&config.name).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {
                tracing::warn!("node {} is not registered: registering again", config.name);
                if let Err(e) = register(&client, &config).await {
                    tracing::warn!("registration failed: {e}");
                }
            }
            Err(e) => tracing::warn!("heartbeat failed: {e}"),
        }
        tokio::time::sleep(config.heartbeat_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oci_runtime_version_is_runcs_own() {
        let output = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n";
        assert_eq!(oci_runtime_version(output), "oci://runc-1.1.5+ds1");
        assert_eq!(oci_runtime_version("something else"), "oci://runc");
        assert_eq!(oci_runtime_version(""), "oci://runc");
        assert!(process_runtime_version().starts_with("process://"));
    }

    #[test]
    fn capacity_from_flags_or_host() {
        let mut config = AgentConfig::new("n", vec!["a:1".into()], "10.250.0.2", "d".into());
        config.cpu = Some("3".into());
        config.memory = Some("2Gi".into());
        config.max_pods = 20;
        let c = capacity(&config);
        assert_eq!(c["cpu"], Quantity::from("3"));
        assert_eq!(c["memory"], Quantity::from("2Gi"));
        assert_eq!(c["pods"], Quantity::from("20"));
        config.memory = None;
        assert!(
            capacity(&config)["memory"].bytes().unwrap() > 0,
            "read from /proc/meminfo"
        );
        assert_eq!(
            mem_total_kib("MemTotal:       16316412 kB\nMemFree: 1 kB"),
            Some(16316412)
        );
        assert_eq!(mem_total_kib("nothing"), None);
    }
}
