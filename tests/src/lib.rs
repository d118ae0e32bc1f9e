//! Test support for Skiff: control-plane (and etcd) clusters of real processes on loopback
//! ports, with cleanup on drop.

pub mod agent;
pub mod chaos;
pub mod cluster;
pub mod etcd;
pub mod host;
pub mod hosts;
pub mod images;
pub mod kubectl;
pub mod linearizability;
pub mod multihost;
pub mod nodes;
pub mod pod_security;
pub mod proxy;
pub mod registry;
pub mod scale;
pub mod terminal;
