//! kubectl's tables live in the api crate ([`skiff_api::table`]), shared with the control
//! plane's Kubernetes API, which serves them to kubectl as server-side tables.

pub use skiff_api::table::*;
