//! Operator hooks around pushes (`before_full_sync`, `after_push`): a shell
//! command run with `sh -c`, given what was pushed, bounded by a timeout. A
//! hook never blocks or undoes a push: its failure is logged.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process;
use crate::config::SyncConfig;

/// Runs `command` for `sync` with `paths` NUL-separated on stdin and the
/// sync described in the environment (`FSJ_SYNC`, `FSJ_TARGET`,
/// `FSJ_SOURCE`, `FSJ_PATHS`); kills it after the sync's `hook_timeout_s`.
/// `what` names the hook in the log.
pub fn run(what: &str, command: &str, sync: &SyncConfig, paths: &[&[u8]]) {
    let started = Instant::now();
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("FSJ_SYNC", &sync.name)
        .env("FSJ_TARGET", sync.target.to_string())
        .env("FSJ_SOURCE", &sync.source)
        .env("FSJ_PATHS", paths.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return tracing::error!(hook = what, %command, error = %e, "cannot run hook"),
    };
    let writer = process::feed(&mut child, paths);
    let timeout = Duration::from_secs(sync.hook_timeout_s);
    let status = process::wait_or_kill(&mut child, || started.elapsed() >= timeout);
    let _ = writer.join();
    let ms = started.elapsed().as_millis() as u64;
    match status {
        Some(status) if status.success() => tracing::info!(hook = what, ms, "hook done"),
        Some(status) => tracing::error!(hook = what, %command, %status, ms, "hook failed"),
        None => {
            tracing::error!(hook = what, %command, timeout_s = sync.hook_timeout_s, "hook timed out and was killed")
        }
    }
}
