//! Criterion micro-benchmarks of the journal (RocksDB, `agent/src/journal`):
//! appending (records/s, with and without coalescing), draining the pending
//! set in batches, and acknowledging a batch (cursor write + trimming).
//!
//! Each journal lives in a temporary directory on the default temp
//! filesystem; every append and acknowledgement is a synced write (WAL
//! fsync), as in the agent. `cargo xtask bench --micro` runs these and
//! summarises them.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use fsjournal::journal::{Change, Journal, Scope, TargetState};
use fsjournal_common::ChangeKind;

/// A Jenkins-shaped path for change number `n`: distinct for every `n`.
fn path(n: u64) -> Vec<u8> {
    format!("jobs/job-{:05}/builds/{}/log", n % 1000, n / 1000).into_bytes()
}

fn change(path: Vec<u8>) -> Change {
    Change {
        root: 0,
        path,
        kind: ChangeKind::Modify,
        scope: Scope::Entry,
        ino: 4242,
        pid: 1234,
        comm: "java".into(),
        renamed_from: None,
    }
}

fn open() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let journal = Journal::open(&dir.path().join("journal")).expect("open journal");
    journal
        .register_root(std::path::Path::new("/src"))
        .expect("register root");
    (dir, journal)
}

/// Appends `count` changes to distinct paths, `batch` per write.
fn fill(journal: &Journal, first: u64, count: u64, batch: u64) {
    for start in (first..first + count).step_by(batch as usize) {
        let changes: Vec<Change> = (start..start + batch).map(|n| change(path(n))).collect();
        journal.append(&changes).expect("append");
    }
}

/// One `append` of `batch` changes: to distinct paths, or to only 10 paths
/// (a few growing logs: every change coalesces with its path's pending entry).
fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for batch in [1u64, 1000] {
        group.throughput(Throughput::Elements(batch));
        for (name, paths) in [("distinct paths", u64::MAX), ("10 paths", 10)] {
            let (_dir, journal) = open();
            let mut next = 0u64;
            group.bench_function(BenchmarkId::new(name, batch), |b| {
                b.iter_batched(
                    || {
                        (0..batch)
                            .map(|_| {
                                next += 1;
                                change(path(next % paths))
                            })
                            .collect::<Vec<_>>()
                    },
                    |changes| journal.append(&changes).expect("append"),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

/// Reading every pending path of a 100,000-path backlog from cursor 0, in
/// batches of 10,000 (the default `batch_max_files`).
fn drain(c: &mut Criterion) {
    const PENDING: u64 = 100_000;
    let mut group = c.benchmark_group("pending_batch");
    group.throughput(Throughput::Elements(PENDING));
    let (_dir, journal) = open();
    fill(&journal, 0, PENDING, 1000);
    group.bench_function(
        BenchmarkId::new("drain in batches of 10000", PENDING),
        |b| {
            b.iter(|| {
                let (mut cursor, mut paths) = (0, 0);
                loop {
                    let batch = journal.pending_batch(0, cursor, 10_000).expect("batch");
                    paths += batch.paths.len();
                    cursor = batch.high_seq;
                    if !batch.truncated {
                        break;
                    }
                }
                assert_eq!(paths as u64, PENDING);
            })
        },
    );
    group.finish();
}

/// Acknowledging a batch of 10,000 paths: the target's cursor moves past
/// them and, in the same write, their pending entries are trimmed. Each
/// iteration first appends the next 10,000 paths (not timed).
fn acknowledge(c: &mut Criterion) {
    const BATCH: u64 = 10_000;
    let mut group = c.benchmark_group("acknowledge");
    group.throughput(Throughput::Elements(BATCH));
    let (_dir, journal) = open();
    let mut next = 0u64;
    group.bench_function(BenchmarkId::new("save_target + trim", BATCH), |b| {
        b.iter_batched(
            || {
                fill(&journal, next, BATCH, 1000);
                next += BATCH;
                TargetState {
                    cursor: journal.last_seq(),
                    ..TargetState::default()
                }
            },
            |state| journal.save_target("replica", &state).expect("save"),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = append, drain, acknowledge
}
criterion_main!(benches);
