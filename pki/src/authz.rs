//! Authorization, pure: Kubernetes' user-facing roles (view, edit, admin, cluster-admin),
//! namespaced tokens, members, and nodes (Kubernetes' Node authorizer plus NodeRestriction).
//! Refusals read as kubectl prints them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::identity::{Identity, MASTERS_GROUP};

/// A bearer token's role; Kubernetes' ClusterRoles of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    View,
    Edit,
    Admin,
    ClusterAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::View => "view",
            Role::Edit => "edit",
            Role::Admin => "admin",
            Role::ClusterAdmin => "cluster-admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown {kind} {value:?} (want one of {choices})")]
pub struct ParseError {
    kind: &'static str,
    value: String,
    choices: &'static str,
}

impl FromStr for Role {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Ok(match s {
            "view" => Role::View,
            "edit" => Role::Edit,
            "admin" => Role::Admin,
            "cluster-admin" => Role::ClusterAdmin,
            _ => {
                return Err(ParseError {
                    kind: "role",
                    value: s.into(),
                    choices: "view, edit, admin, cluster-admin",
                });
            }
        })
    }
}

/// Kubernetes' request verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    /// get, list, watch.
    pub fn is_read(self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verb {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Ok(match s {
            "get" => Verb::Get,
            "list" => Verb::List,
            "watch" => Verb::Watch,
            "create" => Verb::Create,
            "update" => Verb::Update,
            "patch" => Verb::Patch,
            "delete" => Verb::Delete,
            _ => {
                return Err(ParseError {
                    kind: "verb",
                    value: s.into(),
                    choices: "get, list, watch, create, update, patch, delete",
                });
            }
        })
    }
}

/// What a request does, as Kubernetes' authorizer sees it. `namespace` is `None` for
/// cluster-scoped objects (nodes, namespaces — the namespace object itself too —,
/// members, images, tokens outside a namespace) and for lists across all namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: Verb,
    /// Plural, lowercase: `pods`, `deployments`, `events`, `nodes`, `namespaces`, `tokens`,
    /// `members` (membership and Raft), `images`.
    pub resource: String,
    /// `log`, `exec`, `portforward`, `attach`, `eviction`, `status`, `scale`.
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Attributes {
    pub fn new(verb: Verb, resource: &str) -> Self {
        Self {
            verb,
            resource: resource.into(),
            subresource: None,
            namespace: None,
            name: None,
        }
    }

    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.into());
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// The API group a resource belongs to, as the forbidden message names it.
pub fn api_group(resource: &str) -> &'static str {
    match resource {
        "deployments" => "apps",
        // Skiff's own kinds, in a group of their own as Kubernetes would put them.
        "tokens" | "members" | "images" => "skiff.io",
        _ => "",
    }
}

/// Who is asking, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A person: a bearer token's role and namespace, or a certificate. `role: None` is a
    /// valid certificate with no permissions (like a Kubernetes user with no bindings).
    User {
        name: String,
        role: Option<Role>,
        namespace: Option<String>,
    },
    /// A control-plane member: everything, including the internal paths.
    Member { id: u64 },
    /// A node agent: see [`node_may`].
    Node { name: String },
}

impl Subject {
    /// The subject a verified client certificate stands for: users in `system:masters` are
    /// cluster-admins, other certificate users have no role.
    pub fn from_identity(identity: &Identity) -> Self {
        match identity {
            Identity::Member { id } => Subject::Member { id: *id },
            Identity::Node { name } => Subject::Node { name: name.clone() },
            Identity::User { name, groups } => Subject::User {
                name: name.clone(),
                role: groups
                    .iter()
                    .any(|g| g == MASTERS_GROUP)
                    .then_some(Role::ClusterAdmin),
                namespace: None,
            },
        }
    }

    /// The user name in refusals, as Kubernetes reports it.
    pub fn user_name(&self) -> String {
        match self {
            Subject::User { name, .. } => name.clone(),
            Subject::Member { id } => Identity::Member { id: *id }.user_name(),
            Subject::Node { name } => Identity::Node { name: name.clone() }.user_name(),
        }
    }
}

