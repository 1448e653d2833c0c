//! `fsjournal log`: the journal's records in sequence order, optionally
//! within a range and for some paths or kinds (see `log_filter.rs`).

use std::time::Duration;

use clap::Args;
use fsjournal_common::ChangeKind;
use globset::Glob;
use serde::Serialize;

use super::log_filter::{self, Bound, Filter};
use super::{display_path, exact_path, JournalArgs};
use crate::journal::{now_ms, Journal, LogRecord, Scope, Seq, StartRecord};

/// Records printed per journal read.
const PAGE: usize = 10_000;

/// Arguments of `fsjournal log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// Start after this sequence number (a cursor), or at this time: UTC
    /// (2025-06-01T12:00:00Z) or a duration ago (10m, 2h); default: the oldest kept record.
    #[arg(long, value_name = "SEQ|TIME", value_parser = log_filter::parse_bound)]
    since: Option<Bound>,
    /// Stop at this sequence number (included) or time (same forms as --since);
    /// --follow then ends there too.
    #[arg(long, value_name = "SEQ|TIME", value_parser = log_filter::parse_bound)]
    until: Option<Bound>,
    /// Only records whose root-relative path matches this glob (`*` stays
    /// within a component, `**` crosses them: jobs/*/config.xml); repeatable.
    /// Agent starts are then not shown.
    #[arg(long, value_name = "GLOB", value_parser = log_filter::parse_glob)]
    path: Vec<Glob>,
    /// Only records of this kind; repeatable. Agent starts are then not shown.
    #[arg(long, value_name = "KIND", value_parser = log_filter::kind_parser())]
    kind: Vec<ChangeKind>,
    /// Keep printing new records as they are journaled.
    #[arg(long, short)]
    follow: bool,
    /// One JSON object per line (times as `time_ms`, milliseconds since the Unix epoch).
    #[arg(long)]
    json: bool,
    /// Show times in UTC (`…Z`) instead of the local time zone.
    #[arg(long)]
    utc: bool,
}

/// One record as `--json` prints it.
#[derive(Debug, Serialize)]
struct JsonRecord<'a> {
    seq: Seq,
    time_ms: u64,
    root: &'a str,
    /// [`display_path`]: the name, escaped where it is not plain UTF-8.
    path: String,
    /// The exact bytes when `path` is not the name itself ([`exact_path`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<Vec<u8>>,
    kind: &'static str,
    scope: &'static str,
    ino: u64,
    pid: u32,
    comm: &'a str,
}

/// A record time (ms since the Unix epoch) as RFC 3339 with milliseconds:
/// local (`2026-12-02T23:04:05.123+01:00`, the zone of TZ or /etc/localtime)
/// or, with `utc`, `2026-12-02T22:04:05.123Z`.
fn format_time(time_ms: u64, utc: bool) -> String {
    let Ok(time) = jiff::Timestamp::from_millisecond(time_ms as i64) else {
        return format!("{time_ms}ms");
    };
    if utc {
        time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    } else {
        time.to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string()
    }
}

fn print(
    seq: Seq,
    record: &LogRecord,
    roots: &[String],
    json: bool,
    utc: bool,
) -> anyhow::Result<()> {
    let root = roots.get(record.root as usize).map_or("?", String::as_str);
    let path = display_path(&record.path);
    if json {
        let line = JsonRecord {
            seq,
            time_ms: record.time_ms,
            root,
            path,
            path_bytes: exact_path(&record.path),
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
            "{seq:>10} {} {:<11} {root}/{path}{scope} ino={} pid={} comm={}",
            format_time(record.time_ms, utc),
            record.kind().name(),
            record.ino,
            record.pid,
            record.comm
        );
    }
    Ok(())
}

/// Prints an agent start: how it closed the gap while nothing captured.
fn print_start(start: &StartRecord, json: bool, utc: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::json!({ "start": start }));
    } else {
        println!(
            "     start {} gap {}",
            format_time(start.time_ms, utc),
            super::describe_gap(start)
        );
    }
    Ok(())
}

/// Runs `fsjournal log`: records in sequence order, with each agent start
/// (the gap it closed and how) where it falls in time.
pub fn run(args: LogArgs) -> anyhow::Result<()> {
    let filter = Filter::new(args.since, args.until, &args.path, args.kind)?;
    let mut journal: Journal = args.journal.open()?;
    let mut next = filter.first_seq();
    // Starts at or after this time are still to print; with --since SEQ,
    // from the first record in range on.
    let mut starts_from = filter.starts_from();
    loop {
        let roots: Vec<String> = journal
            .roots()?
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let starts = if filter.shows_starts() {
            journal.starts()?
        } else {
            Vec::new()
        };
        loop {
            let records = journal.log_from(next, PAGE)?;
            for (seq, record) in &records {
                next = seq + 1;
                if filter.before_range(*seq, record) {
                    continue;
                }
                if filter.after_range(*seq, record) {
                    return Ok(());
                }
                let from = *starts_from.get_or_insert(record.time_ms);
                for start in starts
                    .iter()
                    .filter(|s| s.time_ms >= from && s.time_ms <= record.time_ms)
                {
                    print_start(start, args.json, args.utc)?;
                }
                starts_from = Some(from.max(record.time_ms + 1));
                if filter.selects(record) {
                    print(*seq, record, &roots, args.json, args.utc)?;
                }
            }
            if records.len() < PAGE {
                break;
            }
        }
        if let Some(from) = starts_from {
            for start in starts.iter().filter(|s| {
                s.time_ms >= from && filter.admits_later_start(s.time_ms, journal.last_seq())
            }) {
                print_start(start, args.json, args.utc)?;
                starts_from = Some(start.time_ms + 1);
            }
        }
        if !args.follow || filter.range_ended(journal.last_seq(), now_ms()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
        journal.catch_up()?;
    }
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn times_read_as_rfc3339_local_or_utc() {
        assert_eq!(
            format_time(1_700_000_000_123, true),
            "2023-11-14T22:13:20.123Z"
        );
        let local = format_time(1_700_000_000_123, false);
        let parsed: jiff::Timestamp = local.parse().unwrap();
        assert_eq!(parsed.as_millisecond(), 1_700_000_000_123, "{local}");
        assert!(local.starts_with("2023-11-1"), "{local}");
    }
}
