//! Image archives for the end-to-end image tests: what their one-layer busybox image holds
//! (Debian's busybox-static as `/bin/busybox`, optionally with applet symlinks beside it),
//! built with `skiff-image` as a `docker save` archive, an OCI image-layout tarball, and
//! the blobs and manifest of a registry push.

pub use skiff_image::oci::{
    ANNOTATION_REF_NAME, MEDIA_OCI_CONFIG, MEDIA_OCI_INDEX, MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST, descriptor,
};
use skiff_image::{Config, DockerSave, Entry, OciLayout, OciManifest, diff_ids};
pub use skiff_image::{gzip, host_architecture, sha256};

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
pub struct OciLayoutArchive {
    pub archive: Vec<u8>,
    /// `sha256:…` of the image manifest.
    pub manifest_digest: String,
}

impl BusyboxImage {
    /// The image with `/bin/busybox` and a symlink `/bin/<applet>` → `busybox` for each
    /// of `applets`.
    pub fn new(busybox: &[u8], applets: &[&str]) -> BusyboxImage {
        let mut entries = vec![
            Entry::dir("bin/"),
            Entry::file("bin/busybox", busybox).mode(0o755),
        ];
        entries.extend(
            applets
                .iter()
                .map(|applet| Entry::symlink(format!("bin/{applet}"), "busybox")),
        );
        let layer = skiff_image::layer(&entries).expect("tar in memory");
        let config = Config {
            created: "2024-05-01T12:00:00Z".into(),
            entrypoint: vec!["/bin/busybox".into()],
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            ..Config::default()
        }
        .to_json(&diff_ids(std::slice::from_ref(&layer)));
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
        DockerSave::new(&self.config, std::slice::from_ref(&self.layer), &[tag])
            .tar()
            .expect("archive in memory")
    }

    fn manifest(&self) -> OciManifest {
        OciManifest::new(self.config.clone(), vec![self.layer_gzip.clone()])
    }

    /// The OCI image manifest: the config and the gzip layer.
    pub fn oci_manifest(&self) -> Vec<u8> {
        self.manifest().json
    }

    /// An OCI image layout tarball (as `skopeo copy … oci-archive:` writes one): `oci-layout`,
    /// `index.json` naming the manifest with the full `reference` in the
    /// `org.opencontainers.image.ref.name` annotation (and this host's platform), and
    /// `blobs/sha256/<hex>` for the manifest, the config and the gzip layer.
    pub fn oci_layout(&self, reference: &str) -> OciLayoutArchive {
        let manifest = self.manifest();
        let manifest_digest = manifest.digest();
        let layout = OciLayout::single(host_architecture(), manifest, reference);
        OciLayoutArchive {
            archive: layout.archive().tar().expect("archive in memory"),
            manifest_digest,
        }
    }
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
