//! Identity and access, phase 1: TLS on every port, the cluster token, member and node
//! certificates, and Raft only from members. Each test is named by the sentence it proves.
//! The agent tests need root like the other agent tests (skipped otherwise, unless
//! SKIFF_REQUIRE_PRIVILEGED is set).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::proto::agent_client::AgentClient;
use skiff_api::proto::cluster_client::ClusterClient;
use skiff_api::proto::raft_client::RaftClient;
use skiff_api::proto::{
    AddLearnerRequest, ChangeMembershipRequest, ClusterStatusRequest, ListImagesRequest,
    ListRequest, RaftPayload,
};
use skiff_api::types::{Namespace, Node};
use skiff_pki::tls::ServerCheck;
use skiff_pki::{ClusterToken, Identity, NodeKey};
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, binary, eventually};
use tonic::Code;
use tonic::transport::Channel;

const READY: Duration = Duration::from_secs(30);

fn token_of(cluster: &ControlPlaneCluster) -> ClusterToken {
    cluster.cluster_token()
}

/// A TLS channel to `endpoint` with `tls`, connected now (so handshake failures show).
async fn connect(endpoint: &str, tls: Arc<rustls::ClientConfig>) -> Result<Channel, String> {
    skiff_pki::tls::endpoint(endpoint)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_with_connector(skiff_pki::tls::connector(tls))
        .await
        .map_err(|e| format!("{e:?}"))
}

/// A lazily connected channel (a failed handshake shows as the call's error).
fn lazy(endpoint: &str, tls: Arc<rustls::ClientConfig>) -> Channel {
    skiff_pki::tls::endpoint(endpoint)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_with_connector_lazy(skiff_pki::tls::connector(tls))
}

/// A failure below gRPC (TLS or HTTP/2), not an answer from a server's handler.
fn is_transport_failure(err: &tonic::Status) -> bool {
    use std::error::Error;
    !matches!(
        err.code(),
        Code::Unauthenticated | Code::PermissionDenied | Code::Ok
    ) && err
        .source()
        .is_some_and(|s| s.downcast_ref::<tonic::transport::Error>().is_some())
}

/// The cluster CA, no client certificate.
fn anonymous(cluster: &ControlPlaneCluster) -> Arc<rustls::ClientConfig> {
    cluster.ca_only_tls_config()
}

/// Joins `name` with `key` the way an agent does: (certificate PEM, or the refusal).
async fn join(
    cluster: &ControlPlaneCluster,
    token: &ClusterToken,
    name: &str,
    key: &NodeKey,
) -> Result<String, tonic::Status> {
    cluster.join_node(token, name, key).await
}

