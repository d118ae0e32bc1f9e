//! `skiff up` and `skiff down` as a user runs them: the real binaries, a cluster on
//! network-namespace hosts, the demo answering on its pod IPs from another host, and
//! nothing left behind afterwards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

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

#[test]
fn local_cluster_1_up_serves_the_demo_and_down_leaves_nothing() {
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
    assert!(ps_text.lines().count() <= 3, "only httpd and ps: {ps_text}");

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