/// A refusal, displayed exactly as the Kubernetes API server words it (kubectl prefixes
/// `Error from server (Forbidden): `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Forbidden {
    pub user: String,
    /// Boxed: results stay small on the allowed path.
    pub attributes: Box<Attributes>,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.attributes;
        let group = api_group(&a.resource);
        // apierrors.NewForbidden: the group-qualified resource, then the name if any.
        let qualified = if group.is_empty() {
            a.resource.clone()
        } else {
            format!("{}.{group}", a.resource)
        };
        match &a.name {
            Some(name) => write!(f, "{qualified} {name:?} is forbidden: ")?,
            None => write!(f, "{qualified} is forbidden: ")?,
        }
        // responsewriters.forbiddenMessage.
        let resource = match &a.subresource {
            Some(sub) => format!("{}/{sub}", a.resource),
            None => a.resource.clone(),
        };
        write!(
            f,
            "User {:?} cannot {} resource {resource:?} in API group {group:?}",
            self.user, a.verb
        )?;
        match &a.namespace {
            Some(ns) => write!(f, " in the namespace {ns:?}"),
            None => f.write_str(" at the cluster scope"),
        }
    }
}

/// Whether `subject` may do `attributes`. Nodes get the coarse rule here (what a node may
/// ever do); writes by nodes also need [`node_may`] with the object at hand.
pub fn authorize(subject: &Subject, attributes: &Attributes) -> Result<(), Forbidden> {
    let allowed = match subject {
        Subject::Member { .. } => true,
        Subject::User {
            role, namespace, ..
        } => match (role, namespace) {
            (None, _) => false,
            // A namespaced token sees nothing outside its namespace, nor anything
            // cluster-scoped (the namespace object itself included).
            (Some(_), Some(ns)) if attributes.namespace.as_ref() != Some(ns) => false,
            (Some(role), _) => role_allows(*role, attributes),
        },
        Subject::Node { .. } => node_coarse(attributes),
    };
    if allowed {
        Ok(())
    } else {
        Err(Forbidden {
            user: subject.user_name(),
            attributes: Box::new(attributes.clone()),
        })
    }
}

fn role_allows(role: Role, a: &Attributes) -> bool {
    if role == Role::ClusterAdmin {
        return true;
    }
    let edit = role >= Role::Edit;
    let verb = a.verb;
    match (a.resource.as_str(), a.subresource.as_deref()) {
        ("pods" | "deployments" | "events", None) => verb.is_read() || edit,
        ("pods", Some("log")) | ("pods" | "deployments", Some("status")) => verb.is_read(),
        ("deployments", Some("scale")) => {
            verb.is_read() || (edit && matches!(verb, Verb::Update | Verb::Patch))
        }
        // kubectl exec/port-forward/attach open with create (and get for websockets).
        ("pods", Some("exec" | "portforward" | "attach")) => {
            edit && matches!(verb, Verb::Create | Verb::Get)
        }
        ("pods", Some("eviction")) => edit && verb == Verb::Create,
        // admin: tokens in a namespace; tokens outside any are cluster-admin's.
        ("tokens", None) => role >= Role::Admin && a.namespace.is_some(),
        // Only reachable by tokens that are not namespaced (see `authorize`).
        ("namespaces", None) => verb.is_read(),
        _ => false,
    }
}

/// The Node authorizer's part: what a node may ever attempt, whatever the object.
fn node_coarse(a: &Attributes) -> bool {
    let verb = a.verb;
    match (a.resource.as_str(), a.subresource.as_deref()) {
        ("pods" | "nodes" | "namespaces", None) if verb.is_read() => true,
        ("nodes", None | Some("status")) => {
            matches!(verb, Verb::Create | Verb::Update | Verb::Patch)
        }
        ("pods", Some("status")) => matches!(verb, Verb::Update | Verb::Patch),
        // Only the confirmation that a terminating pod's containers are gone: see node_may.
        ("pods", None) => verb == Verb::Delete,
        // The agent counts repeats of an event in place, as the kubelet does.
        ("events", None) => matches!(verb, Verb::Get | Verb::Create | Verb::Update | Verb::Patch),
        _ => false,
    }
}

