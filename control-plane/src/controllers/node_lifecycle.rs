//! Node lifecycle decisions, pure: is a node Ready, should its pods be evicted, which pod
//! CIDR does it get.
//!
//! Heartbeats live in the leader's memory only, so a new leader knows nothing of the
//! past: it counts every node's silence from the moment it took over (a fresh grace
//! period) and only then trusts the stored Ready transition time for eviction.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use skiff_api::meta::Time;
use skiff_api::types::Node;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Nothing,
    /// Heard from within the grace period, but not marked Ready=True.
    MarkReady,
    /// Silent for longer than the grace period, but not marked Ready=False.
    MarkNotReady,
    /// Not ready for longer than the eviction timeout: its pods are lost.
    EvictPods,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub grace: Duration,
    pub eviction: Duration,
}

/// The Ready condition as stored: its status and when it last changed.
pub fn ready_condition(node: &Node) -> (Option<&str>, Option<Time>) {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (Some(c.status.as_str()), c.last_transition_time))
        .unwrap_or((None, None))
}

/// Judges one node. `last_heard` is its latest heartbeat seen by this leader,
/// `leader_since` when this node became leader.
pub fn judge(
    ready: Option<&str>,
    not_ready_since: Option<Time>,
    last_heard: Option<Instant>,
    leader_since: Instant,
    now: Instant,
    wall_now: Time,
    timeouts: Timeouts,
) -> Verdict {
    let heard_recently =
        last_heard.is_some_and(|t| now.saturating_duration_since(t) <= timeouts.grace);
    let silent_for =
        now.saturating_duration_since(last_heard.unwrap_or(leader_since).max(leader_since));
    if heard_recently {
        return if ready == Some("True") {
            Verdict::Nothing
        } else {
            Verdict::MarkReady
        };
    }
    if silent_for <= timeouts.grace {
        return Verdict::Nothing;
    }
    if ready != Some("False") {
        return Verdict::MarkNotReady;
    }
    // Stored times have whole seconds: allow one more so eviction is never early.
    let eviction = chrono::Duration::from_std(timeouts.eviction + Duration::from_secs(1))
        .unwrap_or(chrono::Duration::MAX);
    match not_ready_since {
        Some(since) if wall_now - since >= eviction => Verdict::EvictPods,
        // A Ready=False without a time cannot be judged: count from now on.
        _ => Verdict::Nothing,
    }
}

/// The cluster CIDR, split into /24 pod CIDRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterCidr {
    base: u32,
    prefix: u8,
}

