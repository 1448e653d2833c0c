//! Change capture: the kernel tells us which paths changed; we turn that into
//! journal [`Change`](crate::journal::Change)s. Data flows one way:
//! kernel → capture → journal.
//!
//! Backends, behind one [`Backend`] trait driven by one loop: eBPF
//! (tracepoints, `ebpf.rs`) and fanotify (filesystem-wide mark, FID
//! reporting, `fanotify.rs`); `auto` tries them in that order. Every loss a backend
//! knows of (queue overflow, an unresolvable event) becomes a *rescan marker*
//! in the journal, never a silent drop.

pub mod dir_index;
mod ebpf;
mod fanotify;
pub mod fanotify_sys;
mod gap;
pub mod handle;
mod hard_links;
mod vfs_hooks;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use crate::config::{BackendChoice, CaptureConfig};
use crate::filter::RootExcludes;
use crate::journal::{now_ms, ArmTimes, Journal, KernelCounters, RootId};
use writer::Sink;

pub use ebpf::{pin_dir, unpin};
pub use gap::close as close_gap;

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
    /// Rescan markers written (overflows, unresolvable events, changes
    /// dropped while the journal could not be written).
    pub rescans: AtomicU64,
    /// Failed journal writes (disk full, I/O errors), each retried; see
    /// `writer.rs`.
    pub journal_write_errors: AtomicU64,
    /// eBPF programs' counters (summed over CPUs, since their pinned maps
    /// were created), by `fsjournal_common::counter` index: seen, sent,
    /// filtered, dropped, spilled, coalesced.
    pub kernel: [AtomicU64; fsjournal_common::counter::COUNT as usize],
}

impl Stats {
    /// The eBPF programs' counters as last published, by name.
    pub fn kernel_counters(&self) -> KernelCounters {
        KernelCounters::from_indexed(std::array::from_fn(|i| {
            self.kernel[i].load(std::sync::atomic::Ordering::Relaxed)
        }))
    }
}

/// `ArmTimes` from two instants measured since arming began.
fn arm_times(attached: Duration, index_ready: Duration) -> ArmTimes {
    ArmTimes {
        attached_ms: attached.as_millis() as u64,
        index_ready_ms: index_ready.as_millis() as u64,
    }
}

/// Which capture backend runs: `status` shows it (`backend`, stored as
/// [`BackendKind::as_str`] in the journal's agent record), the logs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The eBPF programs (`ebpf.rs`), on whichever rung attached.
    Ebpf,
    /// fanotify with FID reporting (`fanotify.rs`).
    Fanotify,
}

impl BackendKind {
    /// Its name in `status` and the logs: `ebpf`, `fanotify`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Ebpf => "ebpf",
            BackendKind::Fanotify => "fanotify",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A running capture backend.
pub struct Capture {
    /// Which backend it is, for status and logs.
    pub backend: BackendKind,
    /// The attach ladder's outcome: the rung in use and why better ones were refused.
    pub detail: String,
    /// When capture went live and when its directory index was ready.
    pub times: ArmTimes,
    /// The backend holds every change made since the previous agent's last
    /// watermark (pinned eBPF programs that lost nothing): no gap scan needed.
    pub backlog_complete: bool,
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
    pub fn start(
        config: &CaptureConfig,
        roots: &[Root],
        journal: Arc<Journal>,
    ) -> anyhow::Result<Capture> {
        let armed = Armed::choose(config, roots, ebpf::pin_dir(journal.journal_id()))?;
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let watermark_allowed = Arc::new(AtomicBool::new(false));
        let interval = Duration::from_millis(config.read_interval_ms);
        let (thread_stats, thread_stop, thread_watermark) =
            (stats.clone(), stop.clone(), watermark_allowed.clone());
        let (sink, writer) = writer::start(journal, stop.clone(), stats.clone())?;
        let source = armed.source;
        let thread = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let captured = run(
                    source,
                    sink,
                    &thread_stop,
                    &thread_watermark,
                    interval,
                    &thread_stats,
                );
                let written = writer
                    .join()
                    .map_err(|_| anyhow::anyhow!("journal writer thread panicked"))?;
                // The writer's error explains a capture that could not hand over.
                written.and(captured)
            })
            .context("cannot start the capture thread")?;
        Ok(Capture {
            backend: armed.backend,
            detail: armed.detail,
            times: armed.times,
            backlog_complete: armed.backlog_complete,
            stats,
            stop,
            watermark_allowed,
            thread,
        })
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
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("capture thread panicked"))?
    }
}

