//! Test harness for end-to-end tests: fresh filesystems (tmpfs, loop-mounted
//! ext4), a real `rsync --daemon` on 127.0.0.1 with auth, the real
//! `fsjournal` binary, and a checksum comparison of source and replica.
//!
//! Needs root (mount, fanotify): a test that uses it starts with
//! [`root_or_skip!`], so `cargo test` as a normal user passes and says on
//! stderr which tests it skipped. Every resource is torn down on drop, except
//! with `FSJ_KEEP_SCRATCH=1`, which leaves a failed test's filesystems,
//! journal and logs in place for a post-mortem.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod churn;
pub mod status;
pub mod workload;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a replica may take to converge before a test fails.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a command to completion, panicking with its output on failure.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How much slower than this machine the tests run: `FSJ_TIME_SCALE`
/// (a whole number, 1 when unset), set by `cargo xtask test-kernels` for
/// guests under QEMU's software emulation. Every [`wait_until`] timeout is
/// multiplied by it; no test asserts a duration.
pub fn time_scale() -> u32 {
    std::env::var("FSJ_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

/// Polls `done` every 100 ms until it holds; panics after `timeout` (times
/// [`time_scale`]) with `what`.
pub fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let timeout = timeout * time_scale();
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Returns from the calling test, after printing `skipped: <test> needs
/// root (<why>)` to stderr, unless it runs as root: the first line of every
/// test that mounts a [`Scratch`] or acts as root otherwise (`why`: what
/// for; `mount, fanotify` when not given). As root it does nothing, so no
/// assertion is weakened where the test can run. The line goes to the
/// process's stderr, past libtest's capture, so a passing run shows it.
macro_rules! root_or_skip {
    () => {
        $crate::support::root_or_skip!("mount, fanotify")
    };
    ($why:literal) => {
        if !$crate::support::is_root() {
            fn here() {}
            let here = std::any::type_name_of_val(&here);
            let test = here.strip_suffix("::here").unwrap_or(here);
            $crate::support::skipped(test, $why);
            return;
        }
    };
}
pub(crate) use root_or_skip;

/// Says on the process's stderr (not libtest's captured one) that `test`
/// was skipped because it needs root for `why`.
pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {test} needs root ({why})");
}

/// A scratch directory with a freshly mounted filesystem at `src`.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A tmpfs mounted at `<scratch>/src`.
    pub fn tmpfs() -> Scratch {
        let scratch = Scratch::empty();
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                "size=512m",
                "fsjournal-test",
                scratch.src().to_str().unwrap(),
            ],
        );
        scratch
    }

    /// A 256 MiB ext4 image, loop-mounted at `<scratch>/src`.
    pub fn ext4() -> Scratch {
        let scratch = Scratch::with_image("ext4.img", 256 << 20, &["mkfs.ext4", "-q", "-F"]);
        std::fs::remove_dir(scratch.src().join("lost+found")).unwrap();
        scratch
    }

    /// A 512 MiB xfs image (xfsprogs' smallest is 300 MiB), loop-mounted at
    /// `<scratch>/src`: the other filesystem whose file handles the eBPF
    /// rungs decode (64-bit inode numbers possible).
    pub fn xfs() -> Scratch {
        Scratch::with_image("xfs.img", 512 << 20, &["mkfs.xfs", "-q", "-f"])
    }

    /// A sparse image file `name` of `bytes`, formatted by `mkfs` (a
    /// command and its options; the image path is appended) and
    /// loop-mounted at `<scratch>/src`.
    fn with_image(name: &str, bytes: u64, mkfs: &[&str]) -> Scratch {
        let scratch = Scratch::empty();
        let image = scratch.path().join(name);
        std::fs::File::create(&image)
            .unwrap()
            .set_len(bytes)
            .unwrap();
        let mut args = mkfs[1..].to_vec();
        args.push(image.to_str().unwrap());
        sh(mkfs[0], &args);
        scratch.mount_image(&image);
        scratch
    }

    /// Loop-mounts the filesystem `image` at `src` (again, after a test unmounted it).
    pub fn mount_image(&self, image: &Path) {
        sh(
            "mount",
            &[
                "-o",
                "loop",
                image.to_str().unwrap(),
                self.src().to_str().unwrap(),
            ],
        );
    }

    /// Moves the source tree onto a freshly made ext4 filesystem mounted at
    /// the same path (a restore onto another disk: same paths, same content,
    /// new filesystem identity).
    pub fn move_source_to_fresh_ext4(&self) {
        let n = (0..)
            .find(|n| !self.path().join(format!("ext4-{n}.img")).exists())
            .unwrap();
        let image = self.path().join(format!("ext4-{n}.img"));
        std::fs::File::create(&image)
            .unwrap()
            .set_len(256 << 20)
            .unwrap();
        sh("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        let staging = self.path().join(format!("staging-{n}"));
        std::fs::create_dir(&staging).unwrap();
        sh(
            "mount",
            &[
                "-o",
                "loop",
                image.to_str().unwrap(),
                staging.to_str().unwrap(),
            ],
        );
        std::fs::remove_dir(staging.join("lost+found")).unwrap();
        sh(
            "cp",
            &[
                "-a",
                &format!("{}/.", self.src().display()),
                staging.to_str().unwrap(),
            ],
        );
        unmount(&staging);
        unmount(&self.src());
        self.mount_image(&image);
    }

    fn empty() -> Scratch {
        assert!(
            is_root(),
            "end-to-end tests need root (mount, fanotify): start the test with support::root_or_skip!()"
        );
        let dir = tempfile::Builder::new()
            .prefix("fsjournal-e2e")
            .tempdir()
            .unwrap();
        for sub in ["src", "replica", "journal-parent"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Scratch { dir }
    }

    /// The scratch directory (on the host filesystem).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// The source tree's root (the fresh filesystem).
    pub fn src(&self) -> PathBuf {
        self.path().join("src")
    }
    /// The replica directory (the daemon's module, or a local target).
    pub fn replica(&self) -> PathBuf {
        self.path().join("replica")
    }
    /// The journal directory (outside the source).
    pub fn journal(&self) -> PathBuf {
        self.path().join("journal-parent/journal")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("FSJ_KEEP_SCRATCH").is_some() {
            eprintln!("FSJ_KEEP_SCRATCH: left {} mounted", self.path().display());
            self.dir.disable_cleanup(true);
            return;
        }
        // Pinned eBPF programs outlive their agent by design: detach them.
        if self.journal().exists() {
            let _ = Command::new(env!("CARGO_BIN_EXE_fsjournal"))
                .arg("unpin")
                .arg("--journal")
                .arg(self.journal())
                .output();
        }
        let _ = Command::new("umount").arg("-l").arg(self.src()).status();
    }
}

/// Unmounts `path`, retrying while the kernel still calls it busy (a process
/// that just exited may still be releasing its descriptors).
fn unmount(path: &Path) {
    for _ in 0..50 {
        if Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    sh("umount", &[path.to_str().unwrap()]);
}

/// Whether this process runs as root (real uid 0, from `/proc/self/status`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's
/// ephemeral range (`net.ipv4.ip_local_port_range`), so that no outgoing
/// connection and no `bind(…:0)` can be handed it meanwhile: an rsync
/// daemon paused by a test gets its port back on resume, and two tests
/// never share one. Spread by process id and a per-process counter.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768)
        .clamp(12_000, 65_535);
    let span = low - 10_000;
    let spread = std::process::id().wrapping_mul(7919);
    (0..span)
        .map(|_| {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            10_000 + (spread.wrapping_add(n.wrapping_mul(97))) % span
        })
        .map(|port| port as u16)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("no free TCP port below the ephemeral range")
}

/// A real `rsync --daemon` on 127.0.0.1 serving module `backup` (writable,
/// `uid = root`, auth user `fsj` with a secrets file).
pub struct RsyncDaemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The TCP port it listens on.
    pub port: u16,
}

