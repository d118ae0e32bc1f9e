//! Image archives for the end-to-end image tests: a one-layer busybox image (Debian's
//! busybox-static as `/bin/busybox`, optionally with applet symlinks beside it) as a
//! `docker save` archive or an OCI image-layout tarball, and its blobs for a registry push,
//! on top of the agent's own builder (`skiff_agent::image::build`, which `skiff up` uses).
//! The node agent's tests have a fuller builder (two layers, whiteouts, multi-platform
//! indexes) in `node-agent/tests/common/mod.rs`, which other crates' tests cannot import.

use serde_json::json;
use skiff_agent::image::Digest;
pub use skiff_agent::image::build::{Entry, host_architecture};

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Digest::of(bytes).to_string()
}

fn tar(entries: &[Entry]) -> Vec<u8> {
    skiff_agent::image::build::tar(entries).expect("tar in memory")
}

fn file(path: impl Into<String>, data: Vec<u8>) -> Entry {
    Entry::File {
        path: path.into(),
        mode: 0o644,
        data,
    }
}

fn dir(path: impl Into<String>) -> Entry {
    Entry::Dir { path: path.into() }
}

/// A `docker save` archive of one image tagged `tag`: one layer holding `busybox` (the
/// binary's bytes) as `/bin/busybox`, Entrypoint `/bin/busybox`, Cmd `sh`.
pub fn busybox_docker_archive(busybox: &[u8], tag: &str) -> Vec<u8> {
    BusyboxImage::new(busybox, &[]).docker_archive(tag)
}

/// The applets [`BusyboxImage::with_applets`] links in `/bin`, so that commands such as
/// `ps` or `httpd` are found on the image's `PATH` (busybox runs the applet its argv[0]
/// names).
pub const APPLETS: &[&str] = &[
    "cat", "echo", "head", "hostname", "httpd", "ls", "ps", "sh", "sleep", "tr", "wget",
];

