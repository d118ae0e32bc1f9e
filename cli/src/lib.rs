//! The `skiff` command line (issue 6). This crate reserves its place in the workspace.
