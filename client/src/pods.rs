//! Into running pods: logs, exec and port-forward, through any control-plane endpoint
//! (which passes the call on to the agent of the pod's node).

use futures::{Stream, StreamExt};
use skiff_api::proto::agent_client::AgentClient;
use skiff_api::proto::{ExecRequest, ExecStart, LogsRequest, PortForwardRequest, TerminalSize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Client;
use crate::error::Error;

/// Which log, and how (`kubectl logs` flags).
#[derive(Debug, Clone, Default)]
pub struct LogParams {
    /// Needed when the pod has several containers.
    pub container: Option<String>,
    pub follow: bool,
    pub tail_lines: Option<i64>,
    pub previous: bool,
    pub timestamps: bool,
    /// Only lines written in the last this many seconds (kubectl's --since).
    pub since_seconds: Option<i64>,
    /// Only lines written at or after this RFC 3339 time (kubectl's --since-time).
    pub since_time: Option<String>,
}

/// What a finished exec produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
    /// Why the command could not be started (then `exit_code` is 126).
    pub start_failure: Option<String>,
}

/// How an exec runs its command (kubectl exec's -i and -t).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Keep the command's stdin open for [`ExecSession::write_stdin`].
    pub stdin: bool,
    /// Run it on a terminal of this many (columns, rows): its output all comes as stdout.
    pub tty: Option<(u16, u16)>,
}

/// A running exec: send stdin, read output until the exit code arrives.
pub struct ExecSession {
    stdin: Option<mpsc::Sender<ExecRequest>>,
    /// A tty session's window changes travel on the request stream too, also after stdin
    /// is closed.
    resize: Option<mpsc::Sender<ExecRequest>>,
    output: tonic::Streaming<skiff_api::proto::ExecResponse>,
}

/// One piece of an exec's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    /// The command could not be started (not found, not executable): why, in the container
    /// runtime's words. Its exit code is 126, as a shell's for a command it cannot run.
    NotStarted(String),
}

impl ExecSession {
    /// Sends bytes to the command's stdin.
    pub async fn write_stdin(&self, data: Vec<u8>) -> Result<(), Error> {
        let sender = self
            .stdin
            .as_ref()
            .ok_or_else(|| Error::Invalid("stdin is closed".into()))?;
        sender
            .send(ExecRequest {
                stdin: data,
                ..ExecRequest::default()
            })
            .await
            .map_err(|_| Error::Unavailable("the exec stream has ended".into()))
    }

    /// Tells a tty session's terminal its new window size (columns, rows); nothing for a
    /// session without a tty.
    pub async fn resize(&self, width: u16, height: u16) -> Result<(), Error> {
        let Some(sender) = self.resize.as_ref() else {
            return Ok(());
        };
        sender
            .send(ExecRequest {
                resize: Some(TerminalSize {
                    width: width.into(),
                    height: height.into(),
                }),
                ..ExecRequest::default()
            })
            .await
            .map_err(|_| Error::Unavailable("the exec stream has ended".into()))
    }

    /// Ends the command's input.
    pub async fn close_stdin(&mut self) {
        if let Some(sender) = self.stdin.take() {
            let _ = sender
                .send(ExecRequest {
                    close_stdin: true,
                    ..ExecRequest::default()
                })
                .await;
        }
    }

    /// The next piece of output; None after the exit code.
    pub async fn next(&mut self) -> Option<Result<ExecEvent, Error>> {
        loop {
            let message = match self.output.message().await {
                Ok(Some(m)) => m,
                Ok(None) => return None,
                Err(status) => return Some(Err(status.into())),
            };
            if !message.stdout.is_empty() {
                return Some(Ok(ExecEvent::Stdout(message.stdout)));
            }
            if !message.stderr.is_empty() {
                return Some(Ok(ExecEvent::Stderr(message.stderr)));
            }
            if !message.error.is_empty() {
                return Some(Ok(ExecEvent::NotStarted(message.error)));
            }
            if let Some(code) = message.exit_code {
                return Some(Ok(ExecEvent::Exit(code)));
            }
        }
    }

    /// Reads everything until the command exits.
    pub async fn collect(mut self) -> Result<ExecOutput, Error> {
        self.close_stdin().await;
        let mut output = ExecOutput::default();
        while let Some(event) = self.next().await {
            match event? {
                ExecEvent::Stdout(d) => output.stdout.extend(d),
                ExecEvent::Stderr(d) => output.stderr.extend(d),
                ExecEvent::Exit(code) => {
                    output.exit_code = code;
                    return Ok(output);
                }
                ExecEvent::NotStarted(error) => {
                    output.exit_code = 126;
                    output.start_failure = Some(error);
                    return Ok(output);
                }
            }
        }
        Err(Error::Unavailable(
            "the exec stream ended without an exit code".into(),
        ))
    }
}

