//! `deploy/vagrant/provision.sh` and the units in `deploy/systemd/`, exercised without VMs and
//! without systemd, so that neither can rot.
//!
//! The end-to-end test provisions four test hosts (network namespaces, `skiff_tests::hosts`)
//! the way the Vagrantfile provisions its VMs — three control-plane members and a worker —
//! each into a directory of its own (`--root`, `--no-start`), checks what was installed, and
//! then starts every daemon the way systemd would from the installed unit: it reads the
//! unit's `Environment=`, `EnvironmentFile=` and `ExecStart=`, expands the variables as
//! systemd does (see [`expand_exec`] for the subset), and runs the command inside the host's
//! namespace with systemd's clean environment. The members must elect a leader and the
//! worker's Node must become Ready, as seen through the SDK and through the installed `skiff`
//! CLI on "cp1".
//!
//! Paths: provision.sh writes the files under `--root` with the paths the provisioned system
//! sees (the env file says `SKIFF_DATA_DIR="/var/lib/skiff/agent"`), exactly what a VM gets;
//! the launcher plays the part of a chroot instead. Every word of the expanded command line
//! that is an absolute path (the executable, the data dir) names a file of the provisioned
//! system, so it is replaced by the same path under the host's root, and it must exist
//! there (provision.sh creates the data dirs). So no test-only path ever reaches the files
//! being tested.
//!
//! The end-to-end test needs root; it is skipped otherwise unless SKIFF_REQUIRE_PRIVILEGED
//! is set. The argument and expansion tests need only `sh`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use skiff_api::types::Node;
use skiff_client::Client;
use skiff_netplugin::netns;
use skiff_tests::cluster::{binary, eventually};
use skiff_tests::hosts::TestHosts;
use tempfile::TempDir;

const SETTLE: Duration = Duration::from_secs(60);
/// The control plane's port, as in the Vagrantfile.
const PORT: u16 = 7000;
/// systemd's PATH for system services.
const SYSTEMD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

fn provision_script() -> PathBuf {
    workspace().join("deploy/vagrant/provision.sh")
}

/// `sh provision.sh ARGS…`
fn provision(args: &[&str]) -> Output {
    Command::new("sh")
        .arg(provision_script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sh provision.sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file and directory under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// ---- systemd's syntax, the subset the units use ---------------------------------------------

/// A unit file: `(section, key, value)` in file order. Comments (`#`, `;`), blank lines and
/// continuation lines (a trailing `\` joins the next line with a space) as systemd reads them.
struct Unit {
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn parse(text: &str) -> anyhow::Result<Unit> {
        let mut entries = Vec::new();
        let mut section = String::new();
        let mut pending = String::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
                continue;
            }
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            let line = std::mem::take(&mut pending) + line;
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .with_context(|| format!("line {}: not KEY=VALUE: {line:?}", number + 1))?;
            ensure!(
                !section.is_empty(),
                "line {}: outside a section",
                number + 1
            );
            entries.push((
                section.clone(),
                key.trim().to_string(),
                value.trim().to_string(),
            ));
        }
        Ok(Unit { entries })
    }

    fn load(path: &Path) -> anyhow::Result<Unit> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {path:?}"))?;
        Unit::parse(&text).with_context(|| format!("parse {path:?}"))
    }

    /// Every value of `key` in `section`, in order.
    fn values(&self, section: &str, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    fn value(&self, section: &str, key: &str) -> Option<&str> {
        self.values(section, key).last().copied()
    }
}

/// The `[Service]` settings the launcher carries out; every other one it knows and leaves to
/// systemd (restart policy, limits, kill mode, sandboxing). A unit with a setting outside both
/// lists fails the test: the launcher would have to learn what it means first, so that it
/// never starts a daemon differently from systemd without anyone noticing.
const EMULATED: &[&str] = &["Type", "Environment", "EnvironmentFile", "ExecStart"];
const LEFT_TO_SYSTEMD: &[&str] = &[
    "Restart",
    "RestartSec",
    "TimeoutStopSec",
    "KillMode",
    "LimitNOFILE",
    "LimitNPROC",
    "LimitCORE",
    "TasksMax",
    // Checked against SKIFF_DATA_DIR instead; provision.sh creates the directory too.
    "StateDirectory",
    "StateDirectoryMode",
    "NoNewPrivileges",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
];

