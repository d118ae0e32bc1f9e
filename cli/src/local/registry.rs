//! The local cluster's image registry, as kind and k3d run one: Debian's `docker-registry`
//! (the Go distribution registry) inside the underlay namespace on the bridge's address
//! ([`ADDRESS`]), never on the machine's own interfaces. Its config and storage are in
//! `<cluster>/registry`. Agents pull Docker Hub's names from it (`--registry-mirror
//! docker.io=…`), so `busybox` with `imagePullPolicy: Always` (what an untagged or `:latest`
//! image means) pulls what `skiff up` pushed there.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use skiff_image::OciManifest;
use skiff_netplugin::hosts::{UNDERLAY_IP, runs_inside};
use skiff_netplugin::netns;

use super::status;

/// Debian's registry binary (package docker-registry).
pub const BINARY: &str = "/usr/bin/docker-registry";
/// The registry's port on the underlay bridge's address.
pub const PORT: u16 = 5000;
/// How long the registry may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Set once this process has entered a `skiff up` cluster's underlay namespace, where its
/// registry listens.
static ENTERED: AtomicBool = AtomicBool::new(false);

/// Records that this process now runs in a local cluster's underlay namespace.
pub fn entered_underlay() {
    ENTERED.store(true, Ordering::Relaxed);
}

/// The registry of the local cluster this process talks to, if it talks to one.
pub fn reachable() -> Option<SocketAddr> {
    ENTERED.load(Ordering::Relaxed).then(address)
}

/// `10.250.0.1:5000`: where agents pull from, as image names start.
pub fn address() -> SocketAddr {
    SocketAddr::from((UNDERLAY_IP, PORT))
}

fn dir(cluster: &Path) -> PathBuf {
    cluster.join("registry")
}

fn config_path(cluster: &Path) -> PathBuf {
    dir(cluster).join("config.yml")
}

/// The agent flags that make `docker.io` images come from the registry.
pub fn agent_args() -> [String; 4] {
    let address = address();
    [
        "--registry-mirror".into(),
        format!("docker.io={address}"),
        "--insecure-registry".into(),
        address.to_string(),
    ]
}

/// The registry's process, if one runs on this cluster's config (first pid), and whether
/// it runs inside the underlay namespace at `underlay`.
fn process(cluster: &Path, underlay: &Path) -> Option<(u32, bool)> {
    let config = config_path(cluster);
    let pid = status::processes_naming(&config).into_iter().next()?;
    Some((
        pid,
        netns::is_pinned(underlay) && runs_inside(pid, underlay),
    ))
}

/// Stops the registry (SIGTERM, then SIGKILL after `grace`); how many processes it stopped.
pub fn stop(cluster: &Path, grace: Duration) -> usize {
    let pids = status::processes_naming(&config_path(cluster));
    super::stop_processes(&pids, grace);
    pids.len()
}

/// Starts the registry inside the underlay namespace at `underlay` unless it runs there
/// already (one running outside it, whose namespace went, is stopped first), and waits
/// until it listens. Returns whether it started it.
pub fn ensure(cluster: &Path, underlay: &Path, logs: &Path) -> Result<bool, String> {
    match process(cluster, underlay) {
        Some((_, true)) => return Ok(false),
        Some((_, false)) => {
            stop(cluster, super::DAEMON_GRACE);
        }
        None => {}
    }
    if !Path::new(BINARY).is_file() {
        return Err(format!(
            "{BINARY} is missing: install it (apt-get install docker-registry)"
        ));
    }
    let storage = dir(cluster).join("storage");
    std::fs::create_dir_all(&storage).map_err(|e| format!("mkdir {}: {e}", storage.display()))?;
    let config = config_path(cluster);
    // Deleting is allowed so that an image pushed again under a tag replaces the old one
    // cleanly; the registry listens only on the underlay's address.
    let text = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {}\n",
        storage.display(),
        address()
    );
    std::fs::write(&config, text).map_err(|e| format!("write {}: {e}", config.display()))?;
    let log = logs.join("registry.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("open {}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("open {}: {e}", log.display()))?;
    let mut command = Command::new(BINARY);
    command
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        // Its own process group: a Ctrl-C in this terminal does not reach it.
        .process_group(0);
    let mut child = netns::run_in(underlay, move || command.spawn())
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("spawn {BINARY}: {e}"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let listening = netns::run_in(underlay, || {
            TcpStream::connect_timeout(&address(), Duration::from_millis(500)).is_ok()
        })
        .map_err(|e| e.to_string())?;
        if listening {
            return Ok(true);
        }
        if let Ok(Some(exit)) = child.try_wait() {
            return Err(format!("{BINARY} exited ({exit}); see {}", log.display()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{BINARY} does not listen on {} after {START_TIMEOUT:?}; see {}",
                address(),
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pushes `image` into the registry as `name` (a Docker Hub name, which the registry
/// mirrors), over plain HTTP; must run inside the underlay namespace.
pub async fn push(name: &str, image: &OciManifest) -> Result<(), String> {
    skiff_image::push::push_hub_name(&address().to_string(), name, image)
        .await
        .map(drop)
        .map_err(|e| format!("push {name} to the local registry ({}): {e}", address()))
}
