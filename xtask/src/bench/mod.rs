//! `cargo xtask bench`: fsjournal side by side with lsyncd, `inotifywait -r`
//! and full-scan rsync, on one generated Jenkins-shaped tree, in one run
//! (issue 5).
//!
//! The tree lives on a fresh loop-mounted ext4 image (the eBPF rung refuses
//! tmpfs), the replica on a second one. Each run starts every tool in turn
//! on a cold page cache and measures what applies to it (see
//! `measure.rs`); the figures go to `OUT/results.json`, and a report with
//! tables and SVG plots to `OUT/benchmarks.md` (`--publish`: to
//! `docs/benchmarks.md` and `docs/bench/`). `--micro` runs the agent's
//! micro-benchmarks instead (`micro.rs`).

mod daemon;
mod measure;
mod micro;
mod report;
mod results;
mod sweep;
mod sys;
mod tools;
mod tree;

pub use sys::{ensure_packages, output};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use measure::{Bench, Destination, Plan, Section};
use results::{Machine, Results, Setup};
use sys::Ext4Mount;

/// Tree sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    #[value(name = "100k")]
    K100,
    #[value(name = "1m")]
    M1,
    /// `--large`: only where the disk has room (see [`LARGE_BYTES_PER_FILE`]).
    #[value(name = "5m")]
    M5,
}

/// Disk a run needs per file of the tree: the source and the replica
/// (about 10 KiB a file each) and the change sets' growth, with room for
/// the journals and the start-up sweep's sparse trees.
const LARGE_BYTES_PER_FILE: u64 = 25 * 1024;

/// `cargo xtask bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Tree size (files).
    #[arg(long, value_enum, default_value = "100k")]
    scale: Scale,
    /// The 5M-file tree (`--scale 5m`), disk permitting: the run refuses to
    /// start when the scratch filesystem has less than about 25 KiB free per
    /// file (≈ 120 GiB).
    #[arg(long, conflicts_with_all = ["scale", "quick"])]
    large: bool,
    /// Smoke run: a 10k-file tree, K ∈ {10, 1000}, one run, fewer samples.
    #[arg(long)]
    quick: bool,
    /// Runs (medians are taken over them); default 3, 1 with --quick.
    #[arg(long)]
    runs: Option<u32>,
    /// Directory for results.json, benchmarks.md and the plots.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Also write the report to docs/benchmarks.md, plots and JSON to docs/bench/.
    #[arg(long)]
    publish: bool,
    /// Scratch directory for the images, mounts, journals and logs (cleared at the start;
    /// the tools' logs and configurations stay in SCRATCH/work afterwards).
    #[arg(long, default_value = "/var/tmp/fsj-bench")]
    scratch: PathBuf,
    /// Seed of the tree generator and the change sets.
    #[arg(long, default_value_t = 5)]
    seed: u64,
    /// fsjournal's batch_delay_ms (lsyncd's delay is the same).
    #[arg(long, default_value_t = 200)]
    batch_delay_ms: u64,
    /// CARGO_TARGET_DIR of the release fsjournal build.
    #[arg(long, default_value = "/var/tmp/fsj-release")]
    release_target_dir: PathBuf,
    /// Only regenerate the report from an earlier results.json.
    #[arg(long, value_name = "RESULTS_JSON")]
    report_only: Option<PathBuf>,
    /// File counts of the start-up sweep's trees (sparse files, see
    /// sweep.rs), e.g. `10k,100k,1m`, or `none`; default `1k,5k` with
    /// --quick, else `10k,100k,1m`.
    #[arg(long, value_name = "SIZES", value_parser = sweep::parse_sizes)]
    sweep: Option<sweep::Sizes>,
    /// Measure only the start-up sweep, store it in this results document
    /// (rewritten), then report as usual.
    #[arg(long, value_name = "RESULTS_JSON")]
    sweep_only: Option<PathBuf>,
    /// Only the agent's micro-benchmarks (`cargo bench -p fsjournal --benches`, built in
    /// --release-target-dir): OUT/micro.json and OUT/micro.md; with --publish, docs/bench/micro.json
    /// and docs/benchmarks.md regenerated from docs/bench/results.json.
    #[arg(long, conflicts_with = "report_only")]
    micro: bool,
    /// Change-set sizes (files), e.g. `100000`; default `10,1000,100000`
    /// (`10,1000` with --quick).
    #[arg(long, value_delimiter = ',')]
    ks: Option<Vec<u64>>,
    /// Only these parts of each session, e.g. `sync,rename`; default all.
    /// Start-up is measured whenever a tool starts.
    #[arg(long, value_enum, value_delimiter = ',')]
    sections: Option<Vec<Section>>,
    /// Where the tools push: the replica's directory (`local`) and the same
    /// directory behind an `rsync --daemon` on 127.0.0.1 (`daemon`: change
    /// sets and the renamed job only, with the bytes that crossed).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "local,daemon"
    )]
    targets: Vec<Destination>,
}

