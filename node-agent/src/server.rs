//! The agent's gRPC service: logs, exec and port-forward for the pods on this node, and the
//! node's image store (`image_service.rs`). The control plane proxies clients' calls here.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use skiff_api::proto::agent_server::Agent;
use skiff_api::proto::{
    ExecRequest, ExecResponse, ImportImageRequest, ImportImageResponse, ListImagesRequest,
    ListImagesResponse, LogsChunk, LogsRequest, PortForwardRequest, PortForwardResponse,
    RemoveImageRequest, RemoveImageResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::image_service::ImageService;
use crate::logs::{self, Follower};
use crate::pod_index::{LookupError, PodIndex};
use crate::runtime::pty::{Pty, TerminalSize};
use crate::runtime::{ExecProcess, Runtime, START_FAILURE_PREFIX};

const CHUNK: usize = 32 * 1024;
/// How often a followed log is looked at for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct AgentService<R> {
    pub runtime: Arc<R>,
    pub pod_index: Arc<PodIndex>,
    /// The latest cgroup readings (`skiff top`).
    pub usage: Arc<crate::usage::UsageBook>,
    /// The node's image store (`<data-dir>/images`).
    pub images: ImageService,
    pub exec_sessions: Arc<ExecSessions>,
}

/// Exec sessions open at once, per pod and on the whole node (`--max-exec-sessions-per-pod`,
/// `--max-exec-sessions`): each holds a process, pipes and a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    pub per_pod: usize,
    pub per_node: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits {
            per_pod: 16,
            per_node: 128,
        }
    }
}

/// The open exec sessions, counted against [`ExecLimits`].
#[derive(Debug, Default)]
pub struct ExecSessions {
    limits: ExecLimits,
    /// Sessions per `namespace/pod`, and their sum.
    open: Mutex<(HashMap<String, usize>, usize)>,
}

/// One open exec session; closed when dropped.
pub struct ExecSession {
    sessions: Arc<ExecSessions>,
    pod: String,
}

impl ExecSessions {
    pub fn new(limits: ExecLimits) -> ExecSessions {
        ExecSessions {
            limits,
            open: Mutex::default(),
        }
    }

    /// Opens a session in `namespace/pod`, or RESOURCE_EXHAUSTED naming the cap it would pass.
    pub fn open(self: &Arc<Self>, namespace: &str, pod: &str) -> Result<ExecSession, Status> {
        let key = format!("{namespace}/{pod}");
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (per_pod, total) = &mut *open;
        if *total >= self.limits.per_node {
            return Err(Status::resource_exhausted(format!(
                "too many exec sessions on this node: {total} open, the limit is {} \
                 (--max-exec-sessions)",
                self.limits.per_node
            )));
        }
        let in_pod = per_pod.entry(key.clone()).or_default();
        if *in_pod >= self.limits.per_pod {
            return Err(Status::resource_exhausted(format!(
                "too many exec sessions in pod {key}: {in_pod} open, the limit is {} \
                 (--max-exec-sessions-per-pod)",
                self.limits.per_pod
            )));
        }
        *in_pod += 1;
        *total += 1;
        Ok(ExecSession {
            sessions: self.clone(),
            pod: key,
        })
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock().unwrap_or_else(|e| e.into_inner());
        let (per_pod, total) = &mut *open;
        *total -= 1;
        if let Some(n) = per_pod.get_mut(&self.pod) {
            *n -= 1;
            if *n == 0 {
                per_pod.remove(&self.pod);
            }
        }
    }
}

impl From<LookupError> for Status {
    fn from(e: LookupError) -> Status {
        match e {
            LookupError::NoPod { .. } => Status::not_found(e.to_string()),
            LookupError::Ambiguous { .. } | LookupError::NoContainer { .. } => {
                Status::invalid_argument(e.to_string())
            }
        }
    }
}

/// Sends `data` as log chunks; false once the client has gone.
async fn send_chunks(tx: &mpsc::Sender<Result<LogsChunk, Status>>, data: &[u8]) -> bool {
    for chunk in data.chunks(CHUNK) {
        let message = LogsChunk {
            data: chunk.to_vec(),
        };
        if tx.send(Ok(message)).await.is_err() {
            return false;
        }
    }
    true
}

