//! The Prometheus endpoint both daemons serve on `--metrics-listen`: plain HTTP, `GET
//! /metrics` only, 404 for any other path, as etcd's `--listen-metrics-urls` does. A scraper
//! that accepts OpenMetrics (Prometheus does) gets it; anyone else (curl, `promtool check
//! metrics`) gets the classic text format 0.0.4. A hand-rolled HTTP/1.1 responder over tokio: one
//! request per connection and no body to read is all a scraper needs, and it keeps an HTTP
//! framework out of both daemons.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub use prometheus_client;

/// OpenMetrics, for scrapers that accept it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format, for everyone else.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The largest request head read; a scrape's is a few hundred bytes.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request and read the answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once (a scraper needs one).
const MAX_CONNECTIONS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("--metrics-listen: expected HOST:PORT, an empty value or off, got {0:?}")]
    Invalid(String),
    #[error("--metrics-listen: cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

impl PartialEq for ListenError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// The address `--metrics-listen` names, or `None` when metrics are off (empty or `off`).
pub fn parse_listen(text: &str) -> Result<Option<String>, ListenError> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let invalid = || ListenError::Invalid(text.to_string());
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(invalid());
    }
    Ok(Some(text.to_string()))
}

/// The listener for `--metrics-listen` as given (`flag`), or for `default` when it was not.
/// A given address that cannot be bound is an error; the default one, taken (several
/// daemons on one host, as in a test or a local cluster), only costs that daemon its
/// metrics, with a warning.
pub async fn bind(flag: Option<&str>, default: &str) -> Result<Option<TcpListener>, ListenError> {
    let Some(text) = flag else {
        return Ok(TcpListener::bind(default)
            .await
            .inspect_err(|e| tracing::warn!("metrics not served: cannot listen on {default}: {e}"))
            .ok());
    };
    let Some(address) = parse_listen(text)? else {
        return Ok(None);
    };
    TcpListener::bind(&address)
        .await
        .map(Some)
        .map_err(|source| ListenError::Bind { address, source })
}

/// Latency buckets in seconds for every histogram of both daemons: 0.5 ms to 16 s by
/// doubling, etcd's fsync range and kubelet's pod-start range in one.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16)
}

/// Serves `registry` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!("metrics listener: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, answer(stream, &registry)).await;
            drop(slot);
        });
    }
}

/// Reads one request head and writes the answer.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_HEAD_BYTES {
            return respond(&mut stream, "431 Request Header Fields Too Large", "", "").await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let openmetrics = accepts_openmetrics(&head);
    let (status, body) = match route(&head) {
        Route::Metrics { head_only } => {
            let mut text = String::new();
            if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
                ("500 Internal Server Error", String::new())
            } else {
                if !openmetrics {
                    text = classic_text(&text);
                }
                if head_only {
                    // HEAD: the headers a GET would get, with the length of its body.
                    return respond_head(&mut stream, openmetrics, text.len()).await;
                }
                ("200 OK", text)
            }
        }
        Route::NotFound => ("404 Not Found", "404 page not found\n".to_string()),
        Route::NotAllowed => ("405 Method Not Allowed", String::new()),
        Route::Bad => ("400 Bad Request", String::new()),
    };
    let content_type = match (status.starts_with("200"), openmetrics) {
        (true, true) => CONTENT_TYPE,
        (true, false) => TEXT_CONTENT_TYPE,
        (false, _) => "text/plain; charset=utf-8",
    };
    respond(&mut stream, status, content_type, &body).await
}

/// Whether the request's Accept header names OpenMetrics.
fn accepts_openmetrics(head: &[u8]) -> bool {
    String::from_utf8_lossy(head).lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("accept")
                && value.contains("application/openmetrics-text")
        })
    })
}

