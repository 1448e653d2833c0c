//! `cargo xtask test-package`: the package tested as an operator uses it.
//! Builds it (`cargo xtask dist`), runs lintian on it (no error allowed),
//! then installs it into a clean Debian 12 root made by `debootstrap
//! --variant=minbase bookworm` (no Rust, no compiler inside) and runs
//! operator_test.sh there: install from Debian's archive, `--version`, `man`,
//! `config check`, a short real run, `apt-get purge`.
//!
//! The root is cached as a tarball under /var/tmp (made once, a few
//! minutes; unpacked in seconds). Everything runs in a private mount
//! namespace (`unshare -m --propagation private`): its mounts, the bpffs
//! holding the test agent's pins included, vanish with it, whatever the
//! outcome, and never touch the host's /sys/fs/bpf.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use super::mib;
use crate::run;

/// The cached clean root (a tar of the debootstrap tree); the suffix names
/// its recipe, so a change to it makes a new cache.
const ROOT_CACHE: &str = "/var/tmp/fsjournal-bookworm-minbase-v1.tar";

/// Where the root is unpacked for a run (removed first).
const ROOT_DIR: &str = "/var/tmp/fsjournal-package-test-root";

/// Packages beside minbase: man-db, for `man fsjournal`.
const ROOT_EXTRA: &str = "man-db";

/// The in-root test.
const OPERATOR_TEST: &str = include_str!("operator_test.sh");

/// Sets up the private namespace's mounts below the root ($1) and runs the
/// operator test in it (chroot).
const NAMESPACE_SETUP: &str = r#"set -eu
root=$1
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount -t bpf bpf "$root/sys/fs/bpf"
mount -t tracefs tracefs "$root/sys/kernel/tracing"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/tmp"
truncate -s 64M "$root/var/tmp/source.img"
mkfs.ext4 -q -F "$root/var/tmp/source.img"
mkdir -p "$root/srv/source" "$root/srv/replica"
mount -o loop "$root/var/tmp/source.img" "$root/srv/source"
mount -t tmpfs tmpfs "$root/srv/replica"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$2" "$root/tmp/"
cp "$3" "$root/tmp/operator_test.sh"
exec chroot "$root" /bin/sh /tmp/operator_test.sh
"#;

/// Runs the whole test; `build_ebpf` builds the kernel-side object.
pub fn test_package(
    args: &super::DistArgs,
    build_ebpf: fn() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::bench::ensure_packages(&["debootstrap", "lintian", "e2fsprogs"])?;
    let artifacts = super::dist(args, build_ebpf)?;
    let built = started.elapsed();
    let lintian = lintian(&artifacts.deb)?;
    let root_start = Instant::now();
    let root = clean_root()?;
    let root_time = root_start.elapsed();
    let test_start = Instant::now();
    let script = std::env::temp_dir().join("fsjournal-operator-test.sh");
    std::fs::write(&script, OPERATOR_TEST)?;
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            NAMESPACE_SETUP,
            "sh",
        ])
        .arg(&root)
        .arg(&artifacts.deb)
        .arg(&script)
        .output()
        .context("cannot run unshare")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&root)?;
    if !out.status.success() {
        bail!(
            "the operator test in the clean Debian 12 root failed ({})",
            out.status
        );
    }
    let install = stdout
        .lines()
        .find_map(|l| l.strip_prefix("timing: install "))
        .unwrap_or("?");
    let size = std::fs::metadata(&artifacts.deb)?.len();
    let tar_size = std::fs::metadata(&artifacts.tarball)?.len();
    println!("test-package: lintian: {lintian}");
    println!(
        "test-package: package {:.1} MiB, tarball {:.1} MiB; install in the clean root {install} \
         (with apt-get fetching rsync and its libraries); dist build {built:.0?}, clean root {root_time:.0?}, \
         operator test {:.0?}; total {:.0?}",
        mib(size),
        mib(tar_size),
        test_start.elapsed(),
        started.elapsed()
    );
    Ok(())
}

/// lintian on the package: its tags are printed; an error (`E:`) fails.
/// Returns a one-line summary.
fn lintian(deb: &Path) -> anyhow::Result<String> {
    let out = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(deb)
        .output()
        .context("cannot run lintian")?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
    let errors = count("E:");
    if errors > 0 {
        bail!("lintian reports {errors} error(s) on {}", deb.display());
    }
    Ok(format!(
        "no error, {} warning(s), {} info(s)",
        count("W:"),
        count("I:")
    ))
}

/// A fresh copy of the clean root at ROOT_DIR, from the cache (made first
/// when missing).
fn clean_root() -> anyhow::Result<PathBuf> {
    let cache = Path::new(ROOT_CACHE);
    if !cache.exists() {
        make_root_cache(cache)?;
    }
    let root = PathBuf::from(ROOT_DIR);
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("cannot remove {ROOT_DIR}"))?;
    }
    std::fs::create_dir_all(&root)?;
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-xf")
        .arg(cache))?;
    Ok(root)
}

/// `debootstrap --variant=minbase --include=man-db bookworm` from the host's
/// own Debian mirror, packed into `cache`.
fn make_root_cache(cache: &Path) -> anyhow::Result<()> {
    let mirror = host_mirror()?;
    let dir = PathBuf::from(format!("{ROOT_DIR}-debootstrap"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    eprintln!(
        "test-package: debootstrap --variant=minbase bookworm {} {mirror} (once; cached as {})",
        dir.display(),
        cache.display()
    );
    run(Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={ROOT_EXTRA}"),
            "bookworm",
        ])
        .arg(&dir)
        .arg(&mirror))?;
    let partial = cache.with_extension("partial");
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&partial)
        .arg("."))?;
    std::fs::rename(&partial, cache)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// The first Debian archive URI in the host's apt sources (deb822
/// `URIs:` or one-line `deb URI …`). Errors: none is configured.
fn host_mirror() -> anyhow::Result<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let name = file.to_string_lossy();
        if !(name.ends_with(".list") || name.ends_with(".sources")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for line in text.lines().map(str::trim) {
            let uri = line
                .strip_prefix("URIs:")
                .or_else(|| line.strip_prefix("deb "))
                .and_then(|rest| rest.split_whitespace().find(|w| w.starts_with("http")));
            if let Some(uri) = uri.filter(|u| u.trim_end_matches('/').ends_with("/debian")) {
                return Ok(uri.to_string());
            }
        }
    }
    bail!("no Debian archive (…/debian) in /etc/apt/sources.list or /etc/apt/sources.list.d/: add one, then run again")
}
