//! `fsjournal run`: wires capture → journal → push together and supervises
//! them until SIGTERM/SIGINT.
//!
//! Start-up order is the crash-safety argument in miniature: open the
//! journal, arm capture (marks placed, index built), and only then start the
//! pushers, whose full syncs (where needed) begin after capture is live.
//! The metrics endpoint, when configured, is bound right after the journal
//! opens (a taken port fails the start) and serves once the pushers run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::capture::{Capture, Root};
use crate::config::{Config, SyncConfig};
use crate::filter::RootExcludes;
use crate::journal::{now_ms, AgentInfo, Journal, Retention, RootId};
use crate::metrics::Endpoint;
use crate::push::runs::Runs;
use crate::push::{Inbox, Pusher};
use crate::requests;

/// How often the supervisor applies log retention and refreshes the agent
/// info that `status` reads.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// How [`run`] ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or SIGINT: stopped cleanly.
    Stopped,
    /// SIGHUP with a valid configuration file: stopped cleanly so that the
    /// process can start again with it ([`reexec`]).
    Reload,
}

/// Runs the agent until a termination signal, or a SIGHUP after which
/// `config_file` (when given) still loads. Errors: the journal cannot be
/// opened, capture cannot be armed, or capture/push stopped on an error
/// (the process then exits non-zero so a service manager restarts it).
pub fn run(config: Config, config_file: Option<&Path>) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let journal = Arc::new(Journal::open(&config.journal.path)?);
    let endpoint = config.metrics.address.map(Endpoint::bind).transpose()?;
    let (roots, syncs) = register_roots(&config, &journal)?;
    let (capture, mut info) = arm_capture(&config, &roots, &journal, started)?;
    let signals = Signals::install()?;
    let runs = Arc::new(Runs::new(config.push.max_parallel.get()));
    let mut inboxes: HashMap<String, Inbox> = HashMap::new();
    let mut pushers = Vec::new();
    for (sync, root) in syncs {
        let inbox = inboxes.entry(sync.name.clone()).or_default().clone();
        let stop = signals.stop.clone();
        pushers.push(Pusher::spawn(
            sync,
            root,
            journal.clone(),
            stop,
            inbox,
            runs.clone(),
        )?);
    }
    let metrics = endpoint
        .map(|e| {
            e.serve(
                journal.clone(),
                capture.stats.clone(),
                runs,
                signals.stop.clone(),
            )
        })
        .transpose()?;
    let retention = Retention {
        records: config.journal.retention_records,
        max_age_ms: config.journal.retention_hours.saturating_mul(3_600_000),
    };
    let threads = Threads {
        capture: &capture,
        pushers: &pushers,
        inboxes: &inboxes,
    };
    let ending = supervise(
        &journal,
        threads,
        &mut info,
        &signals,
        retention,
        config_file,
    );
    tracing::info!("stopping");
    signals.stop.store(true, Ordering::Relaxed);
    journal.wake_waiters();
    shut_down(pushers, capture, metrics, ending)
}

/// A sync, with its source canonicalized, and its source's journal root id.
type RootedSync = (SyncConfig, RootId);

/// Registers each sync's source as a journal root (syncs of one source
/// share it, their excludes merged) and drops the cursors of targets no
/// longer configured. Returns the roots, and each sync with its source
/// canonicalized and its root's id.
///
/// Errors: a source cannot be resolved, or the journal cannot record it.
fn register_roots(
    config: &Config,
    journal: &Journal,
) -> anyhow::Result<(Vec<Root>, Vec<RootedSync>)> {
    let mut roots: Vec<Root> = Vec::new();
    let mut syncs = Vec::new();
    for sync in &config.sync {
        let path: PathBuf = sync
            .source
            .canonicalize()
            .with_context(|| format!("source {} of sync {}", sync.source.display(), sync.name))?;
        let id = journal.register_root(&path)?;
        let position = roots.iter().position(|r| r.id == id).unwrap_or_else(|| {
            roots.push(Root {
                id,
                path: path.clone(),
                excludes: RootExcludes::default(),
            });
            roots.len() - 1
        });
        roots[position].excludes.add(sync.excludes.clone());
        let mut sync = sync.clone();
        sync.source = path;
        syncs.push((sync, id));
    }
    let names: Vec<&str> = config.sync.iter().map(|s| s.name.as_str()).collect();
    for forgotten in journal.forget_targets_except(&names)? {
        tracing::warn!(target = %forgotten, "target no longer configured: its cursor was dropped");
    }
    Ok((roots, syncs))
}

