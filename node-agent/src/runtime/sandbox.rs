//! The pod sandbox both runtimes share: a network and a UTS namespace with the pod's
//! hostname and `lo` up, pinned by bind mounts on `<dir>/netns` and `<dir>/utsns` (made by
//! the agent's `__sandbox` helper while it is single-threaded), torn down with its
//! directory; and TCP connections made inside the pod's network namespace.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use super::{Result, RuntimeError};

/// New network and UTS namespaces for this (single-threaded helper) process, the hostname
/// set and `lo` up, pinned under `dir`.
pub fn make_namespaces(dir: &Path, hostname: &str) -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS)
        .map_err(|e| format!("unshare net+uts: {e}"))?;
    nix::unistd::sethostname(hostname).map_err(|e| format!("sethostname {hostname:?}: {e}"))?;
    loopback_up()?;
    pin_namespaces(dir)
}

/// Bind-mounts this process's network and UTS namespaces on `DIR/netns` and `DIR/utsns`.
pub fn pin_namespaces(dir: &Path) -> Result<(), String> {
    for (ns, file) in [("net", "netns"), ("uts", "utsns")] {
        let source = format!("/proc/self/ns/{ns}");
        let target = dir.join(file);
        File::create(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
        mount(
            Some(source.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind {source} on {}: {e}", target.display()))?;
    }
    Ok(())
}

/// Brings `lo` (always index 1 in a new namespace) up through netlink.
fn loopback_up() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("netlink runtime: {e}"))?;
    runtime.block_on(async {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| format!("netlink socket: {e}"))?;
        let task = tokio::spawn(connection);
        let result = handle
            .link()
            .set(rtnetlink::LinkUnspec::new_with_index(1).up().build())
            .execute()
            .await
            .map_err(|e| format!("set lo up: {e}"));
        task.abort();
        result
    })
}

/// Unmounts the namespace files and anything else mounted below `dir` (an oci container's
/// rootfs left by a crash), then deletes the directory (volumes and logs with it).
pub fn teardown_sandbox_dir(dir: &Path) -> Result<()> {
    for path in mounts_below(dir).iter().rev() {
        // Deepest (latest) first; a mount gone meanwhile is fine.
        let _ = umount2(path.as_str(), MntFlags::MNT_DETACH);
    }
    for file in ["netns", "utsns"] {
        let path = dir.join(file);
        if path.exists() {
            match umount2(&path, MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => {
                    return Err(RuntimeError::System(format!(
                        "unmount {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io(format!("remove {}", dir.display()), e)),
    }
}

/// A TCP connection to `port` on the loopback of the network namespace pinned at `netns`.
pub async fn connect_in_netns(
    netns: &Path,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream> {
    let netns = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A thread of its own: setns changes the calling thread's namespace for good, and
    // the socket keeps the namespace it was made in.
    std::thread::spawn(move || {
        let result = (|| {
            let file = std::fs::File::open(&netns)?;
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            let stream = std::net::TcpStream::connect_timeout(
                &(std::net::Ipv4Addr::LOCALHOST, port).into(),
                timeout,
            )?;
            stream.set_nonblocking(true)?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        })();
        let _ = tx.send(result);
    });
    let stream = rx
        .await
        .map_err(|_| RuntimeError::System("connect thread ended".into()))?
        .map_err(|e| RuntimeError::io(format!("connect to port {port} in the pod"), e))?;
    tokio::net::TcpStream::from_std(stream).map_err(|e| RuntimeError::io("register socket", e))
}

/// Mount points at `dir` or below it, in mount order.
pub fn mounts_under(dir: &Path) -> std::io::Result<Vec<String>> {
    let dir = dir.display().to_string();
    let below = format!("{dir}/");
    Ok(std::fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| *m == dir || m.starts_with(&below))
        .map(str::to_string)
        .collect())
}

/// Mount points strictly below `dir`, in mount order.
pub fn mounts_below(dir: &Path) -> Vec<String> {
    let dir_text = dir.display().to_string();
    let mut mounts = mounts_under(dir).unwrap_or_default();
    mounts.retain(|m| *m != dir_text);
    mounts
}
