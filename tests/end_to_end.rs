//! End to end on the real kernel: fanotify capture on a fresh filesystem,
//! the RocksDB journal, and pushes to a real rsync daemon or a local
//! directory. Each test asserts that the replica equals the source by
//! checksum, mode, owner, mtime and symlink target, and that the journal
//! holds what the kernel did.

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

/// The ladder string names the rung in use. In a guest of `cargo xtask
/// test-kernels` (Debian 6.1 and 6.12, `FSJ_EXPECT_RUNG=vfs-hooks`) it must
/// be the VFS-hook rung; elsewhere either rung, each with its details: the
/// functions hooked, or the VFS-hook rung's refusal with the kernel's reason
/// (this project's VM refuses BPF trampolines with EPERM).
fn assert_names_the_rung(detail: &str) {
    let vfs = detail.starts_with("eBPF VFS-hook rung: fentry/fexit on ");
    let tracepoint = detail
        .split_once("eBPF tracepoint rung; VFS-hook rung refused: ")
        .is_some_and(|(before, reason)| before.is_empty() && !reason.trim().is_empty());
    match std::env::var("FSJ_EXPECT_RUNG").as_deref() {
        Ok("vfs-hooks") => assert!(vfs, "{detail}"),
        Ok("tracepoint") => assert!(tracepoint, "{detail}"),
        _ => assert!(vfs || tracepoint, "{detail}"),
    }
}

