//! `cargo xtask bench --micro`: the agent's criterion micro-benchmarks and
//! the journal's memory and size over a 10⁶-record burst
//! (`agent/benches/`), run with `cargo bench -p fsjournal --benches` and
//! summarised into `micro.json` and two sections of the report
//! (`report/micro.rs`).

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
