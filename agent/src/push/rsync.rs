//! Runs the real `rsync` binary: we never re-implement its transfer.
//!
//! Three invocations (flags from rsync(1)):
//! - incremental: `-a --ignore-times --from0 --files-from=- --delete-missing-args --force`.
//!   `--files-from` implies `-R` and `-d` but not `-r`, so each listed entry
//!   is sent alone (its implied parent directories get their attributes
//!   too; a listed `.` or `DIR/` also sends the directory's children); a
//!   listed path that no longer exists is deleted on the receiver, a whole
//!   directory with `--force`.
//! - contents: the same list mode plus `-d --delete`, for directories listed
//!   as `DIR/`: their direct children are copied and children the source no
//!   longer has are deleted, without recursing (entries removed while
//!   nothing captured).
//! - subtree: the same list mode plus `-r --delete`, for directories that
//!   moved in and for rescan markers: the subtree is made equal.
//! - full: `-a --delete --force SRC/ DEST/`, the whole root.
//!
//! Exit 0 and 24 ("some files vanished before they could be transferred":
//! their deletion is already in the journal) count as success.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::SyncConfig;

/// How much of rsync's stderr is kept for the error message (bytes).
const STDERR_TAIL: usize = 2048;

/// Which kind of rsync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Listed entries only, non-recursive.
    Incremental,
    /// Listed directories (`DIR/`) and their direct children, with `--delete`.
    Contents,
    /// Listed entries and everything below them, with `--delete`.
    Subtree,
    /// The whole root, with `--delete`.
    Full,
}

/// A failed rsync run.
#[derive(Debug, thiserror::Error)]
pub enum RsyncError {
    /// rsync could not be started (not installed?).
    #[error("cannot run rsync: {0}")]
    Spawn(std::io::Error),
    /// rsync exited with a failure code.
    #[error("rsync exit {code} ({meaning}): {stderr}")]
    Exit {
        /// rsync's exit code.
        code: i32,
        /// rsync(1)'s description of the code.
        meaning: &'static str,
        /// The end of rsync's stderr.
        stderr: String,
    },
    /// rsync was killed by a signal, or by us at shutdown.
    #[error("rsync was interrupted")]
    Interrupted,
}

/// rsync(1) "EXIT VALUES".
fn meaning(code: i32) -> &'static str {
    match code {
        1 => "syntax or usage error",
        2 => "protocol incompatibility",
        3 => "errors selecting input/output files, dirs",
        5 => "error starting client-server protocol (authentication?)",
        10 => "error in socket I/O (target unreachable?)",
        11 => "error in file I/O",
        12 => "error in rsync protocol data stream",
        23 => "partial transfer due to error",
        30 => "timeout in data send/receive",
        35 => "timeout waiting for daemon connection",
        _ => "see rsync(1) EXIT VALUES",
    }
}

/// The rsync command line for `mode`, from `source` to the sync's target.
pub fn command(sync: &SyncConfig, source: &Path, mode: Mode) -> Command {
    let mut cmd = Command::new("rsync");
    cmd.arg("-a").arg("--numeric-ids");
    match mode {
        // --ignore-times: capture saw each listed file change; rsync's quick
        // check (size + mtime) would skip a same-size change whose mtime was
        // set back (touch -r, cp -p, tar -x). The delta algorithm still sends
        // only what differs.
        Mode::Incremental => cmd.args([
            "--ignore-times",
            "--from0",
            "--files-from=-",
            "--delete-missing-args",
            "--force",
        ]),
        Mode::Contents => cmd.args([
            "-d",
            "--delete",
            "--from0",
            "--files-from=-",
            "--delete-missing-args",
            "--force",
        ]),
        Mode::Subtree => cmd.args([
            "-r",
            "--delete",
            "--from0",
            "--files-from=-",
            "--delete-missing-args",
            "--force",
        ]),
        Mode::Full => cmd.args(["--delete", "--force"]),
    };
    if sync.timeout_s > 0 {
        cmd.arg(format!("--timeout={}", sync.timeout_s));
    }
    if let Some(password_file) = &sync.password_file {
        cmd.arg(format!(
            "--password-file={}",
            password_file.get_ref().display()
        ));
    }
    if let Some(ssh) = &sync.ssh_command {
        cmd.arg("-e").arg(ssh);
    }
    // The very patterns capture filters with (see filter.rs).
    cmd.args(
        sync.exclude_patterns()
            .iter()
            .map(|p| format!("--exclude={p}")),
    );
    cmd.args(&sync.rsync_args);
    let mut source_arg = source.as_os_str().to_owned();
    source_arg.push("/");
    cmd.arg(source_arg).arg(sync.target().rsync_destination());
    cmd
}

/// Runs `cmd`, feeding `list` NUL-separated on stdin (list modes), and waits.
/// Killed early (→ [`RsyncError::Interrupted`]) once `stop` is set.
pub fn run(mut cmd: Command, list: &[&[u8]], stop: &AtomicBool) -> Result<(), RsyncError> {
    cmd.stdin(if list.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    })
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    tracing::debug!(command = ?cmd, paths = list.len(), "rsync");
    let mut child = cmd.spawn().map_err(RsyncError::Spawn)?;
    let mut payload = Vec::with_capacity(list.iter().map(|p| p.len() + 1).sum());
    for path in list {
        payload.extend_from_slice(path);
        payload.push(0);
    }
    let stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // A write error means rsync exited early; its exit code says why.
            let _ = stdin.write_all(&payload);
        }
    });
    let mut stderr = child.stderr.take().expect("stderr piped");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        String::from_utf8_lossy(&text[text.len().saturating_sub(STDERR_TAIL)..])
            .trim()
            .to_string()
    });
    let status = wait_or_kill(&mut child, stop);
    let _ = writer.join();
    let stderr = reader.join().unwrap_or_default();
    match status.and_then(|s| s.code()) {
        Some(0) => Ok(()),
        Some(24) => {
            tracing::debug!(%stderr, "rsync: some files vanished during the transfer (exit 24)");
            Ok(())
        }
        Some(code) => Err(RsyncError::Exit {
            code,
            meaning: meaning(code),
            stderr,
        }),
        None => Err(RsyncError::Interrupted),
    }
}

fn wait_or_kill(child: &mut Child, stop: &AtomicBool) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if stop.load(Ordering::Relaxed) => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    }
}
