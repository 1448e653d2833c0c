//! `cargo xtask test-kernels [6.1|6.12|all] [--only BIN[::FILTER]]... [--keep]`:
//! the project's integration test binaries, built on the host, run as root
//! inside Debian's production kernels booted under QEMU.
//!
//! What runs in a guest is [`GUEST_TESTS`], the one list to extend. Each
//! kernel boots once ([`guest`]) from a cached package, vmlinux and
//! initramfs ([`image`]); the guest sees the host's `/` over 9p, so the test
//! binaries, the agent they start (`CARGO_BIN_EXE_fsjournal`, an absolute
//! path), rsync, mkfs.ext4 and mount are the host's own. Every binary runs
//! with `--test-threads=1` (emulation is slow), `FSJ_GUEST_KERNEL=<uname -r>` and [`GUEST_ENV`]
//! in its environment.

mod guest;
mod image;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One test binary run in each guest: `binary` is the integration test's
/// name (`tests/<binary>.rs`, its `[[test]]` name in agent/Cargo.toml) and
/// `args` its libtest arguments: name filters (a test runs when its name
/// contains any of them; none: every test), `--exact` (filters are whole
/// names), `--skip PATTERN`. `--test-threads=1` is added.
pub struct GuestTest {
    /// Integration test binary.
    pub binary: &'static str,
    /// libtest arguments: filters and options.
    pub args: &'static [&'static str],
}

/// What `cargo xtask test-kernels` runs in every guest, in order.
///
/// On Debian's 6.1 and 6.12 the eBPF backend runs the VFS-hook rung (fexit;
/// those kernels lack the tracepoint rung's `timestamp:ctime_*`
/// tracepoints), and every eBPF test runs with `FSJ_EXPECT_RUNG=vfs-hooks`
/// so that a silent fall-back to another rung fails it. The set covers
/// issue 15's list: every kind of change (local ext4 and an rsync daemon on
/// the guest's 127.0.0.1), `auto` picking the VFS-hook rung, the in-kernel
/// root filter, hard links, replaced directories, parity with fanotify,
/// ring-buffer drops → rescan, pinned capture across SIGTERM and SIGKILL
/// (and a pinned backlog of a large share of the tree going as one full
/// rsync at start), detached programs, and a smaller randomized churn with SIGKILLs
/// ([`GUEST_ENV`]). The rest of the eBPF tests pass there too (`--only
/// downtime::ebpf`, `--only replace::ebpf_`), at about 30 s each under
/// emulation. To add a test, add its binary and a filter that selects it,
/// then check it with `cargo xtask test-kernels --only <binary>`
/// (`--only <binary>::<filter>` tries a filter without editing this table).
pub const GUEST_TESTS: &[GuestTest] = &[
    GuestTest {
        binary: "end_to_end",
        args: &[
            "--exact",
            "ebpf_replica_follows_every_kind_of_change_on_ext4",
            "ebpf_replica_follows_every_kind_of_change_on_xfs",
            "ebpf_replica_follows_every_kind_of_change_through_an_rsync_daemon",
            "auto_backend_arms_the_best_ebpf_rung_on_ext4",
            "ebpf_changes_beside_the_root_on_its_filesystem_stay_out_of_the_journal",
            "ebpf_write_through_one_name_of_a_hard_link_reaches_every_name",
        ],
    },
    GuestTest {
        binary: "replace",
        args: &[
            "--exact",
            "ebpf_directory_renamed_away_and_another_put_at_its_name",
            "ebpf_checkout_like_replacement_of_nested_directories",
        ],
    },
    GuestTest {
        binary: "parity",
        args: &[],
    },
    GuestTest {
        binary: "overflow",
        args: &["ebpf_"],
    },
    GuestTest {
        binary: "downtime",
        args: &[
            "--exact",
            "ebpf_pinned_programs_capture_while_the_agent_is_stopped",
            "ebpf_pinned_programs_capture_after_a_kill9_mid_push",
            "ebpf_backlog_that_overflowed_while_down_falls_back_to_a_gap_scan",
            "ebpf_a_pinned_backlog_goes_as_one_full_rsync",
        ],
    },
    GuestTest {
        binary: "interlocks",
        args: &["ebpf_"],
    },
    GuestTest {
        binary: "churn",
        args: &["ebpf_"],
    },
    GuestTest {
        binary: "renames",
        args: &["ebpf_"],
    },
];

