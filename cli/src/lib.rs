//! The `skiff` command line: kubectl's habits on Skiff's API, built on the `skiff-client`
//! SDK. `main.rs` only parses flags ([`flags`]); [`run`] maps them to the verbs, which all
//! live here so they can be tested.

pub mod apply;
pub mod completion;
pub mod dashboard;
pub mod describe;
pub mod endpoints;
pub mod error;
pub mod flags;
pub mod forward;
pub mod get;
pub mod image;
pub mod jsonpath;
pub mod kubeconfig;
pub mod local;
pub mod netcheck;
pub mod run;
pub mod table;
pub mod target;
pub mod top;
pub mod tty;
pub mod verbs;
pub mod wait;
pub mod yaml;
