//! The `process` runtime's helper processes. The agent runs its own executable again with a
//! hidden first argument; each helper changes namespaces while it is still single-threaded
//! (which `unshare(CLONE_NEWNS)` and `setns` into a mount namespace require) and needs no
//! `fork` tricks or unsafe code:
//!
//! - `__sandbox DIR HOSTNAME`: new network and UTS namespaces, hostname set, `lo` up, both
//!   namespaces pinned by bind mounts on `DIR/netns` and `DIR/utsns`; then exits.
//! - `__shim CONTAINER-DIR`: joins the pod's namespaces, makes a private mount namespace with
//!   the volumes bind-mounted, starts the container as its own process group, writes its
//!   output to the log file and its exit to `exit.json`. Runs detached from the agent, so
//!   containers outlive an agent crash.
//! - `__nsexec PID -- ARGV…`: joins the namespaces, environment and working directory of
//!   process PID and execs ARGV (for `exec`).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::layout::{Exited, ShimSpec, Started, read_json, write_json};
use crate::logs::{LogWriter, Stream};
use crate::runtime::sandbox;

pub const SANDBOX: &str = "__sandbox";
pub const SHIM: &str = "__shim";
pub const NSEXEC: &str = "__nsexec";
/// `__sandbox DIR HOSTNAME host`: pin the agent's own (the node's) namespaces instead.
pub const HOST_NETWORK: &str = "host";

/// Runs a helper if this process was started as one (call it first thing in `main`):
/// `Some(exit code)` then, `None` for a normal agent start.
pub fn dispatch_internal() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    let command = args.get(1)?.as_str();
    let rest = &args[2..];
    let result = match command {
        SANDBOX if rest.len() == 2 => {
            sandbox::make_namespaces(Path::new(&rest[0]), &rest[1]).map(|()| 0)
        }
        SANDBOX if rest.len() == 3 && rest[2] == HOST_NETWORK => {
            sandbox::pin_namespaces(Path::new(&rest[0])).map(|()| 0)
        }
        SHIM if rest.len() == 1 => run_shim(Path::new(&rest[0])).map(|()| 0),
        NSEXEC if rest.len() >= 3 && rest[1] == "--" => nsexec(&rest[0], &rest[2..]),
        SANDBOX | SHIM | NSEXEC => Err(format!("{command}: wrong arguments {rest:?}")),
        _ => return None,
    };
    Some(match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("skiff-agent {command}: {message}");
            // 127 like a shell's "cannot run": an exec caller sees the helper failed.
            127
        }
    })
}

