//! The journal writer: a thread beside the capture thread that appends what
//! capture hands it, so that resolving the next events (path walks,
//! `open_by_handle_at`) overlaps the RocksDB write of the previous ones.
//! On a queued backlog the two halves cost about the same per record
//! (docs/benchmarks.md, section 4); in one thread their costs added up.
//!
//! Order is kept: one bounded channel, one writer. A cycle's watermark
//! travels with its last chunk, so it is written only after every change
//! drained before it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use super::Stats;
use crate::journal::{Change, Journal};

/// Changes per chunk handed over in the middle of a drain.
const CHUNK: usize = 4096;
/// Chunks queued for the writer before capture waits (with [`CHUNK`]: at
/// most about 32k changes, a few MiB, held in memory).
const CHUNKS_QUEUED: usize = 8;

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
/// A failed journal write is retried every second (the chunk stays in
/// memory, capture waits once the queue is full, the kernel queues the
/// rest) until it succeeds or `stop` is set; then the thread ends with the
/// error.
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

fn write(
    chunks: Receiver<Chunk>,
    journal: &Journal,
    stop: &AtomicBool,
    stats: &Stats,
) -> anyhow::Result<()> {
    for chunk in chunks {
        loop {
            match journal.append(&chunk.changes, chunk.watermark_ms, chunk.clean_stop) {
                Ok(_) => {
                    stats
                        .journaled
                        .fetch_add(chunk.changes.len() as u64, Ordering::Relaxed);
                    break;
                }
                Err(e) if !stop.load(Ordering::Relaxed) => {
                    tracing::error!(error = %format!("{e:#}"), held = chunk.changes.len(), "journal write failed; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => return Err(e.context("journal write failed at shutdown")),
            }
        }
    }
    Ok(())
}
