//! The other names of hard-linked files.
//!
//! A write through one name of a file with several links changes them all,
//! but the kernel names only the path it was made through (fanotify: the
//! parent handle + name used; eBPF: whichever dentry alias the inode resolves
//! to). Each name is a separate file to rsync without `-H`, so every name
//! must be pushed. Capture remembers the names it has seen of each
//! hard-linked inode (learnt from the events that name them) and checks them
//! with `lstat` when the inode changes. When it cannot vouch for all
//! `st_nlink` names, it walks the root once for that inode (like
//! `find -inum`) and remembers what it found: names outside the root do not
//! matter to this root's targets.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::Path;

use crate::journal::RootId;

/// Hard-linked inodes remembered before the registry starts over (inodes):
/// a bound on memory; forgetting only costs walks.
const MAX_INODES: usize = 65_536;

/// What is known of one hard-linked inode.
#[derive(Debug, Default)]
struct Names {
    /// Root-relative names seen, each verified at the last look.
    names: Vec<Vec<u8>>,
    /// `(st_nlink, names found)` of the last walk: while both still hold,
    /// the names are complete within the root.
    walked: Option<(u64, usize)>,
}

/// Known names of hard-linked files, per root and inode.
#[derive(Debug, Default)]
pub struct HardLinks {
    inodes: HashMap<(RootId, u64), Names>,
}

impl HardLinks {
    /// Records that `rel` (a path of `root`, which lies at `root_path`) names
    /// the object described by `meta`, and returns the *other* names inside
    /// the root that a change to it must reach: empty for anything but a
    /// regular file with more than one link. May walk the root (see the
    /// module docs); unreadable directories are skipped.
    pub fn other_names(
        &mut self,
        root: RootId,
        root_path: &Path,
        rel: &[u8],
        meta: &Metadata,
    ) -> Vec<Vec<u8>> {
        if !meta.is_file() || meta.nlink() <= 1 {
            return Vec::new();
        }
        if self.inodes.len() >= MAX_INODES && !self.inodes.contains_key(&(root, meta.ino())) {
            self.inodes.clear();
        }
        let known = self.inodes.entry((root, meta.ino())).or_default();
        if !known.names.iter().any(|n| n == rel) {
            known.names.push(rel.to_vec());
        }
        // A name renamed or unlinked since it was seen no longer counts.
        let names_this_inode =
            |name: &[u8]| is_name_of(&root_path.join(OsStr::from_bytes(name)), meta);
        known.names.retain(|name| names_this_inode(name));
        let complete = known.names.len() as u64 >= meta.nlink()
            || known.walked == Some((meta.nlink(), known.names.len()));
        if !complete {
            let started = std::time::Instant::now();
            known.names.clear();
            find_names(root_path, &mut Vec::new(), meta, &mut known.names);
            known.walked = Some((meta.nlink(), known.names.len()));
            let path = String::from_utf8_lossy(rel);
            tracing::info!(%path, links = meta.nlink(), found = known.names.len(), ms = started.elapsed().as_millis() as u64, "walked the root for the other names of a hard-linked file");
        }
        known
            .names
            .iter()
            .filter(|n| n.as_slice() != rel)
            .cloned()
            .collect()
    }
}

/// Whether `path` (not followed) is the inode `meta` describes.
fn is_name_of(path: &Path, meta: &Metadata) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == meta.ino() && m.dev() == meta.dev())
}

/// Appends to `found` the names (relative to `root`) of the inode `meta`
/// describes, below `root/rel`, on the same filesystem.
fn find_names(root: &Path, rel: &mut Vec<u8>, meta: &Metadata, found: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(root.join(OsStr::from_bytes(rel))) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let len = rel.len();
        if len > 0 {
            rel.push(b'/');
        }
        rel.extend_from_slice(entry.file_name().as_bytes());
        if file_type.is_dir() {
            if entry.metadata().is_ok_and(|m| m.dev() == meta.dev()) {
                find_names(root, rel, meta, found);
            }
        } else if file_type.is_file()
            && entry.ino() == meta.ino()
            && is_name_of(&entry.path(), meta)
        {
            found.push(rel.clone());
        }
        rel.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reaches_every_name_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a"), "x").unwrap();
        let mut links = HardLinks::default();
        let meta = |name: &str| std::fs::symlink_metadata(root.join(name)).unwrap();
        assert!(
            links.other_names(0, root, b"a", &meta("a")).is_empty(),
            "a single link has no other names"
        );

        // "a" was seen before it had two links: found by a walk.
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::hard_link(root.join("a"), root.join("d/b")).unwrap();
        assert_eq!(
            links.other_names(0, root, b"d/b", &meta("d/b")),
            vec![b"a".to_vec()]
        );
        assert_eq!(
            links.other_names(0, root, b"a", &meta("a")),
            vec![b"d/b".to_vec()]
        );

        std::fs::rename(root.join("d/b"), root.join("c")).unwrap();
        assert_eq!(
            links.other_names(0, root, b"a", &meta("a")),
            vec![b"c".to_vec()],
            "a renamed name is found again"
        );

        // A name outside the root: the walk finds what is inside, once.
        let outside = tempfile::tempdir_in(root.parent().unwrap()).unwrap();
        std::fs::remove_file(root.join("c")).unwrap();
        if std::fs::hard_link(root.join("a"), outside.path().join("x")).is_ok() {
            assert!(links.other_names(0, root, b"a", &meta("a")).is_empty());
            assert_eq!(links.inodes[&(0, meta("a").ino())].walked, Some((2, 1)));
        }
    }
}
