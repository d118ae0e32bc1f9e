//! Who a container's process runs as: the image's `User` (`name`, `uid`, `name:group`,
//! `uid:gid`) or the securityContext's runAsUser / runAsGroup, as numeric ids looked up in
//! the container's own `/etc/passwd` and `/etc/group` as containerd does, with the groups
//! the image lists the user in and the pod's supplementalGroups and fsGroup.

use std::path::Path;

/// The process user of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the primary group (containerd sets it too, so a process that
    /// drops to it keeps it), the image's groups listing the user, then the pod's.
    pub additional_gids: Vec<u32>,
}

/// One `/etc/passwd` or `/etc/group` line, split.
fn entries(text: &str, min_fields: usize) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(move |f| f.len() >= min_fields)
}

/// The `/etc/passwd` entry of `name`, a user name or a numeric uid.
fn passwd_entry<'a>(passwd: &'a str, name: &str) -> Option<Vec<&'a str>> {
    let numeric = name.parse::<u32>().is_ok();
    entries(passwd, 4).find(|f| f[0] == name || (numeric && f[2] == name))
}

/// The uid and gid for `user`, looked up in the image's `passwd` (the text of its
/// `/etc/passwd`) and, for a named group, its `/etc/group` under `rootfs`; root without a
/// user.
pub fn resolve_user(user: Option<&str>, passwd: &str, rootfs: &Path) -> Result<(u32, u32), String> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok((0, 0));
    };
    let (name, group) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    let entry = passwd_entry(passwd, name);
    let uid = match name.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry
            .as_ref()
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| format!("user {name:?} is not in the image's /etc/passwd"))?,
    };
    let gid = match group {
        None => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => entries(&read(rootfs, "etc/group")?, 3)
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?,
        },
    };
    Ok((uid, gid))
}

