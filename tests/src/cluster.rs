//! Control-plane clusters of real `skiff-control-plane` processes on loopback ports.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use skiff_tests::cluster::ControlPlaneCluster;
//! let mut cluster = ControlPlaneCluster::start(3)?;
//! let leader = cluster.wait_for_leader(std::time::Duration::from_secs(30)).await?;
//! cluster.kill(leader);
//! cluster.restart(leader);
//! # Ok(()) }
//! ```

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use skiff_api::proto::ClusterStatusRequest;
use skiff_api::proto::cluster_client::ClusterClient;
use tempfile::TempDir;

/// The files of a running test cluster, by each member's endpoint: its token file and
/// member 1's `admin.conf`. Lets helpers that are handed only endpoints (agents, `skiff`
/// runs) find the credentials of the cluster behind them. Loopback clusters have unique
/// ports ([`free_port`]); clusters on test hosts reuse addresses, so code that may run
/// several at once passes their files explicitly (as `MultiHost` does).
#[derive(Debug, Clone)]
pub struct ClusterFiles {
    pub token_file: PathBuf,
    pub admin_conf: PathBuf,
}

fn registry() -> std::sync::MutexGuard<'static, HashMap<String, ClusterFiles>> {
    static FILES: OnceLock<Mutex<HashMap<String, ClusterFiles>>> = OnceLock::new();
    FILES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The files of the test cluster serving `endpoint` (`HOST:PORT`, `http://` optional).
pub fn cluster_files(endpoint: &str) -> Option<ClusterFiles> {
    let endpoint = endpoint.split(',').next()?.trim();
    let endpoint = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    registry().get(endpoint).cloned()
}

