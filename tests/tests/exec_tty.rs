//! `skiff exec -it POD -- sh` on a real terminal (issue 19, item 5): a control-plane member
//! and an agent on the default runtime (oci: runc), the `skiff` binary run on a pty this
//! test holds the master of, as a user's terminal emulator would. Root, busybox and runc
//! are needed; skipped otherwise unless SKIFF_REQUIRE_PRIVILEGED.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::Winsize;
use serde_json::json;
use skiff_api::types::{Node, Pod};
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, binary, eventually, skiff_cli};
use skiff_tests::host::BUSYBOX;
use skiff_tests::images::{APPLETS, BusyboxImage};

const SETTLE: Duration = Duration::from_secs(60);
const IMAGE: &str = "skiff-test/busybox:tty";

/// Root and busybox, then runc (the default runtime).
fn runnable() -> bool {
    if !skiff_tests::host::privileged_tests_can_run() {
        return false;
    }
    let runc = skiff_agent::runtime::oci::find_runc();
    let missing = skiff_agent::runtime::oci::check_host(&runc)
        .err()
        .map(|e| format!("what the oci runtime needs: {e} (apt-get install runc)"));
    skiff_tests::host::runs_without(missing.as_deref())
}

/// A member, an agent with its default runtime, and a running busybox pod `shell`.
struct World {
    cluster: ControlPlaneCluster,
    agent: AgentProcess,
    servers: String,
}

impl World {
    async fn start() -> World {
        for program in ["skiff-control-plane", "skiff-agent", "skiff"] {
            binary(program);
        }
        let cluster = ControlPlaneCluster::start_ready(1).await;
        let client = cluster.client();
        let agent = AgentProcess::start("node-1", &cluster.endpoints(), &[]).expect("agent");
        eventually(SETTLE, || async {
            let node = client.get::<Node>("", "node-1").await?;
            anyhow::ensure!(skiff_tests::nodes::is_ready(&node), "node-1 not ready");
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
        let world = World {
            servers: cluster.endpoints().join(","),
            cluster,
            agent,
        };
        // The busybox image with what a terminal session uses.
        let applets: Vec<&str> = APPLETS.iter().copied().chain(["tty", "stty"]).collect();
        let busybox = std::fs::read(BUSYBOX).expect("read busybox");
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("busybox.tar");
        let image = BusyboxImage::new(&busybox, &applets);
        std::fs::write(&archive, image.docker_archive(IMAGE)).unwrap();
        let archive = archive.display().to_string();
        world.ok(&["image", "import", &archive, "--node", "node-1"]);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "shell"},
            "spec": {"containers": [{
                "name": "main",
                "image": IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }]}
        }))
        .unwrap();
        client.create(&pod).await.unwrap();
        world.ok(&[
            "wait",
            "--for=condition=Ready",
            "pod/shell",
            "--timeout=60s",
        ]);
        world
    }

    fn skiff(&self, args: &[&str]) -> (i32, String, String) {
        skiff_cli(&self.servers, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.skiff(args);
        assert_eq!(code, 0, "skiff {args:?}:\n{out}{err}\n{}", self.agent.log());
        out
    }

    /// `skiff ARGS…` with a terminal of `size` as its stdin, stdout and stderr.
    fn skiff_on_terminal(&self, args: &[&str], size: (u16, u16)) -> Terminal {
        let winsize = Winsize {
            ws_col: size.0,
            ws_row: size.1,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&winsize), None).expect("openpty");
        let slave = pty.slave;
        let stdio = || Stdio::from(slave.try_clone().expect("dup the pty"));
        let child = Command::new(binary("skiff"))
            .arg("--server")
            .arg(&self.servers)
            .arg("--config")
            .arg(self.cluster.admin_conf())
            .args(args)
            .env_remove("SKIFF_SERVER")
            .env("SKIFF_CONFIG", "/nonexistent/skiff-config")
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .expect("run skiff");
        // Only skiff holds the slave now: the master reads end of file when it is gone.
        drop(slave);
        Terminal::new(pty.master, child)
    }
}

/// The user's side of the terminal skiff runs on: what it has shown so far, typing, and
/// window changes.
struct Terminal {
    master: OwnedFd,
    shown: Arc<Mutex<Vec<u8>>>,
    child: Child,
}

