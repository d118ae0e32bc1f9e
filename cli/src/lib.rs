//! The `skiff` command line: kubectl's habits on Skiff's API, built on the `skiff-client`
//! SDK. `main.rs` only parses flags; every verb lives here so it can be tested.

pub mod apply;
pub mod describe;
pub mod endpoints;
pub mod error;
pub mod get;
pub mod image;
pub mod jsonpath;
pub mod local;
pub mod netcheck;
pub mod table;
pub mod verbs;
pub mod wait;
