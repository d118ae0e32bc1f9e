//! Layer unpacking: a layer tar becomes a directory that overlayfs can stack as a lowerdir.
//!
//! - Whiteouts `.wh.<name>` become overlay whiteouts: a character device 0:0 named `<name>`.
//! - Opaque markers `.wh..wh..opq` become `trusted.overlay.opaque=y` on their directory.
//! - Modes (with setuid/setgid/sticky), numeric owners, symlinks, hardlinks within the
//!   layer, device nodes, fifos, mtimes and PAX xattrs are kept. Xattrs in the overlay
//!   namespaces are dropped: a layer must not forge overlayfs metadata (redirects, metacopy).
//! - Entries that would land outside the directory are refused: `..` components, absolute
//!   paths, a path through a symlink or a non-directory (even one the same layer made),
//!   hardlinks to anything outside the layer.
//!
//! Without root, ownership cannot be kept and is left to the caller's uid (as rootless
//! runtimes do), device nodes other than whiteouts are skipped, and the opaque marker falls
//! back to `user.overlay.opaque` (what overlayfs reads when mounted with `userxattr`).
//! Whiteouts need no privilege since Linux 5.8.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use super::{ImageError, ImageLimits, Result};

/// The opaque-directory marker of the OCI / Docker layer format.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The prefix of whiteout entries.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The xattr overlayfs reads to treat a directory as opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The same for overlayfs mounted with `userxattr` (unprivileged).
pub const OVERLAY_OPAQUE_USER_XATTR: &str = "user.overlay.opaque";

/// What unpacking produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Entries written (files, dirs, links, whiteouts...).
    pub entries: u64,
    /// Bytes of regular file content.
    pub bytes: u64,
}

/// What one import may still unpack: its share of [`ImageLimits`], spent layer by layer.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: ImageLimits,
    bytes: u64,
    entries: u64,
}

impl Budget {
    pub fn new(limits: ImageLimits) -> Budget {
        Budget {
            limits,
            bytes: 0,
            entries: 0,
        }
    }

    /// Counts one more tar entry.
    fn entry(&mut self, layer: &str) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.entries {
            return Err(ImageError::Limit {
                what: format!("the image's layers ({layer})"),
                limit: format!(
                    "the limit of {} entries per image (--image-max-entries)",
                    self.limits.entries
                ),
            });
        }
        Ok(())
    }

    /// Counts `size` more bytes of file content, before they are written.
    fn bytes(&mut self, size: u64, layer: &str) -> Result<()> {
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.unpacked_bytes {
            return Err(ImageError::Limit {
                what: format!("the image's unpacked layers ({layer})"),
                limit: format!(
                    "the limit of {} unpacked bytes per image (--image-max-unpacked-bytes)",
                    self.limits.unpacked_bytes
                ),
            });
        }
        Ok(())
    }
}

/// Opens a layer blob for reading its uncompressed tar: gzip is recognised by its magic
/// bytes (media types lie often enough, and Docker archives have none); zstd, xz and bzip2
/// are refused as unsupported. `what` names the layer in errors.
pub fn open_layer(path: &Path, what: &str) -> Result<Box<dyn Read + Send>> {
    let file =
        File::open(path).map_err(|e| ImageError::io(format!("open {}", path.display()), e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let head = reader
        .fill_buf()
        .map_err(|e| ImageError::io(format!("read {}", path.display()), e))?;
    let unsupported = |compression: &str| {
        Err(ImageError::Unsupported(format!(
            "{compression}-compressed layer {what}"
        )))
    };
    match head {
        [0x1f, 0x8b, ..] => Ok(Box::new(flate2::read::MultiGzDecoder::new(reader))),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => unsupported("zstd"),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => unsupported("xz"),
        [b'B', b'Z', b'h', ..] => unsupported("bzip2"),
        _ => Ok(Box::new(reader)),
    }
}

/// A tar entry's path made relative to the layer root: `./` and `.` components dropped;
/// `..`, absolute paths and empty names refused. The root itself is the empty path.
pub fn safe_relative(path: &Path) -> Result<PathBuf> {
    let unsafe_path = |reason: &str| ImageError::UnsafePath {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(name) => out.push(name),
            Component::ParentDir => return Err(unsafe_path("'..' escapes the layer directory")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path("absolute paths are not allowed"));
            }
        }
    }
    Ok(out)
}

