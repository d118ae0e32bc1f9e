//! `pods/log` and `pods/exec`: the agent of the pod's node does the work, reached through
//! the gRPC side's agent proxy (its authorization, its way to the node), and this module
//! speaks Kubernetes' wire forms around it — a plain (chunked when following) text body
//! for logs, and the WebSocket channel protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`)
//! for exec.
//!
//! Exec over WebSocket: every binary message starts with its channel — 0 stdin, 1 stdout,
//! 2 stderr, 3 error (one `metav1.Status` when the command is done: Success, or Failure
//! with reason NonZeroExitCode and an ExitCode cause, which is how kubectl learns the exit
//! code), 4 resize (`{"Width":…,"Height":…}`); v5 adds 255, "this channel is closed", which
//! is how a client ends stdin. Other transports (SPDY) can drive an exec through
//! [`open_exec`] and [`exit_status`].

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use skiff_api::Kind;
use skiff_api::proto::{ExecRequest, ExecResponse, ExecStart, LogsRequest};
use skiff_api::types::Pod;
use skiff_pki::{Subject, Verb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::KubeState;
use super::resources::Params;
use super::status::KubeError;
use crate::server::agent_proxy::{AgentProxy, check_pod};

/// The WebSocket subprotocols served, in the order preferred.
pub const EXEC_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5's "the channel in the next byte is closed".
const CLOSE: u8 = 255;

/// The largest WebSocket message taken from a client (kubectl sends at most 32 KiB + 1).
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Stdin and resize messages queued for the agent before the client is slowed down.
const INPUT_QUEUE: usize = 16;

/// Go's strconv.ParseBool, which Kubernetes' query parameters go through.
fn parse_bool(name: &str, text: &str) -> Result<bool, KubeError> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(KubeError::BadRequest(format!(
            "{name}: Invalid value: {text:?}: must be true or false"
        ))),
    }
}

/// A pod's namespace as a path gives it (empty: `default`, as the object API has it).
fn namespace_of(namespace: Option<&str>) -> &str {
    namespace.filter(|ns| !ns.is_empty()).unwrap_or("default")
}

/// The proxy the gRPC API uses to reach agents, over this member's own state.
fn proxy(state: &KubeState) -> AgentProxy {
    AgentProxy {
        node: state.objects.node.clone(),
        gate: state.gate.clone(),
    }
}

/// The container a request names, or the pod's only one; the apiserver's messages
/// otherwise (kubectl picks a default itself before it asks).
fn choose_container(pod: &Pod, asked: Option<&str>) -> Result<String, KubeError> {
    let name = &pod.metadata.name;
    let names: Vec<&str> = pod
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    match asked.filter(|c| !c.is_empty()) {
        Some(asked) if names.contains(&asked) => Ok(asked.to_string()),
        Some(asked) => Err(KubeError::BadRequest(format!(
            "container {asked} is not valid for pod {name}"
        ))),
        None => match names.as_slice() {
            [only] => Ok(only.to_string()),
            _ => Err(KubeError::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            ))),
        },
    }
}

/// The pod `namespace/name` after `verb` on its `sub` is authorized, and the node it is on.
fn scheduled_pod(
    state: &KubeState,
    subject: &Subject,
    verb: Verb,
    sub: &str,
    namespace: &str,
    name: &str,
) -> Result<(Pod, String), KubeError> {
    check_pod(subject, verb, sub, namespace, name)
        .map_err(|e| KubeError::api(e, Kind::Pod, name))?;
    let pod: Pod = proxy(state)
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
    Ok((pod, node))
}

/// An agent's refusal, as the apiserver passes a kubelet's on: what the agent could not
/// find (a previous container, one not started) is the request's fault, 400.
fn agent_error(status: tonic::Status, name: &str) -> KubeError {
    match status.code() {
        tonic::Code::NotFound | tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
            KubeError::BadRequest(status.message().to_string())
        }
        _ => KubeError::api(status, Kind::Pod, name),
    }
}

/// PodLogOptions from the query.
#[derive(Debug, Default, PartialEq, Eq)]
struct LogOptions {
    container: Option<String>,
    follow: bool,
    previous: bool,
    timestamps: bool,
    tail_lines: Option<i64>,
    since_seconds: Option<i64>,
    since_time: Option<String>,
    limit_bytes: Option<u64>,
}

