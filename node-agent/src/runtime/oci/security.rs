//! What a container's securityContext becomes in its OCI spec, with containerd's defaults
//! for what it leaves out: Docker's capability set, the RuntimeDefault seccomp profile, and
//! for `privileged` every capability, every host device and no filter at all. Also the
//! kubelet's `runAsNonRoot` check, which needs the user the image resolves to.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::seccomp::{Profile, Target, kernel_version};
use crate::runtime::security::{Seccomp, Security};

/// Every capability Linux knows, by number (CAP_CHOWN is 0).
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// containerd's (and Docker's) default capability set.
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

/// Directories under `/dev` that hold no devices a privileged container should get (runc's
/// list), and the host's console.
const SKIPPED_DEVICE_DIRS: &[&str] =
    &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// A host device node, for a privileged container's `/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    /// `c` or `b`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What the spec needs from a container's securityContext, decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hardening {
    pub privileged: bool,
    /// Bounding, effective and permitted sets.
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    pub read_only_root: bool,
    /// The `linux.seccomp` object; None: no filter.
    pub seccomp: Option<Value>,
    /// Host devices (privileged containers only).
    pub devices: Vec<Device>,
}

/// How the node is: what the agent may hand out, the kernel, where Localhost profiles live.
#[derive(Debug, Clone)]
pub struct Node {
    /// The capabilities the agent may give a container, bit n for capability n: its own
    /// bounding set (a host, or a container the agent runs in, may hold back some), which is
    /// also every capability the kernel knows on an ordinary host.
    pub available: u64,
    pub kernel: Option<(u32, u32)>,
    /// Localhost seccomp profiles are files below this directory.
    pub seccomp_dir: PathBuf,
}

/// Every capability of [`CAPABILITIES`], as a bit set.
const ALL_BITS: u64 = (1 << CAPABILITIES.len()) - 1;

impl Node {
    /// This host, with Localhost profiles in `seccomp_dir`.
    pub fn detect(seccomp_dir: PathBuf) -> Node {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let available = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .and_then(|bits| u64::from_str_radix(bits.trim(), 16).ok())
            .unwrap_or(ALL_BITS);
        let kernel = nix::sys::utsname::uname()
            .ok()
            .and_then(|u| kernel_version(&u.release().to_string_lossy()));
        Node {
            available,
            kernel,
            seccomp_dir,
        }
    }
}

/// A capability as the API names it (`NET_ADMIN`, `net_admin`, `CAP_NET_ADMIN`) as its
/// number; None if Linux has no such capability.
fn capability_number(name: &str) -> Option<usize> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAPABILITIES.iter().position(|c| *c == full)
}

/// The container's capabilities, as containerd sets them: Docker's defaults, `add: [ALL]`
/// and `drop: [ALL]` first, then each named one added, then each named one dropped; every
/// one for a privileged container. "Every" and the defaults mean those the agent may give
/// (`available`, see [`Node::available`]); a capability named in `add` that it may not give
/// is refused. In number order.
pub fn capabilities(security: &Security, available: u64) -> Result<Vec<String>, String> {
    let bit = |number: usize| 1u64 << number;
    let mut set: u64 = if security.privileged {
        ALL_BITS
    } else {
        let all = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case("ALL"));
        let mut set = DEFAULT_CAPABILITIES
            .iter()
            .map(|name| bit(capability_number(name).expect("known")))
            .fold(0, |set, b| set | b);
        if all(&security.add_capabilities) {
            set = ALL_BITS;
        }
        if all(&security.drop_capabilities) {
            set = 0;
        }
        for (names, add, field) in [
            (&security.add_capabilities, true, "add"),
            (&security.drop_capabilities, false, "drop"),
        ] {
            for name in names.iter().filter(|n| !n.eq_ignore_ascii_case("ALL")) {
                let number = capability_number(name).ok_or_else(|| {
                    format!("securityContext.capabilities.{field}: unknown capability {name:?}")
                })?;
                if add && available & bit(number) == 0 {
                    return Err(format!(
                        "securityContext.capabilities.add: {} is not in the node agent's bounding set",
                        CAPABILITIES[number]
                    ));
                }
                set = if add {
                    set | bit(number)
                } else {
                    set & !bit(number)
                };
            }
        }
        set
    };
    set &= available;
    Ok(CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(n, _)| set & bit(*n) != 0)
        .map(|(_, c)| c.to_string())
        .collect())
}

/// The kubelet's check of `runAsNonRoot` against the user the container will run as, in
/// its words (`pod` is `name_namespace(uid)`).
pub fn verify_non_root(
    security: &Security,
    uid: u32,
    pod: &str,
    container: &str,
) -> Result<(), String> {
    if !security.run_as_non_root {
        return Ok(());
    }
    match security.run_as_user {
        Some(0) => Err(format!(
            "container's runAsUser breaks non-root policy (pod: {pod:?}, container: {container})"
        )),
        Some(_) => Ok(()),
        None if uid == 0 => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})"
        )),
        None => Ok(()),
    }
}

