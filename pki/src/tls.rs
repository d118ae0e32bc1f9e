//! rustls configs for every Skiff port, and tonic over them.
//!
//! tonic 0.14's `ServerTlsConfig` takes only an identity and a client CA, so it cannot carry
//! the members-only verifier. Instead the daemons accept TLS themselves and hand tonic the
//! finished streams: [`tls_incoming`] yields `tokio_rustls::server::TlsStream`s, which tonic
//! (feature `tls-connect-info`) knows as `Connected`, so `request.peer_certs()` and
//! [`peer_identity`] keep working:
//!
//! ```ignore
//! Server::builder()
//!     .add_service(svc)
//!     .serve_with_incoming_shutdown(tls_incoming(listener, server_config), shutdown)
//!     .await?;
//! ```
//!
//! ([`serve_tls`] is exactly that for a `Router`.) On the client side [`connector`] does TCP +
//! TLS with a [`client_config`] for tonic's `Endpoint::connect_with_connector`; the endpoint's
//! URI must say `http://`, since TLS is already done below tonic (an `https://` URI would
//! make a TLS-enabled tonic look for its own TLS config).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tonic::transport::Uri;

use crate::identity::{Identity, identity_from_cert};

/// A handshake that takes longer than this is dropped, so a silent peer holds no slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for tonic to take them.
const ACCEPT_BACKLOG: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid certificate PEM: {0}")]
    Certificate(String),
    #[error("invalid private key PEM: {0}")]
    Key(String),
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("tls verifier: {0}")]
    Verifier(String),
    #[error("invalid endpoint {0:?}")]
    Endpoint(String),
    #[error("connect: {0}")]
    Connect(#[from] tonic::transport::Error),
}

/// Which client certificates a server asks for.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No client certificates (bearer tokens only).
    None,
    /// Verified against the cluster CA if presented; callers without one may still use
    /// bearer tokens. The control plane's port.
    Optional { ca_pem: String },
    /// Required, chained to the cluster CA, and a member's: anything else fails the
    /// handshake. The agent's port.
    RequiredMembers { ca_pem: String },
}

/// What a client demands of the server's certificate beyond chaining to the CA and naming
/// the host it dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCheck {
    /// Any identity.
    Any,
    /// A member: how clients and members dial the control plane, so an agent's
    /// certificate for the same address cannot pose as a member.
    Member,
    /// This node: how a member dials an agent.
    Node(String),
}

/// The ring provider, explicitly, so nothing depends on a process-wide default.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM string, in order.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Certificate("no certificate found".into()));
    }
    Ok(certs)
}

fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Key(e.to_string()))
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
    }
    Ok(Arc::new(roots))
}

/// A server config: this certificate chain and key, h2 only, client certificates per
/// `client_auth`.
pub fn server_config(
    cert_chain_pem: &str,
    key_pem: &str,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> = match client_auth {
        ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::Optional { ca_pem } => {
            WebPkiClientVerifier::builder_with_provider(roots(&ca_pem)?, provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?
        }
        ClientAuth::RequiredMembers { ca_pem } => Arc::new(MembersOnly {
            inner: WebPkiClientVerifier::builder_with_provider(roots(&ca_pem)?, provider.clone())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?,
        }),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs_from_pem(cert_chain_pem)?, key_from_pem(key_pem)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A client config: servers must chain to `ca_pem` and pass `server`; `client` is the
/// certificate and key to present, if any (`(cert_chain_pem, key_pem)`).
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
    server: ServerCheck,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(roots(ca_pem)?, provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerIdentityCheck { inner, server }));
    let mut config = match client {
        Some((cert, key)) => {
            builder.with_client_auth_cert(certs_from_pem(cert)?, key_from_pem(key)?)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn not_allowed() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// The agent's client verifier: the chain as WebPKI checks it, then a member's subject.
#[derive(Debug)]
struct MembersOnly {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for MembersOnly {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match identity_from_cert(end_entity) {
            Ok(Identity::Member { .. }) => Ok(verified),
            _ => Err(not_allowed()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The client's server verifier: WebPKI (chain and host name), then [`ServerCheck`].
#[derive(Debug)]
struct ServerIdentityCheck {
    inner: Arc<WebPkiServerVerifier>,
    server: ServerCheck,
}

impl ServerCertVerifier for ServerIdentityCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let identity = identity_from_cert(end_entity).map_err(|_| not_allowed())?;
        let allowed = match (&self.server, &identity) {
            (ServerCheck::Any, _) => true,
            (ServerCheck::Member, Identity::Member { .. }) => true,
            (ServerCheck::Node(want), Identity::Node { name }) => want == name,
            _ => false,
        };
        if allowed {
            Ok(verified)
        } else {
            Err(not_allowed())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The verified identity of the peer behind a tonic request served over [`tls_incoming`]
/// (`None`: no client certificate, or not served over TLS).
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Option<Identity> {
    let certs = request.peer_certs()?;
    identity_from_cert(certs.first()?.as_ref()).ok()
}

/// TLS connections accepted on `listener`, for tonic's `serve_with_incoming*`. Handshakes
/// run concurrently, each bounded by a timeout, so a slow or silent peer delays no one;
/// failed handshakes are dropped (logged at debug) and never end the stream. Accepting
/// stops when the server drops the stream.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> tokio_stream::wrappers::ReceiverStream<
    Result<tokio_rustls::server::TlsStream<TcpStream>, std::io::Error>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(ACCEPT_BACKLOG);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // gRPC is latency-bound; tonic's own listener sets this too.
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, "tls handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Serves `router` over TLS on `listener` until `shutdown` completes.
pub async fn serve_tls(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    router
        .serve_with_incoming_shutdown(tls_incoming(listener, config), shutdown)
        .await
}

/// A tower connector for `Endpoint::connect_with_connector`: TCP to the URI's host and port,
/// then TLS with `config`, the host as the server name.
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
}

/// See [`Connector`].
pub fn connector(config: Arc<ClientConfig>) -> Connector {
    Connector {
        tls: TlsConnector::from(config),
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("endpoint has no host")?;
            // `[::1]` in a URI is `::1` to TCP and to TLS.
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().ok_or("endpoint has no port")?;
            let server_name = ServerName::try_from(host.clone())?;
            let tcp = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => TcpStream::connect(SocketAddr::new(ip, port)).await?,
                Err(_) => TcpStream::connect((host.as_str(), port)).await?,
            };
            tcp.set_nodelay(true)?;
            let stream = tls.connect(server_name, tcp).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// A tonic endpoint for `HOST:PORT` (or `http(s)://HOST:PORT`), to be connected with
/// [`connector`]; set timeouts on it as usual.
pub fn endpoint(address: &str) -> Result<tonic::transport::Endpoint, TlsError> {
    let rest = address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"))
        .unwrap_or(address);
    tonic::transport::Endpoint::from_shared(format!("http://{rest}"))
        .map_err(|_| TlsError::Endpoint(address.to_string()))
}

/// Connects a TLS channel to `address` (`HOST:PORT`).
pub async fn connect(
    address: &str,
    config: Arc<ClientConfig>,
) -> Result<tonic::transport::Channel, TlsError> {
    Ok(endpoint(address)?
        .connect_with_connector(connector(config))
        .await?)
}