/// Splits a setting into words as systemd does: at whitespace, with `"…"` and `'…'` quoting
/// (quotes removed) and a backslash escaping `\`, `"`, `'` or a space. Other C escapes are
/// not supported (an error, so a unit using them fails the test).
fn split_words(value: &str) -> anyhow::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => match chars.next() {
                    Some(e @ ('\\' | '"' | '\'' | ' ')) => word.push(e),
                    other => bail!("unsupported escape \\{other:?} in {value:?}"),
                },
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, None) if c.is_whitespace() => break,
                (c, _) => word.push(c),
            }
        }
        ensure!(quote.is_none(), "unterminated quote in {value:?}");
        words.push(word);
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An `EnvironmentFile=` as systemd reads it: `KEY=VALUE` lines, `#`/`;` comment lines,
/// blank lines; whitespace around the key and before the value is dropped; a value is either
/// all in double quotes (where `\"`, `\\`, `\$` and `` \` `` are escapes), all in single
/// quotes (literal), or bare (trailing whitespace dropped). Continuation lines are not
/// supported (an error).
fn parse_env_file(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let context = || format!("line {}: {line:?}", number + 1);
        let (key, value) = line.split_once('=').with_context(context)?;
        let key = key.trim_end();
        ensure!(is_env_name(key), "not a variable name: {}", context());
        let value = value.trim();
        ensure!(!value.ends_with('\\'), "continuation line: {}", context());
        let value = if let Some(inner) = value.strip_prefix('"') {
            let inner = inner
                .strip_suffix('"')
                .with_context(|| format!("unterminated \": {}", context()))?;
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                        Some(e) => {
                            out.push('\\');
                            out.push(e);
                        }
                        None => bail!("trailing backslash: {}", context()),
                    },
                    '"' => bail!("stray \" inside a quoted value: {}", context()),
                    c => out.push(c),
                }
            }
            out
        } else if let Some(inner) = value.strip_prefix('\'') {
            inner
                .strip_suffix('\'')
                .with_context(|| format!("unterminated ': {}", context()))?
                .to_string()
        } else {
            ensure!(
                !value.contains(['"', '\'', '\\']),
                "quotes or backslashes inside a bare value: {}",
                context()
            );
            value.to_string()
        };
        vars.push((key.to_string(), value));
    }
    Ok(vars)
}

