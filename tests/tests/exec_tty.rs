//! `skiff exec -it POD -- sh` on a real terminal (issue 19, item 5): a control-plane member
//! and an agent on the default runtime (oci: runc), the `skiff` binary run on a pty this
//! test holds the master of, as a user's terminal emulator would. Root, busybox and runc
//! are needed; skipped otherwise unless SKIFF_REQUIRE_PRIVILEGED.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use skiff_api::types::{Node, Pod};
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, binary, eventually, skiff_cli};
use skiff_tests::host::BUSYBOX;
use skiff_tests::images::{APPLETS, BusyboxImage};
use skiff_tests::terminal::Terminal;

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
        let mut command = Command::new(binary("skiff"));
        command
            .arg("--server")
            .arg(&self.servers)
            .arg("--config")
            .arg(self.cluster.admin_conf())
            .args(args)
            .env_remove("SKIFF_SERVER")
            .env("SKIFF_CONFIG", "/nonexistent/skiff-config");
        Terminal::spawn(command, size)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_it_gives_a_shell_on_a_terminal_of_the_users_size_that_follows_its_window() {
    if !runnable() {
        return;
    }
    let world = World::start().await;
    let mut terminal = world.skiff_on_terminal(&["exec", "-it", "shell", "--", "sh"], (101, 33));
    let before = terminal.modes();
    // An interactive shell's prompt: the command runs on a terminal.
    let at = terminal.wait_for("# ", 0);
    terminal.type_in("tty; stty size; echo $((6*7))\n");
    let at = terminal.wait_for("/dev/pts/", at);
    let at = terminal.wait_for("33 101", at);
    let at = terminal.wait_for("\r\n42\r\n", at);
    // skiff's terminal is raw meanwhile: keys go to the remote one unchanged.
    let raw = terminal.modes();
    assert!(
        !raw.local_modes
            .intersects(rustix::termios::LocalModes::ICANON | rustix::termios::LocalModes::ECHO),
        "{raw:?}"
    );
    // A window change reaches the shell's terminal.
    terminal.resize(120, 40);
    let at = terminal.wait_for("# ", at);
    let at = terminal.retype_until("stty size", "# ", "40 120", at);
    terminal.type_in("exit 5\n");
    assert_eq!(terminal.exit_code(), 5, "{:?}", terminal.shown());
    terminal.wait_for("command terminated with exit code 5", at);
    // And the terminal is as skiff found it.
    let after = terminal.modes();
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
