//! The test-host harness: namespaces joined by an underlay bridge. Needs root; skipped
//! otherwise, unless SKIFF_REQUIRE_PRIVILEGED is set (then it fails).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use skiff_netplugin::netns;
use skiff_tests::hosts::{NETNS_DIR, TestHosts, sweep_stale};

fn runnable() -> bool {
    skiff_tests::host::runs_without(
        (!nix::unistd::Uid::effective().is_root()).then_some("root (network namespaces)"),
    )
}

fn sleeper() -> Command {
    if Path::new("/bin/busybox").exists() {
        let mut command = Command::new("/bin/busybox");
        command.args(["sleep", "30"]);
        command
    } else {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "sleep 30"]);
        command
    }
}

fn net_ns_inode(path: impl AsRef<Path>) -> (u64, u64) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.dev(), meta.ino())
}

/// Sends `ping!` to `addr` and expects `pong!` back (from inside whatever namespace the
/// calling thread is in).
fn ping(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"ping!")?;
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply)?;
    assert_eq!(&reply, b"pong!");
    Ok(())
}

/// Answers `count` pings, returning the peers' addresses.
fn serve(listener: TcpListener, count: usize) -> std::thread::JoinHandle<Vec<IpAddr>> {
    std::thread::spawn(move || {
        (0..count)
            .map(|_| {
                let (mut stream, peer) = listener.accept().unwrap();
                let mut request = [0u8; 5];
                stream.read_exact(&mut request).unwrap();
                assert_eq!(&request, b"ping!");
                stream.write_all(b"pong!").unwrap();
                peer.ip()
            })
            .collect()
    })
}

#[test]
fn tcp_between_hosts_and_cleanup_on_drop() {
    if !runnable() {
        return;
    }
    let hosts = TestHosts::start(3).unwrap();
    let prefix = hosts.prefix().to_string();
    assert_eq!(hosts.ip(1), Ipv4Addr::new(10, 250, 0, 2));
    assert_eq!(hosts.ip(3), Ipv4Addr::new(10, 250, 0, 4));

    // Every host is a namespace of its own, none of them ours.
    let home = net_ns_inode("/proc/self/ns/net");
    let namespaces: Vec<_> = (1..=3).map(|i| net_ns_inode(hosts.netns_path(i))).collect();
    assert!(!namespaces.contains(&home));
    assert_ne!(namespaces[0], namespaces[1]);
    assert_ne!(net_ns_inode(hosts.underlay_path()), home);

    // A server in host 1 sees host 3's own address, and the underlay's.
    let server_ip = hosts.ip(1);
    let listener = hosts
        .run_in(1, move || TcpListener::bind((server_ip, 0)))
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    assert_eq!(addr.ip(), IpAddr::V4(server_ip));
    let server = serve(listener, 2);
    hosts.run_in(3, move || ping(addr)).unwrap().unwrap();
    netns::run_in(&hosts.underlay_path(), move || ping(addr))
        .unwrap()
        .unwrap();
    let peers = server.join().unwrap();
    assert_eq!(
        peers,
        vec![
            IpAddr::V4(hosts.ip(3)),
            IpAddr::V4(Ipv4Addr::new(10, 250, 0, 1))
        ]
    );
    // The host address is nowhere in our own namespace.
    assert!(TcpListener::bind((server_ip, 0)).is_err());

    // A process spawned in host 2 runs in host 2's namespace.
    let child = hosts.spawn(2, sleeper()).unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    assert_eq!(net_ns_inode(format!("/proc/{pid}/ns/net")), namespaces[1]);

    let pins: Vec<_> = (1..=3)
        .map(|i| hosts.netns_path(i))
        .chain([hosts.underlay_path()])
        .collect();
    for pin in &pins {
        assert!(pin.starts_with(NETNS_DIR), "{}", pin.display());
        assert!(pin.exists());
    }
    drop(hosts);

    // The process is gone (killed and reaped), as are the pins and their mounts.
    assert_eq!(kill(pid, None), Err(Errno::ESRCH));
    drop(child);
    for pin in &pins {
        assert!(!pin.exists(), "{} still exists", pin.display());
    }
    let ours = format!("{prefix}-");
    let left: Vec<_> = std::fs::read_dir(NETNS_DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&ours))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.lines().any(|line| line.contains(&ours)),
        "still mounted:\n{mountinfo}"
    );
}

fn connects(hosts: &TestHosts, from: usize, addr: SocketAddr, timeout: Duration) -> bool {
    hosts
        .run_in(from, move || {
            TcpStream::connect_timeout(&addr, timeout).is_ok()
        })
        .unwrap()
}

#[test]
fn link_down_cuts_a_host_off_and_link_up_restores_it() {
    if !runnable() {
        return;
    }
    let hosts = TestHosts::start(3).unwrap();
    let server_ip = hosts.ip(1);
    // Nobody accepts: the kernel completes handshakes into the backlog, which is all a
    // connection attempt needs.
    let listener = hosts
        .run_in(1, move || TcpListener::bind((server_ip, 0)))
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(connects(&hosts, 3, addr, Duration::from_secs(5)));

    hosts.link_down(1).unwrap();
    assert!(!connects(&hosts, 3, addr, Duration::from_secs(1)));
    assert!(!connects(&hosts, 2, addr, Duration::from_secs(1)));

    hosts.link_up(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !connects(&hosts, 3, addr, Duration::from_secs(1)) {
        assert!(Instant::now() < deadline, "host 1 did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(connects(&hosts, 2, addr, Duration::from_secs(5)));
}

#[test]
fn sweep_removes_namespaces_of_dead_runs() {
    if !runnable() {
        return;
    }
    // A pid that was just alive and is not any more stands for a crashed test run.
    let mut gone = Command::new("/bin/sh")
        .args(["-c", "exit 0"])
        .spawn()
        .unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::create_dir_all(NETNS_DIR).unwrap();
    let stale = Path::new(NETNS_DIR).join(format!("skt{dead}x0-h1"));
    netns::create(&stale).unwrap();
    // And one of a live run (this process) that must survive the sweep.
    let live = Path::new(NETNS_DIR).join(format!("skt{}x999999-h1", std::process::id()));
    netns::create(&live).unwrap();

    let removed = sweep_stale();
    let stale_left = stale.exists();
    let live_left = live.exists();
    let _ = netns::remove(&stale);
    netns::remove(&live).unwrap();
    assert!(removed >= 1);
    assert!(!stale_left);
    assert!(live_left);
}
