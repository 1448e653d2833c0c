//! Embeds the kernel-side eBPF object into the `fsjournal` binary, so the
//! agent ships as one file (the aya-template way).
//!
//! Why a copy and not a build: the eBPF programs need the nightly toolchain,
//! `-Z build-std=core` and bpf-linker, which a plain `cargo build` of the
//! workspace must not require (cargo also cannot build one package of a
//! workspace for another target from a build script without recursive cargo
//! invocations that fight over the target-dir lock). So `cargo xtask
//! build-ebpf` builds `ebpf/programs`, and this script copies its output into
//! OUT_DIR. When it has not been built, an empty object is embedded and the
//! eBPF backend reports "not built: run cargo xtask build-ebpf" (the
//! fanotify backend still works).
use std::path::PathBuf;

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let object = manifest.join("../ebpf/programs/target/bpfel-unknown-none/release/fsjournal-ebpf");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("fsjournal-ebpf.o");
    println!("cargo:rerun-if-changed={}", object.display());
    match std::fs::read(&object) {
        Ok(bytes) => std::fs::write(&out, bytes).expect("write the embedded eBPF object"),
        Err(_) => std::fs::write(&out, []).expect("write an empty eBPF object"),
    }
}
