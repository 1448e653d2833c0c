//! The report's tables, one function each, from the results document to
//! Markdown rows (medians over the runs). A table whose data is absent is
//! the empty string, and `template.md` drops the section around it.

use super::super::measure::Destination;
use super::super::results::{median, percentile, RenameTime, Results};
use super::format::{anon, capture_live, files, fmt_s, label, mb, med, mib, sync_seconds};
use super::format::{latency_samples, DAEMON, FSJOURNAL, TOOLS};

/// The tools of the change-set tables, full-scan rsync last.
const SYNC_TOOLS: [&str; 4] = ["fsjournal-ebpf", "fsjournal-fanotify", "lsyncd", "rsync"];

/// A Markdown table: header, separator, one line per row.
fn table(columns: &[&str], rows: impl IntoIterator<Item = String>) -> String {
    let mut md = format!(
        "| {} |\n{}|",
        columns.join(" | "),
        "| --- ".repeat(columns.len())
    );
    for row in rows {
        md.push('\n');
        md.push_str(&row);
    }
    md
}

/// Section 1: each tool's start-up beside inotifywait's.
pub fn startup(r: &Results) -> String {
    let st = &r.startup;
    let inotify = med(st, "inotifywait", |s| s.tracking_s);
    let rows = TOOLS.into_iter().filter_map(|tool| {
        let tracking = med(st, tool, |s| s.tracking_s)?;
        let ratio = match inotify {
            Some(i) if tool != "inotifywait" => format!("{:.2}×", i / tracking),
            _ => "(anchor)".into(),
        };
        Some(format!(
            "| {tool} | {} | {} | {} | {ratio} | {} | {:+.0} KiB | {:+.0} KiB | {} | {} | {} |",
            files(med(st, tool, |s| s.tree_files as f64)),
            fmt_s(med(st, tool, capture_live)),
            fmt_s(Some(tracking)),
            fmt_s(med(st, tool, |s| s.ready_s.unwrap_or(f64::NAN)).filter(|v| !v.is_nan())),
            med(st, tool, |s| s.slab_unreclaim_kib as f64).unwrap_or(0.0),
            med(st, tool, |s| s.slab_reclaim_kib as f64).unwrap_or(0.0),
            mib(med(st, tool, |s| s.rss_kib as f64).unwrap_or(0.0)),
            anon(med(st, tool, |s| s.rss_anon_kib as f64)),
            mib(med(st, tool, |s| s.peak_rss_kib as f64).unwrap_or(0.0)),
        ))
    });
    table(
        &[
            "tool",
            "tree at start",
            "capture live",
            "tracking",
            "inotifywait ÷ tool",
            "ready",
            "SUnreclaim Δ",
            "SReclaimable Δ",
            "RSS ready",
            "of which anon",
            "peak RSS",
        ],
        rows,
    )
}

/// Start-up against tree size, one row per start; empty without a sweep.
pub fn sweep(r: &Results) -> String {
    if r.sweep.is_empty() {
        return String::new();
    }
    let rows = r.sweep.iter().map(|p| {
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            p.tool,
            p.files,
            p.dirs,
            p.live_s.map_or("—".into(), |s| fmt_s(Some(s))),
            fmt_s(Some(p.tracking_s)),
            mib(p.rss_kib as f64)
        )
    });
    let columns = [
        "tool",
        "files",
        "directories",
        "capture live",
        "tracking",
        "RSS tracking",
    ];
    table(&columns, rows)
}

/// Section 2, one row per K: each tool's seconds, full-scan rsync ÷ tool,
/// and over the daemon the megabytes that crossed. Empty over the daemon
/// when no session ran there.
pub fn sync(r: &Results, destination: Destination) -> String {
    let over_daemon = destination == Destination::Daemon;
    if over_daemon && !r.sync.iter().any(|s| s.tool.ends_with(DAEMON)) {
        return String::new();
    }
    let mut columns = vec![
        "K",
        "files changed",
        "fsjournal-ebpf",
        "fsjournal-fanotify",
        "lsyncd",
        "full-scan rsync",
        "rsync ÷ eBPF",
        "rsync ÷ fanotify",
        "rsync ÷ lsyncd",
    ];
    if over_daemon {
        columns.extend(["MB eBPF", "MB fanotify", "MB lsyncd", "MB rsync"]);
    }
    let rows = r
        .setup
        .ks
        .iter()
        .filter_map(|&k| sync_row(r, k, destination));
    table(&columns, rows)
}

