//! The `skiff` binary as a Kubernetes user types it (issue 19, items 4, 6, 7, 8 and 9): each
//! test runs a cluster as `skiff up` makes it (a control-plane member and an agent on a
//! network-namespace host, the default runtime, busybox from the underlay's registry; the
//! CLI reaching it from the underlay namespace) and checks what kubectl would print or do.
//! Root, busybox, runc and docker-registry are needed; skipped otherwise unless
//! SKIFF_REQUIRE_PRIVILEGED.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use skiff_api::types::Pod;
use skiff_client::ListParams;
use skiff_tests::cluster::{binary, eventually, run_skiff};
use skiff_tests::host::BUSYBOX;
use skiff_tests::multihost::MultiHost;

const SETTLE: Duration = Duration::from_secs(30);

/// A local cluster of one host (node host-1, Ready), torn down when dropped.
struct World {
    cluster: MultiHost,
    manifests: tempfile::TempDir,
}

impl World {
    async fn start() -> Option<World> {
        if !skiff_tests::host::oci_tests_can_run(true) {
            return None;
        }
        let cluster = MultiHost::start_local(1, &[]).await.expect("local cluster");
        Some(World {
            cluster,
            manifests: tempfile::tempdir().unwrap(),
        })
    }

    /// Runs `skiff ARGS…`: exit code, stdout, stderr.
    fn skiff(&self, args: &[&str]) -> (i32, String, String) {
        self.cluster.skiff(args)
    }

