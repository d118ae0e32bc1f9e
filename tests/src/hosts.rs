//! Test hosts: network namespaces that stand in for machines on one L2 segment.
//!
//! A run `skt<pid>x<n>` pins its namespaces in [`NETNS_DIR`]: an underlay namespace
//! `<prefix>-underlay` holding bridge `br0` (10.250.0.1/24) and, per host `i` (from 1), a
//! namespace `<prefix>-h<i>` whose `eth0` (10.250.0.<i+1>/24) is a veth to port `h<i>` of
//! that bridge. Nothing is created in the caller's own namespace. Dropping a [`TestHosts`]
//! kills what it spawned (and anything else left inside its namespaces) and removes the
//! namespaces, which takes the veths and the bridge along; [`sweep_stale`] cleans up after
//! runs whose process died before it could.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use skiff_netplugin::link::{LinkError, Links};
use skiff_netplugin::netns;

/// Where test namespaces are pinned.
pub const NETNS_DIR: &str = "/run/skiff-test-netns";
/// The underlay bridge (in the underlay namespace) and its address.
pub const UNDERLAY_BRIDGE: &str = "br0";
pub const UNDERLAY_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
pub const HOST_PREFIX_LEN: u8 = 24;
/// Each host's link to the underlay, inside the host's namespace.
pub const HOST_LINK: &str = "eth0";

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Runs netlink work in the namespace pinned at `path`, on a thread of its own with a
/// current-thread runtime (callable from sync code and from inside any runtime).
fn netlink<T, F, Fut>(path: &Path, work: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(Links) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, LinkError>>,
{
    let result = netns::run_in(path, move || -> anyhow::Result<T> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let links = Links::connect()?;
            Ok(work(links).await?)
        })
    })?;
    result.with_context(|| format!("in network namespace {}", path.display()))
}

/// A set of simulated hosts; see the module documentation.
pub struct TestHosts {
    prefix: String,
    underlay: PathBuf,
    hosts: Vec<PathBuf>,
    /// Every namespace pinned so far, for cleanup (also after a failed start).
    pins: Vec<PathBuf>,
    children: Mutex<Vec<Pid>>,
}

impl TestHosts {
    /// Creates the underlay and `n` hosts (1 ≤ n ≤ 253), sweeping stale runs first.
    pub fn start(n: usize) -> anyhow::Result<TestHosts> {
        anyhow::ensure!((1..=253).contains(&n), "between 1 and 253 hosts, not {n}");
        sweep_stale();
        std::fs::create_dir_all(NETNS_DIR).with_context(|| format!("create {NETNS_DIR}"))?;
        let prefix = format!(
            "skt{}x{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        let dir = Path::new(NETNS_DIR);
        // Cleans up whatever exists so far if any step fails.
        let mut me = TestHosts {
            underlay: dir.join(format!("{prefix}-underlay")),
            hosts: (1..=n)
                .map(|i| dir.join(format!("{prefix}-h{i}")))
                .collect(),
            prefix,
            pins: Vec::new(),
            children: Mutex::new(Vec::new()),
        };

        me.pin(me.underlay.clone())?;
        netlink(&me.underlay, |links| async move {
            links.set_up("lo").await?;
            links.ensure_bridge(UNDERLAY_BRIDGE).await?;
            links
                .add_address(UNDERLAY_BRIDGE, IpAddr::V4(UNDERLAY_IP), HOST_PREFIX_LEN)
                .await?;
            links.set_up(UNDERLAY_BRIDGE).await
        })
        .context("set up the underlay bridge")?;

        for i in 1..=n {
            let host = me.hosts[i - 1].clone();
            me.pin(host.clone())?;
            let port = format!("h{i}");
            let peer = format!("h{i}p");
            let file =
                std::fs::File::open(&host).with_context(|| format!("open {}", host.display()))?;
            netlink(&me.underlay, move |links| async move {
                links.create_veth(&port, &peer).await?;
                links.move_to_netns(&peer, &file).await?;
                links.set_master(&port, UNDERLAY_BRIDGE).await?;
                links.set_up(&port).await
            })
            .with_context(|| format!("wire host {i} to the underlay"))?;
            let peer = format!("h{i}p");
            let ip = me.ip(i);
            netlink(&host, move |links| async move {
                links.set_up("lo").await?;
                links.rename(&peer, HOST_LINK).await?;
                links
                    .add_address(HOST_LINK, IpAddr::V4(ip), HOST_PREFIX_LEN)
                    .await?;
                links.set_up(HOST_LINK).await
            })
            .with_context(|| format!("set up host {i}"))?;
        }
        Ok(me)
    }

    fn pin(&mut self, path: PathBuf) -> anyhow::Result<()> {
        netns::create(&path)?;
        self.pins.push(path);
        Ok(())
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

    fn check(&self, i: usize) {
        assert!(
            (1..=self.hosts.len()).contains(&i),
            "no host {i}: hosts are 1..={}",
            self.hosts.len()
        );
    }

    /// Host `i`'s address on the underlay: 10.250.0.<i+1>.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        self.check(i);
        Ipv4Addr::new(10, 250, 0, (i + 1) as u8)
    }

    /// The pin file of host `i`'s network namespace.
    pub fn netns_path(&self, i: usize) -> PathBuf {
        self.check(i);
        self.hosts[i - 1].clone()
    }

    /// The pin file of the underlay namespace (bridge `br0`, 10.250.0.1).
    pub fn underlay_path(&self) -> PathBuf {
        self.underlay.clone()
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
    pub fn spawn(&self, i: usize, mut command: Command) -> anyhow::Result<Child> {
        let what = format!("{command:?}");
        let child = netns::run_in(&self.netns_path(i), move || command.spawn())?
            .with_context(|| format!("spawn {what} in host {i}"))?;
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Pid::from_raw(child.id() as i32));
        Ok(child)
    }

    /// Cuts host `i` off: its `eth0` goes down (its address stays).
    pub fn link_down(&self, i: usize) -> anyhow::Result<()> {
        netlink(&self.netns_path(i), |links| async move {
            links.set_down(HOST_LINK).await
        })
    }

    /// Reconnects host `i` after [`TestHosts::link_down`].
    pub fn link_up(&self, i: usize) -> anyhow::Result<()> {
        netlink(&self.netns_path(i), |links| async move {
            links.set_up(HOST_LINK).await
        })
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
        // Hosts first, the underlay last (the order does not matter to the kernel).
        for pin in self.pins.iter().rev() {
            kill_inside(pin);
            if let Err(e) = netns::remove(pin) {
                eprintln!("test hosts: {e}");
            }
        }
    }
}

/// SIGKILLs every process (other than this one) whose network namespace is the one pinned
/// at `pin`, so that nothing keeps it alive.
fn kill_inside(pin: &Path) {
    let Ok(ns) = std::fs::metadata(pin) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id() as i32;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(theirs) = std::fs::metadata(entry.path().join("ns/net")) else {
            continue;
        };
        if theirs.dev() == ns.dev() && theirs.ino() == ns.ino() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
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
