//! A backup never destroys its replica: the safety interlocks of
//! push/interlock.rs against the real binary, real filesystems and rsync.
//! Each test makes the source look wrong the way an unlucky operator meets
//! it (a data disk that did not mount, a root unmounted or swapped for a
//! symlink under the agent, a full sync that would empty the target,
//! programs detached under a running eBPF agent) and asserts that the
//! replica is intact, that `fsjournal status` is red with the reason, and
//! that the operator's confirmation (or the source coming back) ends it.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// How long a refusal may take to show (it comes at the pusher's first
/// check, or after a dry run).
const REFUSAL: Duration = Duration::from_secs(30);

/// Entries below `dir` (files, directories, symlinks), recursively.
fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let nested = e.file_type().unwrap().is_dir().then(|| entries(&e.path()));
            1 + nested.unwrap_or(0)
        })
        .sum()
}

/// Runs `fsjournal ARGS --journal <scratch's>`; its output and success.
fn fsjournal(scratch: &Scratch, args: &[&str]) -> (String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_fsjournal"))
        .args(args)
        .arg("--journal")
        .arg(scratch.journal())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.success())
}

/// Waits until the first target's last error is a safety interlock saying
/// `why`, and checks that the health verdict is red with it; returns it.
fn wait_for_refusal(scratch: &Scratch, agent: &Agent, why: &str) -> String {
    let mut last = None;
    let refused = (0..REFUSAL.as_millis() / 200).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        let seen = last.insert(status(scratch));
        seen.first_target()
            .is_some_and(|t| t.error().starts_with("safety interlock") && t.error().contains(why))
    });
    assert!(
        refused,
        "no interlock saying {why:?}: {last:#?}\n{}",
        agent.log_text()
    );
    let last = last.expect("polled at least once");
    assert!(!last.health.ok, "{last:#?}");
    let problems = last.health.problems.join("\n");
    assert!(problems.contains("safety interlock"), "{problems}");
    last.target().error().to_string()
}

/// A seeded ext4 source replicated to a local replica by a fanotify agent.
fn replicated(scratch: &Scratch, extra: &str) -> (std::path::PathBuf, Agent) {
    workload::seed(&scratch.src());
    let replica = scratch.replica().display().to_string();
    let config = write_config(scratch, &replica, None, extra);
    use_backend(&config, "fanotify");
    let agent = start_and_sync(&config, scratch);
    (config, agent)
}

#[test]
fn a_source_not_mounted_at_start_leaves_the_replica_intact_until_it_is_back() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    let (config, agent) = replicated(&scratch, "");
    agent.stop();
    let before = entries(&scratch.replica());
    sh("umount", &[scratch.src().to_str().unwrap()]);

    // The reboot where the data disk did not mount: the root is the empty
    // mount point on another filesystem.
    let agent = Agent::start(&config, &scratch);
    let error = wait_for_refusal(&scratch, &agent, "is its filesystem mounted?");
    assert!(error.contains("resync --force --target standby"), "{error}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        entries(&scratch.replica()),
        before,
        "the replica was touched"
    );
    agent.stop();

    // The disk is back: the owed full sync runs (it deletes nothing), and
    // the verdict is green again.
    scratch.mount_image(&scratch.path().join("ext4.img"));
    std::fs::write(scratch.src().join("jobs/alpha/after-mount"), "m").unwrap();
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(Duration::from_secs(10), "a green verdict", || {
        status(&scratch).health.ok
    });
    agent.stop();
}

#[test]
fn another_filesystem_at_the_source_is_replicated_only_once_the_operator_confirms() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let (config, agent) = replicated(&scratch, "");
    agent.stop();
    // A new, empty tmpfs at the same path: another filesystem identity.
    sh("umount", &[scratch.src().to_str().unwrap()]);
    sh(
        "mount",
        &["-t", "tmpfs", "fsj-other", scratch.src().to_str().unwrap()],
    );
    std::fs::write(scratch.src().join("only-file"), "new fs").unwrap();
    let before = entries(&scratch.replica());

    let agent = Agent::start(&config, &scratch);
    wait_for_refusal(&scratch, &agent, "not on the filesystem replicated so far");
    assert_eq!(
        entries(&scratch.replica()),
        before,
        "the replica was touched"
    );

    let (reply, ok) = fsjournal(&scratch, &["resync", "--force", "--wait"]);
    assert!(ok, "{reply}\n{}", agent.log_text());
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let after = status(&scratch);
    assert!(after.health.ok, "{after:#?}");
    assert!(
        after
            .target()
            .last_full_sync_reason
            .as_deref()
            .unwrap()
            .contains("confirmed by fsjournal resync --force"),
        "{after:#?}"
    );
    agent.stop();
}

