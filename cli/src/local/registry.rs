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
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use skiff_image::OciManifest;
use skiff_image::oci::MEDIA_OCI_MANIFEST;
use skiff_netplugin::hosts::{UNDERLAY_IP, runs_inside};
use skiff_netplugin::netns;

use super::status;

/// Debian's registry binary (package docker-registry).
pub const BINARY: &str = "/usr/bin/docker-registry";
/// The registry's port on the underlay bridge's address.
pub const PORT: u16 = 5000;
/// How long the registry may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

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

/// `busybox:latest` → (`library/busybox`, `latest`): a Docker Hub name's repository and
/// tag in the registry that stands in for Docker Hub. Names of other registries are `None`.
pub fn hub_repository(name: &str) -> Option<(String, String)> {
    let (path, tag) = match name.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, tag),
        _ => (name, "latest"),
    };
    let path = path
        .strip_prefix("docker.io/")
        .or_else(|| path.strip_prefix("index.docker.io/"))
        .unwrap_or(path);
    let first = path.split('/').next().unwrap_or_default();
    // A first part with a dot or a port, or localhost, is another registry's host.
    if path.contains('/') && (first.contains(['.', ':']) || first == "localhost") {
        return None;
    }
    let repository = if path.contains('/') {
        path.to_string()
    } else {
        format!("library/{path}")
    };
    Some((repository, tag.to_string()))
}

/// Pushes `image` into the registry as `name` (a Docker Hub name, see [`hub_repository`]),
/// over plain HTTP; must run inside the underlay namespace.
pub async fn push(name: &str, image: &OciManifest) -> Result<(), String> {
    let (repository, tag) = hub_repository(name).ok_or_else(|| {
        format!("{name}: not a Docker Hub name, which the local registry mirrors")
    })?;
    // oci-client makes a TLS config even for plain HTTP; failing means one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = oci_client::Client::try_from(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
    .map_err(|e| format!("registry client: {e}"))?;
    let reference = oci_client::Reference::with_tag(address().to_string(), repository, tag);
    let failed = |what: &str, e: oci_client::errors::OciDistributionError| {
        format!(
            "push {name} to the local registry ({}): {what}: {e}",
            address()
        )
    };
    client
        .auth(
            &reference,
            &RegistryAuth::Anonymous,
            oci_client::RegistryOperation::Push,
        )
        .await
        .map_err(|e| failed("auth", e))?;
    for blob in image.layers.iter().chain([&image.config]) {
        client
            .push_blob(&reference, blob.clone(), &skiff_image::sha256(blob))
            .await
            .map_err(|e| failed("blob", e))?;
    }
    client
        .push_manifest_raw(
            &reference,
            image.json.clone(),
            http::HeaderValue::from_static(MEDIA_OCI_MANIFEST),
        )
        .await
        .map_err(|e| failed("manifest", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_map_to_the_registrys_repositories_and_others_do_not() {
        let hub = |name: &str| hub_repository(name).map(|(r, t)| format!("{r}:{t}"));
        assert_eq!(hub("busybox").as_deref(), Some("library/busybox:latest"));
        assert_eq!(hub("busybox:1.36").as_deref(), Some("library/busybox:1.36"));
        assert_eq!(
            hub("docker.io/library/busybox:latest").as_deref(),
            Some("library/busybox:latest")
        );
        assert_eq!(hub("me/app:v2").as_deref(), Some("me/app:v2"));
        assert_eq!(hub("registry.lan:5000/x/y:1"), None);
        assert_eq!(hub("localhost/x"), None);
        assert_eq!(hub("ghcr.io/x/y"), None);
    }
}
