//! A fanotify queue overflow loses events in the kernel; the agent must turn
//! it into a rescan marker and still converge. Its own test binary, because
//! it lowers the global `fs.fanotify.max_queued_events` for a moment (test
//! binaries run one after the other; tests inside one binary run in parallel).

mod support;

use std::time::Duration;

use support::*;

const KNOB: &str = "/proc/sys/fs/fanotify/max_queued_events";

#[test]
fn queue_overflow_becomes_a_rescan_marker_and_the_replica_converges() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica().display().to_string();
    // The burst goes one level down: only the rescan can bring all of it.
    std::fs::create_dir(scratch.src().join("burst")).unwrap();
    // A slow reader and the kernel's limit left at 128 events.
    let config = write_config(&scratch, &replica, None, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[[sync]]",
        "[capture]\nread_interval_ms = 3000\nmax_queued_events = 0\n\n[[sync]]",
    );
    std::fs::write(&config, text).unwrap();
    let saved = std::fs::read_to_string(KNOB).unwrap();
    std::fs::write(KNOB, "128").unwrap();
    let agent = Agent::start(&config, &scratch);
    std::fs::write(KNOB, saved.trim()).unwrap(); // the group keeps the limit it was created with
    assert_converges(&scratch.src(), &scratch.replica(), &agent);

    for i in 0..2000 {
        std::fs::write(scratch.src().join(format!("burst/{i}")), i.to_string()).unwrap();
    }
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let log = journal_log(&scratch);
    assert!(
        journaled(&log, "rescan", "."),
        "the overflow is journaled as a rescan of the root:\n{log:#?}\n{}",
        agent.log_text()
    );
    // The agent refreshes its counters in the journal once a second.
    wait_until(
        Duration::from_secs(10),
        "status to count the rescan",
        || status(&scratch).rescans >= 1,
    );
    agent.stop();
}

#[test]
fn ebpf_ring_buffer_drops_become_a_rescan_and_the_replica_converges() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    std::fs::create_dir(scratch.src().join("burst")).unwrap();
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    // One page of ring buffer (about 100 events) and one spill slot, drained every 3 s.
    let text = std::fs::read_to_string(&config).unwrap();
    let capture = "[capture]\nbackend = \"ebpf\"\nread_interval_ms = 3000\nring_buffer_bytes = 4096\ndirty_inodes = 1\n";
    std::fs::write(&config, format!("{capture}\n{text}")).unwrap();
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);

    for i in 0..2000 {
        std::fs::write(scratch.src().join(format!("burst/{i}")), i.to_string()).unwrap();
    }
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    assert!(
        journaled(&journal_log(&scratch), "rescan", "."),
        "the drops are journaled as a rescan of the root"
    );
    wait_until(
        Duration::from_secs(10),
        "status to count the rescan",
        || status(&scratch).rescans >= 1,
    );
    agent.stop();

    // The drop counter is never reset: the drops this agent rescanned are
    // accounted for, so the next start does not take them for drops while
    // no agent ran, and the pinned backlog suffices.
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let after = status(&scratch);
    assert_eq!(
        after.last_start().method,
        "pinned eBPF backlog",
        "{after:#?}"
    );
    agent.stop();
}