/// What the object a node writes is, as the caller knows it from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeTarget {
    /// Nothing to say: reads, and creating events.
    None,
    /// A Node object (its name is `attributes.name`); whether the write changes its
    /// `spec.podCIDR`.
    Node { pod_cidr_changes: bool },
    /// A stored pod: its `spec.nodeName`, and whether it is being deleted already
    /// (`metadata.deletionTimestamp` set).
    Pod {
        node_name: Option<String>,
        terminating: bool,
    },
}

/// A node's refusal: Kubernetes' RBAC wording for what nodes may never do, and
/// NodeRestriction's for objects that are not theirs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeForbidden {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error(
        "nodes {target:?} is forbidden: node {node:?} is not allowed to modify node {target:?}"
    )]
    OtherNode { node: String, target: String },
    #[error("nodes {node:?} is forbidden: node {node:?} is not allowed to modify spec.podCIDR")]
    PodCidr { node: String },
    #[error(
        "pods {pod:?} is forbidden: node {node:?} can only update pod status for pods with spec.nodeName set to itself"
    )]
    PodNotBound { node: String, pod: String },
    #[error(
        "pods {pod:?} is forbidden: node {node:?} may only confirm the deletion of terminating pods with spec.nodeName set to itself"
    )]
    PodDelete { node: String, pod: String },
}

/// NodeRestriction: node `node_name` may read pods, nodes and namespaces; create, update
/// and patch its own Node (not its `spec.podCIDR`); update the status of pods bound to it;
/// confirm the deletion of pods bound to it that are terminating already (someone else
/// deleted them; the node says their containers are gone); and record events. Nothing
/// else: it starts no deletion, touches no other node and writes no pod spec.
pub fn node_may(
    node_name: &str,
    attributes: &Attributes,
    target: NodeTarget,
) -> Result<(), NodeForbidden> {
    let subject = Subject::Node {
        name: node_name.to_string(),
    };
    authorize(&subject, attributes)?;
    let node = node_name.to_string();
    let name = attributes.name.clone().unwrap_or_default();
    match (attributes.resource.as_str(), attributes.verb.is_read()) {
        (_, true) => Ok(()),
        ("nodes", false) => {
            if name != node_name {
                return Err(NodeForbidden::OtherNode { node, target: name });
            }
            match target {
                NodeTarget::Node {
                    pod_cidr_changes: true,
                } => Err(NodeForbidden::PodCidr { node }),
                _ => Ok(()),
            }
        }
        ("pods", false) => {
            let (bound, terminating) = match target {
                NodeTarget::Pod {
                    node_name: bound_to,
                    terminating,
                } => (bound_to.as_deref() == Some(node_name), terminating),
                _ => (false, false),
            };
            match attributes.verb {
                Verb::Delete if !(bound && terminating) => {
                    Err(NodeForbidden::PodDelete { node, pod: name })
                }
                _ if !bound => Err(NodeForbidden::PodNotBound { node, pod: name }),
                _ => Ok(()),
            }
        }
        // events: the coarse rule decided.
        _ => Ok(()),
    }
}

/// A token that would grant more than its maker holds (RBAC's escalation check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tokens.skiff.io {token:?} is forbidden: User {user:?} is attempting to grant role \"{role}\"{scope}, which it does not hold"
)]
pub struct Escalation {
    pub user: String,
    pub token: String,
    pub role: Role,
    /// ` in the namespace "x"` or ` at the cluster scope`.
    pub scope: String,
}

