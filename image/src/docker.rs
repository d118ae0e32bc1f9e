//! `docker save` archives, in the layout Docker wrote before 25: `<config hex>.json`,
//! `<id>/layer.tar` per layer, `manifest.json`; optionally the extras of older versions.

use std::io;

use serde_json::{Value, json};

use crate::{Archive, sha256_hex};

/// A `docker save` archive of one image.
#[derive(Debug, Clone, Copy)]
pub struct DockerSave<'a> {
    /// The image config (JSON).
    pub config: &'a [u8],
    /// The layers as the archive holds them, bottom first: uncompressed tars (what Docker
    /// writes), or gzip ones (what some other tools write).
    pub layers: &'a [Vec<u8>],
    /// `RepoTags`; none writes `null` (an untagged image).
    pub tags: &'a [&'a str],
    /// The extras of Docker before 1.10, when set: `VERSION` and `json` beside each
    /// `layer.tar`, and a `repositories` file naming the top layer (the image) as this
    /// repository and tag.
    pub repositories: Option<(&'a str, &'a str)>,
}

impl<'a> DockerSave<'a> {
    /// The archive of `config` and `layers`, tagged `tags`, without legacy extras.
    pub fn new(config: &'a [u8], layers: &'a [Vec<u8>], tags: &'a [&'a str]) -> DockerSave<'a> {
        DockerSave {
            config,
            layers,
            tags,
            repositories: None,
        }
    }

    /// The archive's files.
    pub fn archive(&self) -> Archive {
        let config_hex = sha256_hex(self.config);
        let config_name = format!("{config_hex}.json");
        let mut archive = Archive::default();
        archive.add(config_name.clone(), self.config);
        let mut layer_paths = Vec::new();
        // `docker save` names layer directories by v1 ids, each derived from the one below
        // (the first from the config here): unique and reproducible.
        let mut id = config_hex;
        for layer in self.layers {
            id = sha256_hex(format!("layer-of-{id}").as_bytes());
            if self.repositories.is_some() {
                archive.add(format!("{id}/VERSION"), "1.0");
                archive.add(format!("{id}/json"), json!({"id": id}).to_string());
            }
            let path = format!("{id}/layer.tar");
            archive.add(path.clone(), layer.as_slice());
            layer_paths.push(path);
        }
        let repo_tags = if self.tags.is_empty() {
            Value::Null
        } else {
            json!(self.tags)
        };
        let manifest = json!([{
            "Config": config_name,
            "RepoTags": repo_tags,
            "Layers": layer_paths,
        }]);
        archive.add("manifest.json", manifest.to_string());
        if let Some((repository, tag)) = self.repositories {
            archive.add(
                "repositories",
                json!({ repository: { tag: id } }).to_string(),
            );
        }
        archive
    }

    /// The archive as a tar.
    pub fn tar(&self) -> io::Result<Vec<u8>> {
        self.archive().tar()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(archive: &Archive, name: &str) -> Value {
        serde_json::from_slice(archive.get(name).unwrap()).unwrap()
    }

    #[test]
    fn manifest_json_names_the_config_and_each_layer() {
        let layers = [b"one".to_vec(), b"two".to_vec()];
        let archive = DockerSave::new(b"{}", &layers, &["a:1", "b:2"]).archive();
        let manifest = json_of(&archive, "manifest.json");
        let config = manifest[0]["Config"].as_str().unwrap();
        assert_eq!(config, format!("{}.json", sha256_hex(b"{}")));
        assert_eq!(archive.get(config), Some(&b"{}"[..]));
        assert_eq!(manifest[0]["RepoTags"], json!(["a:1", "b:2"]));
        let paths = manifest[0]["Layers"].as_array().unwrap();
        assert_eq!(paths.len(), 2);
        assert_ne!(paths[0], paths[1]);
        for (path, layer) in paths.iter().zip(&layers) {
            assert_eq!(archive.get(path.as_str().unwrap()), Some(layer.as_slice()));
        }
        assert_eq!(archive.files.len(), 4, "no legacy extras");
    }

    #[test]
    fn legacy_extras_and_an_untagged_image() {
        let layers = [b"one".to_vec(), b"two".to_vec()];
        let archive = DockerSave {
            repositories: Some(("registry.test/legacy", "v1")),
            ..DockerSave::new(b"{}", &layers, &[])
        }
        .archive();
        let manifest = json_of(&archive, "manifest.json");
        assert_eq!(manifest[0]["RepoTags"], Value::Null);
        let top = manifest[0]["Layers"][1].as_str().unwrap();
        let top_id = top.strip_suffix("/layer.tar").unwrap();
        assert_eq!(
            json_of(&archive, "repositories"),
            json!({"registry.test/legacy": {"v1": top_id}})
        );
        assert_eq!(
            json_of(&archive, &format!("{top_id}/json")),
            json!({"id": top_id})
        );
        assert_eq!(archive.get(&format!("{top_id}/VERSION")), Some(&b"1.0"[..]));
    }
}
