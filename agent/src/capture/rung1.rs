//! The attach ladder's rung 1 (fexit on `vfs_*`, BPF-LSM hooks): not built,
//! but probed. Both program kinds need a BPF trampoline
//! (`kernel/bpf/trampoline.c`), which some kernels refuse outright (this
//! project's VM: `BPF_PROG_LOAD` → EPERM with an empty verifier log). Each
//! start loads a minimal fexit program on `vfs_rename` (`probe_vfs_rename`
//! in `ebpf/programs`, never attached) and reports the kernel's answer, so an
//! operator and the logs know whether rung 1 would be possible here.

use aya::programs::{FExit, ProgramError};
use aya::{Btf, Ebpf};

/// The program `ebpf/programs` builds for the probe.
const PROBE: &str = "probe_vfs_rename";
/// The kernel function it would hook.
const PROBED_FUNCTION: &str = "vfs_rename";

/// Why the probe program did not load.
enum Refusal {
    /// The kernel said no: the `BPF_PROG_LOAD` error, and the verifier's log
    /// when it wrote one.
    Kernel(String),
    /// The probe could not be tried (no kernel BTF, no probe program).
    NotProbed(String),
}

/// Loads the probe program from `ebpf` against the running kernel's BTF
/// (`/sys/kernel/btf/vmlinux`), unloads it again, and describes the outcome
/// in one sentence for the ladder string: `fexit/LSM rung: refused by the
/// kernel: <error>`, `fexit/LSM rung: fexit accepted by this kernel, but
/// rung-1 programs are not built yet`, or `fexit/LSM rung: not probed:
/// <reason>`.
pub fn probe(ebpf: &mut Ebpf) -> String {
    match load(ebpf) {
        Ok(()) => {
            "fexit/LSM rung: fexit accepted by this kernel, but rung-1 programs are not built yet"
                .to_string()
        }
        Err(Refusal::Kernel(error)) => format!("fexit/LSM rung: refused by the kernel: {error}"),
        Err(Refusal::NotProbed(reason)) => format!("fexit/LSM rung: not probed: {reason}"),
    }
}

fn load(ebpf: &mut Ebpf) -> Result<(), Refusal> {
    let btf = Btf::from_sys_fs().map_err(|e| Refusal::NotProbed(format!("no kernel BTF: {e}")))?;
    let program: &mut FExit = ebpf
        .program_mut(PROBE)
        .ok_or_else(|| Refusal::NotProbed(format!("program {PROBE} missing from the object")))?
        .try_into()
        .map_err(|e: ProgramError| Refusal::NotProbed(e.to_string()))?;
    match program.load(PROBED_FUNCTION, &btf) {
        Ok(()) => {
            if let Err(e) = program.unload() {
                tracing::warn!(error = %e, "cannot unload the fexit probe");
            }
            Ok(())
        }
        Err(ProgramError::LoadError {
            io_error,
            verifier_log,
        }) => {
            let log = verifier_log.to_string();
            let log = log.trim();
            Err(Refusal::Kernel(if log.is_empty() {
                format!("BPF_PROG_LOAD: {io_error}")
            } else {
                format!("BPF_PROG_LOAD: {io_error}; verifier: {log}")
            }))
        }
        Err(e) => Err(Refusal::Kernel(format!("{:#}", anyhow::Error::new(e)))),
    }
}
