//! The journal's disk fills up while changes keep coming: the agent keeps
//! running (changes held in memory up to a bound, a rescan owed past it),
//! `status` turns red, and once space returns the replica converges with
//! nothing lost.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

/// A small tmpfs mounted over the journal's parent directory, unmounted on
/// drop (after the agent, declared later, is gone).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "fsjournal-disk-full",
                dir.to_str().unwrap(),
            ],
        );
        SmallDisk(dir.to_path_buf())
    }

    /// Fills the disk with `dummy`: writes until the filesystem refuses.
    fn fill(&self) -> PathBuf {
        let dummy = self.0.join("dummy");
        let mut file = std::fs::File::create(&dummy).unwrap();
        for block in [1 << 20, 4096, 1] {
            let bytes = vec![0u8; block];
            while file.write_all(&bytes).is_ok() {}
        }
        let _ = file.sync_all();
        dummy
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if std::env::var_os("FSJ_KEEP_SCRATCH").is_none() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

/// Writes round `round` of changes: `files` files with long names (each
/// change costs the journal about a kilobyte).
fn changes(src: &Path, round: usize, files: usize) {
    let dir = src.join("busy");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..files {
        let name = format!("{i:04}-{}", "n".repeat(200));
        std::fs::write(dir.join(name), format!("round {round}\n")).unwrap();
    }
}

#[test]
fn a_full_journal_disk_keeps_the_agent_running_and_loses_nothing() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    workload::seed(&scratch.src());
    // RocksDB resumes writing only once 64 MiB are free again (the write
    // buffer it reserves), so the disk must be larger than that.
    let disk = SmallDisk::mount(&scratch.path().join("journal-parent"), "256m");
    let config = write_config(&scratch, scratch.replica().to_str().unwrap(), None, "");
    use_backend(&config, "fanotify");
    let agent = start_and_sync(&config, &scratch);

    let dummy = disk.fill();
    // Changes until the journal's writes fail (RocksDB preallocates some
    // of its log, so the first few megabytes still fit).
    let mut round = 0;
    wait_until(Duration::from_secs(120), "a journal write to fail", || {
        round += 1;
        changes(&scratch.src(), round, 2000);
        assert!(agent.alive(), "the agent died:\n{}", agent.log_text());
        agent.log_text().contains("journal_write_error")
    });
    // Several more seconds of changes with the disk full: the agent stays,
    // and `status` (which reads the journal) turns red on the stale watermark.
    wait_until(Duration::from_secs(90), "status to turn red", || {
        round += 1;
        changes(&scratch.src(), round, 200);
        assert!(
            agent.alive(),
            "the agent died with the disk full:\n{}",
            agent.log_text()
        );
        let health = status(&scratch).health;
        !health.ok
            && health
                .problems
                .iter()
                .any(|p| p.contains("journal cannot be written"))
    });
    std::fs::write(scratch.src().join("written-while-full"), "keep me\n").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        agent.alive(),
        "the agent died with the disk full:\n{}",
        agent.log_text()
    );

    std::fs::remove_file(&dummy).unwrap();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let log = agent.log_text();
    assert!(log.contains("journal writable again"), "{log}");
    wait_until(
        Duration::from_secs(30),
        "status to be healthy again",
        || status(&scratch).health.ok,
    );
    agent.stop();
    drop(disk);
}
