//! `skiff up`, `start`, `stop` and `down` as a user runs them: the real binaries, a cluster
//! on network-namespace hosts, the demo answering on its pod IPs from another host, the
//! cluster back with its objects after a reboot (simulated by hand) and after a stop, and
//! nothing left behind afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_netplugin::netns;
use skiff_tests::cluster::binary;
use skiff_tests::host::privileged_tests_can_run;

/// Runs `skiff ARGS` with its config file at `config`.
fn skiff(config: &Path, args: &[&str]) -> Output {
    Command::new(binary("skiff"))
        .args(args)
        .env("SKIFF_CONFIG", config)
        .env_remove("SKIFF_SERVER")
        .output()
        .expect("run skiff")
}

fn text(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The container cgroups (`skiff-*`, the oci runtime's) on this host.
fn container_cgroups() -> std::collections::BTreeSet<String> {
    let v1 = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    std::iter::once(PathBuf::from("/sys/fs/cgroup"))
        .chain(v1)
        .flat_map(|parent| std::fs::read_dir(parent).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("skiff-"))
        })
        .map(|p| p.display().to_string())
        .collect()
}

/// Everything of cluster `name` that could outlive it: pinned namespaces, processes
/// started from its dir, mounts under it, the dir itself.
fn remains(name: &str, dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("skiff-{name}-")))
        .map(|n| format!("namespace /run/netns/{n}"))
        .collect();
    found.extend(skiff_tests::agent::leftovers(dir, None));
    if dir.join(name).exists() {
        found.push(format!("dir {}", dir.join(name).display()));
    }
    found
}

/// Stops the cluster even when the test fails half-way.
struct Down {
    config: PathBuf,
    name: String,
    dir: PathBuf,
}

impl Drop for Down {
    fn drop(&mut self) {
        let dir = self.dir.display().to_string();
        let out = skiff(&self.config, &["down", "--name", &self.name, "--dir", &dir]);
        if std::thread::panicking() {
            eprintln!("skiff down: {}", text(&out));
        }
    }
}

/// An HTTP GET of `/` on `ip:80`, made from inside the namespace at `netns`.
fn http_get_from(netns: &Path, ip: &str) -> anyhow::Result<String> {
    let address: SocketAddr = format!("{ip}:80").parse()?;
    netns::run_in(netns, move || -> anyhow::Result<String> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    })?
}