impl LogOptions {
    fn parse(params: &Params) -> Result<LogOptions, KubeError> {
        let flag = |key: &str| params.get(key).map_or(Ok(false), |v| parse_bool(key, v));
        let number = |key: &str, least: i64| -> Result<Option<i64>, KubeError> {
            let Some(text) = params.get(key) else {
                return Ok(None);
            };
            match text.parse::<i64>() {
                Ok(n) if n >= least => Ok(Some(n)),
                _ => Err(KubeError::BadRequest(format!(
                    "{key}: Invalid value: {text:?}: must be an integer of at least {least}"
                ))),
            }
        };
        let since_time = params.get("sinceTime").filter(|t| !t.is_empty()).cloned();
        if let Some(time) = &since_time {
            chrono::DateTime::parse_from_rfc3339(time).map_err(|_| {
                KubeError::BadRequest(format!(
                    "sinceTime: Invalid value: {time:?}: must be an RFC 3339 time"
                ))
            })?;
        }
        let options = LogOptions {
            container: params.get("container").filter(|c| !c.is_empty()).cloned(),
            follow: flag("follow")?,
            previous: flag("previous")?,
            timestamps: flag("timestamps")?,
            tail_lines: number("tailLines", 0)?,
            since_seconds: number("sinceSeconds", 1)?,
            since_time,
            limit_bytes: number("limitBytes", 1)?.map(|n| n as u64),
        };
        if options.since_seconds.is_some() && options.since_time.is_some() {
            return Err(KubeError::BadRequest(
                "sinceSeconds, sinceTime: only one of sinceTime or sinceSeconds may be set".into(),
            ));
        }
        Ok(options)
    }
}

/// `GET pods/NAME/log`: the container's log as text; streamed while it runs with `follow`.
pub async fn log(
    state: &KubeState,
    subject: &Subject,
    namespace: Option<&str>,
    name: &str,
    params: &Params,
) -> Result<Response, KubeError> {
    let options = LogOptions::parse(params)?;
    let namespace = namespace_of(namespace);
    let (pod, node) = scheduled_pod(state, subject, Verb::Get, "log", namespace, name)?;
    let container = choose_container(&pod, options.container.as_deref())?;
    let request = LogsRequest {
        namespace: namespace.to_string(),
        pod: name.to_string(),
        container,
        follow: options.follow,
        tail_lines: options.tail_lines.unwrap_or(-1),
        previous: options.previous,
        timestamps: options.timestamps,
        since_seconds: options.since_seconds.unwrap_or(0),
        since_time: options.since_time.unwrap_or_default(),
    };
    let mut agent = proxy(state)
        .agent_on(&node)
        .await
        .map_err(|e| KubeError::api(e, Kind::Pod, name))?;
    let chunks = agent
        .logs(request)
        .await
        .map_err(|e| agent_error(e, name))?
        .into_inner();
    // limitBytes cuts the stream there, whatever the line; an agent failing mid-stream ends
    // it (the status line has gone out already).
    let mut left = options.limit_bytes.unwrap_or(u64::MAX);
    let body = chunks
        .take_while(|chunk| std::future::ready(chunk.is_ok()))
        .filter_map(|chunk| std::future::ready(chunk.ok().map(|c| c.data)))
        .map(move |mut data| {
            let keep = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
            data.truncate(keep);
            left -= keep as u64;
            data
        })
        .take_while(|data| std::future::ready(!data.is_empty()))
        .map(|data| Ok::<_, std::convert::Infallible>(Bytes::from(data)));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(body),
    )
        .into_response())
}

/// PodExecOptions, from the raw query: `command` repeats, one argument each.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub fn from_uri(uri: &Uri) -> Result<ExecOptions, KubeError> {
        let Query(pairs): Query<Vec<(String, String)>> = Query::try_from_uri(uri)
            .map_err(|e| KubeError::BadRequest(format!("invalid query: {}", e.body_text())))?;
        let mut options = ExecOptions::default();
        for (key, value) in pairs {
            match key.as_str() {
                "command" => options.command.push(value),
                "container" => options.container = Some(value).filter(|c| !c.is_empty()),
                "stdin" => options.stdin = parse_bool("stdin", &value)?,
                "stdout" => options.stdout = parse_bool("stdout", &value)?,
                "stderr" => options.stderr = parse_bool("stderr", &value)?,
                "tty" => options.tty = parse_bool("tty", &value)?,
                _ => {}
            }
        }
        if options.command.is_empty() {
            return Err(KubeError::BadRequest(
                "you must specify at least one command for the container".into(),
            ));
        }
        if !(options.stdin || options.stdout || options.stderr) {
            return Err(KubeError::BadRequest(
                "you must specify at least 1 of stdin, stdout, stderr".into(),
            ));
        }
        if options.tty && options.stderr {
            // A terminal merges stderr into stdout: kubectl asks for no stderr with -t.
            return Err(KubeError::BadRequest(
                "tty and stderr cannot both be true".into(),
            ));
        }
        Ok(options)
    }
}

