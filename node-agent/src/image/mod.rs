//! The node-local image store: image references, a content-addressed blob store with an
//! index of tagged images, import of `docker save` archives and OCI image-layout tarballs
//! (every digest verified), layers unpacked once per diff_id as overlayfs lower dirs, and
//! the Kubernetes rules that combine an image's config with a container's command, args,
//! env and working dir.
//!
//! On disk, under the store's root (the agent uses `<data-dir>/images`):
//!
//! ```text
//! lock                    flock'ed (exclusively) by every change to the store
//! index.json              references → manifest digest, and per image: config digest,
//!                         layer digests and diff_ids, sizes, created (replaced atomically)
//! blobs/sha256/<hex>      manifests, configs and layer blobs as imported (compressed or not)
//! layers/<hex>/           a layer unpacked, named by its diff_id: an overlayfs lowerdir
//! tmp/                    staging dirs of imports and dirs being deleted
//! ```
//!
//! Safety across threads and processes: every change (import commit, remove, garbage
//! collection) holds an exclusive `flock` on `<root>/lock`, opened anew by each operation, so
//! it excludes both other processes and other threads of this one (flock belongs to the open
//! file description). Readers take no lock: `index.json` is only ever replaced by a rename
//! of a fsync'ed temporary file, and blobs and layers appear by rename from `tmp/`, so a
//! reader sees either the old or the new store, never a half-written file or layer. Imports
//! stage and verify without the lock (they may be slow) and take it only to commit.

mod archive;
pub mod config;
pub mod digest;
pub mod pull;
pub mod reference;
pub mod store;
mod types;
pub mod unpack;

pub use config::{ContainerSpec, ExposedPort, ImageConfig, ProcessSpec, resolve_process};
pub use digest::Digest;
pub use pull::{Credentials, PullOptions};
pub use reference::Reference;
pub use store::{Image, ImageStore, Imported, ImportedImage, LayerRecord, Removed};

/// Caps on what images may cost the node: a hostile image (a tar bomb, an endless
/// manifest) is refused with the cap it passed named, and leaves the store as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Bytes of file content one import (an archive's images, or a pull) may unpack
    /// (`--image-max-unpacked-bytes`).
    pub unpacked_bytes: u64,
    /// Tar entries one import may hold (`--image-max-entries`).
    pub entries: u64,
    /// The largest manifest or index taken, checked as it streams in
    /// (`--image-max-manifest-bytes`; containerd's 4 MiB by default).
    pub manifest_bytes: u64,
    /// Imports and pulls unpacking at once (`--image-concurrent-imports`); more wait.
    pub concurrent_imports: usize,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            unpacked_bytes: 8 << 30,
            entries: 1_000_000,
            manifest_bytes: 4 << 20,
            concurrent_imports: 2,
        }
    }
}

/// What pod workers need of images when the runtime runs containers from them: the store
/// the runtime makes containers from, and how to pull into it.
#[derive(Debug, Clone)]
pub struct NodeImages {
    pub store: ImageStore,
    pub pull: PullOptions,
}

/// Everything that can go wrong with images. Messages name the file, digest or reference
/// at fault and, for mismatches, what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: String },
    #[error("image {0} not found")]
    NotFound(String),
    #[error("image id prefix {0} is ambiguous")]
    Ambiguous(String),
    /// The archive is not a usable image archive: a file missing, bad JSON, bad structure.
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),
    #[error("digest mismatch for {what}: expected {expected}, got {got}")]
    DigestMismatch {
        what: String,
        expected: String,
        got: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {got}")]
    SizeMismatch {
        what: String,
        expected: u64,
        got: u64,
    },
    #[error(
        "diff_id mismatch for layer {index} ({what}): the config says {expected}, the uncompressed layer is {got}"
    )]
    DiffIdMismatch {
        index: usize,
        what: String,
        expected: String,
        got: String,
    },
    /// A manifest, index or `manifest.json` names a blob or file the archive lacks.
    #[error("{what} names {blob}, which is not in the archive")]
    MissingBlob { what: String, blob: String },
    /// A registry refused or failed a pull: its reason, as it gave it.
    #[error("{message}")]
    Registry { reference: String, message: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A layer entry that would land outside the layer directory, or go through a symlink.
    #[error("unsafe layer entry {path:?}: {reason}")]
    UnsafePath { path: String, reason: String },
    /// Past one of [`ImageLimits`]: `what` went over `limit`, named with its flag.
    #[error("{what} exceeds {limit}")]
    Limit { what: String, limit: String },
    /// A layer tar that cannot be unpacked (bad header, truncated data, bad link).
    #[error("layer {layer}: {reason}")]
    BadLayer { layer: String, reason: String },
    #[error("invalid image config: {0}")]
    InvalidConfig(String),
    /// The image and the container together name no program to run.
    #[error(
        "no command specified: the image has no Entrypoint or Cmd and the container sets neither command nor args"
    )]
    NoCommand,
    /// The image would be deleted while containers run from it.
    #[error("image {image} is in use by {} container(s): {}; remove them first", containers.len(), containers.join(", "))]
    InUse {
        image: String,
        containers: Vec<String>,
    },
    #[error("image store index {path}: {reason}")]
    CorruptIndex { path: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// An I/O error with what was being done (and on which path).
    pub fn io(what: impl Into<String>, source: std::io::Error) -> ImageError {
        ImageError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The result type of this module.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
