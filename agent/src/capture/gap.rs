//! Closing the gap while nothing captured: from the journal's durable
//! capture watermark to the moment capture was armed again.
//!
//! fanotify keeps nothing across an agent stop, so every start finds what
//! changed meanwhile with one metadata walk of the roots (lstat only, no file
//! data read), comparing each entry's **ctime** with the watermark minus
//! [`MARGIN_MS`]. ctime, unlike mtime, cannot be set from user space (utimes,
//! `tar -x` and `rsync -t` set mtime only), and every change a backup cares
//! about moves it: writes, truncation, chmod/chown, xattrs, link count,
//! renames (of the renamed inode and of both parent directories).
//!
//! What an entry with a newer ctime becomes:
//! - a file, symlink, device or fifo: pushed ([`Scope::Entry`]);
//! - a directory whose parent is unchanged: its direct children are made
//!   equal with deletion ([`Scope::Contents`]): entries deleted or renamed
//!   away while down disappear from the target;
//! - a directory whose parent changed too: it may have been created, renamed
//!   or moved in while down, so its whole subtree is pushed
//!   ([`Scope::Subtree`]); the walk goes on below it only to push files with
//!   a newer ctime as entries (a subtree push compares by size and mtime,
//!   which a same-size change with its mtime set back would pass).
//!
//! Excluded subtrees are not walked.
//!
//! The gap cannot be trusted — and every target of the root gets a full
//! sync, with the reason — when the journal has no watermark (new journal),
//! the root's filesystem identity changed (reformatted, restored, another
//! disk), or the watermark lies in the future (the clock moved back).

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use fsjournal_common::ChangeKind;

use super::Root;
use crate::host::{boot_id, identity, FsIdentity};
use crate::journal::{now_ms, Change, Journal, Scope, StartRecord, Watermark};

/// Timestamp granularity and clock-skew allowance (ms): entries whose ctime
/// is at most this much older than the watermark are pushed too.
pub const MARGIN_MS: u64 = 2_000;
/// How often a scan in progress updates its start record (status shows it).
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Changes appended to the journal per write during a scan.
const APPEND_CHUNK: usize = 10_000;

/// Decides how the gap since the last watermark is closed for each root,
/// closes it (a scan, or full syncs owed by the targets), records the
/// filesystem identities and returns what was done. Call after capture is
/// armed and before the pushers start.
///
/// With `backlog_complete` (pinned eBPF programs kept capturing while no
/// agent ran and lost nothing) after a clean stop, a trusted gap needs no
/// scan: the backlog in their ring buffer is journaled by the capture loop.
/// After a crash it is not enough: what the dead agent had drained but not
/// journaled is gone from the ring buffer, so the scan runs too.
pub fn close(
    journal: &Journal,
    roots: &[Root],
    backlog_complete: bool,
) -> anyhow::Result<StartRecord> {
    let started = Instant::now();
    let now = now_ms();
    let watermark = journal.watermark()?;
    let boot = boot_id();
    let mut record = StartRecord {
        time_ms: now,
        boot_id: boot.clone(),
        ..StartRecord::default()
    };
    if let Some(w) = &watermark {
        record.gap_ms = Some(now.saturating_sub(w.time_ms));
        record.rebooted = w.boot_id != boot;
    }
    let mut methods = Vec::new();
    for root in roots {
        let current = identity(&root.path)?;
        let stored = journal.root_identity(root.id)?;
        let distrust = Distrust::of(watermark.as_ref(), stored, current, now);
        let method = match (distrust, &watermark) {
            (Some(reason), _) => {
                let targets = journal.require_full_sync(root.id, &reason.to_string())?;
                tracing::warn!(root = %root.path.display(), %reason, targets, "gap cannot be trusted: full sync");
                GapMethod::FullSync(reason)
            }
            (None, Some(w)) if backlog_complete && w.clean_stop => {
                tracing::info!(root = %root.path.display(), "gap covered by the pinned eBPF programs' backlog");
                GapMethod::PinnedBacklog
            }
            (None, Some(w)) => {
                scan_gap(journal, root, w.time_ms, &mut record, started)?;
                GapMethod::CtimeScan
            }
            (None, None) => unreachable!("no watermark is untrusted"),
        };
        methods.push(method);
        // A changed identity is not recorded: the pushers refuse to put
        // another filesystem's tree over the target (an unmounted data disk
        // shows the empty mount point) until it is back or the operator
        // confirms it (`fsjournal resync --force`; push/interlock.rs).
        if stored.is_none() {
            journal.save_root_identity(root.id, &current)?;
        }
    }
    methods.dedup();
    record.in_progress = false;
    record.method = methods
        .iter()
        .map(GapMethod::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    record.ms = started.elapsed().as_millis() as u64;
    tracing::info!(gap_ms = ?record.gap_ms, method = %record.method, entries = record.entries, ms = record.ms, "gap closed");
    journal.record_start(&record)?;
    Ok(record)
}

/// Why the gap of one root cannot be trusted: every target of the root
/// then owes a full sync, with this reason (its `Display`, which the
/// journal stores).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Distrust {
    /// The journal has no capture watermark.
    NewJournal,
    /// The journal recorded no filesystem identity for the root.
    NoIdentity,
    /// The root's filesystem is not the one recorded: reformatted,
    /// restored, or another disk.
    IdentityChanged {
        /// The identity the journal recorded.
        stored: FsIdentity,
        /// The root's filesystem now.
        current: FsIdentity,
    },
    /// The watermark lies this far in the future (ms): the clock moved back.
    ClockBackwards {
        /// How far beyond now the watermark is (ms).
        ahead_ms: u64,
    },
}

