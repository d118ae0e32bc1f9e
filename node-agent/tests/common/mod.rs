//! Shared by the agent's integration tests: what their two-layer busybox image holds, built
//! with `skiff-image` as a `docker save` archive or an OCI image layout. Layer 1: busybox
//! with links, /etc/motd, /etc/passwd (root and user 1000), /data with a file and a subdir,
//! a user's private file, a setuid file, /tmp. Layer 2: deletes /etc/motd, makes /data
//! opaque with one new file, adds /etc/hostname.
//!
//! `busybox` is Debian's busybox-static (`/bin/busybox`) where a test runs it, and
//! [`fake_busybox`] where it only stores and unpacks it.

// Each test crate uses part of it.
#![allow(dead_code, unused_imports)]

pub use skiff_image::{Archive, Config, DockerSave, Entry, diff_ids, gzip, sha256, sha256_hex};
pub use skiff_testkit::{BUSYBOX, missing_busybox, missing_root, root_or_skip, runs_without};

/// GOARCH of this machine, as image configs name architectures.
pub fn host_arch() -> &'static str {
    skiff_image::host_architecture()
}

/// Stands in for busybox's bytes where nothing runs them: 64 KiB that start like an ELF
/// file, large enough that the middle of the first layer (and of an archive of the image)
/// falls inside it.
pub fn fake_busybox() -> Vec<u8> {
    let mut bytes = b"\x7fELF not really busybox\n".to_vec();
    bytes.extend((0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    bytes
}

/// The two layers, uncompressed, with `busybox` as /bin/busybox.
pub fn layers(busybox: &[u8]) -> [Vec<u8>; 2] {
    let user = |entry: Entry| entry.owner(1000, 1000);
    let layer1 = skiff_image::layer(&[
        Entry::dir("bin/"),
        Entry::file("bin/busybox", busybox).mode(0o755),
        Entry::symlink("bin/sh", "busybox"),
        Entry::symlink("bin/ls", "/bin/busybox"),
        Entry::hardlink("bin/busybox-hardlink", "bin/busybox").mode(0o755),
        Entry::file("bin/suid", "#!/bin/sh\n").mode(0o4755),
        Entry::dir("etc/"),
        Entry::file("etc/motd", "welcome\n"),
        Entry::file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
        ),
        Entry::dir("data/"),
        Entry::file("data/old.txt", "old\n"),
        Entry::dir("data/sub/"),
        Entry::file("data/sub/inner.txt", "inner\n"),
        Entry::dir("home/"),
        user(Entry::dir("home/user/").mode(0o750)),
        user(Entry::file("home/user/secret", "s3cret\n").mode(0o600)),
        Entry::dir("tmp/").mode(0o1777),
    ]);
    let layer2 = skiff_image::layer(&[
        Entry::dir("etc/"),
        skiff_image::whiteout("etc/motd"),
        Entry::file("etc/hostname", "skiff\n"),
        Entry::dir("data/"),
        skiff_image::opaque("data/"),
        Entry::file("data/new.txt", "new\n"),
    ]);
    [layer1.unwrap(), layer2.unwrap()]
}

/// The image config for `arch`, with these diff_ids and Cmd: Entrypoint busybox, an env,
/// a working dir, an exposed port, a history entry per layer, and a `null` the store
/// ignores.
pub fn config_json(arch: &str, diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    let mut config = Config {
        architecture: arch.to_string(),
        created: "2024-05-01T12:00:00Z".into(),
        entrypoint: vec!["/bin/busybox".into()],
        cmd: cmd.iter().map(|c| c.to_string()).collect(),
        env: vec!["PATH=/bin".into(), "GREETING=hello".into()],
        working_dir: Some("/data".into()),
        exposed_ports: vec!["8080/tcp".into()],
        history: vec!["layer 1".into(), "layer 2".into()],
        ..Config::default()
    }
    .to_value(diff_ids);
    config["config"]["Volumes"] = serde_json::Value::Null;
    serde_json::to_vec(&config).unwrap()
}

pub fn default_config(layers: &[Vec<u8>]) -> Vec<u8> {
    config_json(
        host_arch(),
        &diff_ids(layers),
        &["httpd", "-f", "-p", "8080"],
    )
}

/// A `docker save` archive (pre-25 layout) with the legacy extras: `<config hex>.json`,
/// `<id>/{VERSION,json,layer.tar}`, `manifest.json`, `repositories`. `stored` are the
/// layers as written (plain or gzip); with `tags` empty, only `repositories` names the
/// image (`registry.skiff.test:5000/legacy:v1`).
pub fn docker_files(stored: &[Vec<u8>], config: &[u8], tags: &[&str]) -> Archive {
    DockerSave {
        repositories: Some(("registry.skiff.test:5000/legacy", "v1")),
        ..DockerSave::new(config, stored, tags)
    }
    .archive()
}

/// `archive` as a tar.
pub fn pack(archive: &Archive) -> Vec<u8> {
    archive.tar().unwrap()
}

pub struct OciBuild {
    pub files: Archive,
    pub manifest_digest: String,
    pub index_digest: String,
    pub layer_digests: Vec<String>,
}

/// An OCI image layout named `name`: index.json → a multi-platform index → this host's
/// manifest (and one for another architecture) → config and gzip layers.
pub fn oci_files(uncompressed: &[Vec<u8>], config: &[u8], name: &str) -> OciBuild {
    use skiff_image::oci::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
    use skiff_image::{OciLayout, OciManifest};
    let gz: Vec<Vec<u8>> = uncompressed.iter().map(|l| gzip(l)).collect();
    let host = OciManifest::new(config.to_vec(), gz.clone());
    let other_arch = if host_arch() == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let other_config = config_json(other_arch, &diff_ids(uncompressed), &["sh"]);
    let layout = OciLayout {
        manifests: vec![
            (other_arch.into(), OciManifest::new(other_config, gz)),
            (host_arch().into(), host.clone()),
        ],
        nested_index: true,
        annotations: vec![
            (ANNOTATION_CONTAINERD_NAME.into(), name.into()),
            (
                ANNOTATION_REF_NAME.into(),
                name.rsplit(':').next().unwrap().into(),
            ),
        ],
    };
    OciBuild {
        files: layout.archive(),
        manifest_digest: host.digest(),
        index_digest: layout.index_digest().unwrap(),
        layer_digests: host.layer_digests(),
    }
}
