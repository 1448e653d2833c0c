//! `cargo xtask …`: the project's own tasks, so that a fresh machine needs
//! nothing but Rust and these commands (the `xtask` convention:
//! <https://github.com/matklad/cargo-xtask>).
//!
//! - `cargo xtask setup`: install the system packages, toolchain components
//!   and tools the build and the tests need (idempotent: what is present is
//!   not touched).
//! - `cargo xtask build-ebpf`: build the kernel-side programs (`ebpf/programs`,
//!   nightly, `-Z build-std=core`, bpf-linker) that the agent embeds.
//! - `cargo xtask test`: setup, build-ebpf, then the whole test suite
//!   (`cargo test --workspace`).
//! - `cargo xtask soak`: the fault-injection suite (`tests/churn.rs`) at a
//!   larger size: more operations and SIGKILLs, several seeds in a row.
//! - `cargo xtask demo`: setup, then a hot backup of a sample Jenkins-like tree
//!   into a local replica, until Ctrl-C.
//! - `cargo xtask bench`: fsjournal side by side with lsyncd, inotifywait and
//!   full-scan rsync on a generated tree (`bench/`); `--micro`: the agent's
//!   criterion micro-benchmarks (`agent/benches/`).
//! - `cargo xtask dist`: the Debian package and a tarball of the same files
//!   into `target/dist/` (`dist/`).
//! - `cargo xtask test-package`: dist, lintian, then the package installed,
//!   run and purged in a clean Debian 12 root (needs root).
//! - `cargo xtask test-kernels`: the integration tests listed in
//!   `kernels::GUEST_TESTS`, run inside Debian's 6.1 and 6.12 kernels booted
//!   under QEMU (`kernels/`; needs root).

mod bench;
mod dist;
mod kernels;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

/// Debian packages: rsync (the transport and the tests' daemon), libclang-dev
/// (bindgen for the RocksDB bindings), e2fsprogs and xfsprogs (mkfs.ext4 and
/// mkfs.xfs for the tests' loop-mounted filesystems), llvm-22-dev
/// (bpf-linker links against the system LLVM, whose major must equal the
/// nightly rustc's: 22).
const PACKAGES: [&str; 5] = [
    "rsync",
    "libclang-dev",
    "e2fsprogs",
    "xfsprogs",
    "llvm-22-dev",
];

/// bpf-linker, built against LLVM 22 (its default feature wants LLVM 23).
const BPF_LINKER_VERSION: &str = "0.13.0";

