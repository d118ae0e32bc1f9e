//! The agent's Prometheus metrics, served on `--metrics-listen` (see `skiff_metrics`).
//!
//! Names follow the kubelet's where it has a counterpart (`skiff_kubelet_…`, and cAdvisor's
//! `container_…` figures as `skiff_pod_…`). Counters and histograms that code paths update
//! live in the process-wide [`METRICS`]; the running pods and containers and the cgroup
//! readings are read when scraped, from the pod index and the usage sampler.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use skiff_metrics::latency_buckets;

use crate::pod_index::PodIndex;
use crate::runtime::{
    ContainerConfig, ContainerInfo, ContainerOptions, ExecProcess, Result, Runtime, SandboxConfig,
    SandboxInfo,
};
use crate::usage::UsageBook;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Operation {
    pub operation_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub result: &'static str,
}

/// The metrics code paths update.
pub struct Metrics {
    pub pod_start: Histogram,
    pub runtime_operations: Family<Operation, Histogram>,
    pub runtime_errors: Family<Operation, Counter>,
    pub image_pulls: Family<Outcome, Counter>,
    pub image_pull_bytes: Counter,
    pub image_imports: Family<Outcome, Counter>,
    pub image_import_bytes: Counter,
    pub container_restarts: Counter,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    pod_start: Histogram::new(latency_buckets()),
    runtime_operations: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
    runtime_errors: Family::default(),
    image_pulls: Family::default(),
    image_pull_bytes: Counter::default(),
    image_imports: Family::default(),
    image_import_bytes: Counter::default(),
    container_restarts: Counter::default(),
});

/// `success` or `failure`, for the image counters.
pub fn outcome<T, E>(result: &std::result::Result<T, E>) -> Outcome {
    Outcome {
        result: if result.is_ok() { "success" } else { "failure" },
    }
}

/// The registry the agent serves: [`METRICS`], its pods and the cgroup readings.
pub fn registry(pod_index: Arc<PodIndex>, usage: Arc<UsageBook>) -> Registry {
    let m = &*METRICS;
    let mut r = Registry::default();
    r.register(
        "skiff_kubelet_pod_start_duration_seconds",
        "From a pod first seen by this agent to its Running status written (kubelet_pod_start_duration_seconds)",
        m.pod_start.clone(),
    );
    r.register(
        "skiff_kubelet_runtime_operations_duration_seconds",
        "Container runtime operation latency, by operation (kubelet_runtime_operations_duration_seconds)",
        m.runtime_operations.clone(),
    );
    r.register(
        "skiff_kubelet_runtime_operations_errors",
        "Container runtime operations that failed, by operation (kubelet_runtime_operations_errors_total)",
        m.runtime_errors.clone(),
    );
    r.register(
        "skiff_kubelet_image_pulls",
        "Image pulls from registries, by result",
        m.image_pulls.clone(),
    );
    r.register(
        "skiff_kubelet_image_pull_bytes",
        "Bytes of the images pulled (their blobs as stored)",
        m.image_pull_bytes.clone(),
    );
    r.register(
        "skiff_kubelet_image_imports",
        "Image archives imported (skiff image load), by result",
        m.image_imports.clone(),
    );
    r.register(
        "skiff_kubelet_image_import_bytes",
        "Bytes of the image archives received for import",
        m.image_import_bytes.clone(),
    );
    r.register(
        "skiff_kubelet_container_restarts",
        "Containers started again after an earlier attempt of theirs",
        m.container_restarts.clone(),
    );
    r.register_collector(Box::new(NodeCollector { pod_index, usage }));
    r
}

