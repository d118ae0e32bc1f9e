//! The chaos suite's short mode (see `skiff_tests::chaos`): a cluster on four test hosts
//! under concurrent SDK writers and readers takes at least 20 leader `kill -9`s, a follower
//! `kill -9`, an agent `kill -9` (down until its pods are replaced, then restarted), the
//! leader's host cut off from the underlay and healed (then leader kills until that old
//! leader is elected again and serves writes), a follower's host cut off for 2 s (the leader
//! must lead on in the same term after the heal: pre-vote), and a whole-cluster crash and
//! restart. The
//! history must be linearizable, deployments must run their desired pods again within
//! grace + eviction + a margin after every fault, never more. Per-fault figures are printed
//! (`--nocapture`). Needs root and /bin/busybox; skipped otherwise unless
//! SKIFF_REQUIRE_PRIVILEGED is set. SKIFF_CHAOS_SEED picks another seeded schedule.

use skiff_tests::chaos::{self, ChaosConfig, FaultKind};

#[test]
fn short_mode_leader_kills_partition_full_restart_stay_linearizable() {
    if !skiff_tests::host::privileged_tests_can_run() {
        return;
    }
    let seed = std::env::var("SKIFF_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let report = chaos::run(ChaosConfig::short(seed))
        .unwrap_or_else(|e| panic!("chaos, seed {seed}: {e:#}"));
    println!("{report}");
    assert!(report.count(FaultKind::LeaderKill) >= 20, "{report}");
    for kind in [
        FaultKind::FollowerKill,
        FaultKind::AgentKill,
        FaultKind::Partition,
        FaultKind::FullRestart,
        FaultKind::FollowerCutOff,
    ] {
        assert!(report.count(kind) >= 1, "no {}: {report}", kind.name());
    }
}
