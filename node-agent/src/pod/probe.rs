//! Liveness and readiness probes: exec, httpGet and tcpSocket, with Kubernetes' timing
//! fields. The threshold bookkeeping is pure; the checks go through the runtime, so they
//! run inside the pod's namespaces.

use std::time::Duration;

use skiff_api::types::{IntOrString, Probe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::runtime::Runtime;

/// A probe's timing, with Kubernetes' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(probe: &Probe) -> Timing {
        let secs =
            |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
        Timing {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// Consecutive results turned into a verdict: it flips only after `success_threshold`
/// successes or `failure_threshold` failures in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    passing: bool,
    successes: u32,
    failures: u32,
}

impl Verdict {
    /// Readiness starts failing (not ready until proven), liveness passing.
    pub fn new(initially_passing: bool) -> Verdict {
        Verdict {
            passing: initially_passing,
            successes: 0,
            failures: 0,
        }
    }

    pub fn passing(&self) -> bool {
        self.passing
    }

    /// Records one result; returns true when the verdict changed.
    pub fn record(&mut self, ok: bool, timing: &Timing) -> bool {
        if ok {
            self.failures = 0;
            self.successes += 1;
            if !self.passing && self.successes >= timing.success_threshold {
                self.passing = true;
                return true;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.passing && self.failures >= timing.failure_threshold {
                self.passing = false;
                return true;
            }
        }
        false
    }
}

/// Resolves a probe's port: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, named: &[(String, i32)]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => named
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| *p)
                .ok_or_else(|| format!("no container port named {name:?}"))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("port {number} is out of range"))
}

/// Whether an HTTP response's status line means success (200–399, as in Kubernetes).
pub fn http_success(response_head: &[u8]) -> bool {
    let line = response_head
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let mut parts = text.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return false;
    };
    version.starts_with("HTTP/") && code.parse::<u16>().is_ok_and(|c| (200..400).contains(&c))
}

/// Runs one check of `probe` against a container; Ok(()) when it passes, else why not.
pub async fn check<R: Runtime>(
    runtime: &R,
    sandbox_id: &str,
    container_id: &str,
    probe: &Probe,
    named_ports: &[(String, i32)],
    timeout: Duration,
) -> Result<(), String> {
    let run = async {
        if let Some(exec) = &probe.exec {
            // Dropped when the probe times out: the command is killed in the container.
            let mut process = runtime
                .exec(container_id, &exec.command)
                .await
                .map_err(|e| e.to_string())?;
            drop(process.child.stdin.take());
            // Both pipes at once, as wait_with_output does: a full one would stall the other.
            let (stdout, stderr) = tokio::join!(
                read_all(process.child.stdout.take()),
                read_all(process.child.stderr.take())
            );
            let output = std::process::Output {
                stdout: stdout.map_err(|e| e.to_string())?,
                stderr: stderr.map_err(|e| e.to_string())?,
                status: process.child.wait().await.map_err(|e| e.to_string())?,
            };
            return match output.status.code() {
                Some(0) => Ok(()),
                code => Err(format!(
                    "command {:?} exited with {code:?}: {}",
                    exec.command,
                    String::from_utf8_lossy(&output.stdout).trim()
                )),
            };
        }
        if let Some(http) = &probe.http_get {
            let port = resolve_port(&http.port, named_ports)?;
            let mut stream = runtime
                .connect(sandbox_id, port, timeout)
                .await
                .map_err(|e| format!("http probe: {e}"))?;
            let path = http.path.as_deref().unwrap_or("/");
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: skiff-probe\r\nConnection: close\r\n\r\n"
            );
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|e| format!("http probe: {e}"))?;
            let mut head = vec![0u8; 512];
            let n = stream
                .read(&mut head)
                .await
                .map_err(|e| format!("http probe: {e}"))?;
            head.truncate(n);
            return if http_success(&head) {
                Ok(())
            } else {
                let line = String::from_utf8_lossy(&head);
                Err(format!(
                    "HTTP probe failed with statuscode: {}",
                    line.lines().next().unwrap_or("no response")
                ))
            };
        }
        if let Some(tcp) = &probe.tcp_socket {
            let port = resolve_port(&tcp.port, named_ports)?;
            runtime
                .connect(sandbox_id, port, timeout)
                .await
                .map(drop)
                .map_err(|e| format!("tcp probe on port {port}: {e}"))?;
            return Ok(());
        }
        Err("probe has no handler (exec, httpGet or tcpSocket)".into())
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

/// Everything a pipe gives until it closes (nothing without a pipe).
async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut data).await?;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn probe_verdicts_change_after_their_thresholds() {
        let t = timing(2, 3);
        let mut readiness = Verdict::new(false);
        assert!(!readiness.record(true, &t));
        assert!(readiness.record(true, &t), "two successes make it pass");
        assert!(readiness.passing());
        assert!(!readiness.record(false, &t));
        assert!(!readiness.record(false, &t));
        assert!(!readiness.record(true, &t), "a success resets the failures");
        for _ in 0..2 {
            assert!(!readiness.record(false, &t));
        }
        assert!(readiness.record(false, &t), "three failures in a row");
        assert!(!readiness.passing());
    }

    #[test]
    fn probe_timing_defaults_are_kubernetes_defaults() {
        let t = Timing::of(&Probe::default());
        assert_eq!(
            t,
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
    }

    #[test]
    fn ports_and_http_status() {
        let named = vec![("http".to_string(), 8080)];
        assert_eq!(resolve_port(&IntOrString::Int(80), &named), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &named),
            Ok(8080)
        );
        assert!(resolve_port(&IntOrString::String("grpc".into()), &named).is_err());
        assert!(resolve_port(&IntOrString::Int(70000), &named).is_err());
        assert!(http_success(b"HTTP/1.1 200 OK\r\n"));
        assert!(http_success(b"HTTP/1.0 302 Found\r\n"));
        assert!(!http_success(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!http_success(b"garbage"));
        assert!(!http_success(b""));
    }
}
