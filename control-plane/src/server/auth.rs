//! Who is calling, and whether they may: a verified client certificate or a bearer token
//! becomes a [`Subject`], and every public entry point asks [`Gate`] before it acts. The
//! decisions themselves are pure, in `skiff_pki::authz`; this is where requests meet them.
//!
//! A member authorizes a request where it enters, before it forwards anything to the
//! leader or an agent: the Raft and agent ports accept only member certificates, so what
//! arrives there has been checked already.

use std::sync::Arc;

use skiff_pki::{Attributes, BearerError, NodeTarget, Subject, authorize, node_may, parse_bearer};
use tonic::{Request, Status};

use crate::error::ApiError;
use crate::raft_node::ControlPlane;

/// The one message for every token that does not authenticate (unknown, made up, wrong
/// secret, removed): a caller learns nothing about which tokens exist.
const INVALID_TOKEN: &str = "invalid bearer token";

#[derive(Clone)]
pub struct Gate {
    node: Arc<ControlPlane>,
}

impl Gate {
    pub fn new(node: Arc<ControlPlane>) -> Self {
        Self { node }
    }

    /// The caller: its certificate's identity if it presented one, else its bearer token's.
    /// UNAUTHENTICATED without either, or with a token that does not check out.
    pub async fn subject<T>(&self, request: &Request<T>) -> Result<Subject, Status> {
        if let Some(identity) = super::certificate_identity(request)? {
            return Ok(Subject::from_identity(&identity));
        }
        let Some(value) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "no credential: give a client certificate (a config's credential) or a bearer token (--token, SKIFF_TOKEN)",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header is not `Bearer <token>`")
            })?;
        self.bearer(token.trim()).await
    }

    pub(crate) async fn bearer(&self, token: &str) -> Result<Subject, Status> {
        let (name, _) = parse_bearer(token).map_err(|_| Status::unauthenticated(INVALID_TOKEN))?;
        // A token removed before this request must fail here too, on any member: the
        // record is read after the barrier linearizable reads use.
        let Some(record) = super::tokens::stored(&self.node, &name).await? else {
            return Err(Status::unauthenticated(INVALID_TOKEN));
        };
        match record.authenticate(token, chrono::Utc::now()) {
            Ok(()) => Ok(Subject::User {
                name: record.name,
                role: Some(record.role),
                namespace: record.namespace,
            }),
            Err(e @ BearerError::Expired { .. }) => Err(Status::unauthenticated(e.to_string())),
            Err(_) => Err(Status::unauthenticated(INVALID_TOKEN)),
        }
    }

    /// The caller, if it may do `attributes`. Nodes need the object at hand: `target` says
    /// what it is (called for nodes' writes only, so others pay no lookup).
    pub async fn authorize<T>(
        &self,
        request: &Request<T>,
        attributes: Attributes,
        target: impl FnOnce() -> Result<NodeTarget, ApiError>,
    ) -> Result<Subject, Status> {
        let subject = self.subject(request).await?;
        check(&subject, &attributes, target)?;
        Ok(subject)
    }

    /// [`Gate::authorize`] for requests where nodes need no object (reads, cluster calls).
    pub async fn allow<T>(
        &self,
        request: &Request<T>,
        attributes: Attributes,
    ) -> Result<Subject, Status> {
        self.authorize(request, attributes, || Ok(NodeTarget::None))
            .await
    }
}

/// Whether `subject` may do `attributes`: PERMISSION_DENIED in Kubernetes' words if not.
pub fn check(
    subject: &Subject,
    attributes: &Attributes,
    target: impl FnOnce() -> Result<NodeTarget, ApiError>,
) -> Result<(), Status> {
    let denied = |e: &dyn std::fmt::Display| Status::permission_denied(e.to_string());
    // What a node may never do is refused before its object is looked up.
    authorize(subject, attributes).map_err(|e| denied(&e))?;
    match subject {
        Subject::Node { name } if !attributes.verb.is_read() => {
            node_may(name, attributes, target()?).map_err(|e| denied(&e))
        }
        _ => Ok(()),
    }
}
