//! `fsjournal log`: the journal's records in sequence order.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::{display_path, human_ms, JournalArgs};
use crate::journal::{Journal, LogRecord, Scope, Seq, StartRecord};

/// Records printed per journal read.
const PAGE: usize = 10_000;

/// Arguments of `fsjournal log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// Start after this sequence number (a cursor); default: the oldest kept record.
    #[arg(long, default_value_t = 0)]
    since: Seq,
    /// Keep printing new records as they are journaled.
    #[arg(long, short)]
    follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// One record as `--json` prints it.
#[derive(Debug, Serialize)]
struct JsonRecord<'a> {
    seq: Seq,
    time_ms: u64,
    root: &'a str,
    path: String,
    kind: &'static str,
    scope: &'static str,
    ino: u64,
    pid: u32,
    comm: &'a str,
}

fn print(seq: Seq, record: &LogRecord, roots: &[String], json: bool) -> anyhow::Result<()> {
    let root = roots.get(record.root as usize).map_or("?", String::as_str);
    let path = display_path(&record.path);
    if json {
        let line = JsonRecord {
            seq,
            time_ms: record.time_ms,
            root,
            path,
            kind: record.kind().name(),
            scope: record.scope.name(),
            ino: record.ino,
            pid: record.pid,
            comm: &record.comm,
        };
        println!("{}", serde_json::to_string(&line)?);
    } else {
        let scope = match record.scope {
            Scope::Entry => String::new(),
            other => format!(" ({})", other.name()),
        };
        println!(
            "{seq:>10} {} {:<11} {root}/{path:?}{scope} ino={} pid={} comm={}",
            record.time_ms,
            record.kind().name(),
            record.ino,
            record.pid,
            record.comm
        );
    }
    Ok(())
}

/// Prints an agent start: how it closed the gap while nothing captured.
fn print_start(start: &StartRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::json!({ "start": start }));
    } else {
        let gap = start
            .gap_ms
            .map_or_else(|| "none (new journal)".to_string(), human_ms);
        let reboot = if start.rebooted {
            ", after a reboot"
        } else {
            ""
        };
        println!(
            "     start {} gap {gap}{reboot}, closed by {} ({} entries, {})",
            start.time_ms,
            start.method,
            start.entries,
            human_ms(start.ms)
        );
    }
    Ok(())
}

/// Runs `fsjournal log`: records in sequence order, with each agent start
/// (the gap it closed and how) where it falls in time.
pub fn run(args: LogArgs) -> anyhow::Result<()> {
    let mut journal: Journal = args.journal.open()?;
    let mut next = args.since + 1;
    // Starts at or after this time are still to print; with --since, from
    // the first record printed on.
    let mut starts_from: Option<u64> = (args.since == 0).then_some(0);
    loop {
        let roots: Vec<String> = journal
            .roots()?
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let starts = journal.starts()?;
        loop {
            let records = journal.log_from(next, PAGE)?;
            for (seq, record) in &records {
                let from = *starts_from.get_or_insert(record.time_ms);
                for start in starts
                    .iter()
                    .filter(|s| s.time_ms >= from && s.time_ms <= record.time_ms)
                {
                    print_start(start, args.json)?;
                }
                starts_from = Some(from.max(record.time_ms + 1));
                print(*seq, record, &roots, args.json)?;
                next = seq + 1;
            }
            if records.len() < PAGE {
                break;
            }
        }
        if let Some(from) = starts_from {
            for start in starts.iter().filter(|s| s.time_ms >= from) {
                print_start(start, args.json)?;
                starts_from = Some(start.time_ms + 1);
            }
        }
        if !args.follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
        journal.catch_up()?;
    }
}
