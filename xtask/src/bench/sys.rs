//! The machine side of the bench: loop-mounted ext4 images, child processes
//! whose output lines are timestamped as they arrive, `/proc` readings, and
//! the Debian packages the compared tools come from. Every resource is a
//! guard whose `Drop` releases it, so an error anywhere leaves no mount and
//! no process behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Runs a command to completion; its stdout as a string, or an error naming
/// the command and quoting its stderr.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An ext4 filesystem in a sparse image file, loop-mounted on `dir`
/// (`truncate`, `mkfs.ext4 -q -F -N inodes`, `mount -o loop`). Dropping it
/// unmounts (lazily if busy) and deletes the image.
pub struct Ext4Mount {
    /// Mount point.
    pub dir: PathBuf,
    image: PathBuf,
}

impl Ext4Mount {
    /// Creates an image of `bytes` (sparse) with room for `inodes` inodes and
    /// mounts it on `dir` (created if missing), without `lost+found`.
    pub fn create(image: &Path, dir: &Path, bytes: u64, inodes: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let _ = std::fs::remove_file(image);
        output(
            Command::new("truncate")
                .arg(format!("-s{bytes}"))
                .arg(image),
        )?;
        output(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-N", &inodes.to_string()])
                .arg(image),
        )?;
        output(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(image)
                .arg(dir),
        )?;
        let mount = Ext4Mount {
            dir: dir.to_path_buf(),
            image: image.to_path_buf(),
        };
        std::fs::remove_dir(dir.join("lost+found"))
            .with_context(|| format!("cannot remove {}/lost+found", dir.display()))?;
        Ok(mount)
    }
}

impl Drop for Ext4Mount {
    fn drop(&mut self) {
        let _ = Command::new("sync").status();
        let ok = Command::new("umount")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = std::fs::remove_file(&self.image);
    }
}

/// Unmounts whatever a crashed earlier run left mounted below `scratch`.
pub fn unmount_leftovers(scratch: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return;
    };
    for line in mounts.lines() {
        if let Some(point) = line.split(' ').nth(1) {
            if Path::new(point).starts_with(scratch) {
                eprintln!("bench: unmounting a leftover {point}");
                let _ = Command::new("umount").arg("-l").arg(point).status();
            }
        }
    }
}

/// A process's memory (KiB).
pub struct Rss {
    /// `VmRSS`: resident now, mapped files and bpf maps included.
    pub rss: u64,
    /// `VmHWM`: the peak of `VmRSS`.
    pub peak: u64,
    /// `RssAnon`: resident heap and stacks (an eBPF ring buffer's mapping
    /// counts as file, not here).
    pub anon: u64,
}

/// Lines a child printed, each with the instant it was read.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// A child process whose stderr (and optionally stdout) lines are read by a
/// thread, timestamped, kept in memory and copied to a log file. Dropping it
/// sends SIGTERM, waits up to 10 s, then SIGKILLs.
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    /// When it was spawned.
    pub started: Instant,
    lines: Lines,
    /// Its log file.
    pub log: PathBuf,
    stopped: bool,
}

