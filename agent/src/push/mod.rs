//! Push scheduling: one pusher thread per target drains the journal's pending
//! paths after the target's cursor into batched rsync runs, and moves the
//! cursor only after rsync confirmed the batch. Data flows one way:
//! journal → push → target.
//!
//! Guarantees (see docs/architecture.md, "Crash safety"):
//! - a batch is acknowledged by sequence number, so a path changed again
//!   while its batch is in flight stays pending;
//! - a batch may be pushed twice (crash after rsync, before the cursor
//!   write), never zero times;
//! - a target without a valid cursor gets one full sync first, started
//!   after capture was armed, so nothing changing during it is missed.

mod cost;
mod history;
mod hold;
mod hooks;
mod interlock;
mod operator;
mod process;
mod progress;
mod reason;
mod renames;
pub mod rsync;
pub mod runs;
mod split;
pub mod verify;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use self::cost::Backlog;
use self::reason::FullSyncReason;
use self::rsync::{Lists, Mode, RsyncError};
use self::runs::Runs;
use crate::config::SyncConfig;
use crate::journal::{
    now_ms, Batch, HeldPath, HoldReason, Journal, PushStrategy, RootId, Scope, Seq, TargetState,
};
use crate::requests::Ticket;
use crate::target::Target;

/// First retry delay after a failed push (ms); doubles per failure up to
/// the sync's `retry_max_ms`.
const RETRY_BASE_MS: u64 = 1_000;
/// Longest single sleep, so that shutdown is noticed promptly (ms).
const TICK_MS: u64 = 100;

/// One target's push loop.
pub struct Pusher {
    /// The sync, its source canonical (the root as registered).
    sync: SyncConfig,
    root: RootId,
    source: PathBuf,
    journal: Arc<Journal>,
    stop: Arc<AtomicBool>,
    /// Operator requests for this target (see `requests.rs`), filled by the supervisor.
    inbox: Inbox,
    /// The parallelism bound and metrics shared by every pusher.
    runs: Arc<Runs>,
    /// The source root as armed, held open (see `interlock.rs`).
    armed: interlock::ArmedRoot,
    /// When the pusher was made (ms since the Unix epoch): after the gap
    /// was closed, so a watermark from then on covers the start-up backlog.
    started_ms: u64,
}

/// How a push went (`status` shows it as the target's strategy, stored as
/// [`Strategy::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// The batch's paths as rsync file lists: `file lists`.
    FileLists,
    /// The cost model's one full rsync of the root (`cost.rs`): `full rsync`.
    FullRsync,
}

