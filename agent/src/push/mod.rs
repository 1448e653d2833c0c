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

pub mod rsync;
pub mod target;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use self::rsync::{Mode, RsyncError};
use crate::config::SyncConfig;
use crate::filter::Excludes;
use crate::journal::{now_ms, Batch, Journal, RootId, Scope, TargetState};

/// First retry delay after a failed push (ms); doubles per failure up to
/// the sync's `retry_max_ms`.
const RETRY_BASE_MS: u64 = 1_000;
/// Longest single sleep, so that shutdown is noticed promptly (ms).
const TICK_MS: u64 = 100;

/// One target's push loop.
pub struct Pusher {
    sync: SyncConfig,
    excludes: Excludes,
    root: RootId,
    source: PathBuf,
    journal: Arc<Journal>,
    stop: Arc<AtomicBool>,
}

impl Pusher {
    /// Starts the push loop of `sync` (whose source has journal root id
    /// `root`) on its own thread. Capture must already be armed.
    pub fn spawn(
        sync: SyncConfig,
        root: RootId,
        journal: Arc<Journal>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
        let source = sync.source.get_ref().clone();
        let excludes = sync.excludes();
        let pusher = Pusher {
            sync,
            excludes,
            root,
            source,
            journal,
            stop,
        };
        std::thread::Builder::new()
            .name(format!("push-{}", pusher.sync.name))
            .spawn(move || pusher.run())
            .context("cannot start a pusher thread")
    }

    fn name(&self) -> &str {
        &self.sync.name
    }

