//! Rolling verification: every `verify_interval_s`, one of `verify_slices`
//! slices of the tree is compared with the target by
//! `rsync --dry-run --itemize-changes`, and every difference that no
//! journaled change explains (drift: a change capture missed, a file altered
//! on the target) is held for the next push and counted. The whole tree is
//! checked every `interval × slices`, without the periodic full resync older
//! tools run (lsyncd, sersync's `fullrsync` crontab).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::hold;
use super::rsync::{self, Mode};
use super::Pusher;
use crate::journal::{now_ms, HeldPath, HoldReason, Scope, TargetState};

/// A source entry whose ctime is this recent when the comparison started
/// may be a change capture has not journaled yet: not drift (ms).
const RECENT_MS: u64 = 2_000;

/// Slicing descends at most this deep into the tree to find enough units.
const MAX_DEPTH: usize = 3;

impl Pusher {
    /// Whether a rolling verification is due.
    pub(super) fn verify_due(&self, state: &TargetState) -> bool {
        self.sync.verify_interval_s > 0
            && now_ms() >= state.last_verify_ms + self.sync.verify_interval_s * 1_000
    }

    /// Compares the next slice with the target and holds its drift. A failed
    /// comparison (target down) is logged and skipped: pushes report outages.
    pub(super) fn verify_slice(&self, state: &mut TargetState) -> anyhow::Result<()> {
        let started_ms = now_ms();
        let slices = self.sync.verify_slices.get();
        let slice = state.verify_slice % slices;
        let units: Vec<Vec<u8>> = slice_units(&self.source, slices as usize)
            .into_iter()
            .enumerate()
            .filter(|(i, unit)| {
                *i % slices as usize == slice as usize && !self.sync.excludes.is_excluded(unit)
            })
            .map(|(_, unit)| unit)
            .collect();
        let mut drift = 0;
        if !units.is_empty() {
            let list: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
            match self.rsync(Mode::Verify, &list) {
                Ok(itemized) => {
                    for path in itemized_paths(&itemized) {
                        if self.is_drift(state, &path, started_ms)? {
                            tracing::warn!(target = self.name(), path = %String::from_utf8_lossy(&path), "verification: target differs and no journaled change explains it; pushing it");
                            hold::hold(
                                state,
                                HeldPath {
                                    path,
                                    scope: Scope::Entry,
                                    since_ms: started_ms,
                                    not_before_ms: 0,
                                    reason: HoldReason::Drift,
                                },
                            );
                            drift += 1;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(target = self.name(), error = %e, slice, "verification skipped")
                }
            }
        }
        state.verify_slice = (slice + 1) % slices;
        state.verified_units += units.len() as u64;
        state.drift_found += drift;
        state.last_verify_ms = now_ms();
        self.journal.save_target(self.name(), state)?;
        tracing::info!(
            target = self.name(),
            slice,
            slices,
            units = units.len(),
            drift,
            ms = state.last_verify_ms - started_ms,
            "verified a slice"
        );
        Ok(())
    }

    /// A difference is drift unless a journaled or held change explains it,
    /// or the source changed so recently that capture may not have said so yet.
    fn is_drift(&self, state: &TargetState, path: &[u8], started_ms: u64) -> anyhow::Result<bool> {
        if path.is_empty()
            || state.held.iter().any(|h| h.path == path)
            || self.journal.is_pending(self.root, path, state.cursor)?
        {
            return Ok(false);
        }
        // A path gone from the source is judged by its directory.
        let mut probe = self.source.join(OsStr::from_bytes(path));
        let meta = loop {
            match std::fs::symlink_metadata(&probe) {
                Ok(meta) => break meta,
                Err(_) if probe.pop() && probe.starts_with(&self.source) => continue,
                Err(_) => return Ok(false),
            }
        };
        let ctime_ms = (meta.ctime() as u64) * 1_000 + meta.ctime_nsec() as u64 / 1_000_000;
        Ok(ctime_ms + RECENT_MS < started_ms)
    }
}

/// The units slices are made of, sorted: the root's entries, or, while they
/// are fewer than four per slice, the entries one level further down
/// (directories are replaced by their children; empty ones stay).
fn slice_units(source: &Path, slices: usize) -> Vec<Vec<u8>> {
    let mut units = children(source, b"");
    for _ in 1..MAX_DEPTH {
        if units.len() >= slices * 4 {
            break;
        }
        let mut deeper = Vec::new();
        for unit in units {
            let below = children(source, &unit);
            if below.is_empty() {
                deeper.push(unit);
            } else {
                deeper.extend(below);
            }
        }
        units = deeper;
    }
    units.sort();
    units
}

/// Root-relative paths of the entries of directory `rel` (none for a file).
fn children(source: &Path, rel: &[u8]) -> Vec<Vec<u8>> {
    let dir = source.join(OsStr::from_bytes(rel));
    if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| {
            let name = e.file_name();
            if rel.is_empty() {
                name.as_bytes().to_vec()
            } else {
                [rel, b"/", name.as_bytes()].concat()
            }
        })
        .collect()
}

/// Paths of rsync's `--out-format=%i %n` lines (`>f.st...... a/b`,
/// `*deleting   a/c`, `cd+++++++++ d/`), unescaped, without a trailing `/`;
/// the root itself (`./`) is left out.
pub fn itemized_paths(stdout: &[u8]) -> Vec<Vec<u8>> {
    stdout
        .split(|&b| b == b'\n')
        .filter(|line| line.len() > 12)
        .map(|line| {
            let mut name = rsync::unescape(&line[12..]);
            if name.ends_with(b"/") {
                name.pop();
            }
            name
        })
        .filter(|name| name != b"." && !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itemized_lines_give_their_paths() {
        let out = b">f.st...... jobs/a/log\n*deleting   jobs/a/old\ncd+++++++++ jobs/b/\n.d..t...... ./\n>f+++++++++ new\\#012line\n";
        let paths = itemized_paths(out);
        let expected: Vec<&[u8]> = vec![b"jobs/a/log", b"jobs/a/old", b"jobs/b", b"new\nline"];
        assert_eq!(paths, expected);
    }

    #[test]
    fn slices_descend_until_there_are_enough_units() {
        let dir = tempfile::tempdir().unwrap();
        for job in ["a", "b", "c"] {
            std::fs::create_dir_all(dir.path().join("jobs").join(job).join("builds")).unwrap();
            std::fs::write(dir.path().join("jobs").join(job).join("config.xml"), "x").unwrap();
        }
        std::fs::write(dir.path().join("config.xml"), "x").unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let units = slice_units(dir.path(), 2);
        let expected: Vec<&[u8]> = vec![
            b"config.xml",
            b"empty",
            b"jobs/a/builds",
            b"jobs/a/config.xml",
            b"jobs/b/builds",
            b"jobs/b/config.xml",
            b"jobs/c/builds",
            b"jobs/c/config.xml",
        ];
        assert_eq!(units, expected);
    }
}