impl Strategy {
    /// Its name in `status`.
    fn as_str(self) -> &'static str {
        match self {
            Strategy::FileLists => "file lists",
            Strategy::FullRsync => "full rsync",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the push loop carries from one round to the next.
#[derive(Default)]
struct Rounds {
    /// The day (`history::today`) history was last pruned on.
    history_pruned_on: String,
    /// An operator asked for a push now: the batch delay is not waited for.
    flush: bool,
    /// Requests carried out whose answer waits for a push.
    awaiting: operator::Awaiting,
    /// The start-up backlog was judged by the cost model (see
    /// [`Pusher::startup_backlog_journaled`]), or a full sync owed at start
    /// covered it.
    startup_judged: bool,
}

/// A full push the cost model chose (`cost.rs`).
struct FullPushPlan {
    /// Pending paths after the cursor.
    pending: u64,
    /// Inodes in use on the source's filesystem.
    inodes: u64,
    /// The sync's `full_push_percent`.
    percent: u8,
    /// The pending paths (root-relative, raw bytes).
    paths: Vec<Vec<u8>>,
    /// Why the backlog could be judged whole.
    backlog: Backlog,
}

/// Where the supervisor leaves a target's operator requests.
pub type Inbox = Arc<Mutex<Vec<Ticket>>>;

impl Pusher {
    /// Starts the push loop of `sync` (whose source has journal root id
    /// `root`) on its own thread. Capture must already be armed.
    pub fn spawn(
        sync: SyncConfig,
        root: RootId,
        journal: Arc<Journal>,
        stop: Arc<AtomicBool>,
        inbox: Inbox,
        runs: Arc<Runs>,
    ) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
        let source = sync.source.clone();
        let armed = interlock::ArmedRoot::open(&source)?;
        let pusher = Pusher {
            sync,
            root,
            source,
            journal,
            stop,
            inbox,
            runs,
            armed,
            started_ms: now_ms(),
        };
        std::thread::Builder::new()
            .name(format!("push-{}", pusher.sync.name))
            .spawn(move || pusher.run())
            .context("cannot start a pusher thread")
    }

    fn name(&self) -> &str {
        &self.sync.name
    }

    /// One rsync run of `mode` from the root to this target, listing `list`.
    fn rsync(&self, mode: Mode, list: &[&[u8]]) -> Result<Vec<u8>, RsyncError> {
        self.run_rsync(mode, rsync::command(&self.sync, &self.source, mode), list)
    }

    /// Runs `cmd`, an rsync run of `mode` to this target, listing `list`
    /// (see [`Runs::run`]); a full sync shows its progress on a terminal.
    fn run_rsync(&self, mode: Mode, cmd: Command, list: &[&[u8]]) -> Result<Vec<u8>, RsyncError> {
        let bar = (mode == Mode::Full && crate::logs::shows_progress())
            .then(|| progress::full_sync_span(self.name()));
        let _shown = bar.as_ref().map(tracing::Span::enter);
        self.runs.run(
            &self.journal,
            self.name(),
            mode,
            cmd,
            list,
            &self.stop,
            bar.clone(),
        )
    }

    /// The push loop: one [`Pusher::round`] after another until shutdown.
    fn run(self) -> anyhow::Result<()> {
        let mut state = self.validated_state()?;
        // The first rolling verification comes one interval after start.
        if state.last_verify_ms == 0 {
            state.last_verify_ms = now_ms();
        }
        let mut rounds = Rounds::default();
        while !self.stopping() {
            self.round(&mut state, &mut rounds)?;
        }
        Ok(())
    }

    /// One turn of the push loop, the first step that applies: operator
    /// requests; a refused root, or a full sync owed; housekeeping
    /// (history pruning, a rolling verification slice); then the next
    /// batch, pushed when it is due, else a wait for more.
    fn round(&self, state: &mut TargetState, rounds: &mut Rounds) -> anyhow::Result<()> {
        rounds.flush |= self.handle_requests(state, &mut rounds.awaiting)?;
        self.answer_reached(state, &mut rounds.awaiting);
        if let Some(reason) = self.root_refusal()? {
            return self.refuse(state, &reason);
        }
        self.clear_refusal(state)?;
        if state.full_sync_needed.is_some() {
            // The full sync covers what was missed: no start-up backlog to judge.
            rounds.startup_judged = true;
            return self.full_sync(state, false);
        }
        if self.sync.history_days > 0 && history::today() != rounds.history_pruned_on {
            rsync::prune_history(&self.sync, &self.stop);
            rounds.history_pruned_on = history::today();
        }
        if self.verify_due(state) {
            self.verify_slice(state)?;
        }
        // Once, before the first batch: the backlog journaled at start is
        // judged whole (see `Pusher::startup_backlog_journaled`).
        let at_start = !std::mem::replace(&mut rounds.startup_judged, true)
            && self.startup_backlog_journaled()?;
        let seen = self.journal.last_seq();
        let batch = self.next_batch(state)?;
        let now = now_ms();
        let next_due = hold::next_due_ms(state);
        let held_due = next_due.is_some_and(|t| t <= now);
        if batch.paths.is_empty() && !held_due {
            return self.idle(state, &batch, seen, next_due, now);
        }
        let oldest_ms = batch.paths.iter().map(|p| p.time_ms).min().unwrap_or(0);
        let age_ms = now.saturating_sub(oldest_ms);
        if !held_due && !rounds.flush && !batch.truncated && age_ms < self.sync.batch_delay_ms {
            self.sleep(self.sync.batch_delay_ms - age_ms);
            return Ok(());
        }
        let backlog = if at_start {
            Backlog::AtStart
        } else {
            Backlog::Quiet
        };
        if !(batch.truncated && self.full_push(state, backlog)?) {
            self.push_batch(&batch, state)?;
        }
        self.answer_reached(state, &mut rounds.awaiting);
        rounds.flush = false;
        Ok(())
    }

    /// The pending paths after the cursor, up to `batch_max_files` and,
    /// when set, `batch_max_bytes` (sizes read from the source now).
    fn next_batch(&self, state: &TargetState) -> anyhow::Result<Batch> {
        let mut batch =
            self.journal
                .pending_batch(self.root, state.cursor, self.sync.batch_max_files.get())?;
        if self.sync.batch_max_bytes > 0 {
            batch.limit_bytes(self.sync.batch_max_bytes, |path| {
                let path = self.source.join(std::ffi::OsStr::from_bytes(path));
                std::fs::symlink_metadata(path).map_or(0, |m| m.len())
            });
        }
        Ok(batch)
    }

    /// Nothing to push (an empty `batch`, no held path due): moves the
    /// cursor to `seen` (the last sequence number when the batch was read)
    /// and waits for an append, at most until the next held path is due
    /// (`next_due`, ms; `now` is when the batch was read).
    fn idle(
        &self,
        state: &mut TargetState,
        batch: &Batch,
        seen: Seq,
        next_due: Option<u64>,
        now: u64,
    ) -> anyhow::Result<()> {
        // Nothing of ours up to `seen`: skipped or coalesced-away
        // sequence numbers are acknowledged too.
        let cursor = batch.high_seq.max(seen);
        if cursor > state.cursor {
            state.cursor = cursor;
            self.journal.save_target(self.name(), state)?;
        }
        let wait_ms = next_due.map_or(1_000, |t| t.saturating_sub(now).clamp(TICK_MS, 1_000));
        self.journal
            .wait_for_append(seen, Duration::from_millis(wait_ms));
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps up to `ms`, waking early at shutdown or when an operator
    /// request arrives.
    fn sleep(&self, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        while !self.stopping()
            && self.inbox.lock().expect("inbox lock").is_empty()
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(TICK_MS).min(until - Instant::now()));
        }
    }

