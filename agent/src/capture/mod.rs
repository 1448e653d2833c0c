//! Change capture: the kernel tells us which paths changed; we turn that into
//! journal [`Change`](crate::journal::Change)s. Data flows one way:
//! kernel → capture → journal.
//!
//! Backends: fanotify (filesystem-wide mark, FID reporting) today; the eBPF
//! backend joins behind the same [`Capture`] handle. Every loss a backend
//! knows of (queue overflow, an unresolvable event) becomes a *rescan marker*
//! in the journal, never a silent drop.

mod dir_index;
mod fanotify;
mod gap;
mod fanotify_sys;
mod handle;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use crate::config::{BackendChoice, CaptureConfig};
use crate::filter::RootExcludes;
use crate::journal::{Journal, RootId};

pub use gap::{boot_id, close as close_gap};

/// A tracked source tree.
#[derive(Debug, Clone)]
pub struct Root {
    /// Its id in the journal's root table.
    pub id: RootId,
    /// Absolute, canonical path.
    pub path: PathBuf,
    /// Paths every sync of this root excludes: never journaled.
    pub excludes: RootExcludes,
}

/// Capture counters since start (events, changes).
#[derive(Debug, Default)]
pub struct Stats {
    /// Kernel events read.
    pub events: AtomicU64,
    /// Changes written to the journal.
    pub journaled: AtomicU64,
    /// Rescan markers written (overflows, unresolvable events).
    pub rescans: AtomicU64,
}

/// A running capture backend.
pub struct Capture {
    /// Backend name, for status and logs.
    pub backend: &'static str,
    /// Counters, shared with the agent's status reporting.
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    watermark_allowed: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<()>>,
}

impl Capture {
    /// Arms the chosen backend on `roots` and starts journaling. When this
    /// returns, every later change under the roots will reach the journal,
    /// so a full sync may start.
    ///
    /// Errors: the backend cannot watch a root's filesystem (not root, an
    /// unsupported filesystem, a kernel without the needed fanotify flags).
    pub fn start(config: &CaptureConfig, roots: &[Root], journal: Arc<Journal>) -> anyhow::Result<Capture> {
        let backend = match config.backend {
            BackendChoice::Auto | BackendChoice::Fanotify => "fanotify",
        };
        let armed = fanotify::FanotifyCapture::arm(roots, config.max_queued_events)?;
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let watermark_allowed = Arc::new(AtomicBool::new(false));
        let interval = Duration::from_millis(config.read_interval_ms);
        let (thread_stats, thread_stop, thread_watermark) = (stats.clone(), stop.clone(), watermark_allowed.clone());
        let thread = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || armed.run(&journal, &thread_stop, &thread_watermark, interval, &thread_stats))
            .context("cannot start the capture thread")?;
        Ok(Capture { backend, stats, stop, watermark_allowed, thread })
    }

    /// Lets capture advance the journal's watermark: call once the gap since
    /// the previous watermark is closed (see [`close_gap`]).
    pub fn allow_watermark(&self) {
        self.watermark_allowed.store(true, Ordering::Relaxed);
    }

    /// True while the capture thread runs.
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Stops capture after journaling what is already queued.
    pub fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| anyhow::anyhow!("capture thread panicked"))?
    }
}
