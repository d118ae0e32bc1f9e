//! `skiff image import | ls | rm` end to end: a three-node control plane, one real
//! `skiff-agent` (process runtime: the image store works whatever the runtime), and the
//! `skiff` binary talking only to the control plane, which proxies to the agent. The busybox
//! archive is built here (`skiff_tests::images`). Needs root and /bin/busybox like the other
//! agent tests; skipped otherwise unless SKIFF_REQUIRE_PRIVILEGED is set.
//!
//! `skiff image push IMAGE` on a cluster as `skiff up` makes it (oci agents, a registry on
//! the underlay): also runc and docker-registry.

use std::path::Path;
use std::time::Duration;

use skiff_api::types::Node;
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, eventually, skiff_cli as skiff};
use skiff_tests::host::BUSYBOX;
use skiff_tests::images::{BusyboxImage, busybox_docker_archive};
use skiff_tests::multihost::MultiHost;

const READY: Duration = Duration::from_secs(30);
const TAG: &str = "skiff-test/busybox:e2e";
const REFERENCE: &str = "docker.io/skiff-test/busybox:e2e";

fn uploads_left(agent: &AgentProcess) -> Vec<String> {
    match std::fs::read_dir(agent.data_dir().join("image-uploads")) {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .map(|e| e.path().display().to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_ls_rm_through_the_control_plane() {
    if !skiff_tests::host::privileged_tests_can_run() {
        return;
    }
    let cluster = ControlPlaneCluster::start(3).expect("start control plane");
    let client = cluster.client();
    client.wait_ready(READY).await.expect("cluster ready");
    let agent = AgentProcess::start("node-1", &cluster.endpoints(), &[]).expect("start agent");
    eventually(READY, || async {
        let node = client.get::<Node>("", "node-1").await?;
        anyhow::ensure!(node.is_ready(), "node not ready");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    let servers = cluster.endpoints().join(",");
    let log = || agent.log();

    let dir = tempfile::tempdir().unwrap();
    let archive = busybox_docker_archive(&std::fs::read(BUSYBOX).unwrap(), TAG);
    let good = dir.path().join("busybox.tar");
    std::fs::write(&good, &archive).unwrap();
    // A byte flipped in the middle of the busybox binary: the layer's digest no longer
    // matches what the manifest and config say.
    let mut flipped = archive.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    let corrupt = dir.path().join("corrupt.tar");
    std::fs::write(&corrupt, &flipped).unwrap();
    let path = |p: &Path| p.display().to_string();

    // Nothing yet.
    let (code, empty, err) = skiff(&servers, &["image", "ls"]);
    assert_eq!(code, 0, "{err}\n{}", log());
    assert_eq!(empty, "NODE   IMAGE   ID   SIZE   CREATED\n");

    // Import.
    let (code, out, err) = skiff(
        &servers,
        &["image", "import", &path(&good), "--node", "node-1"],
    );
    assert_eq!(code, 0, "{err}\n{}", log());
    let prefix = format!("node-1: imported {REFERENCE} (sha256:");
    assert!(
        out.starts_with(&prefix) && out.ends_with(")\n") && out.lines().count() == 1,
        "{out}"
    );
    let short_id = out[prefix.len()..out.len() - 2].to_string();
    assert_eq!(short_id.len(), 12, "{out}");

    // Listed, on every Ready node and on the one named.
    let (code, listed, err) = skiff(&servers, &["image", "ls"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("NODE "), "{listed}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &row[..3],
        &["node-1", REFERENCE, short_id.as_str()],
        "{listed}"
    );
    assert!(row[3].ends_with("MB") || row[3].ends_with("kB"), "{listed}");
    assert_eq!(row[5..], ["ago"], "{listed}");
    let (code, on_node, err) = skiff(&servers, &["image", "ls", "--node", "node-1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(on_node, listed);
    let images = client.list_images("node-1").await.unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].references, vec![REFERENCE.to_string()]);

    // A corrupt archive is refused, naming the problem, and changes nothing.
    let (code, out, err) = skiff(
        &servers,
        &["image", "import", &path(&corrupt), "--node", "node-1"],
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        err.starts_with("Error from server (Invalid): ") && err.contains("mismatch"),
        "{err}"
    );
    let (_, after, _) = skiff(&servers, &["image", "ls"]);
    assert_eq!(after, listed);
    assert!(
        uploads_left(&agent).is_empty(),
        "{:?}",
        uploads_left(&agent)
    );

    // Errors named clearly: a missing file, a node that does not exist, no target.
    let missing = dir.path().join("missing.tar");
    let (code, _, err) = skiff(
        &servers,
        &["image", "import", &path(&missing), "--node", "node-1"],
    );
    assert_ne!(code, 0);
    assert_eq!(
        err,
        format!("error: the path \"{}\" does not exist\n", path(&missing))
    );
    let (code, _, err) = skiff(
        &servers,
        &["image", "import", &path(&good), "--node", "nope"],
    );
    assert_ne!(code, 0);
    assert_eq!(
        err,
        "Error from server (NotFound): nodes \"nope\" not found\n"
    );
    let (code, _, err) = skiff(&servers, &["image", "ls", "--node", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("nodes \"nope\" not found"), "{err}");
    let (code, _, err) = skiff(&servers, &["image", "import", &path(&good)]);
    assert_ne!(code, 0);
    assert!(err.contains("--all-nodes"), "{err}");

    // Importing again changes nothing.
    let (code, out, err) = skiff(&servers, &["image", "import", &path(&good), "--all-nodes"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("node-1: unchanged {REFERENCE} (sha256:{short_id})\n")
    );

    // Remove: untagged and deleted, and gone from the list.
    let (code, out, err) = skiff(&servers, &["image", "rm", TAG, "--node", "node-1"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], format!("node-1: untagged {REFERENCE}"));
    assert!(lines[1].starts_with("node-1: deleted sha256:"), "{out}");
    let (code, out, _) = skiff(&servers, &["image", "ls"]);
    assert_eq!(code, 0);
    assert_eq!(out, empty);

    // An unknown reference: NotFound, non-zero exit.
    let (code, out, err) = skiff(&servers, &["image", "rm", TAG, "--node", "node-1"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.starts_with("Error from server (NotFound): ") && err.contains("not found"),
        "{err}"
    );

    // --all-nodes: every Ready node (here the one).
    let (code, out, err) = skiff(&servers, &["image", "import", &path(&good), "--all-nodes"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("node-1: imported {REFERENCE} (sha256:{short_id})\n")
    );
    let (code, out, err) = skiff(&servers, &["image", "rm", &short_id, "--all-nodes"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("node-1: untagged {REFERENCE}\n")),
        "{out}"
    );
    assert!(
        uploads_left(&agent).is_empty(),
        "{:?}",
        uploads_left(&agent)
    );
}

/// An image only a node's store has goes from there into a registry with the node's own
/// manifest (the same digest), by a Docker Hub name into the local cluster's registry and
/// by a full name into the registry it names; a pod then pulls it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_of_a_nodes_store_is_pushed_into_a_registry_and_pulled_back() {
    if !skiff_tests::host::oci_tests_can_run(true) {
        return;
    }
    let cluster = MultiHost::start_local(1, &[]).await.expect("local cluster");
    let registry = cluster.registry.as_ref().expect("the underlay's registry");
    let full = format!("{}/skiff-test/copy:v2", registry.host());
    // Imported through the SDK, which puts it on the node alone (the CLI's import would
    // push it into the local registry too).
    let image = BusyboxImage::with_applets(&std::fs::read(BUSYBOX).unwrap());
    let tags = ["skiff-test/pushed:v1", full.as_str()];
    let layers = std::slice::from_ref(&image.layer);
    let archive = skiff_image::DockerSave::new(&image.config, layers, &tags)
        .tar()
        .unwrap();
    let imported = cluster
        .api(move |client| async move {
            let archive = std::io::Cursor::new(archive);
            client.import_image("host-1", archive).await
        })
        .await
        .unwrap();
    let digest = imported[0].image.clone().unwrap_or_default().digest;
    assert!(registry.manifest("skiff-test/pushed", "v1").await.is_err());

    let (code, out, err) = cluster.skiff(&["image", "push", "skiff-test/pushed:v1"]);
    assert_eq!(
        (code, out, err.as_str()),
        (
            0,
            format!(
                "host-1: pushed skiff-test/pushed:v1 to {}/skiff-test/pushed:v1 ({digest})\n",
                registry.host()
            ),
            ""
        )
    );
    let (served, _) = registry.manifest("skiff-test/pushed", "v1").await.unwrap();
    assert_eq!(served, digest);
    let (code, out, err) = cluster.skiff(&["image", "push", &full, "--node", "host-1"]);
    assert_eq!(
        (code, out, err.as_str()),
        (
            0,
            format!("host-1: pushed {full} to {full} ({digest})\n"),
            ""
        )
    );
    let (served, _) = registry.manifest("skiff-test/copy", "v2").await.unwrap();
    assert_eq!(served, digest);

    // What no node has is named as missing; a digest names no tag.
    let (code, _, err) = cluster.skiff(&["image", "push", "skiff-test/none:v1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "no file \"skiff-test/none:v1\", and no Ready node has an image skiff-test/none:v1"
        ),
        "{err}"
    );
    let (code, _, err) = cluster.skiff(&["image", "push", &format!("skiff-test/pushed@{digest}")]);
    assert_eq!(code, 1);
    assert!(err.contains("a digest names no tag to push"), "{err}");

    // Gone from the node, the image comes back from the registry for a pod.
    cluster.skiff(&["image", "rm", &digest, "--node", "host-1"]);
    let (_, listed, _) = cluster.skiff(&["image", "ls", "--node", "host-1"]);
    assert!(!listed.contains("skiff-test/pushed"), "{listed}");
    let run = [
        "run",
        "back",
        "--image=skiff-test/pushed:v1",
        "--",
        "sleep",
        "3600",
    ];
    assert_eq!(cluster.skiff(&run).0, 0);
    let wait = ["wait", "--for=condition=Ready", "pod/back", "--timeout=60s"];
    let (code, out, err) = cluster.skiff(&wait);
    assert_eq!(code, 0, "{out}{err}\n{}", cluster.logs());
    let (_, listed, _) = cluster.skiff(&["image", "ls", "--node", "host-1"]);
    assert!(
        listed.contains("docker.io/skiff-test/pushed:v1"),
        "{listed}"
    );
}