impl ClusterCidr {
    pub fn parse(text: &str) -> Result<ClusterCidr, String> {
        let bad = |why: &str| format!("cluster CIDR {text:?}: {why}");
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX, e.g. 10.244.0.0/16"))?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("prefix is not a number"))?;
        if prefix > 24 {
            return Err(bad(
                "the prefix must be /24 or shorter to hold /24 pod CIDRs",
            ));
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        let base = u32::from(address);
        if base & !mask != 0 {
            return Err(bad("host bits are set"));
        }
        Ok(ClusterCidr { base, prefix })
    }

    /// How many /24s fit.
    pub fn capacity(&self) -> u32 {
        1 << (24 - self.prefix)
    }

    /// The /24 with this index.
    pub fn subnet(&self, index: u32) -> String {
        format!("{}/24", Ipv4Addr::from(self.base + (index << 8)))
    }

    /// Which /24 of this range `cidr` is, if it is one.
    pub fn index_of(&self, cidr: &str) -> Option<u32> {
        let (address, prefix) = cidr.split_once('/')?;
        if prefix != "24" {
            return None;
        }
        let address = u32::from(address.parse::<Ipv4Addr>().ok()?);
        let offset = address.checked_sub(self.base)?;
        (offset & 0xff == 0 && (offset >> 8) < self.capacity()).then_some(offset >> 8)
    }

    /// The lowest /24 no node holds, or None when the range is used up.
    pub fn allocate<'a>(&self, in_use: impl IntoIterator<Item = &'a str>) -> Option<String> {
        let used: HashSet<u32> = in_use
            .into_iter()
            .filter_map(|c| self.index_of(c))
            .collect();
        (0..self.capacity())
            .find(|i| !used.contains(i))
            .map(|i| self.subnet(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);
    const EVICTION: Duration = Duration::from_secs(30);
    const TIMEOUTS: Timeouts = Timeouts {
        grace: GRACE,
        eviction: EVICTION,
    };

    fn wall(seconds: i64) -> Time {
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn lifecycle_1_heartbeat_makes_ready() {
        let start = Instant::now();
        let now = start + Duration::from_secs(1);
        let v = judge(None, None, Some(now), start, now, wall(0), TIMEOUTS);
        assert_eq!(v, Verdict::MarkReady);
        let v = judge(
            Some("False"),
            Some(wall(-100)),
            Some(now),
            start,
            now,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::MarkReady);
        let v = judge(Some("True"), None, Some(now), start, now, wall(0), TIMEOUTS);
        assert_eq!(v, Verdict::Nothing);
    }

    #[test]
    fn lifecycle_2_silence_beyond_grace_is_not_ready() {
        let start = Instant::now();
        let beat = start + Duration::from_secs(1);
        let within = beat + GRACE;
        let v = judge(
            Some("True"),
            None,
            Some(beat),
            start,
            within,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::Nothing);
        let after = beat + GRACE + Duration::from_millis(1);
        let v = judge(
            Some("True"),
            None,
            Some(beat),
            start,
            after,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::MarkNotReady);
    }

    #[test]
    fn lifecycle_3_new_leader_gives_a_fresh_grace_period() {
        // Never heard by this leader, and Ready=False long ago: nothing until the grace
        // period since taking over has passed.
        let start = Instant::now();
        let soon = start + GRACE / 2;
        let v = judge(Some("True"), None, None, start, soon, wall(0), TIMEOUTS);
        assert_eq!(v, Verdict::Nothing);
        let v = judge(
            Some("False"),
            Some(wall(-1000)),
            None,
            start,
            soon,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::Nothing);
        let later = start + GRACE + Duration::from_secs(1);
        let v = judge(Some("True"), None, None, start, later, wall(0), TIMEOUTS);
        assert_eq!(v, Verdict::MarkNotReady);
        let v = judge(
            Some("False"),
            Some(wall(-1000)),
            None,
            start,
            later,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::EvictPods);
    }

    #[test]
    fn lifecycle_4_eviction_waits_for_the_timeout() {
        let start = Instant::now();
        let now = start + GRACE * 2;
        // Stored times have whole seconds, so eviction waits one second more.
        let v = judge(
            Some("False"),
            Some(wall(-30)),
            None,
            start,
            now,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::Nothing);
        let v = judge(
            Some("False"),
            Some(wall(-31)),
            None,
            start,
            now,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::EvictPods);
    }

    #[test]
    fn lifecycle_5_pod_cidrs() {
        let range = ClusterCidr::parse("10.244.0.0/16").unwrap();
        assert_eq!(range.capacity(), 256);
        assert_eq!(range.allocate([]), Some("10.244.0.0/24".into()));
        assert_eq!(
            range.allocate(["10.244.0.0/24", "10.244.2.0/24"]),
            Some("10.244.1.0/24".into())
        );
        assert_eq!(range.index_of("10.244.3.0/24"), Some(3));
        assert_eq!(range.index_of("10.245.0.0/24"), None);
        assert_eq!(range.index_of("10.244.0.128/25"), None);
        let tiny = ClusterCidr::parse("10.0.0.0/23").unwrap();
        assert_eq!(tiny.allocate(["10.0.0.0/24", "10.0.1.0/24"]), None);
        for bad in [
            "10.244.0.0",
            "10.244.0.0/25",
            "10.244.1.0/16",
            "x/16",
            "10.0.0.0/x",
        ] {
            assert!(ClusterCidr::parse(bad).is_err(), "{bad}");
        }
    }
}
