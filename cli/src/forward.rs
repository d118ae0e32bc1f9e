//! `skiff port-forward`: local ports whose connections become byte streams into a pod's
//! ports (through the control plane and the node's agent), as kubectl's.
//!
//! The listeners are always in the user's own network namespace, also for a `skiff up`
//! cluster whose API the CLI reaches from inside the cluster's underlay namespace: they are
//! bound on a thread that went back to where the process started
//! ([`skiff_netplugin::netns::run_in_origin`]), and a socket stays in the namespace it was
//! made in.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use skiff_api::types::{Deployment, Pod};
use skiff_api::{Kind, Selector};
use skiff_client::{Client, ListParams};
use skiff_netplugin::netns::{self, NetnsError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::verbs::VerbError;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Api(#[from] VerbError),
    #[error("unable to listen on any of the requested ports: {0}")]
    Listen(String),
    #[error("listen in the user's network namespace: {0}")]
    Namespace(#[from] NetnsError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<skiff_client::Error> for ForwardError {
    fn from(e: skiff_client::Error) -> ForwardError {
        ForwardError::Api(e.into())
    }
}

/// `LOCAL:REMOTE` (or one port for both; `:REMOTE` picks a free local port).
pub fn parse_ports(text: &str) -> Result<(u16, u16), ForwardError> {
    let bad = || ForwardError::Usage(format!("{text:?} is not LOCAL:REMOTE or PORT"));
    let (local, remote) = text.split_once(':').unwrap_or((text, text));
    let remote: u16 = remote.parse().map_err(|_| bad())?;
    let local: u16 = if local.is_empty() {
        0
    } else {
        local.parse().map_err(|_| bad())?
    };
    if remote == 0 {
        return Err(bad());
    }
    Ok((local, remote))
}

/// `--address`: comma-separated IP addresses or `localhost` (127.0.0.1 and ::1, of which
/// one is enough, as in kubectl). Returns the addresses and whether each must bind.
pub fn parse_addresses(text: &str) -> Result<Vec<(IpAddr, bool)>, ForwardError> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part == "localhost" {
            out.push((IpAddr::V4(Ipv4Addr::LOCALHOST), false));
            out.push((IpAddr::V6(Ipv6Addr::LOCALHOST), false));
        } else {
            let ip = part.parse().map_err(|_| {
                ForwardError::Usage(format!(
                    "{part:?} is not an IP address or localhost (--address takes a comma-separated list of them)"
                ))
            })?;
            out.push((ip, true));
        }
    }
    Ok(out)
}

/// The pod `target` names: `NAME` or `pod/NAME`, or `deployment/NAME` (its oldest ready
/// pod), in `namespace`. A pod that does not run is refused, as kubectl refuses it.
pub async fn resolve_pod(
    client: &Client,
    namespace: &str,
    target: &str,
) -> Result<String, ForwardError> {
    let (kind, name) = match target.split_once('/') {
        Some((kind, name)) => (Kind::parse(kind), name),
        None => (Some(Kind::Pod), target),
    };
    if name.is_empty() {
        return Err(ForwardError::Usage(format!(
            "{target:?}: give TYPE/NAME or a pod's NAME"
        )));
    }
    let pod = match kind {
        Some(Kind::Pod) => client.get::<Pod>(namespace, name).await?,
        Some(Kind::Deployment) => ready_pod_of(client, namespace, name).await?,
        _ => {
            return Err(ForwardError::Usage(format!(
                "{target:?}: port-forward takes pod/NAME or deployment/NAME"
            )));
        }
    };
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Running") {
        return Err(ForwardError::Usage(format!(
            "unable to forward port because pod is not running. Current status={}",
            phase.unwrap_or("Pending")
        )));
    }
    Ok(pod.metadata.name)
}

/// The oldest ready pod of deployment `name` (the one its selector picks).
async fn ready_pod_of(client: &Client, namespace: &str, name: &str) -> Result<Pod, ForwardError> {
    let deployment = client.get::<Deployment>(namespace, name).await?;
    let selector = Selector::from_label_selector(&deployment.spec.selector).map_err(|e| {
        ForwardError::Usage(format!("deployment {name:?} has an invalid selector: {e}"))
    })?;
    let pods = client
        .list::<Pod>(&ListParams::namespace(namespace))
        .await?;
    pods.items
        .into_iter()
        .filter(|p| selector.matches(&p.metadata.labels) && ready(p))
        .min_by(|a, b| {
            (a.metadata.creation_timestamp, &a.metadata.name)
                .cmp(&(b.metadata.creation_timestamp, &b.metadata.name))
        })
        .ok_or_else(|| {
            ForwardError::Usage(format!(
                "deployment {name:?} has no ready pod to forward to"
            ))
        })
}

fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Binds a listener on each address for `port` (0: a free port, the same on every
/// address) in the user's own network namespace. An address that may fail (localhost's)
/// is skipped when it does; none at all is an error.
fn listen(
    addresses: &[(IpAddr, bool)],
    port: u16,
) -> Result<Vec<std::net::TcpListener>, ForwardError> {
    let addresses = addresses.to_vec();
    netns::run_in_origin(move || {
        let mut port = port;
        let mut listeners = Vec::new();
        let mut failures = Vec::new();
        for (ip, required) in addresses {
            match std::net::TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(listener) => {
                    listener.set_nonblocking(true)?;
                    port = listener.local_addr()?.port();
                    listeners.push(listener);
                }
                Err(e) if required => return Err(e.into()),
                Err(e) => failures.push(format!("{}: {e}", SocketAddr::new(ip, port))),
            }
        }
        if listeners.is_empty() {
            return Err(ForwardError::Listen(failures.join("; ")));
        }
        Ok(listeners)
    })?
}

/// `skiff port-forward TYPE/NAME [LOCAL:]REMOTE…`: every connection to a local port becomes
/// a byte stream into the pod's port. Runs until `stop` resolves; prints kubectl's lines
/// once listening.
pub async fn port_forward(
    client: &Client,
    namespace: &str,
    target: &str,
    address: &str,
    ports: &[String],
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ForwardError> {
    let addresses = parse_addresses(address)?;
    let ports = ports
        .iter()
        .map(|p| parse_ports(p))
        .collect::<Result<Vec<_>, _>>()?;
    if ports.is_empty() {
        return Err(ForwardError::Usage(
            "TYPE/NAME and list of ports are required for port-forward".into(),
        ));
    }
    let pod = resolve_pod(client, namespace, target).await?;
    let mut accepting = tokio::task::JoinSet::new();
    for (local, remote) in ports {
        for listener in listen(&addresses, local)? {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let bound = listener.local_addr()?;
            println!("Forwarding from {bound} -> {remote}");
            let (client, namespace, pod) = (client.clone(), namespace.to_string(), pod.clone());
            accepting.spawn(async move {
                loop {
                    let socket = match listener.accept().await {
                        Ok((socket, _)) => socket,
                        Err(e) => {
                            // Out of descriptors, say: give closing connections a moment.
                            eprintln!("error accepting a connection on {bound}: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    // Not println!: a closed standard output must not end the forward.
                    let _ = writeln!(
                        std::io::stdout(),
                        "Handling connection for {}",
                        bound.port()
                    );
                    let (client, namespace, pod) = (client.clone(), namespace.clone(), pod.clone());
                    tokio::spawn(async move {
                        if let Err(e) = forward_one(&client, &namespace, &pod, remote, socket).await
                        {
                            eprintln!("error forwarding port {remote} to pod {pod}: {e}");
                        }
                    });
                }
            });
        }
    }
    stop.await;
    accepting.abort_all();
    Ok(())
}

async fn forward_one(
    client: &Client,
    namespace: &str,
    pod: &str,
    port: u16,
    socket: tokio::net::TcpStream,
) -> Result<(), ForwardError> {
    let mut forward = client.port_forward(namespace, pod, port).await?;
    let (mut reader, mut writer) = socket.into_split();
    // Take the sender out, so the pod's side sees end-of-stream when the local client
    // stops sending.
    let to_pod = std::mem::replace(&mut forward.to_pod, tokio::sync::mpsc::channel(1).0);
    let upstream = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to_pod.send(buf[..n].to_vec()).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    while let Some(chunk) = forward.read().await {
        writer.write_all(&chunk?).await?;
    }
    upstream.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_forward_arguments_parse_as_kubectl_does() {
        assert_eq!(parse_ports("8080:80").unwrap(), (8080, 80));
        assert_eq!(parse_ports("80").unwrap(), (80, 80));
        assert_eq!(parse_ports(":80").unwrap(), (0, 80));
        assert!(parse_ports("x:80").is_err());
        assert!(parse_ports("80:0").is_err());
    }

    #[test]
    fn localhost_is_both_loopbacks_and_either_may_fail_but_a_named_address_must_bind() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            parse_addresses("localhost").unwrap(),
            [(v4, false), (v6, false)]
        );
        assert_eq!(
            parse_addresses("127.0.0.1, ::1").unwrap(),
            [(v4, true), (v6, true)]
        );
        let error = parse_addresses("example.com").unwrap_err().to_string();
        assert!(
            error.contains("\"example.com\" is not an IP address"),
            "{error}"
        );
    }

    #[test]
    fn a_free_port_is_the_same_on_every_address() {
        let addresses = [
            (IpAddr::V4(Ipv4Addr::LOCALHOST), true),
            (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), true),
        ];
        let listeners = listen(&addresses, 0).unwrap();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports.len(), 2);
        assert_ne!(ports[0], 0);
        assert_eq!(ports[0], ports[1]);
    }
}
