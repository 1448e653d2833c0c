//! `fsjournal pending`: the paths each target still has to receive — the
//! journal's changes after the target's cursor, then the target's held
//! queue (`TargetState::held`: settling files, paths the target refused,
//! drift found by verification, operator requests), each with its reason.

use clap::Args;
use serde::Serialize;

use super::{display_path, exact_path, JournalArgs};
use crate::journal::{HeldPath, HoldReason};

/// Arguments of `fsjournal pending`.
#[derive(Debug, Args)]
pub struct PendingArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// Only this target (sync name).
    #[arg(long)]
    target: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct JsonPending<'a> {
    target: &'a str,
    /// The change's sequence number; none for a held path (it left the
    /// journal's pending set, its change acknowledged).
    seq: Option<u64>,
    /// `journal` (after the cursor), else why the target holds it:
    /// `settling`, `refused`, `drift`, `requested`.
    reason: &'static str,
    /// A refused path's failed attempts in a row.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    /// [`display_path`]: the name, escaped where it is not plain UTF-8.
    path: String,
    /// The exact bytes when `path` is not the name itself ([`exact_path`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<Vec<u8>>,
    scope: &'static str,
    time_ms: u64,
}

/// Runs `fsjournal pending`.
pub fn run(args: PendingArgs) -> anyhow::Result<()> {
    let journal = args.journal.open()?;
    let states = journal.target_states()?;
    if let Some(name) = &args.target {
        if !states.iter().any(|(n, _)| n == name) {
            anyhow::bail!("no target named {name} in {}", journal.path().display());
        }
    }
    for (name, state) in states
        .iter()
        .filter(|(n, _)| args.target.as_ref().is_none_or(|t| t == n))
    {
        let batch = journal.pending_batch(state.root, state.cursor, usize::MAX)?;
        for p in &batch.paths {
            let line = JsonPending {
                target: name,
                seq: Some(p.seq),
                reason: "journal",
                attempts: None,
                path: display_path(&p.path),
                path_bytes: exact_path(&p.path),
                scope: p.scope.name(),
                time_ms: p.time_ms,
            };
            print(&line, args.json)?;
        }
        for held in &state.held {
            print(&held_line(name, held), args.json)?;
        }
    }
    Ok(())
}

/// The line of a held path.
fn held_line<'a>(target: &'a str, held: &HeldPath) -> JsonPending<'a> {
    let (reason, attempts) = match held.reason {
        HoldReason::Settling => ("settling", None),
        HoldReason::Failed(n) => ("refused", Some(n)),
        HoldReason::Drift => ("drift", None),
        HoldReason::Requested => ("requested", None),
    };
    JsonPending {
        target,
        seq: None,
        reason,
        attempts,
        path: display_path(&held.path),
        path_bytes: exact_path(&held.path),
        scope: held.scope.name(),
        time_ms: held.since_ms,
    }
}

/// Prints one line: JSON, or `target  seq  scope  path` where a held
/// path's seq column is `held:REASON`.
fn print(line: &JsonPending, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(line)?);
    } else {
        let seq = line
            .seq
            .map_or_else(|| format!("held:{}", line.reason), |seq| seq.to_string());
        println!("{}\t{seq}\t{:<8}\t{}", line.target, line.scope, line.path);
    }
    Ok(())
}
