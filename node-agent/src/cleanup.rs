//! Removing what an agent leaves on its host when it is gone for good (`skiff down` through
//! `skiff-agent sweep`, test teardown): the processes started under its data dir — the sandbox and shim helpers the
//! agent re-execs, and the containers below them — and the mounts there (pinned
//! namespaces, volumes). A restarting agent must not do this: pods outlive the agent.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Each process's parent, and the processes whose command line mentions `dir`.
fn processes(dir: &Path) -> (HashMap<u32, u32>, BTreeSet<u32>) {
    let needle = dir.display().to_string();
    let mut parents = HashMap::new();
    let mut mentioning = BTreeSet::new();
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest)
            && let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok())
        {
            parents.insert(pid, ppid);
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if pid != me && String::from_utf8_lossy(&cmdline).contains(&needle) {
            mentioning.insert(pid);
        }
    }
    (parents, mentioning)
}

/// The processes started under `dir` (but not `except`) and their descendants.
fn owned_processes(dir: &Path, except: Option<u32>) -> BTreeSet<u32> {
    let (parents, mut owned) = processes(dir);
    if let Some(pid) = except {
        owned.remove(&pid);
    }
    loop {
        let more: Vec<u32> = parents
            .iter()
            .filter(|(pid, ppid)| owned.contains(ppid) && !owned.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        if more.is_empty() {
            return owned;
        }
        owned.extend(more);
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    crate::runtime::sandbox::mounts_under(dir).unwrap_or_default()
}

/// What is still running or mounted under `dir`, described for an assertion message.
pub fn leftovers(dir: &Path, except: Option<u32>) -> Vec<String> {
    let mut found: Vec<String> = owned_processes(dir, except)
        .into_iter()
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!(
                "process {pid}: {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            )
        })
        .collect();
    found.extend(mounts_under(dir).into_iter().map(|m| format!("mount {m}")));
    found.extend(
        agent_data_dirs(dir)
            .iter()
            .flat_map(|d| crate::runtime::oci::cgroup::leftovers(d))
            .map(|c| format!("cgroup {}", c.display())),
    );
    found
}

/// Kills every process started under `dir` (and their children), unmounts what is mounted
/// there, and removes the `oci` runtime's container cgroups of the agent data dirs in or
/// at `dir`.
pub fn sweep(dir: &Path) {
    for pid in owned_processes(dir, None) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let mut mounts = mounts_under(dir);
    // A container whose shim died is no longer a descendant of anything under `dir`, but it
    // still lives in its pod's network namespace, pinned here: kill what is inside those
    // (for a volume mount this matches nothing).
    for mount in &mounts {
        skiff_netplugin::hosts::kill_inside(Path::new(mount));
    }
    // Deepest first.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in mounts {
        let _ = nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    for data_dir in agent_data_dirs(dir) {
        // Killed processes leave their cgroup once the kernel reaped them: retry briefly.
        for _ in 0..20 {
            if crate::runtime::oci::cgroup::remove_leftovers(&data_dir) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sweeps each of `dirs` (see [`sweep`]) again and again until nothing is left under any of
/// them or `timeout` has passed; what is still left then (see [`leftovers`]). What
/// `skiff-agent sweep` (and so `skiff down`) runs: killed processes take a moment to go,
/// and a shim may start another one while the first sweep runs.
pub fn sweep_until_clean(dirs: &[PathBuf], timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        for dir in dirs {
            sweep(dir);
        }
        let left: Vec<String> = dirs.iter().flat_map(|d| leftovers(d, None)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `dir` and the directories up to two levels below it that hold an `oci/` runtime root
/// (`skiff down` sweeps a cluster dir of agent data dirs, tests an agent's temp root).
fn agent_data_dirs(dir: &Path) -> Vec<PathBuf> {
    fn visit(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
        if dir.join("oci/sandboxes").is_dir() {
            found.push(dir.to_path_buf());
        } else if depth > 0 {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    visit(&entry.path(), depth - 1, found);
                }
            }
        }
    }
    let mut found = Vec::new();
    visit(dir, 2, &mut found);
    found
}
