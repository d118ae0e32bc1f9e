//! The client: failover across endpoints, raw JSON calls, and typed CRUD on top.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use skiff_api::proto::cluster_client::ClusterClient;
use skiff_api::proto::objects_client::ObjectsClient;
use skiff_api::proto::{
    AddLearnerRequest, ChangeMembershipRequest, ClusterStatusRequest, ClusterStatusResponse,
    CreateRequest, DeleteRequest, DeleteResponse, GetRequest, KeyChange, ListRequest, ListResponse,
    PatchRequest, UpdateRequest, VersionRequest, VersionResponse,
};
use skiff_api::{Kind, Object};
use tokio::time::Instant;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::error::is_retriable;
use skiff_api::outcome;

/// Whether a failed call may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Always,
    IfNotApplied,
}
use crate::resource::Resource;
use crate::{Error, endpoints};

const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// The least time one attempt gets before the next endpoint is tried.
const MIN_ATTEMPT: Duration = Duration::from_secs(2);
/// Pause after every endpoint failed once, before trying them all again.
const ROUND_PAUSE: Duration = Duration::from_millis(100);

/// Which objects a list wants. `namespace: None` lists every namespace.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub namespace: Option<String>,
    pub label_selector: String,
    pub field_selector: String,
    /// Serve from the contacted node's state without a linearizability check.
    pub stale_ok: bool,
    /// Fetch the list in pages of this many items (0: in one request), as kubectl's
    /// `--chunk-size`. Every page reflects the state of the first one.
    pub page_size: u64,
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

    pub fn page_size(mut self, items: u64) -> ListParams {
        self.page_size = items;
        self
    }
}

#[derive(Debug, Clone)]
pub struct ObjectList<T> {
    pub items: Vec<T>,
    /// The version the list reflects: watch from here to miss nothing.
    pub resource_version: u64,
}

/// One page of a list ([`Client::list_page`]).
#[derive(Debug, Clone)]
pub struct ObjectPage<T> {
    pub items: Vec<T>,
    /// The version the whole list reflects (the first page's).
    pub resource_version: u64,
    /// Where the list goes on; None on its last page.
    pub continue_token: Option<String>,
    /// How many items follow this page, when more follow.
    pub remaining_item_count: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteParams {
    /// None uses the object's own grace period.
    pub grace_period_seconds: Option<i64>,
    /// Remove from the API at once, even a pod still running on a node.
    pub force: bool,
}

impl DeleteParams {
    /// Removes the object from the API at once (`--force --grace-period=0`).
    pub fn force() -> DeleteParams {
        DeleteParams {
            grace_period_seconds: Some(0),
            force: true,
        }
    }

    pub fn grace_period(seconds: i64) -> DeleteParams {
        DeleteParams {
            grace_period_seconds: Some(seconds),
            force: false,
        }
    }
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

impl MetadataPatch {
    pub fn set_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), Some(value.into())));
        self
    }

    pub fn remove_label(mut self, key: impl Into<String>) -> Self {
        self.labels.push((key.into(), None));
        self
    }

    pub fn set_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.push((key.into(), Some(value.into())));
        self
    }

    pub fn remove_annotation(mut self, key: impl Into<String>) -> Self {
        self.annotations.push((key.into(), None));
        self
    }

    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    pub fn at_version(mut self, resource_version: impl Into<String>) -> Self {
        self.resource_version = Some(resource_version.into());
        self
    }
}

pub struct ClientBuilder {
    endpoints: Vec<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
    bearer: Option<String>,
}

