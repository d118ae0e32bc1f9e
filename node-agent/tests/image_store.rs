//! The image store on real archives: a two-layer busybox image (see `common`), as a
//! `docker save` archive (plain and gzip layers) and as an OCI image-layout tarball. The
//! second layer deletes a file of the first (whiteout) and makes a directory opaque.
//! Imports, listing, unpacked layers, an overlayfs mount of them, refused corrupt archives
//! (with the store unchanged), removal and GC.
//!
//! The layers hold synthetic bytes as busybox, so these tests need nothing of the host,
//! except the overlay mount (root, and Debian's busybox-static at /bin/busybox, which it
//! runs) and the checks of ownership, whiteout devices and the opaque xattr (root): those
//! are skipped without it, unless SKIFF_REQUIRE_PRIVILEGED is set, when that fails.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::json;
use skiff_agent::image::{Image, ImageError, ImageStore};

mod common;
use common::*;

const PLAIN: &str = "registry.skiff.test:5000/busybox:plain";
const GZIP: &str = "registry.skiff.test:5000/busybox:gzip";
const OCI: &str = "registry.skiff.test:5000/busybox:oci";

// ---------------------------------------------------------------------------------------
// Fixture.

struct Fixture {
    dir: tempfile::TempDir,
    store: ImageStore,
    layers: [Vec<u8>; 2],
}

impl Fixture {
    /// A store and the image with [`fake_busybox`] as busybox.
    fn new() -> Fixture {
        Fixture::with_busybox(&fake_busybox())
    }

    fn with_busybox(busybox: &[u8]) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("skiff-test-images-")
            .tempdir()
            .unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        Fixture {
            dir,
            store,
            layers: layers(busybox),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    fn docker(&self, gzip_layers: bool, tags: &[&str]) -> Archive {
        let stored: Vec<Vec<u8>> = if gzip_layers {
            self.layers.iter().map(|l| gzip(l)).collect()
        } else {
            self.layers.to_vec()
        };
        docker_files(&stored, &default_config(&self.layers), tags)
    }

    fn oci(&self) -> OciBuild {
        oci_files(&self.layers, &default_config(&self.layers), OCI)
    }

    fn import(&self, name: &str, files: &Archive) -> skiff_agent::image::Imported {
        let path = self.write(name, &pack(files));
        self.store.import(&path).unwrap()
    }

    /// Every path under the store with its type and content digest: what "unchanged" means.
    fn listing(&self) -> BTreeMap<String, String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let md = fs::symlink_metadata(&path).unwrap();
                let t = md.file_type();
                let desc = if t.is_dir() {
                    walk(root, &path, out);
                    format!("dir {:o}", md.mode())
                } else if t.is_symlink() {
                    format!("symlink {}", fs::read_link(&path).unwrap().display())
                } else if t.is_file() {
                    format!(
                        "file {:o} {}",
                        md.mode(),
                        sha256_hex(&fs::read(&path).unwrap())
                    )
                } else {
                    format!("special {:o} {}", md.mode(), md.rdev())
                };
                out.insert(rel, desc);
            }
        }
        let mut out = BTreeMap::new();
        walk(self.store.root(), self.store.root(), &mut out);
        out
    }

    fn count(&self, sub: &str) -> usize {
        fs::read_dir(self.store.root().join(sub)).unwrap().count()
    }

    /// Imports `files` expecting a refusal whose message contains every one of `want`;
    /// the store must be exactly as before.
    fn refused(&self, name: &str, bytes: &[u8], want: &[&str]) -> ImageError {
        let before = self.listing();
        let path = self.write(name, bytes);
        let err = self.store.import(&path).unwrap_err();
        let msg = err.to_string();
        for w in want {
            assert!(msg.contains(w), "{name}: want {w:?} in: {msg}");
        }
        assert_eq!(self.listing(), before, "{name}: the store changed");
        err
    }
}

fn refs(image: &Image) -> Vec<String> {
    image.references.iter().map(|r| r.to_string()).collect()
}

