//! `pods/exec` over SPDY/3.1 (`X-Stream-Protocol-Version: v4.channel.k8s.io`): the
//! transport kubectl falls back to when its WebSocket attempt fails, and the only one it
//! uses with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`. The exec itself is
//! [`super::stream`]'s, the one the WebSocket transport carries.
//!
//! The client opens one stream per part, each named by its `streamType` header: `error`
//! (always; this side writes the v4 Status there when the command ends, then finishes
//! it), `stdin`, `stdout`, `stderr` (each if the query asked for it; never stderr on a
//! terminal) and `resize` (on a terminal: a series of `{"Width":…,"Height":…}` JSON
//! values). Every expected stream must be open within [`STREAM_TIMEOUT`], as on a kubelet.

use std::time::Duration;

use axum::body::Bytes;
use bytes::BytesMut;
use serde::de::IgnoredAny;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::spdy::{self, Stream, StreamReader, rst};
use super::stream::{
    ClientMessage, ExecInput, ExecOptions, ExecSession, MAX_RESIZE_BYTES, Output, failure_status,
};

/// The one remote-command version served over SPDY: v4, whose error stream carries a
/// Status with the exit code.
pub const PROTOCOL: &str = "v4.channel.k8s.io";
/// How long the client has to open every stream the query asked for.
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the connection is kept after the status is written, for the client to read
/// it and hang up itself.
const LINGER: Duration = Duration::from_secs(5);

/// Serves one exec on an upgraded connection until the command's status is written (and
/// the client hangs up, or [`LINGER`] passes) or the client goes; the command is killed
/// by the agent when the session is dropped before it ends.
pub async fn serve<S>(io: S, session: ExecSession)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (streams_tx, streams_rx) = mpsc::channel(8);
    let connection = spdy::serve(read, write, streams_tx);
    tokio::pin!(connection);
    tokio::select! {
        result = &mut connection => {
            if let Err(e) = result {
                tracing::debug!("kube api exec over spdy: {e}");
            }
            return;
        }
        () = drive(streams_rx, session) => {}
    }
    let _ = tokio::time::timeout(LINGER, connection).await;
}

/// The streams of one exec, as the client opened them.
#[derive(Default)]
struct Streams {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

impl Streams {
    /// Whether every stream `options` call for is open.
    fn complete(&self, options: &ExecOptions) -> bool {
        self.error.is_some()
            && (!options.stdin || self.stdin.is_some())
            && (!options.stdout || self.stdout.is_some())
            && (!options.stderr || self.stderr.is_some())
            && (!options.tty || self.resize.is_some())
    }

    /// Where a stream of `kind` goes, if `options` call for one.
    fn slot(&mut self, kind: Option<&str>, options: &ExecOptions) -> Option<&mut Option<Stream>> {
        match kind? {
            "error" => Some(&mut self.error),
            "stdin" if options.stdin => Some(&mut self.stdin),
            "stdout" if options.stdout => Some(&mut self.stdout),
            "stderr" if options.stderr => Some(&mut self.stderr),
            "resize" if options.tty => Some(&mut self.resize),
            _ => None,
        }
    }
}

/// Accepts the streams the client opens until every expected one is there; streams of a
/// type not asked for, or a second of one type, are reset.
async fn collect(
    streams: &mut mpsc::Receiver<Stream>,
    options: &ExecOptions,
) -> Result<Streams, (Streams, String)> {
    let deadline = tokio::time::Instant::now() + STREAM_TIMEOUT;
    let mut got = Streams::default();
    while !got.complete(options) {
        let stream = match tokio::time::timeout_at(deadline, streams.recv()).await {
            Ok(Some(stream)) => stream,
            Ok(None) => return Err((got, "the connection ended".into())),
            Err(_) => {
                return Err((got, "timed out waiting for client to create streams".into()));
            }
        };
        let kind = stream.headers.get("streamType").map(str::to_string);
        let Some(slot) = got.slot(kind.as_deref(), options) else {
            tracing::debug!("kube api exec over spdy: a stream of type {kind:?} refused");
            stream.writer.reset(rst::PROTOCOL_ERROR).await;
            continue;
        };
        if slot.is_some() {
            tracing::debug!("kube api exec over spdy: a second {kind:?} stream refused");
            stream.writer.reset(rst::PROTOCOL_ERROR).await;
            continue;
        }
        if stream.writer.reply().await.is_err() {
            return Err((got, "the connection ended".into()));
        }
        *slot = Some(stream);
    }
    Ok(got)
}

/// Runs the exec over its streams once they are all open.
async fn drive(mut incoming: mpsc::Receiver<Stream>, session: ExecSession) {
    let ExecSession {
        options,
        input,
        mut output,
    } = session;
    let streams = match collect(&mut incoming, &options).await {
        Ok(streams) => streams,
        Err((got, why)) => {
            if let Some(error) = got.error {
                let status = failure_status(&why);
                let _ = error.writer.write(status_bytes(&status)).await;
                error.writer.finish().await;
            }
            return;
        }
    };
    // Streams opened after these are refused, so the session never stalls on them.
    let refuse = async {
        while let Some(stream) = incoming.recv().await {
            stream.writer.reset(rst::REFUSED_STREAM).await;
        }
        std::future::pending::<()>().await
    };
    let writer = |stream: &Option<Stream>| stream.as_ref().map(|s| s.writer.clone());
    let (stdout, stderr) = (writer(&streams.stdout), writer(&streams.stderr));
    let error = streams.error.expect("collect waits for the error stream");
    let reading = async {
        tokio::join!(
            read_stdin(streams.stdin.map(|s| s.reader), &input),
            read_resizes(streams.resize.map(|s| s.reader), &input),
        );
        // The input stays open (dropping it would end the agent's side) until the output
        // is done.
        std::future::pending::<()>().await
    };
    let writing = async {
        while let Some(out) = output.next().await {
            let (stream, data) = match out {
                Output::Stdout(data) => (&stdout, data),
                Output::Stderr(data) => (&stderr, data),
                Output::Done(status) => {
                    // The client reads stdout and stderr to their ends before the status.
                    for stream in [&stdout, &stderr].into_iter().flatten() {
                        stream.finish().await;
                    }
                    let _ = error.writer.write(status_bytes(&status)).await;
                    error.writer.finish().await;
                    return;
                }
            };
            if let Some(stream) = stream
                && stream.write(Bytes::from(data)).await.is_err()
            {
                return;
            }
        }
    };
    tokio::select! {
        () = writing => {}
        () = reading => {}
        () = refuse => {}
    }
}

fn status_bytes(status: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(status).expect("a JSON value encodes"))
}

