//! A bounded control plane: requests and objects over their caps are refused by name and
//! change nothing, lists come in pages of one consistent state, watches per connection are
//! capped, a watcher that stops reading is closed with "too old", and a thousand watchers
//! leave a member's memory bounded while writes go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use skiff_api::Kind;
use skiff_api::proto::objects_client::ObjectsClient;
use skiff_api::proto::{WatchEvent, WatchRequest};
use skiff_api::types::Namespace;
use skiff_client::{Client, ListParams, MetadataPatch};
use skiff_tests::cluster::{ControlPlaneCluster, eventually};
use tonic::Code;
use tonic::transport::Channel;

const MIB: usize = 1024 * 1024;
const KIB: usize = 1024;

/// One member with `args`, serving.
async fn member(args: &[&str]) -> (ControlPlaneCluster, Client) {
    let cluster = ControlPlaneCluster::start_with(1, args).expect("start the control plane");
    let client = cluster.client();
    client
        .wait_ready(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    (cluster, client)
}

/// The member's resident memory, from /proc/PID/status.
fn rss_bytes(cluster: &ControlPlaneCluster) -> usize {
    let pid = cluster.pid(1).expect("member 1 runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * KIB
}

/// A pod whose one env value is `bytes` long.
fn big_pod(name: &str, bytes: usize) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{
            "name": "main", "image": "busybox", "command": ["sleep", "1"],
            "env": [{"name": "BLOB", "value": "x".repeat(bytes)}]
        }]}
    })
}

