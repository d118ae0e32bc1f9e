//! The chaos suite: faults injected into a cluster on test hosts while concurrent SDK
//! clients write and read registers, with every operation recorded and checked for
//! linearizability, and the pods of deployments counted throughout.
//!
//! Faults: `kill -9` of the Raft leader (restarted once a new leader serves, then waited for
//! until it has caught up) and of a follower, a whole-cluster crash and restart, an agent
//! killed (kept down until its pods were replaced elsewhere) and restarted, and the current
//! leader's host cut off by taking its underlay link down (a minority leader; the majority
//! elects a new one and keeps serving writes; reads sent to the minority leader from inside
//! its host are recorded too and must not be stale; then heal: the old leader must step
//! down and catch up).
//!
//! Registers: one Namespace object per key (`chaos-k0`…), its value in an annotation. A
//! write is a linearizable get (recorded as a read) followed by one `update` at the
//! resourceVersion that get returned: never a modify-retry loop, which could apply one
//! logical write twice. Values are unique (one global counter).
//!
//! Figures per fault: time to a new leader (members' own Raft views, polled from the
//! underlay), time until a write succeeds again (a probe writer started at the fault), and
//! time until every deployment runs its desired number of pods again. [`run`] does all of
//! it; the short mode (`tests/tests/chaos.rs`) and the soak (`chaos-soak`) only pick a
//! [`ChaosConfig`].
//!
//! Everything runs on a Tokio runtime whose threads live in the underlay namespace, the one
//! place besides the hosts that reaches the hosts' addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use skiff_api::proto::raft_client::RaftClient;
use skiff_api::proto::{ClusterStatusRequest, Member};
use skiff_api::types::{Deployment, Namespace, Node, Pod};
use skiff_client::{Client, ListParams};
use skiff_netplugin::netns;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};
use tonic::transport::Channel;

use crate::cluster::ControlPlaneCluster;
use crate::host::BUSYBOX;
use crate::linearizability::{self, CheckReport, History, Op, Outcome, Value};
use crate::multihost::{MultiHost, NODE_GRACE};

/// The annotation holding a register's value.
pub const VALUE_ANNOTATION: &str = "chaos.skiff.dev/value";
/// The namespace of the deployments whose pods are counted.
pub const POD_NAMESPACE: &str = "chaos";
/// The register the write probe uses (one sequential writer: its blind writes are safe).
pub const PROBE_KEY: &str = "chaos-probe";

/// Deployments: name, replicas, and the `sleep` argument that marks their containers'
/// processes (so that processes can be counted per deployment on the hosts).
const DEPLOYMENTS: [(&str, usize, &str); 2] = [("chaos-a", 4, "86401"), ("chaos-b", 2, "86402")];

/// Slack on top of `--node-grace` + `--pod-eviction-timeout` (+ the time to a new leader,
/// which starts a fresh grace period) for pods to run again after a fault. It covers: the
/// controllers' passes (at least one a second) that mark the node NotReady, evict its pods,
/// create replacements and bind them — up to 4 s; starting the replacements (sandbox,
/// veth, process) and their agents reporting Running — about 1 s in a debug build; the pod
/// monitor's sampling (200 ms) and its list; and a 2-core machine shared with builds.
pub const PODS_MARGIN: Duration = Duration::from_secs(10);

/// How long the short plan cuts a follower off: five maximum election timeouts (400 ms),
/// and less than the node grace (3 s), so no pod moves.
const FOLLOWER_CUT_OFF_MS: u64 = 2000;
const FOLLOWER_CUT_OFF: Duration = Duration::from_millis(FOLLOWER_CUT_OFF_MS);

// Process ids in the history.
const PROBE_PROCESS: usize = 1000;
/// A fault's probe write that succeeds later than this logs the failures before it.
const SLOW_PROBE: Duration = Duration::from_millis(800);
const FINAL_PROCESS: usize = 2000;
const MINORITY_PROCESS: usize = 3000;

/// How the faults are scheduled.
#[derive(Debug, Clone)]
pub enum Plan {
    /// A fixed list: one follower kill, a third of `leader_kills` leader kills, one agent
    /// kill, another third, one partition of the leader's host, the last third — extended
    /// (by at most 6) until the healed old leader has been elected again — and one
    /// whole-cluster restart. Targets are seeded.
    Short { leader_kills: usize },
    /// Faults picked at random (seeded) until `duration` has passed.
    Soak { duration: Duration },
}

#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub seed: u64,
    pub plan: Plan,
    /// Run the release binaries.
    pub release: bool,
    /// Test hosts (≥ 3): members on hosts 1–3, an agent on every host.
    pub hosts: usize,
    pub writers: usize,
    pub readers: usize,
    /// Registers the writers and readers share (the probe has one of its own).
    pub keys: usize,
    /// The members' `--pod-eviction-timeout`.
    pub pod_eviction_timeout: Duration,
    /// The members' `--snapshot-after-entries` and `--log-entries-kept`: small values make
    /// restarted members catch up from snapshots and the log get purged during the run.
    pub snapshot_after_entries: u64,
    pub log_entries_kept: u64,
    /// Pause of each load task between two operations.
    pub op_pause: Duration,
    /// Where logs and the history go when the run fails (a temp dir when `None`).
    pub failure_dir: Option<PathBuf>,
    /// Save the logs to the failure dir also when the run passes.
    pub keep_logs: bool,
    /// More flags after every member's (e.g. `--election-timeout-min 150ms`), to measure
    /// other settings against the defaults.
    pub member_args: Vec<String>,
}

impl ChaosConfig {
    /// The short mode: ≥ 20 leader kills and one of every other fault, a few minutes.
    pub fn short(seed: u64) -> ChaosConfig {
        ChaosConfig {
            seed,
            plan: Plan::Short { leader_kills: 20 },
            release: !cfg!(debug_assertions),
            hosts: 4,
            writers: 4,
            readers: 4,
            keys: 8,
            pod_eviction_timeout: Duration::from_secs(4),
            snapshot_after_entries: 500,
            log_entries_kept: 100,
            op_pause: Duration::from_millis(10),
            failure_dir: None,
            keep_logs: false,
            member_args: Vec::new(),
        }
    }

    /// A soak of `duration` with random faults.
    pub fn soak(seed: u64, duration: Duration) -> ChaosConfig {
        ChaosConfig {
            plan: Plan::Soak { duration },
            ..ChaosConfig::short(seed)
        }
    }

    /// The bound for pods to run again after a fault, given how long the cluster took to
    /// have a (new) leader.
    fn pods_bound(&self, leader_after: Duration) -> Duration {
        leader_after + NODE_GRACE + self.pod_eviction_timeout + PODS_MARGIN
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    LeaderKill,
    FollowerKill,
    AgentKill,
    Partition,
    FullRestart,
    FollowerCutOff,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::LeaderKill,
        FaultKind::FollowerKill,
        FaultKind::AgentKill,
        FaultKind::Partition,
        FaultKind::FullRestart,
        FaultKind::FollowerCutOff,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::LeaderKill => "leader kill -9",
            FaultKind::FollowerKill => "follower kill -9",
            FaultKind::AgentKill => "agent kill -9",
            FaultKind::Partition => "leader cut off",
            FaultKind::FullRestart => "cluster crash",
            FaultKind::FollowerCutOff => "follower cut off",
        }
    }
}

/// How long an agent stays dead or a host cut off.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// Until the pods it ran were replaced on other nodes (beyond grace + eviction).
    UntilReplaced,
    /// A fixed time (shorter than the grace period: nothing is evicted).
    For(Duration),
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    LeaderKill,
    FollowerKill,
    AgentKill { host: usize, hold: Hold },
    Partition { hold: Hold },
    FullRestart { down: Duration },
    FollowerCutOff { hold: Duration },
}

impl Fault {
    fn kind(self) -> FaultKind {
        match self {
            Fault::LeaderKill => FaultKind::LeaderKill,
            Fault::FollowerKill => FaultKind::FollowerKill,
            Fault::AgentKill { .. } => FaultKind::AgentKill,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::FullRestart { .. } => FaultKind::FullRestart,
            Fault::FollowerCutOff { .. } => FaultKind::FollowerCutOff,
        }
    }
}

