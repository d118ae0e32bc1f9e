//! Who is calling the Kubernetes API: the connection's verified client certificate, else an
//! `Authorization: Bearer` token, through the same [`Gate`] the gRPC API uses.

use axum::http::{HeaderMap, header};
use skiff_pki::{Identity, Subject};

use super::status::KubeError;
use crate::server::auth::Gate;

/// What the TLS handshake of a connection proved.
#[derive(Debug, Clone)]
pub enum Peer {
    /// No client certificate.
    Anonymous,
    /// A certificate chaining to the cluster CA, naming this identity.
    Certificate(Identity),
    /// A certificate chaining to the cluster CA that names no Skiff identity.
    Unnamed,
}

impl Peer {
    /// The peer of a connection whose handshake presented `certificates` (verified by the
    /// server config against the cluster CA).
    pub fn from_certificates(
        certificates: Option<&[rustls::pki_types::CertificateDer<'_>]>,
    ) -> Peer {
        match certificates.and_then(|c| c.first()) {
            None => Peer::Anonymous,
            Some(leaf) => skiff_pki::identity_from_cert(leaf.as_ref())
                .map_or(Peer::Unnamed, Peer::Certificate),
        }
    }
}

/// The caller of one request: the certificate's identity if the connection has one, else the
/// bearer token's. 401 without either or with a token that does not check out.
pub async fn subject(gate: &Gate, peer: &Peer, headers: &HeaderMap) -> Result<Subject, KubeError> {
    match peer {
        Peer::Certificate(identity) => return Ok(Subject::from_identity(identity)),
        // As on the gRPC port: a verified certificate that names no one is refused.
        Peer::Unnamed => {
            return Err(KubeError::from(tonic::Status::permission_denied(
                "the client certificate names no Skiff identity",
            )));
        }
        Peer::Anonymous => {}
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(KubeError::Unauthorized("no credential".into()));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            KubeError::Unauthorized("the authorization header is not `Bearer <token>`".into())
        })?;
    Ok(gate.bearer(token.trim()).await?)
}
