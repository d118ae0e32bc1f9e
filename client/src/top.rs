//! `skiff top`'s figures: CPU and memory of nodes and pods, as the agents' cgroup samplers
//! measured them over their last interval (any control-plane member gathers them).

use skiff_api::proto::metrics_client::MetricsClient;
use skiff_api::proto::{NodeMetrics, PodUsage, TopNodesRequest, TopPodsRequest};

use crate::client::Client;
use crate::error::Error;

impl Client {
    /// Every node matching `label_selector` (empty: all), in name order; a node whose agent
    /// gave no figures has `available: false`.
    pub async fn top_nodes(&self, label_selector: &str) -> Result<Vec<NodeMetrics>, Error> {
        self.with_failover(|channel| {
            let request = TopNodesRequest {
                label_selector: label_selector.to_string(),
            };
            async move { MetricsClient::new(channel).top_nodes(request).await }
        })
        .await
        .map(|r| r.into_inner().nodes)
    }

    /// The pods of `namespace` (empty: every namespace) matching `label_selector` that have
    /// figures (running, on a runtime that gives containers cgroups), by namespace and name.
    pub async fn top_pods(
        &self,
        namespace: &str,
        label_selector: &str,
    ) -> Result<Vec<PodUsage>, Error> {
        self.with_failover(|channel| {
            let request = TopPodsRequest {
                namespace: namespace.to_string(),
                label_selector: label_selector.to_string(),
            };
            async move { MetricsClient::new(channel).top_pods(request).await }
        })
        .await
        .map(|r| r.into_inner().pods)
    }
}
