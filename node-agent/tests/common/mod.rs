//! Shared by the agent's integration tests: a two-layer busybox image built from Debian's
//! busybox-static (`/bin/busybox`), as a `docker save` archive or an OCI image layout.
//! Layer 1: busybox with links, /etc/motd, /etc/passwd (root and user 1000), /data with a
//! file and a subdir, a user's private file, a setuid file, /tmp. Layer 2: deletes
//! /etc/motd, makes /data opaque with one new file, adds /etc/hostname.

// Each test crate uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;

use serde_json::json;
use sha2::{Digest as _, Sha256};

pub const BUSYBOX: &str = "/bin/busybox";

/// Whether a test runs, given what it found `missing` (None: nothing). Without it the test
/// skips with a message — unless SKIFF_REQUIRE_PRIVILEGED is set (CI), which turns the
/// missing prerequisite into a failure naming it.
pub fn runs_without(missing: Option<String>) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    assert!(
        std::env::var_os("SKIFF_REQUIRE_PRIVILEGED").is_none(),
        "SKIFF_REQUIRE_PRIVILEGED is set but this test needs {missing}"
    );
    eprintln!("skipped: needs {missing}");
    false
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// GOARCH of this machine, as image configs name architectures.
pub fn host_arch() -> &'static str {
    skiff_agent::image::build::host_architecture()
}

// ---------------------------------------------------------------------------------------
// Building the image.

pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(&'static str),
    Hardlink(&'static str),
}

pub struct Entry {
    pub path: &'static str,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

pub fn entry(path: &'static str, kind: Kind, mode: u32) -> Entry {
    Entry {
        path,
        kind,
        mode,
        uid: 0,
        gid: 0,
    }
}

pub fn layer_tar(entries: Vec<Entry>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(1_700_000_000);
        match e.kind {
            Kind::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                builder.append_data(&mut h, e.path, &data[..]).unwrap();
            }
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                builder.append_data(&mut h, e.path, &[][..]).unwrap();
            }
            Kind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                builder.append_link(&mut h, e.path, target).unwrap();
            }
            Kind::Hardlink(target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                builder.append_link(&mut h, e.path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// The two layers, uncompressed. Layer 1: busybox with links, /etc/motd, /data with a
/// file and a subdir, a user's private file, a setuid file. Layer 2: deletes /etc/motd,
/// makes /data opaque with one new file, adds /etc/hostname.
pub fn layers() -> [Vec<u8>; 2] {
    let busybox = fs::read(BUSYBOX).unwrap();
    let layer1 = layer_tar(vec![
        entry("bin/", Kind::Dir, 0o755),
        entry("bin/busybox", Kind::File(busybox), 0o755),
        entry("bin/sh", Kind::Symlink("busybox"), 0o777),
        entry("bin/ls", Kind::Symlink("/bin/busybox"), 0o777),
        entry("bin/busybox-hardlink", Kind::Hardlink("bin/busybox"), 0o755),
        entry("bin/suid", Kind::File(b"#!/bin/sh\n".to_vec()), 0o4755),
        entry("etc/", Kind::Dir, 0o755),
        entry("etc/motd", Kind::File(b"welcome\n".to_vec()), 0o644),
        entry(
            "etc/passwd",
            Kind::File(
                b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n".to_vec(),
            ),
            0o644,
        ),
        entry("data/", Kind::Dir, 0o755),
        entry("data/old.txt", Kind::File(b"old\n".to_vec()), 0o644),
        entry("data/sub/", Kind::Dir, 0o755),
        entry("data/sub/inner.txt", Kind::File(b"inner\n".to_vec()), 0o644),
        entry("home/", Kind::Dir, 0o755),
        Entry {
            uid: 1000,
            gid: 1000,
            ..entry("home/user/", Kind::Dir, 0o750)
        },
        Entry {
            uid: 1000,
            gid: 1000,
            ..entry("home/user/secret", Kind::File(b"s3cret\n".to_vec()), 0o600)
        },
        entry("tmp/", Kind::Dir, 0o1777),
    ]);
    let layer2 = layer_tar(vec![
        entry("etc/", Kind::Dir, 0o755),
        entry("etc/.wh.motd", Kind::File(Vec::new()), 0o644),
        entry("etc/hostname", Kind::File(b"skiff\n".to_vec()), 0o644),
        entry("data/", Kind::Dir, 0o755),
        entry("data/.wh..wh..opq", Kind::File(Vec::new()), 0o644),
        entry("data/new.txt", Kind::File(b"new\n".to_vec()), 0o644),
    ]);
    [layer1, layer2]
}

pub fn config_json(arch: &str, diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-05-01T12:00:00Z",
        "config": {
            "Entrypoint": ["/bin/busybox"],
            "Cmd": cmd,
            "Env": ["PATH=/bin", "GREETING=hello"],
            "WorkingDir": "/data",
            "ExposedPorts": {"8080/tcp": {}},
            "Volumes": null,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "layer 1"}, {"created_by": "layer 2"}],
    }))
    .unwrap()
}