/// Forwards one of an exec'd command's output pipes until it closes (or the client goes).
async fn pump_output(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    tx: mpsc::Sender<Result<ExecResponse, Status>>,
    wrap: impl Fn(Vec<u8>) -> ExecResponse,
) {
    let mut buf = vec![0u8; CHUNK];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 || tx.send(Ok(wrap(buf[..n].to_vec()))).await.is_err() {
            break;
        }
    }
}

/// Holds back a first line of output that starts as runc's own start failure does, so it
/// is sent only if the command did start (else `ExecResponse.error` says it in kubectl's
/// words). At most a line of [`CHUNK`] bytes is held; anything past it sends it on at once.
struct StartFailureFilter {
    held: Vec<u8>,
    holding: bool,
}

impl StartFailureFilter {
    fn new(may_fail_to_start: bool) -> StartFailureFilter {
        StartFailureFilter {
            held: Vec::new(),
            holding: may_fail_to_start,
        }
    }

    /// What of `data` (and of what was held) to send on now.
    fn feed(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if !self.holding {
            return Some(data.to_vec());
        }
        self.held.extend_from_slice(data);
        let held = &self.held;
        let prefix = START_FAILURE_PREFIX.len().min(held.len());
        let one_line = held
            .iter()
            .position(|b| *b == b'\n')
            .is_none_or(|end| end + 1 == held.len());
        if held[..prefix] == START_FAILURE_PREFIX[..prefix] && one_line && held.len() <= CHUNK {
            return None;
        }
        self.holding = false;
        Some(std::mem::take(&mut self.held))
    }

    /// What is still held at end of file.
    fn held(self) -> Vec<u8> {
        self.held
    }
}

/// Sends an exec's stderr on like [`pump_output`], except what [`StartFailureFilter`]
/// holds back, which is returned at end of file.
async fn pump_stderr(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    tx: mpsc::Sender<Result<ExecResponse, Status>>,
    may_fail_to_start: bool,
) -> Vec<u8> {
    let mut filter = StartFailureFilter::new(may_fail_to_start);
    let mut buf = vec![0u8; CHUNK];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let Some(data) = filter.feed(&buf[..n]) else {
            continue;
        };
        let message = ExecResponse {
            stderr: data,
            ..ExecResponse::default()
        };
        if tx.send(Ok(message)).await.is_err() {
            break;
        }
    }
    filter.held()
}

/// How long a tty exec's output is still read after its command exited: what it wrote
/// last is in the pty, and a background job it left may hold the pty open for good.
const TTY_DRAIN: Duration = Duration::from_secs(1);

/// A terminal size from the API: each side at most 65535 cells, as in the kernel's winsize.
fn terminal_size(
    size: Option<skiff_api::proto::TerminalSize>,
    field: &str,
) -> Result<TerminalSize, Status> {
    let size = size.unwrap_or_default();
    let side = |value: u32, name: &str| {
        u16::try_from(value).map_err(|_| {
            Status::invalid_argument(format!(
                "{field}.{name}: Invalid value: {value}: must be at most 65535"
            ))
        })
    };
    Ok(TerminalSize {
        width: side(size.width, "width")?,
        height: side(size.height, "height")?,
    })
}

/// The exit code of a finished exec's relay or command, as a shell reports it.
fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    match status {
        Ok(status) => status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }),
        Err(_) => 126,
    }
}

/// The last message of an exec: its exit code, or why it never started (then what the
/// output filter held back is runc's own line, dropped).
async fn send_exit(
    tx: &mpsc::Sender<Result<ExecResponse, Status>>,
    process: &ExecProcess,
    code: i32,
    held: Vec<u8>,
    wrap: impl Fn(Vec<u8>) -> ExecResponse,
) {
    let last = match process.start_failure(code) {
        Some(error) => ExecResponse {
            exit_code: Some(126),
            error,
            ..ExecResponse::default()
        },
        None => {
            if !held.is_empty() {
                let _ = tx.send(Ok(wrap(held))).await;
            }
            ExecResponse {
                exit_code: Some(code),
                ..ExecResponse::default()
            }
        }
    };
    let _ = tx.send(Ok(last)).await;
}

