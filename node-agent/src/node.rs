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

/// The most of a host file the agent reads: identity files hold one short line, and
/// /etc/os-release a few hundred bytes, so more means something else is there.
const MAX_HOST_FILE: u64 = 16 * 1024;

/// The longest id or os image the agent reports; Kubernetes' are well under this.
const MAX_INFO_LEN: usize = 256;

/// `path`'s text, at most MAX_HOST_FILE bytes of it; empty when missing or unreadable.
fn read_host_file(path: &str) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_HOST_FILE).read_to_end(&mut bytes));
    match read {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// The one word a host file holds (`/etc/machine-id`'s hex, a boot id, a DMI UUID, the
/// kernel release): its first line, trimmed; empty unless that is one short word of visible
/// ASCII, so a file holding anything else is not passed on.
fn host_word(text: &str) -> String {
    let word = text.lines().next().unwrap_or("").trim();
    let plausible = !word.is_empty()
        && word.len() <= MAX_INFO_LEN
        && word.chars().all(|c| c.is_ascii_graphic());
    if plausible {
        word.to_string()
    } else {
        String::new()
    }
}

/// /etc/os-release's PRETTY_NAME, unquoted (`Debian GNU/Linux 12 (bookworm)`); `Linux` when
/// it has none, as the kubelet reports then.
fn os_image(os_release: &str) -> String {
    let pretty = os_release.lines().find_map(|line| {
        let value = line.trim().strip_prefix("PRETTY_NAME=")?.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value)
            .trim();
        let printable = !value.is_empty()
            && value.len() <= MAX_INFO_LEN
            && !value.chars().any(char::is_control);
        printable.then(|| value.to_string())
    });
    pretty.unwrap_or_else(|| "Linux".into())
}

fn system_info(config: &AgentConfig) -> NodeSystemInfo {
    // systemd's file first, then D-Bus's older copy, as the kubelet (cadvisor) looks.
    let machine_id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .into_iter()
        .map(|path| host_word(&read_host_file(path)))
        .find(|id| !id.is_empty())
        .unwrap_or_default();
    let os_release = match read_host_file("/etc/os-release") {
        text if text.is_empty() => read_host_file("/usr/lib/os-release"),
        text => text,
    };
    // One word, as kubectl's VERSION column shows a kubelet's (`v1.32.0`).
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    NodeSystemInfo {
        machine_id,
        // Readable by root only on most hosts; empty otherwise, as the kubelet leaves it.
        system_uuid: host_word(&read_host_file("/sys/class/dmi/id/product_uuid")),
        boot_id: host_word(&read_host_file("/proc/sys/kernel/random/boot_id")),
        kernel_version: host_word(&read_host_file("/proc/sys/kernel/osrelease")),
        os_image: os_image(&os_release),
        container_runtime_version: config.runtime_version.clone(),
        // The kubelet 1.32 still reports its own version here by default
        // (DisableNodeKubeProxyVersion is off), and clients require the field.
        kube_proxy_version: version.clone(),
        kubelet_version: version,
        operating_system: std::env::consts::OS.into(),
        architecture: std::env::consts::ARCH.into(),
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

    #[test]
    fn host_ids_are_one_trimmed_word_and_anything_else_is_left_empty() {
        assert_eq!(
            host_word("0123456789abcdef0123456789abcdef\n"),
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(host_word("  6.1.0-18-amd64 \n"), "6.1.0-18-amd64");
        assert_eq!(host_word("first\nsecond"), "first");
        assert_eq!(host_word(""), "");
        assert_eq!(host_word("two words"), "");
        assert_eq!(host_word("bell\u{7}"), "");
        assert_eq!(host_word(&"a".repeat(MAX_INFO_LEN + 1)), "");
    }

    #[test]
    fn the_os_image_is_os_releases_pretty_name_or_linux() {
        let release = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(os_image(release), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(
            os_image("PRETTY_NAME='Alpine Linux v3.19'"),
            "Alpine Linux v3.19"
        );
        assert_eq!(os_image("PRETTY_NAME=Plain"), "Plain");
        assert_eq!(os_image("NAME=x"), "Linux");
        assert_eq!(os_image("PRETTY_NAME=\"\""), "Linux");
        let long = format!("PRETTY_NAME={}", "x".repeat(MAX_INFO_LEN + 1));
        assert_eq!(os_image(&long), "Linux");
    }

    #[test]
    fn this_hosts_node_info_has_its_boot_id_and_every_field_kubernetes_clients_require() {
        let config = AgentConfig::new("n", vec!["a:1".into()], "10.250.0.2", "d".into());
        let info = system_info(&config);
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert_eq!(info.boot_id, boot_id.trim());
        assert!(!info.kernel_version.is_empty());
        assert!(!info.os_image.is_empty());
        assert_eq!(info.kube_proxy_version, info.kubelet_version);
        // Written even when empty, under Kubernetes' own names.
        let json = serde_json::to_value(&info).unwrap();
        for field in [
            "machineID",
            "systemUUID",
            "bootID",
            "kernelVersion",
            "osImage",
            "containerRuntimeVersion",
            "kubeletVersion",
            "kubeProxyVersion",
            "operatingSystem",
            "architecture",
        ] {
            assert!(json[field].is_string(), "{field} missing from {json}");
        }
    }

    #[test]
    fn a_host_file_is_read_only_up_to_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; MAX_HOST_FILE as usize * 2]).unwrap();
        assert_eq!(
            read_host_file(path.to_str().unwrap()).len(),
            MAX_HOST_FILE as usize
        );
        assert_eq!(read_host_file("/nonexistent/skiff"), "");
    }
}