pub fn diff_ids(layers: &[Vec<u8>]) -> Vec<String> {
    layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect()
}

pub fn default_config(layers: &[Vec<u8>]) -> Vec<u8> {
    config_json(
        host_arch(),
        &diff_ids(layers),
        &["httpd", "-f", "-p", "8080"],
    )
}

/// Archive members, in order; packed into a tar by [`pack`].
pub type Files = Vec<(String, Vec<u8>)>;

pub fn pack(files: &Files) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut h, name, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

pub fn set(files: &mut Files, name: &str, data: Vec<u8>) {
    match files.iter_mut().find(|(n, _)| n == name) {
        Some(f) => f.1 = data,
        None => files.push((name.to_string(), data)),
    }
}

/// A `docker save` archive (pre-25 layout): `<config hex>.json`, `<id>/layer.tar`,
/// `manifest.json`, `repositories`. `stored` are the layers as written (plain or gzip);
/// with `tags` empty, only `repositories` names the image.
pub fn docker_files(stored: &[Vec<u8>], config: &[u8], tags: &[&str]) -> Files {
    let config_name = format!("{}.json", sha256_hex(config));
    let mut files: Files = vec![(config_name.clone(), config.to_vec())];
    let mut layer_paths = Vec::new();
    let mut parent = String::new();
    for (i, layer) in stored.iter().enumerate() {
        let id = sha256_hex(format!("{parent}{i}{}", sha256_hex(layer)).as_bytes());
        files.push((format!("{id}/VERSION"), b"1.0".to_vec()));
        files.push((
            format!("{id}/json"),
            format!("{{\"id\":\"{id}\"}}").into_bytes(),
        ));
        files.push((format!("{id}/layer.tar"), layer.clone()));
        layer_paths.push(format!("{id}/layer.tar"));
        parent = id;
    }
    let repo_tags = if tags.is_empty() {
        serde_json::Value::Null
    } else {
        json!(tags)
    };
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&json!([{
            "Config": config_name,
            "RepoTags": repo_tags,
            "Layers": layer_paths,
        }]))
        .unwrap(),
    ));
    files.push((
        "repositories".into(),
        serde_json::to_vec(&json!({"registry.skiff.test:5000/legacy": {"v1": parent}})).unwrap(),
    ));
    files
}

pub struct OciBuild {
    pub files: Files,
    pub manifest_digest: String,
    pub index_digest: String,
    pub layer_digests: Vec<String>,
}

pub fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": format!("sha256:{}", sha256_hex(blob)), "size": blob.len()})
}

/// An OCI image layout: index.json → a multi-platform index → this host's manifest (and
/// one for another architecture) → config and gzip layers.
pub fn oci_files(uncompressed: &[Vec<u8>], config: &[u8], name: &str) -> OciBuild {
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut add = |blob: Vec<u8>| {
        let hex = sha256_hex(&blob);
        blobs.insert(hex.clone(), blob);
        hex
    };
    let gz: Vec<Vec<u8>> = uncompressed.iter().map(|l| gzip(l)).collect();
    let layer_digests: Vec<String> = gz
        .iter()
        .map(|l| format!("sha256:{}", add(l.clone())))
        .collect();
    add(config.to_vec());
    let manifest = |config: &[u8]| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": gz.iter().map(|l| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l)).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    let host_manifest = manifest(config);
    let other_arch = if host_arch() == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let other_config = config_json(other_arch, &diff_ids(uncompressed), &["sh"]);
    let other_manifest = manifest(&other_config);
    add(other_config.clone());
    add(host_manifest.clone());
    add(other_manifest.clone());
    let platform_descriptor = |m: &[u8], arch: &str| {
        let mut d = descriptor("application/vnd.oci.image.manifest.v1+json", m);
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        d
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [platform_descriptor(&other_manifest, other_arch), platform_descriptor(&host_manifest, host_arch())],
    }))
    .unwrap();
    add(index.clone());
    let mut top = descriptor("application/vnd.oci.image.index.v1+json", &index);
    top["annotations"] = json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap(),
    });
    let mut files: Files = vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (
            "index.json".into(),
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [top]})).unwrap(),
        ),
    ];
    for (hex, blob) in blobs {
        files.push((format!("blobs/sha256/{hex}"), blob));
    }
    OciBuild {
        files,
        manifest_digest: format!("sha256:{}", sha256_hex(&host_manifest)),
        index_digest: format!("sha256:{}", sha256_hex(&index)),
        layer_digests,
    }
}
