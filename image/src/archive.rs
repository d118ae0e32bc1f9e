//! An image archive as a list of named files, before it is a tar: what tests corrupt,
//! drop or replace members of.

use std::collections::BTreeSet;
use std::io;

use crate::{Entry, layer};

/// The files of an image archive, in order. [`Archive::tar`] packs them, each directory
/// they are in first (mode 0755), the files with mode 0644.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archive {
    pub files: Vec<(String, Vec<u8>)>,
}

impl Archive {
    /// Appends file `name`.
    pub fn add(&mut self, name: impl Into<String>, data: impl Into<Vec<u8>>) {
        self.files.push((name.into(), data.into()));
    }

    /// Replaces the content of file `name`, or appends it.
    pub fn set(&mut self, name: &str, data: Vec<u8>) {
        match self.get_mut(name) {
            Some(file) => *file = data,
            None => self.add(name, data),
        }
    }

    /// The content of file `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, data)| data.as_slice())
    }

    /// The content of file `name`, to change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Vec<u8>> {
        self.files
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, data)| data)
    }

    /// Removes file `name`; its content, if it was there.
    pub fn remove(&mut self, name: &str) -> Option<Vec<u8>> {
        let at = self.files.iter().position(|(n, _)| n == name)?;
        Some(self.files.remove(at).1)
    }

    /// The first file name that `matches`.
    pub fn find(&self, matches: impl Fn(&str) -> bool) -> Option<String> {
        self.files
            .iter()
            .map(|(name, _)| name)
            .find(|name| matches(name))
            .cloned()
    }

    /// The archive as a tar: each file after the directories it is in.
    pub fn tar(&self) -> io::Result<Vec<u8>> {
        let mut dirs = BTreeSet::new();
        let mut entries = Vec::new();
        for (name, data) in &self.files {
            for (at, _) in name.match_indices('/') {
                let dir = &name[..=at];
                if dirs.insert(dir.to_string()) {
                    entries.push(Entry::dir(dir));
                }
            }
            entries.push(Entry::file(name.as_str(), data.as_slice()));
        }
        layer(&entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_come_before_their_files_once() {
        let mut archive = Archive::default();
        archive.add("oci-layout", "{}");
        archive.add("blobs/sha256/aa", "a");
        archive.add("blobs/sha256/bb", "b");
        archive.add("index.json", "{}");
        let names: Vec<String> = crate::untar(&archive.tar().unwrap())
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names,
            [
                "oci-layout",
                "blobs/",
                "blobs/sha256/",
                "blobs/sha256/aa",
                "blobs/sha256/bb",
                "index.json"
            ]
        );
    }

    #[test]
    fn files_are_replaced_removed_and_found() {
        let mut archive = Archive::default();
        archive.add("a/layer.tar", "1");
        archive.set("manifest.json", b"[]".to_vec());
        archive.set("a/layer.tar", b"2".to_vec());
        assert_eq!(archive.get("a/layer.tar"), Some(&b"2"[..]));
        assert_eq!(
            archive.find(|n| n.ends_with("layer.tar")).as_deref(),
            Some("a/layer.tar")
        );
        assert_eq!(archive.remove("a/layer.tar"), Some(b"2".to_vec()));
        assert_eq!(archive.remove("a/layer.tar"), None);
        assert_eq!(archive.files.len(), 1);
    }
}
