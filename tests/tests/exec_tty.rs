//! `skiff exec` as kubectl's (issue 19, item 5): `exec -it POD -- sh` on a real terminal,
//! kubectl's words for a missing binary, and the deprecated form without `--`, on a cluster
//! as `skiff up` makes it (a member and an agent on a network-namespace host with the
//! default runtime, oci: runc; the CLI reaching it from the underlay namespace). The
//! terminal is a pty this test holds the master of, as a user's terminal emulator would.
//! Root, busybox, runc and docker-registry are needed; skipped otherwise unless
//! SKIFF_REQUIRE_PRIVILEGED.

use serde_json::json;
use skiff_api::types::Pod;
use skiff_tests::host::BUSYBOX;
use skiff_tests::images::{APPLETS, BusyboxImage};
use skiff_tests::multihost::MultiHost;
use skiff_tests::terminal::Terminal;

const IMAGE: &str = "skiff-test/busybox:tty";
const NODE: &str = "host-1";

/// A local cluster of one host, and a running busybox pod `shell`.
struct World {
    cluster: MultiHost,
}

impl World {
    async fn start() -> Option<World> {
        if !skiff_tests::host::oci_tests_can_run(true) {
            return None;
        }
        let cluster = MultiHost::start_local(1, &[]).await.expect("local cluster");
        let world = World { cluster };
        // The busybox image with what a terminal session uses.
        let applets: Vec<&str> = APPLETS.iter().copied().chain(["tty", "stty"]).collect();
        let busybox = std::fs::read(BUSYBOX).expect("read busybox");
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("busybox.tar");
        let image = BusyboxImage::new(&busybox, &applets);
        std::fs::write(&archive, image.docker_archive(IMAGE)).unwrap();
        let archive = archive.display().to_string();
        world.ok(&["image", "import", &archive, "--node", NODE]);
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
        world
            .cluster
            .api(move |client| async move { client.create(&pod).await })
            .await
            .unwrap();
        world.ok(&[
            "wait",
            "--for=condition=Ready",
            "pod/shell",
            "--timeout=60s",
        ]);
        Some(world)
    }

    fn skiff(&self, args: &[&str]) -> (i32, String, String) {
        self.cluster.skiff(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.skiff(args);
        assert_eq!(
            code,
            0,
            "skiff {args:?}:\n{out}{err}\n{}",
            self.cluster.logs()
        );
        out
    }

    /// `skiff ARGS…` with a terminal of `size` as its stdin, stdout and stderr.
    fn skiff_on_terminal(&self, args: &[&str], size: (u16, u16)) -> Terminal {
        let mut command = self.cluster.skiff_command();
        command.args(args);
        Terminal::spawn(command, size)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_it_gives_a_shell_on_a_terminal_of_the_users_size_that_follows_its_window() {
    let Some(world) = World::start().await else {
        return;
    };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_binary_exits_126_in_kubectls_words_and_the_form_without_dashes_warns() {
    let Some(world) = World::start().await else {
        return;
    };
    // Not runc's log line: kubectl's error, then its exit code line, and 126.
    let (code, out, err) = world.skiff(&["exec", "shell", "--", "nope"]);
    assert_eq!(code, 126, "{out}{err}\n{}", world.cluster.logs());
    assert_eq!(
        err,
        "error: Internal error occurred: error executing command in container: \
         OCI runtime exec failed: exec failed: unable to start container process: \
         exec: \"nope\": executable file not found in $PATH: unknown\n\
         command terminated with exit code 126\n"
    );
    assert_eq!(out, "");
    // The SDK says the same.
    let output = world
        .cluster
        .api(|client| async move {
            client
                .exec_output("default", "shell", None, &["nope".into()])
                .await
        })
        .await
        .unwrap();
    assert_eq!(output.exit_code, 126);
    assert!(
        output
            .start_failure
            .as_deref()
            .is_some_and(|e| e.contains("executable file not found in $PATH")),
        "{output:?}"
    );
    assert!(output.stderr.is_empty(), "{output:?}");
    // A command that starts and writes what runc would keeps its stderr and exit code.
    let (code, _, err) = world.skiff(&[
        "exec",
        "shell",
        "--",
        "sh",
        "-c",
        "echo 'exec failed: mine' >&2; exit 255",
    ]);
    assert_eq!(
        (code, err.as_str()),
        (
            255,
            "exec failed: mine\ncommand terminated with exit code 255\n"
        )
    );

    // The deprecated form runs the command, with kubectl's warning; -it too.
    let deprecated = "skiff exec [POD] [COMMAND] is DEPRECATED and will be removed in a future version. \
                      Use skiff exec [POD] -- [COMMAND] instead.\n";
    let (code, out, err) = world.skiff(&["exec", "shell", "ls", "/"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l == "bin"), "{out}");
    assert_eq!(err, deprecated);
    let (code, out, err) = world.skiff(&["exec", "-it", "shell", "echo", "hi"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hi\n");
    assert!(err.contains(deprecated), "{err}");
    // Both forms at once are refused, naming what is wrong, and nothing runs.
    let (code, out, err) = world.skiff(&["exec", "shell", "ls", "--", "echo", "x"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("\"ls\" before -- is not a pod"), "{err}");
    assert_eq!(out, "");
}