/// A namespace carrying an annotation of `bytes`.
fn namespace(name: &str, bytes: usize) -> Namespace {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "annotations": {"pad": "x".repeat(bytes)}}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mib_request_is_refused_naming_its_limit_and_the_member_serves_on() {
    let (cluster, client) = member(&[]).await;
    let before = client
        .list_raw(Kind::Pod, &ListParams::namespace("default"))
        .await
        .unwrap();
    let bytes = serde_json::to_vec(&big_pod("huge", 10 * MIB)).unwrap();
    let refused = client
        .create_raw(Kind::Pod, &bytes)
        .await
        .expect_err("a 10 MiB request is over the 3 MiB cap");
    assert!(refused.is_invalid(), "{refused}");
    let message = refused.to_string();
    let found: usize = message
        .split_once("found ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the refusal names the size: {message}"));
    assert!(found > bytes.len(), "{message}");
    assert!(
        message.contains("the limit is: 3145728 bytes (the server's --max-request-bytes)"),
        "the refusal names the limit: {message}"
    );
    client
        .create(&namespace("after", 10))
        .await
        .unwrap_or_else(|e| panic!("the member serves on: {e}\n{}", cluster.logs()));
    let after = client
        .list_raw(Kind::Pod, &ListParams::namespace("default"))
        .await
        .unwrap();
    assert_eq!(after.items, before.items, "the store is unchanged");
    assert!(cluster.is_running(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_over_the_cap_is_refused_on_every_write_path_and_the_store_is_unchanged() {
    let (cluster, client) = member(&[]).await;
    let names_the_cap = |e: &skiff_client::Error| {
        e.is_invalid()
            && e.to_string()
                .contains("larger than the limit of 1.5 MiB (1572864 bytes, --max-object-bytes)")
    };
    let refused = client
        .create_raw(
            Kind::Pod,
            &serde_json::to_vec(&big_pod("two", 2 * MIB)).unwrap(),
        )
        .await
        .expect_err("create over the cap");
    assert!(names_the_cap(&refused), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("pods \"two\": object is 2.0 MiB"),
        "{refused}"
    );
    assert!(
        client
            .get_raw(Kind::Pod, "default", "two")
            .await
            .unwrap_err()
            .is_not_found()
    );

    // 1.4 MiB: under the cap, with no room for a 200 KiB annotation or status.
    let pod = big_pod("grows", 1400 * KIB);
    let stored = client
        .create_raw(Kind::Pod, &serde_json::to_vec(&pod).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));

    let mut bigger = stored.clone();
    // A pod's spec is immutable: it grows by an annotation.
    bigger["metadata"]["annotations"] = json!({"pad": "y".repeat(200 * KIB)});
    let refused = client
        .update_raw(Kind::Pod, &serde_json::to_vec(&bigger).unwrap())
        .await
        .expect_err("update over the cap");
    assert!(names_the_cap(&refused), "{refused}");

    let patch = MetadataPatch::default().set_annotation("pad", "z".repeat(200 * KIB));
    let refused = client
        .patch_raw(Kind::Pod, "default", "grows", &patch)
        .await
        .expect_err("patch over the cap");
    assert!(names_the_cap(&refused), "{refused}");

    let mut status = stored.clone();
    status["status"] = json!({"phase": "Pending", "message": "m".repeat(200 * KIB)});
    let refused = client
        .update_status_raw(Kind::Pod, &serde_json::to_vec(&status).unwrap())
        .await
        .expect_err("status update over the cap");
    assert!(names_the_cap(&refused), "{refused}");

    // (The scheduler may have written the pod's status meanwhile: compare the parts the
    // refused writes would have changed.)
    let now = client.get_raw(Kind::Pod, "default", "grows").await.unwrap();
    assert!(
        now["metadata"].get("annotations").is_none(),
        "{}",
        now["metadata"]
    );
    assert_ne!(now["status"]["message"], status["status"]["message"]);
    assert_eq!(now["spec"], stored["spec"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_over_256_kib_are_refused_on_create_update_and_patch() {
    let (_cluster, client) = member(&[]).await;
    let too_long = "metadata.annotations: Too long: must have at most 262144 bytes";
    let refused = client
        .create(&namespace("wide", 300 * KIB))
        .await
        .expect_err("create");
    assert!(
        refused.is_invalid() && refused.to_string().contains(too_long),
        "{refused}"
    );

    let created = client.create(&namespace("narrow", 10)).await.unwrap();
    let mut wide = created.clone();
    wide.metadata
        .annotations
        .insert("pad".into(), "x".repeat(300 * KIB));
    let refused = client
        .update(&wide)
        .await
        .expect_err("update (what apply sends)");
    assert!(
        refused.is_invalid() && refused.to_string().contains(too_long),
        "{refused}"
    );

    // Each patch alone is under the limit; together they are over it.
    let half = || "h".repeat(150 * KIB);
    client
        .patch_raw(
            Kind::Namespace,
            "",
            "narrow",
            &MetadataPatch::default().set_annotation("a", half()),
        )
        .await
        .unwrap();
    let refused = client
        .patch_raw(
            Kind::Namespace,
            "",
            "narrow",
            &MetadataPatch::default().set_annotation("b", half()),
        )
        .await
        .expect_err("the second patch");
    assert!(
        refused.is_invalid() && refused.to_string().contains(too_long),
        "{refused}"
    );
    let stored = client.get_raw(Kind::Namespace, "", "narrow").await.unwrap();
    assert!(stored["metadata"]["annotations"].get("b").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paged_list_serves_every_page_from_the_first_pages_state() {
    let (_cluster, client) = member(&[]).await;
    for i in 0..25 {
        client
            .create(&namespace(&format!("page-{i:02}"), 10))
            .await
            .unwrap();
    }
    let params = ListParams::all_namespaces().labels("").page_size(10);
    let first = client.list_page::<Namespace>(&params, None).await.unwrap();
    assert_eq!(first.items.len(), 10);
    // default plus 25, less the 10 of this page.
    assert_eq!(first.remaining_item_count, Some(16));
    let token = first.continue_token.clone().expect("more pages");

    // Changes after the first page do not show in the later ones.
    client
        .delete_raw(Kind::Namespace, "", "page-24", &Default::default())
        .await
        .unwrap();
    client.create(&namespace("page-99", 10)).await.unwrap();

    let second = client
        .list_page::<Namespace>(&params, Some(&token))
        .await
        .unwrap();
    assert_eq!(second.resource_version, first.resource_version);
    assert_eq!(second.remaining_item_count, Some(6));
    let third = client
        .list_page::<Namespace>(&params, second.continue_token.as_deref())
        .await
        .unwrap();
    assert_eq!(third.continue_token, None);
    assert_eq!(third.remaining_item_count, None);
    let names: Vec<String> = [first.items, second.items, third.items]
        .concat()
        .into_iter()
        .map(|n| n.metadata.name)
        .collect();
    let mut expected: Vec<String> = (0..25).map(|i| format!("page-{i:02}")).collect();
    expected.push("default".into());
    expected.sort();
    assert_eq!(
        names, expected,
        "every object of the first page's state, once, in order"
    );

    // A deleted namespace is Terminating until the namespace controller has emptied and
    // removed it; the lists below are of the state after that.
    skiff_tests::cluster::eventually(Duration::from_secs(10), || async {
        let left = client.get::<Namespace>("", "page-24").await;
        anyhow::ensure!(left.is_err(), "page-24 still there: {left:?}");
        Ok(())
    })
    .await
    .unwrap();
    // The whole list in pages of 7 is the state now.
    let all = client
        .list::<Namespace>(&ListParams::all_namespaces().page_size(7))
        .await
        .unwrap();
    let whole = client
        .list::<Namespace>(&ListParams::all_namespaces())
        .await
        .unwrap();
    let names = |items: &[Namespace]| {
        items
            .iter()
            .map(|n| n.metadata.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&all.items), names(&whole.items));
    assert!(names(&all.items).contains(&"page-99".to_string()));
    assert!(!names(&all.items).contains(&"page-24".to_string()));

    let bad = client
        .list_page::<Namespace>(&params, Some("bm90IGEgdG9rZW4"))
        .await
        .expect_err("a made-up token");
    assert!(
        bad.is_invalid() && bad.to_string().contains("continue: Invalid value"),
        "{bad}"
    );
    let pods = ListParams::namespace("default").page_size(10);
    let other = client
        .list_page::<skiff_api::types::Pod>(&pods, Some(&token))
        .await
        .expect_err("a namespace list's token on a pod list");
    assert!(
        other.to_string().contains("belongs to another list"),
        "{other}"
    );
}

fn objects(channel: Channel) -> ObjectsClient<Channel> {
    ObjectsClient::new(channel).max_decoding_message_size(16 * MIB)
}

fn watch_namespaces(from: u64) -> WatchRequest {
    WatchRequest {
        kind: "Namespace".into(),
        resource_version: from.to_string(),
        ..Default::default()
    }
}

async fn applied(client: &Client) -> u64 {
    client
        .list_raw(Kind::Namespace, &ListParams::all_namespaces())
        .await
        .unwrap()
        .resource_version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_over_the_per_connection_cap_is_refused_naming_it() {
    let (cluster, client) = member(&["--max-watches-per-connection", "4"]).await;
    let from = applied(&client).await;
    let connection = objects(cluster.channel(&cluster.endpoint(1)));
    let mut open = Vec::new();
    for _ in 0..4 {
        let stream = connection
            .clone()
            .watch(watch_namespaces(from))
            .await
            .unwrap();
        open.push(stream.into_inner());
    }
    let refused = connection
        .clone()
        .watch(watch_namespaces(from))
        .await
        .expect_err("a fifth watch on one connection");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("at most 4 at a time (--max-watches-per-connection)"),
        "{refused:?}"
    );
    // Another connection has its own slots.
    let other = objects(cluster.channel(&cluster.endpoint(1)));
    other.clone().watch(watch_namespaces(from)).await.unwrap();
    // A closed watch gives its slot back.
    drop(open.pop());
    eventually(Duration::from_secs(10), || {
        let connection = connection.clone();
        async move {
            let stream = connection.clone().watch(watch_namespaces(from)).await?;
            Ok(stream)
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_is_closed_with_too_old_and_pins_no_more_than_its_budget() {
    // A small history, so what the stalled watcher keeps is its own buffer.
    let (cluster, client) = member(&[
        "--max-watches-per-connection",
        "1",
        "--watch-history-bytes",
        "8388608",
    ])
    .await;
    let from = applied(&client).await;
    let stalled = objects(cluster.channel(&cluster.endpoint(1)));
    let mut never_read = stalled
        .clone()
        .watch(watch_namespaces(from))
        .await
        .unwrap()
        .into_inner();
    let baseline = rss_bytes(&cluster);
    // 400 changes of 100 KiB: 40 MiB, more than the watcher's 16 MiB budget, the 8 MiB
    // history and the transport's buffers together.
    let writes = 400;
    let mut peak = baseline;
    for i in 0..writes {
        client
            .create(&namespace(&format!("stall-{i}"), 100 * KIB))
            .await
            .unwrap_or_else(|e| panic!("write {i} goes on: {e}\n{}", cluster.logs()));
        peak = peak.max(rss_bytes(&cluster));
    }
    // Closed: its connection's one slot is free again (for a watch from now: the small
    // history no longer reaches back to where the stalled one started).
    let started = Instant::now();
    let now = applied(&client).await;
    eventually(Duration::from_secs(30), || {
        let stalled = stalled.clone();
        async move { Ok(stalled.clone().watch(watch_namespaces(now)).await?) }
    })
    .await
    .unwrap_or_else(|e| panic!("the stalled watch was not closed: {e}\n{}", cluster.logs()));
    eprintln!(
        "stalled watcher closed {:?} after the last write; member RSS {} MiB before, peak {} MiB",
        started.elapsed(),
        baseline / MIB,
        peak / MIB
    );
    let mut received = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), never_read.message()).await {
            Ok(Ok(Some(WatchEvent { r#type, .. }))) if r#type == "BOOKMARK" => {}
            Ok(Ok(Some(_))) => received += 1,
            Ok(Ok(None)) => panic!("the stream ended without an error after {received} events"),
            Ok(Err(status)) => break status,
            Err(_) => panic!("no end of the stream after {received} events"),
        }
    };
    assert_eq!(ended.code(), Code::FailedPrecondition, "{ended:?}");
    assert!(
        ended.message().contains("too old") && ended.message().contains("list again"),
        "{ended:?}"
    );
    assert!(
        received < writes,
        "cut short: {received} of {writes} events delivered"
    );
    // Everything written passed through this member once (40 MiB), plus its 64 MiB sled
    // cache: unbounded buffering would add the whole stream again on top.
    assert!(
        peak - baseline < 192 * MIB,
        "member RSS grew {} MiB",
        (peak - baseline) / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sdk_watcher_is_told_too_old_and_wait_for_relists_past_it() {
    let (cluster, client) = member(&["--watch-history-bytes", "8388608"]).await;
    let mut slow = client.watch::<Namespace>(skiff_client::WatchParams::all_namespaces());
    // 90 MiB the slow watcher does not read: more than its SDK buffer (256 events, 50 MiB
    // here), the transport's window and its 16 MiB budget on the member together.
    for i in 0..450 {
        client
            .create(&namespace(&format!("slow-{i}"), 200 * KIB))
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e}\n{}", cluster.logs()));
    }
    let mut events = 0;
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(30), slow.next()).await {
            Ok(Some(Ok(_))) => events += 1,
            Ok(Some(Err(e))) => break e,
            Ok(None) => panic!("ended without an error after {events} events"),
            Err(_) => panic!("no error after {events} events: the watcher was never closed"),
        }
    };
    assert!(error.is_too_old(), "{error}");
    // wait_for lists again after "too old" and still sees the latest state.
    let last = client
        .wait_for::<Namespace, _>("", "slow-449", |n| n.is_some(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(last.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watchers_on_one_member_leave_its_memory_bounded_and_writes_go_on() {
    const WATCHERS: usize = 1000;
    const CONNECTIONS: usize = 4;
    const WRITES: usize = 200;
    let (cluster, client) = member(&[]).await;
    for i in 0..20 {
        client
            .create(&namespace(&format!("warm-{i}"), KIB))
            .await
            .unwrap();
    }
    let from = applied(&client).await;
    let baseline = rss_bytes(&cluster);
    let connections: Vec<_> = (0..CONNECTIONS)
        .map(|_| objects(cluster.channel(&cluster.endpoint(1))))
        .collect();
    let seen = Arc::new(AtomicUsize::new(0));
    let mut watchers = Vec::new();
    for i in 0..WATCHERS {
        let mut stream = connections[i % CONNECTIONS]
            .clone()
            .watch(watch_namespaces(from))
            .await
            .unwrap_or_else(|e| panic!("watch {i}: {e:?}"))
            .into_inner();
        let seen = seen.clone();
        watchers.push(tokio::spawn(async move {
            let mut added = 0;
            while added < WRITES {
                match stream.message().await {
                    Ok(Some(event)) if event.r#type == "ADDED" => {
                        added += 1;
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(format!("ended after {added}")),
                    Err(status) => return Err(format!("failed after {added}: {status:?}")),
                }
            }
            Ok(())
        }));
    }
    let with_watchers = rss_bytes(&cluster);
    let mut peak = with_watchers;
    let mut slowest = Duration::ZERO;
    for i in 0..WRITES {
        let started = Instant::now();
        client
            .create(&namespace(&format!("load-{i}"), KIB))
            .await
            .unwrap_or_else(|e| panic!("write {i} goes on: {e}\n{}", cluster.logs()));
        slowest = slowest.max(started.elapsed());
        peak = peak.max(rss_bytes(&cluster));
    }
    for (i, watcher) in watchers.into_iter().enumerate() {
        tokio::time::timeout(Duration::from_secs(60), watcher)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "watcher {i} did not see every write ({} events in all)",
                    seen.load(Ordering::Relaxed)
                )
            })
            .unwrap()
            .unwrap_or_else(|e| panic!("watcher {i}: {e}"));
        peak = peak.max(rss_bytes(&cluster));
    }
    eprintln!(
        "member RSS: {} MiB before the watchers, {} MiB with them, peak {} MiB; slowest write {slowest:?}",
        baseline / MIB,
        with_watchers / MIB,
        peak / MIB
    );
    assert!(
        peak - baseline < 100 * MIB,
        "1000 watchers grew the member by {} MiB",
        (peak - baseline) / MIB
    );
    assert!(
        slowest < Duration::from_secs(2),
        "slowest write took {slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_writing_events_about_one_object_past_its_burst_is_refused() {
    use skiff_api::events::Note;
    use skiff_api::types::Event;
    let now = || skiff_api::meta::Time::from(std::time::SystemTime::now());
    let (_cluster, client) = member(&[]).await;
    let subject = namespace("noisy", 10);
    let note = |reason: &'static str| {
        Note::about(
            Kind::Namespace,
            &subject.metadata,
            "Warning",
            reason,
            "again".into(),
            "test-spammer",
            Some("node-x".into()),
        )
    };
    // 25 writes: the first creates the event, the next 24 count it up (as a recorder does).
    let mut stored: Option<Event> = None;
    for i in 0..25 {
        let event = note("Flapping").merged_into(stored.as_ref(), now());
        let written = match stored {
            None => client.create(&event).await,
            Some(_) => client.update(&event).await,
        };
        stored = Some(written.unwrap_or_else(|e| panic!("event write {i}: {e}")));
    }
    assert_eq!(
        stored.as_ref().unwrap().count,
        Some(25),
        "repeats merge by count"
    );
    let event = note("Flapping").merged_into(stored.as_ref(), now());
    let refused = client.update(&event).await.expect_err("the 26th write");
    assert!(
        refused
            .to_string()
            .contains("limited to a burst of 25 and one more every 5 minutes"),
        "{refused}"
    );
    // Another event from the same source about the same object shares the bucket; another
    // source does not.
    let other = note("Other").merged_into(None, now());
    assert!(client.create(&other).await.is_err());
    let mut elsewhere = note("Other");
    elsewhere.component = "test-other-source";
    client
        .create(&elsewhere.merged_into(None, now()))
        .await
        .unwrap();
    let kept: Event = client
        .get(
            note("Flapping").event_namespace(),
            &note("Flapping").event_name(),
        )
        .await
        .unwrap();
    assert_eq!(kept.count, Some(25), "the refused write changed nothing");
}

/// Runs `skiff` as the cluster's admin: its exit code and stdout.
fn skiff(cluster: &ControlPlaneCluster, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(skiff_tests::cluster::binary("skiff"))
        .arg("--config")
        .arg(cluster.admin_conf())
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_in_chunks_prints_every_object_once_as_one_list_does() {
    let (cluster, client) = member(&[]).await;
    for i in 0..12 {
        client
            .create(&namespace(&format!("chunk-{i:02}"), 10))
            .await
            .unwrap();
    }
    let names = |out: &str| -> Vec<String> {
        out.lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };
    let (code, whole) = skiff(&cluster, &["get", "namespaces", "--chunk-size", "0"]);
    assert_eq!(code, 0, "{whole}");
    let mut expected: Vec<String> = (0..12).map(|i| format!("chunk-{i:02}")).collect();
    expected.push("default".into());
    expected.sort();
    assert_eq!(names(&whole), expected, "{whole}");
    for chunk in ["1", "5", "13", "500"] {
        let (code, out) = skiff(&cluster, &["get", "namespaces", "--chunk-size", chunk]);
        assert_eq!(code, 0, "{out}");
        assert_eq!(names(&out), expected, "--chunk-size {chunk}: {out}");
    }
    let (code, out) = skiff(&cluster, &["get", "namespaces", "--chunk-size", "-1"]);
    assert_ne!(code, 0, "{out}");
}
