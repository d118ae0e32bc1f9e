//! Named network namespaces without `ip netns` or a helper process: a namespace is made on
//! a thread of its own (`unshare(CLONE_NEWNET)` changes only the calling thread) and pinned
//! by bind-mounting that thread's namespace file onto a path, as `ip netns add` does.
//! Work inside a namespace runs on a fresh thread that joined it, so no pooled thread is
//! ever left in another namespace; processes spawned from that thread start inside it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("network namespace {path}: {what}: {errno}")]
    Sys {
        path: PathBuf,
        what: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("the namespace thread panicked")]
    Panicked,
}

fn sys(path: &Path, what: &'static str) -> impl FnOnce(nix::errno::Errno) -> NetnsError {
    let path = path.to_path_buf();
    move |errno| NetnsError::Sys { path, what, errno }
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> NetnsError {
    let path = path.to_path_buf();
    move |source| NetnsError::Io { path, what, source }
}

/// Creates a new, empty network namespace pinned at `path` (its parent must exist). `lo` is
/// down, as in any new namespace.
pub fn create(path: &Path) -> Result<(), NetnsError> {
    File::create(path).map_err(io_err(path, "create the pin file"))?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> Result<(), NetnsError> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(sys(&target, "unshare"))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys(&target, "bind mount"))
    })
    .join()
    .map_err(|_| NetnsError::Panicked)?;
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Whether `path` pins a namespace (a bind mount of one). A pin file whose mount is gone —
/// after a reboot, or an unmount — is just an empty file and pins nothing.
pub fn is_pinned(path: &Path) -> bool {
    use nix::sys::statfs::{NSFS_MAGIC, statfs};
    statfs(path).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

/// Unpins and deletes the namespace at `path` (it goes away once nothing uses it).
/// A path that does not exist is fine.
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(sys(path, "unmount")(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, "remove the pin file")(e)),
    }
}

/// Runs `work` on a new thread inside the namespace at `path` and returns its result.
/// Sockets it opens stay in that namespace; children it spawns start in it.
pub fn run_in<T, F>(path: &Path, work: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = path.to_path_buf();
    std::thread::spawn(move || -> Result<T, NetnsError> {
        let file = File::open(&path).map_err(io_err(&path, "open"))?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(sys(&path, "setns"))?;
        Ok(work())
    })
    .join()
    .map_err(|_| NetnsError::Panicked)?
}

/// The namespace the process was in before [`enter`] moved it: [`run_in_origin`] goes back.
static ORIGIN: OnceLock<File> = OnceLock::new();

/// The calling thread's own network namespace file.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Moves the calling thread into the namespace at `path`; threads it starts afterwards
/// begin there too. For a program that lives in one namespace (the CLI reaching a
/// `skiff up` cluster), called before it starts any other thread. The namespace it leaves
/// stays reachable through [`run_in_origin`].
pub fn enter(path: &Path) -> Result<(), NetnsError> {
    let file = File::open(path).map_err(io_err(path, "open"))?;
    if ORIGIN.get().is_none() {
        let origin = Path::new(THREAD_NETNS);
        let _ = ORIGIN.set(File::open(origin).map_err(io_err(origin, "open"))?);
    }
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(sys(path, "setns"))
}

/// Runs `work` in the network namespace the process was in before [`enter`] (on a thread
/// of its own that joined it; directly when [`enter`] was never called): for sockets the
/// user's own programs must reach, such as `skiff port-forward`'s listeners.
pub fn run_in_origin<T, F>(work: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Some(origin) = ORIGIN.get() else {
        return Ok(work());
    };
    std::thread::spawn(move || -> Result<T, NetnsError> {
        setns(origin, CloneFlags::CLONE_NEWNET).map_err(sys(Path::new(THREAD_NETNS), "setns"))?;
        Ok(work())
    })
    .join()
    .map_err(|_| NetnsError::Panicked)?
}

/// Like [`run_in`] for async work: a current-thread tokio runtime on the namespace's thread
/// runs the future (an rtnetlink connection made there talks to that namespace).
pub async fn run_async_in<T, F, Fut>(path: &Path, make: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let path = path.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| {
            let file = File::open(&path).map_err(io_err(&path, "open"))?;
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(sys(&path, "setns"))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io_err(&path, "start a runtime"))?;
            Ok(runtime.block_on(make()))
        })();
        let _ = tx.send(result);
    });
    rx.await.map_err(|_| NetnsError::Panicked)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(path: &str) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn create_run_in_remove() {
        if !nix::unistd::Uid::effective().is_root() {
            assert!(
                std::env::var_os("SKIFF_REQUIRE_PRIVILEGED").is_none(),
                "needs root"
            );
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("ns1");
        create(&pin).unwrap();
        assert!(is_pinned(&pin));
        let host = inode("/proc/self/ns/net");
        let inside = run_in(&pin, || inode("/proc/thread-self/ns/net")).unwrap();
        assert_ne!(inside, host);
        // The same namespace every time, and this thread never left home.
        assert_eq!(
            run_in(&pin, || inode("/proc/thread-self/ns/net")).unwrap(),
            inside
        );
        assert_eq!(inode("/proc/thread-self/ns/net"), host);
        remove(&pin).unwrap();
        assert!(!pin.exists() && !is_pinned(&pin));
        remove(&pin).unwrap();
        assert!(run_in(&pin, || ()).is_err());
        // A pin file left without its mount pins nothing.
        std::fs::write(&pin, "").unwrap();
        assert!(!is_pinned(&pin));
    }

    #[test]
    fn run_in_origin_works_where_the_process_was_before_enter() {
        if !nix::unistd::Uid::effective().is_root() {
            assert!(
                std::env::var_os("SKIFF_REQUIRE_PRIVILEGED").is_none(),
                "needs root"
            );
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("ns1");
        create(&pin).unwrap();
        let host = inode("/proc/thread-self/ns/net");
        let inside = run_in(&pin, || inode("/proc/thread-self/ns/net")).unwrap();
        let pin_inside = pin.clone();
        // On a thread of its own: enter moves only the calling thread.
        let (entered, origin) = std::thread::spawn(move || {
            enter(&pin_inside).unwrap();
            let origin = run_in_origin(|| inode("/proc/thread-self/ns/net")).unwrap();
            (inode("/proc/thread-self/ns/net"), origin)
        })
        .join()
        .unwrap();
        assert_eq!((entered, origin), (inside, host));
        remove(&pin).unwrap();
    }
}