/// OpenMetrics text as the classic text format: a counter's family is named with its
/// `_total` suffix, and there is no `# EOF` or `# UNIT` line.
fn classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's HELP line waits for its TYPE line, which says whether it is renamed.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').or(Some((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    NotFound,
    NotAllowed,
    Bad,
}

/// Where a request head goes: its request line only matters.
fn route(head: &[u8]) -> Route {
    let Some(line) = head
        .split(|b| *b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
    else {
        return Route::Bad;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Bad;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if path != "/metrics" {
        return Route::NotFound;
    }
    match method {
        "GET" => Route::Metrics { head_only: false },
        "HEAD" => Route::Metrics { head_only: true },
        _ => Route::NotAllowed,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !content_type.is_empty() {
        out.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

async fn respond_head(
    stream: &mut TcpStream,
    openmetrics: bool,
    length: usize,
) -> std::io::Result<()> {
    let content_type = if openmetrics {
        CONTENT_TYPE
    } else {
        TEXT_CONTENT_TYPE
    };
    let out = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    /// One raw HTTP exchange with a server on `address`: the whole answer.
    async fn exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    async fn server() -> (
        std::net::SocketAddr,
        Counter,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register(
            "skiff_test_events",
            "Events seen by the test",
            counter.clone(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, Arc::new(registry), async {
            let _ = stopped.await;
        }));
        (address, counter, stop)
    }

    #[tokio::test]
    async fn get_metrics_answers_the_registry_in_openmetrics_text_to_who_accepts_it() {
        let (address, counter, _stop) = server().await;
        counter.inc_by(7);
        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n";
        let answer = exchange(address, request).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains(CONTENT_TYPE), "{answer}");
        assert!(answer.contains("\nskiff_test_events_total 7\n"), "{answer}");
        assert!(answer.ends_with("# EOF\n"), "{answer}");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn others_get_the_classic_text_format_with_counters_named_total() {
        let (address, counter, _stop) = server().await;
        counter.inc_by(3);
        let answer = exchange(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(answer.contains(TEXT_CONTENT_TYPE), "{answer}");
        let body = answer.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(
            body,
            "# HELP skiff_test_events_total Events seen by the test.\n\
             # TYPE skiff_test_events_total counter\n\
             skiff_test_events_total 3\n"
        );
    }

    #[tokio::test]
    async fn other_paths_get_404_and_other_methods_405() {
        let (address, _, _stop) = server().await;
        let answer = exchange(address, b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
        let answer = exchange(address, b"GET /metricsx HTTP/1.0\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
        let answer = exchange(address, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
        let answer = exchange(address, b"GET /metrics?x=1 HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }

    #[tokio::test]
    async fn garbage_and_oversized_requests_are_refused_and_the_server_keeps_serving() {
        let (address, _, _stop) = server().await;
        let answer = exchange(address, b"\x00\xff\xfe garbage\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        // Exactly the limit, never a blank line: all of it is read before the answer, so
        // the close that follows is orderly.
        let answer = exchange(address, &[b'a'; MAX_HEAD_BYTES]).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        let answer = exchange(address, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }

    #[tokio::test]
    async fn the_server_stops_accepting_once_shutdown_resolves() {
        let (address, _, stop) = server().await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while TcpStream::connect(address).await.is_ok() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the listener closes");
    }

    #[tokio::test]
    async fn a_given_address_that_is_taken_is_an_error_and_a_taken_default_is_skipped() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let error = bind(Some(&address), "127.0.0.1:0").await.unwrap_err();
        assert!(error.to_string().contains(&address), "{error}");
        assert!(bind(None, &address).await.unwrap().is_none());
        assert!(bind(Some("off"), &address).await.unwrap().is_none());
        assert!(bind(None, "127.0.0.1:0").await.unwrap().is_some());
    }

    #[test]
    fn metrics_listen_takes_host_port_or_off() {
        assert_eq!(parse_listen(""), Ok(None));
        assert_eq!(parse_listen("off"), Ok(None));
        assert_eq!(
            parse_listen("127.0.0.1:9190"),
            Ok(Some("127.0.0.1:9190".into()))
        );
        assert_eq!(parse_listen("[::1]:9190"), Ok(Some("[::1]:9190".into())));
        for bad in ["9190", ":9190", "host:", "host:99999", "host:port"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }
}
