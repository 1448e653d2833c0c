//! Start-up against tree size: each tracker is started on trees of
//! increasing size (cold page cache) and timed until it tracks the tree.
//! The trees have the bench's Jenkins shape with sparse files
//! ([`Tree::generate_sparse`]): start-up reads directories, not contents,
//! so a 1M-file tree costs about 2 GiB of disk instead of 10.
//!
//! fsjournal's target is an rsync daemon address nothing listens on, so its
//! first full sync fails and retries (and writes nothing) while start-up is
//! timed; the agent is stopped right after.

use std::path::Path;
use std::time::Duration;

use super::results::SweepPoint;
use super::sys::{self, Ext4Mount, Proc};
use super::tools;
use super::tree::Tree;

/// Longest wait for a tracker to start (a million watches take minutes).
const LONGEST: Duration = Duration::from_secs(1800);

/// Tree sizes (files), from `--sweep`.
#[derive(Debug, Clone)]
pub struct Sizes(pub Vec<u64>);

/// Parses `10k,100k,1m` into file counts, `none` into no sizes (no
/// sweep). Errors name the bad item.
pub fn parse_sizes(text: &str) -> Result<Sizes, String> {
    if text.trim() == "none" {
        return Ok(Sizes(Vec::new()));
    }
    text.split(',')
        .map(|item| {
            let item = item.trim();
            let (digits, unit) = match item.char_indices().last() {
                Some((i, 'k' | 'K')) => (&item[..i], 1_000),
                Some((i, 'm' | 'M')) => (&item[..i], 1_000_000),
                _ => (item, 1),
            };
            digits
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| n * unit)
                .ok_or_else(|| format!("`{item}`: expected a file count like 10k, 100k or 1m"))
        })
        .collect::<Result<_, _>>()
        .map(Sizes)
}

/// Measures every tracker on a tree of each size in `sizes` (files), in
/// `scratch` (cleared per size). `bin` is the release agent.
pub fn run(
    bin: &Path,
    scratch: &Path,
    sizes: &[u64],
    seed: u64,
) -> anyhow::Result<Vec<SweepPoint>> {
    let mut points = Vec::new();
    for &files in sizes {
        sys::check_interrupted()?;
        let image = Ext4Mount::create(
            &scratch.join("sweep.img"),
            &scratch.join("sweep"),
            (files * 8 * 1024).max(1 << 30),
            files * 4 + 200_000,
        )?;
        let src = image.dir.join("src");
        let work = image.dir.join("work");
        std::fs::create_dir_all(&work)?;
        let tree = Tree::generate_sparse(&src, files, seed)?;
        let _watches = sys::Sysctl::raise(
            "/proc/sys/fs/inotify/max_user_watches",
            tree.dirs * 2 + 100_000,
        )?;
        eprintln!(
            "bench: sweep: {} files, {} directories",
            tree.files, tree.dirs
        );
        for backend in ["fanotify", "ebpf"] {
            sys::drop_caches()?;
            let mut agent = tools::Agent::start(
                bin,
                backend,
                backend,
                &src,
                "rsync://127.0.0.1:9/nothing-listens",
                &work,
                200,
            )?;
            let tracking = agent.proc.wait_line("capture armed", LONGEST)?;
            let live = ["fanotify filesystem mark placed", "eBPF capture attached"]
                .iter()
                .find_map(|line| agent.proc.line_time(line));
            points.push(point(
                &format!("fsjournal-{backend}"),
                &tree,
                tracking,
                live,
                &agent.proc,
            ));
        }
        sys::drop_caches()?;
        let mut proc = tools::inotifywait(&src, &work)?;
        let tracking = proc.wait_line("Watches established.", LONGEST)?;
        points.push(point("inotifywait", &tree, tracking, None, &proc));
    }
    Ok(points)
}

fn point(
    tool: &str,
    tree: &Tree,
    tracking: Duration,
    live: Option<Duration>,
    proc: &Proc,
) -> SweepPoint {
    let p = SweepPoint {
        tool: tool.into(),
        files: tree.files,
        dirs: tree.dirs,
        tracking_s: tracking.as_secs_f64(),
        live_s: live.map(|d| d.as_secs_f64()),
        rss_kib: proc.rss().rss,
    };
    eprintln!(
        "bench: sweep: {tool} on {} files: tracking after {:.3} s{}",
        p.files,
        p.tracking_s,
        p.live_s
            .map_or(String::new(), |l| format!(", capture live after {l:.3} s"))
    );
    p
}