fn run_scenario(
    scratch: &Scratch,
    backend: &str,
    target: &str,
    password_file: Option<&Path>,
    extra_config: &str,
) {
    workload::seed(&scratch.src());
    let config = write_config(scratch, target, password_file, extra_config);
    use_backend(&config, backend);
    let agent = Agent::start(&config, scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_for_full_syncs(scratch, 1);
    assert_eq!(status(scratch).backend, backend);

    workload::churn(&scratch.src());
    assert_converges(&scratch.src(), &scratch.replica(), &agent);

    let log = journal_log(scratch);
    if backend == "fanotify" {
        assert_fanotify_journal(&log);
    } else {
        let xfs = sh("stat", &["-f", "-c", "%T", scratch.src().to_str().unwrap()]).trim() == "xfs";
        assert_ebpf_journal(&log, xfs);
    }
    assert!(
        log.iter().all(|r| r["pid"] != 0 || r["kind"] == "rescan"),
        "every change names its writer"
    );

    wait_until(
        Duration::from_secs(10),
        "the last cursor to be saved",
        || status(scratch).target().pending == 0,
    );
    let after = status(scratch);
    let target = after.target();
    assert_eq!((target.full_syncs, target.pending), (1, 0), "{after:#?}");
    assert!(target.last_error.is_none(), "{after:#?}");
    assert_eq!(
        after.rescans, 0,
        "nothing was lost, nothing needed a rescan"
    );
    if backend == "ebpf" {
        assert_names_the_rung(&after.capture_detail);
    }
    assert!(
        after.arm_times.attached_ms <= after.arm_times.index_ready_ms,
        "status says when capture went live and when the index was ready: {after:#?}"
    );
    agent.stop();
}

/// fanotify names every directory entry event: the journal holds each
/// operation with its kind. An `rm -rf` of a tree that existed before the
/// agent started is journaled as the deletion of its top directory: the
/// events inside it are read after its directories are gone, and the lazy
/// directory index never learnt them (the target loses the whole subtree
/// with that one deletion).
fn assert_fanotify_journal(log: &[serde_json::Value]) {
    for (kind, path) in [
        ("create", "jobs/alpha/builds/1/new.txt"),
        ("modify", "jobs/alpha/builds/1/log"),
        ("attrib", "jobs/alpha/config.xml"),
        ("rename-from", "jobs/alpha/builds/1/new.txt"),
        ("rename-to", "jobs/alpha/builds/1/renamed.txt"),
        ("rename-from", "jobs/beta"),
        ("rename-to", "jobs/beta-renamed"),
        ("delete", "jobs/doomed"),
        ("rename-to", "jobs/alpha/config.xml"),
        // A control character is shown escaped, like a byte that is not UTF-8.
        ("create", "jobs/alpha/new\\x0aline.txt"),
        ("create", "jobs/alpha/latin1-\\xe9t\\xe9.txt"),
        ("create", "jobs/alpha/builds/2/archive/deep/er/x.bin"),
        ("create", "queue.xml"),
    ] {
        assert!(
            journaled(log, kind, path),
            "journal lacks {kind} {path:?}:\n{log:#?}"
        );
    }
    let renamed_dir = log
        .iter()
        .find(|r| r["kind"] == "rename-to" && r["path"] == "jobs/beta-renamed")
        .unwrap();
    assert_eq!(
        renamed_dir["scope"], "subtree",
        "a directory moved in needs a recursive push"
    );
}

/// The tracepoint rung sees inodes, not names: the journal holds the
/// current path of every changed inode, and directories whose entries
/// changed (deletions travel as a contents pass of the directory). A path is
/// resolved when it is drained, so a file changed just before its directory
/// was renamed may be journaled under either name: only names that are
/// stable in the workload are asserted.
///
/// On xfs under the tracepoint rung, a file created and written within one
/// timestamp tick moves no ctime after its creation: it reaches the journal
/// as its directory's contents pass (which copies it) rather than as an entry
/// of its own (`xfs`).
fn assert_ebpf_journal(log: &[serde_json::Value], xfs: bool) {
    let has =
        |path: &str, scope: &str| log.iter().any(|r| r["path"] == path && r["scope"] == scope);
    for path in [
        "jobs/alpha/config.xml",
        "jobs/alpha/builds/1/renamed.txt",
        "jobs/alpha/new\\x0aline.txt",
        "jobs/alpha/latin1-\\xe9t\\xe9.txt",
        "jobs/alpha/builds/2/archive/deep/er/x.bin",
        "queue.xml",
    ] {
        let parent = path.rsplit_once('/').map_or(".", |(dir, _)| dir);
        let created_in_a_passed_directory =
            xfs && path != "jobs/alpha/config.xml" && has(parent, "contents");
        assert!(
            has(path, "entry") || created_in_a_passed_directory,
            "journal lacks {path:?}:\n{log:#?}"
        );
    }
    assert!(
        has("jobs", "contents"),
        "the directory that lost jobs/doomed gets a contents pass:\n{log:#?}"
    );
    assert!(
        has("jobs/beta-renamed", "subtree"),
        "a renamed directory is pushed whole:\n{log:#?}"
    );
    assert!(
        !has("jobs/alpha", "subtree"),
        "a directory that only changed entries is not pushed whole:\n{log:#?}"
    );
    assert!(
        !journaled(log, "rescan", "."),
        "nothing in this workload needs a rescan (deleted directories, hard links):\n{log:#?}"
    );
}

/// A write through one name of a hard-linked file changes every name: each
/// is journaled (found by a walk of the root the first time), no rescan.
fn write_through_one_name_reaches_every_name(backend: &str) {
    let scratch = Scratch::ext4();
    workload::seed(&scratch.src());
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    use_backend(&config, backend);
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    std::fs::hard_link(
        scratch.src().join("jobs/alpha/builds/1/log"),
        scratch.src().join("jobs/alpha/log-link"),
    )
    .unwrap();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    append(
        &scratch.src().join("jobs/alpha/builds/1/log"),
        "through one name\n",
    );
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let log = journal_log(&scratch);
    let modified = |path: &str| {
        log.iter()
            .any(|r| r["path"] == path && r["kind"] == "modify")
    };
    assert!(
        modified("jobs/alpha/log-link") && modified("jobs/alpha/builds/1/log"),
        "both names are journaled:\n{log:#?}"
    );
    assert!(
        !journaled(&log, "rescan", "."),
        "no rescan needed:\n{log:#?}"
    );
    agent.stop();
}

#[test]
fn fanotify_write_through_one_name_of_a_hard_link_reaches_every_name() {
    support::root_or_skip!();
    write_through_one_name_reaches_every_name("fanotify");
}

#[test]
fn ebpf_write_through_one_name_of_a_hard_link_reaches_every_name() {
    support::root_or_skip!();
    write_through_one_name_reaches_every_name("ebpf");
}

#[test]
fn replica_follows_every_kind_of_change_through_an_rsync_daemon() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let daemon = RsyncDaemon::start(&scratch.replica());
    run_scenario(
        &scratch,
        "fanotify",
        &daemon.url(),
        Some(&daemon.password_file()),
        "",
    );
}

#[test]
fn ebpf_replica_follows_every_kind_of_change_through_an_rsync_daemon() {
    support::root_or_skip!();
    // ext4: the tracepoint rung refuses tmpfs (see capture/ebpf.rs).
    let scratch = Scratch::ext4();
    let daemon = RsyncDaemon::start(&scratch.replica());
    run_scenario(
        &scratch,
        "ebpf",
        &daemon.url(),
        Some(&daemon.password_file()),
        "",
    );
}

#[test]
fn ebpf_replica_follows_every_kind_of_change_on_xfs() {
    support::root_or_skip!();
    let scratch = Scratch::xfs();
    let replica = scratch.replica().display().to_string();
    run_scenario(&scratch, "ebpf", &replica, None, "");
}

