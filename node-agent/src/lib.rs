//! The Skiff node agent. Its pod lifecycle, runtimes and gRPC service are built under
//! issue 4; this crate reserves its place in the workspace so the layout matches the design.
