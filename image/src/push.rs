//! Pushes an [`OciManifest`] and its blobs into a registry over the OCI distribution
//! protocol, with the crate the agent pulls with. One piece for every pusher: `skiff up`
//! and `skiff image push|import` into a local cluster's registry, and the tests' loopback
//! registry. Anonymous; plain HTTP or HTTPS as asked.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

use crate::OciManifest;
use crate::oci::MEDIA_OCI_MANIFEST;

/// Why a push failed: which step, and the registry's answer.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}: not a Docker Hub name, which the local registry mirrors")]
    NotDockerHub(String),
    #[error("registry client: {0}")]
    Client(String),
    #[error("push {reference}: {step}: {source}")]
    Registry {
        reference: String,
        step: &'static str,
        source: oci_client::errors::OciDistributionError,
    },
}

/// `NAME[:TAG]` → (`NAME`, `TAG`), the tag `latest` when none is given; a colon before the
/// last `/` is a registry's port, not a tag.
pub fn split_tag(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, tag),
        _ => (name, "latest"),
    }
}

/// `busybox:latest` → (`library/busybox`, `latest`): a Docker Hub name's repository and
/// tag in a registry that stands in for Docker Hub (a mirror). Names of other registries
/// are `None`.
pub fn hub_repository(name: &str) -> Option<(String, String)> {
    // A digest reference cannot be pushed by tag.
    if name.contains('@') || name.is_empty() {
        return None;
    }
    let (path, tag) = split_tag(name);
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

/// Pushes `image` as `registry/repository:tag` (`registry` is `HOST:PORT`), over plain
/// HTTP when `plain_http`; returns the manifest's digest (`sha256:…`).
pub async fn push(
    registry: &str,
    repository: &str,
    tag: &str,
    image: &OciManifest,
    plain_http: bool,
) -> Result<String, PushError> {
    // oci-client is built without a default TLS provider (even plain HTTP clients make a
    // TLS config); failing means one is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let protocol = if plain_http {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    let client = oci_client::Client::try_from(ClientConfig {
        protocol,
        ..Default::default()
    })
    .map_err(|e| PushError::Client(e.to_string()))?;
    let reference = oci_client::Reference::with_tag(registry.into(), repository.into(), tag.into());
    let failed = |step: &'static str| {
        let reference = reference.to_string();
        move |source| PushError::Registry {
            reference,
            step,
            source,
        }
    };
    client
        .auth(
            &reference,
            &RegistryAuth::Anonymous,
            oci_client::RegistryOperation::Push,
        )
        .await
        .map_err(failed("auth"))?;
    for blob in image.layers.iter().chain([&image.config]) {
        client
            .push_blob(&reference, blob.clone(), &crate::sha256(blob))
            .await
            .map_err(failed("blob"))?;
    }
    let media_type = serde_json::from_slice::<serde_json::Value>(&image.json)
        .ok()
        .and_then(|m| m["mediaType"].as_str().map(String::from))
        .unwrap_or_else(|| MEDIA_OCI_MANIFEST.to_string());
    let media_type = http::HeaderValue::from_str(&media_type)
        .unwrap_or_else(|_| http::HeaderValue::from_static(MEDIA_OCI_MANIFEST));
    client
        .push_manifest_raw(&reference, image.json.clone(), media_type)
        .await
        .map_err(failed("manifest"))?;
    Ok(image.digest())
}

/// Pushes `image` as the Docker Hub name `name` into `mirror` (a registry standing in for
/// Docker Hub, as agents' `--registry-mirror docker.io=…` use), over plain HTTP.
pub async fn push_hub_name(
    mirror: &str,
    name: &str,
    image: &OciManifest,
) -> Result<String, PushError> {
    let (repository, tag) =
        hub_repository(name).ok_or_else(|| PushError::NotDockerHub(name.to_string()))?;
    push(mirror, &repository, &tag, image, true).await
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
        assert_eq!(hub("busybox@sha256:00"), None);
    }
}
