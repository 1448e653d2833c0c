//! Configurations that would destroy a replica, copy without end or hang
//! are refused before anything is created: `fsjournal config check` fails
//! naming both paths and where each was written, and `fsjournal run` stops
//! before the journal directory exists. A target that accepts the
//! connection and never answers fails each push on the I/O timeout, is
//! retried with backoff, and loses nothing.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;

/// Runs `fsjournal ARGS` in `cwd`; returns (exit code, stderr + stdout).
fn fsjournal(cwd: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fsjournal"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A scratch directory (canonical path) holding `src`, `other` and
/// `replica`; no filesystem is mounted: nothing here gets as far as capture.
fn tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    for d in ["src/inner", "other", "replica"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("src/inner/file"), "data\n").unwrap();
    (dir, root)
}

/// One `[[sync]]` table (5 lines).
fn sync(name: &str, source: &str, target: &str) -> String {
    format!("\n[[sync]]\nname = \"{name}\"\nsource = \"{source}\"\ntarget = \"{target}\"\n")
}

/// Writes `root/fsjournal.toml` with the journal at `root/journal` (lines
/// 1–2) and `syncs` after it; returns its path.
fn config(root: &Path, syncs: &str) -> String {
    let file = root.join("fsjournal.toml");
    let text = format!(
        "[journal]\npath = \"{}\"\n{syncs}",
        root.join("journal").display()
    );
    std::fs::write(&file, text).unwrap();
    file.display().to_string()
}

/// Asserts that `config check FILE` and `run --config FILE` both refuse
/// with every text of `expected`, and that no journal was created.
fn refused_by_check_and_run(root: &Path, file: &str, expected: &[&str]) {
    for args in [["config", "check", file], ["run", "--config", file]] {
        let (code, text) = fsjournal(root, &args);
        assert_ne!(code, 0, "{args:?} must refuse:\n{text}");
        for wanted in expected {
            assert!(
                text.contains(wanted),
                "{args:?}: expected {wanted:?} in:\n{text}"
            );
        }
        assert!(
            !root.join("journal").exists(),
            "{args:?}: a refused configuration creates no journal"
        );
    }
}

#[test]
fn a_dest_inside_the_source_through_dotdot_is_refused_naming_both_paths() {
    let (_dir, root) = tree();
    let r = root.display();
    let file = config(
        &root,
        &sync(
            "a",
            &format!("{r}/src"),
            &format!("{r}/other/../src/replica"),
        ),
    );
    refused_by_check_and_run(
        &root,
        &file,
        &[
            &format!("{file}:7: key `sync[0].target`"),
            &format!("target {r}/other/../src/replica (resolves to {r}/src/replica) lies inside source {r}/src ({file}:6: key `sync[0].source`)"),
            "copy the replica into itself",
        ],
    );
    // The same on the command line names the options.
    let (code, text) = fsjournal(
        &root,
        &[
            "run",
            "--source",
            &format!("{r}/src"),
            "--dest",
            &format!("{r}/other/../src/replica"),
            "--journal",
            &format!("{r}/journal"),
        ],
    );
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("<command line>:0: key `--dest`")
            && text.contains(&format!("lies inside source {r}/src (--source)")),
        "{text}"
    );
    assert!(!root.join("journal").exists());
    assert!(!root.join("src/replica").exists(), "nothing was copied");
}

#[test]
fn two_syncs_whose_targets_are_each_others_sources_are_refused() {
    let (_dir, root) = tree();
    let r = root.display();
    let file = config(
        &root,
        &format!(
            "{}{}",
            sync("one", &format!("{r}/src"), &format!("{r}/other")),
            sync("two", &format!("{r}/other"), &format!("{r}/src"))
        ),
    );
    refused_by_check_and_run(
        &root,
        &file,
        &[
            &format!("{file}:12: key `sync[1].target`: target {r}/src is the same directory as source {r}/src ({file}:6: key `sync[0].source`)"),
            &format!("{file}:7: key `sync[0].target`: target {r}/other is the same directory as source {r}/other ({file}:11: key `sync[1].source`)"),
        ],
    );
}

#[test]
fn nested_sources_are_refused_before_the_journal_exists() {
    let (_dir, root) = tree();
    let r = root.display();
    let file = config(
        &root,
        &format!(
            "{}{}",
            sync("outer", &format!("{r}/src"), "rsync://standby/outer"),
            sync("inner", &format!("{r}/src/inner"), "rsync://standby/inner")
        ),
    );
    refused_by_check_and_run(
        &root,
        &file,
        &[&format!(
            "{file}:11: key `sync[1].source`: source {r}/src/inner lies inside source {r}/src ({file}:6: key `sync[0].source`): sources must not nest"
        )],
    );
}

#[test]
fn a_relative_journal_inside_the_source_is_refused() {
    let (_dir, root) = tree();
    let r = root.display();
    let (code, text) = fsjournal(
        &root,
        &[
            "run",
            "--source",
            &format!("{r}/src"),
            "--dest",
            &format!("{r}/replica"),
            "--journal",
            "src/../src/journal",
        ],
    );
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "key `--source`: source {r}/src contains the journal src/../src/journal (resolves to {r}/src/journal) (--journal)"
        )),
        "{text}"
    );
    assert!(!root.join("src/journal").exists(), "no journal was created");
    assert!(!root.join("journal").exists());
}

#[test]
fn a_target_that_looks_like_an_option_is_never_passed_to_rsync() {
    let (_dir, root) = tree();
    let r = root.display();
    let (code, text) = fsjournal(
        &root,
        &[
            "run",
            "--source",
            &format!("{r}/src"),
            "--dest=--rsh=touch:x",
            "--journal",
            &format!("{r}/journal"),
        ],
    );
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("key `--dest`: `--rsh=touch:x` starts with `-`")
            && text.contains("rsync would read it as an option"),
        "{text}"
    );
    assert!(!root.join("journal").exists());
    let entries: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 3, "nothing was run or created: {entries:?}");
}