/// What one fault did and how long the cluster took to recover.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// What was hit: `member 2`, `host-4`, …
    pub target: String,
    /// The control-plane member hit (killed or cut off), if one was.
    pub member: Option<u64>,
    /// The leader once the fault was over (leader faults: the one elected meanwhile).
    pub leader: Option<u64>,
    /// When, since the run started.
    pub at: Duration,
    /// Fault → a member other than the old leader leads (leader faults only).
    pub new_leader: Option<Duration>,
    /// Fault → the first write acknowledged to the probe writer.
    pub writes_ok: Duration,
    /// Fault → every deployment runs its desired number of pods on live nodes.
    pub pods_back: Duration,
    /// The bound `pods_back` was held to.
    pub pods_bound: Duration,
    /// Fault healed → the member / node hit is back in full (member caught up, old leader
    /// stepped down and caught up, agent's node Ready with no leftover pod processes).
    pub rejoined: Option<Duration>,
    /// Pods that ran before the fault and no longer do after it (replaced elsewhere).
    pub replaced: usize,
    /// The load's writes that ended, from the fault until the cluster had recovered from
    /// it, with an unknown outcome (they reached a leader) and with a definite failure.
    pub writes_unknown: usize,
    pub writes_failed: usize,
}

/// Counts of the load's operations.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub writes_ok: AtomicUsize,
    pub writes_unknown: AtomicUsize,
    pub writes_failed: AtomicUsize,
    pub reads_ok: AtomicUsize,
    pub reads_failed: AtomicUsize,
    /// Reads sent to a cut-off leader from inside its host, and how many it answered.
    pub minority_reads: AtomicUsize,
    pub minority_answered: AtomicUsize,
    /// Values that were not what any writer writes.
    anomalies: Mutex<Vec<String>>,
}

impl LoadStats {
    fn anomaly(&self, what: String) {
        self.anomalies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(what);
    }

    fn anomalies(&self) -> Vec<String> {
        self.anomalies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What a run found; `Display` prints the per-fault table.
#[derive(Debug)]
pub struct ChaosReport {
    pub seed: u64,
    pub elapsed: Duration,
    pub faults: Vec<FaultRecord>,
    pub check: CheckReport,
    pub stats: Arc<LoadStats>,
    pub pod_samples: usize,
    /// Snapshots the members built, and installed from a leader, over the run (their logs).
    pub snapshots_built: usize,
    pub snapshots_installed: usize,
}

impl ChaosReport {
    pub fn count(&self, kind: FaultKind) -> usize {
        self.faults.iter().filter(|f| f.kind == kind).count()
    }
}

/// The nearest-rank percentile `p` (0–100) of `values`.
fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// `p50 / p99 / max` of some durations, or `-`.
fn spread(values: &[Duration]) -> String {
    match (
        percentile(values, 50.0),
        percentile(values, 99.0),
        values.iter().max(),
    ) {
        (Some(p50), Some(p99), Some(max)) => {
            format!("{} / {} / {}", secs(p50), secs(p99), secs(*max))
        }
        _ => "-".into(),
    }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos: seed {}, {} faults in {}",
            self.seed,
            self.faults.len(),
            secs(self.elapsed)
        )?;
        writeln!(
            f,
            "{:<17} {:>5}  {:<26} {:<26} {:<26} {:<26} {:>7} {:>9} {:>16} {:>16}",
            "fault",
            "count",
            "new leader p50/p99/max",
            "writes ok p50/p99/max",
            "pods back p50/p99/max",
            "rejoined p50/p99/max",
            "bound",
            "replaced",
            "unknown sum/max",
            "failed sum/max"
        )?;
        for kind in FaultKind::ALL {
            let records: Vec<&FaultRecord> =
                self.faults.iter().filter(|r| r.kind == kind).collect();
            if records.is_empty() {
                continue;
            }
            let leader: Vec<Duration> = records.iter().filter_map(|r| r.new_leader).collect();
            let writes: Vec<Duration> = records.iter().map(|r| r.writes_ok).collect();
            let pods: Vec<Duration> = records.iter().map(|r| r.pods_back).collect();
            let rejoined: Vec<Duration> = records.iter().filter_map(|r| r.rejoined).collect();
            let bound = records
                .iter()
                .map(|r| r.pods_bound)
                .max()
                .unwrap_or_default();
            let replaced: usize = records.iter().map(|r| r.replaced).sum();
            // Per fault: unknown outcomes should stay within the writes in flight when it
            // struck; definite failures are retried by nobody and counted apart.
            let sum_max = |count: fn(&FaultRecord) -> usize| {
                let sum: usize = records.iter().map(|r| count(r)).sum();
                let max = records.iter().map(|r| count(r)).max().unwrap_or(0);
                format!("{sum}/{max}")
            };
            writeln!(
                f,
                "{:<17} {:>5}  {:<26} {:<26} {:<26} {:<26} {:>7} {:>9} {:>16} {:>16}",
                kind.name(),
                records.len(),
                spread(&leader),
                spread(&writes),
                spread(&pods),
                spread(&rejoined),
                secs(bound),
                replaced,
                sum_max(|r| r.writes_unknown),
                sum_max(|r| r.writes_failed)
            )?;
        }
        let s = &self.stats;
        writeln!(
            f,
            "load: {} writes acknowledged, {} unknown, {} failed; {} reads answered, {} failed; \
             {} reads sent to a cut-off leader, {} answered; {} pod samples; \
             snapshots: {} built, {} installed",
            s.writes_ok.load(Ordering::Relaxed),
            s.writes_unknown.load(Ordering::Relaxed),
            s.writes_failed.load(Ordering::Relaxed),
            s.reads_ok.load(Ordering::Relaxed),
            s.reads_failed.load(Ordering::Relaxed),
            s.minority_reads.load(Ordering::Relaxed),
            s.minority_answered.load(Ordering::Relaxed),
            self.pod_samples,
            self.snapshots_built,
            self.snapshots_installed
        )?;
        write!(f, "linearizability: {}", self.check)
    }
}

/// Runs a chaos session: starts a cluster on `config.hosts` test hosts, injects the faults
/// of `config.plan` under load and checks everything. Progress lines and the figures go to
/// stdout. On failure the error names a directory holding every process's log (and the
/// history of a key that failed the check).
pub fn run(config: ChaosConfig) -> anyhow::Result<ChaosReport> {
    ensure!(config.hosts >= 3, "the chaos suite needs at least 3 hosts");
    let eviction = format!("{}ms", config.pod_eviction_timeout.as_millis());
    let snapshot_after = config.snapshot_after_entries.to_string();
    let kept = config.log_entries_kept.to_string();
    let mut member_args = vec![
        "--pod-eviction-timeout",
        &eviction,
        "--snapshot-after-entries",
        &snapshot_after,
        "--log-entries-kept",
        &kept,
    ];
    member_args.extend(config.member_args.iter().map(String::as_str));
    let world =
        MultiHost::try_start_with_control_plane(config.hosts, config.release, &[], &member_args)?;
    let underlay = world.hosts.underlay_path();
    let keep_logs = config.keep_logs;
    let failure_dir = config.failure_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "skiff-chaos-{}-seed{}",
            std::process::id(),
            config.seed
        ))
    });
    let (world, result) = netns::run_in(&underlay, move || {
        let mut world = world;
        let result = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(Chaos::run(&mut world, config)),
            Err(e) => Err(anyhow!("start the chaos runtime: {e}").into()),
        };
        (world, result)
    })
    .map_err(|e| anyhow!("the chaos thread: {e}"))?;
    match result {
        Ok(report) => {
            if keep_logs {
                match save_logs(&world, &failure_dir, &[]) {
                    Ok(()) => println!("logs kept in {}", failure_dir.display()),
                    Err(e) => eprintln!("keeping the logs failed: {e:#}"),
                }
            }
            Ok(report)
        }
        Err(failure) => {
            let saved = save_logs(&world, &failure_dir, &failure.dumps);
            drop(world);
            let place = match saved {
                Ok(()) => format!("logs and history in {}", failure_dir.display()),
                Err(e) => format!("saving the logs failed: {e:#}"),
            };
            Err(failure.error.context(place))
        }
    }
}

/// An error, with files worth keeping (name, contents).
struct Failure {
    error: anyhow::Error,
    dumps: Vec<(String, String)>,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure {
            error,
            dumps: Vec::new(),
        }
    }
}