/// What every call carries besides the TLS client certificate: a bearer token, if any.
#[derive(Clone, Default)]
pub(crate) struct Credential(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for Credential {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connection to one endpoint, with the caller's credential on every call.
pub(crate) type Transport = InterceptedService<Channel, Credential>;

impl ClientBuilder {
    /// The TLS client config to dial with (the cluster CA, and the client certificate if
    /// any): see `skiff_pki::tls::client_config`. Required: every Skiff port speaks TLS.
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> ClientBuilder {
        self.tls = Some(config);
        self
    }

    /// Authenticates every call with bearer token `token` (`skiff token create`). The
    /// server takes a client certificate over a token: give a TLS config without one
    /// (`skiff_pki::tls::client_config` with no client key) to act as the token.
    pub fn bearer_token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.bearer = Some(token.into());
        self
    }

    /// Replaces the endpoints.
    pub fn endpoints<I, S>(mut self, endpoints: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.endpoints = endpoints
            .into_iter()
            .map(|e| e.as_ref().to_string())
            .collect();
        self
    }

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
        let tls = self.tls.ok_or_else(|| {
            Error::Invalid(
                "no TLS config: Skiff serves TLS only (give ClientBuilder::tls, or use Client::from_config)"
                    .into(),
            )
        })?;
        let credential = match self.bearer {
            None => Credential::default(),
            Some(token) => Credential(Some(format!("Bearer {}", token.trim()).parse().map_err(
                |_| Error::Invalid("the bearer token has characters a header cannot carry".into()),
            )?)),
        };
        let channels = urls
            .into_iter()
            .map(|url| {
                let channel = skiff_pki::tls::endpoint(&url)
                    .map_err(|e| Error::Invalid(format!("endpoint {url:?}: {e}")))?
                    .connect_timeout(self.connect_timeout)
                    .tcp_nodelay(true)
                    // Pings notice a frozen or cut-off node even on an idle watch.
                    .http2_keep_alive_interval(Duration::from_secs(3))
                    .keep_alive_timeout(Duration::from_secs(3))
                    .keep_alive_while_idle(true)
                    .connect_with_connector_lazy(skiff_pki::tls::connector(tls.clone()));
                Ok((url, InterceptedService::new(channel, credential.clone())))
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
    channels: Vec<(String, Transport)>,
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
            tls: None,
            bearer: None,
        }
    }

    /// Connects lazily to `endpoints` (`HOST:PORT`, comma-separated lists allowed, `http://`
    /// optional) over TLS with `tls`: nothing is dialled until the first call, so this fails
    /// only on malformed endpoints. Must be called within a Tokio runtime.
    pub fn connect<I, S>(endpoints: I, tls: Arc<rustls::ClientConfig>) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::builder(endpoints).tls(tls).build()
    }

    /// A builder for cluster `cluster` (or the config's current one) of the Skiff config
    /// file at `path` (`admin.conf`, `node.conf`, `~/.skiff/config`): its servers, its CA
    /// and its credential (a client certificate or a bearer token). The entry's `netns` is not joined here.
    pub fn builder_from_config(
        path: impl AsRef<std::path::Path>,
        cluster: Option<&str>,
    ) -> Result<ClientBuilder, Error> {
        let path = path.as_ref();
        let config = skiff_pki::config::load(path).map_err(|e| Error::Invalid(e.to_string()))?;
        let (name, entry) = select_cluster(&config, cluster)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        Client::builder_from_entry(entry, path, name)
    }

    /// A builder for one cluster entry of a config file read from `config_path` (relative
    /// `*-file` paths are relative to it).
    pub fn builder_from_entry(
        entry: &skiff_pki::config::ClusterEntry,
        config_path: &std::path::Path,
        cluster: &str,
    ) -> Result<ClientBuilder, Error> {
        let tls = entry
            .tls_config(config_path, cluster, skiff_pki::tls::ServerCheck::Member)
            .map_err(|e| Error::Invalid(e.to_string()))?
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: cluster {cluster:?} has no CA (ca:); Skiff serves TLS only",
                    config_path.display()
                ))
            })?;
        let builder = Client::builder(&entry.servers).tls(tls);
        Ok(match &entry.token {
            Some(token) => builder.bearer_token(token.trim()),
            None => builder,
        })
    }

    /// [`Client::builder_from_config`], built.
    pub fn from_config(
        path: impl AsRef<std::path::Path>,
        cluster: Option<&str>,
    ) -> Result<Client, Error> {
        Client::builder_from_config(path, cluster)?.build()
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
    pub(crate) fn channel(&self, attempt: usize) -> (usize, Transport) {
        let n = self.inner.channels.len();
        let index = (self.inner.current.load(Ordering::Relaxed) + attempt) % n;
        (index, self.inner.channels[index].1.clone())
    }

    pub(crate) fn channel_at(&self, index: usize) -> Transport {
        self.inner.channels[index % self.inner.channels.len()]
            .1
            .clone()
    }

    /// How long one attempt on one endpoint may take before the next is tried.
    pub(crate) fn attempt_timeout(&self) -> Duration {
        let timeout = self.inner.request_timeout;
        attempt_budget(timeout, self.endpoint_count(), timeout)
    }

    pub(crate) fn mark_good(&self, index: usize) {
        self.inner.current.store(index, Ordering::Relaxed);
    }

    /// The next call starts at the endpoint after `index`: this one left a write's outcome
    /// unknown (a leader cut off from the others keeps taking writes it cannot commit), and
    /// starting there again would leave every following write unknown too.
    pub(crate) fn mark_suspect(&self, index: usize) {
        let next = (index + 1) % self.inner.channels.len();
        let _ =
            self.inner
                .current
                .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn objects_client(channel: Transport) -> ObjectsClient<Transport> {
        ObjectsClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Runs `call` against the endpoints in turn, starting with the one that answered
    /// last, until one answers with something other than "unavailable" or the request
    /// timeout runs out. Each attempt gets a share of the budget, so one hung node (alive
    /// enough to accept connections, too stuck to answer) cannot use it all up. For reads
    /// and other calls that are safe to repeat.
    pub(crate) async fn with_failover<R, F, Fut>(&self, call: F) -> Result<R, Error>
    where
        F: FnMut(Transport) -> Fut,
        Fut: Future<Output = Result<R, tonic::Status>>,
    {
        self.failover(Repeat::Always, call).await
    }

    /// Like [`Client::with_failover`] for a write: it is sent again only when it provably
    /// was not applied (the server says so, or no connection was made), which covers a
    /// leader election. Any other failure is [`Error::Unknown`]: retrying a create that
    /// committed would answer AlreadyExists, an update that committed Conflict.
    pub(crate) async fn with_failover_write<R, F, Fut>(&self, call: F) -> Result<R, Error>
    where
        F: FnMut(Transport) -> Fut,
        Fut: Future<Output = Result<R, tonic::Status>>,
    {
        self.failover(Repeat::IfNotApplied, call).await
    }

    async fn failover<R, F, Fut>(&self, repeat: Repeat, mut call: F) -> Result<R, Error>
    where
        F: FnMut(Transport) -> Fut,
        Fut: Future<Output = Result<R, tonic::Status>>,
    {
        let timeout = self.inner.request_timeout;
        let deadline = Instant::now() + timeout;
        let endpoint_count = self.endpoint_count();
        let mut tried: Vec<&str> = Vec::new();
        let mut last = String::from("no endpoint tried");
        for attempt in 0.. {
            if attempt > 0 && attempt % endpoint_count == 0 {
                // Every endpoint failed once: give an election a moment before the next round.
                tokio::time::sleep_until((Instant::now() + ROUND_PAUSE).min(deadline)).await;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // A write waits for its answer as long as the deadline allows: the server bounds
            // its own wait and says whether the write was applied; cutting it short would
            // leave the outcome unknown.
            let attempt_deadline = match repeat {
                Repeat::Always => now + attempt_budget(timeout, endpoint_count, deadline - now),
                Repeat::IfNotApplied => deadline,
            };
            let (index, channel) = self.channel(attempt);
            let url = self.inner.channels[index].0.as_str();
            if !tried.contains(&url) {
                tried.push(url);
            }
            match tokio::time::timeout_at(attempt_deadline, call(channel)).await {
                Ok(Ok(result)) => {
                    self.mark_good(index);
                    return Ok(result);
                }
                Ok(Err(status)) if is_retriable(&status) => {
                    let safe = repeat == Repeat::Always
                        || outcome::marked_not_applied(&status)
                        || outcome::never_sent(&status);
                    if !safe {
                        self.mark_suspect(index);
                        return Err(Error::Unknown(format!("{url}: {}", status.message())));
                    }
                    last = format!("{url}: {}", status.message());
                }
                Ok(Err(status)) => {
                    // A definite answer: this endpoint is healthy.
                    self.mark_good(index);
                    return Err(status.into());
                }
                Err(_) => {
                    let waited = (attempt_deadline - now).as_millis();
                    if repeat == Repeat::IfNotApplied {
                        self.mark_suspect(index);
                        return Err(Error::Unknown(format!(
                            "{url}: no answer within {waited} ms"
                        )));
                    }
                    last = format!("{url}: no answer within {waited} ms");
                }
            }
        }
        Err(Error::Unavailable(format!(
            "no endpoint answered within {} ms (tried {}; last error: {last})",
            timeout.as_millis(),
            tried.join(", ")
        )))
    }

    // ------------------------------------------------------------- wire calls

    async fn create_bytes(&self, kind: Kind, object: &[u8]) -> Result<Vec<u8>, Error> {
        let response = self
            .with_failover_write(|channel| {
                let request = CreateRequest {
                    kind: kind.as_str().into(),
                    object: object.to_vec(),
                };
                async move { Client::objects_client(channel).create(request).await }
            })
            .await?;
        Ok(response.into_inner().object)
    }

    async fn get_bytes(&self, kind: Kind, namespace: &str, name: &str) -> Result<Vec<u8>, Error> {
        let response = self
            .with_failover(|channel| {
                let request = GetRequest {
                    kind: kind.as_str().into(),
                    namespace: scoped(kind, namespace).into(),
                    name: name.into(),
                    stale_ok: false,
                };
                async move { Client::objects_client(channel).get(request).await }
            })
            .await?;
        Ok(response.into_inner().object)
    }

    /// One page of `params.page_size` items (all with 0), going on from `continue_token`.
    async fn list_page_bytes(
        &self,
        kind: Kind,
        params: &ListParams,
        continue_token: &str,
    ) -> Result<ListResponse, Error> {
        let namespace = match &params.namespace {
            Some(namespace) => scoped(kind, namespace),
            None => "",
        };
        let response = self
            .with_failover(|channel| {
                let request = ListRequest {
                    kind: kind.as_str().into(),
                    namespace: namespace.into(),
                    label_selector: params.label_selector.clone(),
                    field_selector: params.field_selector.clone(),
                    stale_ok: params.stale_ok,
                    limit: params.page_size,
                    r#continue: continue_token.into(),
                };
                async move { Client::objects_client(channel).list(request).await }
            })
            .await?;
        Ok(response.into_inner())
    }

    /// The whole list, in pages of `params.page_size`, as one response at the first page's
    /// version. When the history no longer reaches back to that version before the last
    /// page (a long list on a busy cluster), the list starts over in one request, as
    /// client-go's pager does.
    pub(crate) async fn list_bytes(
        &self,
        kind: Kind,
        params: &ListParams,
    ) -> Result<ListResponse, Error> {
        let mut list = self.list_page_bytes(kind, params, "").await?;
        let mut next = std::mem::take(&mut list.r#continue);
        while !next.is_empty() {
            match self.list_page_bytes(kind, params, &next).await {
                Ok(mut page) => {
                    list.items.append(&mut page.items);
                    next = page.r#continue;
                }
                Err(Error::TooOld(_)) => {
                    let whole = ListParams {
                        page_size: 0,
                        ..params.clone()
                    };
                    return self.list_page_bytes(kind, &whole, "").await;
                }
                Err(e) => return Err(e),
            }
        }
        list.remaining_item_count = None;
        Ok(list)
    }

    async fn update_bytes(
        &self,
        kind: Kind,
        object: &[u8],
        part: UpdatePart,
    ) -> Result<Vec<u8>, Error> {
        let response = self
            .with_failover_write(|channel| {
                let request = UpdateRequest {
                    kind: kind.as_str().into(),
                    object: object.to_vec(),
                };
                async move {
                    let mut objects = Client::objects_client(channel);
                    match part {
                        UpdatePart::Main => objects.update(request).await,
                        UpdatePart::Status => objects.update_status(request).await,
                    }
                }
            })
            .await?;
        Ok(response.into_inner().object)
    }

    async fn patch_bytes(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        patch: &MetadataPatch,
    ) -> Result<Vec<u8>, Error> {
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
            .with_failover_write(|channel| {
                let request = PatchRequest {
                    kind: kind.as_str().into(),
                    namespace: scoped(kind, namespace).into(),
                    name: name.into(),
                    labels: changes(&patch.labels),
                    annotations: changes(&patch.annotations),
                    overwrite: patch.overwrite,
                    resource_version: patch.resource_version.clone().unwrap_or_default(),
                };
                async move { Client::objects_client(channel).patch(request).await }
            })
            .await?;
        Ok(response.into_inner().object)
    }

    async fn delete_bytes(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        params: &DeleteParams,
    ) -> Result<DeleteResponse, Error> {
        let response = self
            .with_failover_write(|channel| {
                let request = DeleteRequest {
                    kind: kind.as_str().into(),
                    namespace: scoped(kind, namespace).into(),
                    name: name.into(),
                    grace_period_seconds: params.grace_period_seconds,
                    force: params.force,
                };
                async move { Client::objects_client(channel).delete(request).await }
            })
            .await?;
        Ok(response.into_inner())
    }

    // ------------------------------------------------------------- raw JSON

    /// Creates an object from its JSON; returns the stored object.
    pub async fn create_raw(&self, kind: Kind, object: &[u8]) -> Result<Value, Error> {
        decode(&self.create_bytes(kind, object).await?)
    }

    /// `namespace` is ignored for cluster-scoped kinds.
    pub async fn get_raw(&self, kind: Kind, namespace: &str, name: &str) -> Result<Value, Error> {
        decode(&self.get_bytes(kind, namespace, name).await?)
    }

    pub async fn list_raw(
        &self,
        kind: Kind,
        params: &ListParams,
    ) -> Result<ObjectList<Value>, Error> {
        let response = self.list_bytes(kind, params).await?;
        Ok(ObjectList {
            items: response
                .items
                .iter()
                .map(|item| decode(item))
                .collect::<Result<_, _>>()?,
            resource_version: response.resource_version,
        })
    }

    pub async fn update_raw(&self, kind: Kind, object: &[u8]) -> Result<Value, Error> {
        decode(&self.update_bytes(kind, object, UpdatePart::Main).await?)
    }

    pub async fn update_status_raw(&self, kind: Kind, object: &[u8]) -> Result<Value, Error> {
        decode(&self.update_bytes(kind, object, UpdatePart::Status).await?)
    }

    pub async fn patch_raw(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        patch: &MetadataPatch,
    ) -> Result<Value, Error> {
        decode(&self.patch_bytes(kind, namespace, name, patch).await?)
    }

    pub async fn delete_raw(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted<Value>, Error> {
        let response = self.delete_bytes(kind, namespace, name, params).await?;
        Ok(Deleted {
            object: decode(&response.object)?,
            removed: response.removed,
        })
    }

    // ------------------------------------------------------------- any kind

    /// Creates an object of any kind (e.g. one parsed from a manifest).
    pub async fn create_object(&self, object: &Object) -> Result<Object, Error> {
        let kind = object.kind();
        decode_object(kind, &self.create_bytes(kind, &object.to_json()).await?)
    }

    pub async fn get_object(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object, Error> {
        decode_object(kind, &self.get_bytes(kind, namespace, name).await?)
    }

    pub async fn list_objects(
        &self,
        kind: Kind,
        params: &ListParams,
    ) -> Result<ObjectList<Object>, Error> {
        let response = self.list_bytes(kind, params).await?;
        Ok(ObjectList {
            items: response
                .items
                .iter()
                .map(|item| decode_object(kind, item))
                .collect::<Result<_, _>>()?,
            resource_version: response.resource_version,
        })
    }

    /// Replaces spec, labels and annotations of an object of any kind.
    pub async fn update_object(&self, object: &Object) -> Result<Object, Error> {
        let kind = object.kind();
        let stored = self
            .update_bytes(kind, &object.to_json(), UpdatePart::Main)
            .await?;
        decode_object(kind, &stored)
    }

    pub async fn delete_object(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted<Object>, Error> {
        let response = self.delete_bytes(kind, namespace, name, params).await?;
        Ok(Deleted {
            object: decode_object(kind, &response.object)?,
            removed: response.removed,
        })
    }

    // ------------------------------------------------------------- typed

    pub async fn create<T: Resource>(&self, object: &T) -> Result<T, Error> {
        typed(&self.create_bytes(T::KIND, &encode(object)?).await?)
    }

    /// `namespace` is ignored for cluster-scoped kinds.
    pub async fn get<T: Resource>(&self, namespace: &str, name: &str) -> Result<T, Error> {
        typed(&self.get_bytes(T::KIND, namespace, name).await?)
    }

    /// One page of at most `params.page_size` items (all with 0): the first without a
    /// `continue_token`, the next with the previous page's. A token whose version fell out
    /// of the server's history is [`Error::TooOld`]: list again from the start.
    pub async fn list_page<T: Resource>(
        &self,
        params: &ListParams,
        continue_token: Option<&str>,
    ) -> Result<ObjectPage<T>, Error> {
        let response = self
            .list_page_bytes(T::KIND, params, continue_token.unwrap_or(""))
            .await?;
        Ok(ObjectPage {
            items: response
                .items
                .iter()
                .map(|item| typed(item))
                .collect::<Result<_, _>>()?,
            resource_version: response.resource_version,
            continue_token: Some(response.r#continue).filter(|c| !c.is_empty()),
            remaining_item_count: response.remaining_item_count,
        })
    }

    /// Every matching object, fetched in pages of `params.page_size` (all at once with 0).
    pub async fn list<T: Resource>(&self, params: &ListParams) -> Result<ObjectList<T>, Error> {
        let response = self.list_bytes(T::KIND, params).await?;
        Ok(ObjectList {
            items: response
                .items
                .iter()
                .map(|item| typed(item))
                .collect::<Result<_, _>>()?,
            resource_version: response.resource_version,
        })
    }

    /// Replaces spec, labels and annotations. With `metadata.resourceVersion` set, a
    /// concurrent change makes this fail with [`Error::Conflict`].
    pub async fn update<T: Resource>(&self, object: &T) -> Result<T, Error> {
        typed(
            &self
                .update_bytes(T::KIND, &encode(object)?, UpdatePart::Main)
                .await?,
        )
    }

    /// Reads the object, lets `change` edit it and writes it back, starting over when
    /// someone else changed it in between (client-go's `RetryOnConflict`). `change`
    /// returns false to leave the object as it is.
    pub async fn modify<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        mut change: impl FnMut(&mut T) -> bool,
    ) -> Result<T, Error> {
        loop {
            let mut object: T = self.get(namespace, name).await?;
            if !change(&mut object) {
                return Ok(object);
            }
            match self.update(&object).await {
                Err(e) if e.is_conflict() => continue,
                other => return other,
            }
        }
    }

    /// Replaces status only (same resourceVersion rule as [`Client::update`]).
    pub async fn update_status<T: Resource>(&self, object: &T) -> Result<T, Error> {
        typed(
            &self
                .update_bytes(T::KIND, &encode(object)?, UpdatePart::Status)
                .await?,
        )
    }

    /// Sets or removes labels and annotations without touching the rest.
    pub async fn patch_metadata<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &MetadataPatch,
    ) -> Result<T, Error> {
        typed(&self.patch_bytes(T::KIND, namespace, name, patch).await?)
    }

    /// Deletes an object; pods are usually only marked terminating (`removed: false`)
    /// until their node has stopped them, unless `force` is set.
    pub async fn delete<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted<T>, Error> {
        let response = self.delete_bytes(T::KIND, namespace, name, params).await?;
        Ok(Deleted {
            object: typed(&response.object)?,
            removed: response.removed,
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

    /// The version of the member that answers (any authenticated caller may ask).
    pub async fn server_version(&self) -> Result<VersionResponse, Error> {
        let response = self
            .with_failover(|channel| async move {
                ClusterClient::new(channel).version(VersionRequest {}).await
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
            .with_failover_write(|channel| {
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
            .with_failover_write(|channel| {
                let request = ChangeMembershipRequest {
                    voters: voters.clone(),
                };
                async move { ClusterClient::new(channel).change_membership(request).await }
            })
            .await?;
        Ok(response.into_inner())
    }

    /// Waits until the cluster has a leader and serves the `default` namespace. Polls with
    /// a short pause: before that there is nothing to watch.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        loop {
            let probe = async {
                let status = self.cluster_status().await?;
                if status.leader_id.is_none() {
                    return Err(Error::Unavailable("no leader yet".into()));
                }
                self.get::<skiff_api::types::Namespace>("", "default")
                    .await
                    .map(drop)
            };
            // Each probe is cut off at the deadline: a call may otherwise take a full
            // request timeout, longer than the caller wants to wait.
            match tokio::time::timeout_at(deadline, probe).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => break,
            }
            let pause = Instant::now() + Duration::from_millis(100);
            if pause >= deadline {
                break;
            }
            tokio::time::sleep_until(pause).await;
        }
        Err(Error::Timeout(format!(
            "cluster not ready within {} ms: {last}",
            timeout.as_millis()
        )))
    }
}

#[derive(Debug, Clone, Copy)]
enum UpdatePart {
    Main,
    Status,
}

/// Cluster-scoped kinds have no namespace: send none, whatever the caller passed.
fn scoped(kind: Kind, namespace: &str) -> &str {
    if kind.is_namespaced() { namespace } else { "" }
}

/// How long one attempt may take: an even share of the request timeout across the
/// endpoints (at least [`MIN_ATTEMPT`], so a slow but healthy answer is not cut off),
/// never past the overall deadline.
fn attempt_budget(request_timeout: Duration, endpoints: usize, remaining: Duration) -> Duration {
    let share = request_timeout / endpoints.max(1) as u32;
    share.max(MIN_ATTEMPT).min(remaining)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
}

/// Decodes straight from the wire bytes, without an intermediate JSON tree.
pub(crate) fn typed<T: Resource>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode(format!("{}: {e}", T::KIND)))
}

fn decode_object(kind: Kind, bytes: &[u8]) -> Result<Object, Error> {
    Object::from_json(Some(kind), bytes).map_err(|e| Error::Decode(format!("{kind}: {e}")))
}

fn encode<T: Resource>(object: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(object)
        .map_err(|e| Error::Invalid(format!("cannot encode {}: {e}", T::KIND)))
}

/// Cluster `name`, else the config's current cluster, else its only one.
pub fn select_cluster<'a>(
    config: &'a skiff_pki::config::SkiffConfig,
    name: Option<&'a str>,
) -> Result<(&'a str, &'a skiff_pki::config::ClusterEntry), String> {
    let name = match (name, config.current.as_deref()) {
        (Some(name), _) | (None, Some(name)) => name,
        (None, None) => match config.clusters.keys().next() {
            Some(only) if config.clusters.len() == 1 => only.as_str(),
            Some(_) => return Err("several clusters and no current one: name one".into()),
            None => return Err("no clusters configured".into()),
        },
    };
    config
        .clusters
        .get_key_value(name)
        .map(|(k, v)| (k.as_str(), v))
        .ok_or_else(|| format!("no cluster {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_budget_shares_the_timeout() {
        let ten = Duration::from_secs(10);
        assert_eq!(attempt_budget(ten, 1, ten), ten);
        assert_eq!(
            attempt_budget(ten, 4, ten),
            Duration::from_millis(2500),
            "one hung node leaves time for the others"
        );
        assert_eq!(attempt_budget(ten, 100, ten), MIN_ATTEMPT);
        assert_eq!(
            attempt_budget(ten, 2, Duration::from_millis(300)),
            Duration::from_millis(300),
            "never past the deadline"
        );
    }

    #[test]
    fn cluster_scoped_kinds_drop_the_namespace() {
        assert_eq!(scoped(Kind::Node, "default"), "");
        assert_eq!(scoped(Kind::Namespace, "x"), "");
        assert_eq!(scoped(Kind::Pod, "web"), "web");
    }

    fn tls() -> Arc<rustls::ClientConfig> {
        let token = skiff_pki::ClusterToken::parse(&skiff_pki::generate_token()).unwrap();
        skiff_pki::tls::client_config(
            &token.ca_cert_pem(),
            None,
            skiff_pki::tls::ServerCheck::Member,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn endpoints_are_kept_in_order() {
        let client = Client::connect(["a:1, b:2", "http://c:3"], tls()).unwrap();
        assert_eq!(
            client.endpoints(),
            ["http://a:1", "http://b:2", "http://c:3"]
        );
        assert!(Client::connect(["nope"], tls()).is_err());
        assert!(
            Client::builder(["a:1"]).build().is_err(),
            "TLS is not optional"
        );
    }

    #[test]
    fn picks_the_named_or_current_cluster() {
        let entry = |server: &str| skiff_pki::config::ClusterEntry {
            servers: vec![server.into()],
            ..Default::default()
        };
        let mut config = skiff_pki::config::SkiffConfig::default();
        config.clusters.insert("a".into(), entry("a:1"));
        assert_eq!(select_cluster(&config, None).unwrap().0, "a");
        config.clusters.insert("b".into(), entry("b:1"));
        assert!(select_cluster(&config, None).is_err());
        config.current = Some("b".into());
        assert_eq!(select_cluster(&config, None).unwrap().0, "b");
        assert_eq!(select_cluster(&config, Some("a")).unwrap().0, "a");
        assert!(select_cluster(&config, Some("c")).is_err());
    }
}
