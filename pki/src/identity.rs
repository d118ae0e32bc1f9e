//! Who a certificate speaks for, encoded as Kubernetes does: the user name in the subject's
//! CN, the groups in its O attributes (`CN=system:node:w1, O=system:nodes`; the admin is
//! `CN=admin, O=system:masters`). Members are `CN=skiff:member:<id>, O=skiff:members`.

use std::fmt;

use x509_parser::prelude::*;

pub const MEMBERS_GROUP: &str = "skiff:members";
pub const MEMBER_PREFIX: &str = "skiff:member:";
pub const NODES_GROUP: &str = "system:nodes";
pub const NODE_PREFIX: &str = "system:node:";
/// Kubernetes' superuser group: cluster-admin whatever else is said.
pub const MASTERS_GROUP: &str = "system:masters";

/// The identity a verified peer certificate carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A control-plane member (holds the cluster token).
    Member { id: u64 },
    /// A node agent.
    Node { name: String },
    /// A person or a program acting for one.
    User { name: String, groups: Vec<String> },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("certificate is not valid DER: {0}")]
    Parse(String),
    #[error("certificate subject has {0} common names, want exactly one")]
    CommonNames(usize),
    #[error("certificate subject has an attribute that is not a string")]
    NotAString,
    #[error("certificate subject {cn:?} does not match its groups {groups:?}")]
    Mismatch { cn: String, groups: Vec<String> },
    #[error("invalid identity name {0:?}")]
    InvalidName(String),
}

impl Identity {
    /// The admin credential `admin.conf` carries.
    pub fn admin() -> Self {
        Identity::User {
            name: "admin".into(),
            groups: vec![MASTERS_GROUP.into()],
        }
    }

    /// The user name Kubernetes would report (the CN).
    pub fn user_name(&self) -> String {
        match self {
            Identity::Member { id } => format!("{MEMBER_PREFIX}{id}"),
            Identity::Node { name } => format!("{NODE_PREFIX}{name}"),
            Identity::User { name, .. } => name.clone(),
        }
    }

    /// The groups (the O attributes), in order.
    pub fn groups(&self) -> Vec<String> {
        match self {
            Identity::Member { .. } => vec![MEMBERS_GROUP.into()],
            Identity::Node { .. } => vec![NODES_GROUP.into()],
            Identity::User { groups, .. } => groups.clone(),
        }
    }

    /// Refuses names that would read back as another kind of identity, or that cannot be
    /// carried in a certificate subject.
    pub fn validate(&self) -> Result<(), IdentityError> {
        let bad = |s: &str| s.is_empty() || s.len() > 253 || s.chars().any(char::is_control);
        match self {
            Identity::Member { .. } => Ok(()),
            Identity::Node { name } if bad(name) || name.contains(':') => {
                Err(IdentityError::InvalidName(name.clone()))
            }
            Identity::Node { .. } => Ok(()),
            Identity::User { name, groups } => {
                if bad(name) || is_reserved_user(name) {
                    return Err(IdentityError::InvalidName(name.clone()));
                }
                match groups
                    .iter()
                    .find(|g| bad(g) || *g == MEMBERS_GROUP || *g == NODES_GROUP)
                {
                    Some(group) => Err(IdentityError::InvalidName(group.clone())),
                    None => Ok(()),
                }
            }
        }
    }
}

fn is_reserved_user(name: &str) -> bool {
    name.starts_with(MEMBER_PREFIX) || name.starts_with(NODE_PREFIX)
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user_name())
    }
}

/// Reads the identity from a peer's end-entity certificate (DER). Only meaningful once the
/// TLS layer verified the chain: this checks the subject, not the signature.
pub fn identity_from_cert(der: &[u8]) -> Result<Identity, IdentityError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| IdentityError::Parse(e.to_string()))?;
    let subject = cert.subject();
    let cns = subject
        .iter_common_name()
        .map(|a| a.as_str().map(str::to_string))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| IdentityError::NotAString)?;
    let groups = subject
        .iter_organization()
        .map(|a| a.as_str().map(str::to_string))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| IdentityError::NotAString)?;
    let [cn] = cns.as_slice() else {
        return Err(IdentityError::CommonNames(cns.len()));
    };
    identity_from_names(cn, groups)
}

