//! Bad input stops the agent before it starts, with a message that names
//! the file, line and key (or the filesystem) and a non-zero exit; nothing is
//! journaled or pushed, so no cursor moves past a change that was not sent.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::*;

/// Runs `fsjournal run` with `args`; returns (exit code, stderr).
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fsjournal"))
        .arg("run")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the agent on `scratch`'s configuration with `extra` lines in its
/// `[[sync]]` and `target`; asserts a refusal naming `expected`, and that no
/// journal was created.
fn refused(scratch: &Scratch, target: &str, extra: &str, expected: &[&str]) {
    let config = write_config(scratch, target, None, extra);
    let (code, stderr) = run(&["--config", config.to_str().unwrap()]);
    assert_ne!(code, 0, "the agent must refuse to start:\n{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "expected {text:?} in:\n{stderr}");
    }
    assert!(
        !scratch.journal().exists(),
        "a refused configuration creates no journal"
    );
}

fn config_name(scratch: &Scratch) -> String {
    scratch.path().join("fsjournal.toml").display().to_string()
}

#[test]
fn malformed_value_names_file_line_and_key() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica().display().to_string();
    // Line 10: after [journal] (2 lines), a blank line and 6 lines of [[sync]].
    let file_line = format!("{}:10:", config_name(&scratch));
    refused(
        &scratch,
        &replica,
        "batch_max_files = \"many\"\n",
        &[
            &file_line,
            "sync[0].batch_max_files",
            "\"many\", expected usize",
        ],
    );
}

#[test]
fn missing_and_non_regular_password_files_are_refused() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let missing = scratch.path().join("no-such-password");
    refused(
        &scratch,
        "rsync://fsj@127.0.0.1:1/backup",
        &format!("password_file = \"{}\"\n", missing.display()),
        &["sync[0].password_file", "No such file"],
    );
    refused(
        &scratch,
        "rsync://fsj@127.0.0.1:1/backup",
        &format!("password_file = \"{}\"\n", scratch.path().display()),
        &["sync[0].password_file", "not a regular file"],
    );
}

#[test]
fn password_file_readable_by_others_is_refused() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let secret = scratch.path().join("password");
    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(
        &scratch,
        "rsync://fsj@127.0.0.1:1/backup",
        &format!("password_file = \"{}\"\n", secret.display()),
        &["sync[0].password_file", "0644", "chmod 600"],
    );
}

#[test]
fn local_target_without_a_parent_directory_is_refused() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let target = scratch.path().join("no/such/dir");
    refused(
        &scratch,
        target.to_str().unwrap(),
        "",
        &["sync[0].target", "no/such/dir", "parent directory"],
    );
}

#[test]
fn source_that_does_not_exist_is_refused() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("source = \"{}\"", scratch.src().display()),
        "source = \"/no/such/source\"",
    );
    std::fs::write(&config, text).unwrap();
    let (code, stderr) = run(&["--config", config.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("sync[0].source") && stderr.contains("/no/such/source"),
        "{stderr}"
    );
    assert!(!scratch.journal().exists());
}

#[test]
fn root_on_a_filesystem_without_file_handles_is_refused() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let journal = scratch.journal();
    let replica = scratch.replica();
    // procfs has no file handles: neither eBPF nor fanotify can place events there.
    let (code, stderr) = run(&[
        "--source",
        "/proc/sys/kernel",
        "--dest",
        replica.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("/proc/sys/kernel") && stderr.contains("supported: ext4"),
        "{stderr}"
    );
    assert!(
        is_empty_dir(&replica),
        "nothing was pushed from an unwatched root"
    );
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}