/// A Localhost profile's file: relative, no `..` (the API checks both; checked again here,
/// as the file is opened with the agent's rights).
fn localhost_profile(dir: &Path, file: &str) -> Result<PathBuf, String> {
    let relative = Path::new(file);
    if file.is_empty()
        || relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "securityContext.seccompProfile.localhostProfile {file:?} must be a relative path below {}",
            dir.display()
        ));
    }
    Ok(dir.join(relative))
}

impl Hardening {
    /// Decides every setting for one container on `node` (reading a Localhost profile and,
    /// for a privileged container, the host's devices).
    pub fn for_container(security: &Security, node: &Node) -> Result<Hardening, String> {
        let capabilities = capabilities(security, node.available)?;
        let (arch, seccomp_arch) = Target::native_arch();
        let target = Target {
            arch,
            seccomp_arch,
            capabilities: &capabilities,
            kernel: node.kernel,
        };
        // containerd: privileged containers are never filtered, whatever they ask for.
        let seccomp = match (&security.seccomp, security.privileged) {
            (_, true) | (Some(Seccomp::Unconfined), _) => None,
            (None | Some(Seccomp::RuntimeDefault), false) => {
                Some(Profile::runtime_default().to_oci(&target))
            }
            (Some(Seccomp::Localhost(file)), false) => {
                let path = localhost_profile(&node.seccomp_dir, file)?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("seccomp profile {}: {e}", path.display()))?;
                let profile =
                    Profile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                Some(profile.to_oci(&target))
            }
        };
        Ok(Hardening {
            privileged: security.privileged,
            capabilities,
            no_new_privileges: security.no_new_privileges(),
            read_only_root: security.read_only_root_filesystem,
            seccomp,
            devices: if security.privileged {
                host_devices(Path::new("/dev"))
            } else {
                Vec::new()
            },
        })
    }
}