#[test]
fn ebpf_replica_follows_every_kind_of_change_on_ext4() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    let replica = scratch.replica().display().to_string();
    run_scenario(&scratch, "ebpf", &replica, None, "");
}

/// `backend = "auto"` (the default) on ext4 arms the best eBPF rung this
/// kernel offers, not fanotify: the VFS-hook rung on Debian's 6.1 and 6.12
/// (`cargo xtask test-kernels`), the tracepoint rung on this project's VM.
#[test]
fn auto_backend_arms_the_best_ebpf_rung_on_ext4() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    workload::seed(&scratch.src());
    let config = write_config(&scratch, &scratch.replica().display().to_string(), None, "");
    use_backend(&config, "auto");
    let agent = start_and_sync(&config, &scratch);
    append(
        &scratch.src().join("jobs/alpha/builds/1/log"),
        "one more line\n",
    );
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    assert_names_the_rung(&status(&scratch).capture_detail);
    agent.stop();
}

/// The VFS-hook rung filters to the roots in the kernel: a burst of new
/// files on the root's filesystem but beside the root is counted as
/// filtered there and never reaches the ring buffer. The tracepoint rung
/// has no dentry and filters by device only: there the burst is sent and
/// the agent drops it. The replica holds none of it either way.
#[test]
fn ebpf_changes_beside_the_root_on_its_filesystem_stay_out_of_the_journal() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    let (home, beside) = (scratch.src().join("home"), scratch.src().join("beside"));
    std::fs::create_dir_all(&beside).unwrap();
    workload::seed(&home);
    let config = write_config(&scratch, &scratch.replica().display().to_string(), None, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("source = \"{}\"", scratch.src().display()),
        &format!("source = \"{}\"", home.display()),
    );
    std::fs::write(&config, text).unwrap();
    use_backend(&config, "ebpf");
    let agent = Agent::start(&config, &scratch);
    assert_converges(&home, &scratch.replica(), &agent);
    let counters = |scratch: &Scratch| -> Vec<u64> {
        let events = status(scratch).kernel_events;
        vec![events.seen, events.sent, events.filtered]
    };
    let before = counters(&scratch);
    for i in 0..500 {
        std::fs::write(beside.join(format!("burst-{i}")), "beside the root\n").unwrap();
    }
    append(&home.join("jobs/alpha/builds/1/log"), "inside the root\n");
    assert_converges(&home, &scratch.replica(), &agent);
    wait_until(
        Duration::from_secs(10),
        "the kernel counters to cover the burst",
        || counters(&scratch)[0] >= before[0] + 1000,
    );
    let after = counters(&scratch);
    let (sent, filtered) = (after[1] - before[1], after[2] - before[2]);
    let detail = status(&scratch).capture_detail;
    if detail.starts_with("eBPF VFS-hook rung") {
        assert!(
            filtered >= 1000 && sent < 50,
            "sent {sent}, filtered {filtered}: {detail}"
        );
    } else {
        assert!(
            sent >= 500,
            "the tracepoint rung filters by device only: sent {sent}, filtered {filtered}"
        );
    }
    assert!(
        !journal_log(&scratch)
            .iter()
            .any(|r| r["path"].as_str().is_some_and(|p| p.contains("burst-"))),
        "nothing beside the root is journaled"
    );
    agent.stop();
}

#[test]
fn replica_follows_every_kind_of_change_on_ext4_to_a_local_directory() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    let replica = scratch.replica().display().to_string();
    run_scenario(&scratch, "fanotify", &replica, None, "");
}

#[test]
fn replica_follows_every_kind_of_change_over_a_remote_shell_target() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let shell = local_shell_command(&scratch);
    let target = format!("backup@standby:{}", scratch.replica().display());
    run_scenario(
        &scratch,
        "fanotify",
        &target,
        None,
        &format!("ssh_command = \"{}\"\n", shell.display()),
    );
}

#[test]
fn growing_log_coalesces_into_few_pushes() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica().display().to_string();
    std::fs::write(scratch.src().join("build.log"), "").unwrap();
    let config = write_config(&scratch, &replica, None, "");
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    for i in 0..500 {
        append(&scratch.src().join("build.log"), &format!("line {i}\n"));
    }
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let pushed = status(&scratch).target().pushed_paths;
    assert!(
        pushed < 20,
        "500 appends to one file became {pushed} pushed paths; they must coalesce"
    );
    agent.stop();
}