/// Arms capture on `roots`, closes the gap since the last watermark (the
/// pinned backlog, a scan or a full sync owed), lets the watermark move,
/// and records this agent in the journal for `status` (the record returned,
/// which the supervisor refreshes).
///
/// Errors: capture cannot be armed, the gap cannot be closed, or the
/// journal cannot be written.
fn arm_capture(
    config: &Config,
    roots: &[Root],
    journal: &Arc<Journal>,
    started: Instant,
) -> anyhow::Result<(Capture, AgentInfo)> {
    let capture = Capture::start(&config.capture, roots, journal.clone())?;
    tracing::info!(
        backend = capture.backend.as_str(),
        ladder = %capture.detail,
        capture_attached_ms = capture.times.attached_ms,
        index_ready_ms = capture.times.index_ready_ms,
        roots = roots.len(),
        ms = started.elapsed().as_millis() as u64,
        journal = %journal.path().display(),
        last_seq = journal.last_seq(),
        "capture armed"
    );
    crate::capture::close_gap(journal, roots, capture.backlog_complete)?;
    capture.allow_watermark();
    let mut info = AgentInfo {
        pid: std::process::id(),
        started_ms: now_ms(),
        backend: capture.backend.to_string(),
        capture_detail: capture.detail.clone(),
        arm_times: capture.times,
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..AgentInfo::default()
    };
    refresh_counters(&mut info, &capture);
    journal.save_agent_info(&info)?;
    Ok((capture, info))
}

/// Copies `capture`'s counters as they are now into `info`.
fn refresh_counters(info: &mut AgentInfo, capture: &Capture) {
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    info.events = load(&capture.stats.events);
    info.journaled = load(&capture.stats.journaled);
    info.rescans = load(&capture.stats.rescans);
    info.kernel_events = capture.stats.kernel_counters();
}

/// The threads the supervisor watches, and where operator requests go.
#[derive(Clone, Copy)]
struct Threads<'a> {
    capture: &'a Capture,
    pushers: &'a [JoinHandle<anyhow::Result<()>>],
    /// Each target's queue of operator requests, by sync name.
    inboxes: &'a HashMap<String, Inbox>,
}

/// The signals the agent acts on: SIGTERM and SIGINT set `stop`, SIGHUP
/// sets `hangup` (a reload).
struct Signals {
    stop: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
}

impl Signals {
    /// Errors: a handler cannot be installed.
    fn install() -> anyhow::Result<Signals> {
        let signals = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            hangup: Arc::new(AtomicBool::new(false)),
        };
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, signals.stop.clone())
                .context("cannot install signal handlers")?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, signals.hangup.clone())
            .context("cannot install signal handlers")?;
        Ok(signals)
    }
}

/// Why the supervisor stopped.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP with a configuration file that still loads.
    Reload,
    /// A capture or push thread stopped on its own.
    Unexpected,
}

