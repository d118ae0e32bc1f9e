//! The OCI runtime spec (`config.json`, version 1.0) of a container, as a pure function of
//! its inputs.
//!
//! Written with `serde_json::json!` rather than the `oci-spec` crate's types: the subset
//! used here is small and fixed, the function stays a readable picture of the JSON runc
//! gets (and the unit tests compare JSON), and the crate's builders would add a dependency
//! tree (derive_builder, getset, strum) to the agent's footprint for no extra checking of
//! what matters — runc validates the spec itself.

use std::path::Path;

use serde_json::{Value, json};

use crate::image::ProcessSpec;
use crate::runtime::{Mount, Resources};

/// The OCI runtime spec version written.
pub const OCI_VERSION: &str = "1.0.2";
/// The CFS period the cpu limit is expressed in (Kubernetes' default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// runc's default masked paths (`runc spec`).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// runc's default read-only paths (`runc spec`).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Everything a container's spec is made from.
#[derive(Debug, Clone)]
pub struct SpecInputs<'a> {
    /// argv, env, working dir (from the image config and the container, resolved).
    pub process: &'a ProcessSpec,
    pub uid: u32,
    pub gid: u32,
    /// The mounted overlay.
    pub rootfs: &'a Path,
    /// The sandbox's pinned network and UTS namespaces, joined by path.
    pub netns: &'a Path,
    pub utsns: &'a Path,
    /// The pod's `hosts`, `hostname` and `resolv.conf`, bind-mounted into `/etc`.
    pub etc_dir: &'a Path,
    /// The pod's volumes.
    pub mounts: &'a [Mount],
    pub resources: Resources,
    /// Absolute cgroup path, unique per container.
    pub cgroups_path: &'a str,
    /// Limit memory+swap to the memory limit too (where the host accounts swap).
    pub limit_swap: bool,
}

