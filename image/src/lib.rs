//! Builds container images in memory, reproducibly (the same input gives the same bytes,
//! so the same image id): layer tars of directories, files, symlinks and hardlinks with
//! modes and owners, whiteouts, image configs, `docker save` archives and OCI image
//! layouts. The one image builder of the workspace: `skiff up` makes its busybox image
//! with it ([`busybox_archive`]), and the tests make theirs.
//!
//! ```
//! use skiff_image::{Config, DockerSave, Entry, diff_ids, layer};
//!
//! let layer = layer(&[Entry::dir("etc/"), Entry::file("etc/motd", "hello\n")]).unwrap();
//! let config = Config { cmd: vec!["sh".into()], ..Config::default() }
//!     .to_json(&diff_ids(std::slice::from_ref(&layer)));
//! let archive = DockerSave::new(&config, std::slice::from_ref(&layer), &["motd:1"])
//!     .tar()
//!     .unwrap();
//! assert!(!archive.is_empty());
//! ```

mod archive;
mod busybox;
mod config;
mod docker;
mod layer;
pub mod oci;
#[cfg(feature = "push")]
pub mod push;
mod read;

use std::io::Write;

use sha2::{Digest as _, Sha256};

pub use archive::Archive;
pub use busybox::{BUSYBOX_APPLETS, busybox_archive, busybox_image, busybox_manifest};
pub use config::{Config, diff_ids};
pub use docker::DockerSave;
pub use layer::{Entry, Kind, MTIME, OPAQUE, WHITEOUT_PREFIX, layer, opaque, whiteout};
pub use oci::{OciLayout, OciManifest};
pub use read::{ArchiveImage, ReadError, archive_images};

/// The 64 lowercase hex digits of the sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `sha256:<hex>` of `bytes`: a content digest as manifests and configs write them.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// `bytes` gzip-compressed (fast; no name or time in the header, so reproducible).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// GOARCH of this machine, as image configs and platforms name architectures.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The members of `tar` in order: each path with its content (empty for all but files).
#[cfg(test)]
fn untar(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            (entry.path().unwrap().display().to_string(), data)
        })
        .collect()
}