/// Flips a bit of the middle byte of the first file of `files` whose name `matches`;
/// returns that name.
fn flip_middle_byte(files: &mut Archive, matches: impl Fn(&str) -> bool) -> String {
    let name = files.find(matches).unwrap();
    let data = files.get_mut(&name).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0x01;
    name
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn imports_docker_archives_with_plain_and_gzip_layers() {
    let f = Fixture::new();
    // No other host user may walk into layers holding images' setuid files.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f.store.root())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let plain = f.import("plain.tar", &f.docker(false, &[PLAIN]));
    let gzipped = f.import("gzip.tar", &f.docker(true, &[GZIP, "busybox:skiff-test"]));
    assert_eq!(plain.images.len(), 1);
    let p = &plain.images[0];
    assert!(p.new);
    assert_eq!(refs(&p.image), vec![PLAIN]);
    let g = &gzipped.images[0].image;
    assert_eq!(
        refs(g),
        vec!["docker.io/library/busybox:skiff-test", GZIP],
        "names sorted in the index"
    );
    // One config, so one image id; the layer blobs differ, so the manifests differ.
    let config = default_config(&f.layers);
    assert_eq!(
        p.image.id.to_string(),
        format!("sha256:{}", sha256_hex(&config))
    );
    assert_eq!(g.id, p.image.id);
    assert_ne!(g.digest, p.image.digest);
    let want_diff_ids = diff_ids(&f.layers);
    for image in [&p.image, g] {
        let got: Vec<String> = image.layers.iter().map(|l| l.diff_id.to_string()).collect();
        assert_eq!(got, want_diff_ids);
        assert_eq!(
            image.unpacked_size,
            f.layers.iter().map(|l| l.len() as u64).sum::<u64>()
        );
        assert_eq!(
            image.created.unwrap().to_rfc3339(),
            "2024-05-01T12:00:00+00:00"
        );
        assert_eq!(
            (image.os.as_str(), image.architecture.as_str()),
            ("linux", host_arch())
        );
    }
    assert_eq!(p.image.layers[0].size, f.layers[0].len() as u64);
    assert!(g.layers[0].size < p.image.layers[0].size, "gzip is smaller");
    assert!(g.layers[0].media_type.ends_with("tar+gzip"));
    assert!(p.image.layers[0].media_type.ends_with("layer.v1.tar"));

    // Listed, found by reference, id, short id and digest.
    let list = f.store.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        f.store
            .get("registry.skiff.test:5000/busybox:plain")
            .unwrap()
            .digest,
        p.image.digest
    );
    assert_eq!(f.store.get("busybox:skiff-test").unwrap().digest, g.digest);
    assert_eq!(f.store.get(&g.digest.to_string()).unwrap().digest, g.digest);
    let err = f.store.get(p.image.id.short()).unwrap_err();
    assert!(
        matches!(err, ImageError::Ambiguous(_)),
        "one id, two images: {err}"
    );
    assert!(matches!(
        f.store.get("busybox:nope"),
        Err(ImageError::NotFound(_))
    ));

    // Blobs: one config, two manifests, four layer blobs; layers unpacked once each.
    assert_eq!(f.count("blobs/sha256"), 7);
    assert_eq!(f.count("layers"), 2);
    assert_eq!(f.count("tmp"), 0);
    let lower = f.store.lowerdirs(g).unwrap();
    assert_eq!(lower, f.store.lowerdirs(&p.image).unwrap());
    assert_eq!(
        lower,
        vec![
            f.store.layer_path(&g.layers[1].diff_id),
            f.store.layer_path(&g.layers[0].diff_id)
        ],
        "top layer first"
    );

    // The config's runtime defaults.
    let c = f.store.image_config(g).unwrap();
    assert_eq!(c.entrypoint, vec!["/bin/busybox"]);
    assert_eq!(c.cmd, vec!["httpd", "-f", "-p", "8080"]);
    assert_eq!(c.env[1], ("GREETING".to_string(), "hello".to_string()));
    assert_eq!(c.working_dir.as_deref(), Some("/data"));
    assert_eq!(c.exposed_ports[0].port, 8080);

    // Without RepoTags, the legacy `repositories` file names the image.
    let legacy = f.import("legacy.tar", &f.docker(false, &[]));
    assert_eq!(
        legacy.images[0]
            .names
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        vec!["registry.skiff.test:5000/legacy:v1"]
    );
    // A whole archive gzip'ed (docker save | gzip) imports too.
    let path = f.write("whole.tar.gz", &gzip(&pack(&f.docker(true, &["whole:1"]))));
    let whole = f.store.import(&path).unwrap();
    assert_eq!(
        whole.images[0].image.digest, g.digest,
        "same blobs, same manifest"
    );
    assert!(!whole.images[0].new);
}