/// A byte stream to a port inside a pod.
pub struct PortForward {
    pub to_pod: mpsc::Sender<Vec<u8>>,
    from_pod: tonic::Streaming<skiff_api::proto::PortForwardResponse>,
}

impl PortForward {
    /// The next bytes from the pod; None when the connection closed.
    pub async fn read(&mut self) -> Option<Result<Vec<u8>, Error>> {
        match self.from_pod.message().await {
            Ok(Some(m)) => Some(Ok(m.data)),
            Ok(None) => None,
            Err(status) => Some(Err(status.into())),
        }
    }
}

impl Client {
    /// A container's log, as a stream of byte chunks (endless with `follow` until the
    /// container stops).
    pub async fn logs(
        &self,
        namespace: &str,
        pod: &str,
        params: &LogParams,
    ) -> Result<impl Stream<Item = Result<Vec<u8>, Error>> + use<>, Error> {
        let request = LogsRequest {
            namespace: namespace.into(),
            pod: pod.into(),
            container: params.container.clone().unwrap_or_default(),
            follow: params.follow,
            tail_lines: params.tail_lines.unwrap_or(-1),
            previous: params.previous,
            timestamps: params.timestamps,
            since_seconds: params.since_seconds.unwrap_or(0),
            since_time: params.since_time.clone().unwrap_or_default(),
        };
        let response = self
            .with_failover(|channel| {
                let request = request.clone();
                async move { AgentClient::new(channel).logs(request).await }
            })
            .await?;
        Ok(response
            .into_inner()
            .map(|chunk| chunk.map(|c| c.data).map_err(Error::from)))
    }

    /// The whole (non-followed) log as text.
    pub async fn logs_text(
        &self,
        namespace: &str,
        pod: &str,
        params: &LogParams,
    ) -> Result<String, Error> {
        let params = LogParams {
            follow: false,
            ..params.clone()
        };
        let mut stream = Box::pin(self.logs(namespace, pod, &params).await?);
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend(chunk?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Starts `command` in a pod's container (`None`: its only container).
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[String],
        stdin: bool,
    ) -> Result<ExecSession, Error> {
        let options = ExecOptions { stdin, tty: None };
        self.exec_with(namespace, pod, container, command, options)
            .await
    }

    /// [`Client::exec`] with a terminal when `options.tty` says so.
    pub async fn exec_with(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[String],
        options: ExecOptions,
    ) -> Result<ExecSession, Error> {
        let start = ExecStart {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.unwrap_or_default().into(),
            command: command.to_vec(),
            stdin: options.stdin,
            tty: options.tty.is_some(),
            size: options.tty.map(|(width, height)| TerminalSize {
                width: width.into(),
                height: height.into(),
            }),
        };
        let (sender, output) = self
            .with_failover(|channel| {
                let (sender, receiver) = mpsc::channel(16);
                let first = ExecRequest {
                    start: Some(start.clone()),
                    ..ExecRequest::default()
                };
                async move {
                    sender
                        .send(first)
                        .await
                        .map_err(|_| tonic::Status::internal("exec request dropped"))?;
                    let response = AgentClient::new(channel)
                        .exec(ReceiverStream::new(receiver))
                        .await?;
                    Ok((sender, response.into_inner()))
                }
            })
            .await?;
        Ok(ExecSession {
            resize: options.tty.map(|_| sender.clone()),
            stdin: Some(sender),
            output,
        })
    }

    /// Runs `command` to completion without input and returns its output and exit code.
    pub async fn exec_output(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[String],
    ) -> Result<ExecOutput, Error> {
        self.exec(namespace, pod, container, command, false)
            .await?
            .collect()
            .await
    }

    /// Opens a byte stream to `port` on the pod's loopback.
    pub async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<PortForward, Error> {
        let (to_pod, mut outgoing) = mpsc::channel::<Vec<u8>>(16);
        let (sender, from_pod) = self
            .with_failover(|channel| {
                let (sender, receiver) = mpsc::channel(16);
                let first = PortForwardRequest {
                    namespace: namespace.into(),
                    pod: pod.into(),
                    port: u32::from(port),
                    data: Vec::new(),
                };
                async move {
                    sender
                        .send(first)
                        .await
                        .map_err(|_| tonic::Status::internal("port-forward request dropped"))?;
                    let response = AgentClient::new(channel)
                        .port_forward(ReceiverStream::new(receiver))
                        .await?;
                    Ok((sender, response.into_inner()))
                }
            })
            .await?;
        tokio::spawn(async move {
            while let Some(data) = outgoing.recv().await {
                let message = PortForwardRequest {
                    data,
                    ..PortForwardRequest::default()
                };
                if sender.send(message).await.is_err() {
                    return;
                }
            }
        });
        Ok(PortForward { to_pod, from_pod })
    }
}
