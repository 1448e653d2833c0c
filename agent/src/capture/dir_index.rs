//! The directory index: directory file handle → (parent handle, name), for
//! directories under the tracked roots of one filesystem.
//!
//! fanotify names a changed entry by its directory's *handle* and a name.
//! Turning the handle into a path with `open_by_handle_at` costs two
//! syscalls per event and fails once the directory is deleted (`ESTALE`).
//! The index answers from memory, makes a directory rename one update
//! (children keep pointing at the renamed handle), and tells whether a
//! directory lies inside a root at all: the fanotify mark covers the whole
//! filesystem.
//!
//! Two ways to fill it:
//! - eagerly, one walk of each root at start ([`DirIndex::add_root`]): the
//!   eBPF rung needs to know where every directory was, to tell a directory
//!   whose entries changed from one that moved;
//! - lazily ([`DirIndex::register_root`], then [`DirIndex::learn`] the
//!   first time an event names a directory, from the path the kernel gives
//!   for its handle): fanotify, whose rename events name both sides, starts
//!   in constant time and holds only the directories that changed.
//!
//! Memory: one entry per directory held (handle ≈ 12–24 bytes plus the
//! name, about 100 bytes with the map's overhead), nothing per file.

use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::handle::{handle_of, FileHandle};
use crate::filter::RootExcludes;
use crate::journal::RootId;

/// Where a directory hangs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parent {
    /// The directory is this root.
    Root(RootId),
    /// The directory is the entry `name` of the directory with this handle.
    Dir(FileHandle, Vec<u8>),
}

/// Longest parent chain followed before giving up (a cycle would be a bug).
const MAX_DEPTH: usize = 4096;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct DirIndex {
    entries: HashMap<FileHandle, Parent>,
    roots: HashMap<RootId, IndexedRoot>,
}

/// A root as the index knows it.
#[derive(Debug)]
struct IndexedRoot {
    path: PathBuf,
    mount_id: i32,
    excludes: RootExcludes,
}

impl DirIndex {
    /// Adds a root and indexes every directory below it on the same mount.
    ///
    /// Errors: the root's handle cannot be read (missing, or a filesystem
    /// without handle support).
    /// Excluded directories are not indexed: their events resolve as
    /// outside every root.
    pub fn add_root(
        &mut self,
        root: RootId,
        path: &Path,
        excludes: RootExcludes,
    ) -> io::Result<()> {
        let handle = self.register_root(root, path, excludes)?;
        self.index_subtree(root, path, handle);
        Ok(())
    }

    /// Adds a root without indexing below it: its directories are learnt as
    /// events name them ([`DirIndex::learn`]). Returns the root's handle.
    ///
    /// Errors: as [`DirIndex::add_root`].
    pub fn register_root(
        &mut self,
        root: RootId,
        path: &Path,
        excludes: RootExcludes,
    ) -> io::Result<FileHandle> {
        let (handle, mount_id) = handle_of(path)?;
        self.roots.insert(
            root,
            IndexedRoot {
                path: path.to_path_buf(),
                mount_id,
                excludes,
            },
        );
        self.entries.insert(handle.clone(), Parent::Root(root));
        Ok(handle)
    }

    /// Learns directory `dir`, which the kernel finds at the absolute
    /// `path` now, and the directories above it up to the first one the
    /// index holds (its root at the latest): one `name_to_handle_at` per
    /// directory learnt, so a new directory under a known one costs one.
    /// Returns its root and root-relative path; `None` when `path` lies
    /// under no root. A directory on the way that moved meanwhile stops the
    /// climb, but the path is still returned: it is where the kernel saw `dir`.
    pub fn learn(&mut self, dir: &FileHandle, path: &Path) -> Option<(RootId, Vec<u8>)> {
        let found = self.relative_to_root(path)?;
        let (mut handle, mut at) = (dir.clone(), path.to_path_buf());
        while !self.entries.contains_key(&handle) {
            let (Some(parent), Some(name)) = (at.parent(), at.file_name()) else {
                break;
            };
            let (parent, name) = (parent.to_path_buf(), name.as_bytes().to_vec());
            let Ok((parent_handle, _)) = handle_of(&parent) else {
                break;
            };
            self.entries
                .insert(handle, Parent::Dir(parent_handle.clone(), name));
            (handle, at) = (parent_handle, parent);
        }
        Some(found)
    }

