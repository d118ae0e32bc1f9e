//! The control plane's Prometheus metrics, served on `--metrics-listen` (see `skiff_metrics`).
//!
//! Names follow etcd, kube-apiserver and kube-scheduler where those have a counterpart, with
//! the `skiff_` prefix. Counters and histograms that code paths update live in one
//! process-wide [`METRICS`] (Go's default registry, as etcd and Kubernetes use it): a write
//! pays an atomic add or a histogram observation, nothing more. What a member's state
//! already holds (Raft's figures, object counts) is read when scraped, by collectors.

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use openraft::ServerState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use skiff_api::Kind;
use skiff_metrics::latency_buckets;
use tonic::Status;

use crate::raft_node::ControlPlane;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: &'static str,
    pub resource: &'static str,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbResource {
    pub verb: &'static str,
    pub resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// The metrics code paths update.
pub struct Metrics {
    pub leader_changes: Counter,
    pub commit_index: Gauge,
    pub proposals_committed: Counter,
    pub proposals_failed: Counter,
    pub wal_fsync: Histogram,
    pub commit_duration: Histogram,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<VerbResource, Histogram>,
    pub watches: Gauge,
    pub schedule_attempts: Family<ResultLabel, Counter>,
    pub scheduling_duration: Histogram,
    pub controller_pass: Histogram,
    pub pre_votes: Family<ResultLabel, Counter>,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    leader_changes: Counter::default(),
    commit_index: Gauge::default(),
    proposals_committed: Counter::default(),
    proposals_failed: Counter::default(),
    wal_fsync: Histogram::new(latency_buckets()),
    commit_duration: Histogram::new(latency_buckets()),
    requests: Family::default(),
    request_duration: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
    watches: Gauge::default(),
    schedule_attempts: Family::default(),
    scheduling_duration: Histogram::new(latency_buckets()),
    controller_pass: Histogram::new(latency_buckets()),
    pre_votes: Family::default(),
});

/// The registry a member serves: [`METRICS`] and its own state's figures.
pub fn registry(node: Arc<ControlPlane>) -> Registry {
    let m = &*METRICS;
    let mut r = Registry::default();
    r.register(
        "skiff_raft_leader_changes_seen",
        "Leader changes this member has seen (etcd_server_leader_changes_seen_total)",
        m.leader_changes.clone(),
    );
    r.register(
        "skiff_raft_commit_index",
        "The highest log index this member knows committed",
        m.commit_index.clone(),
    );
    r.register(
        "skiff_raft_proposals_committed",
        "Proposals this member, as leader, saw committed and applied",
        m.proposals_committed.clone(),
    );
    r.register(
        "skiff_raft_proposals_failed",
        "Proposals this member, as leader, could not commit",
        m.proposals_failed.clone(),
    );
    r.register(
        "skiff_disk_wal_fsync_duration_seconds",
        "Time to make appended log entries durable (etcd_disk_wal_fsync_duration_seconds)",
        m.wal_fsync.clone(),
    );
    r.register(
        "skiff_raft_commit_duration_seconds",
        "Time from a batch of proposals handed to Raft to its entry committed and applied, on the leader",
        m.commit_duration.clone(),
    );
    r.register(
        "skiff_apiserver_request",
        "API requests by verb, resource and gRPC code (apiserver_request_total)",
        m.requests.clone(),
    );
    r.register(
        "skiff_apiserver_request_duration_seconds",
        "API request latency by verb and resource; a watch counts until it is set up",
        m.request_duration.clone(),
    );
    r.register(
        "skiff_apiserver_watches",
        "Watches being served now",
        m.watches.clone(),
    );
    r.register(
        "skiff_raft_pre_votes",
        "Pre-vote rounds this member asked, by result (won: it stood for election; lost)",
        m.pre_votes.clone(),
    );
    r.register(
        "skiff_scheduler_schedule_attempts",
        "Attempts to place a pending pod, by result (scheduled or unschedulable)",
        m.schedule_attempts.clone(),
    );
    r.register(
        "skiff_scheduler_scheduling_duration_seconds",
        "Time to choose a node for one pod (scheduler_scheduling_attempt_duration_seconds)",
        m.scheduling_duration.clone(),
    );
    r.register(
        "skiff_controller_pass_duration_seconds",
        "Time of one pass of the leader's controllers (nodes, scheduler, deployments)",
        m.controller_pass.clone(),
    );
    r.register_collector(Box::new(StateCollector { node }));
    r
}

