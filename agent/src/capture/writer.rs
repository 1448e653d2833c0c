//! The journal writer: a thread beside the capture thread that appends what
//! capture hands it, so that resolving the next events (path walks,
//! `open_by_handle_at`) overlaps the RocksDB write of the previous ones.
//! On a queued backlog the two halves cost about the same per record
//! (docs/benchmarks.md, section 4); in one thread their costs added up.
//!
//! Order is kept: one bounded channel, one writer. A cycle's watermark
//! travels with its last chunk, so it is written only after every change
//! drained before it.
//!
//! A journal that cannot be written (disk full, an I/O error) never stops
//! capture: the writer keeps taking chunks, holds up to [`HELD_MAX`]
//! changes in memory, drops the rest while remembering that each of their
//! roots owes a rescan, and writes everything (held changes, one rescan
//! marker per such root, the newest watermark) in one batch once a write
//! succeeds again. The watermark cannot advance meanwhile, so `status`
//! turns red ("the capture watermark is … old") and a crash in between
//! leaves the gap to the start's gap scan. RocksDB itself clears its
//! "no space" error once space returns: its `SstFileManager` polls the free
//! space every 5 s and resumes once a write buffer's worth is free (64 MiB,
//! the default column family's; `file/sst_file_manager_impl.cc`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::Stats;
use crate::journal::{Change, Journal, RootId};

/// Changes per chunk handed over in the middle of a drain.
const CHUNK: usize = 4096;
/// Chunks queued for the writer before capture waits (with [`CHUNK`]: at
/// most about 32k changes, a few MiB, held in memory).
const CHUNKS_QUEUED: usize = 8;
/// Changes held in memory while the journal cannot be written (about
/// 100–200 bytes each: 10 MiB or so); past it, changes are dropped and
/// their roots owe a rescan.
const HELD_MAX: usize = 65_536;
/// How often a failed journal write is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// How often a journal that stays unwritable is logged again.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// What the writer appends in one journal write.
struct Chunk {
    changes: Vec<Change>,
    /// The cycle's watermark (ms since the Unix epoch), on its last chunk.
    watermark_ms: Option<u64>,
    /// The agent stops cleanly after this chunk.
    clean_stop: bool,
}

/// Where a backend's drain gathers its changes: [`Sink::changes`], handed
/// to the writer in chunks as they fill ([`Sink::hand_over_if_full`]) and
/// at the end of each cycle ([`Sink::end_cycle`]).
pub struct Sink {
    changes: Vec<Change>,
    to_writer: SyncSender<Chunk>,
}

impl Sink {
    /// The changes gathered so far and not yet handed over.
    pub fn changes(&mut self) -> &mut Vec<Change> {
        &mut self.changes
    }

    /// Hands the gathered changes over once [`CHUNK`] of them are gathered.
    /// Blocks while the writer is [`CHUNKS_QUEUED`] chunks behind.
    ///
    /// Errors: the writer has stopped (its own error says why).
    pub fn hand_over_if_full(&mut self) -> anyhow::Result<()> {
        if self.changes.len() < CHUNK {
            return Ok(());
        }
        self.send(None, false)
    }

    /// Hands over what is gathered, with the cycle's watermark if any
    /// (nothing is sent when both are absent).
    ///
    /// Errors: as [`Sink::hand_over_if_full`].
    pub fn end_cycle(&mut self, watermark_ms: Option<u64>, clean_stop: bool) -> anyhow::Result<()> {
        if self.changes.is_empty() && watermark_ms.is_none() {
            return Ok(());
        }
        self.send(watermark_ms, clean_stop)
    }

    fn send(&mut self, watermark_ms: Option<u64>, clean_stop: bool) -> anyhow::Result<()> {
        let chunk = Chunk {
            changes: std::mem::take(&mut self.changes),
            watermark_ms,
            clean_stop,
        };
        self.to_writer
            .send(chunk)
            .map_err(|_| anyhow::anyhow!("the journal writer has stopped"))
    }
}

