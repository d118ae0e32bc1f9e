//! The flat pod network across three test hosts (network namespaces on an underlay bridge),
//! each running a control-plane member and an agent with the pod network on. The test's own
//! API calls are made from the underlay namespace (10.250.0.1), the only place besides the
//! hosts that reaches their addresses. Needs root and /bin/busybox; skipped otherwise
//! unless SKIFF_REQUIRE_PRIVILEGED is set.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use skiff_api::types::{Namespace, Node, Pod};
use skiff_client::{Client, DeleteParams, ListParams};
use skiff_netplugin::link::{Links, SKIFF_ROUTE_PROTOCOL};
use skiff_netplugin::netns;
use skiff_tests::cluster::eventually;
use skiff_tests::multihost::MultiHost;

use skiff_tests::host::BUSYBOX;
const SETTLE: Duration = Duration::from_secs(40);

fn runnable() -> bool {
    skiff_tests::host::privileged_tests_can_run()
}

/// A busybox httpd whose CGI `/cgi-bin/ip` answers with the caller's address as it saw it.
fn server_pod(name: &str, host: usize) -> Pod {
    let www = format!("/tmp/skiff-test-www-{name}");
    let script = "mkdir -p $W/cgi-bin && \
        printf '#!/bin/busybox sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > $W/cgi-bin/ip && \
        chmod +x $W/cgi-bin/ip && exec /bin/busybox httpd -f -p 8080 -h $W";
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "net"}},
        "spec": {
            "nodeSelector": {"host": format!("h{host}")},
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "www", "emptyDir": {}}],
            "containers": [{
                "name": "main", "image": "busybox",
                "command": [BUSYBOX, "sh", "-c", script],
                "env": [{"name": "W", "value": www}],
                "volumeMounts": [{"name": "www", "mountPath": www}]
            }]
        }
    }))
    .unwrap()
}

async fn pod_ips(client: &Client, names: &[String]) -> anyhow::Result<BTreeMap<String, Ipv4Addr>> {
    let mut ips = BTreeMap::new();
    for name in names {
        let pod = client.get::<Pod>("default", name).await?;
        let status = pod.status.unwrap_or_default();
        anyhow::ensure!(
            status.phase.as_deref() == Some("Running"),
            "{name}: {:?}",
            status.phase
        );
        let ip = status
            .pod_ip
            .ok_or_else(|| anyhow::anyhow!("{name} has no podIP"))?;
        ips.insert(name.clone(), ip.parse()?);
    }
    Ok(ips)
}