    fn run(self) -> anyhow::Result<()> {
        let mut state = self.validated_state()?;
        if state.full_sync_needed.is_some() {
            self.full_sync(&mut state)?;
        }
        while !self.stopping() {
            let seen = self.journal.last_seq();
            let batch =
                self.journal
                    .pending_batch(self.root, state.cursor, self.sync.batch_max_files)?;
            if batch.paths.is_empty() {
                // Nothing of ours up to `seen`: skipped or coalesced-away
                // sequence numbers are acknowledged too.
                let cursor = batch.high_seq.max(seen);
                if cursor > state.cursor {
                    state.cursor = cursor;
                    self.journal.save_target(self.name(), &state)?;
                }
                self.journal.wait_for_append(seen, Duration::from_secs(1));
                continue;
            }
            let oldest_ms = batch.paths.iter().map(|p| p.time_ms).min().unwrap_or(0);
            let age_ms = now_ms().saturating_sub(oldest_ms);
            if !batch.truncated && age_ms < self.sync.batch_delay_ms {
                self.sleep(self.sync.batch_delay_ms - age_ms);
                continue;
            }
            self.push_batch(&batch, &mut state)?;
        }
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps up to `ms`, waking early at shutdown.
    fn sleep(&self, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        while !self.stopping() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(TICK_MS).min(until - Instant::now()));
        }
    }

    /// The stored state, or a fresh one marked for a full sync when there is
    /// no cursor or it cannot be trusted; saved before returning, so a crash
    /// during the full sync repeats it.
    fn validated_state(&self) -> anyhow::Result<TargetState> {
        let target = self.sync.target.get_ref().clone();
        let excludes = self.sync.exclude_patterns().to_vec();
        let stored = self.journal.target_state(self.name())?;
        let reason = match &stored {
            None => Some("first sync of this target: no cursor in the journal".to_string()),
            Some(s) if s.full_sync_needed.is_some() => s.full_sync_needed.clone(),
            Some(s) if s.target != target => {
                Some(format!("target changed from {} to {target}", s.target))
            }
            Some(s) if s.root != self.root => Some("source changed".to_string()),
            Some(s) if s.excludes != excludes => Some(format!(
                "exclude patterns changed from {:?} to {excludes:?}",
                s.excludes
            )),
            Some(s) if s.journal_id != self.journal.journal_id() => {
                Some("cursor belongs to another journal".to_string())
            }
            Some(s) if s.cursor > self.journal.last_seq() => Some(format!(
                "cursor {} is ahead of the journal's last record {}",
                s.cursor,
                self.journal.last_seq()
            )),
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

    fn full_sync(&self, state: &mut TargetState) -> anyhow::Result<()> {
        let reason = state.full_sync_needed.clone().unwrap_or_default();
        tracing::warn!(target = self.name(), source = %self.source.display(), %reason, "full sync of the whole root");
        let started = Instant::now();
        if !self.retry(state, |pusher| {
            rsync::run(
                rsync::command(&pusher.sync, &pusher.source, Mode::Full),
                &[],
                &pusher.stop,
            )
        })? {
            return Ok(());
        }
        state.full_syncs += 1;
        state.last_full_sync_reason = state.full_sync_needed.take();
        self.journal.save_target(self.name(), state)?;
        tracing::info!(
            target = self.name(),
            ms = started.elapsed().as_millis() as u64,
            "full sync done"
        );
        Ok(())
    }

    fn push_batch(&self, batch: &Batch, state: &mut TargetState) -> anyhow::Result<()> {
        let started = Instant::now();
        let (mut entries, mut contents, mut subtrees) = (Vec::new(), Vec::new(), Vec::new());
        // rsync gives implied parent directories their attributes, but never
        // the root: list `.` when the root or an entry of it changed. (A
        // listed `.` also compares the root's direct children: --files-from
        // implies -d.)
        if batch
            .paths
            .iter()
            .any(|p| p.scope == Scope::Entry && !p.path.contains(&b'/'))
        {
            entries.push(b".".to_vec());
        }
        // Another sync of the same root may have journaled what this one excludes.
        for p in batch
            .paths
            .iter()
            .filter(|p| !self.excludes.is_excluded(&p.path))
        {
            match p.scope {
                Scope::Entry if p.path.is_empty() => {}
                Scope::Entry => entries.push(p.path.clone()),
                // `DIR/` makes `-d` take the directory's children.
                Scope::Contents if p.path.is_empty() => contents.push(b".".to_vec()),
                Scope::Contents => contents.push([p.path.as_slice(), b"/"].concat()),
                Scope::Subtree if p.path.is_empty() => subtrees.push(b".".to_vec()),
                Scope::Subtree => subtrees.push(p.path.clone()),
            }
        }
        let pushed = self.retry(state, |pusher| {
            for (mode, list) in [
                (Mode::Incremental, &entries),
                (Mode::Contents, &contents),
                (Mode::Subtree, &subtrees),
            ] {
                if !list.is_empty() {
                    let list: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
                    rsync::run(
                        rsync::command(&pusher.sync, &pusher.source, mode),
                        &list,
                        &pusher.stop,
                    )?;
                }
            }
            Ok(())
        })?;
        if !pushed {
            return Ok(());
        }
        state.cursor = batch.high_seq;
        state.pushed_paths += batch.paths.len() as u64;
        self.journal.save_target(self.name(), state)?;
        tracing::info!(
            target = self.name(),
            paths = batch.paths.len(),
            contents = contents.len(),
            subtrees = subtrees.len(),
            cursor = state.cursor,
            ms = started.elapsed().as_millis() as u64,
            "pushed"
        );
        Ok(())
    }

    /// Runs `attempt` until it succeeds (true) or shutdown interrupts it
    /// (false), recording each result in the target's state and backing off
    /// exponentially (with jitter) between failures. The journal keeps every
    /// pending path meanwhile. A success is reported even when shutdown was
    /// requested meanwhile, so that it is recorded, not repeated.
    fn retry(
        &self,
        state: &mut TargetState,
        mut attempt: impl FnMut(&Pusher) -> Result<(), RsyncError>,
    ) -> anyhow::Result<bool> {
        loop {
            let result = attempt(self);
            state.last_push_ms = now_ms();
            match result {
                Ok(()) => {
                    state.last_error = None;
                    state.consecutive_failures = 0;
                    return Ok(true);
                }
                Err(RsyncError::Interrupted) if self.stopping() => return Ok(false),
                Err(e) => {
                    state.consecutive_failures += 1;
                    state.last_error = Some(e.to_string());
                    self.journal.save_target(self.name(), state)?;
                    let delay = backoff_ms(state.consecutive_failures, self.sync.retry_max_ms);
                    tracing::error!(target = self.name(), error = %e, failures = state.consecutive_failures, retry_in_ms = delay, "push failed");
                    self.sleep(delay);
                    if self.stopping() {
                        return Ok(false);
                    }
                }
            }
        }
    }
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
