//! `skiff-client`: the Rust SDK for Skiff — typed CRUD, watches that resume after a
//! disconnect (on another endpoint if need be), `wait_for` helpers, and cluster
//! administration. The agent, the CLI and the tests all use it.
//!
//! ```no_run
//! use std::time::Duration;
//! use skiff_api::types::Pod;
//! use skiff_client::{Client, ListParams};
//!
//! # async fn demo() -> Result<(), skiff_client::Error> {
//! let client = Client::connect(["127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"])?;
//! client.wait_ready(Duration::from_secs(10)).await?;
//! let pods = client.list::<Pod>(&ListParams::namespace("default").labels("app=web")).await?;
//! println!("{} pods at version {}", pods.items.len(), pods.resource_version);
//! # Ok(())
//! # }
//! ```

mod client;
mod endpoints;
mod error;
mod resource;
mod watch;

pub use client::{
    Client, ClientBuilder, DeleteParams, Deleted, ListParams, MetadataPatch, ObjectList,
};
pub use error::Error;
pub use resource::{Resource, version_of};
pub use skiff_api as api;
pub use watch::{WatchEvent, WatchParams, WatchStream};
