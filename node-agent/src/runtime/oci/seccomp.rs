//! Seccomp profiles in the format Docker and containerd read (`seccomp_default.json`, the
//! RuntimeDefault profile, is one; Localhost profiles are others), turned into the OCI spec's
//! `linux.seccomp` for one container.
//!
//! A rule may hold only on some architectures, with some capabilities or from some kernel
//! on (`includes`), or not with some (`excludes`); the conversion keeps the rules that hold
//! for the container's capabilities on this node, as Docker's `setupSeccomp` does, so a
//! container given CAP_SYS_ADMIN may mount and one without it may not even clone into new
//! namespaces.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Value, json};

/// Docker's default profile, carried as data.
const DEFAULT_PROFILE: &str = include_str!("seccomp_default.json");

/// A seccomp profile as Docker writes them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// Per native architecture, the ones its processes may also use (32-bit calls on x86-64).
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    /// The older form: the architectures, whatever the node's.
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub names: Vec<String>,
    /// The older form: one name.
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    /// Argument conditions, passed on as they are (`index`, `value`, `valueTwo`, `op`).
    #[serde(default)]
    pub args: Vec<Value>,
    #[serde(default)]
    pub includes: Filter,
    #[serde(default)]
    pub excludes: Filter,
}

/// Where a rule holds (`includes`: all of these) or does not (`excludes`: any of these).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Capabilities (`CAP_SYS_ADMIN`) of the container's bounding set.
    #[serde(default)]
    pub caps: Vec<String>,
    /// Architectures in Go's names (`amd64`, `arm64`, `s390x`).
    #[serde(default)]
    pub arches: Vec<String>,
    /// `major.minor`: the node's kernel at least this.
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// The node and container a profile is turned into a filter for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The node's architecture in Go's names, as profiles write it.
    pub arch: &'a str,
    /// The node's architecture as libseccomp names it (`SCMP_ARCH_X86_64`).
    pub seccomp_arch: &'a str,
    /// The container's (bounding) capabilities, `CAP_…`.
    pub capabilities: &'a [String],
    /// The node's kernel (major, minor); unknown: minKernel rules are left out.
    pub kernel: Option<(u32, u32)>,
}

impl Target<'_> {
    /// This node's architecture: (Go's name, libseccomp's name).
    pub fn native_arch() -> (&'static str, &'static str) {
        match std::env::consts::ARCH {
            "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
            "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
            "x86" => ("386", "SCMP_ARCH_X86"),
            "arm" => ("arm", "SCMP_ARCH_ARM"),
            "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
            "s390x" => ("s390x", "SCMP_ARCH_S390X"),
            "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
            "loongarch64" => ("loong64", "SCMP_ARCH_LOONGARCH64"),
            other => (other, "SCMP_ARCH_NATIVE"),
        }
    }
}

/// `major.minor` of a kernel release (`6.1.0-18-amd64` → (6, 1)).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
#[error("seccomp profile: {0}")]
pub struct ProfileError(String);

impl Profile {
    /// The RuntimeDefault profile (parsed once).
    pub fn runtime_default() -> &'static Profile {
        static PROFILE: OnceLock<Profile> = OnceLock::new();
        PROFILE
            .get_or_init(|| Profile::parse(DEFAULT_PROFILE).expect("the built-in profile parses"))
    }

    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        serde_json::from_str(text).map_err(|e| ProfileError(e.to_string()))
    }

    /// The OCI `linux.seccomp` object for `target`.
    pub fn to_oci(&self, target: &Target) -> Value {
        let architectures: Vec<&str> = if self.arch_map.is_empty() {
            self.architectures.iter().map(String::as_str).collect()
        } else {
            self.arch_map
                .iter()
                .filter(|m| m.architecture == target.seccomp_arch)
                .flat_map(|m| {
                    std::iter::once(m.architecture.as_str())
                        .chain(m.sub_architectures.iter().flatten().map(String::as_str))
                })
                .collect()
        };
        let syscalls: Vec<Value> = self
            .syscalls
            .iter()
            .filter(|rule| rule.holds(target))
            .map(Rule::to_oci)
            .collect();
        let mut seccomp = json!({
            "defaultAction": self.default_action,
            "architectures": architectures,
            "syscalls": syscalls,
        });
        if let Some(errno) = self.default_errno_ret {
            seccomp["defaultErrnoRet"] = json!(errno);
        }
        seccomp
    }
}