impl RsyncDaemon {
    /// Starts a daemon whose module `backup` is `module_dir`.
    pub fn start(module_dir: &Path) -> RsyncDaemon {
        let dir = tempfile::Builder::new()
            .prefix("fsjournal-rsyncd")
            .tempdir()
            .unwrap();
        let secrets = dir.path().join("secrets");
        write_private(&secrets, "fsj:s3cret\n");
        write_private(&dir.path().join("password"), "s3cret\n");
        let conf = format!(
            "pid file = {d}/rsyncd.pid\nuse chroot = yes\nuid = root\ngid = root\n[backup]\n  path = {m}\n  read only = no\n  transfer logging = yes\n  log format = %o %b %n\n  log file = {d}/transfer.log\n  auth users = fsj\n  secrets file = {s}\n",
            d = dir.path().display(),
            m = module_dir.display(),
            s = secrets.display()
        );
        std::fs::write(dir.path().join("rsyncd.conf"), conf).unwrap();
        let mut daemon = RsyncDaemon {
            child: None,
            dir,
            port: free_port(),
        };
        daemon.resume();
        daemon
    }

    /// Stops the daemon (the target becomes unreachable).
    pub fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the daemon on the same port and waits until it accepts.
    pub fn resume(&mut self) {
        let child = Command::new("rsync")
            .arg("--daemon")
            .arg("--no-detach")
            .arg(format!(
                "--config={}",
                self.dir.path().join("rsyncd.conf").display()
            ))
            .arg(format!("--port={}", self.port))
            .arg("--address=127.0.0.1")
            .arg(format!(
                "--log-file={}",
                self.dir.path().join("rsyncd.log").display()
            ))
            .stdin(Stdio::null())
            .spawn()
            .expect("rsync must be installed (apt-get install rsync)");
        self.child = Some(child);
        let port = self.port;
        wait_until(
            Duration::from_secs(10),
            "the rsync daemon to listen",
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        // The listener must be this daemon, not another process that holds
        // the port (our daemon would then have exited: "Address in use").
        let exited = self.child.as_mut().and_then(|c| c.try_wait().unwrap());
        assert!(
            exited.is_none(),
            "the rsync daemon for port {port} exited ({exited:?}); something else listens there:\n{}",
            std::fs::read_to_string(self.dir.path().join("rsyncd.log")).unwrap_or_default()
        );
    }

    /// The target URL of the module.
    pub fn url(&self) -> String {
        format!("rsync://fsj@127.0.0.1:{}/backup", self.port)
    }

    /// Bytes the daemon received for files so far (rsyncd.conf(5) `%b`,
    /// "the number of bytes actually transferred", summed over the module's
    /// transfer log's `recv` lines): file data and delta, not file lists.
    /// (A module's own `log file` is opened before the chroot; the
    /// daemon's `--log-file` gets no transfer lines from a chrooted module.)
    pub fn bytes_received(&self) -> u64 {
        let log = std::fs::read_to_string(self.dir.path().join("transfer.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| line.split_once("] recv ").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The client's password file (mode 0600).
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        self.pause();
    }
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A remote shell that runs rsync's server side on this machine, written
/// into the scratch directory: rsync calls it as `SHELL -l USER HOST rsync
/// --server …`. The `user@host:path` code path and rsync's remote-shell
/// protocol are real; only the network hop is not (no sshd here).
pub fn local_shell_command(scratch: &Scratch) -> PathBuf {
    let shell = scratch.path().join("local-shell");
    std::fs::write(
        &shell,
        "#!/bin/sh\n[ \"$1\" = -l ] && shift 2\nshift\nexec \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&shell, std::fs::Permissions::from_mode(0o755)).unwrap();
    shell
}

/// Writes a configuration for one sync from `scratch.src()` to `target`.
/// `extra` is appended inside the `[[sync]]` table (TOML lines).
pub fn write_config(
    scratch: &Scratch,
    target: &str,
    password_file: Option<&Path>,
    extra: &str,
) -> PathBuf {
    let mut text = format!(
        "[journal]\npath = \"{}\"\n\n[[sync]]\nname = \"standby\"\nsource = \"{}\"\ntarget = \"{}\"\nbatch_delay_ms = 200\nretry_max_ms = 2000\n",
        scratch.journal().display(),
        scratch.src().display(),
        target
    );
    if let Some(password_file) = password_file {
        text.push_str(&format!(
            "password_file = \"{}\"\n",
            password_file.display()
        ));
    }
    text.push_str(extra);
    let path = scratch.path().join("fsjournal.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Puts `[capture] backend = BACKEND` into a configuration written by
/// [`write_config`].
pub fn use_backend(config: &Path, backend: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        config,
        format!("[capture]\nbackend = \"{backend}\"\n\n{text}"),
    )
    .unwrap();
}

/// A running `fsjournal run --config …`, its log in `<scratch>/agent-N.log`.
pub struct Agent {
    child: Child,
    /// The agent's log file.
    pub log: PathBuf,
}

impl Agent {
    /// Starts the agent and waits until capture is armed.
    pub fn start(config: &Path, scratch: &Scratch) -> Agent {
        let n = (0..)
            .find(|n| !scratch.path().join(format!("agent-{n}.log")).exists())
            .unwrap();
        let log = scratch.path().join(format!("agent-{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_fsjournal"))
            .args(["--log", "debug", "run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut agent = Agent { child, log };
        wait_until(Duration::from_secs(30), "the agent to arm capture", || {
            assert!(
                agent.child.try_wait().unwrap().is_none(),
                "agent exited early:\n{}",
                agent.log_text()
            );
            agent.log_text().contains("capture armed")
        });
        agent
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the agent logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the agent process is still alive (not yet a zombie), read
    /// from `/proc/PID/stat` so that `&self` suffices.
    pub fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .ok()
            .and_then(|stat| {
                let after_name = stat.rsplit_once(')')?.1;
                after_name.split_whitespace().next().map(|s| s != "Z")
            })
            .unwrap_or(false)
    }

    /// The failure report of a replica that did not converge, the most
    /// telling first (a CI log shows its top): whether the agent still
    /// runs, the agent's warnings and errors, the end of its log, then the
    /// first differences (`diff`, rsync's itemized list).
    fn not_converged(&self, diff: &str) -> String {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        let warnings: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        let differing: Vec<&str> = diff.lines().collect();
        format!(
            "replica did not converge in {CONVERGE_TIMEOUT:?}; the agent {}; {} differences\n\
             agent warnings and errors (first 20 of {}):\n{}\n\
             agent log, last {} of {} lines:\n{}\n\
             differences, first 20:\n{}",
            if self.alive() { "runs" } else { "has exited" },
            differing.len(),
            warnings.len(),
            warnings[..warnings.len().min(20)].join("\n"),
            tail.len(),
            lines.len(),
            tail.join("\n"),
            differing[..differing.len().min(20)].join("\n"),
        )
    }

    /// SIGTERM, then waits; asserts a clean exit.
    pub fn stop(mut self) {
        sh("kill", &["-TERM", &self.pid().to_string()]);
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "agent exit {status}:\n{}",
            self.log_text()
        );
    }

    /// SIGKILL of the agent and of its rsync children (as systemd's
    /// control-group kill would do).
    pub fn kill9(mut self) {
        let children = children_of(self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for child in children {
            let _ = Command::new("kill")
                .args(["-KILL", &child.to_string()])
                .status();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pids whose parent is `pid`, with their command lines.
pub fn children_with_cmdline(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            found.push((child, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    found
}

fn children_of(pid: u32) -> Vec<u32> {
    children_with_cmdline(pid)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// `fsjournal status --json` of the scratch's journal. Panics when the
/// document does not match [`status::Status`] (a key renamed, added or
/// removed).
pub fn status(scratch: &Scratch) -> status::Status {
    let out = sh(
        env!("CARGO_BIN_EXE_fsjournal"),
        &[
            "status",
            "--json",
            "--journal",
            scratch.journal().to_str().unwrap(),
        ],
    );
    serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!("status --json does not match tests/support/status.rs: {e}\n{out}")
    })
}

/// `fsjournal log --json` of the scratch's journal, one value per record.
pub fn journal_log(scratch: &Scratch) -> Vec<serde_json::Value> {
    let out = sh(
        env!("CARGO_BIN_EXE_fsjournal"),
        &[
            "log",
            "--json",
            "--journal",
            scratch.journal().to_str().unwrap(),
        ],
    );
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until the first target has recorded `n` full syncs. A replica can
/// equal the source a moment before rsync exits and the agent records it;
/// stopping the agent in that moment rightly leaves the full sync owed.
pub fn wait_for_full_syncs(scratch: &Scratch, n: u64) {
    wait_until(
        Duration::from_secs(10),
        "the full sync to be recorded",
        || {
            status(scratch)
                .first_target()
                .is_some_and(|t| t.full_syncs == n)
        },
    );
}

/// Starts the agent on `config` and waits for its first full sync to make
/// the replica equal and be recorded.
pub fn start_and_sync(config: &Path, scratch: &Scratch) -> Agent {
    let agent = Agent::start(config, scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_for_full_syncs(scratch, 1);
    agent
}

/// Whether the journal holds a record of `kind` for `path`.
pub fn journaled(log: &[serde_json::Value], kind: &str, path: &str) -> bool {
    log.iter().any(|r| r["kind"] == kind && r["path"] == path)
}

/// What differs between source and replica, by checksum, including mode,
/// owner, mtime (files and directories), symlinks and extraneous files:
/// `rsync -anc --delete --itemize-changes` prints nothing when they are equal.
/// A push in progress can make a file vanish under the comparison (rsync
/// exit 24): that counts as "not equal yet".
pub fn differences(src: &Path, replica: &Path) -> String {
    differences_with(src, replica, &[])
}

/// [`differences`] with extra rsync arguments (e.g. `--exclude=…`).
pub fn differences_with(src: &Path, replica: &Path, extra: &[&str]) -> String {
    let out = Command::new("rsync")
        .args(["-anc", "--delete", "--numeric-ids", "--itemize-changes"])
        .args(extra)
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", replica.display()))
        .output()
        .expect("rsync must be installed");
    match out.status.code() {
        Some(0) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Some(24) => format!(
            "(files vanished during the comparison)\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        _ => panic!(
            "comparison failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Waits until the replica equals the source; panics with the differences
/// and the agent's log otherwise, at once if the agent has exited.
pub fn assert_converges(src: &Path, replica: &Path, agent: &Agent) {
    assert_converges_with(src, replica, agent, &[]);
}

/// [`assert_converges`], comparing with extra rsync arguments.
pub fn assert_converges_with(src: &Path, replica: &Path, agent: &Agent, extra: &[&str]) {
    let start = Instant::now();
    loop {
        let diff = differences_with(src, replica, extra);
        if diff.is_empty() {
            return;
        }
        if start.elapsed() > CONVERGE_TIMEOUT || !agent.alive() {
            panic!("{}", agent.not_converged(&diff));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Appends `text` to a file.
pub fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

impl Agent {
    /// `Some(success)` once the agent process has exited, `None` while it runs.
    pub fn exited(&mut self) -> Option<bool> {
        self.child.try_wait().unwrap().map(|s| s.success())
    }
}