/// Raft's figures and the object counts, read from the member at scrape time.
struct StateCollector {
    node: Arc<ControlPlane>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCollector")
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (has_leader, is_leader, term, applied) = {
            let m = self.node.raft.metrics().borrow().clone();
            (
                m.current_leader.is_some(),
                m.state == ServerState::Leader,
                m.current_term,
                m.last_applied.map_or(0, |l| l.index),
            )
        };
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            &mut encoder,
            "skiff_raft_has_leader",
            "Whether this member knows a leader: 1 or 0 (etcd_server_has_leader)",
            i64::from(has_leader),
        )?;
        gauge(
            &mut encoder,
            "skiff_raft_is_leader",
            "Whether this member is the leader: 1 or 0 (etcd_server_is_leader)",
            i64::from(is_leader),
        )?;
        gauge(
            &mut encoder,
            "skiff_raft_term",
            "This member's current Raft term",
            as_i64(term),
        )?;
        gauge(
            &mut encoder,
            "skiff_raft_applied_index",
            "The highest log index this member applied to its state",
            as_i64(applied),
        )?;
        let counts: Vec<(&'static str, usize)> = {
            let table = self.node.shared.table.read().expect("table lock");
            Kind::ALL
                .iter()
                .map(|kind| (kind.plural(), table.list(*kind, None).count()))
                .collect()
        };
        let mut family = encoder.encode_descriptor(
            "skiff_apiserver_storage_objects",
            "Objects stored, by resource (apiserver_storage_objects)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (resource, count) in counts {
            let labels = [("resource", resource)];
            ConstGauge::new(count as i64).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Counts leader changes as this member sees them, until Raft shuts down.
pub async fn count_leader_changes(node: Arc<ControlPlane>) {
    let mut watch = node.raft.metrics();
    let mut last = None;
    loop {
        let (leader, state) = {
            let m = watch.borrow_and_update();
            (m.current_leader, m.state)
        };
        if state == ServerState::Shutdown {
            return;
        }
        if leader.is_some() && leader != last {
            METRICS.leader_changes.inc();
            last = leader;
        }
        if watch.changed().await.is_err() {
            return;
        }
    }
}

/// Times one API request and counts it by its outcome.
pub struct RequestTimer {
    verb: &'static str,
    resource: &'static str,
    started: Instant,
}

impl RequestTimer {
    /// `kind` as the request gave it: anything that is not a kind counts as `unknown`, so
    /// hostile input cannot grow the label set.
    pub fn start(verb: &'static str, kind: &str) -> RequestTimer {
        RequestTimer {
            verb,
            resource: resource_of(kind),
            started: Instant::now(),
        }
    }

    pub fn finish<T>(self, result: Result<T, Status>) -> Result<T, Status> {
        let code = match &result {
            Ok(_) => "OK",
            Err(status) => code_name(status.code()),
        };
        let m = &*METRICS;
        m.request_duration
            .get_or_create(&VerbResource {
                verb: self.verb,
                resource: self.resource,
            })
            .observe(self.started.elapsed().as_secs_f64());
        m.requests
            .get_or_create(&RequestLabels {
                verb: self.verb,
                resource: self.resource,
                code,
            })
            .inc();
        result
    }
}

/// The resource a request's kind names: the exact kind or plural (what the SDK sends) without
/// allocating, else whatever `Kind::parse` accepts, else `unknown`.
fn resource_of(kind: &str) -> &'static str {
    Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind || k.plural() == kind)
        .or_else(|| Kind::parse(kind))
        .map_or("unknown", Kind::plural)
}

/// gRPC's canonical code names.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Held for as long as a watch is served.
pub struct WatchGuard(());

impl WatchGuard {
    #[allow(clippy::new_without_default)]
    pub fn new() -> WatchGuard {
        METRICS.watches.inc();
        WatchGuard(())
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        METRICS.watches.dec();
    }
}

/// Seconds since `started`, for a histogram.
pub fn since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_counted_by_verb_resource_and_code_and_unknown_kinds_share_one_label() {
        // A verb of its own: other tests of this binary count real requests meanwhile.
        let before = |resource, code| {
            METRICS
                .requests
                .get_or_create(&RequestLabels {
                    verb: "TEST",
                    resource,
                    code,
                })
                .get()
        };
        let (pods_ok, unknown_missing) = (before("pods", "OK"), before("unknown", "NOT_FOUND"));
        RequestTimer::start("TEST", "Pod")
            .finish(Ok::<_, Status>(()))
            .unwrap();
        let _ = RequestTimer::start("TEST", "no-such-kind-\u{1F980}")
            .finish(Err::<(), _>(Status::not_found("x")));
        assert_eq!(before("pods", "OK"), pods_ok + 1);
        assert_eq!(before("unknown", "NOT_FOUND"), unknown_missing + 1);
    }
}
