//! Test support for Skiff: control-plane (and etcd) clusters of real processes on loopback
//! ports, with cleanup on drop.

pub mod cluster;
pub mod etcd;
