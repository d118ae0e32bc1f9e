//! Test support: spawning control-plane processes on loopback ports.
