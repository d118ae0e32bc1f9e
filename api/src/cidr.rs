//! IPv4 networks (`10.244.3.0/24`): the cluster CIDR the control plane splits into pod
//! CIDRs, and the pod CIDR each node's agent hands addresses out of.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A text that is not a valid IPv4 CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IPv4 CIDR {text:?}: {reason}")]
pub struct CidrError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// An IPv4 network: an address with all host bits zero and a prefix length of 0..=32.
///
/// Parsing is strict: `10.244.3.5/24` (host bits set) is rejected rather than normalised to
/// `10.244.3.0/24`, because a pod CIDR with host bits set almost always means a typo or a
/// confusion between an interface address and a network, and silently guessing would hide
/// that. The error names the network that was probably meant.
///
/// Serialised (serde) as its text form, e.g. `"10.244.3.0/24"`. Ordered by network address,
/// then prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: Ipv4Addr,
    prefix_len: u8,
}

fn mask(prefix_len: u8) -> u32 {
    if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len))
    }
}

impl Cidr {
    /// Parses `a.b.c.d/n`. Rejects host bits set, a missing or malformed prefix length
    /// (leading zeros, sign, > 32) and surrounding whitespace; the error names the text.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let err = |reason: String| CidrError {
            text: text.to_owned(),
            reason,
        };
        let (addr, len) = text
            .split_once('/')
            .ok_or_else(|| err("expected ADDRESS/PREFIX-LENGTH, e.g. 10.244.3.0/24".into()))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| err(format!("{addr:?} is not an IPv4 address")))?;
        let well_formed = !len.is_empty()
            && len.len() <= 2
            && len.bytes().all(|b| b.is_ascii_digit())
            && !(len.len() == 2 && len.starts_with('0'));
        let prefix_len: u8 = match len.parse() {
            Ok(n) if well_formed && n <= 32 => n,
            _ => return Err(err(format!("prefix length {len:?} is not a number 0..=32"))),
        };
        Cidr::new(addr, prefix_len).map_err(|e| err(e.reason))
    }

    /// The network `network/prefix_len`; fails if `prefix_len > 32` or host bits are set.
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<Cidr, CidrError> {
        let text = format!("{network}/{prefix_len}");
        if prefix_len > 32 {
            return Err(CidrError {
                text,
                reason: format!("prefix length {prefix_len} is not a number 0..=32"),
            });
        }
        let masked = Ipv4Addr::from(u32::from(network) & mask(prefix_len));
        if masked != network {
            return Err(CidrError {
                text,
                reason: format!("host bits are set (the network would be {masked}/{prefix_len})"),
            });
        }
        Ok(Cidr {
            network,
            prefix_len,
        })
    }

    /// The network address (all host bits zero).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length, 0..=32.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask, e.g. `255.255.255.0` for a /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix_len))
    }

    /// Whether `addr` lies in this network (network and broadcast addresses included).
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix_len) == u32::from(self.network)
    }

    /// Whether the two networks share any address (one contains the other).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let shorter = self.prefix_len.min(other.prefix_len);
        (u32::from(self.network) ^ u32::from(other.network)) & mask(shorter) == 0
    }

    /// The gateway address: the first usable address (network + 1), held by the node's
    /// bridge. Meaningful for prefix lengths up to 30 only.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(1))
    }

    /// The broadcast address (all host bits one).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix_len))
    }

    /// Number of addresses a pod may get: all but network, gateway and broadcast (0 for
    /// prefix lengths above 30).
    pub fn pod_capacity(&self) -> u32 {
        if self.prefix_len > 30 {
            0
        } else {
            (1u32 << (32 - u32::from(self.prefix_len))) - 3
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(s)
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;
    fn try_from(s: String) -> Result<Cidr, CidrError> {
        Cidr::parse(&s)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
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
    fn cidr_parse_and_accessors() {
        let c = cidr("10.244.3.0/24");
        assert_eq!(c.network(), ip("10.244.3.0"));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.netmask(), ip("255.255.255.0"));
        assert_eq!(c.gateway(), ip("10.244.3.1"));
        assert_eq!(c.broadcast(), ip("10.244.3.255"));
        assert_eq!(c.pod_capacity(), 253);
        assert!(c.contains(ip("10.244.3.0")));
        assert!(c.contains(ip("10.244.3.255")));
        assert!(!c.contains(ip("10.244.4.0")));
        assert!(!c.contains(ip("10.244.2.255")));
        assert_eq!(c.to_string(), "10.244.3.0/24");
        assert_eq!("10.244.3.0/24".parse::<Cidr>().unwrap(), c);

        let all = cidr("0.0.0.0/0");
        assert!(all.contains(ip("255.255.255.255")));
        assert_eq!(all.broadcast(), ip("255.255.255.255"));
        let host = cidr("10.0.0.7/32");
        assert_eq!(host.broadcast(), ip("10.0.0.7"));
        assert_eq!(host.pod_capacity(), 0);
        assert_eq!(cidr("10.0.0.0/29").pod_capacity(), 5);
    }

    #[test]
    fn cidr_parse_rejects_bad_text_naming_it() {
        for bad in [
            "10.244.3.0",
            "10.244.3.0/",
            "10.244.3.0/33",
            "10.244.3.0/024",
            "10.244.3.0/+24",
            "10.244.3/24",
            " 10.244.3.0/24",
            "10.244.3.0/24 ",
            "fd00::/64",
            "10.244.3.5/24",
        ] {
            let e = Cidr::parse(bad).unwrap_err();
            assert_eq!(e.text, bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        let e = Cidr::parse("10.244.3.5/24").unwrap_err();
        assert!(e.reason.contains("10.244.3.0/24"), "{e}");
    }

    #[test]
    fn cidr_overlaps() {
        let a = cidr("10.244.0.0/16");
        assert!(a.overlaps(&cidr("10.244.3.0/24")));
        assert!(cidr("10.244.3.0/24").overlaps(&a));
        assert!(a.overlaps(&a));
        assert!(!cidr("10.244.3.0/24").overlaps(&cidr("10.244.4.0/24")));
        assert!(cidr("0.0.0.0/0").overlaps(&cidr("1.2.3.4/32")));
    }

    #[test]
    fn cidr_serde_roundtrip() {
        let c = cidr("10.244.3.0/24");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"10.244.3.0/24\"");
        assert_eq!(serde_json::from_str::<Cidr>(&json).unwrap(), c);
        assert!(serde_json::from_str::<Cidr>("\"10.244.3.1/24\"").is_err());
    }
}
