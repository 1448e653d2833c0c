//! The fanotify backend: one group per filesystem that holds a root, marked
//! with `FAN_MARK_FILESYSTEM` (no per-directory watches, constant set-up:
//! nothing is walked at start), events named by directory handle + name and
//! resolved through a lazily filled [`DirIndex`]: a directory no event named
//! before is found by the kernel (`open_by_handle_at`) and learnt.
//!
//! A directory deleted before its events are read (an `rm -rf` is read
//! after the fact) can no longer be found (`ESTALE`): its events are
//! skipped. Nothing is lost: the deletion of the topmost deleted directory
//! is an event in a directory that still exists, and its push (a delete with
//! `--force`) removes the whole subtree from the target. That deletion is
//! subtree-scoped (see [`departure_scope`]): when a directory is made again
//! at the same path before the push, the path's coalesced entry still
//! removes what the old directory held.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use fsjournal_common::ChangeKind;

use super::dir_index::{self, DirIndex};
use super::fanotify_sys::{self, parse_events, DirEntryName, Event, Group};
use super::handle::{self, FileHandle};
use super::hard_links::HardLinks;
use super::{Backend, Root, Sink, Stats};
use crate::journal::{ArmTimes, Change, RootId, Scope};

/// Size of one read(2) of the event queue (bytes).
const READ_BUFFER: usize = 256 * 1024;
/// Handles cached as "outside every root" before the cache is reset.
const OUTSIDE_CACHE_MAX: usize = 65_536;
/// Directories the index holds before it forgets them all (about 40–55
/// bytes each): they are learnt again as events name them.
const INDEX_MAX: usize = 262_144;

/// The capture state of one filesystem.
struct Filesystem {
    group: Group,
    index: DirIndex,
    /// A descriptor on the filesystem, for `open_by_handle_at`.
    mount_fd: OwnedFd,
    /// Directories known to lie outside every root (negative cache).
    outside: HashSet<FileHandle>,
    /// Names of hard-linked files, so a write through one reaches all.
    links: HardLinks,
}

/// Armed fanotify capture for a set of roots.
pub struct FanotifyCapture {
    filesystems: Vec<Filesystem>,
    self_pid: i32,
    times: ArmTimes,
}

impl FanotifyCapture {
    /// Creates one group per filesystem and places the marks: from the
    /// return on, every change under the roots is queued. Nothing is walked.
    ///
    /// Errors: see [`Group::watch_filesystem`]; a root whose handle cannot
    /// be read.
    pub fn arm(roots: &[Root], max_queued_events: u64) -> anyhow::Result<FanotifyCapture> {
        if max_queued_events > 0 {
            if let Err(e) = fanotify_sys::raise_queue_limit(max_queued_events) {
                tracing::warn!(error = %e, "cannot raise fs.fanotify.max_queued_events; keeping the kernel's limit");
            }
        }
        let started = std::time::Instant::now();
        let mut filesystems: Vec<(u64, Filesystem)> = Vec::new();
        let mut root_fs = Vec::new();
        for root in roots {
            let dev = std::fs::metadata(&root.path)
                .with_context(|| format!("cannot stat root {}", root.path.display()))?
                .dev();
            root_fs.push(match filesystems.iter().position(|(d, _)| *d == dev) {
                Some(position) => position,
                None => {
                    let group = Group::watch_filesystem(&root.path)
                        .map_err(|e| unwatchable(&root.path, e))?;
                    let renames = if group.mask & fanotify_sys::RENAME_MASK != 0 {
                        "FAN_RENAME"
                    } else {
                        "FAN_MOVED_FROM/TO"
                    };
                    tracing::info!(root = %root.path.display(), renames, "fanotify filesystem mark placed");
                    let mount_fd = handle::open_dir(&root.path)?;
                    let fs = Filesystem {
                        group,
                        index: DirIndex::default(),
                        mount_fd,
                        outside: HashSet::new(),
                        links: HardLinks::default(),
                    };
                    filesystems.push((dev, fs));
                    filesystems.len() - 1
                }
            });
        }
        // Every mark first; the roots' handles next (nothing is walked: the
        // directory index is learnt lazily).
        let attached = started.elapsed();
        for (root, position) in roots.iter().zip(root_fs) {
            filesystems[position]
                .1
                .index
                .register_root(root.id, &root.path, root.excludes.clone())
                .with_context(|| {
                    format!(
                        "cannot read the file handle of root {}",
                        root.path.display()
                    )
                })?;
            tracing::info!(root = %root.path.display(), "root armed");
        }
        Ok(FanotifyCapture {
            filesystems: filesystems.into_iter().map(|(_, fs)| fs).collect(),
            self_pid: std::process::id() as i32,
            times: super::arm_times(attached, started.elapsed()),
        })
    }

