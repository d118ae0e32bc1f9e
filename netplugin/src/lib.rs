//! The Skiff pod network: bridge, veth, IPAM and host routes over netlink.

pub mod hosts;
pub mod ipam;
pub mod link;
pub mod masquerade;
pub mod netns;
pub mod network;
pub mod routes;