fn save_logs(world: &MultiHost, dir: &Path, dumps: &[(String, String)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for id in world.cluster.ids() {
        std::fs::write(
            dir.join(format!("control-plane-{id}.log")),
            world.cluster.log_of(id),
        )?;
    }
    for agent in &world.agents {
        std::fs::write(dir.join(format!("agent-{}.log", agent.name)), agent.log())?;
    }
    for (name, contents) in dumps {
        std::fs::write(dir.join(name), contents)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ the run

struct Chaos<'w> {
    ctx: Ctx,
    world: &'w mut MultiHost,
    rng: StdRng,
    records: Vec<FaultRecord>,
}

/// Everything the fault procedures share that does not change the cluster's processes.
struct Ctx {
    config: ChaosConfig,
    start: Instant,
    history: History,
    values: Arc<AtomicU64>,
    stats: Arc<LoadStats>,
    /// For setup, probes and final reads (short timeouts: a stuck attempt fails fast).
    client: Client,
    endpoints: Vec<String>,
    /// One channel per member, for the members' own Raft views.
    members: BTreeMap<u64, Channel>,
    monitor: Arc<PodMonitor>,
    probe_object: Namespace,
}

impl Chaos<'_> {
    async fn run(world: &mut MultiHost, config: ChaosConfig) -> Result<ChaosReport, Failure> {
        let start = Instant::now();
        let mut rng = StdRng::seed_from_u64(config.seed);
        world
            .wait_ready(Duration::from_secs(90))
            .await
            .context("the cluster did not become ready")?;
        let endpoints = world.endpoints();
        let client = Client::builder(&endpoints)
            .tls(world.cluster.tls_config())
            .request_timeout(Duration::from_secs(3))
            .build()
            .map_err(anyhow::Error::from)?;
        let keys: Vec<String> = (0..config.keys).map(|i| format!("chaos-k{i}")).collect();
        let probe_object = setup(&client, &keys)
            .await
            .context("create the registers and deployments")?;
        let members = world
            .cluster
            .ids()
            .into_iter()
            .map(|id| {
                let channel = skiff_pki::tls::endpoint(&world.cluster.endpoint(id))
                    .map_err(|e| anyhow!("endpoint of member {id}: {e}"))?
                    .connect_timeout(Duration::from_millis(300))
                    .connect_with_connector_lazy(skiff_pki::tls::connector(
                        world.cluster.member_tls_config(),
                    ));
                Ok((id, channel))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut chaos = Chaos {
            ctx: Ctx {
                config,
                start,
                history: History::new(),
                values: Arc::new(AtomicU64::new(0)),
                stats: Arc::new(LoadStats::default()),
                client,
                endpoints,
                members,
                monitor: Arc::new(PodMonitor::default()),
                probe_object,
            },
            world,
            rng: StdRng::seed_from_u64(rng.random()),
            records: Vec::new(),
        };
        let ctx = &chaos.ctx;
        let load = Load::start(ctx, &keys, rng.random());
        // The wall clock of this line, to find a fault's moment in the members' logs.
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        ctx.log(format!(
            "cluster of {} hosts ready at unix time {wall:.1}; load: {} writers, {} readers on {} keys",
            ctx.config.hosts, ctx.config.writers, ctx.config.readers, ctx.config.keys
        ));
        let result = chaos.faults().await;
        let Load { tasks, monitor } = load;
        let stopped = Load::stop(tasks).await;
        result?;
        stopped?;
        let report = chaos.finish(&keys).await;
        Load::stop(monitor).await?;
        report
    }

    /// Runs the plan's faults.
    async fn faults(&mut self) -> anyhow::Result<()> {
        // Every deployment runs before the first fault, and the load has begun.
        let since = Instant::now();
        self.ctx
            .wait_pods(since, None, Duration::from_secs(90))
            .await
            .context("the deployments never ran")?;
        self.ctx
            .wait_processes(self.world, Duration::from_secs(30))
            .await?;
        let plan = self.ctx.config.plan.clone();
        match plan {
            Plan::Short { leader_kills } => {
                let host = self.rng.random_range(1..=self.ctx.config.hosts);
                let mut schedule = vec![Fault::FollowerKill];
                let third = leader_kills.div_ceil(3);
                schedule.extend(std::iter::repeat_n(Fault::LeaderKill, third));
                schedule.push(Fault::AgentKill {
                    host,
                    hold: Hold::UntilReplaced,
                });
                schedule.extend(std::iter::repeat_n(Fault::LeaderKill, third));
                schedule.push(Fault::Partition {
                    hold: Hold::UntilReplaced,
                });
                schedule.push(Fault::FollowerCutOff {
                    hold: FOLLOWER_CUT_OFF,
                });
                for fault in schedule {
                    self.fault(fault).await?;
                }
                // The last leader kills go on until the healed old leader has been elected
                // again and served the probe's write (at most 6 more kills): a member that
                // led a minority must be able to lead again.
                let healed = self.records.len();
                let old = self.records.last().and_then(|r| r.member);
                let rest = leader_kills.saturating_sub(2 * third);
                for done in 0.. {
                    let led = self.records[healed..]
                        .iter()
                        .any(|r| r.kind == FaultKind::LeaderKill && r.leader == old);
                    if done >= rest && (led || done >= rest + 6) {
                        break;
                    }
                    self.fault(Fault::LeaderKill).await?;
                }
                let down = Duration::from_millis(self.rng.random_range(0..1500));
                self.fault(Fault::FullRestart { down }).await?;
            }
            Plan::Soak { duration } => {
                while self.ctx.start.elapsed() < duration {
                    let fault = self.pick();
                    self.fault(fault).await?;
                    // Some time of plain load between faults.
                    let pause = self.rng.random_range(0..2000);
                    sleep(Duration::from_millis(pause)).await;
                }
            }
        }
        Ok(())
    }

    /// A random fault for the soak.
    fn pick(&mut self) -> Fault {
        let hold = |rng: &mut StdRng| {
            if rng.random_bool(0.5) {
                Hold::UntilReplaced
            } else {
                Hold::For(Duration::from_millis(rng.random_range(500..2500)))
            }
        };
        match self.rng.random_range(0..100) {
            0..50 => Fault::LeaderKill,
            50..65 => Fault::FollowerKill,
            65..77 => Fault::AgentKill {
                host: self.rng.random_range(1..=self.ctx.config.hosts),
                hold: hold(&mut self.rng),
            },
            77..85 => Fault::Partition {
                hold: hold(&mut self.rng),
            },
            85..92 => Fault::FollowerCutOff {
                hold: Duration::from_millis(self.rng.random_range(1000..=FOLLOWER_CUT_OFF_MS)),
            },
            _ => Fault::FullRestart {
                down: Duration::from_millis(self.rng.random_range(0..3000)),
            },
        }
    }

    async fn fault(&mut self, fault: Fault) -> anyhow::Result<()> {
        let n = self
            .records
            .iter()
            .filter(|r| r.kind == fault.kind())
            .count()
            + 1;
        let at = self.ctx.start.elapsed();
        let unknown_before = self.ctx.stats.writes_unknown.load(Ordering::Relaxed);
        let failed_before = self.ctx.stats.writes_failed.load(Ordering::Relaxed);
        let before = self
            .ctx
            .monitor
            .latest()
            .map(|s| s.active_names())
            .unwrap_or_default();
        let record = match fault {
            Fault::LeaderKill => self.leader_kill().await,
            Fault::FollowerKill => self.follower_kill().await,
            Fault::AgentKill { host, hold } => self.agent_kill(host, hold).await,
            Fault::Partition { hold } => self.partition(hold).await,
            Fault::FullRestart { down } => self.full_restart(down).await,
            Fault::FollowerCutOff { hold } => self.follower_cut_off(hold).await,
        };
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let members = self.ctx.describe_members(&self.world.cluster).await;
                return Err(e.context(format!(
                    "{} #{n} (at {}); members now: {members}",
                    fault.kind().name(),
                    secs(at)
                )));
            }
        };
        // Which pods run now that the fault is over, against those that ran before it.
        let after = self
            .ctx
            .converged_sample(Instant::now(), None, Duration::from_secs(30))
            .await
            .with_context(|| format!("after {} #{n}", fault.kind().name()))?
            .active_names();
        let replaced = before.difference(&after).count();
        let record = FaultRecord {
            at,
            replaced,
            writes_unknown: self.ctx.stats.writes_unknown.load(Ordering::Relaxed) - unknown_before,
            writes_failed: self.ctx.stats.writes_failed.load(Ordering::Relaxed) - failed_before,
            ..record
        };
        let mut line = format!(
            "{} #{n} {}: {} writes unknown, {} failed;",
            record.kind.name(),
            record.target,
            record.writes_unknown,
            record.writes_failed
        );
        if let Some(d) = record.new_leader {
            line += &format!(" new leader after {},", secs(d));
        }
        line += &format!(
            " writes ok after {}, pods back after {} (bound {})",
            secs(record.writes_ok),
            secs(record.pods_back),
            secs(record.pods_bound)
        );
        if let Some(d) = record.rejoined {
            line += &format!(", rejoined {} after the heal", secs(d));
        }
        line += &format!(", {replaced} pods replaced");
        self.ctx.log(line);
        self.records.push(record);
        Ok(())
    }

    /// `kill -9` of the leader; the killed member is restarted once writes work again.
    async fn leader_kill(&mut self) -> anyhow::Result<FaultRecord> {
        let ctx = &self.ctx;
        let (leader, term) = ctx.wait_stable(&self.world.cluster, &[]).await?;
        let at = Instant::now();
        self.world.cluster.kill(leader);
        let cluster = &self.world.cluster;
        let (new_leader, writes_ok) = tokio::join!(
            ctx.wait_new_leader(cluster, Some(leader), term + 1, &[], at),
            ctx.probe_write(at)
        );
        let (new_leader_id, new_leader) = new_leader?;
        let writes_ok = writes_ok?;
        let pods_bound = ctx.config.pods_bound(new_leader);
        let pods_back = ctx.wait_pods(at, None, pods_bound).await?;
        self.world.cluster.restart(leader);
        let restarted = Instant::now();
        self.ctx
            .wait_caught_up(&self.world.cluster, leader, &[])
            .await?;
        Ok(FaultRecord {
            kind: FaultKind::LeaderKill,
            target: format!("member {leader} (new leader {new_leader_id})"),
            member: Some(leader),
            leader: Some(new_leader_id),
            at: Duration::ZERO,
            new_leader: Some(new_leader),
            writes_ok,
            pods_back,
            pods_bound,
            rejoined: Some(restarted.elapsed()),
            replaced: 0,
            writes_unknown: 0,
            writes_failed: 0,
        })
    }

    /// A member other than `leader`, picked with the seeded generator.
    fn random_follower(&mut self, leader: u64) -> u64 {
        let followers: Vec<u64> = self
            .world
            .cluster
            .ids()
            .into_iter()
            .filter(|id| *id != leader)
            .collect();
        followers[self.rng.random_range(0..followers.len())]
    }

    /// `kill -9` of a follower: the other two keep a quorum.
    async fn follower_kill(&mut self) -> anyhow::Result<FaultRecord> {
        let ctx = &self.ctx;
        let (leader, _) = ctx.wait_stable(&self.world.cluster, &[]).await?;
        let follower = self.random_follower(leader);
        let at = Instant::now();
        self.world.cluster.kill(follower);
        let ctx = &self.ctx;
        let writes_ok = ctx.probe_write(at).await?;
        let pods_bound = ctx.config.pods_bound(Duration::ZERO);
        let pods_back = ctx.wait_pods(at, None, pods_bound).await?;
        self.world.cluster.restart(follower);
        let restarted = Instant::now();
        self.ctx
            .wait_caught_up(&self.world.cluster, follower, &[])
            .await?;
        Ok(FaultRecord {
            kind: FaultKind::FollowerKill,
            target: format!("member {follower}"),
            member: Some(follower),
            leader: Some(leader),
            at: Duration::ZERO,
            new_leader: None,
            writes_ok,
            pods_back,
            pods_bound,
            rejoined: Some(restarted.elapsed()),
            replaced: 0,
            writes_unknown: 0,
            writes_failed: 0,
        })
    }

    /// A follower's host loses its underlay link for `hold`, then gets it back. The leader
    /// must lead on in the same term: the follower, hearing no leader, asks for pre-votes
    /// and is refused, so it never raises the term that would unseat the leader on its
    /// return (Raft without pre-vote does).
    async fn follower_cut_off(&mut self, hold: Duration) -> anyhow::Result<FaultRecord> {
        let (leader, term) = self.ctx.wait_stable(&self.world.cluster, &[]).await?;
        let follower = self.random_follower(leader);
        let ctx = &self.ctx;
        let world: &MultiHost = self.world;
        let at = Instant::now();
        let cut = CutOff::new(world, follower as usize)?;
        let writes_ok = ctx.probe_write(at).await?;
        sleep(hold.saturating_sub(at.elapsed())).await;
        cut.heal()?;
        let healed = Instant::now();
        ctx.wait_caught_up(&world.cluster, follower, &[])
            .await
            .with_context(|| format!("member {follower} after the heal"))?;
        let rejoined = healed.elapsed();
        let (now_leader, now_term) = ctx.wait_stable(&world.cluster, &[]).await?;
        ensure!(
            (now_leader, now_term) == (leader, term),
            "cutting follower {follower} off for {} unseated leader {leader} of term {term}: \
             member {now_leader} leads in term {now_term}",
            secs(hold)
        );
        // Shorter than the node grace: no pod moves.
        let pods_bound = ctx.config.pods_bound(Duration::ZERO);
        let pods_back = ctx.wait_pods(at, None, pods_bound).await?;
        ctx.wait_node_ready(&format!("host-{follower}")).await?;
        Ok(FaultRecord {
            kind: FaultKind::FollowerCutOff,
            target: format!("member {follower}"),
            member: Some(follower),
            leader: Some(leader),
            at: Duration::ZERO,
            new_leader: None,
            writes_ok,
            pods_back,
            pods_bound,
            rejoined: Some(rejoined),
            replaced: 0,
            writes_unknown: 0,
            writes_failed: 0,
        })
    }

    /// `kill -9` of an agent; with [`Hold::UntilReplaced`] it stays dead until its pods run
    /// elsewhere, then comes back and must get rid of the pods that moved.
    async fn agent_kill(&mut self, host: usize, hold: Hold) -> anyhow::Result<FaultRecord> {
        let node = format!("host-{host}");
        let at = Instant::now();
        self.world.agents[host - 1].kill();
        let ctx = &self.ctx;
        let writes_ok = ctx.probe_write(at).await?;
        let pods_bound = ctx.config.pods_bound(Duration::ZERO);
        let pods_back = match hold {
            Hold::UntilReplaced => ctx.wait_pods(at, Some(&node), pods_bound).await?,
            Hold::For(d) => {
                sleep(d.saturating_sub(at.elapsed())).await;
                Duration::ZERO
            }
        };
        self.world.agents[host - 1].restart();
        let healed = Instant::now();
        let ctx = &self.ctx;
        let pods_back = match hold {
            Hold::UntilReplaced => pods_back,
            Hold::For(_) => ctx.wait_pods(healed, None, pods_bound).await? + (healed - at),
        };
        ctx.wait_node_ready(&node).await?;
        ctx.wait_pods(Instant::now(), None, pods_bound).await?;
        ctx.wait_processes(self.world, Duration::from_secs(30))
            .await?;
        Ok(FaultRecord {
            kind: FaultKind::AgentKill,
            target: node,
            member: None,
            leader: None,
            at: Duration::ZERO,
            new_leader: None,
            writes_ok,
            pods_back,
            pods_bound,
            rejoined: Some(healed.elapsed()),
            replaced: 0,
            writes_unknown: 0,
            writes_failed: 0,
        })
    }

    /// The leader's host loses its underlay link: the majority elects a new leader and
    /// serves writes; reads sent to the old leader from inside its host must fail or be
    /// linearizable. After the heal the old leader must follow and catch up.
    async fn partition(&mut self, hold: Hold) -> anyhow::Result<FaultRecord> {
        let ctx = &self.ctx;
        let world: &MultiHost = self.world;
        let (leader, term) = ctx.wait_stable(&world.cluster, &[]).await?;
        let host = leader as usize;
        let node = format!("host-{host}");
        let at = Instant::now();
        let cut = CutOff::new(world, host)?;
        let cut_off = [leader];
        // Readers inside the cut-off host talk only to the minority leader.
        let minority = ctx.minority_readers(world, host, leader, self.rng.random());
        let (new_leader, writes_ok) = tokio::join!(
            ctx.wait_new_leader(&world.cluster, Some(leader), term + 1, &cut_off, at),
            ctx.probe_write(at)
        );
        let (new_leader_id, new_leader) = new_leader?;
        let writes_ok = writes_ok?;
        let pods_bound = ctx.config.pods_bound(new_leader);
        let pods_back = match hold {
            Hold::UntilReplaced => ctx.wait_pods(at, Some(&node), pods_bound).await?,
            Hold::For(d) => {
                sleep(d.saturating_sub(at.elapsed())).await;
                Duration::ZERO
            }
        };
        minority.stop().await;
        cut.heal()?;
        let healed = Instant::now();
        let pods_back = match hold {
            Hold::UntilReplaced => pods_back,
            Hold::For(_) => ctx.wait_pods(healed, None, pods_bound).await? + (healed - at),
        };
        // The old leader follows a leader of a later term and has caught up.
        ctx.wait_caught_up(&world.cluster, leader, &[])
            .await
            .with_context(|| format!("old leader {leader} after the heal"))?;
        let rejoined = healed.elapsed();
        ctx.wait_node_ready(&node).await?;
        ctx.wait_pods(Instant::now(), None, pods_bound).await?;
        ctx.wait_processes(world, Duration::from_secs(30)).await?;
        Ok(FaultRecord {
            kind: FaultKind::Partition,
            target: format!("member {leader} (new leader {new_leader_id})"),
            member: Some(leader),
            leader: Some(new_leader_id),
            at: Duration::ZERO,
            new_leader: Some(new_leader),
            writes_ok,
            pods_back,
            pods_bound,
            rejoined: Some(rejoined),
            replaced: 0,
            writes_unknown: 0,
            writes_failed: 0,
        })
    }

    /// Every member `kill -9`ed at once, then all restarted after `down`.
    async fn full_restart(&mut self, down: Duration) -> anyhow::Result<FaultRecord> {
        let (_, term) = self.ctx.wait_stable(&self.world.cluster, &[]).await?;
        let at = Instant::now();
        self.world.cluster.kill_all();
        sleep(down).await;
        self.world.cluster.restart_all();
        let ctx = &self.ctx;
        let cluster = &self.world.cluster;
        let (new_leader, writes_ok) = tokio::join!(
            // A member that led when the whole cluster crashed may lead again in the same term
            // after the restart (its vote was committed and persisted).
            ctx.wait_new_leader(cluster, None, term, &[], at),
            ctx.probe_write(at)
        );
        let (new_leader_id, new_leader) = new_leader?;
        let writes_ok = writes_ok?;
        let pods_bound = ctx.config.pods_bound(new_leader);
        let pods_back = ctx.wait_pods(at, None, pods_bound).await?;
        for id in cluster.ids() {
            ctx.wait_caught_up(cluster, id, &[]).await?;
        }
        Ok(FaultRecord {
            kind: FaultKind::FullRestart,
            target: format!("all members, down {}", secs(down)),
            member: None,
            leader: Some(new_leader_id),
            at: Duration::ZERO,
            new_leader: Some(new_leader),
            writes_ok,
            pods_back,
            pods_bound,
            rejoined: Some(at.elapsed().saturating_sub(down)),
            replaced: 0,
            writes_unknown: 0,
            writes_failed: 0,
        })
    }

    /// Final reads, the checks, the report.
    async fn finish(self, keys: &[String]) -> Result<ChaosReport, Failure> {
        let ctx = &self.ctx;
        ctx.wait_stable(&self.world.cluster, &[]).await?;
        // A last read of every key (the checker holds it to every acknowledged write).
        let registers: Vec<String> = keys.iter().cloned().chain([PROBE_KEY.into()]).collect();
        for (i, key) in registers.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let id = ctx.history.invoke(FINAL_PROCESS + i, key, Op::Read);
                match ctx.client.get::<Namespace>("", key).await {
                    Ok(ns) => {
                        let value = value_of(&ns).map_err(|e| anyhow!(e))?;
                        ctx.history.complete(id, Outcome::ReadValue(value));
                        break;
                    }
                    Err(e) => {
                        ctx.history.complete(id, Outcome::Failed);
                        if Instant::now() > deadline {
                            return Err(anyhow!("final read of {key}: {e}").into());
                        }
                        sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        ctx.wait_pods(Instant::now(), None, Duration::from_secs(30))
            .await
            .context("after the last fault")?;
        ctx.wait_processes(self.world, Duration::from_secs(30))
            .await?;
        let anomalies = ctx.stats.anomalies();
        if !anomalies.is_empty() {
            return Err(anyhow!("registers held bad values: {}", anomalies.join("; ")).into());
        }
        let duplicates = ctx.monitor.violations();
        if !duplicates.is_empty() {
            return Err(anyhow!(
                "deployments ran more pods than desired ({} samples):\n{}",
                duplicates.len(),
                duplicates.join("\n")
            )
            .into());
        }
        let operations = ctx.history.operations();
        let checking = Instant::now();
        let check = match linearizability::check(&operations) {
            Ok(report) => report,
            Err(violation) => {
                let dump = dump_history(&operations, &violation.key);
                return Err(Failure {
                    error: anyhow!("{violation}"),
                    dumps: vec![(format!("history-{}.txt", violation.key), dump)],
                });
            }
        };
        ctx.log(format!(
            "history of {} operations checked in {}",
            operations.len(),
            secs(checking.elapsed())
        ));
        Ok(ChaosReport {
            seed: ctx.config.seed,
            elapsed: ctx.start.elapsed(),
            faults: self.records,
            check,
            stats: ctx.stats.clone(),
            pod_samples: ctx.monitor.samples.load(Ordering::Relaxed),
            snapshots_built: logged(self.world, "built snapshot"),
            snapshots_installed: logged(self.world, "installed snapshot"),
        })
    }
}

/// How many lines of the members' logs mention `what`.
fn logged(world: &MultiHost, what: &str) -> usize {
    world
        .cluster
        .ids()
        .into_iter()
        .map(|id| world.cluster.log_of(id).matches(what).count())
        .sum()
}

/// One line per operation of `key`, for a violation's evidence.
fn dump_history(operations: &[linearizability::Operation], key: &str) -> String {
    let mut out = String::new();
    for op in operations.iter().filter(|o| o.key == key) {
        let what = match op.op {
            Op::Write(v) => format!("write {v}"),
            Op::Read => "read".into(),
        };
        let outcome = match &op.outcome {
            Outcome::Written => "ok".to_string(),
            Outcome::ReadValue(v) => format!("ok {v:?}"),
            Outcome::Failed => "failed".into(),
            Outcome::Unknown => "unknown".into(),
        };
        let completed = op
            .completed
            .map_or("-".to_string(), |c| format!("{:.6}", c.as_secs_f64()));
        out += &format!(
            "process {:>5} {:>12.6} {:>12} {what:<16} {outcome}\n",
            op.process,
            op.invoked.as_secs_f64(),
            completed
        );
    }
    out
}

/// Creates the registers (empty: no value), the pods' namespace and the deployments;
/// returns the probe's register.
async fn setup(client: &Client, keys: &[String]) -> anyhow::Result<Namespace> {
    let namespace = |name: &str| -> anyhow::Result<Namespace> {
        Ok(serde_json::from_value(json!({"metadata": {"name": name}}))?)
    };
    for name in keys
        .iter()
        .map(String::as_str)
        .chain([PROBE_KEY, POD_NAMESPACE])
    {
        create_once(client, &namespace(name)?).await?;
    }
    for (name, replicas, marker) in DEPLOYMENTS {
        create_once(client, &deployment(name, replicas, marker)?).await?;
    }
    Ok(client.get::<Namespace>("", PROBE_KEY).await?)
}

/// Creates `object`; AlreadyExists from a retried create counts as done.
async fn create_once<T: skiff_client::Resource>(client: &Client, object: &T) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.create(object).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_already_exists() => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => sleep(Duration::from_millis(200)).await,
        }
    }
}