/// A command started in a container: what goes to it (stdin, resizes; the first message,
/// the start, is sent already) and what comes back, ending with its exit code.
pub struct ExecSession {
    pub options: ExecOptions,
    pub input: mpsc::Sender<ExecRequest>,
    pub output: tonic::Streaming<ExecResponse>,
}

/// Authorizes (create on pods/exec, as the gRPC API's exec), finds the pod, its container
/// and its node: everything that can be refused before a connection is upgraded.
async fn prepare_exec(
    state: &KubeState,
    subject: &Subject,
    namespace: Option<&str>,
    name: &str,
    options: &ExecOptions,
) -> Result<(ExecStart, String), KubeError> {
    let namespace = namespace_of(namespace);
    let (pod, node) = scheduled_pod(state, subject, Verb::Create, "exec", namespace, name)?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if let Some(phase @ ("Succeeded" | "Failed")) = phase {
        return Err(KubeError::BadRequest(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let container = choose_container(&pod, options.container.as_deref())?;
    let start = ExecStart {
        namespace: namespace.to_string(),
        pod: name.to_string(),
        container,
        command: options.command.clone(),
        stdin: options.stdin,
        ..ExecStart::default()
    };
    if options.tty {
        return Err(KubeError::BadRequest(
            "tty: exec on a terminal is not served by this server's Kubernetes API yet (run without -t)"
                .into(),
        ));
    }
    Ok((start, node))
}

/// Starts the command on the pod's agent.
async fn start_exec(
    state: &KubeState,
    name: &str,
    start: ExecStart,
    node: &str,
    options: ExecOptions,
) -> Result<ExecSession, KubeError> {
    let mut agent = proxy(state)
        .agent_on(node)
        .await
        .map_err(|e| KubeError::api(e, Kind::Pod, name))?;
    let (input, requests) = mpsc::channel(INPUT_QUEUE);
    input
        .send(ExecRequest {
            start: Some(start),
            ..ExecRequest::default()
        })
        .await
        .expect("the receiver is held here");
    let output = agent
        .exec(ReceiverStream::new(requests))
        .await
        .map_err(|e| agent_error(e, name))?
        .into_inner();
    Ok(ExecSession {
        options,
        input,
        output,
    })
}

/// Authorizes and starts an exec of `uri`'s options in pod `namespace/name`, for a
/// transport of its own (SPDY) to drive; [`exit_status`] is its error stream's message.
pub async fn open_exec(
    state: &KubeState,
    subject: &Subject,
    namespace: Option<&str>,
    name: &str,
    uri: &Uri,
) -> Result<ExecSession, KubeError> {
    let options = ExecOptions::from_uri(uri)?;
    let (start, node) = prepare_exec(state, subject, namespace, name, &options).await?;
    start_exec(state, name, start, &node, options).await
}

/// The error channel's message for a command that exited with `code` (as the kubelet
/// writes it: kubectl exits with the ExitCode cause's number).
pub fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({ "metadata": {}, "status": "Success" });
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] },
    })
}

/// The error channel's message for an exec that failed without an exit code.
pub fn failure_status(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    })
}

/// What kind of upgrade a request asks for.
enum Upgrade<'a> {
    WebSocket {
        key: &'a str,
        protocol: &'static str,
    },
    Spdy,
}

/// The comma-separated tokens of every `name` header (Upgrade, subprotocols, versions).
pub(super) fn header_tokens(
    headers: &HeaderMap,
    name: impl header::AsHeaderName,
) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A WebSocket handshake's key, once its version is checked; `Err` says what is wrong.
pub(super) fn websocket_key(headers: &HeaderMap) -> Result<&str, &'static str> {
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok());
    if version != Some("13") {
        return Err("Sec-WebSocket-Version must be 13");
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .ok_or("Sec-WebSocket-Key is missing")
}