/// The rule behind [`identity_from_cert`]: a reserved CN needs exactly its group, and a
/// reserved group needs its CN, so no subject reads as two things.
pub(crate) fn identity_from_names(
    cn: &str,
    groups: Vec<String>,
) -> Result<Identity, IdentityError> {
    let mismatch = || IdentityError::Mismatch {
        cn: cn.to_string(),
        groups: groups.clone(),
    };
    let only = |group: &str| groups.len() == 1 && groups[0] == group;
    if let Some(id) = cn.strip_prefix(MEMBER_PREFIX) {
        let id = id.parse::<u64>().map_err(|_| mismatch())?;
        return if only(MEMBERS_GROUP) {
            Ok(Identity::Member { id })
        } else {
            Err(mismatch())
        };
    }
    if let Some(name) = cn.strip_prefix(NODE_PREFIX) {
        let identity = Identity::Node {
            name: name.to_string(),
        };
        return if only(NODES_GROUP) && identity.validate().is_ok() {
            Ok(identity)
        } else {
            Err(mismatch())
        };
    }
    if groups
        .iter()
        .any(|g| g == MEMBERS_GROUP || g == NODES_GROUP)
    {
        return Err(mismatch());
    }
    let identity = Identity::User {
        name: cn.to_string(),
        groups,
    };
    identity.validate()?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_read_back_as_members_nodes_and_users() {
        let cases: Vec<(&str, Vec<&str>, Identity)> = vec![
            (
                "skiff:member:3",
                vec!["skiff:members"],
                Identity::Member { id: 3 },
            ),
            (
                "system:node:w1",
                vec!["system:nodes"],
                Identity::Node { name: "w1".into() },
            ),
            ("admin", vec!["system:masters"], Identity::admin()),
            (
                "alice",
                vec![],
                Identity::User {
                    name: "alice".into(),
                    groups: vec![],
                },
            ),
        ];
        for (cn, groups, want) in cases {
            let groups = groups.into_iter().map(String::from).collect::<Vec<_>>();
            assert_eq!(identity_from_names(cn, groups.clone()).unwrap(), want);
            assert_eq!(want.user_name(), cn);
            assert_eq!(want.groups(), groups);
        }
    }

    #[test]
    fn reserved_names_and_groups_must_come_together() {
        let refused: Vec<(&str, Vec<&str>)> = vec![
            ("skiff:member:3", vec![]),
            ("skiff:member:3", vec!["system:nodes"]),
            ("skiff:member:x", vec!["skiff:members"]),
            ("skiff:member:3", vec!["skiff:members", "system:masters"]),
            ("system:node:w1", vec![]),
            ("system:node:w1", vec!["skiff:members"]),
            ("system:node:", vec!["system:nodes"]),
            ("alice", vec!["skiff:members"]),
            ("alice", vec!["system:nodes"]),
            ("", vec![]),
        ];
        for (cn, groups) in refused {
            let groups = groups.into_iter().map(String::from).collect();
            assert!(identity_from_names(cn, groups).is_err(), "{cn}");
        }
    }

    #[test]
    fn users_cannot_be_named_like_members_or_nodes() {
        for name in ["skiff:member:1", "system:node:w1", ""] {
            let user = Identity::User {
                name: name.into(),
                groups: vec![],
            };
            assert!(user.validate().is_err(), "{name}");
        }
        let user = Identity::User {
            name: "bob".into(),
            groups: vec!["system:nodes".into()],
        };
        assert!(user.validate().is_err());
        assert!(Identity::Node { name: "a:b".into() }.validate().is_err());
    }
}