/// Makes sure every ancestor of `rel` under `root` is a real directory (creating missing
/// ones), so nothing written at `rel` can go through a symlink. Returns `root/rel`.
fn prepare_parent(root: &Path, rel: &Path, create: bool) -> Result<PathBuf> {
    let mut current = root.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        if components.peek().is_none() {
            current.push(component);
            break;
        }
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(md) if md.file_type().is_dir() => {}
            Ok(md) => {
                let what = if md.file_type().is_symlink() {
                    "goes through a symlink"
                } else {
                    "goes through a non-directory"
                };
                return Err(ImageError::UnsafePath {
                    path: rel.display().to_string(),
                    reason: format!(
                        "{what} ({})",
                        current.strip_prefix(root).unwrap_or(&current).display()
                    ),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&current)
                    .map_err(|e| ImageError::io(format!("mkdir {}", current.display()), e))?;
            }
            Err(e) => return Err(ImageError::io(format!("stat {}", current.display()), e)),
        }
    }
    Ok(current)
}

/// Removes whatever is at `path` (never following a symlink). A directory is kept when
/// `keep_dir`; returns whether a directory is left there.
fn clear(path: &Path, keep_dir: bool) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ImageError::io(format!("stat {}", path.display()), e)),
        Ok(md) if md.file_type().is_dir() => {
            if keep_dir {
                return Ok(true);
            }
            remove_tree(path)?;
            Ok(false)
        }
        Ok(_) => {
            fs::remove_file(path)
                .map_err(|e| ImageError::io(format!("remove {}", path.display()), e))?;
            Ok(false)
        }
    }
}

/// Removes a directory tree, also one holding read-only directories when not root.
pub fn remove_tree(path: &Path) -> Result<()> {
    let first = match fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => e,
    };
    if first.kind() != io::ErrorKind::PermissionDenied {
        return Err(ImageError::io(format!("remove {}", path.display()), first));
    }
    // Read-only directories: make every directory writable and try again.
    fn open_up(dir: &Path) {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&entry.path());
                }
            }
        }
    }
    open_up(path);
    fs::remove_dir_all(path).map_err(|e| ImageError::io(format!("remove {}", path.display()), e))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Owner, mode, mtime and xattrs of one entry, applied after its content.
