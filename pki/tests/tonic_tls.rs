//! tonic over skiff-pki's rustls configs, end to end on loopback: who gets in, who is
//! refused at the handshake, and what identity the server sees.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiff_pki::tls::{self, ClientAuth, ServerCheck};
use skiff_pki::{
    ClusterToken, Identity, NodeKey, generate_token, issue_client_cert, issue_member_cert,
    sign_node_csr,
};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

/// Who the server saw, per call (`None`: no client certificate).
type Seen = Arc<Mutex<Vec<Option<Identity>>>>;

struct Running {
    address: String,
    seen: Seen,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(cert_pem: &str, key_pem: &str, client_auth: ClientAuth) -> Running {
    let config = tls::server_config(cert_pem, key_pem, client_auth).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let health = HealthServer::with_interceptor(
        HealthService::from_health_reporter(HealthReporter::new()),
        move |request: tonic::Request<()>| {
            recorded.lock().unwrap().push(tls::peer_identity(&request));
            Ok(request)
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = Server::builder().add_service(health);
    tokio::spawn(tls::serve_tls(router, listener, config, async {
        let _ = stopped.await;
    }));
    Running {
        address,
        seen,
        _stop: stop,
    }
}

/// One health check (the empty service name is always SERVING) over a fresh TLS channel.
async fn check(address: &str, config: Arc<rustls::ClientConfig>) -> Result<(), String> {
    let channel = tls::endpoint(address)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect_with_connector(tls::connector(config))
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|_| ())
        .map_err(|status| format!("{status:?}"))
}

struct Cluster {
    token: ClusterToken,
    ca: String,
}

fn cluster() -> Cluster {
    let token = ClusterToken::parse(&generate_token()).unwrap();
    let ca = token.ca_cert_pem();
    Cluster { token, ca }
}

fn localhost() -> Vec<String> {
    vec!["127.0.0.1:7000".into()]
}

fn node_cert(cluster: &Cluster, name: &str) -> (String, String) {
    let key = NodeKey::generate().unwrap();
    let csr = key.csr_pem(name).unwrap();
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let cert = sign_node_csr(&cluster.token, &csr, name, &[ip]).unwrap();
    (cert, key.key_pem())
}

#[tokio::test]
async fn a_member_reaches_the_agents_port_and_the_server_sees_the_member() {
    let c = cluster();
    let (agent_cert, agent_key) = node_cert(&c, "w1");
    let agent = serve(
        &agent_cert,
        &agent_key,
        ClientAuth::RequiredMembers {
            ca_pem: c.ca.clone(),
        },
    )
    .await;

    let member = issue_member_cert(&c.token, 1, &localhost()).unwrap();
    let config = tls::client_config(
        &c.ca,
        Some((&member.cert_pem, &member.key_pem)),
        ServerCheck::Node("w1".into()),
    )
    .unwrap();
    check(&agent.address, config).await.unwrap();
    assert_eq!(
        *agent.seen.lock().unwrap(),
        vec![Some(Identity::Member { id: 1 })]
    );
}

#[tokio::test]
async fn the_agents_port_refuses_nodes_users_anonymous_callers_and_other_clusters_at_the_handshake()
{
    let c = cluster();
    let (agent_cert, agent_key) = node_cert(&c, "w1");
    let agent = serve(
        &agent_cert,
        &agent_key,
        ClientAuth::RequiredMembers {
            ca_pem: c.ca.clone(),
        },
    )
    .await;

    let (w2_cert, w2_key) = node_cert(&c, "w2");
    let admin = issue_client_cert(&c.token, &Identity::admin()).unwrap();
    let other = cluster();
    let foreign_member = issue_member_cert(&other.token, 1, &localhost()).unwrap();
    let callers: Vec<(&str, Option<(&str, &str)>)> = vec![
        ("another node", Some((&w2_cert, &w2_key))),
        ("the admin", Some((&admin.cert_pem, &admin.key_pem))),
        ("no certificate", None),
        (
            "another cluster's member",
            Some((&foreign_member.cert_pem, &foreign_member.key_pem)),
        ),
    ];
    for (who, credential) in callers {
        let config = tls::client_config(&c.ca, credential, ServerCheck::Node("w1".into())).unwrap();
        let err = check(&agent.address, config).await.unwrap_err();
        // The server's alert: the TLS handshake refused the certificate (or its absence).
        assert!(err.contains("received fatal alert"), "{who}: {err}");
    }
    // Refused before any request reached the service.
    assert!(agent.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_control_plane_port_takes_anonymous_user_and_member_callers_and_names_them() {
    let c = cluster();
    let server = issue_member_cert(&c.token, 1, &localhost()).unwrap();
    let cp = serve(
        &server.cert_pem,
        &server.key_pem,
        ClientAuth::Optional {
            ca_pem: c.ca.clone(),
        },
    )
    .await;

    let admin = issue_client_cert(&c.token, &Identity::admin()).unwrap();
    let peer = issue_member_cert(&c.token, 2, &localhost()).unwrap();
    for credential in [
        None,
        Some((admin.cert_pem.as_str(), admin.key_pem.as_str())),
        Some((peer.cert_pem.as_str(), peer.key_pem.as_str())),
    ] {
        let config = tls::client_config(&c.ca, credential, ServerCheck::Member).unwrap();
        check(&cp.address, config).await.unwrap();
    }
    assert_eq!(
        *cp.seen.lock().unwrap(),
        vec![
            None,
            Some(Identity::admin()),
            Some(Identity::Member { id: 2 })
        ]
    );

    // A certificate from another cluster's CA is refused even where certificates are optional.
    let other = cluster();
    let foreign = issue_client_cert(&other.token, &Identity::admin()).unwrap();
    let config = tls::client_config(
        &c.ca,
        Some((&foreign.cert_pem, &foreign.key_pem)),
        ServerCheck::Member,
    )
    .unwrap();
    assert!(check(&cp.address, config).await.is_err());
    assert_eq!(cp.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn clients_refuse_servers_of_another_cluster_and_agents_posing_as_members() {
    let c = cluster();
    let other = cluster();
    let foreign = issue_member_cert(&other.token, 1, &localhost()).unwrap();
    let impostor = serve(&foreign.cert_pem, &foreign.key_pem, ClientAuth::None).await;
    let config = tls::client_config(&c.ca, None, ServerCheck::Any).unwrap();
    assert!(check(&impostor.address, config).await.is_err());

    // An agent's certificate is valid for its IP, but not as a member's.
    let (agent_cert, agent_key) = node_cert(&c, "w1");
    let agent = serve(&agent_cert, &agent_key, ClientAuth::None).await;
    let config = tls::client_config(&c.ca, None, ServerCheck::Member).unwrap();
    assert!(check(&agent.address, config).await.is_err());
    let config = tls::client_config(&c.ca, None, ServerCheck::Node("w2".into())).unwrap();
    assert!(check(&agent.address, config).await.is_err());
    let config = tls::client_config(&c.ca, None, ServerCheck::Node("w1".into())).unwrap();
    check(&agent.address, config).await.unwrap();
    assert!(impostor.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn plain_text_http2_to_a_tls_port_fails() {
    let c = cluster();
    let server = issue_member_cert(&c.token, 1, &localhost()).unwrap();
    let cp = serve(
        &server.cert_pem,
        &server.key_pem,
        ClientAuth::Optional {
            ca_pem: c.ca.clone(),
        },
    )
    .await;
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", cp.address))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect()
        .await;
    let result = match plain {
        Ok(channel) => HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(result.is_err());
    assert!(cp.seen.lock().unwrap().is_empty());
    // The port still serves TLS afterwards.
    let config = tls::client_config(&c.ca, None, ServerCheck::Member).unwrap();
    check(&cp.address, config).await.unwrap();
}