#[test]
fn imports_an_oci_layout_choosing_this_platform() {
    let f = Fixture::new();
    let build = f.oci();
    let imported = f.import("oci.tar", &build.files);
    assert_eq!(imported.images.len(), 1);
    let image = &imported.images[0].image;
    assert_eq!(refs(image), vec![OCI]);
    assert_eq!(image.digest.to_string(), build.manifest_digest);
    assert_eq!(
        image.index_digest.as_ref().unwrap().to_string(),
        build.index_digest
    );
    let blobs: Vec<String> = image.layers.iter().map(|l| l.digest.to_string()).collect();
    assert_eq!(blobs, build.layer_digests);
    assert_eq!(image.architecture, host_arch());
    // Found by the index digest too (what a registry calls the image's digest).
    let by_index = f
        .store
        .get(&format!(
            "registry.skiff.test:5000/busybox@{}",
            build.index_digest
        ))
        .unwrap();
    assert_eq!(by_index.digest, image.digest);
    assert_eq!(
        f.store.get(&image.id.hex()[..8]).unwrap().digest,
        image.digest
    );
    // Only this platform's manifest and config are stored, with the layers.
    assert_eq!(f.count("blobs/sha256"), 4);
    assert_eq!(f.count("layers"), 2);

    // An index without this platform is refused, naming what it has.
    let mut files = build.files.clone();
    let mut other: serde_json::Value =
        serde_json::from_slice(files.get("index.json").unwrap()).unwrap();
    other["manifests"][0]["platform"] = json!({"os": "linux", "architecture": "mips64"});
    files.set("index.json", serde_json::to_vec(&other).unwrap());
    f.refused(
        "oci-other-platform.tar",
        &pack(&files),
        &["no image for linux/", "linux/mips64"],
    );
}

