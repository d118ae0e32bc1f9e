//! Image archives for the end-to-end image tests: a one-layer busybox image (Debian's
//! busybox-static as `/bin/busybox`) as a `docker save` archive, built with a small ustar
//! writer. The node agent's own tests have a fuller builder (two layers, whiteouts, OCI
//! layouts) in `node-agent/tests/common/mod.rs`, which other crates' tests cannot import;
//! this one covers only what `tests/tests/images.rs` needs.

use serde_json::json;
use skiff_agent::image::Digest;

/// GOARCH of this machine, as image configs name architectures.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Digest::of(bytes).to_string()
}

/// One member of a tar: a regular file, or a directory (name ending in `/`, no data).
pub struct Member {
    pub name: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

impl Member {
    pub fn file(name: impl Into<String>, mode: u32, data: Vec<u8>) -> Member {
        Member {
            name: name.into(),
            mode,
            data,
        }
    }

    pub fn dir(name: impl Into<String>) -> Member {
        Member {
            name: name.into(),
            mode: 0o755,
            data: Vec::new(),
        }
    }
}

fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}", width = field.len() - 1);
    field[..text.len()].copy_from_slice(text.as_bytes());
}

/// A ustar archive of `members` (names under 100 bytes), owned by root, mtime fixed.
pub fn tar(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for member in members {
        assert!(
            member.name.len() < 100,
            "tar name too long: {}",
            member.name
        );
        let mut header = [0u8; 512];
        header[..member.name.len()].copy_from_slice(member.name.as_bytes());
        octal(&mut header[100..108], u64::from(member.mode));
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], member.data.len() as u64);
        octal(&mut header[136..148], 1_700_000_000);
        header[156] = if member.name.ends_with('/') {
            b'5'
        } else {
            b'0'
        };
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].fill(b' ');
        let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
        let text = format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(text.as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&member.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// A `docker save` archive of one image tagged `tag`: one layer holding `busybox` (the
/// binary's bytes) as `/bin/busybox`, Entrypoint `/bin/busybox`, Cmd `sh`.
pub fn busybox_docker_archive(busybox: &[u8], tag: &str) -> Vec<u8> {
    let layer = tar(&[
        Member::dir("bin/"),
        Member::file("bin/busybox", 0o755, busybox.to_vec()),
    ]);
    let config = serde_json::to_vec(&json!({
        "architecture": host_architecture(),
        "os": "linux",
        "created": "2024-05-01T12:00:00Z",
        "config": {"Entrypoint": ["/bin/busybox"], "Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
    }))
    .expect("config json");
    let hex = |digest: String| digest["sha256:".len()..].to_string();
    let config_hex = hex(sha256(&config));
    let layer_id = hex(sha256(format!("layer-of-{config_hex}").as_bytes()));
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": [format!("{layer_id}/layer.tar")],
    }]))
    .expect("manifest json");
    tar(&[
        Member::file(format!("{config_hex}.json"), 0o644, config),
        Member::dir(format!("{layer_id}/")),
        Member::file(format!("{layer_id}/layer.tar"), 0o644, layer),
        Member::file("manifest.json", 0o644, manifest),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_1_tar_layout() {
        let archive = tar(&[Member::file("a.txt", 0o644, b"hello".to_vec())]);
        // One header, one data block, two end blocks.
        assert_eq!(archive.len(), 4 * 512);
        assert_eq!(&archive[..5], b"a.txt");
        assert_eq!(&archive[512..517], b"hello");
        let sum: u64 = archive[..512]
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        let stored = std::str::from_utf8(&archive[148..154]).unwrap();
        assert_eq!(u64::from_str_radix(stored, 8).unwrap(), sum);
    }
}
