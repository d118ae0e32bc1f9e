//! Self-test of the harness pieces that need no running cluster.

use skiff_tests::cluster::{binary, free_port};

#[test]
fn binary_builds_the_control_plane_once() {
    let path = binary("skiff-control-plane");
    assert!(path.is_file(), "{} is not a file", path.display());
    // The second call is answered from the cache.
    assert_eq!(binary("skiff-control-plane"), path);
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
}
