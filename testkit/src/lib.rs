//! The one privilege gate of Skiff's tests. A test that needs something this host may lack
//! (root for namespaces and mounts, Debian's busybox-static, a package's binary) asks
//! [`runs_without`] with what it found missing: normally it then skips with a message, but
//! when `SKIFF_REQUIRE_PRIVILEGED` is set (CI sets it) the missing prerequisite fails the
//! test instead, naming it, so that nothing is silently not tested.
//!
//! A dev-dependency only: no shipped crate links it.

use std::path::Path;

/// Debian's busybox-static, the workload of the tests that run containers.
pub const BUSYBOX: &str = "/bin/busybox";

/// The variable that turns a skip into a failure.
pub const REQUIRE_PRIVILEGED: &str = "SKIFF_REQUIRE_PRIVILEGED";

/// Whether a test runs, given what it found `missing` (`None`: nothing). Without it the test
/// skips with a message — unless [`REQUIRE_PRIVILEGED`] is set, which turns the missing
/// prerequisite into a failure naming it.
#[track_caller]
pub fn runs_without(missing: Option<&str>) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    assert!(
        std::env::var_os(REQUIRE_PRIVILEGED).is_none(),
        "{REQUIRE_PRIVILEGED} is set but this test needs {missing}"
    );
    eprintln!("skipped: needs {missing}");
    false
}

/// `root (<what>)` unless this process runs as root: `what` says what root is for.
pub fn missing_root(what: &str) -> Option<String> {
    (!nix::unistd::geteuid().is_root()).then(|| format!("root ({what})"))
}

/// [`BUSYBOX`] and the package it comes from, unless it is there.
pub fn missing_busybox() -> Option<String> {
    (!Path::new(BUSYBOX).exists()).then(|| format!("{BUSYBOX} (apt-get install busybox-static)"))
}

/// Whether what needs root (`what`) runs: [`runs_without`] root.
#[track_caller]
pub fn root_or_skip(what: &str) -> bool {
    runs_without(missing_root(what).as_deref())
}

/// Whether a test that needs root (for `what`) and [`BUSYBOX`] runs: [`runs_without`]
/// the first of them that is missing.
#[track_caller]
pub fn root_and_busybox_or_skip(what: &str) -> bool {
    runs_without(missing_root(what).or_else(missing_busybox).as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_runs() {
        assert!(runs_without(None));
    }

    #[test]
    fn what_is_missing_is_named() {
        assert_eq!(
            missing_root("mounts").is_some(),
            !nix::unistd::geteuid().is_root()
        );
        if let Some(missing) = missing_root("mounts") {
            assert_eq!(missing, "root (mounts)");
        }
        if let Some(missing) = missing_busybox() {
            assert!(missing.contains("busybox-static"), "{missing}");
        }
    }
}
