//! Reading image archives: a `docker save` tarball or an OCI image-layout tarball (either
//! possibly gzip-compressed as a whole) is streamed once into a staging directory, every
//! member hashed on the way; then the images in it are found and every reference checked
//! against those hashes: descriptors' digests and sizes, blob names, the config's layer
//! count. (Layer diff_ids are checked when the layers are decompressed, by the store.)

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use super::digest::{Digest, HashingWriter, is_sha256_hex};
use super::reference::Reference;
use super::types::*;
use super::{ImageError, ImageLimits, Result};

/// JSON documents larger than this are refused rather than read into memory.
const MAX_JSON: u64 = 64 << 20;

/// A regular file of the archive, stored in the staging directory.
#[derive(Debug, Clone)]
pub struct Member {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

/// The files of an extracted archive, by their normalized path in the archive.
pub struct ArchiveFiles {
    files: BTreeMap<String, Member>,
    /// Symlinks and hardlinks: path → target path (normalized from the archive's root);
    /// `None` for a symlink pointing outside the archive.
    links: BTreeMap<String, Option<String>>,
    /// The largest manifest or index taken ([`super::ImageLimits::manifest_bytes`]).
    pub manifest_limit: u64,
}

/// An archive path as `a/b/c`: `.` dropped; `..` and absolute paths refused (`None`).
fn normalize(path: &Path) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(name) => parts.push(name.to_str()?),
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// A symlink's target as an archive path: relative to the link's directory, `..` allowed
/// as long as it stays inside the archive.
fn resolve_symlink(link: &str, target: &Path) -> Option<String> {
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for component in target.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(name) => parts.push(name.to_str()?),
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

impl ArchiveFiles {
    /// Streams `archive` into `dir` (created), one staging file per regular member. Errors
    /// name the archive as `shown`.
    pub fn extract(archive: &Path, shown: &str, dir: &Path) -> Result<ArchiveFiles> {
        let invalid = |reason: String| ImageError::InvalidArchive(format!("{shown}: {reason}"));
        std::fs::create_dir_all(dir)
            .map_err(|e| ImageError::io(format!("mkdir {}", dir.display()), e))?;
        let file = File::open(archive).map_err(|e| ImageError::io(format!("open {shown}"), e))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let head = reader
            .fill_buf()
            .map_err(|e| ImageError::io(format!("read {shown}"), e))?;
        let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let mut tar = tar::Archive::new(reader);
        let mut out = ArchiveFiles {
            files: BTreeMap::new(),
            links: BTreeMap::new(),
            manifest_limit: ImageLimits::default().manifest_bytes,
        };
        let entries = tar
            .entries()
            .map_err(|e| invalid(format!("not a tar archive: {e}")))?;
        for (n, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| invalid(format!("reading the archive: {e}")))?;
            let raw = entry
                .path()
                .map_err(|e| invalid(format!("bad member name: {e}")))?
                .into_owned();
            let name = normalize(&raw).ok_or_else(|| {
                invalid(format!(
                    "member {:?} escapes the archive",
                    raw.display().to_string()
                ))
            })?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let path = dir.join(n.to_string());
                    let file = File::create(&path)
                        .map_err(|e| ImageError::io(format!("create {}", path.display()), e))?;
                    let mut writer = HashingWriter::new(file);
                    let expected = entry.size();
                    io::copy(&mut entry, &mut writer)
                        .map_err(|e| invalid(format!("reading member {name}: {e}")))?;
                    let (digest, size, _) = writer.finish();
                    if size != expected {
                        return Err(invalid(format!(
                            "truncated archive: member {name} has {size} of {expected} bytes"
                        )));
                    }
                    out.links.remove(&name);
                    out.files.insert(name, Member { path, digest, size });
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .map_err(|e| invalid(format!("bad link of member {name}: {e}")))?
                        .ok_or_else(|| invalid(format!("link {name} has no target")))?;
                    let target = if entry.header().entry_type() == tar::EntryType::Symlink {
                        resolve_symlink(&name, &target)
                    } else {
                        normalize(&target)
                    };
                    out.files.remove(&name);
                    out.links.insert(name, target);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Files already staged and hashed (a registry pull): archive path → member.
    pub fn from_members(files: BTreeMap<String, Member>) -> ArchiveFiles {
        ArchiveFiles {
            files,
            links: BTreeMap::new(),
            manifest_limit: ImageLimits::default().manifest_bytes,
        }
    }

    /// The file at `name`, following links (a few hops: docker save links identical
    /// layers to one another).
    pub fn get(&self, name: &str) -> Option<&Member> {
        let mut name = normalize(Path::new(name))?;
        for _ in 0..16 {
            if let Some(member) = self.files.get(&name) {
                return Some(member);
            }
            name = self.links.get(&name)?.clone()?;
        }
        None
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A file that must exist, for `what` (which names it in the error).
    fn require(&self, name: &str, what: &str) -> Result<&Member> {
        self.get(name).ok_or_else(|| ImageError::MissingBlob {
            what: what.to_string(),
            blob: name.to_string(),
        })
    }

    /// Refuses a manifest or index longer than [`ArchiveFiles::manifest_limit`] before
    /// anything reads it.
    fn check_manifest_size(&self, member: &Member, what: &str) -> Result<()> {
        if member.size > self.manifest_limit {
            return Err(ImageError::Limit {
                what: format!("{what} ({} bytes)", member.size),
                limit: format!(
                    "the limit of {} bytes for a manifest (--image-max-manifest-bytes)",
                    self.manifest_limit
                ),
            });
        }
        Ok(())
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, member: &Member, what: &str) -> Result<T> {
        let bytes = self.read(member, what)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::InvalidArchive(format!("{what} is not valid: {e}")))
    }

    fn read(&self, member: &Member, what: &str) -> Result<Vec<u8>> {
        if member.size > MAX_JSON {
            return Err(ImageError::InvalidArchive(format!(
                "{what} is {} bytes, more than a JSON document may be",
                member.size
            )));
        }
        std::fs::read(&member.path)
            .map_err(|e| ImageError::io(format!("read {}", member.path.display()), e))
    }
}

/// A layer of an image found in an archive, its blob verified.
#[derive(Debug, Clone)]
pub struct SourceLayer {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub path: PathBuf,
    /// Where it came from, for errors: `blobs/sha256/…` or `<id>/layer.tar`.
    pub what: String,
}

/// An image found in an archive: the blobs it is made of, verified against each other
/// (except diff_ids), and its names.
#[derive(Debug, Clone)]
pub struct SourceImage {
    pub names: Vec<Reference>,
    /// The image manifest's bytes: the archive's, or one made for a `docker save` image.
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    /// The archive's staging file holding the manifest, when the archive had one.
    pub manifest_path: Option<PathBuf>,
    /// The index the manifest was chosen from (multi-platform images).
    pub index_digest: Option<Digest>,
    pub config_digest: Digest,
    pub config_size: u64,
    pub config_path: PathBuf,
    pub config: ConfigFile,
    pub diff_ids: Vec<Digest>,
    pub layers: Vec<SourceLayer>,
}

/// Finds and checks the images of an extracted archive. An OCI layout (`oci-layout` and
/// `index.json`) is preferred when present (Docker 25+ writes both); `manifest.json` then
/// only adds names.
pub fn images(files: &ArchiveFiles) -> Result<Vec<SourceImage>> {
    let mut images = if files.contains(OCI_LAYOUT) && files.contains(OCI_INDEX) {
        oci_images(files)?
    } else if files.contains(DOCKER_MANIFEST) {
        docker_images(files)?
    } else {
        return Err(ImageError::InvalidArchive(
            "neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)"
                .into(),
        ));
    };
    // One image per manifest, names merged (an index may list it under several names).
    let mut merged: Vec<SourceImage> = Vec::new();
    for image in images.drain(..) {
        match merged
            .iter_mut()
            .find(|m| m.manifest_digest == image.manifest_digest)
        {
            Some(m) => {
                for name in image.names {
                    if !m.names.contains(&name) {
                        m.names.push(name);
                    }
                }
            }
            None => merged.push(image),
        }
    }
    Ok(merged)
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// The blob a descriptor names, checked: present, of the descriptor's size and digest.
fn verified_blob<'a>(
    files: &'a ArchiveFiles,
    descriptor: &Descriptor,
    what: &str,
) -> Result<(Digest, &'a Member)> {
    let digest = Digest::parse(&descriptor.digest).map_err(|e| match e {
        ImageError::InvalidDigest { .. } => ImageError::InvalidArchive(format!("{what}: {e}")),
        other => other,
    })?;
    let path = blob_path(&digest);
    let member = files.get(&path).ok_or_else(|| ImageError::MissingBlob {
        what: what.to_string(),
        blob: digest.to_string(),
    })?;
    if member.digest != digest {
        return Err(ImageError::DigestMismatch {
            what: format!("{path} ({what})"),
            expected: digest.to_string(),
            got: member.digest.to_string(),
        });
    }
    if u64::try_from(descriptor.size).ok() != Some(member.size) {
        return Err(ImageError::SizeMismatch {
            what: format!("{path} ({what})"),
            expected: descriptor.size.max(0) as u64,
            got: member.size,
        });
    }
    Ok((digest, member))
}

/// A blob named by its digest (`blobs/sha256/<hex>`, `<hex>.json`) must hash to it.
fn check_named_digest(name: &str, member: &Member) -> Result<()> {
    let file_name = name.rsplit('/').next().unwrap_or(name);
    let hex = file_name.strip_suffix(".json").unwrap_or(file_name);
    let named = name.starts_with("blobs/sha256/") || file_name.ends_with(".json");
    if named && is_sha256_hex(hex) && member.digest.hex() != hex {
        return Err(ImageError::DigestMismatch {
            what: name.to_string(),
            expected: format!("sha256:{hex}"),
            got: member.digest.to_string(),
        });
    }
    Ok(())
}

fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST
}

fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_OCI_MANIFEST || media_type == MEDIA_DOCKER_MANIFEST
}

fn platform_string(p: &Option<Platform>) -> String {
    match p {
        Some(p) => match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        },
        None => "no platform".into(),
    }
}

