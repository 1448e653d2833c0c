//! No change lost while the agent is down: fanotify closes the gap since the
//! journal's watermark with a ctime scan; pinned eBPF programs keep capturing
//! and their backlog closes it (with the writers' comm). Neither needs a full
//! resync, and both say how they closed the gap; an untrusted gap gets a full
//! sync with its reason.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

fn last_start(scratch: &Scratch) -> status::Start {
    status(scratch).last_start().clone()
}

/// How the restart must close the gap: the pinned backlog suffices after a
/// clean eBPF stop; after a crash, what the dead agent had drained but not
/// journaled is gone, so the scan runs (the backlog is journaled too).
fn expected_method(backend: &str, killed: bool) -> &'static str {
    if backend == "ebpf" && !killed {
        "pinned eBPF backlog"
    } else {
        "ctime gap scan"
    }
}

fn converge_after_downtime(scratch: &Scratch, backend: &str, kill: bool) {
    let daemon = RsyncDaemon::start(&scratch.replica());
    workload::seed(&scratch.src());
    let extra = if kill {
        "rsync_args = [\"--bwlimit=2000\"]\n"
    } else {
        ""
    };
    let config = write_config(scratch, &daemon.url(), Some(&daemon.password_file()), extra);
    use_backend(&config, backend);
    let agent = Agent::start(&config, scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_for_full_syncs(scratch, 1);
    assert_eq!(
        last_start(scratch).method,
        "full sync (new journal: no capture watermark)"
    );

    if kill {
        std::fs::write(
            scratch.src().join("jobs/alpha/builds/1/big.bin"),
            vec![9u8; 8 << 20],
        )
        .unwrap();
        let pid = agent.pid();
        wait_until(Duration::from_secs(30), "a push in flight", || {
            children_with_cmdline(pid)
                .iter()
                .any(|(_, cmd)| cmd.contains("--files-from"))
        });
        agent.kill9();
    } else {
        agent.stop();
    }
    workload::churn(&scratch.src());
    written_by_a_shell(&scratch.src().join("jobs/alpha/written-while-down"));

    let agent = Agent::start(&config, scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let start = last_start(scratch);
    assert_eq!(start.method, expected_method(backend, kill), "{start:#?}");
    assert!(start.gap_ms.is_some(), "{start:#?}");
    let starts_in_log: Vec<_> = journal_log(scratch)
        .into_iter()
        .filter_map(|r| r["start"]["method"].as_str().map(String::from))
        .collect();
    assert_eq!(
        starts_in_log,
        [
            "full sync (new journal: no capture watermark)",
            expected_method(backend, kill)
        ],
        "`fsjournal log` shows each start"
    );
    if backend == "ebpf" {
        let log = journal_log(scratch);
        assert!(
            log.iter()
                .any(|r| r["path"] == "jobs/alpha/written-while-down" && r["comm"] == "sh"),
            "the pinned programs journaled the change made while down, with its writer: {log:#?}"
        );
    }
    if expected_method(backend, kill) == "ctime gap scan" {
        assert!(start.entries > 0, "{start:#?}");
    }
    let after = status(scratch);
    assert_eq!(after.target().full_syncs, 1, "no full resync: {after:#?}");
    agent.stop();
}

/// Creates `path` from a `sh` process (its comm is `sh`).
fn written_by_a_shell(path: &Path) {
    let status = Command::new("sh")
        .arg("-c")
        .arg("echo written > \"$1\"")
        .arg("sh")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn changes_made_while_the_agent_was_stopped_converge_without_a_full_resync() {
    support::root_or_skip!();
    converge_after_downtime(&Scratch::tmpfs(), "fanotify", false);
}

#[test]
fn changes_made_after_a_kill9_mid_push_converge_without_a_full_resync() {
    support::root_or_skip!();
    converge_after_downtime(&Scratch::ext4(), "fanotify", true);
}

#[test]
fn ebpf_pinned_programs_capture_while_the_agent_is_stopped() {
    support::root_or_skip!();
    converge_after_downtime(&Scratch::ext4(), "ebpf", false);
}

#[test]
fn ebpf_pinned_programs_capture_after_a_kill9_mid_push() {
    support::root_or_skip!();
    converge_after_downtime(&Scratch::ext4(), "ebpf", true);
}

/// The cost model judges a backlog written while the agent was stopped as
/// a whole, once capture has journaled it (push/cost.rs): 300 changed
/// files of about 420 entries, six batches of 50, go as one full rsync of
/// the root instead of file lists started on the first batch, and `status`
/// says why.
fn a_backlog_written_while_stopped_goes_as_one_full_rsync(backend: &str) {
    let scratch = Scratch::ext4();
    let file = |i: usize| scratch.src().join(format!("d{}/f{i}", i / 50));
    for i in 0..400 {
        std::fs::create_dir_all(file(i).parent().unwrap()).unwrap();
        std::fs::write(file(i), "v1").unwrap();
    }
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "batch_max_files = 50\n");
    use_backend(&config, backend);
    start_and_sync(&config, &scratch).stop();
    for i in 0..300 {
        std::fs::write(file(i), "v2").unwrap();
    }
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let log = agent.log_text();
    assert_eq!(
        log.matches("cost model: one full rsync").count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains(" pushed target="),
        "file lists were pushed:\n{log}"
    );
    let strategy = status(&scratch).target().last_strategy.clone();
    assert!(
        strategy
            .as_ref()
            .is_some_and(|s| s.strategy == "full rsync" && s.why.contains("journaled at start")),
        "{strategy:#?}"
    );
    agent.stop();
}

#[test]
fn a_backlog_scanned_at_start_goes_as_one_full_rsync() {
    support::root_or_skip!();
    a_backlog_written_while_stopped_goes_as_one_full_rsync("fanotify");
}

#[test]
fn ebpf_a_pinned_backlog_goes_as_one_full_rsync() {
    support::root_or_skip!();
    a_backlog_written_while_stopped_goes_as_one_full_rsync("ebpf");
}

/// Starts an eBPF agent with a one-page ring buffer and `dirty_inodes`
/// spill slots, stops it, creates 2000 files while it is down (about 100
/// events fit in the page), restarts it; returns the restart's record.
fn burst_while_down(dirty_inodes: u32) -> (Scratch, status::Start) {
    let scratch = Scratch::ext4();
    std::fs::create_dir(scratch.src().join("burst")).unwrap();
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    let text = std::fs::read_to_string(&config).unwrap();
    let capture = format!(
        "[capture]\nbackend = \"ebpf\"\nring_buffer_bytes = 4096\ndirty_inodes = {dirty_inodes}\n"
    );
    std::fs::write(&config, format!("{capture}\n{text}")).unwrap();
    let agent = start_and_sync(&config, &scratch);
    agent.stop();
    for i in 0..2000 {
        std::fs::write(scratch.src().join(format!("burst/{i}")), i.to_string()).unwrap();
    }
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let start = last_start(&scratch);
    agent.stop();
    (scratch, start)
}

#[test]
fn ebpf_backlog_spilled_while_down_is_complete_without_a_scan() {
    support::root_or_skip!();
    let (scratch, start) = burst_while_down(1 << 16);
    assert_eq!(
        start.method, "pinned eBPF backlog",
        "the spill map kept what the ring buffer could not: {start:#?}"
    );
    let spilled = status(&scratch).kernel_events.spilled;
    assert!(spilled > 1000, "most of the burst was spilled: {spilled}");
}

#[test]
fn ebpf_backlog_that_overflowed_while_down_falls_back_to_a_gap_scan() {
    support::root_or_skip!();
    let (_scratch, start) = burst_while_down(1);
    assert_eq!(
        start.method, "ctime gap scan",
        "an incomplete backlog is not trusted: {start:#?}"
    );
}

#[test]
fn a_root_on_a_different_filesystem_gets_a_full_sync_with_the_reason_once_confirmed() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    workload::seed(&scratch.src());
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    let agent = start_and_sync(&config, &scratch);
    agent.stop();

    scratch.move_source_to_fresh_ext4();
    std::fs::write(scratch.src().join("jobs/alpha/after-restore"), "r").unwrap();
    std::fs::write(scratch.replica().join("stale-on-target"), "must go").unwrap();

    let agent = Agent::start(&config, &scratch);
    // Another filesystem is replicated only once the operator confirms it
    // (tests/interlocks.rs has the refusal itself).
    wait_until(Duration::from_secs(30), "the safety interlock", || {
        status(&scratch).first_target().is_some_and(|t| {
            t.error()
                .contains("not on the filesystem replicated so far")
        })
    });
    assert!(scratch.replica().join("stale-on-target").exists());
    sh(
        env!("CARGO_BIN_EXE_fsjournal"),
        &[
            "resync",
            "--force",
            "--wait",
            "--journal",
            scratch.journal().to_str().unwrap(),
        ],
    );
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let recorded = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        status(&scratch).target().full_syncs == 2
    });
    assert!(
        recorded,
        "no second full sync recorded: {:#?}\n{}",
        status(&scratch),
        agent.log_text()
    );
    let after = status(&scratch);
    let reason = after.target().last_full_sync_reason.as_deref();
    assert!(
        reason.unwrap().contains("filesystem identity changed"),
        "{after:#?}"
    );
    agent.stop();
}