impl Proc {
    /// Spawns `cmd`; `stdout_lines` also reads its stdout as log lines (else
    /// stdout goes to /dev/null).
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        log: &Path,
        stdout_lines: bool,
    ) -> anyhow::Result<Self> {
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
        cmd.stdout(if stdout_lines {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let file = Arc::new(Mutex::new(file));
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot spawn {cmd:?}"))?;
        let lines: Lines = Arc::default();
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [stderr, stdout].into_iter().flatten() {
            let (lines, file) = (lines.clone(), file.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let now = Instant::now();
                    let _ = writeln!(file.lock().unwrap(), "{line}");
                    let mut lines = lines.lock().unwrap();
                    // Keep memory bounded for chatty tools; the file has all.
                    if lines.len() < 100_000 {
                        lines.push((now, line));
                    }
                }
            });
        }
        Ok(Proc {
            name: name.to_string(),
            child,
            started,
            lines,
            log: log.to_path_buf(),
            stopped: false,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a line containing `needle` is printed; returns the time
    /// from the spawn to that line. Fails when the process exits first or
    /// after `timeout`, quoting the log's tail.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<Duration> {
        loop {
            check_interrupted()?;
            if let Some(at) = self.line_time(needle) {
                return Ok(at);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                bail!(
                    "{} exited ({status}) before printing {needle:?} (log: {}):\n{}",
                    self.name,
                    self.log.display(),
                    self.tail(20)
                );
            }
            if self.started.elapsed() > timeout {
                bail!(
                    "{} did not print {needle:?} within {timeout:?} (log: {}):\n{}",
                    self.name,
                    self.log.display(),
                    self.tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Time from the spawn to the first line containing `needle`, if printed.
    pub fn line_time(&self, needle: &str) -> Option<Duration> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(at, _)| at.duration_since(self.started))
    }

    /// Lines containing any of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| needles.iter().any(|n| l.contains(n)))
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap();
        let from = lines.len().saturating_sub(n);
        lines[from..]
            .iter()
            .map(|(_, l)| format!("  {l}\n"))
            .collect()
    }

    /// Memory from `/proc/PID/status` (KiB).
    pub fn rss(&self) -> Rss {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        Rss {
            rss: field("VmRSS:"),
            peak: field("VmHWM:"),
            anon: field("RssAnon:"),
        }
    }

    /// CPU time of the process, user + system, all threads (s), from
    /// `/proc/PID/stat` (proc(5): fields 14 and 15, in clock ticks).
    pub fn cpu_s(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // The command name (field 2) may hold spaces: count from its closing parenthesis.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .context("a /proc/PID/stat line")?
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Ok(ticks as f64 / hz)
    }

    /// Sends `signal` to the process (not reaped yet: `stop` has not run).
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child's pid, which `wait` has not reaped.
        if unsafe { libc::kill(self.child.id() as libc::pid_t, signal) } != 0 {
            return Err(std::io::Error::last_os_error()).context("kill");
        }
        Ok(())
    }

    /// SIGTERM, up to 10 s to exit, then SIGKILL. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("bench: {} ignored SIGTERM for 10 s; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One field of `/proc/meminfo` (KiB).
pub fn meminfo_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Bytes free to an unprivileged writer on the filesystem holding `path`
/// (statvfs(3): `f_bavail × f_frsize`); 0 when it cannot be read.
pub fn free_bytes(path: &Path) -> u64 {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a zeroed statvfs the call fills in.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return 0;
    }
    stat.f_bavail as u64 * stat.f_frsize as u64
}

/// Disk blocks held by the files directly in `scratch` (an earlier run's
/// images, sparse: allocated bytes, not lengths), which the run frees.
pub fn images_bytes(scratch: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(scratch)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Kernel slab memory now: (`SUnreclaim`, `SReclaimable`) in KiB.
pub fn slab_kib() -> (u64, u64) {
    (meminfo_kib("SUnreclaim"), meminfo_kib("SReclaimable"))
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`, then 300 ms for the
/// writeback to settle: every tool starts on a cold cache.
pub fn drop_caches() -> anyhow::Result<()> {
    output(&mut Command::new("sync"))?;
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .context("cannot write /proc/sys/vm/drop_caches")?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// Whether dpkg says `package` is installed.
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

/// Installs the Debian packages among `packages` that are missing (used by
/// `cargo xtask setup` and the bench).
pub fn ensure_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    output(Command::new("apt-get").arg("update").arg("-qq"))?;
    output(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}

/// Bytes of the regular files under `dir`, recursively (lengths).
pub fn dir_bytes(dir: &Path) -> u64 {
    sum_files(dir, &|e| e.metadata().map_or(0, |m| m.len()))
}

/// Regular files under `dir`, recursively.
pub fn file_count(dir: &Path) -> u64 {
    sum_files(dir, &|_| 1)
}

/// Sums `f` over the regular files under `dir`, recursively.
fn sum_files(dir: &Path, f: &dyn Fn(&std::fs::DirEntry) -> u64) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => sum_files(&e.path(), f),
            Ok(t) if t.is_file() => f(&e),
            _ => 0,
        })
        .sum()
}

/// A `/proc/sys` value raised for the bench and put back on drop.
pub struct Sysctl {
    path: PathBuf,
    old: Option<String>,
}

impl Sysctl {
    /// Raises the integer at `path` to at least `min`.
    pub fn raise(path: &str, min: u64) -> anyhow::Result<Sysctl> {
        let old = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        let current: u64 = old
            .trim()
            .parse()
            .with_context(|| format!("{path}: not a number: {old:?}"))?;
        if current >= min {
            return Ok(Sysctl {
                path: path.into(),
                old: None,
            });
        }
        std::fs::write(path, format!("{min}\n")).with_context(|| format!("cannot write {path}"))?;
        Ok(Sysctl {
            path: path.into(),
            old: Some(old),
        })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            let _ = std::fs::write(&self.path, old);
        }
    }
}

/// Set by SIGINT/SIGTERM: the bench stops at its next check and its guards
/// clean up (unmount, stop the tools) instead of dying with them in place.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Installs the SIGINT/SIGTERM handler.
pub fn catch_interrupts() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Fails once SIGINT or SIGTERM arrived.
pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("interrupted: cleaning up");
    }
    Ok(())
}