fn deployment(name: &str, replicas: usize, marker: &str) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": POD_NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main",
                        "image": "busybox",
                        "command": [BUSYBOX, "sleep", marker]
                    }]
                }
            }
        }
    }))?)
}

/// A register's value: its annotation, `None` when it was never written.
fn value_of(ns: &Namespace) -> Result<Option<Value>, String> {
    match ns.metadata.annotations.get(VALUE_ANNOTATION) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("{}: bad value {text:?}", ns.metadata.name)),
    }
}

fn set_value(ns: &mut Namespace, value: Value) {
    ns.metadata
        .annotations
        .insert(VALUE_ANNOTATION.into(), value.to_string());
}

/// What a failed write tells. The SDK sends a write again only after a failure that
/// proves it was not applied, so a refusal (invalid, conflict) and Unavailable (every
/// attempt failed so) are definite; only Unknown — the write reached a leader and the
/// answer was lost — and anything unexpected may have taken effect.
fn write_outcome(result: &Result<Namespace, skiff_client::Error>) -> Outcome {
    use skiff_client::Error;
    match result {
        Ok(_) => Outcome::Written,
        Err(
            Error::Invalid(_) | Error::Conflict(_) | Error::NotFound(_) | Error::Unavailable(_),
        ) => Outcome::Failed,
        Err(_) => Outcome::Unknown,
    }
}

