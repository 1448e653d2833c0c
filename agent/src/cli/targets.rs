//! `fsjournal targets`: one line per target, for a quick look or a script.
//! A push in flight shows its mode and age (`full for 2m05s`); `--json` and
//! `status` add its command line.

use clap::Args;

use super::{ago, human_ms, JournalArgs};
use crate::journal::now_ms;
use crate::target_status;

/// Arguments of `fsjournal targets`.
#[derive(Debug, Args)]
pub struct TargetsArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// Print a JSON array (the same objects as `status --json`'s `targets`).
    #[arg(long)]
    json: bool,
}

/// Column headers of the text output.
const HEADERS: [&str; 10] = [
    "NAME",
    "TARGET",
    "SOURCE",
    "CURSOR",
    "PENDING",
    "LAG",
    "FULL SYNCS",
    "LAST PUSH",
    "PUSHING",
    "LAST ERROR",
];

/// Runs `fsjournal targets`.
pub fn run(args: TargetsArgs) -> anyhow::Result<()> {
    let targets = target_status::collect(&args.journal.open()?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&targets)?);
        return Ok(());
    }
    let now = now_ms();
    let mut rows = vec![HEADERS.map(String::from)];
    for t in &targets {
        let error = match &t.state.last_error {
            None => "-".to_string(),
            // rsync's message may span lines: one line per target.
            Some(e) => format!(
                "({} in a row) {}",
                t.state.consecutive_failures,
                e.replace('\n', " ")
            ),
        };
        rows.push([
            t.name.clone(),
            t.state.target.clone(),
            t.root_path.clone(),
            t.state.cursor.to_string(),
            t.pending.to_string(),
            human_ms(t.lag_ms),
            t.state.full_syncs.to_string(),
            ago(now, t.state.last_push_ms),
            t.push_in_flight.as_ref().map_or_else(
                || "-".to_string(),
                |run| format!("{} for {}", run.run.mode, human_ms(run.age_ms)),
            ),
            error,
        ]);
    }
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    Ok(())
}
