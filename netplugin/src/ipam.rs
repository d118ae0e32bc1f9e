//! Node-local IP address management for the node's pod CIDR.
//!
//! The control plane hands each node one IPv4 pod CIDR (e.g. `10.244.3.0/24`). Within it the
//! network address, the gateway (the first usable address, `.1`, held by the node's bridge)
//! and the broadcast address are never handed out; every other address goes to at most one
//! owner (a pod). Allocations live in one JSON file, [`STATE_FILE`], in a directory of the
//! caller's choosing. Every mutation is written to a temporary file, fsynced and renamed over
//! the old file (and the directory fsynced) before the call returns, so a crash leaves either
//! the old or the new state, never a half-written file. A file that cannot be read back is an
//! error naming it; it is never silently reset.
//!
//! One [`Ipam`] owns its directory: two instances (or processes) on the same directory would
//! overwrite each other's changes. Methods that mutate take `&mut self`; callers that share an
//! `Ipam` wrap it in a `Mutex`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use skiff_api::cidr::{Cidr, CidrError};

/// Name of the state file inside the directory given to [`Ipam::open`].
pub const STATE_FILE: &str = "ipam.json";
const TEMP_FILE: &str = ".ipam.json.tmp";
const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("IPAM state {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// The state file exists but cannot be used; it is left untouched for inspection.
    #[error("IPAM state {path} is corrupt ({reason}); refusing to reset it, inspect or remove it")]
    Corrupt { path: PathBuf, reason: String },
    /// The stored allocations belong to another pod CIDR (the node was re-assigned).
    #[error(
        "IPAM state holds allocations for pod CIDR {stored}, but this node's pod CIDR is now {wanted}"
    )]
    CidrChanged { stored: Cidr, wanted: Cidr },
    #[error("pod CIDR {cidr} has no free address left")]
    Exhausted { cidr: Cidr },
    #[error("pod CIDR {cidr} is too small for pods: a prefix length of at most 30 is needed")]
    TooSmall { cidr: Cidr },
}

#[derive(Serialize, Deserialize)]
struct State {
    version: u32,
    cidr: Cidr,
    /// The most recently allocated address; next-fit scanning continues after it.
    last: Option<Ipv4Addr>,
    allocations: BTreeMap<String, Ipv4Addr>,
}

/// The address manager of one node's pod CIDR. See the module documentation.
#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    path: PathBuf,
    cidr: Cidr,
    last: Option<Ipv4Addr>,
    by_owner: BTreeMap<String, Ipv4Addr>,
    by_addr: BTreeMap<Ipv4Addr, String>,
}