/// Jenkins rotating old builds away: twenty build directories deleted
/// (`rm -rf`) beside an appended log. A deleted directory can only be
/// deleted on the target, so it goes with the entries (push/rsync.rs,
/// `Lists::of_source`): every push is one rsync run, no subtree run.
#[test]
fn deleted_build_directories_go_with_the_entries_in_one_rsync_run() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    let builds = scratch.src().join("jobs/app/builds");
    for build in 0..30 {
        std::fs::create_dir_all(builds.join(format!("{build}/archive"))).unwrap();
        std::fs::write(builds.join(format!("{build}/log")), "started\n").unwrap();
        std::fs::write(
            builds.join(format!("{build}/archive/app.jar")),
            [build as u8; 4096],
        )
        .unwrap();
    }
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    // fanotify: the tracepoint rung adds a contents run for the directory
    // whose ctime moved (builds/), which this test is not about.
    use_backend(&config, "fanotify");
    let agent = start_and_sync(&config, &scratch);
    for build in 0..20 {
        std::fs::remove_dir_all(builds.join(build.to_string())).unwrap();
    }
    append(&builds.join("29/log"), "finished\n");
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    // The replica can be equal before the last run exits and its push is
    // logged: wait until nothing is owed, then stop (every line written).
    wait_until(Duration::from_secs(30), "nothing pending", || {
        status(&scratch).target().pending == 0
    });
    let log_file = agent.log.clone();
    agent.stop();
    let log = std::fs::read_to_string(log_file).unwrap();
    let pushes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" pushed target="))
        .collect();
    assert!(!pushes.is_empty(), "nothing was pushed:\n{log}");
    assert!(
        pushes
            .iter()
            .all(|l| l.contains(" subtrees=0 ") && l.contains(" contents=0 ")),
        "a deleted directory took a run of its own:\n{}",
        pushes.join("\n")
    );
    assert!(!scratch.replica().join("jobs/app/builds/0").exists());
}

/// The cost model (push/cost.rs): a backlog that is a large share of the
/// source's entries goes as one full rsync of the root, a small one as file
/// lists. The target is paused while the changes are made, so that the
/// whole backlog is journaled before the pusher decides.
#[test]
fn a_backlog_of_most_of_the_tree_is_pushed_by_one_full_rsync() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let mut daemon = RsyncDaemon::start(&scratch.replica());
    let config = write_config(
        &scratch,
        &daemon.url(),
        Some(&daemon.password_file()),
        "batch_max_files = 50\nfull_push_percent = 30\n",
    );
    for i in 0..400 {
        std::fs::create_dir_all(scratch.src().join(format!("d{}", i / 50))).unwrap();
        std::fs::write(scratch.src().join(format!("d{}/f{i}", i / 50)), "v1").unwrap();
    }
    let agent = start_and_sync(&config, &scratch);
    // Logged before the full rsync runs, so before the replica can converge by it.
    let full_pushes = || {
        agent
            .log_text()
            .matches("cost model: one full rsync")
            .count()
    };
    let mut change = |files: std::ops::Range<usize>, text: &str| {
        daemon.pause();
        for i in files {
            std::fs::write(scratch.src().join(format!("d{}/f{i}", i / 50)), text).unwrap();
        }
        // Journaled, and quiet for the cost model's 5 s (push/cost.rs).
        std::thread::sleep(Duration::from_millis(5500));
        daemon.resume();
        assert_converges(&scratch.src(), &scratch.replica(), &agent);
    };
    // 300 of about 410 inodes: one full rsync.
    change(0..300, "v2");
    assert_eq!(full_pushes(), 1, "{}", agent.log_text());
    // `status` says which strategy the last push took, and why.
    let strategy = || status(&scratch).target().last_strategy.clone();
    let took = |name: &str| strategy().is_some_and(|s| s.strategy == name);
    wait_until(
        Duration::from_secs(10),
        "status to show the full rsync",
        || took("full rsync"),
    );
    assert!(
        strategy().is_some_and(|s| s.why.contains("used inodes")),
        "{:#?}",
        strategy()
    );
    // 60 of them: file lists, though more than one batch.
    change(0..60, "v3");
    assert_eq!(full_pushes(), 1, "{}", agent.log_text());
    wait_until(Duration::from_secs(10), "status to show file lists", || {
        took("file lists")
    });
    agent.stop();
}

