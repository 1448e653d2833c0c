//! Is an agent running on a journal? The journal's own lock says so, not a
//! process name: while a process has the journal open for writing, RocksDB
//! holds a POSIX record lock on all of `<journal>/LOCK` (`fcntl(F_SETLK,
//! F_WRLCK)`, `env/fs_posix.cc` `LockOrUnlock`), and `fcntl(F_GETLK)` from
//! any other process reports it with the holder's pid (fcntl(2), "Advisory
//! record locking"). The agent's name may be anything: `exe` after a
//! SIGHUP re-exec through `/proc/self/exe` (`daemon::reexec`), or a copy of
//! the binary under another name.
//!
//! The pid recorded in the journal's `AgentInfo` covers what the lock
//! cannot: the holder's pid when it lives in another pid namespace (F_GETLK
//! then reports 0), and the moment of a re-exec, when the old image has
//! closed the journal and the new one has not opened it yet (same pid).
//!
//! For the CLI only (`status`, `push --wait`, `unpin`, …): never call it in
//! the agent's process. A POSIX record lock belongs to the process, and
//! closing *any* descriptor of the file drops it (fcntl(2), "If a process
//! closes any file descriptor referring to a file, then all of the
//! process's locks on that file are released"): the agent would lose its
//! own journal lock. It never writes.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::journal::Journal;

/// How long a waiting CLI keeps believing in an agent whose recorded pid
/// lives while the journal's lock is free: a SIGHUP re-exec reopens the
/// journal within a second or two (config load, journal open).
pub const RESTART_GRACE: Duration = Duration::from_secs(15);

/// The pid of the process holding the journal at `journal_dir` open for
/// writing, or `None` when none does (or the lock file cannot be read:
/// no journal, no permission). A holder in another pid namespace is
/// reported as `Some(0)`.
pub fn lock_holder(journal_dir: &Path) -> Option<u32> {
    let file = std::fs::File::open(journal_dir.join("LOCK")).ok()?;
    // SAFETY: an all-zero flock is a valid value; every field we rely on is set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 0;
    // SAFETY: F_GETLK only reads and fills `lock`, which outlives the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    if rc != 0 || lock.l_type == libc::F_UNLCK as libc::c_short {
        return None;
    }
    Some(u32::try_from(lock.l_pid).unwrap_or(0))
}

/// The pid of the agent running on the journal at `journal_dir`, or `None`
/// when no agent holds it. `recorded_pid` is the journal's `AgentInfo.pid`
/// (0: none recorded); it stands in when the lock's holder has no pid in
/// our namespace.
pub fn running_agent(journal_dir: &Path, recorded_pid: u32) -> Option<u32> {
    match lock_holder(journal_dir)? {
        0 => Some(recorded_pid),
        pid => Some(pid),
    }
}

/// The pid of the agent running on `journal` (see [`running_agent`]), with
/// the pid its `AgentInfo` recorded. Errors: the agent info is unreadable.
pub fn agent_of(journal: &Journal) -> anyhow::Result<Option<u32>> {
    let recorded = journal.agent_info()?.unwrap_or_default().pid;
    Ok(running_agent(journal.path(), recorded))
}

/// Watches an agent while a CLI waits for its answer: it has gone once the
/// journal's lock is free and either the recorded pid is gone too (the
/// agent exited) or the lock stayed free longer than [`RESTART_GRACE`] (not
/// a re-exec; the pid was reused).
pub struct Watch {
    journal_dir: PathBuf,
    recorded_pid: u32,
    free_since: Option<Instant>,
}

impl Watch {
    /// Starts watching the agent recorded with `recorded_pid`.
    pub fn new(journal_dir: &Path, recorded_pid: u32) -> Watch {
        Watch {
            journal_dir: journal_dir.to_path_buf(),
            recorded_pid,
            free_since: None,
        }
    }

    /// Whether the agent has gone (see [`Watch`]); call it every poll.
    pub fn gone(&mut self) -> bool {
        if lock_holder(&self.journal_dir).is_some() {
            self.free_since = None;
            return false;
        }
        let free_since = *self.free_since.get_or_insert_with(Instant::now);
        !process_exists(self.recorded_pid) || free_since.elapsed() > RESTART_GRACE
    }
}

/// Whether a process with `pid` exists (0: none).
fn process_exists(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_nobody_holds_has_no_agent() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lock_holder(dir.path()), None, "no LOCK file");
        std::fs::write(dir.path().join("LOCK"), "").unwrap();
        assert_eq!(lock_holder(dir.path()), None, "LOCK not locked");
        assert!(running_agent(dir.path(), std::process::id()).is_none());
        let mut watch = Watch::new(dir.path(), 0);
        assert!(watch.gone(), "no lock and no pid: gone");
        let mut watch = Watch::new(dir.path(), std::process::id());
        assert!(!watch.gone(), "the recorded pid lives: maybe re-executing");
    }

    #[test]
    fn another_process_holding_the_lock_is_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("LOCK");
        std::fs::write(&lock, "").unwrap();
        // A child takes the same kind of lock as RocksDB (fcntl F_SETLK on
        // the whole file): our own locks never conflict with ourselves.
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg("import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)")
            .arg(&lock)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 takes the lock");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        assert_eq!(lock_holder(dir.path()), Some(child.id()));
        assert_eq!(running_agent(dir.path(), 12345), Some(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(lock_holder(dir.path()), None, "released at exit");
    }
}
