//! Crash-safe resume: SIGKILL of the agent in the middle of a push, then a
//! restart, ends with the replica equal to the source and no full resync,
//! because the cursor only moves after rsync confirmed a batch.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn replica_converges_after_kill9_mid_push_without_a_full_resync() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let daemon = RsyncDaemon::start(&scratch.replica());
    std::fs::create_dir_all(scratch.src().join("jobs/a/builds/1")).unwrap();
    std::fs::write(scratch.src().join("jobs/a/config.xml"), "<project/>\n").unwrap();
    // 2 MB/s makes the 8 MB push below last about 4 s: long enough to kill it mid-way.
    let config = write_config(
        &scratch,
        &daemon.url(),
        Some(&daemon.password_file()),
        "rsync_args = [\"--bwlimit=2000\"]\n",
    );
    let agent = start_and_sync(&config, &scratch);
    let cursor_before = status(&scratch).target().cursor;

    std::fs::write(
        scratch.src().join("jobs/a/builds/1/big.bin"),
        vec![42u8; 8 << 20],
    )
    .unwrap();
    std::fs::write(
        scratch.src().join("jobs/a/builds/1/log"),
        "Finished: SUCCESS\n",
    )
    .unwrap();
    std::fs::rename(
        scratch.src().join("jobs/a/config.xml"),
        scratch.src().join("jobs/a/config.xml.bak"),
    )
    .unwrap();
    let pid = agent.pid();
    wait_until(
        Duration::from_secs(30),
        "an incremental rsync push to be in flight",
        || {
            children_with_cmdline(pid)
                .iter()
                .any(|(_, cmd)| cmd.contains("--files-from"))
        },
    );
    let journal_before_kill = journal_log(&scratch);
    assert!(journaled(
        &journal_before_kill,
        "create",
        "jobs/a/builds/1/big.bin"
    ));
    agent.kill9();
    assert!(
        !differences(&scratch.src(), &scratch.replica()).is_empty(),
        "the push was cut short"
    );
    let killed = status(&scratch);
    assert_eq!(
        killed.target().cursor,
        cursor_before,
        "an unconfirmed batch is not acknowledged"
    );
    assert!(killed.target().pending >= 3, "{killed:#?}");

    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    assert!(
        agent
            .log_text()
            .contains("resuming from the journal cursor"),
        "{}",
        agent.log_text()
    );
    let resumed = status(&scratch);
    assert_eq!(
        resumed.target().full_syncs,
        1,
        "no full resync while the cursor is valid: {resumed:#?}"
    );

    // Capture is live again after the restart.
    std::fs::write(scratch.src().join("jobs/a/builds/1/after-restart"), "x").unwrap();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    agent.stop();
}