/// Every [`HOUSEKEEPING`] interval until a signal or a thread's end: hands
/// operator requests to their targets' pushers, applies journal retention,
/// and refreshes the agent info `status` reads.
fn supervise(
    journal: &Journal,
    threads: Threads,
    info: &mut AgentInfo,
    signals: &Signals,
    retention: Retention,
    config_file: Option<&Path>,
) -> Ending {
    while !signals.stop.load(Ordering::Relaxed) {
        std::thread::sleep(HOUSEKEEPING);
        if signals.hangup.swap(false, Ordering::Relaxed) && reload_is_valid(config_file) {
            return Ending::Reload;
        }
        for (target, ticket) in requests::take(journal.path()) {
            match threads.inboxes.get(&target) {
                Some(inbox) => inbox.lock().expect("inbox lock").push(ticket),
                None => {
                    tracing::error!(%target, "request for a target that is not configured; dropped");
                    ticket.answer(false, format!("no target named {target} is configured"));
                }
            }
        }
        if let Err(e) = journal.apply_retention(retention) {
            tracing::error!(error = %format!("{e:#}"), "journal retention failed");
        }
        refresh_counters(info, threads.capture);
        if let Err(e) = journal.save_agent_info(info) {
            tracing::error!(error = %format!("{e:#}"), "cannot update the agent's status in the journal");
        }
        let stopping = signals.stop.load(Ordering::Relaxed);
        let ended =
            !threads.capture.is_running() || threads.pushers.iter().any(|p| p.is_finished());
        if !stopping && ended {
            return Ending::Unexpected;
        }
    }
    Ending::Stop
}

/// Joins every thread and stops capture (a clean stop writes the last
/// watermark); the first failure is the agent's error.
fn shut_down(
    pushers: Vec<JoinHandle<anyhow::Result<()>>>,
    capture: Capture,
    metrics: Option<JoinHandle<()>>,
    ending: Ending,
) -> anyhow::Result<Exit> {
    let mut failure = None;
    for pusher in pushers {
        if let Err(e) = pusher
            .join()
            .map_err(|_| anyhow::anyhow!("pusher panicked"))
            .and_then(|r| r)
        {
            failure.get_or_insert(e);
        }
    }
    if let Err(e) = capture.stop() {
        failure.get_or_insert(e);
    }
    if metrics.is_some_and(|thread| thread.join().is_err()) {
        failure.get_or_insert(anyhow::anyhow!("metrics endpoint panicked"));
    }
    if ending == Ending::Unexpected && failure.is_none() {
        failure = Some(anyhow::anyhow!(
            "a capture or push thread stopped unexpectedly"
        ));
    }
    match failure {
        Some(e) => Err(e),
        None if ending == Ending::Reload => {
            tracing::info!("stopped cleanly; starting again with the new configuration");
            Ok(Exit::Reload)
        }
        None => {
            tracing::info!("stopped cleanly");
            Ok(Exit::Stopped)
        }
    }
}

/// Whether a SIGHUP may restart the agent: its configuration file still
/// loads. A refused file is logged with every problem and the agent keeps
/// running on the configuration it has.
fn reload_is_valid(config_file: Option<&Path>) -> bool {
    let Some(file) = config_file else {
        tracing::warn!("SIGHUP ignored: the agent was started without --config");
        return false;
    };
    match Config::load(file) {
        Ok(_) => {
            tracing::info!(file = %file.display(), "SIGHUP: configuration valid; restarting with it (pending changes stay in the journal)");
            true
        }
        Err(e) => {
            tracing::error!(file = %file.display(), error = %format!("{e:#}"), "SIGHUP: configuration refused; keeping the running one");
            false
        }
    }
}

/// Replaces this process with a fresh `fsjournal` started with the same
/// arguments (same pid, so a service manager sees no restart). Returns only
/// on failure. Call after [`run`] returned [`Exit::Reload`]: the journal is
/// closed, pushers and capture are stopped, pinned eBPF programs keep
/// capturing meanwhile, and the new process closes the gap like any start.
pub fn reexec() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new("/proc/self/exe")
        .args(std::env::args_os().skip(1))
        .exec();
    anyhow::Error::new(error).context("cannot start fsjournal again after SIGHUP")
}
