//! Pulling images from an OCI distribution registry (Docker's registry v2 API) with the
//! `oci-client` crate: the manifest (through an index, this host's platform), the config
//! and the layers are fetched into a staging dir of the store as an OCI image layout, then
//! verified and committed exactly as an imported archive is (digests, sizes, diff_ids; the
//! store is unchanged on any failure).
//!
//! Transport: plain HTTP for loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`) and
//! for those named in [`PullOptions::insecure_registries`], HTTPS (rustls) otherwise.
//! Anonymous access, or HTTP basic credentials per registry (which oci-client also uses to
//! get a bearer token when the registry asks for one).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::archive::{ArchiveFiles, Member};
use super::digest::{Digest, HashingReader};
use super::reference::Reference;
use super::store::{Image, ImageStore};
use super::types::*;
use super::{ImageError, Result};

/// Basic-auth credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:***)", self.username)
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// `HOST:PORT` (or `HOST`) of registries spoken to over plain HTTP (loopback ones
    /// always are).
    pub insecure_registries: Vec<String>,
    /// Registry `HOST[:PORT]` → basic-auth credentials; others are accessed anonymously.
    pub auth: BTreeMap<String, Credentials>,
    /// Registry `HOST[:PORT]` (as in image names, `docker.io` for short names) → the
    /// `HOST:PORT` its images are pulled from instead, as a containerd mirror (a local
    /// cluster's registry stands in for Docker Hub).
    pub mirrors: BTreeMap<String, String>,
    /// Connect and read timeouts (default 10 s and 60 s).
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
}

impl PullOptions {
    /// Where `registry`'s images are pulled from: its mirror, or itself.
    pub fn endpoint(&self, registry: &str) -> String {
        self.mirrors
            .get(registry)
            .cloned()
            .unwrap_or_else(|| registry.to_string())
    }

    /// Whether `registry` (`host[:port]`) is spoken to over plain HTTP.
    pub fn plain_http(&self, registry: &str) -> bool {
        is_loopback(registry) || self.insecure_registries.iter().any(|r| r == registry)
    }

    fn registry_auth(&self, registry: &str) -> RegistryAuth {
        match self.auth.get(registry) {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

/// `--registry-auth HOST=USER:PASSWORD` → (host, credentials).
pub fn parse_registry_auth(text: &str) -> std::result::Result<(String, Credentials), String> {
    let (host, userpass) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected HOST=USER:PASSWORD"))?;
    let (username, password) = userpass
        .split_once(':')
        .ok_or_else(|| format!("registry auth for {host:?}: expected USER:PASSWORD"))?;
    if host.is_empty() || username.is_empty() {
        return Err(format!("{text:?}: expected HOST=USER:PASSWORD"));
    }
    Ok((
        host.to_string(),
        Credentials {
            username: username.to_string(),
            password: password.to_string(),
        },
    ))
}

/// `localhost`, `127.x.y.z`, `[::1]`, with or without a port.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The part of a manifest or index the pull follows.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

const ACCEPTED: &[&str] = &[
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
];

fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An oci-client error as the registry's reason, the way a user wants to read it.
pub fn describe_error(error: &OciDistributionError, reference: &Reference) -> String {
    match error {
        OciDistributionError::RegistryError { envelope, .. } => {
            let reasons: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| {
                    let message = if e.message.is_empty() {
                        format!("{:?}", e.code)
                    } else {
                        e.message.clone()
                    };
                    match (&e.code, reference.tag(), reference.digest()) {
                        (OciErrorCode::ManifestUnknown, _, Some(digest)) => {
                            format!("{message}: {digest} not found in {}", reference.name())
                        }
                        (OciErrorCode::ManifestUnknown, Some(tag), None) => {
                            format!("{message}: tag {tag} not found in {}", reference.name())
                        }
                        (OciErrorCode::NameUnknown, _, _) => {
                            format!("{message}: {}", reference.name())
                        }
                        _ if !e.detail.is_null() => format!("{message} ({})", e.detail),
                        _ => message,
                    }
                })
                .collect();
            if reasons.is_empty() {
                error.to_string()
            } else {
                reasons.join("; ")
            }
        }
        OciDistributionError::UnauthorizedError { .. } => format!(
            "unauthorized: authentication required for {} (check --registry-auth)",
            reference.registry()
        ),
        OciDistributionError::AuthenticationFailure(reason) => {
            format!(
                "authentication to {} failed: {reason}",
                reference.registry()
            )
        }
        OciDistributionError::ImageManifestNotFoundError(_) => match reference.tag() {
            Some(tag) => format!(
                "manifest unknown: tag {tag} not found in {}",
                reference.name()
            ),
            None => format!("manifest unknown: {reference}"),
        },
        other => {
            // Connection errors hide the cause in their sources.
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                let s_text = s.to_string();
                if !text.contains(&s_text) {
                    text.push_str(": ");
                    text.push_str(&s_text);
                }
                source = s.source();
            }
            text
        }
    }
}

fn registry_error(reference: &Reference, message: String) -> ImageError {
    ImageError::Registry {
        reference: reference.to_string(),
        message,
    }
}

/// A blob's file, refusing to grow past the size its descriptor gives.
struct CappedWriter {
    file: tokio::fs::File,
    left: u64,
    /// Set when more came than the descriptor said.
    overrun: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CappedWriter {
    fn new(file: tokio::fs::File, size: u64) -> CappedWriter {
        CappedWriter {
            file,
            left: size,
            overrun: Default::default(),
        }
    }
}

impl tokio::io::AsyncWrite for CappedWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if buf.len() as u64 > self.left {
            self.overrun
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return std::task::Poll::Ready(Err(std::io::Error::other(
                "the blob is longer than its descriptor says",
            )));
        }
        let this = &mut *self;
        let written = std::task::ready!(std::pin::Pin::new(&mut this.file).poll_write(cx, buf))?;
        this.left -= written as u64;
        std::task::Poll::Ready(Ok(written))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

/// An HTTP client with oci-client's timeouts and user agent, for manifests.
fn http_client(config: &ClientConfig) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().user_agent(config.user_agent);
    if let Some(timeout) = config.connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    if let Some(timeout) = config.read_timeout {
        builder = builder.read_timeout(timeout);
    }
    builder.build().map_err(|e| ImageError::Registry {
        reference: String::new(),
        message: format!("http client: {e}"),
    })
}

/// Fetches manifests with their size capped as they stream in (oci-client reads a whole
/// response into memory first), authenticated as oci-client authenticates its own calls.
struct ManifestFetch<'a> {
    client: &'a oci_client::Client,
    http: reqwest::Client,
    auth: &'a RegistryAuth,
    plain_http: bool,
    limit: u64,
    reference: &'a Reference,
}

