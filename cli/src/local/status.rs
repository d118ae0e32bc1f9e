//! What of a local cluster really runs: its namespaces (pinned or not) and its daemons —
//! a member or an agent is the process started with `--data-dir` on its data dir, and it
//! is of the cluster only inside its host's namespace. Read from `/proc` and the pins, never
//! from the state file alone, so a cluster whose processes went (a reboot) reads stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_netplugin::hosts::runs_inside;
use skiff_netplugin::netns;

use super::State;
use crate::table::Table;

/// A member (`cp-N`) or an agent (`worker-N`): its host's name, which also names its data
/// dir and its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    pub name: String,
    /// Its host's number (from 1), as in [`skiff_netplugin::hosts::SimulatedHosts`].
    pub host: usize,
    /// The member's id, for members.
    pub member: Option<usize>,
    pub data_dir: PathBuf,
    /// Its host's namespace pin.
    pub pin: PathBuf,
}

impl Daemon {
    pub fn binary(&self) -> &'static str {
        if self.member.is_some() {
            "skiff-control-plane"
        } else {
            "skiff-agent"
        }
    }
}

/// The cluster's daemons, members first, one per host.
pub fn daemons(state: &State, cluster: &Path) -> Vec<Daemon> {
    state
        .hosts
        .iter()
        .enumerate()
        .map(|(i, host)| Daemon {
            name: host.clone(),
            host: i + 1,
            member: (i < state.control_planes).then_some(i + 1),
            data_dir: cluster.join(host),
            pin: state.pin_dir.join(format!("{}-{host}", state.prefix)),
        })
        .collect()
}

/// How a daemon is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// Runs inside its host's namespace.
    Running(u32),
    /// Runs on its data dir but outside its host's namespace (that namespace went while it
    /// ran): nobody can reach it, and no other process may take its data dir.
    Stray(u32),
    Stopped,
}

/// The arguments of every process, by pid.
fn command_lines() -> BTreeMap<u32, Vec<String>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        found.insert(pid, args);
    }
    found
}

/// Whether `args` pass `--data-dir` as `data_dir`.
fn on_data_dir(args: &[String], data_dir: &Path) -> bool {
    let dir = data_dir.to_string_lossy();
    args.windows(2)
        .any(|pair| pair[0] == "--data-dir" && pair[1] == dir)
        || args
            .iter()
            .any(|a| a.strip_prefix("--data-dir=") == Some(&dir))
}

/// The processes started on `data_dir` (a member or an agent; normally one).
pub fn processes_on(data_dir: &Path) -> Vec<u32> {
    command_lines()
        .into_iter()
        .filter(|(_, args)| on_data_dir(args, data_dir))
        .map(|(pid, _)| pid)
        .collect()
}

