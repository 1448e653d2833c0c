//! No change lost while the agent is down (fanotify): a restart closes the
//! gap since the journal's watermark with a ctime scan instead of a full
//! resync, and says so; an untrusted gap gets a full sync with its reason.

mod support;

use std::time::Duration;

use support::*;

fn last_start(scratch: &Scratch) -> serde_json::Value {
    status(scratch)["starts"].as_array().unwrap().last().unwrap().clone()
}

fn converge_after_downtime(scratch: &Scratch, kill: bool) {
    let daemon = RsyncDaemon::start(&scratch.replica());
    workload::seed(&scratch.src());
    let extra = if kill { "rsync_args = [\"--bwlimit=2000\"]\n" } else { "" };
    let config = write_config(scratch, &daemon.url(), Some(&daemon.password_file()), extra);
    let agent = Agent::start(&config, scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    assert_eq!(last_start(scratch)["method"], "full sync (new journal: no capture watermark)");

    if kill {
        std::fs::write(scratch.src().join("jobs/alpha/builds/1/big.bin"), vec![9u8; 8 << 20]).unwrap();
        let pid = agent.pid();
        wait_until(Duration::from_secs(30), "a push in flight", || {
            children_with_cmdline(pid).iter().any(|(_, cmd)| cmd.contains("--files-from"))
        });
        agent.kill9();
    } else {
        agent.stop();
    }
    workload::churn(&scratch.src());

    let agent = Agent::start(&config, scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let start = last_start(scratch);
    assert_eq!(start["method"], "ctime gap scan", "{start:#}");
    assert!(start["entries"].as_u64() > Some(0) && start["gap_ms"].as_u64().is_some(), "{start:#}");
    let after = status(scratch);
    assert_eq!(after["targets"][0]["full_syncs"], 1, "no full resync: {after:#}");
    agent.stop();
}

#[test]
fn changes_made_while_the_agent_was_stopped_converge_without_a_full_resync() {
    converge_after_downtime(&Scratch::tmpfs(), false);
}

#[test]
fn changes_made_after_a_kill9_mid_push_converge_without_a_full_resync() {
    converge_after_downtime(&Scratch::ext4(), true);
}

#[test]
fn a_root_on_a_different_filesystem_gets_a_full_sync_with_the_reason() {
    let scratch = Scratch::ext4();
    workload::seed(&scratch.src());
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    agent.stop();

    scratch.move_source_to_fresh_ext4();
    std::fs::write(scratch.src().join("jobs/alpha/after-restore"), "r").unwrap();
    std::fs::write(scratch.replica().join("stale-on-target"), "must go").unwrap();

    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(Duration::from_secs(10), "the second full sync to be recorded", || status(&scratch)["targets"][0]["full_syncs"] == 2);
    let after = status(&scratch);
    let target = &after["targets"][0];
    assert!(target["last_full_sync_reason"].as_str().unwrap().contains("filesystem identity changed"), "{after:#}");
    agent.stop();
}