impl Ipam {
    /// Opens (creating `dir` and the state file if missing) the allocations for `cidr`.
    ///
    /// Fails with [`IpamError::CidrChanged`] if the stored state is for another CIDR,
    /// [`IpamError::Corrupt`] if the file cannot be parsed or is inconsistent (addresses
    /// outside the CIDR, reserved or held twice), [`IpamError::TooSmall`] for prefixes > 30.
    pub fn open(dir: &Path, cidr: Cidr) -> Result<Ipam, IpamError> {
        if cidr.pod_capacity() == 0 {
            return Err(IpamError::TooSmall { cidr });
        }
        fs::create_dir_all(dir).map_err(io_err(dir, "create the directory"))?;
        let path = dir.join(STATE_FILE);
        let mut ipam = Ipam {
            dir: dir.to_path_buf(),
            path: path.clone(),
            cidr,
            last: None,
            by_owner: BTreeMap::new(),
            by_addr: BTreeMap::new(),
        };
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                ipam.persist()?;
                return Ok(ipam);
            }
            Err(e) => return Err(io_err(&path, "read")(e)),
        };
        let corrupt = |reason: String| IpamError::Corrupt {
            path: path.clone(),
            reason,
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if state.version != STATE_VERSION {
            return Err(corrupt(format!(
                "unsupported version {} (expected {STATE_VERSION})",
                state.version
            )));
        }
        if state.cidr != cidr {
            return Err(IpamError::CidrChanged {
                stored: state.cidr,
                wanted: cidr,
            });
        }
        if let Some(last) = state.last
            && !ipam.is_assignable(last)
        {
            return Err(corrupt(format!(
                "last allocated address {last} is not assignable in {cidr}"
            )));
        }
        ipam.last = state.last;
        for (owner, addr) in state.allocations {
            if !ipam.is_assignable(addr) {
                return Err(corrupt(format!(
                    "{owner:?} holds {addr}, which is not assignable in {cidr}"
                )));
            }
            if let Some(other) = ipam.by_addr.get(&addr) {
                return Err(corrupt(format!(
                    "{addr} is held by both {other:?} and {owner:?}"
                )));
            }
            ipam.by_addr.insert(addr, owner.clone());
            ipam.by_owner.insert(owner, addr);
        }
        Ok(ipam)
    }

    /// The pod CIDR managed.
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The address of `owner`: its existing one if it has one (nothing is written then),
    /// otherwise the next free address after the most recently allocated one, wrapping
    /// around (next-fit, so a just-released address is not handed out again at once).
    /// Never the network, gateway or broadcast address. Persisted before it returns.
    pub fn allocate(&mut self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        if let Some(addr) = self.by_owner.get(owner) {
            return Ok(*addr);
        }
        let addr = self
            .next_free()
            .ok_or(IpamError::Exhausted { cidr: self.cidr })?;
        let previous_last = self.last.replace(addr);
        self.by_owner.insert(owner.to_owned(), addr);
        self.by_addr.insert(addr, owner.to_owned());
        if let Err(e) = self.persist() {
            self.by_owner.remove(owner);
            self.by_addr.remove(&addr);
            self.last = previous_last;
            return Err(e);
        }
        Ok(addr)
    }

    /// Frees the address of `owner`, returning it; `Ok(None)` if `owner` holds none.
    /// Persisted before it returns.
    pub fn release(&mut self, owner: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        let Some(addr) = self.by_owner.remove(owner) else {
            return Ok(None);
        };
        self.by_addr.remove(&addr);
        if let Err(e) = self.persist() {
            self.by_owner.insert(owner.to_owned(), addr);
            self.by_addr.insert(addr, owner.to_owned());
            return Err(e);
        }
        Ok(Some(addr))
    }

    /// The address `owner` holds, if any.
    pub fn get(&self, owner: &str) -> Option<Ipv4Addr> {
        self.by_owner.get(owner).copied()
    }

    /// All allocations, ordered by address.
    pub fn allocations(&self) -> Vec<(String, Ipv4Addr)> {
        self.by_addr
            .iter()
            .map(|(addr, owner)| (owner.clone(), *addr))
            .collect()
    }

    /// Keeps the allocations whose owner `keep` accepts and frees the others (e.g. pods
    /// that vanished while the agent was down). Returns the freed allocations, ordered by
    /// address. Persisted before it returns (nothing is written if nothing was freed).
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Result<Vec<(String, Ipv4Addr)>, IpamError> {
        let freed: Vec<(String, Ipv4Addr)> = self
            .by_addr
            .iter()
            .filter(|(_, owner)| !keep(owner))
            .map(|(addr, owner)| (owner.clone(), *addr))
            .collect();
        if freed.is_empty() {
            return Ok(freed);
        }
        for (owner, addr) in &freed {
            self.by_owner.remove(owner);
            self.by_addr.remove(addr);
        }
        if let Err(e) = self.persist() {
            for (owner, addr) in &freed {
                self.by_owner.insert(owner.clone(), *addr);
                self.by_addr.insert(*addr, owner.clone());
            }
            return Err(e);
        }
        Ok(freed)
    }

    /// First and last address a pod may get.
    fn pod_range(&self) -> (u32, u32) {
        let first = u32::from(self.cidr.gateway()) + 1;
        let last = u32::from(self.cidr.broadcast()) - 1;
        (first, last)
    }

    fn is_assignable(&self, addr: Ipv4Addr) -> bool {
        let (first, last) = self.pod_range();
        (first..=last).contains(&u32::from(addr))
    }

    fn next_free(&self) -> Option<Ipv4Addr> {
        let (first, last) = self.pod_range();
        let size = last - first + 1;
        if self.by_addr.len() as u64 >= u64::from(size) {
            return None;
        }
        let start = match self.last {
            Some(l) if self.is_assignable(l) => (u32::from(l) - first + 1) % size,
            _ => 0,
        };
        (0..size)
            .map(|i| Ipv4Addr::from(first + (start + i) % size))
            .find(|addr| !self.by_addr.contains_key(addr))
    }

    /// Writes the state to a temporary file, fsyncs it, renames it over the state file and
    /// fsyncs the directory.
    fn persist(&self) -> Result<(), IpamError> {
        let state = State {
            version: STATE_VERSION,
            cidr: self.cidr,
            last: self.last,
            allocations: self.by_owner.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&state).map_err(|e| IpamError::Io {
            path: self.path.clone(),
            what: "serialise",
            source: io::Error::other(e),
        })?;
        bytes.push(b'\n');
        let tmp = self.dir.join(TEMP_FILE);
        let written = (|| {
            let mut file = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
            file.write_all(&bytes).map_err(io_err(&tmp, "write"))?;
            file.sync_all().map_err(io_err(&tmp, "fsync"))?;
            fs::rename(&tmp, &self.path).map_err(io_err(&self.path, "rename into place"))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir, "fsync the directory"))
    }
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> IpamError {
    let path = path.to_path_buf();
    move |source| IpamError::Io { path, what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn allocation_order_skips_reserved_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.3.0/24")).unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), ip("10.244.3.2"));
        assert_eq!(ipam.allocate("b").unwrap(), ip("10.244.3.3"));
        assert_eq!(ipam.allocate("c").unwrap(), ip("10.244.3.4"));
        assert_eq!(ipam.get("b"), Some(ip("10.244.3.3")));
        assert_eq!(ipam.get("zz"), None);
        assert_eq!(
            ipam.allocations(),
            vec![
                ("a".to_string(), ip("10.244.3.2")),
                ("b".to_string(), ip("10.244.3.3")),
                ("c".to_string(), ip("10.244.3.4")),
            ]
        );
    }

    #[test]
    fn allocate_is_idempotent_per_owner() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.3.0/24")).unwrap();
        let a = ipam.allocate("a").unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), a);
        assert_eq!(ipam.allocations().len(), 1);
        assert_eq!(ipam.allocate("b").unwrap(), ip("10.244.3.3"));
        assert_eq!(ipam.allocate("a").unwrap(), a);
    }

    #[test]
    fn exhaustion_of_a_slash_29() {
        let dir = tempfile::tempdir().unwrap();
        let c = cidr("10.0.0.8/29");
        let mut ipam = Ipam::open(dir.path(), c).unwrap();
        let got: Vec<Ipv4Addr> = (0..5)
            .map(|i| ipam.allocate(&format!("pod-{i}")).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "10.0.0.10",
                "10.0.0.11",
                "10.0.0.12",
                "10.0.0.13",
                "10.0.0.14"
            ]
            .map(ip)
        );
        for addr in &got {
            assert_ne!(*addr, c.network());
            assert_ne!(*addr, c.gateway());
            assert_ne!(*addr, c.broadcast());
        }
        let e = ipam.allocate("pod-5").unwrap_err();
        assert!(
            matches!(e, IpamError::Exhausted { cidr } if cidr == c),
            "{e}"
        );
        // An existing owner still gets its address when full.
        assert_eq!(ipam.allocate("pod-2").unwrap(), ip("10.0.0.12"));
        // Freeing one makes exactly that one available again.
        assert_eq!(ipam.release("pod-3").unwrap(), Some(ip("10.0.0.13")));
        assert_eq!(ipam.allocate("pod-5").unwrap(), ip("10.0.0.13"));
        assert!(matches!(
            ipam.allocate("pod-6"),
            Err(IpamError::Exhausted { .. })
        ));
    }

    #[test]
    fn too_small_cidr_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        for c in ["10.0.0.0/31", "10.0.0.0/32"] {
            assert!(matches!(
                Ipam::open(dir.path(), cidr(c)),
                Err(IpamError::TooSmall { .. })
            ));
        }
        let mut ipam = Ipam::open(dir.path(), cidr("10.0.0.0/30")).unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), ip("10.0.0.2"));
        assert!(matches!(
            ipam.allocate("b"),
            Err(IpamError::Exhausted { .. })
        ));
    }

    #[test]
    fn release_and_next_fit() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.0.0.0/29")).unwrap();
        for owner in ["a", "b", "c"] {
            ipam.allocate(owner).unwrap(); // .2 .3 .4
        }
        assert_eq!(ipam.release("a").unwrap(), Some(ip("10.0.0.2")));
        assert_eq!(ipam.release("a").unwrap(), None);
        assert_eq!(ipam.release("nobody").unwrap(), None);
        assert_eq!(ipam.get("a"), None);
        // The freed .2 is not reused immediately: scanning goes on after .4.
        assert_eq!(ipam.allocate("d").unwrap(), ip("10.0.0.5"));
        assert_eq!(ipam.allocate("e").unwrap(), ip("10.0.0.6"));
        // Wraps around past the broadcast and gateway to the freed .2.
        assert_eq!(ipam.allocate("f").unwrap(), ip("10.0.0.2"));
        ipam.release("c").unwrap();
        assert_eq!(ipam.allocate("g").unwrap(), ip("10.0.0.4"));
    }

    #[test]
    fn persistence_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c = cidr("10.244.3.0/24");
        {
            let mut ipam = Ipam::open(dir.path(), c).unwrap();
            ipam.allocate("a").unwrap();
            ipam.allocate("b").unwrap();
            ipam.allocate("c").unwrap();
            ipam.release("c").unwrap();
        }
        assert!(dir.path().join(STATE_FILE).exists());
        assert!(!dir.path().join(TEMP_FILE).exists());
        let mut ipam = Ipam::open(dir.path(), c).unwrap();
        assert_eq!(
            ipam.allocations(),
            vec![
                ("a".to_string(), ip("10.244.3.2")),
                ("b".to_string(), ip("10.244.3.3")),
            ]
        );
        assert_eq!(ipam.allocate("a").unwrap(), ip("10.244.3.2"));
        // Next-fit position survives the reopen: .4 (released) is skipped.
        assert_eq!(ipam.allocate("d").unwrap(), ip("10.244.3.5"));
    }

    #[test]
    fn open_creates_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("var/lib/skiff/ipam");
        let mut ipam = Ipam::open(&nested, cidr("10.244.3.0/24")).unwrap();
        ipam.allocate("a").unwrap();
        assert_eq!(ipam.path(), nested.join(STATE_FILE));
        assert!(nested.join(STATE_FILE).exists());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let c = cidr("10.244.3.0/24");
        fs::write(&path, b"{\"version\":1,\"cidr\":").unwrap();
        let e = Ipam::open(dir.path(), c).unwrap_err();
        assert!(
            matches!(e, IpamError::Corrupt { path: ref p, .. } if *p == path),
            "{e}"
        );
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"{\"version\":1,\"cidr\":");

        let inconsistent = [
            r#"{"version":1,"cidr":"10.244.3.0/24","last":null,"allocations":{"a":"10.244.4.2"}}"#,
            r#"{"version":1,"cidr":"10.244.3.0/24","last":null,"allocations":{"a":"10.244.3.1"}}"#,
            r#"{"version":1,"cidr":"10.244.3.0/24","last":null,"allocations":{"a":"10.244.3.255"}}"#,
            r#"{"version":1,"cidr":"10.244.3.0/24","last":null,"allocations":{"a":"10.244.3.9","b":"10.244.3.9"}}"#,
            r#"{"version":1,"cidr":"10.244.3.0/24","last":"10.244.3.0","allocations":{}}"#,
            r#"{"version":7,"cidr":"10.244.3.0/24","last":null,"allocations":{}}"#,
            r#"{"version":1,"cidr":"10.244.3.7/24","last":null,"allocations":{}}"#,
        ];
        for text in inconsistent {
            fs::write(&path, text).unwrap();
            let e = Ipam::open(dir.path(), c).unwrap_err();
            assert!(matches!(e, IpamError::Corrupt { .. }), "{text}: {e}");
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
        }
    }

    #[test]
    fn cidr_change_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let old = cidr("10.244.3.0/24");
        let new = cidr("10.244.9.0/24");
        Ipam::open(dir.path(), old).unwrap().allocate("a").unwrap();
        let e = Ipam::open(dir.path(), new).unwrap_err();
        assert!(
            matches!(e, IpamError::CidrChanged { stored, wanted } if stored == old && wanted == new),
            "{e}"
        );
        assert!(e.to_string().contains("10.244.3.0/24") && e.to_string().contains("10.244.9.0/24"));
        // The old state is untouched.
        let ipam = Ipam::open(dir.path(), old).unwrap();
        assert_eq!(ipam.get("a"), Some(ip("10.244.3.2")));
    }

    #[test]
    fn retain_frees_vanished_owners_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let c = cidr("10.244.3.0/24");
        let mut ipam = Ipam::open(dir.path(), c).unwrap();
        for owner in ["a", "b", "c", "d"] {
            ipam.allocate(owner).unwrap();
        }
        let live = ["b", "d"];
        let freed = ipam.retain(|o| live.contains(&o)).unwrap();
        assert_eq!(
            freed,
            vec![
                ("a".to_string(), ip("10.244.3.2")),
                ("c".to_string(), ip("10.244.3.4")),
            ]
        );
        assert!(ipam.retain(|_| true).unwrap().is_empty());
        drop(ipam);
        let ipam = Ipam::open(dir.path(), c).unwrap();
        assert_eq!(
            ipam.allocations(),
            vec![
                ("b".to_string(), ip("10.244.3.3")),
                ("d".to_string(), ip("10.244.3.5")),
            ]
        );
    }
}