/// The environment of every guest test: the rung the eBPF tests must see,
/// how much longer their waits may take under emulation (`FSJ_TIME_SCALE`,
/// which `tests/support` multiplies every timeout by), and the churn's
/// smaller size (the host runs 20,000 operations and 10 SIGKILLs).
pub const GUEST_ENV: &[(&str, &str)] = &[
    ("FSJ_EXPECT_RUNG", "vfs-hooks"),
    ("FSJ_TIME_SCALE", "8"),
    ("FSJ_CHURN_OPS", "3000"),
    ("FSJ_CHURN_KILLS", "4"),
];

/// The kernels `all` means: (series, the release used when apt lists no
/// newer one of that series or its download fails).
const KERNELS: [(&str, &str); 2] = [("6.1", "6.1.0-50-amd64"), ("6.12", "6.12.111+deb12-amd64")];

/// Host packages: QEMU and its qboot firmware, busybox-static and cpio for
/// the initramfs, kmod (modprobe, depmod) for the module list, zstd and
/// xz-utils for compressed kernels and modules.
const PACKAGES: [&str; 6] = [
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "kmod",
    "zstd",
    "xz-utils",
];

/// Marks the guest script's own lines on the serial stream.
const MARK: &str = "@@fsj ";

/// Arguments of `cargo xtask test-kernels`.
#[derive(clap::Args)]
pub struct KernelsArgs {
    /// Kernels: 6.1, 6.12, all, or a full Debian release (e.g. 6.1.0-50-amd64).
    #[arg(default_value = "all")]
    kernel: String,
    /// Run only this test binary's table entries (the whole binary if the
    /// table has none), or BIN::FILTER: that binary with that libtest
    /// filter. Repeatable.
    #[arg(long, value_name = "BIN[::FILTER]")]
    only: Vec<String>,
    /// Keep each guest's run directory (script, console log, status) under
    /// /var/tmp/fsjournal-kernels/runs.
    #[arg(long)]
    keep: bool,
    /// Minutes a guest may run before QEMU is killed.
    #[arg(long, default_value_t = 30)]
    timeout_minutes: u64,
    /// Run this bash command in each guest instead of the tests (nothing is
    /// built; for looking around a kernel).
    #[arg(long, value_name = "COMMAND", conflicts_with = "only")]
    run: Option<String>,
}

/// A test binary to run in the guest with its libtest arguments
/// (`args`), or (`--run`) a bash command.
struct Planned {
    binary: String,
    args: Vec<String>,
    command: Option<String>,
}

/// One binary's outcome in one guest.
struct BinaryResult {
    label: String,
    passed: u64,
    failed: u64,
    ignored: u64,
    status: Option<i32>,
    took: Duration,
    /// A test binary, not a `--run` command.
    is_test: bool,
}

impl BinaryResult {
    /// Passed: exit 0, no failed test, and at least one test ran (a filter
    /// that matches nothing means the table went stale).
    fn ok(&self) -> bool {
        self.status == Some(0) && self.failed == 0 && (self.passed > 0 || !self.is_test)
    }
}

/// One guest's outcome.
struct KernelReport {
    series: String,
    release: String,
    facts: String,
    /// Fetching and building what the guest boots (s; near 0 when cached).
    prepared: Duration,
    /// From QEMU's start to the guest script's first line.
    boot: Option<Duration>,
    results: Vec<BinaryResult>,
    /// What went wrong outside the tests (no status, timeout, preparation).
    problem: Option<String>,
    took: Duration,
}

impl KernelReport {
    fn ok(&self) -> bool {
        self.problem.is_none() && self.results.iter().all(BinaryResult::ok)
    }
}

/// The task: host packages, setup and eBPF build (as `cargo xtask test`),
/// the test binaries, then one guest per kernel; a summary at the end.
/// Errors: any failed test, a guest without status, a failed preparation.
pub fn test_kernels(args: KernelsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::bench::ensure_packages(&PACKAGES)?;
    let (plan, binaries) = match &args.run {
        Some(command) => (vec![Planned::command(command)], BTreeMap::new()),
        None => {
            crate::setup()?;
            crate::build_ebpf()?;
            (plan(&args.only)?, build_test_binaries()?)
        }
    };
    let mut reports = Vec::new();
    for (series, pinned) in kernels(&args.kernel)? {
        let report = run_kernel(&series, &pinned, &plan, &binaries, &args);
        print_kernel(&report);
        reports.push(report);
    }
    summarize(&reports, started.elapsed())
}

/// (series, fallback release) for the `kernel` argument.
fn kernels(kernel: &str) -> anyhow::Result<Vec<(String, String)>> {
    let pair = |(s, r): &(&str, &str)| (s.to_string(), r.to_string());
    match kernel {
        "all" => Ok(KERNELS.iter().map(pair).collect()),
        _ => match KERNELS.iter().find(|(s, _)| *s == kernel) {
            Some(k) => Ok(vec![pair(k)]),
            None if kernel.ends_with("-amd64") => Ok(vec![(kernel.into(), kernel.into())]),
            None => {
                bail!("unknown kernel {kernel:?}: 6.1, 6.12, all or a release like 6.1.0-50-amd64")
            }
        },
    }
}

