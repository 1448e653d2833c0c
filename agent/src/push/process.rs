//! Child processes of the push side (rsync, hooks): a NUL-separated list
//! fed on stdin from a thread, and a wait that can give up and kill.

use std::io::Write;
use std::process::{Child, ExitStatus};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a waiting child is polled (ms).
const POLL_MS: u64 = 20;

/// Writes `list` NUL-separated to the child's stdin (if piped) on a thread,
/// so a child that exits early or ignores its stdin never blocks us; a write
/// error means it exited, and its exit status says why.
pub fn feed(child: &mut Child, list: &[&[u8]]) -> JoinHandle<()> {
    let mut payload = Vec::with_capacity(list.iter().map(|p| p.len() + 1).sum());
    for path in list {
        payload.extend_from_slice(path);
        payload.push(0);
    }
    let stdin = child.stdin.take();
    std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&payload);
        }
    })
}

/// Waits for the child; kills it (→ `None`) as soon as `give_up` says so.
pub fn wait_or_kill(child: &mut Child, give_up: impl Fn() -> bool) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if !give_up() => std::thread::sleep(Duration::from_millis(POLL_MS)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