/// From inside pod `client_pod`, asks the server at `ip` which address called it.
async fn who_calls(client: &Client, client_pod: &str, ip: Ipv4Addr) -> anyhow::Result<String> {
    let command: Vec<String> = [
        "/usr/bin/timeout",
        "3",
        BUSYBOX,
        "wget",
        "-qO-",
        &format!("http://{ip}:8080/cgi-bin/ip"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = client
        .exec_output("default", client_pod, None, &command)
        .await?;
    anyhow::ensure!(
        out.exit_code == 0,
        "{client_pod} -> {ip}: exit {} {}",
        out.exit_code,
        String::from_utf8_lossy(&out.stderr)
    );
    // httpd listens on IPv6 and writes IPv4 peers as `[::ffff:a.b.c.d]`.
    let seen = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(seen
        .trim_start_matches("[::ffff:")
        .trim_end_matches(']')
        .to_string())
}

/// An HTTP request from the calling thread's namespace; the status line.
fn http_status(ip: Ipv4Addr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&(ip, 8080).into(), Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(b"GET /cgi-bin/ip HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or_default().to_string())
}

async fn routes_of(path: PathBuf) -> Vec<String> {
    netns::run_async_in(&path, || async {
        let links = Links::connect().unwrap();
        links
            .routes(SKIFF_ROUTE_PROTOCOL)
            .await
            .unwrap()
            .iter()
            .map(|r| format!("{}/{} via {:?}", r.dest, r.prefix, r.gateway))
            .collect()
    })
    .await
    .unwrap()
}

async fn veths_of(path: PathBuf) -> Vec<String> {
    netns::run_async_in(&path, || async {
        let links = Links::connect().unwrap();
        let names = links.names().await.unwrap();
        names
            .into_iter()
            .filter(|n| n.starts_with("veth"))
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_across_hosts_reach_each_other_without_nat() {
    if !runnable() {
        return;
    }
    let mut world = MultiHost::start(3);
    let names: Vec<String> = ["web-1", "web-1b", "web-2", "web-3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let hosts_of = [1, 1, 2, 3];
    let pods: Vec<Pod> = names
        .iter()
        .zip(hosts_of)
        .map(|(n, h)| server_pod(n, h))
        .collect();
    world
        .wait_ready(SETTLE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", world.logs()));
    let names2 = names.clone();
    let result = world
        .api(move |client| async move {
            for pod in &pods {
                client.create(pod).await?;
            }
            let ips = eventually(SETTLE, || pod_ips(&client, &names2)).await?;
            // Every pod calls every other: the server sees the caller's own pod IP.
            eventually(SETTLE, || async {
                for from in &names2 {
                    for (to, ip) in &ips {
                        if from == to {
                            continue;
                        }
                        let seen = who_calls(&client, from, *ip).await?;
                        anyhow::ensure!(
                            seen == ips[from].to_string(),
                            "{from} -> {to}: server saw {seen:?}, not {}",
                            ips[from]
                        );
                    }
                }
                Ok(())
            })
            .await?;
            Ok::<_, anyhow::Error>(ips)
        })
        .await;
    let ips = result.unwrap_or_else(|e| panic!("{e:#}\n{}", world.logs()));
    // Each node's pods come from its own CIDR.
    assert_eq!(
        ips["web-1"].octets()[..3],
        ips["web-1b"].octets()[..3],
        "same host, same /24"
    );
    assert_ne!(ips["web-1"].octets()[2], ips["web-2"].octets()[2]);

    // `skiff get pods -o wide` shows each pod's IP and node.
    let (ok, text) = skiff(&world, &["get", "pods", "-o", "wide"]);
    assert!(ok, "{text}");
    assert!(text.starts_with("NAME "), "{text}");
    for (name, host) in names.iter().zip(hosts_of) {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        let columns: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            columns,
            [
                name.as_str(),
                "1/1",
                "Running",
                "0",
                columns[4],
                &ips[name].to_string(),
                &format!("host-{host}"),
                "<none>",
                "<none>"
            ],
            "{text}"
        );
    }

    // Host to pod, on the same host and across hosts.
    for host in 1..=3 {
        for (name, ip) in &ips {
            let ip = *ip;
            let status = world.hosts.run_in(host, move || http_status(ip)).unwrap();
            assert_eq!(
                status.unwrap_or_else(|e| format!("{e}")),
                "HTTP/1.1 200 OK",
                "host {host} -> {name}"
            );
        }
    }
    // Each host has a route to the other two nodes' pod CIDRs.
    for host in 1..=3 {
        let routes = routes_of(world.hosts.netns_path(host)).await;
        assert_eq!(routes.len(), 2, "host {host}: {routes:?}");
    }

    // The agent of host 2 is killed and restarted: its pod keeps its address and is reachable.
    world.agents[1].kill();
    world.agents[1].restart();
    let names2 = names.clone();
    let before = ips.clone();
    let result = world
        .api(move |client| async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = eventually(SETTLE, || pod_ips(&client, &names2)).await?;
            anyhow::ensure!(
                after == before,
                "addresses changed: {before:?} -> {after:?}"
            );
            let seen = eventually(SETTLE, || who_calls(&client, "web-1", after["web-2"])).await?;
            anyhow::ensure!(seen == after["web-1"].to_string(), "saw {seen}");
            // Then everything goes.
            for name in &names2 {
                client
                    .delete::<Pod>("default", name, &DeleteParams::default())
                    .await?;
            }
            eventually(SETTLE, || async {
                let left = client
                    .list::<Pod>(&ListParams::namespace("default"))
                    .await?
                    .items
                    .len();
                anyhow::ensure!(left == 0, "{left} pods left");
                Ok(())
            })
            .await
        })
        .await;
    result.unwrap_or_else(|e| panic!("{e:#}\n{}", world.logs()));
    // Nothing left: no veth on any host, no address allocated, no namespace or process.
    for (i, agent) in world.agents.iter().enumerate() {
        let host = i + 1;
        assert_eq!(
            veths_of(world.hosts.netns_path(host)).await,
            Vec::<String>::new(),
            "host {host}"
        );
        let ipam = std::fs::read_to_string(agent.data_dir().join("network/ipam.json"))
            .expect("the IPAM state file");
        let state: serde_json::Value = serde_json::from_str(&ipam).unwrap();
        let allocations = state["allocations"].as_object().expect("allocations");
        assert!(allocations.is_empty(), "host {host} IPAM: {ipam}");
        assert_eq!(agent.leftovers(), Vec::<String>::new(), "host {host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_nodes_leaving_and_joining() {
    if !runnable() {
        return;
    }
    let mut world = MultiHost::start(3);
    let paths: Vec<PathBuf> = (1..=3).map(|i| world.hosts.netns_path(i)).collect();
    let wait_routes = |want: usize, hosts: Vec<PathBuf>| async move {
        eventually(SETTLE, || {
            let hosts = hosts.clone();
            async move {
                for (i, path) in hosts.into_iter().enumerate() {
                    let routes = routes_of(path).await;
                    anyhow::ensure!(routes.len() == want, "host {}: {routes:?}", i + 1);
                }
                Ok(())
            }
        })
        .await
    };
    wait_routes(2, paths.clone())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", world.logs()));

    // Host 3's agent stops and its node is deleted: the others drop its route.
    world.agents[2].kill();
    world
        .api(|client| async move {
            client
                .delete::<Node>("", "host-3", &DeleteParams::default())
                .await
                .map(drop)
        })
        .await
        .unwrap();
    wait_routes(1, paths[..2].to_vec())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", world.logs()));

    // It comes back: routes appear everywhere, no agent restarted but its own.
    world.agents[2].restart();
    wait_routes(2, paths)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", world.logs()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masquerade_spares_pod_to_pod_traffic() {
    if !runnable() {
        return;
    }
    let world = MultiHost::try_start_with(3, false, &["--masquerade", "true"]).expect("cluster");
    world
        .wait_ready(SETTLE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", world.logs()));
    // A server outside the cluster CIDR: host 2's own address, in its namespace.
    let www = tempfile::tempdir().unwrap();
    std::fs::create_dir(www.path().join("cgi-bin")).unwrap();
    let script = www.path().join("cgi-bin/ip");
    std::fs::write(
        &script,
        "#!/bin/busybox sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut httpd = std::process::Command::new(BUSYBOX);
    httpd
        .args(["httpd", "-f", "-p", "8080", "-h"])
        .arg(www.path());
    let mut server = world.hosts.spawn(2, httpd).unwrap();
    let host1 = world.hosts.ip(1);
    let host2 = world.hosts.ip(2);

    let result = world
        .api(move |client| async move {
            for (name, host) in [("web-1", 1), ("web-2", 2)] {
                client.create(&server_pod(name, host)).await?;
            }
            let names = vec!["web-1".to_string(), "web-2".to_string()];
            let ips = eventually(SETTLE, || pod_ips(&client, &names)).await?;
            // Pod to pod across hosts: still the client pod's own address.
            let seen = eventually(SETTLE, || who_calls(&client, "web-1", ips["web-2"])).await?;
            anyhow::ensure!(
                seen == ips["web-1"].to_string(),
                "pod to pod: server saw {seen}"
            );
            // Leaving the cluster CIDR: the node's address instead of the pod's.
            let seen = eventually(SETTLE, || who_calls(&client, "web-1", host2)).await?;
            anyhow::ensure!(
                seen == host1.to_string(),
                "pod to host 2: server saw {seen}"
            );
            for name in &names {
                client
                    .delete::<Pod>("default", name, &DeleteParams::default())
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        })
        .await;
    let _ = server.kill();
    let _ = server.wait();
    result.unwrap_or_else(|e| panic!("{e:#}\n{}", world.logs()));
}

/// Runs `skiff ARGS…` against the cluster from the underlay namespace: (success, output).
fn skiff(world: &MultiHost, args: &[&str]) -> (bool, String) {
    let binary = skiff_tests::cluster::binary("skiff");
    let servers = world.endpoints().join(",");
    let config = world.cluster.admin_conf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let output = netns::run_in(&world.hosts.underlay_path(), move || {
        std::process::Command::new(binary)
            .arg("--config")
            .arg(config)
            .arg("--server")
            .arg(servers)
            .args(args)
            .output()
    })
    .unwrap()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn net_check(world: &MultiHost) -> (bool, String) {
    skiff(world, &["net", "check", "--busybox", BUSYBOX])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skiff_net_check_passes_then_names_a_broken_route() {
    if !runnable() {
        return;
    }
    // Routes are repaired only on node changes here, so a route removed by hand stays gone.
    let world = MultiHost::try_start_with(3, false, &["--route-resync", "1h"]).expect("cluster");
    world
        .wait_ready(SETTLE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", world.logs()));
    // The routes are in place once every node has seen every other Ready.
    let paths: Vec<PathBuf> = (1..=3).map(|i| world.hosts.netns_path(i)).collect();
    eventually(SETTLE, || {
        let paths = paths.clone();
        async move {
            for path in paths {
                anyhow::ensure!(routes_of(path).await.len() == 2);
            }
            Ok(())
        }
    })
    .await
    .unwrap();
    let (ok, text) = net_check(&world);
    assert!(ok, "{text}\n{}", world.logs());
    eprintln!("{text}");
    // 3 x 2 pod-to-pod calls and 3 x 3 host-to-pod calls.
    assert!(text.contains("15 of 15 calls ok across 3 nodes"), "{text}");
    assert!(!text.contains("FAIL") && !text.contains("NAT:"), "{text}");
    // The namespace the check made is gone when it returns (not left Terminating, which
    // would refuse the next run's probes).
    let namespace = world
        .api(|client| async move {
            client
                .get::<Namespace>("", "skiff-net-check")
                .await
                .map(|n| n.metadata.name)
        })
        .await;
    assert!(
        matches!(&namespace, Err(e) if e.is_not_found()),
        "{namespace:?}"
    );

    // Host 1 loses its route to host 3's pods.
    let host3 = world.hosts.ip(3);
    netns::run_async_in(&paths[0], move || async move {
        let links = Links::connect().unwrap();
        let route = links
            .routes(SKIFF_ROUTE_PROTOCOL)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.gateway == Some(host3))
            .expect("a route via host 3");
        links
            .delete_route(route.dest, route.prefix, SKIFF_ROUTE_PROTOCOL)
            .await
            .unwrap();
    })
    .await
    .unwrap();
    let (ok, text) = net_check(&world);
    assert!(!ok, "the check passed without a route:\n{text}");
    assert!(text.contains("FAIL: pod@host-1 -> pod@host-3"), "{text}");
    assert!(text.contains("FAIL: pod@host-3 -> pod@host-1"), "{text}");
    // The probes are gone again.
    let left = world
        .api(|client| async move {
            client
                .list::<Pod>(&ListParams::namespace("default"))
                .await
                .map(|l| l.items.len())
        })
        .await
        .unwrap();
    assert_eq!(left, 0);
}
