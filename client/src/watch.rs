//! Watches that survive disconnects: after a broken stream the watch reconnects (to the
//! next endpoint) from the last version it delivered, so no change is missed or repeated.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use skiff_api::proto::WatchRequest;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::{Client, typed};
use crate::error::is_retriable;
use crate::resource::{Resource, version_of};
use crate::{Error, ListParams};

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Events buffered between the watch task and a slow consumer.
const BUFFER: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct WatchParams {
    /// None watches every namespace (and is required for cluster-scoped kinds).
    pub namespace: Option<String>,
    pub label_selector: String,
    pub field_selector: String,
    /// None: first an `Added` for every existing object and a `Bookmark` at the listed
    /// version, then changes. Some(v): every change after v.
    pub resource_version: Option<u64>,
}

impl From<&ListParams> for WatchParams {
    fn from(list: &ListParams) -> WatchParams {
        WatchParams {
            namespace: list.namespace.clone(),
            label_selector: list.label_selector.clone(),
            field_selector: list.field_selector.clone(),
            resource_version: None,
        }
    }
}

/// So `watch` takes parameters by value or by reference.
impl From<&WatchParams> for WatchParams {
    fn from(params: &WatchParams) -> WatchParams {
        params.clone()
    }
}

impl WatchParams {
    pub fn namespace(namespace: impl Into<String>) -> WatchParams {
        WatchParams {
            namespace: Some(namespace.into()),
            ..WatchParams::default()
        }
    }

    pub fn all_namespaces() -> WatchParams {
        WatchParams::default()
    }

    pub fn labels(mut self, selector: impl Into<String>) -> WatchParams {
        self.label_selector = selector.into();
        self
    }

    pub fn fields(mut self, selector: impl Into<String>) -> WatchParams {
        self.field_selector = selector.into();
        self
    }

    pub fn from_version(mut self, version: u64) -> WatchParams {
        self.resource_version = Some(version);
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<T> {
    Added(T),
    Modified(T),
    Deleted(T),
    /// Everything up to this version has been delivered.
    Bookmark(u64),
}

impl<T: Resource> WatchEvent<T> {
    /// The version this event brings the watcher to: the object's resourceVersion, or the
    /// bookmark's. Watching again from here misses nothing after this event.
    pub fn resource_version(&self) -> u64 {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                version_of(o)
            }
            WatchEvent::Bookmark(version) => *version,
        }
    }

    pub fn object(&self) -> Option<&T> {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => Some(o),
            WatchEvent::Bookmark(_) => None,
        }
    }

    pub fn into_object(self) -> Option<T> {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => Some(o),
            WatchEvent::Bookmark(_) => None,
        }
    }
}

/// Where a reconnecting watch starts, updated with every event delivered.
///
/// One log entry may change several objects, which then share one resourceVersion. If a
/// stream breaks between them, the watch resumes just before that version and skips the
/// ones already delivered (every node sends them in the same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResumePoint {
    /// The highest version delivered (or the version the watch started from).
    last: u64,
    /// Events delivered at `last`; `None` when everything through `last` was delivered
    /// (the starting version, or a bookmark).
    partial: Option<usize>,
}

impl ResumePoint {
    pub(crate) fn new(from: u64) -> ResumePoint {
        ResumePoint {
            last: from,
            partial: None,
        }
    }

    pub(crate) fn observe(&mut self, event_type: &str, version: u64) {
        if event_type == "BOOKMARK" {
            if version >= self.last {
                self.last = version;
                self.partial = None;
            }
            return;
        }
        match self.partial {
            Some(count) if version == self.last => self.partial = Some(count + 1),
            None if version == self.last => self.partial = Some(1),
            _ => {
                self.last = version;
                self.partial = Some(1);
            }
        }
    }

    /// The resourceVersion to send on reconnect, and how many events at the version
    /// after it were already delivered and must be skipped.
    pub(crate) fn request(&self) -> (u64, usize) {
        match self.partial {
            None => (self.last, 0),
            Some(count) => (self.last.saturating_sub(1), count),
        }
    }

    /// The version whose repeated events a reconnect skips.
    pub(crate) fn last(&self) -> u64 {
        self.last
    }
}

/// A stream of watch events; dropping it stops the watch.
pub struct WatchStream<T> {
    receiver: mpsc::Receiver<Result<WatchEvent<T>, Error>>,
}

impl<T> Stream for WatchStream<T> {
    type Item = Result<WatchEvent<T>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}

type Sender<T> = mpsc::Sender<Result<WatchEvent<T>, Error>>;