#[test]
fn a_source_unmounted_under_the_running_agent_stops_pushes_with_red_health() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    let (_config, agent) = replicated(&scratch, "verify_interval_s = 1\nverify_slices = 1\n");
    let before = entries(&scratch.replica());
    sh("umount", &["-l", scratch.src().to_str().unwrap()]);
    // What lands in the bare mount point must not reach the target either.
    std::fs::write(scratch.src().join("on-the-mount-point"), "x").unwrap();

    wait_for_refusal(&scratch, &agent, "unmounted");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        entries(&scratch.replica()),
        before,
        "the replica was touched"
    );
    assert!(!scratch.replica().join("on-the-mount-point").exists());
    agent.stop();
}

#[test]
fn a_source_root_replaced_by_a_symlink_is_never_followed() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    let home = scratch.src().join("home");
    std::fs::create_dir(&home).unwrap();
    workload::seed(&home);
    let text = format!(
        "[capture]\nbackend = \"fanotify\"\n[journal]\npath = \"{}\"\n\n[[sync]]\nname = \"standby\"\nsource = \"{}\"\ntarget = \"{}\"\nbatch_delay_ms = 200\nretry_max_ms = 2000\n",
        scratch.journal().display(),
        home.display(),
        scratch.replica().display()
    );
    let config = scratch.path().join("fsjournal.toml");
    std::fs::write(&config, text).unwrap();
    let agent = Agent::start(&config, &scratch);
    assert_converges(&home, &scratch.replica(), &agent);
    wait_for_full_syncs(&scratch, 1);
    let before = entries(&scratch.replica());

    let moved = scratch.src().join("home.moved");
    std::fs::rename(&home, &moved).unwrap();
    let decoy = scratch.src().join("decoy");
    std::fs::create_dir(&decoy).unwrap();
    std::fs::write(decoy.join("secret"), "not to be replicated").unwrap();
    std::os::unix::fs::symlink("decoy", &home).unwrap();
    std::fs::write(moved.join("written-after-the-swap"), "w").unwrap();

    wait_for_refusal(&scratch, &agent, "replaced by a symlink");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!scratch.replica().join("secret").exists());
    assert_eq!(
        entries(&scratch.replica()),
        before,
        "the replica was touched"
    );

    // Put back, the root is the armed directory again: pushes resume.
    std::fs::remove_file(&home).unwrap();
    std::fs::rename(&moved, &home).unwrap();
    assert_converges(&home, &scratch.replica(), &agent);
    wait_until(Duration::from_secs(10), "a green verdict", || {
        status(&scratch).health.ok
    });
    agent.stop();
}

#[test]
fn a_full_sync_that_would_delete_most_of_the_target_waits_for_the_operator() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    std::fs::write(scratch.src().join("kept"), "k").unwrap();
    // The target is another machine's tree, or the replica of a source that
    // is now nearly empty: a new journal's first full sync would wipe it.
    for i in 0..30 {
        std::fs::write(scratch.replica().join(format!("precious-{i}")), "p").unwrap();
    }
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    use_backend(&config, "fanotify");
    let agent = Agent::start(&config, &scratch);

    let error = wait_for_refusal(&scratch, &agent, "max_delete_percent = 50");
    assert!(error.contains("would delete 30 of the"), "{error}");
    assert_eq!(entries(&scratch.replica()), 30);

    let (reply, ok) = fsjournal(&scratch, &["resync", "--force", "--wait"]);
    assert!(ok, "{reply}\n{}", agent.log_text());
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    agent.stop();
}

