//! The library entry point in-process: a single-node cluster on port 0, driven through the
//! SDK, its Prometheus metrics, and a clean stop while a watch is open.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use skiff_api::meta::ObjectMeta;
use skiff_api::types::{Container, Pod, PodSpec};
use skiff_client::{Client, WatchEvent, WatchParams};
use skiff_control_plane::{Config, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_serves_then_stops_with_a_watch_open() {
    let dir = tempfile::Builder::new()
        .prefix("skiff-run-")
        .tempdir()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut config = Config::new(
        1,
        dir.path().to_path_buf(),
        BTreeMap::from([(1, address.clone())]),
    );
    config.token = Some(skiff_pki::ClusterToken::parse(&skiff_pki::generate_token()).unwrap());
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_address = metrics.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(config, listener, Some(metrics), async {
        let _ = stopped.await;
    }));

    // The member writes admin.conf (its endpoint, the CA, an admin certificate) first thing.
    let admin_conf = dir.path().join("admin.conf");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !admin_conf.exists() {
        assert!(std::time::Instant::now() < deadline, "no admin.conf");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = Client::from_config(&admin_conf, None).unwrap();
    client.wait_ready(Duration::from_secs(20)).await.unwrap();
    let pod = Pod {
        metadata: ObjectMeta {
            name: "solo".into(),
            ..Default::default()
        },
        spec: PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: "busybox".into(),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    client.create(&pod).await.unwrap();
    let mut watch = client.watch::<Pod>(WatchParams {
        namespace: Some("default".into()),
        ..Default::default()
    });
    match watch.next().await {
        Some(Ok(WatchEvent::Added(p))) => assert_eq!(p.metadata.name, "solo"),
        other => panic!("expected the existing pod first, got {other:?}"),
    }

    // The member's metrics tell the same story: it leads, took the create, serves the watch
    // (the SDK may hand out the listed pod before its watch call is set up: polled).
    let lines = [
        "skiff_raft_is_leader 1",
        "skiff_raft_has_leader 1",
        "skiff_apiserver_request_total{verb=\"CREATE\",resource=\"pods\",code=\"OK\"} 1",
        "skiff_apiserver_watches 1",
        "skiff_apiserver_storage_objects{resource=\"pods\"} 1",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(metrics_address).await;
        let missing: Vec<&str> = lines
            .into_iter()
            .filter(|line| !text.lines().any(|l| l == *line))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {missing:?} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop.send(()).unwrap();
    // An open watch must not keep the server from stopping.
    let result = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("run returns after shutdown even with a watch open");
    result.unwrap().unwrap();
}

/// The body of `GET /metrics` from `address`.
async fn scrape(address: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_string()
}