#[test]
fn ports_outside_1_to_65535_are_refused_by_config_check() {
    let (_dir, root) = tree();
    let r = root.display();
    for target in ["rsync://127.0.0.1:99999/m", "rsync://standby:abc/m"] {
        let file = config(&root, &sync("a", &format!("{r}/src"), target));
        let (code, text) = fsjournal(&root, &["config", "check", &file]);
        assert_ne!(code, 0, "{target}: {text}");
        assert!(
            text.contains(&format!("{file}:7: key `sync[0].target`: `{target}`: port"))
                && text.contains("is not a number from 1 to 65535"),
            "{target}: {text}"
        );
    }
}

#[test]
fn a_password_file_not_owned_by_root_fails_config_check_with_the_fix() {
    support::root_or_skip!("chown, a rule for agents running as root");
    let (_dir, root) = tree();
    let r = root.display();
    let secret = root.join("password");
    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&secret, Some(65534), Some(65534)).unwrap();
    let file = config(
        &root,
        &format!(
            "{}password_file = \"{}\"\n",
            sync("a", &format!("{r}/src"), "rsync://fsj@127.0.0.1:873/backup"),
            secret.display()
        ),
    );
    let (code, text) = fsjournal(&root, &["config", "check", &file]);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains(&format!("{file}:8: key `sync[0].password_file`"))
            && text.contains("owned by uid 65534")
            && text.contains("password file must be owned by root when running as root")
            && text.contains(&format!("chown root {}", secret.display())),
        "{text}"
    );
    std::os::unix::fs::chown(&secret, Some(0), Some(0)).unwrap();
    let (code, text) = fsjournal(&root, &["config", "check", &file]);
    assert_eq!(code, 0, "owned by root, the same file passes:\n{text}");
}

/// A TCP listener on 127.0.0.1 that accepts connections and holds them
/// open without sending a byte, until dropped.
struct SilentTarget {
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentTarget {
    fn listen(port: u16) -> SilentTarget {
        // The paused daemon's forked child (it served the readiness probe)
        // may hold the port a moment longer.
        let mut bound = None;
        wait_until(Duration::from_secs(20), "the port to be free", || {
            bound = TcpListener::bind(("127.0.0.1", port)).ok();
            bound.is_some()
        });
        let listener = bound.unwrap();
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        held.push(stream);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        SilentTarget {
            accepted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_target_that_accepts_and_never_answers_times_out_retries_and_loses_nothing() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    std::fs::write(scratch.src().join("before.txt"), "before\n").unwrap();
    let mut daemon = RsyncDaemon::start(&scratch.replica());
    daemon.pause();
    let silent = SilentTarget::listen(daemon.port);
    let config = write_config(
        &scratch,
        &daemon.url(),
        Some(&daemon.password_file()),
        "io_timeout_s = 2\nconnect_timeout_s = 2\n",
    );
    let agent = Agent::start(&config, &scratch);
    std::fs::write(scratch.src().join("during.txt"), "during\n").unwrap();

    wait_until(
        Duration::from_secs(60),
        "two pushes to time out against the silent target",
        || {
            let status = status(&scratch);
            status
                .first_target()
                .is_some_and(|t| t.consecutive_failures >= 2)
                && silent.accepted.load(Ordering::Relaxed) >= 2
        },
    );
    let state = status(&scratch);
    let target = state.target();
    let error = target.error();
    assert!(
        error.contains("rsync exit 30") && error.contains("timeout"),
        "the timeout is the target's last error: {state:#?}"
    );
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", agent.pid())).unwrap();
    assert!(
        !stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('Z'),
        "the agent keeps running: {stat}"
    );
    assert!(target.full_sync_needed.is_some(), "{state:#?}");
    let pending = sh(
        env!("CARGO_BIN_EXE_fsjournal"),
        &[
            "pending",
            "--json",
            "--journal",
            scratch.journal().to_str().unwrap(),
        ],
    );
    assert!(
        pending.contains("\"path\":\"during.txt\""),
        "the change made meanwhile is still pending:\n{pending}"
    );

    // The target answers again: everything arrives.
    drop(silent);
    daemon.resume();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(Duration::from_secs(30), "the error to clear", || {
        status(&scratch).target().last_error.is_none()
    });
    agent.stop();
}

#[test]
fn an_ssh_target_gets_connect_and_keepalive_timeouts() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    std::fs::write(scratch.src().join("file"), "data\n").unwrap();
    // A program named `ssh` that records its arguments and runs rsync's
    // server side here: rsync calls it as `ssh [-o …]… -l USER HOST rsync --server …`.
    let bin = scratch.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = scratch.path().join("ssh-calls");
    let ssh = bin.join("ssh");
    std::fs::write(
        &ssh,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nwhile [ \"$1\" = -o ]; do shift 2; done\n[ \"$1\" = -l ] && shift 2\nshift\nexec \"$@\"\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let target = format!("backup@standby:{}", scratch.replica().display());
    let config = write_config(
        &scratch,
        &target,
        None,
        &format!("ssh_command = \"{}\"\n", ssh.display()),
    );
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let recorded = std::fs::read_to_string(&calls).unwrap();
    assert!(
        recorded.lines().all(|l| l.starts_with(
            "-o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -l backup standby rsync --server"
        )),
        "every ssh call carries the default timeouts:\n{recorded}"
    );
    agent.stop();
}
