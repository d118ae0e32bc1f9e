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
use crate::runtime::{Runtime, START_FAILURE_PREFIX};

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

/// Sends an exec's stderr on like [`pump_output`], except a first line that starts as
/// runc's own start failure does: held back and returned at end of file, so the caller
/// sends it only if the command did start. At most a line of [`CHUNK`] bytes is held;
/// anything past it sends it on at once.
async fn pump_stderr(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    tx: mpsc::Sender<Result<ExecResponse, Status>>,
    may_fail_to_start: bool,
) -> Vec<u8> {
    let mut held = Vec::new();
    let mut holding = may_fail_to_start;
    let mut buf = vec![0u8; CHUNK];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let data = if holding {
            held.extend_from_slice(&buf[..n]);
            let prefix = START_FAILURE_PREFIX.len().min(held.len());
            let one_line = held
                .iter()
                .position(|b| *b == b'\n')
                .is_none_or(|end| end + 1 == held.len());
            if held[..prefix] == START_FAILURE_PREFIX[..prefix] && one_line && held.len() <= CHUNK {
                continue;
            }
            holding = false;
            std::mem::take(&mut held)
        } else {
            buf[..n].to_vec()
        };
        let message = ExecResponse {
            stderr: data,
            ..ExecResponse::default()
        };
        if tx.send(Ok(message)).await.is_err() {
            break;
        }
    }
    held
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
            let code = match status {
                Ok(status) => status.code().unwrap_or_else(|| {
                    128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
                }),
                Err(_) => 126,
            };
            let last = match process.start_failure(code) {
                // runc's line on stderr says the same as `error`, in a log's words: dropped.
                Some(error) => ExecResponse {
                    exit_code: Some(126),
                    error,
                    ..ExecResponse::default()
                },
                None => {
                    if !held.is_empty() {
                        let _ = tx
                            .send(Ok(ExecResponse {
                                stderr: held,
                                ..ExecResponse::default()
                            }))
                            .await;
                    }
                    ExecResponse {
                        exit_code: Some(code),
                        ..ExecResponse::default()
                    }
                }
            };
            let _ = tx.send(Ok(last)).await;
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
