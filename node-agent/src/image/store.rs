//! The content-addressed image store: import, list, get, remove with garbage collection,
//! and the overlayfs lowerdirs of an image. See the module docs of [`crate::image`] for the
//! layout on disk and the locking.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::archive::{self, ArchiveFiles, SourceImage};
use super::config::ImageConfig;
use super::digest::{Digest, HashingReader, is_sha256_hex};
use super::reference::Reference;
use super::types;
use super::unpack::{Budget, open_layer, remove_tree, unpack_layer};
use super::{ImageError, ImageLimits, Result};

const INDEX: &str = "index.json";
const INDEX_VERSION: u32 = 1;
const LOCK: &str = "lock";
const TMP: &str = "tmp";
/// An id prefix shorter than this is not taken for an id (it would match too much).
const MIN_ID_PREFIX: usize = 4;

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The blob's digest (of the bytes as stored: compressed or not).
    pub digest: Digest,
    /// The digest of the uncompressed tar: names the unpacked layer.
    pub diff_id: Digest,
    /// Bytes of the blob.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub unpacked_size: u64,
    pub media_type: String,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The references (tags, or `name@digest`) that point at it; empty for an image
    /// imported without a name. Not stored with the image: the index maps references to
    /// images.
    #[serde(skip)]
    pub references: Vec<Reference>,
    /// The digest of its image manifest (made for `docker save` images, which have none).
    pub digest: Digest,
    /// The image id: the digest of its config, as Docker shows it.
    pub id: Digest,
    /// The index (multi-platform image) the manifest was chosen from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    /// Bottom layer first, as in the manifest.
    pub layers: Vec<LayerRecord>,
    /// Bytes of its blobs (manifest, config, layers as stored).
    pub size: u64,
    /// Bytes of its uncompressed layers.
    pub unpacked_size: u64,
    /// When the image was built (the config's `created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    pub architecture: String,
    pub os: String,
    /// Bytes of the manifest and config blobs.
    pub manifest_size: u64,
    pub config_size: u64,
}

/// What an import did for one image of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// The image as the store now has it (with all its references).
    pub image: Image,
    /// The names the archive gave it.
    pub names: Vec<Reference>,
    /// False when the store already had this image (an import is idempotent).
    pub new: bool,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub images: Vec<ImportedImage>,
}

/// What a removal did, as `docker rmi` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub untagged: Vec<Reference>,
    /// Manifest digests of the images that are gone.
    pub deleted: Vec<Digest>,
}

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Index {
    version: u32,
    /// Normalized reference → manifest digest.
    refs: BTreeMap<String, Digest>,
    /// Manifest digest → image.
    images: BTreeMap<Digest, Image>,
    /// Container (lease holder) → the manifest digest of the image it runs from. A leased
    /// image is never deleted: its layers are under the container's overlay mount.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    leases: BTreeMap<String, Digest>,
    /// Images that lost their last name to an import while leased: deleted when their last
    /// lease ends.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    dangling: BTreeSet<Digest>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            version: INDEX_VERSION,
            refs: BTreeMap::new(),
            images: BTreeMap::new(),
            leases: BTreeMap::new(),
            dangling: BTreeSet::new(),
        }
    }
}

impl Index {
    fn references_of(&self, digest: &Digest) -> Vec<Reference> {
        self.refs
            .iter()
            .filter(|(_, d)| *d == digest)
            .filter_map(|(r, _)| Reference::parse(r).ok())
            .collect()
    }

    /// The holders of leases on an image.
    fn holders_of(&self, digest: &Digest) -> Vec<String> {
        self.leases
            .iter()
            .filter(|(_, d)| *d == digest)
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// Deletes `digest` from the index unless leased, when it is kept as dangling instead.
    /// True when deleted.
    fn delete_unless_leased(&mut self, digest: &Digest) -> bool {
        if self.leases.values().any(|d| d == digest) {
            self.dangling.insert(digest.clone());
            false
        } else {
            self.images.remove(digest);
            self.dangling.remove(digest);
            true
        }
    }

    fn image(&self, digest: &Digest) -> Option<Image> {
        let mut image = self.images.get(digest)?.clone();
        image.references = self.references_of(digest);
        Some(image)
    }
}

/// What a user's string names in the store.
enum Target {
    /// A stored reference (its normalized form).
    Ref(String),
    /// An image, by its manifest digest.
    Image(Digest),
}

/// A directory under `tmp/`, flock'ed while it lives (so a sweep can tell a live import's
/// staging from a crashed one's) and removed when dropped. Made while holding the store
/// lock, as sweeps run under it.
pub(super) struct Staging {
    pub(super) dir: PathBuf,
    _lock: Flock<File>,
}

impl Staging {
    fn new(tmp: &Path, kind: &str) -> Result<Staging> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = tmp.join(format!("{kind}-{}-{nanos:x}-{n}", std::process::id()));
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(ImageError::io(format!("mkdir {}", dir.display()), e)),
            }
            let file = File::open(&dir)
                .map_err(|e| ImageError::io(format!("open {}", dir.display()), e))?;
            let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
                .map_err(|(_, e)| ImageError::io(format!("lock {}", dir.display()), e.into()))?;
            return Ok(Staging { dir, _lock: lock });
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.dir) {
            tracing::warn!("image store: staging dir left behind: {e}");
        }
    }
}