/// What the pod index and the usage sampler hold, read at scrape time.
struct NodeCollector {
    pod_index: Arc<PodIndex>,
    usage: Arc<UsageBook>,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCollector")
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::result::Result<(), std::fmt::Error> {
        let pods = self.pod_index.current_containers();
        let containers: usize = pods.iter().map(|(_, ids)| ids.len()).sum();
        let pods_running = pods.iter().filter(|(_, ids)| !ids.is_empty()).count();
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64| {
            let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        gauge(
            &mut encoder,
            "skiff_kubelet_running_pods",
            "Pods with a container created or running (kubelet_running_pods)",
            pods_running as u64,
        )?;
        gauge(
            &mut encoder,
            "skiff_kubelet_running_containers",
            "Containers created or running (kubelet_running_containers)",
            containers as u64,
        )?;
        let sample = self.usage.latest();
        let node_cpu = ConstCounter::new(sample.node.cpu_ns as f64 / 1e9);
        node_cpu.encode(encoder.encode_descriptor(
            "skiff_node_cpu_usage_seconds",
            "CPU time the node used, all CPUs (node_cpu_usage_seconds_total)",
            None,
            MetricType::Counter,
        )?)?;
        gauge(
            &mut encoder,
            "skiff_node_memory_working_set_bytes",
            "Memory the node uses: installed less available (node_memory_working_set_bytes)",
            sample.node.memory_bytes,
        )?;
        let mut cpu = encoder.encode_descriptor(
            "skiff_pod_cpu_usage_seconds",
            "CPU time of a pod's running containers, from their cgroups (pod_cpu_usage_seconds_total)",
            None,
            MetricType::Counter,
        )?;
        for ((namespace, pod), reading) in &sample.pods {
            let labels = [("namespace", namespace.as_str()), ("pod", pod.as_str())];
            ConstCounter::new(reading.cpu_ns as f64 / 1e9).encode(cpu.encode_family(&labels)?)?;
        }
        let mut memory = encoder.encode_descriptor(
            "skiff_pod_memory_working_set_bytes",
            "Memory working set of a pod's running containers, from their cgroups (pod_memory_working_set_bytes)",
            None,
            MetricType::Gauge,
        )?;
        for ((namespace, pod), reading) in &sample.pods {
            let labels = [("namespace", namespace.as_str()), ("pod", pod.as_str())];
            ConstGauge::new(i64::try_from(reading.memory_bytes).unwrap_or(i64::MAX))
                .encode(memory.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A runtime whose every operation is timed, and counted when it fails.
pub struct Instrumented<R> {
    inner: Arc<R>,
}

impl<R> Instrumented<R> {
    pub fn new(inner: Arc<R>) -> Self {
        Instrumented { inner }
    }
}

/// Runs `operation`, recording its latency and failure under `name`.
async fn timed<T>(name: &'static str, operation: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = operation.await;
    let labels = Operation {
        operation_type: name,
    };
    METRICS
        .runtime_operations
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        METRICS.runtime_errors.get_or_create(&labels).inc();
    }
    result
}

impl<R: Runtime> Runtime for Instrumented<R> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn create_sandbox(&self, config: &SandboxConfig) -> Result<SandboxInfo> {
        timed("create_sandbox", self.inner.create_sandbox(config)).await
    }

    async fn remove_sandbox(&self, sandbox_id: &str) -> Result<()> {
        timed("remove_sandbox", self.inner.remove_sandbox(sandbox_id)).await
    }

    async fn list_sandboxes(&self) -> Result<Vec<SandboxInfo>> {
        timed("list_sandboxes", self.inner.list_sandboxes()).await
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
    ) -> Result<ContainerInfo> {
        timed(
            "create_container",
            self.inner.create_container(sandbox_id, config),
        )
        .await
    }

    async fn create_container_with(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        options: &ContainerOptions,
    ) -> Result<ContainerInfo> {
        timed(
            "create_container",
            self.inner
                .create_container_with(sandbox_id, config, options),
        )
        .await
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        timed("start_container", self.inner.start_container(container_id)).await
    }

    async fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()> {
        timed(
            "stop_container",
            self.inner.stop_container(container_id, grace),
        )
        .await
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        timed(
            "remove_container",
            self.inner.remove_container(container_id),
        )
        .await
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerInfo> {
        timed(
            "container_status",
            self.inner.container_status(container_id),
        )
        .await
    }

    async fn list_containers(&self, sandbox_id: Option<&str>) -> Result<Vec<ContainerInfo>> {
        timed("list_containers", self.inner.list_containers(sandbox_id)).await
    }

    async fn exec(&self, container_id: &str, argv: &[String]) -> Result<ExecProcess> {
        timed("exec", self.inner.exec(container_id, argv)).await
    }

    async fn exec_tty(
        &self,
        container_id: &str,
        argv: &[String],
        size: crate::runtime::pty::TerminalSize,
    ) -> Result<ExecProcess> {
        timed("exec", self.inner.exec_tty(container_id, argv, size)).await
    }

    async fn connect(
        &self,
        sandbox_id: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<tokio::net::TcpStream> {
        timed("connect", self.inner.connect(sandbox_id, port, timeout)).await
    }

    fn container_usage(&self, container_id: &str) -> Option<crate::usage::ContainerUsage> {
        self.inner.container_usage(container_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeError;

    #[tokio::test]
    async fn a_runtime_operation_is_timed_and_its_failure_counted() {
        // An operation name of its own: other tests of this binary time real operations.
        let labels = Operation {
            operation_type: "test_operation",
        };
        let count = || Histogram::count(&METRICS.runtime_operations.get_or_create(&labels));
        let errors = || METRICS.runtime_errors.get_or_create(&labels).get();
        let (before, errors_before) = (count(), errors());
        timed("test_operation", async { Ok(()) }).await.unwrap();
        let failed = timed("test_operation", async {
            Err::<(), _>(RuntimeError::Invalid("no".into()))
        })
        .await;
        assert!(failed.is_err());
        assert_eq!(count(), before + 2);
        assert_eq!(errors(), errors_before + 1);
    }
}
