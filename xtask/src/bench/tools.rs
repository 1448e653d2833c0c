//! The compared tools, started the same way on the same tree: fsjournal
//! (eBPF or fanotify capture), lsyncd (`default.rsync`), `inotifywait -r -m`,
//! and plain `rsync`; and the check that a replica equals its source.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::sys::{output, Proc};

/// A running `fsjournal run` with its own journal and configuration.
/// Dropping it stops the agent and detaches the eBPF programs it pinned.
pub struct Agent {
    pub proc: Proc,
    pub bin: PathBuf,
    pub journal: PathBuf,
    /// Its configuration file and the stem of its log files.
    config: PathBuf,
    log: PathBuf,
    backend: String,
}

impl Agent {
    /// Starts an agent with `backend` replicating `src` to `target` (a
    /// local directory or an `rsync://` URL), with a fresh journal in
    /// `work/journal-<name>` (`name`: the backend, or the backend and the
    /// target kind). Rolling verification is off (`verify_interval_s = 0`),
    /// since no other tool has it.
    pub fn start(
        bin: &Path,
        backend: &str,
        name: &str,
        src: &Path,
        target: &str,
        work: &Path,
        batch_delay_ms: u64,
    ) -> anyhow::Result<Agent> {
        let journal = work.join(format!("journal-{name}"));
        unpin(bin, &journal);
        if journal.exists() {
            std::fs::remove_dir_all(&journal)
                .with_context(|| format!("cannot remove {}", journal.display()))?;
        }
        let config = work.join(format!("fsjournal-{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[journal]\npath = \"{}\"\n\n[capture]\nbackend = \"{backend}\"\n\n[[sync]]\nname = \"bench\"\nsource = \"{}\"\ntarget = \"{}\"\nbatch_delay_ms = {batch_delay_ms}\nverify_interval_s = 0\n",
                journal.display(),
                src.display(),
                target
            ),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        let log = work.join(format!("agent-{name}.log"));
        Ok(Agent {
            proc: spawn_agent(bin, backend, &config, &log)?,
            bin: bin.to_path_buf(),
            journal,
            config,
            log,
            backend: backend.to_string(),
        })
    }

    /// Stops the agent (SIGTERM: a clean stop; eBPF capture stays pinned).
    pub fn stop(&mut self) {
        self.proc.stop();
    }

    /// Starts the agent again on the same configuration and journal, its
    /// log in `agent-<name>.restart.log`.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let log = self.log.with_extension("restart.log");
        self.proc = spawn_agent(&self.bin, &self.backend, &self.config, &log)?;
        Ok(())
    }

    /// `fsjournal status --json`.
    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        let text = output(
            Command::new(&self.bin)
                .args(["status", "--json", "--journal"])
                .arg(&self.journal),
        )?;
        serde_json::from_str(&text).context("fsjournal status --json printed no JSON")
    }

    /// Waits until the target has nothing pending (polled every 50 ms).
    pub fn wait_pending_zero(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            super::sys::check_interrupted()?;
            let status = self.status()?;
            let target = &status["targets"][0];
            if target["pending"].as_u64() == Some(0) && target["full_sync_needed"].is_null() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!(
                    "{} still has {} pending after {timeout:?}",
                    self.proc.name,
                    target["pending"]
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.proc.stop();
        unpin(&self.bin, &self.journal);
    }
}

/// `fsjournal --log info run --config CONFIG`, its output in `log`.
fn spawn_agent(bin: &Path, backend: &str, config: &Path, log: &Path) -> anyhow::Result<Proc> {
    Proc::spawn(
        &format!("fsjournal ({backend})"),
        Command::new(bin)
            .args(["--log", "info", "run", "--config"])
            .arg(config),
        log,
        false,
    )
}

