//! gRPC services served on the node's one port: the public object API, cluster
//! administration, and Raft's own traffic.

pub mod cluster;
pub mod objects;
pub mod raft;
