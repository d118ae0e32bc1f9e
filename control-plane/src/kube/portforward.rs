//! `pods/portforward`: what kubectl 1.32 speaks — SPDY/3.1 ([`super::spdy`]), either
//! tunnelled in the binary messages of a WebSocket (subprotocol
//! `SPDY/3.1+portforward.k8s.io`, tried first) or on the connection itself after an
//! `Upgrade: SPDY/3.1` (`X-Stream-Protocol-Version: portforward.k8s.io`, the fallback).
//!
//! Each TCP connection kubectl forwards opens two streams carrying the same `port` and
//! `requestID` headers: `streamType: error` (kubectl only reads it: a message there is a
//! failure it prints) and `streamType: data` (the bytes, both ways). Each complete pair
//! becomes one PortForward call to the agent of the pod's node, authorized and routed as
//! the gRPC API's (server/agent_proxy.rs).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::BytesMut;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use skiff_api::Kind;
use skiff_api::proto::PortForwardRequest;
use skiff_api::proto::agent_client::AgentClient;
use skiff_api::types::Pod;
use skiff_pki::{Subject, Verb};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tonic::transport::Channel;

use super::KubeState;
use super::spdy::{self, ByteSink, ByteSource, PROTOCOL_HEADER, Stream, rst};
use super::status::KubeError;
use super::stream::{header_tokens, spdy_accepted, websocket_accepted, websocket_key};
use crate::server::agent_proxy::{AgentProxy, check_pod};

/// The port-forward protocol (kubelet's and kubectl's only one).
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol that tunnels it.
pub const TUNNELLED_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// How long the first stream of a pair waits for the second (the kubelet's default).
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// Forwarded TCP connections at once on one client connection.
const MAX_FORWARDS: usize = 128;
/// The largest WebSocket message taken (a tunnel carries SPDY frames, at most
/// [`spdy::MAX_FRAME_BYTES`] each, in as many messages as the client likes).
const MAX_MESSAGE_BYTES: usize = spdy::MAX_FRAME_BYTES + 16;

/// How the client asked to upgrade.
#[derive(Debug, PartialEq, Eq)]
enum Transport {
    /// SPDY in a WebSocket: the handshake's key.
    WebSocket { key: String },
    /// SPDY on the connection; whether the client named the protocol (old clients did
    /// not, and get no protocol header back).
    Spdy { named: bool },
}

/// The transport `headers` ask for, or why it cannot be served (before the upgrade, so
/// kubectl prints it, and after a refused WebSocket falls back to SPDY).
fn requested_transport(headers: &HeaderMap) -> Result<Transport, KubeError> {
    let upgrade_to = |protocol: &str| {
        header_tokens(headers, "upgrade").any(|u| u.eq_ignore_ascii_case(protocol))
    };
    if upgrade_to("websocket") {
        let key = websocket_key(headers)
            .map_err(|why| KubeError::BadRequest(format!("unable to upgrade: {why}")))?;
        if !header_tokens(headers, "sec-websocket-protocol").any(|p| p == TUNNELLED_PROTOCOL) {
            return Err(KubeError::BadRequest(format!(
                "unable to upgrade: no tunneling spdy protocols provided (served: {TUNNELLED_PROTOCOL})"
            )));
        }
        return Ok(Transport::WebSocket {
            key: key.to_string(),
        });
    }
    if upgrade_to("SPDY/3.1") {
        let asked: Vec<&str> = header_tokens(headers, PROTOCOL_HEADER).collect();
        if !asked.is_empty() && !asked.contains(&PROTOCOL) {
            return Err(KubeError::BadRequest(format!(
                "unable to upgrade: unable to negotiate protocol: client supports {asked:?}, server supports [\"{PROTOCOL}\"]"
            )));
        }
        return Ok(Transport::Spdy {
            named: !asked.is_empty(),
        });
    }
    Err(KubeError::BadRequest(
        "unable to upgrade: port-forward needs an upgrade to SPDY/3.1 or a WebSocket".into(),
    ))
}