impl Distrust {
    /// The distrust of a root's gap, if any, given the journal's
    /// `watermark`, the root's `stored` and `current` filesystem identities
    /// and the time `now` (ms since the Unix epoch).
    fn of(
        watermark: Option<&Watermark>,
        stored: Option<FsIdentity>,
        current: FsIdentity,
        now: u64,
    ) -> Option<Distrust> {
        match (watermark, stored) {
            (None, _) => Some(Distrust::NewJournal),
            (Some(_), None) => Some(Distrust::NoIdentity),
            (Some(_), Some(stored)) if stored != current => {
                Some(Distrust::IdentityChanged { stored, current })
            }
            (Some(w), _) if w.time_ms > now + MARGIN_MS => Some(Distrust::ClockBackwards {
                ahead_ms: w.time_ms - now,
            }),
            (Some(_), _) => None,
        }
    }
}

impl fmt::Display for Distrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distrust::NewJournal => f.write_str("new journal: no capture watermark"),
            Distrust::NoIdentity => {
                f.write_str("no filesystem identity recorded for this root")
            }
            Distrust::IdentityChanged { stored, current } => write!(
                f,
                "filesystem identity changed ({stored:?} → {current:?}): reformatted, restored or another disk"
            ),
            Distrust::ClockBackwards { ahead_ms } => write!(
                f,
                "clock moved backwards: watermark is {ahead_ms} ms in the future"
            ),
        }
    }
}

/// How one root's gap was closed (a start record's `method`, roots'
/// methods joined by `, `).
#[derive(Debug, Clone, PartialEq, Eq)]
enum GapMethod {
    /// Not trusted: its targets owe a full sync. `full sync (<reason>)`.
    FullSync(Distrust),
    /// Covered by the pinned eBPF programs' backlog after a clean stop:
    /// `pinned eBPF backlog`.
    PinnedBacklog,
    /// A walk for entries with a newer ctime: `ctime gap scan`.
    CtimeScan,
}

impl fmt::Display for GapMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GapMethod::FullSync(reason) => write!(f, "full sync ({reason})"),
            GapMethod::PinnedBacklog => f.write_str("pinned eBPF backlog"),
            GapMethod::CtimeScan => f.write_str("ctime gap scan"),
        }
    }
}

