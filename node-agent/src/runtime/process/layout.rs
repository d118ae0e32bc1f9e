//! Where the `process` runtime keeps its state, and the records it shares with its helper
//! processes (the shim, the sandbox maker, nsexec). Everything is a small JSON file written
//! atomically, so an agent that restarts (even after `kill -9`) reads the truth back.
//!
//! ```text
//! <root>/sandboxes/<sandbox-id>/
//!     sandbox.json            SandboxInfo, written last: its presence means "complete"
//!     netns, utsns            bind mounts of the pod's namespaces
//!     mountpoints.json        directories created on the host as volume mount points
//!     volumes/<name>/         emptyDir volumes
//!     logs/<container>/<attempt>.log
//!     containers/<container>_<attempt>/
//!         spec.json           ShimSpec: what the shim runs
//!         started.json        Started: the shim's and the container's pids
//!         exit.json           Exited: how it ended
//!         shim.log            the shim's own errors
//! ```

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::logs::Rotation;
use crate::runtime::Mount;

/// What the shim needs to start one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    pub netns: PathBuf,
    pub utsns: PathBuf,
    pub log_path: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// Kept so the container's image and attempt survive an agent restart.
    pub image: String,
    /// Set for the `oci` runtime: `argv` is `runc run` (which makes the container's
    /// namespaces and mounts itself), so the shim only runs it, logs and records the exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciShim>,
}

/// What the shim of an `oci` container needs beyond running `runc run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciShim {
    /// The container's memory cgroup directory, still there after `runc run --keep`
    /// returns: its OOM-kill counter tells an `OOMKilled` exit from another SIGKILL.
    pub memory_cgroup: PathBuf,
}

impl ShimSpec {
    pub fn rotation(&self) -> Rotation {
        Rotation {
            max_bytes: self.log_max_bytes,
            max_files: self.log_max_files,
        }
    }
}

/// Written by the shim once the container's process exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub shim_pid: u32,
    /// The container's process, also its process group.
    pub pid: u32,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The kernel's boot id when it started ([`boot_id`]; none in older records): after a
    /// reboot its pids name other processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl Started {
    /// Whether it started since the host last booted (an older record is taken to have).
    pub fn this_boot(&self) -> bool {
        self.boot_id.is_none() || self.boot_id == boot_id()
    }
}

/// This boot's id, which the kernel draws anew at every boot.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_string())
}

/// Written by the shim (or by the runtime, when the shim died) once the container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub reason: String,
    pub message: Option<String>,
}

impl Exited {
    /// A container that could not be started at all.
    pub fn start_error(message: String) -> Exited {
        Exited {
            exit_code: 128,
            signal: None,
            started_at: None,
            finished_at: chrono::Utc::now(),
            reason: "StartError".into(),
            message: Some(message),
        }
    }

    /// A process that ended with `code` or was killed by `signal`.
    pub fn from_status(
        code: Option<i32>,
        signal: Option<i32>,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> Exited {
        let exit_code = code.unwrap_or_else(|| 128 + signal.unwrap_or(0));
        Exited {
            exit_code,
            signal,
            started_at: Some(started_at),
            finished_at: chrono::Utc::now(),
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
        }
    }
}

/// The paths of one runtime root.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    pub fn sandboxes(&self) -> PathBuf {
        self.root.join("sandboxes")
    }

    pub fn sandbox(&self, sandbox_id: &str) -> PathBuf {
        self.sandboxes().join(sandbox_id)
    }

    pub fn container(&self, sandbox_id: &str, local_id: &str) -> PathBuf {
        self.sandbox(sandbox_id).join("containers").join(local_id)
    }

    pub fn log(&self, sandbox_id: &str, name: &str, attempt: u32) -> PathBuf {
        self.sandbox(sandbox_id)
            .join("logs")
            .join(name)
            .join(format!("{attempt}.log"))
    }
}

/// A sandbox id from a pod uid: the uid's safe characters (uids are UUIDs already).
pub fn sandbox_id(pod_uid: &str) -> String {
    pod_uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// `<sandbox>_<container>_<attempt>`: neither part can hold `_` (uids and DNS labels).
pub fn container_id(sandbox_id: &str, name: &str, attempt: u32) -> String {
    format!("{sandbox_id}_{name}_{attempt}")
}

/// Splits an id back into (sandbox id, directory name in `containers/`); accepts a
/// runtime prefix (`process://`, `oci://`).
pub fn split_container_id(id: &str) -> Option<(&str, &str)> {
    let id = id.split_once("://").map_or(id, |(_, rest)| rest);
    let (sandbox, rest) = id.split_once('_')?;
    let (name, attempt) = rest.rsplit_once('_')?;
    if sandbox.is_empty() || name.is_empty() || attempt.parse::<u32>().is_err() {
        return None;
    }
    if sandbox.contains(['/', '.']) || name.contains(['/', '.']) {
        return None;
    }
    Some((sandbox, rest))
}

/// Writes `value` as JSON through a temporary file and a rename, so readers never see half.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Reads a JSON record; `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let sandbox = sandbox_id("3f2a-../x");
        assert_eq!(sandbox, "3f2a-x");
        let id = container_id("3f2a-9c", "web-server", 4);
        assert_eq!(id, "3f2a-9c_web-server_4");
        assert_eq!(
            split_container_id(&format!("process://{id}")),
            Some(("3f2a-9c", "web-server_4"))
        );
        assert_eq!(split_container_id("nounderscore"), None);
        assert_eq!(split_container_id("a_b_x"), None);
        assert_eq!(split_container_id("../_b_1"), None);
    }

    #[test]
    fn exit_statuses_become_kubernetes_exit_codes_and_reasons() {
        let now = chrono::Utc::now();
        let ok = Exited::from_status(Some(0), None, now);
        assert_eq!((ok.exit_code, ok.reason.as_str()), (0, "Completed"));
        let killed = Exited::from_status(None, Some(9), now);
        assert_eq!((killed.exit_code, killed.reason.as_str()), (137, "Error"));
        assert_eq!(
            Exited::start_error("no such file".into()).reason,
            "StartError"
        );
    }

    #[test]
    fn a_container_started_before_a_reboot_is_known_by_its_boot_id() {
        let started = |boot_id: Option<&str>| Started {
            shim_pid: 1,
            pid: 2,
            started_at: chrono::Utc::now(),
            boot_id: boot_id.map(str::to_string),
        };
        assert!(started(boot_id().as_deref()).this_boot());
        assert!(!started(Some("an-earlier-boot")).this_boot());
        // A record from before records had one.
        let old: Started = serde_json::from_str(
            r#"{"shim_pid": 1, "pid": 2, "started_at": "2024-05-01T12:00:00Z"}"#,
        )
        .unwrap();
        assert!(old.this_boot());
    }

    #[test]
    fn json_records_are_atomic_and_optional() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit.json");
        assert_eq!(read_json::<Exited>(&path).unwrap(), None);
        let record = Exited::start_error("x".into());
        write_json(&path, &record).unwrap();
        assert_eq!(read_json::<Exited>(&path).unwrap(), Some(record));
        assert!(!path.with_extension("tmp").exists());
        std::fs::write(&path, b"{").unwrap();
        assert!(read_json::<Exited>(&path).is_err());
    }
}
