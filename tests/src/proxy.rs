//! A TCP proxy that makes a link slow: every byte arrives a fixed delay after it was sent,
//! and no faster than a given rate. This kernel has no `netem`, so tests put one of these
//! in front of each control-plane member (its peers dial the proxy) to run Raft over a
//! long, narrow link on loopback.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running proxy; it stops (and drops every connection) when dropped.
pub struct DelayProxy {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards each connection to `upstream`, adding
    /// `one_way` to each direction and capping each direction at `bytes_per_sec`.
    pub async fn start(
        upstream: SocketAddr,
        one_way: Duration,
        bytes_per_sec: u64,
    ) -> io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.retain(|c: &JoinHandle<()>| !c.is_finished());
                connections.push(tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = tokio::spawn(pump(cr, sw, one_way, bytes_per_sec));
                    let down = tokio::spawn(pump(sr, cw, one_way, bytes_per_sec));
                    let _ = tokio::join!(up, down);
                }));
            }
            for c in connections {
                c.abort();
            }
        });
        Ok(DelayProxy { address, task })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads as fast as the sender writes; each chunk is written out `delay` after it was read,
/// and the writes are paced to `rate` bytes per second.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    rate: u64,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    let mut free_at = Instant::now();
    while let Some((due, bytes)) = rx.recv().await {
        let start = due.max(free_at);
        tokio::time::sleep_until(start).await;
        if to.write_all(&bytes).await.is_err() {
            break;
        }
        free_at = start + Duration::from_secs_f64(bytes.len() as f64 / rate.max(1) as f64);
    }
    let _ = to.shutdown().await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_whole_and_late() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let proxy = DelayProxy::start(upstream, Duration::from_millis(100), 10 << 20)
            .await
            .unwrap();
        let mut c = TcpStream::connect(proxy.address()).await.unwrap();
        let sent: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let started = std::time::Instant::now();
        c.write_all(&sent).await.unwrap();
        let mut got = vec![0u8; sent.len()];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(got, sent);
        // Two ways of 100 ms at least.
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
