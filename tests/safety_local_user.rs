//! Nothing a local non-root user does can make the agent push or resync, or
//! read its journal: directories another user owns or can write (the
//! journal, its `requests/`, the eBPF pin directories) are refused at
//! start, never chmod'ed; request files are taken only from root. And an
//! operator's request that names nothing inside the source is refused
//! instead of answered as done; `verify --fix` with no agent says the truth.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_fsjournal");
/// The unprivileged user of the tests (`nobody`).
const NOBODY: u32 = 65534;

/// Runs `fsjournal ARGS` to completion.
fn fsjournal(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("FSJOURNAL_LOG")
        .output()
        .unwrap()
}

/// Runs `fsjournal run --config CONFIG`, which must refuse to start; returns
/// its stderr. An agent that starts anyway is killed after 30 s.
fn refused_run(config: &Path) -> String {
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = None;
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(Duration::from_secs(30), "the agent to refuse", || {
            exited = child.try_wait().unwrap();
            exited.is_some()
        })
    }));
    if waited.is_err() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        waited.is_ok() && !out.status.success(),
        "the agent must refuse to start:\n{stderr}"
    );
    stderr
}

/// A source with content and a replica holding one file of its own, which a
/// push with `--delete` would remove; the configuration syncs them locally
/// with capture `backend` (eBPF needs ext4: tmpfs handles cannot be named).
fn scratch_with(backend: &str) -> (Scratch, std::path::PathBuf) {
    let scratch = if backend == "ebpf" {
        Scratch::ext4()
    } else {
        Scratch::tmpfs()
    };
    workload::seed(&scratch.src());
    std::fs::write(scratch.replica().join("keep-me"), "the replica's own\n").unwrap();
    let config = write_config(&scratch, scratch.replica().to_str().unwrap(), None, "");
    use_backend(&config, backend);
    (scratch, config)
}

fn scratch_with_a_replica() -> (Scratch, std::path::PathBuf) {
    scratch_with("fanotify")
}

/// The replica still holds only its own file.
fn assert_replica_untouched(scratch: &Scratch) {
    let entries: Vec<_> = std::fs::read_dir(scratch.replica())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["keep-me"], "the replica was touched");
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

#[test]
fn a_journal_directory_another_user_owns_is_refused_and_the_replica_untouched() {
    support::root_or_skip!();
    let (scratch, config) = scratch_with_a_replica();
    let journal = scratch.journal();
    std::fs::create_dir(&journal).unwrap();
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(&journal, NOBODY);

    let stderr = refused_run(&config);
    for expected in [
        "journal directory",
        "owned by uid 65534",
        &format!("chown root:root {0} && chmod 0700 {0}", journal.display()),
    ] {
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }
    let meta = std::fs::metadata(&journal).unwrap();
    assert_eq!(meta.uid(), NOBODY, "the directory is left as it was");
    assert_eq!(
        std::fs::read_dir(&journal).unwrap().count(),
        0,
        "nothing was written into it"
    );
    assert_replica_untouched(&scratch);
}

#[test]
fn a_shared_mode_1777_journal_directory_is_refused_and_keeps_its_mode() {
    support::root_or_skip!();
    let (scratch, config) = scratch_with_a_replica();
    let journal = scratch.journal();
    std::fs::create_dir(&journal).unwrap();
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let theirs = journal.join("someone-elses-file");
    std::fs::write(&theirs, "x").unwrap();
    chown(&theirs, NOBODY);

    let stderr = refused_run(&config);
    assert!(stderr.contains("has mode 1777"), "{stderr}");
    assert!(stderr.contains("chmod 0700"), "{stderr}");
    let mode = std::fs::metadata(&journal).unwrap().mode() & 0o7777;
    assert_eq!(
        mode, 0o1777,
        "the agent never chmods a directory it did not create"
    );
    assert_eq!(
        std::fs::read_dir(&journal).unwrap().count(),
        1,
        "nothing was added beside their file"
    );
    assert_replica_untouched(&scratch);
}

/// Writes a request file into `<journal>/requests/` the way the CLI does
/// (a hidden name, then a rename), owned by `uid`; returns its path.
fn plant_request(scratch: &Scratch, name: &str, json: &str, uid: u32) -> std::path::PathBuf {
    let dir = scratch.journal().join("requests");
    let hidden = dir.join(format!(".{name}.tmp"));
    std::fs::write(&hidden, json).unwrap();
    std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown(&hidden, uid);
    let file = dir.join(name);
    std::fs::rename(&hidden, &file).unwrap();
    file
}

const FULL_RESYNC: &str = r#"{"target":"standby","action":{"Resync":{"path":null}},"reply":true}"#;

#[test]
fn a_request_another_user_wrote_makes_no_resync_and_gets_no_answer() {
    support::root_or_skip!();
    let (scratch, config) = scratch_with_a_replica();
    let agent = start_and_sync(&config, &scratch);

    // As `nobody`: a full resync, asking for an answer.
    let foreign = plant_request(&scratch, "100-1.json", FULL_RESYNC, NOBODY);
    // A symbolic link to a request root wrote elsewhere.
    let elsewhere = scratch.path().join("elsewhere.json");
    std::fs::write(&elsewhere, FULL_RESYNC).unwrap();
    let link = scratch.journal().join("requests/101-1.json");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    wait_until(Duration::from_secs(10), "the agent to remove both", || {
        !foreign.exists() && link.symlink_metadata().is_err()
    });
    // One more housekeeping round for a wrongly taken request to start.
    std::thread::sleep(Duration::from_secs(2));
    let log = agent.log_text();
    assert!(
        log.contains("request refused and removed: owned by uid 65534")
            && log.contains("100-1.json")
            && log.contains("owner_uid=65534"),
        "no warning naming the file and its owner:\n{log}"
    );
    assert!(
        log.contains("request refused and removed: a symbolic link"),
        "{log}"
    );
    assert!(
        !log.contains("operator request"),
        "a refused request was carried out:\n{log}"
    );
    assert!(
        !foreign.with_extension("reply").exists(),
        "a refused request was answered"
    );
    let status_now = status(&scratch);
    let target = status_now.target();
    assert_eq!(target.full_syncs, 1, "{target:#?}");
    assert!(elsewhere.exists(), "the link's target is not touched");

    // The same request from root is carried out: the check is what refused.
    let root_request = plant_request(&scratch, "102-1.json", FULL_RESYNC, 0);
    wait_until(Duration::from_secs(30), "root's resync to run", || {
        status(&scratch).target().full_syncs == 2
    });
    wait_until(
        Duration::from_secs(10),
        "the reply to root's request",
        || root_request.with_extension("reply").exists(),
    );
    agent.stop();
}