/// `skiff ARGS`, which must succeed: its standard output.
fn skiff_ok(config: &Path, args: &[&str]) -> String {
    let out = skiff(config, args);
    assert!(
        out.status.success(),
        "skiff {}: {}",
        args.join(" "),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skiff ARGS`, which must fail: its standard error.
fn skiff_fails(config: &Path, args: &[&str]) -> String {
    let out = skiff(config, args);
    assert!(
        !out.status.success(),
        "skiff {}: {}",
        args.join(" "),
        text(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Namespaces, nodes, deployments and pods, by `Kind namespace/name`.
fn objects(config: &Path) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    for kind in ["namespaces", "nodes", "deployments", "pods"] {
        let list: Value =
            serde_json::from_str(&skiff_ok(config, &["get", kind, "-A", "-o", "json"]))
                .expect("a JSON list");
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            let key = format!(
                "{} {}/{}",
                item["kind"].as_str().unwrap_or(kind),
                item["metadata"]["namespace"].as_str().unwrap_or(""),
                item["metadata"]["name"].as_str().unwrap_or("")
            );
            found.insert(key, item);
        }
    }
    found
}

fn resource_version(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion: {object}"))
}

/// The same objects as `before`: the same names, uids, metadata and specs. Objects of the
/// `untouched` kinds keep their resourceVersion too; the others' status was written since
/// (their agents restarted their containers), so theirs only grew.
fn assert_same_objects(
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
    untouched: &[&str],
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    let without_status = |object: &Value| {
        let mut object = object.clone();
        object.as_object_mut().unwrap().remove("status");
        object["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        object
    };
    for (key, old) in before {
        let new = &after[key];
        assert_eq!(without_status(old), without_status(new), "{key}");
        let kind = key.split(' ').next().unwrap();
        if untouched.contains(&kind) {
            assert_eq!(resource_version(old), resource_version(new), "{key}");
        } else {
            assert!(resource_version(new) >= resource_version(old), "{key}");
        }
    }
}

/// Each pod's first container's restart count, by `namespace/name`.
fn restart_counts(config: &Path) -> BTreeMap<String, i64> {
    pods(config)
        .iter()
        .map(|pod| {
            (
                pod_key(pod),
                pod["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(0),
            )
        })
        .collect()
}

fn pods(config: &Path) -> Vec<Value> {
    let list: Value =
        serde_json::from_str(&skiff_ok(config, &["get", "pods", "-A", "-o", "json"])).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

fn pod_key(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or(""),
        pod["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// Running and Ready with its container started again since `restarts` was taken.
fn running_again(pod: &Value, restarts: &BTreeMap<String, i64>) -> bool {
    let status = &pod["status"];
    let ready = status["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    let container = &status["containerStatuses"][0];
    status["phase"] == "Running"
        && ready
        && container["state"]["running"].is_object()
        && container["restartCount"].as_i64().unwrap_or(0)
            > restarts.get(&pod_key(pod)).copied().unwrap_or(-1)
}

/// Waits until every pod of `restarts` runs again (see [`running_again`]); how long after
/// `since` that was.
fn wait_running_again(config: &Path, restarts: &BTreeMap<String, i64>, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = pods(config);
        let waiting: Vec<String> = restarts
            .keys()
            .filter(|key| {
                !pods
                    .iter()
                    .any(|p| pod_key(p) == **key && running_again(p, restarts))
            })
            .cloned()
            .collect();
        if waiting.is_empty() {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "not running again: {waiting:?}\n{pods:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `skiff ARGS` (`up` or `start`), which must bring the cluster back within 10 s: the
/// objects of `before` the same (see [`assert_same_objects`]) and every pod of `restarts`
/// running again. Prints the time it took `after` what; returns the command's output.
fn back_within_10s(
    config: &Path,
    args: &[&str],
    before: &BTreeMap<String, Value>,
    restarts: &BTreeMap<String, i64>,
    after: &str,
) -> String {
    let since = Instant::now();
    let out = skiff_ok(config, args);
    let took = since.elapsed();
    let back = wait_running_again(config, restarts, since);
    eprintln!(
        "after {after}: skiff {} returned after {took:.1?}, every pod ran again after {back:.1?}\n{out}",
        args[0]
    );
    let cluster = Path::new(args[4]).join(args[2]);
    assert!(
        back < Duration::from_secs(10),
        "back after {back:?}\n{}",
        agent_logs(&cluster)
    );
    assert_same_objects(before, &objects(config), &["Namespace", "Node"]);
    out
}

/// The agents' logs of cluster dir `cluster`, for an assertion message.
fn agent_logs(cluster: &Path) -> String {
    ["worker-1", "worker-2"]
        .iter()
        .map(|w| {
            let log = std::fs::read_to_string(cluster.join(format!("logs/{w}.log")));
            format!("----- {w}.log\n{}", log.unwrap_or_default())
        })
        .collect()
}

/// Mount points under `dir`, deepest last.
fn mounts_under(dir: &Path) -> Vec<String> {
    let below = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&below))
        .map(str::to_string)
        .collect()
}

/// The processes whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
        .collect()
}

/// The processes started with `--data-dir DIR` (a member or an agent on that data dir).
fn processes_on(data_dir: &Path) -> Vec<i32> {
    processes_naming(&format!("--data-dir {} ", data_dir.display()))
}

/// The namespace pins of cluster `name`.
fn pins(name: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("skiff-{name}-"))
        })
        .collect()
}

/// What a host's reboot does to cluster `name`, done by hand rather than through skiff:
/// every process of it — members, agents, shims, runc, containers — killed with SIGKILL,
/// every mount under its dir undone, its namespaces and its containers' cgroups gone. Only
/// the files stay.
fn simulate_reboot(name: &str, cluster: &Path, cgroups_before: &BTreeSet<String>) {
    let netns_pins = pins(name);
    let mounts = mounts_under(cluster);
    for _ in 0..100 {
        let mut killed = 0;
        for pid in processes_naming(&cluster.display().to_string()) {
            killed += usize::from(
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .is_ok(),
            );
        }
        // What lives in its namespaces: the daemons, and the containers in the pods'
        // namespaces pinned under its dir.
        for pin in netns_pins
            .iter()
            .map(PathBuf::as_path)
            .chain(mounts.iter().map(Path::new))
        {
            killed += skiff_netplugin::hosts::kill_inside(pin);
        }
        if killed == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for mount in mounts.iter().rev() {
        let _ = nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    for pin in &netns_pins {
        let _ = nix::mount::umount2(pin, nix::mount::MntFlags::MNT_DETACH);
        std::fs::remove_file(pin).unwrap();
    }
    // The killed containers' cgroups, once the kernel let their processes go.
    let deadline = Instant::now() + Duration::from_secs(10);
    for cgroup in container_cgroups().difference(cgroups_before) {
        while std::fs::remove_dir(cgroup).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(mounts_under(cluster), Vec::<String>::new());
    assert!(processes_naming(&cluster.display().to_string()).is_empty());
    assert!(pins(name).is_empty());
}

/// The spec of the workload's pods: a container from the image the test imports, which
/// says when SIGTERM reaches it and then ends at once, within its 20 s grace.
const POD_SPEC: &str = r#"terminationGracePeriodSeconds: 20
containers:
  - name: main
    image: skiff-test/reboot:1
    command: [/bin/busybox, sh, -c, 'trap "echo got SIGTERM; exit 0" TERM; echo started; /bin/busybox sleep 1000000 & wait']"#;

/// A namespace, a deployment and a bare pod of [`POD_SPEC`].
fn workload() -> String {
    let indent = |spaces: usize| POD_SPEC.replace('\n', &format!("\n{}", " ".repeat(spaces)));
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: keep
  labels:
    purpose: reboot
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: keep
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      {}
---
apiVersion: v1
kind: Pod
metadata:
  name: bare
  namespace: keep
spec:
  {}
"#,
        indent(6),
        indent(2)
    )
}
/// Every node's address of a pod, by `namespace/name`.
fn pod_ips(config: &Path) -> BTreeMap<String, String> {
    pods(config)
        .iter()
        .map(|p| {
            (
                pod_key(p),
                p["status"]["podIP"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_local_cluster_serves_the_demo_comes_back_after_a_reboot_and_a_stop_and_down_leaves_nothing() {
    if !privileged_tests_can_run() {
        return;
    }
    // Build them before timing anything: `skiff up` finds them next to `skiff`.
    binary("skiff-control-plane");
    binary("skiff-agent");
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    let dir = work.path().join("clusters");
    let dir_text = dir.display().to_string();
    let name = format!("t{}", std::process::id());
    let guard = Down {
        config: config.clone(),
        name: name.clone(),
        dir: dir.clone(),
    };

    let cgroups_before = container_cgroups();
    let up = skiff(&config, &["up", "--name", &name, "--dir", &dir_text]);
    let report = text(&up);
    assert!(up.status.success(), "{report}");
    assert!(report.contains("skiff get pods -o wide"), "{report}");
    assert!(report.contains("deployment.apps/demo created"), "{report}");

    // The config holds the admin credential (0600), and so does the token file.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&config), 0o600);
    let config_text = std::fs::read_to_string(&config).unwrap();
    assert!(
        config_text.contains("ca:") && config_text.contains("client-certificate:"),
        "{config_text}"
    );
    assert_eq!(mode(&Path::new(&dir_text).join(&name).join("token")), 0o600);

    // The config now points at the cluster: plain `skiff get nodes` works.
    let nodes = skiff(&config, &["get", "nodes"]);
    let nodes_text = text(&nodes);
    assert!(nodes.status.success(), "{nodes_text}");
    for worker in ["worker-1", "worker-2"] {
        assert!(
            nodes_text
                .lines()
                .any(|l| l.starts_with(worker) && l.contains(" Ready ")),
            "{nodes_text}"
        );
    }

    // Three demo pods spread over both workers; each answers on its pod IP from the
    // other worker's host namespace (and from its own).
    let pods = skiff(
        &config,
        &[
            "get",
            "pods",
            "-l",
            "app=demo",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName}{\"\\n\"}{end}",
        ],
    );
    let pods_text = String::from_utf8_lossy(&pods.stdout).into_owned();
    assert!(pods.status.success(), "{}", text(&pods));
    let pods: Vec<(String, String, String)> = pods_text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace().map(str::to_string);
            Some((parts.next()?, parts.next()?, parts.next()?))
        })
        .collect();
    assert_eq!(pods.len(), 3, "{pods_text}");
    let nodes_used: std::collections::BTreeSet<&str> =
        pods.iter().map(|(_, _, node)| node.as_str()).collect();
    assert_eq!(nodes_used.len(), 2, "spread over both workers: {pods_text}");
    for (pod, ip, node) in &pods {
        let other = if node == "worker-1" {
            "worker-2"
        } else {
            "worker-1"
        };
        for from in [other, node.as_str()] {
            let netns = PathBuf::from(format!("/run/netns/skiff-{name}-{from}"));
            let response = http_get_from(&netns, ip)
                .unwrap_or_else(|e| panic!("GET http://{ip}/ from {from}: {e:#}"));
            assert!(
                response.contains(&format!("hello from {pod}")),
                "{pod} at {ip}, asked from {from}: {response}"
            );
        }
    }

    // This host can run the oci runtime, the agents' default: the demo runs from the
    // busybox image `up` imported, in its own PID namespace.
    let ids = skiff(
        &config,
        &[
            "get",
            "pods",
            "-l",
            "app=demo",
            "-o",
            "jsonpath={range .items[*]}{.status.containerStatuses[0].containerID}{\"\\n\"}{end}",
        ],
    );
    let ids_text = String::from_utf8_lossy(&ids.stdout).into_owned();
    assert_eq!(
        ids_text.lines().filter(|l| l.starts_with("oci://")).count(),
        3,
        "{}",
        text(&ids)
    );
    let ps = skiff(&config, &["exec", &pods[0].0, "--", "ps", "-o", "pid,args"]);
    let ps_text = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(ps.status.success(), "{}", text(&ps));
    assert!(
        ps_text
            .lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("httpd")),
        "{ps_text}"
    );
    assert!(
        ps_text.lines().count() <= 4,
        "only the demo's shell, httpd and ps: {ps_text}"
    );

    // A second `up` says the cluster runs, and changes nothing.
    let again = skiff(&config, &["up", "--name", &name, "--dir", &dir_text]);
    let again_text = text(&again);
    assert!(!again.status.success(), "{again_text}");
    assert!(again_text.contains("already running"), "{again_text}");
    let nodes = skiff(&config, &["get", "nodes"]);
    assert!(nodes.status.success(), "{}", text(&nodes));

    // Not root: a clear error before anything is made.
    let as_nobody = Command::new(binary("skiff"))
        .args(["up", "--name", "nobody", "--dir", &dir_text])
        .env("SKIFF_CONFIG", &config)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run skiff as nobody");
    let nobody_text = text(&as_nobody);
    assert!(!as_nobody.status.success(), "{nobody_text}");
    assert!(nobody_text.contains("needs root"), "{nobody_text}");

    back_after_a_reboot_and_a_stop(&config, &name, &dir, &cgroups_before);

    // Down removes everything, and forgets the cluster in the config.
    drop(guard);
    let left = remains(&name, &dir);
    assert!(left.is_empty(), "left behind: {left:#?}");
    let cgroups_left: Vec<String> = container_cgroups()
        .difference(&cgroups_before)
        .cloned()
        .collect();
    assert!(cgroups_left.is_empty(), "cgroups left: {cgroups_left:#?}");
    let config_text = std::fs::read_to_string(&config).unwrap();
    assert!(!config_text.contains(&name), "{config_text}");
    // Down again is fine: nothing to stop.
    let down = skiff(&config, &["down", "--name", &name, "--dir", &dir_text]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(String::from_utf8_lossy(&down.stdout).contains("No local cluster"));
}

/// The second half of the test above: a workload of our own, a simulated reboot and
/// `skiff up`, part of the cluster killed and `skiff start`, `skiff stop` and `skiff start`.
fn back_after_a_reboot_and_a_stop(
    config: &Path,
    name: &str,
    dir: &Path,
    cgroups_before: &BTreeSet<String>,
) {
    let dir_text = dir.display().to_string();
    let cluster = dir.join(name);
    let stopped = format!(
        "error: local cluster {name:?} is stopped: start it with skiff start --name {name} --dir {dir_text}\n"
    );

    // A namespace, a deployment and a bare pod from an image imported into every node.
    let busybox = std::fs::read(skiff_tests::host::BUSYBOX).unwrap();
    let archive = dir.join("reboot.tar");
    std::fs::write(
        &archive,
        skiff_tests::images::BusyboxImage::with_applets(&busybox)
            .docker_archive("skiff-test/reboot:1"),
    )
    .unwrap();
    skiff_ok(
        config,
        &[
            "image",
            "import",
            &archive.display().to_string(),
            "--all-nodes",
        ],
    );
    std::fs::remove_file(&archive).unwrap();
    let manifest = dir.join("workload.yaml");
    std::fs::write(&manifest, workload()).unwrap();
    skiff_ok(config, &["apply", "-f", &manifest.display().to_string()]);
    std::fs::remove_file(&manifest).unwrap();
    // Its three pods run (running_again with no counts: Running and Ready).
    let running = || {
        pods(config)
            .iter()
            .filter(|p| pod_key(p).starts_with("keep/") && running_again(p, &BTreeMap::new()))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while running() < 3 {
        assert!(Instant::now() < deadline, "{:#?}", pods(config));
        std::thread::sleep(Duration::from_millis(100));
    }

    // A reboot: nothing of the cluster is left but its files. It reads stopped, and every
    // verb says how to start it.
    let before = objects(config);
    let restarts = restart_counts(config);
    let ips = pod_ips(config);
    assert_eq!(
        restarts.len(),
        6,
        "3 demo pods, 2 web pods, bare: {restarts:?}"
    );
    simulate_reboot(name, &cluster, cgroups_before);
    assert_eq!(skiff_fails(config, &["get", "nodes"]), stopped);
    assert_eq!(skiff_fails(config, &["cluster", "status"]), stopped);

    // `up` brings it back, with the same objects, addresses and images.
    let up = back_within_10s(
        config,
        &["up", "--name", name, "--dir", &dir_text],
        &before,
        &restarts,
        "a simulated reboot",
    );
    assert!(up.contains("exists but does not run"), "{up}");
    assert_eq!(pod_ips(config), ips, "the pods keep their addresses");
    for pod in pods(config)
        .iter()
        .filter(|p| pod_key(p).starts_with("keep/"))
    {
        let image = pod["status"]["containerStatuses"][0]["image"]
            .as_str()
            .unwrap_or("");
        assert!(image.contains("skiff-test/reboot:1"), "{pod}");
    }
    let demo = pods(config)
        .into_iter()
        .find(|p| pod_key(p).starts_with("default/demo-"))
        .unwrap();
    let other = if demo["spec"]["nodeName"] == "worker-1" {
        "worker-2"
    } else {
        "worker-1"
    };
    let response = http_get_from(
        &PathBuf::from(format!("/run/netns/skiff-{name}-{other}")),
        demo["status"]["podIP"].as_str().unwrap(),
    )
    .expect("the demo answers again across hosts");
    assert!(response.contains("hello from demo-"), "{response}");
    let images = skiff_ok(config, &["image", "ls"]);
    assert_eq!(images.matches("skiff-test/reboot:1").count(), 2, "{images}");

    // Part of the cluster dies: a start reuses what runs and starts the rest, one process
    // per data dir.
    for host in ["cp-2", "worker-1"] {
        for pid in processes_on(&cluster.join(host)) {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let status = skiff_ok(config, &["cluster", "status"]);
    assert!(
        status.contains("partly running (not: cp-2, worker-1)"),
        "{status}"
    );
    let start = skiff_ok(config, &["start", "--name", name, "--dir", &dir_text]);
    assert!(start.contains("Started cp-2, worker-1"), "{start}");
    assert!(start.contains("running already: cp-1 (pid"), "{start}");
    for host in ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"] {
        assert_eq!(processes_on(&cluster.join(host)).len(), 1, "{host}");
    }
    let again = skiff_ok(config, &["start", "--name", name, "--dir", &dir_text]);
    assert!(
        again.contains("running already: nothing to start"),
        "{again}"
    );

    // `stop`: every container gets SIGTERM (they end at once, well within their 20 s
    // grace), the data stays, nothing else does; the cluster reads stopped.
    let before = objects(config);
    let restarts = restart_counts(config);
    let since = Instant::now();
    let stop = skiff_ok(config, &["stop", "--name", name, "--dir", &dir_text]);
    let stop_took = since.elapsed();
    assert!(stop.contains("6 container(s) stopped"), "{stop}");
    assert!(
        stop_took < Duration::from_secs(15),
        "stopped after {stop_took:?}: {stop}"
    );
    assert_eq!(remains(name, dir), [format!("dir {}", cluster.display())]);
    assert_eq!(skiff_fails(config, &["cluster", "status"]), stopped);
    assert_eq!(skiff_fails(config, &["get", "pods", "-n", "keep"]), stopped);
    let again = skiff_ok(config, &["stop", "--name", name, "--dir", &dir_text]);
    assert!(again.contains("is stopped already"), "{again}");

    // `start` brings it back as `up` did after the reboot.
    back_within_10s(
        config,
        &["start", "--name", name, "--dir", &dir_text],
        &before,
        &restarts,
        &format!("skiff stop (it took {stop_took:.1?})"),
    );
    let previous = skiff_ok(config, &["logs", "bare", "-n", "keep", "--previous"]);
    assert_eq!(previous, "started\ngot SIGTERM\n");
    let bare = pods(config)
        .into_iter()
        .find(|p| pod_key(p) == "keep/bare")
        .unwrap();
    let last = &bare["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 0, "{bare}");
}

/// A `skiff port-forward` child, killed when dropped (also when the test fails).
struct Forward(std::process::Child);

impl Forward {
    /// Starts `skiff port-forward ARGS` and waits for its `Forwarding from` lines (`lines`
    /// of them); returns it with those lines.
    fn start(config: &Path, args: &[&str], lines: usize) -> (Forward, Vec<String>) {
        use std::io::BufRead;
        let mut child = Command::new(binary("skiff"))
            .arg("port-forward")
            .args(args)
            .env("SKIFF_CONFIG", config)
            .env_remove("SKIFF_SERVER")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("run skiff port-forward");
        let stdout = child.stdout.take().unwrap();
        let forward = Forward(child);
        // Read on a thread: a forward that never prints must fail the test, not hang it.
        // It reads to the end, so the pipe stays open for the forward's later lines.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < lines {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("Forwarding from") => seen.push(line),
                Ok(_) => {}
                Err(_) => panic!("port-forward {args:?} printed only {seen:?}"),
            }
        }
        (forward, seen)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP GET of `/` at `address`, from this test's own network namespace; again until
/// an answer comes, for at most 10 s (a server that just started may not listen yet).
fn http_get(address: &str) -> anyhow::Result<String> {
    let address: SocketAddr = address.parse()?;
    let once = || -> anyhow::Result<String> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        anyhow::ensure!(!response.is_empty(), "no answer");
        Ok(response)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match once() {
            Ok(response) => return Ok(response),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Waits (at most `within`) until `check` holds for the pods in `default`; how long it took.
fn wait_pods(
    config: &Path,
    within: Duration,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let list: Value =
            serde_json::from_str(&skiff_ok(config, &["get", "pods", "-o", "json"])).unwrap();
        let pods = list["items"].as_array().cloned().unwrap_or_default();
        if check(&pods) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{what} within {within:?}: {pods:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn named<'a>(pods: &'a [Value], name: &str) -> Option<&'a Value> {
    pods.iter().find(|p| p["metadata"]["name"] == name)
}

fn ready(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

#[test]
fn on_a_fresh_local_cluster_busybox_pulls_port_forward_reaches_the_host_and_a_relabelled_pod_is_replaced()
 {
    if !privileged_tests_can_run() {
        return;
    }
    binary("skiff-control-plane");
    binary("skiff-agent");
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    let dir = work.path().join("clusters");
    let dir_text = dir.display().to_string();
    let name = format!("h{}", std::process::id());
    let guard = Down {
        config: config.clone(),
        name: name.clone(),
        dir: dir.clone(),
    };
    let up = skiff(&config, &["up", "--name", &name, "--dir", &dir_text]);
    let report = text(&up);
    assert!(up.status.success(), "{report}");
    assert!(
        report.contains("Pushed busybox:latest into the cluster's registry (10.250.0.1:5000)"),
        "{report}"
    );

    // Nodes report the runtime they use: runc, by its own version.
    let runtime = skiff_ok(
        &config,
        &[
            "get",
            "node",
            "worker-1",
            "-o",
            "jsonpath={.status.nodeInfo.containerRuntimeVersion}",
        ],
    );
    assert!(runtime.starts_with("oci://runc-"), "{runtime}");

    // The README's example: an untagged image means imagePullPolicy Always, and the pull
    // comes from the cluster's registry.
    skiff_ok(
        &config,
        &[
            "run",
            "web",
            "--image=busybox",
            "--",
            "httpd",
            "-f",
            "-p",
            "8080",
        ],
    );
    let took = wait_pods(&config, Duration::from_secs(60), "web running", |pods| {
        named(pods, "web").is_some_and(|p| p["status"]["phase"] == "Running")
    });
    println!("skiff run web --image=busybox: Running after {took:?}");
    let web = skiff_ok(&config, &["get", "pod", "web", "-o", "json"]);
    let web: Value = serde_json::from_str(&web).unwrap();
    assert_eq!(web["spec"]["containers"][0]["imagePullPolicy"], "Always");
    // Pulled, from the registry, not found in the node's store.
    let events = skiff_ok(&config, &["get", "events"]);
    assert!(
        events
            .lines()
            .any(|l| l.contains("pod/web") && l.contains("Successfully pulled image \"busybox\"")),
        "{events}"
    );
    // --image-pull-policy reaches the pod.
    skiff_ok(
        &config,
        &[
            "run",
            "kept",
            "--image=busybox",
            "--image-pull-policy=Never",
            "--",
            "sleep",
            "3600",
        ],
    );
    let kept: Value =
        serde_json::from_str(&skiff_ok(&config, &["get", "pod", "kept", "-o", "json"])).unwrap();
    assert_eq!(kept["spec"]["containers"][0]["imagePullPolicy"], "Never");

    // An image imported after `skiff up` goes into the cluster's registry too, as `kind load`
    // and `k3d image import` do, and runs by name with imagePullPolicy Always; `skiff image
    // push` puts an OCI layout's image there alone.
    let busybox = std::fs::read(skiff_tests::host::BUSYBOX).unwrap();
    let image = skiff_tests::images::BusyboxImage::with_applets(&busybox);
    let archive = work.path().join("hello.tar");
    std::fs::write(&archive, image.docker_archive("hello:latest")).unwrap();
    let imported = skiff_ok(
        &config,
        &[
            "image",
            "import",
            &archive.display().to_string(),
            "--all-nodes",
        ],
    );
    assert!(
        imported.contains("worker-1: imported docker.io/library/hello:latest"),
        "{imported}"
    );
    assert!(
        imported.contains("10.250.0.1:5000: pushed hello:latest (sha256:"),
        "{imported}"
    );
    let layout = work.path().join("other.tar");
    std::fs::write(&layout, image.oci_layout("me/other:v1").archive).unwrap();
    let pushed = skiff_ok(&config, &["image", "push", &layout.display().to_string()]);
    assert!(
        pushed.starts_with("10.250.0.1:5000: pushed me/other:v1 (sha256:"),
        "{pushed}"
    );
    skiff_ok(
        &config,
        &["run", "hello", "--image=hello", "--", "sleep", "3600"],
    );
    let other = [
        "run",
        "other",
        "--image=me/other:v1",
        "--image-pull-policy=Always",
        "--",
        "sleep",
        "3600",
    ];
    skiff_ok(&config, &other);
    wait_pods(
        &config,
        Duration::from_secs(60),
        "hello and other running",
        |pods| {
            ["hello", "other"]
                .iter()
                .all(|n| named(pods, n).is_some_and(|p| p["status"]["phase"] == "Running"))
        },
    );
    let hello: Value =
        serde_json::from_str(&skiff_ok(&config, &["get", "pod", "hello", "-o", "json"])).unwrap();
    assert_eq!(hello["spec"]["containers"][0]["imagePullPolicy"], "Always");
    let events = skiff_ok(&config, &["get", "events"]);
    for (pod, image) in [("hello", "hello"), ("other", "me/other:v1")] {
        let pulled = format!("Successfully pulled image \"{image}\"");
        assert!(
            events
                .lines()
                .any(|l| l.contains(&format!("pod/{pod}")) && l.contains(&pulled)),
            "{events}"
        );
    }
    // port-forward listens in this (the host's) namespace, on both loopbacks, for several
    // ports at once; the cluster's API is reachable only inside its underlay namespace.
    let (first, second) = (
        skiff_tests::cluster::free_port(),
        skiff_tests::cluster::free_port(),
    );
    let ports = [format!("{first}:8080"), format!("{second}:8080")];
    let (forward, lines) = Forward::start(&config, &["pod/web", &ports[0], &ports[1]], 2);
    assert!(
        lines.contains(&format!("Forwarding from 127.0.0.1:{first} -> 8080")),
        "{lines:?}"
    );
    for port in [first, second] {
        let response = http_get(&format!("127.0.0.1:{port}"))
            .unwrap_or_else(|e| panic!("GET http://127.0.0.1:{port}/: {e:#}"));
        assert!(response.starts_with("HTTP/1."), "{response}");
    }
    if let Ok(response) = http_get(&format!("[::1]:{first}")) {
        assert!(response.starts_with("HTTP/1."), "{response}");
    }
    drop(forward);
    // deploy/NAME forwards to one of its ready pods.
    let port = skiff_tests::cluster::free_port();
    let (forward, _) = Forward::start(&config, &["deploy/demo", &format!("{port}:80")], 1);
    let response = http_get(&format!("127.0.0.1:{port}")).unwrap();
    assert!(response.contains("hello from demo-"), "{response}");
    drop(forward);

    // A demo pod relabelled out of the deployment's selector is released and replaced, and
    // lives on unowned.
    let list: Value = serde_json::from_str(&skiff_ok(
        &config,
        &["get", "pods", "-l", "app=demo", "-o", "json"],
    ))
    .unwrap();
    let old = list["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    skiff_ok(&config, &["label", "pod", &old, "app=debug", "--overwrite"]);
    let replaced = wait_pods(&config, Duration::from_secs(5), "a replacement", |pods| {
        let demo: Vec<&Value> = pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "demo" && ready(p))
            .collect();
        let released = named(pods, &old)
            .is_some_and(|p| p["metadata"]["ownerReferences"].is_null() && ready(p));
        demo.len() == 3 && released
    });
    println!("relabelled pod replaced (3 ready demo pods again) after {replaced:?}");
    let old_pod: Value =
        serde_json::from_str(&skiff_ok(&config, &["get", "pod", &old, "-o", "json"])).unwrap();
    assert_eq!(old_pod["status"]["phase"], "Running");

    // More of the README's examples, verbatim.
    let nodes = skiff_ok(&config, &["get", "nodes", "-o", "wide"]);
    let header: Vec<&str> = nodes.lines().next().unwrap().split_whitespace().collect();
    assert!(header.ends_with(&["CONTAINER-RUNTIME"]), "{nodes}");
    assert!(
        nodes.contains("\nworker-1 ") && nodes.contains("\nworker-2 "),
        "{nodes}"
    );
    let placed = skiff_ok(
        &config,
        &[
            "get",
            "pods",
            "-o",
            "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName",
            "--field-selector",
            "spec.nodeName=worker-1",
        ],
    );
    let mut rows = placed.lines();
    assert_eq!(
        rows.next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["NAME", "NODE"]),
        "{placed}"
    );
    assert!(rows.all(|r| r.ends_with(" worker-1")), "{placed}");
    let created = skiff_ok(
        &config,
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "--replicas=2",
            "--port=8080",
            "--",
            "/bin/busybox",
            "httpd",
            "-f",
            "-p",
            "8080",
        ],
    );
    assert_eq!(created, "deployment.apps/web created\n");
    skiff_ok(
        &config,
        &[
            "wait",
            "--for=condition=Available",
            "deploy/web",
            "--timeout=60s",
        ],
    );
    let status = skiff_ok(&config, &["rollout", "status", "deploy/web"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let exited = skiff(&config, &["exec", "web", "--", "sh", "-c", "exit 3"]);
    assert_eq!(exited.status.code(), Some(3), "{}", text(&exited));
    // An image the nodes have goes into the registry by its name, from the first of them.
    let pushed = skiff_ok(&config, &["image", "push", "hello"]);
    assert!(
        pushed
            .starts_with("worker-1: pushed hello to 10.250.0.1:5000/library/hello:latest (sha256:"),
        "{pushed}"
    );

    drop(guard);
    let left = remains(&name, &dir);
    assert!(left.is_empty(), "left behind: {left:#?}");
}
