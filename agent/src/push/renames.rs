//! Renames on the target: the renames the journal kept (capture saw both
//! names, see [`Rename`]) are replayed on the target before a batch's rsync
//! runs, so that the push of the new path finds the data already in place
//! and no file data crosses for it. Renaming a Jenkins job
//! (`jobs/foo` → `jobs/bar`, thousands of builds) then costs a file list,
//! not the job's bytes. lsyncd's rsyncssh mode runs `mv` on the target;
//! GlusterFS geo-replication and lustre_rsync replay RENAME records by FID.
//!
//! The replay only places data: it never is what makes the target right.
//! Both paths of a rename stay pending and are pushed after it (the old one
//! deleted by `--delete-missing-args`, the new one `-r --delete` for a
//! directory). So a replay that cannot be done (the old path is not on the
//! target, the new one already is, its parent is missing: drift, an earlier
//! failed push) is skipped with a log line and the push sends the new path
//! in full; and a crash anywhere leaves both paths pending: the restarted
//! agent replays (a no-op now) and pushes the batch again.
//!
//! - Local target: `rename(2)` on the target, in journal order, when the
//!   old path is there and the new one is not (a rename over an existing
//!   entry is left to the push). The moved files keep their inodes.
//! - rsync daemon or remote shell: there is no `mv` (a daemon has none, and
//!   an ssh key restricted with `rrsync` allows nothing but rsync). A
//!   renamed directory is *seeded*: its entries go from `SOURCE/new/` to
//!   `TARGET/new/` with `--link-dest` at its old place on the target, where
//!   rsync hard-links every unchanged file instead of sending it
//!   (rsync(1), `--link-dest`). The push that follows deletes the old path,
//!   leaving the very same inodes under the new name. A renamed *file* is
//!   pushed as usual: rsync has no basis under another name.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::filter::Excludes;
use crate::journal::Rename;

/// `path` joined below `dir` (root-relative raw bytes; `""` is `dir`).
fn below(dir: &Path, path: &[u8]) -> std::path::PathBuf {
    dir.join(OsStr::from_bytes(path))
}

/// Replays `renames` (journal order) on the local target directory
/// `target` with `rename(2)`. Returns the new paths of those done; each
/// one skipped is logged with the reason: at `debug` when its old path
/// never reached the target (a file written under a temporary name and
/// renamed over the real one before it was pushed, as Jenkins saves every
/// `config.xml` and `build.xml`: nothing to move, the push sends the new
/// path as it would have anyway), else at `info` (the target is not what
/// the journal expects).
pub fn replay_local(target_name: &str, target: &Path, renames: &[Rename]) -> Vec<Vec<u8>> {
    let mut done = Vec::new();
    for rename in renames {
        let (from, to) = (
            String::from_utf8_lossy(&rename.from),
            String::from_utf8_lossy(&rename.to),
        );
        match rename_below(target, &rename.from, &rename.to) {
            Ok(()) => done.push(rename.to.clone()),
            Err(why) if why == NOT_ON_TARGET => {
                tracing::debug!(target = target_name, %from, %to, why, "rename not replayed on the target: the push sends the new path")
            }
            Err(why) => {
                tracing::info!(target = target_name, %from, %to, why, "rename not replayed on the target: the push sends the new path in full")
            }
        }
    }
    done
}

/// Why a rename was not replayed when its old path is not on the target.
const NOT_ON_TARGET: &str = "the old path is not on the target";

/// `rename(2)` of `dir/from` to `dir/to` when `from` exists there, `to`
/// does not and `to`'s parent is a directory. Errors: why it was not done.
fn rename_below(dir: &Path, from: &[u8], to: &[u8]) -> Result<(), String> {
    let (old, new) = (below(dir, from), below(dir, to));
    if std::fs::symlink_metadata(&old).is_err() {
        return Err(NOT_ON_TARGET.into());
    }
    if std::fs::symlink_metadata(&new).is_ok() {
        return Err("the new path is already on the target".into());
    }
    if !new.parent().is_some_and(Path::is_dir) {
        return Err("the new path's parent is not a directory on the target".into());
    }
    std::fs::rename(&old, &new).map_err(|e| format!("rename(2): {e}"))
}

/// One directory to seed on a remote target: `to` (root-relative) gets its
/// entries with `from`, its content's place on the target, as basis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// Where the directory's content lies on the target before this
    /// batch's pushes (root-relative).
    pub from: Vec<u8>,
    /// Its new path (root-relative), a directory on the source now.
    pub to: Vec<u8>,
}

/// The seeds for `renames` (journal order) on a remote target: every
/// rename whose new path is still a directory (not a symlink) on the
/// source. A rename's old path is translated through the earlier renames
/// of the batch, since none of them has happened on the target yet: a → b
/// then b → c seeds c from a (b is gone from the source and not seeded).
pub fn seeds(source: &Path, renames: &[Rename]) -> Vec<Seed> {
    let mut placed: Vec<Seed> = Vec::new();
    for rename in renames {
        let from = translate(&rename.from, &placed);
        placed.push(Seed {
            from,
            to: rename.to.clone(),
        });
    }
    placed
        .into_iter()
        .filter(|seed| seed.from != seed.to && !seed.to.is_empty())
        .filter(|seed| std::fs::symlink_metadata(below(source, &seed.to)).is_ok_and(|m| m.is_dir()))
        .collect()
}

/// Where `path` (a source path before the rename being translated) lies
/// on the target: below the newest earlier rename whose new path contains
/// it, at that rename's old place.
fn translate(path: &[u8], placed: &[Seed]) -> Vec<u8> {
    for seed in placed.iter().rev() {
        if let Some(rest) = strip_component_prefix(path, &seed.to) {
            let mut on_target = seed.from.clone();
            on_target.extend_from_slice(rest);
            return on_target;
        }
    }
    path.to_vec()
}