/// The row of change sets of `k` files to `destination`, if any ran.
fn sync_row(r: &Results, k: u64, destination: Destination) -> Option<String> {
    let over_daemon = destination == Destination::Daemon;
    let changed = median(
        r.sync
            .iter()
            .filter(|s| s.k == k && s.tool.ends_with(DAEMON) == over_daemon)
            .map(|s| s.changed as f64),
    )?;
    let at = |tool: &str| sync_seconds(r, &label(tool, destination), k);
    let rsync = at("rsync");
    let mut row = format!("| {k} | {changed:.0} |");
    for tool in SYNC_TOOLS {
        row += &format!(" {} |", fmt_s(at(tool)));
    }
    for tool in &SYNC_TOOLS[..3] {
        let ratio = match (rsync, at(tool)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
            _ => "—".into(),
        };
        row += &format!(" {ratio} |");
    }
    if over_daemon {
        for tool in SYNC_TOOLS {
            let name = label(tool, destination);
            let rows = r.sync.iter().filter(|s| s.tool == name && s.k == k);
            row += &format!(
                " {} |",
                mb(median(rows.filter_map(|s| s.wire_bytes.map(|b| b as f64))))
            );
        }
    }
    Some(row)
}

/// A renamed job, per tool and target: seconds, what the replica's disk
/// wrote and what crossed. Empty when no rename was measured.
pub fn renames(r: &Results) -> String {
    if r.renames.is_empty() {
        return String::new();
    }
    let over = [Destination::Local, Destination::Daemon];
    let rows = over
        .iter()
        .flat_map(|&d| SYNC_TOOLS.map(|t| label(t, d)))
        .filter_map(|tool| rename_row(r, &tool));
    let columns = [
        "tool",
        "job files",
        "job size",
        "seconds",
        "replica disk wrote",
        "÷ job size",
        "≤ 1 %",
        "file data sent",
        "all bytes sent",
    ];
    table(&columns, rows)
}

/// `tool`'s row of the rename table, if it renamed a job.
fn rename_row(r: &Results, tool: &str) -> Option<String> {
    let rows: Vec<_> = r.renames.iter().filter(|x| x.tool == tool).collect();
    let files = median(rows.iter().map(|x| x.files as f64))?;
    let bytes = median(rows.iter().map(|x| x.bytes as f64))?;
    let seconds = median(rows.iter().map(|x| x.seconds))?;
    let written = median(rows.iter().map(|x| x.written_kib as f64))?;
    let share = written * 1024.0 / bytes.max(1.0);
    let sent = |f: fn(&RenameTime) -> Option<u64>| {
        median(rows.iter().filter_map(|x| f(x).map(|b| b as f64))).map_or("—".into(), |b| {
            format!("{} ({:.1} %)", mib(b / 1024.0), b / bytes.max(1.0) * 100.0)
        })
    };
    Some(format!(
        "| {tool} | {files:.0} | {} | {} | {} | {:.1} % | {} | {} | {} |",
        mib(bytes / 1024.0),
        fmt_s(Some(seconds)),
        mib(written),
        share * 100.0,
        if share <= 0.01 { "yes" } else { "no" },
        sent(|x| x.data_bytes),
        sent(|x| x.wire_bytes),
    ))
}

/// A backlog after downtime, per backend and target, beside full-scan
/// rsync at the same K. Empty when it was not measured.
pub fn backlog(r: &Results) -> String {
    if r.backlog.is_empty() {
        return String::new();
    }
    let over = [Destination::Local, Destination::Daemon];
    let rows = over
        .iter()
        .flat_map(|&d| FSJOURNAL.map(|t| (t, d)))
        .filter_map(|(tool, destination)| backlog_row(r, tool, destination));
    let columns = [
        "tool",
        "K",
        "files changed",
        "seconds from restart",
        "strategy",
        "full-scan rsync",
        "rsync ÷ tool",
        "MB over the wire",
    ];
    table(&columns, rows)
}

/// `tool`'s row of the backlog table for `destination`, if measured.
fn backlog_row(r: &Results, tool: &str, destination: Destination) -> Option<String> {
    let name = label(tool, destination);
    let rows: Vec<_> = r.backlog.iter().filter(|b| b.tool == name).collect();
    let last = rows.last()?;
    let seconds = median(rows.iter().map(|b| b.seconds))?;
    let changed = median(rows.iter().map(|b| b.changed as f64)).unwrap_or(0.0);
    let rsync = sync_seconds(r, &label("rsync", destination), last.k);
    let ratio = rsync.map_or("—".into(), |a| format!("{:.1}×", a / seconds.max(1e-9)));
    let wire = median(rows.iter().filter_map(|b| b.wire_bytes.map(|x| x as f64)));
    Some(format!(
        "| {name} | {} | {changed:.0} | {} | {} | {} | {ratio} | {} |",
        last.k,
        fmt_s(Some(seconds)),
        last.strategy,
        fmt_s(rsync),
        mb(wire),
    ))
}