/// Whether `subject` may make token `token` with `role` in `namespace` (`None`: cluster
/// wide): nobody grants more than they hold. The caller checks [`authorize`] for creating
/// tokens there first.
pub fn may_grant(
    subject: &Subject,
    token: &str,
    role: Role,
    namespace: Option<&str>,
) -> Result<(), Escalation> {
    let holds = match subject {
        Subject::Member { .. } => true,
        Subject::Node { .. } => false,
        Subject::User {
            role: Some(held),
            namespace: held_in,
            ..
        } => *held >= role && held_in.as_deref().is_none_or(|ns| Some(ns) == namespace),
        Subject::User { role: None, .. } => false,
    };
    if holds {
        Ok(())
    } else {
        Err(Escalation {
            user: subject.user_name(),
            token: token.to_string(),
            role,
            scope: match namespace {
                Some(ns) => format!(" in the namespace {ns:?}"),
                None => " at the cluster scope".into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verb::*;

    fn user(role: Role, namespace: Option<&str>) -> Subject {
        Subject::User {
            name: "u".into(),
            role: Some(role),
            namespace: namespace.map(String::from),
        }
    }

    fn a(verb: Verb, resource: &str, sub: Option<&str>, ns: Option<&str>) -> Attributes {
        Attributes {
            verb,
            resource: resource.into(),
            subresource: sub.map(String::from),
            namespace: ns.map(String::from),
            name: None,
        }
    }

    const D: Option<&str> = Some("default");

    /// (verb, resource, subresource, namespace, lowest role allowed; None: cluster-admin only).
    #[allow(clippy::type_complexity)]
    fn rules() -> Vec<(
        Verb,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Role,
    )> {
        use Role::*;
        vec![
            (Get, "pods", None, D, View),
            (List, "pods", None, D, View),
            (Watch, "pods", None, D, View),
            (List, "pods", None, None, View),
            (Get, "pods", Some("log"), D, View),
            (Get, "pods", Some("status"), D, View),
            (Get, "deployments", None, D, View),
            (Get, "deployments", Some("scale"), D, View),
            (List, "events", None, D, View),
            (Get, "namespaces", None, None, View),
            (List, "namespaces", None, None, View),
            (Create, "pods", None, D, Edit),
            (Update, "pods", None, D, Edit),
            (Patch, "pods", None, D, Edit),
            (Delete, "pods", None, D, Edit),
            (Create, "pods", Some("exec"), D, Edit),
            (Get, "pods", Some("exec"), D, Edit),
            (Create, "pods", Some("portforward"), D, Edit),
            (Create, "pods", Some("attach"), D, Edit),
            (Create, "pods", Some("eviction"), D, Edit),
            (Create, "deployments", None, D, Edit),
            (Delete, "deployments", None, D, Edit),
            (Update, "deployments", Some("scale"), D, Edit),
            (Patch, "deployments", Some("scale"), D, Edit),
            (Create, "events", None, D, Edit),
            (Create, "tokens", None, D, Admin),
            (List, "tokens", None, D, Admin),
            (Delete, "tokens", None, D, Admin),
            (List, "tokens", None, None, ClusterAdmin),
            (Create, "tokens", None, None, ClusterAdmin),
            (Update, "pods", Some("status"), D, ClusterAdmin),
            (Update, "deployments", Some("status"), D, ClusterAdmin),
            (Get, "nodes", None, None, ClusterAdmin),
            (List, "nodes", None, None, ClusterAdmin),
            (Patch, "nodes", None, None, ClusterAdmin),
            (Create, "namespaces", None, None, ClusterAdmin),
            (Delete, "namespaces", None, None, ClusterAdmin),
            (Create, "members", None, None, ClusterAdmin),
            (List, "members", None, None, ClusterAdmin),
            (Create, "images", None, None, ClusterAdmin),
            (Get, "pods", Some("unknown"), D, ClusterAdmin),
        ]
    }

    #[test]
    fn each_role_gets_exactly_kubernetes_user_facing_permissions() {
        for (verb, resource, sub, ns, lowest) in rules() {
            let attrs = a(verb, resource, sub, ns);
            for role in [Role::View, Role::Edit, Role::Admin, Role::ClusterAdmin] {
                let got = authorize(&user(role, None), &attrs).is_ok();
                assert_eq!(
                    got,
                    role >= lowest,
                    "{role} {verb} {resource} {sub:?} {ns:?}"
                );
            }
        }
    }

    #[test]
    fn a_namespaced_token_sees_nothing_outside_its_namespace_or_cluster_scoped() {
        for (verb, resource, sub, ns, lowest) in rules() {
            for role in [Role::View, Role::Edit, Role::Admin, Role::ClusterAdmin] {
                let in_default = user(role, Some("default"));
                let in_other = user(role, Some("other"));
                let attrs = a(verb, resource, sub, ns);
                let want = ns.is_some() && role >= lowest;
                assert_eq!(
                    authorize(&in_default, &attrs).is_ok(),
                    want,
                    "{role} {verb} {resource} {sub:?} {ns:?}"
                );
                assert!(
                    authorize(&in_other, &attrs).is_err(),
                    "{role} {verb} {resource}"
                );
            }
        }
        // Not even its own namespace object.
        let attrs = Attributes::new(Get, "namespaces").name("default");
        assert!(authorize(&user(Role::ClusterAdmin, Some("default")), &attrs).is_err());
    }

    #[test]
    fn users_without_a_role_may_do_nothing_and_members_everything() {
        let nobody = Subject::User {
            name: "x".into(),
            role: None,
            namespace: None,
        };
        let member = Subject::Member { id: 2 };
        for (verb, resource, sub, ns, _) in rules() {
            let attrs = a(verb, resource, sub, ns);
            assert!(authorize(&nobody, &attrs).is_err());
            authorize(&member, &attrs).unwrap();
        }
    }

    #[test]
    fn certificate_users_in_system_masters_are_cluster_admins_and_others_have_no_role() {
        assert_eq!(
            Subject::from_identity(&Identity::admin()),
            Subject::User {
                name: "admin".into(),
                role: Some(Role::ClusterAdmin),
                namespace: None
            }
        );
        let plain = Identity::User {
            name: "alice".into(),
            groups: vec!["devs".into()],
        };
        assert!(matches!(
            Subject::from_identity(&plain),
            Subject::User { role: None, .. }
        ));
        assert_eq!(
            Subject::from_identity(&Identity::Member { id: 4 }),
            Subject::Member { id: 4 }
        );
        assert_eq!(
            Subject::from_identity(&Identity::Node { name: "w1".into() }),
            Subject::Node { name: "w1".into() }
        );
    }

    #[test]
    fn refusals_use_kubectls_exact_wording() {
        let viewer = Subject::User {
            name: "viewer".into(),
            role: Some(Role::View),
            namespace: None,
        };
        let cases = [
            (
                Attributes::new(Create, "pods")
                    .subresource("exec")
                    .namespace("default")
                    .name("x"),
                r#"pods "x" is forbidden: User "viewer" cannot create resource "pods/exec" in API group "" in the namespace "default""#,
            ),
            (
                Attributes::new(Delete, "deployments")
                    .namespace("default")
                    .name("web"),
                r#"deployments.apps "web" is forbidden: User "viewer" cannot delete resource "deployments" in API group "apps" in the namespace "default""#,
            ),
            (
                Attributes::new(Patch, "deployments")
                    .subresource("scale")
                    .namespace("default")
                    .name("web"),
                r#"deployments.apps "web" is forbidden: User "viewer" cannot patch resource "deployments/scale" in API group "apps" in the namespace "default""#,
            ),
            (
                Attributes::new(List, "nodes"),
                r#"nodes is forbidden: User "viewer" cannot list resource "nodes" in API group "" at the cluster scope"#,
            ),
            (
                Attributes::new(Create, "namespaces").name("team"),
                r#"namespaces "team" is forbidden: User "viewer" cannot create resource "namespaces" in API group "" at the cluster scope"#,
            ),
            (
                Attributes::new(Create, "images"),
                r#"images.skiff.io is forbidden: User "viewer" cannot create resource "images" in API group "skiff.io" at the cluster scope"#,
            ),
        ];
        for (attrs, want) in cases {
            assert_eq!(authorize(&viewer, &attrs).unwrap_err().to_string(), want);
        }
        // A viewer confined to its namespace names the one it was refused.
        let confined = Subject::User {
            name: "viewer".into(),
            role: Some(Role::View),
            namespace: Some("default".into()),
        };
        assert_eq!(
            authorize(
                &confined,
                &Attributes::new(List, "pods").namespace("kube-system")
            )
            .unwrap_err()
            .to_string(),
            r#"pods is forbidden: User "viewer" cannot list resource "pods" in API group "" in the namespace "kube-system""#
        );
    }

    #[test]
    fn roles_and_verbs_parse_and_print_as_the_cli_writes_them() {
        for role in [Role::View, Role::Edit, Role::Admin, Role::ClusterAdmin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(
                serde_json::to_string(&role).unwrap(),
                format!("\"{}\"", role.as_str())
            );
        }
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .to_string()
                .contains("cluster-admin")
        );
        for verb in [Get, List, Watch, Create, Update, Patch, Delete] {
            assert_eq!(verb.as_str().parse::<Verb>().unwrap(), verb);
        }
        assert!("exec".parse::<Verb>().is_err());
    }

    fn node_case(attrs: Attributes, target: NodeTarget) -> Result<(), NodeForbidden> {
        node_may("w1", &attrs, target)
    }

    #[test]
    fn nodes_read_what_they_need_and_write_only_their_own_node_pod_status_and_events() {
        let bound = |n: &str| NodeTarget::Pod {
            node_name: Some(n.into()),
            terminating: false,
        };
        let own = NodeTarget::Node {
            pod_cidr_changes: false,
        };
        let allowed = vec![
            (Attributes::new(List, "pods"), NodeTarget::None),
            (Attributes::new(Watch, "pods"), NodeTarget::None),
            (
                Attributes::new(Get, "pods").namespace("default").name("p"),
                NodeTarget::None,
            ),
            (Attributes::new(List, "nodes"), NodeTarget::None),
            (Attributes::new(Get, "nodes").name("w2"), NodeTarget::None),
            (Attributes::new(Get, "nodes").name("w1"), NodeTarget::None),
            (Attributes::new(Watch, "namespaces"), NodeTarget::None),
            (Attributes::new(Create, "nodes").name("w1"), own.clone()),
            (Attributes::new(Update, "nodes").name("w1"), own.clone()),
            (Attributes::new(Patch, "nodes").name("w1"), own.clone()),
            (
                Attributes::new(Update, "nodes")
                    .subresource("status")
                    .name("w1"),
                own.clone(),
            ),
            (
                Attributes::new(Update, "pods")
                    .subresource("status")
                    .namespace("default")
                    .name("p"),
                bound("w1"),
            ),
            (
                Attributes::new(Patch, "pods")
                    .subresource("status")
                    .namespace("default")
                    .name("p"),
                bound("w1"),
            ),
            (
                Attributes::new(Create, "events").namespace("default"),
                NodeTarget::None,
            ),
            (
                Attributes::new(Update, "events")
                    .namespace("default")
                    .name("e"),
                NodeTarget::None,
            ),
            (
                Attributes::new(Delete, "pods")
                    .namespace("default")
                    .name("p"),
                NodeTarget::Pod {
                    node_name: Some("w1".into()),
                    terminating: true,
                },
            ),
        ];
        for (attrs, target) in allowed {
            node_case(attrs.clone(), target).unwrap_or_else(|e| panic!("{attrs:?}: {e}"));
        }
    }

    #[test]
    fn nodes_cannot_touch_other_nodes_their_pod_cidr_pod_specs_or_delete() {
        let own = NodeTarget::Node {
            pod_cidr_changes: false,
        };
        let w2 = NodeTarget::Node {
            pod_cidr_changes: false,
        };
        let refused: Vec<(Attributes, NodeTarget, &str)> = vec![
            (
                Attributes::new(Patch, "nodes").name("w2"),
                w2.clone(),
                r#"nodes "w2" is forbidden: node "w1" is not allowed to modify node "w2""#,
            ),
            (
                Attributes::new(Update, "nodes")
                    .subresource("status")
                    .name("w2"),
                w2,
                r#"nodes "w2" is forbidden: node "w1" is not allowed to modify node "w2""#,
            ),
            (
                Attributes::new(Create, "nodes").name("w2"),
                NodeTarget::None,
                r#"nodes "w2" is forbidden: node "w1" is not allowed to modify node "w2""#,
            ),
            (
                Attributes::new(Update, "nodes").name("w1"),
                NodeTarget::Node {
                    pod_cidr_changes: true,
                },
                r#"nodes "w1" is forbidden: node "w1" is not allowed to modify spec.podCIDR"#,
            ),
            (
                Attributes::new(Delete, "nodes").name("w1"),
                own,
                r#"nodes "w1" is forbidden: User "system:node:w1" cannot delete resource "nodes" in API group "" at the cluster scope"#,
            ),
            (
                Attributes::new(Update, "pods")
                    .subresource("status")
                    .namespace("default")
                    .name("p"),
                NodeTarget::Pod {
                    node_name: Some("w2".into()),
                    terminating: false,
                },
                r#"pods "p" is forbidden: node "w1" can only update pod status for pods with spec.nodeName set to itself"#,
            ),
            (
                Attributes::new(Update, "pods")
                    .subresource("status")
                    .namespace("default")
                    .name("p"),
                NodeTarget::Pod {
                    node_name: None,
                    terminating: false,
                },
                r#"pods "p" is forbidden: node "w1" can only update pod status for pods with spec.nodeName set to itself"#,
            ),
            (
                Attributes::new(Update, "pods")
                    .namespace("default")
                    .name("p"),
                NodeTarget::Pod {
                    node_name: Some("w1".into()),
                    terminating: false,
                },
                r#"pods "p" is forbidden: User "system:node:w1" cannot update resource "pods" in API group "" in the namespace "default""#,
            ),
            (
                Attributes::new(Delete, "pods")
                    .namespace("default")
                    .name("p"),
                NodeTarget::Pod {
                    node_name: Some("w1".into()),
                    terminating: false,
                },
                r#"pods "p" is forbidden: node "w1" may only confirm the deletion of terminating pods with spec.nodeName set to itself"#,
            ),
            (
                Attributes::new(Delete, "pods")
                    .namespace("default")
                    .name("p"),
                NodeTarget::Pod {
                    node_name: Some("w2".into()),
                    terminating: true,
                },
                r#"pods "p" is forbidden: node "w1" may only confirm the deletion of terminating pods with spec.nodeName set to itself"#,
            ),
            (
                Attributes::new(Create, "pods")
                    .namespace("default")
                    .name("p"),
                NodeTarget::None,
                r#"pods "p" is forbidden: User "system:node:w1" cannot create resource "pods" in API group "" in the namespace "default""#,
            ),
            (
                Attributes::new(Create, "pods")
                    .subresource("exec")
                    .namespace("default")
                    .name("p"),
                NodeTarget::None,
                r#"pods "p" is forbidden: User "system:node:w1" cannot create resource "pods/exec" in API group "" in the namespace "default""#,
            ),
            (
                Attributes::new(List, "deployments").namespace("default"),
                NodeTarget::None,
                r#"deployments.apps is forbidden: User "system:node:w1" cannot list resource "deployments" in API group "apps" in the namespace "default""#,
            ),
            (
                Attributes::new(Create, "members"),
                NodeTarget::None,
                r#"members.skiff.io is forbidden: User "system:node:w1" cannot create resource "members" in API group "skiff.io" at the cluster scope"#,
            ),
            (
                Attributes::new(Delete, "events")
                    .namespace("default")
                    .name("e"),
                NodeTarget::None,
                r#"events "e" is forbidden: User "system:node:w1" cannot delete resource "events" in API group "" in the namespace "default""#,
            ),
        ];
        for (attrs, target, want) in refused {
            let err = node_case(attrs.clone(), target).unwrap_err();
            assert_eq!(err.to_string(), want, "{attrs:?}");
        }
    }

    #[test]
    fn nobody_grants_a_role_or_scope_they_do_not_hold() {
        use Role::*;
        let admin_in_default = user(Admin, Some("default"));
        assert!(may_grant(&admin_in_default, "t", Edit, Some("default")).is_ok());
        assert!(may_grant(&admin_in_default, "t", Admin, Some("default")).is_ok());
        let err = may_grant(&admin_in_default, "t", ClusterAdmin, Some("default")).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"tokens.skiff.io "t" is forbidden: User "u" is attempting to grant role "cluster-admin" in the namespace "default", which it does not hold"#
        );
        assert!(may_grant(&admin_in_default, "t", View, Some("other")).is_err());
        assert!(may_grant(&admin_in_default, "t", View, None).is_err());
        let admin = user(Admin, None);
        assert!(may_grant(&admin, "t", Admin, Some("other")).is_ok());
        assert!(may_grant(&admin, "t", ClusterAdmin, Some("other")).is_err());
        assert!(may_grant(&user(ClusterAdmin, None), "t", ClusterAdmin, None).is_ok());
        assert!(may_grant(&Subject::Member { id: 1 }, "t", ClusterAdmin, None).is_ok());
        let node = Subject::Node { name: "w1".into() };
        assert!(may_grant(&node, "t", View, Some("default")).is_err());
    }
}