/// `path` without `prefix` when `prefix` is `path` itself or one of its
/// parent directories (the rest keeps its leading `/`).
fn strip_component_prefix<'a>(path: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with(b"/")).then_some(rest)
}

/// The regular files at or below `to` (root-relative; a replayed rename's
/// new path) that rsync's quick check cannot judge (`cost::quick_check_blind`:
/// mtime set explicitly), root-relative. A replay put the old place's
/// files there, and the subtree push that follows compares by size and
/// mtime: a file rewritten at the same size with its mtime set back would
/// keep the old content. These go in the batch's `--ignore-times` list.
pub fn blind_below(source: &Path, to: &[u8], excludes: &Excludes) -> Vec<Vec<u8>> {
    let mut paths = vec![to.to_vec()];
    paths.extend(listing(source, to, excludes).into_iter().map(|rel| {
        let mut path = to.to_vec();
        path.push(b'/');
        path.extend_from_slice(&rel);
        path
    }));
    super::cost::quick_check_blind(source, &paths)
}

/// The entries below the source directory `to` (root-relative) that a seed
/// lists, relative to it: everything but what `excludes` excludes (judged
/// on the root-relative path), symlinks not followed. Unreadable entries
/// are left out: the push that follows reports them.
pub fn listing(source: &Path, to: &[u8], excludes: &Excludes) -> Vec<Vec<u8>> {
    let dir = below(source, to);
    let mut listed = Vec::new();
    let mut walk = walkdir::WalkDir::new(&dir).min_depth(1).into_iter();
    while let Some(entry) = walk.next() {
        let Ok(entry) = entry else { continue };
        let Ok(rel) = entry.path().strip_prefix(&dir) else {
            continue;
        };
        let rel = rel.as_os_str().as_bytes();
        let mut root_relative = to.to_vec();
        root_relative.push(b'/');
        root_relative.extend_from_slice(rel);
        if excludes.is_excluded(&root_relative) {
            if entry.file_type().is_dir() {
                walk.skip_current_dir();
            }
            continue;
        }
        listed.push(rel.to_vec());
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rename(from: &str, to: &str) -> Rename {
        Rename {
            root: 0,
            from: from.into(),
            to: to.into(),
        }
    }

    fn seed(from: &str, to: &str) -> Seed {
        Seed {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn a_chain_seeds_its_last_name_from_its_first() {
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(source.path().join("jobs/c/builds")).unwrap();
        std::fs::create_dir_all(source.path().join("moved")).unwrap();
        let renames = [
            rename("jobs/a", "jobs/b"),
            rename("jobs/b", "jobs/c"),
            // Below an earlier rename's new name: lies below its old one.
            rename("jobs/c/builds", "moved/builds"),
        ];
        std::fs::rename(
            source.path().join("jobs/c/builds"),
            source.path().join("moved/builds"),
        )
        .unwrap();
        assert_eq!(
            seeds(source.path(), &renames),
            [
                seed("jobs/a", "jobs/c"),
                seed("jobs/a/builds", "moved/builds")
            ]
        );
    }

    #[test]
    fn files_and_vanished_directories_are_not_seeded() {
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("config.xml"), "x").unwrap();
        std::os::unix::fs::symlink("/", source.path().join("link")).unwrap();
        let renames = [
            rename("config.xml.tmp", "config.xml"),
            rename("a", "gone"),
            rename("b", "link"),
        ];
        assert_eq!(seeds(source.path(), &renames), []);
    }

    #[test]
    fn prefixes_stop_at_component_boundaries() {
        assert_eq!(strip_component_prefix(b"jobs/ab", b"jobs/a"), None);
        assert_eq!(
            strip_component_prefix(b"jobs/a/x", b"jobs/a"),
            Some(&b"/x"[..])
        );
        assert_eq!(strip_component_prefix(b"jobs/a", b"jobs/a"), Some(&b""[..]));
    }

    #[test]
    fn a_local_rename_needs_the_old_path_and_a_free_new_one() {
        let target = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(target.path().join("jobs/foo/builds")).unwrap();
        std::fs::create_dir(target.path().join("jobs/taken")).unwrap();
        assert!(rename_below(target.path(), b"jobs/foo", b"jobs/taken").is_err());
        assert!(rename_below(target.path(), b"jobs/none", b"jobs/bar").is_err());
        assert!(rename_below(target.path(), b"jobs/foo", b"nowhere/bar").is_err());
        rename_below(target.path(), b"jobs/foo", b"jobs/bar").unwrap();
        assert!(target.path().join("jobs/bar/builds").is_dir());
        assert!(!target.path().join("jobs/foo").exists());
    }

    #[test]
    fn a_listing_leaves_out_excluded_subtrees() {
        let source = tempfile::tempdir().unwrap();
        for dir in ["jobs/bar/builds/1", "jobs/bar/workspace/src"] {
            std::fs::create_dir_all(source.path().join(dir)).unwrap();
        }
        std::fs::write(source.path().join("jobs/bar/builds/1/log"), "x").unwrap();
        std::fs::write(source.path().join("jobs/bar/workspace/src/a"), "x").unwrap();
        let excludes = Excludes::new(&["/jobs/*/workspace".to_string()]).unwrap();
        let mut listed = listing(source.path(), b"jobs/bar", &excludes);
        listed.sort();
        let listed: Vec<&str> = listed
            .iter()
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect();
        assert_eq!(listed, ["builds", "builds/1", "builds/1/log"]);
    }
}
