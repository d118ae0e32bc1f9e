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
use crate::resource::Resource;
use crate::{Error, ListParams};

#[derive(Debug, Clone, Default)]
pub struct WatchParams {
    pub namespace: Option<String>,
    pub label_selector: String,
    pub field_selector: String,
    /// None: first an `Added` for every existing object, then changes. Some(v): changes after v.
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

impl WatchParams {
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

/// Where a (re)connecting watch starts, updated with every event delivered.
///
/// One log entry may change several objects, which then share one resourceVersion. If a
/// stream breaks between them, the watch resumes just before that version and skips the
/// ones already delivered (every node sends them in the same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResumePoint {
    last: Option<u64>,
    /// Events delivered at `last`; `None` when everything through `last` was delivered.
    partial: Option<usize>,
    /// In the initial list of a fresh watch; its objects arrive in key order, not version
    /// order, so only the closing bookmark is a safe resume point.
    listing: bool,
}

impl ResumePoint {
    pub(crate) fn new(from: Option<u64>) -> ResumePoint {
        ResumePoint {
            last: from,
            partial: None,
            listing: from.is_none(),
        }
    }

    pub(crate) fn observe(&mut self, event_type: &str, version: u64) {
        if event_type == "BOOKMARK" {
            self.listing = false;
            self.last = Some(self.last.map_or(version, |v| v.max(version)));
            self.partial = None;
            return;
        }
        if self.listing {
            return;
        }
        match (self.last, self.partial) {
            (Some(last), Some(count)) if last == version => self.partial = Some(count + 1),
            (Some(last), None) if last == version => self.partial = Some(1),
            _ => {
                self.last = Some(version);
                self.partial = Some(1);
            }
        }
    }

    /// The resourceVersion to send, and how many events at the version after it were
    /// already delivered and must be skipped. An empty version asks for a fresh list (a
    /// reconnect during the initial list starts it over, so its `Added` events may repeat).
    pub(crate) fn request(&self) -> (String, usize) {
        match (self.listing, self.last, self.partial) {
            (true, _, _) | (_, None, _) => (String::new(), 0),
            (false, Some(v), None) => (v.to_string(), 0),
            (false, Some(v), Some(count)) => (v.saturating_sub(1).to_string(), count),
        }
    }

