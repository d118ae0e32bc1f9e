//! `skiff-client`: the Rust SDK for Skiff — typed CRUD, watches that resume after a
//! disconnect (on another endpoint if need be), `wait_for` helpers, and cluster
//! administration. The agent, the CLI and the tests all use it.
//!
//! Who the client is comes from its config (a client certificate, or `token:` for a bearer
//! token made with `skiff token create`), or from [`ClientBuilder::bearer_token`] over a TLS
//! config that holds only the cluster CA. The cluster answers what that identity may not do
//! with [`Error::Forbidden`] (Kubernetes' wording) and a missing or bad credential with
//! [`Error::Unauthorized`].
//!
//! Any control-plane node serves every call. A [`Client`] holds one lazily connected channel
//! per endpoint and moves on to the next endpoint when one is unreachable or has no quorum,
//! until the request timeout (default 10 s) runs out. Writes are retried that way too, so —
//! as with etcd's clients — a write that failed with "unavailable" may still have been
//! applied: a retried create can answer [`Error::AlreadyExists`].
//!
//! ```no_run
//! use std::time::Duration;
//! use futures::StreamExt;
//! use skiff_api::types::Pod;
//! use skiff_client::{Client, ListParams, WatchEvent, WatchParams};
//!
//! # async fn demo() -> Result<(), skiff_client::Error> {
//! // admin.conf (written by the first control-plane member) or ~/.skiff/config: the
//! // servers, the cluster CA and a client certificate. Every Skiff port speaks TLS.
//! let client = Client::from_config("/var/lib/skiff/admin.conf", None)?;
//! client.wait_ready(Duration::from_secs(10)).await?;
//! let pods = client.list::<Pod>(&ListParams::namespace("default").labels("app=web")).await?;
//! println!("{} pods at version {}", pods.items.len(), pods.resource_version);
//!
//! // Every change after the list, across reconnects and failovers.
//! let params = WatchParams::namespace("default").labels("app=web");
//! let mut events = client.watch::<Pod>(params.from_version(pods.resource_version));
//! while let Some(event) = events.next().await {
//!     match event? {
//!         WatchEvent::Added(pod) | WatchEvent::Modified(pod) => {
//!             let phase = pod.status.and_then(|s| s.phase);
//!             println!("{} is {phase:?}", pod.metadata.name)
//!         }
//!         WatchEvent::Deleted(pod) => println!("{} is gone", pod.metadata.name),
//!         WatchEvent::Bookmark(_) => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod deployments;
mod endpoints;
mod error;
mod images;
mod nodes;
mod pods;
mod resource;
mod tokens;
mod top;
mod watch;

pub use client::{
    Client, ClientBuilder, DeleteParams, Deleted, ListParams, MetadataPatch, ObjectList,
    ObjectPage, select_cluster,
};
pub use error::Error;
pub use images::{Image, ImportedImageInfo, RemovedImages};
pub use nodes::Drained;
pub use pods::{ExecEvent, ExecOptions, ExecOutput, ExecSession, LogParams, PortForward};
pub use resource::{Resource, version_of};
pub use skiff_api as api;
pub use skiff_pki as pki;
pub use tokens::{NewToken, Token};
pub use watch::{WatchEvent, WatchParams, WatchStream};
