//! `fsjournal status`: is the agent running, which backend, and per target
//! the cursor, pending paths, lag and last error.

use clap::Args;
use serde::Serialize;

use super::health::{self, Health};
use super::{ago, display_path, human_ms, JournalArgs};
use crate::capture::BackendKind;
use crate::journal::{now_ms, ArmTimes, Journal, KernelCounters, StartRecord};
use crate::target_status::{self, TargetStatus};

/// Arguments of `fsjournal status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when the verdict is not healthy (for cron and
    /// monitoring checks).
    #[arg(long)]
    check: bool,
}

/// The status document (`--json` prints it as is).
#[derive(Debug, Serialize)]
pub struct Status {
    /// Journal directory.
    pub journal: String,
    /// Journal id (hex).
    pub journal_id: String,
    /// Highest sequence number assigned.
    pub last_seq: u64,
    /// Oldest sequence number still in the inspection log.
    pub log_first_seq: u64,
    /// Whether an agent holds the journal open (its RocksDB lock; see
    /// `presence.rs`), whatever its process is named.
    pub agent_running: bool,
    /// Its pid: the lock holder's, else the last recorded one (0 if no agent ever ran).
    pub agent_pid: u32,
    /// Capture backend of the last agent.
    pub backend: String,
    /// The attach ladder's outcome: the rung in use, and why better rungs were refused.
    pub capture_detail: String,
    /// Kernel events the last agent read since its start.
    pub events: u64,
    /// Changes it journaled since its start.
    pub journaled: u64,
    /// Rescan markers written by the last agent since its start.
    pub rescans: u64,
    /// eBPF programs' event counters since their pinned maps were created:
    /// seen, sent, filtered, dropped, spilled, coalesced (see
    /// `fsjournal_common::counter`).
    pub kernel_events: KernelCounters,
    /// When the last agent's capture went live and its directory index was
    /// ready (ms since arming began).
    pub arm_times: ArmTimes,
    /// Agent uptime (ms), 0 when not running.
    pub uptime_ms: u64,
    /// Source roots.
    pub roots: Vec<String>,
    /// One entry per target, by name.
    pub targets: Vec<TargetStatus>,
    /// Capture watermark: changes before it are journaled (ms since the Unix epoch).
    pub watermark_ms: Option<u64>,
    /// How recent agent starts closed the gap while nothing captured, oldest first.
    pub starts: Vec<StartRecord>,
}

/// Reads the status document from a journal.
pub fn collect(journal: &Journal) -> anyhow::Result<Status> {
    let now = now_ms();
    let roots = journal.roots()?;
    let agent = journal.agent_info()?.unwrap_or_default();
    let running = crate::presence::running_agent(journal.path(), agent.pid);
    let agent_running = running.is_some();
    Ok(Status {
        journal: journal.path().display().to_string(),
        journal_id: format!("{:016x}", journal.journal_id()),
        last_seq: journal.last_seq(),
        log_first_seq: journal.log_first_seq(),
        agent_running,
        agent_pid: running.unwrap_or(agent.pid),
        backend: agent.backend,
        capture_detail: agent.capture_detail,
        events: agent.events,
        journaled: agent.journaled,
        rescans: agent.rescans,
        kernel_events: agent.kernel_events,
        arm_times: agent.arm_times,
        uptime_ms: if agent_running {
            now.saturating_sub(agent.started_ms)
        } else {
            0
        },
        watermark_ms: journal.watermark()?.map(|w| w.time_ms),
        starts: journal.starts()?,
        roots: roots
            .iter()
            .map(|p| display_path(p.as_os_str().as_encoded_bytes()))
            .collect(),
        targets: target_status::collect(journal)?,
    })
}

/// Runs `fsjournal status`. Errors: the journal cannot be read; with
/// `--check`, a verdict that is not healthy.
pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let status = collect(&args.journal.open()?)?;
    let health = health::judge(&status);
    if args.json {
        let mut document = serde_json::to_value(&status)?;
        document["health"] = serde_json::to_value(&health)?;
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print(&status, &health);
    }
    anyhow::ensure!(
        health.ok || !args.check,
        "not healthy: {}",
        health.problems.join("; ")
    );
    Ok(())
}