impl Ctx {
    fn log(&self, line: impl fmt::Display) {
        println!("[{:>7.1}s] {line}", self.start.elapsed().as_secs_f64());
    }

    /// A member's own Raft view, `None` when it does not answer.
    async fn member(&self, id: u64) -> Option<Member> {
        let channel = self.members.get(&id)?.clone();
        let mut request = tonic::Request::new(ClusterStatusRequest {});
        request.set_timeout(Duration::from_millis(500));
        let mut client = RaftClient::new(channel);
        let call = client.node_status(request);
        match tokio::time::timeout(Duration::from_millis(700), call).await {
            Ok(Ok(response)) => Some(response.into_inner()),
            _ => None,
        }
    }

    /// Every member's own view in one line, for failure messages.
    async fn describe_members(&self, cluster: &ControlPlaneCluster) -> String {
        let mut out = Vec::new();
        for id in cluster.ids() {
            let text = if !cluster.is_running(id) {
                "not running".to_string()
            } else {
                match self.member(id).await {
                    Some(m) => format!(
                        "{} in term {}, log {}, applied {}",
                        m.state, m.term, m.last_log_index, m.last_applied
                    ),
                    None => "does not answer".into(),
                }
            };
            out.push(format!("{id}: {text}"));
        }
        out.join("; ")
    }

