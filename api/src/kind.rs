//! The kinds of object Skiff stores, and the names users call them by.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Namespace,
    Pod,
    Deployment,
    Node,
    Event,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::Deployment,
        Kind::Node,
        Kind::Event,
    ];

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment => "apps/v1",
            _ => "v1",
        }
    }

    /// The API group: `apps` for deployments, the core group (empty) for the rest.
    pub fn group(self) -> &'static str {
        match self {
            Kind::Deployment => "apps",
            _ => "",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::Node => "Node",
            Kind::Event => "Event",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Deployment => "deployments",
            Kind::Node => "nodes",
            Kind::Event => "events",
        }
    }

    /// kubectl's name for the resource in what it prints: the lower-case kind, with its group
    /// when it has one (`pod`, `deployment.apps`), as in `deployment.apps/web created`.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Pod => "pod",
            Kind::Deployment => "deployment.apps",
            Kind::Node => "node",
            Kind::Event => "event",
        }
    }

    /// kubectl's short name.
    pub fn short_name(self) -> &'static str {
        match self {
            Kind::Namespace => "ns",
            Kind::Pod => "po",
            Kind::Deployment => "deploy",
            Kind::Node => "no",
            Kind::Event => "ev",
        }
    }

    /// Namespaces and nodes are cluster-scoped.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }

    /// Accepts kind names, plurals and short names, case-insensitively.
    pub fn parse(s: &str) -> Option<Kind> {
        let s = s.trim().to_ascii_lowercase();
        Kind::ALL.into_iter().find(|k| {
            s == k.as_str().to_ascii_lowercase() || s == k.plural() || s == k.short_name()
        })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_kubectls_resource_names() {
        let table = [
            (Kind::Namespace, "", "namespace"),
            (Kind::Pod, "", "pod"),
            (Kind::Deployment, "apps", "deployment.apps"),
            (Kind::Node, "", "node"),
            (Kind::Event, "", "event"),
        ];
        for (kind, group, resource) in table {
            assert_eq!(kind.group(), group);
            assert_eq!(kind.resource(), resource);
            // The group is the apiVersion's first part; the resource, the kind and the group.
            let version_group = kind.api_version().rsplit_once('/').map_or("", |(g, _)| g);
            assert_eq!(version_group, group, "{kind}");
            let lower = kind.as_str().to_ascii_lowercase();
            let expected = if group.is_empty() {
                lower
            } else {
                format!("{lower}.{group}")
            };
            assert_eq!(resource, expected);
        }
    }

    #[test]
    fn parses_every_name() {
        for (name, kind) in [
            ("Pod", Kind::Pod),
            ("pods", Kind::Pod),
            ("po", Kind::Pod),
            ("deploy", Kind::Deployment),
            ("Deployments", Kind::Deployment),
            ("no", Kind::Node),
            ("ns", Kind::Namespace),
            ("ev", Kind::Event),
            ("EVENT", Kind::Event),
        ] {
            assert_eq!(Kind::parse(name), Some(kind), "{name}");
        }
        assert_eq!(Kind::parse("service"), None);
    }

    #[test]
    fn api_versions_plurals_and_scope() {
        let table = [
            (Kind::Namespace, "v1", "namespaces", false),
            (Kind::Pod, "v1", "pods", true),
            (Kind::Deployment, "apps/v1", "deployments", true),
            (Kind::Node, "v1", "nodes", false),
            (Kind::Event, "v1", "events", true),
        ];
        for (kind, api_version, plural, namespaced) in table {
            assert_eq!(kind.api_version(), api_version);
            assert_eq!(kind.plural(), plural);
            assert_eq!(kind.is_namespaced(), namespaced);
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            assert_eq!(Kind::parse(kind.short_name()), Some(kind));
            assert_eq!(Kind::parse(&kind.plural().to_uppercase()), Some(kind));
        }
        for unknown in ["", "pod s", "p", "services", "List", "deployment.apps"] {
            assert_eq!(Kind::parse(unknown), None, "{unknown:?}");
        }
    }
}
