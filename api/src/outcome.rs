//! Whether a failed write was applied. A write that provably never reached a leader (no
//! leader known, the connection refused, the leader refused to take it) is marked
//! "not applied", and clients retry it transparently; any other failure of a write may
//! have committed, and is reported as an unknown outcome rather than retried blindly.

/// The gRPC metadata key the control plane marks a failed write's outcome with.
pub const OUTCOME_KEY: &str = "skiff-outcome";
/// The write was not applied: safe to send again.
pub const NOT_APPLIED: &str = "not-applied";
/// The write may or may not have been applied.
pub const UNKNOWN: &str = "unknown";

/// Marks `status` with a write's outcome.
pub fn mark(mut status: tonic::Status, outcome: &'static str) -> tonic::Status {
    status.metadata_mut().insert(
        OUTCOME_KEY,
        tonic::metadata::MetadataValue::from_static(outcome),
    );
    status
}

/// The server said the write was not applied.
pub fn marked_not_applied(status: &tonic::Status) -> bool {
    status
        .metadata()
        .get(OUTCOME_KEY)
        .is_some_and(|v| v.as_bytes() == NOT_APPLIED.as_bytes())
}

/// The request never left this process or never got a connection: the server cannot have
/// seen it. (A reset or a timeout after the request went out proves nothing.)
pub fn never_sent(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        let text = e.to_string();
        if text.contains("tcp connect error") || text.contains("error trying to connect") {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_status_says_not_applied() {
        let status = mark(tonic::Status::unavailable("no leader"), NOT_APPLIED);
        assert!(marked_not_applied(&status));
        let unknown = mark(tonic::Status::unavailable("timed out"), UNKNOWN);
        assert!(!marked_not_applied(&unknown));
        assert!(!marked_not_applied(&tonic::Status::unavailable("plain")));
    }

    #[tokio::test]
    async fn a_refused_connection_is_never_sent() {
        // A port nothing listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_lazy();
        let mut client = crate::proto::cluster_client::ClusterClient::new(channel);
        let status = client
            .status(crate::proto::ClusterStatusRequest {})
            .await
            .unwrap_err();
        assert!(never_sent(&status), "{status:?}");
        assert!(!never_sent(&tonic::Status::unavailable("reset")));
    }
}