impl Terminal {
    fn new(master: OwnedFd, child: Child) -> Terminal {
        let shown = Arc::new(Mutex::new(Vec::new()));
        let mut reader = std::fs::File::from(master.try_clone().expect("dup the master"));
        let sink = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once skiff (the last holder of the slave) has exited.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            master,
            shown,
            child,
        }
    }

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned()
    }

    fn wait_for(&self, what: &str, after: usize) -> usize {
        let deadline = Instant::now() + SETTLE;
        loop {
            let shown = self.shown();
            if let Some(at) = shown.get(after..).and_then(|rest| rest.find(what)) {
                return after + at + what.len();
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} on the terminal within {SETTLE:?}: {shown:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_in(&self, keys: &str) {
        let mut writer = std::fs::File::from(self.master.try_clone().unwrap());
        writer.write_all(keys.as_bytes()).unwrap();
    }

    /// The window changes as a terminal emulator's does: the size on the pty, SIGWINCH to
    /// the program (the kernel sends it only to a controlling terminal's foreground group,
    /// and skiff's is not this one).
    fn resize(&self, width: u16, height: u16) {
        let size = rustix::termios::Winsize {
            ws_col: width,
            ws_row: height,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(self.master.as_fd(), size).unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH).unwrap();
    }

    /// skiff's exit code (killed after a minute).
    fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("skiff did not exit within {SETTLE:?}: {:?}", self.shown());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_it_gives_a_shell_on_a_terminal_of_the_users_size_that_follows_its_window() {
    if !runnable() {
        return;
    }
    let world = World::start().await;
    let mut terminal = world.skiff_on_terminal(&["exec", "-it", "shell", "--", "sh"], (101, 33));
    let before = rustix::termios::tcgetattr(terminal.master.as_fd()).unwrap();
    // An interactive shell's prompt: the command runs on a terminal.
    let at = terminal.wait_for("# ", 0);
    terminal.type_in("tty; stty size; echo $((6*7))\n");
    let at = terminal.wait_for("/dev/pts/", at);
    let at = terminal.wait_for("33 101", at);
    let at = terminal.wait_for("\r\n42\r\n", at);
    // skiff's terminal is raw meanwhile: keys go to the remote one unchanged.
    let raw = rustix::termios::tcgetattr(terminal.master.as_fd()).unwrap();
    assert!(
        !raw.local_modes
            .intersects(rustix::termios::LocalModes::ICANON | rustix::termios::LocalModes::ECHO),
        "{raw:?}"
    );
    // A window change reaches the shell's terminal.
    terminal.resize(120, 40);
    let mut at = terminal.wait_for("# ", at);
    let deadline = Instant::now() + SETTLE;
    loop {
        terminal.type_in("stty size\n");
        let next = terminal.wait_for("# ", terminal.wait_for("stty size", at));
        let shown = terminal.shown();
        if shown[at..next].contains("40 120") {
            at = next;
            break;
        }
        assert!(Instant::now() < deadline, "no resize: {shown:?}");
        at = next;
        std::thread::sleep(Duration::from_millis(200));
    }
    terminal.type_in("exit 5\n");
    assert_eq!(terminal.exit_code(), 5, "{:?}", terminal.shown());
    terminal.wait_for("command terminated with exit code 5", at);
    // And the terminal is as skiff found it.
    let after = rustix::termios::tcgetattr(terminal.master.as_fd()).unwrap();
    assert_eq!(after.local_modes, before.local_modes);
    assert_eq!(after.input_modes, before.input_modes);
    assert_eq!(after.output_modes, before.output_modes);

    // Without a terminal on stdin, -it warns in kubectl's words and runs without one.
    let (code, out, err) = world.skiff(&["exec", "-it", "shell", "--", "tty"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            1,
            "not a tty\n",
            "Unable to use a TTY - input is not a terminal or the right kind of file\n\
             command terminated with exit code 1\n"
        )
    );
    // -t without -i is dropped silently, as kubectl does.
    let (code, out, err) = world.skiff(&["exec", "-t", "shell", "--", "tty"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (1, "not a tty\n", "command terminated with exit code 1\n")
    );
}