impl Client {
    /// Watches objects of type `T` (takes [`WatchParams`] by value or by reference).
    ///
    /// Without a starting version the watch first lists the matching objects (one
    /// linearizable list, so a reconnect cannot deliver them twice), yields an `Added` for
    /// each and a `Bookmark` at the listed version, then every change after it.
    ///
    /// The stream ends after yielding an error it cannot recover from: [`Error::TooOld`]
    /// (list again, then watch from the list's version), [`Error::Unavailable`] (no
    /// endpoint answered for the request timeout) or a rejected request (e.g. a bad
    /// selector). Must be called within a Tokio runtime: the watch runs as a task, which
    /// ends when the stream is dropped.
    pub fn watch<T: Resource>(&self, params: impl Into<WatchParams>) -> WatchStream<T> {
        let (sender, receiver) = mpsc::channel(BUFFER);
        let client = self.clone();
        let params = params.into();
        tokio::spawn(async move { client.run_watch::<T>(params, sender).await });
        WatchStream { receiver }
    }

    /// The initial list of a fresh watch; returns the version to watch from, or None when
    /// the watch is over (the receiver went away or the list failed).
    async fn initial_list<T: Resource>(
        &self,
        params: &WatchParams,
        sender: &Sender<T>,
    ) -> Option<u64> {
        let list_params = ListParams {
            namespace: params.namespace.clone(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            stale_ok: false,
            page_size: 0,
        };
        let listed = tokio::select! {
            listed = self.list_bytes(T::KIND, &list_params) => listed,
            _ = sender.closed() => return None,
        };
        let list = match listed {
            Ok(list) => list,
            Err(e) => {
                let _ = sender.send(Err(e)).await;
                return None;
            }
        };
        for item in &list.items {
            if sender
                .send(typed(item).map(WatchEvent::Added))
                .await
                .is_err()
            {
                return None;
            }
        }
        let bookmark = Ok(WatchEvent::Bookmark(list.resource_version));
        sender.send(bookmark).await.ok()?;
        Some(list.resource_version)
    }

    async fn run_watch<T: Resource>(self, params: WatchParams, sender: Sender<T>) {
        let start = match params.resource_version {
            Some(version) => version,
            None => match self.initial_list(&params, &sender).await {
                Some(version) => version,
                None => return,
            },
        };
        let mut resume = ResumePoint::new(start);
        let mut backoff = FIRST_BACKOFF;
        let mut failing_since: Option<Instant> = None;
        let mut index = self.channel(0).0;
        loop {
            let (resource_version, mut skip) = resume.request();
            let skip_version = resume.last();
            let request = WatchRequest {
                kind: T::KIND.as_str().into(),
                namespace: params.namespace.clone().unwrap_or_default(),
                label_selector: params.label_selector.clone(),
                field_selector: params.field_selector.clone(),
                resource_version: resource_version.to_string(),
            };
            let mut objects = Client::objects_client(self.channel_at(index));
            // Opening is bounded like any call, so a frozen node is passed over.
            let opened = tokio::select! {
                opened = tokio::time::timeout(self.attempt_timeout(), objects.watch(request)) => {
                    opened.unwrap_or_else(|_| Err(tonic::Status::unavailable("watch not opened in time")))
                }
                _ = sender.closed() => return,
            };
            let failure = match opened {
                Ok(response) => {
                    self.mark_good(index);
                    failing_since = None;
                    backoff = FIRST_BACKOFF;
                    let mut stream = response.into_inner();
                    loop {
                        let message = tokio::select! {
                            message = stream.message() => message,
                            _ = sender.closed() => return,
                        };
                        let event = match message {
                            Ok(Some(event)) => event,
                            Ok(None) => break tonic::Status::unavailable("watch stream ended"),
                            Err(status) => break status,
                        };
                        if skip > 0
                            && event.r#type != "BOOKMARK"
                            && event.resource_version == skip_version
                        {
                            skip -= 1;
                            continue;
                        }
                        resume.observe(&event.r#type, event.resource_version);
                        let item =
                            to_event::<T>(&event.r#type, &event.object, event.resource_version);
                        if sender.send(item).await.is_err() {
                            return;
                        }
                    }
                }
                Err(status) => status,
            };
            // Internal covers HTTP/2 resets of a node going away mid-stream.
            if !is_retriable(&failure) && failure.code() != tonic::Code::Internal {
                let _ = sender.send(Err(failure.into())).await;
                return;
            }
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() > self.request_timeout() {
                let message = format!(
                    "watch could not reconnect within {} ms (tried {}; last error: {}: {})",
                    self.request_timeout().as_millis(),
                    self.endpoints().join(", "),
                    failure.code(),
                    failure.message()
                );
                let _ = sender.send(Err(Error::Unavailable(message))).await;
                return;
            }
            tracing::debug!(
                endpoint = %self.endpoints()[index],
                error = %failure.message(),
                "watch broke; resuming on the next endpoint"
            );
            index = (index + 1) % self.endpoint_count();
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = sender.closed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Waits until `predicate` holds for the object (`None`: it does not exist), using a
    /// list and then a watch; returns the object as it was then.
    pub async fn wait_for<T, P>(
        &self,
        namespace: &str,
        name: &str,
        predicate: P,
        timeout: Duration,
    ) -> Result<Option<T>, Error>
    where
        T: Resource,
        P: Fn(Option<&T>) -> bool,
    {
        use futures::StreamExt;
        let deadline = Instant::now() + timeout;
        let timed_out = || {
            Error::Timeout(format!(
                "{} {name:?} did not reach the expected state within {} ms",
                T::KIND.plural(),
                timeout.as_millis()
            ))
        };
        let params = ListParams {
            namespace: T::KIND.is_namespaced().then(|| namespace.to_string()),
            field_selector: format!("metadata.name={name}"),
            ..ListParams::default()
        };
        loop {
            let list = tokio::time::timeout_at(deadline, self.list::<T>(&params))
                .await
                .map_err(|_| timed_out())??;
            let mut current = list.items.into_iter().next();
            if predicate(current.as_ref()) {
                return Ok(current);
            }
            let mut events =
                self.watch::<T>(WatchParams::from(&params).from_version(list.resource_version));
            loop {
                let event = match tokio::time::timeout_at(deadline, events.next()).await {
                    Err(_) => return Err(timed_out()),
                    // History compacted away (or the stream ended): list again.
                    Ok(None) | Ok(Some(Err(Error::TooOld(_)))) => break,
                    Ok(Some(Err(e))) => return Err(e),
                    Ok(Some(Ok(event))) => event,
                };
                match event {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) => current = Some(o),
                    WatchEvent::Deleted(_) => current = None,
                    WatchEvent::Bookmark(_) => continue,
                }
                if predicate(current.as_ref()) {
                    return Ok(current);
                }
            }
        }
    }
}

fn to_event<T: Resource>(
    event_type: &str,
    object: &[u8],
    version: u64,
) -> Result<WatchEvent<T>, Error> {
    let object = || typed::<T>(object);
    match event_type {
        "ADDED" => Ok(WatchEvent::Added(object()?)),
        "MODIFIED" => Ok(WatchEvent::Modified(object()?)),
        "DELETED" => Ok(WatchEvent::Deleted(object()?)),
        "BOOKMARK" => Ok(WatchEvent::Bookmark(version)),
        other => Err(Error::Decode(format!("unknown watch event type {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use skiff_api::types::Pod;

    use super::*;

    #[test]
    fn from_a_version_follows_events() {
        let mut resume = ResumePoint::new(10);
        assert_eq!(resume.request(), (10, 0));
        resume.observe("ADDED", 12);
        resume.observe("MODIFIED", 15);
        assert_eq!(resume.request(), (14, 1), "event 15 may have siblings");
        resume.observe("BOOKMARK", 20);
        assert_eq!(resume.request(), (20, 0));
    }

    #[test]
    fn a_stale_bookmark_changes_nothing() {
        let mut resume = ResumePoint::new(31);
        resume.observe("DELETED", 35);
        resume.observe("BOOKMARK", 31);
        assert_eq!(resume.request(), (34, 1));
        resume.observe("BOOKMARK", 35);
        assert_eq!(resume.request(), (35, 0));
    }

    #[test]
    fn events_sharing_a_version_are_skipped_not_lost() {
        let mut resume = ResumePoint::new(40);
        // One batch entry at version 41 changed three objects; two arrived before the break.
        resume.observe("ADDED", 41);
        resume.observe("ADDED", 41);
        assert_eq!(resume.request(), (40, 2));
        assert_eq!(resume.last(), 41);
        resume.observe("ADDED", 41);
        resume.observe("ADDED", 42);
        assert_eq!(resume.request(), (41, 1));
    }

    #[test]
    fn starting_version_counts_as_delivered() {
        let mut resume = ResumePoint::new(7);
        // An event at the start version itself (never sent by the server) is not lost.
        resume.observe("MODIFIED", 7);
        assert_eq!(resume.request(), (6, 1));
    }

    #[test]
    fn events_decode_and_carry_their_version() {
        let json = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"default","resourceVersion":"17"},"spec":{"containers":[]}}"#;
        let event = to_event::<Pod>("MODIFIED", json, 17).unwrap();
        assert_eq!(event.resource_version(), 17);
        assert_eq!(event.object().map(|p| p.metadata.name.as_str()), Some("a"));
        let bookmark = to_event::<Pod>("BOOKMARK", b"", 20).unwrap();
        assert_eq!(bookmark, WatchEvent::Bookmark(20));
        assert_eq!(bookmark.resource_version(), 20);
        assert!(matches!(
            to_event::<Pod>("RENAMED", json, 1),
            Err(Error::Decode(_))
        ));
        assert!(matches!(
            to_event::<Pod>("ADDED", b"{", 1),
            Err(Error::Decode(_))
        ));
    }

    #[test]
    fn watch_params_build_namespace_selectors_and_versions() {
        let params = WatchParams::namespace("web")
            .labels("app=x")
            .from_version(9);
        assert_eq!(params.namespace.as_deref(), Some("web"));
        assert_eq!(params.label_selector, "app=x");
        assert_eq!(params.resource_version, Some(9));
        let from_list = WatchParams::from(&ListParams::namespace("db").fields("metadata.name=a"));
        assert_eq!(from_list.field_selector, "metadata.name=a");
        assert_eq!(from_list.resource_version, None);
    }
}