/// A backend armed on the roots, not yet drained: what [`Capture::start`]
/// needs of it.
struct Armed {
    backend: BackendKind,
    /// The attach ladder's outcome (see [`Capture::detail`]).
    detail: String,
    times: ArmTimes,
    backlog_complete: bool,
    source: Box<dyn Backend>,
}

impl Armed {
    /// Arms the backend `config` chooses: eBPF (programs pinned under
    /// `pin_dir`), fanotify, or with `auto` eBPF and else fanotify, the
    /// eBPF refusal then kept in the detail. Errors: the chosen backend
    /// (with `auto`, fanotify) cannot be armed.
    fn choose(config: &CaptureConfig, roots: &[Root], pin_dir: PathBuf) -> anyhow::Result<Armed> {
        let ebpf = match config.backend {
            BackendChoice::Fanotify => Err("not chosen (--backend fanotify)".to_string()),
            BackendChoice::Ebpf => Ok(ebpf::EbpfCapture::arm(roots, config, &pin_dir)?),
            BackendChoice::Auto => ebpf::EbpfCapture::arm(roots, config, &pin_dir).map_err(|e| {
                tracing::warn!(error = %format!("{e:#}"), "eBPF capture unavailable; falling back to fanotify");
                format!("{e:#}")
            }),
        };
        Ok(match ebpf {
            Ok(capture) => Armed {
                backend: BackendKind::Ebpf,
                detail: capture.ladder().to_string(),
                times: capture.times(),
                backlog_complete: capture.backlog_complete(),
                source: Box::new(capture),
            },
            Err(refused) => {
                let capture = fanotify::FanotifyCapture::arm(roots, config.max_queued_events)?;
                Armed {
                    backend: BackendKind::Fanotify,
                    detail: format!("fanotify; eBPF refused: {refused}"),
                    times: capture.times(),
                    backlog_complete: false,
                    source: Box::new(capture),
                }
            }
        })
    }
}

/// A capture backend, as the capture loop drives it.
trait Backend: Send {
    /// Waits up to `timeout` for events (may return early, or not wait at all
    /// for a backend that is drained on a schedule).
    fn wait(&mut self, timeout: Duration);

    /// Moves every event queued in the kernel into `sink` as changes,
    /// handing full chunks to the journal writer on the way. Every change
    /// made before the call is in the sink when it returns: that is what
    /// makes the call's start time a valid watermark.
    ///
    /// Errors: reading the kernel's queue failed, or the writer stopped.
    fn drain(&mut self, sink: &mut Sink, stats: &Stats) -> anyhow::Result<()>;
}

/// The watermark is written at least this often while idle (ms).
const WATERMARK_INTERVAL_MS: u64 = 1_000;

/// Drains `backend` every `read_interval` into `sink` (the journal writer,
/// `writer.rs`) until `stop` is set, then once more; returns when the last
/// cycle is handed over, dropping the sink so that the writer ends.
///
/// The watermark advances only once `watermark_allowed` is set: until the
/// gap since the previous run is closed, a crash must leave the old
/// watermark in place.
fn run(
    mut backend: Box<dyn Backend>,
    mut sink: Sink,
    stop: &AtomicBool,
    watermark_allowed: &AtomicBool,
    read_interval: Duration,
    stats: &Stats,
) -> anyhow::Result<()> {
    let mut last_watermark_ms = 0;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        backend.wait(if stopping {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        });
        let cycle_ms = now_ms();
        backend.drain(&mut sink, stats)?;
        let watermark = watermark_allowed
            .load(Ordering::Relaxed)
            .then_some(cycle_ms);
        let watermark_due = watermark.is_some()
            && (stopping || cycle_ms >= last_watermark_ms + WATERMARK_INTERVAL_MS);
        // The watermark rides on every cycle's last write, and alone when due.
        let writing = watermark_due || !sink.changes().is_empty();
        if writing {
            last_watermark_ms = cycle_ms;
        }
        sink.end_cycle(
            watermark.filter(|_| writing),
            stopping && watermark.is_some(),
        )?;
        if stopping {
            return Ok(());
        }
        std::thread::sleep(read_interval);
    }
}