/// `application/vnd.oci.image.manifest.v1+json`
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.image.layer.v1.tar+gzip`
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation that names an image in an OCI image layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A one-layer busybox image for this host's architecture: `/bin/busybox` (and applet
/// links), Entrypoint `/bin/busybox`, Cmd `sh`, `PATH=/bin`. The same layer and config go
/// into every form of it: a `docker save` archive (plain layer), an OCI image layout and a
/// registry push (gzip layer, OCI manifest).
pub struct BusyboxImage {
    /// The layer, an uncompressed tar (its digest is the config's diff_id).
    pub layer: Vec<u8>,
    /// The layer gzip-compressed, as OCI layouts and registries carry it.
    pub layer_gzip: Vec<u8>,
    /// The image config (JSON).
    pub config: Vec<u8>,
}

/// An OCI image layout as a tarball, with the digests a test checks against.
pub struct OciLayout {
    pub archive: Vec<u8>,
    /// `sha256:…` of the image manifest.
    pub manifest_digest: String,
}

impl BusyboxImage {
    /// The image with `/bin/busybox` and a symlink `/bin/<applet>` → `busybox` for each
    /// of `applets`.
    pub fn new(busybox: &[u8], applets: &[&str]) -> BusyboxImage {
        let mut entries = vec![
            dir("bin/"),
            Entry::File {
                path: "bin/busybox".into(),
                mode: 0o755,
                data: busybox.to_vec(),
            },
        ];
        entries.extend(applets.iter().map(|applet| Entry::Symlink {
            path: format!("bin/{applet}"),
            target: "busybox".into(),
        }));
        let layer = tar(&entries);
        let config = serde_json::to_vec(&json!({
            "architecture": host_architecture(),
            "os": "linux",
            "created": "2024-05-01T12:00:00Z",
            "config": {"Entrypoint": ["/bin/busybox"], "Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
        }))
        .expect("config json");
        BusyboxImage {
            layer_gzip: gzip(&layer),
            layer,
            config,
        }
    }

    /// The image with every applet of [`APPLETS`] linked.
    pub fn with_applets(busybox: &[u8]) -> BusyboxImage {
        BusyboxImage::new(busybox, APPLETS)
    }

    /// `sha256:…` of the config: the image's id.
    pub fn config_digest(&self) -> String {
        sha256(&self.config)
    }

    /// A `docker save` archive (pre-25 layout) of the image, tagged `tag`: `<config
    /// hex>.json`, `<id>/layer.tar` (uncompressed), `manifest.json`.
    pub fn docker_archive(&self, tag: &str) -> Vec<u8> {
        skiff_agent::image::build::docker_save(&self.config, &self.layer, tag)
            .expect("archive in memory")
    }

    /// The OCI image manifest: the config and the gzip layer.
    pub fn oci_manifest(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": descriptor(MEDIA_OCI_CONFIG, &self.config),
            "layers": [descriptor(MEDIA_OCI_LAYER_GZIP, &self.layer_gzip)],
        }))
        .expect("manifest json")
    }

    /// An OCI image layout tarball (as `skopeo copy … oci-archive:` writes one): `oci-layout`,
    /// `index.json` naming the manifest with the full `reference` in the
    /// `org.opencontainers.image.ref.name` annotation (and this host's platform), and
    /// `blobs/sha256/<hex>` for the manifest, the config and the gzip layer.
    pub fn oci_layout(&self, reference: &str) -> OciLayout {
        let manifest = self.oci_manifest();
        let mut top = descriptor(MEDIA_OCI_MANIFEST, &manifest);
        top["platform"] = json!({"architecture": host_architecture(), "os": "linux"});
        top["annotations"] = json!({ ANNOTATION_REF_NAME: reference });
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_INDEX,
            "manifests": [top],
        }))
        .expect("index json");
        let blob = |bytes: &[u8]| {
            let digest = sha256(bytes);
            file(
                format!("blobs/sha256/{}", &digest["sha256:".len()..]),
                bytes.to_vec(),
            )
        };
        let archive = tar(&[
            file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            file("index.json", index),
            dir("blobs/"),
            dir("blobs/sha256/"),
            blob(&self.layer_gzip),
            blob(&self.config),
            blob(&manifest),
        ]);
        OciLayout {
            archive,
            manifest_digest: sha256(&manifest),
        }
    }
}

/// An OCI content descriptor of `blob`.
pub fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": sha256(blob), "size": blob.len()})
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The archives are what the agent's image store accepts: both forms import under
    /// their names, as the same image id, with the applet links in the layer.
    #[test]
    fn docker_archive_and_oci_layout_import_into_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_agent::image::ImageStore::open(dir.path().join("images")).unwrap();
        let image = BusyboxImage::with_applets(b"#!not really busybox\n");
        let docker = dir.path().join("docker.tar");
        std::fs::write(&docker, image.docker_archive("skiff-test/busybox:docker")).unwrap();
        let layout = image.oci_layout("skiff-test/busybox:oci");
        let oci = dir.path().join("oci.tar");
        std::fs::write(&oci, &layout.archive).unwrap();
        for (archive, name) in [
            (&docker, "docker.io/skiff-test/busybox:docker"),
            (&oci, "docker.io/skiff-test/busybox:oci"),
        ] {
            let imported = store.import(archive).unwrap();
            assert_eq!(imported.images.len(), 1, "{imported:?}");
            let imported = &imported.images[0];
            let names: Vec<String> = imported.names.iter().map(|n| n.to_string()).collect();
            assert_eq!(names, [name]);
            assert_eq!(imported.image.id.to_string(), image.config_digest());
        }
        let from_oci = store.get("skiff-test/busybox:oci").unwrap();
        assert_eq!(from_oci.digest.to_string(), layout.manifest_digest);
        assert_eq!(store.list().unwrap().len(), 2);
        let lower = store.lowerdirs(&from_oci).unwrap();
        assert_eq!(lower.len(), 1);
        for applet in APPLETS {
            let link = std::fs::read_link(lower[0].join("bin").join(applet)).unwrap();
            assert_eq!(link, std::path::Path::new("busybox"), "{applet}");
        }
    }
}