impl ManifestFetch<'_> {
    async fn get(&self, target: &oci_client::Reference) -> Result<Vec<u8>> {
        let reference = self.reference;
        let fail =
            |e: OciDistributionError| registry_error(reference, describe_error(&e, reference));
        let token = self
            .client
            .auth(target, self.auth, oci_client::RegistryOperation::Pull)
            .await
            .map_err(fail)?;
        let registry = target.resolve_registry();
        let scheme = if self.plain_http { "http" } else { "https" };
        let url = format!(
            "{scheme}://{registry}/v2/{}/manifests/{}",
            target.repository(),
            target.digest().or(target.tag()).unwrap_or("latest")
        );
        let mut request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, ACCEPTED.join(", "));
        request = match (token, self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        };
        let unreachable = |e: reqwest::Error| registry_error(reference, format!("GET {url}: {e}"));
        let mut response = request.send().await.map_err(unreachable)?;
        let too_large = || ImageError::Limit {
            what: format!("the manifest of {reference}"),
            limit: format!(
                "the limit of {} bytes (--image-max-manifest-bytes)",
                self.limit
            ),
        };
        if response.content_length().is_some_and(|n| n > self.limit) {
            return Err(too_large());
        }
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if (body.len() + chunk.len()) as u64 > self.limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(fail(OciDistributionError::UnauthorizedError { url }));
        }
        if !status.is_success() {
            return Err(
                match serde_json::from_slice::<oci_client::errors::OciEnvelope>(&body) {
                    Ok(envelope) if status.is_client_error() => {
                        fail(OciDistributionError::RegistryError { envelope, url })
                    }
                    _ => registry_error(
                        reference,
                        format!(
                            "GET {url}: {status}: {}",
                            String::from_utf8_lossy(&body).trim()
                        ),
                    ),
                },
            );
        }
        Ok(body)
    }
}

/// Hashes a staged file.
fn member_of(path: &Path) -> Result<Member> {
    let file =
        File::open(path).map_err(|e| ImageError::io(format!("open {}", path.display()), e))?;
    let (digest, size) = HashingReader::new(file)
        .finish()
        .map_err(|e| ImageError::io(format!("read {}", path.display()), e))?;
    Ok(Member {
        path: path.to_path_buf(),
        digest,
        size,
    })
}

