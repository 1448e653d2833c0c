//! Two jobs, both so that the agent ships as one file that says what it is.
//!
//! 1. Embeds the kernel-side eBPF object into the `fsjournal` binary (the
//!    aya-template way).
//!
//!    Why a copy and not a build: the eBPF programs need the nightly
//!    toolchain, `-Z build-std=core` and bpf-linker, which a plain `cargo
//!    build` of the workspace must not require (cargo also cannot build one
//!    package of a workspace for another target from a build script without
//!    recursive cargo invocations that fight over the target-dir lock). So
//!    `cargo xtask build-ebpf` builds `ebpf/programs`, and this script copies
//!    its output into OUT_DIR. When it has not been built, an empty object is
//!    embedded and the eBPF backend reports "not built: run cargo xtask
//!    build-ebpf" (the fanotify backend still works).
//!
//! 2. Records the version `fsjournal --version` prints: the crate version
//!    and the commit it was built from (`0.1.0 (0606c26)`, `-dirty` when the
//!    work tree had changes), from `git describe --always --dirty`; the
//!    crate version alone outside a git checkout (a source tarball).
//!    `FSJOURNAL_GIT_DESCRIBE` overrides the git part (a packager's build).
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    embed_ebpf(&manifest);
    record_version(&manifest);
}

fn embed_ebpf(manifest: &Path) {
    let object = manifest.join("../ebpf/programs/target/bpfel-unknown-none/release/fsjournal-ebpf");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("fsjournal-ebpf.o");
    println!("cargo:rerun-if-changed={}", object.display());
    match std::fs::read(&object) {
        Ok(bytes) => std::fs::write(&out, bytes).expect("write the embedded eBPF object"),
        Err(_) => std::fs::write(&out, []).expect("write an empty eBPF object"),
    }
}

/// Sets `FSJOURNAL_VERSION` for the crate (see the module docs), and asks
/// cargo to run this again when HEAD moves or the index changes (a commit, a
/// checkout, `git add`), not on every edit: an edit after the last build
/// shows as `-dirty` only once something else rebuilds the crate.
fn record_version(manifest: &Path) {
    println!("cargo:rerun-if-env-changed=FSJOURNAL_GIT_DESCRIBE");
    let crate_version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let describe = std::env::var("FSJOURNAL_GIT_DESCRIBE").ok().or_else(|| {
        git(
            manifest,
            &["describe", "--always", "--dirty", "--abbrev=10"],
        )
    });
    let version = match describe {
        Some(describe) => {
            let head = git(manifest, &["symbolic-ref", "-q", "HEAD"]);
            for file in ["HEAD", "index", "packed-refs"]
                .into_iter()
                .chain(head.as_deref())
            {
                // Only files that exist: cargo reruns the script on every
                // build while a listed file is missing.
                let path =
                    git(manifest, &["rev-parse", "--git-path", file]).map(|p| manifest.join(p));
                if let Some(path) = path.filter(|p| p.exists()) {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
            format!("{crate_version} ({describe})")
        }
        None => crate_version,
    };
    println!("cargo:rustc-env=FSJOURNAL_VERSION={version}");
}

/// One line of git's output run in `dir`, or None (no git, not a checkout).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}