#[test]
fn unpacked_layers_keep_files_links_modes_and_markers() {
    let f = Fixture::new();
    let image = f
        .import("plain.tar", &f.docker(false, &[PLAIN]))
        .images
        .remove(0)
        .image;
    let lower = f.store.lowerdirs(&image).unwrap();
    let (l2, l1) = (&lower[0], &lower[1]);

    let busybox = fs::symlink_metadata(l1.join("bin/busybox")).unwrap();
    assert_eq!(busybox.mode() & 0o7777, 0o755);
    assert_eq!(busybox.len(), fake_busybox().len() as u64);
    assert_eq!(busybox.mtime(), 1_700_000_000);
    let hard = fs::symlink_metadata(l1.join("bin/busybox-hardlink")).unwrap();
    assert_eq!(hard.ino(), busybox.ino(), "hardlink within the layer");
    assert_eq!(
        fs::read_link(l1.join("bin/sh")).unwrap(),
        PathBuf::from("busybox")
    );
    assert_eq!(
        fs::read_link(l1.join("bin/ls")).unwrap(),
        PathBuf::from("/bin/busybox")
    );
    assert_eq!(
        fs::symlink_metadata(l1.join("bin/suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::symlink_metadata(l1.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::symlink_metadata(l1.join("home/user")).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(fs::read(l1.join("etc/motd")).unwrap(), b"welcome\n");
    assert_eq!(fs::read(l2.join("data/new.txt")).unwrap(), b"new\n");
    assert!(
        !l2.join("etc/.wh.motd").exists(),
        "no whiteout files left as such"
    );
    assert!(!l2.join("data/.wh..wh..opq").exists());

    if root_or_skip("ownership, whiteout devices and the opaque xattr") {
        let secret = fs::symlink_metadata(l1.join("home/user/secret")).unwrap();
        assert_eq!(
            (secret.uid(), secret.gid(), secret.mode() & 0o777),
            (1000, 1000, 0o600)
        );
        assert_eq!(
            fs::symlink_metadata(l1.join("home/user")).unwrap().uid(),
            1000
        );
        assert_eq!(busybox.uid(), 0);
        let whiteout = fs::symlink_metadata(l2.join("etc/motd")).unwrap();
        assert!(
            whiteout.file_type().is_char_device(),
            "whiteout is a char device"
        );
        assert_eq!(whiteout.rdev(), 0, "device 0:0");
        assert_eq!(
            xattr::get(l2.join("data"), "trusted.overlay.opaque")
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(
            xattr::get(l1.join("data"), "trusted.overlay.opaque").unwrap(),
            None
        );
    }

    // A layer dir that went missing is unpacked again from its blob.
    skiff_agent::image::unpack::remove_tree(l2).unwrap();
    assert_eq!(f.store.lowerdirs(&image).unwrap(), lower);
    assert_eq!(fs::read(l2.join("data/new.txt")).unwrap(), b"new\n");
}

/// Mounts on drop are undone, also when an assertion fails.
struct Mounted(Vec<PathBuf>);

impl Drop for Mounted {
    fn drop(&mut self) {
        for path in self.0.iter().rev() {
            let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn overlayfs_shows_the_merged_view() {
    if !skiff_testkit::root_and_busybox_or_skip("an overlayfs mount") {
        return;
    }
    use nix::mount::{MsFlags, mount};
    // Real busybox: it runs from the merged view.
    let f = Fixture::with_busybox(&fs::read(BUSYBOX).unwrap());
    let image = f.import("oci.tar", &f.oci().files).images.remove(0).image;
    let lower = f.store.lowerdirs(&image).unwrap();
    let rw = f.dir.path().join("rw");
    let merged = f.dir.path().join("merged");
    fs::create_dir_all(&rw).unwrap();
    fs::create_dir_all(&merged).unwrap();
    let mut mounts = Mounted(Vec::new());
    mount(
        Some("tmpfs"),
        &rw,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=16m"),
    )
    .unwrap();
    mounts.0.push(rw.clone());
    fs::create_dir(rw.join("upper")).unwrap();
    fs::create_dir(rw.join("work")).unwrap();
    let lowerdir: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        rw.join("upper").display(),
        rw.join("work").display()
    );
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .unwrap();
    mounts.0.push(merged.clone());

    // The whiteout hides the lower layer's file; the opaque dir hides all it had.
    assert!(
        !merged.join("etc/motd").exists(),
        "deleted by the upper layer"
    );
    assert_eq!(fs::read(merged.join("etc/hostname")).unwrap(), b"skiff\n");
    assert!(merged.join("etc/passwd").exists());
    let mut data: Vec<String> = fs::read_dir(merged.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    data.sort();
    assert_eq!(
        data,
        vec!["new.txt"],
        "opaque dir shows only the upper layer"
    );
    let secret = fs::metadata(merged.join("home/user/secret")).unwrap();
    assert_eq!((secret.uid(), secret.mode() & 0o777), (1000, 0o600));

    // busybox is there and runs (statically linked: no chroot needed).
    let elf = fs::read(merged.join("bin/busybox")).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf, fs::read(BUSYBOX).unwrap());
    let out = std::process::Command::new(merged.join("bin/busybox"))
        .args(["echo", "hello from the image"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello from the image\n");

    // Writes go to the upper dir; the layers stay as they were.
    fs::write(merged.join("data/written"), b"x").unwrap();
    fs::remove_file(merged.join("etc/passwd")).unwrap();
    assert!(rw.join("upper/data/written").exists());
    assert!(lower[1].join("etc/passwd").exists());
    drop(mounts);
    assert!(!merged.join("etc").exists(), "unmounted");
}

#[test]
fn importing_twice_is_idempotent() {
    let f = Fixture::new();
    let docker = f.docker(true, &[GZIP]);
    let oci = f.oci();
    let first = f.import("a.tar", &docker);
    f.import("b.tar", &oci.files);
    let before = f.listing();
    let again = f.import("a2.tar", &docker);
    let oci_again = f.import("b2.tar", &oci.files);
    assert_eq!(f.listing(), before, "nothing changed in the store");
    assert!(!again.images[0].new && !oci_again.images[0].new);
    assert_eq!(again.images[0].image, first.images[0].image);
    // Reopening finds the same store and leaves it alone.
    let reopened = ImageStore::open(f.store.root()).unwrap();
    assert_eq!(reopened.list().unwrap(), f.store.list().unwrap());
    assert_eq!(f.listing(), before);
}

#[test]
fn a_flipped_byte_in_a_layer_is_refused() {
    let f = Fixture::new();
    f.import("good.tar", &f.docker(false, &[PLAIN]));

    // docker save, plain layer: the byte is in busybox's content, so the tar is still
    // well formed and only the diff_id tells.
    let mut files = f.docker(false, &["flipped:1"]);
    let name = flip_middle_byte(&mut files, |n| n.ends_with("layer.tar"));
    let want_expected = diff_ids(&f.layers)[0].clone();
    let err = f.refused(
        "flipped-docker.tar",
        &pack(&files),
        &["diff_id mismatch for layer 0", &name, &want_expected],
    );
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }));

    // docker save, gzip layer: gzip's own check fails first, naming the layer.
    let mut files = f.docker(true, &["flipped:2"]);
    let name = flip_middle_byte(&mut files, |n| n.ends_with("layer.tar"));
    f.refused("flipped-gzip.tar", &pack(&files), &[&name]);

    // OCI: the blob no longer matches its name and descriptor.
    let build = f.oci();
    let mut files = build.files.clone();
    let blob = format!(
        "blobs/sha256/{}",
        &build.layer_digests[0]["sha256:".len()..]
    );
    flip_middle_byte(&mut files, |n| n == blob);
    let err = f.refused(
        "flipped-oci.tar",
        &pack(&files),
        &[
            "digest mismatch for",
            &blob,
            &format!("expected {}", build.layer_digests[0]),
        ],
    );
    assert!(matches!(err, ImageError::DigestMismatch { .. }));
}

#[test]
fn a_truncated_archive_is_refused() {
    let f = Fixture::new();
    f.import("good.tar", &f.oci().files);
    let docker = pack(&f.docker(false, &["truncated:1"]));
    // Cut inside busybox's bytes: the member is short.
    f.refused("half.tar", &docker[..docker.len() / 2], &["truncated"]);
    // Cut at a member boundary (tar sees a clean end): the manifest is missing.
    let oci = pack(&f.oci().files);
    f.refused("boundary.tar", &oci[..1024], &["invalid image archive"]);
    // A truncated gzip stream.
    let gz = gzip(&docker);
    f.refused(
        "half.tar.gz",
        &gz[..gz.len() / 2],
        &["invalid image archive"],
    );
    // Not an archive at all.
    f.refused("empty.tar", b"", &["neither an OCI image layout"]);
    f.refused("garbage.tar", &[0x42; 4096], &["invalid image archive"]);
}

#[test]
fn a_manifest_naming_a_missing_blob_is_refused() {
    let f = Fixture::new();
    f.import("good.tar", &f.docker(true, &[GZIP]));
    let build = f.oci();
    let missing = build.layer_digests[1].clone();
    let mut files = build.files.clone();
    files
        .remove(&format!("blobs/sha256/{}", &missing["sha256:".len()..]))
        .unwrap();
    let err = f.refused(
        "missing-oci.tar",
        &pack(&files),
        &[
            "layer 1",
            &format!("names {missing}, which is not in the archive"),
        ],
    );
    assert!(matches!(err, ImageError::MissingBlob { .. }));

    // docker save: manifest.json names a layer.tar that is not there.
    let mut files = f.docker(false, &["missing:1"]);
    let gone = files.find(|n| n.ends_with("layer.tar")).unwrap();
    files.remove(&gone);
    f.refused(
        "missing-docker.tar",
        &pack(&files),
        &[
            "manifest.json[0]",
            &format!("names {gone}, which is not in the archive"),
        ],
    );

    // A descriptor with the wrong size.
    let mut files = build.files.clone();
    let mut wrong: serde_json::Value =
        serde_json::from_slice(files.get("index.json").unwrap()).unwrap();
    wrong["manifests"][0]["size"] = json!(1);
    files.set("index.json", serde_json::to_vec(&wrong).unwrap());
    f.refused(
        "wrong-size.tar",
        &pack(&files),
        &["size mismatch", "expected 1 bytes"],
    );
}

#[test]
fn a_wrong_diff_id_is_refused() {
    let f = Fixture::new();
    f.import("good.tar", &f.docker(false, &[PLAIN]));
    // The config claims layer 2's diff_id is something else; every digest that names
    // the config is consistent, so only decompressing tells.
    let mut ids = diff_ids(&f.layers);
    let bogus = format!("sha256:{}", sha256_hex(b"not the layer"));
    ids[1] = bogus.clone();
    let config = config_json(host_arch(), &ids, &["sh"]);
    let real = diff_ids(&f.layers)[1].clone();
    let files = docker_files(
        &f.layers.iter().map(|l| gzip(l)).collect::<Vec<_>>(),
        &config,
        &["bad:1"],
    );
    let err = f.refused(
        "bad-diff-id-docker.tar",
        &pack(&files),
        &[
            "diff_id mismatch for layer 1",
            &format!("the config says {bogus}"),
            &format!("is {real}"),
        ],
    );
    assert!(matches!(err, ImageError::DiffIdMismatch { index: 1, .. }));
    let build = oci_files(&f.layers, &config, "registry.skiff.test:5000/bad:1");
    f.refused(
        "bad-diff-id-oci.tar",
        &pack(&build.files),
        &["diff_id mismatch for layer 1", &bogus],
    );
    // Fewer diff_ids than layers.
    let config = config_json(host_arch(), &diff_ids(&f.layers)[..1], &["sh"]);
    let files = docker_files(&f.layers, &config, &["bad:2"]);
    f.refused(
        "few-diff-ids.tar",
        &pack(&files),
        &["lists 1 diff_ids for 2 layers"],
    );
    // The config's name says another digest than its content.
    let mut files = f.docker(false, &["bad:3"]);
    let config = files
        .find(|n| n.ends_with(".json") && n.len() == 69)
        .unwrap();
    files.get_mut(&config).unwrap().push(b' ');
    f.refused(
        "renamed-config.tar",
        &pack(&files),
        &["digest mismatch for", ".json"],
    );
}

#[test]
fn remove_untags_and_collects_garbage() {
    let f = Fixture::new();
    let plain = f
        .import("plain.tar", &f.docker(false, &[PLAIN]))
        .images
        .remove(0)
        .image;
    let gzipped = f
        .import("gzip.tar", &f.docker(true, &[GZIP, "busybox:skiff-test"]))
        .images
        .remove(0)
        .image;
    let oci = f.import("oci.tar", &f.oci().files).images.remove(0).image;
    assert_eq!(f.count("layers"), 2);

    // Unknown and invalid references.
    assert!(matches!(
        f.store.remove("busybox:nope"),
        Err(ImageError::NotFound(_))
    ));
    assert!(matches!(
        f.store.remove("Not/Valid"),
        Err(ImageError::InvalidReference { .. })
    ));

    // Untag one of two names: the image stays.
    let removed = f.store.remove("busybox:skiff-test").unwrap();
    assert_eq!(removed.untagged.len(), 1);
    assert!(removed.deleted.is_empty());
    assert_eq!(refs(&f.store.get(GZIP).unwrap()), vec![GZIP]);

    // The plain image goes; its own blobs go, the shared config and layers stay.
    let removed = f.store.remove(PLAIN).unwrap();
    assert_eq!(removed.deleted, vec![plain.digest.clone()]);
    assert!(!f.store.blob_path(&plain.digest).exists());
    for layer in &plain.layers {
        assert!(
            !f.store.blob_path(&layer.digest).exists(),
            "plain layer blob collected"
        );
        assert!(
            f.store.layer_path(&layer.diff_id).exists(),
            "still used by the others"
        );
    }
    assert!(f.store.blob_path(&plain.id).exists());
    assert!(matches!(f.store.get(PLAIN), Err(ImageError::NotFound(_))));

    // By id prefix: the gzip one's manifest digest prefix.
    f.store.remove(&gzipped.digest.hex()[..12]).unwrap();
    assert_eq!(f.store.list().unwrap().len(), 1);
    assert_eq!(f.count("layers"), 2, "the OCI image uses the same layers");

    // The last one, by reference: nothing is left.
    let removed = f.store.remove(OCI).unwrap();
    assert_eq!(removed.deleted, vec![oci.digest]);
    assert!(f.store.list().unwrap().is_empty());
    assert_eq!(f.count("blobs/sha256"), 0);
    assert_eq!(f.count("layers"), 0);
    assert_eq!(f.count("tmp"), 0);
    assert!(matches!(f.store.remove(OCI), Err(ImageError::NotFound(_))));
}

#[test]
fn a_tag_moved_by_an_import_drops_the_old_image() {
    let f = Fixture::new();
    let old = f
        .import("v1.tar", &f.docker(false, &["app:1", "app:stable"]))
        .images
        .remove(0)
        .image;
    let config = config_json(host_arch(), &diff_ids(&f.layers), &["sh", "-c", "new"]);
    let files = docker_files(&f.layers, &config, &["app:1", "app:stable"]);
    let new = f.import("v2.tar", &files).images.remove(0).image;
    assert_ne!(old.digest, new.digest);
    let list = f.store.list().unwrap();
    assert_eq!(list.len(), 1, "the old image lost every name and went");
    assert_eq!(list[0].digest, new.digest);
    assert!(!f.store.blob_path(&old.id).exists());
    assert!(f.store.blob_path(&new.id).exists());
    assert_eq!(f.count("layers"), 2, "layers are shared");
    assert_eq!(
        f.store.image_config(&list[0]).unwrap().cmd,
        vec!["sh", "-c", "new"]
    );
}

#[test]
fn concurrent_imports_and_crashed_staging() {
    let f = Fixture::new();
    let archives = [
        f.write("a.tar", &pack(&f.docker(false, &[PLAIN]))),
        f.write("b.tar", &pack(&f.docker(true, &[GZIP]))),
        f.write("c.tar", &pack(&f.oci().files)),
    ];
    std::thread::scope(|scope| {
        for round in 0..2 {
            for archive in &archives {
                let root = f.store.root().to_path_buf();
                scope.spawn(move || {
                    // A store handle of its own, as another process would have.
                    let store = ImageStore::open(root).unwrap();
                    store
                        .import(archive)
                        .unwrap_or_else(|e| panic!("round {round}: {e}"));
                });
            }
        }
    });
    let list = f.store.list().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(f.count("layers"), 2);
    assert_eq!(f.count("tmp"), 0);
    for image in &list {
        for dir in f.store.lowerdirs(image).unwrap() {
            assert!(dir.join("bin").exists() || dir.join("etc/hostname").exists());
        }
    }

    // What a crashed import left (no process holds its lock) goes at the next open;
    // stray blobs and layers no image names are collected.
    let tmp = f.store.root().join("tmp/import-999999-dead-0");
    fs::create_dir_all(tmp.join("archive")).unwrap();
    fs::write(tmp.join("archive/0"), b"partial").unwrap();
    let stray_blob = f
        .store
        .root()
        .join(format!("blobs/sha256/{}", sha256_hex(b"stray")));
    fs::write(&stray_blob, b"stray").unwrap();
    let stray_layer = f
        .store
        .root()
        .join(format!("layers/{}", sha256_hex(b"half")));
    fs::create_dir_all(stray_layer.join("bin")).unwrap();
    let before = f.store.list().unwrap();
    let store = ImageStore::open(f.store.root()).unwrap();
    assert!(!tmp.exists());
    assert!(!stray_blob.exists());
    assert!(!stray_layer.exists());
    assert_eq!(store.list().unwrap(), before);
    assert_eq!(f.count("tmp"), 0);
}

#[test]
fn unsafe_or_unsupported_layers_are_refused() {
    let f = Fixture::new();
    f.import("good.tar", &f.docker(false, &[PLAIN]));
    let escape_dir = f.dir.path().join("escaped");

    // A layer entry climbing out of the layer dir (written raw: tar builders refuse it).
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(4);
    header.set_mode(0o644);
    let name = b"../../../../escaped";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b"evil"[..]).unwrap();
    let evil = builder.into_inner().unwrap();
    let layers = vec![evil.clone()];
    let config = config_json(host_arch(), &diff_ids(&layers), &["sh"]);
    f.refused(
        "escape.tar",
        &pack(&docker_files(&layers, &config, &["evil:1"])),
        &["unsafe layer entry", "'..' escapes the layer directory"],
    );
    assert!(!escape_dir.exists());

    // A symlink, then a file through it.
    let layer = skiff_image::layer(&[
        Entry::symlink("link", "/"),
        Entry::file("link/escaped", "evil"),
    ])
    .unwrap();
    let layers = vec![layer];
    let config = config_json(host_arch(), &diff_ids(&layers), &["sh"]);
    f.refused(
        "symlink.tar",
        &pack(&docker_files(&layers, &config, &["evil:2"])),
        &["unsafe layer entry", "goes through a symlink (link)"],
    );
    assert!(!Path::new("/escaped").exists());

    // zstd layers are not supported (yet): refused by their magic bytes.
    let zstd = vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
    let config = config_json(
        host_arch(),
        &[format!("sha256:{}", sha256_hex(b"x"))],
        &["sh"],
    );
    let files = docker_files(std::slice::from_ref(&zstd), &config, &["zstd:1"]);
    let layer_name = files.find(|n| n.ends_with("layer.tar")).unwrap();
    f.refused(
        "zstd.tar",
        &pack(&files),
        &["unsupported: zstd-compressed layer", &layer_name],
    );
}

#[test]
fn leased_images_are_kept_until_released() {
    let f = Fixture::new();
    let old = f
        .import("v1.tar", &f.docker(false, &["app:1", "app:stable"]))
        .images
        .remove(0)
        .image;
    let leased = f.store.lease("pod-a_web_0", "app:1").unwrap();
    assert_eq!(leased.digest, old.digest);
    assert!(matches!(
        f.store.lease("pod-b_web_0", "app:nope"),
        Err(ImageError::NotFound(_))
    ));

    // Untagging one of two names is fine; removing the last one, or by id, is refused and
    // changes nothing.
    f.store.remove("app:stable").unwrap();
    let before = f.store.list().unwrap();
    let index_before = std::fs::read(f.dir.path().join("images/index.json")).unwrap();
    for name in ["app:1", old.id.to_string().as_str()] {
        match f.store.remove(name) {
            Err(e @ ImageError::InUse { .. }) => {
                let message = e.to_string();
                assert!(message.contains("pod-a_web_0"), "{message}");
            }
            other => panic!("remove {name} of a leased image: {other:?}"),
        }
    }
    assert_eq!(f.store.list().unwrap(), before);
    assert_eq!(
        std::fs::read(f.dir.path().join("images/index.json")).unwrap(),
        index_before,
        "a refused removal leaves the index byte for byte"
    );

    // An import moving the name away keeps the leased image (dangling) with its layers.
    let config = config_json(host_arch(), &diff_ids(&f.layers), &["sh", "-c", "new"]);
    let new = f
        .import("v2.tar", &docker_files(&f.layers, &config, &["app:1"]))
        .images
        .remove(0)
        .image;
    let list = f.store.list().unwrap();
    assert_eq!(list.len(), 2, "the leased image stays: {list:?}");
    assert!(f.store.blob_path(&old.id).exists());
    assert_eq!(
        f.store.leases().unwrap().get("pod-a_web_0"),
        Some(&old.digest)
    );

    // Its last lease ends: it goes, the new image stays.
    f.store.lease("pod-b_web_0", "app:1").unwrap();
    f.store.release("pod-a_web_0").unwrap();
    f.store.release("pod-a_web_0").unwrap();
    let list = f.store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].digest, new.digest);
    assert!(!f.store.blob_path(&old.id).exists());

    // Leases of containers that are gone end at a sweep; a removal then goes through.
    let ended = f
        .store
        .retain_leases(|holder| holder != "pod-b_web_0")
        .unwrap();
    assert_eq!(ended, vec!["pod-b_web_0".to_string()]);
    assert!(f.store.leases().unwrap().is_empty());
    f.store.remove("app:1").unwrap();
    assert!(f.store.list().unwrap().is_empty());
    assert_eq!(f.count("layers"), 0);
}

/// `skiff up`'s busybox image (`skiff_image::busybox_archive`) imports with its applet
/// links, its config and its directories.
#[test]
fn busybox_archive_imports_with_links_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let fake_busybox = b"\x7fELF not really".to_vec();
    let archive = skiff_image::busybox_archive(&fake_busybox, "busybox:skiff").unwrap();
    let path = dir.path().join("busybox.tar");
    fs::write(&path, &archive).unwrap();
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
    assert_eq!(fs::read(layer.join("bin/busybox")).unwrap(), fake_busybox);
    assert_eq!(
        fs::read_link(layer.join("bin/httpd")).unwrap(),
        Path::new("busybox")
    );
    assert!(layer.join("tmp").is_dir());
}