    /// The version whose repeated events a reconnect skips.
    pub(crate) fn last(&self) -> Option<u64> {
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

impl Client {
    /// Watches objects of type `T`. The stream ends after yielding an error it cannot
    /// recover from: [`Error::TooOld`] (list again, then watch from the list's version) or
    /// [`Error::Unavailable`] (no endpoint answered for the request timeout).
    pub fn watch<T: Resource>(&self, params: WatchParams) -> WatchStream<T> {
        let (sender, receiver) = mpsc::channel(256);
        let client = self.clone();
        tokio::spawn(async move { client.run_watch::<T>(params, sender).await });
        WatchStream { receiver }
    }

    async fn run_watch<T: Resource>(
        self,
        params: WatchParams,
        sender: mpsc::Sender<Result<WatchEvent<T>, Error>>,
    ) {
        let mut resume = ResumePoint::new(params.resource_version);
        let mut backoff = Duration::from_millis(50);
        let mut failing_since: Option<Instant> = None;
        let mut index = self.channel(0).0;
        let mut last_error;
        loop {
            let channel = self.channel_at(index);
            let (resource_version, mut skip) = resume.request();
            let skip_version = resume.last();
            let request = WatchRequest {
                kind: T::KIND.as_str().into(),
                namespace: params.namespace.clone().unwrap_or_default(),
                label_selector: params.label_selector.clone(),
                field_selector: params.field_selector.clone(),
                resource_version,
            };
            let mut objects = Client::objects_client(channel);
            let opened = tokio::select! {
                opened = objects.watch(request) => opened,
                _ = sender.closed() => return,
            };
            let failure = match opened {
                Ok(response) => {
                    self.mark_good(index);
                    let mut stream = response.into_inner();
                    loop {
                        let message = tokio::select! {
                            message = stream.message() => message,
                            _ = sender.closed() => return,
                        };
                        match message {
                            Ok(Some(event)) => {
                                failing_since = None;
                                backoff = Duration::from_millis(50);
                                if skip > 0
                                    && event.r#type != "BOOKMARK"
                                    && Some(event.resource_version) == skip_version
                                {
                                    skip -= 1;
                                    continue;
                                }
                                resume.observe(&event.r#type, event.resource_version);
                                let item = to_event::<T>(
                                    &event.r#type,
                                    &event.object,
                                    event.resource_version,
                                );
                                if sender.send(item).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break tonic::Status::unavailable("watch stream ended"),
                            Err(status) => break status,
                        }
                    }
                }
                Err(status) => status,
            };
            if !is_retriable(&failure) && failure.code() != tonic::Code::Internal {
                let _ = sender.send(Err(failure.into())).await;
                return;
            }
            last_error = format!("{}: {}", failure.code(), failure.message());
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() > self.request_timeout() {
                let _ = sender
                    .send(Err(Error::Unavailable(format!(
                        "watch could not reconnect within {} ms: {last_error}",
                        self.request_timeout().as_millis()
                    ))))
                    .await;
                return;
            }
            index = (index + 1) % self.endpoint_count();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
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
        let params = ListParams {
            namespace: T::KIND.is_namespaced().then(|| namespace.to_string()),
            field_selector: format!("metadata.name={name}"),
            ..ListParams::default()
        };
        loop {
            let list = self.list::<T>(&params).await?;
            let mut current = list.items.into_iter().next();
            if predicate(current.as_ref()) {
                return Ok(current);
            }
            let mut events =
                self.watch::<T>(WatchParams::from(&params).from_version(list.resource_version));
            loop {
                let next = tokio::time::timeout_at(deadline, events.next()).await;
                let event = match next {
                    Err(_) => {
                        return Err(Error::Timeout(format!(
                            "{} {name:?} did not reach the expected state within {} ms",
                            T::KIND.plural(),
                            timeout.as_millis()
                        )));
                    }
                    Ok(None) => break,
                    Ok(Some(Err(Error::TooOld(_)))) => break,
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
    let object = || -> Result<T, Error> { typed(crate::client::decode(object)?) };
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
    use super::*;

    #[test]
    fn resume_1_from_a_version_follows_events() {
        let mut resume = ResumePoint::new(Some(10));
        assert_eq!(resume.request(), ("10".into(), 0));
        resume.observe("ADDED", 12);
        resume.observe("MODIFIED", 15);
        assert_eq!(
            resume.request(),
            ("14".into(), 1),
            "event 15 may have siblings"
        );
        resume.observe("BOOKMARK", 20);
        assert_eq!(resume.request(), ("20".into(), 0));
    }

    #[test]
    fn resume_2_initial_list_resumes_only_after_its_bookmark() {
        let mut resume = ResumePoint::new(None);
        resume.observe("ADDED", 30);
        resume.observe("ADDED", 7);
        // Broken mid-list: start over rather than skip objects listed with lower versions.
        assert_eq!(resume.request(), (String::new(), 0));
        resume.observe("BOOKMARK", 31);
        assert_eq!(resume.request(), ("31".into(), 0));
        resume.observe("DELETED", 35);
        assert_eq!(resume.request(), ("34".into(), 1));
    }

    #[test]
    fn resume_3_events_sharing_a_version_are_skipped_not_lost() {
        let mut resume = ResumePoint::new(Some(40));
        // One batch entry at version 41 changed three objects; two arrived before the break.
        resume.observe("ADDED", 41);
        resume.observe("ADDED", 41);
        assert_eq!(resume.request(), ("40".into(), 2));
        assert_eq!(resume.last(), Some(41));
        resume.observe("ADDED", 41);
        resume.observe("ADDED", 42);
        assert_eq!(resume.request(), ("41".into(), 1));
    }
}
