//! Pod lifecycle on the node: the per-pod worker and its pure rules (restarts, status,
//! probe thresholds).

pub mod probe;
pub mod pull;
pub mod restart;
pub mod status;
pub mod worker;