impl Rule {
    fn holds(&self, target: &Target) -> bool {
        let has = |cap: &String| target.capabilities.contains(cap);
        let includes = &self.includes;
        let excludes = &self.excludes;
        let kernel_ok = match &includes.min_kernel {
            None => true,
            Some(min) => match (kernel_version(min), target.kernel) {
                (Some(min), Some(kernel)) => kernel >= min,
                _ => false,
            },
        };
        (includes.arches.is_empty() || includes.arches.iter().any(|a| a == target.arch))
            && includes.caps.iter().all(has)
            && kernel_ok
            && !excludes.arches.iter().any(|a| a == target.arch)
            && !excludes.caps.iter().any(has)
    }

    fn to_oci(&self) -> Value {
        let names: Vec<&str> = self
            .names
            .iter()
            .map(String::as_str)
            .chain(self.name.as_deref())
            .collect();
        let mut rule = json!({"names": names, "action": self.action});
        if !self.args.is_empty() {
            rule["args"] = json!(self.args);
        }
        if let Some(errno) = self.errno_ret {
            rule["errnoRet"] = json!(errno);
        }
        rule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn target<'a>(arch: &'a str, seccomp_arch: &'a str, capabilities: &'a [String]) -> Target<'a> {
        Target {
            arch,
            seccomp_arch,
            capabilities,
            kernel: Some((6, 1)),
        }
    }

    fn allowed(seccomp: &Value, name: &str) -> Vec<Value> {
        seccomp["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    #[test]
    fn the_runtime_default_refuses_by_default_and_allows_the_ordinary_calls() {
        let defaults = caps(&["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]);
        let s = Profile::runtime_default().to_oci(&target("amd64", "SCMP_ARCH_X86_64", &defaults));
        assert_eq!(s["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(s["defaultErrnoRet"], 1);
        assert_eq!(
            s["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        for call in [
            "read",
            "write",
            "execve",
            "openat",
            "futex",
            "exit_group",
            "arch_prctl",
        ] {
            assert!(!allowed(&s, call).is_empty(), "{call} should be allowed");
        }
        for call in [
            "mount",
            "unshare",
            "setns",
            "reboot",
            "init_module",
            "bpf",
            "kexec_load",
        ] {
            assert!(allowed(&s, call).is_empty(), "{call} should be refused");
        }
        // ptrace since 4.8; clone only without namespace flags; clone3 says ENOSYS.
        assert_eq!(allowed(&s, "ptrace").len(), 1);
        let clone = allowed(&s, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone[0]["args"][0]["value"], 0x7E02_0000);
        let clone3 = allowed(&s, "clone3");
        assert_eq!(
            (clone3[0]["action"].clone(), clone3[0]["errnoRet"].clone()),
            (json!("SCMP_ACT_ERRNO"), json!(38))
        );
        assert_eq!(allowed(&s, "socket").len(), 3);
        assert_eq!(allowed(&s, "personality").len(), 5);
    }

    #[test]
    fn rules_follow_the_capabilities_the_architecture_and_the_kernel() {
        let admin = caps(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
        let s = Profile::runtime_default().to_oci(&target("arm64", "SCMP_ARCH_AARCH64", &admin));
        assert_eq!(
            s["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        assert!(!allowed(&s, "mount").is_empty());
        assert!(!allowed(&s, "kcmp").is_empty());
        // With CAP_SYS_ADMIN clone is allowed outright and the conditional rules go.
        assert!(allowed(&s, "clone").iter().all(|r| r.get("args").is_none()));
        assert!(
            allowed(&s, "clone3")
                .iter()
                .all(|r| r["action"] == "SCMP_ACT_ALLOW")
        );
        assert!(allowed(&s, "arch_prctl").is_empty(), "x86 only");
        assert!(!allowed(&s, "set_tls").is_empty(), "arm");

        let old_kernel = Target {
            kernel: Some((4, 4)),
            ..target("amd64", "SCMP_ARCH_X86_64", &[])
        };
        let s = Profile::runtime_default().to_oci(&old_kernel);
        assert!(allowed(&s, "ptrace").is_empty());
    }

    #[test]
    fn an_older_profile_with_architectures_and_single_names_converts_too() {
        let profile = Profile::parse(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO", "args": []},
                             {"names": ["chmod"], "action": "SCMP_ACT_LOG", "excludes": {"arches": ["amd64"]}}]}"#,
        )
        .unwrap();
        let s = profile.to_oci(&target("amd64", "SCMP_ARCH_X86_64", &[]));
        assert_eq!(
            s,
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
        );
        assert!(Profile::parse("{").is_err());
    }

    #[test]
    fn kernel_releases_read_as_major_and_minor() {
        assert_eq!(kernel_version("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("4.8"), Some((4, 8)));
        assert_eq!(kernel_version("5.10.0+"), Some((5, 10)));
        assert_eq!(kernel_version("x"), None);
    }
}