struct Meta {
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, layer: &str) -> Result<Meta> {
    let header = entry.header();
    let bad = |what: &str, e: io::Error| ImageError::BadLayer {
        layer: layer.to_string(),
        reason: format!("{what}: {e}"),
    };
    let mut meta = Meta {
        uid: header.uid().map_err(|e| bad("bad uid", e))?,
        gid: header.gid().map_err(|e| bad("bad gid", e))?,
        mode: header.mode().map_err(|e| bad("bad mode", e))? & 0o7777,
        mtime: header.mtime().unwrap_or(0),
        xattrs: Vec::new(),
    };
    if let Some(extensions) = entry
        .pax_extensions()
        .map_err(|e| bad("bad pax header", e))?
    {
        for extension in extensions {
            let extension = extension.map_err(|e| bad("bad pax header", e))?;
            let Ok(key) = extension.key() else { continue };
            let number = || {
                extension
                    .value()
                    .ok()
                    .and_then(|v| v.split('.').next())
                    .and_then(|v| v.parse::<u64>().ok())
            };
            match key {
                "uid" => meta.uid = number().unwrap_or(meta.uid),
                "gid" => meta.gid = number().unwrap_or(meta.gid),
                "mtime" => meta.mtime = number().unwrap_or(meta.mtime),
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs
                            .push((name.to_string(), extension.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    Ok(meta)
}

fn id(value: u64, what: &str, layer: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| ImageError::BadLayer {
        layer: layer.to_string(),
        reason: format!("{what} {value} out of range"),
    })
}

/// Applies owner (never following symlinks), then mode (chown clears setuid bits), then
/// xattrs and mtime.
fn apply_meta(path: &Path, meta: &Meta, symlink: bool, set_mode: bool, layer: &str) -> Result<()> {
    let uid = id(meta.uid, "uid", layer)?;
    let gid = id(meta.gid, "gid", layer)?;
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(Errno::EPERM as i32) && !is_root() => {}
        Err(e) => return Err(ImageError::io(format!("chown {}", path.display()), e)),
    }
    if set_mode && !symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
            .map_err(|e| ImageError::io(format!("chmod {}", path.display()), e))?;
    }
    for (name, value) in &meta.xattrs {
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            tracing::warn!(layer, path = %path.display(), "dropped overlay xattr {name} from the layer");
            continue;
        }
        if let Err(e) = xattr::set(path, name, value) {
            // Unsupported by this filesystem or not allowed: the content is still right.
            tracing::warn!(layer, path = %path.display(), "xattr {name} not set: {e}");
        }
    }
    if !set_mode {
        return Ok(());
    }
    let mtime = filetime::FileTime::from_unix_time(meta.mtime as i64, 0);
    filetime::set_symlink_file_times(path, mtime, mtime)
        .map_err(|e| ImageError::io(format!("set times of {}", path.display()), e))
}

/// Unpacks the (uncompressed) layer tar read from `tar` into `dest`, an existing empty
/// directory; `layer` names the layer in errors. Every entry and every file's size is
/// taken from `budget` before anything is written. Returns what was written.
pub fn unpack_layer<R: Read>(
    tar: R,
    dest: &Path,
    layer: &str,
    budget: &mut Budget,
) -> Result<UnpackStats> {
    let bad = |reason: String| ImageError::BadLayer {
        layer: layer.to_string(),
        reason,
    };
    let mut archive = tar::Archive::new(tar);
    let mut stats = UnpackStats::default();
    // Directory modes and times are set last: children change a dir's mtime, and a
    // read-only directory must still take its children.
    let mut dirs: Vec<(PathBuf, Meta)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("bad tar entry: {e}")))?;
        budget.entry(layer)?;
        let raw_path: PathBuf = entry
            .path()
            .map_err(|e| bad(format!("bad entry path: {e}")))?
            .into_owned();
        let rel = safe_relative(&raw_path)?;
        let kind = entry.header().entry_type();
        let meta = read_meta(&mut entry, layer)?;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");

        // Whiteouts first: they are markers, not files.
        if name == OPAQUE_MARKER {
            let dir = prepare_parent(dest, &rel, true)?;
            let dir = dir.parent().unwrap_or(dest).to_path_buf();
            set_opaque(&dir)?;
            stats.entries += 1;
            continue;
        }
        if name.starts_with(".wh..wh.") {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content.
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(ImageError::UnsafePath {
                    path: raw_path.display().to_string(),
                    reason: "bad whiteout name".into(),
                });
            }
            let target = prepare_parent(dest, &rel.with_file_name(hidden), true)?;
            clear(&target, false)?;
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                .map_err(|e| ImageError::io(format!("whiteout {}", target.display()), e.into()))?;
            stats.entries += 1;
            continue;
        }

        if rel.as_os_str().is_empty() {
            // The layer root (`./`): only its metadata.
            if kind.is_dir() {
                dirs.push((dest.to_path_buf(), meta));
            }
            continue;
        }
        let path = prepare_parent(dest, &rel, true)?;
        match kind {
            tar::EntryType::Directory => {
                if !clear(&path, true)? {
                    fs::create_dir(&path)
                        .map_err(|e| ImageError::io(format!("mkdir {}", path.display()), e))?;
                }
                apply_meta(&path, &meta, false, false, layer)?;
                dirs.push((path, meta));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                budget.bytes(entry.size(), layer)?;
                clear(&path, false)?;
                // create_new: O_CREAT|O_EXCL never follows a symlink planted meanwhile.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| ImageError::io(format!("create {}", path.display()), e))?;
                let expected = entry.size();
                let written = io::copy(&mut entry, &mut file)
                    .map_err(|e| bad(format!("reading {}: {e}", rel.display())))?;
                if kind != tar::EntryType::GNUSparse && written != expected {
                    return Err(bad(format!(
                        "truncated: {} has {written} of {expected} bytes",
                        rel.display()
                    )));
                }
                drop(file);
                apply_meta(&path, &meta, false, true, layer)?;
                stats.bytes += written;
            }
            tar::EntryType::Symlink => {
                let target = link_target(&entry, layer)?;
                clear(&path, false)?;
                std::os::unix::fs::symlink(&*target, &path)
                    .map_err(|e| ImageError::io(format!("symlink {}", path.display()), e))?;
                apply_meta(&path, &meta, true, true, layer)?;
            }
            tar::EntryType::Link => {
                let target = link_target(&entry, layer)?;
                let target_rel = safe_relative(&target)?;
                if target_rel == rel {
                    continue;
                }
                let source = prepare_parent(dest, &target_rel, false)?;
                match fs::symlink_metadata(&source) {
                    Ok(md) if !md.is_dir() => {}
                    Ok(_) => {
                        return Err(bad(format!(
                            "hardlink {} to directory {}",
                            rel.display(),
                            target_rel.display()
                        )));
                    }
                    Err(_) => {
                        return Err(bad(format!(
                            "hardlink {} to {}, which is not in the layer",
                            rel.display(),
                            target_rel.display()
                        )));
                    }
                }
                clear(&path, false)?;
                // link(2) without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
                fs::hard_link(&source, &path)
                    .map_err(|e| ImageError::io(format!("link {}", path.display()), e))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        let number = |n: io::Result<Option<u32>>| {
                            n.map_err(|e| {
                                bad(format!("bad device number of {}: {e}", rel.display()))
                            })
                            .map(|n| u64::from(n.unwrap_or(0)))
                        };
                        let major = number(entry.header().device_major())?;
                        let minor = number(entry.header().device_minor())?;
                        let sflag = if kind == tar::EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (sflag, makedev(major, minor))
                    }
                };
                clear(&path, false)?;
                match mknod(&path, sflag, Mode::from_bits_truncate(0o600), dev) {
                    Ok(()) => apply_meta(&path, &meta, false, true, layer)?,
                    Err(Errno::EPERM) if !is_root() => {
                        tracing::warn!(layer, "device node {} skipped: not root", rel.display());
                        continue;
                    }
                    Err(e) => {
                        return Err(ImageError::io(
                            format!("mknod {}", path.display()),
                            e.into(),
                        ));
                    }
                }
            }
            tar::EntryType::XGlobalHeader => continue,
            other => {
                tracing::warn!(
                    layer,
                    "skipped {} of tar entry type {other:?}",
                    rel.display()
                );
                continue;
            }
        }
        stats.entries += 1;
    }
    for (path, meta) in dirs.iter().rev() {
        apply_meta(path, meta, false, true, layer)?;
    }
    Ok(stats)
}