async fn ready_cluster() -> ControlPlaneCluster {
    ControlPlaneCluster::start_ready(3).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_credential_fails_unauthenticated() {
    let cluster = ready_cluster().await;
    let channel = lazy(&cluster.endpoint(1), anonymous(&cluster));
    // TLS with the right CA, but no client certificate: the public API refuses.
    let err = skiff_api::proto::objects_client::ObjectsClient::new(channel.clone())
        .list(ListRequest {
            kind: "Namespace".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = ClusterClient::new(channel.clone())
        .status(ClusterStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = RaftClient::new(channel)
        .read_index(RaftPayload { data: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // The admin credential works (the control).
    cluster
        .client()
        .list::<Namespace>(&Default::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_tokens_ca_is_refused_at_the_handshake() {
    let cluster = ready_cluster().await;
    let other = ClusterToken::parse(&skiff_pki::generate_token()).unwrap();
    let foreign = skiff_pki::issue_client_cert(&other, &Identity::admin()).unwrap();
    // It trusts the real cluster's CA (so the server's certificate passes), and presents an
    // admin certificate signed by another token's CA.
    let tls = skiff_pki::tls::client_config(
        &token_of(&cluster).ca_cert_pem(),
        Some((&foreign.cert_pem, &foreign.key_pem)),
        ServerCheck::Member,
    )
    .unwrap();
    let refused = match connect(&cluster.endpoint(1), tls).await {
        Err(e) => e,
        // TLS 1.3: the client may finish before the server's alert arrives; then the
        // first request fails on the closed connection.
        Ok(channel) => {
            let err = ClusterClient::new(channel)
                .status(ClusterStatusRequest {})
                .await
                .unwrap_err();
            assert!(
                is_transport_failure(&err),
                "a transport failure, not an answer: {err:?}"
            );
            format!("{err:?}")
        }
    };
    eprintln!("refused: {refused}");
    // And a client that trusts only the other CA refuses the cluster's servers.
    let tls =
        skiff_pki::tls::client_config(&other.ca_cert_pem(), None, ServerCheck::Member).unwrap();
    assert!(connect(&cluster.endpoint(1), tls).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_http2_to_the_control_plane_port_fails() {
    let cluster = ready_cluster().await;
    let channel = Channel::from_shared(format!("http://{}", cluster.endpoint(1)))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    let err = ClusterClient::new(channel)
        .status(ClusterStatusRequest {})
        .await
        .unwrap_err();
    assert!(is_transport_failure(&err), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_cannot_call_any_raft_method_nor_change_membership() {
    let cluster = ready_cluster().await;
    let token = token_of(&cluster);
    let key = NodeKey::generate().unwrap();
    let cert = join(&cluster, &token, "intruder", &key).await.unwrap();
    let tls = skiff_pki::tls::client_config(
        &token.ca_cert_pem(),
        Some((&cert, &key.key_pem())),
        ServerCheck::Member,
    )
    .unwrap();
    let channel = lazy(&cluster.endpoint(1), tls);
    let mut raft = RaftClient::new(channel.clone());
    let payload = || RaftPayload { data: vec![0; 8] };
    let results = [
        ("AppendEntries", raft.append_entries(payload()).await.err()),
        ("Vote", raft.vote(payload()).await.err()),
        (
            "InstallSnapshot",
            raft.install_snapshot(payload()).await.err(),
        ),
        ("Propose", raft.propose(payload()).await.err()),
        ("ReadIndex", raft.read_index(payload()).await.err()),
        ("Admin", raft.admin(payload()).await.err()),
        (
            "NodeStatus",
            raft.node_status(ClusterStatusRequest {}).await.err(),
        ),
        ("Stage", raft.stage(payload()).await.err()),
        ("AppendStaged", raft.append_staged(payload()).await.err()),
        ("PreVote", raft.pre_vote(payload()).await.err()),
    ];
    for (method, err) in results {
        let err = err.unwrap_or_else(|| panic!("Raft/{method} answered a node certificate"));
        assert_eq!(err.code(), Code::PermissionDenied, "Raft/{method}: {err:?}");
    }
    let mut cluster_api = ClusterClient::new(channel);
    let err = cluster_api
        .add_learner(AddLearnerRequest {
            id: 9,
            address: "127.0.0.1:1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = cluster_api
        .change_membership(ChangeMembershipRequest { voters: vec![1] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // The admin certificate is not a member's either: no Raft for it.
    let mut raft = RaftClient::new(cluster.channel(&cluster.endpoint(1)));
    let err = raft.read_index(payload()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // The membership is what it was.
    let status = cluster.client().cluster_status().await.unwrap();
    assert_eq!(status.members.len(), 3, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_name_already_claimed_by_another_key_is_refused() {
    let cluster = ready_cluster().await;
    let token = token_of(&cluster);
    let first = NodeKey::generate().unwrap();
    join(&cluster, &token, "taken", &first).await.unwrap();
    // The same key again (a retried join) is fine.
    join(&cluster, &token, "taken", &first).await.unwrap();
    let second = NodeKey::generate().unwrap();
    let err = join(&cluster, &token, "taken", &second).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("already claimed"), "{err:?}");
    // A proof made with another token is refused outright.
    let other = ClusterToken::parse(&skiff_pki::generate_token()).unwrap();
    let err = join(&cluster, &other, "fresh", &second).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}

/// Runs `binary` with `args`: (exit code, stderr).
fn run(binary: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(binary)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_daemon_without_a_token_file_exits_2_with_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let malformed = dir.path().join("malformed");
    std::fs::write(&malformed, "not-a-token\n").unwrap();
    let missing = dir.path().join("missing");
    let cases: Vec<Vec<String>> = vec![
        vec![],
        vec!["--token-file".into(), missing.display().to_string()],
        vec!["--token-file".into(), empty.display().to_string()],
        vec!["--token-file".into(), malformed.display().to_string()],
    ];
    // What the token file should hold: `skiff token generate`, one line.
    let generated = Command::new(binary("skiff"))
        .args(["token", "generate"])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let line = String::from_utf8(generated.stdout).unwrap();
    assert_eq!(line.lines().count(), 1, "{line:?}");
    ClusterToken::parse(&line).unwrap();
    let control_plane = binary("skiff-control-plane");
    let agent = binary("skiff-agent");
    for case in &cases {
        let data = dir.path().join("cp-data");
        let mut args = vec![
            "--id",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--peers",
            "1=127.0.0.1:1",
            "--data-dir",
        ];
        let data_arg = data.display().to_string();
        args.push(&data_arg);
        args.extend(case.iter().map(String::as_str));
        let (code, stderr) = run(&control_plane, &args);
        assert_eq!(code, 2, "skiff-control-plane {args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
        assert!(stderr.contains("token"), "{stderr}");
        assert!(
            !data.exists(),
            "skiff-control-plane wrote {}",
            data.display()
        );

        let data = dir.path().join("agent-data");
        let data_arg = data.display().to_string();
        let mut args = vec![
            "--name",
            "n1",
            "--servers",
            "127.0.0.1:1",
            "--node-ip",
            "127.0.0.1",
            "--runtime",
            "process",
            "--data-dir",
            &data_arg,
        ];
        args.extend(case.iter().map(String::as_str));
        let (code, stderr) = run(&agent, &args);
        assert_eq!(code, 2, "skiff-agent {args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
        assert!(stderr.contains("token"), "{stderr}");
        assert!(!data.exists(), "skiff-agent wrote {}", data.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_of_a_member_keeps_working_with_its_stored_certificate() {
    let mut cluster = ready_cluster().await;
    let client = cluster.client();
    let cert_path = cluster.data_dir(2).join("tls/member.crt");
    let key_path = cluster.data_dir(2).join("tls/member.key");
    let before = std::fs::read(&cert_path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(mode(&cluster.data_dir(2).join("tls")), 0o700);
    assert_eq!(mode(&cluster.admin_conf()), 0o600);
    for id in [2, 1] {
        cluster.kill(id);
        cluster.restart(id);
    }
    assert_eq!(
        std::fs::read(&cert_path).unwrap(),
        before,
        "reused, not reissued"
    );
    // Every member healthy again: members reach each other over TLS with their certificates.
    eventually(READY, || async {
        let status = client.cluster_status().await?;
        anyhow::ensure!(
            status.members.len() == 3 && status.members.iter().all(|m| m.healthy),
            "{:?}",
            status.members
        );
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
    let ns = Namespace {
        metadata: skiff_api::meta::ObjectMeta {
            name: "after-restart".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    eventually(READY, || async {
        Ok(client.create(&ns).await.map(|_| ())?)
    })
    .await
    .unwrap();
}

fn runnable() -> bool {
    skiff_tests::host::privileged_tests_can_run()
}

/// The agent's node credential, from its node.conf.
fn node_credential(agent: &AgentProcess) -> (String, String) {
    let path = agent.data_dir().join("node.conf");
    let config = skiff_pki::config::load(&path).unwrap();
    let (name, entry) = config.clusters.iter().next().unwrap();
    match entry.credential(&path, name).unwrap() {
        Some(skiff_pki::config::Credential::Certificate { cert_pem, key_pem }) => {
            (cert_pem, key_pem)
        }
        other => panic!("node.conf holds {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_port_takes_only_members_and_the_agent_restarts_on_its_stored_credential() {
    if !runnable() {
        return;
    }
    let cluster = ready_cluster().await;
    let client = cluster.client();
    let mut agent = AgentProcess::start("node-1", &cluster.endpoints(), &[]).expect("agent");
    let ready = || async {
        eventually(READY, || async {
            let node = client.get::<Node>("", "node-1").await?;
            anyhow::ensure!(skiff_tests::nodes::is_ready(&node), "node not ready");
            Ok(())
        })
        .await
    };
    ready()
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    let node_conf = agent.data_dir().join("node.conf");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&node_conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (node_cert, node_key) = node_credential(&agent);
    let token = token_of(&cluster);
    let ca = token.ca_cert_pem();
    let agent_endpoint = format!("127.0.0.1:{}", agent.port);
    let admin = skiff_pki::issue_client_cert(&token, &Identity::admin()).unwrap();

    // The agent's port: an admin's, a node's or no certificate fails the handshake.
    let expect = ServerCheck::Node("node-1".into());
    for (who, credential) in [
        (
            "admin",
            Some((admin.cert_pem.as_str(), admin.key_pem.as_str())),
        ),
        ("node", Some((node_cert.as_str(), node_key.as_str()))),
        ("anonymous", None),
    ] {
        let tls = skiff_pki::tls::client_config(&ca, credential, expect.clone()).unwrap();
        let result = AgentClient::new(lazy(&agent_endpoint, tls))
            .list_images(ListImagesRequest::default())
            .await;
        let err = result.expect_err(&format!("the agent answered a {who} certificate"));
        assert!(
            is_transport_failure(&err),
            "{who}: a transport failure, not an answer: {err:?}"
        );
    }
    // Plain text fails too.
    let plain = Channel::from_shared(format!("http://{agent_endpoint}"))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    assert!(
        AgentClient::new(plain)
            .list_images(ListImagesRequest::default())
            .await
            .is_err()
    );
    // A member's certificate passes (the control): through the control plane's proxy.
    let member = skiff_pki::issue_member_cert(&token, 99, &["127.0.0.1".to_string()]).unwrap();
    let tls = skiff_pki::tls::client_config(
        &ca,
        Some((&member.cert_pem, &member.key_pem)),
        expect.clone(),
    )
    .unwrap();
    AgentClient::new(lazy(&agent_endpoint, tls))
        .list_images(ListImagesRequest::default())
        .await
        .unwrap_or_else(|e| panic!("a member's certificate: {e:?}\n{}", agent.log()));

    // kill -9 and restart: the same credential, Ready again, no second join.
    agent.kill();
    agent.restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    ready()
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    assert_eq!(node_credential(&agent), (node_cert, node_key));
    assert_eq!(
        agent.log().matches("joined the cluster").count(),
        1,
        "{}",
        agent.log()
    );

    // A second agent claiming node-1 with a key of its own is refused and exits.
    let mut impostor = AgentProcess::start("node-1", &cluster.endpoints(), &[]).expect("agent");
    let deadline = std::time::Instant::now() + READY;
    let status = loop {
        if let Some(status) = impostor.exited() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the impostor still runs:\n{}",
            impostor.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    assert!(
        impostor.log().contains("already claimed"),
        "{}",
        impostor.log()
    );
    assert!(!impostor.data_dir().join("node.conf").exists());
}
