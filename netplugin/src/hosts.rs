//! Simulated hosts: network namespaces that stand in for machines on one L2 segment, for
//! the tests and for `skiff up`.
//!
//! Hosts named `<prefix>` pin their namespaces in a directory: an underlay namespace
//! `<prefix>-underlay` holding bridge `br0` (10.250.0.1/24) and, per host `i` (from 1), a
//! namespace `<prefix>-<name i>` whose `eth0` (10.250.0.<i+1>/24) is a veth to port `h<i>`
//! of that bridge. Nothing is created in the caller's own namespace, so the addresses exist
//! only inside these namespaces. [`SimulatedHosts::destroy`] kills whatever still runs inside
//! them and removes them, which takes the veths and the bridge along.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::link::{LinkError, Links};
use crate::netns::{self, NetnsError};

/// The underlay bridge (in the underlay namespace) and its address.
pub const UNDERLAY_BRIDGE: &str = "br0";
pub const UNDERLAY_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
pub const HOST_PREFIX_LEN: u8 = 24;
/// Each host's link to the underlay, inside the host's namespace.
pub const HOST_LINK: &str = "eth0";
/// Host addresses are 10.250.0.2 ..= 10.250.0.254.
pub const MAX_HOSTS: usize = 253;

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("between 1 and {MAX_HOSTS} hosts, not {0}")]
    Count(usize),
    #[error("host name {0:?} is not a short [a-z0-9-] name")]
    Name(String),
    #[error("{path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Netns {
        what: String,
        #[source]
        source: NetnsError,
    },
    #[error("{what}: {source}")]
    Link {
        what: String,
        #[source]
        source: LinkError,
    },
    #[error("{what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs netlink work in the namespace pinned at `path`, on a thread of its own with a
/// current-thread runtime (callable from sync code and from inside any runtime).
fn netlink<T, F, Fut>(path: &Path, what: &str, work: F) -> Result<T, HostsError>
where
    T: Send + 'static,
    F: FnOnce(Links) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, LinkError>>,
{
    let result = netns::run_in(path, move || -> Result<T, LinkError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(LinkError::Connect)?;
        runtime.block_on(async move { work(Links::connect()?).await })
    })
    .map_err(|source| HostsError::Netns {
        what: what.to_string(),
        source,
    })?;
    result.map_err(|source| HostsError::Link {
        what: what.to_string(),
        source,
    })
}

/// A set of simulated hosts; see the module documentation.
#[derive(Debug)]
pub struct SimulatedHosts {
    underlay: PathBuf,
    hosts: Vec<PathBuf>,
    /// Every namespace pinned so far, for cleanup (also after a failed start).
    pins: Vec<PathBuf>,
}