/// `parallel_transfers = 4` (push/split.rs): a change set spread over many
/// job directories goes as several rsync runs at once, and a SIGKILL while
/// they run loses nothing: the restarted agent pushes the batch again.
#[test]
fn a_change_set_over_many_jobs_goes_as_parallel_runs_and_survives_a_kill() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    // Slow runs (100 KiB/s each), so that they overlap visibly.
    let config = write_config(
        &scratch,
        &scratch.replica().display().to_string(),
        None,
        "parallel_transfers = 4\nrsync_args = [\"--bwlimit=100\"]\n",
    );
    for job in 0..8 {
        std::fs::create_dir_all(scratch.src().join(format!("jobs/j{job}/builds"))).unwrap();
    }
    let agent = start_and_sync(&config, &scratch);
    for job in 0..8 {
        for build in 0..10 {
            let file = scratch.src().join(format!("jobs/j{job}/builds/{build}"));
            std::fs::write(file, vec![job as u8; 16 << 10]).unwrap();
        }
    }
    let mut most = 0;
    wait_until(Duration::from_secs(30), "parallel rsync runs", || {
        let runs = children_with_cmdline(agent.pid())
            .iter()
            .filter(|(_, cmd)| cmd.starts_with("rsync") && cmd.contains("--files-from"))
            .count();
        most = most.max(runs);
        most >= 2
    });
    agent.kill9();
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    agent.stop();
}

#[test]
fn a_byte_limit_splits_a_batch_into_several_rsync_runs() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica().display().to_string();
    // Not at the top level: a listed `.` makes rsync send every child of the root.
    std::fs::create_dir(scratch.src().join("parts")).unwrap();
    let config = write_config(&scratch, &replica, None, "batch_max_bytes = 1000\n");
    let agent = start_and_sync(&config, &scratch);
    let pushes = || agent.log_text().matches(" pushed ").count();
    let before = pushes();
    for i in 0..6 {
        let part = scratch.src().join(format!("parts/{i}"));
        std::fs::write(part, vec![b'x'; 700]).unwrap();
    }
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(
        Duration::from_secs(10),
        "six 700-byte files under a 1000-byte limit to take six pushes",
        || pushes() - before >= 6,
    );
    agent.stop();
}

/// Unmounts a mount point when dropped.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_target_disk_is_named_and_retried_until_there_is_room() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica();
    std::fs::create_dir_all(&replica).unwrap();
    sh(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "fsjournal-small",
            replica.to_str().unwrap(),
        ],
    );
    let _small = Mounted(replica.clone());
    let config = write_config(&scratch, replica.to_str().unwrap(), None, "");
    let agent = start_and_sync(&config, &scratch);
    std::fs::write(scratch.src().join("big.bin"), vec![1u8; 3 << 20]).unwrap();
    wait_until(Duration::from_secs(30), "the push to fail", || {
        status(&scratch)
            .target()
            .error()
            .contains("the target's disk is full")
    });
    let problems = status(&scratch).health.problems.join("\n");
    assert!(problems.contains("disk is full"), "{problems}");
    sh(
        "mount",
        &["-o", "remount,size=16m", replica.to_str().unwrap()],
    );
    assert_converges(&scratch.src(), &replica, &agent);
    agent.stop();
}

#[test]
fn unreachable_target_is_retried_and_nothing_is_lost() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let mut daemon = RsyncDaemon::start(&scratch.replica());
    workload::seed(&scratch.src());
    let config = write_config(&scratch, &daemon.url(), Some(&daemon.password_file()), "");
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);

    daemon.pause();
    workload::churn(&scratch.src());
    wait_until(
        Duration::from_secs(30),
        "a failed push to show in status",
        || {
            status(&scratch)
                .first_target()
                .is_some_and(|t| t.consecutive_failures >= 1 && t.pending > 0)
        },
    );
    let failed = status(&scratch);
    let error = failed.target().last_error.clone().unwrap();
    assert!(
        error.contains("rsync exit 10"),
        "the error names rsync's socket failure: {error}"
    );

    daemon.resume();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(
        Duration::from_secs(10),
        "the success to be recorded",
        || status(&scratch).target().last_error.is_none(),
    );
    let healed = status(&scratch);
    assert_eq!(healed.target().full_syncs, 1, "recovery needs no full sync");
    agent.stop();
}

