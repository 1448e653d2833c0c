//! The verdict at the top of `fsjournal status`: is the backup healthy, and
//! if not, every reason, each worded for the operator. The same conditions
//! as the sample alert rules in docs/operations.md, so a glance at `status`
//! and the alerts agree.

use serde::Serialize;

use super::human_ms;
use super::status::Status;
use crate::journal::now_ms;

/// A target further behind than this is a problem (ms): the sample alert's
/// "lag > 5 min".
const LAG_LIMIT_MS: u64 = 5 * 60 * 1000;

/// A running agent advances the capture watermark every second; older than
/// this, capture is stuck (ms).
const WATERMARK_LIMIT_MS: u64 = 30_000;

/// The verdict.
#[derive(Debug, Serialize)]
pub struct Health {
    /// No problem found.
    pub ok: bool,
    /// One sentence per problem, empty when healthy.
    pub problems: Vec<String>,
}

/// Judges a status document read at `now_ms()`.
pub fn judge(status: &Status) -> Health {
    let now = now_ms();
    let mut problems = Vec::new();
    if !status.agent_running {
        problems.push("the agent is not running: nothing is pushed".to_string());
    } else if let Some(age) = status.watermark_ms.map(|w| now.saturating_sub(w)) {
        if age > WATERMARK_LIMIT_MS {
            problems.push(format!(
                "the capture watermark is {} old: capture is stuck, or the journal cannot be written (disk full? see the agent's log)",
                human_ms(age)
            ));
        }
    }
    let dropped = status.kernel_events.dropped;
    if status.agent_running && dropped > 0 {
        problems.push(format!(
            "{dropped} eBPF events dropped since start, each a rescan: raise capture.ring_buffer_bytes / dirty_inodes"
        ));
    }
    for t in &status.targets {
        let name = &t.name;
        if t.state.consecutive_failures > 0 {
            problems.push(format!(
                "{name}: {} failed pushes in a row: {}",
                t.state.consecutive_failures,
                t.state.last_error.as_deref().unwrap_or("?")
            ));
        }
        let refused = t.state.refused_paths();
        if refused > 0 {
            problems.push(format!(
                "{name}: {refused} paths refused (by the target, or unreadable on the source: see its last error), retried with backoff"
            ));
        }
        if let Some(reason) = &t.state.full_sync_needed {
            problems.push(format!("{name}: a full sync is owed: {reason}"));
        }
        if t.lag_ms > LAG_LIMIT_MS {
            problems.push(format!("{name}: {} behind its source", human_ms(t.lag_ms)));
        }
    }
    Health {
        ok: problems.is_empty(),
        problems,
    }
}
