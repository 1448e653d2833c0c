//! The bench's network-shaped target: a real `rsync --daemon` on
//! 127.0.0.1 whose module is the replica's directory, so every tool pushes
//! over the rsync protocol (file lists and checksums cross a socket) into
//! the same ext4 image the local runs write to. What crossed is counted
//! twice: the loopback interface's received bytes (`/proc/net/dev`, both
//! directions of every session, TCP/IP headers included: nothing else in
//! the bench talks over the network) and the daemon log's `%b` of each
//! received file (file data only, after the delta algorithm). The daemon's
//! own per-session summary is no use: rsync logs it only for sessions that
//! end with exit 0, and a push racing the writer ends with 24 (vanished
//! files).
//!
//! Settings from rsyncd.conf(5): `use chroot = no` (no chroot needed on
//! 127.0.0.1), `munge symlinks = no` (a daemon without chroot would
//! otherwise rewrite every symlink's target), `uid`/`gid = root` so owners
//! are kept as the local runs keep them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::sys::Proc;

/// The module name every tool pushes to.
const MODULE: &str = "replica";

/// A running `rsync --daemon --no-detach` serving `dst` as module
/// `replica` on 127.0.0.1. Dropping it stops the daemon.
pub struct RsyncDaemon {
    _proc: Proc,
    log: PathBuf,
    /// `rsync://127.0.0.1:PORT/replica/`.
    pub url: String,
}

/// What crossed since the bench started (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes the loopback interface received: every rsync session's
    /// traffic in both directions (file lists, checksums, data), with its
    /// TCP/IP headers.
    pub wire: u64,
    /// Sum of the `%b` of every received file: file data after the delta
    /// algorithm (a file left alone by the quick check adds nothing).
    pub data: u64,
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;
    fn sub(self, before: Traffic) -> Traffic {
        Traffic {
            wire: self.wire.saturating_sub(before.wire),
            data: self.data.saturating_sub(before.data),
        }
    }
}

impl RsyncDaemon {
    /// Starts the daemon on `port` with its configuration and log in `work`,
    /// and waits until it listens (at most 10 s).
    pub fn start(dst: &Path, work: &Path, port: u16) -> anyhow::Result<RsyncDaemon> {
        let (config, log) = (work.join("rsyncd.conf"), work.join("rsyncd.log"));
        let _ = std::fs::remove_file(&log);
        std::fs::write(
            &config,
            format!(
                "log file = {}\n[{MODULE}]\npath = {}\nuse chroot = no\nmunge symlinks = no\nread only = no\nuid = root\ngid = root\ntransfer logging = yes\nlog format = %o %b %n\n",
                log.display(),
                dst.display()
            ),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        let proc = Proc::spawn(
            "rsync --daemon",
            Command::new("rsync")
                .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
                .arg(format!("--port={port}"))
                .arg(format!("--config={}", config.display())),
            &work.join("rsyncd.out"),
            true,
        )?;
        let daemon = RsyncDaemon {
            _proc: proc,
            log,
            url: format!("rsync://127.0.0.1:{port}/{MODULE}/"),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(10),
                "rsync --daemon did not listen on 127.0.0.1:{port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    /// What crossed so far.
    pub fn traffic(&self) -> Traffic {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let data = text
            .lines()
            // "2026/12/03 14:10:49 [23298] recv 1210 a/f"
            .filter_map(|line| line.splitn(4, ' ').nth(3)?.strip_prefix("recv "))
            .filter_map(|rest| number_before(rest, " "))
            .sum();
        Traffic {
            wire: loopback_received(),
            data,
        }
    }

    /// The traffic since `before`, once the loopback has been quiet for
    /// 300 ms (a tool's last rsync run may still be closing after the
    /// replica looks equal; waits at most 5 s).
    pub fn traffic_since(&self, before: Traffic) -> Traffic {
        let start = Instant::now();
        let mut last = loopback_received();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = loopback_received();
            if now == last || start.elapsed() > Duration::from_secs(5) {
                return self.traffic() - before;
            }
            last = now;
        }
    }
}

/// The loopback interface's received bytes (`/proc/net/dev`, the first
/// number after `lo:`); 0 when unreadable.
fn loopback_received() -> u64 {
    let text = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    text.lines()
        .find_map(|line| line.trim_start().strip_prefix("lo:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The decimal number at the start of `text`, ending at `end`.
fn number_before(text: &str, end: &str) -> Option<u64> {
    text.split(end).next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_the_daemon_log_lines() {
        assert_eq!(number_before("1210 a/f", " "), Some(1210));
        assert_eq!(
            number_before("100176 bytes  total size 1", " bytes"),
            Some(100176)
        );
        assert_eq!(number_before("x a/f", " "), None);
    }
}
