//! The Skiff pod network: bridge, veth, IPAM and host routes over netlink (issue 5).
//! This crate reserves its place in the workspace so the layout matches the design.