#[derive(Parser)]
#[command(about = "fsjournal's development tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the system packages, toolchain components and tools the build and the tests need.
    Setup,
    /// Build the kernel-side eBPF programs that the agent embeds.
    BuildEbpf,
    /// Check formatting (rustfmt) and lints (clippy, warnings as errors) of
    /// the workspace and of the eBPF programs.
    Lint,
    /// Setup, then run every test (unit and end-to-end; needs root).
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Setup, then run the randomized churn / SIGKILL / outage tests bigger and repeatedly.
    Soak {
        /// Operations per churn run.
        #[arg(long, default_value_t = 200_000)]
        ops: u64,
        /// SIGKILLs of the agent per churn run.
        #[arg(long, default_value_t = 50)]
        kills: u64,
        /// Runs, each with a fresh seed (printed, for FSJ_CHURN_SEED=… replays).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// Setup, then measure fsjournal against lsyncd, inotifywait and full-scan rsync (needs root).
    Bench(bench::BenchArgs),
    /// Build the release artifacts: target/dist/fsjournal_VERSION-1_amd64.deb and a tarball of its files.
    Dist(dist::DistArgs),
    /// Dist, lintian, then install, run and purge the package in a clean Debian 12 root (needs root).
    TestPackage(dist::DistArgs),
    /// Run the integration tests of kernels::GUEST_TESTS inside Debian's 6.1 and 6.12 kernels under QEMU (needs root).
    TestKernels(kernels::KernelsArgs),
    /// Setup, then keep a replica of a sample tree in sync until Ctrl-C.
    Demo {
        /// Where the sample source, replica and journal are created.
        #[arg(long, default_value = "/tmp/fsjournal-demo")]
        dir: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup(),
        Task::BuildEbpf => build_ebpf(),
        Task::Lint => {
            setup()?;
            lint()
        }
        Task::Test { args } => {
            setup()?;
            build_ebpf()?;
            test(&args)
        }
        Task::Soak { ops, kills, rounds } => {
            setup()?;
            build_ebpf()?;
            for round in 1..=rounds {
                println!(
                    "soak round {round}/{rounds}: {ops} operations, {kills} SIGKILLs per test"
                );
                run(Command::new(cargo())
                    .args([
                        "test",
                        "-p",
                        "fsjournal",
                        "--test",
                        "churn",
                        "--",
                        "--nocapture",
                    ])
                    .env("FSJ_CHURN_OPS", ops.to_string())
                    .env("FSJ_CHURN_KILLS", kills.to_string()))?;
            }
            Ok(())
        }
        Task::Bench(args) => {
            setup()?;
            bench::run(args, build_ebpf)
        }
        Task::Dist(args) => {
            setup()?;
            dist::dist(&args, build_ebpf).map(|_| ())
        }
        Task::TestPackage(args) => {
            setup()?;
            dist::package_test::test_package(&args, build_ebpf)
        }
        Task::TestKernels(args) => kernels::test_kernels(args),
        Task::Demo { dir } => {
            setup()?;
            build_ebpf()?;
            demo(&dir)
        }
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// `cargo test --workspace`, echoing its output, then one closing line
/// that adds up every test binary's `test result:` line (cargo's own last
/// line is that of a crate without tests).
fn test(args: &[String]) -> anyhow::Result<()> {
    use std::io::BufRead;
    let mut child = Command::new(cargo())
        .args(["test", "--workspace"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        if let Some([p, f, i]) = result_counts(&line) {
            passed += p;
            failed += f;
            ignored += i;
        }
    }
    let status = child.wait()?;
    println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    if !status.success() {
        bail!("cargo test failed: {status}");
    }
    Ok(())
}

/// The passed, failed and ignored counts of a libtest `test result:` line
/// (`test result: ok. 5 passed; 0 failed; 1 ignored; …`); None for any
/// other line.
fn result_counts(line: &str) -> Option<[u64; 3]> {
    let counts = line.strip_prefix("test result: ")?;
    let count = |word: &str| {
        counts
            .split(['.', ';'])
            .find_map(|part| part.trim().strip_suffix(word))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some([count(" passed"), count(" failed"), count(" ignored")])
}

fn setup() -> anyhow::Result<()> {
    bench::ensure_packages(&PACKAGES)?;
    // rust-src for the nightly of ebpf/programs/rust-toolchain.toml (`-Z
    // build-std=core`). Not `rustup toolchain install`: that would try to
    // update the nightly, whose LLVM must stay the one bpf-linker uses.
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    let linker_ok = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION));
    if !linker_ok {
        eprintln!(
            "xtask: installing bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about 2 minutes)"
        );
        run(Command::new(cargo())
            .args([
                "install",
                "--locked",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"))?;
    }
    Ok(())
}

/// Builds `ebpf/programs` for bpfel-unknown-none; the agent's build script
/// embeds the result.
fn build_ebpf() -> anyhow::Result<()> {
    run(&mut ebpf_cargo(&["build", "--release", "--locked"]))
}

/// `cargo ARGS` in `ebpf/programs`, with the nightly cargo of its
/// rust-toolchain.toml, not the stable one running us.
fn ebpf_cargo(args: &[&str]) -> Command {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ebpf/programs");
    let mut command = Command::new("cargo");
    command
        .current_dir(&dir)
        .args(args)
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR");
    command
}

/// rustfmt and clippy (`-D warnings`) over the workspace (every target:
/// tests, benches, xtask) and over the eBPF programs (nightly, for
/// bpfel-unknown-none). Installs both components on both toolchains first
/// (idempotent).
fn lint() -> anyhow::Result<()> {
    for toolchain in ["stable", "nightly"] {
        run(Command::new("rustup").args([
            "component",
            "add",
            "clippy",
            "rustfmt",
            "--toolchain",
            toolchain,
        ]))?;
    }
    run(Command::new(cargo()).args(["fmt", "--all", "--check"]))?;
    run(Command::new(cargo()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(&mut ebpf_cargo(&["fmt", "--check"]))?;
    run(&mut ebpf_cargo(&[
        "clippy",
        "--release",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))
}

/// Seeds `<dir>/source` with a small Jenkins home and runs the agent.
fn demo(dir: &Path) -> anyhow::Result<()> {
    let (source, replica, journal) = (dir.join("source"), dir.join("replica"), dir.join("journal"));
    std::fs::create_dir_all(&replica)?;
    if !source.exists() {
        for job in 0..20 {
            let job_dir = source.join(format!("jobs/job-{job:02}"));
            std::fs::create_dir_all(&job_dir)?;
            std::fs::write(
                job_dir.join("config.xml"),
                format!("<project><name>job-{job:02}</name></project>\n"),
            )?;
            for build in 1..=10 {
                let build_dir = job_dir.join(format!("builds/{build}"));
                std::fs::create_dir_all(build_dir.join("archive"))?;
                std::fs::write(
                    build_dir.join("build.xml"),
                    format!("<build><number>{build}</number></build>\n"),
                )?;
                std::fs::write(
                    build_dir.join("log"),
                    "Started by timer\nFinished: SUCCESS\n".repeat(build),
                )?;
            }
        }
    }
    eprintln!(
        "xtask: replicating {} → {}\n  try: echo hi >> {}/jobs/job-00/builds/1/log\n  then: cargo run -q -p fsjournal -- status --journal {}",
        source.display(),
        replica.display(),
        source.display(),
        journal.display()
    );
    run(Command::new(cargo())
        .args(["run", "-q", "-p", "fsjournal", "--", "run", "--source"])
        .arg(&source)
        .arg("--dest")
        .arg(&replica)
        .arg("--journal")
        .arg(&journal))
}
