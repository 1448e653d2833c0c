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
//! Memory: nothing per file; per directory held, a 12-byte record, its
//! handle (12–20 bytes on ext4, xfs, tmpfs) and name in one byte vector,
//! and 5–11 bytes of hash table. `benches/dir_index_footprint.rs` counts
//! 41 bytes of heap a directory after a walk (ext4, 60,402 directories) and
//! 53 while links add them (573,780, the 1M-file tree's count; the vectors'
//! doubling room included, 39 bytes of it resident), against 188 and 163
//! when every entry was a map slot with three allocations of its own.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use hashbrown::{hash_table::Entry, DefaultHashBuilder, HashTable};

use super::handle::{handle_of, FileHandle};
use crate::filter::RootExcludes;
use crate::journal::RootId;

/// Longest parent chain followed before giving up (a cycle would be a bug).
const MAX_DEPTH: usize = 4096;

/// Removed directories (beyond those still named as a parent) that the
/// index keeps before it compacts; plus half the directories held.
const SLACK_DIRS: usize = if cfg!(test) { 4 } else { 1024 };
/// Unreferenced bytes (old names) the index keeps before it compacts; plus
/// half of `bytes`.
const SLACK_BYTES: usize = if cfg!(test) { 64 } else { 64 * 1024 };

/// What a handle the index interned is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A root; `Dir::link` is its [`RootId`].
    Root,
    /// Entry `name` of directory `Dir::link` (an id).
    Dir,
    /// No entry: a directory named as a parent before (or without) being
    /// learnt, or one removed while entries still name it as their parent
    /// (they resolve again if it is linked back). Dropped by compaction
    /// when nothing names it.
    Absent,
}

/// One interned directory handle: 12 bytes. Its handle and name are
/// `bytes[at..at + handle_len]` and the `name_len` bytes after them.
#[derive(Debug, Clone, Copy)]
struct Dir {
    /// The parent's id ([`Kind::Dir`]) or the root's id ([`Kind::Root`]).
    link: u32,
    at: u32,
    /// Names are at most 255 bytes on Linux (`NAME_MAX`), any `u16` here.
    name_len: u16,
    /// Handles are at most 4 + 128 bytes (type and `MAX_HANDLE_SZ`).
    handle_len: u8,
    kind: Kind,
}

const _: () = assert!(std::mem::size_of::<Dir>() == 12);

