//! Typed access: each object type knows its kind and its metadata.

use serde::Serialize;
use serde::de::DeserializeOwned;
use skiff_api::Kind;
use skiff_api::meta::ObjectMeta;
use skiff_api::types::{Deployment, Event, Namespace, Node, Pod};

pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const KIND: Kind;
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
}

macro_rules! resource {
    ($($t:ident),*) => {$(
        impl Resource for $t {
            const KIND: Kind = Kind::$t;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    )*};
}
resource!(Namespace, Pod, Deployment, Node, Event);

/// The resourceVersion of an object, as a number (0 when unset or malformed).
pub fn version_of<T: Resource>(object: &T) -> u64 {
    object
        .metadata()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