/// An eBPF agent on a seeded ext4 tree, its first full sync done; the
/// configuration to start it again.
fn ebpf_agent_in_sync() -> (Scratch, std::path::PathBuf, Agent) {
    let scratch = Scratch::ext4();
    workload::seed(&scratch.src());
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    use_backend(&config, "ebpf");
    let agent = start_and_sync(&config, &scratch);
    (scratch, config, agent)
}

#[test]
fn ebpf_a_process_that_reuses_a_stopped_agents_pid_is_still_captured() {
    support::root_or_skip!();
    let (scratch, config, agent) = ebpf_agent_in_sync();
    let pid = agent.pid();
    agent.stop();

    // The kernel hands out pids in order after ns_last_pid: a shell that
    // gets the stopped agent's pid writes a file (other tests fork too, so
    // try a few times).
    let file = scratch
        .src()
        .join("jobs/alpha/written-by-the-agents-old-pid");
    let script = format!(
        "if [ $$ = {pid} ]; then echo reused > '{}'; fi",
        file.display()
    );
    let reused = (0..100).any(|_| {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let mut shell = Command::new("sh").arg("-c").arg(&script).spawn().unwrap();
        shell.wait().unwrap();
        shell.id() == pid
    });
    assert!(reused, "no process got pid {pid} again");
    assert!(file.exists());

    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    assert_eq!(
        last_start(&scratch).method,
        "pinned eBPF backlog",
        "the backlog alone carried it"
    );
    agent.stop();
}

