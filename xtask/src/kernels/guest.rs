//! One guest boot: QEMU with software emulation (TCG; this host's
//! /dev/kvm is kvm-pvm, which cannot run stock kernels) boots the vmlinux
//! through its PVH entry with qboot firmware (no real-mode setup, no
//! in-guest decompression: a few seconds to userspace), shares the host's `/`
//! over virtio-9p, and `init.sh` runs a bash script there as root. The
//! script's output comes back on the second serial port (QEMU's stdout,
//! read line by line); its exit status comes back as a file through 9p.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::image::{Kernel, CACHE};

/// Guest RAM: the tests' tmpfs sources (512 MiB, sparse) and ext4 images
/// (256 MiB, in the guest's tmpfs /tmp) fit with room to spare.
const MEMORY: &str = "3G";

/// What became of a boot.
pub struct Outcome {
    /// The script's exit status; None when the guest reported none
    /// (crash, panic, timeout).
    pub status: Option<i32>,
    /// True when the timeout ran out and QEMU was killed.
    pub timed_out: bool,
    /// The guest kernel's console (ttyS0): boot messages, init's notes.
    pub console: PathBuf,
}

/// A directory the guest sees at the same path (host root over 9p): holds
/// `guest.sh`, `rc` and `console.log`. Removed on drop unless kept.
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
    /// Keep it after the run (`--keep`, or a failure to look into).
    pub keep: bool,
}

impl RunDir {
    /// A fresh `runs/<release>.<pid>` under the cache. Errors: mkdir.
    pub fn create(release: &str) -> anyhow::Result<RunDir> {
        let path = Path::new(CACHE)
            .join("runs")
            .join(format!("{release}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(RunDir { path, keep: false })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("test-kernels: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Boots `kernel`, runs `script` (bash) in the guest and hands each line it
/// prints to `on_line`, as it arrives (`\r` stripped). QEMU is killed after
/// `timeout`. Errors: the script cannot be written, or QEMU cannot start.
pub fn boot(
    kernel: &Kernel,
    run: &RunDir,
    script: &str,
    timeout: Duration,
    mut on_line: impl FnMut(&str),
) -> anyhow::Result<Outcome> {
    let script_path = run.path.join("guest.sh");
    std::fs::write(&script_path, script)
        .with_context(|| format!("cannot write {}", script_path.display()))?;
    // init.sh bind-mounts the guest's modules here (modprobe in the guest).
    let _ = std::fs::create_dir_all("/usr/lib/modules");
    let console = run.path.join("console.log");
    let mut child = qemu_command(kernel, &run.path, &console)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run qemu-system-x86_64")?;
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let line = String::from_utf8_lossy(&buf);
            if tx
                .send(line.trim_end_matches(['\n', '\r']).to_string())
                .is_err()
            {
                break;
            }
            buf.clear();
        }
    });
    let deadline = Instant::now() + timeout;
    let timed_out = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => on_line(&line),
            Err(RecvTimeoutError::Disconnected) => break false,
            Err(RecvTimeoutError::Timeout) => break true,
        }
    };
    if timed_out {
        let _ = child.kill();
    }
    child.wait().context("cannot wait for qemu")?;
    let status = std::fs::read_to_string(run.path.join("rc"))
        .ok()
        .and_then(|rc| rc.trim().parse().ok());
    Ok(Outcome {
        status,
        timed_out,
        console,
    })
}

/// The QEMU command line: as many vCPUs as host CPUs (at most 4), emulated
/// by one TCG thread (`thread=single`), the PVH vmlinux with qboot, the
/// host's `/` as 9p tag `hostroot`, ttyS0 into `console`, ttyS1 on stdout.
///
/// Why one TCG thread: attaching an fentry/fexit program patches the
/// traced function's first instruction while other CPUs run it (the
/// kernel's `text_poke_bp`: an `int3` first, then a sync IPI to every CPU).
/// Under multi-threaded TCG (QEMU 7.2) a vCPU can still run the
/// translation holding the `int3` after the patch finished and the kernel
/// dropped its record of it: Debian's 6.12 died of "Oops: int3" at
/// `vfs_open+0x5` in a CI run (stop 23), with the agent attaching and a test
/// opening files. One thread runs one vCPU at a time, so a patch is whole
/// before another vCPU runs a translated block again. The guest still has
/// several CPUs (per-CPU ring-buffer and map paths stay covered). The
/// whole guest suite costs about the same: 6.1 took 737 s in a CI run with
/// one thread against about 730 s with a thread per vCPU (stop 23), 6.12
/// 506 s; `churn`, the most concurrent test, pays most.
fn qemu_command(kernel: &Kernel, run: &Path, console: &Path) -> Command {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let append = format!(
        "console=ttyS0 quiet loglevel=3 panic=-1 fsjrun={} fsjkdir={}",
        run.display(),
        kernel.tree.display()
    );
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-nodefaults", "-no-user-config", "-machine", "pc"])
        .args(["-accel", "tcg,thread=single", "-cpu", "max"])
        .args(["-smp", &cpus.to_string(), "-m", MEMORY])
        .args(["-display", "none", "-vga", "none", "-no-reboot"])
        .args(["-bios", "/usr/share/qemu/qboot.rom"])
        .arg("-kernel")
        .arg(&kernel.vmlinux)
        .arg("-initrd")
        .arg(&kernel.initrd)
        .args(["-append", &append])
        .args([
            "-fsdev",
            "local,id=hostroot,path=/,security_model=none,multidevs=remap",
        ])
        .args(["-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args([
            "-chardev",
            "stdio,id=out,signal=off",
            "-serial",
            "chardev:out",
        ]);
    cmd
}

/// The last `lines` lines of `path` (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
