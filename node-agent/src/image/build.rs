//! Builds small images from files of this host, as `docker save` archives the store imports:
//! how `skiff up` gets a busybox image onto its nodes from Debian's busybox-static, with no
//! registry and no Docker. One layer, root-owned, fixed mtimes: the same input gives the same
//! image id every time.

use serde_json::json;

use super::Digest;

/// What goes into the one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// The image config's runtime part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
}

/// Fixed so that rebuilding gives the same digests.
const MTIME: u64 = 1_700_000_000;

/// GOARCH of this machine, as image configs name architectures.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &str,
    mode: u32,
    data: &[u8],
    link: Option<&str>,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header.set_size(data.len() as u64);
    if let Some(link) = link {
        header.set_link_name(link)?;
    }
    builder.append_data(&mut header, path, data)
}

fn append_entry(builder: &mut tar::Builder<Vec<u8>>, entry: &Entry) -> std::io::Result<()> {
    match entry {
        Entry::Dir { path } => append(builder, tar::EntryType::Directory, path, 0o755, &[], None),
        Entry::File { path, mode, data } => {
            append(builder, tar::EntryType::Regular, path, *mode, data, None)
        }
        Entry::Symlink { path, target } => append(
            builder,
            tar::EntryType::Symlink,
            path,
            0o777,
            &[],
            Some(target),
        ),
    }
}

/// A tar of `entries`, in order.
pub fn tar(entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        append_entry(&mut builder, entry)?;
    }
    builder.into_inner()
}

/// A `docker save` archive of one image named `tag`, made of one layer of `entries`.
pub fn docker_archive(entries: &[Entry], config: &Config, tag: &str) -> std::io::Result<Vec<u8>> {
    let layer = tar(entries)?;
    let config = serde_json::to_vec(&json!({
        "architecture": host_architecture(),
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "Entrypoint": (!config.entrypoint.is_empty()).then_some(&config.entrypoint),
            "Cmd": (!config.cmd.is_empty()).then_some(&config.cmd),
            "Env": config.env,
        },
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]},
    }))
    .map_err(std::io::Error::other)?;
    docker_save(&config, &layer, tag)
}

/// A `docker save` archive (the pre-25 layout: `<config hex>.json`, `<id>/layer.tar`,
/// `manifest.json`) of the image with config `config` (JSON) and the one uncompressed
/// layer `layer`, named `tag`.
pub fn docker_save(config: &[u8], layer: &[u8], tag: &str) -> std::io::Result<Vec<u8>> {
    let config_hex = Digest::of(config).hex().to_string();
    // `docker save` names layer directories by a v1 id; any unique name does.
    let layer_dir = Digest::of(format!("layer-of-{config_hex}").as_bytes())
        .hex()
        .to_string();
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": [format!("{layer_dir}/layer.tar")],
    }]))
    .map_err(std::io::Error::other)?;
    let file = |path: String, data: Vec<u8>| Entry::File {
        path,
        mode: 0o644,
        data,
    };
    tar(&[
        file(format!("{config_hex}.json"), config.to_vec()),
        Entry::Dir {
            path: format!("{layer_dir}/"),
        },
        file(format!("{layer_dir}/layer.tar"), layer.to_vec()),
        file("manifest.json".into(), manifest),
    ])
}

/// Applets the busybox image links in `/bin` (what a shell, a web server and debugging
/// need; `busybox <applet>` reaches the rest).
pub const BUSYBOX_APPLETS: &[&str] = &[
    "cat", "cp", "date", "df", "echo", "env", "false", "grep", "head", "hostname", "httpd", "id",
    "ip", "kill", "ls", "mkdir", "mv", "nc", "ping", "ps", "pwd", "rm", "sed", "sh", "sleep",
    "tail", "tee", "top", "touch", "tr", "true", "uname", "wc", "wget",
];

/// A busybox image like Docker Hub's: `/bin/busybox` (the bytes of a static busybox),
/// `/bin/<applet>` links to it, `/tmp`, Cmd `sh`.
pub fn busybox_archive(busybox: &[u8], tag: &str) -> std::io::Result<Vec<u8>> {
    let mut entries = vec![
        Entry::Dir {
            path: "bin/".into(),
        },
        Entry::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            data: busybox.to_vec(),
        },
        Entry::Dir {
            path: "tmp/".into(),
        },
    ];
    entries.extend(BUSYBOX_APPLETS.iter().map(|applet| Entry::Symlink {
        path: format!("bin/{applet}"),
        target: "busybox".into(),
    }));
    let config = Config {
        entrypoint: Vec::new(),
        cmd: vec!["sh".into()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
    };
    docker_archive(&entries, &config, tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_archive_imports_with_links_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::image::ImageStore::open(dir.path().join("images")).unwrap();
        let fake_busybox = b"\x7fELF not really".to_vec();
        let archive = busybox_archive(&fake_busybox, "busybox:skiff").unwrap();
        assert_eq!(
            archive,
            busybox_archive(&fake_busybox, "busybox:skiff").unwrap(),
            "reproducible"
        );
        let path = dir.path().join("busybox.tar");
        std::fs::write(&path, &archive).unwrap();
        let imported = store.import(&path).unwrap();
        let image = &imported.images[0].image;
        assert_eq!(
            image.references[0].to_string(),
            "docker.io/library/busybox:skiff"
        );
        let config = store.image_config(image).unwrap();
        assert_eq!(config.cmd, vec!["sh"]);
        assert!(config.entrypoint.is_empty());
        let layer = &store.lowerdirs(image).unwrap()[0];
        assert_eq!(
            std::fs::read(layer.join("bin/busybox")).unwrap(),
            fake_busybox
        );
        assert_eq!(
            std::fs::read_link(layer.join("bin/httpd")).unwrap(),
            std::path::Path::new("busybox")
        );
        assert!(layer.join("tmp").is_dir());
    }
}
