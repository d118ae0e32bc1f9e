//! A loopback image registry for tests: Debian's `docker-registry` (the Go distribution
//! registry v2) on `127.0.0.1:<free port>`, with a temp config and storage, and pushes of
//! the busybox test image into it ([`skiff_image::push`], the one pusher of the workspace).
//! Dropping it kills the process and removes its storage.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use skiff_tests::images::BusyboxImage;
//! use skiff_tests::registry::Registry;
//! let registry = Registry::start().await?;
//! let image = BusyboxImage::with_applets(&std::fs::read("/bin/busybox")?);
//! let digest = registry.push("skiff-test/busybox", "v1", &image).await?;
//! // Pods name it `{registry.host()}/skiff-test/busybox:v1`.
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::cluster::free_port;
use crate::images::BusyboxImage;

/// Debian's registry binary (package docker-registry).
pub const REGISTRY: &str = "/usr/bin/docker-registry";

/// What a registry test lacks on this host, for [`crate::host::runs_without`]: `None` when
/// `docker-registry` is installed.
pub fn missing() -> Option<&'static str> {
    (!Path::new(REGISTRY).exists())
        .then_some("/usr/bin/docker-registry (apt-get install docker-registry)")
}

/// A running `docker-registry serve` on a loopback port.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Registry {
    /// Starts the registry and waits until it accepts connections (at most 20 s).
    pub async fn start() -> anyhow::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-registry-")
            .tempdir()
            .context("registry temp dir")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            dir.path().join("storage").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).context("write registry config")?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {REGISTRY}"))?;
        // From here on, dropping `registry` kills the process.
        let mut registry = Registry { child, addr, dir };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = registry.child.try_wait() {
                bail!("docker-registry exited ({status}):\n{}", registry.log());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "docker-registry does not listen on {addr}:\n{}",
                    registry.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(registry)
    }

    /// `127.0.0.1:PORT`, as image names start.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// What the registry has logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Pushes `image` (gzip layer, OCI manifest) as `repository:tag`, anonymously over
    /// plain HTTP; returns the manifest's digest (`sha256:…`).
    pub async fn push(
        &self,
        repository: &str,
        tag: &str,
        image: &BusyboxImage,
    ) -> anyhow::Result<String> {
        let manifest =
            skiff_image::OciManifest::new(image.config.clone(), vec![image.layer_gzip.clone()]);
        skiff_image::push::push(&self.host(), repository, tag, &manifest, true)
            .await
            .with_context(|| format!("push {repository}:{tag}\n{}", self.log()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- registry {} log\n{}", self.addr, self.log());
        }
    }
}
