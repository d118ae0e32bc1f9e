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
//! is how a client ends stdin. On a terminal (`tty=true`) stderr is merged into stdout, so
//! channel 2 carries nothing. The same exec ([`ExecSession`]: its input, its output) is
//! carried over SPDY/3.1 by [`super::spdy_exec`], kubectl's fallback.

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
use skiff_api::proto::{ExecRequest, ExecResponse, ExecStart, LogsRequest, TerminalSize};
use skiff_api::types::Pod;
use skiff_pki::{Subject, Verb};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::resources::Params;
use super::status::KubeError;
use super::{KubeState, spdy, spdy_exec};
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

/// The largest resize message taken (`{"Width":65535,"Height":65535}` is 30 bytes).
pub const MAX_RESIZE_BYTES: usize = 256;
/// At most one resize per this reaches the agent; faster ones are coalesced, the latest
/// kept (a window dragged by hand sends dozens a second).
const RESIZE_INTERVAL: Duration = Duration::from_millis(50);

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
        // A terminal merges stderr into stdout: the kubelet drops stderr rather than
        // refusing (kubectl asks for none with -t).
        if options.tty {
            options.stderr = false;
        }
        Ok(options)
    }
}

/// A command started in a container, whichever transport carries it: what the client
/// sends goes to it through `input`, and `output` gives what it writes, ending with the
/// v4 Status that carries its exit code.
pub struct ExecSession {
    pub options: ExecOptions,
    pub input: ExecInput,
    pub output: ExecOutput,
}

/// One thing a client sent, as each transport's framing gives it.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMessage<'a> {
    Stdin(&'a [u8]),
    CloseStdin,
    /// remotecommand's TerminalSize as JSON: `{"Width":…,"Height":…}`.
    Resize(&'a [u8]),
}

/// remotecommand's TerminalSize on the wire (Go's field names; Go matches them without
/// case, so lowercase is taken too). u16 bounds each side, as a kernel winsize does.
#[derive(Debug, serde::Deserialize)]
struct WireSize {
    #[serde(rename = "Width", alias = "width", default)]
    width: u16,
    #[serde(rename = "Height", alias = "height", default)]
    height: u16,
}

/// A resize message's size, or why it is refused.
fn parse_resize(json: &[u8]) -> Result<TerminalSize, String> {
    if json.len() > MAX_RESIZE_BYTES {
        return Err(format!(
            "a resize message of {} bytes (at most {MAX_RESIZE_BYTES})",
            json.len()
        ));
    }
    // Go decodes the size only from an object; serde would also take an array.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err("a malformed resize message: not a JSON object".into());
    }
    let size: WireSize =
        serde_json::from_slice(json).map_err(|e| format!("a malformed resize message: {e}"))?;
    Ok(TerminalSize {
        width: u32::from(size.width),
        height: u32::from(size.height),
    })
}

/// Where a client's input goes: the agent's exec stream. Resizes are coalesced to at
/// most one per [`RESIZE_INTERVAL`], the latest size kept, so a client cannot make the
/// agent signal the command faster than that.
pub struct ExecInput {
    stdin: bool,
    requests: mpsc::Sender<ExecRequest>,
    /// On a terminal only: the size the resize task sends next.
    resizes: Option<watch::Sender<Option<TerminalSize>>>,
}

impl ExecInput {
    fn new(options: &ExecOptions, requests: mpsc::Sender<ExecRequest>) -> ExecInput {
        let resizes = options.tty.then(|| {
            let (sizes, latest) = watch::channel(None);
            tokio::spawn(forward_resizes(latest, requests.clone()));
            sizes
        });
        ExecInput {
            stdin: options.stdin,
            requests,
            resizes,
        }
    }