/// The upgrade `headers` ask for, or why it cannot be served.
fn requested_upgrade(headers: &HeaderMap) -> Result<Upgrade<'_>, KubeError> {
    let upgrade: Vec<&str> = header_tokens(headers, header::UPGRADE).collect();
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        let key = websocket_key(headers)
            .map_err(|why| KubeError::BadRequest(format!("websocket: {why}")))?;
        let asked: Vec<&str> = header_tokens(headers, header::SEC_WEBSOCKET_PROTOCOL).collect();
        // The client's order is its preference.
        let protocol = asked
            .iter()
            .find_map(|a| EXEC_PROTOCOLS.iter().find(|p| **p == *a).copied())
            .ok_or_else(|| {
                KubeError::BadRequest(format!(
                    "websocket: none of the requested subprotocols {asked:?} is served (served: {})",
                    EXEC_PROTOCOLS.join(", ")
                ))
            })?;
        return Ok(Upgrade::WebSocket { key, protocol });
    }
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        return Ok(Upgrade::Spdy);
    }
    Err(KubeError::BadRequest(
        "Upgrade request required: exec needs an HTTP/1.1 upgrade to a WebSocket".into(),
    ))
}

/// `GET|POST pods/NAME/exec`: the command runs on the pod's agent, its streams carried over
/// the WebSocket this request is upgraded to.
pub async fn exec(
    state: &KubeState,
    subject: &Subject,
    namespace: Option<&str>,
    name: &str,
    uri: &Uri,
    headers: &HeaderMap,
    upgrade: Option<OnUpgrade>,
) -> Result<Response, KubeError> {
    let options = ExecOptions::from_uri(uri)?;
    // Everything that can be refused is refused before the upgrade, as a Status kubectl
    // prints (it falls back to SPDY after a failed WebSocket upgrade and prints that
    // attempt's answer, which is then the same).
    let (start, node) = prepare_exec(state, subject, namespace, name, &options).await?;
    let (key, protocol) = match requested_upgrade(headers)? {
        Upgrade::WebSocket { key, protocol } => (key, protocol),
        Upgrade::Spdy => {
            return Err(KubeError::BadRequest(
                "exec over SPDY/3.1 is not served: use a WebSocket (v5.channel.k8s.io, as kubectl 1.30 and later do)"
                    .into(),
            ));
        }
    };
    let Some(upgrade) = upgrade else {
        return Err(KubeError::BadRequest(
            "this request cannot be upgraded (HTTP/2?): exec needs an HTTP/1.1 connection".into(),
        ));
    };
    let session = start_exec(state, name, start, &node, options).await?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let v5 = protocol == EXEC_PROTOCOLS[0];
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => pump(TokioIo::new(upgraded), session, v5).await,
            Err(e) => tracing::debug!("kube api exec: the upgrade failed: {e}"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    response_headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    response_headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    response_headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    Ok(response)
}

/// A message on `channel`.
fn on_channel(channel: u8, data: &[u8]) -> Message {
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    Message::Binary(message.into())
}

/// A client message, as what to send the agent (`None`: nothing to send).
fn client_message(data: &[u8], options: &ExecOptions, v5: bool) -> Option<ExecRequest> {
    let (&channel, payload) = data.split_first()?;
    match channel {
        STDIN if options.stdin && !payload.is_empty() => Some(ExecRequest {
            stdin: payload.to_vec(),
            ..ExecRequest::default()
        }),
        CLOSE if v5 && payload.first() == Some(&STDIN) => Some(ExecRequest {
            close_stdin: true,
            ..ExecRequest::default()
        }),
        // Resizes matter on a terminal only, which is not served yet.
        RESIZE => None,
        _ => None,
    }
}

/// Carries one exec over an upgraded connection until the command ends (its status sent,
/// the WebSocket closed) or the client goes (the command is then killed by the agent, as
/// its output stream is dropped).
async fn pump<S>(io: S, session: ExecSession, v5: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let (mut sink, mut source) = socket.split();
    let ExecSession {
        options,
        input,
        mut output,
    } = session;
    let command = options.command.clone();
    let (want_stdout, want_stderr) = (options.stdout, options.stderr);
    let reader = async move {
        while let Some(message) = source.next().await {
            match message {
                Ok(Message::Binary(data)) => {
                    // A send fails once the agent's side has ended: the writer then sends
                    // the status, and reading goes on meanwhile (pings, the close).
                    if let Some(request) = client_message(&data, &options, v5) {
                        let _ = input.send(request).await;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => return,
                // Pings are answered by tungstenite; text is not part of the protocol.
                Ok(_) => {}
            }
        }
    };
    let writer = async move {
        let status = loop {
            match output.message().await {
                Ok(Some(response)) => {
                    let mut messages = Vec::new();
                    if want_stdout && !response.stdout.is_empty() {
                        messages.push(on_channel(STDOUT, &response.stdout));
                    }
                    if want_stderr && !response.stderr.is_empty() {
                        messages.push(on_channel(STDERR, &response.stderr));
                    }
                    if !response.error.is_empty() {
                        // The command could not be started: the runtime's words on stderr,
                        // as a runtime prints them (and 126 follows).
                        let channel = if want_stderr { STDERR } else { STDOUT };
                        messages.push(on_channel(
                            channel,
                            format!("{}\n", response.error).as_bytes(),
                        ));
                    }
                    for message in messages {
                        if sink.send(message).await.is_err() {
                            return;
                        }
                    }
                    if let Some(code) = response.exit_code {
                        break exit_status(&command, code);
                    }
                }
                Ok(None) => break failure_status("the agent ended the exec without an exit code"),
                Err(status) => break failure_status(&format!("exec failed: {}", status.message())),
            }
        };
        let status = serde_json::to_vec(&status).expect("a JSON value encodes");
        let _ = sink.send(on_channel(ERROR, &status)).await;
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), sink.close()).await;
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(query: &str) -> Uri {
        format!("/api/v1/namespaces/default/pods/web/exec?{query}")
            .parse()
            .unwrap()
    }

    #[test]
    fn exec_options_keep_every_command_argument_in_order() {
        let options = ExecOptions::from_uri(&uri(
            "command=sh&command=-c&command=echo+%22a+b%22%3B+exit+3&container=main&stdin=true&stdout=true&stderr=true",
        ))
        .unwrap();
        assert_eq!(options.command, ["sh", "-c", "echo \"a b\"; exit 3"]);
        assert_eq!(options.container.as_deref(), Some("main"));
        assert!(options.stdin && options.stdout && options.stderr && !options.tty);
    }

    #[test]
    fn exec_options_without_a_command_or_a_stream_are_refused_in_the_apiservers_words() {
        let no_command = ExecOptions::from_uri(&uri("stdout=true"));
        assert!(
            matches!(no_command, Err(KubeError::BadRequest(m)) if m.contains("at least one command"))
        );
        let no_stream = ExecOptions::from_uri(&uri("command=ls"));
        assert!(
            matches!(no_stream, Err(KubeError::BadRequest(m)) if m.contains("at least 1 of stdin"))
        );
        let bad_bool = ExecOptions::from_uri(&uri("command=ls&stdout=yes"));
        assert!(matches!(bad_bool, Err(KubeError::BadRequest(m)) if m.contains("stdout")));
    }

    #[test]
    fn a_nonzero_exit_is_a_failure_with_the_code_as_its_exit_code_cause() {
        let command = vec!["sh".to_string(), "-c".into(), "exit 3".into()];
        let status = exit_status(&command, 3);
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(&command, 0)["status"], "Success");
    }

    #[test]
    fn client_messages_are_stdin_and_v5s_close_of_stdin() {
        let options = ExecOptions {
            stdin: true,
            ..ExecOptions::default()
        };
        let stdin = client_message(&[STDIN, b'h', b'i'], &options, true).unwrap();
        assert_eq!(stdin.stdin, b"hi");
        let close = client_message(&[CLOSE, STDIN], &options, true).unwrap();
        assert!(close.close_stdin);
        // v4 has no close message; an empty message and unknown channels are nothing.
        assert!(client_message(&[CLOSE, STDIN], &options, false).is_none());
        assert!(client_message(&[], &options, true).is_none());
        assert!(client_message(&[9, 1], &options, true).is_none());
        let no_stdin = ExecOptions::default();
        assert!(client_message(&[STDIN, b'x'], &no_stdin, true).is_none());
    }

    #[test]
    fn log_options_are_checked_as_the_apiserver_checks_them() {
        let params = |pairs: &[(&str, &str)]| -> Params {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let options = LogOptions::parse(&params(&[
            ("follow", "true"),
            ("tailLines", "5"),
            ("container", "c"),
            ("limitBytes", "10"),
        ]))
        .unwrap();
        assert!(options.follow);
        assert_eq!(options.tail_lines, Some(5));
        assert_eq!(options.limit_bytes, Some(10));
        assert!(LogOptions::parse(&params(&[("tailLines", "-1")])).is_err());
        assert!(LogOptions::parse(&params(&[("limitBytes", "0")])).is_err());
        assert!(LogOptions::parse(&params(&[("sinceTime", "yesterday")])).is_err());
        let both = params(&[("sinceSeconds", "5"), ("sinceTime", "2026-01-01T00:00:00Z")]);
        assert!(LogOptions::parse(&both).is_err());
    }
}