/// See the module documentation.
///
/// Directories are interned into dense `u32` ids, indexes into `dirs`; the
/// hash table holds only the ids (4 bytes and 1 control byte a bucket) and
/// hashes and compares them through the handle bytes in `bytes`. Removals
/// and renames leave garbage (removed ids, old names) that
/// `compact` reclaims once it exceeds half of what is held, so
/// memory follows the directories held, not the churn.
#[derive(Debug, Default)]
pub struct DirIndex {
    ids: HashTable<u32>,
    dirs: Vec<Dir>,
    /// Every directory's handle followed by its name, and garbage.
    bytes: Vec<u8>,
    hasher: DefaultHashBuilder,
    /// Ids that are [`Kind::Root`] or [`Kind::Dir`] (what [`DirIndex::len`] counts).
    entries: usize,
    /// Ids that are [`Kind::Absent`], and how many the last compaction kept.
    absent: usize,
    absent_kept: usize,
    /// Bytes of `bytes` that no id points at.
    garbage: usize,
    roots: HashMap<RootId, IndexedRoot>,
    #[cfg(test)]
    compactions: usize,
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
        // The walk's growth left up to half of the vectors' room unused.
        self.compact();
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
        let id = self.intern(&handle);
        self.set(id, Kind::Root, root, b"");
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
        while self.entry(&handle).is_none() {
            let (Some(parent), Some(name)) = (at.parent(), at.file_name()) else {
                break;
            };
            let Ok((parent_handle, _)) = handle_of(parent) else {
                break;
            };
            let (id, parent_id) = (self.intern(&handle), self.intern(&parent_handle));
            self.set(id, Kind::Dir, parent_id, name.as_bytes());
            (handle, at) = (parent_handle, parent.to_path_buf());
        }
        self.compact_if_wasteful();
        Some(found)
    }

    /// Forgets every directory but the roots (lazy mode: they are learnt
    /// again as events name them).
    pub fn forget_learnt(&mut self) {
        for id in 0..self.dirs.len() {
            if self.dirs[id].kind == Kind::Dir {
                self.remove(id as u32);
            }
        }
        self.compact();
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
        self.entries
    }

    /// Indexes the directories below `path` (whose handle is `handle`),
    /// staying on the root's mount. Unreadable directories are skipped with
    /// a warning (their events still resolve through their parent's entry).
    pub fn index_subtree(&mut self, root: RootId, path: &Path, handle: FileHandle) {
        let Some(indexed) = self.roots.get(&root) else {
            return;
        };
        let (root_path, mount_id) = (indexed.path.clone(), indexed.mount_id);
        let mut stack = vec![(path.to_path_buf(), self.intern(&handle))];
        while let Some((dir, dir_id)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                // Removed since it was seen (a directory created and deleted
                // while the agent was away): nothing to index, nothing lost.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::debug!(dir = %dir.display(), "directory gone before it was indexed");
                    continue;
                }
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
                        let id = self.intern(&child_handle);
                        self.set(id, Kind::Dir, dir_id, &entry.file_name().into_vec());
                        stack.push((child, id));
                    }
                    Ok(_) => {
                        tracing::info!(dir = %child.display(), "not following a mount point below a root")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        tracing::debug!(dir = %child.display(), "directory gone before it was indexed")
                    }
                    Err(e) => {
                        tracing::warn!(dir = %child.display(), error = %e, "cannot read directory handle")
                    }
                }
            }
        }
        self.compact_if_wasteful();
    }

    /// Records that directory `dir` is now entry `name` of `parent`. Returns
    /// false (and forgets `dir`) when `parent` is not under a root: the
    /// directory was created or moved outside every root.
    pub fn link(&mut self, dir: FileHandle, parent: &FileHandle, name: &[u8]) -> bool {
        let linked = match self.entry(parent) {
            Some((parent_id, _)) => {
                let id = self.intern(&dir);
                self.set(id, Kind::Dir, parent_id, name);
                true
            }
            None => {
                if let Some((id, _)) = self.entry(&dir) {
                    self.remove(id);
                }
                false
            }
        };
        self.compact_if_wasteful();
        linked
    }

    /// Forgets a deleted directory (never a root).
    pub fn unlink(&mut self, dir: &FileHandle) {
        if let Some((
            id,
            Dir {
                kind: Kind::Dir, ..
            },
        )) = self.entry(dir)
        {
            self.remove(id);
            self.compact_if_wasteful();
        }
    }

    /// The root a handle *is*, if it is one.
    pub fn root_of_handle(&self, dir: &FileHandle) -> Option<RootId> {
        match self.entry(dir)? {
            (
                _,
                Dir {
                    kind: Kind::Root,
                    link,
                    ..
                },
            ) => Some(link),
            _ => None,
        }
    }

    /// The root and root-relative path of directory `dir`; `None` when the
    /// directory is not (known to be) under a root.
    pub fn dir_path(&self, dir: &FileHandle) -> Option<(RootId, Vec<u8>)> {
        let mut names: Vec<&[u8]> = Vec::new();
        let (_, mut current) = self.entry(dir)?;
        for _ in 0..MAX_DEPTH {
            match current.kind {
                Kind::Root => {
                    names.reverse();
                    return Some((current.link, names.join(&b'/')));
                }
                Kind::Dir => {
                    names.push(self.name(current));
                    current = self.dirs[current.link as usize];
                }
                Kind::Absent => return None,
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

    /// The id and record of `handle` when it is an entry (a root or a
    /// directory), not [`Kind::Absent`] or unknown.
    fn entry(&self, handle: &FileHandle) -> Option<(u32, Dir)> {
        let handle = handle.typed_bytes();
        let hash = self.hasher.hash_one(handle);
        let &id = self
            .ids
            .find(hash, |&id| handle_at(&self.dirs, &self.bytes, id) == handle)?;
        let dir = self.dirs[id as usize];
        (dir.kind != Kind::Absent).then_some((id, dir))
    }

    /// The id of `handle`, interned as [`Kind::Absent`] if it is new.
    fn intern(&mut self, handle: &FileHandle) -> u32 {
        let handle = handle.typed_bytes();
        let Self {
            ids,
            dirs,
            bytes,
            hasher,
            ..
        } = self;
        let hash = hasher.hash_one(handle);
        let entry = ids.entry(
            hash,
            |&id| handle_at(dirs, bytes, id) == handle,
            |&id| hasher.hash_one(handle_at(dirs, bytes, id)),
        );
        match entry {
            Entry::Occupied(occupied) => *occupied.get(),
            Entry::Vacant(vacant) => {
                let id = u32::try_from(dirs.len()).expect("fewer than 2^32 directories");
                dirs.push(Dir {
                    link: 0,
                    at: offset(bytes),
                    name_len: 0,
                    handle_len: handle.len().try_into().expect("handles under 256 bytes"),
                    kind: Kind::Absent,
                });
                bytes.extend_from_slice(handle);
                vacant.insert(id);
                self.absent += 1;
                id
            }
        }
    }

    /// Makes `id` a root or a directory named `name`.
    fn set(&mut self, id: u32, kind: Kind, link: u32, name: &[u8]) {
        let dir = &mut self.dirs[id as usize];
        if dir.kind == Kind::Absent {
            (self.absent, self.entries) = (self.absent - 1, self.entries + 1);
        }
        (dir.kind, dir.link) = (kind, link);
        let name_len = u16::try_from(name.len()).expect("names under 64 KiB");
        let (at, old_len) = (
            dir.at as usize + dir.handle_len as usize,
            dir.name_len as usize,
        );
        if name.len() <= old_len {
            self.bytes[at..at + name.len()].copy_from_slice(name);
            self.garbage += old_len - name.len();
        } else if at + old_len == self.bytes.len() {
            // Last in `bytes`, as a directory just interned is.
            self.bytes.truncate(at);
            self.bytes.extend_from_slice(name);
        } else {
            // Elsewhere a longer name moves the handle too.
            let handle = dir.at as usize..at;
            dir.at = offset(&self.bytes);
            self.bytes.extend_from_within(handle.clone());
            self.bytes.extend_from_slice(name);
            self.garbage += handle.len() + old_len;
        }
        dir.name_len = name_len;
    }

    /// Makes entry `id` [`Kind::Absent`] (kept while entries name it as
    /// their parent, so that they resolve again if it is linked back).
    fn remove(&mut self, id: u32) {
        let dir = &mut self.dirs[id as usize];
        self.garbage += dir.name_len as usize;
        (dir.kind, dir.name_len) = (Kind::Absent, 0);
        (self.absent, self.entries) = (self.absent + 1, self.entries - 1);
    }

    fn name(&self, dir: Dir) -> &[u8] {
        let at = dir.at as usize + dir.handle_len as usize;
        &self.bytes[at..at + dir.name_len as usize]
    }

    /// Compacts when removed directories or old names outweigh half of
    /// what is held (amortised: a compaction costs one pass over the
    /// index, and comes after as many removals or renames again).
    fn compact_if_wasteful(&mut self) {
        if self.absent > self.absent_kept + self.entries / 2 + SLACK_DIRS
            || self.garbage > self.bytes.len() / 2 + SLACK_BYTES
        {
            self.compact();
        }
    }

    /// Drops the [`Kind::Absent`] ids that no entry names as its parent,
    /// numbers the others densely again, copies the live bytes into a
    /// vector of their size and rebuilds the hash table. Transient memory:
    /// 4 bytes per id and the live bytes.
    fn compact(&mut self) {
        // First: 1 for the ids to keep. Then: their new ids.
        const DROP: u32 = u32::MAX;
        let mut new_ids = vec![DROP; self.dirs.len()];
        for (id, dir) in self.dirs.iter().enumerate() {
            if dir.kind != Kind::Absent {
                new_ids[id] = 1;
            }
            if dir.kind == Kind::Dir {
                new_ids[dir.link as usize] = 1;
            }
        }
        let live = (self.dirs.iter().zip(&new_ids))
            .filter(|(_, &new)| new != DROP)
            .map(|(dir, _)| dir.handle_len as usize + dir.name_len as usize)
            .sum();
        let mut bytes = Vec::with_capacity(live);
        let mut kept = 0;
        for (id, new_id) in new_ids.iter_mut().enumerate() {
            if *new_id == DROP {
                continue;
            }
            let mut dir = self.dirs[id];
            let at = dir.at as usize;
            let len = dir.handle_len as usize + dir.name_len as usize;
            dir.at = offset(&bytes);
            bytes.extend_from_slice(&self.bytes[at..at + len]);
            self.dirs[kept] = dir;
            *new_id = kept as u32;
            kept += 1;
        }
        self.dirs.truncate(kept);
        self.dirs.shrink_to_fit();
        for dir in &mut self.dirs {
            if dir.kind == Kind::Dir {
                dir.link = new_ids[dir.link as usize];
            }
        }
        drop(new_ids);
        (self.bytes, self.garbage) = (bytes, 0);
        self.absent = self.dirs.len() - self.entries;
        self.absent_kept = self.absent;
        #[cfg(test)]
        {
            self.compactions += 1;
        }
        let Self {
            ids,
            dirs,
            bytes,
            hasher,
            ..
        } = self;
        let hash = |&id: &u32| hasher.hash_one(handle_at(dirs, bytes, id));
        ids.clear();
        ids.shrink_to(dirs.len(), hash);
        for id in 0..dirs.len() as u32 {
            ids.insert_unique(hash(&id), id, hash);
        }
    }
}

/// The handle bytes of `id`.
fn handle_at<'a>(dirs: &[Dir], bytes: &'a [u8], id: u32) -> &'a [u8] {
    let dir = dirs[id as usize];
    &bytes[dir.at as usize..dir.at as usize + dir.handle_len as usize]
}