    /// Passes `message` on. A send fails once the agent's side has ended: the output then
    /// ends with the status, so the failure is not the caller's to handle here.
    pub async fn take(&self, message: ClientMessage<'_>) {
        let request = match message {
            ClientMessage::Stdin(data) if self.stdin && !data.is_empty() => ExecRequest {
                stdin: data.to_vec(),
                ..ExecRequest::default()
            },
            ClientMessage::CloseStdin if self.stdin => ExecRequest {
                close_stdin: true,
                ..ExecRequest::default()
            },
            ClientMessage::Resize(json) => {
                // Only a terminal has a size; the kubelet ignores resizes otherwise too.
                let Some(resizes) = &self.resizes else { return };
                match parse_resize(json) {
                    Ok(size) => {
                        resizes.send_replace(Some(size));
                    }
                    Err(why) => tracing::debug!("kube api exec: {why} ignored"),
                }
                return;
            }
            _ => return,
        };
        let _ = self.requests.send(request).await;
    }
}

/// Sends the latest size, then waits [`RESIZE_INTERVAL`] before the next, until the
/// session's input is dropped.
async fn forward_resizes(
    mut latest: watch::Receiver<Option<TerminalSize>>,
    requests: mpsc::Sender<ExecRequest>,
) {
    while latest.changed().await.is_ok() {
        let Some(size) = *latest.borrow_and_update() else {
            continue;
        };
        let resize = ExecRequest {
            resize: Some(size),
            ..ExecRequest::default()
        };
        if requests.send(resize).await.is_err() {
            return;
        }
        tokio::time::sleep(RESIZE_INTERVAL).await;
    }
}

/// What a command wrote, in order.
#[derive(Debug, PartialEq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The last: the v4 Status for the error stream (its exit code, or why it failed).
    Done(Value),
}

/// The agent's answers to an exec, as [`Output`]: only the streams the client asked for.
pub struct ExecOutput {
    command: Vec<String>,
    stdout: bool,
    stderr: bool,
    responses: tonic::Streaming<ExecResponse>,
    queued: std::collections::VecDeque<Output>,
    done: bool,
}

impl ExecOutput {
    /// The next output; `None` after [`Output::Done`].
    pub async fn next(&mut self) -> Option<Output> {
        loop {
            if let Some(output) = self.queued.pop_front() {
                return Some(output);
            }
            if self.done {
                return None;
            }
            self.done = true;
            let status = match self.responses.message().await {
                Ok(Some(response)) => {
                    self.done = false;
                    self.queue(response);
                    continue;
                }
                Ok(None) => failure_status("the agent ended the exec without an exit code"),
                Err(status) => failure_status(&format!("exec failed: {}", status.message())),
            };
            self.queued.push_back(Output::Done(status));
        }
    }

    fn queue(&mut self, response: ExecResponse) {
        if self.stdout && !response.stdout.is_empty() {
            self.queued.push_back(Output::Stdout(response.stdout));
        }
        if self.stderr && !response.stderr.is_empty() {
            self.queued.push_back(Output::Stderr(response.stderr));
        }
        if !response.error.is_empty() {
            // The command could not be started: the runtime's words on stderr, as a
            // runtime prints them (and 126 follows); on stdout when there is no stderr.
            let words = format!("{}\n", response.error).into_bytes();
            self.queued.push_back(match self.stderr {
                true => Output::Stderr(words),
                false => Output::Stdout(words),
            });
        }
        if let Some(code) = response.exit_code {
            self.queued
                .push_back(Output::Done(exit_status(&self.command, code)));
            self.done = true;
        }
    }
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
        // The size is not in the query: the client's first resize message follows at once
        // (0×0 meanwhile is a terminal's "unknown", as on a kubelet).
        tty: options.tty,
        size: None,
    };
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
    let (requests, receiver) = mpsc::channel(INPUT_QUEUE);
    requests
        .send(ExecRequest {
            start: Some(start),
            ..ExecRequest::default()
        })
        .await
        .expect("the receiver is held here");
    let responses = agent
        .exec(ReceiverStream::new(receiver))
        .await
        .map_err(|e| agent_error(e, name))?
        .into_inner();
    let output = ExecOutput {
        command: options.command.clone(),
        stdout: options.stdout,
        stderr: options.stderr,
        responses,
        queued: Default::default(),
        done: false,
    };
    Ok(ExecSession {
        input: ExecInput::new(&options, requests),
        output,
        options,
    })
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
        // Only v4 carries the exit code (its error stream's Status); v1 to v3 clients,
        // which predate kubectl 1.5, are refused as the kubelet refuses a mismatch.
        let asked: Vec<&str> = header_tokens(headers, spdy::PROTOCOL_HEADER).collect();
        if !asked.contains(&spdy_exec::PROTOCOL) {
            return Err(KubeError::BadRequest(format!(
                "unable to upgrade: unable to negotiate protocol: client supports {asked:?}, server supports [\"{}\"]",
                spdy_exec::PROTOCOL
            )));
        }
        return Ok(Upgrade::Spdy);
    }
    Err(KubeError::BadRequest(
        "Upgrade request required: exec needs an HTTP/1.1 upgrade to a WebSocket or SPDY/3.1"
            .into(),
    ))
}