    /// Forgets every directory but the roots (lazy mode: they are learnt
    /// again as events name them).
    pub fn forget_learnt(&mut self) {
        self.entries
            .retain(|_, parent| matches!(parent, Parent::Root(_)));
    }

    /// True when every sync of `root` excludes `path`.
    pub fn is_excluded(&self, root: RootId, path: &[u8]) -> bool {
        self.roots
            .get(&root)
            .is_some_and(|r| r.excludes.is_excluded(path))
    }

    /// Number of directories indexed.
    #[expect(
        clippy::len_without_is_empty,
        reason = "only its size is reported (logs, benches); emptiness is never asked"
    )]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Indexes the directories below `path` (whose handle is `handle`),
    /// staying on the root's mount. Unreadable directories are skipped with
    /// a warning (their events still resolve through their parent's entry).
    pub fn index_subtree(&mut self, root: RootId, path: &Path, handle: FileHandle) {
        let Some(indexed) = self.roots.get(&root) else {
            return;
        };
        let (root_path, mount_id) = (indexed.path.clone(), indexed.mount_id);
        let mut stack = vec![(path.to_path_buf(), handle)];
        while let Some((dir, dir_handle)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot index directory");
                    continue;
                }
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let child = entry.path();
                let relative = child
                    .strip_prefix(&root_path)
                    .map_or(&[][..], |r| r.as_os_str().as_bytes());
                if self.is_excluded(root, relative) {
                    continue;
                }
                match handle_of(&child) {
                    Ok((child_handle, child_mount)) if child_mount == mount_id => {
                        let name = entry.file_name().into_vec();
                        self.entries
                            .insert(child_handle.clone(), Parent::Dir(dir_handle.clone(), name));
                        stack.push((child, child_handle));
                    }
                    Ok(_) => {
                        tracing::info!(dir = %child.display(), "not following a mount point below a root")
                    }
                    Err(e) => {
                        tracing::warn!(dir = %child.display(), error = %e, "cannot read directory handle")
                    }
                }
            }
        }
    }

    /// Records that directory `dir` is now entry `name` of `parent`. Returns
    /// false (and forgets `dir`) when `parent` is not under a root: the
    /// directory was created or moved outside every root.
    pub fn link(&mut self, dir: FileHandle, parent: &FileHandle, name: &[u8]) -> bool {
        if self.entries.contains_key(parent) {
            self.entries
                .insert(dir, Parent::Dir(parent.clone(), name.to_vec()));
            true
        } else {
            self.entries.remove(&dir);
            false
        }
    }

    /// Forgets a deleted directory (never a root).
    pub fn unlink(&mut self, dir: &FileHandle) {
        if matches!(self.entries.get(dir), Some(Parent::Dir(..))) {
            self.entries.remove(dir);
        }
    }

    /// The root a handle *is*, if it is one.
    pub fn root_of_handle(&self, dir: &FileHandle) -> Option<RootId> {
        match self.entries.get(dir) {
            Some(Parent::Root(root)) => Some(*root),
            _ => None,
        }
    }

    /// The root and root-relative path of directory `dir`; `None` when the
    /// directory is not (known to be) under a root.
    pub fn dir_path(&self, dir: &FileHandle) -> Option<(RootId, Vec<u8>)> {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut current = dir;
        for _ in 0..MAX_DEPTH {
            match self.entries.get(current)? {
                Parent::Root(root) => {
                    names.reverse();
                    return Some((*root, names.join(&b'/')));
                }
                Parent::Dir(parent, name) => {
                    names.push(name);
                    current = parent;
                }
            }
        }
        None
    }

    /// The root and root-relative path of entry `name` in directory `dir`
    /// (`.` or an empty name mean the directory itself).
    pub fn entry_path(&self, dir: &FileHandle, name: &[u8]) -> Option<(RootId, Vec<u8>)> {
        Some(entry_of(self.dir_path(dir)?, name))
    }

    /// Root id and root-relative path of an absolute `path`, if it lies under
    /// a root.
    pub fn relative_to_root(&self, path: &Path) -> Option<(RootId, Vec<u8>)> {
        self.roots.iter().find_map(|(id, root)| {
            path.strip_prefix(&root.path)
                .ok()
                .map(|rel| (*id, rel.as_os_str().as_bytes().to_vec()))
        })
    }

    /// Absolute path of a root.
    pub fn root_path(&self, root: RootId) -> Option<&Path> {
        self.roots.get(&root).map(|r| r.path.as_path())
    }

    /// Every root id in the index.
    pub fn root_ids(&self) -> Vec<RootId> {
        self.roots.keys().copied().collect()
    }

    /// Absolute path of a root-relative path.
    pub fn absolute(&self, root: RootId, rel: &[u8]) -> Option<PathBuf> {
        let base = self.root_path(root)?;
        Some(if rel.is_empty() {
            base.to_path_buf()
        } else {
            base.join(std::ffi::OsStr::from_bytes(rel))
        })
    }
}