/// Runs a tty exec to its end: the pty's output as stdout (a terminal has no stderr),
/// window changes passed on to a relay as they come, the exit code last. Returns early, killing the
/// command (dropping `process`), when the client goes.
async fn pump_tty(
    mut process: ExecProcess,
    pty: Arc<Pty>,
    mut resizes: mpsc::Receiver<()>,
    tx: mpsc::Sender<Result<ExecResponse, Status>>,
) {
    let stdout = |data: Vec<u8>| ExecResponse {
        stdout: data,
        ..ExecResponse::default()
    };
    let mut filter = StartFailureFilter::new(process.start_log.is_some());
    let mut buf = vec![0u8; CHUNK];
    let mut exited = None;
    let mut drain_until = tokio::time::Instant::now();
    loop {
        tokio::select! {
            read = pty.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(data) = filter.feed(&buf[..n])
                        && tx.send(Ok(stdout(data))).await.is_err()
                    {
                        return;
                    }
                }
            },
            Some(()) = resizes.recv() => process.window_changed(),
            status = process.child.wait(), if exited.is_none() => {
                exited = Some(exit_code(status));
                drain_until = tokio::time::Instant::now() + TTY_DRAIN;
            }
            _ = tokio::time::sleep_until(drain_until), if exited.is_some() => break,
            _ = tx.closed() => return,
        }
    }
    let code = match exited {
        Some(code) => code,
        None => tokio::select! {
            status = process.child.wait() => exit_code(status),
            _ = tx.closed() => return,
        },
    };
    send_exit(&tx, &process, code, filter.held(), stdout).await;
}

fn channel<T: Send + 'static>() -> (mpsc::Sender<Result<T, Status>>, BoxStream<T>) {
    let (tx, rx) = mpsc::channel(16);
    (tx, Box::pin(ReceiverStream::new(rx)))
}

/// The time from which `logs` returns lines (kubectl's --since / --since-time), written as
/// the log writes times; None for the whole log.
fn log_cutoff(request: &LogsRequest) -> Result<Option<String>, Status> {
    let format =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    if request.since_seconds > 0 {
        let ago =
            chrono::Duration::try_seconds(request.since_seconds).unwrap_or(chrono::Duration::MAX);
        let from = chrono::Utc::now()
            .checked_sub_signed(ago)
            .unwrap_or_default();
        return Ok(Some(format(from)));
    }
    if request.since_time.is_empty() {
        return Ok(None);
    }
    let from = chrono::DateTime::parse_from_rfc3339(&request.since_time).map_err(|e| {
        Status::invalid_argument(format!(
            "since_time: {:?} is not an RFC 3339 time: {e}",
            request.since_time
        ))
    })?;
    Ok(Some(format(from.to_utc())))
}

impl<R: Runtime> AgentService<R> {
    fn log_path(&self, request: &LogsRequest) -> Result<std::path::PathBuf, Status> {
        let (_, name, entry) =
            self.pod_index
                .container(&request.namespace, &request.pod, &request.container)?;
        let index = if request.previous {
            if entry.current.is_some() {
                entry.logs.len().checked_sub(2)
            } else {
                // Exited and not restarted yet: the latest attempt is the previous one.
                entry.logs.len().checked_sub(1)
            }
        } else {
            entry.logs.len().checked_sub(1)
        };
        index
            .and_then(|i| entry.logs.get(i).cloned())
            .ok_or_else(|| {
                Status::not_found(if request.previous {
                    format!(
                        "previous terminated container \"{name}\" in pod \"{}\" not found",
                        request.pod
                    )
                } else {
                    format!(
                        "container \"{name}\" in pod \"{}\" has not started yet",
                        request.pod
                    )
                })
            })
    }
}

#[tonic::async_trait]
impl<R: Runtime> Agent for AgentService<R> {
    type LogsStream = BoxStream<LogsChunk>;
    type ExecStream = BoxStream<ExecResponse>;
    type PortForwardStream = BoxStream<PortForwardResponse>;
    type ExportImageStream = crate::image_service::ExportStream;

