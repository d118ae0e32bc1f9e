//! gRPC services served on the node's one port: the public object API, cluster
//! administration, Raft's own traffic, and the proxy to node agents.

pub mod agent_proxy;
pub mod cluster;
pub mod objects;
pub mod raft;