/// The offset of the next byte pushed on `bytes`.
fn offset(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).expect("directory index bytes under 4 GiB")
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

    /// The index as it was before interning (a map from handle to parent
    /// handle and name), the reference for the randomised test below.
    #[derive(Default)]
    struct Model(std::collections::BTreeMap<FileHandle, Result<RootId, (FileHandle, Vec<u8>)>>);

    impl Model {
        fn link(&mut self, dir: FileHandle, parent: &FileHandle, name: &[u8]) -> bool {
            if self.0.contains_key(parent) {
                self.0.insert(dir, Err((parent.clone(), name.to_vec())));
                true
            } else {
                self.0.remove(&dir);
                false
            }
        }

        fn unlink(&mut self, dir: &FileHandle) {
            if matches!(self.0.get(dir), Some(Err(_))) {
                self.0.remove(dir);
            }
        }

        fn dir_path(&self, dir: &FileHandle) -> Option<(RootId, Vec<u8>)> {
            let (mut names, mut current) = (Vec::new(), dir);
            for _ in 0..MAX_DEPTH {
                match self.0.get(current)? {
                    Ok(root) => {
                        names.reverse();
                        return Some((*root, names.join(&b'/')));
                    }
                    Err((parent, name)) => {
                        names.push(name.as_slice());
                        current = parent;
                    }
                }
            }
            None
        }
    }

    #[test]
    fn random_links_and_unlinks_resolve_as_a_plain_map_of_parents_does() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let dir = tempfile::tempdir().unwrap();
        let mut index = DirIndex::default();
        let root = index
            .register_root(3, dir.path(), RootExcludes::default())
            .unwrap();
        let mut model = Model::default();
        model.0.insert(root.clone(), Ok(3));
        // Handles of 12 and 20 bytes (ext4, xfs), and the root's.
        let mut handles: Vec<FileHandle> = (0..200u32)
            .map(|n| FileHandle::new(1, &[n.to_ne_bytes(); 2].concat()))
            .chain((0..100u32).map(|n| FileHandle::new(0x81, &[n.to_ne_bytes(); 4].concat())))
            .collect();
        handles.push(root);
        let (mut most_ids, mut most_bytes) = (0, 0);
        for step in 0..10_000 {
            // Never the root: a root linked under an unknown parent is forgotten.
            let dir = handles[rng.random_range(0..handles.len() - 1)].clone();
            match rng.random_range(0..10) {
                0..=5 => {
                    // Mostly under a directory held, as the kernel reports them.
                    let parent = &match rng.random_range(0..5) {
                        0 => handles[rng.random_range(0..handles.len())].clone(),
                        _ => model
                            .0
                            .keys()
                            .nth(rng.random_range(0..model.0.len()))
                            .unwrap()
                            .clone(),
                    };
                    let name = vec![b'a' + rng.random_range(0..26u8); rng.random_range(0..12)];
                    assert_eq!(
                        index.link(dir.clone(), parent, &name),
                        model.link(dir.clone(), parent, &name),
                        "step {step}"
                    );
                }
                6..=8 => {
                    index.unlink(&dir);
                    model.unlink(&dir);
                }
                _ if step % 2500 == 9 => {
                    index.forget_learnt();
                    model.0.retain(|_, parent| parent.is_ok());
                }
                _ => {}
            }
            assert_eq!(index.len(), model.0.len(), "step {step}");
            // All of them now and then: a cycle costs MAX_DEPTH steps each.
            let checked = if step % 25 == 0 {
                &handles[..]
            } else {
                std::slice::from_ref(&dir)
            };
            for handle in checked {
                assert_eq!(
                    index.dir_path(handle),
                    model.dir_path(handle),
                    "step {step}"
                );
                assert_eq!(
                    index.root_of_handle(handle),
                    model.0.get(handle).and_then(|p| p.as_ref().ok().copied()),
                    "step {step}"
                );
            }
            most_ids = most_ids.max(index.dirs.len());
            most_bytes = most_bytes.max(index.bytes.len());
        }
        // Compaction keeps memory to what is held, whatever the churn.
        assert!(index.compactions > 5, "{} compactions", index.compactions);
        assert!(most_ids <= 301, "{most_ids} ids");
        assert!(most_bytes < 3 * 301 * (20 + 11) + 64, "{most_bytes} bytes");
    }

    #[test]
    fn children_of_a_removed_directory_resolve_again_when_it_is_linked_back() {
        let (dir, mut index) = tree();
        let (jobs, _) = handle_of(&dir.path().join("jobs")).unwrap();
        let (a, _) = handle_of(&dir.path().join("jobs/a")).unwrap();
        let (one, _) = handle_of(&dir.path().join("jobs/a/builds/1")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        let (out, _) = handle_of(outside.path()).unwrap();
        assert!(!index.link(a.clone(), &out, b"a"), "moved out");
        assert_eq!((index.len(), index.dir_path(&one)), (4, None));
        index.compact();
        assert!(index.link(a, &jobs, b"back-in-with-a-longer-name"));
        assert_eq!(
            index.dir_path(&one),
            Some((3, b"jobs/back-in-with-a-longer-name/builds/1".to_vec()))
        );
    }
}