fn link_target<'a, R: Read>(entry: &'a tar::Entry<'_, R>, layer: &str) -> Result<Cow<'a, Path>> {
    let bad = |reason: String| ImageError::BadLayer {
        layer: layer.to_string(),
        reason,
    };
    let target = entry
        .link_name()
        .map_err(|e| bad(format!("bad link name: {e}")))?
        .ok_or_else(|| bad("link without a target".into()))?;
    if target.as_os_str().is_empty() {
        return Err(bad("link without a target".into()));
    }
    Ok(target)
}

/// Marks `dir` opaque for overlayfs.
fn set_opaque(dir: &Path) -> Result<()> {
    match xattr::set(dir, OVERLAY_OPAQUE_XATTR, b"y") {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(Errno::EPERM as i32) && !is_root() => {
            xattr::set(dir, OVERLAY_OPAQUE_USER_XATTR, b"y").map_err(|e| {
                ImageError::io(
                    format!("set {OVERLAY_OPAQUE_USER_XATTR} on {}", dir.display()),
                    e,
                )
            })
        }
        Err(e) => Err(ImageError::io(
            format!("set {OVERLAY_OPAQUE_XATTR} on {}", dir.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        h
    }

    /// A tar built by hand, so the names are exactly what an attacker would write.
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Self {
            Tar(tar::Builder::new(Vec::new()))
        }
        fn raw(
            mut self,
            path: &str,
            kind: tar::EntryType,
            data: &[u8],
            link: Option<&str>,
        ) -> Self {
            let mode = if kind.is_dir() { 0o755 } else { 0o644 };
            let mut h = header("placeholder", kind, data.len() as u64, mode);
            // Write the name bytes directly: set_path refuses `..` and absolute paths.
            let name = &mut h.as_old_mut().name;
            name.fill(0);
            name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(link) = link {
                let l = &mut h.as_old_mut().linkname;
                l.fill(0);
                l[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }
        fn file(self, path: &str, data: &[u8]) -> Self {
            self.raw(path, tar::EntryType::Regular, data, None)
        }
        fn dir(self, path: &str) -> Self {
            self.raw(path, tar::EntryType::Directory, b"", None)
        }
        fn symlink(self, path: &str, target: &str) -> Self {
            self.raw(path, tar::EntryType::Symlink, b"", Some(target))
        }
        fn hardlink(self, path: &str, target: &str) -> Self {
            self.raw(path, tar::EntryType::Link, b"", Some(target))
        }
        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn unpack(tar: Tar) -> (tempfile::TempDir, Result<UnpackStats>) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = tar.bytes();
        let mut budget = Budget::new(ImageLimits::default());
        let result = unpack_layer(&bytes[..], dir.path(), "test", &mut budget);
        (dir, result)
    }

    #[test]
    fn unpacking_stops_at_the_byte_and_entry_caps_before_writing_past_them() {
        let limits = ImageLimits {
            unpacked_bytes: 100,
            entries: 3,
            ..ImageLimits::default()
        };
        let big = Tar::new().file("a", &[1; 60]).file("b", &[2; 60]).bytes();
        let dir = tempfile::tempdir().unwrap();
        let mut budget = Budget::new(limits);
        let error = unpack_layer(&big[..], dir.path(), "layer 0", &mut budget).unwrap_err();
        assert!(
            error.to_string().contains("100 unpacked bytes per image")
                && error.to_string().contains("--image-max-unpacked-bytes"),
            "{error}"
        );
        let written: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            dir.path().join("a").exists() && !dir.path().join("b").exists(),
            "{written:?}"
        );

        // The budget is the image's: two layers of two entries pass the cap of three.
        let small = Tar::new().dir("d").file("d/x", b"x").bytes();
        let mut budget = Budget::new(limits);
        let first = tempfile::tempdir().unwrap();
        unpack_layer(&small[..], first.path(), "layer 0", &mut budget).unwrap();
        let second = tempfile::tempdir().unwrap();
        let error = unpack_layer(&small[..], second.path(), "layer 1", &mut budget).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("3 entries per image (--image-max-entries)"),
            "{error}"
        );
        assert!(matches!(error, ImageError::Limit { .. }));
    }

    #[test]
    fn safe_relative_paths() {
        let ok = |p: &str| safe_relative(Path::new(p)).unwrap();
        assert_eq!(ok("a/b"), PathBuf::from("a/b"));
        assert_eq!(ok("./a/./b/"), PathBuf::from("a/b"));
        assert_eq!(ok("./"), PathBuf::new());
        assert_eq!(ok("a..b/..c"), PathBuf::from("a..b/..c"));
        for bad in ["../x", "a/../../x", "a/..", "/etc/passwd", "/"] {
            let err = safe_relative(Path::new(bad)).unwrap_err();
            assert!(matches!(err, ImageError::UnsafePath { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn escaping_entries_are_refused() {
        let cases: Vec<(Tar, &str)> = vec![
            (Tar::new().file("../evil", b"x"), "'..' escapes"),
            (Tar::new().file("a/../../evil", b"x"), "'..' escapes"),
            (Tar::new().file("/abs", b"x"), "absolute"),
            (
                Tar::new().symlink("link", "/").file("link/evil", b"x"),
                "goes through a symlink (link)",
            ),
            (
                Tar::new()
                    .dir("d")
                    .symlink("d/up", "../..")
                    .file("d/up/evil", b"x"),
                "goes through a symlink (d/up)",
            ),
            (
                Tar::new().symlink("l", "/etc").hardlink("h", "l/passwd"),
                "goes through a symlink",
            ),
            (Tar::new().hardlink("h", "../../etc/passwd"), "'..' escapes"),
            (Tar::new().hardlink("h", "/etc/passwd"), "absolute"),
            (Tar::new().hardlink("h", "missing"), "not in the layer"),
            (
                Tar::new().file("f", b"x").file("f/g", b"y"),
                "non-directory",
            ),
            (Tar::new().file("a/.wh...", b""), "bad whiteout"),
        ];
        for (tar, want) in cases {
            let (dir, result) = unpack(tar);
            let err = result.unwrap_err().to_string();
            assert!(err.contains(want), "want {want:?}: {err}");
            // Nothing was written outside.
            assert!(!dir.path().parent().unwrap().join("evil").exists());
        }
    }

    #[test]
    fn files_links_and_modes() {
        let tar = Tar::new()
            .dir("./")
            .dir("bin")
            .file("bin/tool", b"#!/bin/sh\n")
            .symlink("bin/sh", "tool")
            .symlink("abs", "/etc/passwd")
            .hardlink("bin/tool2", "bin/tool")
            .file("deep/er/file", b"data")
            // A file replacing a symlink must not write through it.
            .symlink("over", "/tmp/skiff-unpack-test-should-not-exist")
            .file("over", b"replaced");
        let (dir, result) = unpack(tar);
        let stats = result.unwrap();
        let root = dir.path();
        assert_eq!(stats.bytes, 10 + 4 + 8);
        assert_eq!(fs::read(root.join("bin/tool")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(
            fs::read_link(root.join("bin/sh")).unwrap(),
            PathBuf::from("tool")
        );
        assert_eq!(
            fs::read_link(root.join("abs")).unwrap(),
            PathBuf::from("/etc/passwd")
        );
        let a = fs::metadata(root.join("bin/tool")).unwrap();
        let b = fs::metadata(root.join("bin/tool2")).unwrap();
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
        assert_eq!(a.mode() & 0o7777, 0o644);
        assert_eq!(a.mtime(), 1_700_000_000);
        assert_eq!(fs::read(root.join("deep/er/file")).unwrap(), b"data");
        assert_eq!(fs::read(root.join("over")).unwrap(), b"replaced");
        assert!(!Path::new("/tmp/skiff-unpack-test-should-not-exist").exists());
    }

    #[test]
    fn whiteouts_and_opaque_dirs() {
        let tar = Tar::new()
            .dir("etc")
            .file("etc/.wh.motd", b"")
            .file("data/.wh..wh..opq", b"")
            .file("data/new", b"n")
            .file(".wh..wh.plnk", b"");
        let (dir, result) = unpack(tar);
        result.unwrap();
        let root = dir.path();
        let wh = fs::symlink_metadata(root.join("etc/motd")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!root.join("etc/.wh.motd").exists());
        assert!(!root.join(".wh..wh.plnk").exists());
        assert!(!root.join("data/.wh..wh..opq").exists());
        let opaque = xattr::get(root.join("data"), OVERLAY_OPAQUE_XATTR)
            .unwrap()
            .or_else(|| xattr::get(root.join("data"), OVERLAY_OPAQUE_USER_XATTR).unwrap());
        assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    }

    #[test]
    fn truncated_and_garbage_input() {
        let bytes = Tar::new().file("big", &[7u8; 4096]).bytes();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack_layer(
            &bytes[..512 + 1000],
            dir.path(),
            "L",
            &mut Budget::new(ImageLimits::default()),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("layer L:"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = unpack_layer(
            &[0x55u8; 1024][..],
            dir.path(),
            "L",
            &mut Budget::new(ImageLimits::default()),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("layer L:"), "{err}");
    }

    #[test]
    fn overlay_xattrs_from_the_layer_are_dropped() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = header("f", tar::EntryType::Regular, 1, 0o644);
        builder
            .append_pax_extensions([
                ("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..]),
                ("SCHILY.xattr.user.skiff", &b"kept"[..]),
            ])
            .unwrap();
        builder.append_data(&mut h, "f", &b"x"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        unpack_layer(
            &bytes[..],
            dir.path(),
            "L",
            &mut Budget::new(ImageLimits::default()),
        )
        .unwrap();
        let f = dir.path().join("f");
        assert_eq!(xattr::get(&f, "trusted.overlay.redirect").unwrap(), None);
        // user xattrs need filesystem support; when there, they are kept.
        if let Ok(Some(v)) = xattr::get(&f, "user.skiff") {
            assert_eq!(v, b"kept");
        }
    }
}
