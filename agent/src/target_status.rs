//! A target's stored state plus what the journal says it still owes (pending
//! paths, lag): read by `fsjournal status`, `fsjournal targets` and the
//! metrics endpoint, so all three agree.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::journal::{now_ms, Journal, PushInFlight, PushStrategy, TargetState};

/// At most this many pending paths are measured for [`TargetStatus::pending_bytes`]
/// (an `lstat` each, about 1–2 µs when cached); beyond it the total is
/// extrapolated from their mean.
const MEASURED_PATHS: u64 = 100_000;

/// One target as reported to people and monitoring.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// Sync name.
    pub name: String,
    /// Source root path (empty if the root table lacks it).
    pub root_path: String,
    /// Paths still to push, held ones included (paths).
    pub pending: u64,
    /// Size of the pending paths as they are in the source now (bytes): a
    /// deleted one counts 0, a pending subtree its directory entry only.
    pub pending_bytes: u64,
    /// `pending_bytes` is extrapolated from the first [`MEASURED_PATHS`]
    /// pending paths.
    pub pending_bytes_estimated: bool,
    /// Age of the oldest unpushed change (ms), 0 when in sync.
    pub lag_ms: u64,
    /// The rsync run in progress, when the running agent recorded one.
    pub push_in_flight: Option<InFlight>,
    /// How the last push went: file lists or the cost model's full rsync.
    pub last_strategy: Option<PushStrategy>,
    /// Cursor, last push, errors, full syncs: see [`TargetState`].
    #[serde(flatten)]
    pub state: TargetState,
}

/// Every target of the journal, by name, with its pending count and lag
/// measured now. Errors: a journal read failed or a record is corrupt.
pub fn collect(journal: &Journal) -> anyhow::Result<Vec<TargetStatus>> {
    let now = now_ms();
    let roots = journal.roots()?;
    let mut targets = Vec::new();
    for (name, state) in journal.target_states()? {
        let root_path = roots.get(state.root as usize);
        let mut sizes = Sizes::default();
        let (pending, oldest) = journal.pending_summary(state.root, state.cursor, |path| {
            sizes.add(root_path.map(PathBuf::as_path), path)
        })?;
        for held in &state.held {
            sizes.add(root_path.map(PathBuf::as_path), &held.path);
        }
        // Held paths (settling, refused by the target, drift) are pending too.
        let oldest = oldest
            .into_iter()
            .chain(state.held.iter().map(|h| h.since_ms))
            .min();
        let push_in_flight = in_flight(journal, &name, now)?;
        let last_strategy = journal.push_strategy(&name)?;
        targets.push(TargetStatus {
            name,
            root_path: root_path.map_or_else(String::new, |p| p.display().to_string()),
            pending: pending + state.held.len() as u64,
            pending_bytes: sizes.total(pending + state.held.len() as u64),
            pending_bytes_estimated: sizes.measured < pending + state.held.len() as u64,
            lag_ms: oldest.map_or(0, |t| now.saturating_sub(t)),
            push_in_flight,
            last_strategy,
            state,
        });
    }
    Ok(targets)
}

/// A push in flight as reported: the run and how long it has been going.
#[derive(Debug, Serialize)]
pub struct InFlight {
    /// Time since rsync started (ms).
    pub age_ms: u64,
    /// Mode, command line, start time, pid: see [`PushInFlight`].
    #[serde(flatten)]
    pub run: PushInFlight,
}

/// Target `name`'s push in flight, unless its record was left by an agent
/// that no longer runs (killed mid-push): the recording pid must be this
/// process (the metrics endpoint, inside the agent, which must never query
/// its own lock: see `presence.rs`) or, for a CLI reader, the journal's
/// current lock holder.
fn in_flight(journal: &Journal, name: &str, now: u64) -> anyhow::Result<Option<InFlight>> {
    let Some(run) = journal.push_in_flight(name)? else {
        return Ok(None);
    };
    let current = if journal.is_reader() {
        crate::presence::running_agent(journal.path(), run.pid) == Some(run.pid)
    } else {
        run.pid == std::process::id()
    };
    Ok(current.then(|| InFlight {
        age_ms: now.saturating_sub(run.started_ms),
        run,
    }))
}

/// Sizes of the first [`MEASURED_PATHS`] pending paths.
#[derive(Default)]
struct Sizes {
    measured: u64,
    bytes: u64,
}

impl Sizes {
    fn add(&mut self, root: Option<&Path>, path: &[u8]) {
        if self.measured == MEASURED_PATHS {
            return;
        }
        self.measured += 1;
        if let Some(root) = root {
            let absolute = root.join(std::ffi::OsStr::from_bytes(path));
            self.bytes += std::fs::symlink_metadata(absolute).map_or(0, |m| m.len());
        }
    }

    /// The measured bytes, scaled to `count` paths.
    fn total(&self, count: u64) -> u64 {
        match self.measured {
            0 => 0,
            n if n >= count => self.bytes,
            n => (self.bytes as u128 * count as u128 / n as u128) as u64,
        }
    }
}
