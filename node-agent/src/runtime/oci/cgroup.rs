//! The few cgroup facts the `oci` runtime reads itself (runc writes the limits): where a
//! container's cgroup lives on cgroup v1 and v2 hosts, and whether the kernel's OOM killer
//! struck in it.

use std::path::{Path, PathBuf};

/// The cgroup filesystem root.
const ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup layout the host mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// One directory per controller (`/sys/fs/cgroup/memory/…`).
    V1,
    /// The unified hierarchy (`/sys/fs/cgroup/cgroup.controllers` exists).
    V2,
}

impl Hierarchy {
    /// The layout of this host.
    pub fn detect() -> Hierarchy {
        if Path::new(ROOT).join("cgroup.controllers").exists() {
            Hierarchy::V2
        } else {
            Hierarchy::V1
        }
    }

    /// The directory of cgroup `path` (as given to runc as `cgroupsPath`, absolute) for
    /// `controller` (`memory`, `cpu`, `pids`); v2 has one directory for all.
    pub fn dir(self, controller: &str, path: &str) -> PathBuf {
        let relative = path.trim_start_matches('/');
        match self {
            Hierarchy::V1 => Path::new(ROOT).join(controller).join(relative),
            Hierarchy::V2 => Path::new(ROOT).join(relative),
        }
    }

    /// Whether memory+swap can be limited too (v1 with swap accounting); without it a
    /// container could swap instead of meeting its memory limit.
    pub fn limits_swap(self) -> bool {
        match self {
            Hierarchy::V1 => Path::new(ROOT)
                .join("memory/memory.memsw.limit_in_bytes")
                .exists(),
            Hierarchy::V2 => false,
        }
    }
}

/// Whether the OOM killer killed a process of the memory cgroup at `dir`: the `oom_kill`
/// counter of v2's `memory.events` or v1's `memory.oom_control` (kernel 4.13+).
pub fn oom_killed(dir: &Path) -> bool {
    ["memory.events", "memory.oom_control"]
        .iter()
        .filter_map(|file| std::fs::read_to_string(dir.join(file)).ok())
        .any(|text| oom_kill_count(&text) > 0)
}

/// The `oom_kill N` line of a flat-keyed cgroup file.
fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(key, _)| *key == "oom_kill")
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The cgroups of containers of the sandboxes under `data_dir`'s `oci/sandboxes` (runc
/// names them `skiff-<sandbox>_<container>_<attempt>`): what a killed agent leaves in the
/// cgroup filesystem.
pub fn leftovers(data_dir: &Path) -> Vec<PathBuf> {
    let sandboxes: Vec<String> = std::fs::read_dir(data_dir.join("oci/sandboxes"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| format!("skiff-{}_", e.file_name().to_string_lossy()))
        .collect();
    if sandboxes.is_empty() {
        return Vec::new();
    }
    let parents: Vec<PathBuf> = match Hierarchy::detect() {
        Hierarchy::V2 => vec![PathBuf::from(ROOT)],
        Hierarchy::V1 => std::fs::read_dir(ROOT)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect(),
    };
    parents
        .iter()
        .flat_map(|parent| std::fs::read_dir(parent).into_iter().flatten().flatten())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            sandboxes
                .iter()
                .any(|prefix| name.starts_with(prefix.as_str()))
        })
        .map(|entry| entry.path())
        .collect()
}

/// Removes [`leftovers`] whose processes are gone (the kernel refuses the others); true
/// when none is left.
pub fn remove_leftovers(data_dir: &Path) -> bool {
    let mut clean = true;
    for dir in leftovers(data_dir) {
        clean &= std::fs::remove_dir(&dir).is_ok();
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_counters_of_both_layouts() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kill_count(v1), 2);
        assert_eq!(oom_kill_count(v2), 1);
        assert_eq!(oom_kill_count("oom_kill_disable 0\nunder_oom 0\n"), 0);
        assert_eq!(
            Hierarchy::V1.dir("cpu", "/skiff-x"),
            PathBuf::from("/sys/fs/cgroup/cpu/skiff-x")
        );
        assert_eq!(
            Hierarchy::V2.dir("cpu", "/skiff-x"),
            PathBuf::from("/sys/fs/cgroup/skiff-x")
        );
    }
}
