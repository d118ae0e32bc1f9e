//! No single event stops the cluster: a member killed in a new cluster's first seconds, a
//! member that lost its data, and requests too large for the replication path.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::json;
use skiff_api::Kind;
use skiff_api::types::Namespace;
use skiff_client::Client;
use skiff_tests::chaos::RegisterLoad;
use skiff_tests::cluster::{
    ControlPlaneCluster, ControlPlaneClusterBuilder, eventually, free_port,
};
use skiff_tests::linearizability::{self, History};
use skiff_tests::proxy::DelayProxy;

const STARTUP: Duration = Duration::from_secs(30);
const MIB: usize = 1024 * 1024;

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

/// Creates namespace `name` through `client`, retrying (transparently or here) until it
/// is acknowledged or the deadline passes; AlreadyExists counts as done.
async fn create_until(client: &Client, name: &str, deadline: Instant) -> anyhow::Result<()> {
    loop {
        match client.create(&namespace(name)).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_already_exists() => return Ok(()),
            Err(e) if Instant::now() >= deadline => anyhow::bail!("create {name}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Waits until some member answers cluster status: "the cluster first answers".
async fn first_answer(cluster: &ControlPlaneCluster) -> Instant {
    let client = cluster.client_for(&cluster.endpoints(), Duration::from_millis(300));
    loop {
        if client.cluster_status().await.is_ok() {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One round: a fresh cluster, member `victim` killed at a random moment within 2 s of its
/// first answer. Returns how long the other two took to acknowledge a write.
async fn early_kill_round(victim: u64, rng: &mut impl Rng) -> anyhow::Result<Duration> {
    let mut cluster = ControlPlaneCluster::start(3)?;
    first_answer(&cluster).await;
    // Writes go on from the start; every acknowledged one must survive.
    let writer_client = cluster.client_for(&cluster.endpoints(), Duration::from_secs(2));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("early-{n}");
                n += 1;
                if writer_client.create(&namespace(&name)).await.is_ok() {
                    acked.push(name);
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..2000))).await;
    cluster.kill(victim);
    let killed = Instant::now();
    let others: Vec<String> = (1..=3)
        .filter(|id| *id != victim)
        .map(|id| cluster.endpoint(id))
        .collect();
    let survivors = cluster.client_for(&others, Duration::from_secs(3));
    create_until(&survivors, "after-kill", killed + Duration::from_secs(10)).await?;
    let took = killed.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.await?;
    anyhow::ensure!(
        took <= Duration::from_secs(3),
        "member {victim} killed: the other two took {took:?} to accept a write\n{}",
        cluster.logs()
    );
    // The victim comes back and holds every acknowledged write.
    cluster.restart(victim);
    let back = cluster.client_for(&[cluster.endpoint(victim)], Duration::from_secs(2));
    for name in acked
        .iter()
        .chain(std::iter::once(&"after-kill".to_string()))
    {
        eventually(STARTUP, || {
            let back = back.clone();
            let name = name.clone();
            async move { Ok(back.get::<Namespace>("", &name).await?) }
        })
        .await
        .map_err(|e| {
            anyhow::anyhow!("acknowledged {name} lost after member {victim} came back: {e}")
        })?;
    }
    Ok(took)
}

/// Kills per victim: 30 for member 1 (the one that used to bootstrap alone), 10 for the
/// others — about 2.5 s a round, so CI spends two minutes here (100 rounds of member 1 took
/// five); `SKIFF_EARLY_KILL_ROUNDS=N` runs N for every member (issue 20's closing runs used
/// 100), and `SKIFF_EARLY_KILL_VICTIMS=2,3` picks the members killed (default all three).
fn rounds(victim: u64) -> usize {
    match std::env::var("SKIFF_EARLY_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => n,
        None if victim == 1 => 30,
        None => 10,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_keeps_taking_writes_when_any_member_dies_in_its_first_two_seconds() {
    let seed = rand::random::<u64>();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let victims: Vec<u64> = std::env::var("SKIFF_EARLY_KILL_VICTIMS")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|id| id.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1, 2, 3]);
    for victim in victims {
        let mut took = Vec::new();
        for round in 0..rounds(victim) {
            let t = early_kill_round(victim, &mut rng)
                .await
                .unwrap_or_else(|e| panic!("seed {seed}, member {victim}, round {round}: {e:#}"));
            took.push(t);
        }
        took.sort();
        eprintln!(
            "member {victim} killed {} times: writes back after median {:?}, max {:?}",
            took.len(),
            took[took.len() / 2],
            took.last().unwrap()
        );
    }
}

async fn started(cluster: &ControlPlaneCluster) -> Client {
    cluster.wait_for_leader(STARTUP).await.expect("a leader");
    let client = cluster.client();
    create_until(&client, "warmup", Instant::now() + STARTUP)
        .await
        .unwrap();
    client
}

/// Waits until the cluster records `id` as a member that held data.
async fn recorded_started(client: &Client, id: u64) {
    eventually(STARTUP, || async {
        let status = client.cluster_status().await?;
        anyhow::ensure!(
            status
                .members
                .iter()
                .any(|m| m.started_members.contains(&id)),
            "member {id} not recorded yet"
        );
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_started_as_new_is_refused_with_a_clear_error() {
    let mut cluster = ControlPlaneCluster::start(3).unwrap();
    let client = started(&cluster).await;
    recorded_started(&client, 1).await;
    cluster.kill(1);
    std::fs::remove_dir_all(cluster.data_dir(1)).unwrap();
    cluster.restart(1);
    let code = cluster.wait_exit(1, Duration::from_secs(20));
    let log = cluster.log_of(1);
    assert_eq!(code, Some(2), "a wiped member must be refused\n{log}");
    assert!(
        log.contains("lost its data") && log.contains("--initial-cluster-state existing"),
        "the refusal says what happened and what to do:\n{log}"
    );
    // The other two serve on, unharmed.
    create_until(&client, "after-refusal", Instant::now() + STARTUP)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_the_cluster_does_not_know_is_refused_as_new() {
    let mut cluster = ControlPlaneCluster::start(3).unwrap();
    started(&cluster).await;
    let id = cluster.add_member();
    // add_member passes `existing`; started as `new` it must not form a cluster of its own.
    cluster.kill(id);
    cluster.set_member_args(id, &["--initial-cluster-state", "new"]);
    let _ = std::fs::remove_dir_all(cluster.data_dir(id));
    cluster.restart(id);
    assert_eq!(
        cluster.wait_exit(id, Duration::from_secs(20)),
        Some(2),
        "{}",
        cluster.log_of(id)
    );
    assert!(cluster.log_of(id).contains("already runs without member"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_rejoining_as_existing_keeps_every_write_linearizable() {
    let mut cluster = ControlPlaneCluster::start(3).unwrap();
    let client = started(&cluster).await;
    let keys: Vec<String> = (0..4).map(|i| format!("reg-{i}")).collect();
    for key in &keys {
        create_until(&client, key, Instant::now() + STARTUP)
            .await
            .unwrap();
    }
    recorded_started(&client, 2).await;
    let history = History::new();
    let load = RegisterLoad::start(&cluster.endpoints(), &keys, &history, 3, 2, 7);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Member 2 loses its data and comes back as `existing`.
    cluster.kill(2);
    std::fs::remove_dir_all(cluster.data_dir(2)).unwrap();
    cluster.set_member_args(2, &["--initial-cluster-state", "existing"]);
    cluster.restart(2);
    let marker = cluster.data_dir(2).join("rejoining");
    eventually(STARTUP, || {
        let marker = marker.clone();
        async move {
            anyhow::ensure!(!marker.exists(), "still rejoining");
            Ok(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_of(2)));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Now its vote counts: take another member away, so member 2 is needed for a quorum.
    let leader = cluster.wait_for_leader(STARTUP).await.unwrap();
    let other = if leader != 2 { leader } else { 1 };
    cluster.kill(other);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart(other);
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await.unwrap();

    let ops = history.operations();
    let written_late = ops
        .iter()
        .filter(|o| o.outcome == linearizability::Outcome::Written)
        .count();
    assert!(written_late > 0, "no write acknowledged: {ops:?}");
    if let Err(v) = linearizability::check(&ops) {
        panic!(
            "not linearizable across the rejoin: {v}\n{}",
            cluster.logs()
        );
    }
    // One cluster, every member a voter again.
    let status = client.cluster_status().await.unwrap();
    assert!(status.members.iter().all(|m| m.voter), "{status:?}");
}

/// A pod whose one env value is `bytes` long.
fn big_pod(name: &str, bytes: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{
            "name": "main", "image": "busybox", "command": ["sleep", "1"],
            "env": [{"name": "BLOB", "value": "x".repeat(bytes)}]
        }]}
    }))
    .unwrap()
}

async fn term_of(client: &Client) -> u64 {
    client.cluster_status().await.unwrap().term
}

/// Objects of 1, 3 and 8 MiB replicate to every member; a request far over the cap is
/// refused; afterwards writes are prompt and nothing called an election.
async fn request_of_death(cluster: &ControlPlaneCluster, client: &Client, write_within: Duration) {
    let term = term_of(client).await;
    for mib in [1, 3, 8] {
        let name = format!("blob-{mib}");
        client
            .create_raw(Kind::Pod, &big_pod(&name, mib * MIB))
            .await
            .unwrap_or_else(|e| panic!("{mib} MiB pod: {e}\n{}", cluster.logs()));
        for endpoint in cluster.endpoints() {
            let one = cluster.client_for(std::slice::from_ref(&endpoint), Duration::from_secs(20));
            let pod = one.get_raw(Kind::Pod, "default", &name).await.unwrap();
            assert_eq!(
                pod["spec"]["containers"][0]["env"][0]["value"]
                    .as_str()
                    .map(str::len),
                Some(mib * MIB),
                "{endpoint} holds {name} whole"
            );
        }
    }
    let refused = client
        .create_raw(Kind::Pod, &big_pod("blob-64", 64 * MIB))
        .await
        .expect_err("a 64 MiB request is over the cap");
    assert!(
        refused.to_string().contains("too large"),
        "the refusal names the size: {refused}"
    );
    for i in 0..20 {
        let started = Instant::now();
        client
            .create(&namespace(&format!("after-{i}")))
            .await
            .unwrap_or_else(|e| panic!("write {i} after the big ones: {e}\n{}", cluster.logs()));
        let took = started.elapsed();
        assert!(took <= write_within, "write {i} took {took:?}");
    }
    let now = term_of(client).await;
    assert_eq!(
        now,
        term,
        "no election: the term stayed {term}\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_replicate_and_an_oversized_request_is_refused_without_an_election() {
    // The caps raised so that an 8 MiB object is a legal request and a legal object.
    let cluster = ControlPlaneCluster::start_with(
        3,
        &[
            "--max-request-bytes",
            "10485760",
            "--max-object-bytes",
            "10485760",
        ],
    )
    .unwrap();
    let client = started(&cluster).await;
    request_of_death(&cluster, &client, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_replicate_over_a_slow_link_between_members() {
    // 100 ms each way (200 ms added to every round trip) and 32 MiB/s between members;
    // Raft timing set for such a link as etcd advises (heartbeat about the round trip,
    // elections ten times that).
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut proxies = Vec::new();
    let mut advertise = BTreeMap::new();
    for (i, port) in ports.iter().enumerate() {
        let upstream = format!("127.0.0.1:{port}").parse().unwrap();
        let proxy = DelayProxy::start(upstream, Duration::from_millis(100), 32 * MIB as u64)
            .await
            .unwrap();
        advertise.insert(i as u64 + 1, proxy.address().to_string());
        proxies.push(proxy);
    }
    let cluster = ControlPlaneClusterBuilder::new(3)
        .through(ports, advertise)
        .arg("--max-request-bytes")
        .arg("10485760")
        .arg("--max-object-bytes")
        .arg("10485760")
        .arg("--heartbeat-interval")
        .arg("500ms")
        .arg("--election-timeout-min")
        .arg("2500ms")
        .arg("--election-timeout-max")
        .arg("5000ms")
        .start()
        .unwrap();
    let client = started(&cluster).await;
    request_of_death(&cluster, &client, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_caps_take_a_one_mib_object_refuse_a_two_mib_object_and_a_four_mib_request() {
    let cluster = ControlPlaneCluster::start(3).unwrap();
    let client = started(&cluster).await;
    client
        .create_raw(Kind::Pod, &big_pod("one", MIB))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    // Under the 3 MiB request cap, over the 1.5 MiB object cap.
    let refused = client
        .create_raw(Kind::Pod, &big_pod("two", 2 * MIB))
        .await
        .expect_err("over the 1.5 MiB default object cap");
    assert!(refused.is_invalid(), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("larger than the limit of 1.5 MiB (1572864 bytes, --max-object-bytes)"),
        "{refused}"
    );
    let refused = client
        .create_raw(Kind::Pod, &big_pod("four", 4 * MIB))
        .await
        .expect_err("over the 3 MiB default request cap");
    assert!(
        refused
            .to_string()
            .contains("the limit is: 3145728 bytes (the server's --max-request-bytes)"),
        "{refused}"
    );
    for name in ["two", "four"] {
        let missing = client.get_raw(Kind::Pod, "default", name).await;
        assert!(
            missing.as_ref().is_err_and(|e| e.is_not_found()),
            "{name}: {missing:?}"
        );
    }
}
