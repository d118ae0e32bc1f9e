//! Self-test of the harness pieces that need no running cluster.

use skiff_tests::cluster::{binary, free_port};

#[test]
fn binary_builds_the_control_plane_once() {
    let path = binary("skiff-control-plane");
    assert!(path.is_file(), "{} is not a file", path.display());
    // The second call is answered from the cache.
    assert_eq!(binary("skiff-control-plane"), path);
}

#[test]
fn free_port_stays_below_the_ephemeral_range_and_is_never_repeated() {
    // Bindability is checked inside free_port; re-binding here would race with the rest of
    // the machine, so this checks what the harness relies on beyond that.
    let ephemeral_start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
    let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ports.len(),
        "a port was handed out twice: {ports:?}"
    );
    assert!(
        ports
            .iter()
            .all(|p| *p >= 10_000 && *p < ephemeral_start.max(10_001)),
        "{ports:?}"
    );
}