/// `GET|POST pods/NAME/exec`: the command runs on the pod's agent, its streams carried over
/// the WebSocket or the SPDY connection this request is upgraded to.
/// A `101 Switching Protocols` answer to `Upgrade: upgrade`.
fn switching_protocols(upgrade: &'static str) -> Response {
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(upgrade));
    response
}

/// The answer that completes a WebSocket handshake sent with `key`, in subprotocol
/// `protocol` (exec's and port-forward's upgrades).
pub(crate) fn websocket_accepted(key: &str, protocol: &'static str) -> Response {
    let mut response = switching_protocols("websocket");
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let headers = response.headers_mut();
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    response
}

/// The answer to an upgrade to SPDY/3.1, naming the stream protocol agreed on if any.
pub(crate) fn spdy_accepted(protocol: Option<&'static str>) -> Response {
    let mut response = switching_protocols("SPDY/3.1");
    if let Some(protocol) = protocol {
        response
            .headers_mut()
            .insert(spdy::PROTOCOL_HEADER, HeaderValue::from_static(protocol));
    }
    response
}

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
    let transport = requested_upgrade(headers)?;
    let Some(upgrade) = upgrade else {
        return Err(KubeError::BadRequest(
            "this request cannot be upgraded (HTTP/2?): exec needs an HTTP/1.1 connection".into(),
        ));
    };
    let session = start_exec(state, name, start, &node, options).await?;
    let response = match transport {
        Upgrade::WebSocket { key, protocol } => {
            let v5 = protocol == EXEC_PROTOCOLS[0];
            tokio::spawn(async move {
                match upgrade.await {
                    Ok(upgraded) => pump(TokioIo::new(upgraded), session, v5).await,
                    Err(e) => tracing::debug!("kube api exec: the upgrade failed: {e}"),
                }
            });
            websocket_accepted(key, protocol)
        }
        Upgrade::Spdy => {
            tokio::spawn(async move {
                match upgrade.await {
                    Ok(upgraded) => spdy_exec::serve(TokioIo::new(upgraded), session).await,
                    Err(e) => tracing::debug!("kube api exec: the upgrade failed: {e}"),
                }
            });
            spdy_accepted(Some(spdy_exec::PROTOCOL))
        }
    };
    Ok(response)
}

/// A message on `channel`.
fn on_channel(channel: u8, data: &[u8]) -> Message {
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    Message::Binary(message.into())
}

