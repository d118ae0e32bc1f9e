//! The pod network on the real kernel, inside a network namespace standing in for a host
//! (the machine's own namespace is never touched). Needs root; skipped otherwise unless
//! SKIFF_REQUIRE_PRIVILEGED is set.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use skiff_netplugin::ipam::Cidr;
use skiff_netplugin::link::{Links, SKIFF_ROUTE_PROTOCOL};
use skiff_netplugin::netns;
use skiff_netplugin::network::{BRIDGE, PodNetwork, host_veth_name};
use skiff_netplugin::routes::NodeRoute;

fn runnable() -> bool {
    skiff_testkit::root_or_skip("network namespaces, links, routes")
}

/// Namespaces pinned under a temp dir, removed on drop.
struct Namespaces {
    dir: tempfile::TempDir,
    made: Vec<PathBuf>,
}

impl Namespaces {
    fn new() -> Namespaces {
        Namespaces {
            dir: tempfile::Builder::new()
                .prefix("skiff-test-net-")
                .tempdir()
                .unwrap(),
            made: Vec::new(),
        }
    }

    fn make(&mut self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        netns::create(&path).unwrap();
        self.made.push(path.clone());
        path
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for path in self.made.iter().rev() {
            let _ = netns::remove(path);
        }
    }
}

/// A TCP exchange from the `client` namespace to `server_ip` listening in `server`;
/// returns the peer address the server saw.
fn exchange(server: &Path, server_ip: Ipv4Addr, client: &Path) -> SocketAddr {
    let listener = netns::run_in(server, move || {
        TcpListener::bind((server_ip, 7777)).unwrap()
    })
    .unwrap();
    let accept = std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).unwrap();
        stream.write_all(&buf).unwrap();
        peer
    });
    netns::run_in(client, move || {
        let mut stream =
            TcpStream::connect_timeout(&(server_ip, 7777).into(), Duration::from_secs(3)).unwrap();
        stream.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    })
    .unwrap();
    accept.join().unwrap()
}

#[tokio::test]
async fn pods_on_one_host_get_addresses_and_reach_each_other_without_nat() {
    if !runnable() {
        return;
    }
    let mut ns = Namespaces::new();
    let host = ns.make("host");
    let pod_a = ns.make("pod-a");
    let pod_b = ns.make("pod-b");
    let state = ns.dir.path().join("ipam");
    let cidr = Cidr::parse("10.244.7.0/24").unwrap();

    let (pa, pb, pod_a2, pod_b2, state2) = (
        pod_a.clone(),
        pod_b.clone(),
        pod_a.clone(),
        pod_b.clone(),
        state.clone(),
    );
    let (ip_a, ip_b) = netns::run_async_in(&host, move || async move {
        let network = PodNetwork::setup(&state2, cidr).await.unwrap();
        let ip_a = network.attach("uid-a", &pa).await.unwrap();
        let ip_b = network.attach("uid-b", &pb).await.unwrap();
        // Attaching again changes nothing.
        assert_eq!(network.attach("uid-a", &pa).await.unwrap(), ip_a);
        let links = Links::connect().unwrap();
        assert!(links.index(BRIDGE).await.unwrap().is_some());
        assert!(
            links
                .index(&host_veth_name("uid-a"))
                .await
                .unwrap()
                .is_some()
        );
        (ip_a, ip_b)
    })
    .await
    .unwrap();
    assert_eq!(
        (ip_a, ip_b),
        ("10.244.7.2".parse().unwrap(), "10.244.7.3".parse().unwrap())
    );

    // Pod to pod: the server sees the client pod's own address.
    assert_eq!(exchange(&pod_a2, ip_a, &pod_b2).ip(), ip_b);
    // Host to pod, from the bridge's address.
    assert_eq!(exchange(&pod_b, ip_b, &host).ip(), cidr.gateway());

    // A new PodNetwork (an agent restart) keeps the addresses; detach frees them.
    let (pa, state2) = (pod_a.clone(), state.clone());
    netns::run_async_in(&host, move || async move {
        let network = PodNetwork::setup(&state2, cidr).await.unwrap();
        assert_eq!(network.attach("uid-a", &pa).await.unwrap(), ip_a);
        network.detach("uid-a").await.unwrap();
        let freed = network.retain(|uid| uid != "uid-b").await.unwrap();
        assert_eq!(freed, vec![("uid-b".to_string(), ip_b)]);
        assert!(network.allocations().is_empty());
        let links = Links::connect().unwrap();
        assert!(
            links
                .index(&host_veth_name("uid-a"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            links
                .index(&host_veth_name("uid-b"))
                .await
                .unwrap()
                .is_none()
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn routes_follow_the_desired_set() {
    if !runnable() {
        return;
    }
    let mut ns = Namespaces::new();
    let host = ns.make("host");
    let state = ns.dir.path().join("ipam");
    netns::run_async_in(&host, move || async move {
        let links = Links::connect().unwrap();
        // An underlay address so the gateways are reachable.
        links.create_veth("u0", "u1").await.unwrap();
        links
            .add_address("u0", "10.250.0.2".parse().unwrap(), 24)
            .await
            .unwrap();
        links.set_up("u0").await.unwrap();
        links.set_up("u1").await.unwrap();
        let network = PodNetwork::setup(&state, Cidr::parse("10.244.1.0/24").unwrap())
            .await
            .unwrap();
        let route = |cidr: &str, via: &str| NodeRoute {
            cidr: Cidr::parse(cidr).unwrap(),
            via: via.parse().unwrap(),
        };
        let want = vec![
            route("10.244.2.0/24", "10.250.0.3"),
            route("10.244.3.0/24", "10.250.0.4"),
        ];
        let changes = network.sync_routes(&want).await.unwrap();
        assert_eq!(changes.add.len(), 2);
        assert!(network.sync_routes(&want).await.unwrap().is_empty());
        // A node moved, another left.
        let want = vec![route("10.244.2.0/24", "10.250.0.9")];
        let changes = network.sync_routes(&want).await.unwrap();
        assert_eq!((changes.add.len(), changes.delete.len()), (1, 2));
        let routes = links.routes(SKIFF_ROUTE_PROTOCOL).await.unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].gateway, Some("10.250.0.9".parse().unwrap()));
        network.sync_routes(&[]).await.unwrap();
        assert!(links.routes(SKIFF_ROUTE_PROTOCOL).await.unwrap().is_empty());
    })
    .await
    .unwrap();
}
