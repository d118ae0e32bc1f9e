//! Registry pulls into the image store, against Debian's `docker-registry` (the Go
//! distribution registry v2) run on 127.0.0.1 with a temp config and storage: the busybox
//! test image is pushed (with oci-client, the crate the agent pulls with), pulled by tag
//! (the manifest digest checked), pulled through a multi-platform index, a missing tag
//! refused with the registry's reason and the store unchanged, and basic auth (an
//! htpasswd file made with bcrypt).
//!
//! Needs /usr/bin/docker-registry: skipped without it, unless SKIFF_REQUIRE_PRIVILEGED is
//! set, when that fails naming the package. (The image's busybox is synthetic bytes:
//! nothing runs it.)

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use serde_json::json;
use skiff_agent::image::{Credentials, ImageError, ImageStore, PullOptions, Reference};
use skiff_image::OciManifest;
use skiff_image::oci::{MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};

mod common;
use common::*;

const REGISTRY: &str = "/usr/bin/docker-registry";

fn runnable() -> bool {
    runs_without(
        (!Path::new(REGISTRY).exists())
            .then(|| format!("{REGISTRY} (apt-get install docker-registry)"))
            .as_deref(),
    )
}

/// A `docker-registry` process on a free loopback port; killed on drop.
struct Registry {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(htpasswd: Option<&str>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("storage").display()
        );
        if let Some(htpasswd) = htpasswd {
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, htpasswd).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                path.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        // A connection to itself is not the registry: polling a free port of the ephemeral
        // range can be given that very port as its source.
        while TcpStream::connect(addr).map_or(true, |s| s.local_addr().ok() == Some(addr)) {
            if let Ok(Some(status)) = registry.child.try_wait() {
                let log = std::fs::read_to_string(registry._dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("docker-registry exited ({status}): {log}");
            }
            assert!(Instant::now() < deadline, "docker-registry did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> oci_client::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    oci_client::Client::try_from(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
    .unwrap()
}

fn oci_ref(host: &str, tag: &str) -> oci_client::Reference {
    oci_client::Reference::with_tag(host.to_string(), "busybox".to_string(), tag.to_string())
}

/// Pushes the busybox test image (gzip layers, OCI manifest) as `tag`; returns the
/// manifest's digest and bytes.
async fn push_image(host: &str, tag: &str, auth: &RegistryAuth) -> (String, Vec<u8>) {
    let client = client();
    let reference = oci_ref(host, tag);
    client
        .auth(&reference, auth, oci_client::RegistryOperation::Push)
        .await
        .unwrap();
    let layers = layers(&fake_busybox());
    let image = OciManifest::new(
        default_config(&layers),
        layers.iter().map(|l| gzip(l)).collect(),
    );
    for blob in image.layers.iter().chain([&image.config]) {
        client
            .push_blob(&reference, blob.clone(), &sha256(blob))
            .await
            .unwrap();
    }
    push_manifest(&client, &reference, &image.json, MEDIA_OCI_MANIFEST).await;
    (image.digest(), image.json)
}

async fn push_manifest(
    client: &oci_client::Client,
    reference: &oci_client::Reference,
    bytes: &[u8],
    media_type: &'static str,
) {
    client
        .push_manifest_raw(
            reference,
            bytes.to_vec(),
            http::HeaderValue::from_static(media_type),
        )
        .await
        .unwrap();
}

fn options(auth: Option<(&str, &str, &str)>) -> PullOptions {
    let mut options = PullOptions::default();
    if let Some((host, user, password)) = auth {
        options.auth.insert(
            host.to_string(),
            Credentials {
                username: user.to_string(),
                password: password.to_string(),
            },
        );
    }
    options
}

fn store_state(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["index.json", "blobs/sha256", "layers"] {
        let path = root.join(sub);
        if path.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| format!("{sub}/{}", e.unwrap().file_name().to_string_lossy()))
                .collect();
            names.sort();
            out.extend(names);
        } else if path.exists() {
            out.push(format!(
                "{sub}: {}",
                std::fs::read_to_string(&path).unwrap()
            ));
        }
    }
    out
}

#[tokio::test]
async fn pulls_by_tag_and_through_an_index_and_a_missing_tag_fails_with_the_registry_reason() {
    if !runnable() {
        return;
    }
    let registry = Registry::start(None);
    let host = registry.host();
    let (digest, manifest) = push_image(&host, "1.0", &RegistryAuth::Anonymous).await;

    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let reference = Reference::parse(&format!("{host}/busybox:1.0")).unwrap();
    let image = store.pull(&reference, &options(None)).await.unwrap();
    assert_eq!(image.digest.to_string(), digest);
    assert!(image.references.contains(&reference), "{image:?}");
    assert_eq!(image.layers.len(), 2);
    assert_eq!(
        store.get(&format!("{host}/busybox:1.0")).unwrap().digest,
        image.digest
    );
    for dir in store.lowerdirs(&image).unwrap() {
        assert!(dir.is_dir(), "{}", dir.display());
    }
    // Pulling again is a no-op for the store.
    let before = store_state(store.root());
    let again = store.pull(&reference, &options(None)).await.unwrap();
    assert_eq!(again.digest, image.digest);
    assert_eq!(store_state(store.root()), before);

    // A multi-platform index: this host's image is chosen.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_INDEX,
        "manifests": [
            {"mediaType": MEDIA_OCI_MANIFEST,
             "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
             "size": 10, "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": MEDIA_OCI_MANIFEST,
             "digest": digest, "size": manifest.len(),
             "platform": {"os": "linux", "architecture": host_arch()}},
        ],
    }))
    .unwrap();
    let client = client();
    client
        .auth(
            &oci_ref(&host, "multi"),
            &RegistryAuth::Anonymous,
            oci_client::RegistryOperation::Push,
        )
        .await
        .unwrap();
    // The registry checks that an index's manifests exist: drop the fake one.
    let index_value: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let real_only = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_INDEX,
        "manifests": [index_value["manifests"][1]],
    }))
    .unwrap();
    push_manifest(
        &client,
        &oci_ref(&host, "multi"),
        &real_only,
        MEDIA_OCI_INDEX,
    )
    .await;
    let multi = Reference::parse(&format!("{host}/busybox:multi")).unwrap();
    let image = store.pull(&multi, &options(None)).await.unwrap();
    assert_eq!(image.digest.to_string(), digest);
    assert_eq!(
        image.index_digest.as_ref().map(|d| d.to_string()),
        Some(sha256(&real_only))
    );

    // A missing tag: the registry's reason, and the store as it was.
    let before = store_state(store.root());
    let missing = Reference::parse(&format!("{host}/busybox:1.2")).unwrap();
    match store.pull(&missing, &options(None)).await {
        Err(ImageError::Registry { message, .. }) => {
            assert_eq!(
                message,
                format!("manifest unknown: tag 1.2 not found in {host}/busybox")
            );
        }
        other => panic!("expected a registry error, got {other:?}"),
    }
    assert_eq!(store_state(store.root()), before);
    let leftovers: Vec<_> = std::fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Nothing listens: a connection error, not a hang.
    drop(registry);
    let err = store.pull(&reference, &options(None)).await.unwrap_err();
    assert!(matches!(err, ImageError::Registry { .. }), "{err:?}");
}

#[tokio::test]
async fn a_registry_with_basic_auth_is_pulled_from_with_credentials_only() {
    if !runnable() {
        return;
    }
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let registry = Registry::start(Some(&format!("alice:{hash}\n")));
    let host = registry.host();
    let auth = RegistryAuth::Basic("alice".into(), "s3cret".into());
    let (digest, _) = push_image(&host, "1.0", &auth).await;

    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let reference = Reference::parse(&format!("{host}/busybox:1.0")).unwrap();
    let err = store.pull(&reference, &options(None)).await.unwrap_err();
    assert!(
        err.to_string().contains("unauthorized"),
        "anonymous pull: {err}"
    );
    let err = store
        .pull(&reference, &options(Some((&host, "alice", "wrong"))))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Registry { .. }), "{err:?}");
    assert!(store.list().unwrap().is_empty());
    let image = store
        .pull(&reference, &options(Some((&host, "alice", "s3cret"))))
        .await
        .unwrap();
    assert_eq!(image.digest.to_string(), digest);
    let _ = std::io::stderr().flush();
}