/// The processes with `path` among their arguments (the registry, by its config file).
pub fn processes_naming(path: &Path) -> Vec<u32> {
    let path = path.to_string_lossy();
    command_lines()
        .into_iter()
        .filter(|(_, args)| args.iter().any(|a| *a == path))
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether any process names a path below `dir` (an agent's shims and runc, which run the
/// pods' containers: an agent data dir without them has no container left running).
pub fn anything_runs_under(dir: &Path) -> bool {
    let below = format!("{}/", dir.display());
    command_lines()
        .values()
        .any(|args| args.iter().any(|a| a.starts_with(&below)))
}

/// How `daemon` is doing (the first process on its data dir decides).
pub fn process_of(daemon: &Daemon) -> Process {
    let Some(pid) = processes_on(&daemon.data_dir).into_iter().next() else {
        return Process::Stopped;
    };
    // Without root the namespace of root's processes cannot be read: trust the pid then.
    let root = nix::unistd::Uid::effective().is_root();
    if !root || (netns::is_pinned(&daemon.pin) && runs_inside(pid, &daemon.pin)) {
        Process::Running(pid)
    } else {
        Process::Stray(pid)
    }
}

/// A local cluster as it really is.
#[derive(Debug, Clone)]
pub struct Status {
    pub name: String,
    pub cluster: PathBuf,
    pub servers: Vec<String>,
    /// The underlay's pin, and whether it pins a namespace.
    pub underlay: (PathBuf, bool),
    /// Each daemon with whether its host's namespace is pinned, and its process.
    pub daemons: Vec<(Daemon, bool, Process)>,
}

/// What a [`Status`] adds up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Running,
    /// No member or agent runs.
    Stopped,
    /// Some run: the names of what does not, or "the underlay".
    Partly(Vec<String>),
}

impl Status {
    pub fn read(state: &State, cluster: &Path) -> Status {
        let underlay = state.pin_dir.join(format!("{}-underlay", state.prefix));
        let pinned = netns::is_pinned(&underlay);
        Status {
            name: state.name.clone(),
            cluster: cluster.to_path_buf(),
            servers: state.servers.clone(),
            underlay: (underlay, pinned),
            daemons: daemons(state, cluster)
                .into_iter()
                .map(|d| {
                    let pinned = netns::is_pinned(&d.pin);
                    let process = process_of(&d);
                    (d, pinned, process)
                })
                .collect(),
        }
    }

    pub fn verdict(&self) -> Verdict {
        let running = |p: &Process| matches!(p, Process::Running(_));
        if !self.daemons.iter().any(|(_, _, p)| *p != Process::Stopped) {
            return Verdict::Stopped;
        }
        let mut down: Vec<String> = self
            .daemons
            .iter()
            .filter(|(_, pinned, p)| !(*pinned && running(p)))
            .map(|(d, _, _)| d.name.clone())
            .collect();
        if !self.underlay.1 {
            down.push("the underlay".into());
        }
        if down.is_empty() {
            Verdict::Running
        } else {
            Verdict::Partly(down)
        }
    }

    /// Whether a client can reach the API: the underlay is there and a member runs.
    pub fn reachable(&self) -> bool {
        self.underlay.1
            && self
                .daemons
                .iter()
                .any(|(d, _, p)| d.member.is_some() && matches!(p, Process::Running(_)))
    }

    /// One line on the whole and a row per host, for `skiff cluster status`.
    pub fn render(&self) -> String {
        let verdict = match self.verdict() {
            Verdict::Running => "running".to_string(),
            Verdict::Stopped => "stopped".to_string(),
            Verdict::Partly(down) => format!("partly running (not: {})", down.join(", ")),
        };
        let rows = self
            .daemons
            .iter()
            .map(|(daemon, pinned, process)| {
                let state = match process {
                    Process::Running(pid) => format!("running (pid {pid})"),
                    Process::Stray(pid) => format!("stray (pid {pid}, outside its namespace)"),
                    Process::Stopped => "stopped".to_string(),
                };
                let namespace = if *pinned { "pinned" } else { "gone" };
                vec![
                    daemon.name.clone(),
                    namespace.to_string(),
                    daemon.binary().to_string(),
                    state,
                ]
            })
            .collect();
        let table = Table::new(&["HOST", "NAMESPACE", "PROCESS", "STATE"], rows);
        format!(
            "Local cluster {:?} ({}): {verdict}\n{}",
            self.name,
            self.cluster.display(),
            table.render()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            name: "c1".into(),
            pin_dir: "/nonexistent-pins".into(),
            prefix: "skiff-c1".into(),
            hosts: vec!["cp-1".into(), "worker-1".into()],
            control_planes: 1,
            workers: 1,
            servers: vec!["10.250.0.2:7000".into()],
            config: "/nonexistent/config".into(),
        }
    }

    #[test]
    fn daemons_are_the_hosts_members_first() {
        let daemons = daemons(&state(), Path::new("/d/c1"));
        assert_eq!(daemons.len(), 2);
        assert_eq!(daemons[0].member, Some(1));
        assert_eq!(daemons[0].binary(), "skiff-control-plane");
        assert_eq!(daemons[0].data_dir, Path::new("/d/c1/cp-1"));
        assert_eq!(daemons[1].member, None);
        assert_eq!(daemons[1].host, 2);
        assert_eq!(
            daemons[1].pin,
            Path::new("/nonexistent-pins/skiff-c1-worker-1")
        );
    }

    #[test]
    fn a_daemon_is_the_process_passing_its_data_dir() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let dir = Path::new("/d/c1/worker-1");
        assert!(on_data_dir(
            &args(&[
                "skiff-agent",
                "--data-dir",
                "/d/c1/worker-1",
                "--listen",
                "x"
            ]),
            dir
        ));
        assert!(on_data_dir(&args(&["a", "--data-dir=/d/c1/worker-1"]), dir));
        // Its shims name paths below it; another cluster's agent a longer path.
        assert!(!on_data_dir(
            &args(&["skiff-agent", "__shim", "/d/c1/worker-1/oci/sandboxes/x"]),
            dir
        ));
        assert!(!on_data_dir(
            &args(&["a", "--data-dir", "/d/c1/worker-10"]),
            dir
        ));
    }

    #[test]
    fn a_cluster_whose_processes_are_gone_is_stopped_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let status = Status::read(&state(), &dir.path().join("c1"));
        assert_eq!(status.verdict(), Verdict::Stopped);
        assert!(!status.reachable());
        let text = status.render();
        assert!(text.starts_with("Local cluster \"c1\""), "{text}");
        assert!(text.contains(": stopped\n"), "{text}");
        assert!(!text.contains("running"), "{text}");
        // A daemon alive among dead ones: partly running, naming the rest.
        let mut partly = status.clone();
        partly.daemons[0].1 = true;
        partly.daemons[0].2 = Process::Running(1);
        assert_eq!(
            partly.verdict(),
            Verdict::Partly(vec!["worker-1".into(), "the underlay".into()])
        );
        assert!(!partly.reachable(), "no underlay to reach it through");
        partly.underlay.1 = true;
        assert!(partly.reachable());
    }

    #[test]
    fn this_process_is_found_by_its_arguments() {
        // The test binary runs under cargo with no --data-dir: nothing found for a made-up dir.
        assert!(processes_on(Path::new("/nonexistent/skiff-data-dir")).is_empty());
        let me = std::env::current_exe().unwrap();
        assert!(anything_runs_under(me.parent().unwrap()));
    }
}