#[test]
fn a_full_sync_of_an_emptied_root_is_refused_until_it_holds_something() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    // The share limit is off: the empty-root check alone refuses.
    let (_config, agent) = replicated(&scratch, "max_delete_percent = 100\n");
    for entry in std::fs::read_dir(scratch.src()).unwrap().flatten() {
        sh("rm", &["-rf", entry.path().to_str().unwrap()]);
    }
    let (reply, ok) = fsjournal(&scratch, &["resync", "--wait"]);
    assert!(!ok, "a full sync of an empty root was done: {reply}");
    assert!(reply.contains("is empty"), "{reply}");
    wait_for_refusal(&scratch, &agent, "is empty");

    std::fs::write(scratch.src().join("back"), "b").unwrap();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(Duration::from_secs(10), "a green verdict", || {
        status(&scratch).health.ok
    });
    agent.stop();
}

#[test]
fn ebpf_programs_detached_under_a_running_agent_stop_it_and_a_restart_closes_the_gap() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    workload::seed(&scratch.src());
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    use_backend(&config, "ebpf");
    let agent = start_and_sync(&config, &scratch);
    let log = agent.log_text();
    let pins = log
        .split("pins=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the agent logs where its programs are pinned")
        .to_string();
    assert!(pins.starts_with("/sys/fs/bpf/fsjournal/"), "{pins}");

    // What a forced `fsjournal unpin` does: the pins go, the programs detach.
    std::fs::remove_dir_all(&pins).unwrap();
    std::fs::write(scratch.src().join("jobs/alpha/after-unpin"), "u").unwrap();
    let mut agent = agent;
    wait_until(Duration::from_secs(30), "the agent to stop", || {
        agent.exited().is_some()
    });
    assert_eq!(agent.exited(), Some(false), "it must exit non-zero");
    assert!(
        agent
            .log_text()
            .contains("detached under the running agent"),
        "{}",
        agent.log_text()
    );

    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    agent.stop();
}

#[test]
fn a_directory_swapped_for_a_symlink_never_sends_what_it_points_to() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let private = scratch.path().join("root-only");
    std::fs::create_dir(&private).unwrap();
    std::fs::write(private.join("f"), "secret").unwrap();
    sh("chmod", &["700", private.to_str().unwrap()]);
    std::fs::create_dir(scratch.src().join("sub")).unwrap();
    std::fs::write(scratch.src().join("sub/f"), "a").unwrap();
    let replica = scratch.replica().display().to_string();
    // History keeps what a push replaces on the target: a leak that a later
    // rsync run of the same push undid would still be found there.
    let config = write_config(&scratch, &replica, None, "history_days = 1\n");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("batch_delay_ms = 200", "batch_delay_ms = 2000"),
    )
    .unwrap();
    use_backend(&config, "fanotify");
    let agent = Agent::start(&config, &scratch);
    let outside_history = ["--exclude=/.fsjournal-history/"];
    assert_converges_with(&scratch.src(), &scratch.replica(), &agent, &outside_history);
    wait_for_full_syncs(&scratch, 1);

    // Within one batch: `sub/f` changes, then `sub` becomes a symlink to a
    // directory only root may read. rsync would read `sub/f` through it.
    std::fs::write(scratch.src().join("sub/f"), "changed").unwrap();
    wait_until(Duration::from_secs(10), "sub/f journaled", || {
        journaled(&journal_log(&scratch), "modify", "sub/f")
    });
    std::fs::remove_dir_all(scratch.src().join("sub")).unwrap();
    std::os::unix::fs::symlink(&private, scratch.src().join("sub")).unwrap();

    assert_converges_with(&scratch.src(), &scratch.replica(), &agent, &outside_history);
    let sub = std::fs::symlink_metadata(scratch.replica().join("sub")).unwrap();
    assert!(
        sub.file_type().is_symlink(),
        "the replica's sub is not the symlink"
    );
    let grep = Command::new("grep")
        .args(["-rl", "secret"])
        .arg(scratch.replica())
        .output()
        .unwrap();
    let leaked = String::from_utf8_lossy(&grep.stdout);
    assert!(leaked.is_empty(), "leaked into the replica: {leaked}");
    agent.stop();
}
