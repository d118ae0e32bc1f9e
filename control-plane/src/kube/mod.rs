//! The Kubernetes REST API, served over HTTPS on `--kube-listen` beside the gRPC port: one
//! more front door to the same store. Requests are authenticated by the connection's client
//! certificate or a bearer token ([`auth`]), then handed to the object API's own functions
//! ([`resources`]), so validation, authorization and forwarding are the gRPC API's. Errors
//! are `metav1.Status` objects ([`status`]); discovery is generated from the resource table
//! ([`discovery`]).

pub mod apply;
pub mod auth;
pub mod discovery;
pub mod metrics_api;
pub mod openapi;
pub mod patch;
pub mod portforward;
pub mod protobuf;
#[rustfmt::skip]
mod protobuf_tables;
pub mod resources;
pub mod spdy;
pub mod spdy_exec;
pub mod status;
pub mod stream;
pub mod subresources;
pub mod table;
pub mod ui;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

use crate::server::auth::Gate;
use crate::server::objects::ObjectsServer;
use auth::Peer;
use status::KubeError;

/// The Kubernetes API's conventional port (`--kube-listen`'s default, on the `--listen` host).
pub const DEFAULT_PORT: u16 = 6443;

/// Where a member serves the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KubeListen {
    /// Not served (`--kube-listen off`, and the library's default).
    #[default]
    Off,
    /// The daemon's default address: when it is taken (several members on one host), that
    /// member serves no Kubernetes API, with a warning.
    Default(String),
    /// An address given: failing to bind it is an error.
    At(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("--kube-listen: expected HOST:PORT or off, got {0:?}")]
    Invalid(String),
    #[error("--kube-listen: cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

impl KubeListen {
    /// `--kube-listen` as given (`flag`), or the default for a member listening on `listen`.
    pub fn parse(flag: Option<&str>, listen: &str) -> Result<KubeListen, ListenError> {
        let Some(text) = flag.map(str::trim) else {
            let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
            return Ok(KubeListen::Default(format!("{host}:{DEFAULT_PORT}")));
        };
        if text.eq_ignore_ascii_case("off") {
            return Ok(KubeListen::Off);
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(KubeListen::At(text.to_string()))
            }
            _ => Err(ListenError::Invalid(text.to_string())),
        }
    }

    /// The listener, or `None` when off (or the default address is taken).
    pub async fn bind(&self) -> Result<Option<TcpListener>, ListenError> {
        match self {
            KubeListen::Off => Ok(None),
            KubeListen::Default(address) => Ok(TcpListener::bind(address)
                .await
                .inspect_err(|e| {
                    tracing::warn!("kubernetes api not served: cannot listen on {address}: {e}")
                })
                .ok()),
            KubeListen::At(address) => {
                TcpListener::bind(address)
                    .await
                    .map(Some)
                    .map_err(|source| ListenError::Bind {
                        address: address.clone(),
                        source,
                    })
            }
        }
    }
}

/// What the handlers share: the object API they call, and the gate that authenticates.
pub struct KubeState {
    pub objects: Arc<ObjectsServer>,
    pub gate: Gate,
    /// `HOST:PORT` clients reach this API at, for `/api`'s serverAddressByClientCIDRs.
    pub address: String,
}

/// Serves the Kubernetes API on `listener` over TLS with `tls` (h2 and http/1.1, client
/// certificates optional) until `shutdown` resolves; requests larger than
/// `max_request_bytes` are refused.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    state: Arc<KubeState>,
    max_request_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut tls = tls;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let router = Router::new()
        .fallback(dispatch)
        .with_state(state)
        // read_body applies the limit, after authentication.
        .layer(DefaultBodyLimit::disable());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = skiff_pki::tls::tls_incoming(listener, Arc::new(tls));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            next = connections.next() => match next {
                Some(Ok(stream)) => stream,
                Some(Err(_)) => continue,
                None => break,
            },
            _ = &mut shutdown => break,
        };
        let connection = Connection {
            peer: Peer::from_certificates(stream.get_ref().1.peer_certificates()),
            remote: stream.get_ref().0.peer_addr().ok(),
            max_request_bytes,
        };
        let service =
            TowerToHyperService::new(router.clone().layer(axum::Extension(Arc::new(connection))));
        let mut stopping = stop_rx.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! {
                served = connection => {
                    if let Err(e) = served {
                        tracing::debug!("kube api connection: {e}");
                    }
                }
                _ = stopping.wait_for(|s| *s) => {}
            }
        });
    }
    let _ = stop_tx.send(true);
}

