//! Layer tars: what each entry is, and the whiteouts with which a layer deletes what a lower
//! one has.

use std::io;

/// The mtime of every entry: fixed, so that rebuilding gives the same digests
/// (2023-11-14T22:13:20Z).
pub const MTIME: u64 = 1_700_000_000;

/// A layer deletes `<dir>/<name>` of the layers below with an empty `<dir>/.wh.<name>`.
pub const WHITEOUT_PREFIX: &str = ".wh.";

/// A layer hides everything the layers below have in a directory with an empty
/// `<dir>/.wh..wh..opq` (an opaque directory).
pub const OPAQUE: &str = ".wh..wh..opq";

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    /// A symlink to this target.
    Symlink(String),
    /// A hard link to this earlier path of the same tar.
    Hardlink(String),
    /// A character device node with this major and minor number (hostile images carry
    /// `/dev/zero` to make whoever reads a link to it read for ever).
    CharDevice(u32, u32),
}

/// One entry of a tar: its path (directories end in `/`), what it is, its mode and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

impl Entry {
    fn new(path: impl Into<String>, kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A directory, mode 0755, owned by root.
    pub fn dir(path: impl Into<String>) -> Entry {
        Entry::new(path, Kind::Dir, 0o755)
    }

    /// A regular file, mode 0644, owned by root.
    pub fn file(path: impl Into<String>, data: impl Into<Vec<u8>>) -> Entry {
        Entry::new(path, Kind::File(data.into()), 0o644)
    }

    /// A symlink (mode 0777) to `target`.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::new(path, Kind::Symlink(target.into()), 0o777)
    }

    /// A hard link to `target`, a path earlier in the same tar.
    pub fn hardlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::new(path, Kind::Hardlink(target.into()), 0o644)
    }

    /// A character device node (mode 0666), such as `/dev/zero`'s 1, 5.
    pub fn char_device(path: impl Into<String>, major: u32, minor: u32) -> Entry {
        Entry::new(path, Kind::CharDevice(major, minor), 0o666)
    }

    /// The entry with permission bits `mode` (setuid, setgid and sticky bits included).
    pub fn mode(self, mode: u32) -> Entry {
        Entry { mode, ..self }
    }

    /// The entry owned by `uid`:`gid`.
    pub fn owner(self, uid: u64, gid: u64) -> Entry {
        Entry { uid, gid, ..self }
    }

    fn append(&self, builder: &mut tar::Builder<Vec<u8>>) -> io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_mode(self.mode);
        header.set_uid(self.uid);
        header.set_gid(self.gid);
        header.set_mtime(MTIME);
        header.set_size(0);
        match &self.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, &self.path, io::empty())
            }
            Kind::File(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, &self.path, data.as_slice())
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, &self.path, target)
            }
            Kind::Hardlink(target) => {
                header.set_entry_type(tar::EntryType::Link);
                builder.append_link(&mut header, &self.path, target)
            }
            Kind::CharDevice(major, minor) => {
                header.set_entry_type(tar::EntryType::Char);
                header.set_device_major(*major)?;
                header.set_device_minor(*minor)?;
                builder.append_data(&mut header, &self.path, io::empty())
            }
        }
    }
}

/// A tar of `entries`, in order (ustar headers; long names in GNU extension entries). Fails
/// only on a path or link target a tar cannot hold (`..`, an absolute path).
pub fn layer(entries: &[Entry]) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        entry.append(&mut builder)?;
    }
    builder.into_inner()
}

/// The whiteout that deletes `path` (a file or directory of a lower layer): an empty
/// `<dir>/.wh.<name>`.
pub fn whiteout(path: &str) -> Entry {
    let path = path.trim_end_matches('/');
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), path),
    };
    Entry::file(format!("{dir}{WHITEOUT_PREFIX}{name}"), Vec::new())
}

/// The marker that makes directory `dir` opaque: an empty `<dir>/.wh..wh..opq`.
pub fn opaque(dir: &str) -> Entry {
    match dir.trim_end_matches('/') {
        "" => Entry::file(OPAQUE, Vec::new()),
        dir => Entry::file(format!("{dir}/{OPAQUE}"), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries of `tar`, read back (every mtime is [`MTIME`]).
    fn read_back(tar: &[u8]) -> Vec<Entry> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                assert_eq!(header.mtime().unwrap(), MTIME);
                let link = || entry.link_name().unwrap().unwrap().display().to_string();
                let kind = match header.entry_type() {
                    tar::EntryType::Directory => Kind::Dir,
                    tar::EntryType::Symlink => Kind::Symlink(link()),
                    tar::EntryType::Link => Kind::Hardlink(link()),
                    tar::EntryType::Char => Kind::CharDevice(
                        header.device_major().unwrap().unwrap(),
                        header.device_minor().unwrap().unwrap(),
                    ),
                    _ => {
                        let mut data = Vec::new();
                        io::Read::read_to_end(&mut entry, &mut data).unwrap();
                        Kind::File(data)
                    }
                };
                Entry {
                    path: entry.path().unwrap().display().to_string(),
                    kind,
                    mode: header.mode().unwrap(),
                    uid: header.uid().unwrap(),
                    gid: header.gid().unwrap(),
                }
            })
            .collect()
    }

    #[test]
    fn entries_keep_kind_mode_owner_and_links() {
        let entries = [
            Entry::dir("home/user/").mode(0o750).owner(1000, 1000),
            Entry::file("home/user/secret", "s3cret\n")
                .mode(0o600)
                .owner(1000, 1001),
            Entry::file("bin/suid", "#!/bin/sh\n").mode(0o4755),
            Entry::symlink("bin/sh", "busybox"),
            Entry::hardlink("bin/again", "bin/suid"),
            Entry::file(format!("deep/{}/file", "d".repeat(150)), "x"),
            Entry::char_device("dev/zero", 1, 5),
        ];
        assert_eq!(read_back(&layer(&entries).unwrap()), entries);
    }

    #[test]
    fn whiteouts_name_what_they_delete() {
        assert_eq!(whiteout("etc/motd").path, "etc/.wh.motd");
        assert_eq!(whiteout("a/b/dir/").path, "a/b/.wh.dir");
        assert_eq!(whiteout("top").path, ".wh.top");
        assert_eq!(opaque("data/").path, "data/.wh..wh..opq");
        assert_eq!(opaque("data").path, "data/.wh..wh..opq");
        assert_eq!(opaque("").path, ".wh..wh..opq");
        for entry in [whiteout("etc/motd"), opaque("data")] {
            assert_eq!(entry.kind, Kind::File(Vec::new()));
        }
    }

    #[test]
    fn paths_a_tar_cannot_hold_are_refused() {
        assert!(layer(&[Entry::file("../escape", "x")]).is_err());
    }

    #[test]
    fn the_same_entries_give_the_same_bytes() {
        let entries = [Entry::dir("bin/"), Entry::file("bin/x", vec![7; 3000])];
        assert_eq!(layer(&entries).unwrap(), layer(&entries).unwrap());
    }
}