    /// Runs `skiff ARGS…` and expects it to succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.skiff(args);
        assert_eq!(code, 0, "skiff {args:?}:\n{out}{err}");
        out
    }

    /// Writes a manifest; its path.
    fn manifest(&self, name: &str, text: &str) -> String {
        let path = self.manifests.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// `skiff run NAME` of a busybox `sleep`, labelled as given, then Ready.
    fn sleeper(&self, name: &str, labels: &str, namespace: &str) {
        let image = "--image=busybox";
        let labels = format!("--labels={labels}");
        let args = ["run", name, image, &labels, "-n", namespace, "--"];
        let command = [BUSYBOX, "sleep", "3600"];
        self.ok(&[&args[..], &command[..]].concat());
        let target = format!("pod/{name}");
        let ready = ["wait", "--for=condition=Ready", &target, "-n", namespace];
        self.ok(&[&ready[..], &["--timeout=30s"]].concat());
    }

    /// What bash completes for `skiff ARGS…` (the last one the word being completed), with
    /// the script `skiff completion bash` prints.
    fn bash_complete(&self, typed: &[&str]) -> Vec<String> {
        let skiff = binary("skiff");
        let config = self.cluster.cli_config().display().to_string();
        let mut words = vec!["skiff", "--config", &config];
        words.extend(typed);
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let script = format!(
            "source <(skiff completion bash); COMP_WORDS=({}); COMP_CWORD={}; _skiff_objects; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            quoted.join(" "),
            words.len() - 1
        );
        let path = format!(
            "{}:{}",
            skiff.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = Command::new("bash")
            .args(["-c", &script])
            .env("PATH", path)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        let mut words: Vec<String> = out
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        words.sort();
        words
    }

    /// The names of the pods `selector` picks in `namespace`.
    async fn pods_in(&self, namespace: &str, selector: &str) -> Vec<String> {
        let params = ListParams::namespace(namespace).labels(selector);
        let pods = self
            .cluster
            .api(move |client| async move { client.list::<Pod>(&params).await })
            .await
            .unwrap()
            .items;
        pods.into_iter().map(|p| p.metadata.name).collect()
    }

    /// The names of the pods `selector` picks in default.
    async fn pods(&self, selector: &str) -> Vec<String> {
        self.pods_in("default", selector).await
    }
}

/// A busybox pod manifest in `default` (or the given namespace) running `script` with sh.
fn pod_yaml(name: &str, namespace: Option<&str>, script: &str) -> String {
    let namespace = namespace.map_or(String::new(), |ns| format!("  namespace: {ns}\n"));
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{namespace}spec:\n\
         \x20 terminationGracePeriodSeconds: 5\n  containers:\n  - name: main\n    image: busybox\n\
         \x20   command: [{BUSYBOX}, sh, -c, \"{script}\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_named_in_every_form_kubectl_takes() {
    let Some(w) = World::start().await else {
        return;
    };
    w.sleeper("a", "app=a,tier=x", "default");
    w.sleeper("b", "app=b,tier=x", "default");
    let (code, out, err) = w.skiff(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--",
        BUSYBOX,
        "sleep",
        "3600",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (0, "deployment.apps/web created\n"),
        "{err}"
    );

    // TYPE NAME… and TYPE/NAME… name the same objects, for every verb.
    for args in [&["pods", "a", "b"][..], &["pod/a", "po/b"]] {
        let out = w.ok(&[&["get"], args, &["-o", "name"]].concat());
        assert_eq!(out, "pod/a\npod/b\n");
        let out = w.ok(&[&["wait", "--for=condition=Ready"], args].concat());
        assert_eq!(out, "pod/a condition met\npod/b condition met\n");
    }
    for args in [&["pod", "a"][..], &["pod/a"]] {
        let out = w.ok(&[&["describe"], args].concat());
        assert!(
            out.starts_with("Name:         a\nNamespace:    default\n"),
            "{out}"
        );
    }
    let out = w.ok(&["exec", "pod/a", "--", BUSYBOX, "echo", "in a"]);
    assert_eq!(out, "in a\n");
    w.ok(&["logs", "pod/a"]);
    let (code, _, err) = w.skiff(&["get", "pod", "pod/a"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"),
        "{err}"
    );
    let (code, _, err) = w.skiff(&["logs", "node/host-1"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: logs takes a pod or a deployment, not nodes\n")
    );

    // Comma lists and `all`: one table per kind, names as kind/name, a blank line between.
    let out = w.ok(&["get", "pod,node"]);
    let blocks: Vec<&str> = out.split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{out}");
    assert!(
        blocks[0].starts_with("NAME ") && blocks[0].contains("\npod/a "),
        "{out}"
    );
    assert!(
        blocks[1].starts_with("NAME ") && blocks[1].contains("\nnode/host-1 "),
        "{out}"
    );
    eventually(SETTLE, || async {
        let out = w.ok(&["get", "all"]);
        let blocks: Vec<&str> = out.split("\n\n").collect();
        anyhow::ensure!(blocks.len() == 2, "{out}");
        anyhow::ensure!(blocks[0].contains("\npod/web-"), "{out}");
        anyhow::ensure!(
            blocks[1].starts_with("NAME                  READY   UP-TO-DATE   AVAILABLE   AGE\ndeployment.apps/web   1/1 "),
            "{out}"
        );
        Ok(())
    })
    .await
    .unwrap();

    // label and annotate: by selector, every object, removal.
    let out = w.ok(&["label", "pods", "-l", "tier=x", "team=blue"]);
    assert_eq!(out, "pod/a labeled\npod/b labeled\n");
    let out = w.ok(&["get", "pods", "-l", "team=blue", "-o", "name"]);
    assert_eq!(out, "pod/a\npod/b\n");
    let out = w.ok(&["label", "pods", "-l", "team=blue", "team-"]);
    assert_eq!(out, "pod/a unlabeled\npod/b unlabeled\n");
    let out = w.ok(&["label", "pod", "--all", "tier=y", "--overwrite"]);
    let web_pods = w.pods("app=web").await;
    let mut expected = vec!["pod/a labeled".to_string(), "pod/b labeled".to_string()];
    expected.extend(web_pods.iter().map(|p| format!("pod/{p} labeled")));
    expected.sort();
    let mut lines: Vec<String> = out.lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, expected);
    let out = w.ok(&["annotate", "pod/a", "pod/b", "note=hi"]);
    assert_eq!(out, "pod/a annotated\npod/b annotated\n");
    let out = w.ok(&[
        "get",
        "pod",
        "a",
        "-o",
        "jsonpath={.metadata.annotations.note}",
    ]);
    assert_eq!(out, "hi");

    // scale takes TYPE NAME too.
    let out = w.ok(&["scale", "deployment", "web", "--replicas=2"]);
    assert_eq!(out, "deployment.apps/web scaled\n");

    // delete deletes every name it can, reports the others and exits 1; it waits for them.
    let (code, out, err) = w.skiff(&["delete", "pod", "a", "nope", "b", "--grace-period=1"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            1,
            "pod \"a\" deleted\npod \"b\" deleted\n",
            "Error from server (NotFound): pods \"nope\" not found\n"
        )
    );
    let (code, _, err) = w.skiff(&["get", "pods", "a", "b"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error from server (NotFound): pods \"a\" not found\nError from server (NotFound): pods \"b\" not found\n"
    );
    let (code, out, err) = w.skiff(&["delete", "pod/nope", "--ignore-not-found"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_of_several_containers_defaults_to_its_first_or_annotated_container() {
    let Some(w) = World::start().await else {
        return;
    };
    let container = |name: &str| {
        format!(
            "  - name: {name}\n    image: busybox\n\
             \x20   command: [{BUSYBOX}, sh, -c, \"echo {name}; exec {BUSYBOX} sleep 3600\"]\n"
        )
    };
    let duo = w.manifest(
        "duo.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: duo\nspec:\n  containers:\n{}{}",
            container("first"),
            container("second")
        ),
    );
    w.ok(&["apply", "-f", &duo]);
    w.ok(&["wait", "--for=condition=Ready", "pod/duo", "--timeout=30s"]);

    let notice = "Defaulted container \"first\" out of: first, second\n";
    let (code, out, err) = w.skiff(&["logs", "duo"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "first\n", notice));
    // exec picks the same way (logs above and below show which container that is).
    let exec = ["exec", "duo", "--", BUSYBOX, "echo", "ok"];
    let (code, out, err) = w.skiff(&exec);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "ok\n", notice));
    // -c (or kubectl's inline container name for logs) picks, silently.
    let (code, out, err) = w.skiff(&["logs", "duo", "second"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "second\n", ""));

    // The annotation names the default, and then there is nothing to say.
    w.ok(&[
        "annotate",
        "pod",
        "duo",
        "kubectl.kubernetes.io/default-container=second",
    ]);
    let (code, out, err) = w.skiff(&["logs", "pod/duo"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "second\n", ""));
    let (code, out, err) = w.skiff(&exec);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "ok\n", ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verbs_and_flags_kubectl_has_work() {
    let Some(w) = World::start().await else {
        return;
    };
    // create deployment, as kubectl builds it.
    let out = w.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
        "--port=8080",
        "--",
        BUSYBOX,
        "sleep",
        "3600",
    ]);
    assert_eq!(out, "deployment.apps/web created\n");
    let shape = "jsonpath={.metadata.labels.app} {.spec.selector.matchLabels.app} {.spec.replicas} {.spec.template.spec.containers[0].name} {.spec.template.spec.containers[0].ports[0].containerPort}";
    assert_eq!(
        w.ok(&["get", "deploy", "web", "-o", shape]),
        "web web 2 busybox 8080"
    );

    // wait: a deployment's condition, a selector, --all.
    let out = w.ok(&[
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=60s",
    ]);
    assert_eq!(out, "deployment.apps/web condition met\n");
    let pods = w.pods("app=web").await;
    assert_eq!(pods.len(), 2, "{pods:?}");
    let met = |out: &str| {
        let mut lines: Vec<String> = out.lines().map(String::from).collect();
        lines.sort();
        lines
    };
    let mut expected: Vec<String> = pods
        .iter()
        .map(|p| format!("pod/{p} condition met"))
        .collect();
    expected.sort();
    let out = w.ok(&["wait", "--for=condition=Ready", "pod", "-l", "app=web"]);
    assert_eq!(met(&out), expected);
    let out = w.ok(&["wait", "--for=condition=Ready", "pods", "--all"]);
    assert_eq!(met(&out), expected);
    let (code, _, err) = w.skiff(&["wait", "--for=condition=Ready", "pod", "-l", "app=none"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: no matching resources found\n")
    );

    // logs and exec of deploy/NAME use one of its pods, saying which.
    let (code, _, err) = w.skiff(&["logs", "deploy/web"]);
    assert_eq!(code, 0, "{err}");
    let used = err
        .strip_prefix("Found 2 pods, using pod/")
        .map(str::trim_end);
    assert!(used.is_some_and(|p| pods.iter().any(|q| q == p)), "{err}");
    let (code, out, _) = w.skiff(&["exec", "deployment/web", "--", BUSYBOX, "echo", "hi"]);
    assert_eq!((code, out.as_str()), (0, "hi\n"));

    // Bash completes resource types and object names.
    assert_eq!(w.bash_complete(&["get", "po"]), ["pods"]);
    let mut names = pods.clone();
    names.sort();
    assert_eq!(w.bash_complete(&["describe", "pods", ""]), names);
    let slashed: Vec<String> = names.iter().map(|p| format!("pod/{p}")).collect();
    assert_eq!(w.bash_complete(&["delete", "pod/web"]), slashed);
    assert_eq!(w.bash_complete(&["logs", "web"]), names);

    // --for=delete: each pod is met once it is gone.
    let out = w.ok(&["scale", "deploy/web", "--replicas=0"]);
    assert_eq!(out, "deployment.apps/web scaled\n");
    let out = w.ok(&[
        "wait",
        "--for=delete",
        "pod",
        "-l",
        "app=web",
        "--timeout=60s",
    ]);
    assert!(out.lines().all(|l| l.ends_with(" condition met")), "{out}");
    assert!(w.pods("app=web").await.is_empty());

    // rollout restart stamps the template.
    w.ok(&["rollout", "restart", "deploy/web"]);
    let stamp =
        "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}";
    let at = w.ok(&["get", "deploy", "web", "-o", stamp]);
    assert!(at.parse::<skiff_api::meta::Time>().is_ok(), "{at:?}");

    // api-resources, version, explain --recursive.
    assert_eq!(
        w.ok(&["api-resources"]),
        "\
NAME          SHORTNAMES   APIVERSION   NAMESPACED   KIND
events        ev           v1           true         Event
namespaces    ns           v1           false        Namespace
nodes         no           v1           false        Node
pods          po           v1           true         Pod
deployments   deploy       apps/v1      true         Deployment
"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        w.ok(&["version"]),
        format!("Client Version: v{version}\nServer Version: v{version}\n")
    );
    let out = w.ok(&["explain", "pod.spec", "--recursive"]);
    assert!(
        out.contains("\nFIELDS:\n  containers\t<[]Container>"),
        "{out}"
    );
    assert!(
        out.contains("\n    env\t<[]EnvVar>\n      name\t<string> -required-\n"),
        "{out}"
    );

    // logs --timestamps, --since-time, --since.
    let ticker = w.manifest(
        "ticker.yaml",
        &pod_yaml(
            "ticker",
            None,
            &format!("echo early; {BUSYBOX} sleep 1; echo late; exec {BUSYBOX} sleep 3600"),
        ),
    );
    w.ok(&["apply", "-f", &ticker]);
    let stamped = eventually(SETTLE, || async {
        let (code, out, err) = w.skiff(&["logs", "ticker", "--timestamps"]);
        anyhow::ensure!(code == 0 && out.lines().count() == 2, "{out}{err}");
        Ok(out)
    })
    .await
    .unwrap();
    let lines: Vec<(&str, &str)> = stamped
        .lines()
        .map(|l| l.split_once(' ').unwrap())
        .collect();
    assert_eq!((lines[0].1, lines[1].1), ("early", "late"), "{stamped}");
    for (time, _) in &lines {
        assert!(time.parse::<skiff_api::meta::Time>().is_ok(), "{stamped}");
    }
    assert_eq!(
        w.ok(&["logs", "ticker", "--since-time", lines[1].0]),
        "late\n"
    );
    assert_eq!(w.ok(&["logs", "ticker", "--since=1h"]), "early\nlate\n");
    let (code, _, err) = w.skiff(&["logs", "ticker", "--since-time", "yesterday"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--since-time: \"yesterday\" is not an RFC 3339 time"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_reported_truthfully() {
    let Some(w) = World::start().await else {
        return;
    };
    // delete -f returns once the pod is gone (its container took a second to stop).
    let slow = w.manifest(
        "slow.yaml",
        &pod_yaml(
            "slow",
            None,
            &format!(
                "trap '{BUSYBOX} sleep 1; exit 0' TERM; while true; do {BUSYBOX} sleep 0.1; done"
            ),
        ),
    );
    w.ok(&["apply", "-f", &slow]);
    w.ok(&["wait", "--for=condition=Ready", "pod/slow", "--timeout=30s"]);
    assert_eq!(w.ok(&["delete", "-f", &slow]), "pod \"slow\" deleted\n");
    let (code, _, err) = w.skiff(&["get", "pod", "slow"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "Error from server (NotFound): pods \"slow\" not found\n")
    );

    // delete ns returns once the namespace and its pods are gone.
    w.ok(&["create", "namespace", "team"]);
    w.sleeper("member", "app=member", "team");
    assert_eq!(
        w.ok(&["delete", "ns", "team"]),
        "namespace \"team\" deleted\n"
    );
    let left = w.pods_in("team", "").await;
    assert!(left.is_empty(), "{left:?}");

    // A manifest for another namespace than -n says is refused, as kubectl refuses it.
    let elsewhere = w.manifest("elsewhere.yaml", &pod_yaml("x", Some("a"), "true"));
    let (code, out, err) = w.skiff(&["apply", "-f", &elsewhere, "-n", "b"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            1,
            "",
            "error: the namespace from the provided object \"a\" does not match the namespace \"b\". You must pass '--namespace=a' to perform this operation.\n"
        )
    );

    // describe shows the events of this pod, not of the one of the same name before it.
    w.sleeper("again", "app=again", "default");
    w.ok(&["delete", "pod", "again", "--grace-period=0", "--force"]);
    w.sleeper("again", "app=again", "default");
    let out = w.ok(&["describe", "pod", "again"]);
    let events = &out[out.find("Events:").expect("events")..];
    assert_eq!(events.matches("Scheduled").count(), 1, "{events}");

    // drain refuses a pod no controller owns, unless --force.
    w.sleeper("bare", "app=bare", "default");
    let (code, out, err) = w.skiff(&["drain", "host-1"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            1,
            "node/host-1 cordoned\n",
            "error: unable to drain node \"host-1\" due to error: cannot delete Pods that declare no controller (use --force to override): default/again, default/bare, continuing command...\n\
             There are pending nodes to be drained:\n host-1\n\
             error: cannot delete Pods that declare no controller (use --force to override): default/again, default/bare\n"
        )
    );
    assert_eq!(w.pods("app=bare").await, ["bare"]);
    let (code, out, err) = w.skiff(&["drain", "host-1", "--force"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        err,
        "Warning: deleting Pods that declare no controller: default/again, default/bare\n"
    );
    assert!(out.ends_with("node/host-1 drained\n"), "{out}");
    w.ok(&["uncordon", "host-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_is_terminating_until_its_pods_have_had_their_grace() {
    let Some(w) = World::start().await else {
        return;
    };
    const GRACE: Duration = Duration::from_secs(3);
    w.ok(&["create", "namespace", "grace"]);
    w.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "-n",
        "grace",
        "--",
        BUSYBOX,
        "sleep",
        "3600",
    ]);
    // A container that ignores SIGTERM: only the end of its grace period stops it.
    let stubborn = pod_yaml(
        "stubborn",
        Some("grace"),
        &format!("trap '' TERM; while true; do {BUSYBOX} sleep 0.1; done"),
    )
    .replace(
        "terminationGracePeriodSeconds: 5",
        &format!("terminationGracePeriodSeconds: {}", GRACE.as_secs()),
    );
    let stubborn = w.manifest("stubborn.yaml", &stubborn);
    w.ok(&["apply", "-f", &stubborn]);
    let ready = [
        "wait",
        "--for=condition=Ready",
        "pods",
        "--all",
        "-n",
        "grace",
    ];
    w.ok(&[&ready[..], &["--timeout=30s"]].concat());

    let mut delete = w.cluster.skiff_command();
    delete.args(["delete", "ns", "grace"]);
    let started = std::time::Instant::now();
    let deleting = std::thread::spawn(move || {
        let result = run_skiff(delete);
        (result, started.elapsed())
    });
    eventually(Duration::from_secs(10), || async {
        let (_, out, err) = w.skiff(&["get", "ns", "grace", "--no-headers"]);
        anyhow::ensure!(
            out.starts_with("grace ") && out.contains("Terminating") && !out.contains("NAME"),
            "{out}{err}"
        );
        Ok(())
    })
    .await
    .unwrap();
    // Meanwhile nothing new may be made in it, in Kubernetes' words.
    let (code, _, err) = w.skiff(&["run", "late", "--image=busybox", "-n", "grace"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (Forbidden): pods \"late\" is forbidden: unable to create new \
             content in namespace grace because it is being terminated\n"
        )
    );
    // The pod is stopping, not gone: it gets its grace period. (The namespace controller
    // marks it a moment after the namespace, as Kubernetes' does.)
    eventually(Duration::from_secs(10), || async {
        let pod = w
            .cluster
            .api(|client| async move { client.get::<Pod>("grace", "stubborn").await })
            .await?;
        anyhow::ensure!(pod.metadata.deletion_timestamp.is_some(), "{pod:?}");
        Ok(())
    })
    .await
    .unwrap();

    let ((code, out, err), took) = deleting.join().unwrap();
    assert_eq!(
        (code, out.as_str()),
        (0, "namespace \"grace\" deleted\n"),
        "{err}"
    );
    assert!(
        took >= GRACE - Duration::from_millis(500),
        "returned after {took:?}"
    );
    let (code, _, err) = w.skiff(&["get", "ns", "grace"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (NotFound): namespaces \"grace\" not found\n"
        )
    );
    eprintln!("delete ns with a {GRACE:?} grace period returned after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_and_texts_read_like_kubectls() {
    let Some(w) = World::start().await else {
        return;
    };
    let out = w.ok(&["get", "nodes"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{out}"
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[2]),
        ("host-1", "Ready", "<none>"),
        "{out}"
    );

    // A pod with a port, an environment variable and a volume.
    let web = w.manifest(
        "web.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {{port: \"80\", app: web}}\n\
             spec:\n  volumes: [{{name: data, emptyDir: {{}}}}]\n  containers:\n  - name: main\n\
             \x20   image: busybox\n    env: [{{name: MODE, value: fast}}]\n\
             \x20   ports: [{{containerPort: 8080}}]\n\
             \x20   volumeMounts: [{{name: data, mountPath: /data}}]\n\
             \x20   command: [{BUSYBOX}, sleep, \"3600\"]\n"
        ),
    );
    w.ok(&["apply", "-f", &web]);
    w.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=30s"]);

    let out = w.ok(&["get", "pods", "-o", "wide"]);
    assert!(
        out.starts_with("NAME   READY   STATUS    RESTARTS   AGE   IP "),
        "{out}"
    );
    let header = out.lines().next().unwrap();
    assert!(
        header.ends_with("   NODE     NOMINATED NODE   READINESS GATES"),
        "{out}"
    );
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .ends_with("   host-1   <none>           <none>"),
        "{out}"
    );

    // -o yaml quotes as kubectl does.
    let yaml = w.ok(&["get", "pod", "web", "-o", "yaml"]);
    assert!(yaml.contains("\n    port: \"80\"\n"), "{yaml}");
    assert!(yaml.contains("\n  creationTimestamp: \"20"), "{yaml}");
    assert!(yaml.contains("\n    - containerPort: 8080\n"), "{yaml}");
    // custom-columns prints maps as kubectl does.
    let out = w.ok(&[
        "get",
        "pod",
        "web",
        "-o",
        "custom-columns=LABELS:.metadata.labels",
    ]);
    assert_eq!(out, "LABELS\nmap[app:web port:80]\n");

    // describe: ports, environment, mounts, volumes and QoS, aligned.
    let out = w.ok(&["describe", "pod", "web"]);
    for part in [
        "    Port:          8080/TCP\n    Host Port:     0/TCP\n    Command:\n",
        "    Ready:          True\n    Restart Count:  0\n    Environment:\n      MODE:  fast\n    Mounts:\n      /data from data (rw)\n",
        "Volumes:\n  data:\n    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)\n",
        "\nQoS Class:       BestEffort\nNode-Selectors:  <none>\nTolerations:     <none>\n",
    ] {
        assert!(out.contains(part), "{part:?} in\n{out}");
    }
    // Times as kubectl prints them (RFC 1123 with a two-digit day); no apply annotation.
    let start = out.lines().find_map(|l| l.strip_prefix("Start Time:   "));
    let parts: Vec<&str> = start.expect("a start time").split(' ').collect();
    assert_eq!(
        (parts.len(), parts[1].len(), parts[5]),
        (6, 2, "+0000"),
        "{out}"
    );
    assert!(!out.contains("last-applied-configuration"), "{out}");

    // label KEY- says unlabeled.
    assert_eq!(
        w.ok(&["label", "pod", "web", "port-"]),
        "pod/web unlabeled\n"
    );

    // get -w honours -L and --show-labels.
    let mut watch = w
        .cluster
        .skiff_command()
        .args(["get", "pods", "-w", "-L", "app", "--show-labels"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(watch.stdout.take().unwrap());
    let (mut header, mut row) = (String::new(), String::new());
    reader.read_line(&mut header).unwrap();
    reader.read_line(&mut row).unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(header.trim_end().ends_with("   APP   LABELS"), "{header}");
    assert!(row.trim_end().ends_with("   web   app=web"), "{row}");

    // A server's refusal in kubectl's form, never a gRPC code's name.
    let pending = w.manifest(
        "pending.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pending\nspec:\n  nodeSelector: {{disk: none}}\n\
             \x20 containers:\n  - name: main\n    image: busybox\n    command: [{BUSYBOX}, sleep, \"1\"]\n"
        ),
    );
    w.ok(&["apply", "-f", &pending]);
    let (code, _, err) = w.skiff(&["logs", "pending"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (BadRequest): pod pending is not scheduled to a node yet\n"
        )
    );

    // A typo'd verb gets kubectl's suggestion.
    let (code, out, err) = w.skiff(&["dscribe", "pod", "web"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            1,
            "",
            "Error: unknown command \"dscribe\" for \"skiff\"\n\nDid you mean this?\n\tdescribe\n\n"
        )
    );
}

/// Whether `pod` is Ready, ContainersReady and every container ready (all three `true`) or
/// none of them (`false`); `None` while they disagree.
fn readiness(pod: &serde_json::Value) -> Option<bool> {
    let condition = |type_: &str| {
        pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == type_)
            .map(|c| c["status"] == "True")
    };
    let containers: Vec<bool> = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["ready"] == true)
        .collect();
    let all = [condition("Ready")?, condition("ContainersReady")?]
        .into_iter()
        .chain(containers.iter().copied())
        .collect::<Vec<_>>();
    if containers.is_empty() {
        return None;
    }
    if all.iter().all(|r| *r) {
        Some(true)
    } else if all.iter().all(|r| !*r) {
        Some(false)
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_on_a_lost_node_shows_its_containers_not_ready_until_the_node_is_back() {
    let Some(w) = World::start().await else {
        return;
    };
    w.sleeper("steady", "app=steady", "default");
    let pod = || -> serde_json::Value {
        serde_json::from_str(&w.ok(&["get", "pod", "steady", "-o", "json"])).unwrap()
    };
    assert_eq!(readiness(&pod()), Some(true));
    // The agent stops (its containers run on) and the node goes NotReady after the 10 s
    // grace: its pods are marked not ready, as Kubernetes' MarkPodsNotReady does.
    let agent = w.cluster.agents[0].pid().expect("agent pid");
    let agent = nix::unistd::Pid::from_raw(agent as i32);
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let resume = Resume(agent);
    let stopped = std::time::Instant::now();
    while readiness(&pod()) != Some(false) {
        assert!(
            stopped.elapsed() < Duration::from_secs(25),
            "still ready: {:#}",
            pod()["status"]
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let table = w.ok(&["get", "pod", "steady"]);
    let row = table.lines().nth(1).unwrap_or_default();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[..3], ["steady", "0/1", "Running"], "{row}");
    let node = w.ok(&["get", "node", "host-1"]);
    assert!(node.contains("NotReady"), "{node}");
    // The agent is back before the pods would be evicted: it writes its own status again,
    // although it had written that same status before.
    drop(resume);
    let back = std::time::Instant::now();
    while readiness(&pod()) != Some(true) {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "not ready again: {:#}",
            pod()["status"]
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let table = w.ok(&["get", "pod", "steady"]);
    assert!(table.contains(" 1/1 "), "{table}");
}

/// Continues a stopped process when dropped, also when the test fails.
struct Resume(nix::unistd::Pid);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_annotate_word_an_absent_key_as_kubectl_does() {
    let Some(w) = World::start().await else {
        return;
    };
    w.ok(&["run", "x", "--image=busybox", "--", "sleep", "3600"]);
    assert_eq!(w.ok(&["label", "pod", "x", "app=web"]), "pod/x labeled\n");
    assert_eq!(
        w.ok(&["label", "pod", "x", "missing-"]),
        "label \"missing\" not found.\npod/x not labeled\n"
    );
    assert_eq!(
        w.ok(&["label", "pod", "x", "app-", "other-"]),
        "label \"other\" not found.\npod/x unlabeled\n"
    );
    assert_eq!(
        w.ok(&["label", "pod", "x", "app=db", "tier-", "--overwrite"]),
        "label \"tier\" not found.\npod/x labeled\n"
    );
    // The same value again changes nothing (and needs no --overwrite).
    assert_eq!(
        w.ok(&["label", "pod", "x", "app=db"]),
        "pod/x not labeled\n"
    );
    assert_eq!(
        w.ok(&["label", "pod", "x", "tier=fe", "app-"]),
        "pod/x modified\n"
    );
    let x: serde_json::Value =
        serde_json::from_str(&w.ok(&["get", "pod", "x", "-o", "json"])).unwrap();
    assert_eq!(x["metadata"]["labels"]["tier"], "fe");
    assert!(
        x["metadata"]["labels"]["app"].is_null(),
        "{}",
        x["metadata"]
    );
    // annotate says nothing of an absent key, and always `annotated`.
    assert_eq!(
        w.ok(&["annotate", "pod", "x", "missing-"]),
        "pod/x annotated\n"
    );
}

impl World {
    /// What `shell` (zsh or fish) completes for `skiff ARGS…` (the last one the word being
    /// completed), with the script `skiff completion SHELL` prints. Fish completes the
    /// line itself (`complete -C`); zsh runs the script's `_skiff_objects` with `words`
    /// and `CURRENT` set and `compadd` printing what it is given (completion widgets
    /// need a terminal).
    fn shell_complete(&self, shell: &str, typed: &[&str]) -> Vec<String> {
        let skiff = binary("skiff");
        let config = self.cluster.cli_config().display().to_string();
        let mut words = vec!["skiff", "--config", &config];
        words.extend(typed);
        let script = match shell {
            "fish" => format!(
                "skiff completion fish | source; complete -C '{}'",
                words.join(" ")
            ),
            _ => format!(
                "compdef() {{ :; }}; compset() {{ :; }}; \
                 compadd() {{ local a; while (( $# )); do case $1 in -a) a=$2; shift 2;; *) shift;; esac; done; printf '%s\\n' \"${{(@P)a}}\"; }}; \
                 source <(skiff completion zsh); words=({}); CURRENT={}; _skiff_objects",
                words
                    .iter()
                    .map(|w| format!("'{w}'"))
                    .collect::<Vec<_>>()
                    .join(" "),
                words.len()
            ),
        };
        let path = format!(
            "{}:{}",
            skiff.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(shell);
        if shell == "zsh" {
            command.arg("-f");
        }
        let output = command
            .args(["-c", &script])
            .env("PATH", path)
            .output()
            .unwrap_or_else(|e| panic!("{shell}: {e}"));
        let out = String::from_utf8_lossy(&output.stdout);
        let mut words: Vec<String> = out
            .lines()
            // fish prints a description after a tab for some completions.
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            // Flags are clap's completions, not the objects'.
            .filter(|l| !l.is_empty() && !l.starts_with('-'))
            .collect();
        words.sort();
        words
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zsh_and_fish_complete_resource_types_and_object_names() {
    let Some(w) = World::start().await else {
        return;
    };
    for shell in ["zsh", "fish"] {
        let found = Command::new(shell).arg("-c").arg("true").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "{shell} is missing (apt-get install zsh fish)"
        );
    }
    for name in ["web-a", "web-b"] {
        w.ok(&["run", name, "--image=busybox", "--", "sleep", "3600"]);
    }
    let (types, pods) = (
        ["deployments", "events", "namespaces", "nodes", "pods"],
        ["web-a", "web-b"],
    );
    for shell in ["zsh", "fish"] {
        assert_eq!(w.shell_complete(shell, &["get", ""]), types, "{shell}");
        assert_eq!(
            w.shell_complete(shell, &["get", "pods", ""]),
            pods,
            "{shell}"
        );
        assert_eq!(w.shell_complete(shell, &["logs", ""]), pods, "{shell}");
        assert_eq!(
            w.shell_complete(shell, &["describe", "node", ""]),
            ["host-1"],
            "{shell}"
        );
        let slashed: Vec<String> = w.shell_complete(shell, &["delete", "pod/web"]);
        // zsh's compset moves `pod/` out of the word: the names alone are added.
        let expected: Vec<String> = match shell {
            "fish" => pods.iter().map(|p| format!("pod/{p}")).collect(),
            _ => pods.iter().map(|p| p.to_string()).collect(),
        };
        assert_eq!(slashed, expected, "{shell}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_deployment_and_node_are_laid_out_as_kubectl_lays_them_out() {
    let Some(w) = World::start().await else {
        return;
    };
    w.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--",
        BUSYBOX,
        "sleep",
        "3600",
    ]);
    w.ok(&[
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=30s",
    ]);
    let out = w.ok(&["describe", "deployment", "web"]);
    let lines: Vec<&str> = out.lines().collect();
    let expected_start = [
        "Name:                   web",
        "Namespace:              default",
    ];
    assert_eq!(lines[..2], expected_start, "{out}");
    assert!(lines[2].starts_with("CreationTimestamp:      "), "{out}");
    for line in [
        "Labels:                 app=web",
        "Selector:               app=web",
        "Replicas:               1 desired | 1 updated | 1 total | 1 available | 0 unavailable",
        "StrategyType:           RollingUpdate",
        "MinReadySeconds:        0",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
        "Pod Template:",
        "  Labels:  app=web",
        "  Containers:",
        "   busybox:",
        "    Image:      busybox",
        "Conditions:",
    ] {
        assert!(lines.contains(&line), "{line:?} missing:\n{out}");
    }
    let conditions = lines.iter().position(|l| *l == "Conditions:").unwrap();
    let header: Vec<&str> = lines[conditions + 1].split_whitespace().collect();
    assert_eq!(header, ["Type", "Status", "Reason"], "{out}");
    let available = lines
        .iter()
        .find(|l| l.starts_with("  Available "))
        .unwrap_or_else(|| panic!("no Available condition:\n{out}"));
    assert!(available.contains("True"), "{out}");
    assert!(out.contains("\nEvents:"), "{out}");

    let out = w.ok(&["describe", "node", "host-1"]);
    let titles: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split(':').next())
        .collect();
    let expected = [
        "Name",
        "Roles",
        "Labels",
        "Annotations",
        "CreationTimestamp",
        "Taints",
        "Unschedulable",
        "Conditions",
        "Addresses",
        "Capacity",
        "Allocatable",
        "System Info",
        "PodCIDR",
        "PodCIDRs",
        "Non-terminated Pods",
        "Allocated resources",
        "Events",
    ];
    let mut titles = titles;
    titles.dedup();
    let titles: Vec<&str> = titles
        .into_iter()
        .filter(|t| expected.contains(t))
        .collect();
    assert_eq!(titles, expected, "{out}");
    for line in ["Unschedulable:      false", "Taints:             <none>"] {
        assert!(out.lines().any(|l| l == line), "{line:?} missing:\n{out}");
    }
    let ready = out
        .lines()
        .find(|l| l.starts_with("  Ready "))
        .unwrap_or_else(|| panic!("no Ready condition:\n{out}"));
    assert!(ready.contains("True"), "{out}");
    // The runtime the node really uses: runc, by its own version.
    let runtime = out
        .lines()
        .find_map(|l| l.strip_prefix("  Container Runtime Version:"))
        .map(str::trim);
    assert!(
        runtime.is_some_and(|r| r.starts_with("oci://runc-")),
        "{out}"
    );
    let pods = out
        .lines()
        .find(|l| l.starts_with("Non-terminated Pods:"))
        .unwrap();
    assert!(pods.ends_with("(1 in total)"), "{out}");
    let header = out
        .lines()
        .find(|l| l.trim_start().starts_with("Namespace "))
        .unwrap();
    let columns: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        columns,
        [
            "Namespace",
            "Name",
            "CPU Requests",
            "CPU Limits",
            "Memory Requests",
            "Memory Limits",
            "Age"
        ],
        "{out}"
    );
    let resources = out
        .lines()
        .find(|l| l.trim_start().starts_with("Resource "))
        .unwrap_or_else(|| panic!("no Allocated resources table:\n{out}"));
    let columns: Vec<&str> = resources.split_whitespace().collect();
    assert_eq!(columns, ["Resource", "Requests", "Limits"], "{out}");
}
