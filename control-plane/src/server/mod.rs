//! gRPC services served on the node's one port: the public object API, cluster
//! administration, Raft's own traffic, and the proxy to node agents.

pub mod agent_proxy;
pub mod auth;
pub mod cluster;
pub mod event_limit;
pub mod objects;
pub mod paging;
pub mod raft;
pub mod tokens;
pub mod top;

use skiff_pki::Identity;
use tonic::{Request, Status};

/// The identity of the client certificate the caller presented: `None` without one,
/// PERMISSION_DENIED for a verified certificate that names no Skiff identity.
pub fn certificate_identity<T>(request: &Request<T>) -> Result<Option<Identity>, Status> {
    let presented = request.peer_certs().is_some_and(|certs| !certs.is_empty());
    match skiff_pki::tls::peer_identity(request) {
        Some(identity) => Ok(Some(identity)),
        None if presented => Err(Status::permission_denied(
            "the client certificate names no Skiff identity",
        )),
        None => Ok(None),
    }
}

/// The verified certificate identity of the caller. UNAUTHENTICATED without a client
/// certificate; PERMISSION_DENIED for one that reads as no identity.
pub fn caller<T>(request: &Request<T>, what: &str) -> Result<Identity, Status> {
    certificate_identity(request)?
        .ok_or_else(|| Status::unauthenticated(format!("{what} needs a client certificate")))
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
