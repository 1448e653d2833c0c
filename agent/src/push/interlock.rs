//! Safety interlocks: a push never destroys the replica because the source
//! is not what the agent replicates. The careful tools' habits, applied to
//! each target:
//!
//! - **The armed root.** The pusher holds the source root open from its
//!   start and, before every push, checks that the source path still names
//!   that directory (same dev/ino, a directory, not a symlink): a root
//!   unmounted under the agent (`umount -l`), renamed away, or replaced by a
//!   symlink to another tree is refused, not replicated. Only a restart arms
//!   the agent (capture included) on a new directory.
//! - **The filesystem the operator agreed to.** The journal records the
//!   root's filesystem identity once ([`crate::host::identity`]); a start on
//!   another one (the data disk failed to mount, so the root is the empty
//!   mount point) leaves the record as it was, and pushes are refused until
//!   it is back or the operator confirms the new one with
//!   `fsjournal resync --force` (ZFS refuses to receive into a dataset that
//!   changed, for the same reason).
//! - **Full syncs that would delete much.** Before a full sync (`--delete`
//!   over the whole target), an empty source root whose target was
//!   replicated before is refused, and a dry run (`rsync --dry-run --stats`)
//!   counts what the full sync would delete: more than `max_delete_percent`
//!   of the target's entries is refused (rsync's own `--max-delete` bounds a
//!   count; a share fits trees of every size).
//!
//! A refusal is a failed push: it is the target's `last_error` (prefixed
//! `safety interlock:`), `fsjournal status` turns red with it, the pusher
//! checks again with backoff, and the journal keeps every change meanwhile.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::journal::FsIdentity;

/// What an error or refusal says first, so that status and logs tell an
/// interlock from a transfer failure.
pub const PREFIX: &str = "safety interlock";

/// The source root as the pusher armed it, held open (see the module
/// documentation).
pub struct ArmedRoot {
    path: PathBuf,
    /// Held so that its dev/ino stay this directory's, whatever happens to
    /// the path.
    _dir: std::fs::File,
    dev: u64,
    ino: u64,
}

impl ArmedRoot {
    /// Opens `path` (canonical) as a directory, never following a symlink
    /// in its last component. Errors: it is missing, not a directory, or a
    /// symlink.
    pub fn open(path: &Path) -> anyhow::Result<ArmedRoot> {
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("cannot open the source root {}", path.display()))?;
        let meta = dir.metadata()?;
        Ok(ArmedRoot {
            path: path.to_path_buf(),
            _dir: dir,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The source root's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the path no longer names the armed directory, if it does not.
    pub fn changed(&self) -> Option<String> {
        let path = self.path.display();
        let restart = "if that is intended, restart the agent to arm it on the new directory";
        match std::fs::symlink_metadata(&self.path) {
            Err(e) => Some(format!("the source root {path} is gone ({e}): unmounted or removed? The journal keeps every change; pushes resume once it is back")),
            Ok(m) if m.file_type().is_symlink() => Some(format!(
                "the source root {path} was replaced by a symlink: symlinks are never followed to another tree; {restart}"
            )),
            Ok(m) if !m.is_dir() => Some(format!("the source root {path} is no longer a directory")),
            Ok(m) if (m.dev(), m.ino()) != (self.dev, self.ino) => Some(format!(
                "the source root {path} is not the directory the agent armed (dev:ino {}:{} now {}:{}): unmounted, or renamed away and replaced? {restart}",
                self.dev, self.ino, m.dev(), m.ino()
            )),
            Ok(_) => None,
        }
    }
}

/// Why pushes from a root on filesystem `current` are refused when the
/// journal agreed to `recorded` (`None`: nothing recorded yet, no refusal).
pub fn identity_refusal(
    path: &Path,
    recorded: Option<&FsIdentity>,
    current: &FsIdentity,
    target: &str,
) -> Option<String> {
    let recorded = recorded.filter(|r| *r != current)?;
    Some(format!(
        "the source {} is not on the filesystem replicated so far (fsid {:#x}, root inode {}; now fsid {:#x}, root inode {}): is its filesystem mounted? \
         If this filesystem is the one to replicate now, confirm with `fsjournal resync --force --target {target}`",
        path.display(),
        recorded.fsid,
        recorded.root_ino,
        current.fsid,
        current.root_ino
    ))
}

/// Why a full sync from the source root `path` is refused when it is empty,
/// given whether the target was replicated from it before.
pub fn empty_root_refusal(
    path: &Path,
    replicated_before: bool,
    target: &str,
) -> anyhow::Result<Option<String>> {
    if !replicated_before {
        return Ok(None);
    }
    let empty = std::fs::read_dir(path)
        .with_context(|| format!("cannot list the source root {}", path.display()))?
        .next()
        .is_none();
    Ok(empty.then(|| {
        format!(
            "the source root {} is empty but {target} was replicated from it before: a full sync would empty the replica. \
             Is its filesystem mounted? To empty the replica on purpose: `fsjournal resync --force --target {target}`",
            path.display()
        )
    }))
}

/// The part of the root-relative `path` that rsync's sender would follow
/// through a symlink, if any: an ancestor that is a symlink now, or, when
/// `listed_as_dir` (a contents push lists `DIR/`), the path itself. rsync
/// resolves a listed `sub/f` with the kernel, so a `sub` swapped for a
/// symlink to `/root/private` after `sub/f` was journaled would send
/// `/root/private/f` as `sub/f`, implied directory and all (rsync 3.5,
/// `--files-from`, even with `sub` listed too). Pushing the returned prefix
/// as an entry sends the symlink itself instead, as the source has it.
pub fn symlinked_prefix(root: &Path, path: &[u8], listed_as_dir: bool) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let ends = path
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .map(|(i, _)| i)
        .chain(listed_as_dir.then_some(path.len()));
    for end in ends {
        let prefix = &path[..end];
        let meta = std::fs::symlink_metadata(root.join(std::ffi::OsStr::from_bytes(prefix)));
        match meta {
            Ok(m) if m.file_type().is_symlink() => return Some(prefix.to_vec()),
            Ok(_) => {}
            Err(_) => return None, // gone: rsync deletes what is missing
        }
    }
    None
}

/// What a full sync's dry run (`--stats`) says it would do to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionPreview {
    /// Entries it would delete (files, directories, links).
    pub deleted: u64,
    /// Entries the target holds now: the source's entries, less those the
    /// sync would create, plus those it would delete.
    pub target_entries: u64,
}

