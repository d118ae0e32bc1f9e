//! An image's `User` (`name`, `uid`, `name:group`, `uid:gid`) as numeric ids, looked up in
//! the container's own `/etc/passwd` and `/etc/group` as Docker does.

use std::path::Path;

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
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == name || (name.parse::<u32>().is_ok() && f[2] == name)));
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
            Err(_) => read(rootfs, "etc/group")
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?,
        },
    };
    Ok((uid, gid))
}

fn read(rootfs: &Path, file: &str) -> String {
    std::fs::read_to_string(rootfs.join(file)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_resolve_against_the_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
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
}
