//! `fsjournal pending`: the paths each target still has to receive.

use clap::Args;
use serde::Serialize;

use super::{display_path, exact_path, JournalArgs};

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
    seq: u64,
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
            let path = display_path(&p.path);
            if args.json {
                let line = JsonPending {
                    target: name,
                    seq: p.seq,
                    path,
                    path_bytes: exact_path(&p.path),
                    scope: p.scope.name(),
                    time_ms: p.time_ms,
                };
                println!("{}", serde_json::to_string(&line)?);
            } else {
                println!("{name}\t{}\t{:<8}\t{path}", p.seq, p.scope.name());
            }
        }
    }
    Ok(())
}