    /// The stored state, or a fresh one marked for a full sync when there is
    /// no cursor or it cannot be trusted; saved before returning, so a crash
    /// during the full sync repeats it.
    fn validated_state(&self) -> anyhow::Result<TargetState> {
        let target = self.sync.target.to_string();
        let excludes = self.sync.exclude_patterns().to_vec();
        let stored = self.journal.target_state(self.name())?;
        let reason = match &stored {
            None => Some(FullSyncReason::FirstSync.to_string()),
            Some(s) if s.full_sync_needed.is_some() => s.full_sync_needed.clone(),
            Some(s) if s.target != target => Some(
                FullSyncReason::TargetChanged {
                    from: s.target.clone(),
                    to: target.clone(),
                }
                .to_string(),
            ),
            Some(s) if s.root != self.root => Some(FullSyncReason::SourceChanged.to_string()),
            Some(s) if s.excludes != excludes => Some(
                FullSyncReason::ExcludesChanged {
                    from: s.excludes.clone(),
                    to: excludes.clone(),
                }
                .to_string(),
            ),
            Some(s) if s.journal_id != self.journal.journal_id() => {
                Some(FullSyncReason::OtherJournal.to_string())
            }
            Some(s) if s.cursor > self.journal.last_seq() => Some(
                FullSyncReason::CursorAhead {
                    cursor: s.cursor,
                    last_seq: self.journal.last_seq(),
                }
                .to_string(),
            ),
            Some(_) => None,
        };
        let mut state = stored.unwrap_or_default();
        if let Some(reason) = reason {
            tracing::warn!(target = self.name(), %reason, "full sync needed");
            state.target = target;
            state.root = self.root;
            state.journal_id = self.journal.journal_id();
            state.excludes = excludes;
            // Everything journaled so far is covered by the full sync, which
            // starts after this point (capture is already armed).
            state.cursor = self.journal.last_seq();
            state.full_sync_needed = Some(reason);
            self.journal.save_target(self.name(), &state)?;
        } else {
            tracing::info!(
                target = self.name(),
                cursor = state.cursor,
                "resuming from the journal cursor, no full sync"
            );
        }
        Ok(state)
    }

    /// Why no push may run from the source root now (see `interlock.rs`):
    /// it is not the directory armed, or not on the filesystem the journal
    /// recorded for it.
    fn root_refusal(&self) -> anyhow::Result<Option<String>> {
        if let Some(reason) = self.armed.changed() {
            return Ok(Some(reason));
        }
        let current = crate::host::identity(self.armed.path())?;
        let recorded = self.journal.root_identity(self.root)?;
        Ok(interlock::identity_refusal(
            self.armed.path(),
            recorded.as_ref(),
            &current,
            self.name(),
        ))
    }

    /// Why a full sync may not run now without the operator's confirmation:
    /// the root is empty though the target was replicated from it, or the
    /// full sync would delete more than `max_delete_percent` of the target.
    fn full_sync_refusal(&self, state: &mut TargetState) -> anyhow::Result<Option<String>> {
        let replicated_before = state.full_syncs > 0 || state.pushed_paths > 0;
        if let Some(reason) =
            interlock::empty_root_refusal(&self.source, replicated_before, self.name())?
        {
            return Ok(Some(reason));
        }
        if self.sync.max_delete_percent.get() >= 100 {
            return Ok(None);
        }
        let Some(stats) = self.retry(state, |pusher| pusher.rsync(Mode::FullPreview, &[]))? else {
            return Ok(None); // stopping: the full sync does not run either
        };
        let preview = interlock::DeletionPreview::parse(&stats).with_context(|| {
            format!(
                "rsync --dry-run --stats printed no deletion count: {}",
                String::from_utf8_lossy(&stats)
            )
        })?;
        tracing::info!(
            target = self.name(),
            deleted = preview.deleted,
            entries = preview.target_entries,
            "full sync preview"
        );
        Ok(preview.refusal(self.sync.max_delete_percent.get(), self.name()))
    }

    /// Records a safety interlock's refusal as a failed push (red health,
    /// the reason as the target's error) and waits with backoff, waking
    /// early for an operator request.
    fn refuse(&self, state: &mut TargetState, reason: &str) -> anyhow::Result<()> {
        let error = format!("{}: {reason}", interlock::PREFIX);
        state.consecutive_failures += 1;
        state.last_push_ms = now_ms();
        if state.last_error.as_deref() != Some(error.as_str()) {
            tracing::error!(target = self.name(), %reason, "push refused by a safety interlock; the journal keeps every change");
        }
        state.last_error = Some(error);
        self.journal.save_target(self.name(), state)?;
        self.sleep(backoff_ms(
            state.consecutive_failures,
            self.sync.retry_max_ms,
        ));
        Ok(())
    }