/// The pod this request may forward to (verb create on pods/portforward, as on the gRPC
/// API), and a client of its node's agent.
async fn target(
    state: &KubeState,
    subject: &Subject,
    namespace: &str,
    name: &str,
) -> Result<(Pod, AgentClient<Channel>), KubeError> {
    check_pod(subject, Verb::Create, "portforward", namespace, name)
        .map_err(|e| KubeError::api(e, Kind::Pod, name))?;
    let proxy = AgentProxy {
        node: state.objects.node.clone(),
        gate: state.gate.clone(),
    };
    let pod: Pod = proxy
        .stored(Kind::Pod, namespace, name)
        .map_err(|e| KubeError::api(e.into(), Kind::Pod, name))?;
    let node = pod
        .spec
        .node_name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            KubeError::BadRequest(format!("pod {name} does not have a host assigned"))
        })?;
    let agent = proxy
        .agent_on(&node)
        .await
        .map_err(|e| KubeError::api(e, Kind::Pod, name))?;
    Ok((pod, agent))
}

/// `GET|POST pods/NAME/portforward`: upgrades the connection and forwards each pair of
/// streams the client opens to the pod's port it names.
pub async fn portforward(
    state: &KubeState,
    subject: &Subject,
    namespace: Option<&str>,
    name: &str,
    headers: &HeaderMap,
    upgrade: Option<OnUpgrade>,
) -> Result<Response, KubeError> {
    let namespace = namespace.filter(|n| !n.is_empty()).unwrap_or("default");
    let transport = requested_transport(headers)?;
    let Some(upgrade) = upgrade else {
        return Err(KubeError::BadRequest(
            "unable to upgrade: this connection cannot be upgraded (HTTP/2?): port-forward needs HTTP/1.1"
                .into(),
        ));
    };
    // Everything that can be refused is refused before the upgrade.
    let (pod, agent) = target(state, subject, namespace, name).await?;
    let forwarder = Forwarder {
        agent,
        namespace: namespace.to_string(),
        pod: name.to_string(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    };
    let response = match &transport {
        Transport::WebSocket { key } => websocket_accepted(key, TUNNELLED_PROTOCOL),
        Transport::Spdy { named } => spdy_accepted(named.then_some(PROTOCOL)),
    };
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(e) => {
                tracing::debug!("kube api port-forward: the upgrade failed: {e}");
                return;
            }
        };
        let (streams_tx, streams_rx) = mpsc::channel(16);
        let pairing = forwarder.run(streams_rx);
        let result = match transport {
            Transport::WebSocket { .. } => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_MESSAGE_BYTES))
                    .max_frame_size(Some(MAX_MESSAGE_BYTES));
                let socket =
                    WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(config)).await;
                let (sink, source) = socket.split();
                let session = spdy::serve(WsSource(source), WsSink(sink), streams_tx);
                tokio::join!(session, pairing).0
            }
            Transport::Spdy { .. } => {
                let (read, write) = tokio::io::split(upgraded);
                tokio::join!(spdy::serve(read, write, streams_tx), pairing).0
            }
        };
        if let Err(e) = result {
            tracing::debug!("kube api port-forward: {e}");
        }
    });
    Ok(response)
}

/// A WebSocket's binary messages as the bytes of the SPDY connection they tunnel.
struct WsSource<S>(SplitStream<WebSocketStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ByteSource for WsSource<S> {
    async fn read_into(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        loop {
            match self.0.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(0),
                Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                    buf.extend_from_slice(&data);
                    return Ok(data.len());
                }
                Some(Ok(Message::Text(_))) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "a text message in a tunnel of spdy frames",
                    ));
                }
                // Pings are answered by tungstenite.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
    }
}

/// Writes go out as one binary message each.
struct WsSink<S>(SplitSink<WebSocketStream<S>, Message>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ByteSink for WsSink<S> {
    async fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        self.0
            .send(Message::Binary(bytes))
            .await
            .map_err(std::io::Error::other)
    }

    async fn close(&mut self) {
        let _ = self.0.close().await;
    }
}