    /// When the marks were placed and when the directory index was ready.
    pub fn times(&self) -> ArmTimes {
        self.times
    }
}

impl Backend for FanotifyCapture {
    fn wait(&mut self, timeout: Duration) {
        let mut pollfds: Vec<libc::pollfd> = self
            .filesystems
            .iter()
            .map(|fs| libc::pollfd {
                fd: fs.group.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `pollfds` is a valid array of `pollfd` for its length.
        unsafe {
            libc::poll(
                pollfds.as_mut_ptr(),
                pollfds.len() as libc::nfds_t,
                timeout.as_millis() as libc::c_int,
            )
        };
    }

    fn drain(&mut self, sink: &mut Sink, stats: &Stats) -> anyhow::Result<()> {
        let mut buf = vec![0u8; READ_BUFFER];
        for fs in &mut self.filesystems {
            loop {
                let n = fs
                    .group
                    .read(&mut buf)
                    .context("reading the fanotify queue")?;
                if n == 0 {
                    break;
                }
                for event in parse_events(&buf[..n]) {
                    stats.events.fetch_add(1, Ordering::Relaxed);
                    fs.translate(&event, self.self_pid, sink.changes(), &stats.rescans);
                }
                sink.hand_over_if_full()?;
            }
        }
        Ok(())
    }
}

/// The error for a root whose filesystem fanotify refuses, with what to do.
fn unwatchable(root: &std::path::Path, e: std::io::Error) -> anyhow::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::ENODEV) => {
            ": this filesystem has no file handles (proc, sysfs, some FUSE); supported: ext4, xfs, btrfs, tmpfs"
        }
        Some(libc::EXDEV) => {
            ": a btrfs subvolume or an overlayfs without nfs_export=on; put the root on the filesystem's top level"
        }
        Some(libc::EPERM) => ": fanotify needs root (CAP_SYS_ADMIN)",
        _ => "",
    };
    anyhow::anyhow!(
        "fanotify cannot watch the filesystem of {}: {e}{hint}",
        root.display()
    )
}

/// Picks the kind recorded for a (possibly merged) directory-entry event.
fn entry_kind(mask: u64, exists: impl FnOnce() -> bool) -> Option<ChangeKind> {
    let (create, delete) = (mask & libc::FAN_CREATE != 0, mask & libc::FAN_DELETE != 0);
    Some(match () {
        // Merged events lose their order: the file system decides.
        _ if create && delete => {
            if exists() {
                ChangeKind::Create
            } else {
                ChangeKind::Delete
            }
        }
        _ if create => ChangeKind::Create,
        _ if delete => ChangeKind::Delete,
        _ if mask & (libc::FAN_MODIFY | libc::FAN_CLOSE_WRITE) != 0 => ChangeKind::Modify,
        _ if mask & libc::FAN_ATTRIB != 0 => ChangeKind::Attrib,
        _ => return None,
    })
}

/// The scope of a change that took an entry away from its path (a delete,
/// the old side of a rename): a directory's departure is a subtree, so that
/// a directory made again at that path before the push (`rm -rf d; mkdir
/// d`, a `git checkout`) still wipes what the old one held. Coalescing keeps
/// the widest scope: the path's one pending entry becomes a subtree push
/// (`-r --delete`) of whatever the path is by then. The old directory's own
/// entries are often not journaled at all (read after it was gone: see the
/// module documentation), so the push of the path is the only carrier of
/// their deletion. A file's departure stays an entry: a file made again
/// is pushed whole (with `--ignore-times`), and a directory made in its
/// place has nothing old below it.
fn departure_scope(was_dir: bool) -> Scope {
    if was_dir {
        Scope::Subtree
    } else {
        Scope::Entry
    }
}