fn host_platform() -> String {
    format!("linux/{}", host_architecture())
}

fn matches_host(p: &Platform) -> bool {
    p.os == "linux" && p.architecture == host_architecture()
}

fn oci_images(files: &ArchiveFiles) -> Result<Vec<SourceImage>> {
    let top = files.require(OCI_INDEX, "the archive")?;
    files.check_manifest_size(top, OCI_INDEX)?;
    let index: Index = files.read_json(top, OCI_INDEX)?;
    if index.manifests.is_empty() {
        return Err(ImageError::InvalidArchive(
            "index.json lists no images".into(),
        ));
    }
    // Docker 25+ archives also carry manifest.json: its RepoTags name images by config.
    let mut docker_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(member) = files.get(DOCKER_MANIFEST) {
        files.check_manifest_size(member, DOCKER_MANIFEST)?;
        let entries: Vec<DockerManifestEntry> = files.read_json(member, DOCKER_MANIFEST)?;
        for entry in entries {
            docker_names
                .entry(normalize(Path::new(&entry.config)).unwrap_or_default())
                .or_default()
                .extend(entry.repo_tags);
        }
    }
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    for (i, descriptor) in index.manifests.iter().enumerate() {
        if let Some(platform) = &descriptor.platform
            && !matches_host(platform)
        {
            skipped.push(platform_string(&descriptor.platform));
            continue;
        }
        let what = format!("index.json manifests[{i}]");
        let mut image = resolve_manifest(files, descriptor, &what, None, 0)?;
        let mut names = Vec::new();
        if let Some(name) = descriptor.annotations.get(ANNOTATION_CONTAINERD_NAME) {
            names.push(Reference::parse(name)?);
        }
        if let Some(name) = descriptor.annotations.get(ANNOTATION_REF_NAME)
            && name.contains(['/', ':', '@'])
        {
            // A full reference (skopeo, buildah); a bare tag has no name to go with it.
            names.push(Reference::parse(name)?);
        }
        if let Some(tags) = docker_names.get(&blob_path(&image.config_digest)) {
            for tag in tags {
                names.push(Reference::parse(tag)?);
            }
        }
        let mut unique: Vec<Reference> = Vec::new();
        for name in names {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        image.names = unique;
        images.push(image);
    }
    if images.is_empty() {
        return Err(ImageError::InvalidArchive(format!(
            "index.json has no image for {} (it has {})",
            host_platform(),
            skipped.join(", ")
        )));
    }
    Ok(images)
}

/// Follows a descriptor to an image manifest: through indexes, choosing this host's
/// platform.
fn resolve_manifest(
    files: &ArchiveFiles,
    descriptor: &Descriptor,
    what: &str,
    index_digest: Option<Digest>,
    depth: usize,
) -> Result<SourceImage> {
    if depth > 3 {
        return Err(ImageError::InvalidArchive(format!(
            "{what}: indexes nested too deep"
        )));
    }
    let (digest, member) = verified_blob(files, descriptor, what)?;
    let what = format!("{what} ({digest})");
    files.check_manifest_size(member, &what)?;
    let sniff: Sniff = files.read_json(member, &what)?;
    let media_type = [
        descriptor.media_type.as_str(),
        sniff.media_type.as_deref().unwrap_or(""),
    ]
    .into_iter()
    .find(|m| !m.is_empty())
    .map(str::to_string)
    .unwrap_or_else(|| {
        // Media types are optional in OCI documents: tell by shape.
        if sniff.manifests.is_some() {
            MEDIA_OCI_INDEX.to_string()
        } else {
            MEDIA_OCI_MANIFEST.to_string()
        }
    });
    if media_type == MEDIA_DOCKER_SCHEMA1
        || media_type == MEDIA_DOCKER_SCHEMA1_SIGNED
        || sniff.schema_version == Some(1)
    {
        return Err(ImageError::Unsupported(format!(
            "{what}: docker image manifest schema 1"
        )));
    }
    if is_index(&media_type) {
        let index: Index = files.read_json(member, &what)?;
        let matching: Vec<&Descriptor> = index
            .manifests
            .iter()
            .filter(|d| d.platform.as_ref().is_some_and(matches_host))
            .collect();
        let chosen = match matching.first() {
            Some(d) => *d,
            None if index.manifests.len() == 1 && index.manifests[0].platform.is_none() => {
                &index.manifests[0]
            }
            None => {
                let found: BTreeSet<String> = index
                    .manifests
                    .iter()
                    .map(|d| platform_string(&d.platform))
                    .collect();
                return Err(ImageError::InvalidArchive(format!(
                    "{what} has no image for {} (it has {})",
                    host_platform(),
                    found.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        };
        let position = index
            .manifests
            .iter()
            .position(|d| d == chosen)
            .unwrap_or(0);
        let inner = format!("{what} manifests[{position}]");
        return resolve_manifest(files, chosen, &inner, Some(digest), depth + 1);
    }
    if !is_manifest(&media_type) {
        return Err(ImageError::Unsupported(format!(
            "{what}: media type {media_type:?} is not an image manifest"
        )));
    }
    let manifest_bytes = files.read(member, &what)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| ImageError::InvalidArchive(format!("{what} is not valid: {e}")))?;
    let config_what = format!("config of manifest {digest}");
    let config_media = manifest.config.media_type.as_str();
    if !config_media.is_empty()
        && config_media != MEDIA_OCI_CONFIG
        && config_media != MEDIA_DOCKER_CONFIG
    {
        return Err(ImageError::Unsupported(format!(
            "{what}: config media type {config_media:?} is not a container image"
        )));
    }
    let (config_digest, config_member) = verified_blob(files, &manifest.config, &config_what)?;
    let config: ConfigFile = files.read_json(config_member, &format!("config {config_digest}"))?;
    let diff_ids = check_config(&config, manifest.layers.len(), &config_digest.to_string())?;
    let mut layers = Vec::new();
    for (i, layer) in manifest.layers.iter().enumerate() {
        let layer_what = format!("layer {i} of manifest {digest}");
        let (layer_digest, layer_member) = match verified_blob(files, layer, &layer_what) {
            Err(ImageError::MissingBlob { .. }) if !layer.urls.is_empty() => {
                return Err(ImageError::Unsupported(format!(
                    "{layer_what}: foreign layer {} (its blob is not in the archive)",
                    layer.digest
                )));
            }
            other => other?,
        };
        layers.push(SourceLayer {
            what: blob_path(&layer_digest),
            digest: layer_digest,
            size: layer_member.size,
            media_type: layer.media_type.clone(),
            path: layer_member.path.clone(),
        });
    }
    Ok(SourceImage {
        names: Vec::new(),
        manifest: manifest_bytes,
        manifest_digest: digest,
        manifest_path: Some(member.path.clone()),
        index_digest,
        config_digest,
        config_size: config_member.size,
        config_path: config_member.path.clone(),
        config,
        diff_ids,
        layers,
    })
}

/// The config's diff_ids, checked: `rootfs.type` is `layers`, one per layer, well formed.
fn check_config(config: &ConfigFile, layers: usize, what: &str) -> Result<Vec<Digest>> {
    if config.rootfs.kind != "layers" {
        return Err(ImageError::InvalidArchive(format!(
            "config {what}: rootfs.type is {:?}, not \"layers\"",
            config.rootfs.kind
        )));
    }
    if config.rootfs.diff_ids.len() != layers {
        return Err(ImageError::InvalidArchive(format!(
            "config {what} lists {} diff_ids for {layers} layers",
            config.rootfs.diff_ids.len()
        )));
    }
    config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| {
            Digest::parse(d).map_err(|e| match e {
                ImageError::InvalidDigest { .. } => {
                    ImageError::InvalidArchive(format!("config {what}: diff_ids: {e}"))
                }
                other => other,
            })
        })
        .collect()
}

/// `gzip` or plain `tar`, from a layer file's first bytes (docker save records no media
/// types); other compressions are refused when the layer is opened.
fn sniff_layer_media_type(path: &Path) -> Result<&'static str> {
    let mut head = [0u8; 2];
    let mut file =
        File::open(path).map_err(|e| ImageError::io(format!("open {}", path.display()), e))?;
    let n = file
        .read(&mut head)
        .map_err(|e| ImageError::io(format!("read {}", path.display()), e))?;
    Ok(if n == 2 && head == [0x1f, 0x8b] {
        MEDIA_OCI_LAYER_GZIP
    } else {
        MEDIA_OCI_LAYER
    })
}

fn docker_images(files: &ArchiveFiles) -> Result<Vec<SourceImage>> {
    let member = files.require(DOCKER_MANIFEST, "the archive")?;
    files.check_manifest_size(member, DOCKER_MANIFEST)?;
    let entries: Vec<DockerManifestEntry> = files.read_json(member, DOCKER_MANIFEST)?;
    if entries.is_empty() {
        return Err(ImageError::InvalidArchive(
            "manifest.json lists no images".into(),
        ));
    }
    let repositories: DockerRepositories = match files.get(DOCKER_REPOSITORIES) {
        Some(member) => files.read_json(member, DOCKER_REPOSITORIES)?,
        None => DockerRepositories::new(),
    };
    let mut images = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let what = format!("manifest.json[{i}]");
        let config_member = files.require(&entry.config, &what)?;
        check_named_digest(&entry.config, config_member)?;
        let config: ConfigFile = files.read_json(config_member, &entry.config)?;
        let diff_ids = check_config(&config, entry.layers.len(), &entry.config)?;
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let member = files.require(layer, &what)?;
            check_named_digest(layer, member)?;
            layers.push(SourceLayer {
                digest: member.digest.clone(),
                size: member.size,
                media_type: sniff_layer_media_type(&member.path)?.to_string(),
                path: member.path.clone(),
                what: layer.clone(),
            });
        }
        let mut names = Vec::new();
        for tag in &entry.repo_tags {
            names.push(Reference::parse(tag)?);
        }
        if names.is_empty() {
            // Legacy archives name the image's top layer (its directory) in `repositories`.
            let top = entry
                .layers
                .last()
                .and_then(|l| l.split('/').next())
                .unwrap_or_default();
            for (repository, tags) in &repositories {
                for (tag, id) in tags {
                    if !top.is_empty() && id == top {
                        names.push(Reference::parse(&format!("{repository}:{tag}"))?);
                    }
                }
            }
        }
        // An image manifest for what docker save leaves implicit, so every stored image
        // has one. Deterministic: the same archive gives the same digest.
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: MEDIA_OCI_CONFIG.to_string(),
                digest: config_member.digest.to_string(),
                size: config_member.size as i64,
                annotations: BTreeMap::new(),
                platform: None,
                urls: Vec::new(),
            },
            layers: layers
                .iter()
                .map(|l| Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.digest.to_string(),
                    size: l.size as i64,
                    annotations: BTreeMap::new(),
                    platform: None,
                    urls: Vec::new(),
                })
                .collect(),
        };
        let manifest = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::InvalidArchive(format!("{what}: {e}")))?;
        images.push(SourceImage {
            names,
            manifest_digest: Digest::of(&manifest),
            manifest,
            manifest_path: None,
            index_digest: None,
            config_digest: config_member.digest.clone(),
            config_size: config_member.size,
            config_path: config_member.path.clone(),
            config,
            diff_ids,
            layers,
        });
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_and_links() {
        assert_eq!(normalize(Path::new("./a/./b")).as_deref(), Some("a/b"));
        assert_eq!(normalize(Path::new("../a")), None);
        assert_eq!(normalize(Path::new("/a")), None);
        assert_eq!(
            resolve_symlink("x/layer.tar", Path::new("../y/layer.tar")).as_deref(),
            Some("y/layer.tar")
        );
        assert_eq!(resolve_symlink("x/l", Path::new("../../etc/passwd")), None);
        assert_eq!(resolve_symlink("l", Path::new("/etc/passwd")), None);
    }

    #[test]
    fn named_digests_are_checked() {
        let member = Member {
            path: PathBuf::new(),
            digest: Digest::of(b"x"),
            size: 1,
        };
        let hex = member.digest.hex().to_string();
        let other = Digest::of(b"y").hex().to_string();
        assert!(check_named_digest(&format!("{hex}.json"), &member).is_ok());
        assert!(check_named_digest(&format!("blobs/sha256/{hex}"), &member).is_ok());
        assert!(check_named_digest("abc/layer.tar", &member).is_ok());
        let err = check_named_digest(&format!("blobs/sha256/{other}"), &member).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("expected sha256:{other}, got sha256:{hex}")),
            "{err}"
        );
        assert!(check_named_digest(&format!("{other}.json"), &member).is_err());
    }
}
