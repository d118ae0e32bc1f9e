//! The library entry point in-process: a single-node cluster on port 0, driven through the
//! SDK, and a clean stop while a watch is open.

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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(config, listener, async {
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

    stop.send(()).unwrap();
    // An open watch must not keep the server from stopping.
    let result = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("run returns after shutdown even with a watch open");
    result.unwrap().unwrap();
}
