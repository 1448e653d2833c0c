//! `cargo xtask bench --micro`: the agent's criterion micro-benchmarks and
//! the journal's memory and size over a 10⁶-record burst
//! (`agent/benches/`), run with `cargo bench -p fsjournal --benches` and
//! summarised into `micro.json` and two sections of the report.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Everything one `--micro` run measured.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Micro {
    /// `git describe --always --dirty` of the work tree.
    pub commit: String,
    /// Criterion benchmarks, in the order their results were found.
    pub benches: Vec<MicroBench>,
    /// `journal_footprint` scenarios.
    pub footprint: Vec<Footprint>,
}

/// One criterion benchmark: criterion's typical time per iteration (the
/// slope of its linear regression, else the mean) and its 95 % interval.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MicroBench {
    /// `group/function/value`, e.g. `append/distinct paths/1000`.
    pub id: String,
    /// Time per iteration (ns): point estimate, lower and upper bound.
    pub ns: f64,
    pub ns_low: f64,
    pub ns_high: f64,
    /// Elements (records, paths, directories, events) per iteration; 0 when
    /// the bench declares no throughput.
    pub elements: u64,
}

/// One `journal_footprint` scenario (see agent/benches/journal_footprint.rs).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Footprint {
    pub scenario: String,
    pub records: u64,
    pub seconds: f64,
    /// RSS of the process before the journal was opened, its peak
    /// (`VmHWM`) and at the end (KiB).
    pub rss_before_kib: u64,
    pub peak_rss_kib: u64,
    pub rss_kib: u64,
    /// (records appended, journal directory bytes) after every tenth.
    pub journal_bytes: Vec<(u64, u64)>,
}

/// Runs the benches with `CARGO_TARGET_DIR=target_dir` (their output is
/// echoed) and collects the results this run wrote.
///
/// Errors: cargo bench failed, or criterion's result files are unreadable.
pub fn run(workspace: &Path, target_dir: &Path, commit: String) -> anyhow::Result<Micro> {
    let started = SystemTime::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!(
        "bench: cargo bench -p fsjournal --benches (CARGO_TARGET_DIR={})",
        target_dir.display()
    );
    let mut child = Command::new(cargo)
        .current_dir(workspace)
        .args(["bench", "-p", "fsjournal", "--benches"])
        .env("CARGO_TARGET_DIR", target_dir)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo bench")?;
    let mut micro = Micro {
        commit,
        ..Micro::default()
    };
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        if line.starts_with('{') {
            if let Ok(footprint) = serde_json::from_str::<Footprint>(&line) {
                micro.footprint.push(footprint);
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo bench -p fsjournal --benches failed: {status}");
    }
    collect(&target_dir.join("criterion"), started, &mut micro.benches)?;
    micro.benches.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(micro)
}

/// Finds every `new/benchmark.json` below `dir` written since `since` and
/// reads it with its `estimates.json`.
fn collect(dir: &Path, since: SystemTime, out: &mut Vec<MicroBench>) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Benchmark {
        full_id: String,
        throughput: Option<serde_json::Value>,
    }
    #[derive(Deserialize)]
    struct Estimate {
        point_estimate: f64,
        confidence_interval: Interval,
    }
    #[derive(Deserialize)]
    struct Interval {
        lower_bound: f64,
        upper_bound: f64,
    }
    #[derive(Deserialize)]
    struct Estimates {
        mean: Estimate,
        slope: Option<Estimate>,
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let new = path.join("new/benchmark.json");
        let fresh = std::fs::metadata(&new)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since);
        if fresh {
            let read = |name: &str| {
                std::fs::read_to_string(path.join("new").join(name))
                    .with_context(|| format!("cannot read {}/new/{name}", path.display()))
            };
            let bench: Benchmark = serde_json::from_str(&read("benchmark.json")?)?;
            let estimates: Estimates = serde_json::from_str(&read("estimates.json")?)?;
            let typical = estimates.slope.unwrap_or(estimates.mean);
            out.push(MicroBench {
                id: bench.full_id,
                ns: typical.point_estimate,
                ns_low: typical.confidence_interval.lower_bound,
                ns_high: typical.confidence_interval.upper_bound,
                elements: bench
                    .throughput
                    .and_then(|t| t.get("Elements")?.as_u64())
                    .unwrap_or(0),
            });
        } else if path.is_dir() {
            collect(&path, since, out)?;
        }
    }
    Ok(())
}

/// A duration in ns, in the unit that suits it.
fn time(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.1} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

/// A rate per second.
fn rate(per_s: f64) -> String {
    match per_s {
        r if r >= 1e6 => format!("{:.2} M/s", r / 1e6),
        r if r >= 1e3 => format!("{:.0} k/s", r / 1e3),
        r => format!("{r:.0} /s"),
    }
}

/// The report's micro-benchmark sections (markdown); says how to produce
/// them when `micro` is `None`.
pub fn sections(micro: Option<&Micro>, md: &mut String) {
    md.push_str("## 6. Micro-benchmarks (criterion)\n\n");
    let Some(m) = micro else {
        md.push_str("Not run: `cargo xtask bench --micro --publish`.\n\n");
        return;
    };
    let _ = write!(
        md,
        "`cargo xtask bench --micro` ({commit}): `cargo bench -p fsjournal --benches` (agent/benches/, release build, 10 samples each).\n\
Journals live in a temporary directory on the machine's disk; every append and acknowledgement is a synced write,\n\
as in the agent. `append` grows one journal across all its iterations (steady state, flushes and compactions included);\n\
the directory index is built on a warm page cache; fanotify buffers are synthetic.\n\n\
| benchmark | time per iteration | 95 % interval | elements per iteration | throughput |\n| --- | --- | --- | --- | --- |\n",
        commit = m.commit
    );
    for b in &m.benches {
        let throughput = if b.elements > 0 {
            rate(b.elements as f64 / (b.ns / 1e9))
        } else {
            "—".into()
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} – {} | {} | {throughput} |",
            b.id,
            time(b.ns),
            time(b.ns_low),
            time(b.ns_high),
            b.elements
        );
    }
    md.push_str("\n## 7. Journal memory and size over a burst\n\n");
    let _ = write!(
        md,
        "agent/benches/journal_footprint.rs: each scenario appends records to distinct paths, 1,000 per write, in a fresh\n\
process; `burst`: nothing acknowledges; `burst+ack`: one target acknowledges every 10,000 records (pending entries\n\
trimmed); `burst+ack+retention`: and the inspection log is cut to its last 100,000 records each time. RSS: the whole\n\
bench process (KiB → MiB), `before` = before the journal was opened. Journal: the RocksDB directory (WAL included).\n\n\
| scenario | records | time | records/s | RSS before | peak RSS | RSS at end | journal after each tenth (MB) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for f in &m.footprint {
        let sizes: Vec<String> = f
            .journal_bytes
            .iter()
            .map(|(_, bytes)| format!("{:.0}", *bytes as f64 / 1e6))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} s | {} | {:.1} MiB | **{:.1} MiB** | {:.1} MiB | {} |",
            f.scenario,
            f.records,
            f.seconds,
            rate(f.records as f64 / f.seconds),
            f.rss_before_kib as f64 / 1024.0,
            f.peak_rss_kib as f64 / 1024.0,
            f.rss_kib as f64 / 1024.0,
            sizes.join(", ")
        );
    }
    md.push('\n');
}