/// The container's user: `run_as_user` (its primary group from the image's `/etc/passwd`,
/// else 0) or else the image's `User`; `run_as_group` replaces the group either way. The
/// groups of the image's `/etc/group` that list the user by name, then `extra`, become
/// supplementary groups.
pub fn container_user(
    image_user: Option<&str>,
    run_as_user: Option<u32>,
    run_as_group: Option<u32>,
    extra: impl IntoIterator<Item = u32>,
    rootfs: &Path,
) -> Result<ProcessUser, String> {
    let passwd = read(rootfs, "etc/passwd")?;
    let asked = run_as_user.map(|uid| uid.to_string());
    let (uid, gid) = resolve_user(asked.as_deref().or(image_user), &passwd, rootfs)?;
    let gid = run_as_group.unwrap_or(gid);
    let name = passwd_entry(&passwd, &uid.to_string()).map(|f| f[0].to_string());
    let member_of: Vec<u32> = match &name {
        Some(name) => entries(&read(rootfs, "etc/group")?, 4)
            .filter(|f| f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .collect(),
        None => Vec::new(),
    };
    let mut additional_gids = Vec::new();
    for g in std::iter::once(gid).chain(member_of).chain(extra) {
        if !additional_gids.contains(&g) {
            additional_gids.push(g);
        }
    }
    Ok(ProcessUser {
        uid,
        gid,
        additional_gids,
    })
}

/// The largest `/etc/passwd` or `/etc/group` read from an image.
pub const MAX_ACCOUNT_FILE_BYTES: u64 = 1024 * 1024;

/// The image's `file` (`etc/passwd`), resolved as if `rootfs` were `/`: a link, absolute or
/// not, cannot lead out of the image (a hostile `/etc/passwd -> /host/etc/shadow` reads the
/// image's own path). Only a regular file of at most [`MAX_ACCOUNT_FILE_BYTES`] is read: a
/// link to `/dev/zero` or a FIFO would otherwise keep the agent reading (or waiting) for
/// ever. A missing file reads as empty, as containerd takes it.
fn read(rootfs: &Path, file: &str) -> Result<String, String> {
    use std::io::Read;

    use nix::errno::Errno;
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
    use nix::sys::stat::Mode;

    let shown = format!("the image's /{file}");
    let root = open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("{shown}: open the root filesystem: {e}"))?;
    let how = OpenHow::new()
        // Non-blocking: opening a FIFO must not wait for a writer.
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(&root, file, how) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(String::new()),
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    let opened = std::fs::File::from(fd);
    let meta = opened.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if meta.len() > MAX_ACCOUNT_FILE_BYTES {
        return Err(format!(
            "{shown} is {} bytes, more than the {MAX_ACCOUNT_FILE_BYTES} read",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    // The size was checked, but the file may still grow under a running container.
    opened
        .take(MAX_ACCOUNT_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:\naudio:x:63:web,root\nvideo:x:44:other\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn names_and_ids_resolve_against_the_image() {
        let dir = image();
        let passwd = read(dir.path(), "etc/passwd").unwrap();
        let r = |u: Option<&str>| resolve_user(u, &passwd, dir.path());
        assert_eq!(r(None), Ok((0, 0)));
        assert_eq!(r(Some("web")), Ok((1000, 1001)));
        assert_eq!(r(Some("1000")), Ok((1000, 1001)));
        assert_eq!(r(Some("42")), Ok((42, 0)));
        assert_eq!(r(Some("web:staff")), Ok((1000, 50)));
        assert_eq!(r(Some("7:8")), Ok((7, 8)));
        assert!(r(Some("nobody")).unwrap_err().contains("nobody"));
        assert!(r(Some("web:nogroup")).unwrap_err().contains("nogroup"));
    }

    #[test]
    fn run_as_user_and_group_override_the_image_and_groups_are_collected() {
        let dir = image();
        let user = |image: Option<&str>, uid, gid, extra: &[u32]| {
            container_user(image, uid, gid, extra.iter().copied(), dir.path()).unwrap()
        };
        // The image's user, its group membership, then the pod's groups (once each).
        assert_eq!(
            user(Some("web"), None, None, &[5, 63, 2000]),
            ProcessUser {
                uid: 1000,
                gid: 1001,
                additional_gids: vec![1001, 63, 5, 2000]
            }
        );
        // runAsUser: its passwd group; an unknown uid gets group 0.
        assert_eq!(user(None, Some(1000), None, &[]).gid, 1001);
        assert_eq!(
            user(Some("web"), Some(4242), None, &[]),
            ProcessUser {
                uid: 4242,
                gid: 0,
                additional_gids: vec![0]
            }
        );
        // runAsGroup replaces the group of either.
        assert_eq!(user(Some("web"), None, Some(7), &[]).gid, 7);
        assert_eq!(
            user(None, Some(1000), Some(7), &[]).additional_gids,
            [7, 63]
        );
        assert_eq!(user(None, None, None, &[]).additional_gids, [0, 63]);
    }

    #[test]
    fn a_passwd_linked_to_dev_zero_is_never_read_from_the_host() {
        let image = image();
        let passwd = image.path().join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &passwd).unwrap();
        // Resolved inside the image, where there is no /dev/zero: no passwd at all.
        assert_eq!(read(image.path(), "etc/passwd"), Ok(String::new()));
        let passwd = read(image.path(), "etc/passwd").unwrap();
        assert_eq!(
            resolve_user(Some("1000"), &passwd, image.path()),
            Ok((1000, 0))
        );
        let err = resolve_user(Some("web"), &passwd, image.path()).unwrap_err();
        assert!(err.contains("not in the image's /etc/passwd"), "{err}");
    }

    #[test]
    fn an_absolute_link_cannot_read_a_host_file() {
        let image = image();
        let host = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(host.path(), "evil:x:4242:4242::/:/bin/sh\n").unwrap();
        let passwd = image.path().join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        std::os::unix::fs::symlink(host.path(), &passwd).unwrap();
        let passwd = read(image.path(), "etc/passwd").unwrap();
        let err = resolve_user(Some("evil"), &passwd, image.path()).unwrap_err();
        assert!(err.contains("not in the image's /etc/passwd"), "{err}");
    }

    #[test]
    fn a_fifo_a_directory_or_an_oversized_file_is_refused_naming_it() {
        let image = image();
        let passwd = image.path().join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = container_user(None, Some(1000), None, [], image.path()).unwrap_err();
        assert_eq!(err, "the image's /etc/passwd is not a regular file");

        let group = image.path().join("etc/group");
        std::fs::remove_file(&group).unwrap();
        std::fs::create_dir(&group).unwrap();
        let err = read(image.path(), "etc/group").unwrap_err();
        assert_eq!(err, "the image's /etc/group is not a regular file");

        std::fs::remove_file(&passwd).unwrap();
        let big = std::fs::File::create(&passwd).unwrap();
        big.set_len(MAX_ACCOUNT_FILE_BYTES + 1).unwrap();
        let err = read(image.path(), "etc/passwd").unwrap_err();
        assert!(err.contains("more than the 1048576 read"), "{err}");
    }
}
