//! No change lost while the agent is down (fanotify): a restart closes the
//! gap since the journal's watermark with a ctime scan instead of a full
//! resync, and says so; an untrusted gap gets a full sync with its reason.

mod support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use support::*;

fn seed(src: &Path) {
    for job in ["alpha", "beta", "gone"] {
        std::fs::create_dir_all(src.join(format!("jobs/{job}/builds/1/archive/deep"))).unwrap();
        std::fs::write(src.join(format!("jobs/{job}/config.xml")), format!("<project>{job}</project>\n")).unwrap();
        std::fs::write(src.join(format!("jobs/{job}/builds/1/log")), "Started\n").unwrap();
        std::fs::write(src.join(format!("jobs/{job}/builds/1/archive/deep/app.jar")), vec![3u8; 5000]).unwrap();
    }
    std::fs::write(src.join("jobs/alpha/truncate-me"), "0123456789").unwrap();
}

/// Every kind of change, made while no agent runs.
fn change_while_down(src: &Path) {
    std::fs::write(src.join("jobs/alpha/builds/1/created"), "new\n").unwrap();
    append(&src.join("jobs/alpha/builds/1/log"), "more\n");
    std::fs::write(src.join("jobs/beta/builds/1/log"), "overwritten\n").unwrap();
    std::fs::OpenOptions::new().write(true).open(src.join("jobs/alpha/truncate-me")).unwrap().set_len(3).unwrap();
    std::fs::set_permissions(src.join("jobs/beta/config.xml"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::rename(src.join("jobs/alpha/builds/1/created"), src.join("jobs/alpha/builds/1/created-renamed")).unwrap();
    std::fs::rename(src.join("jobs/beta"), src.join("jobs/beta-moved")).unwrap();
    std::fs::remove_dir_all(src.join("jobs/gone")).unwrap();
    std::fs::write(src.join("jobs/alpha/config.xml.tmp"), "<project>v2</project>\n").unwrap();
    std::fs::rename(src.join("jobs/alpha/config.xml.tmp"), src.join("jobs/alpha/config.xml")).unwrap();
    std::fs::hard_link(src.join("jobs/alpha/builds/1/log"), src.join("jobs/alpha/log-link")).unwrap();
    symlink("builds/1", src.join("jobs/alpha/lastBuild")).unwrap();
    std::fs::write(src.join("jobs/alpha/a name with spaces"), "s").unwrap();
    std::fs::write(src.join("jobs/alpha/new\nline"), "n").unwrap();
    std::fs::write(src.join(OsStr::from_bytes(b"jobs/alpha/\xff\xfe-bytes")), "b").unwrap();
}

fn last_start(scratch: &Scratch) -> serde_json::Value {
    status(scratch)["starts"].as_array().unwrap().last().unwrap().clone()
}

fn converge_after_downtime(scratch: &Scratch, kill: bool) {
    let daemon = RsyncDaemon::start(&scratch.replica());
    seed(&scratch.src());
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
    change_while_down(&scratch.src());

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
    seed(&scratch.src());
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
    let after = status(&scratch);
    let target = &after["targets"][0];
    assert_eq!(target["full_syncs"], 2, "{after:#}");
    assert!(target["last_full_sync_reason"].as_str().unwrap().contains("filesystem identity changed"), "{after:#}");
    agent.stop();
}
