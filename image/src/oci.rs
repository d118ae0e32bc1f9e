//! OCI images: manifests with their blobs (what a registry push sends), and image layouts
//! (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), optionally with a multi-platform
//! index as `docker buildx` writes them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{Archive, sha256, sha256_hex};

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
/// The annotation with which containerd names an image (the full reference).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// An OCI content descriptor of `blob`.
pub fn descriptor(media_type: &str, blob: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha256(blob), "size": blob.len()})
}

/// An image manifest and the blobs it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciManifest {
    /// The image config (JSON).
    pub config: Vec<u8>,
    /// The layers as stored, bottom first: gzip'ed tars.
    pub layers: Vec<Vec<u8>>,
    /// The manifest (JSON).
    pub json: Vec<u8>,
}

impl OciManifest {
    /// The manifest of `config` and the gzip'ed `layers` (see [`crate::gzip`]).
    pub fn new(config: Vec<u8>, layers: Vec<Vec<u8>>) -> OciManifest {
        let json = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": descriptor(MEDIA_OCI_CONFIG, &config),
            "layers": layers
                .iter()
                .map(|layer| descriptor(MEDIA_OCI_LAYER_GZIP, layer))
                .collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes();
        OciManifest {
            config,
            layers,
            json,
        }
    }

    /// `sha256:…` of the manifest.
    pub fn digest(&self) -> String {
        sha256(&self.json)
    }

    /// `sha256:…` of each layer blob.
    pub fn layer_digests(&self) -> Vec<String> {
        self.layers.iter().map(|layer| sha256(layer)).collect()
    }

    /// The manifest's descriptor for a linux image of `architecture`.
    fn platform_descriptor(&self, architecture: &str) -> Value {
        let mut descriptor = descriptor(MEDIA_OCI_MANIFEST, &self.json);
        descriptor["platform"] = json!({"architecture": architecture, "os": "linux"});
        descriptor
    }
}

/// An OCI image layout of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLayout {
    /// The image's manifests, each with the architecture it is for (linux images).
    pub manifests: Vec<(String, OciManifest)>,
    /// Whether `index.json` names one image index that lists the manifests (a
    /// multi-platform image) rather than the manifests themselves.
    pub nested_index: bool,
    /// The annotations of each descriptor in `index.json` (names such as
    /// [`ANNOTATION_REF_NAME`]).
    pub annotations: Vec<(String, String)>,
}

impl OciLayout {
    /// A layout of one manifest for `architecture`, named `reference` (the
    /// [`ANNOTATION_REF_NAME`] annotation), as `skopeo copy … oci-archive:` writes it.
    pub fn single(architecture: &str, manifest: OciManifest, reference: &str) -> OciLayout {
        OciLayout {
            manifests: vec![(architecture.to_string(), manifest)],
            nested_index: false,
            annotations: vec![(ANNOTATION_REF_NAME.to_string(), reference.to_string())],
        }
    }