/// A client's WebSocket message, by its channel (`None`: nothing the protocol has).
fn ws_message(data: &[u8], v5: bool) -> Option<ClientMessage<'_>> {
    let (&channel, payload) = data.split_first()?;
    match channel {
        STDIN => Some(ClientMessage::Stdin(payload)),
        CLOSE if v5 && payload.first() == Some(&STDIN) => Some(ClientMessage::CloseStdin),
        RESIZE => Some(ClientMessage::Resize(payload)),
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
        input, mut output, ..
    } = session;
    let reader = async move {
        while let Some(message) = source.next().await {
            match message {
                Ok(Message::Binary(data)) => {
                    if let Some(message) = ws_message(&data, v5) {
                        input.take(message).await;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => return,
                // Pings are answered by tungstenite; text is not part of the protocol.
                Ok(_) => {}
            }
        }
    };
    let writer = async move {
        while let Some(out) = output.next().await {
            let message = match out {
                Output::Stdout(data) => on_channel(STDOUT, &data),
                Output::Stderr(data) => on_channel(STDERR, &data),
                Output::Done(status) => on_channel(
                    ERROR,
                    &serde_json::to_vec(&status).expect("a JSON value encodes"),
                ),
            };
            if sink.send(message).await.is_err() {
                return;
            }
        }
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
    fn websocket_messages_are_stdin_resize_and_v5s_close_of_stdin() {
        assert_eq!(
            ws_message(&[STDIN, b'h', b'i'], true),
            Some(ClientMessage::Stdin(b"hi"))
        );
        assert_eq!(
            ws_message(&[CLOSE, STDIN], true),
            Some(ClientMessage::CloseStdin)
        );
        assert_eq!(
            ws_message(b"\x04{\"Width\":80}", false),
            Some(ClientMessage::Resize(b"{\"Width\":80}"))
        );
        // v4 has no close message; an empty message and unknown channels are nothing.
        assert_eq!(ws_message(&[CLOSE, STDIN], false), None);
        assert_eq!(ws_message(&[], true), None);
        assert_eq!(ws_message(&[9, 1], true), None);
    }

    #[test]
    fn tty_with_stderr_drops_stderr_as_the_kubelet_does() {
        let options = ExecOptions::from_uri(&uri(
            "command=sh&stdin=true&stdout=true&stderr=true&tty=true",
        ))
        .unwrap();
        assert!(options.tty && options.stdout && !options.stderr);
    }

    #[test]
    fn resize_messages_are_bounded_to_a_winsize_and_a_few_hundred_bytes() {
        let size = parse_resize(br#"{"Width":120,"Height":40}"#).unwrap();
        assert_eq!((size.width, size.height), (120, 40));
        let lower = parse_resize(br#"{"width":7,"height":3}"#).unwrap();
        assert_eq!((lower.width, lower.height), (7, 3));
        assert!(parse_resize(br#"{"Width":65536,"Height":1}"#).is_err());
        assert!(parse_resize(br#"{"Width":-1}"#).is_err());
        assert!(parse_resize(b"[80,24]").is_err());
        let padded = format!("{{\"Width\":1{}}}", " ".repeat(MAX_RESIZE_BYTES));
        assert!(parse_resize(padded.as_bytes()).is_err());
    }

    fn exec_input(tty: bool, stdin: bool) -> (ExecInput, mpsc::Receiver<ExecRequest>) {
        let options = ExecOptions {
            tty,
            stdin,
            ..ExecOptions::default()
        };
        let (requests, received) = mpsc::channel(INPUT_QUEUE);
        (ExecInput::new(&options, requests), received)
    }

    #[tokio::test]
    async fn stdin_reaches_the_agent_only_when_the_exec_has_stdin() {
        let (input, mut received) = exec_input(false, true);
        input.take(ClientMessage::Stdin(b"hi")).await;
        input.take(ClientMessage::CloseStdin).await;
        // Not a terminal: a resize is nothing.
        input
            .take(ClientMessage::Resize(br#"{"Width":1,"Height":1}"#))
            .await;
        assert_eq!(received.recv().await.unwrap().stdin, b"hi");
        assert!(received.recv().await.unwrap().close_stdin);
        drop(input);
        assert!(received.recv().await.is_none());

        let (input, mut received) = exec_input(false, false);
        input.take(ClientMessage::Stdin(b"hi")).await;
        input.take(ClientMessage::CloseStdin).await;
        drop(input);
        assert!(received.recv().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_resizes_reaches_the_agent_coalesced_with_the_last_size_kept() {
        let (input, mut received) = exec_input(true, true);
        for width in 1..=200u32 {
            let json = format!(r#"{{"Width":{width},"Height":10}}"#);
            input.take(ClientMessage::Resize(json.as_bytes())).await;
            // 200 sizes over 200 ms: four intervals' worth.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A malformed one changes nothing.
        input.take(ClientMessage::Resize(b"{")).await;
        tokio::time::sleep(RESIZE_INTERVAL * 4).await;
        drop(input);
        let mut sizes = Vec::new();
        while let Some(request) = received.recv().await {
            sizes.push(request.resize.expect("only resizes were sent").width);
        }
        assert!((2..=6).contains(&sizes.len()), "not coalesced: {sizes:?}");
        assert_eq!(sizes.last(), Some(&200));
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