fn enter_pod_namespaces(netns: &Path, utsns: &Path) -> Result<(), String> {
    for (path, flag) in [
        (netns, CloneFlags::CLONE_NEWNET),
        (utsns, CloneFlags::CLONE_NEWUTS),
    ] {
        let file = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
        setns(&file, flag).map_err(|e| format!("setns {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A private mount namespace with each volume bind-mounted at its mount path (which the
/// runtime created beforehand when missing).
fn mount_volumes(spec: &ShimSpec) -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mnt: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make / private: {e}"))?;
    for m in &spec.mounts {
        let what = format!(
            "mount {} at {}",
            m.host_path.display(),
            m.container_path.display()
        );
        mount(
            Some(&m.host_path),
            &m.container_path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("{what}: {e}"))?;
        if m.read_only {
            mount(
                None::<&str>,
                &m.container_path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(|e| format!("{what} read-only: {e}"))?;
        }
    }
    Ok(())
}

fn run_shim(dir: &Path) -> Result<(), String> {
    let spec: ShimSpec = read_json(&dir.join("spec.json"))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{}: no spec.json", dir.display()))?;
    let exit_path = dir.join("exit.json");
    // The agent waits for one line on our stdout: "started PID" or "error MESSAGE".
    let mut report = io::stdout();
    let fail = |message: String, report: &mut io::Stdout| -> Result<(), String> {
        write_json(&exit_path, &Exited::start_error(message.clone())).map_err(|e| e.to_string())?;
        let _ = writeln!(report, "error {message}");
        Ok(())
    };
    if spec.oci.is_none()
        && let Err(message) =
            enter_pod_namespaces(&spec.netns, &spec.utsns).and_then(|()| mount_volumes(&spec))
    {
        return fail(message, &mut report);
    }
    let log = LogWriter::open(&spec.log_path, spec.rotation())
        .map_err(|e| format!("open log {}: {e}", spec.log_path.display()))?;
    let mut command = Command::new(&spec.argv[0]);
    command
        .args(&spec.argv[1..])
        .env_clear()
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // Kubernetes' default without workingDir (and without an image WORKDIR) is `/`; the
    // shim's own directory is agent state, not a place for a container's files.
    command.current_dir(spec.working_dir.as_deref().unwrap_or(Path::new("/")));
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return fail(format!("cannot run {:?}: {e}", spec.argv[0]), &mut report),
    };
    let started_at = chrono::Utc::now();
    let pid = child.id();
    let started = Started {
        shim_pid: std::process::id(),
        pid,
        started_at,
        boot_id: super::layout::boot_id(),
    };
    write_json(&dir.join("started.json"), &started).map_err(|e| e.to_string())?;
    let _ = writeln!(report, "started {pid}");
    let _ = report.flush();

    let log = Arc::new(Mutex::new(log));
    let watch_runc = spec.oci.is_some();
    let pumps: Vec<_> = [
        child
            .stdout
            .take()
            .map(|r| (Box::new(r) as Box<dyn Read + Send>, Stream::Stdout)),
        child
            .stderr
            .take()
            .map(|r| (Box::new(r) as Box<dyn Read + Send>, Stream::Stderr)),
    ]
    .into_iter()
    .flatten()
    .map(|(reader, stream)| {
        let log = log.clone();
        std::thread::spawn(move || pump(reader, stream, &log, watch_runc))
    })
    .collect();
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    // Whatever the container left in its process group goes with it (and lets the pumps
    // see end-of-file).
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    let mut runc_failure = None;
    for pump in pumps {
        if let Ok(Some(failure)) = pump.join() {
            runc_failure = Some(failure);
        }
    }
    if let Some(failure) = runc_failure
        && !status.success()
    {
        // runc could not start the program (not found, not executable, bad user...): as in
        // Kubernetes, StartError with runc's reason, not an Error exit of the program.
        return write_json(&exit_path, &Exited::start_error(failure)).map_err(|e| e.to_string());
    }
    let mut exited = Exited::from_status(status.code(), status.signal(), started_at);
    if let Some(oci) = &spec.oci
        && exited.exit_code != 0
        && crate::runtime::oci::cgroup::oom_killed(&oci.memory_cgroup)
    {
        exited.reason = "OOMKilled".into();
    }
    write_json(&exit_path, &exited).map_err(|e| e.to_string())
}

/// Longest log entry; a longer line is split into partial entries.
const MAX_ENTRY: usize = 16 * 1024;

/// runc's report that it could not start the container's process, on its stderr:
/// `runc run failed: <reason>` (plain, or inside a logfmt `msg="…"`).
fn runc_start_failure(line: &[u8]) -> Option<String> {
    const MARK: &str = "runc run failed: ";
    let text = String::from_utf8_lossy(line);
    let at = text.find(MARK)?;
    let reason = text[at + MARK.len()..].trim_end();
    let reason = reason
        .strip_suffix('"')
        .unwrap_or(reason)
        .replace("\\\"", "\"");
    Some(reason)
}

/// Copies `reader` into the log, line by line. With `watch_runc`, returns runc's start
/// failure if stderr carried one.
fn pump(
    reader: Box<dyn Read + Send>,
    stream: Stream,
    log: &Mutex<LogWriter>,
    watch_runc: bool,
) -> Option<String> {
    let mut reader = BufReader::with_capacity(MAX_ENTRY, reader);
    let mut line = Vec::with_capacity(1024);
    let mut failure = None;
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_ENTRY as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return failure,
            Ok(n) => n,
        };
        if watch_runc && matches!(stream, Stream::Stderr) {
            failure = runc_start_failure(&line).or(failure);
        }
        let partial = line[n - 1] != b'\n';
        let mut writer = log.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writer.write_entry(stream, &line, partial) {
            eprintln!("log write: {e}");
        }
    }
}

fn nsexec(pid: &str, argv: &[String]) -> Result<i32, String> {
    let pid: u32 = pid.parse().map_err(|_| format!("bad pid {pid:?}"))?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let environ = std::fs::read(proc_dir.join("environ"))
        .map_err(|e| format!("container process {pid}: {e}"))?;
    let cwd = std::fs::read_link(proc_dir.join("cwd")).ok();
    // Opened before joining: the mount namespace changes what paths mean.
    let namespaces = [
        ("net", CloneFlags::CLONE_NEWNET),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ]
    .into_iter()
    .map(|(ns, flag)| {
        File::open(proc_dir.join("ns").join(ns))
            .map(|f| (f, flag))
            .map_err(|e| format!("open {ns} namespace of {pid}: {e}"))
    })
    .collect::<Result<Vec<_>, _>>()?;
    for (file, flag) in &namespaces {
        setns(file, *flag).map_err(|e| format!("setns {flag:?}: {e}"))?;
    }
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).env_clear();
    for entry in environ.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        if let Some((key, value)) = entry.split_once('=') {
            command.env(key, value);
        }
    }
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    // `exec -t` gives a pty as stdin: the command leads a session with it as its
    // controlling terminal, so a shell gets job control and the kernel's SIGWINCH.
    let stdin = std::io::stdin();
    if rustix::termios::isatty(&stdin) {
        rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
        rustix::process::ioctl_tiocsctty(&stdin)
            .map_err(|e| format!("make the pty the controlling terminal: {e}"))?;
    }
    // Only returns on failure.
    let error = command.exec();
    Err(format!("cannot run {:?}: {error}", argv[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_start_failures_are_recognised() {
        assert_eq!(
            runc_start_failure(
                b"runc run failed: unable to start container process: exec: \"/nope\": stat /nope: no such file or directory\n"
            )
            .as_deref(),
            Some("unable to start container process: exec: \"/nope\": stat /nope: no such file or directory")
        );
        assert_eq!(
            runc_start_failure(
                b"time=\"2026-11-23T10:00:00Z\" level=error msg=\"runc run failed: unable to start container process: exec: \\\"/nope\\\": permission denied\"\n"
            )
            .as_deref(),
            Some("unable to start container process: exec: \"/nope\": permission denied")
        );
        assert_eq!(runc_start_failure(b"hello from the program\n"), None);
    }
}
