//! A target's stored state plus what the journal says it still owes (pending
//! paths, lag): read by `fsjournal status`, `fsjournal targets` and the
//! metrics endpoint, so all three agree.

use serde::Serialize;

use crate::journal::{now_ms, Journal, TargetState};

/// One target as reported to people and monitoring.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// Sync name.
    pub name: String,
    /// Source root path (empty if the root table lacks it).
    pub root_path: String,
    /// Paths still to push, held ones included (paths).
    pub pending: u64,
    /// Age of the oldest unpushed change (ms), 0 when in sync.
    pub lag_ms: u64,
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
        let (pending, oldest) = journal.pending_summary(state.root, state.cursor)?;
        // Held paths (settling, refused by the target, drift) are pending too.
        let oldest = oldest
            .into_iter()
            .chain(state.held.iter().map(|h| h.since_ms))
            .min();
        targets.push(TargetStatus {
            name,
            root_path: roots
                .get(state.root as usize)
                .map_or_else(String::new, |p| p.display().to_string()),
            pending: pending + state.held.len() as u64,
            lag_ms: oldest.map_or(0, |t| now.saturating_sub(t)),
            state,
        });
    }
    Ok(targets)
}