/// Waits (up to 60 s) until `path` exists: a member writes its admin.conf as it starts.
pub fn wait_for_file(path: &Path) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if std::time::Instant::now() > deadline {
            bail!("{} did not appear within 60 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs `skiff --server SERVERS ARGS…` with no endpoint from the environment, and
/// `--config` the admin.conf of the test cluster behind SERVERS (none for other
/// servers): (exit code, stdout, stderr).
pub fn skiff_cli(servers: &str, args: &[&str]) -> (i32, String, String) {
    let config = match cluster_files(servers) {
        Some(files) => {
            wait_for_file(&files.admin_conf).expect("admin.conf");
            files.admin_conf
        }
        None => PathBuf::from("/nonexistent/skiff-config"),
    };
    let mut command = skiff_command(&config);
    command.arg("--server").arg(servers).args(args);
    run_skiff(command)
}

/// `skiff --config CONFIG`, with no endpoint or config from the environment: the config
/// alone says where the cluster is (its servers, and the namespace they are reached from).
pub fn skiff_command(config: &Path) -> Command {
    let mut command = Command::new(binary("skiff"));
    command
        .arg("--config")
        .arg(config)
        .env_remove("SKIFF_SERVER")
        .env("SKIFF_CONFIG", "/nonexistent/skiff-config");
    command
}

/// Runs a `skiff` command to its end: (exit code, stdout, stderr).
pub fn run_skiff(mut command: Command) -> (i32, String, String) {
    let output = command.output().expect("run skiff");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The path of a workspace binary built with the current profile, built once per process.
/// Integration tests live in another package than the binaries, so cargo does not build
/// them for us. Panics when the build fails (the compiler's messages are on stderr).
pub fn binary(name: &str) -> PathBuf {
    try_binary(name, !cfg!(debug_assertions)).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Like [`binary`], with an explicit profile (`release`), reporting failures as errors.
pub fn try_binary(name: &str, release: bool) -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Mutex<HashMap<(String, bool), PathBuf>>> = OnceLock::new();
    // Holding the lock while building keeps concurrent tests from racing the same build.
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (name.to_string(), release);
    if let Some(path) = built.get(&key) {
        return Ok(path.clone());
    }
    let workspace = workspace_root();
    let mut command = cargo_command();
    command.current_dir(&workspace).args(["build", "--quiet"]);
    if release {
        command.args(["--release", "--bin", name, "-p", package_of(name)]);
    } else {
        // The same build as `cargo test --workspace` (features unified across every member
        // and target), so under it this is a no-op; `-p` alone would resolve other features
        // and rebuild a large part of the dependency tree.
        command.args(["--workspace", "--all-targets"]);
    }
    let status = command.status().context("run cargo build")?;
    if !status.success() {
        bail!("cargo build of {name} failed ({status})");
    }
    let path = target_dir(&workspace)
        .join(if release { "release" } else { "debug" })
        .join(name);
    if !path.is_file() {
        bail!("cargo built {name} but {} does not exist", path.display());
    }
    built.insert(key, path.clone());
    Ok(path)
}

/// `cargo` as the surrounding `cargo test` runs it, in the environment of the `cargo test`
/// itself: see [`without_test_env`].
pub fn cargo_command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    without_test_env(&mut command);
    command
}

/// Removes the variables cargo sets for a test process (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`,
/// `OUT_DIR`, …) from a command that runs cargo. Build scripts that watch one of them
/// (`rerun-if-env-changed`) would otherwise rerun, and a nested build would recompile and
/// relink most of the tree into a second copy.
pub fn without_test_env(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_for_the_test = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if set_for_the_test {
            command.env_remove(key);
        }
    }
    command
}

/// The package that holds a binary; binaries are named after their package unless listed.
fn package_of(binary: &str) -> &str {
    match binary {
        "skiff" => "skiff-cli",
        other => other,
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// `CARGO_TARGET_DIR` (relative to the workspace, where we run cargo) or `<workspace>/target`.
fn target_dir(workspace: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// A loopback port that was free a moment ago and that this process has not handed out
/// before.
///
/// Why not simply bind `127.0.0.1:0`: the kernel takes those ports from the ephemeral range,
/// the same range it uses for the source ports of outgoing connections, so a port read that
/// way was seen taken by a client connection before the server process could bind it. Ports
/// below the ephemeral range, picked at a random offset, do not race with that.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    let (low, high) = (10_000u16, ephemeral_range_start().clamp(10_001, 32_768));
    let span = u64::from(high - low);
    // A random start spreads concurrent test processes over the range.
    let start = RandomState::new().build_hasher().finish() % span;
    (0..span)
        .map(|i| low + ((start + i) % span) as u16)
        .find(|port| {
            !handed_out.contains(port) && std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok()
        })
        .inspect(|port| {
            handed_out.insert(*port);
        })
        .expect("a free loopback port below the ephemeral range")
}

/// The first port the kernel uses for outgoing connections (Linux's default when unknown).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Options for [`ControlPlaneCluster`]; `ControlPlaneCluster::builder(n)` fills the defaults.
#[derive(Debug, Clone)]
pub struct ControlPlaneClusterBuilder {
    /// Members, with ids `1..=nodes`.
    pub nodes: usize,
    /// Flags every member gets after the standard ones (e.g. `--request-timeout-ms 500`).
    pub extra_args: Vec<String>,
    /// Run the release binary (the benchmark) instead of the current profile's.
    pub release: bool,
    /// Where the cluster's temp dir goes; the system temp dir when `None`.
    pub parent_dir: Option<PathBuf>,
    /// Member i runs inside network namespace `hosts[i-1].0` on address `hosts[i-1].1`
    /// (test hosts); empty: every member on 127.0.0.1 in this namespace.
    pub hosts: Vec<(PathBuf, std::net::Ipv4Addr)>,
    /// Ports member i listens on (`listen_ports[i-1]`); free ports when empty.
    pub listen_ports: Vec<u16>,
    /// Addresses members name each other by in `--peers`, when not their own listen
    /// address (e.g. a delaying proxy in front of each); clients still dial members directly.
    pub advertise: BTreeMap<u64, String>,
    /// Members serve Prometheus metrics (each on a port of its own); off: `--metrics-listen
    /// off`, for the benchmark's comparison.
    pub metrics: bool,
    /// Run this `skiff-control-plane` instead of building the workspace's (another commit's
    /// build, for before/after figures in one sitting).
    pub binary: Option<PathBuf>,
}

impl ControlPlaneClusterBuilder {
    pub fn new(nodes: usize) -> Self {
        ControlPlaneClusterBuilder {
            nodes,
            extra_args: Vec::new(),
            release: !cfg!(debug_assertions),
            parent_dir: None,
            hosts: Vec::new(),
            listen_ports: Vec::new(),
            advertise: BTreeMap::new(),
            metrics: true,
            binary: None,
        }
    }

    /// Member i listens on `ports[i-1]` and its peers reach it at `advertise[i]`.
    pub fn through(mut self, ports: Vec<u16>, advertise: BTreeMap<u64, String>) -> Self {
        self.listen_ports = ports;
        self.advertise = advertise;
        self
    }

    /// Runs member i inside test host `hosts[i-1]` (its netns pin and address).
    pub fn on_hosts(mut self, hosts: Vec<(PathBuf, std::net::Ipv4Addr)>) -> Self {
        self.hosts = hosts;
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    pub fn release(mut self, release: bool) -> Self {
        self.release = release;
        self
    }

    pub fn binary(mut self, binary: Option<PathBuf>) -> Self {
        self.binary = binary;
        self
    }

    pub fn parent_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.parent_dir = Some(dir.into());
        self
    }

    /// Builds the binary, then spawns every member (without waiting for a leader).
    pub fn start(self) -> anyhow::Result<ControlPlaneCluster> {
        let binary = match &self.binary {
            Some(path) => path.clone(),
            None => try_binary("skiff-control-plane", self.release)?,
        };
        let builder = tempfile::Builder::new().prefix("skiff-test-").to_owned();
        let root = match &self.parent_dir {
            Some(parent) => builder.tempdir_in(parent)?,
            None => builder.tempdir()?,
        };
        if !self.hosts.is_empty() && self.hosts.len() != self.nodes {
            bail!("{} hosts for {} members", self.hosts.len(), self.nodes);
        }
        let members = (1..=self.nodes as u64)
            .map(|id| {
                let member = match self.hosts.get(id as usize - 1) {
                    // A host of its own: any port is free there.
                    Some((netns, ip)) => Member {
                        host: ip.to_string(),
                        netns: Some(netns.clone()),
                        kube_port: 6443,
                        ..Member::new(7000)
                    },
                    None => Member::new(
                        self.listen_ports
                            .get(id as usize - 1)
                            .copied()
                            .unwrap_or_else(free_port),
                    ),
                };
                let member = Member {
                    advertise: self.advertise.get(&id).cloned(),
                    ..member
                };
                (id, member)
            })
            .collect();
        // The cluster token, in a 0600 file every member (and agent) is given.
        let token_file = root.path().join("token");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&token_file)
                .context("token file")?;
            writeln!(file, "{}", skiff_pki::generate_token())?;
        }
        let mut cluster = ControlPlaneCluster {
            members,
            root,
            binary,
            extra_args: self.extra_args,
            metrics: self.metrics,
            tls: OnceLock::new(),
        };
        cluster.register();
        // On an error here, dropping `cluster` kills the members already spawned.
        for id in cluster.ids() {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }
}

struct Member {
    host: String,
    port: u16,
    /// Where it serves Prometheus metrics (`--metrics-listen 127.0.0.1:PORT`): members
    /// share loopback, so each gets its own port instead of 9190.
    metrics_port: u16,
    /// Where it serves the Kubernetes API (`--kube-listen`), on `host`.
    kube_port: u16,
    /// The test host's network namespace it runs in, if any.
    netns: Option<PathBuf>,
    /// Flags for this member only, after everyone's.
    extra_args: Vec<String>,
    /// The address peers reach it at, when not `host:port`.
    advertise: Option<String>,
    // A Mutex so that `is_running(&self)` can reap a process that exited by itself.
    child: Mutex<Option<Child>>,
}

impl Member {
    fn new(port: u16) -> Self {
        Member {
            host: "127.0.0.1".into(),
            port,
            metrics_port: free_port(),
            // Members share loopback: each gets its own port instead of 6443.
            kube_port: free_port(),
            netns: None,
            extra_args: Vec::new(),
            advertise: None,
            child: Mutex::new(None),
        }
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// N control-plane processes (`--id 1..=n`) with their data dirs (`nI/`) and logs (`nI.log`)
/// in one temp dir. Dropping it kills every process and removes the temp dir, also when a
/// test panics (the logs are printed to stderr first).
pub struct ControlPlaneCluster {
    members: BTreeMap<u64, Member>,
    root: TempDir,
    binary: PathBuf,
    extra_args: Vec<String>,
    /// The admin's TLS client config, read from member 1's admin.conf once it exists.
    tls: OnceLock<Arc<rustls::ClientConfig>>,
    /// Whether members serve metrics (see [`ControlPlaneClusterBuilder::metrics`]).
    metrics: bool,
}

impl ControlPlaneCluster {
    /// Spawns `nodes` members with the default options.
    pub fn start(nodes: usize) -> anyhow::Result<ControlPlaneCluster> {
        ControlPlaneClusterBuilder::new(nodes).start()
    }

    /// Spawns `nodes` members and waits until they serve (`wait_ready`, 30 s); panics with
    /// their logs if they do not.
    pub async fn start_ready(nodes: usize) -> ControlPlaneCluster {
        let cluster = ControlPlaneCluster::start(nodes).expect("start the control plane");
        cluster
            .client()
            .wait_ready(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        cluster
    }

    /// Spawns `nodes` members, each with `extra_args` after the standard flags.
    pub fn start_with(nodes: usize, extra_args: &[&str]) -> anyhow::Result<ControlPlaneCluster> {
        let mut builder = ControlPlaneClusterBuilder::new(nodes);
        builder.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        builder.start()
    }

    pub fn builder(nodes: usize) -> ControlPlaneClusterBuilder {
        ControlPlaneClusterBuilder::new(nodes)
    }

    /// Every member id, running or not.
    pub fn ids(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    pub fn is_running(&self, id: u64) -> bool {
        let mut child = self.members[&id].child();
        match child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            // Exited by itself (or cannot be polled): reap it and report it down.
            Some(_) => {
                *child = None;
                false
            }
            None => false,
        }
    }

    /// Waits up to `timeout` for a member to exit by itself; its exit code (`None`: still
    /// running, killed by a signal, or not started).
    pub fn wait_exit(&self, id: u64, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut child = self.members[&id].child();
            match child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => {
                    *child = None;
                    return status.code();
                }
                Some(Ok(None)) if std::time::Instant::now() < deadline => {}
                _ => return None,
            }
            drop(child);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id of a running member.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.members[&id].child().as_ref().map(|c| c.id())
    }

    pub fn running_ids(&self) -> Vec<u64> {
        self.ids()
            .into_iter()
            .filter(|id| self.is_running(*id))
            .collect()
    }

    /// `HOST:PORT` of a member (running or not).
    pub fn endpoint(&self, id: u64) -> String {
        let member = &self.members[&id];
        format!("{}:{}", member.host, member.port)
    }

    /// Member `id`'s Kubernetes API: `https://HOST:PORT`.
    pub fn kube_url(&self, id: u64) -> String {
        let member = &self.members[&id];
        format!("https://{}:{}", member.host, member.kube_port)
    }

    /// Member `id`'s Prometheus endpoint, `127.0.0.1:PORT` (in its test host's network
    /// namespace when it runs in one).
    pub fn metrics_endpoint(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.members[&id].metrics_port)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.ids().into_iter().map(|id| self.endpoint(id)).collect()
    }

    /// The cluster token file (0600) every member and agent is started with.
    pub fn token_file(&self) -> PathBuf {
        self.root.path().join("token")
    }

    /// Member 1's admin.conf: every endpoint, the CA and a cluster-admin certificate.
    pub fn admin_conf(&self) -> PathBuf {
        self.data_dir(1).join("admin.conf")
    }

    /// Makes this cluster's files findable by its endpoints ([`cluster_files`]).
    fn register(&self) {
        let files = ClusterFiles {
            token_file: self.token_file(),
            admin_conf: self.admin_conf(),
        };
        let mut registry = registry();
        for endpoint in self.endpoints() {
            registry.insert(endpoint, files.clone());
        }
    }

    /// The admin's TLS client config (the CA and the cluster-admin certificate from
    /// member 1's admin.conf), waiting for member 1 to write it.
    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        if let Some(tls) = self.tls.get() {
            return tls.clone();
        }
        let path = self.admin_conf();
        wait_for_file(&path).unwrap_or_else(|e| panic!("{e:#}\n{}", self.logs()));
        let tls = admin_tls(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        self.tls.get_or_init(|| tls).clone()
    }

    /// A TLS client config with a member certificate of this cluster (issued from its
    /// token, id [`OBSERVER_MEMBER_ID`], never in the membership): for tests that call the
    /// members-only `Raft` service, e.g. a member's own `NodeStatus` view.
    pub fn member_tls_config(&self) -> Arc<rustls::ClientConfig> {
        let token = skiff_pki::ClusterToken::from_file(&self.token_file()).expect("token file");
        let member = skiff_pki::issue_member_cert(&token, OBSERVER_MEMBER_ID, &[])
            .expect("member certificate");
        skiff_pki::tls::client_config(
            &token.ca_cert_pem(),
            Some((&member.cert_pem, &member.key_pem)),
            skiff_pki::tls::ServerCheck::Member,
        )
        .expect("member tls config")
    }

    /// The admin's TLS config if admin.conf is there already (never waits).
    fn tls_if_ready(&self) -> Option<Arc<rustls::ClientConfig>> {
        if let Some(tls) = self.tls.get() {
            return Some(tls.clone());
        }
        let tls = admin_tls(&self.admin_conf()).ok()?;
        Some(self.tls.get_or_init(|| tls).clone())
    }

    /// A client builder for these members with the admin credential, to be built where
    /// the client is used (e.g. inside a network namespace).
    pub fn client_builder(
        &self,
        endpoints: &[String],
        timeout: Duration,
    ) -> skiff_client::ClientBuilder {
        skiff_client::Client::builder(endpoints)
            .tls(self.tls_config())
            .request_timeout(timeout)
    }

    /// An SDK client for these members, with the given request timeout: the one way tests
    /// make a client for a cluster, so how clients authenticate changes in one place. It
    /// carries the cluster-admin certificate of member 1's admin.conf.
    pub fn client_for(&self, endpoints: &[String], timeout: Duration) -> skiff_client::Client {
        self.client_builder(endpoints, timeout)
            .build()
            .expect("valid endpoints")
    }

    /// The cluster token every member was started with.
    pub fn cluster_token(&self) -> skiff_pki::ClusterToken {
        skiff_pki::ClusterToken::from_file(&self.token_file()).expect("token file")
    }

    /// TLS with the cluster CA and `client` (certificate and key PEM) if given, demanding a
    /// member's certificate of the server.
    pub fn tls_config_with(&self, client: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
        skiff_pki::tls::client_config(
            &self.cluster_token().ca_cert_pem(),
            client,
            skiff_pki::tls::ServerCheck::Member,
        )
        .expect("client config")
    }

    /// TLS with the cluster CA and no client certificate: what a bearer token rides on.
    pub fn ca_only_tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls_config_with(None)
    }

    /// Joins node `name` with `key` through member 1 the way an agent does, proving the
    /// token `token` (the cluster's, or another to be refused): the node certificate PEM,
    /// after checking the returned CA against `token`, or the refusal.
    pub async fn join_node(
        &self,
        token: &skiff_pki::ClusterToken,
        name: &str,
        key: &skiff_pki::NodeKey,
    ) -> Result<String, tonic::Status> {
        let csr_pem = key.csr_pem(name).expect("csr");
        let proof = skiff_pki::join_proof(token, &skiff_pki::csr_der(&csr_pem).expect("csr der"));
        let channel = skiff_pki::tls::endpoint(&self.endpoint(1))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(skiff_pki::tls::connector(self.ca_only_tls_config()));
        let answer = skiff_api::proto::cluster_client::ClusterClient::new(channel)
            .join_node(skiff_api::proto::JoinNodeRequest {
                node_name: name.into(),
                csr_pem,
                proof,
                node_ip: "127.0.0.1".into(),
            })
            .await?
            .into_inner();
        token
            .verify_ca(answer.ca_pem.as_bytes())
            .expect("the CA returned is the token's");
        Ok(answer.certificate_pem)
    }

    /// An SDK client for `endpoints` that authenticates as bearer token `token` alone.
    pub fn bearer_client(&self, endpoints: &[String], token: &str) -> skiff_client::Client {
        skiff_client::Client::builder(endpoints)
            .tls(self.ca_only_tls_config())
            .bearer_token(token)
            .request_timeout(Duration::from_secs(10))
            .build()
            .expect("valid endpoints")
    }

    /// A raw tonic channel to `endpoint` with the admin credential (for the generated
    /// gRPC clients).
    pub fn channel(&self, endpoint: &str) -> tonic::transport::Channel {
        skiff_pki::tls::endpoint(endpoint)
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(1))
            .connect_with_connector_lazy(skiff_pki::tls::connector(self.tls_config()))
    }

    /// A client for every member with the SDK's default timeout.
    pub fn client(&self) -> skiff_client::Client {
        self.client_for(&self.endpoints(), Duration::from_secs(10))
    }

    pub fn running_endpoints(&self) -> Vec<String> {
        self.running_ids()
            .into_iter()
            .map(|id| self.endpoint(id))
            .collect()
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("n{id}"))
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("n{id}.log"))
    }

    /// The `--peers` value: every member's id and address.
    pub fn peers_flag(&self) -> String {
        self.members
            .iter()
            .map(|(id, m)| match &m.advertise {
                Some(address) => format!("{id}={address}"),
                None => format!("{id}={}:{}", m.host, m.port),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The temp dir holding data dirs and logs.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        if self.is_running(id) {
            return Ok(());
        }
        let args: Vec<String> = [
            "--id".to_string(),
            id.to_string(),
            "--data-dir".into(),
            self.data_dir(id).display().to_string(),
            "--listen".into(),
            self.endpoint(id),
            "--peers".into(),
            self.peers_flag(),
            "--token-file".into(),
            self.token_file().display().to_string(),
            "--metrics-listen".into(),
            if self.metrics {
                format!("127.0.0.1:{}", self.members[&id].metrics_port)
            } else {
                "off".into()
            },
            "--kube-listen".into(),
            format!("{}:{}", self.members[&id].host, self.members[&id].kube_port),
        ]
        .into_iter()
        .chain(self.extra_args.iter().cloned())
        .chain(self.members[&id].extra_args.iter().cloned())
        .collect();
        // One log per member across restarts; a header marks each start.
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .context("open node log")?;
        writeln!(log, "===== skiff-control-plane {}", args.join(" "))?;
        let mut command = Command::new(&self.binary);
        command
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = match &self.members[&id].netns {
            Some(netns) => skiff_netplugin::netns::run_in(netns, move || command.spawn())?,
            None => command.spawn(),
        }
        .with_context(|| format!("spawn {}", self.binary.display()))?;
        *self.members[&id].child() = Some(child);
        Ok(())
    }

    /// Starts a stopped member again with the same flags and data dir (no-op if running).
    pub fn restart(&mut self, id: u64) {
        self.spawn(id)
            .unwrap_or_else(|e| panic!("restart node {id}: {e:#}"));
    }

    pub fn restart_all(&mut self) {
        for id in self.ids() {
            self.restart(id);
        }
    }

    /// Starts a new member with a fresh data dir and `--initial-cluster-state existing`;
    /// it joins only once the cluster adds it (as a learner, then a voter) through the
    /// membership API.
    pub fn add_member(&mut self) -> u64 {
        let id = self.members.keys().max().copied().unwrap_or(0) + 1;
        let mut member = Member::new(free_port());
        member.extra_args = vec!["--initial-cluster-state".into(), "existing".into()];
        self.members.insert(id, member);
        self.register();
        self.restart(id);
        id
    }

    /// Sets flags one member gets after everyone's (e.g. `--initial-cluster-state
    /// existing` for a member coming back with a wiped data dir); used from its next start.
    pub fn set_member_args(&mut self, id: u64, args: &[&str]) {
        if let Some(m) = self.members.get_mut(&id) {
            m.extra_args = args.iter().map(|a| a.to_string()).collect();
        }
    }

    /// SIGKILL, then reap (no-op if not running).
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.members[&id].child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn kill_all(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
    }

    /// Everything a member has logged so far (all its runs), for failure messages.
    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    /// Every member's log, headed by its id.
    pub fn logs(&self) -> String {
        self.ids()
            .into_iter()
            .map(|id| format!("----- node {id} log -----\n{}", self.log_of(id)))
            .collect()
    }

    /// The leader as reported by the first running member that answers, if that leader is
    /// itself running (a dead leader is not yet known to be dead by its followers).
    pub async fn leader_id(&self) -> Option<u64> {
        let tls = self.tls_if_ready()?;
        for endpoint in self.running_endpoints() {
            if let Some(leader) = status_leader(&endpoint, tls.clone()).await
                && self.is_running(leader)
            {
                return Some(leader);
            }
        }
        None
    }

    /// Polls [`leader_id`](Self::leader_id) every 50 ms (from outside the processes there
    /// is no event to wait on). The error carries every member's log.
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader_id().await {
                return Ok(leader);
            }
            if self.running_ids().is_empty() {
                bail!("no control-plane process is running\n{}", self.logs());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no leader within {timeout:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One `Cluster/Status` call; `None` when the node does not answer or knows no leader.
async fn status_leader(endpoint: &str, tls: Arc<rustls::ClientConfig>) -> Option<u64> {
    let channel = skiff_pki::tls::endpoint(endpoint)
        .ok()?
        .connect_timeout(Duration::from_millis(300))
        .connect_with_connector_lazy(skiff_pki::tls::connector(tls));
    let mut request = tonic::Request::new(ClusterStatusRequest {});
    request.set_timeout(Duration::from_secs(2));
    let status = ClusterClient::new(channel).status(request).await.ok()?;
    status.into_inner().leader_id
}

/// The admin TLS config of the test cluster serving `endpoints` (see [`cluster_files`]),
/// waiting for its admin.conf; for code handed only endpoints.
pub fn admin_tls_for(endpoints: &[String]) -> Arc<rustls::ClientConfig> {
    let files = endpoints
        .first()
        .and_then(|e| cluster_files(e))
        .unwrap_or_else(|| panic!("no test cluster serves {endpoints:?}"));
    wait_for_file(&files.admin_conf).unwrap_or_else(|e| panic!("{e:#}"));
    admin_tls(&files.admin_conf).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The member id of [`ControlPlaneCluster::member_tls_config`]'s certificate.
pub const OBSERVER_MEMBER_ID: u64 = 9_999;

/// The TLS client config of an admin.conf's cluster.
pub fn admin_tls(path: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let config = skiff_pki::config::load(path)?;
    let (name, entry) =
        skiff_client::select_cluster(&config, None).map_err(|e| anyhow::anyhow!(e))?;
    entry
        .tls_config(path, name, skiff_pki::tls::ServerCheck::Member)?
        .context("admin.conf has no CA")
}

impl Drop for ControlPlaneCluster {
    fn drop(&mut self) {
        let mut registry = registry();
        for endpoint in self.endpoints() {
            // Only this cluster's entries (another may have taken the same address since).
            if registry
                .get(&endpoint)
                .is_some_and(|files| files.token_file == self.token_file())
            {
                registry.remove(&endpoint);
            }
        }
        drop(registry);
        self.kill_all();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // `root` (a TempDir) is removed after this, when the fields drop.
    }
}

/// Runs `f` every 50 ms until it succeeds or `timeout` passes; for conditions visible only
/// through the API. The error is the last failure.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e).context(format!("not true within {timeout:?}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Runs a benchmark's `run` to its end, or until Ctrl-C. The handler is registered before
/// `run` starts anything, so no Ctrl-C falls through to the default action, which would leave
/// clusters and their temp dirs behind: on Ctrl-C `run` is dropped (its clusters killed and
/// temp dirs removed) and the process exits 130.
pub async fn run_until_interrupted(
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        result = run => result,
        _ = interrupt.recv() => {
            eprintln!("interrupted; clusters stopped and temp dirs removed");
            std::process::exit(130);
        }
    }
}
