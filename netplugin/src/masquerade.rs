//! Opt-in masquerade for traffic leaving the cluster: packets from a pod (source in the
//! cluster CIDR) to anywhere outside the cluster CIDR get the node's address, so pods can
//! reach networks that do not route the pod CIDRs. Pod-to-pod traffic (destination in the
//! cluster CIDR) is never touched. Rules live in an nftables table of their own (`ip skiff`),
//! replaced atomically through Debian's `nft` in the calling thread's network namespace.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::ipam::Cidr;

/// The nftables table the pod network owns.
pub const TABLE: &str = "skiff";

#[derive(Debug, thiserror::Error)]
pub enum MasqueradeError {
    #[error("cannot run nft (apt-get install nftables): {0}")]
    Spawn(#[source] std::io::Error),
    #[error("nft refused the rules: {0}")]
    Rejected(String),
}

/// The ruleset that makes the table exactly what it should be: declaring the table first
/// lets the delete succeed whether or not it existed, and `nft -f` applies it all or nothing.
pub fn ruleset(cluster_cidr: Option<Cidr>) -> String {
    let mut rules = format!("table ip {TABLE}\ndelete table ip {TABLE}\n");
    if let Some(cidr) = cluster_cidr {
        rules.push_str(&format!(
            "table ip {TABLE} {{\n\
             \tchain postrouting {{\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\tip saddr {cidr} ip daddr != {cidr} masquerade\n\
             \t}}\n\
             }}\n"
        ));
    }
    rules
}

/// Masquerades traffic from `cluster_cidr` to outside it (`Some`), or removes the rules
/// (`None`). Idempotent.
pub fn apply(cluster_cidr: Option<Cidr>) -> Result<(), MasqueradeError> {
    let mut nft = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(MasqueradeError::Spawn)?;
    let rules = ruleset(cluster_cidr);
    if let Some(mut stdin) = nft.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .map_err(MasqueradeError::Spawn)?;
    }
    let out = nft.wait_with_output().map_err(MasqueradeError::Spawn)?;
    if !out.status.success() {
        return Err(MasqueradeError::Rejected(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_spare_pod_to_pod_traffic() {
        let rules = ruleset(Some(Cidr::parse("10.244.0.0/16").unwrap()));
        assert!(rules.contains("ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 masquerade"));
        assert!(rules.starts_with("table ip skiff\ndelete table ip skiff\n"));
        assert_eq!(ruleset(None), "table ip skiff\ndelete table ip skiff\n");
    }

    #[test]
    fn applies_inside_a_namespace() {
        if !nix::unistd::Uid::effective().is_root()
            || !std::path::Path::new("/usr/sbin/nft").exists()
        {
            assert!(
                std::env::var_os("SKIFF_REQUIRE_PRIVILEGED").is_none(),
                "needs root and nft"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("ns");
        crate::netns::create(&pin).unwrap();
        let listing = crate::netns::run_in(&pin, || {
            let cidr = Cidr::parse("10.244.0.0/16").unwrap();
            apply(Some(cidr)).unwrap();
            apply(Some(cidr)).unwrap();
            let list = |args: &[&str]| {
                String::from_utf8_lossy(&Command::new("nft").args(args).output().unwrap().stdout)
                    .into_owned()
            };
            let on = list(&["list", "table", "ip", TABLE]);
            apply(None).unwrap();
            let off = list(&["list", "tables"]);
            (on, off)
        })
        .unwrap();
        crate::netns::remove(&pin).unwrap();
        assert!(listing.0.contains("masquerade"), "{}", listing.0);
        assert_eq!(
            listing.0.matches("masquerade").count(),
            1,
            "applied twice, one rule"
        );
        assert!(!listing.1.contains(TABLE), "{}", listing.1);
    }
}