/// How much more than the limit a too-large body may send, and for how long, while it is
/// read and thrown away before the 413: an HTTP/1.1 client still sending would otherwise
/// see the connection reset instead of the answer.
const DRAIN_BYTES: u64 = 16 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The whole body, or 413 once it passes `limit` bytes (declared or sent).
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, KubeError> {
    let too_large = || {
        KubeError::TooLarge(
            "the request body is larger than the server's --max-request-bytes".into(),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64 + DRAIN_BYTES) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            KubeError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        total += chunk.len();
        if total > limit {
            drop(chunks);
            let mut drained = total as u64;
            let drain = async {
                while let Some(Ok(chunk)) = stream.next().await {
                    drained += chunk.len() as u64;
                    if drained > limit as u64 + DRAIN_BYTES {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
            return Err(too_large());
        }
        chunks.push(chunk);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => Bytes::from(chunks.concat()),
    })
}

/// What every request on one connection shares.
struct Connection {
    peer: Peer,
    /// Where it comes from: watches are capped per connection, as on the gRPC port.
    remote: Option<SocketAddr>,
    /// `--max-request-bytes`: larger bodies get 413.
    max_request_bytes: usize,
}

/// The request's HTTP/1.1 upgrade, taken out of its extensions (hyper puts it there when
/// the connection is served with upgrades): exec and port-forward answer `101 Switching
/// Protocols` and then speak their own protocol on the raw stream. `None` on HTTP/2.
pub struct Upgrade(pub Option<OnUpgrade>);

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Upgrade(parts.extensions.remove::<OnUpgrade>()))
    }
}

/// Every request: authenticate, then discovery or a resource.
#[allow(clippy::too_many_arguments)]
async fn dispatch(
    State(state): State<Arc<KubeState>>,
    axum::Extension(connection): axum::Extension<Arc<Connection>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Upgrade(upgrade): Upgrade,
    body: Body,
) -> Response {
    match route(&state, &connection, &method, &uri, &headers, upgrade, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route(
    state: &KubeState,
    connection: &Connection,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    upgrade: Option<OnUpgrade>,
    body: Body,
) -> Result<Response, KubeError> {
    // The console's page, script and style are public; its data is not.
    if let Some(response) = ui::public(method, uri) {
        return Ok(response);
    }
    let subject = auth::subject(&state.gate, &connection.peer, headers).await?;
    let body = read_body(body, headers, connection.max_request_bytes).await?;
    let Query(params): Query<HashMap<String, String>> = Query::try_from_uri(uri)
        .map_err(|e| KubeError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let path = uri.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    if let Some(served) = metrics_api::serve(state, &subject, method, &segments, &params).await {
        return served;
    }
    if let Some(served) = ui::data(state, &subject, method, &segments).await {
        return served;
    }
    if let Some(answer) = discovery::negotiated(method, &segments, uri.query(), headers) {
        return answer;
    }
    let discovery = match segments.as_slice() {
        ["version"] => Some(discovery::version()),
        ["api"] => Some(discovery::core_versions(&state.address)),
        ["api", "v1"] => discovery::resources("", "v1"),
        ["apis"] => Some(metrics_api::with_group(discovery::groups())),
        ["apis", group] => discovery::group(group),
        ["apis", group, version] => discovery::resources(group, version),
        _ => None,
    };
    if let Some(document) = discovery {
        if *method != Method::GET {
            return Err(KubeError::MethodNotAllowed(format!(
                "{method} is not allowed on {path}"
            )));
        }
        // The legacy documents: aggregated discovery was not asked for (see discovery.rs).
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            axum::Json(document),
        )
            .into_response());
    }
    let target = match segments.as_slice() {
        ["api", "v1", rest @ ..] => resources::parse_target("", "v1", rest),
        ["apis", group, version, rest @ ..] => resources::parse_target(group, version, rest),
        _ => None,
    };
    let Some(target) = target else {
        return Err(KubeError::NotFound(format!(
            "the server could not find the requested resource ({path})"
        )));
    };
    let body = protobuf::decode_body(headers, method, &target, body)?;
    let as_table = table::wanted(headers);
    let request = resources::Request {
        method,
        params: &params,
        as_table,
        remote: connection.remote,
        uri,
        headers,
        upgrade,
    };
    resources::serve(state, &subject, request, target, body).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A body of `chunks` chunks of `size` bytes that counts how many were taken from it.
    fn counted_body(chunks: usize, size: usize) -> (Body, Arc<AtomicUsize>) {
        let taken = Arc::new(AtomicUsize::new(0));
        let counter = taken.clone();
        let stream = tokio_stream::iter(0..chunks).map(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![7u8; size]))
        });
        (Body::from_stream(stream), taken)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let (body, _) = counted_body(4, 1000);
        let read = read_body(body, &HeaderMap::new(), 4000).await.unwrap();
        assert_eq!(read.len(), 4000);
        assert!(read.iter().all(|b| *b == 7));
    }

    #[tokio::test]
    async fn an_oversized_body_is_read_to_its_end_before_the_413_so_the_client_sees_it() {
        let (body, taken) = counted_body(10, 1000);
        let err = read_body(body, &HeaderMap::new(), 2500).await.unwrap_err();
        assert!(matches!(err, KubeError::TooLarge(_)), "{err:?}");
        assert_eq!(taken.load(Ordering::SeqCst), 10, "the rest was not drained");
    }

    #[tokio::test]
    async fn a_declared_length_far_over_the_limit_is_refused_without_reading() {
        let (body, taken) = counted_body(1, 10);
        let mut headers = HeaderMap::new();
        let declared = (100 + DRAIN_BYTES + 1).to_string();
        headers.insert(header::CONTENT_LENGTH, declared.parse().unwrap());
        let err = read_body(body, &headers, 100).await.unwrap_err();
        assert!(matches!(err, KubeError::TooLarge(_)), "{err:?}");
        assert_eq!(taken.load(Ordering::SeqCst), 0);
    }
}
