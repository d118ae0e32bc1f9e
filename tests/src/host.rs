//! Facts about this machine and its processes that tests and benchmarks share.

use std::path::Path;

/// Debian's busybox-static, the workload of the agent tests.
pub const BUSYBOX: &str = "/bin/busybox";

/// Whether tests that need root (namespaces, mounts, links) and busybox can run here. When
/// they cannot, they skip — unless SKIFF_REQUIRE_PRIVILEGED is set (CI sets it), in which
/// case a missing prerequisite fails the test instead of hiding it.
pub fn privileged_tests_can_run() -> bool {
    runs_without(if !nix::unistd::Uid::effective().is_root() {
        Some("root (network namespaces, mounts, links)")
    } else if !Path::new(BUSYBOX).exists() {
        Some("/bin/busybox (apt-get install busybox-static)")
    } else {
        None
    })
}

/// Whether a test runs, given what it found `missing` (None: nothing): it skips with a
/// message, or fails naming it when SKIFF_REQUIRE_PRIVILEGED is set.
pub fn runs_without(missing: Option<&str>) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    assert!(
        std::env::var_os("SKIFF_REQUIRE_PRIVILEGED").is_none(),
        "SKIFF_REQUIRE_PRIVILEGED is set but this test needs {missing}"
    );
    eprintln!("skipped: needs {missing}");
    false
}

/// A process's memory from /proc: (VmRSS, VmHWM) in KiB, zeros when it is gone.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `nproc N, <cpu model>`, for benchmark headers.
pub fn machine_info() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    format!("nproc {cpus}, {model}")
}