impl Filesystem {
    /// Turns one event into journal changes, keeping the index current.
    fn translate(
        &mut self,
        event: &Event,
        self_pid: i32,
        out: &mut Vec<Change>,
        rescans: &AtomicU64,
    ) {
        let mask = event.mask;
        if mask & libc::FAN_Q_OVERFLOW != 0 {
            tracing::warn!("fanotify queue overflow: events were lost; rescanning every root of this filesystem");
            self.rescan_all(out, rescans);
            return;
        }
        if event.pid == self_pid {
            return;
        }
        let pid = event.pid.max(0) as u32;
        let is_dir = mask & libc::FAN_ONDIR != 0;
        // The old name, resolved before the index learns the new one.
        let mut departed = None;
        if mask & (libc::FAN_RENAME | libc::FAN_MOVED_FROM) != 0 {
            if let Some(old) = event.old.as_ref().or(event
                .entry
                .as_ref()
                .filter(|_| mask & libc::FAN_MOVED_FROM != 0))
            {
                if let Some((root, path)) = self.resolve(old) {
                    out.push(Change {
                        root,
                        path: path.clone(),
                        kind: ChangeKind::RenameFrom,
                        scope: departure_scope(is_dir),
                        ino: 0,
                        pid,
                        comm: String::new(),
                        renamed_from: None,
                    });
                    departed = Some((root, path));
                }
            }
        }
        if mask & (libc::FAN_RENAME | libc::FAN_MOVED_TO) != 0 {
            if let Some(new) = event.new.as_ref().or(event
                .entry
                .as_ref()
                .filter(|_| mask & libc::FAN_MOVED_TO != 0))
            {
                // Only FAN_RENAME names both sides in one event (MOVED_FROM
                // and MOVED_TO carry no cookie to pair them by).
                let from = departed.filter(|_| mask & libc::FAN_RENAME != 0);
                self.moved_to(new, event.object.as_ref(), is_dir, pid, from, out);
            }
        }
        if let Some(entry) = &event.entry {
            self.entry_changed(entry, event, is_dir, pid, out);
        }
        if mask & (libc::FAN_DELETE_SELF | libc::FAN_MOVE_SELF) != 0 {
            if let Some(root) = event
                .object
                .as_ref()
                .and_then(|h| self.index.root_of_handle(h))
            {
                tracing::error!(root = %self.index.root_path(root).map_or_else(String::new, |p| p.display().to_string()),
                    "a root directory itself was deleted or moved; its target will be brought in line with it");
                self.rescan(root, Vec::new(), out, rescans);
            }
        }
    }

    /// CREATE / DELETE / MODIFY / CLOSE_WRITE / ATTRIB on `entry`.
    fn entry_changed(
        &mut self,
        entry: &DirEntryName,
        event: &Event,
        is_dir: bool,
        pid: u32,
        out: &mut Vec<Change>,
    ) {
        let Some((root, path)) = self.resolve(entry) else {
            return;
        };
        let meta = self.metadata(root, &path);
        let ino = meta.as_ref().map_or(0, |m| m.ino());
        let Some(kind) = entry_kind(event.mask, || ino != 0) else {
            return;
        };
        if let Some(object) = &event.object {
            match kind {
                ChangeKind::Create if is_dir => {
                    self.index.link(object.clone(), &entry.dir, &entry.name);
                }
                ChangeKind::Delete if is_dir => self.index.unlink(object),
                _ => {}
            }
        }
        let change = Change {
            root,
            path,
            kind,
            // A merged CREATE|DELETE (journaled as a create when the entry
            // exists) still took a directory away first.
            scope: departure_scope(is_dir && event.mask & libc::FAN_DELETE != 0),
            ino,
            pid,
            comm: String::new(),
            renamed_from: None,
        };
        self.push_with_other_names(change, meta.as_ref(), out);
    }

    /// What the entry at root-relative `path` is now (`lstat`); `None` when
    /// it is gone.
    fn metadata(&self, root: RootId, path: &[u8]) -> Option<std::fs::Metadata> {
        self.index
            .absolute(root, path)
            .and_then(|p| std::fs::symlink_metadata(p).ok())
    }

    /// Journals `change` and, for a write to a hard-linked file (`meta`
    /// describes the changed object) or a new name of one (`link(2)`), its
    /// other names (see [`HardLinks`]): pushed in the same rsync run, the
    /// new name becomes a hard link on the target with `-H` (rsync pairs
    /// names only within one run). Renames only teach the registry a name.
    fn push_with_other_names(
        &mut self,
        change: Change,
        meta: Option<&std::fs::Metadata>,
        out: &mut Vec<Change>,
    ) {
        if let (Some(meta), Some(root_path)) = (meta, self.index.root_path(change.root)) {
            let others = self
                .links
                .other_names(change.root, root_path, &change.path, meta);
            if matches!(
                change.kind,
                ChangeKind::Modify | ChangeKind::Attrib | ChangeKind::Create
            ) {
                out.extend(others.into_iter().map(|path| Change {
                    path,
                    ..change.clone()
                }));
            }
        }
        out.push(change);
    }