/// Starts the writer thread; it ends once the [`Sink`] is dropped and
/// everything handed over is written.
///
/// A failed journal write is retried every [`RETRY`] while chunks keep
/// arriving (see the module comment: bounded memory, rescans for what does
/// not fit) until it succeeds; once `stop` is set and the sink dropped, a
/// failure ends the thread with the error (what was held is then covered by
/// the next start's gap scan: no clean-stop watermark was written).
pub fn start(
    journal: Arc<Journal>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> anyhow::Result<(Sink, JoinHandle<anyhow::Result<()>>)> {
    let (to_writer, chunks) = sync_channel(CHUNKS_QUEUED);
    let thread = std::thread::Builder::new()
        .name("journal-writer".into())
        .spawn(move || write(chunks, &journal, &stop, &stats))
        .context("cannot start the journal writer thread")?;
    let sink = Sink {
        changes: Vec::new(),
        to_writer,
    };
    Ok((sink, thread))
}

/// What waits to be written: the chunks that arrived since the last
/// successful write, merged (one chunk, while the journal is writable).
#[derive(Default)]
struct Backlog {
    changes: Vec<Change>,
    watermark_ms: Option<u64>,
    clean_stop: bool,
    /// Roots some of whose changes were dropped: each gets a rescan marker.
    rescan_owed: BTreeSet<RootId>,
    /// Changes dropped since the journal stopped being writable.
    dropped: u64,
}

impl Backlog {
    /// Adds a chunk: its changes while fewer than [`HELD_MAX`] are held,
    /// else a rescan owed for each of their roots. The newest watermark
    /// wins: every change before it is held or covered by a rescan.
    fn add(&mut self, chunk: Chunk) {
        if self.changes.len() + chunk.changes.len() <= HELD_MAX {
            self.changes.extend(chunk.changes);
        } else {
            self.dropped += chunk.changes.len() as u64;
            self.rescan_owed
                .extend(chunk.changes.iter().map(|change| change.root));
        }
        self.watermark_ms = chunk.watermark_ms.or(self.watermark_ms);
        self.clean_stop = chunk.clean_stop;
    }

    fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.watermark_ms.is_none() && self.rescan_owed.is_empty()
    }

    /// Appends everything in one batch; on success the backlog is empty.
    fn write(&mut self, journal: &Journal, stats: &Stats) -> anyhow::Result<()> {
        let rescans = self
            .rescan_owed
            .iter()
            .map(|&root| Change::rescan(root, Vec::new()));
        let mut changes = std::mem::take(&mut self.changes);
        let held = changes.len();
        changes.extend(rescans);
        let appended = match self.watermark_ms {
            Some(watermark_ms) => {
                journal.append_with_watermark(&changes, watermark_ms, self.clean_stop)
            }
            None => journal.append(&changes),
        };
        if let Err(e) = appended {
            changes.truncate(held);
            self.changes = changes;
            return Err(e);
        }
        stats
            .journaled
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        stats
            .rescans
            .fetch_add(self.rescan_owed.len() as u64, Ordering::Relaxed);
        *self = Backlog::default();
        Ok(())
    }
}

fn write(
    chunks: Receiver<Chunk>,
    journal: &Journal,
    stop: &AtomicBool,
    stats: &Stats,
) -> anyhow::Result<()> {
    let mut backlog = Backlog::default();
    // Since when writes fail, and when that was last logged.
    let mut failing: Option<(Instant, Option<Instant>)> = None;
    let mut open = true;
    loop {
        if backlog.is_empty() {
            match chunks.recv() {
                Ok(chunk) => backlog.add(chunk),
                Err(_) => return Ok(()),
            }
        } else if open {
            // Writes are failing: keep taking chunks for a while, then retry.
            let until = Instant::now() + RETRY;
            loop {
                match chunks.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(chunk) => backlog.add(chunk),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
        } else {
            std::thread::sleep(RETRY);
        }
        let Err(e) = backlog.write(journal, stats) else {
            if let Some((since, _)) = failing.take() {
                tracing::warn!(
                    after_s = since.elapsed().as_secs(),
                    "journal writable again: the changes held in memory and the rescans owed are written"
                );
            }
            continue;
        };
        if !open && stop.load(Ordering::Relaxed) {
            return Err(e.context(
                "journal write failed at shutdown; the next start's gap scan covers what was held",
            ));
        }
        stats.journal_write_errors.fetch_add(1, Ordering::Relaxed);
        let (since, reported) = failing.get_or_insert((Instant::now(), None));
        if reported.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            *reported = Some(Instant::now());
            tracing::error!(
                error = %format!("{e:#}"),
                failing_s = since.elapsed().as_secs(),
                held = backlog.changes.len(),
                dropped = backlog.dropped,
                rescan_roots = backlog.rescan_owed.len(),
                "journal_write_error: the journal cannot be written (disk full?); capture goes on, \
                 holding changes in memory up to a bound and owing a rescan past it; retrying every second"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Scope;
    use fsjournal_common::ChangeKind;

    fn chunk(root: RootId, n: usize, watermark_ms: Option<u64>) -> Chunk {
        Chunk {
            changes: (0..n)
                .map(|i| Change {
                    root,
                    path: format!("f{i}").into_bytes(),
                    kind: ChangeKind::Modify,
                    scope: Scope::Entry,
                    ino: 1,
                    pid: 0,
                    comm: String::new(),
                    renamed_from: None,
                })
                .collect(),
            watermark_ms,
            clean_stop: false,
        }
    }

    #[test]
    fn a_backlog_past_its_bound_owes_a_rescan_of_the_dropped_roots() {
        let mut backlog = Backlog::default();
        backlog.add(chunk(0, HELD_MAX - 10, Some(5)));
        backlog.add(chunk(1, 20, None));
        backlog.add(chunk(0, 10, Some(9)));
        assert_eq!(backlog.changes.len(), HELD_MAX);
        assert_eq!(backlog.dropped, 20);
        assert_eq!(backlog.rescan_owed, BTreeSet::from([1]));
        assert_eq!(backlog.watermark_ms, Some(9));

        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal")).unwrap();
        let stats = Stats::default();
        backlog.write(&journal, &stats).unwrap();
        assert!(backlog.is_empty());
        assert_eq!(stats.rescans.load(Ordering::Relaxed), 1);
        let (pending, _) = journal.pending_summary(1, 0, |_| {}).unwrap();
        assert_eq!(
            pending, 1,
            "root 1's dropped changes became one rescan marker"
        );
        assert_eq!(journal.watermark().unwrap().unwrap().time_ms, 9);
    }
}