/// The character and block devices below `dir`, as runc's `HostDevices` finds them.
pub fn host_devices(dir: &Path) -> Vec<Device> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let file_type = meta.file_type();
        if file_type.is_dir() {
            if !SKIPPED_DEVICE_DIRS.iter().any(|d| name == *d) {
                found.extend(host_devices(&path));
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        let kind = if file_type.is_char_device() {
            'c'
        } else if file_type.is_block_device() {
            'b'
        } else {
            continue;
        };
        let rdev = meta.rdev();
        found.push(Device {
            path,
            kind,
            major: nix::sys::stat::major(rdev),
            minor: nix::sys::stat::minor(rdev),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(add: &[&str], drop: &[&str]) -> Security {
        Security {
            add_capabilities: add.iter().map(|s| s.to_string()).collect(),
            drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
            ..Security::default()
        }
    }

    fn caps(add: &[&str], drop: &[&str]) -> Vec<String> {
        capabilities(&security(add, drop), ALL_BITS).unwrap()
    }

    #[test]
    fn the_default_set_is_containerds_fourteen() {
        let set = caps(&[], &[]);
        assert_eq!(set.len(), 14);
        for c in DEFAULT_CAPABILITIES {
            assert!(set.iter().any(|s| s == c), "{c}");
        }
        assert!(!set.iter().any(|s| s == "CAP_SYS_ADMIN"));
    }

    #[test]
    fn capabilities_add_and_drop_as_containerd_does() {
        assert!(caps(&[], &["ALL"]).is_empty());
        assert_eq!(
            caps(&["NET_BIND_SERVICE"], &["ALL"]),
            ["CAP_NET_BIND_SERVICE"]
        );
        assert_eq!(caps(&["ALL"], &[]).len(), 41);
        let most = caps(&["ALL"], &["CHOWN", "cap_sys_admin"]);
        assert_eq!(most.len(), 39);
        assert!(
            !most
                .iter()
                .any(|c| c == "CAP_CHOWN" || c == "CAP_SYS_ADMIN")
        );
        let more = caps(&["SYS_TIME", "CAP_NET_ADMIN"], &["NET_RAW"]);
        assert!(more.iter().any(|c| c == "CAP_SYS_TIME"));
        assert!(more.iter().any(|c| c == "CAP_NET_ADMIN"));
        assert!(!more.iter().any(|c| c == "CAP_NET_RAW"));
        assert_eq!(
            capabilities(&security(&["FLY"], &[]), ALL_BITS).unwrap_err(),
            "securityContext.capabilities.add: unknown capability \"FLY\""
        );
    }

    #[test]
    fn privileged_gets_every_capability_the_agent_may_give() {
        let privileged = Security {
            privileged: true,
            drop_capabilities: vec!["ALL".into()],
            ..Security::default()
        };
        assert_eq!(capabilities(&privileged, ALL_BITS).unwrap().len(), 41);
        // An older kernel (up to CAP_AUDIT_READ, 37), and an agent without CAP_SYS_RESOURCE.
        let held = ((1 << 38) - 1) & !(1 << 24);
        let some = capabilities(&privileged, held).unwrap();
        assert_eq!(some.len(), 37);
        assert_eq!(some.last().unwrap(), "CAP_AUDIT_READ");
        assert!(!some.iter().any(|c| c == "CAP_SYS_RESOURCE"));
        let all = Security {
            add_capabilities: vec!["ALL".into()],
            ..Security::default()
        };
        assert_eq!(capabilities(&all, held).unwrap(), some);
        let named = Security {
            add_capabilities: vec!["SYS_RESOURCE".into()],
            ..Security::default()
        };
        assert_eq!(
            capabilities(&named, held).unwrap_err(),
            "securityContext.capabilities.add: CAP_SYS_RESOURCE is not in the node agent's bounding set"
        );
    }

    #[test]
    fn run_as_non_root_refusals_read_like_the_kubelets() {
        let non_root = Security {
            run_as_non_root: true,
            ..Security::default()
        };
        assert_eq!(
            verify_non_root(&non_root, 0, "web_default(u1)", "app").unwrap_err(),
            "container has runAsNonRoot and image will run as root (pod: \"web_default(u1)\", container: app)"
        );
        assert!(verify_non_root(&non_root, 1000, "p", "c").is_ok());
        let explicit_root = Security {
            run_as_user: Some(0),
            ..non_root.clone()
        };
        assert_eq!(
            verify_non_root(&explicit_root, 0, "web_default(u1)", "app").unwrap_err(),
            "container's runAsUser breaks non-root policy (pod: \"web_default(u1)\", container: app)"
        );
        assert!(verify_non_root(&Security::default(), 0, "p", "c").is_ok());
    }

    fn node(dir: &Path) -> Node {
        Node {
            available: ALL_BITS,
            kernel: Some((6, 1)),
            seccomp_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn seccomp_is_the_runtime_default_unless_unconfined_or_privileged() {
        let dir = tempfile::tempdir().unwrap();
        let n = node(dir.path());
        let default = Hardening::for_container(&Security::default(), &n).unwrap();
        assert_eq!(
            default.seccomp.as_ref().unwrap()["defaultAction"],
            "SCMP_ACT_ERRNO"
        );
        assert!(!default.no_new_privileges && !default.privileged && default.devices.is_empty());
        let asked = Security {
            seccomp: Some(Seccomp::RuntimeDefault),
            ..Security::default()
        };
        assert_eq!(
            Hardening::for_container(&asked, &n).unwrap().seccomp,
            default.seccomp
        );
        let unconfined = Security {
            seccomp: Some(Seccomp::Unconfined),
            ..Security::default()
        };
        assert_eq!(
            Hardening::for_container(&unconfined, &n).unwrap().seccomp,
            None
        );
        let privileged = Security {
            privileged: true,
            seccomp: Some(Seccomp::RuntimeDefault),
            ..Security::default()
        };
        let h = Hardening::for_container(&privileged, &n).unwrap();
        assert_eq!(h.seccomp, None);
        assert_eq!(h.capabilities.len(), 41);
        assert!(
            h.devices
                .iter()
                .any(|d| d.path == Path::new("/dev/null") && d.kind == 'c')
        );
    }

    #[test]
    fn a_localhost_profile_is_read_below_the_seccomp_dir_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("team")).unwrap();
        std::fs::write(
            dir.path().join("team/log.json"),
            r#"{"defaultAction": "SCMP_ACT_LOG"}"#,
        )
        .unwrap();
        let n = node(dir.path());
        let localhost = |file: &str| Security {
            seccomp: Some(Seccomp::Localhost(file.into())),
            ..Security::default()
        };
        let h = Hardening::for_container(&localhost("team/log.json"), &n).unwrap();
        assert_eq!(h.seccomp.unwrap()["defaultAction"], "SCMP_ACT_LOG");
        let missing = Hardening::for_container(&localhost("team/none.json"), &n).unwrap_err();
        assert!(missing.contains("team/none.json"), "{missing}");
        for bad in ["../escape.json", "/etc/passwd", "team/../../x"] {
            let err = Hardening::for_container(&localhost(bad), &n).unwrap_err();
            assert!(
                err.contains("must be a relative path below"),
                "{bad}: {err}"
            );
        }
    }
}