/// What a stream is, by its headers.
#[derive(Debug, PartialEq, Eq)]
struct StreamRole {
    error: bool,
    port: u16,
    request: String,
}

/// A stream's role and port, checked as the kubelet does; `request` falls back to the
/// stream id (the data stream follows its error stream) for clients that send no
/// requestID.
fn classify(stream: &Stream) -> Result<StreamRole, String> {
    let port_text = stream
        .headers
        .get("port")
        .ok_or("\"port\" header is required")?;
    let port = port_text
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("unable to parse {port_text:?} as a port between 1 and 65535"))?;
    let error = match stream.headers.get("streamType") {
        Some("error") => true,
        Some("data") => false,
        Some(other) => return Err(format!("invalid stream type {other:?}")),
        None => return Err("\"streamType\" header is required".into()),
    };
    let request = match stream.headers.get("requestID").filter(|r| !r.is_empty()) {
        Some(request) if request.len() <= 32 => request.to_string(),
        Some(_) => return Err("\"requestID\" header is longer than 32 bytes".into()),
        None if error => stream.id.to_string(),
        None => stream.id.saturating_sub(2).to_string(),
    };
    Ok(StreamRole {
        error,
        port,
        request,
    })
}

/// The streams of one forwarded connection, as they arrive.
#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
    port: u16,
    since: Option<Instant>,
}

/// Where a connection's streams are forwarded to.
struct Forwarder {
    agent: AgentClient<Channel>,
    namespace: String,
    pod: String,
    uid: String,
}