    fn index_of(manifests: Vec<Value>) -> Value {
        json!({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": manifests})
    }

    fn platform_descriptors(&self) -> Vec<Value> {
        self.manifests
            .iter()
            .map(|(architecture, manifest)| manifest.platform_descriptor(architecture))
            .collect()
    }

    /// The nested image index (JSON), if there is one.
    pub fn index(&self) -> Option<Vec<u8>> {
        self.nested_index.then(|| {
            OciLayout::index_of(self.platform_descriptors())
                .to_string()
                .into_bytes()
        })
    }

    /// `sha256:…` of the nested image index, if there is one: what a registry calls a
    /// multi-platform image's digest.
    pub fn index_digest(&self) -> Option<String> {
        self.index().map(|index| sha256(&index))
    }

    /// The layout's files: `oci-layout`, `index.json`, then every blob once, in the order
    /// of their digests.
    pub fn archive(&self) -> Archive {
        let mut blobs = BTreeMap::new();
        let mut add = |blob: &[u8]| {
            blobs.insert(sha256_hex(blob), blob.to_vec());
        };
        for (_, manifest) in &self.manifests {
            add(&manifest.json);
            add(&manifest.config);
            manifest.layers.iter().for_each(|layer| add(layer));
        }
        let mut top = match self.index() {
            Some(index) => {
                add(&index);
                vec![descriptor(MEDIA_OCI_INDEX, &index)]
            }
            None => self.platform_descriptors(),
        };
        if !self.annotations.is_empty() {
            let annotations: serde_json::Map<String, Value> = self
                .annotations
                .iter()
                .map(|(key, value)| (key.clone(), json!(value)))
                .collect();
            for descriptor in &mut top {
                descriptor["annotations"] = Value::Object(annotations.clone());
            }
        }
        let mut archive = Archive::default();
        archive.add("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#);
        archive.add("index.json", OciLayout::index_of(top).to_string());
        for (hex, blob) in blobs {
            archive.add(format!("blobs/sha256/{hex}"), blob);
        }
        archive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(archive: &Archive, name: &str) -> Value {
        serde_json::from_slice(archive.get(name).unwrap()).unwrap()
    }

    fn blob<'a>(archive: &'a Archive, digest: &str) -> &'a [u8] {
        let hex = digest.strip_prefix("sha256:").unwrap();
        archive.get(&format!("blobs/sha256/{hex}")).unwrap()
    }

    fn manifest(config: &str) -> OciManifest {
        OciManifest::new(
            config.into(),
            vec![b"layer 1".to_vec(), b"layer 2".to_vec()],
        )
    }

    /// Follows descriptors from `index.json` down to the layers: every blob is there under
    /// its digest, with its size.
    #[test]
    fn a_single_manifest_layout_resolves_to_its_blobs() {
        let layout = OciLayout::single("arm64", manifest("{}"), "example.test/app:1");
        let archive = layout.archive();
        assert_eq!(
            json_of(&archive, "oci-layout"),
            json!({"imageLayoutVersion": "1.0.0"})
        );
        let index = json_of(&archive, "index.json");
        let top = &index["manifests"][0];
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(top["mediaType"], MEDIA_OCI_MANIFEST);
        assert_eq!(
            top["platform"],
            json!({"architecture": "arm64", "os": "linux"})
        );
        assert_eq!(
            top["annotations"],
            json!({ANNOTATION_REF_NAME: "example.test/app:1"})
        );
        let digest = top["digest"].as_str().unwrap();
        assert_eq!(digest, layout.manifests[0].1.digest());
        let manifest_bytes = blob(&archive, digest);
        assert_eq!(top["size"], manifest_bytes.len());
        let manifest: Value = serde_json::from_slice(manifest_bytes).unwrap();
        assert_eq!(
            blob(&archive, manifest["config"]["digest"].as_str().unwrap()),
            b"{}"
        );
        let layers: Vec<&[u8]> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| blob(&archive, l["digest"].as_str().unwrap()))
            .collect();
        assert_eq!(layers, [&b"layer 1"[..], &b"layer 2"[..]]);
        assert_eq!(layout.index_digest(), None);
        assert_eq!(archive.files.len(), 2 + 4);
    }

    #[test]
    fn a_multi_platform_layout_names_an_index_of_the_manifests() {
        let layout = OciLayout {
            manifests: vec![
                ("s390x".into(), manifest(r#"{"architecture":"s390x"}"#)),
                ("amd64".into(), manifest(r#"{"architecture":"amd64"}"#)),
            ],
            nested_index: true,
            annotations: vec![(ANNOTATION_CONTAINERD_NAME.into(), "app:1".into())],
        };
        let archive = layout.archive();
        let top = &json_of(&archive, "index.json")["manifests"][0];
        assert_eq!(top["mediaType"], MEDIA_OCI_INDEX);
        assert_eq!(top["annotations"][ANNOTATION_CONTAINERD_NAME], "app:1");
        let digest = top["digest"].as_str().unwrap();
        assert_eq!(Some(digest.to_string()), layout.index_digest());
        let index: Value = serde_json::from_slice(blob(&archive, digest)).unwrap();
        let platforms: Vec<(&str, &str)> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["platform"]["architecture"].as_str().unwrap(),
                    m["digest"].as_str().unwrap(),
                )
            })
            .collect();
        let amd64 = layout.manifests[1].1.digest();
        assert_eq!(platforms[1], ("amd64", amd64.as_str()));
        assert_eq!(platforms[0].0, "s390x");
        // Shared layers are stored once: 2 manifests, 2 configs, 2 layers, the index.
        assert_eq!(archive.files.len(), 2 + 7);
    }
}
