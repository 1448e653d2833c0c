//! The cost model: when is one full `rsync -a --delete` of the root cheaper
//! than pushing the pending paths as file lists?
//!
//! A file list costs per listed path; a full scan costs per entry of the
//! tree, and sends the changed data too. What a listed path costs depends
//! on whether the lists overlap the writer. While changes stream in, they
//! do: about 63 µs a path on the 100k-file bench tree. A backlog (the
//! writes are over) has nothing to overlap: after a restart with K =
//! 100,000 written while the agent was stopped, the lists took 17.1 s for
//! 52,833 paths with eBPF (0.32 ms a path) and 14.2 s for 38,585 with
//! fanotify (0.37 ms), where one full rsync of the tree's 157k entries took
//! 6.1–6.3 s (local target). The lists break even at 15–18 % of the
//! entries, hence the default `full_push_percent = 20`; with it the same
//! backlogs converged in 7.05 s and 6.74 s (10.2 s over the rsync daemon,
//! against 25.6 s and 20.2 s as lists).
//!
//! Only a backlog qualifies: what capture journaled at start (the changes
//! made while the agent was stopped, judged once before the first batch),
//! or a quiet one (nothing journaled for 5 s: a target that was
//! unreachable). While changes stream
//! in, the file lists keep up with them, and a full rsync started meanwhile
//! is followed by the lists of everything journaled after its start: on the
//! bench tree, K = 100,000 then took 13.4 s instead of 9.4 s (eBPF) and
//! 9.6 s instead of 6.3 s (fanotify) with a 1 s window, which the capture's
//! chunked appends under load still left open (12.6 s and 10.2 s).
//!
//! The tree's size is read as the source filesystem's used inodes
//! (`statvfs`, O(1)): never fewer than the tree's entries, so the full push
//! is chosen too rarely (a small root on a big filesystem), never too often.
//! The full push uses rsync's quick check (size and mtime) at nanosecond
//! resolution (`--modify-window=-1`): a same-size rewrite is sent unless
//! its mtime equals the pushed copy's to the nanosecond. Two cases keep it
//! equal, and both are handled: an mtime set explicitly (`touch -r`,
//! `cp -p`, `tar -x`: the file's ctime then differs from its mtime, so it
//! is pushed again from a list with `--ignore-times`, see
//! [`quick_check_blind`]), and a rewrite within one timestamp tick of the
//! write the previous push read (about 4 ms on ext4 before multigrain
//! timestamps), which the full push does not see.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The journal must have been quiet this long before a full push is
/// considered (ms): see `Pusher::backlog_is_quiet`.
pub const QUIET_MS: u64 = 5_000;

/// How long a starting pusher waits for capture to journal the start-up
/// backlog before it stops waiting to judge it whole (ms): see
/// `Pusher::startup_backlog_journaled`.
pub const STARTUP_WAIT_MS: u64 = 30_000;

/// Why a backlog can be judged whole, not as changes still streaming in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    /// Nothing journaled for [`QUIET_MS`] (a target that was unreachable).
    Quiet,
    /// What capture journaled at start (the gap scan, the pinned ring
    /// buffer): judged once, before the first batch.
    AtStart,
}

impl std::fmt::Display for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backlog::Quiet => write!(f, "and nothing journaled for {} s", QUIET_MS / 1000),
            Backlog::AtStart => f.write_str("journaled at start (the agent's downtime)"),
        }
    }
}

/// True when `pending` paths are at least `percent` % of `used_inodes`
/// (the source filesystem's entries). `percent` 0, or a filesystem that
/// counts no inodes (`used_inodes` 0), never chooses the full push.
pub fn full_push_pays(percent: u8, pending: u64, used_inodes: u64) -> bool {
    percent > 0 && used_inodes > 0 && pending * 100 >= u64::from(percent) * used_inodes
}

/// The pending `paths` (root-relative, below `source`) that rsync's quick
/// check cannot judge: regular files whose mtime is not their ctime, i.e.
/// set explicitly after the last write (a write sets both to the same
/// instant; a later chmod or rename also moves the ctime, and costs only a
/// delta check). They follow the full push in one `--ignore-times` list.
pub fn quick_check_blind(source: &Path, paths: &[Vec<u8>]) -> Vec<Vec<u8>> {
    paths
        .iter()
        .filter(|path| {
            std::fs::symlink_metadata(source.join(OsStr::from_bytes(path))).is_ok_and(|m| {
                m.is_file() && (m.mtime(), m.mtime_nsec()) != (m.ctime(), m.ctime_nsec())
            })
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_whose_mtime_was_set_back_is_listed_and_a_written_one_is_not() {
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("written"), "x").unwrap();
        std::fs::write(source.path().join("restored"), "x").unwrap();
        let old = std::fs::FileTimes::new()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
        std::fs::File::options()
            .write(true)
            .open(source.path().join("restored"))
            .unwrap()
            .set_times(old)
            .unwrap();
        let paths = [b"written".to_vec(), b"restored".to_vec(), b"gone".to_vec()];
        assert_eq!(
            quick_check_blind(source.path(), &paths),
            [b"restored".to_vec()]
        );
    }

    #[test]
    fn a_fifth_of_the_tree_pays_for_a_full_push_by_default() {
        // The bench's backlogs after a restart (module documentation).
        assert!(full_push_pays(20, 38_585, 156_923), "K = 100,000");
        assert!(!full_push_pays(20, 5_281, 156_923), "K = 10,000");
        assert!(!full_push_pays(0, 157_000, 157_000), "0 = never");
        assert!(!full_push_pays(20, 10, 0), "btrfs counts no inodes");
    }
}
