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

use super::security::Hardening;
use super::user::ProcessUser;
use crate::image::ProcessSpec;
use crate::runtime::{Mount, Resources};

/// The OCI runtime spec version written.
pub const OCI_VERSION: &str = "1.0.2";
/// The CFS period the cpu limit is expressed in (Kubernetes' default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;

/// containerd's masked paths: hidden (an empty file or directory over them) in every
/// container but a privileged one.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// containerd's read-only paths (in every container but a privileged one).
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
    /// Who the process runs as.
    pub user: &'a ProcessUser,
    /// Capabilities, seccomp, no_new_privs, read-only root, privileged mode.
    pub hardening: &'a Hardening,
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
    /// At most this many processes (threads count) in the container's cgroup.
    pub pids_limit: Option<u64>,
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
    let hardening = inputs.hardening;
    let caps = &hardening.capabilities;
    // A privileged container may write to /sys and its cgroups, as under containerd.
    let sys_access = if hardening.privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", sys_access]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", sys_access]}),
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
    // runc adds its default devices (null, zero, full, random, urandom, tty, ptmx) after
    // these rules; a privileged container may use every device.
    let mut resources = json!({"devices": [{"allow": hardening.privileged, "access": "rwm"}]});
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
    if let Some(limit) = inputs.pids_limit {
        resources["pids"] = json!({"limit": limit});
    }

    let user = inputs.user;
    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": false,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": inputs.process.argv,
            "env": env,
            "cwd": inputs.process.working_dir,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": hardening.no_new_privileges,
        },
        "root": {"path": inputs.rootfs, "readonly": hardening.read_only_root},
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
        },
    });
    let linux = &mut spec["linux"];
    if !hardening.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if let Some(seccomp) = &hardening.seccomp {
        linux["seccomp"] = seccomp.clone();
    }
    if !hardening.devices.is_empty() {
        linux["devices"] = hardening
            .devices
            .iter()
            .map(|d| {
                json!({"path": d.path, "type": d.kind.to_string(), "major": d.major,
                       "minor": d.minor, "fileMode": d.mode, "uid": d.uid, "gid": d.gid})
            })
            .collect();
    }
    spec
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::runtime::oci::security::{DEFAULT_CAPABILITIES, Device};

    fn process() -> ProcessSpec {
        ProcessSpec {
            argv: vec!["/bin/busybox".into(), "httpd".into(), "-f".into()],
            env: vec![("PATH".into(), "/bin".into()), ("A".into(), "1".into())],
            working_dir: "/data".into(),
            user: None,
        }
    }

    fn spec(resources: Resources, mounts: &[Mount], limit_swap: bool) -> Value {
        let hardening = Hardening {
            capabilities: DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            seccomp: Some(json!({"defaultAction": "SCMP_ACT_ERRNO"})),
            ..Hardening::default()
        };
        hardened(resources, mounts, limit_swap, &hardening)
    }

    fn hardened(
        resources: Resources,
        mounts: &[Mount],
        limit_swap: bool,
        hardening: &Hardening,
    ) -> Value {
        let process = process();
        runtime_spec(&SpecInputs {
            process: &process,
            user: &ProcessUser {
                uid: 1000,
                gid: 1001,
                additional_gids: vec![1001, 5, 2000],
            },
            hardening,
            rootfs: Path::new("/d/c/bundle/rootfs"),
            netns: Path::new("/d/s/netns"),
            utsns: Path::new("/d/s/utsns"),
            etc_dir: Path::new("/d/s/etc"),
            mounts,
            resources,
            cgroups_path: "/skiff-s_web_0",
            limit_swap,
            pids_limit: Some(4096),
        })
    }

    #[test]
    fn process_root_and_namespaces() {
        let s = spec(Resources::default(), &[], false);
        assert_eq!(s["ociVersion"], "1.0.2");
        assert_eq!(s["process"]["args"], json!(["/bin/busybox", "httpd", "-f"]));
        assert_eq!(s["process"]["env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(s["process"]["cwd"], "/data");
        assert_eq!(
            s["process"]["user"],
            json!({"uid": 1000, "gid": 1001, "additionalGids": [1001, 5, 2000]})
        );
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

    #[test]
    fn containers_get_containerds_defaults() {
        let s = spec(Resources::default(), &[], false);
        assert_eq!(s["process"]["noNewPrivileges"], false);
        assert_eq!(s["root"]["readonly"], false);
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(s["linux"]["resources"]["pids"], json!({"limit": 4096}));
        assert_eq!(s["linux"]["maskedPaths"], json!(MASKED_PATHS));
        assert!(MASKED_PATHS.contains(&"/sys/devices/virtual/powercap"));
        assert_eq!(
            s["linux"]["readonlyPaths"],
            json!([
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger"
            ])
        );
        let proc_mount = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/proc")
            .unwrap();
        assert_eq!(proc_mount["options"], json!(["nosuid", "noexec", "nodev"]));
        assert!(s["linux"].get("devices").is_none());
        assert_eq!(
            s["linux"]["resources"]["devices"],
            json!([{"allow": false, "access": "rwm"}])
        );
    }

    #[test]
    fn a_hardened_container_has_no_new_privileges_a_read_only_root_and_fewer_capabilities() {
        let hardening = Hardening {
            capabilities: vec!["CAP_NET_BIND_SERVICE".into()],
            no_new_privileges: true,
            read_only_root: true,
            seccomp: Some(json!({"defaultAction": "SCMP_ACT_ERRNO"})),
            ..Hardening::default()
        };
        let s = hardened(Resources::default(), &[], false, &hardening);
        assert_eq!(s["process"]["noNewPrivileges"], true);
        assert_eq!(s["root"]["readonly"], true);
        for set in ["bounding", "effective", "permitted"] {
            assert_eq!(
                s["process"]["capabilities"][set],
                json!(["CAP_NET_BIND_SERVICE"])
            );
        }
        let unconfined = Hardening {
            seccomp: None,
            ..hardening
        };
        let s = hardened(Resources::default(), &[], false, &unconfined);
        assert!(s["linux"].get("seccomp").is_none());
    }

    #[test]
    fn a_privileged_container_sees_the_hosts_devices_unmasked_with_sys_writable() {
        let hardening = Hardening {
            privileged: true,
            capabilities: vec!["CAP_SYS_ADMIN".into()],
            devices: vec![Device {
                path: PathBuf::from("/dev/sda"),
                kind: 'b',
                major: 8,
                minor: 0,
                mode: 0o660,
                uid: 0,
                gid: 6,
            }],
            ..Hardening::default()
        };
        let s = hardened(Resources::default(), &[], false, &hardening);
        assert!(s["linux"].get("maskedPaths").is_none());
        assert!(s["linux"].get("readonlyPaths").is_none());
        assert!(s["linux"].get("seccomp").is_none());
        assert_eq!(
            s["linux"]["devices"],
            json!([{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0,
                    "fileMode": 0o660, "uid": 0, "gid": 6}])
        );
        assert_eq!(
            s["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        for dest in ["/sys", "/sys/fs/cgroup"] {
            let m = s["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["destination"] == dest)
                .unwrap();
            let options = m["options"].as_array().unwrap();
            assert!(
                options.contains(&json!("rw")) && !options.contains(&json!("ro")),
                "{dest}"
            );
        }
    }
}