    /// The views of the running members that answer, except `exclude`.
    async fn views(
        &self,
        cluster: &ControlPlaneCluster,
        exclude: &[u64],
    ) -> (Vec<u64>, BTreeMap<u64, Member>) {
        let ids: Vec<u64> = cluster
            .running_ids()
            .into_iter()
            .filter(|id| !exclude.contains(id))
            .collect();
        let views = join_all(ids.iter().map(|id| self.member(*id))).await;
        let answered = ids
            .iter()
            .zip(views)
            .filter_map(|(id, view)| Some((*id, view?)))
            .collect();
        (ids, answered)
    }

    /// Waits until every running member (but `exclude`) answers and all agree on one
    /// leader in one term; returns (leader, term).
    async fn wait_stable(
        &self,
        cluster: &ControlPlaneCluster,
        exclude: &[u64],
    ) -> anyhow::Result<(u64, u64)> {
        let timeout = Duration::from_secs(60);
        let deadline = Instant::now() + timeout;
        loop {
            let (ids, views) = self.views(cluster, exclude).await;
            let leaders: Vec<&Member> = views.values().filter(|m| m.state == "Leader").collect();
            let problem = if views.len() < ids.len() {
                format!("{} of members {ids:?} answer", views.len())
            } else if leaders.len() != 1 {
                format!("{} leaders", leaders.len())
            } else {
                let leader = leaders[0];
                let disagree: Vec<&Member> = views
                    .values()
                    .filter(|m| {
                        m.id != leader.id && (m.state != "Follower" || m.term != leader.term)
                    })
                    .collect();
                if disagree.is_empty() {
                    return Ok((leader.id, leader.term));
                }
                format!(
                    "leader {} in term {}, but {disagree:?}",
                    leader.id, leader.term
                )
            };
            if Instant::now() > deadline {
                bail!("the cluster did not settle on one leader within {timeout:?}: {problem}");
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a running member (but `exclude`) other than `old` leads in term
    /// `min_term` or later; returns it and the time since `since`.
    async fn wait_new_leader(
        &self,
        cluster: &ControlPlaneCluster,
        old: Option<u64>,
        min_term: u64,
        exclude: &[u64],
        since: Instant,
    ) -> anyhow::Result<(u64, Duration)> {
        let timeout = Duration::from_secs(30);
        loop {
            let (_, views) = self.views(cluster, exclude).await;
            if let Some(leader) = views
                .values()
                .filter(|m| m.state == "Leader" && m.term >= min_term && Some(m.id) != old)
                .max_by_key(|m| m.term)
            {
                return Ok((leader.id, since.elapsed()));
            }
            if since.elapsed() > timeout {
                bail!("no new leader within {timeout:?} (views: {views:?})");
            }
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until member `id` follows (or is) the leader of the highest term and has
    /// applied at least what that leader had applied when the wait began.
    async fn wait_caught_up(
        &self,
        cluster: &ControlPlaneCluster,
        id: u64,
        exclude: &[u64],
    ) -> anyhow::Result<()> {
        let timeout = Duration::from_secs(60);
        let deadline = Instant::now() + timeout;
        let mut target = None;
        loop {
            let (_, views) = self.views(cluster, exclude).await;
            let leader = views
                .values()
                .filter(|m| m.state == "Leader")
                .max_by_key(|m| m.term);
            let problem = match (leader, views.get(&id)) {
                (Some(leader), Some(member)) => {
                    let target = *target.get_or_insert(leader.last_applied);
                    if member.term == leader.term
                        && (member.id == leader.id || member.state == "Follower")
                        && member.last_applied >= target
                    {
                        return Ok(());
                    }
                    format!(
                        "member {id} is {} in term {} at {}, leader {} in term {} had applied {target}",
                        member.state, member.term, member.last_applied, leader.id, leader.term
                    )
                }
                (None, _) => "no leader".into(),
                (_, None) => format!("member {id} does not answer"),
            };
            if Instant::now() > deadline {
                bail!("member {id} did not catch up within {timeout:?}: {problem}");
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Writes the probe's register until a write is acknowledged; the time since `since`.
    /// Blind writes (no resourceVersion): the probe is the register's only writer and waits
    /// for each write, so a write the SDK retried can only repeat itself.
    async fn probe_write(&self, since: Instant) -> anyhow::Result<Duration> {
        let timeout = Duration::from_secs(30);
        // Each failed attempt, to say where the time went when the first success is late.
        let mut failures: Vec<String> = Vec::new();
        loop {
            let value = self.values.fetch_add(1, Ordering::Relaxed) + 1;
            let mut object = self.probe_object.clone();
            object.metadata.resource_version = None;
            set_value(&mut object, value);
            let id = self
                .history
                .invoke(PROBE_PROCESS, PROBE_KEY, Op::Write(value));
            let began = since.elapsed();
            let result = self.client.update(&object).await;
            self.history.complete(id, write_outcome(&result));
            match result {
                Ok(_) => {
                    let took = since.elapsed();
                    if took > SLOW_PROBE {
                        self.log(format!(
                            "probe write ok after {} (its attempt began at {}), after {} failures: {}",
                            secs(took),
                            secs(began),
                            failures.len(),
                            failures.join("; ")
                        ));
                    }
                    return Ok(took);
                }
                Err(e) if since.elapsed() > timeout => {
                    bail!("no write succeeded within {timeout:?}: {e}")
                }
                Err(e) => {
                    failures.push(format!("{} {e}", secs(since.elapsed())));
                    sleep(Duration::from_millis(10)).await
                }
            }
        }
    }

    /// Waits for a pod sample taken after `since` in which every deployment runs exactly
    /// its desired number of pods on nodes other than `exclude`; the time since `since`.
    async fn wait_pods(
        &self,
        since: Instant,
        exclude: Option<&str>,
        bound: Duration,
    ) -> anyhow::Result<Duration> {
        let sample = self.converged_sample(since, exclude, bound).await?;
        Ok(sample.completed - since)
    }

    /// The first pod sample taken after `since` that [`PodSample::converged`].
    async fn converged_sample(
        &self,
        since: Instant,
        exclude: Option<&str>,
        bound: Duration,
    ) -> anyhow::Result<Arc<PodSample>> {
        let deadline = since + bound;
        let mut last = "no pod sample yet".to_string();
        loop {
            if let Some(sample) = self.monitor.latest()
                && sample.invoked >= since
            {
                match sample.converged(exclude) {
                    Ok(()) => return Ok(sample),
                    Err(e) => last = e,
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "deployments not back to their desired pods{} within {} of the fault: {last}",
                    exclude.map_or(String::new(), |n| format!(" (off {n})")),
                    secs(bound)
                );
            }
            sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the hosts run exactly the desired number of container processes per
    /// deployment: pods that moved away from a dead or cut-off node are gone there too.
    async fn wait_processes(&self, world: &MultiHost, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = container_processes(world);
            let wrong: Vec<String> = DEPLOYMENTS
                .iter()
                .filter_map(|(name, replicas, _)| {
                    let n = counts.get(*name).copied().unwrap_or(0);
                    (n != *replicas)
                        .then(|| format!("{name}: {n} processes for {replicas} replicas"))
                })
                .collect();
            if wrong.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "container processes on the hosts after {timeout:?}: {}",
                    wrong.join(", ")
                );
            }
            sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_node_ready(&self, name: &str) -> anyhow::Result<()> {
        let timeout = Duration::from_secs(60);
        let deadline = Instant::now() + timeout;
        loop {
            match self.client.get::<Node>("", name).await {
                Ok(node) if crate::nodes::is_ready(&node) => return Ok(()),
                _ if Instant::now() > deadline => bail!("node {name} not Ready within {timeout:?}"),
                _ => sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Readers inside host `host`'s namespace that talk only to member `leader` there.
    fn minority_readers(&self, world: &MultiHost, host: usize, leader: u64, seed: u64) -> Tasks {
        let stop = Arc::new(AtomicBool::new(false));
        let path = world.hosts.netns_path(host);
        let endpoint = world.cluster.endpoint(leader);
        let tasks = (0..2)
            .map(|i| {
                let reader = Reader {
                    process: MINORITY_PROCESS + i,
                    endpoints: vec![endpoint.clone()],
                    history: self.history.clone(),
                    keys: self.keys(),
                    stop: stop.clone(),
                    seed: seed.wrapping_add(i as u64),
                    pause: self.config.op_pause,
                    stats: self.stats.clone(),
                    minority: true,
                };
                let path = path.clone();
                tokio::spawn(async move {
                    if let Err(e) = netns::run_async_in(&path, move || reader.run()).await {
                        eprintln!("minority reader: {e}");
                    }
                })
            })
            .collect();
        Tasks { stop, tasks }
    }

    fn keys(&self) -> Vec<String> {
        (0..self.config.keys)
            .map(|i| format!("chaos-k{i}"))
            .collect()
    }
}

/// A host cut off from the underlay; healed on drop (also when a check fails meanwhile).
struct CutOff<'w> {
    world: &'w MultiHost,
    host: usize,
    healed: bool,
}

impl<'w> CutOff<'w> {
    fn new(world: &'w MultiHost, host: usize) -> anyhow::Result<CutOff<'w>> {
        world.hosts.link_down(host)?;
        Ok(CutOff {
            world,
            host,
            healed: false,
        })
    }

    fn heal(mut self) -> anyhow::Result<()> {
        self.healed = true;
        self.world.hosts.link_up(self.host)
    }
}

impl Drop for CutOff<'_> {
    fn drop(&mut self) {
        if !self.healed
            && let Err(e) = self.world.hosts.link_up(self.host)
        {
            eprintln!("chaos: heal host {}: {e:#}", self.host);
        }
    }
}

/// The container processes of each deployment running on the hosts (under any agent's
/// data dir), by their `sleep` marker.
fn container_processes(world: &MultiHost) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for agent in &world.agents {
        for line in crate::agent::leftovers(&agent.data_dir(), agent.pid()) {
            let Some((_, command)) = line.split_once(": ") else {
                continue;
            };
            for (name, _, marker) in DEPLOYMENTS {
                if command.trim_end() == format!("{BUSYBOX} sleep {marker}") {
                    *counts.entry(name.to_string()).or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

// ------------------------------------------------------------------ pods

/// The latest list of the deployments' pods, sampled all along, and every sample that broke
/// the no-duplicates rule.
#[derive(Default)]
struct PodMonitor {
    latest: Mutex<Option<Arc<PodSample>>>,
    violations: Mutex<Vec<String>>,
    samples: AtomicUsize,
}

struct PodSample {
    invoked: Instant,
    completed: Instant,
    pods: Vec<PodView>,
}

struct PodView {
    name: String,
    owner: String,
    node: Option<String>,
    phase: Option<String>,
    terminating: bool,
}

impl PodView {
    fn describe(&self) -> String {
        format!(
            "{} on {} ({}{})",
            self.name,
            self.node.as_deref().unwrap_or("no node"),
            self.phase.as_deref().unwrap_or("no phase"),
            if self.terminating {
                ", terminating"
            } else {
                ""
            }
        )
    }

    /// Counted against the deployment's replicas: not being deleted and not finished
    /// (Pending or Running), as the deployment controller counts.
    fn active(&self) -> bool {
        !self.terminating && !matches!(self.phase.as_deref(), Some("Failed" | "Succeeded"))
    }
}

impl PodMonitor {
    fn latest(&self) -> Option<Arc<PodSample>> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn violations(&self) -> Vec<String> {
        self.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a sample. Duplicates: a deployment with more active pods (not terminating,
    /// not Failed/Succeeded — Pending or Running, wherever they are bound) than its replicas,
    /// in any sample, at any time. Nothing here changes a deployment's template or replicas,
    /// so its controller never has a reason to surge: one more pod means a pod was created
    /// twice (e.g. by an old and a new leader) or a lost node's pod came back to life next
    /// to its replacement.
    fn record(&self, start: Instant, invoked: Instant, pods: Vec<Pod>) {
        let pods: Vec<PodView> = pods
            .into_iter()
            .map(|pod| {
                let owner = pod
                    .metadata
                    .owner_references
                    .iter()
                    .find(|o| o.kind == "Deployment")
                    .map(|o| o.name.clone())
                    .unwrap_or_default();
                PodView {
                    name: pod.metadata.name,
                    owner,
                    node: pod.spec.node_name,
                    phase: pod.status.and_then(|s| s.phase),
                    terminating: pod.metadata.deletion_timestamp.is_some(),
                }
            })
            .collect();
        let sample = PodSample {
            invoked,
            completed: Instant::now(),
            pods,
        };
        for (name, replicas, _) in DEPLOYMENTS {
            let active: Vec<&PodView> = sample
                .pods
                .iter()
                .filter(|p| p.owner == name && p.active())
                .collect();
            if active.len() > replicas {
                self.violations
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!(
                        "at {}: {name} has {} active pods for {replicas} replicas: {}",
                        secs(invoked - start),
                        active.len(),
                        active
                            .iter()
                            .map(|p| p.describe())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
            }
        }
        self.samples.fetch_add(1, Ordering::Relaxed);
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(sample));
    }
}

impl PodSample {
    /// The names of the active pods.
    fn active_names(&self) -> BTreeSet<String> {
        self.pods
            .iter()
            .filter(|p| p.active())
            .map(|p| p.name.clone())
            .collect()
    }

    /// Every deployment has exactly its replicas active, all Running, on nodes other than
    /// `exclude` (whose pods' status nobody updates while it is cut off).
    fn converged(&self, exclude: Option<&str>) -> Result<(), String> {
        for (name, replicas, _) in DEPLOYMENTS {
            let live: Vec<&PodView> = self
                .pods
                .iter()
                .filter(|p| p.owner == name && p.active())
                .filter(|p| exclude.is_none() || p.node.as_deref() != exclude)
                .collect();
            let running = live
                .iter()
                .filter(|p| p.phase.as_deref() == Some("Running"))
                .count();
            if live.len() != replicas || running != replicas {
                return Err(format!(
                    "{name}: {running} running of {} active for {replicas} replicas",
                    live.len()
                ));
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ load

/// Background tasks and their stop flag.
struct Tasks {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Tasks {
    /// Stops the tasks and waits for them (each finishes its operation in flight, which
    /// the SDK's request timeout bounds).
    async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The chaos suite's register writers and readers alone, for other tests: `writers`
/// read-modify-write tasks and `readers` linearizable readers over the namespaces `keys`
/// (which must exist), recording into `history`.
pub struct RegisterLoad {
    tasks: Tasks,
    pub stats: Arc<LoadStats>,
}

impl RegisterLoad {
    pub fn start(
        endpoints: &[String],
        keys: &[String],
        history: &History,
        writers: usize,
        readers: usize,
        seed: u64,
    ) -> RegisterLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LoadStats::default());
        let values = Arc::new(AtomicU64::new(0));
        let pause = Duration::from_millis(5);
        let mut tasks = Vec::new();
        for process in 0..writers {
            let writer = Writer {
                process,
                endpoints: endpoints.to_vec(),
                history: history.clone(),
                keys: keys.to_vec(),
                values: values.clone(),
                stop: stop.clone(),
                seed: seed.wrapping_add(process as u64),
                pause,
                stats: stats.clone(),
            };
            tasks.push(tokio::spawn(writer.run()));
        }
        for i in 0..readers {
            let process = writers + i;
            let reader = Reader {
                process,
                endpoints: endpoints.to_vec(),
                history: history.clone(),
                keys: keys.to_vec(),
                stop: stop.clone(),
                seed: seed.wrapping_add(process as u64),
                pause,
                stats: stats.clone(),
                minority: false,
            };
            tasks.push(tokio::spawn(reader.run()));
        }
        RegisterLoad {
            tasks: Tasks { stop, tasks },
            stats,
        }
    }

    /// Stops every task and waits for its operation in flight.
    pub async fn stop(self) -> anyhow::Result<()> {
        Load::stop(self.tasks).await
    }
}

/// The writers, readers and the pod monitor.
struct Load {
    tasks: Tasks,
    /// The pod monitor, which outlives the writers and readers.
    monitor: Tasks,
}

impl Load {
    fn start(ctx: &Ctx, keys: &[String], seed: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for process in 0..ctx.config.writers {
            let writer = Writer {
                process,
                endpoints: ctx.endpoints.clone(),
                history: ctx.history.clone(),
                keys: keys.to_vec(),
                values: ctx.values.clone(),
                stop: stop.clone(),
                seed: seed.wrapping_add(process as u64),
                pause: ctx.config.op_pause,
                stats: ctx.stats.clone(),
            };
            tasks.push(tokio::spawn(writer.run()));
        }
        for i in 0..ctx.config.readers {
            let process = ctx.config.writers + i;
            let reader = Reader {
                process,
                endpoints: ctx.endpoints.clone(),
                history: ctx.history.clone(),
                keys: keys.to_vec(),
                stop: stop.clone(),
                seed: seed.wrapping_add(process as u64),
                pause: ctx.config.op_pause,
                stats: ctx.stats.clone(),
                minority: false,
            };
            tasks.push(tokio::spawn(reader.run()));
        }
        let monitor_stop = Arc::new(AtomicBool::new(false));
        let monitor = tokio::spawn(monitor_pods(
            ctx.endpoints.clone(),
            ctx.monitor.clone(),
            ctx.start,
            monitor_stop.clone(),
        ));
        Load {
            tasks: Tasks { stop, tasks },
            monitor: Tasks {
                stop: monitor_stop,
                tasks: vec![monitor],
            },
        }
    }

    async fn stop(tasks: Tasks) -> anyhow::Result<()> {
        tokio::time::timeout(Duration::from_secs(60), tasks.stop())
            .await
            .context("the load did not stop within 60 s")
    }
}

fn load_client(endpoints: &[String]) -> Client {
    Client::builder(endpoints)
        .tls(crate::cluster::admin_tls_for(endpoints))
        .request_timeout(Duration::from_secs(5))
        .build()
        .expect("valid endpoints")
}

struct Writer {
    process: usize,
    endpoints: Vec<String>,
    history: History,
    keys: Vec<String>,
    values: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    seed: u64,
    pause: Duration,
    stats: Arc<LoadStats>,
}

impl Writer {
    async fn run(self) {
        let client = load_client(&self.endpoints);
        let mut rng = StdRng::seed_from_u64(self.seed);
        while !self.stop.load(Ordering::Relaxed) {
            let key = &self.keys[rng.random_range(0..self.keys.len())];
            // The version to write at, read linearizably (and checked like any read).
            let id = self.history.invoke(self.process, key, Op::Read);
            let mut object = match client.get::<Namespace>("", key).await {
                Ok(object) => object,
                Err(_) => {
                    self.history.complete(id, Outcome::Failed);
                    sleep(self.pause).await;
                    continue;
                }
            };
            match value_of(&object) {
                Ok(value) => self.history.complete(id, Outcome::ReadValue(value)),
                Err(e) => {
                    // Recorded as failed; the run fails on the anomaly.
                    self.history.complete(id, Outcome::Failed);
                    self.stats.anomaly(e);
                    continue;
                }
            }
            let value = self.values.fetch_add(1, Ordering::Relaxed) + 1;
            set_value(&mut object, value);
            let id = self.history.invoke(self.process, key, Op::Write(value));
            let result = client.update(&object).await;
            let outcome = write_outcome(&result);
            let counter = match outcome {
                Outcome::Written => &self.stats.writes_ok,
                Outcome::Failed => &self.stats.writes_failed,
                _ => &self.stats.writes_unknown,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.history.complete(id, outcome);
            sleep(self.pause).await;
        }
    }
}

struct Reader {
    process: usize,
    endpoints: Vec<String>,
    history: History,
    keys: Vec<String>,
    stop: Arc<AtomicBool>,
    seed: u64,
    pause: Duration,
    stats: Arc<LoadStats>,
    /// Talks to a cut-off leader.
    minority: bool,
}

impl Reader {
    async fn run(self) {
        let client = Client::builder(&self.endpoints)
            .tls(crate::cluster::admin_tls_for(&self.endpoints))
            .request_timeout(Duration::from_secs(if self.minority { 2 } else { 5 }))
            .build()
            .expect("valid endpoints");
        let mut rng = StdRng::seed_from_u64(self.seed);
        while !self.stop.load(Ordering::Relaxed) {
            let key = &self.keys[rng.random_range(0..self.keys.len())];
            let id = self.history.invoke(self.process, key, Op::Read);
            let result = client.get::<Namespace>("", key).await;
            if self.minority {
                self.stats.minority_reads.fetch_add(1, Ordering::Relaxed);
                if result.is_ok() {
                    self.stats.minority_answered.fetch_add(1, Ordering::Relaxed);
                }
            }
            match result {
                Ok(object) => {
                    self.stats.reads_ok.fetch_add(1, Ordering::Relaxed);
                    match value_of(&object) {
                        Ok(value) => self.history.complete(id, Outcome::ReadValue(value)),
                        Err(e) => {
                            self.history.complete(id, Outcome::Failed);
                            self.stats.anomaly(e);
                        }
                    }
                }
                Err(_) => {
                    self.stats.reads_failed.fetch_add(1, Ordering::Relaxed);
                    self.history.complete(id, Outcome::Failed);
                }
            }
            sleep(self.pause).await;
        }
    }
}

/// Lists the deployments' pods every 200 ms into `monitor`.
async fn monitor_pods(
    endpoints: Vec<String>,
    monitor: Arc<PodMonitor>,
    start: Instant,
    stop: Arc<AtomicBool>,
) {
    let client = Client::builder(&endpoints)
        .tls(crate::cluster::admin_tls_for(&endpoints))
        .request_timeout(Duration::from_secs(2))
        .build()
        .expect("valid endpoints");
    while !stop.load(Ordering::Relaxed) {
        let invoked = Instant::now();
        if let Ok(list) = client
            .list::<Pod>(&ListParams::namespace(POD_NAMESPACE))
            .await
        {
            monitor.record(start, invoked, list.items);
        }
        sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&values, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(
            percentile(&values[..1], 99.0),
            Some(Duration::from_millis(1))
        );
        assert_eq!(percentile(&[], 50.0), None);
    }
}