impl ImageStore {
    /// Pulls `reference` from its registry into the store and returns the image (with the
    /// reference now pointing at it). Every blob is verified as an import's is; on any
    /// failure the store is unchanged. Errors from the registry are
    /// [`ImageError::Registry`] with the registry's reason.
    pub async fn pull(&self, reference: &Reference, options: &PullOptions) -> Result<Image> {
        install_crypto_provider();
        let _turn = self.import_turn().await;
        let staging = {
            let store = self.clone();
            tokio::task::spawn_blocking(move || store.pull_staging())
                .await
                .map_err(|e| ImageError::Unsupported(format!("pull task: {e}")))??
        };
        let blobs = staging.dir.join("blobs/sha256");
        tokio::fs::create_dir_all(&blobs)
            .await
            .map_err(|e| ImageError::io(format!("mkdir {}", blobs.display()), e))?;

        let registry = options.endpoint(reference.registry());
        let config = ClientConfig {
            protocol: if options.plain_http(&registry) {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(options.connect_timeout.unwrap_or(Duration::from_secs(10))),
            read_timeout: Some(options.read_timeout.unwrap_or(Duration::from_secs(60))),
            user_agent: concat!("skiff-agent/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let http = http_client(&config)?;
        let client = oci_client::Client::try_from(config)
            .map_err(|e| registry_error(reference, format!("registry client: {e}")))?;
        let auth = options.registry_auth(&registry);
        let oci_ref = match (reference.digest(), reference.tag()) {
            (Some(digest), _) => oci_client::Reference::with_digest(
                registry.clone(),
                reference.repository().to_string(),
                digest.to_string(),
            ),
            (None, tag) => oci_client::Reference::with_tag(
                registry.clone(),
                reference.repository().to_string(),
                tag.unwrap_or("latest").to_string(),
            ),
        };
        let fail =
            |e: OciDistributionError| registry_error(reference, describe_error(&e, reference));

        // The top manifest (or index), kept as fetched: its digest is what we hash.
        let fetch = ManifestFetch {
            client: &client,
            http,
            auth: &auth,
            plain_http: options.plain_http(&registry),
            limit: self.limits().manifest_bytes,
            reference,
        };
        let bytes = fetch.get(&oci_ref).await?;
        let top_digest = Digest::of(&bytes);
        if let Some(pinned) = reference.digest()
            && *pinned != top_digest
        {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest of {reference}"),
                expected: pinned.to_string(),
                got: top_digest.to_string(),
            });
        }
        let mut document = parse_document(&bytes, reference)?;
        let top_media_type = media_type_of(&document);
        write_blob(&blobs, &top_digest, &bytes).await?;
        let top_size = bytes.len() as i64;

        // Through an index to this host's platform; the rest of the index's images are not
        // fetched (the layout's checks read only the chosen one).
        let mut depth = 0;
        while let Some(manifests) = document.manifests.take() {
            depth += 1;
            if depth > 3 {
                return Err(registry_error(reference, "indexes nested too deep".into()));
            }
            let arch = host_architecture();
            let chosen = manifests
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                })
                .or(match manifests.as_slice() {
                    [only] if only.platform.is_none() => Some(only),
                    _ => None,
                })
                .ok_or_else(|| {
                    let found: Vec<String> = manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref())
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                        .collect();
                    registry_error(
                        reference,
                        format!(
                            "no image for linux/{arch} in the index (it has {})",
                            found.join(", ")
                        ),
                    )
                })?
                .clone();
            let digest = Digest::parse(&chosen.digest)?;
            let by_digest = oci_client::Reference::with_digest(
                registry.clone(),
                reference.repository().to_string(),
                digest.to_string(),
            );
            let bytes = fetch.get(&by_digest).await?;
            // Checked again by the import; a wrong one is not worth parsing.
            let got = Digest::of(&bytes);
            if got != digest {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest {digest} of {reference}"),
                    expected: digest.to_string(),
                    got: got.to_string(),
                });
            }
            document = parse_document(&bytes, reference)?;
            write_blob(&blobs, &digest, &bytes).await?;
        }

        let config = document
            .config
            .clone()
            .ok_or_else(|| registry_error(reference, "the manifest has no config".into()))?;
        let layers = document.layers.clone().unwrap_or_default();
        for descriptor in std::iter::once(&config).chain(layers.iter()) {
            let digest = Digest::parse(&descriptor.digest)?;
            let path = blobs.join(digest.hex());
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                continue;
            }
            if !descriptor.urls.is_empty() {
                return Err(ImageError::Unsupported(format!(
                    "foreign layer {digest} of {reference}"
                )));
            }
            let file = tokio::fs::File::create(&path)
                .await
                .map_err(|e| ImageError::io(format!("create {}", path.display()), e))?;
            let expected = u64::try_from(descriptor.size).unwrap_or(0);
            let file = CappedWriter::new(file, expected);
            let overrun = file.overrun.clone();
            let oci_descriptor = OciDescriptor {
                media_type: descriptor.media_type.clone(),
                digest: digest.to_string(),
                size: descriptor.size,
                ..Default::default()
            };
            let pulled = client
                .pull_blob(&by_repo(&registry, reference), &oci_descriptor, file)
                .await;
            if overrun.load(std::sync::atomic::Ordering::Relaxed) {
                // Stopped at the descriptor's size: a registry cannot fill the disk.
                return Err(registry_error(
                    reference,
                    format!(
                        "blob {digest} is longer than the {expected} bytes its descriptor says"
                    ),
                ));
            }
            pulled.map_err(fail)?;
        }

        // The layout: `oci-layout`, `index.json` naming the reference, the blobs.
        let layout = staging.dir.join(OCI_LAYOUT);
        write_file(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
        let mut annotations = BTreeMap::new();
        annotations.insert(
            ANNOTATION_CONTAINERD_NAME.to_string(),
            reference.to_string(),
        );
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_INDEX,
            "manifests": [{
                "mediaType": top_media_type,
                "digest": top_digest.to_string(),
                "size": top_size,
                "annotations": annotations,
            }],
        });
        let index_path = staging.dir.join(OCI_INDEX);
        let index_bytes = serde_json::to_vec(&index)
            .map_err(|e| ImageError::InvalidArchive(format!("index.json: {e}")))?;
        write_file(&index_path, &index_bytes).await?;

        let store = self.clone();
        let wanted = reference.clone();
        tokio::task::spawn_blocking(move || {
            let mut members = BTreeMap::new();
            members.insert(OCI_LAYOUT.to_string(), member_of(&layout)?);
            members.insert(OCI_INDEX.to_string(), member_of(&index_path)?);
            let dir = staging.dir.join("blobs/sha256");
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| ImageError::io(format!("list {}", dir.display()), e))?;
            for entry in entries {
                let entry =
                    entry.map_err(|e| ImageError::io(format!("list {}", dir.display()), e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                members.insert(format!("blobs/sha256/{name}"), member_of(&entry.path())?);
            }
            let mut files = ArchiveFiles::from_members(members);
            files.manifest_limit = store.limits().manifest_bytes;
            let imported = store.import_staged(&staging, &files)?;
            imported
                .images
                .into_iter()
                .map(|i| i.image)
                .find(|i| i.references.contains(&wanted))
                .ok_or_else(|| ImageError::NotFound(wanted.to_string()))
        })
        .await
        .map_err(|e| ImageError::Unsupported(format!("pull task: {e}")))?
    }
}

