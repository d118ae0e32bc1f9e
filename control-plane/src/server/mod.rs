//! gRPC services served on the node's one port: the public object API, cluster
//! administration, Raft's own traffic, and the proxy to node agents.

pub mod agent_proxy;
pub mod cluster;
pub mod objects;
pub mod raft;

use skiff_pki::Identity;
use skiff_pki::identity::MASTERS_GROUP;
use tonic::{Request, Status};

/// The verified certificate identity of the caller. UNAUTHENTICATED without a client
/// certificate; PERMISSION_DENIED for one that reads as no identity.
pub fn caller<T>(request: &Request<T>, what: &str) -> Result<Identity, Status> {
    let presented = request.peer_certs().is_some_and(|certs| !certs.is_empty());
    match skiff_pki::tls::peer_identity(request) {
        Some(identity) => Ok(identity),
        None if presented => Err(Status::permission_denied(format!(
            "{what}: the client certificate names no Skiff identity"
        ))),
        None => Err(Status::unauthenticated(format!(
            "{what} needs a client certificate"
        ))),
    }
}

/// Any verified cluster certificate (member, node or user) may call the public API; a
/// caller without one is UNAUTHENTICATED. (Roles and bearer tokens come later; until
/// then every certificate holder may use the whole public API.)
pub fn require_authenticated<T>(request: &Request<T>, what: &str) -> Result<(), Status> {
    caller(request, what).map(|_| ())
}

/// [`require_authenticated`] as a tonic interceptor, for services where every method
/// needs it.
pub fn authenticated(
    what: &'static str,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |request| {
        require_authenticated(&request, what)?;
        Ok(request)
    }
}

/// Only control-plane members (their member certificate) may call `what`.
pub fn require_member<T>(request: &Request<T>, what: &str) -> Result<(), Status> {
    match caller(request, what)? {
        Identity::Member { .. } => Ok(()),
        other => Err(Status::permission_denied(format!(
            "User {:?} cannot call {what}: only control-plane members may",
            other.user_name()
        ))),
    }
}

/// Members and cluster admins (`system:masters`) may call `what`.
pub fn require_member_or_admin<T>(request: &Request<T>, what: &str) -> Result<(), Status> {
    match caller(request, what)? {
        Identity::Member { .. } => Ok(()),
        Identity::User { groups, .. } if groups.iter().any(|g| g == MASTERS_GROUP) => Ok(()),
        other => Err(Status::permission_denied(format!(
            "User {:?} cannot call {what}: only control-plane members and cluster admins may",
            other.user_name()
        ))),
    }
}
