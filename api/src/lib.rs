//! Skiff's object model: Kubernetes-compatible types, manifests (YAML/JSON), validation,
//! label and field selectors, and the generated gRPC code.

pub mod cidr;
pub mod duration;
pub mod events;
pub mod explain;
pub mod hash;
pub mod kind;
pub mod manifest;
pub mod meta;
pub mod names;
pub mod object;
pub mod outcome;
pub mod pod_security;
pub mod selector;
pub mod table;
pub mod types;
pub mod validate;

pub use explain::{ExplainError, explain};
pub use kind::Kind;
pub use manifest::{ManifestError, parse_manifests};
pub use meta::ObjectMeta;
pub use object::Object;
pub use selector::{FieldSelector, Selector, SelectorError};
pub use validate::{FieldError, ValidationError};

/// Generated gRPC messages, clients and servers (`proto/skiff.proto`).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("skiff.v1");
}