    /// The new side of a rename (or a MOVED_TO); `from` is the old side
    /// when the event named both.
    fn moved_to(
        &mut self,
        new: &DirEntryName,
        object: Option<&FileHandle>,
        is_dir: bool,
        pid: u32,
        from: Option<(RootId, Vec<u8>)>,
        out: &mut Vec<Change>,
    ) {
        let resolved = self.resolve(new);
        if let (true, Some(object)) = (is_dir, object) {
            self.outside.remove(object);
            match resolved {
                Some(_) => drop(self.index.link(object.clone(), &new.dir, &new.name)),
                // Moved out of every root, or into an excluded directory.
                None => self.index.unlink(object),
            }
        }
        let Some((root, path)) = resolved else {
            return;
        };
        let meta = self.metadata(root, &path);
        let ino = meta.as_ref().map_or(0, |m| m.ino());
        let renamed_from = from
            .filter(|(from_root, from_path)| *from_root == root && *from_path != path)
            .map(|(_, from_path)| from_path);
        let change = Change {
            root,
            path,
            kind: ChangeKind::RenameTo,
            scope: if is_dir { Scope::Subtree } else { Scope::Entry },
            ino,
            pid,
            comm: String::new(),
            renamed_from,
        };
        self.push_with_other_names(change, meta.as_ref(), out);
    }

    /// Root and root-relative path of a directory entry; `None` outside every
    /// root, for an excluded path, or when the directory was deleted before
    /// the event was read (see the module documentation). A directory the
    /// index does not hold is found by the kernel and learnt.
    fn resolve(&mut self, entry: &DirEntryName) -> Option<(RootId, Vec<u8>)> {
        let (root, path) = match self.index.entry_path(&entry.dir, &entry.name) {
            Some(found) => found,
            None => {
                if self.outside.contains(&entry.dir) {
                    return None;
                }
                let (dir_path, _) = handle::current_path(&self.mount_fd, &entry.dir).ok()?;
                if self.index.len() >= INDEX_MAX {
                    self.index.forget_learnt();
                }
                let Some(dir) = self.index.learn(&entry.dir, &dir_path) else {
                    if self.outside.len() >= OUTSIDE_CACHE_MAX {
                        self.outside.clear();
                    }
                    self.outside.insert(entry.dir.clone());
                    return None;
                };
                dir_index::entry_of(dir, &entry.name)
            }
        };
        (!self.index.is_excluded(root, &path)).then_some((root, path))
    }

    fn rescan(&self, root: RootId, path: Vec<u8>, out: &mut Vec<Change>, rescans: &AtomicU64) {
        rescans.fetch_add(1, Ordering::Relaxed);
        out.push(Change::rescan(root, path));
    }

    /// After a queue overflow: every root is pushed whole, and what the
    /// index learnt may be stale (lost renames), so it is learnt again.
    fn rescan_all(&mut self, out: &mut Vec<Change>, rescans: &AtomicU64) {
        for root in self.index.root_ids() {
            self.rescan(root, Vec::new(), out, rescans);
        }
        self.outside.clear();
        self.index.forget_learnt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_create_and_delete_ask_the_file_system() {
        assert_eq!(
            entry_kind(libc::FAN_CREATE | libc::FAN_DELETE, || true),
            Some(ChangeKind::Create)
        );
        assert_eq!(
            entry_kind(libc::FAN_CREATE | libc::FAN_DELETE, || false),
            Some(ChangeKind::Delete)
        );
        assert_eq!(
            entry_kind(libc::FAN_MODIFY | libc::FAN_ATTRIB, || unreachable!()),
            Some(ChangeKind::Modify)
        );
        assert_eq!(
            entry_kind(libc::FAN_CLOSE_WRITE, || unreachable!()),
            Some(ChangeKind::Modify)
        );
        assert_eq!(entry_kind(libc::FAN_DELETE_SELF, || unreachable!()), None);
    }
}