impl Forwarder {
    /// Pairs the streams the session hands over and starts a forward for each whole pair,
    /// until the connection ends.
    async fn run(self, mut streams: mpsc::Receiver<Stream>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(MAX_FORWARDS));
        let mut pending: HashMap<String, Pair> = HashMap::new();
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        loop {
            let stream = tokio::select! {
                stream = streams.recv() => match stream {
                    Some(stream) => stream,
                    None => break,
                },
                _ = sweep.tick() => {
                    let expired: Vec<String> = pending
                        .iter()
                        .filter(|(_, p)| p.since.is_some_and(|s| s.elapsed() > PAIR_TIMEOUT))
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in expired {
                        let pair = pending.remove(&id).expect("listed");
                        fail(pair, &format!("(request={id}) timed out waiting for streams")).await;
                    }
                    continue;
                }
            };
            let role = match classify(&stream) {
                Ok(role) => role,
                Err(message) => {
                    tracing::debug!("kube api port-forward: stream refused: {message}");
                    stream.writer.reset(rst::PROTOCOL_ERROR).await;
                    continue;
                }
            };
            if !pending.contains_key(&role.request) && pending.len() >= spdy::MAX_STREAMS {
                stream.writer.reset(rst::REFUSED_STREAM).await;
                continue;
            }
            if stream.writer.reply().await.is_err() {
                continue;
            }
            let pair = pending.entry(role.request.clone()).or_default();
            pair.since.get_or_insert_with(Instant::now);
            let slot = if role.error {
                &mut pair.error
            } else {
                pair.port = role.port;
                &mut pair.data
            };
            if slot.is_some() {
                let kind = if role.error { "error" } else { "data" };
                let message = format!(
                    "error processing stream for request {}: {kind} stream already assigned",
                    role.request
                );
                stream.writer.reset(rst::PROTOCOL_ERROR).await;
                let pair = pending.remove(&role.request).expect("just used");
                fail(pair, &message).await;
                continue;
            }
            *slot = Some(stream);
            if pair.error.is_none() || pair.data.is_none() {
                continue;
            }
            let pair = pending.remove(&role.request).expect("just used");
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                let message = format!(
                    "error forwarding port {} to pod {}: more than {MAX_FORWARDS} connections are forwarded at once",
                    pair.port, this.pod
                );
                fail(pair, &message).await;
                continue;
            };
            tokio::spawn(this.clone().forward(pair, slot));
        }
        for (_, pair) in pending {
            fail(pair, "the connection ended").await;
        }
    }

    /// One forwarded connection: the data stream's bytes to the pod's port and back, a
    /// failure as a message on the error stream (kubectl prints it).
    async fn forward(self: Arc<Self>, pair: Pair, _slot: OwnedSemaphorePermit) {
        let (Some(error), Some(data)) = (pair.error, pair.data) else {
            return;
        };
        let Stream {
            reader: mut data_reader,
            writer: data_writer,
            ..
        } = data;
        let port = pair.port;
        let failed = |message: &str| {
            format!(
                "error forwarding port {port} to pod {}, uid {}: {message}",
                self.pod, self.uid
            )
        };
        let (requests, input) = mpsc::channel::<PortForwardRequest>(16);
        let first = PortForwardRequest {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            port: u32::from(port),
            data: Vec::new(),
        };
        let _ = requests.send(first).await;
        let mut agent = self.agent.clone();
        let call = agent.port_forward(ReceiverStream::new(input));
        let mut output = tokio::select! {
            answered = call => match answered {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    let _ = error.writer.write(Bytes::from(failed(status.message()))).await;
                    error.writer.finish().await;
                    data_writer.finish().await;
                    return;
                }
            },
            _ = data_writer.connection_closed() => return,
        };
        let upstream = async move {
            while let Some(bytes) = data_reader.recv().await {
                let message = PortForwardRequest {
                    data: bytes.to_vec(),
                    ..PortForwardRequest::default()
                };
                if requests.send(message).await.is_err() {
                    break;
                }
            }
            // The client's FIN (or reset): the pod's socket is shut for writing.
            drop(requests);
        };
        let writer = data_writer.clone();
        let downstream = async move {
            loop {
                match output.message().await {
                    Ok(Some(message)) => {
                        if writer.write(Bytes::from(message.data)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        let message = failed(status.message());
                        let _ = error.writer.write(Bytes::from(message)).await;
                        break;
                    }
                }
            }
            // The pod closed its side: kubectl then resets the data stream and reads the
            // error stream to its end.
            writer.finish().await;
            error.writer.finish().await;
        };
        tokio::select! {
            _ = async { tokio::join!(upstream, downstream) } => {}
            _ = data_writer.connection_closed() => {}
        }
    }
}

/// Ends a pair that will not be forwarded: `message` on its error stream, both finished.
async fn fail(pair: Pair, message: &str) {
    tracing::debug!("kube api port-forward: {message}");
    if let Some(error) = &pair.error {
        let _ = error.writer.write(Bytes::from(message.to_string())).await;
        error.writer.finish().await;
    }
    if let Some(data) = &pair.data {
        data.writer.finish().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, header};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn a_websocket_offering_the_tunnelled_protocol_and_a_spdy_upgrade_are_both_taken() {
        let websocket = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
        ]);
        assert_eq!(
            requested_transport(&websocket).unwrap(),
            Transport::WebSocket {
                key: "dGhlIHNhbXBsZSBub25jZQ==".into()
            }
        );
        let spdy = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "portforward.k8s.io"),
        ]);
        assert_eq!(
            requested_transport(&spdy).unwrap(),
            Transport::Spdy { named: true }
        );
    }

    #[test]
    fn a_websocket_without_the_tunnelled_protocol_is_refused_so_kubectl_falls_back() {
        let websocket = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "k"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        let err = requested_transport(&websocket).unwrap_err().to_string();
        assert!(err.contains("no tunneling spdy protocols"), "{err}");
        let other = headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ]);
        let err = requested_transport(&other).unwrap_err().to_string();
        assert!(err.contains("unable to negotiate protocol"), "{err}");
        let err = requested_transport(&HeaderMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unable to upgrade"), "{err}");
    }
}