/// What to run: [`GUEST_TESTS`], or what `--only` selects from it.
fn plan(only: &[String]) -> anyhow::Result<Vec<Planned>> {
    let planned = |t: &GuestTest| Planned {
        binary: t.binary.into(),
        args: t.args.iter().map(|f| f.to_string()).collect(),
        command: None,
    };
    if only.is_empty() {
        return Ok(GUEST_TESTS.iter().map(planned).collect());
    }
    let mut plan = Vec::new();
    for spec in only {
        let (binary, filter) = spec.split_once("::").unwrap_or((spec, ""));
        if binary.is_empty() {
            bail!("--only {spec:?}: no test binary named");
        }
        let from_table: Vec<Planned> = GUEST_TESTS
            .iter()
            .filter(|t| t.binary == binary)
            .map(planned)
            .collect();
        if filter.is_empty() && !from_table.is_empty() {
            plan.extend(from_table);
        } else {
            plan.push(Planned {
                binary: binary.into(),
                args: [filter]
                    .iter()
                    .filter(|f| !f.is_empty())
                    .map(|f| f.to_string())
                    .collect(),
                command: None,
            });
        }
    }
    Ok(plan)
}

impl Planned {
    /// A `--run` command.
    fn command(command: &str) -> Planned {
        Planned {
            binary: "command".into(),
            args: vec![command.into()],
            command: Some(command.into()),
        }
    }
}

/// `cargo test --workspace --no-run --message-format=json`: each of the
/// `fsjournal` package's integration tests by name → (executable, package
/// directory: the tests' working directory under cargo). `--workspace`, as
/// `cargo xtask test`, not `-p fsjournal`: features unify differently, and
/// `-p` would build a second set of binaries where CI has just built these.
/// Errors: the build fails.
fn build_test_binaries() -> anyhow::Result<BTreeMap<String, (PathBuf, PathBuf)>> {
    eprintln!("test-kernels: building the test binaries");
    let out = Command::new(crate::cargo())
        .args(["test", "--workspace", "--no-run", "--message-format=json"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo test --no-run")?;
    if !out.status.success() {
        bail!("cargo test --no-run failed: {}", out.status);
    }
    let mut binaries = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let target = &msg["target"];
        let is_test = target["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"))
            && msg["package_id"]
                .as_str()
                .is_some_and(|id| id.contains("#fsjournal@") || id.starts_with("fsjournal "));
        if let (true, Some(exe), Some(name), Some(manifest)) = (
            is_test,
            msg["executable"].as_str(),
            target["name"].as_str(),
            msg["manifest_path"].as_str(),
        ) {
            let dir = Path::new(manifest)
                .parent()
                .unwrap_or(Path::new("/"))
                .to_path_buf();
            binaries.insert(name.to_string(), (PathBuf::from(exe), dir));
        }
    }
    Ok(binaries)
}

/// Prepares, boots and reads one kernel's guest; never fails: what went
/// wrong lands in the report.
fn run_kernel(
    series: &str,
    pinned: &str,
    plan: &[Planned],
    binaries: &BTreeMap<String, (PathBuf, PathBuf)>,
    args: &KernelsArgs,
) -> KernelReport {
    let started = Instant::now();
    let mut report = KernelReport {
        series: series.into(),
        release: pinned.into(),
        facts: String::new(),
        prepared: Duration::ZERO,
        boot: None,
        results: Vec::new(),
        problem: None,
        took: Duration::ZERO,
    };
    if let Err(e) = boot_and_read(series, pinned, plan, binaries, args, &mut report) {
        report.problem = Some(format!("{e:#}"));
    }
    report.took = started.elapsed();
    report
}