#[test]
fn resync_of_a_path_outside_the_source_is_refused_on_both_sides() {
    support::root_or_skip!();
    let (scratch, config) = scratch_with_a_replica();
    std::fs::remove_file(scratch.replica().join("keep-me")).unwrap();
    let agent = start_and_sync(&config, &scratch);
    let journal = scratch.journal();
    let journal = journal.to_str().unwrap();
    let outside = scratch.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "not to be copied\n").unwrap();

    for (path, expected) in [
        ("../outside", "contains `..`"),
        ("jobs/../../outside", "contains `..`"),
        (outside.to_str().unwrap(), "is outside the source"),
        ("no/such/job", "nothing at"),
        (".", "names the source"),
    ] {
        let out = fsjournal(&["resync", "--journal", journal, "--path", path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--path {path} was accepted");
        assert!(
            stderr.contains(expected),
            "--path {path}: expected {expected:?} in:\n{stderr}"
        );
    }
    assert_eq!(
        std::fs::read_dir(scratch.journal().join("requests"))
            .unwrap()
            .count(),
        0,
        "a refused --path queued nothing"
    );

    // A request file that bypassed the CLI: the agent refuses it too, and
    // answers that it failed.
    let request = plant_request(
        &scratch,
        "200-1.json",
        r#"{"target":"standby","action":{"Resync":{"path":"../outside"}},"reply":true}"#,
        0,
    );
    let reply = request.with_extension("reply");
    wait_until(Duration::from_secs(10), "the agent's answer", || {
        reply.exists()
    });
    let answer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&reply).unwrap()).unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("contains `..`"),
        "{answer}"
    );
    assert_eq!(differences(&scratch.src(), &scratch.replica()), "");

    // A path inside the source, absolute or relative, still works.
    std::fs::write(
        scratch.replica().join("jobs/alpha/config.xml"),
        "tampered\n",
    )
    .unwrap();
    let inside = scratch.src().join("jobs/alpha");
    let out = fsjournal(&[
        "resync",
        "--journal",
        journal,
        "--path",
        inside.to_str().unwrap(),
        "--wait",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("pushed"), "{stdout}");
    assert_eq!(differences(&scratch.src(), &scratch.replica()), "");
    agent.stop();
}

#[test]
fn verify_fix_with_no_agent_says_the_fix_waits_for_the_next_start() {
    support::root_or_skip!();
    let (scratch, config) = scratch_with_a_replica();
    std::fs::remove_file(scratch.replica().join("keep-me")).unwrap();
    let agent = start_and_sync(&config, &scratch);
    agent.stop();
    let tampered = scratch.replica().join("jobs/beta/config.xml");
    std::fs::write(&tampered, "tampered on the target, and longer\n").unwrap();

    let out = fsjournal(&["verify", "--config", config.to_str().unwrap(), "--fix"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the target still differs:\n{stdout}");
    assert!(stdout.contains("jobs/beta/config.xml"), "{stdout}");
    assert!(
        stdout.contains("no agent is running: nothing was pushed now")
            && stdout.contains("pushed when the agent starts"),
        "{stdout}"
    );
    assert!(!stdout.contains("the running agent"), "{stdout}");
    assert!(
        stderr.contains("queued for the agent's next start"),
        "{stderr}"
    );
    assert_ne!(
        differences(&scratch.src(), &scratch.replica()),
        "",
        "nothing is pushed by verify itself"
    );

    // The next start carries the queued request out, without a full sync.
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    assert_eq!(status(&scratch).target().full_syncs, 1);
    agent.stop();
}

#[test]
fn an_ebpf_pin_directory_another_user_owns_is_refused() {
    support::root_or_skip!();
    let (scratch, config) = scratch_with("ebpf");
    std::fs::remove_file(scratch.replica().join("keep-me")).unwrap();
    let agent = start_and_sync(&config, &scratch);
    let journal_id = status(&scratch).journal_id;
    agent.stop();
    // The stopped agent's programs stay pinned, capturing; another user
    // takes their directory over.
    let pins = Path::new("/sys/fs/bpf/fsjournal").join(journal_id);
    assert!(pins.is_dir(), "no pins at {}", pins.display());
    chown(&pins, NOBODY);
    std::fs::write(scratch.src().join("after-the-takeover"), "x\n").unwrap();

    let stderr = refused_run(&config);
    for expected in [
        "eBPF pin directory",
        "owned by uid 65534",
        "chown root:root",
    ] {
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }
    assert_eq!(
        std::fs::metadata(&pins).unwrap().uid(),
        NOBODY,
        "left as it was"
    );
    assert!(
        !scratch.replica().join("after-the-takeover").exists(),
        "nothing was pushed"
    );
    chown(&pins, 0);
}
