//! The `skiff` binary against a live 3-node control plane and a real agent (root and
//! busybox needed for the pod parts; skipped otherwise unless SKIFF_REQUIRE_PRIVILEGED).

use std::process::Command;
use std::time::{Duration, Instant};

use skiff_api::types::Node;
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, binary, eventually, skiff_cli as skiff};

use skiff_tests::host::BUSYBOX;
const SETTLE: Duration = Duration::from_secs(30);

fn runnable() -> bool {
    skiff_tests::host::privileged_tests_can_run()
}

async fn eventually_skiff(
    servers: &str,
    args: &[&str],
    check: impl Fn(i32, &str) -> bool,
) -> String {
    let last = std::cell::RefCell::new(String::new());
    let result = eventually(SETTLE, || async {
        let (code, out, err) = skiff(servers, args);
        *last.borrow_mut() = format!("exit {code}\n{out}{err}");
        anyhow::ensure!(check(code, &out), "not yet");
        Ok(out)
    })
    .await;
    result.unwrap_or_else(|_| panic!("skiff {args:?} never matched:\n{}", last.borrow()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_through_its_life_with_kubectl_habits() {
    if !runnable() {
        return;
    }
    let cluster = ControlPlaneCluster::start(3).expect("control plane");
    let servers = cluster.endpoints().join(",");
    let client = cluster.client();
    client.wait_ready(SETTLE).await.unwrap();
    let agent = AgentProcess::start("node-1", &cluster.endpoints(), &[]).expect("agent");
    eventually(SETTLE, || async {
        let node = client.get::<Node>("", "node-1").await?;
        anyhow::ensure!(skiff_tests::nodes::is_ready(&node));
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));

    let out = eventually_skiff(&servers, &["get", "nodes"], |code, out| {
        code == 0 && out.contains("node-1   Ready")
    })
    .await;
    assert!(
        out.starts_with("NAME     STATUS   ROLES    AGE   VERSION\n"),
        "{out}"
    );

    // The pod comes from a manifest, as a user writes it.
    let manifests = tempfile::tempdir().unwrap();
    let hello = manifests.path().join("hello.yaml");
    std::fs::write(
        &hello,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\n  labels:\n    app: hello\n\
             spec:\n  containers:\n  - name: main\n    image: busybox\n    command:\n\
             \x20   - {BUSYBOX}\n    - sh\n    - -c\n\
             \x20   - \"echo hello; trap 'echo bye; exit 0' TERM; while true; do busybox sleep 0.1; done\"\n"
        ),
    )
    .unwrap();
    let hello = hello.display().to_string();
    let (code, out, err) = skiff(&servers, &["apply", "-f", &hello]);
    assert_eq!((code, out.as_str()), (0, "pod/hello created\n"), "{err}");
    eventually_skiff(&servers, &["get", "pods"], |code, out| {
        code == 0
            && out.lines().any(|l| {
                l.split_whitespace().take(4).collect::<Vec<_>>() == ["hello", "1/1", "Running", "0"]
            })
    })
    .await;

    // Labels: set, refuse to change without --overwrite, select.
    let (code, out, _) = skiff(&servers, &["label", "pod", "hello", "tier=web"]);
    assert_eq!((code, out.as_str()), (0, "pod/hello labeled\n"));
    let (code, _, err) = skiff(&servers, &["label", "pod", "hello", "tier=db"]);
    assert_ne!(code, 0, "changing a label needs --overwrite");
    assert!(err.contains("tier"), "{err}");
    let (code, out, _) = skiff(&servers, &["get", "pods", "-l", "tier=web", "-o", "name"]);
    assert_eq!((code, out.as_str()), (0, "pod/hello\n"));
    let (code, out, _) = skiff(&servers, &["get", "pods", "-l", "tier in (db)"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "No resources found in default namespace.\n")
    );

    let (code, out, _) = skiff(
        &servers,
        &[
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=node-1",
            "-L",
            "tier",
            "--show-labels",
        ],
    );
    assert_eq!(code, 0);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "READY", "STATUS", "RESTARTS", "AGE", "TIER", "LABELS"
        ]
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[5..], ["web", "app=hello,tier=web"], "{out}");
    let (code, out, _) = skiff(
        &servers,
        &["get", "pods", "--field-selector", "spec.nodeName=elsewhere"],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "No resources found in default namespace.\n")
    );

    let (code, out, _) = skiff(
        &servers,
        &["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"],
    );
    assert_eq!((code, out.as_str()), (0, "hello"));
    let (code, out, _) = skiff(
        &servers,
        &[
            "get",
            "pod",
            "hello",
            "-o",
            "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "NAME    NODE\nhello   node-1\n"));
    let (code, _, err) = skiff(&servers, &["get", "pods", "-o", "jsonpath={.itemz}"]);
    assert_eq!(code, 1);
    assert!(err.contains("itemz"), "{err}");

    // Logs and exec (the command's exit code is skiff's).
    let out = eventually_skiff(&servers, &["logs", "hello"], |code, out| {
        code == 0 && out == "hello\n"
    })
    .await;
    assert_eq!(out, "hello\n");
    let (code, out, _) = skiff(
        &servers,
        &[
            "exec",
            "hello",
            "--",
            BUSYBOX,
            "sh",
            "-c",
            "echo inside; exit 3",
        ],
    );
    assert_eq!((code, out.as_str()), (3, "inside\n"));

    let (code, out, _) = skiff(
        &servers,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/hello",
            "--timeout=30s",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "pod/hello condition met\n"));

    let (code, out, _) = skiff(&servers, &["describe", "pod", "hello"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(
            "Name:         hello\nNamespace:    default\nNode:         node-1/127.0.0.1\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("Labels:       app=hello\n              tier=web\n"),
        "{out}"
    );
    let events = &out[out.find("Events:").expect("an events section")..];
    for reason in ["Scheduled", "Created", "Started"] {
        assert!(events.contains(reason), "{reason} in {events}");
    }

    // Graceful delete, then wait for the pod to be gone.
    let (code, out, _) = skiff(&servers, &["delete", "pod", "hello", "--grace-period=5"]);
    assert_eq!((code, out.as_str()), (0, "pod \"hello\" deleted\n"));
    // delete waits (like kubectl) until the pod is gone.
    let (code, _, err) = skiff(&servers, &["get", "pod", "hello"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error from server (NotFound): pods \"hello\" not found\n"
    );
    let (code, out, _) = skiff(
        &servers,
        &["wait", "--for=delete", "pod/hello", "--timeout=30s"],
    );
    // Already gone: kubectl's wait is met, silently.
    assert_eq!((code, out.as_str()), (0, ""));

    // Port-forward into a web server pod.
    let (code, _, err) = skiff(
        &servers,
        &[
            "run",
            "web",
            "--image=busybox",
            "--port=8080",
            "--",
            BUSYBOX,
            "httpd",
            "-f",
            "-p",
            "8080",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = skiff(
        &servers,
        &["wait", "--for=condition=Ready", "pod/web", "--timeout=30s"],
    );
    assert_eq!((code, out.as_str()), (0, "pod/web condition met\n"));
    let mut forward = Command::new(binary("skiff"))
        .arg("--config")
        .arg(cluster.admin_conf())
        .args(["--server", &servers, "port-forward", "web", ":8080"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(forward.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    let local = first
        .strip_prefix("Forwarding from ")
        .and_then(|rest| rest.split(" -> ").next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(local).unwrap();
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(response.starts_with("HTTP/1.1 "), "{response}");
    let (code, _, _) = skiff(
        &servers,
        &["delete", "pod", "web", "--grace-period=0", "--force"],
    );
    assert_eq!(code, 0);

    // A deployment: scale it and follow the rollout.
    let web = manifests.path().join("web.yaml");
    std::fs::write(
        &web,
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n\
             \x20 selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n\
             \x20     labels:\n        app: web\n    spec:\n      terminationGracePeriodSeconds: 1\n\
             \x20     containers:\n      - name: main\n        image: busybox\n\
             \x20       command: [{BUSYBOX}, sleep, '3600']\n"
        ),
    )
    .unwrap();
    let (code, out, err) = skiff(&servers, &["apply", "-f", &web.display().to_string()]);
    assert_eq!(
        (code, out.as_str()),
        (0, "deployment.apps/web created\n"),
        "{err}"
    );
    let (code, out, _) = skiff(&servers, &["scale", "deploy/web", "--replicas=2"]);
    assert_eq!((code, out.as_str()), (0, "deployment.apps/web scaled\n"));
    let (code, out, err) = skiff(
        &servers,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
    let (code, out, _) = skiff(&servers, &["get", "deploy"]);
    assert_eq!(code, 0);
    assert!(out.contains("web    2/2     2            2"), "{out}");
    // rollout restart replaces both pods by a rolling update.
    let before: Vec<String> = client
        .list::<skiff_api::types::Pod>(
            &skiff_client::ListParams::namespace("default").labels("app=web"),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name)
        .collect();
    let (code, out, _) = skiff(&servers, &["rollout", "restart", "deploy/web"]);
    assert_eq!((code, out.as_str()), (0, "deployment.apps/web restarted\n"));
    let (code, out, err) = skiff(
        &servers,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    );
    assert_eq!(code, 0, "{out}{err}");
    eventually(SETTLE, || async {
        let now: Vec<String> = client
            .list::<skiff_api::types::Pod>(
                &skiff_client::ListParams::namespace("default").labels("app=web"),
            )
            .await?
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.metadata.name)
            .collect();
        anyhow::ensure!(
            now.len() == 2 && now.iter().all(|n| !before.contains(n)),
            "{now:?} vs {before:?}"
        );
        Ok(())
    })
    .await
    .unwrap();
    // Events, as a table.
    let (code, out, _) = skiff(&servers, &["get", "events"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("LAST SEEN   TYPE"), "{out}");
    assert!(
        out.contains("Scheduled") && out.contains("pod/hello"),
        "{out}"
    );
    let (code, out, _) = skiff(&servers, &["delete", "deploy", "web"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "deployment.apps \"web\" deleted\n")
    );

    // get -w: the listing, then a row per change.
    let mut watcher = Command::new(binary("skiff"))
        .arg("--config")
        .arg(cluster.admin_conf())
        .args(["--server", &servers, "get", "pods", "-w", "-l", "run=later"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (code, _, err) = skiff(
        &servers,
        &[
            "run",
            "later",
            "--image=busybox",
            "--",
            BUSYBOX,
            "sleep",
            "3600",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let line = line.unwrap();
            let running = line.contains("Running");
            lines.push(line);
            if running {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(SETTLE, lines)
        .await
        .expect("a Running row from get -w")
        .unwrap();
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(lines[0].starts_with("NAME "), "{lines:?}");
    assert!(
        lines[1..].iter().all(|l| l.starts_with("later ")),
        "{lines:?}"
    );
    let (code, _, _) = skiff(
        &servers,
        &["delete", "pod", "later", "--grace-period=0", "--force"],
    );
    assert_eq!(code, 0);

    // Completion scripts.
    let (code, out, _) = skiff(&servers, &["completion", "bash"]);
    assert_eq!(code, 0);
    assert!(out.contains("_skiff()"), "{out}");

    // Bad input as a new user types it.
    let (code, _, err) = skiff(&servers, &["get", "pdos"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: the server doesn't have a resource type \"pdos\"\n"
        )
    );
    let (code, _, err) = skiff(&servers, &["get", "pods", "-l", "app in (a"]);
    assert_eq!(code, 1);
    assert!(err.to_lowercase().contains("selector"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Cluster status: every member and the leader.
    let (code, out, _) = skiff(&servers, &["cluster", "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("leader: "), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("voter")).count(),
        3,
        "{out}"
    );

    // An unreachable control plane: a clear error within the timeout.
    let started = Instant::now();
    // (The cluster's credential, another server: --server overrides the config's.)
    let output = Command::new(binary("skiff"))
        .arg("--config")
        .arg(cluster.admin_conf())
        .args([
            "--server",
            "127.0.0.1:1",
            "--request-timeout-secs",
            "2",
            "get",
            "pods",
        ])
        .output()
        .unwrap();
    let (code, err) = (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert_eq!(code, 1);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        err.starts_with("error: ") && err.contains("127.0.0.1:1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_create_delete_from_manifests_and_refuse_bad_ones() {
    let mut cluster = ControlPlaneCluster::start(3).expect("control plane");
    let servers = cluster.endpoints().join(",");
    let client = cluster.client();
    client.wait_ready(SETTLE).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let web = |labels: &str, replicas: u32| {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: team-a\n  labels: {{{labels}}}\n\
             spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n\
             \x20   metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n\
             \x20     - name: main\n        image: busybox\n        command: [/bin/busybox, sleep, '3600']\n"
        )
    };
    std::fs::create_dir(dir.path().join("app")).unwrap();
    let app = path("app/web.yaml");
    std::fs::write(&app, web("app: web, tier: frontend", 2)).unwrap();

    let (code, out, err) = skiff(&servers, &["apply", "-f", &path("app")]);
    assert_eq!(
        (code, out.as_str()),
        (0, "namespace/team-a created\ndeployment.apps/web created\n"),
        "{err}"
    );
    let (code, out, _) = skiff(&servers, &["apply", "-f", &app]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "namespace/team-a unchanged\ndeployment.apps/web unchanged\n"
        )
    );
    // A label added by hand survives; one dropped from the file goes.
    let (code, _, _) = skiff(
        &servers,
        &["label", "deploy", "web", "owner=ops", "-n", "team-a"],
    );
    assert_eq!(code, 0);
    std::fs::write(&app, web("app: web", 3)).unwrap();
    let (code, out, _) = skiff(&servers, &["apply", "-f", &app]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "namespace/team-a unchanged\ndeployment.apps/web configured\n"
        )
    );
    let d: skiff_api::types::Deployment = client.get("team-a", "web").await.unwrap();
    assert_eq!(d.spec.replicas, Some(3));
    let labels: Vec<(&str, &str)> = d
        .metadata
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(labels, [("app", "web"), ("owner", "ops")]);

    // Bad input: a clear one-line error naming what is wrong, exit 1, nothing written.
    let cases = [
        (
            "typo.yaml",
            web("app: web", 1)
                .replace("team-a", "team-typo")
                .replace("image:", "imagee:"),
            vec!["typo.yaml", "document 2", "spec.template.spec.containers[0].imagee"],
        ),
        (
            "name.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-c\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  containers: [{name: a, image: b}]\n".to_string(),
            vec!["name.yaml", "document 2", "metadata.name", "Bad_Name"],
        ),
        (
            "kind.yaml",
            "apiVersion: v1\nkind: Pood\nmetadata:\n  name: x\n".to_string(),
            vec!["kind.yaml", "Pood"],
        ),
    ];
    for (file, text, wanted) in cases {
        std::fs::write(path(file), text).unwrap();
        let (code, out, err) = skiff(&servers, &["apply", "-f", &path(file)]);
        assert_eq!((code, out.as_str()), (1, ""), "{file}: {err}");
        assert_eq!(err.lines().count(), 1, "{file}: one line: {err}");
        for w in wanted {
            assert!(err.contains(w), "{file}: {w:?} in {err}");
        }
    }
    for ns in ["team-typo", "team-c"] {
        let (code, _, _) = skiff(&servers, &["get", "ns", ns]);
        assert_eq!(code, 1, "{ns} must not exist");
    }
    // A namespace that does not exist.
    std::fs::write(
        path("nons.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: nope\nspec:\n  containers: [{name: a, image: b}]\n",
    )
    .unwrap();
    let (code, _, err) = skiff(&servers, &["apply", "-f", &path("nons.yaml")]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error from server (NotFound)") && err.contains("nope"),
        "{err}"
    );

    // explain, from the schema of the API's own types.
    let (code, out, _) = skiff(&servers, &["explain", "pod.spec.containers"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("KIND:       Pod\nVERSION:    v1\n\nFIELD: containers <[]Container>\n"),
        "{out}"
    );
    assert!(out.contains("  name\t<string> -required-\n"), "{out}");
    let (code, _, err) = skiff(&servers, &["explain", "pod.spec.containerz"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: field \"containerz\" does not exist in pod.spec\n"
        )
    );

    // create: existing objects are errors; a namespace by name.
    let (code, out, err) = skiff(&servers, &["create", "-f", &app]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("Error from server (AlreadyExists)"), "{err}");
    let (code, out, _) = skiff(&servers, &["create", "namespace", "team-b"]);
    assert_eq!((code, out.as_str()), (0, "namespace/team-b created\n"));

    // delete -f removes what the file names.
    let (code, out, err) = skiff(&servers, &["delete", "-f", &app]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    assert!(out.contains("namespace \"team-a\" deleted"), "{out}");

    // Without quorum: a clear error within the timeout, not a hang.
    let leader = cluster.wait_for_leader(SETTLE).await.unwrap();
    for id in cluster.ids() {
        if id != leader {
            cluster.kill(id);
        }
    }
    let started = Instant::now();
    let (code, _, err) = skiff(
        &servers,
        &[
            "--request-timeout-secs",
            "3",
            "create",
            "namespace",
            "team-q",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    // The lone leader took the write into its log, so it may yet commit once a quorum is
    // back: the CLI says the outcome is unknown rather than that it failed.
    assert!(
        err.starts_with("error: ") && err.contains("outcome unknown"),
        "{err}"
    );
}