/// The repository (blob URLs ignore the tag or digest of the reference).
fn by_repo(registry: &str, reference: &Reference) -> oci_client::Reference {
    oci_client::Reference::with_tag(
        registry.to_string(),
        reference.repository().to_string(),
        "latest".to_string(),
    )
}

fn parse_document(bytes: &[u8], reference: &Reference) -> Result<Document> {
    let document: Document = serde_json::from_slice(bytes)
        .map_err(|e| registry_error(reference, format!("invalid manifest: {e}")))?;
    if document.schema_version == Some(1) {
        return Err(ImageError::Unsupported(format!(
            "{reference}: docker image manifest schema 1"
        )));
    }
    Ok(document)
}

fn media_type_of(document: &Document) -> String {
    match &document.media_type {
        Some(m) if !m.is_empty() => m.clone(),
        _ if document.manifests.is_some() => MEDIA_OCI_INDEX.to_string(),
        _ => MEDIA_OCI_MANIFEST.to_string(),
    }
}

async fn write_blob(dir: &Path, digest: &Digest, bytes: &[u8]) -> Result<()> {
    write_file(&dir.join(digest.hex()), bytes).await
}

async fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    tokio::fs::write(path, bytes)
        .await
        .map_err(|e| ImageError::io(format!("write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_insecure_registries_use_http() {
        let options = PullOptions {
            insecure_registries: vec!["registry.lan:5000".into()],
            ..Default::default()
        };
        assert!(options.plain_http("127.0.0.1:5000"));
        assert!(options.plain_http("localhost:5000"));
        assert!(options.plain_http("[::1]:5000"));
        assert!(options.plain_http("registry.lan:5000"));
        assert!(!options.plain_http("registry.lan"));
        assert!(!options.plain_http("docker.io"));
        assert!(!options.plain_http("127.example.com"));
    }

    #[test]
    fn a_mirrored_registry_is_pulled_from_its_mirror_and_others_from_themselves() {
        let options = PullOptions {
            mirrors: [("docker.io".to_string(), "10.250.0.1:5000".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(options.endpoint("docker.io"), "10.250.0.1:5000");
        assert_eq!(options.endpoint("registry.lan:5000"), "registry.lan:5000");
    }

    #[test]
    fn registry_auth_flag() {
        let (host, c) = parse_registry_auth("127.0.0.1:5000=alice:pa:ss").unwrap();
        assert_eq!(host, "127.0.0.1:5000");
        assert_eq!(c.username, "alice");
        assert_eq!(c.password, "pa:ss");
        assert!(parse_registry_auth("nohost").is_err());
        assert!(parse_registry_auth("h=nouser").is_err());
        assert!(!format!("{c:?}").contains("pa:ss"));
    }

    /// A registry on loopback that answers `/v2/`, serves `manifest` (None: a manifest
    /// that never ends) and, for every blob, bytes that never end: chunked bodies written
    /// until the client hangs up. Returns its address and how many endless bytes it sent.
    async fn hostile_registry(
        manifest: Option<Vec<u8>>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counter = counter.clone();
                let manifest = manifest.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&request).into_owned();
                    let is_manifest = line.contains("/manifests/");
                    let head = |kind: &str, length: &str| {
                        format!("HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\n{length}\r\n\r\n")
                    };
                    match (&manifest, is_manifest) {
                        _ if line.starts_with("GET /v2/ ") => {
                            let _ = socket
                                .write_all(head("text/plain", "content-length: 0").as_bytes())
                                .await;
                            return;
                        }
                        (Some(manifest), true) => {
                            let length = format!("content-length: {}", manifest.len());
                            let mut response = head(MEDIA_OCI_MANIFEST, &length).into_bytes();
                            response.extend_from_slice(manifest);
                            let _ = socket.write_all(&response).await;
                            return;
                        }
                        _ => {}
                    }
                    let kind = if is_manifest {
                        MEDIA_OCI_MANIFEST
                    } else {
                        "application/octet-stream"
                    };
                    let head = head(kind, "transfer-encoding: chunked");
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
                    while socket.write_all(chunk.as_bytes()).await.is_ok() {
                        counter.fetch_add(64 * 1024, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        (address, sent)
    }

    #[tokio::test]
    async fn a_blob_longer_than_its_descriptor_is_cut_off_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let config = Digest::of(b"{}");
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
            "layers": [],
        });
        let (registry, sent) = hostile_registry(Some(manifest.to_string().into_bytes())).await;
        let reference = Reference::parse(&format!("{registry}/long-blob:1")).unwrap();
        let options = PullOptions::default();
        let error = tokio::time::timeout(Duration::from_secs(30), store.pull(&reference, &options))
            .await
            .expect("the pull ends although the blob does not")
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!(
                "blob {config} is longer than the 2 bytes its descriptor says"
            )),
            "{message}"
        );
        let got = sent.load(std::sync::atomic::Ordering::Relaxed);
        assert!(got < 64 << 20, "{got} bytes sent");
        assert!(store.list().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_endless_manifest_is_refused_at_the_cap_and_the_store_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let limits = crate::image::ImageLimits {
            manifest_bytes: 1 << 20,
            ..Default::default()
        };
        let store = ImageStore::open(dir.path()).unwrap().with_limits(limits);
        let (registry, sent) = hostile_registry(None).await;
        let reference = Reference::parse(&format!("{registry}/endless:1")).unwrap();
        let options = PullOptions::default();
        let pull = store.pull(&reference, &options);
        let error = tokio::time::timeout(Duration::from_secs(30), pull)
            .await
            .expect("the pull ends although the manifest does not")
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("exceeds the limit of 1048576 bytes (--image-max-manifest-bytes)"),
            "{message}"
        );
        // It stopped near the cap: what the socket buffers beyond it, not the whole stream.
        let got = sent.load(std::sync::atomic::Ordering::Relaxed);
        assert!(got < 64 << 20, "{got} bytes sent");
        assert!(store.list().unwrap().is_empty());
    }
}