    /// Forgets a root refusal once its cause is gone (the filesystem is
    /// mounted again): health turns green without waiting for a push.
    fn clear_refusal(&self, state: &mut TargetState) -> anyhow::Result<()> {
        let refused = state
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with(interlock::PREFIX));
        if refused && state.full_sync_needed.is_none() {
            tracing::info!(
                target = self.name(),
                "safety interlock cleared: the source root is back"
            );
            state.last_error = None;
            state.consecutive_failures = 0;
            self.journal.save_target(self.name(), state)?;
        }
        Ok(())
    }

    /// The owed full sync of the whole root, unless a safety interlock
    /// refuses it (it stays owed): the root's ([`Pusher::root_refusal`]) and,
    /// unless `confirmed` by the operator (`resync --force`), those of
    /// [`Pusher::full_sync_refusal`].
    fn full_sync(&self, state: &mut TargetState, confirmed: bool) -> anyhow::Result<()> {
        let refusal = match self.root_refusal()? {
            Some(reason) => Some(reason),
            None if confirmed => None,
            None => self.full_sync_refusal(state)?,
        };
        if let Some(reason) = refusal {
            return self.refuse(state, &reason);
        }
        let reason = state.full_sync_needed.clone().unwrap_or_default();
        tracing::warn!(target = self.name(), source = %self.source.display(), %reason, "full sync of the whole root");
        if let Some(command) = &self.sync.before_full_sync {
            hooks::run("before_full_sync", command, &self.sync, &[]);
        }
        let started = Instant::now();
        let done = self.retry(state, |pusher| pusher.rsync(Mode::Full, &[]).map(drop))?;
        if done.is_none() {
            return Ok(());
        }
        if let Some(reason) = self.root_refusal()? {
            return self.refuse(state, &reason); // changed while rsync ran: still owed
        }
        state.full_syncs += 1;
        // The whole root went: nothing held back is owed any more.
        state.held.clear();
        state.last_full_sync_reason = state.full_sync_needed.take();
        self.journal.save_target(self.name(), state)?;
        tracing::info!(
            target = self.name(),
            ms = started.elapsed().as_millis() as u64,
            "full sync done"
        );
        Ok(())
    }

    /// Pushes `batch` plus the held paths now due, holds back paths still
    /// settling, and acknowledges the batch. Paths rsync names in an exit 23
    /// are held for a retry with backoff; any other failure retries the
    /// whole push (see [`Pusher::retry`]).
    fn push_batch(&self, batch: &Batch, state: &mut TargetState) -> anyhow::Result<()> {
        let started = Instant::now();
        let now = now_ms();
        let mut push = self.due_paths(batch, state, now)?;
        self.add_blind_after_renames(&mut push, state.cursor, batch.high_seq, now)?;
        let push = self.without_symlinked_parents(push);
        let lists = Lists::of_source(
            &self.source,
            push.iter().map(|p| (p.path.as_slice(), p.scope)),
        );
        let prefixes = self.error_prefixes();
        let refused = self.retry(state, |pusher| pusher.run_lists(&lists, &push, &prefixes))?;
        let Some((refused, on_source)) = refused else {
            return Ok(());
        };
        if let Some(reason) = self.root_refusal()? {
            // The root changed while rsync ran: what it sent may come from
            // elsewhere, so the batch stays pending.
            return self.refuse(state, &reason);
        }
        self.hold_refused(state, &push, &refused, on_source, now);
        state.cursor = batch.high_seq;
        state.pushed_paths += (push.len() - refused.len()) as u64;
        self.journal.save_target(self.name(), state)?;
        self.after_push(&push, &refused);
        self.record_strategy(Strategy::FileLists, file_lists_why(push.len(), &lists));
        tracing::info!(
            target = self.name(),
            paths = push.len(),
            contents = lists.count(Mode::Contents),
            subtrees = lists.count(Mode::Subtree),
            refused = refused.len(),
            held = state.held.len(),
            cursor = state.cursor,
            ms = started.elapsed().as_millis() as u64,
            "pushed"
        );
        Ok(())
    }

    /// What a push of `batch` sends at `now` (ms since the Unix epoch): its
    /// paths this sync does not exclude and that have settled (those still
    /// settling are held in `state`), merged with the held paths now due
    /// (the wider scope wins; a refused path keeps its failure count).
    fn due_paths(
        &self,
        batch: &Batch,
        state: &mut TargetState,
        now: u64,
    ) -> anyhow::Result<Vec<HeldPath>> {
        let mut push: Vec<HeldPath> = Vec::new();
        // Another sync of the same root may have journaled what this one excludes.
        for p in batch
            .paths
            .iter()
            .filter(|p| !self.sync.excludes.is_excluded(&p.path))
        {
            let path = HeldPath {
                path: p.path.clone(),
                scope: p.scope,
                since_ms: p.time_ms,
                not_before_ms: 0,
                reason: HoldReason::Settling,
            };
            match self.settles_until(p.seq, p.time_ms, now)? {
                Some(not_before_ms) => hold::hold(
                    state,
                    HeldPath {
                        not_before_ms,
                        ..path
                    },
                ),
                None => push.push(path),
            }
        }
        for due in hold::take_due(state, now) {
            match push.iter_mut().find(|p| p.path == due.path) {
                Some(p) => {
                    p.scope = p.scope.max(due.scope);
                    // A refused path changed again: its backoff goes on.
                    if hold::failures(due.reason) > hold::failures(p.reason) {
                        p.reason = due.reason;
                    }
                }
                None => push.push(due),
            }
        }
        Ok(push)
    }

    /// Replays the renames journaled after `cursor` up to `high_seq` and
    /// adds to `push` the files below each replayed path that rsync's quick
    /// check cannot judge (they go in the `--ignore-times` list). Errors:
    /// the journal cannot be read.
    fn add_blind_after_renames(
        &self,
        push: &mut Vec<HeldPath>,
        cursor: Seq,
        high_seq: Seq,
        now: u64,
    ) -> anyhow::Result<()> {
        for blind in self.replay_renames(cursor, high_seq)? {
            if !push.iter().any(|p| p.path == blind) {
                push.push(HeldPath {
                    path: blind,
                    scope: Scope::Entry,
                    since_ms: now,
                    not_before_ms: 0,
                    reason: HoldReason::Settling,
                });
            }
        }
        Ok(())
    }

    /// Runs the sync's `after_push` hook, if any, on the paths of `push`
    /// that rsync did not refuse (indexes in `refused`), unless none was sent.
    fn after_push(&self, push: &[HeldPath], refused: &[usize]) {
        if let Some(command) = &self.sync.after_push {
            let pushed: Vec<&[u8]> = (0..push.len())
                .filter(|i| !refused.contains(i))
                .map(|i| push[i].path.as_slice())
                .collect();
            if !pushed.is_empty() {
                hooks::run("after_push", command, &self.sync, &pushed);
            }
        }
    }

    /// One push's rsync runs: entries, contents, subtrees in that order,
    /// each run's list cut into up to `parallel_transfers` parts run at once
    /// (`split.rs`; one part with `hard_links`, whose names must meet in
    /// one run). Returns the indexes of the `push` paths rsync refused
    /// (exit 23 naming them) and whether only the sending side complained.
    /// Errors: any other failure of any part (the whole push is retried).
    fn run_lists(
        &self,
        lists: &Lists,
        push: &[HeldPath],
        prefixes: &[&Path],
    ) -> Result<(Vec<usize>, bool), RsyncError> {
        let (mut refused, mut on_source) = (Vec::new(), true);
        for (mode, list) in lists.by_mode() {
            // rsync -H pairs the names of an inode only inside one run.
            let runs = match self.sync.hard_links {
                true => 1,
                false => self.sync.parallel_transfers.get(),
            };
            let parts = split::disjoint_parts(list, runs);
            let run_part = |part: &Vec<rsync::Listed>| {
                let paths: Vec<&[u8]> = part.iter().map(|(path, _)| path.as_slice()).collect();
                self.rsync(mode, &paths)
            };
            let results: Vec<_> = if parts.len() == 1 {
                vec![run_part(&parts[0])]
            } else {
                std::thread::scope(|scope| {
                    let running: Vec<_> = parts
                        .iter()
                        .map(|part| scope.spawn(move || run_part(part)))
                        .collect();
                    running
                        .into_iter()
                        .map(|run| run.join().expect("an rsync part's thread panicked"))
                        .collect()
                })
            };
            for (part, result) in parts.iter().zip(results) {
                let (blamed, sender) = blamed_paths(result, part, push, prefixes)?;
                on_source &= sender;
                refused.extend(blamed);
            }
        }
        Ok((refused, on_source))
    }

    /// The cost model (`cost.rs`): when the pending paths are a large share
    /// of the source's entries, one full rsync of the root replaces their
    /// file lists, and the cursor moves over everything journaled before it
    /// started. False (the batch then goes as file lists) when it does not
    /// pay or the full rsync failed.
    fn full_push(&self, state: &mut TargetState, backlog: Backlog) -> anyhow::Result<bool> {
        let Some(plan) = self.full_push_plan(state, backlog)? else {
            return Ok(false);
        };
        // Every change journaled up to here was made before rsync reads the tree.
        let covered = self.journal.last_seq();
        tracing::info!(
            target = self.name(),
            pending = plan.pending,
            inodes = plan.inodes,
            percent = plan.percent,
            "cost model: one full rsync of the root instead of file lists"
        );
        let started = Instant::now();
        // Renames first, as before file lists: the full rsync then finds
        // a renamed job's data in place instead of sending it again.
        let mut blind = plan.paths.clone();
        blind.extend(self.replay_renames(state.cursor, covered)?);
        if let Err(e) = self.full_push_rsync(&blind) {
            if self.stopping() {
                return Ok(true); // still pending: the next agent decides again
            }
            tracing::warn!(target = self.name(), error = %e, "full push failed; pushing file lists instead");
            return Ok(false);
        }
        if let Some(reason) = self.root_refusal()? {
            self.refuse(state, &reason)?; // changed while rsync ran: still pending
            return Ok(true);
        }
        self.full_push_done(state, &plan, covered)?;
        tracing::info!(
            target = self.name(),
            paths = plan.pending,
            cursor = state.cursor,
            ms = started.elapsed().as_millis() as u64,
            "full push done"
        );
        Ok(true)
    }

    /// The full push the cost model (`cost.rs`) chooses for the pending
    /// paths after the cursor, if it does: the backlog is quiet and large
    /// enough. None when it does not pay.
    fn full_push_plan(
        &self,
        state: &TargetState,
        backlog: Backlog,
    ) -> anyhow::Result<Option<FullPushPlan>> {
        if backlog == Backlog::Quiet && !self.backlog_is_quiet()? {
            return Ok(None);
        }
        let (pending, _) = self
            .journal
            .pending_summary(self.root, state.cursor, |_| {})?;
        let inodes = crate::host::used_inodes(&self.source).unwrap_or(0);
        let percent = self.sync.full_push_percent.get();
        if !cost::full_push_pays(percent, pending, inodes) {
            return Ok(None);
        }
        // A second pass, now that it pays: a large backlog's paths are not
        // copied at every truncated batch that stays with file lists.
        let mut paths: Vec<Vec<u8>> = Vec::new();
        self.journal
            .pending_summary(self.root, state.cursor, |p| paths.push(p.to_vec()))?;
        Ok(Some(FullPushPlan {
            pending,
            inodes,
            percent,
            paths,
            backlog,
        }))
    }

    /// One full rsync of the root at nanosecond resolution, then those of
    /// `paths` (the pending ones, and those below replayed renames) its
    /// quick check cannot see (`cost.rs`) as entries.
    fn full_push_rsync(&self, paths: &[Vec<u8>]) -> Result<Vec<u8>, RsyncError> {
        self.rsync(Mode::FullPush, &[]).and_then(|_| {
            let blind = cost::quick_check_blind(&self.source, paths);
            let list: Vec<&[u8]> = blind.iter().map(Vec::as_slice).collect();
            if list.is_empty() {
                return Ok(Vec::new());
            }
            self.rsync(Mode::Entries, &list)
        })
    }

    /// After a full push of `plan`: moves the cursor to `covered`, forgets
    /// the held paths (the whole root went), saves the state, runs the
    /// `after_push` hook and records the strategy.
    fn full_push_done(
        &self,
        state: &mut TargetState,
        plan: &FullPushPlan,
        covered: Seq,
    ) -> anyhow::Result<()> {
        state.cursor = state.cursor.max(covered);
        // The whole root went: nothing held back is owed any more.
        state.held.clear();
        state.pushed_paths += plan.pending;
        state.last_push_ms = now_ms();
        state.last_error = None;
        state.consecutive_failures = 0;
        self.journal.save_target(self.name(), state)?;
        if let Some(command) = &self.sync.after_push {
            let pushed: Vec<&[u8]> = plan.paths.iter().map(Vec::as_slice).collect();
            hooks::run("after_push", command, &self.sync, &pushed);
        }
        let why = format!(
            "{} pending paths, at least {} % of the source's {} used inodes, {}",
            plan.pending, plan.percent, plan.inodes, plan.backlog
        );
        self.record_strategy(Strategy::FullRsync, why);
        Ok(())
    }

    /// Records how this push went, for `status` (a failure only logs:
    /// nothing depends on it).
    fn record_strategy(&self, strategy: Strategy, why: String) {
        let record = PushStrategy {
            time_ms: now_ms(),
            strategy: strategy.to_string(),
            why,
        };
        if let Err(e) = self.journal.save_push_strategy(self.name(), &record) {
            tracing::warn!(target = self.name(), error = %format!("{e:#}"), "cannot record the push strategy");
        }
    }

    /// Waits until capture has journaled everything changed before this
    /// pusher started: a watermark written after that (the gap scan's or
    /// the pinned ring buffer's backlog), [`cost::STARTUP_WAIT_MS`] at most.
    /// True when it has, so the first batch's cost model judges that
    /// backlog whole, quiet or not ([`Backlog::AtStart`]); false at
    /// shutdown or when the wait ran out (logged). Called once, before the
    /// first batch, unless a full sync owed at start covers the downtime. A
    /// backlog written while the agent was stopped is the cost model's own
    /// case; waiting for quiet instead let the file lists start on its
    /// first part, and the full push never came (bench, K = 100,000 written
    /// while stopped: 17–26 s as lists against 9–10 s for one full rsync).
    fn startup_backlog_journaled(&self) -> anyhow::Result<bool> {
        let deadline = Instant::now() + Duration::from_millis(cost::STARTUP_WAIT_MS);
        while !self.stopping() {
            let watermark = self.journal.watermark()?;
            if watermark.is_some_and(|w| w.time_ms >= self.started_ms) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                tracing::info!(
                    target = self.name(),
                    waited_ms = cost::STARTUP_WAIT_MS,
                    "start-up backlog not journaled in time: not judged whole"
                );
                return Ok(false);
            }
            self.sleep(TICK_MS / 2);
        }
        Ok(false)
    }

    /// True when nothing was journaled for [`cost::QUIET_MS`]: a backlog
    /// (a target that was down, an agent that was stopped), not changes
    /// still streaming in. While they stream, file lists keep up with them,
    /// and a full rsync would only be followed by the lists of everything
    /// journaled after it started (measured: K = 100,000 on the bench tree
    /// took 13.4 s instead of 9.4 s with eBPF when a full push ran beside
    /// the writer).
    fn backlog_is_quiet(&self) -> anyhow::Result<bool> {
        let last = self.journal.change_time_ms(self.journal.last_seq())?;
        Ok(last.is_none_or(|t| now_ms().saturating_sub(t) >= cost::QUIET_MS))
    }

    /// Replays on the target the renames journaled after `cursor` up to
    /// `high_seq` (see `renames.rs`): a rename(2) on a local target, a
    /// seeded directory on a remote one. A replay that fails is logged and
    /// left to the push. Returns what the replays placed that rsync's quick
    /// check cannot judge from here on (`renames::blind_below`: the regular
    /// files at or below each replayed path whose mtime was set
    /// explicitly), for the `--ignore-times` list. Errors: the journal cannot be read.
    fn replay_renames(&self, cursor: Seq, high_seq: Seq) -> anyhow::Result<Vec<Vec<u8>>> {
        let renames: Vec<_> = self
            .journal
            .renames(self.root, cursor, high_seq)?
            .into_iter()
            .filter(|r| {
                !self.sync.excludes.is_excluded(&r.from) && !self.sync.excludes.is_excluded(&r.to)
            })
            .collect();
        if renames.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let replayed: Vec<Vec<u8>> = match &self.sync.target {
            Target::Local(dir) => renames::replay_local(self.name(), dir, &renames),
            Target::Daemon(_) | Target::Ssh(_) => renames::seeds(&self.source, &renames)
                .into_iter()
                .filter(|seed| self.seed(seed))
                .map(|seed| seed.to)
                .collect(),
        };
        tracing::info!(
            target = self.name(),
            renames = renames.len(),
            replayed = replayed.len(),
            ms = started.elapsed().as_millis() as u64,
            "renames replayed on the target"
        );
        Ok(replayed
            .iter()
            .flat_map(|to| renames::blind_below(&self.source, to, &self.sync.excludes))
            .collect())
    }

    /// One [`Mode::Seed`] run; false (logged) when rsync failed.
    fn seed(&self, seed: &renames::Seed) -> bool {
        let listed = renames::listing(&self.source, &seed.to, &self.sync.excludes);
        let list: Vec<&[u8]> = listed.iter().map(Vec::as_slice).collect();
        let cmd = rsync::seed_command(&self.sync, &self.source, &seed.from, &seed.to);
        let result = self.run_rsync(Mode::Seed, cmd, &list);
        if let Err(e) = &result {
            tracing::info!(
                target = self.name(),
                from = %String::from_utf8_lossy(&seed.from),
                to = %String::from_utf8_lossy(&seed.to),
                error = %e,
                "renamed directory not seeded on the target: the push sends it in full"
            );
        }
        result.is_ok()
    }

    /// `push` with every path that rsync would read through a symlink (a
    /// directory swapped for one since the change was journaled) cut back
    /// to that symlink, pushed as an entry: the target gets the symlink,
    /// never what it points to (see [`interlock::symlinked_prefix`]).
    fn without_symlinked_parents(&self, push: Vec<HeldPath>) -> Vec<HeldPath> {
        let mut kept: Vec<HeldPath> = Vec::with_capacity(push.len());
        for mut p in push {
            let listed_as_dir = p.scope == Scope::Contents;
            if let Some(link) = interlock::symlinked_prefix(&self.source, &p.path, listed_as_dir) {
                tracing::warn!(target = self.name(), path = %String::from_utf8_lossy(&p.path), symlink = %String::from_utf8_lossy(&link), "a directory on the path is a symlink now: pushing the symlink, not what it points to");
                (p.path, p.scope) = (link, Scope::Entry);
            }
            match kept.iter_mut().find(|k| k.path == p.path) {
                Some(k) => k.scope = k.scope.max(p.scope),
                None => kept.push(p),
            }
        }
        kept
    }

    /// With a settle time, when a path whose latest change has sequence
    /// number `seq` (oldest unpushed change at `since_ms`) may be pushed, if
    /// that is later than `now`.
    fn settles_until(&self, seq: Seq, since_ms: u64, now: u64) -> anyhow::Result<Option<u64>> {
        if self.sync.settle_ms == 0 {
            return Ok(None);
        }
        // A change whose log record retention dropped is long settled.
        let last_ms = self.journal.change_time_ms(seq)?.unwrap_or(0);
        let release = (last_ms + self.sync.settle_ms).min(since_ms + self.sync.settle_max_ms);
        Ok((release > now).then_some(release))
    }

    /// Prefixes rsync may put before a root-relative path in its messages:
    /// the source, and a local target's directory.
    fn error_prefixes(&self) -> Vec<&Path> {
        let mut prefixes = vec![self.source.as_path()];
        if let Target::Local(dir) = &self.sync.target {
            prefixes.push(dir);
        }
        prefixes
    }

    /// Holds the `refused` paths of `push` for a retry with backoff, and
    /// records them as the target's error, blaming the source when only
    /// rsync's sending side complained (`on_source`), else the target.
    fn hold_refused(
        &self,
        state: &mut TargetState,
        push: &[HeldPath],
        refused: &[usize],
        on_source: bool,
        now: u64,
    ) {
        if refused.is_empty() {
            return;
        }
        let mut names = Vec::new();
        for &i in refused {
            // Still held from an earlier refusal (not due yet, pushed now
            // because it changed again): count on from there.
            let earlier = state
                .held
                .iter()
                .find(|h| h.path == push[i].path)
                .map_or(0, |h| hold::failures(h.reason));
            let failures = hold::failures(push[i].reason).max(earlier) + 1;
            let not_before_ms = now + backoff_ms(failures, self.sync.retry_max_ms);
            hold::hold(
                state,
                HeldPath {
                    not_before_ms,
                    reason: HoldReason::Failed(failures),
                    ..push[i].clone()
                },
            );
            names.push(String::from_utf8_lossy(&push[i].path).into_owned());
        }
        let side = if on_source {
            "could not be read on the source (rsync's sending side refused them)"
        } else {
            "were refused by the target"
        };
        let error = format!(
            "rsync exit 23: {} path(s) {side}, retried with backoff: {}",
            names.len(),
            names.join(", ")
        );
        tracing::error!(target = self.name(), %error, "push partly failed");
        state.last_error = Some(error);
    }

    /// Runs `attempt` until it succeeds (its value) or shutdown interrupts it
    /// (`None`), recording each result in the target's state and backing off
    /// exponentially (with jitter) between failures. The journal keeps every
    /// pending path meanwhile. A success is reported even when shutdown was
    /// requested meanwhile, so that it is recorded, not repeated.
    fn retry<T>(
        &self,
        state: &mut TargetState,
        mut attempt: impl FnMut(&Pusher) -> Result<T, RsyncError>,
    ) -> anyhow::Result<Option<T>> {
        loop {
            let result = attempt(self);
            state.last_push_ms = now_ms();
            match result {
                Ok(value) => {
                    state.last_error = None;
                    state.consecutive_failures = 0;
                    return Ok(Some(value));
                }
                Err(RsyncError::Interrupted) if self.stopping() => return Ok(None),
                Err(e) => {
                    state.consecutive_failures += 1;
                    state.last_error = Some(e.to_string());
                    self.journal.save_target(self.name(), state)?;
                    let delay = backoff_ms(state.consecutive_failures, self.sync.retry_max_ms);
                    tracing::error!(target = self.name(), error = %e, failures = state.consecutive_failures, retry_in_ms = delay, "push failed");
                    self.sleep(delay);
                    if self.stopping() {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// Why a push went as file lists, for `status`: its `paths` and how
/// `lists` ran them.
fn file_lists_why(paths: usize, lists: &Lists) -> String {
    format!(
        "{} paths ({} entries, {} directory contents, {} subtrees); no full rsync: the batch fit in batch_max_files, or changes were still streaming in, or the backlog stayed under full_push_percent",
        paths,
        lists.count(Mode::Entries),
        lists.count(Mode::Contents),
        lists.count(Mode::Subtree)
    )
}

/// The paths of `part` that an rsync `result` refused: an exit 23 naming
/// some of them gives their `push` indexes and whether only the sending
/// side complained; success gives none. Errors: any other failure, or an
/// exit 23 that names none of the part's paths.
fn blamed_paths(
    result: Result<Vec<u8>, RsyncError>,
    part: &[rsync::Listed],
    push: &[HeldPath],
    prefixes: &[&Path],
) -> Result<(Vec<usize>, bool), RsyncError> {
    let (named, stderr) = match result {
        Err(RsyncError::Exit {
            code: 23,
            named,
            stderr,
            ..
        }) => (named, stderr),
        result => return result.map(|_| (Vec::new(), true)),
    };
    let blamed: Vec<usize> = part
        .iter()
        .filter(|(path, i)| {
            named
                .iter()
                .any(|n| hold::concerns(n, path, push[*i].scope, prefixes))
        })
        .map(|(_, i)| *i)
        .collect();
    if blamed.is_empty() {
        return Err(RsyncError::Exit {
            code: 23,
            meaning: "partial transfer due to error",
            named,
            stderr,
        });
    }
    Ok((blamed, rsync::sender_only(&stderr)))
}

/// Delay before retry number `failures` (≥ 1): `RETRY_BASE_MS · 2^(n-1)`,
/// capped at `max_ms`, minus up to 20 % jitter so that many targets failing
/// together do not retry in lockstep.
fn backoff_ms(failures: u32, max_ms: u64) -> u64 {
    let delay = RETRY_BASE_MS
        .saturating_mul(1 << failures.saturating_sub(1).min(20))
        .min(max_ms);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    delay - (delay / 5) * (jitter % 1000) / 1000
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        for (failures, nominal) in [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (7, 60_000),
            (40, 60_000),
        ] {
            let delay = backoff_ms(failures, 60_000);
            assert!(
                delay <= nominal && delay >= nominal * 4 / 5,
                "failure {failures}: {delay} ms"
            );
        }
    }
}
