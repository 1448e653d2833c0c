//! Memory per directory of the directory index (`capture/dir_index.rs`),
//! the eBPF backend's main RSS cost on big trees. Not a criterion bench:
//! it prints one JSON line per scenario, each run in a fresh child process
//! of this binary so that the RSS figures are its own.
//!
//! Heap bytes are counted exactly by a global allocator wrapper (the sizes
//! asked of malloc, live after the build minus live before; malloc's own
//! per-allocation overhead, 8–16 bytes, is not in them); RSS is the growth
//! of `VmRSS` over the build, which includes that overhead. Scenarios:
//!
//! - `walk`: [`DirIndex::add_root`] over a real tree made in a temporary
//!   directory (jobs × builds × `archive/target`, as the bench tree's
//!   build directories), as the eBPF backend indexes a root at start;
//! - `link`: a root, then `DIRS` synthetic directories linked one by one
//!   ([`DirIndex::link`], as renames and new directories are recorded) with
//!   12-byte ext4 handles (type + 32-bit inode + generation) in the same
//!   shape, 573,779 directories by default: the 1M-file bench tree's count.
//!
//! Run by `cargo bench -p fsjournal --bench dir_index_footprint`; under
//! `cargo test` (no `--bench` argument) the scenarios are 100 times smaller.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use fsjournal::capture::dir_index::DirIndex;
use fsjournal::capture::handle::FileHandle;

/// Counts the bytes of live heap allocations.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only
// counts the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as the caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as the caller's contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SCENARIOS: [&str; 2] = ["walk", "link"];
/// Directories of the `link` scenario at full scale.
const DIRS: usize = 573_779;
/// Build directories of the `walk` scenario at full scale (three
/// directories each: `N`, `N/archive`, `N/archive/target`).
const WALK_BUILDS: usize = 20_000;

fn main() {
    support::run_scenarios(&SCENARIOS, 1, 100, run);
}

/// Builds one scenario's index in this process and prints its JSON line.
fn run(scenario: &str, divisor: u64) {
    let divisor = divisor as usize;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut build: Box<dyn FnMut() -> DirIndex> = match scenario {
        "walk" => {
            let builds = WALK_BUILDS / divisor;
            for b in 0..builds {
                let job = b / 100;
                let path = dir
                    .path()
                    .join(format!("jobs/job-{job:05}/builds/{b}/archive/target"));
                std::fs::create_dir_all(path).expect("create a build directory");
            }
            let root = dir.path().to_path_buf();
            Box::new(move || {
                let mut index = DirIndex::default();
                index
                    .add_root(0, &root, Default::default())
                    .expect("index the tree");
                index
            })
        }
        "link" => {
            let dirs = DIRS / divisor;
            let root = dir.path().to_path_buf();
            Box::new(move || synthetic(&root, dirs))
        }
        other => panic!("unknown scenario {other}"),
    };
    let (heap_before, rss_before) = (LIVE.load(Ordering::Relaxed), support::status_kib("VmRSS:"));
    let started = std::time::Instant::now();
    let index = build();
    let elapsed = started.elapsed();
    let (heap_after, rss_after) = (LIVE.load(Ordering::Relaxed), support::status_kib("VmRSS:"));
    let dirs = index.len();
    let heap = heap_after - heap_before;
    let rss = (rss_after - rss_before) * 1024;
    println!(
        "{{\"scenario\":\"{scenario}\",\"directories\":{dirs},\"heap_bytes\":{heap},\
         \"heap_bytes_per_directory\":{:.1},\"rss_bytes_per_directory\":{:.1},\"build_ms\":{}}}",
        heap as f64 / dirs as f64,
        rss as f64 / dirs as f64,
        elapsed.as_millis()
    );
    drop(index);
}

/// A root at `root`, then `dirs` directories below it, linked parent first:
/// `jobs/job-NNNNN/builds/N/archive/target`, 190 builds a job.
fn synthetic(root: &std::path::Path, dirs: usize) -> DirIndex {
    let mut index = DirIndex::default();
    let root_handle = index
        .register_root(0, root, Default::default())
        .expect("register the root");
    let mut ino: u32 = 1000;
    let mut next = || {
        ino += 1;
        FileHandle::new(1, &[ino.to_ne_bytes(), 7u32.to_ne_bytes()].concat())
    };
    let jobs = next();
    assert!(index.link(jobs.clone(), &root_handle, b"jobs"));
    let mut linked = 1;
    let mut job = 0;
    'tree: loop {
        let job_dir = next();
        assert!(index.link(job_dir.clone(), &jobs, format!("job-{job:05}").as_bytes()));
        let builds = next();
        assert!(index.link(builds.clone(), &job_dir, b"builds"));
        linked += 2;
        for build in 0..190 {
            let (n, archive, target) = (next(), next(), next());
            assert!(index.link(n.clone(), &builds, build.to_string().as_bytes()));
            assert!(index.link(archive.clone(), &n, b"archive"));
            assert!(index.link(target, &archive, b"target"));
            linked += 3;
            if linked >= dirs {
                break 'tree;
            }
        }
        job += 1;
    }
    index
}
