//! `kubectl exec` (v1.32) through Skiff's Kubernetes API on both of its transports: the
//! WebSocket (`v5.channel.k8s.io`, kubectl's first choice) and SPDY/3.1 (its fallback,
//! and its only one with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, which kubectl reads in
//! staging/src/k8s.io/kubectl/pkg/cmd/util/helpers.go). `-it` runs on a real terminal the
//! test holds the master of. kubectl missing skips these tests, and fails them when
//! SKIFF_REQUIRE_PRIVILEGED is set (CI).

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use skiff_tests::host::runs_without;
use skiff_tests::kubectl::{Kubectl, missing_kubectl};
use skiff_tests::terminal::Terminal;

const SETTLE: Duration = Duration::from_secs(60);

/// A pod that only waits, for commands to be run in.
const SHELL: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
"#;

/// kubectl's transports, by the environment that picks them.
const TRANSPORTS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];

/// kubectl on `transport` (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS`'s value).
fn kubectl_on(kubectl: &Kubectl, transport: &str) -> std::process::Command {
    let mut command = kubectl.command();
    command.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", transport);
    command
}

/// (exit code, stdout, stderr) of kubectl `args` on `transport`.
fn run_on(kubectl: &Kubectl, transport: &str, args: &[&str]) -> (i32, String, String) {
    let output = kubectl_on(kubectl, transport)
        .args(args)
        .output()
        .expect("run kubectl");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_gives_a_terminal_that_follows_resizes_and_falls_back_to_spdy_with_exit_codes_stdin_and_separate_streams()
 {
    if !skiff_tests::host::privileged_tests_can_run() || !runs_without(missing_kubectl().as_deref())
    {
        return;
    }
    let (cluster, agents) = skiff_tests::kubectl::cluster_with_ready_agents(SETTLE).await;
    let kubectl = Kubectl::new(&cluster, None);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("shell.yaml");
    std::fs::write(&manifest, SHELL).unwrap();
    kubectl.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    kubectl.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/shell",
        "--timeout=60s",
    ]);

    for (name, transport) in TRANSPORTS {
        // -it on a terminal: a shell on a terminal of the user's size, that follows the
        // window, and whose exit code is kubectl's.
        let mut command = kubectl_on(&kubectl, transport);
        command.args([
            "exec",
            "-it",
            "shell",
            "--",
            "sh",
            "-c",
            "export PS1='kx> '; exec sh -i",
        ]);
        let mut terminal = Terminal::spawn(command, (101, 33));
        let at = terminal.wait_for("kx> ", 0);
        terminal.type_in("tty\n");
        let at = terminal.wait_for("/dev/pts/", at);
        let at = terminal.wait_for("kx> ", at);
        // kubectl sends the size right after connecting: it may land after a first prompt.
        let at = terminal.retype_until("stty size", "kx> ", "33 101", at);
        // A terminal merges stderr into what is shown.
        terminal.type_in("echo to-stderr >&2\n");
        let at = terminal.wait_for("\r\nto-stderr\r\n", at);
        terminal.resize(120, 40);
        let at = terminal.retype_until("stty size", "kx> ", "40 120", at);
        terminal.type_in("exit 5\n");
        assert_eq!(terminal.exit_code(), 5, "{name}: {:?}", terminal.shown());
        terminal.wait_for("command terminated with exit code 5", at);
    }

    // kubectl's SPDY fallback: exit codes, separate stdout and stderr, and stdin.
    let spdy = "false";
    let (code, out, err) = run_on(
        &kubectl,
        spdy,
        &["exec", "shell", "--", "sh", "-c", "exit 3"],
    );
    assert_eq!(code, 3, "{out}{err}");
    assert_eq!(err.trim(), "command terminated with exit code 3");
    let (code, out, err) = run_on(
        &kubectl,
        spdy,
        &["exec", "shell", "--", "sh", "-c", "echo out; echo err >&2"],
    );
    assert_eq!((code, out.as_str(), err.as_str()), (0, "out\n", "err\n"));
    let mut cat = kubectl_on(&kubectl, spdy)
        .args(["exec", "-i", "shell", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl exec -i");
    let typed = "hi\n".repeat(20_000);
    let mut stdin = cat.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(typed.as_bytes()));
    let output = cat.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    // All of it, and stdin's end ended cat.
    assert_eq!(output.stdout, "hi\n".repeat(20_000).as_bytes(), "{err}");
    // What is refused before the upgrade is kubectl's usual message on SPDY too.
    let (_, _, err) = run_on(&kubectl, spdy, &["exec", "nope", "--", "true"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): pods "nope" not found"#
    );
    drop(agents);
}