/// [`run_kernel`]'s work; fills `report` as lines arrive. Errors: the
/// kernel cannot be prepared, the guest gave no status or timed out.
fn boot_and_read(
    series: &str,
    pinned: &str,
    plan: &[Planned],
    binaries: &BTreeMap<String, (PathBuf, PathBuf)>,
    args: &KernelsArgs,
    report: &mut KernelReport,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let kernel = prepare_kernel(series, pinned)?;
    report.prepared = started.elapsed();
    report.release = kernel.release.clone();
    let script = guest_script(&kernel.release, plan, binaries)?;
    let mut run = guest::RunDir::create(&kernel.release)?;
    run.keep = args.keep;
    eprintln!("test-kernels: booting {} ({series})", kernel.release);
    let booted = Instant::now();
    let mut reader = StreamReader::new(series, plan, booted);
    let timeout = Duration::from_secs(args.timeout_minutes * 60);
    let outcome = guest::boot(&kernel, &run, &script, timeout, |line| reader.line(line))?;
    reader.finish_into(report);
    let problem = match (outcome.timed_out, outcome.status) {
        (true, _) => Some(format!(
            "timed out after {} min: qemu killed",
            args.timeout_minutes
        )),
        (false, None) => Some("the guest reported no exit status".to_string()),
        (false, Some(_)) => None,
    };
    if let Some(problem) = problem {
        run.keep = true;
        bail!(
            "{problem}; console log tail:\n{}",
            guest::tail(&outcome.console, 40)
        );
    }
    if !report.ok() {
        run.keep = true;
    }
    Ok(())
}

/// The newest listed release of `series` (else `pinned`), ready to boot;
/// falls back to `pinned` when the newest cannot be fetched. The cache then
/// keeps only that release of the series.
fn prepare_kernel(series: &str, pinned: &str) -> anyhow::Result<image::Kernel> {
    let release = image::resolve(series, pinned);
    let kernel = match image::prepare(&release) {
        Ok(kernel) => kernel,
        Err(e) if release != pinned => {
            eprintln!("test-kernels: {release}: {e:#}; falling back to {pinned}");
            image::prepare(pinned)?
        }
        Err(e) => return Err(e),
    };
    image::prune(series, &kernel.release);
    Ok(kernel)
}

/// The bash script the guest runs: the facts line, then each planned binary
/// between begin and end marks (the end mark carries its exit status). Its
/// own exit status: the number of binaries that failed. Errors: a planned
/// binary that `cargo test --no-run` did not build.
fn guest_script(
    release: &str,
    plan: &[Planned],
    binaries: &BTreeMap<String, (PathBuf, PathBuf)>,
) -> anyhow::Result<String> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let mut s = format!(
        "export PATH={} HOME=/root TERM=dumb LANG=C.UTF-8 RUST_BACKTRACE=1\n\
         export FSJ_GUEST_KERNEL={}\n\
         {}\
         echo \"{MARK}facts uname -r: $(uname -r); LSMs: $(cat /sys/kernel/security/lsm 2>/dev/null || echo unknown); \
         BTF: $(test -e /sys/kernel/btf/vmlinux && echo yes || echo no)\"\n\
         failed=0\n",
        quote(&path),
        quote(release),
        GUEST_ENV
            .iter()
            .map(|(name, value)| format!("export {name}={}\n", quote(value)))
            .collect::<String>()
    );
    for (i, planned) in plan.iter().enumerate() {
        if let Some(command) = &planned.command {
            s += &format!(
                "echo '{MARK}begin {i}'\n( {command}\n)\nrc=$?\necho \"{MARK}end {i} $rc\"\n"
            );
            s += "[ $rc = 0 ] || failed=$((failed + 1))\n";
            continue;
        }
        let Some((exe, dir)) = binaries.get(&planned.binary) else {
            bail!(
                "no test binary {:?}; cargo built: {}",
                planned.binary,
                binaries.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        let mut cmd = quote(&exe.display().to_string());
        for arg in &planned.args {
            cmd += &format!(" {}", quote(arg));
        }
        s += &format!(
            "cd {dir}\necho '{MARK}begin {i}'\n{cmd} --test-threads=1\nrc=$?\n\
             echo \"{MARK}end {i} $rc\"\n[ $rc = 0 ] || failed=$((failed + 1))\n",
            dir = quote(&dir.display().to_string())
        );
    }
    s += "exit $failed\n";
    Ok(s)
}

/// `text` in single quotes for bash.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Reads the guest's stream: echoes test output with a `[series]` prefix,
/// and turns marks and libtest's `test result:` lines into results.
struct StreamReader<'a> {
    series: &'a str,
    plan: &'a [Planned],
    booted: Instant,
    boot: Option<Duration>,
    facts: String,
    current: Option<(usize, Instant, [u64; 3])>,
    results: Vec<BinaryResult>,
}

impl<'a> StreamReader<'a> {
    fn new(series: &'a str, plan: &'a [Planned], booted: Instant) -> Self {
        StreamReader {
            series,
            plan,
            booted,
            boot: None,
            facts: String::new(),
            current: None,
            results: Vec::new(),
        }
    }