impl DeletionPreview {
    /// Reads rsync's `--stats` lines "Number of files: N", "Number of
    /// created files: N", "Number of deleted files: N" (digits may be
    /// grouped with commas); `None` when one is missing.
    pub fn parse(stats: &[u8]) -> Option<DeletionPreview> {
        let text = String::from_utf8_lossy(stats);
        let number = |label: &str| -> Option<u64> {
            let line = text.lines().find_map(|l| l.trim().strip_prefix(label))?;
            let digits: String = line
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .filter(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        };
        let files = number("Number of files:")?;
        let created = number("Number of created files:")?;
        let deleted = number("Number of deleted files:")?;
        Some(DeletionPreview {
            deleted,
            target_entries: (files.saturating_sub(created) + deleted).max(1),
        })
    }

    /// Why the full sync is refused under a limit of `max_percent` (0–100;
    /// 100 or more: never).
    pub fn refusal(&self, max_percent: u8, target: &str) -> Option<String> {
        let over =
            max_percent < 100 && self.deleted * 100 > u64::from(max_percent) * self.target_entries;
        over.then(|| {
            format!(
                "a full sync would delete {} of the {} entries on {target} ({}%, more than max_delete_percent = {max_percent}): \
                 is the source complete? To go ahead: `fsjournal resync --force --target {target}`",
                self.deleted,
                self.target_entries,
                self.deleted * 100 / self.target_entries
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_runs_stats_give_the_share_it_would_delete() {
        let stats =
            b"\nNumber of files: 1,004 (reg: 1,000, dir: 4)\nNumber of created files: 3 (reg: 3)\n\
Number of deleted files: 1,208 (reg: 1,200, dir: 8)\nNumber of regular files transferred: 3\n";
        let preview = DeletionPreview::parse(stats).expect("parsed");
        assert_eq!(
            preview,
            DeletionPreview {
                deleted: 1208,
                target_entries: 2209
            }
        );
        assert!(preview
            .refusal(50, "t")
            .is_some_and(|r| r.contains("1208 of the 2209")));
        assert_eq!(preview.refusal(60, "t"), None);
        assert_eq!(preview.refusal(100, "t"), None);
        assert_eq!(DeletionPreview::parse(b"Number of files: 3\n"), None);
    }

    #[test]
    fn nothing_deleted_is_never_refused() {
        let preview = DeletionPreview {
            deleted: 0,
            target_entries: 1,
        };
        assert_eq!(preview.refusal(0, "t"), None);
    }

    #[test]
    fn a_root_replaced_by_a_symlink_or_another_directory_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let armed = ArmedRoot::open(&root).unwrap();
        assert_eq!(armed.changed(), None);
        std::fs::rename(&root, dir.path().join("moved")).unwrap();
        std::fs::create_dir(dir.path().join("other")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("other"), &root).unwrap();
        assert!(armed.changed().is_some_and(|r| r.contains("symlink")));
        std::fs::remove_file(&root).unwrap();
        std::fs::create_dir(&root).unwrap();
        assert!(armed
            .changed()
            .is_some_and(|r| r.contains("not the directory the agent armed")));
        std::fs::remove_dir(&root).unwrap();
        assert!(armed.changed().is_some_and(|r| r.contains("is gone")));
        assert!(ArmedRoot::open(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_path_below_a_symlink_is_cut_back_to_the_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("jobs/a")).unwrap();
        std::fs::write(root.join("jobs/a/f"), "x").unwrap();
        std::fs::create_dir(root.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("elsewhere", root.join("sub")).unwrap();
        assert_eq!(symlinked_prefix(root, b"jobs/a/f", false), None);
        assert_eq!(symlinked_prefix(root, b"jobs/a", true), None);
        assert_eq!(
            symlinked_prefix(root, b"sub/f", false),
            Some(b"sub".to_vec())
        );
        assert_eq!(
            symlinked_prefix(root, b"sub/d/f", false),
            Some(b"sub".to_vec())
        );
        assert_eq!(symlinked_prefix(root, b"sub", true), Some(b"sub".to_vec()));
        assert_eq!(symlinked_prefix(root, b"sub", false), None);
        assert_eq!(symlinked_prefix(root, b"gone/f", false), None);
    }

    #[test]
    fn another_filesystem_is_refused_until_recorded() {
        let recorded = FsIdentity {
            fsid: 1,
            root_ino: 2,
        };
        let other = FsIdentity {
            fsid: 7,
            root_ino: 2,
        };
        let path = Path::new("/data");
        assert_eq!(identity_refusal(path, None, &other, "t"), None);
        assert_eq!(
            identity_refusal(path, Some(&recorded), &recorded, "t"),
            None
        );
        assert!(identity_refusal(path, Some(&recorded), &other, "t")
            .is_some_and(|r| r.contains("resync --force --target t")));
    }
}
