//! Pod Security levels, chosen per namespace by the label `pod-security.kubernetes.io/enforce`
//! as in Kubernetes' Pod Security admission. The checks of each level live in the control
//! plane (`skiff_control_plane::pod_security`); validation refuses a label value that names
//! no level.

use std::collections::BTreeMap;

/// The namespace label that picks the level pods in it are held to.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// A Pod Security Standard, from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Unrestricted: host namespaces, host paths, privileged containers.
    Privileged,
    /// Prevents known privilege escalations; allows the default pod.
    Baseline,
    /// Pod hardening best practices: non-root, no escalation, dropped capabilities.
    Restricted,
}

/// A label value that is not a level (Kubernetes' wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of privileged, baseline, restricted")]
pub struct InvalidLevel;

impl Level {
    /// The level of a namespace without the label: `baseline`, stricter than Kubernetes'
    /// `privileged` default, on purpose.
    pub const UNLABELLED: Level = Level::Baseline;

    pub fn parse(value: &str) -> Result<Level, InvalidLevel> {
        match value {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err(InvalidLevel),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }

    /// The level enforced in a namespace with `labels`. A value that names no level (stored
    /// before validation refused it) counts as `restricted`, as Kubernetes evaluates it.
    pub fn of_namespace(labels: &BTreeMap<String, String>) -> Level {
        match labels.get(ENFORCE_LABEL) {
            None => Level::UNLABELLED,
            Some(value) => Level::parse(value).unwrap_or(Level::Restricted),
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_without_the_label_is_baseline_and_a_bad_value_counts_as_restricted() {
        let labels = |value: Option<&str>| {
            value
                .map(|v| BTreeMap::from([(ENFORCE_LABEL.to_string(), v.to_string())]))
                .unwrap_or_default()
        };
        assert_eq!(Level::of_namespace(&labels(None)), Level::Baseline);
        for level in [Level::Privileged, Level::Baseline, Level::Restricted] {
            assert_eq!(Level::parse(level.as_str()), Ok(level));
            assert_eq!(Level::of_namespace(&labels(Some(level.as_str()))), level);
        }
        assert_eq!(
            Level::of_namespace(&labels(Some("Privileged"))),
            Level::Restricted
        );
        assert_eq!(
            Level::parse("").unwrap_err().to_string(),
            "must be one of privileged, baseline, restricted"
        );
    }
}
