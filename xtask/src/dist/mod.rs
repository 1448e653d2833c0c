//! `cargo xtask dist`: the release artifacts an operator installs without a
//! Rust toolchain, into `target/dist/`:
//!
//! - `fsjournal_VERSION-1_amd64.deb`, built by cargo-deb from
//!   `[package.metadata.deb]` in agent/Cargo.toml (files, conffile,
//!   maintainer scripts in packaging/debian/);
//! - `fsjournal-VERSION-x86_64-linux.tar.gz`: the package's files, unpacked
//!   from the .deb (so both ship exactly the same tree), for other
//!   distributions.
//!
//! The release binary embeds the eBPF object (`cargo xtask build-ebpf` runs
//! first); man pages and completions come from that binary's hidden
//! `fsjournal generate` subcommand, i.e. from the real clap definitions.
//!
//! `cargo xtask test-package` (package_test.rs) installs the .deb in a clean
//! Debian 12 root and uses it as an operator would.

pub mod package_test;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::run;

/// The cargo-deb release `cargo xtask dist` installs when `cargo deb` is
/// missing (`cargo install --locked`).
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Arguments of `cargo xtask dist` and `cargo xtask test-package`.
#[derive(clap::Args)]
pub struct DistArgs {
    /// Cargo profile of the packaged binary: `release`, or `dev` to try the
    /// packaging quickly without RocksDB's optimized C++ build (never ship it).
    #[arg(long, default_value = "release")]
    pub profile: String,
}

impl DistArgs {
    /// The directory of the profile's output below the target directory.
    fn profile_dir(&self) -> &str {
        match self.profile.as_str() {
            "dev" => "debug",
            other => other,
        }
    }
}

/// What `cargo xtask dist` produced.
pub struct Artifacts {
    /// The Debian package.
    pub deb: PathBuf,
    /// The tarball of the same files.
    pub tarball: PathBuf,
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// The target directory cargo builds into (CARGO_TARGET_DIR, else `target/`).
fn cargo_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Installs cargo-deb unless `cargo deb --version` already answers.
pub fn ensure_cargo_deb() -> anyhow::Result<()> {
    let present = Command::new(crate::cargo())
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !present {
        eprintln!("xtask: installing cargo-deb {CARGO_DEB_VERSION} (about 2 minutes)");
        run(Command::new(crate::cargo()).args([
            "install",
            "--locked",
            "cargo-deb",
            "--version",
            CARGO_DEB_VERSION,
        ]))?;
    }
    Ok(())
}

/// Builds the release binary, generates man pages and completions, then
/// the .deb and the tarball. `build_ebpf` builds the kernel-side object.
pub fn dist(args: &DistArgs, build_ebpf: fn() -> anyhow::Result<()>) -> anyhow::Result<Artifacts> {
    let started = Instant::now();
    ensure_cargo_deb()?;
    build_ebpf()?;
    let root = workspace();
    run(Command::new(crate::cargo()).current_dir(&root).args([
        "build",
        "--profile",
        &args.profile,
        "--locked",
        "-p",
        "fsjournal",
    ]))?;
    let binary = cargo_target_dir()
        .join(args.profile_dir())
        .join("fsjournal");
    let out = root.join("target/dist");
    let stage = out.join("stage");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    generate(&binary, &stage)?;
    let version = crate_version(&root)?;
    for old in std::fs::read_dir(&out)?.flatten() {
        let name = old.file_name().to_string_lossy().into_owned();
        if name.ends_with(".deb") || name.ends_with(".tar.gz") {
            std::fs::remove_file(old.path())?;
        }
    }
    run(Command::new(crate::cargo())
        .current_dir(&root)
        .args([
            "deb",
            "-p",
            "fsjournal",
            "--no-build",
            "--locked",
            "--profile",
            &args.profile,
            "--output",
        ])
        .arg(&out))?;
    let deb = out.join(format!("fsjournal_{version}-1_amd64.deb"));
    if !deb.exists() {
        bail!("cargo deb did not write {}", deb.display());
    }
    let tarball = tarball(&deb, &out, &version)?;
    for file in [&deb, &tarball] {
        let bytes = std::fs::metadata(file)?.len();
        println!("dist: {} ({:.1} MiB)", file.display(), mib(bytes));
    }
    println!("dist: built in {:.0?}", started.elapsed());
    Ok(Artifacts { deb, tarball })
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `stage/man/*.1.gz` and `stage/completions/{fsjournal.bash,_fsjournal,fsjournal.fish}`
/// from the binary. Man pages are gzipped with `-n` (no name or time: the
/// package is reproducible), as Debian policy 12.1 wants.
fn generate(binary: &Path, stage: &Path) -> anyhow::Result<()> {
    let man = stage.join("man");
    run(Command::new(binary).args(["generate", "man"]).arg(&man))?;
    for page in std::fs::read_dir(&man)?.flatten() {
        run(Command::new("gzip").args(["-9nf"]).arg(page.path()))?;
    }
    let completions = stage.join("completions");
    for shell in ["bash", "zsh", "fish"] {
        run(Command::new(binary)
            .args(["generate", "completions", shell])
            .arg(&completions))?;
    }
    Ok(())
}

/// The fsjournal crate's version (agent/Cargo.toml).
fn crate_version(root: &Path) -> anyhow::Result<String> {
    let manifest = std::fs::read_to_string(root.join("agent/Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .map(str::to_string)
        .context("no version in agent/Cargo.toml")
}

/// `fsjournal-VERSION-x86_64-linux.tar.gz`: the .deb's data unpacked under
/// `fsjournal-VERSION/` (usr/bin/fsjournal, etc/fsjournal/…, lib/systemd/…),
/// owned by root.
fn tarball(deb: &Path, out: &Path, version: &str) -> anyhow::Result<PathBuf> {
    let name = format!("fsjournal-{version}");
    let tree = out.join("tarball");
    if tree.exists() {
        std::fs::remove_dir_all(&tree)?;
    }
    std::fs::create_dir_all(&tree)?;
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(tree.join(&name)))?;
    let tarball = out.join(format!("{name}-x86_64-linux.tar.gz"));
    run(Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
        .arg(&tarball)
        .arg(&name))?;
    std::fs::remove_dir_all(&tree)?;
    Ok(tarball)
}
