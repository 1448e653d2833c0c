//! The journal's memory and disk footprint over a long burst (not a
//! criterion bench: peak RSS is a per-process figure, so every scenario runs
//! in a fresh child process of this binary).
//!
//! Each scenario appends `RECORDS` changes to distinct paths in batches of
//! 1,000 (a capture burst) and prints one JSON line: the scenario, the
//! process's RSS before opening the journal and its peak (`VmHWM`) and final
//! (`VmRSS`) RSS in KiB, and the journal directory's size in bytes after
//! every tenth of the burst. Scenarios:
//!
//! - `burst`: nothing acknowledges (a target that is down);
//! - `burst+ack`: one target acknowledges every 10,000 records (cursor
//!   write + trimming of the pending set), as a keeping-up pusher does;
//! - `burst+ack+retention`: the same, and the inspection log is cut to the
//!   last 100,000 records after every acknowledgement.
//!
//! Run by `cargo bench -p fsjournal --bench journal_footprint` and
//! `cargo xtask bench --micro`; under `cargo test` (no `--bench` argument)
//! it runs 10,000 records only.

mod support;

use std::path::Path;

use fsjournal::journal::{Change, Journal, Retention, Scope, TargetState};
use fsjournal_common::ChangeKind;

const SCENARIOS: [&str; 3] = ["burst", "burst+ack", "burst+ack+retention"];
const BATCH: u64 = 1000;
const ACK_EVERY: u64 = 10_000;

fn main() {
    support::run_scenarios(&SCENARIOS, 1_000_000, 10_000, run);
}

/// Runs one scenario in this process and prints its JSON line.
fn run(scenario: &str, records: u64) {
    let (ack, retention) = match scenario {
        "burst" => (false, false),
        "burst+ack" => (true, false),
        "burst+ack+retention" => (true, true),
        other => panic!("unknown scenario {other}"),
    };
    let rss_before_kib = support::status_kib("VmRSS:");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("journal");
    let journal = Journal::open(&path).expect("open journal");
    journal
        .register_root(Path::new("/src"))
        .expect("register root");
    let started = std::time::Instant::now();
    let mut sizes = Vec::new();
    for start in (0..records).step_by(BATCH as usize) {
        let changes: Vec<Change> = (start..start + BATCH).map(change).collect();
        let last = journal.append(&changes).expect("append");
        if ack && last.is_multiple_of(ACK_EVERY) {
            let state = TargetState {
                cursor: last,
                ..TargetState::default()
            };
            journal.save_target("replica", &state).expect("acknowledge");
            if retention {
                journal
                    .apply_retention(Retention {
                        records: 100_000,
                        max_age_ms: u64::MAX,
                    })
                    .expect("retention");
            }
        }
        if (start + BATCH).is_multiple_of((records / 10).max(BATCH)) {
            sizes.push((start + BATCH, dir_bytes(&path)));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "scenario": scenario,
        "records": records,
        "seconds": seconds,
        "rss_before_kib": rss_before_kib,
        "peak_rss_kib": support::status_kib("VmHWM:"),
        "rss_kib": support::status_kib("VmRSS:"),
        "journal_bytes": sizes,
    });
    println!("{line}");
}

/// Change number `n`, to a distinct Jenkins-shaped path.
fn change(n: u64) -> Change {
    Change {
        root: 0,
        path: format!("jobs/job-{:05}/builds/{}/log", n % 1000, n / 1000).into_bytes(),
        kind: ChangeKind::Create,
        scope: Scope::Entry,
        ino: n,
        pid: 1234,
        comm: "java".into(),
        renamed_from: None,
    }
}

/// Bytes of the files in `dir` (RocksDB keeps no subdirectories).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read journal directory")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