/// The root and root-relative path of entry `name` of the directory at
/// (root, `path`) (`.` or an empty name mean the directory itself).
pub fn entry_of((root, mut path): (RootId, Vec<u8>), name: &[u8]) -> (RootId, Vec<u8>) {
    if !name.is_empty() && name != b"." {
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
    }
    (root, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, DirIndex) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("jobs/a/builds/1")).unwrap();
        std::fs::write(dir.path().join("jobs/a/config.xml"), "x").unwrap();
        let mut index = DirIndex::default();
        index
            .add_root(3, dir.path(), RootExcludes::default())
            .unwrap();
        (dir, index)
    }

    #[test]
    fn walk_indexes_directories_only() {
        let (_dir, index) = tree();
        assert_eq!(index.len(), 5, "root, jobs, a, builds, 1");
    }

    #[test]
    fn a_lazy_index_learns_a_directory_and_its_parents_from_the_kernels_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("jobs/a/builds/1")).unwrap();
        let mut index = DirIndex::default();
        index
            .register_root(3, dir.path(), RootExcludes::default())
            .unwrap();
        assert_eq!(index.len(), 1, "nothing walked");
        let (one, _) = handle_of(&dir.path().join("jobs/a/builds/1")).unwrap();
        assert_eq!(index.dir_path(&one), None);
        assert_eq!(
            index.learn(&one, &dir.path().join("jobs/a/builds/1")),
            Some((3, b"jobs/a/builds/1".to_vec()))
        );
        assert_eq!(index.len(), 5, "root, jobs, a, builds, 1");
        assert_eq!(
            index.entry_path(&one, b"log"),
            Some((3, b"jobs/a/builds/1/log".to_vec()))
        );
        // A rename of a learnt parent is one update, as with a full walk.
        let (jobs, _) = handle_of(&dir.path().join("jobs")).unwrap();
        let (a, _) = handle_of(&dir.path().join("jobs/a")).unwrap();
        assert!(index.link(a, &jobs, b"b"));
        assert_eq!(index.dir_path(&one), Some((3, b"jobs/b/builds/1".to_vec())));
        index.forget_learnt();
        assert_eq!((index.len(), index.dir_path(&one)), (1, None));
        let outside = tempfile::tempdir().unwrap();
        assert_eq!(index.learn(&one, outside.path()), None);
    }

    #[test]
    fn paths_resolve_and_a_directory_rename_is_one_update() {
        let (dir, mut index) = tree();
        let (builds, _) = handle_of(&dir.path().join("jobs/a/builds")).unwrap();
        let (one, _) = handle_of(&dir.path().join("jobs/a/builds/1")).unwrap();
        assert_eq!(
            index.entry_path(&one, b"log"),
            Some((3, b"jobs/a/builds/1/log".to_vec()))
        );
        assert_eq!(
            index.entry_path(&builds, b"."),
            Some((3, b"jobs/a/builds".to_vec()))
        );
        let (jobs, _) = handle_of(&dir.path().join("jobs")).unwrap();
        let (a, _) = handle_of(&dir.path().join("jobs/a")).unwrap();
        assert!(index.link(a, &jobs, b"renamed"));
        assert_eq!(
            index.entry_path(&one, b"log"),
            Some((3, b"jobs/renamed/builds/1/log".to_vec()))
        );
    }

    #[test]
    fn directories_outside_roots_do_not_resolve() {
        let (dir, mut index) = tree();
        let outside = tempfile::tempdir().unwrap();
        let (out, _) = handle_of(outside.path()).unwrap();
        assert_eq!(index.dir_path(&out), None);
        let (a, _) = handle_of(&dir.path().join("jobs/a")).unwrap();
        assert!(!index.link(a.clone(), &out, b"a"), "moved out of the root");
        assert_eq!(index.dir_path(&a), None);
    }
}
