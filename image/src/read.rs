//! Reads the images of an archive as a registry push needs them: a `docker save` archive
//! (`manifest.json`) or an OCI image layout (`index.json`), gzipped or not. Each image
//! becomes an [`OciManifest`] whose blobs are checked against the digests that name them.
//! The archive is held in memory, so callers bound its size first.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use crate::oci::{MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};
use crate::{OciManifest, gzip, host_architecture, sha256};

/// The Docker names of an OCI layout's manifest.
const ANNOTATION_NAMES: [&str; 2] = [
    crate::oci::ANNOTATION_CONTAINERD_NAME,
    crate::oci::ANNOTATION_REF_NAME,
];
/// Docker's manifest media types, which a layout may list beside OCI's.
const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// How deep image indexes may nest before the archive is refused.
const MAX_INDEX_DEPTH: usize = 4;

/// Why an archive's images cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not a tar archive: {0}")]
    Tar(std::io::Error),
    #[error(
        "the archive holds neither manifest.json (docker save) nor index.json (an OCI image layout)"
    )]
    UnknownLayout,
    #[error("{what} is missing from the archive")]
    Missing { what: String },
    #[error("{what} is not valid: {reason}")]
    Invalid { what: String, reason: String },
}

fn invalid(what: &str, reason: impl ToString) -> ReadError {
    ReadError::Invalid {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// One image of an archive: the names it carries and what a registry gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveImage {
    /// Its references as the archive names them (`busybox:latest`), maybe none.
    pub names: Vec<String>,
    pub manifest: OciManifest,
}

/// The files of a tar (gunzipped first if it is gzip), by normalized path.
fn files(archive: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, ReadError> {
    let mut plain = Vec::new();
    let tar: &[u8] = if archive.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(archive)
            .read_to_end(&mut plain)
            .map_err(ReadError::Tar)?;
        &plain
    } else {
        archive
    };
    let mut files = BTreeMap::new();
    let mut reader = tar::Archive::new(tar);
    for entry in reader.entries().map_err(ReadError::Tar)? {
        let mut entry = entry.map_err(ReadError::Tar)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(ReadError::Tar)?;
        let name = path.to_string_lossy().trim_start_matches("./").to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(ReadError::Tar)?;
        files.insert(name, data);
    }
    Ok(files)
}

/// Every image of `archive` (a tar or tar.gz of a `docker save` or an OCI layout); for a
/// multi-platform OCI image, its manifest for this machine's architecture.
pub fn archive_images(archive: &[u8]) -> Result<Vec<ArchiveImage>, ReadError> {
    let files = files(archive)?;
    if files.contains_key("index.json") {
        oci_images(&files)
    } else if files.contains_key("manifest.json") {
        docker_images(&files)
    } else {
        Err(ReadError::UnknownLayout)
    }
}

fn get<'a>(files: &'a BTreeMap<String, Vec<u8>>, name: &str) -> Result<&'a [u8], ReadError> {
    files
        .get(name.trim_start_matches("./"))
        .map(Vec::as_slice)
        .ok_or_else(|| ReadError::Missing {
            what: name.to_string(),
        })
}

fn json(bytes: &[u8], what: &str) -> Result<Value, ReadError> {
    serde_json::from_slice(bytes).map_err(|e| invalid(what, e))
}

fn docker_images(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<ArchiveImage>, ReadError> {
    let manifest = json(get(files, "manifest.json")?, "manifest.json")?;
    let entries = manifest
        .as_array()
        .ok_or_else(|| invalid("manifest.json", "not a list"))?;
    let mut images = Vec::new();
    for entry in entries {
        let config_path = entry["Config"]
            .as_str()
            .ok_or_else(|| invalid("manifest.json", "an entry without Config"))?;
        let config = get(files, config_path)?.to_vec();
        let mut layers = Vec::new();
        for layer in entry["Layers"].as_array().into_iter().flatten() {
            let path = layer
                .as_str()
                .ok_or_else(|| invalid("manifest.json", "a layer that is not a path"))?;
            let data = get(files, path)?;
            // Registries carry layers compressed; Docker saves them plain.
            let data = if data.starts_with(&[0x1f, 0x8b]) {
                data.to_vec()
            } else {
                gzip(data)
            };
            layers.push(data);
        }
        let names = entry["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        images.push(ArchiveImage {
            names,
            manifest: OciManifest::new(config, layers),
        });
    }
    Ok(images)
}

/// The blob `descriptor` names, checked against its digest.
fn blob<'a>(
    files: &'a BTreeMap<String, Vec<u8>>,
    descriptor: &Value,
) -> Result<&'a [u8], ReadError> {
    let digest = descriptor["digest"]
        .as_str()
        .ok_or_else(|| invalid("a descriptor", "no digest"))?;
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| invalid(digest, "not a sha256 digest"))?;
    let data = get(files, &format!("blobs/sha256/{hex}"))?;
    if sha256(data) != digest {
        return Err(invalid(
            &format!("blobs/sha256/{hex}"),
            "its content does not match its digest",
        ));
    }
    Ok(data)
}