#[test]
fn excluded_paths_are_neither_journaled_nor_pushed() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let src = scratch.src();
    workload::seed(&src);
    std::fs::create_dir_all(src.join("jobs/alpha/workspace/src")).unwrap();
    std::fs::write(src.join("jobs/alpha/workspace/src/main.c"), "int main;").unwrap();
    let replica = scratch.replica().display().to_string();
    let config = write_config(
        &scratch,
        &replica,
        None,
        "exclude = [\"workspace/**\", \"*.tmp\"]\n",
    );
    let agent = Agent::start(&config, &scratch);
    let rules = ["--exclude=workspace/**", "--exclude=*.tmp"];
    assert_converges_with(&src, &scratch.replica(), &agent, &rules);

    workload::churn(&src);
    std::fs::write(
        src.join("jobs/alpha/workspace/src/main.c"),
        "int main(void);",
    )
    .unwrap();
    std::fs::create_dir_all(src.join("jobs/beta-renamed/workspace/out")).unwrap();
    std::fs::write(src.join("jobs/beta-renamed/workspace/out/a.o"), "obj").unwrap();
    std::fs::write(src.join("jobs/alpha/scratch.tmp"), "t").unwrap();
    assert_converges_with(&src, &scratch.replica(), &agent, &rules);

    assert!(
        !scratch.replica().join("jobs/alpha/workspace/src").exists(),
        "the full sync left the workspace out"
    );
    assert!(!scratch
        .replica()
        .join("jobs/beta-renamed/workspace/out")
        .exists());
    assert!(!scratch.replica().join("jobs/alpha/scratch.tmp").exists());
    assert_eq!(
        std::fs::read_to_string(scratch.replica().join("jobs/alpha/config.xml")).unwrap(),
        "<project>alpha v2</project>\n",
        "a file written as *.tmp and renamed into place is pushed under its final name"
    );
    let log = journal_log(&scratch);
    let leaked: Vec<_> = log
        .iter()
        .filter_map(|r| r["path"].as_str())
        .filter(|p| p.contains("workspace/") || p.ends_with(".tmp"))
        .collect();
    assert!(
        leaked.is_empty(),
        "excluded paths were journaled: {leaked:?}"
    );
    wait_for_full_syncs(&scratch, 1);
    agent.stop();

    // Content excluded so far was never journaled: dropping an exclude needs a full sync.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("\"workspace/**\", ", ""),
    )
    .unwrap();
    let agent = Agent::start(&config, &scratch);
    assert_converges_with(&src, &scratch.replica(), &agent, &["--exclude=*.tmp"]);
    wait_for_full_syncs(&scratch, 2);
    let reason = status(&scratch)
        .target()
        .last_full_sync_reason
        .clone()
        .unwrap();
    assert!(reason.contains("exclude patterns changed"), "{reason}");
    agent.stop();
}

#[test]
fn a_dead_target_never_holds_back_a_live_one() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let src = scratch.src();
    workload::seed(&src);
    let live = scratch.replica().display().to_string();
    // A second sync of the same source to a daemon port where nothing listens.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_config(&scratch, &live, None, "");
    let second = format!(
        "\n[[sync]]\nname = \"dead\"\nsource = \"{}\"\ntarget = \"rsync://fsj@127.0.0.1:{dead_port}/backup\"\nretry_max_ms = 2000\n",
        src.display()
    );
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap() + &second).unwrap();
    let agent = Agent::start(&config, &scratch);
    assert_converges(&src, &scratch.replica(), &agent);
    workload::churn(&src);
    assert_converges(&src, &scratch.replica(), &agent);

    let dead = || {
        status(&scratch)
            .targets
            .into_iter()
            .find(|t| t.name == "dead")
            .unwrap()
    };
    wait_until(
        Duration::from_secs(10),
        "the dead target's error in status",
        || dead().error().contains("rsync exit 10"),
    );
    assert!(
        dead().full_sync_needed.is_some(),
        "the dead target still owes its first sync"
    );
    agent.stop();
}

#[test]
fn json_logs_are_one_object_per_line() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let log = scratch.path().join("json.log");
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_fsjournal"))
        .args(["--log-format", "json", "run", "--source"])
        .arg(scratch.src())
        .arg("--dest")
        .arg(scratch.replica())
        .arg("--journal")
        .arg(scratch.journal())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "the full sync in the log", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("full sync done")
    });
    agent.kill().unwrap();
    agent.wait().unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let armed = lines
        .iter()
        .find(|l| l["fields"]["message"] == "capture armed" && l["level"] == "INFO")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    // Capture goes live before the directory index walk, and the log says
    // when each happened.
    let instant = |field: &str| {
        armed["fields"][field]
            .as_u64()
            .unwrap_or_else(|| panic!("{armed:#}"))
    };
    assert!(
        instant("capture_attached_ms") <= instant("index_ready_ms"),
        "{armed:#}"
    );
}

