//! Criterion micro-benchmarks of the capture side's in-memory work: building
//! the directory index (`capture/dir_index.rs`: a walk with one
//! `name_to_handle_at` per directory), resolving an event's directory handle
//! and name to a path through it, and decoding fanotify event buffers
//! (`capture/fanotify_sys.rs`, on synthetic buffers laid out as the kernel
//! writes them).

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fsjournal::capture::dir_index::DirIndex;
use fsjournal::capture::fanotify_sys::parse_events;
use fsjournal::capture::fanotify_sys::synthetic::{event, info};
use fsjournal::capture::handle::{handle_of, FileHandle};

/// Jobs × builds of the generated tree: 100 × 100 build directories, plus
/// `jobs/`, the job directories and their `builds/`: 10,202 directories.
const JOBS: usize = 100;
const BUILDS: usize = 100;

/// Creates the tree under `root`; returns the build directories.
fn tree(root: &Path) -> Vec<std::path::PathBuf> {
    let mut builds = Vec::new();
    for job in 0..JOBS {
        for build in 0..BUILDS {
            let dir = root.join(format!("jobs/job-{job:05}/builds/{build}"));
            std::fs::create_dir_all(&dir).expect("create build directory");
            builds.push(dir);
        }
    }
    builds
}

fn index_of(root: &Path) -> DirIndex {
    let mut index = DirIndex::default();
    index
        .add_root(0, root, Default::default())
        .expect("index the tree");
    index
}

/// Building the index of the whole tree (warm page cache), and resolving
/// `log` in every build directory from the directory's handle.
fn dir_index(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let builds = tree(dir.path());
    let dirs = index_of(dir.path()).len() as u64;
    let mut group = c.benchmark_group("dir_index");
    group.throughput(Throughput::Elements(dirs));
    group.bench_function(BenchmarkId::new("build (directories)", dirs), |b| {
        b.iter(|| index_of(dir.path()))
    });
    let index = index_of(dir.path());
    let handles: Vec<FileHandle> = builds
        .iter()
        .map(|b| handle_of(b).expect("handle").0)
        .collect();
    group.throughput(Throughput::Elements(handles.len() as u64));
    group.bench_function(
        BenchmarkId::new("entry_path, depth 5", handles.len()),
        |b| {
            b.iter(|| {
                for handle in &handles {
                    index.entry_path(handle, b"log").expect("resolves");
                }
            })
        },
    );
    group.finish();
}

/// Decoding a buffer of 1,000 CREATE events (directory handle + name, and
/// the object's handle; 8-byte ext4 handles), as one read returns them.
fn fanotify(c: &mut Criterion) {
    const EVENTS: usize = 1000;
    let mut buf = Vec::new();
    for n in 0..EVENTS {
        let name = format!("file-{n:06}.log");
        buf.extend(event(
            libc::FAN_CREATE,
            &[
                info(
                    libc::FAN_EVENT_INFO_TYPE_DFID_NAME,
                    b"dir-hndl",
                    Some(name.as_bytes()),
                ),
                info(libc::FAN_EVENT_INFO_TYPE_FID, b"obj-hndl", None),
            ],
        ));
    }
    let mut group = c.benchmark_group("fanotify");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function(BenchmarkId::new("parse_events", EVENTS), |b| {
        b.iter(|| assert_eq!(parse_events(&buf).len(), EVENTS))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = dir_index, fanotify
}
criterion_main!(benches);