/// Every section, the default of `--sections`.
const ALL_SECTIONS: [Section; 7] = [
    Section::Latency,
    Section::Sync,
    Section::Rename,
    Section::Backlog,
    Section::Capture,
    Section::Overhead,
    Section::Sweep,
];

/// The workspace root.
fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// Runs the bench; `build_ebpf` builds the kernel-side programs when their
/// object is missing (the release binary must embed them).
pub fn run(args: BenchArgs, build_ebpf: fn() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let out = workspace().join(&args.out);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    if args.micro {
        return run_micro(&args, &out);
    }
    let mut failure = None;
    let results = match (&args.report_only, &args.sweep_only) {
        (Some(json), _) => read_results(json)?,
        (None, Some(json)) => {
            let mut results = read_results(json)?;
            results.sweep = measure_sweep(&args, build_ebpf)?;
            write_results(json, &results)?;
            results
        }
        (None, None) => {
            let (results, failed) = measure_all(&args, build_ebpf)?;
            failure = failed;
            let json = out.join("results.json");
            write_results(&json, &results)?;
            eprintln!("bench: results in {}", json.display());
            results
        }
    };
    let micro = read_micro(&out);
    let extras = report::Extras {
        micro: micro.as_ref(),
        ..Default::default()
    };
    report::write(&results, &extras, &out, "")?;
    if args.publish {
        publish(&results, None)?;
    }
    match failure {
        Some(e) => Err(e.context("the bench stopped early (what it measured is in the results)")),
        None => Ok(()),
    }
}

/// Publishes a run into docs/: the 100k (or quick) run as
/// `docs/bench/results.json`; a run at one of the larger scales as
/// `docs/bench/<scale>/results.json` with its own report
/// `docs/benchmarks-<scale>.md`. Then regenerates `docs/benchmarks.md` from
/// `docs/bench/results.json`, the largest published run and `micro` (else
/// `docs/bench/micro.json`).
fn publish(results: &Results, micro: Option<&micro::Micro>) -> anyhow::Result<()> {
    let docs = workspace().join("docs");
    let bench = docs.join("bench");
    let scale = results.setup.scale.as_str();
    let own_dir = if report::LARGER_SCALES.contains(&scale) {
        bench.join(scale)
    } else {
        bench.clone()
    };
    std::fs::create_dir_all(&own_dir)?;
    write_results(&own_dir.join("results.json"), results)?;
    if own_dir != bench {
        report::write(
            results,
            &report::Extras::default(),
            &own_dir,
            &format!("bench/{scale}/"),
        )?;
        move_report(&own_dir, &docs.join(format!("benchmarks-{scale}.md")))?;
    }
    let main = read_results(&bench.join("results.json"))?;
    let larger = report::LARGER_SCALES
        .iter()
        .rev()
        .find_map(|scale| read_results(&bench.join(scale).join("results.json")).ok());
    let stored_micro = read_micro(&bench);
    let extras = report::Extras {
        micro: micro.or(stored_micro.as_ref()),
        larger: larger.as_ref(),
    };
    report::write(&main, &extras, &bench, "bench/")?;
    move_report(&bench, &docs.join("benchmarks.md"))
}

/// Moves `dir/benchmarks.md` to `to`.
fn move_report(dir: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(dir.join("benchmarks.md"), to)
        .with_context(|| format!("cannot move the report to {}", to.display()))?;
    eprintln!("bench: report in {}", to.display());
    Ok(())
}

