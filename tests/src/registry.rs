//! An image registry for tests: Debian's `docker-registry` (the Go distribution registry
//! v2) on `127.0.0.1:<free port>`, or inside a test hosts' underlay namespace as `skiff up`
//! runs its own ([`Registry::start_in`]), with a temp config and storage, and pushes of the
//! busybox test image into it ([`skiff_image::push`], the one pusher of the workspace).
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

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;

use skiff_netplugin::netns;

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

/// A running `docker-registry serve`.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
    /// The network namespace it listens in; `None`: this process's own.
    netns: Option<PathBuf>,
}

/// Whether something accepts connections on `addr`, tried from inside `netns` if given.
/// A connection to itself does not count: polling a free port of the ephemeral range can
/// be given that very port as its source, and then "connects" with nothing listening.
async fn accepts(addr: SocketAddr, netns: Option<&Path>) -> bool {
    let listened = move |stream: std::io::Result<std::net::TcpStream>| {
        stream.is_ok_and(|s| s.local_addr().ok() != Some(addr))
    };
    match netns {
        Some(netns) => netns::run_in(netns, move || {
            listened(std::net::TcpStream::connect_timeout(
                &addr,
                Duration::from_millis(500),
            ))
        })
        .unwrap_or(false),
        None => listened(
            tokio::net::TcpStream::connect(addr)
                .await
                .and_then(|s| s.into_std()),
        ),
    }
}

impl Registry {
    /// Starts the registry on a free loopback port and waits until it accepts connections
    /// (at most 20 s).
    pub async fn start() -> anyhow::Result<Registry> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], free_port())), None).await
    }

    /// Starts the registry inside the network namespace pinned at `netns`, on `ip:port`
    /// (e.g. a test hosts' underlay bridge, where `skiff up` runs its registry); pushes
    /// then go out from there too.
    pub async fn start_in(netns: &Path, ip: Ipv4Addr, port: u16) -> anyhow::Result<Registry> {
        Self::start_at(SocketAddr::from((ip, port)), Some(netns.to_path_buf())).await
    }

    async fn start_at(addr: SocketAddr, netns: Option<PathBuf>) -> anyhow::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-registry-")
            .tempdir()
            .context("registry temp dir")?;
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
        let mut command = Command::new(REGISTRY);
        command
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = match &netns {
            Some(netns) => netns::run_in(netns, move || command.spawn())?,
            None => command.spawn(),
        }
        .with_context(|| format!("spawn {REGISTRY}"))?;
        // From here on, dropping `registry` kills the process.
        let mut registry = Registry {
            child,
            addr,
            dir,
            netns,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !accepts(addr, registry.netns.as_deref()).await {
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

    /// `IP:PORT`, as image names start.
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
        self.push_manifest(repository, tag, manifest).await
    }

    /// Pushes `manifest` and its blobs as `repository:tag`, as [`Registry::push`] does.
    pub async fn push_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: skiff_image::OciManifest,
    ) -> anyhow::Result<String> {
        let (host, reference) = (self.host(), format!("{repository}:{tag}"));
        let (repository, tag) = (repository.to_string(), tag.to_string());
        let push = move || async move {
            skiff_image::push::push(&host, &repository, &tag, &manifest, true).await
        };
        let pushed = match &self.netns {
            Some(netns) => netns::run_async_in(netns, push).await?,
            None => push().await,
        };
        pushed.with_context(|| format!("push {reference}\n{}", self.log()))
    }

    /// The manifest the registry serves for `repository:reference` (a tag or digest), with
    /// its digest (`Docker-Content-Digest`), fetched as a client would.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> anyhow::Result<(String, Vec<u8>)> {
        let (addr, path) = (self.addr, format!("/v2/{repository}/manifests/{reference}"));
        let get = move || -> anyhow::Result<(String, Vec<u8>)> {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(
                stream,
                "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {}, \
                 application/vnd.docker.distribution.manifest.v2+json\r\n\r\n",
                skiff_image::oci::MEDIA_OCI_MANIFEST,
            )?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response)?;
            let split = response
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .context("no end of the response's headers")?;
            let head = String::from_utf8_lossy(&response[..split]).into_owned();
            anyhow::ensure!(
                head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
                "GET {path}: {head}"
            );
            let digest = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("docker-content-digest")
                        .then(|| value.trim().to_string())
                })
                .context("no Docker-Content-Digest")?;
            Ok((digest, response[split + 4..].to_vec()))
        };
        match &self.netns {
            Some(netns) => netns::run_in(netns, get)?,
            None => tokio::task::spawn_blocking(get).await?,
        }
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
