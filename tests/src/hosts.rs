//! Test hosts: [`SimulatedHosts`] with per-run names and cleanup guaranteed by `Drop`.
//!
//! A run `skt<pid>x<n>` pins its namespaces in [`NETNS_DIR`] (hosts `h1`…`hN`, see
//! `skiff_netplugin::hosts` for the layout). Dropping a [`TestHosts`] kills what it spawned
//! (and anything else left inside its namespaces) and removes the namespaces;
//! [`sweep_stale`] cleans up after runs whose process died before it could.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use skiff_netplugin::hosts::{SimulatedHosts, kill_inside};
use skiff_netplugin::netns;

pub use skiff_netplugin::hosts::{HOST_LINK, HOST_PREFIX_LEN, UNDERLAY_BRIDGE, UNDERLAY_IP};

/// Where test namespaces are pinned.
pub const NETNS_DIR: &str = "/run/skiff-test-netns";

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// A set of simulated hosts; see the module documentation.
pub struct TestHosts {
    prefix: String,
    hosts: SimulatedHosts,
    children: Mutex<Vec<Pid>>,
}

impl TestHosts {
    /// Creates the underlay and `n` hosts (1 ≤ n ≤ 253), sweeping stale runs first.
    pub fn start(n: usize) -> anyhow::Result<TestHosts> {
        anyhow::ensure!((1..=253).contains(&n), "between 1 and 253 hosts, not {n}");
        sweep_stale();
        let prefix = format!(
            "skt{}x{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        let names: Vec<String> = (1..=n).map(|i| format!("h{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let hosts = SimulatedHosts::create(Path::new(NETNS_DIR), &prefix, &names)
            .context("create the test hosts")?;
        Ok(TestHosts {
            prefix,
            hosts,
            children: Mutex::new(Vec::new()),
        })
    }

    /// This run's unique name prefix (`skt<pid>x<n>`); every pin file starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Host `i`'s address on the underlay: 10.250.0.<i+1>.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        self.hosts.ip(i)
    }

    /// The pin file of host `i`'s network namespace.
    pub fn netns_path(&self, i: usize) -> PathBuf {
        self.hosts.netns_path(i)
    }

    /// The pin file of the underlay namespace (bridge `br0`, 10.250.0.1).
    pub fn underlay_path(&self) -> PathBuf {
        self.hosts.underlay_path()
    }

    /// Runs `work` on a thread inside host `i`'s namespace; sockets it opens stay there.
    pub fn run_in<T, F>(&self, i: usize, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        Ok(netns::run_in(&self.netns_path(i), work)?)
    }

    /// Spawns `command` inside host `i`'s namespace. The process is SIGKILLed (and reaped,
    /// if the caller has not reaped it yet) when the harness is dropped.
    pub fn spawn(&self, i: usize, command: Command) -> anyhow::Result<Child> {
        let child = self.hosts.spawn(i, command)?;
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Pid::from_raw(child.id() as i32));
        Ok(child)
    }

    /// Cuts host `i` off: its `eth0` goes down (its address stays).
    pub fn link_down(&self, i: usize) -> anyhow::Result<()> {
        Ok(self.hosts.link_down(i)?)
    }

    /// Reconnects host `i` after [`TestHosts::link_down`].
    pub fn link_up(&self, i: usize) -> anyhow::Result<()> {
        Ok(self.hosts.link_up(i)?)
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        let children = std::mem::take(self.children.get_mut().unwrap_or_else(|e| e.into_inner()));
        for pid in children {
            // Only a child nobody has reaped yet is still ours: its pid cannot be reused.
            if let Ok(WaitStatus::StillAlive) = waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
            }
        }
        for e in self.hosts.destroy() {
            eprintln!("test hosts: {e}");
        }
    }
}

/// The pid in a pin name `skt<pid>x<n>-…`.
fn owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("skt")?;
    let (pid, _) = rest.split_once('x')?;
    pid.parse().ok().filter(|pid| *pid > 0)
}

/// Removes the namespaces in [`NETNS_DIR`] of runs whose process is gone (killing anything
/// still running inside them); returns how many it removed.
pub fn sweep_stale() -> usize {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner) else {
            continue;
        };
        let alive = !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH));
        if alive {
            continue;
        }
        let pin = entry.path();
        kill_inside(&pin);
        match netns::remove(&pin) {
            Ok(()) => removed += 1,
            Err(e) => eprintln!("test hosts: sweep: {e}"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::owner;

    #[test]
    fn owner_parses_the_pid() {
        assert_eq!(owner("skt123x0-h1"), Some(123));
        assert_eq!(owner("skt42x17-underlay"), Some(42));
        assert_eq!(owner("sktx0-h1"), None);
        assert_eq!(owner("skt0x0-h1"), None);
        assert_eq!(owner("other"), None);
        assert_eq!(owner("skt12"), None);
    }
}