/// `fsjournal unpin`: detaches the eBPF programs a stopped agent left capturing.
fn unpin(bin: &Path, journal: &Path) {
    if journal.exists() {
        let _ = Command::new(bin)
            .args(["unpin", "--journal"])
            .arg(journal)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Starts lsyncd in its default rsync mode (`default.rsync`, archive mode)
/// from `src` to `target` (a local directory or an `rsync://` URL), `delay`
/// seconds of batching, not daemonized, log level Normal (all: too chatty
/// on 50k directories).
pub fn lsyncd(src: &Path, target: &str, work: &Path, delay_s: f64) -> anyhow::Result<Proc> {
    let config = work.join("lsyncd.lua");
    std::fs::write(
        &config,
        format!(
            "settings {{ nodaemon = true, logfile = \"{}\", statusFile = \"{}\", maxProcesses = 1 }}\nsync {{ default.rsync, source = \"{}\", target = \"{}\", delay = {delay_s}, rsync = {{ archive = true }} }}\n",
            work.join("lsyncd-file.log").display(),
            work.join("lsyncd.status").display(),
            src.display(),
            target
        ),
    )
    .with_context(|| format!("cannot write {}", config.display()))?;
    Proc::spawn(
        "lsyncd",
        Command::new("lsyncd").arg(&config),
        &work.join("lsyncd.log"),
        true,
    )
}

/// Starts `inotifywait -r -m -q` on `src` (events to /dev/null;
/// "Watches established." on stderr).
pub fn inotifywait(src: &Path, work: &Path) -> anyhow::Result<Proc> {
    Proc::spawn(
        "inotifywait",
        Command::new("inotifywait").args(["-r", "-m"]).arg(src),
        &work.join("inotifywait.log"),
        false,
    )
}

/// One `rsync -a --delete SRC/ DST/` over the whole tree (seconds).
pub fn full_rsync(src: &Path, dst: &Path) -> anyhow::Result<f64> {
    full_rsync_with(src, &slash(dst), &[])
}

/// One `rsync -a --delete SRC/ TARGET` (a directory with its trailing
/// slash, or an `rsync://` URL) over the whole tree (seconds).
pub fn full_rsync_to(src: &Path, target: &str) -> anyhow::Result<f64> {
    full_rsync_with(src, target, &[])
}

/// `rsync -a --delete` with mtimes compared to the nanosecond
/// (`--modify-window=-1`): puts right what a tool left with a stale
/// sub-second mtime, which the plain quick check would skip.
pub fn reconcile(src: &Path, dst: &Path) -> anyhow::Result<f64> {
    full_rsync_with(src, &slash(dst), &["--modify-window=-1"])
}

fn full_rsync_with(src: &Path, target: &str, extra: &[&str]) -> anyhow::Result<f64> {
    let start = Instant::now();
    output(
        Command::new("rsync")
            .args(["-a", "--delete"])
            .args(extra)
            .arg(slash(src))
            .arg(target),
    )?;
    Ok(start.elapsed().as_secs_f64())
}

/// Lines of `rsync -an --delete --itemize-changes SRC/ DST/`: empty when the
/// replica equals the source (rsync's quick check: type, size, mtime,
/// permissions, owner, for every entry on both sides).
pub fn differences(src: &Path, dst: &Path) -> anyhow::Result<Vec<String>> {
    let out = output(
        Command::new("rsync")
            .args(["-an", "--delete", "--itemize-changes"])
            .arg(slash(src))
            .arg(slash(dst)),
    )?;
    Ok(out.lines().map(str::to_string).collect())
}

fn slash(dir: &Path) -> String {
    format!("{}/", dir.display())
}

/// Waits at each of `paths` in turn until it is the same on both sides
/// (re-checked every 10 ms); the paths still differing when `timeout`
/// (from `since`) ran out, as "not replicated: PATH" (at most 20).
fn walk_until_equal(
    src: &Path,
    dst: &Path,
    paths: &[String],
    since: Instant,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let mut pending = paths.iter().peekable();
    while let Some(rel) = pending.peek() {
        if same(src, dst, rel) {
            pending.next();
            continue;
        }
        super::sys::check_interrupted()?;
        if since.elapsed() > timeout {
            let left = pending.filter(|rel| !same(src, dst, rel)).take(20);
            return Ok(left.map(|p| format!("not replicated: {p}")).collect());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Vec::new())
}

/// The path of one `--itemize-changes` line (`*deleting   a/b`,
/// `>f.st...... a/c`, `cd+++++++++ a/d/`), without a trailing slash.
fn itemized_path(line: &str) -> Option<String> {
    let path = line.get(12..)?.trim_start();
    (!path.is_empty()).then(|| path.trim_end_matches('/').to_string())
}

/// Whether `rel` is the same in `src` and `dst` by rsync's quick check:
/// both absent, or both present with the same type, the same mtime in whole
/// seconds (rsync's default `--modify-window=0`) and, for files, the same
/// size. Directories are compared by mtime too, as the confirming full
/// check (`-a`: `.d..t`) compares them: a push still setting a directory's
/// mtime has not made the replica equal.
pub fn same(src: &Path, dst: &Path, rel: &str) -> bool {
    compare(src, dst, rel, false)
}

/// Like [`same`], with mtimes compared to the nanosecond.
fn same_ns(src: &Path, dst: &Path, rel: &str) -> bool {
    compare(src, dst, rel, true)
}

fn compare(src: &Path, dst: &Path, rel: &str, ns: bool) -> bool {
    match (
        std::fs::symlink_metadata(src.join(rel)),
        std::fs::symlink_metadata(dst.join(rel)),
    ) {
        (Err(_), Err(_)) => true,
        (Ok(a), Ok(b)) if a.is_dir() && b.is_dir() => a.mtime() == b.mtime(),
        (Ok(a), Ok(b)) => {
            a.file_type() == b.file_type()
                && a.len() == b.len()
                && a.mtime() == b.mtime()
                && (!ns || a.mtime_nsec() == b.mtime_nsec())
        }
        _ => false,
    }
}

/// How the wait for a replica ended.
pub struct Converged {
    /// Seconds from the change set's end to replica = source.
    pub seconds: f64,
    /// Differences left when the wait gave up (empty: converged).
    pub residual: Vec<String>,
    /// Touched files equal by the quick check whose mtimes still differ in
    /// the nanoseconds (rsync's quick check does not see them).
    pub mtime_ns_differs: Vec<String>,
    /// What the first full check still found once every touched path was
    /// equal (its itemized lines; empty when it was clean): the time then
    /// includes the full checks until the replica was equal.
    pub beyond_touched: Vec<String>,
}

/// The directories above the `touched` paths, root included (`""`),
/// deepest first: a change set that creates or deletes an entry changes
/// its directory's mtime, which a push sets last.
fn parents(touched: &BTreeSet<String>) -> Vec<String> {
    let mut dirs = BTreeSet::new();
    for rel in touched {
        let mut rel = rel.as_str();
        while let Some((parent, _)) = rel.rsplit_once('/') {
            dirs.insert(parent.to_string());
            rel = parent;
        }
        dirs.insert(String::new());
    }
    let mut dirs: Vec<String> = dirs.into_iter().collect();
    dirs.sort_by_key(|dir| std::cmp::Reverse(dir.matches('/').count() + !dir.is_empty() as usize));
    dirs
}

/// How long after `since` the replica caught up: first the touched paths
/// and then the directories above them are walked in order, waiting at
/// each (re-checked every 10 ms) until it
/// is equal by rsync's quick check, so the whole wait costs about K lstat
/// pairs and leaves the cores to the tool (polling every path every 10 ms
/// kept one core busy at K = 100,000); then one full
/// `rsync -an --delete --itemize-changes` over the whole tree confirms. If
/// it finds differences, the paths it names are waited for the same way
/// and the time taken when they are equal, then the full check is repeated
/// until clean or `timeout` (so the time is not that of the slower full
/// checks).
pub fn wait_replica(
    src: &Path,
    dst: &Path,
    touched: &BTreeSet<String>,
    since: Instant,
    timeout: Duration,
) -> anyhow::Result<Converged> {
    let mut beyond_touched = Vec::new();
    let mut waited: Vec<String> = touched.iter().cloned().collect();
    waited.extend(parents(touched));
    let (seconds, residual) = loop {
        let left = walk_until_equal(src, dst, &waited, since, timeout)?;
        let equal_at = since.elapsed().as_secs_f64();
        if !left.is_empty() {
            break (equal_at, left);
        }
        let diff = differences(src, dst)?;
        if diff.is_empty() || since.elapsed() > timeout {
            break (equal_at, diff);
        }
        waited = diff.iter().filter_map(|line| itemized_path(line)).collect();
        if beyond_touched.is_empty() {
            beyond_touched = diff;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mtime_ns_differs = touched
        .iter()
        .filter(|rel| !same_ns(src, dst, rel))
        .cloned()
        .collect();
    Ok(Converged {
        seconds,
        residual,
        mtime_ns_differs,
        beyond_touched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directories_above_touched_paths_come_deepest_first_root_last() {
        let touched: BTreeSet<String> = ["jobs/a/builds/7/log", "jobs/b/config.xml", "top"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            parents(&touched),
            [
                "jobs/a/builds/7",
                "jobs/a/builds",
                "jobs/a",
                "jobs/b",
                "jobs",
                ""
            ]
        );
    }
}
