//! The busybox image `skiff up` imports into its nodes, from Debian's busybox-static: no
//! registry and no Docker needed.

use std::io;

use crate::{Config, DockerSave, Entry, OciManifest, diff_ids, gzip, layer};

/// Applets the busybox image links in `/bin` (what a shell, a web server and debugging
/// need; `busybox <applet>` reaches the rest).
pub const BUSYBOX_APPLETS: &[&str] = &[
    "cat", "cp", "date", "df", "echo", "env", "false", "grep", "head", "hostname", "httpd", "id",
    "ip", "kill", "ls", "mkdir", "mv", "nc", "ping", "ps", "pwd", "rm", "sed", "sh", "sleep",
    "tail", "tee", "top", "touch", "tr", "true", "uname", "wc", "wget",
];

/// A `docker save` archive of a busybox image like Docker Hub's, named `tag`: one layer of
/// `/bin/busybox` (the bytes of a static busybox), `/bin/<applet>` links to it for each of
/// [`BUSYBOX_APPLETS`], `/tmp`; Cmd `sh`. The same bytes give the same archive.
pub fn busybox_archive(busybox: &[u8], tag: &str) -> io::Result<Vec<u8>> {
    let (config, layer) = busybox_image(busybox)?;
    DockerSave::new(&config, std::slice::from_ref(&layer), &[tag]).tar()
}

/// [`busybox_archive`]'s image as a registry push takes it, its layer gzipped (`skiff up`
/// pushes it into its cluster's registry as `busybox:latest`).
pub fn busybox_manifest(busybox: &[u8]) -> io::Result<OciManifest> {
    let (config, layer) = busybox_image(busybox)?;
    Ok(OciManifest::new(config, vec![gzip(&layer)]))
}

/// The config and the (uncompressed) layer of [`busybox_archive`]'s image.
pub fn busybox_image(busybox: &[u8]) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut entries = vec![
        Entry::dir("bin/"),
        Entry::file("bin/busybox", busybox).mode(0o755),
        Entry::dir("tmp/"),
    ];
    entries.extend(
        BUSYBOX_APPLETS
            .iter()
            .map(|applet| Entry::symlink(format!("bin/{applet}"), "busybox")),
    );
    let layer = layer(&entries)?;
    let config = Config {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        ..Config::default()
    }
    .to_json(&diff_ids(std::slice::from_ref(&layer)));
    Ok((config, layer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256;

    #[test]
    fn the_busybox_archive_is_reproducible_and_complete() {
        let archive = busybox_archive(b"\x7fELF not really", "busybox:skiff").unwrap();
        assert_eq!(
            archive,
            busybox_archive(b"\x7fELF not really", "busybox:skiff").unwrap()
        );
        // The archive `skiff up` made before this crate existed (skiff-agent's builder):
        // the same bytes, so the same image id on nodes that imported it then.
        if crate::host_architecture() == "amd64" {
            assert_eq!(sha256(&archive), PINNED_AMD64);
        }
        let members = crate::untar(&archive);
        assert_eq!(members.len(), 4, "config, layer dir, layer, manifest");
        let (_, layer) = members
            .iter()
            .find(|(name, _)| name.ends_with("/layer.tar"))
            .unwrap();
        let files: Vec<String> = crate::untar(layer).into_iter().map(|(n, _)| n).collect();
        assert_eq!(files[..3], ["bin/", "bin/busybox", "tmp/"]);
        assert_eq!(files.len(), 3 + BUSYBOX_APPLETS.len());
        assert!(files.contains(&"bin/httpd".to_string()));
    }

    /// What skiff-agent's builder, which this crate replaced, made of these bytes on amd64.
    const PINNED_AMD64: &str =
        "sha256:31726a580b1c2f163911cc09a973c936b476cd610288add5100c8c947198e4b7";
}