/// Section 3: latency percentiles of each tool, all runs' samples pooled.
pub fn latency(r: &Results) -> String {
    let delay = r.setup.batch_delay_ms as f64;
    let rows = TOOLS.into_iter().filter_map(|tool| {
        let samples = latency_samples(r, tool);
        if samples.is_empty() {
            return None;
        }
        let p = |q| percentile(&samples, q).unwrap_or(0.0);
        Some(format!(
            "| {tool} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:+.0} ms |",
            samples.len(),
            p(50.0),
            p(90.0),
            p(99.0),
            p(100.0),
            p(99.0) - delay
        ))
    });
    let columns = [
        "tool",
        "samples",
        "p50",
        "p90",
        "p99",
        "max",
        "p99 − batch delay",
    ];
    table(&columns, rows)
}

/// Section 4: a live burst per tool and writer count.
pub fn throughput(r: &Results) -> String {
    let mut writer_counts: Vec<u32> = r.throughput.iter().map(|t| t.writers).collect();
    writer_counts.sort_unstable();
    writer_counts.dedup();
    let rows = TOOLS.into_iter().flat_map(|tool| {
        let counts = writer_counts.clone();
        counts
            .into_iter()
            .filter_map(move |writers| throughput_row(r, tool, writers))
    });
    let columns = [
        "tool",
        "writers",
        "writer creates/s",
        "records",
        "records/s",
        "events read",
        "dropped",
        "spilled",
        "rescans",
        "replicated after writer",
        "journal / 10⁶ records",
        "RSS after burst",
        "of which anon",
    ];
    table(&columns, rows)
}

/// `tool`'s row of the throughput table with `writers` writers, if measured.
fn throughput_row(r: &Results, tool: &str, writers: u32) -> Option<String> {
    let t: Vec<_> = r
        .throughput
        .iter()
        .filter(|t| t.writers == writers)
        .cloned()
        .collect();
    let records = med(&t, tool, |t| t.records as f64)?;
    let m = |f: fn(&_) -> f64| med(&t, tool, f).unwrap_or(0.0);
    Some(format!(
        "| {tool} | {writers} | {:.0} | {records:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.0} MiB | {} | {} |",
        m(|t| t.files as f64 / t.writer_s),
        m(|t| t.records as f64 / t.journal_s),
        m(|t| t.events as f64),
        m(|t| t.dropped as f64),
        m(|t| t.spilled as f64),
        m(|t| t.rescans as f64),
        fmt_s(med(&t, tool, |t| t.replicated_s)),
        m(|t| t.journal_bytes as f64 / t.journal_seq.max(1) as f64 * 1e6 / 1048576.0),
        mib(m(|t| t.rss_kib as f64)),
        anon(med(&t, tool, |t| t.rss_anon_kib as f64)),
    ))
}

/// Draining a queued backlog per tool; empty when it was not measured.
pub fn drain(r: &Results) -> String {
    if r.drain.is_empty() {
        return String::new();
    }
    let d = &r.drain;
    let rows = TOOLS.into_iter().filter_map(|tool| {
        let records = med(d, tool, |d| d.records as f64)?;
        Some(format!(
            "| {tool} | {records:.0} | {:.0} | {:.1} µs | {:.0} | {:.0} |",
            med(d, tool, |d| d.records as f64 / d.drain_s).unwrap_or(0.0),
            med(d, tool, |d| d.agent_cpu_s * 1e6 / d.records.max(1) as f64).unwrap_or(0.0),
            med(d, tool, |d| d.dropped as f64).unwrap_or(0.0),
            med(d, tool, |d| d.rescans as f64).unwrap_or(0.0),
        ))
    });
    let columns = [
        "tool",
        "records",
        "records/s",
        "agent CPU a record",
        "dropped",
        "rescans",
    ];
    table(&columns, rows)
}

/// Section 5: the writer's time with each tracker running, beside none.
pub fn overhead(r: &Results) -> String {
    let none = med(&r.overhead, "none", |o| o.seconds);
    let running = [
        "none",
        "fsjournal-ebpf",
        "fsjournal-ebpf, agent paused",
        "fsjournal-fanotify",
        "inotifywait",
    ];
    let rows = running.into_iter().filter_map(|tool| {
        let s = med(&r.overhead, tool, |o| o.seconds)?;
        let slow = none.map_or("—".into(), |n| format!("{:+.1} %", (s / n - 1.0) * 100.0));
        Some(format!("| {tool} | {} | {slow} |", fmt_s(Some(s))))
    });
    table(&["running", "writer time", "slowdown vs none"], rows)
}

/// The notes of the run as a list; empty when there are none.
pub fn notes(r: &Results) -> String {
    let items: Vec<String> = r
        .notes
        .iter()
        .map(|n| format!("- `{}`", n.replace('`', "'")))
        .collect();
    items.join("\n")
}
