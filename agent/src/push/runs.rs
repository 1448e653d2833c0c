//! What every pusher shares about its rsync runs: a bound on how many run at
//! once across all targets (`[push] max_parallel`: each run is a process
//! that reads the source disk and holds a connection), and their metrics —
//! durations by target and mode, results by target and exit code — which
//! the metrics endpoint serves (`metrics.rs`).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tracing::Span;

use super::rsync::{self, Mode, RsyncError};
use crate::journal::{now_ms, Journal, PushInFlight};

/// Labels of a run's duration: `{target="…",mode="…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DurationLabels {
    target: String,
    mode: Mode,
}

/// Labels of a run's result: `{target="…",code="…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    target: String,
    code: RunResult,
}

/// How an rsync run ended, as the `code` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RunResult {
    /// rsync exited with this code (`0`, `23`, …; 0 includes 24).
    Exit(i32),
    /// Stopped at shutdown: `interrupted`.
    Interrupted,
    /// rsync could not be started: `not_started`.
    NotStarted,
}

impl RunResult {
    fn of<T>(result: &Result<T, RsyncError>) -> RunResult {
        match result {
            Ok(_) => RunResult::Exit(0),
            Err(RsyncError::Exit { code, .. }) => RunResult::Exit(*code),
            Err(RsyncError::Interrupted) => RunResult::Interrupted,
            Err(RsyncError::Spawn(_)) => RunResult::NotStarted,
        }
    }
}

impl std::fmt::Display for RunResult {
    /// As the `code` label says it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunResult::Exit(code) => write!(f, "{code}"),
            RunResult::Interrupted => f.write_str("interrupted"),
            RunResult::NotStarted => f.write_str("not_started"),
        }
    }
}

impl EncodeLabelValue for RunResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write;
        write!(encoder, "{self}")
    }
}

/// A histogram family whose members share the buckets of [`durations`].
type Durations = Family<DurationLabels, Histogram, fn() -> Histogram>;

/// How often a run waiting for a slot looks at the stop flag.
const WAIT_TICK: Duration = Duration::from_millis(100);

/// Run-duration buckets: 10 ms to about 2.7 minutes, ×4 each (seconds).
fn durations() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 8))
}

/// See the module documentation. Shared by reference (`Arc`).
pub struct Runs {
    /// Slots not taken by a running rsync.
    free: Mutex<usize>,
    freed: Condvar,
    durations: Durations,
    results: Family<ResultLabels, Counter>,
}

impl Runs {
    /// At most `max_parallel` (≥ 1) rsync runs at once.
    pub fn new(max_parallel: usize) -> Runs {
        Runs {
            free: Mutex::new(max_parallel.max(1)),
            freed: Condvar::new(),
            durations: Durations::new_with_constructor(durations),
            results: Family::default(),
        }
    }

    /// Runs `cmd` for `target` once a slot is free (see
    /// [`rsync::run_showing`] for `list`, `progress` and the result), and
    /// records its duration and exit code; while it runs, `journal` shows
    /// it as the target's push in flight. Waiting for a slot ends with
    /// [`RsyncError::Interrupted`] once `stop` is set.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        journal: &Journal,
        target: &str,
        mode: Mode,
        cmd: Command,
        list: &[&[u8]],
        stop: &AtomicBool,
        progress: Option<Span>,
    ) -> Result<Vec<u8>, RsyncError> {
        let _slot = self.take_slot(stop)?;
        let _shown = InFlight::show(journal, target, mode, &cmd, list.len());
        let started = Instant::now();
        let result = rsync::run_showing(cmd, list, stop, progress);
        let elapsed = started.elapsed();
        tracing::debug!(target, %mode, paths = list.len(), ms = elapsed.as_millis() as u64, code = %RunResult::of(&result), "rsync run done");
        let target = target.to_string();
        self.durations
            .get_or_create(&DurationLabels {
                target: target.clone(),
                mode,
            })
            .observe(elapsed.as_secs_f64());
        self.results
            .get_or_create(&ResultLabels {
                target,
                code: RunResult::of(&result),
            })
            .inc();
        result
    }

    /// Adds the run metrics to `registry` (they keep counting: the families
    /// are shared, not copied).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "fsjournal_rsync_run_seconds",
            "Duration of rsync runs by target and mode (incremental, contents, subtree, full, verify)",
            self.durations.clone(),
        );
        registry.register(
            "fsjournal_rsync_runs",
            "rsync runs by target and exit code (0 includes 24: files vanished; interrupted: stopped at shutdown)",
            self.results.clone(),
        );
    }

    fn take_slot(&self, stop: &AtomicBool) -> Result<Slot<'_>, RsyncError> {
        let mut free = self.free.lock().expect("slot lock");
        while *free == 0 {
            if stop.load(Ordering::Relaxed) {
                return Err(RsyncError::Interrupted);
            }
            free = self
                .freed
                .wait_timeout(free, WAIT_TICK)
                .expect("slot lock")
                .0;
        }
        *free -= 1;
        Ok(Slot { runs: self })
    }
}