impl SimulatedHosts {
    fn layout(dir: &Path, prefix: &str, names: &[&str]) -> Result<SimulatedHosts, HostsError> {
        if names.is_empty() || names.len() > MAX_HOSTS {
            return Err(HostsError::Count(names.len()));
        }
        for name in names {
            let ok = !name.is_empty()
                && name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return Err(HostsError::Name(name.to_string()));
            }
        }
        Ok(SimulatedHosts {
            underlay: dir.join(format!("{prefix}-underlay")),
            hosts: names
                .iter()
                .map(|name| dir.join(format!("{prefix}-{name}")))
                .collect(),
            pins: Vec::new(),
        })
    }

    /// Creates the underlay and one host per name, pinned in `dir` (created if missing).
    /// What exists already is kept: a namespace still pinned there stays with whatever runs
    /// inside it, one whose pin is gone (after a reboot) is made again, and a host that lost
    /// its link to the underlay (the underlay was made again) gets a new one — so calling it
    /// again repairs the hosts. On failure, what this call made is removed again.
    pub fn create(dir: &Path, prefix: &str, names: &[&str]) -> Result<SimulatedHosts, HostsError> {
        let mut me = Self::layout(dir, prefix, names)?;
        std::fs::create_dir_all(dir).map_err(|source| HostsError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut made = Vec::new();
        match me.wire(&mut made) {
            Ok(()) => Ok(me),
            Err(e) => {
                for pin in made.iter().rev() {
                    kill_inside(pin);
                    let _ = netns::remove(pin);
                }
                Err(e)
            }
        }
    }

    /// The hosts a [`SimulatedHosts::create`] with the same arguments made earlier (perhaps
    /// in another process), for [`SimulatedHosts::destroy`] or to run more inside them.
    /// Namespaces that are gone are skipped when destroying.
    pub fn existing(
        dir: &Path,
        prefix: &str,
        names: &[&str],
    ) -> Result<SimulatedHosts, HostsError> {
        let mut me = Self::layout(dir, prefix, names)?;
        me.pins = std::iter::once(me.underlay.clone())
            .chain(me.hosts.iter().cloned())
            .filter(|pin| pin.exists())
            .collect();
        Ok(me)
    }

    /// Pins a new namespace at `path` unless one is pinned there already (recording it in
    /// `made` then); a pin file without its namespace is replaced.
    fn pin(&mut self, path: PathBuf, made: &mut Vec<PathBuf>) -> Result<(), HostsError> {
        if !netns::is_pinned(&path) {
            let create = netns::remove(&path).and_then(|()| netns::create(&path));
            create.map_err(|source| HostsError::Netns {
                what: "create a host namespace".into(),
                source,
            })?;
            made.push(path.clone());
        }
        self.pins.push(path);
        Ok(())
    }

    fn wire(&mut self, made: &mut Vec<PathBuf>) -> Result<(), HostsError> {
        self.pin(self.underlay.clone(), made)?;
        netlink(
            &self.underlay,
            "set up the underlay bridge",
            |links| async move {
                links.set_up("lo").await?;
                links.ensure_bridge(UNDERLAY_BRIDGE).await?;
                links
                    .add_address(UNDERLAY_BRIDGE, IpAddr::V4(UNDERLAY_IP), HOST_PREFIX_LEN)
                    .await?;
                links.set_up(UNDERLAY_BRIDGE).await
            },
        )?;
        for i in 1..=self.hosts.len() {
            let host = self.hosts[i - 1].clone();
            self.pin(host.clone(), made)?;
            let port = format!("h{i}");
            let peer = format!("h{i}p");
            // Linked when both ends of the pair are there: the port on the bridge and the
            // host's end, renamed or not yet. A pair dies with either namespace, but only
            // once the kernel has cleaned a removed namespace up, so an end left over from
            // one is deleted here rather than trusted.
            let ends = netlink(&host, &format!("look at host {i}'s link"), {
                let peer = peer.clone();
                move |links| async move {
                    Ok(links.index(HOST_LINK).await?.is_some()
                        || links.index(&peer).await?.is_some())
                }
            })?;
            let port_there = netlink(&self.underlay, &format!("look at port {port}"), {
                let port = port.clone();
                move |links| async move { Ok(links.index(&port).await?.is_some()) }
            })?;
            if !(ends && port_there) {
                netlink(&host, &format!("clear host {i}'s old link"), {
                    let peer = peer.clone();
                    move |links| async move {
                        links.delete_link(HOST_LINK).await?;
                        links.delete_link(&peer).await
                    }
                })?;
                let file = std::fs::File::open(&host).map_err(|source| HostsError::Dir {
                    path: host.clone(),
                    source,
                })?;
                let peer = peer.clone();
                netlink(
                    &self.underlay,
                    &format!("wire host {i} to the underlay"),
                    move |links| async move {
                        links.delete_link(&port).await?;
                        links.create_veth(&port, &peer).await?;
                        links.move_to_netns(&peer, &file).await?;
                        links.set_master(&port, UNDERLAY_BRIDGE).await?;
                        links.set_up(&port).await
                    },
                )?;
            }
            let ip = self.ip(i);
            netlink(
                &host,
                &format!("set up host {i}"),
                move |links| async move {
                    links.set_up("lo").await?;
                    links.rename(&peer, HOST_LINK).await?;
                    links
                        .add_address(HOST_LINK, IpAddr::V4(ip), HOST_PREFIX_LEN)
                        .await?;
                    links.set_up(HOST_LINK).await
                },
            )?;
        }
        Ok(())
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

    /// Spawns `command` inside host `i`'s namespace.
    pub fn spawn(&self, i: usize, mut command: Command) -> Result<Child, HostsError> {
        let what = format!("spawn {command:?} in host {i}");
        netns::run_in(&self.netns_path(i), move || command.spawn())
            .map_err(|source| HostsError::Netns {
                what: what.clone(),
                source,
            })?
            .map_err(|source| HostsError::Spawn { what, source })
    }

    /// Cuts host `i` off: its `eth0` goes down (its address stays).
    pub fn link_down(&self, i: usize) -> Result<(), HostsError> {
        netlink(
            &self.netns_path(i),
            "take the host link down",
            |links| async move { links.set_down(HOST_LINK).await },
        )
    }

    /// Reconnects host `i` after [`SimulatedHosts::link_down`].
    pub fn link_up(&self, i: usize) -> Result<(), HostsError> {
        netlink(
            &self.netns_path(i),
            "bring the host link up",
            |links| async move { links.set_up(HOST_LINK).await },
        )
    }

    /// The namespaces pinned (underlay first).
    pub fn pins(&self) -> &[PathBuf] {
        &self.pins
    }

    /// Kills every process inside the hosts' namespaces and removes the namespaces (hosts
    /// first, the underlay last); returns what could not be removed. Idempotent.
    pub fn destroy(&mut self) -> Vec<NetnsError> {
        let mut errors = Vec::new();
        while let Some(pin) = self.pins.pop() {
            kill_inside(&pin);
            if let Err(e) = netns::remove(&pin) {
                errors.push(e);
            }
        }
        errors
    }
}

/// Whether process `pid` lives in the network namespace pinned at `pin`.
pub fn runs_inside(pid: u32, pin: &Path) -> bool {
    let (Ok(ns), Ok(theirs)) = (
        std::fs::metadata(pin),
        std::fs::metadata(format!("/proc/{pid}/ns/net")),
    ) else {
        return false;
    };
    theirs.dev() == ns.dev() && theirs.ino() == ns.ino()
}

/// SIGKILLs every process (other than this one) whose network namespace is the one pinned
/// at `pin`, so that nothing keeps it alive; returns how many it signalled.
pub fn kill_inside(pin: &Path) -> usize {
    if !netns::is_pinned(pin) {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let me = std::process::id();
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != me
            && runs_inside(pid, pin)
            && kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_is_made() {
        let dir = Path::new("/nonexistent-skiff-pins");
        assert!(matches!(
            SimulatedHosts::create(dir, "x", &[]),
            Err(HostsError::Count(0))
        ));
        assert!(matches!(
            SimulatedHosts::create(dir, "x", &["ok", "Not_Ok"]),
            Err(HostsError::Name(n)) if n == "Not_Ok"
        ));
        assert!(!dir.exists());
    }

    /// Host 2 reaches host 1's address over the underlay (a TCP connection).
    fn connects(hosts: &SimulatedHosts) -> bool {
        let listener = netns::run_in(&hosts.netns_path(1), || {
            std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        })
        .unwrap()
        .unwrap();
        let address = (hosts.ip(1), listener.local_addr().unwrap().port()).into();
        netns::run_in(&hosts.netns_path(2), move || {
            std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2))
        })
        .unwrap()
        .is_ok()
    }

    #[test]
    fn create_again_keeps_what_is_pinned_and_makes_the_rest() {
        if !skiff_testkit::root_or_skip("network namespaces, links") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!("again{}", std::process::id());
        let mut hosts = SimulatedHosts::create(dir.path(), &prefix, &["a", "b"]).unwrap();
        assert!(connects(&hosts));
        let ns = |path: &Path| std::fs::metadata(path).unwrap().ino();
        let kept = ns(&hosts.netns_path(1));
        // As after a reboot: the underlay and host b are gone, b's pin file stays behind.
        netns::remove(&hosts.underlay_path()).unwrap();
        netns::remove(&hosts.netns_path(2)).unwrap();
        std::fs::write(hosts.netns_path(2), "").unwrap();
        assert!(!connects_or_fails(&hosts));
        let mut again = SimulatedHosts::create(dir.path(), &prefix, &["a", "b"]).unwrap();
        assert_eq!(ns(&again.netns_path(1)), kept, "host a is kept");
        assert!(again.pins().iter().all(|pin| netns::is_pinned(pin)));
        assert!(connects(&again));
        // And once more with everything in place: nothing changes.
        let third = SimulatedHosts::create(dir.path(), &prefix, &["a", "b"]).unwrap();
        assert_eq!(ns(&third.netns_path(1)), kept);
        assert!(connects(&third));
        assert!(again.destroy().is_empty());
        assert!(hosts.destroy().is_empty());
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    /// Like [`connects`], false also when host 2's namespace is not there.
    fn connects_or_fails(hosts: &SimulatedHosts) -> bool {
        netns::is_pinned(&hosts.netns_path(2)) && connects(hosts)
    }

    #[test]
    fn existing_names_pins_and_addresses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p-underlay"), "").unwrap();
        std::fs::write(dir.path().join("p-w2"), "").unwrap();
        let hosts = SimulatedHosts::existing(dir.path(), "p", &["w1", "w2"]).unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts.ip(2), Ipv4Addr::new(10, 250, 0, 3));
        assert_eq!(hosts.netns_path(1), dir.path().join("p-w1"));
        // Only what exists is there to remove.
        assert_eq!(
            hosts.pins(),
            &[dir.path().join("p-underlay"), dir.path().join("p-w2")]
        );
    }
}