    /// One line from the guest.
    fn line(&mut self, line: &str) {
        let Some(mark) = line.strip_prefix(MARK) else {
            if let (Some((_, _, counts)), Some(c)) = (&mut self.current, crate::result_counts(line))
            {
                *counts = c;
            }
            println!("[{}] {line}", self.series);
            return;
        };
        if let Some(facts) = mark.strip_prefix("facts ") {
            self.boot = Some(self.booted.elapsed());
            self.facts = facts.to_string();
            println!(
                "[{}] booted in {:.1} s; {facts}",
                self.series,
                self.boot.unwrap_or_default().as_secs_f64()
            );
        } else if let Some(i) = mark.strip_prefix("begin ").and_then(|i| i.parse().ok()) {
            self.current = Some((i, Instant::now(), [0; 3]));
            println!("[{}] running {}", self.series, self.label(i));
        } else if let Some(rest) = mark.strip_prefix("end ") {
            self.end(
                rest.split_whitespace()
                    .nth(1)
                    .and_then(|rc| rc.parse().ok()),
            );
        }
    }

    /// Closes the current binary with exit `status`.
    fn end(&mut self, status: Option<i32>) {
        let Some((i, since, [passed, failed, ignored])) = self.current.take() else {
            return;
        };
        let result = BinaryResult {
            label: self.label(i),
            passed,
            failed,
            ignored,
            status,
            took: since.elapsed(),
            is_test: self.plan.get(i).is_some_and(|p| p.command.is_none()),
        };
        println!("[{}] {}", self.series, describe(&result));
        self.results.push(result);
    }

    /// `binary args…` of plan entry `i`, cut at 70 characters.
    fn label(&self, i: usize) -> String {
        let Some(planned) = self.plan.get(i) else {
            return format!("#{i}");
        };
        let label = std::iter::once(&planned.binary)
            .chain(&planned.args)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        match label.char_indices().nth(70) {
            Some((at, _)) => format!("{}…", &label[..at]),
            None => label,
        }
    }

    /// Moves what was read into `report`; a binary cut off mid-run counts
    /// as failed without status.
    fn finish_into(mut self, report: &mut KernelReport) {
        self.end(None);
        report.boot = self.boot;
        report.facts = self.facts;
        report.results = self.results;
    }
}

/// `label: N passed, N failed, N ignored in S s` plus what is wrong.
fn describe(r: &BinaryResult) -> String {
    if !r.is_test {
        let status = r
            .status
            .map_or("no status".into(), |rc| format!("exit {rc}"));
        return format!("{}: {status} in {:.1} s", r.label, r.took.as_secs_f64());
    }
    let mut text = format!(
        "{}: {} passed, {} failed, {} ignored in {:.1} s",
        r.label,
        r.passed,
        r.failed,
        r.ignored,
        r.took.as_secs_f64()
    );
    match r.status {
        Some(0) if r.passed == 0 && r.is_test => text += " — FAILED: no test matched",
        Some(0) => {}
        Some(rc) => text += &format!(" — FAILED (exit {rc})"),
        None => text += " — FAILED (cut off)",
    }
    text
}

/// The per-kernel block of the summary.
fn print_kernel(r: &KernelReport) {
    let boot = r
        .boot
        .map_or("-".into(), |b| format!("{:.1} s", b.as_secs_f64()));
    println!(
        "\ntest-kernels: {} ({}): {}; prepare {:.1} s, boot {boot}, total {:.1} s",
        r.series,
        r.release,
        if r.ok() { "ok" } else { "FAILED" },
        r.prepared.as_secs_f64(),
        r.took.as_secs_f64()
    );
    if !r.facts.is_empty() {
        println!("  facts: {}", r.facts);
    }
    for result in &r.results {
        println!("  {}", describe(result));
    }
    if let Some(problem) = &r.problem {
        println!("  problem: {problem}");
    }
}

/// The closing line; an error when any kernel failed.
fn summarize(reports: &[KernelReport], took: Duration) -> anyhow::Result<()> {
    let sum = |f: fn(&BinaryResult) -> u64| -> u64 {
        reports.iter().flat_map(|r| &r.results).map(f).sum()
    };
    let kernels: Vec<String> = reports
        .iter()
        .map(|r| format!("{} {}", r.series, if r.ok() { "ok" } else { "FAILED" }))
        .collect();
    println!(
        "\ntest-kernels: {}; tests: {} passed, {} failed, {} ignored; {:.0} s in all",
        kernels.join(", "),
        sum(|r| r.passed),
        sum(|r| r.failed),
        sum(|r| r.ignored),
        took.as_secs_f64()
    );
    if reports.iter().any(|r| !r.ok()) {
        bail!("test-kernels failed");
    }
    Ok(())
}
