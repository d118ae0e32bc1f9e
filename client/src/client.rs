//! The client: failover across endpoints, raw JSON calls, and typed CRUD on top.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use skiff_api::Kind;
use skiff_api::proto::cluster_client::ClusterClient;
use skiff_api::proto::objects_client::ObjectsClient;
use skiff_api::proto::{
    AddLearnerRequest, ChangeMembershipRequest, ClusterStatusRequest, ClusterStatusResponse,
    CreateRequest, DeleteRequest, GetRequest, KeyChange, ListRequest, PatchRequest, UpdateRequest,
};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::error::is_retriable;
use crate::resource::Resource;
use crate::{Error, endpoints};

const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Which objects a list wants. `namespace: None` lists every namespace.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub namespace: Option<String>,
    pub label_selector: String,
    pub field_selector: String,
    /// Serve from the contacted node's state without a linearizability check.
    pub stale_ok: bool,
}

impl ListParams {
    pub fn namespace(namespace: impl Into<String>) -> ListParams {
        ListParams {
            namespace: Some(namespace.into()),
            ..ListParams::default()
        }
    }

    pub fn all_namespaces() -> ListParams {
        ListParams::default()
    }

    pub fn labels(mut self, selector: impl Into<String>) -> ListParams {
        self.label_selector = selector.into();
        self
    }

    pub fn fields(mut self, selector: impl Into<String>) -> ListParams {
        self.field_selector = selector.into();
        self
    }
}