#[test]
fn ebpf_a_file_rewritten_thousands_of_times_while_down_costs_the_ring_buffer_one_event() {
    support::root_or_skip!();
    const WRITES: u64 = 5000;
    let (scratch, config, agent) = ebpf_agent_in_sync();
    // Events the live agent drains move DRAINED past the first indexes, so
    // coalescing must compare real event numbers.
    for i in 0..20 {
        std::fs::write(scratch.src().join(format!("jobs/alpha/before-{i}")), "x").unwrap();
    }
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    agent.stop();

    // A stat after each write makes the next one move the ctime again
    // (multigrain timestamps), so every write fires the tracepoint.
    let hot = scratch.src().join("jobs/alpha/hot.log");
    for i in 0..WRITES {
        std::fs::write(&hot, format!("version {i}\n")).unwrap();
        std::fs::metadata(&hot).unwrap();
    }

    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    assert_eq!(
        std::fs::read_to_string(scratch.replica().join("jobs/alpha/hot.log")).unwrap(),
        format!("version {}\n", WRITES - 1)
    );
    wait_until(
        Duration::from_secs(10),
        "the restarted agent to report its kernel counters",
        || status(&scratch).kernel_events.coalesced >= WRITES - 10,
    );
    let after = status(&scratch);
    assert!(
        after.events < 50,
        "the backlog reached the agent as a few events, not one per write: {after:#?}"
    );
    assert_eq!(last_start(&scratch).method, "pinned eBPF backlog");
    agent.stop();
}

#[test]
fn ebpf_pins_of_an_older_version_are_replaced_and_the_gap_is_scanned() {
    support::root_or_skip!();
    let (scratch, config, agent) = ebpf_agent_in_sync();
    agent.stop();
    // An older fsjournal pinned no DRAINED map (nor SEQ, LAST).
    let journal_id = status(&scratch).journal_id;
    let pins = Path::new("/sys/fs/bpf/fsjournal").join(&journal_id);
    std::fs::remove_file(pins.join("DRAINED")).unwrap();
    written_by_a_shell(&scratch.src().join("jobs/alpha/written-while-down"));

    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let start = last_start(&scratch);
    assert_eq!(start.method, "ctime gap scan", "{start:#?}");
    assert!(pins.join("DRAINED").exists(), "a complete pin set again");
    assert!(
        agent.log_text().contains("lacks maps this version needs"),
        "{}",
        agent.log_text()
    );
    agent.stop();
}