/// The node's image store. Cheap to share: it holds only its root path; all state is on
/// disk, guarded as the module docs describe.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    limits: ImageLimits,
    /// Shared by the store's clones: imports and pulls unpacking at once.
    imports: Arc<tokio::sync::Semaphore>,
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`: removes what crashed imports left
    /// in `tmp/`, checks the index, and collects blobs and layers no image references
    /// (left by a crash between moving content in and writing the index).
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let store = ImageStore {
            root: root.into(),
            limits: ImageLimits::default(),
            imports: Arc::new(tokio::sync::Semaphore::new(
                ImageLimits::default().concurrent_imports,
            )),
        };
        // Layers hold images' setuid files and device nodes: no other host user may walk in.
        skiff_pki::config::private_dir(&store.root)
            .map_err(|e| ImageError::io(format!("mkdir 0700 {}", store.root.display()), e))?;
        for dir in [
            store.root.join("blobs/sha256"),
            store.root.join("layers"),
            store.root.join(TMP),
        ] {
            fs::create_dir_all(&dir)
                .map_err(|e| ImageError::io(format!("mkdir {}", dir.display()), e))?;
        }
        let _lock = store.lock()?;
        store.sweep_tmp()?;
        let index = store.read_index()?;
        store.gc_locked(&index)?;
        Ok(store)
    }

    /// The store with `limits` on what imports and pulls may cost.
    pub fn with_limits(mut self, limits: ImageLimits) -> ImageStore {
        self.limits = limits;
        self.imports = Arc::new(tokio::sync::Semaphore::new(
            limits.concurrent_imports.max(1),
        ));
        self
    }

    pub fn limits(&self) -> ImageLimits {
        self.limits
    }

    /// Waits for a turn to unpack: at most `concurrent_imports` imports and pulls at once.
    pub async fn import_turn(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.imports
            .clone()
            .acquire_owned()
            .await
            .expect("the import semaphore is never closed")
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/sha256/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// `layers/<hex>` of a diff_id: the unpacked layer.
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    fn tmp(&self) -> PathBuf {
        self.root.join(TMP)
    }

    /// The store's exclusive lock, held until the returned guard is dropped.
    fn lock(&self) -> Result<Flock<File>> {
        let path = self.root.join(LOCK);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| ImageError::io(format!("open {}", path.display()), e))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| ImageError::io(format!("lock {}", path.display()), e.into()))
    }

    fn read_index(&self) -> Result<Index> {
        let path = self.root.join(INDEX);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(ImageError::io(format!("read {}", path.display()), e)),
        };
        let corrupt = |reason: String| ImageError::CorruptIndex {
            path: path.display().to_string(),
            reason,
        };
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if index.version != INDEX_VERSION {
            return Err(corrupt(format!("unknown version {}", index.version)));
        }
        Ok(index)
    }

    /// Replaces `index.json`: temporary file, fsync, rename, fsync of the directory.
    fn write_index(&self, index: &Index) -> Result<()> {
        let path = self.root.join(INDEX);
        let tmp = self.root.join("index.json.tmp");
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| ImageError::io("encode the index", io::Error::other(e)))?;
        let write = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.root)?.sync_all()
        };
        write().map_err(|e| ImageError::io(format!("write {}", path.display()), e))
    }

    /// Removes staging dirs no live import holds (their flock is free).
    fn sweep_tmp(&self) -> Result<()> {
        let tmp = self.tmp();
        let entries =
            fs::read_dir(&tmp).map_err(|e| ImageError::io(format!("read {}", tmp.display()), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if let Ok(_held) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&path)
                } else {
                    fs::remove_file(&path)
                        .map_err(|e| ImageError::io(format!("remove {}", path.display()), e))
                };
                if let Err(e) = removed {
                    tracing::warn!("image store: {e}");
                }
            }
        }
        Ok(())
    }

    /// Deletes blobs and unpacked layers that no image of `index` uses. Layers are moved
    /// into `tmp/` first, so a crash never leaves half a layer at its name.
    fn gc_locked(&self, index: &Index) -> Result<()> {
        let mut blobs: HashSet<&str> = HashSet::new();
        let mut layers: HashSet<&str> = HashSet::new();
        for image in index.images.values() {
            blobs.insert(image.digest.hex());
            blobs.insert(image.id.hex());
            for layer in &image.layers {
                blobs.insert(layer.digest.hex());
                layers.insert(layer.diff_id.hex());
            }
        }
        let blob_dir = self.root.join("blobs/sha256");
        for entry in read_dir_names(&blob_dir)? {
            if !blobs.contains(entry.as_str()) {
                let path = blob_dir.join(&entry);
                fs::remove_file(&path)
                    .map_err(|e| ImageError::io(format!("remove {}", path.display()), e))?;
            }
        }
        let layer_dir = self.root.join("layers");
        for entry in read_dir_names(&layer_dir)? {
            if !layers.contains(entry.as_str()) {
                let doomed = Staging::new(&self.tmp(), "gc")?;
                let target = doomed.dir.join("layer");
                let path = layer_dir.join(&entry);
                fs::rename(&path, &target)
                    .map_err(|e| ImageError::io(format!("move {}", path.display()), e))?;
                // Dropping `doomed` removes it.
            }
        }
        Ok(())
    }

    /// Collects unreferenced blobs and layers now (the store also does this after every
    /// removal and when opened).
    pub fn gc(&self) -> Result<()> {
        let _lock = self.lock()?;
        let index = self.read_index()?;
        self.gc_locked(&index)
    }

    /// Imports every image of a `docker save` archive or an OCI image-layout tarball
    /// (either may be gzip-compressed). Every blob's digest and size, and every layer's
    /// diff_id, is verified first; anything wrong refuses the whole archive and leaves the
    /// store as it was. Images already present are not copied again. A name the archive
    /// gives moves to its image; an image left without any name by that is deleted.
    pub fn import(&self, archive: &Path) -> Result<Imported> {
        self.import_named(archive, &archive.display().to_string())
    }

    /// [`ImageStore::import`], with errors naming the archive as `shown` (an upload's spool
    /// file means nothing to the one who sent it).
    pub fn import_named(&self, archive: &Path, shown: &str) -> Result<Imported> {
        // Made under the store lock: a sweep (which holds it) must never see the staging
        // dir between its creation and its flock.
        let staging = {
            let _lock = self.lock()?;
            Staging::new(&self.tmp(), "import")?
        };
        let mut files = ArchiveFiles::extract(archive, shown, &staging.dir.join("archive"))?;
        files.manifest_limit = self.limits.manifest_bytes;
        self.import_files(&staging, &files)
    }

    /// Imports blobs a pull staged under `staging` (an OCI layout of what it fetched):
    /// the same verification and commit as an archive's.
    pub(super) fn import_staged(
        &self,
        staging: &Staging,
        files: &ArchiveFiles,
    ) -> Result<Imported> {
        self.import_files(staging, files)
    }

    /// A staging dir for a pull, made under the store lock like an import's.
    pub(super) fn pull_staging(&self) -> Result<Staging> {
        let _lock = self.lock()?;
        Staging::new(&self.tmp(), "pull")
    }

    /// Verifies the images of extracted (or pulled) files and commits them.
    fn import_files(&self, staging: &Staging, files: &ArchiveFiles) -> Result<Imported> {
        let sources = archive::images(files)?;
        let staged_layers = staging.dir.join("layers");
        fs::create_dir(&staged_layers)
            .map_err(|e| ImageError::io(format!("mkdir {}", staged_layers.display()), e))?;

        // Each distinct layer blob is decompressed once: hashed, and unpacked if the store
        // does not have its layer yet.
        let mut checked: HashMap<Digest, (Digest, u64)> = HashMap::new();
        let mut unpacked: HashSet<Digest> = HashSet::new();
        let mut budget = Budget::new(self.limits);
        for source in &sources {
            for (i, layer) in source.layers.iter().enumerate() {
                let expected = &source.diff_ids[i];
                let (got, _) = match checked.get(&layer.digest) {
                    Some(result) => result.clone(),
                    None => {
                        let result =
                            if unpacked.contains(expected) || self.layer_path(expected).exists() {
                                hash_layer(&layer.path, &layer.what)?
                            } else {
                                let dir = staged_layers.join(expected.hex());
                                fs::create_dir(&dir).map_err(|e| {
                                    ImageError::io(format!("mkdir {}", dir.display()), e)
                                })?;
                                let result =
                                    unpack_and_hash(&layer.path, &dir, &layer.what, &mut budget)?;
                                if result.0 == *expected {
                                    unpacked.insert(expected.clone());
                                }
                                result
                            };
                        checked.insert(layer.digest.clone(), result.clone());
                        result
                    }
                };
                if got != *expected {
                    return Err(ImageError::DiffIdMismatch {
                        index: i,
                        what: layer.what.clone(),
                        expected: expected.to_string(),
                        got: got.to_string(),
                    });
                }
            }
        }
        self.commit(staging, &sources, &checked)
    }

    /// Moves the verified content into the store and records the images, under the lock.
    /// On any failure, what was moved in is removed again.
    fn commit(
        &self,
        staging: &Staging,
        sources: &[SourceImage],
        checked: &HashMap<Digest, (Digest, u64)>,
    ) -> Result<Imported> {
        // Staged content must be on disk before a rename makes it part of the store.
        let root = File::open(&self.root)
            .map_err(|e| ImageError::io(format!("open {}", self.root.display()), e))?;
        nix::unistd::syncfs(&root)
            .map_err(|e| ImageError::io(format!("syncfs {}", self.root.display()), e.into()))?;

        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let before = index.clone();
        let mut added: Vec<PathBuf> = Vec::new();
        let result = self.commit_locked(staging, sources, checked, &mut index, &mut added);
        let written = result.and_then(|imported| {
            if index != before {
                self.write_index(&index)?;
            }
            Ok(imported)
        });
        match written {
            Ok(imported) => {
                // Images that lost their last name may have left content behind.
                if before.images.keys().any(|d| !index.images.contains_key(d)) {
                    self.gc_after_change(&index);
                }
                Ok(imported)
            }
            Err(e) => {
                for path in added.iter().rev() {
                    let undone = if path.is_dir() {
                        remove_tree(path)
                    } else {
                        fs::remove_file(path)
                            .map_err(|e| ImageError::io(format!("remove {}", path.display()), e))
                    };
                    if let Err(undo) = undone {
                        tracing::warn!("image store: undoing a failed import: {undo}");
                    }
                }
                Err(e)
            }
        }
    }

    fn commit_locked(
        &self,
        staging: &Staging,
        sources: &[SourceImage],
        checked: &HashMap<Digest, (Digest, u64)>,
        index: &mut Index,
        added: &mut Vec<PathBuf>,
    ) -> Result<Imported> {
        let mut images = Vec::new();
        let mut displaced: BTreeSet<Digest> = BTreeSet::new();
        for source in sources {
            let manifest_path = match &source.manifest_path {
                Some(path) => path.clone(),
                None => {
                    let path = staging
                        .dir
                        .join(format!("manifest-{}", source.manifest_digest.hex()));
                    write_synced(&path, &source.manifest)?;
                    path
                }
            };
            self.put_blob(&source.manifest_digest, &manifest_path, added)?;
            self.put_blob(&source.config_digest, &source.config_path, added)?;
            let mut layers = Vec::new();
            for (layer, diff_id) in source.layers.iter().zip(&source.diff_ids) {
                self.put_blob(&layer.digest, &layer.path, added)?;
                self.put_layer(diff_id, &layer.digest, staging, added)?;
                let unpacked_size = checked.get(&layer.digest).map(|c| c.1).unwrap_or(0);
                layers.push(LayerRecord {
                    digest: layer.digest.clone(),
                    diff_id: diff_id.clone(),
                    size: layer.size,
                    unpacked_size,
                    media_type: layer.media_type.clone(),
                });
            }
            let created = source
                .config
                .created
                .as_deref()
                .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                .map(|c| c.with_timezone(&Utc));
            let manifest_size = source.manifest.len() as u64;
            let image = Image {
                references: Vec::new(),
                digest: source.manifest_digest.clone(),
                id: source.config_digest.clone(),
                index_digest: source.index_digest.clone(),
                size: manifest_size
                    + source.config_size
                    + layers.iter().map(|l| l.size).sum::<u64>(),
                unpacked_size: layers.iter().map(|l| l.unpacked_size).sum(),
                layers,
                created,
                architecture: source.config.architecture.clone(),
                os: source.config.os.clone(),
                manifest_size,
                config_size: source.config_size,
            };
            let new = !index.images.contains_key(&image.digest);
            index.images.insert(image.digest.clone(), image);
            for name in &source.names {
                if let Some(old) = index
                    .refs
                    .insert(name.to_string(), source.manifest_digest.clone())
                    && old != source.manifest_digest
                {
                    displaced.insert(old);
                }
            }
            images.push((source.manifest_digest.clone(), source.names.clone(), new));
        }
        // Docker would keep an image whose name moved away as a dangling `<none>`; a node
        // has no use for it, so it goes (unless this archive brought it too, or a container
        // still runs from it: then it goes with that container).
        for old in displaced {
            let named = index.refs.values().any(|d| *d == old);
            let imported = sources.iter().any(|s| s.manifest_digest == old);
            if !named && !imported {
                index.delete_unless_leased(&old);
            }
        }
        for source in sources {
            index.dangling.remove(&source.manifest_digest);
        }
        let images = images
            .into_iter()
            .filter_map(|(digest, names, new)| {
                Some(ImportedImage {
                    image: index.image(&digest)?,
                    names,
                    new,
                })
            })
            .collect();
        Ok(Imported { images })
    }

    /// Moves a staged blob to its place, unless the store has it already (its content is
    /// the digest's: only verified blobs get in).
    fn put_blob(&self, digest: &Digest, staged: &Path, added: &mut Vec<PathBuf>) -> Result<()> {
        let target = self.blob_path(digest);
        if target.exists() {
            return Ok(());
        }
        fs::rename(staged, &target)
            .map_err(|e| ImageError::io(format!("move blob {digest} into the store"), e))?;
        added.push(target);
        Ok(())
    }

    /// Moves the staged unpacked layer to its place unless the store has it; if neither
    /// has it (a concurrent removal collected it after the check), unpacks it again from
    /// the stored blob.
    fn put_layer(
        &self,
        diff_id: &Digest,
        blob: &Digest,
        staging: &Staging,
        added: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let target = self.layer_path(diff_id);
        if target.exists() {
            return Ok(());
        }
        let staged = staging.dir.join("layers").join(diff_id.hex());
        if !staged.exists() {
            self.unpack_blob(diff_id, blob, &staged)?;
        }
        fs::rename(&staged, &target)
            .map_err(|e| ImageError::io(format!("move layer {diff_id} into the store"), e))?;
        added.push(target);
        Ok(())
    }

    /// Unpacks a stored layer blob into `dir`, checking its diff_id.
    fn unpack_blob(&self, diff_id: &Digest, blob: &Digest, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir)
            .map_err(|e| ImageError::io(format!("mkdir {}", dir.display()), e))?;
        let what = format!("blob {blob}");
        let mut budget = Budget::new(self.limits);
        let (got, _) = unpack_and_hash(&self.blob_path(blob), dir, &what, &mut budget)?;
        if got != *diff_id {
            return Err(ImageError::DiffIdMismatch {
                index: 0,
                what,
                expected: diff_id.to_string(),
                got: got.to_string(),
            });
        }
        Ok(())
    }

    /// Every image, with its references, sorted by first reference (unnamed ones last).
    pub fn list(&self) -> Result<Vec<Image>> {
        let index = self.read_index()?;
        let mut images: Vec<Image> = index.images.keys().filter_map(|d| index.image(d)).collect();
        images.sort_by(|a, b| {
            let key = |i: &Image| {
                (
                    i.references.is_empty(),
                    i.references.first().map(|r| r.to_string()),
                    i.digest.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(images)
    }

    /// The image a string names: a reference (`busybox`, `name@sha256:…`), a digest or id
    /// (`sha256:…`), or a unique prefix (at least 4 hex digits) of an id or digest.
    pub fn get(&self, image: &str) -> Result<Image> {
        let index = self.read_index()?;
        let digest = match resolve(&index, image)? {
            Target::Ref(key) => index.refs[&key].clone(),
            Target::Image(digest) => digest,
        };
        index
            .image(&digest)
            .ok_or_else(|| ImageError::NotFound(image.to_string()))
    }

    /// Removes a reference (untag); an image left without references is deleted. A digest
    /// or id deletes the image with all its references. Blobs and unpacked layers no image
    /// uses any more are deleted too. An image a container runs from (see
    /// [`ImageStore::lease`]) is not deleted: the removal is refused with
    /// [`ImageError::InUse`] and changes nothing, as `docker rmi` refuses without `--force`.
    pub fn remove(&self, image: &str) -> Result<Removed> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let mut removed = Removed::default();
        let digest = match resolve(&index, image)? {
            Target::Ref(key) => {
                let digest = index.refs.remove(&key).expect("resolved reference");
                removed.untagged.extend(Reference::parse(&key).ok());
                digest
            }
            Target::Image(digest) => {
                removed.untagged = index.references_of(&digest);
                index.refs.retain(|_, d| *d != digest);
                digest
            }
        };
        if !index.refs.values().any(|d| *d == digest) {
            let holders = index.holders_of(&digest);
            if !holders.is_empty() {
                return Err(ImageError::InUse {
                    image: image.to_string(),
                    containers: holders,
                });
            }
            index.images.remove(&digest);
            index.dangling.remove(&digest);
            removed.deleted.push(digest);
        }
        self.write_index(&index)?;
        self.gc_after_change(&index);
        Ok(removed)
    }

    fn gc_after_change(&self, index: &Index) {
        if let Err(e) = self.gc_locked(index) {
            // The change stands; the next removal or open collects the rest.
            tracing::warn!("image store: garbage collection: {e}");
        }
    }

    /// Resolves `image` as [`ImageStore::get`] does and records that `holder` (a container)
    /// runs from it, atomically: the image cannot be removed or collected until
    /// [`ImageStore::release`]. Leasing again replaces the holder's lease. Leases are on
    /// disk, so they outlive the agent like its containers do.
    pub fn lease(&self, holder: &str, image: &str) -> Result<Image> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let digest = match resolve(&index, image)? {
            Target::Ref(key) => index.refs[&key].clone(),
            Target::Image(digest) => digest,
        };
        let found = index
            .image(&digest)
            .ok_or_else(|| ImageError::NotFound(image.to_string()))?;
        if index.leases.get(holder) != Some(&digest) {
            index.leases.insert(holder.to_string(), digest);
            self.write_index(&index)?;
        }
        Ok(found)
    }

    /// Ends `holder`'s lease (if any); a dangling image it was the last user of is deleted.
    pub fn release(&self, holder: &str) -> Result<()> {
        self.release_where(|h| h == holder).map(|_| ())
    }

    /// Ends the leases whose holder `keep` rejects (containers that no longer exist, after
    /// a crash between removing a container and releasing its lease); returns them.
    pub fn retain_leases(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        self.release_where(|h| !keep(h))
    }

    /// The containers holding a lease, with the manifest digest each runs from.
    pub fn leases(&self) -> Result<BTreeMap<String, Digest>> {
        Ok(self.read_index()?.leases)
    }

    fn release_where(&self, ended: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let holders: Vec<String> = index.leases.keys().filter(|h| ended(h)).cloned().collect();
        if holders.is_empty() {
            return Ok(holders);
        }
        index.leases.retain(|h, _| !holders.contains(h));
        let unused: Vec<Digest> = index
            .dangling
            .iter()
            .filter(|d| !index.leases.values().any(|l| l == *d))
            .cloned()
            .collect();
        for digest in &unused {
            index.delete_unless_leased(digest);
        }
        self.write_index(&index)?;
        if !unused.is_empty() {
            self.gc_after_change(&index);
        }
        Ok(holders)
    }

    /// Writes `image` to `out` as an OCI image-layout tarball: `oci-layout`, `index.json`
    /// naming it `name` (`org.opencontainers.image.ref.name`, when given) and
    /// `blobs/sha256/<hex>` of its manifest, config and layers as stored, so that the
    /// manifest (and its digest) is the store's. Every blob is opened before anything is
    /// written: a removal meanwhile cannot cut the tarball short.
    pub fn export_layout(
        &self,
        image: &Image,
        name: Option<&Reference>,
        out: impl Write,
    ) -> Result<()> {
        let open = |digest: &Digest| -> Result<(Digest, File, u64)> {
            let path = self.blob_path(digest);
            let what = || format!("open {}", path.display());
            let file = File::open(&path).map_err(|e| ImageError::io(what(), e))?;
            let size = file
                .metadata()
                .map_err(|e| ImageError::io(what(), e))?
                .len();
            Ok((digest.clone(), file, size))
        };
        let mut blobs = vec![open(&image.digest)?, open(&image.id)?];
        for layer in &image.layers {
            if !blobs.iter().any(|(d, _, _)| *d == layer.digest) {
                blobs.push(open(&layer.digest)?);
            }
        }
        let manifest_path = self.blob_path(&image.digest);
        let manifest = fs::read(&manifest_path)
            .map_err(|e| ImageError::io(format!("read {}", manifest_path.display()), e))?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
            .ok()
            .and_then(|m| m["mediaType"].as_str().map(String::from))
            .unwrap_or_else(|| types::MEDIA_OCI_MANIFEST.to_string());
        let mut descriptor = serde_json::json!({
            "mediaType": media_type,
            "digest": image.digest.to_string(),
            "size": manifest.len(),
        });
        if let Some(name) = name {
            let mut annotations = serde_json::Map::new();
            annotations.insert(types::ANNOTATION_REF_NAME.into(), name.to_string().into());
            descriptor["annotations"] = annotations.into();
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [descriptor],
        });
        let failed = |e: io::Error| ImageError::io("write the image layout", e);
        let mut tar = tar::Builder::new(out);
        let mut add = |path: &str, size: u64, data: &mut dyn io::Read| -> io::Result<()> {
            let mut header = tar::Header::new_ustar();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path, data)
        };
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        add("oci-layout", layout.len() as u64, &mut &layout[..]).map_err(failed)?;
        let index = index.to_string().into_bytes();
        add("index.json", index.len() as u64, &mut &index[..]).map_err(failed)?;
        for (digest, file, size) in blobs {
            // Exactly the size read when opened: a blob is never rewritten in place.
            let mut data = io::Read::take(file, size);
            add(&format!("blobs/sha256/{}", digest.hex()), size, &mut data).map_err(failed)?;
        }
        tar.into_inner().map_err(failed)?.flush().map_err(failed)
    }

    /// The image's parsed config (Entrypoint, Cmd, Env, ...).
    pub fn image_config(&self, image: &Image) -> Result<ImageConfig> {
        let path = self.blob_path(&image.id);
        let bytes =
            fs::read(&path).map_err(|e| ImageError::io(format!("read {}", path.display()), e))?;
        ImageConfig::parse(&bytes)
    }

    /// The image's unpacked layers as overlayfs wants its `lowerdir=` list: top layer
    /// first. A layer dir that went missing is unpacked again from its blob.
    pub fn lowerdirs(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::with_capacity(image.layers.len());
        for layer in image.layers.iter().rev() {
            let path = self.layer_path(&layer.diff_id);
            if !path.exists() {
                let _lock = self.lock()?;
                if !path.exists() {
                    let staging = Staging::new(&self.tmp(), "repair")?;
                    let staged = staging.dir.join("layer");
                    self.unpack_blob(&layer.diff_id, &layer.digest, &staged)?;
                    fs::rename(&staged, &path).map_err(|e| {
                        ImageError::io(format!("move layer {} into the store", layer.diff_id), e)
                    })?;
                }
            }
            dirs.push(path);
        }
        Ok(dirs)
    }
}

fn resolve(index: &Index, input: &str) -> Result<Target> {
    let not_found = || ImageError::NotFound(input.to_string());
    let by_digest = |d: &Digest| {
        index
            .images
            .values()
            .find(|i| i.digest == *d || i.id == *d || i.index_digest.as_ref() == Some(d))
            .map(|i| Target::Image(i.digest.clone()))
    };
    if let Some(hex) = input.strip_prefix("sha256:")
        && is_sha256_hex(hex)
    {
        let digest = Digest::from_hex(hex).expect("checked");
        return by_digest(&digest).ok_or_else(not_found);
    }
    let parsed = Reference::parse(input);
    if let Ok(reference) = &parsed {
        let key = reference.to_string();
        if index.refs.contains_key(&key) {
            return Ok(Target::Ref(key));
        }
        if let Some(digest) = reference.digest() {
            return by_digest(digest).ok_or_else(not_found);
        }
    }
    let prefix = input.strip_prefix("sha256:").unwrap_or(input);
    let hex_like = prefix.len() >= MIN_ID_PREFIX
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex_like {
        let matches: BTreeSet<&Digest> = index
            .images
            .values()
            .filter(|i| i.id.hex().starts_with(prefix) || i.digest.hex().starts_with(prefix))
            .map(|i| &i.digest)
            .collect();
        return match matches.len() {
            0 => Err(not_found()),
            1 => Ok(Target::Image(
                matches.into_iter().next().expect("one").clone(),
            )),
            _ => Err(ImageError::Ambiguous(input.to_string())),
        };
    }
    match parsed {
        Ok(_) => Err(not_found()),
        Err(e) => Err(e),
    }
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let entries =
        fs::read_dir(dir).map_err(|e| ImageError::io(format!("read {}", dir.display()), e))?;
    Ok(entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let write = || -> io::Result<()> {
        let mut file = File::create(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|e| ImageError::io(format!("write {}", path.display()), e))
}

/// The diff_id (and length) of a layer blob: sha256 of its uncompressed tar.
fn hash_layer(path: &Path, what: &str) -> Result<(Digest, u64)> {
    HashingReader::new(open_layer(path, what)?)
        .finish()
        .map_err(|e| ImageError::BadLayer {
            layer: what.to_string(),
            reason: format!("decompressing: {e}"),
        })
}

/// Unpacks a layer blob into `dir` and returns its diff_id (and uncompressed length), from
/// one pass over the blob.
fn unpack_and_hash(
    path: &Path,
    dir: &Path,
    what: &str,
    budget: &mut Budget,
) -> Result<(Digest, u64)> {
    let mut reader = HashingReader::new(open_layer(path, what)?);
    unpack_layer(&mut reader, dir, what, budget)?;
    reader.finish().map_err(|e| ImageError::BadLayer {
        layer: what.to_string(),
        reason: format!("decompressing: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(config: &[u8], manifest: &[u8]) -> Image {
        Image {
            references: vec![],
            digest: Digest::of(manifest),
            id: Digest::of(config),
            index_digest: None,
            layers: vec![],
            size: 0,
            unpacked_size: 0,
            created: None,
            architecture: "amd64".into(),
            os: "linux".into(),
            manifest_size: 0,
            config_size: 0,
        }
    }

    fn index() -> (Index, Image, Image) {
        let a = image(b"config a", b"manifest a");
        let b = image(b"config b", b"manifest b");
        let mut index = Index::default();
        index.images.insert(a.digest.clone(), a.clone());
        index.images.insert(b.digest.clone(), b.clone());
        index
            .refs
            .insert("docker.io/library/busybox:latest".into(), a.digest.clone());
        index
            .refs
            .insert("docker.io/library/b:1".into(), b.digest.clone());
        (index, a, b)
    }

    fn target(index: &Index, input: &str) -> Result<String> {
        resolve(index, input).map(|t| match t {
            Target::Ref(r) => format!("ref {r}"),
            Target::Image(d) => format!("image {d}"),
        })
    }

    #[test]
    fn resolves_references_ids_and_digests() {
        let (index, a, b) = index();
        assert_eq!(
            target(&index, "busybox").unwrap(),
            "ref docker.io/library/busybox:latest"
        );
        assert_eq!(target(&index, "b:1").unwrap(), "ref docker.io/library/b:1");
        assert_eq!(
            target(&index, &a.id.to_string()).unwrap(),
            format!("image {}", a.digest)
        );
        assert_eq!(
            target(&index, &b.digest.to_string()).unwrap(),
            format!("image {}", b.digest)
        );
        assert_eq!(
            target(&index, b.id.short()).unwrap(),
            format!("image {}", b.digest)
        );
        assert_eq!(
            target(&index, &format!("whatever@{}", a.digest)).unwrap(),
            format!("image {}", a.digest)
        );
        assert!(matches!(
            resolve(&index, "nope"),
            Err(ImageError::NotFound(_))
        ));
        assert!(matches!(
            resolve(&index, "b:2"),
            Err(ImageError::NotFound(_))
        ));
        assert!(matches!(
            resolve(&index, "Bad"),
            Err(ImageError::InvalidReference { .. })
        ));
        assert!(matches!(
            resolve(&index, &format!("sha256:{}", "0".repeat(64))),
            Err(ImageError::NotFound(_))
        ));
    }

    #[test]
    fn index_round_trips_as_json() {
        let (index, ..) = index();
        let json = serde_json::to_string(&index).unwrap();
        let back: Index = serde_json::from_str(&json).unwrap();
        assert_eq!(back, index);
    }

    #[tokio::test]
    async fn imports_beyond_the_concurrency_limit_wait_for_a_turn() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ImageLimits {
            concurrent_imports: 1,
            ..ImageLimits::default()
        };
        let store = ImageStore::open(dir.path()).unwrap().with_limits(limits);
        let first = store.import_turn().await;
        // A clone shares the turns: the second waits until the first is done.
        let other = store.clone();
        let mut second = tokio::spawn(async move { other.import_turn().await });
        let waited = tokio::time::timeout(std::time::Duration::from_millis(100), &mut second).await;
        assert!(waited.is_err(), "a second import ran beside the first");
        drop(first);
        let _turn = second.await.unwrap();
    }

    #[test]
    fn an_archive_whose_manifest_is_over_the_cap_is_refused_and_nothing_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ImageLimits {
            manifest_bytes: 64,
            ..ImageLimits::default()
        };
        let store = ImageStore::open(dir.path().join("images"))
            .unwrap()
            .with_limits(limits);
        let layer = skiff_image::layer(&[skiff_image::Entry::file("f", "x")]).unwrap();
        let config = skiff_image::Config::default()
            .to_json(&skiff_image::diff_ids(std::slice::from_ref(&layer)));
        let archive = dir.path().join("image.tar");
        let tags = ["skiff-test/small:1"];
        let save = skiff_image::DockerSave::new(&config, std::slice::from_ref(&layer), &tags);
        fs::write(&archive, save.tar().unwrap()).unwrap();
        let error = store.import(&archive).unwrap_err();
        assert!(matches!(error, ImageError::Limit { .. }), "{error}");
        assert!(
            error.to_string().starts_with("manifest.json (")
                && error.to_string().ends_with(
                    "exceeds the limit of 64 bytes for a manifest (--image-max-manifest-bytes)"
                ),
            "{error}"
        );
        assert!(store.list().unwrap().is_empty());
        assert_eq!(
            read_dir_names(&store.root.join("layers")).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(read_dir_names(&store.tmp()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn an_exported_image_is_a_layout_of_the_stores_own_manifest_and_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let layer = skiff_image::layer(&[skiff_image::Entry::file("f", "x")]).unwrap();
        let config = skiff_image::Config::default()
            .to_json(&skiff_image::diff_ids(std::slice::from_ref(&layer)));
        let archive = dir.path().join("image.tar");
        let tags = ["skiff-test/out:1", "skiff-test/out:2"];
        let save = skiff_image::DockerSave::new(&config, std::slice::from_ref(&layer), &tags);
        fs::write(&archive, save.tar().unwrap()).unwrap();
        store.import(&archive).unwrap();
        let image = store.get("skiff-test/out:2").unwrap();
        let name = Reference::parse("skiff-test/out:2").unwrap();

        let mut tarball = Vec::new();
        store
            .export_layout(&image, Some(&name), &mut tarball)
            .unwrap();
        let exported = skiff_image::archive_images(&tarball).unwrap();
        assert_eq!(exported.len(), 1);
        assert_eq!(exported[0].names, ["docker.io/skiff-test/out:2"]);
        // The store's manifest, so the digest a registry gets is the node's.
        assert_eq!(exported[0].manifest.digest(), image.digest.to_string());
        assert_eq!(exported[0].manifest.config, config);
        // And it imports again as the same image.
        let again = dir.path().join("again.tar");
        fs::write(&again, &tarball).unwrap();
        let other = ImageStore::open(dir.path().join("other")).unwrap();
        let imported = other.import(&again).unwrap();
        assert_eq!(imported.images[0].image.digest, image.digest);
        assert_eq!(imported.images[0].image.id, image.id);
    }
}
