//! Pod lifecycle on the node: the per-pod worker (a runner doing the I/O) and its pure
//! rules (the lifecycle step functions, restarts, status, probe thresholds).

pub mod api;
pub mod lifecycle;
pub mod probe;
pub mod pull;
pub mod restart;
pub mod status;
pub mod worker;

#[cfg(test)]
mod lifecycle_tests;
