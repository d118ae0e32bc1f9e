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

/// The uid and gid for `user` in the root filesystem at `rootfs`; root without a user.
pub fn resolve_user(user: Option<&str>, rootfs: &Path) -> Result<(u32, u32), String> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok((0, 0));
    };
    let (name, group) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    let passwd = read(rootfs, "etc/passwd");
    let entry = passwd_entry(&passwd, name);
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
            Err(_) => entries(&read(rootfs, "etc/group"), 3)
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
    let asked = run_as_user.map(|uid| uid.to_string());
    let (uid, gid) = resolve_user(asked.as_deref().or(image_user), rootfs)?;
    let gid = run_as_group.unwrap_or(gid);
    let passwd = read(rootfs, "etc/passwd");
    let name = passwd_entry(&passwd, &uid.to_string()).map(|f| f[0].to_string());
    let member_of: Vec<u32> = match &name {
        Some(name) => entries(&read(rootfs, "etc/group"), 4)
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

fn read(rootfs: &Path, file: &str) -> String {
    std::fs::read_to_string(rootfs.join(file)).unwrap_or_default()
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
        let r = |u: Option<&str>| resolve_user(u, dir.path());
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
}