#[derive(Debug, Clone)]
pub struct ObjectList<T> {
    pub items: Vec<T>,
    /// The version the list reflects: watch from here to miss nothing.
    pub resource_version: u64,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteParams {
    /// None uses the object's own grace period.
    pub grace_period_seconds: Option<i64>,
    /// Remove from the API at once, even a pod still running on a node.
    pub force: bool,
}

#[derive(Debug, Clone)]
pub struct Deleted<T> {
    /// The last stored state (with a deletion timestamp while terminating).
    pub object: T,
    /// Gone from the API (false: terminating).
    pub removed: bool,
}

/// Label and annotation changes: `Some` sets, `None` removes.
#[derive(Debug, Clone, Default)]
pub struct MetadataPatch {
    pub labels: Vec<(String, Option<String>)>,
    pub annotations: Vec<(String, Option<String>)>,
    /// Needed to change the value of an existing key.
    pub overwrite: bool,
    /// Reject the patch (Conflict) unless the object is at this version.
    pub resource_version: Option<String>,
}

pub struct ClientBuilder {
    endpoints: Vec<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// How long one call may take across all endpoints before it fails (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.request_timeout = timeout;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let urls = endpoints::normalize(&self.endpoints)?;
        let channels = urls
            .into_iter()
            .map(|url| {
                let channel = Endpoint::from_shared(url.clone())
                    .map_err(|e| Error::Invalid(format!("endpoint {url:?}: {e}")))?
                    .connect_timeout(self.connect_timeout)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_while_idle(true)
                    .connect_lazy();
                Ok((url, channel))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Client {
            inner: Arc::new(Inner {
                channels,
                current: AtomicUsize::new(0),
                request_timeout: self.request_timeout,
            }),
        })
    }
}

struct Inner {
    channels: Vec<(String, Channel)>,
    /// The endpoint that answered last: tried first next time.
    current: AtomicUsize,
    request_timeout: Duration,
}

/// A handle on a Skiff cluster. Cheap to clone; every clone shares the connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    pub fn builder<I, S>(endpoints: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ClientBuilder {
            endpoints: endpoints
                .into_iter()
                .map(|e| e.as_ref().to_string())
                .collect(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
        }
    }

    /// Connects lazily to `endpoints` (`HOST:PORT`, comma-separated lists allowed).
    pub fn connect<I, S>(endpoints: I) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::builder(endpoints).build()
    }

    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.inner
            .channels
            .iter()
            .map(|(url, _)| url.clone())
            .collect()
    }

    pub(crate) fn endpoint_count(&self) -> usize {
        self.inner.channels.len()
    }

    /// The channel to try for attempt `attempt` of a call that started at the current endpoint.
    pub(crate) fn channel(&self, attempt: usize) -> (usize, Channel) {
        let n = self.inner.channels.len();
        let index = (self.inner.current.load(Ordering::Relaxed) + attempt) % n;
        (index, self.inner.channels[index].1.clone())
    }

    pub(crate) fn channel_at(&self, index: usize) -> Channel {
        self.inner.channels[index % self.inner.channels.len()]
            .1
            .clone()
    }

    pub(crate) fn mark_good(&self, index: usize) {
        self.inner.current.store(index, Ordering::Relaxed);
    }

    pub(crate) fn objects_client(channel: Channel) -> ObjectsClient<Channel> {
        ObjectsClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Runs `call` against the endpoints in turn until one answers with something other
    /// than "unavailable", within the request timeout. Note that a write retried after
    /// Unavailable may already have been applied (as with etcd's clients).
    pub(crate) async fn with_failover<R, F, Fut>(&self, mut call: F) -> Result<R, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<R, tonic::Status>>,
    {
        let timeout = self.inner.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no endpoint tried");
        for attempt in 0.. {
            if attempt > 0 && attempt % self.endpoint_count() == 0 {
                // Every endpoint failed once: give elections a moment before the next round.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (index, channel) = self.channel(attempt);
            match tokio::time::timeout_at(deadline, call(channel)).await {
                Ok(Ok(result)) => {
                    self.mark_good(index);
                    return Ok(result);
                }
                Ok(Err(status)) if is_retriable(&status) => {
                    last = format!("{}: {}", self.inner.channels[index].0, status.message());
                }
                Ok(Err(status)) => return Err(status.into()),
                Err(_) => break,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(Error::Unavailable(format!(
            "no endpoint of {} answered within {} ms (last error: {last})",
            self.endpoints().join(","),
            timeout.as_millis()
        )))
    }

    // ------------------------------------------------------------- raw JSON

    /// Creates an object from its JSON; returns the stored object.
    pub async fn create_raw(&self, kind: Kind, object: &[u8]) -> Result<Value, Error> {
        let response = self
            .with_failover(|channel| {
                let request = CreateRequest {
                    kind: kind.as_str().into(),
                    object: object.to_vec(),
                };
                async move { Client::objects_client(channel).create(request).await }
            })
            .await?;
        decode(&response.into_inner().object)
    }

    pub async fn get_raw(&self, kind: Kind, namespace: &str, name: &str) -> Result<Value, Error> {
        let response = self
            .with_failover(|channel| {
                let request = GetRequest {
                    kind: kind.as_str().into(),
                    namespace: namespace.into(),
                    name: name.into(),
                    stale_ok: false,
                };
                async move { Client::objects_client(channel).get(request).await }
            })
            .await?;
        decode(&response.into_inner().object)
    }

    pub async fn list_raw(
        &self,
        kind: Kind,
        params: &ListParams,
    ) -> Result<ObjectList<Value>, Error> {
        let response = self
            .with_failover(|channel| {
                let request = ListRequest {
                    kind: kind.as_str().into(),
                    namespace: params.namespace.clone().unwrap_or_default(),
                    label_selector: params.label_selector.clone(),
                    field_selector: params.field_selector.clone(),
                    stale_ok: params.stale_ok,
                };
                async move { Client::objects_client(channel).list(request).await }
            })
            .await?
            .into_inner();
        Ok(ObjectList {
            items: response
                .items
                .iter()
                .map(|i| decode(i))
                .collect::<Result<_, _>>()?,
            resource_version: response.resource_version,
        })
    }

    pub async fn update_raw(&self, kind: Kind, object: &[u8]) -> Result<Value, Error> {
        let response = self
            .with_failover(|channel| {
                let request = UpdateRequest {
                    kind: kind.as_str().into(),
                    object: object.to_vec(),
                };
                async move { Client::objects_client(channel).update(request).await }
            })
            .await?;
        decode(&response.into_inner().object)
    }

    pub async fn update_status_raw(&self, kind: Kind, object: &[u8]) -> Result<Value, Error> {
        let response = self
            .with_failover(|channel| {
                let request = UpdateRequest {
                    kind: kind.as_str().into(),
                    object: object.to_vec(),
                };
                async move { Client::objects_client(channel).update_status(request).await }
            })
            .await?;
        decode(&response.into_inner().object)
    }

    pub async fn patch_raw(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        patch: &MetadataPatch,
    ) -> Result<Value, Error> {
        let changes = |pairs: &[(String, Option<String>)]| {
            pairs
                .iter()
                .map(|(key, value)| KeyChange {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect()
        };
        let response = self
            .with_failover(|channel| {
                let request = PatchRequest {
                    kind: kind.as_str().into(),
                    namespace: namespace.into(),
                    name: name.into(),
                    labels: changes(&patch.labels),
                    annotations: changes(&patch.annotations),
                    overwrite: patch.overwrite,
                    resource_version: patch.resource_version.clone().unwrap_or_default(),
                };
                async move { Client::objects_client(channel).patch(request).await }
            })
            .await?;
        decode(&response.into_inner().object)
    }

    pub async fn delete_raw(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted<Value>, Error> {
        let response = self
            .with_failover(|channel| {
                let request = DeleteRequest {
                    kind: kind.as_str().into(),
                    namespace: namespace.into(),
                    name: name.into(),
                    grace_period_seconds: params.grace_period_seconds,
                    force: params.force,
                };
                async move { Client::objects_client(channel).delete(request).await }
            })
            .await?
            .into_inner();
        Ok(Deleted {
            object: decode(&response.object)?,
            removed: response.removed,
        })
    }

    // ------------------------------------------------------------- typed

    pub async fn create<T: Resource>(&self, object: &T) -> Result<T, Error> {
        typed(self.create_raw(T::KIND, &encode(object)?).await?)
    }

    /// `namespace` is ignored for cluster-scoped kinds.
    pub async fn get<T: Resource>(&self, namespace: &str, name: &str) -> Result<T, Error> {
        typed(self.get_raw(T::KIND, namespace, name).await?)
    }

    pub async fn list<T: Resource>(&self, params: &ListParams) -> Result<ObjectList<T>, Error> {
        let list = self.list_raw(T::KIND, params).await?;
        Ok(ObjectList {
            items: list
                .items
                .into_iter()
                .map(typed)
                .collect::<Result<_, _>>()?,
            resource_version: list.resource_version,
        })
    }

    /// Replaces spec, labels and annotations. With `metadata.resourceVersion` set, a
    /// concurrent change makes this fail with [`Error::Conflict`].
    pub async fn update<T: Resource>(&self, object: &T) -> Result<T, Error> {
        typed(self.update_raw(T::KIND, &encode(object)?).await?)
    }

    /// Replaces status only.
    pub async fn update_status<T: Resource>(&self, object: &T) -> Result<T, Error> {
        typed(self.update_status_raw(T::KIND, &encode(object)?).await?)
    }

    pub async fn patch_metadata<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &MetadataPatch,
    ) -> Result<T, Error> {
        typed(self.patch_raw(T::KIND, namespace, name, patch).await?)
    }

    pub async fn delete<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted<T>, Error> {
        let deleted = self.delete_raw(T::KIND, namespace, name, params).await?;
        Ok(Deleted {
            object: typed(deleted.object)?,
            removed: deleted.removed,
        })
    }

    // ------------------------------------------------------------- cluster

    pub async fn cluster_status(&self) -> Result<ClusterStatusResponse, Error> {
        let response = self
            .with_failover(|channel| async move {
                ClusterClient::new(channel)
                    .status(ClusterStatusRequest {})
                    .await
            })
            .await?;
        Ok(response.into_inner())
    }

    pub async fn add_learner(
        &self,
        id: u64,
        address: &str,
    ) -> Result<ClusterStatusResponse, Error> {
        let response = self
            .with_failover(|channel| {
                let request = AddLearnerRequest {
                    id,
                    address: address.into(),
                };
                async move { ClusterClient::new(channel).add_learner(request).await }
            })
            .await?;
        Ok(response.into_inner())
    }

    /// Sets the voters: name learners to promote them, leave nodes out to remove them.
    pub async fn change_membership(
        &self,
        voters: Vec<u64>,
    ) -> Result<ClusterStatusResponse, Error> {
        let response = self
            .with_failover(|channel| {
                let request = ChangeMembershipRequest {
                    voters: voters.clone(),
                };
                async move { ClusterClient::new(channel).change_membership(request).await }
            })
            .await?;
        Ok(response.into_inner())
    }

    /// Waits until the cluster has a leader and serves the `default` namespace. Polls:
    /// before that there is nothing to watch.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.cluster_status().await {
                Ok(status) if status.leader_id.is_some() => {
                    match self.get::<skiff_api::types::Namespace>("", "default").await {
                        Ok(_) => return Ok(()),
                        Err(e) => last = e.to_string(),
                    }
                }
                Ok(_) => last = "no leader yet".into(),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Timeout(format!(
            "cluster not ready within {} ms: {last}",
            timeout.as_millis()
        )))
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
}

pub(crate) fn typed<T: Resource>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::Decode(format!("{}: {e}", T::KIND)))
}

fn encode<T: Resource>(object: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(object)
        .map_err(|e| Error::Invalid(format!("cannot encode {}: {e}", T::KIND)))
}