/// A run shown in the journal as its target's push in flight
/// ([`PushInFlight`]) until dropped. The journal only informs `status`
/// here: a failed write is logged, never fails the push.
struct InFlight<'a> {
    journal: &'a Journal,
    target: &'a str,
}

impl<'a> InFlight<'a> {
    fn show(
        journal: &'a Journal,
        target: &'a str,
        mode: Mode,
        cmd: &Command,
        paths: usize,
    ) -> Self {
        let run = PushInFlight {
            pid: std::process::id(),
            started_ms: now_ms(),
            mode: mode.to_string(),
            paths: paths as u64,
            command: command_line(cmd),
        };
        if let Err(e) = journal.save_push_in_flight(target, Some(&run)) {
            tracing::warn!(target, error = %format!("{e:#}"), "cannot record the push in flight");
        }
        InFlight { journal, target }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.journal.save_push_in_flight(self.target, None) {
            tracing::warn!(target = self.target, error = %format!("{e:#}"), "cannot record the end of a push");
        }
    }
}

/// `cmd` as one line for people: program and arguments separated by spaces,
/// an argument that is empty or holds a space, quote or backslash
/// single-quoted (sh style).
pub fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if !arg.is_empty() && !arg.contains([' ', '\'', '"', '\\', '\t', '\n']) {
                arg.into_owned()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A taken slot, given back when dropped.
struct Slot<'a> {
    runs: &'a Runs,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.runs.free.lock().expect("slot lock") += 1;
        self.runs.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_run_is_shown_in_flight_while_it_lasts() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 0.5; echo \"it's done\""]);
        let reader = std::thread::scope(|scope| {
            let run = scope.spawn(|| {
                Runs::new(1).run(
                    &journal,
                    "t",
                    Mode::Full,
                    cmd,
                    &[],
                    &AtomicBool::new(false),
                    None,
                )
            });
            let mut seen = None;
            while seen.is_none() && !run.is_finished() {
                seen = journal.push_in_flight("t").unwrap();
            }
            let result = run.join().unwrap();
            assert!(result.is_ok(), "{result:?}");
            seen
        });
        let seen = reader.expect("the run was recorded while it ran");
        assert_eq!(seen.pid, std::process::id());
        assert_eq!(seen.mode, "full");
        assert_eq!(seen.command, r#"sh -c 'sleep 0.5; echo "it'\''s done"'"#);
        assert!(seen.started_ms > 0 && seen.started_ms <= now_ms());
        assert_eq!(
            journal.push_in_flight("t").unwrap(),
            None,
            "cleared at the end"
        );
    }

    #[test]
    fn at_most_max_parallel_runs_hold_a_slot_and_a_waiter_leaves_at_stop() {
        let runs = Arc::new(Runs::new(2));
        let stop = AtomicBool::new(false);
        let first = runs.take_slot(&stop).unwrap();
        let _second = runs.take_slot(&stop).unwrap();
        assert_eq!(*runs.free.lock().unwrap(), 0);
        let waiter = {
            let runs = runs.clone();
            std::thread::spawn(move || runs.take_slot(&AtomicBool::new(false)).map(drop).is_ok())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a third run started beside two");
        drop(first);
        assert!(waiter.join().unwrap(), "the freed slot went to the waiter");
        stop.store(true, Ordering::Relaxed);
        let _third = runs.take_slot(&AtomicBool::new(false)).unwrap();
        assert!(matches!(
            runs.take_slot(&stop),
            Err(RsyncError::Interrupted)
        ));
    }

    #[test]
    fn every_run_is_counted_by_exit_code_and_timed_by_mode() {
        let runs = Runs::new(1);
        let stop = AtomicBool::new(false);
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let mut fails = Command::new("rsync");
        fails.arg("--no-such-option");
        assert!(runs
            .run(&journal, "t", Mode::Full, fails, &[], &stop, None)
            .is_err());
        let mut succeeds = Command::new("rsync");
        succeeds.arg("--version");
        assert!(runs
            .run(&journal, "t", Mode::Entries, succeeds, &[], &stop, None)
            .is_ok());
        let mut registry = Registry::default();
        runs.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"fsjournal_rsync_runs_total{target="t",code="1"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fsjournal_rsync_runs_total{target="t",code="0"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fsjournal_rsync_run_seconds_count{target="t",mode="full"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fsjournal_rsync_run_seconds_count{target="t",mode="incremental"} 1"#),
            "{text}"
        );
    }
}