/// Scans `root` for what changed since `watermark_ms` (less
/// [`MARGIN_MS`]), adding to `record`'s counts, which it saves as progress
/// while the scan runs (`started`: when closing the gap began).
fn scan_gap(
    journal: &Journal,
    root: &Root,
    watermark_ms: u64,
    record: &mut StartRecord,
    started: Instant,
) -> anyhow::Result<()> {
    let since = watermark_ms.saturating_sub(MARGIN_MS);
    let (before_walked, before_found) = (record.walked, record.entries);
    let found = scan(journal, root, since, &mut |walked, found| {
        record.in_progress = true;
        record.method = GapMethod::CtimeScan.to_string();
        (record.walked, record.entries) = (before_walked + walked, before_found + found);
        record.ms = started.elapsed().as_millis() as u64;
        journal.record_start(record)
    })?;
    record.entries = before_found + found;
    tracing::info!(root = %root.path.display(), entries = found, "gap scan done");
    Ok(())
}

/// Walks `root` and journals every entry whose ctime is at or after
/// `since_ms`; returns how many. Stays on the root's filesystem. About once
/// a second, `progress(walked, found)` reports how far it got.
fn scan(
    journal: &Journal,
    root: &Root,
    since_ms: u64,
    progress: &mut dyn FnMut(u64, u64) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let root_meta = std::fs::symlink_metadata(&root.path)?;
    let mut scan = GapScan {
        journal,
        root,
        since_ms,
        dev: root_meta.dev(),
        progress,
        last_report: Instant::now(),
        walked: 0,
        found: 0,
        changes: Vec::new(),
    };
    let root_new = ctime_ms(&root_meta) >= since_ms;
    if root_new {
        scan.push(Vec::new(), Scope::Contents, root_meta.ino())?;
    }
    let mut stack = vec![ScanDir {
        path: root.path.clone(),
        rel: Vec::new(),
        new: root_new,
        covered: false,
    }];
    while let Some(dir) = stack.pop() {
        scan.read_dir(dir, &mut stack)?;
    }
    journal.append(&scan.changes)?;
    Ok(scan.found)
}

/// An entry's ctime in ms since the Unix epoch (0 before it).
fn ctime_ms(meta: &std::fs::Metadata) -> u64 {
    (meta.ctime().max(0) as u64) * 1000 + (meta.ctime_nsec().max(0) as u64) / 1_000_000
}

/// A directory the gap scan has yet to read.
struct ScanDir {
    /// Where it is.
    path: PathBuf,
    /// Its root-relative path (raw bytes; empty for the root).
    rel: Vec<u8>,
    /// Its ctime is at or after the scan's `since_ms`.
    new: bool,
    /// It lies in a subtree already pushed whole ([`Scope::Subtree`]).
    covered: bool,
}

/// One gap scan of a root in progress: what it found, journaled every
/// [`APPEND_CHUNK`] changes, and how far it got.
struct GapScan<'a> {
    journal: &'a Journal,
    root: &'a Root,
    /// Entries with a ctime at or after this (ms since the Unix epoch) changed.
    since_ms: u64,
    /// The root's device: the scan stays on its filesystem.
    dev: u64,
    /// Told `(walked, found)` about once a second.
    progress: &'a mut dyn FnMut(u64, u64) -> anyhow::Result<()>,
    last_report: Instant,
    /// Entries walked so far.
    walked: u64,
    /// Changes found so far (journaled or in `changes`).
    found: u64,
    /// Changes found and not yet journaled.
    changes: Vec<Change>,
}

