//! Paths a target holds back: one the target refuses (rsync exit 23) is
//! retried alone with backoff while everything else keeps flowing; one still
//! being written waits for its settle time and is then pushed once; drift
//! found by rolling verification is pushed with the next batch.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::*;

/// `chattr +i` on a replica file (the target then refuses to replace it);
/// undone on drop so the scratch directory can be removed.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: PathBuf) -> Immutable {
        sh("chattr", &["+i", path.to_str().unwrap()]);
        Immutable(path)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .args(["-i", self.0.to_str().unwrap()])
            .status();
    }
}

#[test]
fn a_path_the_target_refuses_is_retried_alone_while_the_rest_is_pushed() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    // The replica lives on the host's ext4 (tmpfs has no immutable flag).
    let replica = scratch.replica().display().to_string();
    std::fs::create_dir(scratch.src().join("d")).unwrap();
    for name in ["a", "b"] {
        std::fs::write(scratch.src().join("d").join(name), "v1\n").unwrap();
    }
    let config = write_config(&scratch, &replica, None, "");
    let agent = start_and_sync(&config, &scratch);

    let guard = Immutable::set(scratch.replica().join("d/a"));
    for name in ["a", "b", "c"] {
        std::fs::write(scratch.src().join("d").join(name), "v2\n").unwrap();
    }
    let arrived = |name: &str| {
        std::fs::read_to_string(scratch.replica().join("d").join(name)).is_ok_and(|t| t == "v2\n")
    };
    wait_until(
        Duration::from_secs(30),
        "d/b and d/c to reach the target",
        || arrived("b") && arrived("c"),
    );
    // rsync copies b and c before it exits 23 and the agent records the result.
    wait_until(
        Duration::from_secs(10),
        "the refusal to be recorded",
        || {
            status(&scratch)
                .first_target()
                .is_some_and(|t| !t.held.is_empty())
        },
    );
    let stuck = status(&scratch);
    let target = stuck.target();
    assert!(
        target.error().contains("exit 23") && target.error().contains("d/a"),
        "the error names the refused path: {stuck:#?}"
    );
    assert_eq!(
        target.held.first().map(|h| h.path.as_slice()),
        Some(&b"d/a"[..]),
        "{stuck:#?}"
    );
    assert!(target.pending >= 1, "{stuck:#?}");
    assert!(!arrived("a"));
    // `fsjournal pending` lists the held path, with its reason.
    let journal = scratch.journal();
    let listed = sh(
        env!("CARGO_BIN_EXE_fsjournal"),
        &["pending", "--json", "--journal", journal.to_str().unwrap()],
    );
    let held = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|p| p["path"] == "d/a" && p["reason"] == "refused");
    assert!(
        held.is_some_and(|p| p["seq"].is_null() && p["attempts"].as_u64() >= Some(1)),
        "{listed}"
    );

    // The target is not blocked: later changes still arrive.
    std::fs::write(scratch.src().join("d/e"), "v2\n").unwrap();
    wait_until(Duration::from_secs(30), "d/e to reach the target", || {
        arrived("e")
    });

    // A refused path that changes again counts on: its backoff goes on
    // instead of restarting at the first delay.
    let failures = |s: &status::Status| match s.first_target().and_then(|t| t.held.first()) {
        Some(held) => match held.reason {
            status::HoldReason::Failed(n) => n,
            _ => 0,
        },
        None => 0,
    };
    wait_until(Duration::from_secs(30), "two refusals in a row", || {
        failures(&status(&scratch)) >= 2
    });
    let before = failures(&status(&scratch));
    std::fs::write(scratch.src().join("d/a"), "v3\n").unwrap();
    let changed_at = status(&scratch).last_seq;
    wait_until(
        Duration::from_secs(30),
        "the change to be pushed and refused",
        || status(&scratch).target().cursor >= changed_at,
    );
    let after = status(&scratch);
    assert!(failures(&after) > before, "{before} → {after:#?}");

    drop(guard);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(
        Duration::from_secs(30),
        "the held path to be pushed and cleared",
        || {
            let status = status(&scratch);
            let target = status.target();
            target.pending == 0 && target.last_error.is_none()
        },
    );
    assert!(agent.log_text().contains("push partly failed"));
    assert_eq!(
        status(&scratch).target().full_syncs,
        1,
        "no full sync needed"
    );
    agent.stop();
}

#[test]
fn a_file_still_being_written_is_pushed_once_it_settles() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica().display().to_string();
    let log = scratch.src().join("build.log");
    std::fs::write(&log, "").unwrap();
    let config = write_config(&scratch, &replica, None, "settle_ms = 3000\n");
    let agent = start_and_sync(&config, &scratch);
    let pushed_before = status(&scratch).target().pushed_paths;

    // 4 s of appends, 100 ms apart: never 3 s quiet.
    for i in 0..40 {
        append(&log, &format!("line {i}\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let writing = status(&scratch);
    assert_eq!(
        std::fs::metadata(scratch.replica().join("build.log"))
            .unwrap()
            .len(),
        0,
        "a file still being written is held back: {writing:#?}"
    );
    assert_eq!(
        writing.target().held.first().map(|h| h.reason),
        Some(status::HoldReason::Settling),
        "{writing:#?}"
    );

    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let pushed = status(&scratch).target().pushed_paths - pushed_before;
    assert!(pushed <= 2, "the settled log was pushed {pushed} times");
    agent.stop();
}

#[test]
fn rolling_verification_finds_and_repairs_drift_on_the_target() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    let replica = scratch.replica().display().to_string();
    workload::seed(&scratch.src());
    let config = write_config(
        &scratch,
        &replica,
        None,
        "verify_interval_s = 1\nverify_slices = 2\n",
    );
    let agent = start_and_sync(&config, &scratch);

    // Changes made behind the agent's back, on the target: no journal
    // record explains them, only a comparison finds them.
    let target = scratch.replica();
    std::fs::write(target.join("jobs/alpha/config.xml"), "tampered with\n").unwrap();
    std::fs::remove_file(target.join("jobs/beta/builds/1/log")).unwrap();
    std::fs::write(target.join("jobs/doomed/builds/intruder"), "x").unwrap();

    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(Duration::from_secs(10), "the drift to be counted", || {
        status(&scratch).target().drift_found >= 3
    });
    let status = status(&scratch);
    assert!(status.target().verified_units > 0, "{status:#?}");
    assert_eq!(
        status.target().full_syncs,
        1,
        "drift is repaired without a full sync"
    );
    agent.stop();
}