fn oci_images(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<ArchiveImage>, ReadError> {
    let index = json(get(files, "index.json")?, "index.json")?;
    let mut images = Vec::new();
    for descriptor in index["manifests"].as_array().into_iter().flatten() {
        let names = ANNOTATION_NAMES
            .iter()
            .filter_map(|key| descriptor["annotations"][key].as_str())
            // A bare tag (`latest`, what some tools write as ref.name) names no image.
            .filter(|name| name.contains([':', '/']))
            .map(String::from)
            .take(1)
            .collect();
        if let Some(manifest) = manifest_for_host(files, descriptor, 0)? {
            images.push(ArchiveImage { names, manifest });
        }
    }
    Ok(images)
}

/// The image manifest `descriptor` leads to for this machine (through nested indexes),
/// with its blobs; `None` when an index has no manifest for it.
fn manifest_for_host(
    files: &BTreeMap<String, Vec<u8>>,
    descriptor: &Value,
    depth: usize,
) -> Result<Option<OciManifest>, ReadError> {
    if depth > MAX_INDEX_DEPTH {
        return Err(invalid("index.json", "image indexes nest too deep"));
    }
    let media_type = descriptor["mediaType"].as_str().unwrap_or_default();
    let bytes = blob(files, descriptor)?;
    let document = json(bytes, "a manifest")?;
    let is_index = media_type == MEDIA_OCI_INDEX
        || media_type == MEDIA_DOCKER_LIST
        || document["manifests"].is_array();
    if is_index {
        let mut fallback = None;
        for inner in document["manifests"].as_array().into_iter().flatten() {
            let platform = &inner["platform"];
            if platform.is_null() && fallback.is_none() {
                fallback = Some(inner);
            }
            if platform["os"] == "linux" && platform["architecture"] == host_architecture() {
                return manifest_for_host(files, inner, depth + 1);
            }
        }
        return match fallback {
            Some(inner) => manifest_for_host(files, inner, depth + 1),
            None => Ok(None),
        };
    }
    if !media_type.is_empty()
        && media_type != MEDIA_OCI_MANIFEST
        && media_type != MEDIA_DOCKER_MANIFEST
    {
        return Err(invalid(media_type, "not an image manifest media type"));
    }
    let config = blob(files, &document["config"])?.to_vec();
    let mut layers = Vec::new();
    for layer in document["layers"].as_array().into_iter().flatten() {
        layers.push(blob(files, layer)?.to_vec());
    }
    // The manifest goes to the registry as it is, so its digest stays the archive's.
    Ok(Some(OciManifest {
        config,
        layers,
        json: bytes.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, DockerSave, Entry, OciLayout, diff_ids, layer};

    fn image() -> (Vec<u8>, Vec<u8>) {
        let layer = layer(&[Entry::dir("etc/"), Entry::file("etc/motd", "hi\n")]).unwrap();
        let config = Config::default().to_json(&diff_ids(std::slice::from_ref(&layer)));
        (config, layer)
    }

    #[test]
    fn a_docker_save_archive_gives_its_tags_and_a_manifest_with_gzip_layers() {
        let (config, layer) = image();
        let tar = DockerSave::new(&config, std::slice::from_ref(&layer), &["motd:1"])
            .tar()
            .unwrap();
        for archive in [tar.clone(), gzip(&tar)] {
            let images = archive_images(&archive).unwrap();
            assert_eq!(images.len(), 1);
            assert_eq!(images[0].names, ["motd:1"]);
            let expected = OciManifest::new(config.clone(), vec![gzip(&layer)]);
            assert_eq!(images[0].manifest, expected);
        }
    }

    #[test]
    fn an_oci_layout_keeps_its_manifest_bytes_and_name() {
        let (config, layer) = image();
        let manifest = OciManifest::new(config, vec![gzip(&layer)]);
        let layout = OciLayout::single(host_architecture(), manifest.clone(), "motd:2");
        let images = archive_images(&layout.archive().tar().unwrap()).unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].manifest, manifest);
        let nested = OciLayout {
            nested_index: true,
            ..layout
        };
        let images = archive_images(&nested.archive().tar().unwrap()).unwrap();
        assert_eq!(images[0].manifest.digest(), manifest.digest());
    }

    #[test]
    fn a_blob_that_does_not_match_its_digest_or_a_foreign_tar_is_refused() {
        let (config, layer) = image();
        let manifest = OciManifest::new(config, vec![gzip(&layer)]);
        let layout = OciLayout::single(host_architecture(), manifest.clone(), "motd:2");
        let mut archive = layout.archive();
        let name = format!("blobs/sha256/{}", &manifest.layer_digests()[0][7..]);
        archive.set(&name, b"other".to_vec());
        let err = archive_images(&archive.tar().unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("does not match its digest"),
            "{err}"
        );
        let mut other = crate::Archive::default();
        other.add("hello.txt", "hi");
        let err = archive_images(&other.tar().unwrap()).unwrap_err();
        assert!(matches!(err, ReadError::UnknownLayout), "{err}");
        assert!(archive_images(b"not a tar at all").is_err());
    }
}
