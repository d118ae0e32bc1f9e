//! Facts about this machine and its processes that tests and benchmarks share.

pub use skiff_testkit::{BUSYBOX, runs_without};

/// Whether tests that need root (namespaces, mounts, links) and busybox can run here. When
/// they cannot, they skip — unless SKIFF_REQUIRE_PRIVILEGED is set (CI sets it), in which
/// case a missing prerequisite fails the test instead of hiding it (see `skiff_testkit`).
pub fn privileged_tests_can_run() -> bool {
    skiff_testkit::root_and_busybox_or_skip("network namespaces, mounts, links")
}

/// Whether tests of pods on the oci runtime (the agents' default) can run: root and
/// busybox, then what `--runtime oci` needs (the agent refuses to start without it), then
/// Debian's `docker-registry` when `registry` is set. Skips or fails as
/// [`privileged_tests_can_run`] does.
pub fn oci_tests_can_run(registry: bool) -> bool {
    if !privileged_tests_can_run() {
        return false;
    }
    let runc = skiff_agent::runtime::oci::find_runc();
    let missing = skiff_agent::runtime::oci::check_host(&runc)
        .err()
        .map(|e| format!("what --runtime oci needs: {e} (apt-get install runc)"))
        .or_else(|| {
            registry
                .then(crate::registry::missing)
                .flatten()
                .map(str::to_string)
        });
    runs_without(missing.as_deref())
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