/// Reads a results document.
fn read_results(json: &Path) -> anyhow::Result<Results> {
    let text =
        std::fs::read_to_string(json).with_context(|| format!("cannot read {}", json.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is no results document", json.display()))
}

/// Writes a results document.
fn write_results(json: &Path, results: &Results) -> anyhow::Result<()> {
    std::fs::write(json, serde_json::to_string_pretty(results)?)
        .with_context(|| format!("cannot write {}", json.display()))
}

/// `dir/micro.json`, if an earlier `--micro` wrote one there.
fn read_micro(dir: &Path) -> Option<micro::Micro> {
    let text = std::fs::read_to_string(dir.join("micro.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// `--micro`: runs the micro-benchmarks, writes `out/micro.json` and
/// `out/micro.md`; with `--publish`, `docs/bench/micro.json` and the report
/// regenerated from `docs/bench/results.json`.
fn run_micro(args: &BenchArgs, out: &Path) -> anyhow::Result<()> {
    let micro = micro::run(&workspace(), &args.release_target_dir, git_describe())?;
    let json = serde_json::to_string_pretty(&micro)?;
    std::fs::write(out.join("micro.json"), &json)
        .with_context(|| format!("cannot write {}", out.join("micro.json").display()))?;
    let md = report::micro_sections(Some(&micro))?;
    std::fs::write(out.join("micro.md"), md)
        .with_context(|| format!("cannot write {}", out.join("micro.md").display()))?;
    eprintln!(
        "bench: micro-benchmarks in {}",
        out.join("micro.md").display()
    );
    if args.publish {
        let bench = workspace().join("docs/bench");
        std::fs::create_dir_all(&bench)?;
        std::fs::write(bench.join("micro.json"), json)?;
        let results = read_results(&bench.join("results.json"))
            .context("no docs/bench/results.json to regenerate docs/benchmarks.md from")?;
        publish(&results, Some(&micro))?;
    }
    Ok(())
}

/// `git describe --always --dirty` of the work tree, empty when git fails.
fn git_describe() -> String {
    Command::new("git")
        .current_dir(workspace())
        .args(["describe", "--always", "--dirty"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Measures everything; the results so far, and the error that cut the
/// runs short if one did.
fn measure_all(
    args: &BenchArgs,
    build_ebpf: fn() -> anyhow::Result<()>,
) -> anyhow::Result<(Results, Option<anyhow::Error>)> {
    let started = Instant::now();
    let scale = if args.large { Scale::M5 } else { args.scale };
    let (files, scale) = match (args.quick, scale) {
        (true, _) => (10_000, "quick (10k)"),
        (false, Scale::K100) => (100_000, "100k"),
        (false, Scale::M1) => (1_000_000, "1m"),
        (false, Scale::M5) => (5_000_000, "5m"),
    };
    check_room(&args.scratch, files)?;
    sys::catch_interrupts();
    sys::ensure_packages(&["rsync", "e2fsprogs", "lsyncd", "inotify-tools"])?;
    let bin = build_agent(&args.release_target_dir, build_ebpf)?;
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let default_ks = if args.quick {
        vec![10, 1000]
    } else {
        vec![10, 1000, 100_000]
    };
    let plan = Plan {
        sections: args.sections.clone().unwrap_or(ALL_SECTIONS.to_vec()),
        destinations: args.targets.clone(),
        ks: args.ks.clone().unwrap_or(default_ks),
        latency_samples: if args.quick { 10 } else { 30 },
        latency_interval_ms: 500,
        burst_files: files.min(100_000),
        burst_writers: vec![1, 2],
        overhead_files: if args.quick { 10_000 } else { 100_000 },
        batch_delay_ms: args.batch_delay_ms,
    };
    let mut results = Results {
        machine: machine(&bin),
        ..Default::default()
    };
    results.setup = Setup {
        scale: scale.into(),
        seed: args.seed,
        runs,
        batch_delay_ms: plan.batch_delay_ms,
        ks: plan.ks.clone(),
        burst_files: plan.burst_files,
        overhead_files: plan.overhead_files,
        ..Default::default()
    };

    let scratch = &args.scratch;
    sys::unmount_leftovers(scratch);
    if scratch.exists() {
        std::fs::remove_dir_all(scratch)
            .with_context(|| format!("cannot clear {}", scratch.display()))?;
    }
    let work = scratch.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    // About 10 KiB a file; change sets keep the file count, logs grow: 8× room, at least 8 GiB (sparse).
    let image_bytes = (files * 80 * 1024).max(8 << 30);
    let inodes = files * 4 + 200_000;
    let src = Ext4Mount::create(
        &scratch.join("src.img"),
        &scratch.join("src"),
        image_bytes,
        inodes,
    )?;
    let dst = Ext4Mount::create(
        &scratch.join("dst.img"),
        &scratch.join("dst"),
        image_bytes,
        inodes,
    )?;
    let _watches =
        sys::Sysctl::raise("/proc/sys/fs/inotify/max_user_watches", files * 2 + 100_000)?;

    eprintln!(
        "bench: generating a {scale} Jenkins-shaped tree in {}",
        src.dir.display()
    );
    let t = Instant::now();
    let tree = tree::Tree::generate(&src.dir, files, args.seed)?;
    output(&mut Command::new("sync"))?;
    results.setup.generate_s = t.elapsed().as_secs_f64();
    (results.setup.files, results.setup.dirs, results.setup.bytes) =
        (tree.files, tree.dirs, tree.bytes);
    eprintln!(
        "bench: {} files, {} directories, {:.0} MiB in {:.1} s",
        tree.files,
        tree.dirs,
        tree.bytes as f64 / 1048576.0,
        results.setup.generate_s
    );
    results.setup.first_copy_s = tools::full_rsync(&src.dir, &dst.dir)?;
    eprintln!(
        "bench: first full copy into the replica: {:.1} s",
        results.setup.first_copy_s
    );

    let mut bench = Bench::new(
        src.dir.clone(),
        dst.dir.clone(),
        work,
        bin,
        tree,
        plan,
        results,
    );
    if bench.plan.destinations.contains(&Destination::Daemon) {
        bench.daemon = Some(daemon::RsyncDaemon::start(
            &bench.dst,
            &bench.work,
            free_port()?,
        )?);
    }
    let mut failure = None;
    for run in 1..=runs {
        if let Err(e) = bench.run(run) {
            // Keep what was measured: a long run that fails late still reports.
            bench
                .results
                .notes
                .push(format!("bench aborted in run {run}: {e:#}"));
            failure = Some(e);
            break;
        }
    }
    let mut results = bench.results;
    if failure.is_none() && bench.plan.has(Section::Sweep) {
        let sizes = sweep_sizes(args);
        match sweep::run(&bench.bin, scratch, &sizes, args.seed) {
            Ok(points) => results.sweep = points,
            Err(e) => failure = Some(e.context("start-up sweep")),
        }
    }
    results.duration_s = started.elapsed().as_secs_f64();
    eprintln!("bench: done in {:.0} s", results.duration_s);
    Ok((results, failure))
}

/// A TCP port on 127.0.0.1 nothing listens on now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Refuses a run whose tree would not fit in the scratch directory's
/// filesystem: `files × LARGE_BYTES_PER_FILE` bytes must be free there.
fn check_room(scratch: &Path, files: u64) -> anyhow::Result<()> {
    let existing = scratch
        .ancestors()
        .find(|dir| dir.exists())
        .unwrap_or(Path::new("/"));
    let (needed, free) = (
        files * LARGE_BYTES_PER_FILE,
        sys::free_bytes(existing) + sys::images_bytes(scratch),
    );
    if free < needed {
        bail!(
            "a {files}-file run needs about {:.0} GiB in {} and {:.0} GiB is free there \
             (counting the scratch directory it clears): free some, or pass --scratch on a larger disk",
            needed as f64 / GIB,
            scratch.display(),
            free as f64 / GIB
        );
    }
    Ok(())
}

const GIB: f64 = (1u64 << 30) as f64;

/// The sweep's tree sizes (files).
fn sweep_sizes(args: &BenchArgs) -> Vec<u64> {
    match (&args.sweep, args.quick) {
        (Some(sizes), _) => sizes.0.clone(),
        (None, true) => vec![1_000, 5_000],
        (None, false) => vec![10_000, 100_000, 1_000_000],
    }
}

/// `--sweep-only`: the start-up sweep alone, in a cleared scratch directory.
fn measure_sweep(
    args: &BenchArgs,
    build_ebpf: fn() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<results::SweepPoint>> {
    sys::catch_interrupts();
    sys::ensure_packages(&["e2fsprogs", "inotify-tools"])?;
    let bin = build_agent(&args.release_target_dir, build_ebpf)?;
    sys::unmount_leftovers(&args.scratch);
    if args.scratch.exists() {
        std::fs::remove_dir_all(&args.scratch)
            .with_context(|| format!("cannot clear {}", args.scratch.display()))?;
    }
    std::fs::create_dir_all(&args.scratch)?;
    sweep::run(&bin, &args.scratch, &sweep_sizes(args), args.seed)
}

/// Builds the release agent (embedding the eBPF object) and returns its path.
fn build_agent(
    target_dir: &Path,
    build_ebpf: fn() -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let object = workspace().join("ebpf/programs/target/bpfel-unknown-none/release/fsjournal-ebpf");
    if !object.exists() {
        build_ebpf()?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!(
        "bench: cargo build --release -p fsjournal (CARGO_TARGET_DIR={})",
        target_dir.display()
    );
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "--release", "-q", "-p", "fsjournal"])
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .context("cannot run cargo build --release -p fsjournal")?;
    if !status.success() {
        bail!("cargo build --release -p fsjournal failed: {status}");
    }
    Ok(target_dir.join("release/fsjournal"))
}

/// Machine and versions.
fn machine(bin: &Path) -> Machine {
    let first_line = |cmd: &mut Command| {
        cmd.output()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                let line = String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                line.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .unwrap_or_default()
    };
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_total_kib: sys::meminfo_kib("MemTotal"),
        kernel: first_line(Command::new("uname").arg("-r")),
        os,
        rsync: first_line(Command::new("rsync").arg("--version")),
        lsyncd: first_line(Command::new("lsyncd").arg("--version")),
        inotifywait: first_line(Command::new("inotifywait").arg("--help")),
        fsjournal: first_line(Command::new(bin).arg("--version")),
        commit: git_describe(),
    }
}