#[test]
fn sighup_restarts_with_a_valid_configuration_and_keeps_running_on_a_broken_one() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica().display().to_string();
    workload::seed(&scratch.src());
    let config = write_config(&scratch, &replica, None, "");
    let good = std::fs::read_to_string(&config).unwrap();
    let agent = start_and_sync(&config, &scratch);
    let hangup = || sh("kill", &["-HUP", &agent.pid().to_string()]);

    std::fs::write(&config, format!("{good}batch_max_files = \"many\"\n")).unwrap();
    hangup();
    wait_until(
        Duration::from_secs(10),
        "the broken file to be refused",
        || agent.log_text().contains("SIGHUP: configuration refused"),
    );
    assert!(
        agent
            .log_text()
            .contains("fsjournal.toml:10: key `sync[0].batch_max_files`"),
        "{}",
        agent.log_text()
    );
    std::fs::write(scratch.src().join("after-refused-reload"), "x").unwrap();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);

    std::fs::write(
        &config,
        good.replace("batch_delay_ms = 200", "batch_delay_ms = 300"),
    )
    .unwrap();
    hangup();
    wait_until(
        Duration::from_secs(30),
        "the agent to restart and arm capture again",
        || agent.log_text().matches("capture armed").count() == 2,
    );
    std::fs::write(scratch.src().join("after-reload"), "x").unwrap();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let status = status(&scratch);
    assert_eq!(
        status.agent_pid,
        agent.pid(),
        "the same process (exec), as systemd sees it"
    );
    assert_eq!(
        status.target().full_syncs,
        1,
        "a reload needs no full sync: {status:#?}"
    );
    agent.stop();
}

#[test]
fn hooks_run_before_a_full_sync_and_after_each_push_with_the_pushed_paths() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica().display().to_string();
    workload::seed(&scratch.src());
    let marker = scratch.path().join("before-full-sync");
    let pushed = scratch.path().join("pushed");
    let hooks = format!(
        "before_full_sync = \"echo $FSJ_SYNC > {}\"\nafter_push = \"cat >> {}; echo \\\" $FSJ_PATHS paths to $FSJ_TARGET\\\" >> {}\"\n",
        marker.display(),
        pushed.display(),
        pushed.display()
    );
    let config = write_config(&scratch, &replica, None, &hooks);
    let agent = start_and_sync(&config, &scratch);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "standby\n");

    std::fs::write(scratch.src().join("jobs/alpha/new build.txt"), "x").unwrap();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(
        Duration::from_secs(10),
        "the after_push hook to run",
        || {
            std::fs::read(&pushed).is_ok_and(|list| {
                list.split(|&b| b == 0)
                    .any(|p| p == b"jobs/alpha/new build.txt")
                    && String::from_utf8_lossy(&list).contains(&format!("paths to {replica}"))
            })
        },
    );
    agent.stop();
}

#[test]
fn history_keeps_what_pushes_replace_or_delete_and_prunes_old_days() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica();
    workload::seed(&scratch.src());
    let old_day = replica.join(".fsjournal-history/2000-01-01");
    std::fs::create_dir_all(&old_day).unwrap();
    std::fs::write(old_day.join("ancient"), "x").unwrap();
    let config = write_config(
        &scratch,
        replica.to_str().unwrap(),
        None,
        "history_days = 2\n",
    );
    let agent = Agent::start(&config, &scratch);
    let outside_history = ["--exclude=/.fsjournal-history/"];
    assert_converges_with(&scratch.src(), &replica, &agent, &outside_history);
    wait_for_full_syncs(&scratch, 1);

    std::fs::write(
        scratch.src().join("jobs/alpha/config.xml"),
        "<project>v2</project>\n",
    )
    .unwrap();
    std::fs::remove_file(scratch.src().join("jobs/beta/nextBuildNumber")).unwrap();
    assert_converges_with(&scratch.src(), &replica, &agent, &outside_history);
    let today = replica
        .join(".fsjournal-history")
        .join(sh("date", &["-u", "+%F"]).trim());
    assert_eq!(
        std::fs::read_to_string(today.join("jobs/alpha/config.xml")).unwrap(),
        "<project>alpha</project>\n",
        "the overwritten version is kept"
    );
    assert_eq!(
        std::fs::read_to_string(today.join("jobs/beta/nextBuildNumber")).unwrap(),
        "2\n",
        "the deleted file is kept"
    );
    assert!(!old_day.exists(), "days older than history_days are pruned");
    agent.stop();
}