    async fn logs(
        &self,
        request: Request<LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let request = request.into_inner();
        let path = self.log_path(&request)?;
        let tail = usize::try_from(request.tail_lines).ok();
        // Follow from the end of what is read now (lines written in between may repeat).
        let mut follower = Follower::from_end(&path);
        let since = log_cutoff(&request)?;
        let existing = logs::read_since(&path, tail, request.timestamps, since.as_deref())
            .map_err(|e| Status::internal(format!("reading {}: {e}", path.display())))?;
        let (tx, stream) = channel();
        let pod_index = self.pod_index.clone();
        tokio::spawn(async move {
            if !send_chunks(&tx, &existing).await {
                return;
            }
            if !request.follow {
                return;
            }
            loop {
                let fresh = match follower.poll(request.timestamps) {
                    Ok(data) => data,
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                };
                if !send_chunks(&tx, &fresh).await {
                    return;
                }
                // Following ends with the container instance, as kubectl's does.
                let running = pod_index
                    .container(&request.namespace, &request.pod, &request.container)
                    .is_ok_and(|(_, _, c)| c.current.is_some() && c.logs.last() == Some(&path));
                if !running && fresh.is_empty() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn exec(
        &self,
        request: Request<Streaming<ExecRequest>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let mut input = request.into_inner();
        let start = input
            .message()
            .await?
            .and_then(|m| m.start)
            .ok_or_else(|| {
                Status::invalid_argument(
                    "the first exec message must name the pod, container and command",
                )
            })?;
        if start.command.is_empty() {
            return Err(Status::invalid_argument("command: Required value"));
        }
        let (_, name, entry) =
            self.pod_index
                .container(&start.namespace, &start.pod, &start.container)?;
        let session = self.exec_sessions.open(&start.namespace, &start.pod)?;
        let container_id = entry.current.ok_or_else(|| {
            Status::failed_precondition(format!(
                "container {name} is not running in pod {}",
                start.pod
            ))
        })?;
        if start.tty {
            let size = terminal_size(start.size, "size")?;
            let mut process = self
                .runtime
                .exec_tty(&container_id, &start.command, size)
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            let pty = Arc::new(
                process
                    .tty
                    .take()
                    .ok_or_else(|| Status::internal("exec: the runtime gave no pty"))?,
            );
            let (tx, stream) = channel();
            // One pending notice is enough: the relay reads the size when it gets it.
            let (resize_tx, resizes) = mpsc::channel(1);
            let input_pty = pty.clone();
            let with_stdin = start.stdin;
            tokio::spawn(async move {
                // A terminal has no end of file to send: closing stdin only stops the input.
                let mut stdin_open = with_stdin;
                while let Some(Ok(message)) = input.next().await {
                    // Set here, before the input that follows it is written.
                    if let Some(Ok(size)) = message.resize.map(|s| terminal_size(Some(s), "resize"))
                        && input_pty.resize(size).is_ok()
                    {
                        let _ = resize_tx.try_send(());
                    }
                    if stdin_open
                        && !message.stdin.is_empty()
                        && input_pty.write_all(&message.stdin).await.is_err()
                    {
                        stdin_open = false;
                    }
                    if message.close_stdin {
                        stdin_open = false;
                    }
                }
            });
            tokio::spawn(async move {
                let _session = session;
                pump_tty(process, pty, resizes, tx).await;
            });
            return Ok(Response::new(stream));
        }
        let mut process = self
            .runtime
            .exec(&container_id, &start.command)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut stdin = process.child.stdin.take();
        if !start.stdin {
            stdin = None;
        }
        let stdout = process
            .child
            .stdout
            .take()
            .ok_or_else(|| Status::internal("exec: no stdout pipe"))?;
        let stderr = process
            .child
            .stderr
            .take()
            .ok_or_else(|| Status::internal("exec: no stderr pipe"))?;
        let (tx, stream) = channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = input.next().await {
                let Some(pipe) = stdin.as_mut() else { break };
                if !message.stdin.is_empty() && pipe.write_all(&message.stdin).await.is_err() {
                    break;
                }
                if message.close_stdin {
                    break;
                }
            }
            // Dropping stdin closes it: the command sees end of file.
        });
        tokio::spawn(async move {
            let _session = session;
            let out = pump_output(stdout, tx.clone(), |data| ExecResponse {
                stdout: data,
                ..ExecResponse::default()
            });
            let err = pump_stderr(stderr, tx.clone(), process.start_log.is_some());
            let finished = async {
                let (_, held) = tokio::join!(out, err);
                (held, process.child.wait().await)
            };
            let (held, status) = tokio::select! {
                finished = finished => finished,
                // The client went away (its stream was dropped): a silent command would
                // never notice, so it is killed now (dropping `process` kills it).
                _ = tx.closed() => return,
            };
            // runc's line on stderr says the same as `error`, in a log's words: dropped.
            send_exit(&tx, &process, exit_code(status), held, |data| {
                ExecResponse {
                    stderr: data,
                    ..ExecResponse::default()
                }
            })
            .await;
        });
        Ok(Response::new(stream))
    }

    async fn port_forward(
        &self,
        request: Request<Streaming<PortForwardRequest>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        let mut input = request.into_inner();
        let first = input.message().await?.ok_or_else(|| {
            Status::invalid_argument("the first message must name the pod and port")
        })?;
        let port = u16::try_from(first.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                Status::invalid_argument(format!("port: Invalid value: {}", first.port))
            })?;
        let pod = self.pod_index.pod(&first.namespace, &first.pod)?;
        let stream = self
            .runtime
            .connect(&pod.sandbox_id, port, Duration::from_secs(5))
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "cannot connect to port {port} in pod {}: {e}",
                    first.pod
                ))
            })?;
        let (mut reader, mut writer) = stream.into_split();
        let (tx, out) = channel();
        tokio::spawn(async move {
            if !first.data.is_empty() && writer.write_all(&first.data).await.is_err() {
                return;
            }
            while let Some(Ok(message)) = input.next().await {
                if writer.write_all(&message.data).await.is_err() {
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
        tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let message = PortForwardResponse {
                            data: buf[..n].to_vec(),
                        };
                        if tx.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(out))
    }

    async fn import_image(
        &self,
        request: Request<Streaming<ImportImageRequest>>,
    ) -> Result<Response<ImportImageResponse>, Status> {
        Ok(Response::new(
            self.images.import(request.into_inner()).await?,
        ))
    }

    async fn list_images(
        &self,
        _request: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        Ok(Response::new(self.images.list().await?))
    }

    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(self.images.remove(request.reference).await?))
    }

    async fn export_image(
        &self,
        request: Request<skiff_api::proto::ExportImageRequest>,
    ) -> Result<Response<Self::ExportImageStream>, Status> {
        let request = request.into_inner();
        Ok(Response::new(self.images.export(request.reference).await?))
    }

    async fn usage(
        &self,
        _request: Request<skiff_api::proto::UsageRequest>,
    ) -> Result<Response<skiff_api::proto::UsageResponse>, Status> {
        let sample = self.usage.latest();
        let pods = sample
            .pods
            .iter()
            .map(|((namespace, name), reading)| skiff_api::proto::PodUsage {
                namespace: namespace.clone(),
                name: name.clone(),
                cpu_millicores: reading.cpu_millicores,
                memory_bytes: reading.memory_bytes,
            })
            .collect();
        Ok(Response::new(skiff_api::proto::UsageResponse {
            cpu_millicores: sample.node.cpu_millicores,
            memory_bytes: sample.node.memory_bytes,
            cpu_capacity_millicores: sample.cpu_capacity_millicores,
            memory_capacity_bytes: sample.memory_capacity_bytes,
            pods,
            window_ms: u64::try_from(sample.window.as_millis()).unwrap_or(u64::MAX),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent's service on the fake runtime, one running container `main` in pod
    /// `default/shell`, served on a loopback port; the client and the container's id.
    async fn fake_agent() -> (
        skiff_api::proto::agent_client::AgentClient<tonic::transport::Channel>,
        Arc<crate::runtime::fake::FakeRuntime>,
        String,
        tempfile::TempDir,
    ) {
        use crate::runtime::{ContainerConfig, SandboxConfig};
        let runtime = crate::runtime::fake::FakeRuntime::new();
        let sandbox = runtime
            .create_sandbox(&SandboxConfig {
                pod_uid: "uid-1".into(),
                namespace: "default".into(),
                name: "shell".into(),
                hostname: "shell".into(),
                host_network: false,
            })
            .await
            .unwrap();
        let container = runtime
            .create_container(
                &sandbox.id,
                &ContainerConfig {
                    name: "main".into(),
                    attempt: 0,
                    image: "busybox".into(),
                    argv: vec!["sh".into()],
                    env: Default::default(),
                    working_dir: None,
                    mounts: Vec::new(),
                },
            )
            .await
            .unwrap();
        runtime.start_container(&container.id).await.unwrap();
        let pod_index = Arc::new(PodIndex::default());
        pod_index.update("default", "shell", |pod| {
            pod.sandbox_id = sandbox.id.clone();
            pod.container_order = vec!["main".into()];
            pod.containers.insert(
                "main".into(),
                crate::pod_index::ContainerEntry {
                    current: Some(container.id.clone()),
                    logs: Vec::new(),
                },
            );
        });
        let dir = tempfile::tempdir().unwrap();
        let service = skiff_api::proto::agent_server::AgentServer::new(AgentService {
            runtime: runtime.clone(),
            pod_index,
            usage: Arc::default(),
            images: ImageService::new(Err("no image store in this test".into()), dir.path()),
            exec_sessions: Arc::new(ExecSessions::new(ExecLimits::default())),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming),
        );
        let client =
            skiff_api::proto::agent_client::AgentClient::connect(format!("http://{address}"))
                .await
                .unwrap();
        (client, runtime, container.id, dir)
    }

    /// Reads the exec's responses until `want` has appeared in its stdout (or it ended).
    async fn stdout_until(
        output: &mut tonic::Streaming<ExecResponse>,
        seen: &mut String,
        want: &str,
    ) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !seen.contains(want) {
            let message = tokio::time::timeout_at(deadline, output.message())
                .await
                .unwrap_or_else(|_| panic!("no {want:?} in {seen:?} within 10 s"))
                .unwrap()?;
            assert!(message.stderr.is_empty(), "a terminal has no stderr");
            seen.push_str(&String::from_utf8_lossy(&message.stdout));
            if message.exit_code.is_some() {
                return message.exit_code;
            }
        }
        None
    }

    #[tokio::test]
    async fn a_tty_exec_runs_on_a_terminal_of_the_asked_size_that_follows_resizes() {
        let (mut client, runtime, container_id, _dir) = fake_agent().await;
        let (requests, receiver) = mpsc::channel(8);
        let script = "tty; stty size; read line; stty size; echo \"got $line\" 1>&2; exit 7";
        let argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        requests
            .send(ExecRequest {
                start: Some(skiff_api::proto::ExecStart {
                    namespace: "default".into(),
                    pod: "shell".into(),
                    command: argv.clone(),
                    stdin: true,
                    tty: true,
                    size: Some(skiff_api::proto::TerminalSize {
                        width: 91,
                        height: 17,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut output = client
            .exec(ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        let mut seen = String::new();
        assert_eq!(stdout_until(&mut output, &mut seen, "17 91").await, None);
        assert!(seen.contains("/dev/pts/"), "{seen:?}");
        let journal = runtime.calls();
        assert!(
            journal.iter().any(|call| *call
                == crate::runtime::fake::Call::ExecTty {
                    id: container_id.clone(),
                    argv: argv.clone(),
                    size: TerminalSize {
                        width: 91,
                        height: 17
                    },
                }),
            "{journal:?}"
        );
        // The resize is applied before the input after it, as both travel in order.
        requests
            .send(ExecRequest {
                resize: Some(skiff_api::proto::TerminalSize {
                    width: 120,
                    height: 40,
                }),
                stdin: b"hello\n".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        let code = stdout_until(&mut output, &mut seen, "got hello").await;
        assert!(seen.contains("40 120"), "{seen:?}");
        let code = match code {
            Some(code) => code,
            None => loop {
                let message = output.message().await.unwrap().expect("an exit code");
                if let Some(code) = message.exit_code {
                    break code;
                }
            },
        };
        assert_eq!(code, 7);
    }

    #[tokio::test]
    async fn a_terminal_size_over_what_a_terminal_holds_is_refused_naming_the_field() {
        let (mut client, _runtime, _id, _dir) = fake_agent().await;
        let (requests, receiver) = mpsc::channel(1);
        requests
            .send(ExecRequest {
                start: Some(skiff_api::proto::ExecStart {
                    namespace: "default".into(),
                    pod: "shell".into(),
                    command: vec!["sh".into()],
                    tty: true,
                    size: Some(skiff_api::proto::TerminalSize {
                        width: 70_000,
                        height: 24,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        let refused = client
            .exec(ReceiverStream::new(receiver))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            refused.message(),
            "size.width: Invalid value: 70000: must be at most 65535"
        );
    }

    #[test]
    fn exec_sessions_are_capped_per_pod_and_per_node_until_they_close() {
        let sessions = Arc::new(ExecSessions::new(ExecLimits {
            per_pod: 2,
            per_node: 3,
        }));
        let a1 = sessions.open("default", "a").unwrap();
        let _a2 = sessions.open("default", "a").unwrap();
        let refused = sessions.open("default", "a").err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            refused.message(),
            "too many exec sessions in pod default/a: 2 open, the limit is 2 \
             (--max-exec-sessions-per-pod)"
        );
        let _b1 = sessions.open("other", "a").unwrap();
        let refused = sessions.open("default", "b").err().unwrap();
        assert_eq!(
            refused.message(),
            "too many exec sessions on this node: 3 open, the limit is 3 (--max-exec-sessions)"
        );
        drop(a1);
        let _b2 = sessions.open("default", "b").unwrap();
    }
}