/// The `config.json` for `inputs`.
///
/// No `hostname`: the UTS namespace is the sandbox's, joined by path, which already carries
/// the pod's hostname (and for a host-network pod is the node's, which must not change).
pub fn runtime_spec(inputs: &SpecInputs) -> Value {
    let env: Vec<String> = inputs
        .process
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let caps = DEFAULT_CAPABILITIES;
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for file in ["hosts", "hostname", "resolv.conf"] {
        mounts.push(json!({
            "destination": format!("/etc/{file}"),
            "type": "bind",
            "source": inputs.etc_dir.join(file),
            "options": ["rbind", "rprivate"],
        }));
    }
    for m in inputs.mounts {
        let mut options = vec!["rbind", "rprivate"];
        if m.read_only {
            options.push("ro");
        }
        mounts.push(json!({
            "destination": m.container_path,
            "type": "bind",
            "source": m.host_path,
            "options": options,
        }));
    }

    let r = inputs.resources;
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(limit) = r.memory_limit_bytes {
        let mut memory = json!({"limit": limit});
        if inputs.limit_swap {
            memory["swap"] = json!(limit);
        }
        resources["memory"] = memory;
    }
    // Kubernetes' conversions: shares from the request (2 without one), quota from the
    // limit over a 100 ms period (at least the kernel's 1 ms).
    let shares = r.cpu_request_millis.map_or(2, |m| (m * 1024 / 1000).max(2));
    let mut cpu = json!({"shares": shares});
    if let Some(limit) = r.cpu_limit_millis {
        cpu["quota"] = json!((limit * CPU_PERIOD_US / 1000).max(1000));
        cpu["period"] = json!(CPU_PERIOD_US);
    }
    resources["cpu"] = cpu;

    json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": false,
            "user": {"uid": inputs.uid, "gid": inputs.gid},
            "args": inputs.process.argv,
            "env": env,
            "cwd": inputs.process.working_dir,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": false,
        },
        "root": {"path": inputs.rootfs, "readonly": false},
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "ipc"},
                {"type": "mount"},
                {"type": "network", "path": inputs.netns},
                {"type": "uts", "path": inputs.utsns},
            ],
            "cgroupsPath": inputs.cgroups_path,
            "resources": resources,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn process() -> ProcessSpec {
        ProcessSpec {
            argv: vec!["/bin/busybox".into(), "httpd".into(), "-f".into()],
            env: vec![("PATH".into(), "/bin".into()), ("A".into(), "1".into())],
            working_dir: "/data".into(),
            user: None,
        }
    }

    fn spec(resources: Resources, mounts: &[Mount], limit_swap: bool) -> Value {
        let process = process();
        runtime_spec(&SpecInputs {
            process: &process,
            uid: 1000,
            gid: 1001,
            rootfs: Path::new("/d/c/bundle/rootfs"),
            netns: Path::new("/d/s/netns"),
            utsns: Path::new("/d/s/utsns"),
            etc_dir: Path::new("/d/s/etc"),
            mounts,
            resources,
            cgroups_path: "/skiff-s_web_0",
            limit_swap,
        })
    }

    #[test]
    fn process_root_and_namespaces() {
        let s = spec(Resources::default(), &[], false);
        assert_eq!(s["ociVersion"], "1.0.2");
        assert_eq!(s["process"]["args"], json!(["/bin/busybox", "httpd", "-f"]));
        assert_eq!(s["process"]["env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(s["process"]["cwd"], "/data");
        assert_eq!(s["process"]["user"], json!({"uid": 1000, "gid": 1001}));
        assert_eq!(s["root"]["path"], "/d/c/bundle/rootfs");
        assert!(s.get("hostname").is_none(), "the UTS namespace is joined");
        assert_eq!(
            s["linux"]["namespaces"],
            json!([
                {"type": "pid"}, {"type": "ipc"}, {"type": "mount"},
                {"type": "network", "path": "/d/s/netns"},
                {"type": "uts", "path": "/d/s/utsns"},
            ])
        );
        assert_eq!(s["linux"]["cgroupsPath"], "/skiff-s_web_0");
        let caps = s["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), 14);
        assert!(caps.contains(&json!("CAP_NET_BIND_SERVICE")));
        assert!(!caps.contains(&json!("CAP_SYS_ADMIN")));
        assert!(
            s["linux"]["maskedPaths"]
                .as_array()
                .unwrap()
                .contains(&json!("/proc/kcore"))
        );
        assert!(
            s["linux"]["readonlyPaths"]
                .as_array()
                .unwrap()
                .contains(&json!("/proc/sys"))
        );
    }

    #[test]
    fn mounts_system_etc_files_and_volumes() {
        let volumes = [
            Mount {
                host_path: PathBuf::from("/d/s/volumes/scratch"),
                container_path: PathBuf::from("/scratch"),
                read_only: false,
            },
            Mount {
                host_path: PathBuf::from("/srv/data"),
                container_path: PathBuf::from("/data"),
                read_only: true,
            },
        ];
        let s = spec(Resources::default(), &volumes, false);
        let mounts = s["mounts"].as_array().unwrap();
        let by_dest = |d: &str| {
            mounts
                .iter()
                .find(|m| m["destination"] == d)
                .unwrap_or_else(|| panic!("no mount at {d}"))
        };
        assert_eq!(by_dest("/proc")["type"], "proc");
        assert_eq!(by_dest("/dev")["type"], "tmpfs");
        assert_eq!(by_dest("/dev/pts")["type"], "devpts");
        assert_eq!(by_dest("/dev/shm")["type"], "tmpfs");
        assert_eq!(by_dest("/dev/mqueue")["type"], "mqueue");
        assert_eq!(by_dest("/sys")["type"], "sysfs");
        assert!(
            by_dest("/sys")["options"]
                .as_array()
                .unwrap()
                .contains(&json!("ro"))
        );
        assert_eq!(by_dest("/etc/hosts")["source"], "/d/s/etc/hosts");
        assert_eq!(by_dest("/etc/hostname")["source"], "/d/s/etc/hostname");
        assert_eq!(
            by_dest("/etc/resolv.conf")["source"],
            "/d/s/etc/resolv.conf"
        );
        assert_eq!(by_dest("/scratch")["source"], "/d/s/volumes/scratch");
        assert_eq!(by_dest("/scratch")["options"], json!(["rbind", "rprivate"]));
        assert_eq!(
            by_dest("/data")["options"],
            json!(["rbind", "rprivate", "ro"])
        );
        // Volumes come after the system mounts, so a volume under /dev is not hidden.
        let position = |d: &str| mounts.iter().position(|m| m["destination"] == d).unwrap();
        assert!(position("/scratch") > position("/dev"));
    }

    #[test]
    fn resources_from_requests_and_limits() {
        let s = spec(
            Resources {
                cpu_request_millis: Some(250),
                cpu_limit_millis: Some(500),
                memory_limit_bytes: Some(16 << 20),
            },
            &[],
            true,
        );
        let r = &s["linux"]["resources"];
        assert_eq!(r["memory"], json!({"limit": 16 << 20, "swap": 16 << 20}));
        assert_eq!(
            r["cpu"],
            json!({"shares": 256, "quota": 50000, "period": 100000})
        );
        assert_eq!(r["devices"], json!([{"allow": false, "access": "rwm"}]));
        let s = spec(
            Resources {
                memory_limit_bytes: Some(1 << 30),
                cpu_limit_millis: Some(1),
                ..Resources::default()
            },
            &[],
            false,
        );
        let r = &s["linux"]["resources"];
        assert_eq!(r["memory"], json!({"limit": 1 << 30}));
        assert_eq!(
            r["cpu"],
            json!({"shares": 2, "quota": 1000, "period": 100000})
        );
        let r = &spec(Resources::default(), &[], false)["linux"]["resources"];
        assert!(r.get("memory").is_none());
        assert_eq!(r["cpu"], json!({"shares": 2}));
    }
}