#[test]
fn resync_and_push_requests_reach_the_running_agent() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica();
    workload::seed(&scratch.src());
    // Ten minutes of batch delay: only `fsjournal push` can bring a change sooner.
    let config = write_config(&scratch, replica.to_str().unwrap(), None, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("batch_delay_ms = 200", "batch_delay_ms = 600000");
    std::fs::write(&config, text).unwrap();
    let agent = start_and_sync(&config, &scratch);
    let journal = scratch.journal();
    let fsjournal = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--journal", journal.to_str().unwrap()]);
        sh(env!("CARGO_BIN_EXE_fsjournal"), &all)
    };

    std::fs::write(scratch.src().join("jobs/alpha/urgent"), "now\n").unwrap();
    let out = fsjournal(&["push", "--target", "standby"]);
    assert!(out.contains("the running agent takes it"), "{out}");
    assert_converges(&scratch.src(), &replica, &agent);

    // Damage on the target that no journal record explains: a subtree resync repairs it...
    std::fs::write(replica.join("jobs/alpha/config.xml"), "damaged\n").unwrap();
    fsjournal(&["resync", "--path", "jobs/alpha"]);
    assert_converges(&scratch.src(), &replica, &agent);
    // ...and a resync without --path is a full sync.
    std::fs::remove_file(replica.join("jobs/beta/config.xml")).unwrap();
    fsjournal(&["resync", "--target", "standby"]);
    assert_converges(&scratch.src(), &replica, &agent);
    wait_until(
        Duration::from_secs(10),
        "the requested full sync to be recorded",
        || {
            status(&scratch).target().last_full_sync_reason.as_deref()
                == Some("requested by fsjournal resync")
        },
    );

    // With --wait the command returns once the target has it: no polling.
    std::fs::write(scratch.src().join("jobs/alpha/urgent"), "again\n").unwrap();
    let out = fsjournal(&["push", "--wait"]);
    assert!(out.contains("standby: pushed"), "{out}");
    assert_eq!(
        std::fs::read_to_string(replica.join("jobs/alpha/urgent")).unwrap(),
        "again\n"
    );
    std::fs::write(replica.join("jobs/alpha/config.xml"), "damaged again\n").unwrap();
    let out = fsjournal(&["resync", "--path", "jobs/alpha", "--wait"]);
    assert!(out.contains("standby: pushed"), "{out}");
    assert_eq!(
        std::fs::read(replica.join("jobs/alpha/config.xml")).unwrap(),
        std::fs::read(scratch.src().join("jobs/alpha/config.xml")).unwrap()
    );
    let full_syncs = status(&scratch).target().full_syncs;
    std::fs::remove_file(replica.join("jobs/beta/config.xml")).unwrap();
    let out = fsjournal(&["resync", "--wait"]);
    assert!(out.contains("standby: full sync done"), "{out}");
    assert!(replica.join("jobs/beta/config.xml").exists());
    assert_eq!(status(&scratch).target().full_syncs, full_syncs + 1);

    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_fsjournal"))
        .args([
            "push",
            "--target",
            "nope",
            "--journal",
            scratch.journal().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        !unknown.status.success()
            && String::from_utf8_lossy(&unknown.stderr).contains("no target named `nope`")
    );
    agent.stop();
}

#[test]
fn verify_lists_what_differs_and_fix_repairs_it() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica();
    workload::seed(&scratch.src());
    let config = write_config(&scratch, replica.to_str().unwrap(), None, "");
    let agent = start_and_sync(&config, &scratch);
    let verify = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fsjournal"))
            .args(["verify", "--config", config.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let clean = verify(&[]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(String::from_utf8_lossy(&clean.stdout).contains("standby: 0 differing path(s)"));

    std::fs::write(
        replica.join("jobs/alpha/config.xml"),
        "damaged on the target\n",
    )
    .unwrap();
    let damaged = verify(&[]);
    let out = String::from_utf8_lossy(&damaged.stdout);
    assert!(
        !damaged.status.success(),
        "a difference fails verify:\n{out}"
    );
    assert!(
        out.contains("standby: 1 differing path(s)") && out.contains("jobs/alpha/config.xml"),
        "{out}"
    );

    assert!(verify(&["--fix"]).status.success());
    assert_converges(&scratch.src(), &replica, &agent);
    assert!(verify(&["--checksum"]).status.success());

    // A name that is not UTF-8 reaches the agent's resync intact (a lossy
    // name would resync a path that does not exist and leave the damage).
    use std::os::unix::ffi::OsStrExt;
    let odd = std::ffi::OsStr::from_bytes(b"jobs/alpha/caf\xe9.txt");
    std::fs::write(scratch.src().join(odd), "latin-1 name\n").unwrap();
    assert_converges(&scratch.src(), &replica, &agent);
    std::fs::write(replica.join(odd), "damaged on the target, longer\n").unwrap();
    assert!(!verify(&[]).status.success());
    assert!(verify(&["--fix"]).status.success());
    assert_converges(&scratch.src(), &replica, &agent);
    agent.stop();
}