/// Prints the status document as text: the journal, the health verdict,
/// the agent, the roots and the gap, then each target.
fn print(status: &Status, health: &Health) {
    let now = now_ms();
    println!(
        "journal   {} (id {}, last seq {}, log from {})",
        status.journal, status.journal_id, status.last_seq, status.log_first_seq
    );
    print_health(health);
    print_agent(status);
    for root in &status.roots {
        println!("root      {root}");
    }
    if let Some(watermark) = status.watermark_ms {
        println!(
            "watermark {} ago (capture complete up to then)",
            human_ms(now.saturating_sub(watermark))
        );
    }
    if let Some(start) = status.starts.last() {
        let ago = human_ms(now.saturating_sub(start.time_ms));
        println!("last start {ago} ago: gap {}", super::describe_gap(start));
    }
    for target in &status.targets {
        print_target(target, now);
    }
}

/// The `health` line: `ok`, or the count of problems and one line each.
fn print_health(health: &Health) {
    if health.ok {
        println!("health    {}", console::style("ok").green().bold());
    } else {
        let count = format!("{} problem(s)", health.problems.len());
        println!("health    {}", console::style(count).red().bold());
        for problem in &health.problems {
            println!("  - {problem}");
        }
    }
}

/// The `agent` lines: not running, or its pid, backend, uptime, capture
/// figures and (eBPF) kernel counters.
fn print_agent(status: &Status) {
    if !status.agent_running {
        println!("agent     not running");
        return;
    }
    println!(
        "agent     running, pid {}, backend {}, up {}, rescans {}",
        status.agent_pid,
        status.backend,
        human_ms(status.uptime_ms),
        status.rescans
    );
    println!(
        "capture   {}; {} events read, {} changes journaled",
        status.capture_detail, status.events, status.journaled
    );
    println!(
        "armed     capture live after {} ms, directory index ready after {} ms",
        status.arm_times.attached_ms, status.arm_times.index_ready_ms
    );
    if status.backend == BackendKind::Ebpf.as_str() {
        let counts: Vec<String> = status
            .kernel_events
            .named()
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        println!("kernel    events {}", counts.join(", "));
    }
}

/// One target's lines: where it goes, its cursor and backlog, the push in
/// flight, the last push, full syncs, strategy, held paths and
/// verification (`now`: ms since the Unix epoch).
fn print_target(t: &TargetStatus, now: u64) {
    println!("target    {} → {}", t.name, t.state.target);
    println!(
        "  cursor       {}   pending {} paths ({}{})   lag {}",
        t.state.cursor,
        t.pending,
        if t.pending_bytes_estimated {
            "≈ "
        } else {
            ""
        },
        indicatif::HumanBytes(t.pending_bytes),
        human_ms(t.lag_ms)
    );
    if let Some(run) = &t.push_in_flight {
        println!(
            "  pushing      {} run for {} ({} paths listed): {}",
            run.run.mode,
            human_ms(run.age_ms),
            run.run.paths,
            run.run.command
        );
    }
    let last = ago(now, t.state.last_push_ms);
    match &t.state.last_error {
        None => println!("  last push    {last}, ok"),
        Some(e) => println!(
            "  last push    {last}, FAILED ({} in a row): {e}",
            t.state.consecutive_failures
        ),
    }
    print_target_history(t, now);
}

/// A target's full syncs (owed, done), last push strategy, held paths and
/// rolling verification (`now`: ms since the Unix epoch).
fn print_target_history(t: &TargetStatus, now: u64) {
    if let Some(reason) = &t.state.full_sync_needed {
        println!("  full sync    owed: {reason}");
    }
    println!(
        "  full syncs   {} (last: {})",
        t.state.full_syncs,
        t.state.last_full_sync_reason.as_deref().unwrap_or("-")
    );
    if let Some(last) = &t.last_strategy {
        println!(
            "  strategy     {} ({} ago): {}",
            last.strategy,
            human_ms(now.saturating_sub(last.time_ms)),
            last.why
        );
    }
    if !t.state.held.is_empty() {
        let failing = t.state.refused_paths();
        println!(
            "  held         {} paths ({failing} refused by the target or unreadable on the source, retried with backoff)",
            t.state.held.len()
        );
    }
    if t.state.last_verify_ms > 0 {
        println!(
            "  verified     {} units, drift found {} (last slice {} ago)",
            t.state.verified_units,
            t.state.drift_found,
            human_ms(now.saturating_sub(t.state.last_verify_ms))
        );
    }
}