impl GapScan<'_> {
    /// Journals, as a rescan, a change of root-relative `path` (inode
    /// `ino`, 0 when unknown) of `scope`; appends every [`APPEND_CHUNK`].
    fn push(&mut self, path: Vec<u8>, scope: Scope, ino: u64) -> anyhow::Result<()> {
        self.changes.push(Change {
            root: self.root.id,
            path,
            kind: ChangeKind::Rescan,
            scope,
            ino,
            pid: 0,
            comm: String::new(),
            renamed_from: None,
        });
        self.found += 1;
        if self.changes.len() >= APPEND_CHUNK {
            self.journal.append(&self.changes)?;
            self.changes.clear();
        }
        Ok(())
    }

    /// Reads `dir`, journals its changed entries and adds its
    /// subdirectories on this filesystem to `stack`. A directory that
    /// cannot be read is pushed whole.
    fn read_dir(&mut self, dir: ScanDir, stack: &mut Vec<ScanDir>) -> anyhow::Result<()> {
        let entries = match std::fs::read_dir(&dir.path) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(dir = %dir.path.display(), error = %e, "gap scan cannot read a directory; pushing it whole");
                return self.push(dir.rel, Scope::Subtree, 0);
            }
        };
        for entry in entries.flatten() {
            self.walked += 1;
            if self.walked.is_multiple_of(4096) && self.last_report.elapsed() >= PROGRESS_INTERVAL {
                (self.progress)(self.walked, self.found)?;
                self.last_report = Instant::now();
            }
            let Ok(meta) = entry.metadata() else { continue }; // vanished: its parent's ctime covers it
            let name = entry.file_name();
            let rel = if dir.rel.is_empty() {
                name.as_bytes().to_vec()
            } else {
                [&dir.rel[..], b"/", name.as_bytes()].concat()
            };
            if self.root.excludes.is_excluded(&rel) {
                continue;
            }
            if let Some(sub) = self.visit(&dir, entry.path(), rel, &meta)? {
                stack.push(sub);
            }
        }
        Ok(())
    }

    /// Journals the entry `rel` (at `path`, `meta`) of `parent` if it
    /// changed (see the module documentation for which scope); returns it
    /// when it is a directory to read in turn.
    fn visit(
        &mut self,
        parent: &ScanDir,
        path: PathBuf,
        rel: Vec<u8>,
        meta: &std::fs::Metadata,
    ) -> anyhow::Result<Option<ScanDir>> {
        let new = ctime_ms(meta) >= self.since_ms;
        if !meta.is_dir() {
            // Also inside a subtree push: that one compares by size and
            // mtime, an entry push by content.
            if new {
                self.push(rel, Scope::Entry, meta.ino())?;
            }
            return Ok(None);
        }
        if meta.dev() != self.dev {
            return Ok(None); // another filesystem mounted below the root
        }
        let subtree = !parent.covered && new && parent.new;
        if subtree {
            self.push(rel.clone(), Scope::Subtree, meta.ino())?;
        } else if !parent.covered && new {
            self.push(rel.clone(), Scope::Contents, meta.ino())?;
        }
        Ok(Some(ScanDir {
            path,
            rel,
            new,
            covered: parent.covered || subtree,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watermark(time_ms: u64) -> Watermark {
        Watermark {
            time_ms,
            ..Watermark::default()
        }
    }

    #[test]
    fn an_untrusted_gap_says_why_in_the_words_the_start_record_always_used() {
        let (disk, other) = (
            FsIdentity::default(),
            FsIdentity {
                fsid: 7,
                ..FsIdentity::default()
            },
        );
        let now = 100_000;
        let cases = [
            (None, Some(disk), "full sync (new journal: no capture watermark)"),
            (Some(watermark(now)), None, "full sync (no filesystem identity recorded for this root)"),
            (
                Some(watermark(now)),
                Some(other),
                &format!("full sync (filesystem identity changed ({other:?} → {disk:?}): reformatted, restored or another disk)"),
            ),
            (
                Some(watermark(now + MARGIN_MS + 5)),
                Some(disk),
                &format!("full sync (clock moved backwards: watermark is {} ms in the future)", MARGIN_MS + 5),
            ),
        ];
        for (mark, stored, text) in cases {
            let reason = Distrust::of(mark.as_ref(), stored, disk, now).expect("untrusted");
            assert_eq!(GapMethod::FullSync(reason).to_string(), text);
        }
        assert_eq!(
            Distrust::of(Some(&watermark(now)), Some(disk), disk, now),
            None
        );
        assert_eq!(GapMethod::PinnedBacklog.to_string(), "pinned eBPF backlog");
        assert_eq!(GapMethod::CtimeScan.to_string(), "ctime gap scan");
    }
}
