//! What the pod worker needs from outside the runtime, as narrow traits so tests put fakes
//! in their place (`runtime::fake`): the control plane (write a pod's status, confirm its
//! deletion, record events) and the image store (is an image present, pull it).

use futures::future::BoxFuture;
use skiff_api::types::Pod;
use skiff_client::{Client, DeleteParams};

use crate::events::Recorder;
use crate::image::{NodeImages, Reference};

/// The control plane, as the pod worker uses it.
pub trait PodApi: Send + Sync + 'static {
    /// Replaces the status of `pod` with `pod.status`.
    fn write_status(&self, pod: &Pod) -> BoxFuture<'static, Result<(), skiff_client::Error>>;

    /// Lets a pod whose containers are all stopped leave the API; a pod already gone counts
    /// as confirmed.
    fn confirm_deletion(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'static, Result<(), skiff_client::Error>>;

    /// Records an event about the pod, in the background.
    fn event(&self, pod: &Pod, type_: &'static str, reason: &'static str, message: String);
}

/// [`PodApi`] through the cluster's API.
pub struct ClientApi {
    pub client: Client,
    pub events: Recorder,
}

impl PodApi for ClientApi {
    fn write_status(&self, pod: &Pod) -> BoxFuture<'static, Result<(), skiff_client::Error>> {
        let client = self.client.clone();
        let mut pod = pod.clone();
        // The agent owns the status of its pods: replace it whatever the version.
        pod.metadata.resource_version = None;
        Box::pin(async move { client.update_status(&pod).await.map(drop) })
    }

    fn confirm_deletion(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'static, Result<(), skiff_client::Error>> {
        let client = self.client.clone();
        let (namespace, name) = (namespace.to_string(), name.to_string());
        Box::pin(async move {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                force: false,
            };
            match client.delete::<Pod>(&namespace, &name, &params).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn event(&self, pod: &Pod, type_: &'static str, reason: &'static str, message: String) {
        self.events.pod(pod, type_, reason, message);
    }
}

/// The image store, as the pod worker uses it (runtimes that run images only).
pub trait PodImages: Send + Sync + 'static {
    fn present(&self, image: &str) -> BoxFuture<'static, bool>;

    /// Pulls `image` (a valid reference); Ok: its digest, Err: the registry's reason.
    fn pull(&self, image: &str) -> BoxFuture<'static, Result<String, String>>;
}

impl PodImages for NodeImages {
    fn present(&self, image: &str) -> BoxFuture<'static, bool> {
        let store = self.store.clone();
        let image = image.to_string();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.get(&image).is_ok())
                .await
                .unwrap_or(false)
        })
    }

    fn pull(&self, image: &str) -> BoxFuture<'static, Result<String, String>> {
        let store = self.store.clone();
        let options = self.pull.clone();
        let reference = Reference::parse(image).map_err(|e| e.to_string());
        Box::pin(async move {
            let pulled = store.pull(&reference?, &options).await;
            let metrics = &crate::metrics::METRICS;
            metrics
                .image_pulls
                .get_or_create(&crate::metrics::outcome(&pulled))
                .inc();
            if let Ok(image) = &pulled {
                metrics.image_pull_bytes.inc_by(image.size);
            }
            pulled
                .map(|image| image.digest.to_string())
                .map_err(|e| e.to_string())
        })
    }
}