/// Expands an `ExecStart=` command line (already split into words) as systemd does:
///
/// - a word that is exactly `$NAME` becomes the variable's value split at whitespace: zero
///   or more words (none when it is unset or empty);
/// - `${NAME}` anywhere in a word is replaced by the value verbatim, and the word stays one
///   word (an empty one if the value is empty or unset);
/// - `$$` is a literal `$`; any other `$` (e.g. `$NAME` inside a longer word) stays as it is.
///
/// Not supported (an error): `${NAME:-default}`-style operators.
fn expand_exec(words: &[String], env: &BTreeMap<String, String>) -> anyhow::Result<Vec<String>> {
    let mut argv = Vec::new();
    for word in words {
        if let Some(name) = word.strip_prefix('$')
            && is_env_name(name)
        {
            if let Some(value) = env.get(name) {
                argv.extend(value.split_whitespace().map(str::to_string));
            }
            continue;
        }
        let mut out = String::new();
        let mut rest = word.as_str();
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(after) = after.strip_prefix('$') {
                out.push('$');
                rest = after;
            } else if let Some(inner) = after.strip_prefix('{') {
                let end = inner
                    .find('}')
                    .with_context(|| format!("unterminated ${{ in {word:?}"))?;
                let name = &inner[..end];
                ensure!(is_env_name(name), "unsupported ${{{name}}} in {word:?}");
                out.push_str(env.get(name).map_or("", String::as_str));
                rest = &inner[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        argv.push(out);
    }
    Ok(argv)
}

/// How systemd would start `unit` on the system provisioned at `root`: (argv with paths
/// mapped into `root`, environment). See the module documentation for the path mapping.
fn service_command(
    root: &Path,
    unit: &Unit,
) -> anyhow::Result<(Vec<String>, BTreeMap<String, String>)> {
    for (section, key, _) in &unit.entries {
        if section == "Service" {
            ensure!(
                EMULATED.contains(&key.as_str()) || LEFT_TO_SYSTEMD.contains(&key.as_str()),
                "[Service] {key}= is new to this launcher: teach it what systemd does with it"
            );
        }
    }
    let kind = unit.value("Service", "Type").unwrap_or("simple");
    ensure!(matches!(kind, "simple" | "exec"), "Type={kind}");
    // Environment= first, then the files, later assignments winning, as in systemd.
    let mut env = BTreeMap::new();
    for value in unit.values("Service", "Environment") {
        for assignment in split_words(value)? {
            let (key, value) = assignment
                .split_once('=')
                .with_context(|| format!("Environment={assignment}"))?;
            env.insert(key.to_string(), value.to_string());
        }
    }
    for path in unit.values("Service", "EnvironmentFile") {
        let (optional, path) = match path.strip_prefix('-') {
            Some(path) => (true, path),
            None => (false, path),
        };
        let file = under_root(root, path);
        match std::fs::read_to_string(&file) {
            Ok(text) => env.extend(parse_env_file(&text).with_context(|| format!("{file:?}"))?),
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("EnvironmentFile={path}")),
        }
    }
    let exec = unit.values("Service", "ExecStart");
    ensure!(exec.len() == 1, "one ExecStart= expected, not {exec:?}");
    ensure!(
        !exec[0].starts_with(['-', '@', ':', '+', '!']),
        "ExecStart prefixes are not supported: {}",
        exec[0]
    );
    let argv = expand_exec(&split_words(exec[0])?, &env)?;
    ensure!(
        argv.first().is_some_and(|a| a.starts_with('/')),
        "ExecStart must start with an absolute path: {argv:?}"
    );
    let argv = argv
        .into_iter()
        .map(|word| {
            if !word.starts_with('/') {
                return Ok(word);
            }
            let mapped = under_root(root, &word);
            ensure!(
                mapped.exists(),
                "{word} is named by the unit but was not provisioned ({mapped:?} is missing)"
            );
            Ok(mapped.display().to_string())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((argv, env))
}

/// `path` of the provisioned system, under `root`.
fn under_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

// ---- the end-to-end test -------------------------------------------------------------------

struct Daemon {
    host: usize,
    unit: &'static str,
    child: Child,
    log: PathBuf,
    data_dir: PathBuf,
}

/// The test's hosts, their roots and the daemons it started. Dropping it (also when the test
/// panics) kills the daemons and whatever they started, then (field order) removes the
/// network namespaces and the roots.
struct Provisioned {
    daemons: Vec<Daemon>,
    hosts: TestHosts,
    roots: Vec<TempDir>,
}

impl Provisioned {
    fn root(&self, host: usize) -> &Path {
        self.roots[host - 1].path()
    }

    fn logs(&self) -> String {
        self.daemons
            .iter()
            .map(|d| {
                let log = std::fs::read_to_string(&d.log).unwrap_or_default();
                format!("----- host {} {}\n{log}", d.host, d.unit)
            })
            .collect()
    }

    /// Starts `unit` on host `host` as systemd would.
    fn start(&mut self, host: usize, unit_name: &'static str) -> anyhow::Result<Vec<String>> {
        let root = self.root(host).to_path_buf();
        let unit = Unit::load(&root.join("etc/systemd/system").join(unit_name))?;
        let (argv, env) = service_command(&root, &unit)?;
        let data_dir = under_root(&root, &env["SKIFF_DATA_DIR"]);
        let log = root.join("journal.log");
        let out = std::fs::File::create(&log)?;
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env_clear()
            .env("PATH", SYSTEMD_PATH)
            .envs(&env)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = self.hosts.spawn(host, command)?;
        self.daemons.push(Daemon {
            host,
            unit: unit_name,
            child,
            log,
            data_dir,
        });
        Ok(argv)
    }
}

impl Drop for Provisioned {
    fn drop(&mut self) {
        for daemon in &mut self.daemons {
            let _ = daemon.child.kill();
            let _ = daemon.child.wait();
        }
        // The agent runs no pods here, but whatever it might have started or mounted under
        // its data dir goes too.
        for daemon in &self.daemons {
            skiff_tests::agent::sweep(&daemon.data_dir);
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

fn assert_executable_copy(installed: &Path, source: &Path) {
    let meta = std::fs::metadata(installed).unwrap_or_else(|e| panic!("{installed:?}: {e}"));
    assert!(meta.is_file(), "{installed:?} is not a file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o755, "{installed:?}");
    assert_eq!(
        meta.len(),
        std::fs::metadata(source).unwrap().len(),
        "{installed:?} is not a copy of {source:?}"
    );
}

/// The installed unit is the repository's, and its env file holds `want`.
fn assert_unit_and_env(root: &Path, unit: &str, env_file: &str, want: &[(&str, &str)]) -> Unit {
    let installed = root.join("etc/systemd/system").join(unit);
    let text = std::fs::read_to_string(&installed).unwrap_or_else(|e| panic!("{installed:?}: {e}"));
    assert_eq!(
        text,
        std::fs::read_to_string(workspace().join("deploy/systemd").join(unit)).unwrap(),
        "{installed:?} differs from deploy/systemd/{unit}"
    );
    let parsed = Unit::parse(&text).unwrap();
    assert_eq!(
        parsed.values("Service", "EnvironmentFile"),
        [format!("/etc/skiff/{env_file}")]
    );
    for (section, key) in [
        ("Unit", "Wants"),
        ("Unit", "After"),
        ("Service", "Restart"),
        ("Install", "WantedBy"),
    ] {
        assert!(parsed.value(section, key).is_some(), "{unit}: no {key}=");
    }
    assert!(
        parsed
            .value("Unit", "After")
            .unwrap()
            .contains("network-online.target")
    );
    assert_eq!(parsed.value("Service", "Restart"), Some("always"));
    assert!(parsed.value("Service", "LimitNOFILE").is_some(), "{unit}");

    let env_path = root.join("etc/skiff").join(env_file);
    let env: BTreeMap<String, String> =
        parse_env_file(&std::fs::read_to_string(&env_path).unwrap())
            .unwrap_or_else(|e| panic!("{env_path:?}: {e:#}"))
            .into_iter()
            .collect();
    for (key, value) in want {
        assert_eq!(
            env.get(*key).map(String::as_str),
            Some(*value),
            "{env_path:?}: {key}"
        );
    }
    // The data dir is the one systemd makes for StateDirectory=, and provision.sh made it.
    let state = parsed.value("Service", "StateDirectory").unwrap();
    assert_eq!(env["SKIFF_DATA_DIR"], format!("/var/lib/{state}"));
    assert!(under_root(root, &env["SKIFF_DATA_DIR"]).is_dir());
    parsed
}

/// `systemd-analyze verify` on the installed unit, with the root as its file system (it
/// checks the executable exists there). Skipped when systemd-analyze is not installed.
fn systemd_verify(root: &Path, unit: &str) {
    let output = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        // The root holds only our units, not the targets (sysinit.target …) they hang off.
        .arg("--recursive-errors=no")
        .arg(unit)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("systemd-analyze not installed: not verifying {unit}");
            return;
        }
        Err(e) => panic!("run systemd-analyze: {e}"),
    };
    assert!(
        output.status.success(),
        "systemd-analyze verify {unit}: {}\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    eprintln!("systemd-analyze verify {unit}: ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_hosts_form_a_cluster_with_a_ready_worker() {
    if !skiff_tests::host::privileged_tests_can_run() {
        return;
    }
    let control_plane = binary("skiff-control-plane");
    let agent = binary("skiff-agent");
    let cli = binary("skiff");
    let bin_dir = control_plane.parent().unwrap().to_path_buf();
    assert_eq!(agent.parent(), Some(bin_dir.as_path()));
    assert_eq!(cli.parent(), Some(bin_dir.as_path()));
    let bin_dir = bin_dir.display().to_string();

    let hosts = TestHosts::start(4).expect("test hosts");
    let roots = (1..=4)
        .map(|i| {
            tempfile::Builder::new()
                .prefix(&format!("skiff-provision-h{i}-"))
                .tempdir()
                .expect("temp root")
        })
        .collect();
    let mut run = Provisioned {
        daemons: Vec::new(),
        hosts,
        roots,
    };
    let ips: Vec<String> = (1..=4).map(|i| run.hosts.ip(i).to_string()).collect();
    let ip = |i: usize| ips[i - 1].clone();
    let peers = (1..=3)
        .map(|i| format!("{i}={}:{PORT}", ip(i)))
        .collect::<Vec<_>>()
        .join(",");
    let servers = (1..=3)
        .map(|i| format!("{}:{PORT}", ip(i)))
        .collect::<Vec<_>>()
        .join(",");
    // The cluster token every host is provisioned with (the Vagrantfile makes one too).
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_file_in(token_dir.path());

    // Provision like the Vagrantfile: hosts 1-3 are cp1..cp3, host 4 is the worker w1.
    for i in 1..=4 {
        let root = run.root(i).display().to_string();
        let id = i.to_string();
        let host_ip = ip(i);
        let mut args = if i <= 3 {
            vec![
                "control-plane",
                "--id",
                &id,
                "--ip",
                &host_ip,
                "--peers",
                &peers,
                "--extra-args",
                "--node-grace 5s",
            ]
        } else {
            vec![
                "worker",
                "--name",
                "w1",
                "--ip",
                &host_ip,
                "--servers",
                &servers,
                "--labels",
                "role=worker,zone=a",
                "--extra-args",
                "--heartbeat-interval 1s",
            ]
        };
        args.extend([
            "--root",
            &root,
            "--bin-dir",
            &bin_dir,
            "--token-file",
            &token_file,
            "--no-start",
        ]);
        let output = provision(&args);
        eprintln!(
            "provision.sh {args:?}\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        assert!(output.status.success(), "provision.sh failed on host {i}");
        assert!(text(&output.stdout).contains("not starting"));
    }

    // What was installed.
    for i in 1..=3 {
        let root = run.root(i);
        assert_executable_copy(
            &root.join("usr/local/bin/skiff-control-plane"),
            &control_plane,
        );
        assert_executable_copy(&root.join("usr/local/bin/skiff"), &cli);
        assert!(!root.join("usr/local/bin/skiff-agent").exists());
        assert!(!root.join("etc/systemd/system/skiff-agent.service").exists());
        let listen = format!("{}:{PORT}", ip(i));
        let id = i.to_string();
        let unit = assert_unit_and_env(
            root,
            "skiff-control-plane.service",
            "control-plane.env",
            &[
                ("SKIFF_ID", &id),
                ("SKIFF_LISTEN", &listen),
                ("SKIFF_PEERS", &peers),
                ("SKIFF_DATA_DIR", "/var/lib/skiff/control-plane"),
                ("SKIFF_ARGS", "--node-grace 5s"),
            ],
        );
        assert_eq!(unit.value("Service", "KillMode"), None);
        let mode = std::fs::metadata(root.join("var/lib/skiff/control-plane"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "the Raft data dir is private");
        assert_private_token(root, &token_file);
        systemd_verify(root, "skiff-control-plane.service");
    }
    let worker_root = run.root(4).to_path_buf();
    assert_executable_copy(&worker_root.join("usr/local/bin/skiff-agent"), &agent);
    assert_executable_copy(&worker_root.join("usr/local/bin/skiff"), &cli);
    assert!(
        !worker_root
            .join("usr/local/bin/skiff-control-plane")
            .exists()
    );
    let worker_listen = format!("{}:10250", ip(4));
    let worker_ip = ip(4);
    let unit = assert_unit_and_env(
        &worker_root,
        "skiff-agent.service",
        "agent.env",
        &[
            ("SKIFF_NAME", "w1"),
            ("SKIFF_SERVERS", &servers),
            ("SKIFF_NODE_IP", &worker_ip),
            ("SKIFF_LABELS", "role=worker,zone=a"),
            ("SKIFF_LISTEN", &worker_listen),
            ("SKIFF_DATA_DIR", "/var/lib/skiff/agent"),
            ("SKIFF_ARGS", "--heartbeat-interval 1s"),
        ],
    );
    assert_private_token(&worker_root, &token_file);
    // Restarting or upgrading the agent must not kill the pods' shims (same cgroup).
    assert_eq!(unit.value("Service", "KillMode"), Some("process"));
    systemd_verify(&worker_root, "skiff-agent.service");

    // Start the daemons from their units, as systemd would.
    for i in 1..=3 {
        let argv = run.start(i, "skiff-control-plane.service").unwrap();
        let root = run.root(i).display().to_string();
        let want: Vec<String> = [
            format!("{root}/usr/local/bin/skiff-control-plane"),
            "--id".into(),
            i.to_string(),
            "--data-dir".into(),
            format!("{root}/var/lib/skiff/control-plane"),
            "--listen".into(),
            format!("{}:{PORT}", ip(i)),
            "--peers".into(),
            peers.clone(),
            "--token-file".into(),
            format!("{root}/etc/skiff/token"),
            "--node-grace".into(),
            "5s".into(),
        ]
        .into();
        assert_eq!(argv, want, "host {i}'s command line");
    }
    let argv = run.start(4, "skiff-agent.service").unwrap();
    let root = worker_root.display().to_string();
    let want: Vec<String> = [
        format!("{root}/usr/local/bin/skiff-agent"),
        "--name".into(),
        "w1".into(),
        "--servers".into(),
        servers.clone(),
        "--node-ip".into(),
        worker_ip.clone(),
        "--labels".into(),
        "role=worker,zone=a".into(),
        "--data-dir".into(),
        format!("{root}/var/lib/skiff/agent"),
        "--listen".into(),
        worker_listen.clone(),
        "--token-file".into(),
        format!("{root}/etc/skiff/token"),
        "--heartbeat-interval".into(),
        "1s".into(),
    ]
    .into();
    assert_eq!(argv, want, "the worker's command line");

    // Through the SDK, from the underlay (the one place besides the hosts that reaches them).
    let endpoints: Vec<String> = servers.split(',').map(str::to_string).collect();
    let want_ip = worker_ip.clone();
    // cp1's admin.conf: the CA and a cluster-admin certificate.
    let admin_conf = run.root(1).join("var/lib/skiff/control-plane/admin.conf");
    skiff_tests::cluster::wait_for_file(&admin_conf)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", run.logs()));
    let tls = skiff_tests::cluster::admin_tls(&admin_conf).unwrap();
    let result = netns::run_async_in(&run.hosts.underlay_path(), move || async move {
        let client = Client::connect(endpoints, tls)?;
        client.wait_ready(SETTLE).await?;
        let status = eventually(SETTLE, || async {
            let status = client.cluster_status().await?;
            let leader = status.leader_id.context("no leader yet")?;
            ensure!(status.members.len() == 3, "members: {:?}", status.members);
            ensure!(
                status.members.iter().all(|m| m.voter && m.healthy),
                "members: {:?}",
                status.members
            );
            ensure!(
                status.members.iter().any(|m| m.id == leader),
                "leader {leader} is not a member"
            );
            Ok(status)
        })
        .await?;
        let node = eventually(SETTLE, || async {
            let node = client.get::<Node>("", "w1").await?;
            ensure!(skiff_tests::nodes::is_ready(&node), "w1 is not Ready yet");
            Ok(node)
        })
        .await?;
        let labels = node.metadata.labels.clone();
        ensure!(
            labels.get("role").map(String::as_str) == Some("worker")
                && labels.get("zone").map(String::as_str) == Some("a"),
            "labels: {labels:?}"
        );
        let addresses = node.status.as_ref().map(|s| s.addresses.clone());
        ensure!(
            addresses
                .iter()
                .flatten()
                .any(|a| a.type_ == "InternalIP" && a.address == want_ip),
            "addresses: {addresses:?}"
        );
        anyhow::Ok(status.leader_id)
    })
    .await
    .expect("underlay namespace");
    let leader = result.unwrap_or_else(|e| panic!("{e:#}\n{}", run.logs()));
    eprintln!("leader: {leader:?}; w1 is Ready");

    // The README's check, `vagrant ssh cp1 -c 'sudo skiff --config
    // /var/lib/skiff/control-plane/admin.conf get nodes'`: the installed CLI on host 1.
    let skiff = under_root(run.root(1), "/usr/local/bin/skiff");
    let config = admin_conf.display().to_string();
    let output = run
        .hosts
        .run_in(1, move || {
            Command::new(skiff)
                .args(["--config", &config, "get", "nodes"])
                .env_clear()
                .env("PATH", SYSTEMD_PATH)
                .env("SKIFF_CONFIG", "/nonexistent/skiff-config")
                .output()
        })
        .unwrap()
        .expect("run the installed skiff");
    let table = text(&output.stdout);
    eprintln!("skiff get nodes:\n{table}{}", text(&output.stderr));
    assert!(output.status.success());
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("w1 ") && l.contains(" Ready ")),
        "{table}"
    );
}

/// A fresh cluster token in `dir/token` (0600); its path.
fn token_file_in(dir: &Path) -> String {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("token");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    writeln!(file, "{}", skiff_pki::generate_token()).unwrap();
    path.display().to_string()
}

/// provision.sh installed the token as /etc/skiff/token, readable by root only.
fn assert_private_token(root: &Path, token_file: &str) {
    let installed = root.join("etc/skiff/token");
    assert_eq!(
        std::fs::read_to_string(&installed).unwrap(),
        std::fs::read_to_string(token_file).unwrap()
    );
    let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the token is the cluster's root secret"
    );
}

// ---- argument checks and the expansion rules (no root needed) -------------------------------

const CP_ARGS: &str =
    "control-plane --id 1 --ip 10.0.0.1 --peers 1=10.0.0.1:7000,2=10.0.0.2:7000,3=10.0.0.3:7000";
const WORKER_ARGS: &str = "worker --name w1 --ip 10.0.0.5 --servers 10.0.0.1:7000";

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

/// A bin dir with stand-ins for the three binaries (argument checks never run them).
fn fake_bin_dir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("skiff-provision-bin-")
        .tempdir()
        .unwrap();
    for name in ["skiff-control-plane", "skiff-agent", "skiff"] {
        let path = dir.path().join(name);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

#[test]
fn bad_arguments_fail_with_a_message_and_write_nothing() {
    let bin = fake_bin_dir();
    let root = tempfile::Builder::new()
        .prefix("skiff-provision-root-")
        .tempdir()
        .unwrap();
    let bin_dir = bin.path().display().to_string();
    let root_dir = root.path().display().to_string();
    let cp = |extra: &str| words(&format!("{CP_ARGS} {extra}"));
    let worker = |extra: &str| words(&format!("{WORKER_ARGS} {extra}"));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "missing the role"),
        (words("frobnicate --id 1"), "unknown role 'frobnicate'"),
        (words("--id 1"), "missing the role"),
        (
            words("control-plane --ip 10.0.0.1 --peers 1=10.0.0.1:7000"),
            "needs --id",
        ),
        (
            words("control-plane --id 0 --ip 10.0.0.1 --peers 1=10.0.0.1:7000"),
            "--id: '0' is not a positive integer",
        ),
        (
            words("control-plane --id one --ip 10.0.0.1 --peers 1=10.0.0.1:7000"),
            "--id: 'one'",
        ),
        (
            words("control-plane --id 1 --peers 1=10.0.0.1:7000"),
            "needs --ip",
        ),
        (
            words("control-plane --id 1 --ip 10.0.0.256 --peers 1=10.0.0.1:7000"),
            "--ip: '10.0.0.256' is not an IPv4 address",
        ),
        (words("control-plane --id 1 --ip 10.0.0.1"), "needs --peers"),
        (
            words("control-plane --id 1 --ip 10.0.0.1 --peers 1=10.0.0.1"),
            "--peers: malformed entry '1=10.0.0.1'",
        ),
        (
            words("control-plane --id 1 --ip 10.0.0.1 --peers 1=10.0.0.1:7000,x=10.0.0.2:7000"),
            "--peers: malformed entry 'x=10.0.0.2:7000'",
        ),
        (
            words("control-plane --id 1 --ip 10.0.0.1 --peers 1=10.0.0.1:70000"),
            "--peers: malformed entry '1=10.0.0.1:70000'",
        ),
        (
            words("control-plane --id 1 --ip 10.0.0.1 --peers 1=10.0.0.1:7000,1=10.0.0.2:7000"),
            "--peers: id 1 appears twice",
        ),
        (
            words("control-plane --id 4 --ip 10.0.0.1 --peers 1=10.0.0.1:7000"),
            "--peers has no entry for --id 4",
        ),
        (
            words("control-plane --id 1 --ip 10.0.0.9 --peers 1=10.0.0.1:7000"),
            "but --ip is 10.0.0.9",
        ),
        (cp("--name w1"), "--name is a worker option"),
        (cp("--frobnicate 1"), "unknown option --frobnicate"),
        (cp("--bin-dir"), "--bin-dir needs a value"),
        (cp("stray"), "unexpected argument 'stray'"),
        (cp("--no-start=yes"), "--no-start takes no value"),
        (
            cp("--extra-args=--x=\"y\""),
            "--extra-args: must not contain",
        ),
        (
            words("worker --ip 10.0.0.5 --servers 10.0.0.1:7000"),
            "needs --name",
        ),
        (
            words("worker --name Worker_1 --ip 10.0.0.5 --servers 10.0.0.1:7000"),
            "--name: 'Worker_1' is not a lowercase DNS subdomain",
        ),
        (words("worker --name w1 --ip 10.0.0.5"), "needs --servers"),
        (
            words("worker --name w1 --ip 10.0.0.5 --servers 10.0.0.1"),
            "--servers: malformed entry '10.0.0.1'",
        ),
        (worker("--labels zone"), "--labels: malformed entry 'zone'"),
        (
            worker("--labels zone=a,bad=x=y"),
            "--labels: malformed entry 'bad=x=y'",
        ),
        (worker("--id 1"), "--id is a control-plane option"),
    ];
    for (args, want) in cases {
        // The bin dir and the root go right after the role, so that a case can end in an
        // option without its value.
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        if matches!(args.first(), Some(&"control-plane" | &"worker")) {
            args.splice(
                1..1,
                ["--bin-dir", &bin_dir, "--root", &root_dir, "--no-start"],
            );
        }
        let output = provision(&args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{args:?}: want {want:?} in:\n{stderr}"
        );
        assert!(stderr.contains("--help"), "{args:?}: {stderr}");
        assert_eq!(text(&output.stdout), "", "{args:?}");
        assert_eq!(
            tree(root.path()),
            Vec::<String>::new(),
            "{args:?} wrote files"
        );
    }

    // Missing inputs are named too, still before anything is written.
    let missing_bin = provision(&[
        "worker",
        "--name",
        "w1",
        "--ip",
        "10.0.0.5",
        "--servers",
        "10.0.0.1:7000",
        "--bin-dir",
        "/nonexistent/bin",
        "--root",
        &root_dir,
    ]);
    assert_eq!(missing_bin.status.code(), Some(2));
    assert!(
        text(&missing_bin.stderr).contains("--bin-dir /nonexistent/bin: no executable skiff-agent")
    );
    let args = cp(&format!(
        "--bin-dir {bin_dir} --root /nonexistent/root --no-start"
    ));
    let missing_root = provision(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(missing_root.status.code(), Some(2));
    assert!(text(&missing_root.stderr).contains("--root /nonexistent/root: not a directory"));
    assert_eq!(tree(root.path()), Vec::<String>::new());

    let help = provision(&["--help"]);
    assert!(help.status.success());
    let usage = text(&help.stdout);
    assert!(usage.contains("provision.sh control-plane --id N --ip IP --peers"));
    assert!(usage.contains("provision.sh worker --name NAME --ip IP --servers"));
}

#[test]
fn provisioning_again_updates_the_flags_and_keeps_the_data() {
    let bin = fake_bin_dir();
    let root = tempfile::Builder::new()
        .prefix("skiff-provision-root-")
        .tempdir()
        .unwrap();
    let bin_dir = bin.path().display().to_string();
    let root_dir = root.path().display().to_string();
    let token_file = token_file_in(bin.path());
    let first = std::cell::Cell::new(true);
    let run = |labels: &str| {
        // The token is needed once: provisioning again keeps the installed one.
        let token: &[&str] = if first.replace(false) {
            &["--token-file", &token_file]
        } else {
            &[]
        };
        let output = provision(
            &[
                &[
                    "worker",
                    "--name",
                    "w2",
                    "--ip",
                    "10.0.0.6",
                    "--servers",
                    "10.0.0.1:7000,10.0.0.2:7000",
                    "--labels",
                    labels,
                    "--bin-dir",
                    &bin_dir,
                    "--root",
                    &root_dir,
                ],
                token,
            ]
            .concat(),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let out = run("zone=a");
    // --root never starts anything, even without --no-start.
    assert!(out.contains("not starting skiff-agent.service"), "{out}");
    assert!(out.contains("not installing busybox-static"), "{out}");
    let kept = root.path().join("var/lib/skiff/agent/kept");
    std::fs::write(&kept, "pod state").unwrap();
    run("zone=b");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "pod state");
    let env = std::fs::read_to_string(root.path().join("etc/skiff/agent.env")).unwrap();
    let env: BTreeMap<_, _> = parse_env_file(&env).unwrap().into_iter().collect();
    assert_eq!(env["SKIFF_LABELS"], "zone=b");
    assert_eq!(env["SKIFF_ARGS"], "");
    // No temporary files left behind by the atomic replacements.
    let files = tree(root.path());
    assert!(!files.iter().any(|f| f.contains(".new.")), "{files:?}");
    assert_eq!(
        files,
        [
            "etc",
            "etc/skiff",
            "etc/skiff/agent.env",
            "etc/skiff/token",
            "etc/systemd",
            "etc/systemd/system",
            "etc/systemd/system/skiff-agent.service",
            "usr",
            "usr/local",
            "usr/local/bin",
            "usr/local/bin/skiff",
            "usr/local/bin/skiff-agent",
            "var",
            "var/lib",
            "var/lib/skiff",
            "var/lib/skiff/agent",
            "var/lib/skiff/agent/kept",
        ]
    );
}

#[test]
fn exec_start_expands_like_systemd() {
    let env: BTreeMap<String, String> = [("ONE", "a b"), ("EMPTY", ""), ("ARGS", "  --x 1\t--y  ")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let expand = |line: &str| expand_exec(&split_words(line).unwrap(), &env).unwrap();
    // ${VAR}: one word, verbatim, also when empty or unset.
    assert_eq!(
        expand("/bin/x ${ONE} --k=${ONE}!"),
        ["/bin/x", "a b", "--k=a b!"]
    );
    assert_eq!(expand("/bin/x ${EMPTY} ${UNSET}"), ["/bin/x", "", ""]);
    // $VAR alone: split at whitespace into zero or more words.
    assert_eq!(
        expand("/bin/x $ARGS $ONE"),
        ["/bin/x", "--x", "1", "--y", "a", "b"]
    );
    assert_eq!(expand("/bin/x $EMPTY $UNSET"), ["/bin/x"]);
    // Quotes group words (and do not stop $VAR from splitting); $$ is a dollar; $VAR inside a
    // longer word is left alone.
    assert_eq!(
        expand("/bin/x \"p q\" $$ONE a$ONE"),
        ["/bin/x", "p q", "$ONE", "a$ONE"]
    );
    assert!(expand_exec(&["${ONE:-x}".into()], &env).is_err());

    // Environment files as systemd reads them.
    let vars = parse_env_file(
        "# comment\n; comment\n\nA=1\n B = two words  \nC=\"q \\\" \\$x\"\nD='s \\ x'\nE=\n",
    )
    .unwrap();
    assert_eq!(
        vars,
        [
            ("A".to_string(), "1".to_string()),
            ("B".into(), "two words".into()),
            ("C".into(), "q \" $x".into()),
            ("D".into(), "s \\ x".into()),
            ("E".into(), "".into()),
        ]
    );
    assert!(parse_env_file("A=1 \\\n").is_err());
    assert!(parse_env_file("1A=x\n").is_err());

    // The repository's units, with the flags an env file would give them.
    let dir = tempfile::tempdir().unwrap();
    for path in ["usr/local/bin", "var/lib/skiff/agent", "etc/skiff"] {
        std::fs::create_dir_all(dir.path().join(path)).unwrap();
    }
    std::fs::write(dir.path().join("usr/local/bin/skiff-agent"), "").unwrap();
    std::fs::write(dir.path().join("etc/skiff/token"), "").unwrap();
    std::fs::write(
        dir.path().join("etc/skiff/agent.env"),
        "SKIFF_NAME=\"n\"\nSKIFF_SERVERS=\"s:1\"\nSKIFF_NODE_IP=\"1.2.3.4\"\nSKIFF_LABELS=\"\"\n\
         SKIFF_LISTEN=\"1.2.3.4:10250\"\nSKIFF_DATA_DIR=\"/var/lib/skiff/agent\"\nSKIFF_ARGS=\"\"\n",
    )
    .unwrap();
    let unit = Unit::load(&workspace().join("deploy/systemd/skiff-agent.service")).unwrap();
    let (argv, env) = service_command(dir.path(), &unit).unwrap();
    let root = dir.path().display().to_string();
    assert_eq!(
        argv,
        [
            format!("{root}/usr/local/bin/skiff-agent"),
            "--name".into(),
            "n".into(),
            "--servers".into(),
            "s:1".into(),
            "--node-ip".into(),
            "1.2.3.4".into(),
            // No labels: still one (empty) word, so the flags stay paired.
            "--labels".into(),
            "".into(),
            "--data-dir".into(),
            format!("{root}/var/lib/skiff/agent"),
            "--listen".into(),
            "1.2.3.4:10250".into(),
            "--token-file".into(),
            format!("{root}/etc/skiff/token"),
        ]
    );
    assert_eq!(env["RUST_LOG"], "info");
    assert_eq!(env["NO_COLOR"], "1");
    // A path the provisioning did not create is an error, not a path on this machine.
    std::fs::remove_dir(dir.path().join("var/lib/skiff/agent")).unwrap();
    let error = service_command(dir.path(), &unit).unwrap_err();
    assert!(format!("{error:#}").contains("/var/lib/skiff/agent is named by the unit"));
}