/// The stdin stream's bytes to the command; its end (the client's FIN) closes stdin.
async fn read_stdin(reader: Option<StreamReader>, input: &ExecInput) {
    let Some(mut reader) = reader else { return };
    while let Some(data) = reader.recv().await {
        input.take(ClientMessage::Stdin(&data)).await;
    }
    input.take(ClientMessage::CloseStdin).await;
}

/// The resize stream's sizes to the terminal. A malformed one ends the stream's reading,
/// as on a kubelet (the terminal keeps its size).
async fn read_resizes(reader: Option<StreamReader>, input: &ExecInput) {
    let Some(mut reader) = reader else { return };
    let mut buf = BytesMut::new();
    while let Some(data) = reader.recv().await {
        buf.extend_from_slice(&data);
        match whole_values(&mut buf) {
            Ok(values) => {
                for value in values {
                    input.take(ClientMessage::Resize(&value)).await;
                }
            }
            Err(why) => {
                tracing::debug!("kube api exec over spdy: the resize stream: {why}");
                return;
            }
        }
    }
}

/// Splits the whole JSON values off the front of `buf` (a resize stream is a series of
/// them, as Go's json.Encoder writes them), leaving a partial last one for more bytes.
fn whole_values(buf: &mut BytesMut) -> Result<Vec<Bytes>, String> {
    let mut values = Vec::new();
    let mut used = 0;
    let mut parsed = serde_json::Deserializer::from_slice(buf).into_iter::<IgnoredAny>();
    loop {
        match parsed.next() {
            Some(Ok(_)) => {
                let end = parsed.byte_offset();
                values.push(Bytes::copy_from_slice(&buf[used..end]));
                used = end;
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => return Err(format!("not JSON: {e}")),
            None => {
                used = buf.len();
                break;
            }
        }
    }
    let _ = buf.split_to(used);
    if buf.len() > MAX_RESIZE_BYTES {
        return Err(format!(
            "a resize message longer than {MAX_RESIZE_BYTES} bytes"
        ));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resize_stream_is_split_into_whole_json_values_keeping_a_partial_one() {
        let mut buf = BytesMut::from(&b"{\"Width\":80,\"Height\":24}\n{\"Width\":100,\"Hei"[..]);
        let values = whole_values(&mut buf).unwrap();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].trim_ascii(), b"{\"Width\":80,\"Height\":24}");
        assert_eq!(buf.trim_ascii(), b"{\"Width\":100,\"Hei");
        buf.extend_from_slice(b"ght\":30}\n");
        let values = whole_values(&mut buf).unwrap();
        assert_eq!(values[0].trim_ascii(), b"{\"Width\":100,\"Height\":30}");
        assert!(buf.trim_ascii().is_empty());
    }

    #[test]
    fn a_resize_stream_of_garbage_or_an_endless_value_is_refused() {
        let mut garbage = BytesMut::from(&b"{\"Width\":80}\n}{"[..]);
        assert!(whole_values(&mut garbage).is_err());
        let mut endless = BytesMut::from(&b"{\"Width\":\""[..]);
        endless.extend_from_slice(&[b'9'; MAX_RESIZE_BYTES + 1]);
        assert!(whole_values(&mut endless).is_err());
    }

    #[test]
    fn the_streams_expected_are_the_ones_the_query_asked_for() {
        let tty = ExecOptions {
            command: vec!["sh".into()],
            stdin: true,
            stdout: true,
            tty: true,
            ..ExecOptions::default()
        };
        let mut streams = Streams::default();
        assert!(streams.slot(Some("error"), &tty).is_some());
        assert!(streams.slot(Some("resize"), &tty).is_some());
        assert!(streams.slot(Some("stderr"), &tty).is_none());
        assert!(streams.slot(Some("data"), &tty).is_none());
        assert!(streams.slot(None, &tty).is_none());
        let plain = ExecOptions {
            tty: false,
            stderr: true,
            ..tty
        };
        assert!(streams.slot(Some("resize"), &plain).is_none());
        assert!(streams.slot(Some("stderr"), &plain).is_some());
        assert!(!streams.complete(&plain));
    }
}
