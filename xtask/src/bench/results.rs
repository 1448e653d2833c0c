//! The results document (`results.json`): every figure of one bench run,
//! one entry per tool, run and measurement, plus the machine it ran on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything one `cargo xtask bench` measured.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub setup: Setup,
    pub startup: Vec<Startup>,
    /// Start-up against tree size (absent from results written before it existed).
    #[serde(default)]
    pub sweep: Vec<SweepPoint>,
    pub sync: Vec<SyncTime>,
    pub latency: Vec<Latency>,
    pub throughput: Vec<Throughput>,
    /// Absent from results written before the drain measurement existed.
    #[serde(default)]
    pub drain: Vec<Drain>,
    /// A renamed job (absent from results written before it was measured).
    #[serde(default)]
    pub renames: Vec<RenameTime>,
    /// A change set made while the agent was stopped (absent from results
    /// written before it was measured).
    #[serde(default)]
    pub backlog: Vec<Backlog>,
    pub overhead: Vec<Overhead>,
    /// Odd things seen: warnings and errors in the tools' logs, replicas
    /// that did not converge.
    pub notes: Vec<String>,
    /// Wall time of the whole bench (s).
    pub duration_s: f64,
}

/// Where it ran.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub mem_total_kib: u64,
    /// `uname -r`.
    pub kernel: String,
    /// `PRETTY_NAME` of /etc/os-release.
    pub os: String,
    pub rsync: String,
    pub lsyncd: String,
    pub inotifywait: String,
    pub fsjournal: String,
    /// `git describe --always --dirty` of the work tree.
    pub commit: String,
}

/// What was measured on.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Setup {
    /// `--scale` (or "quick").
    pub scale: String,
    pub seed: u64,
    pub runs: u32,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Time to generate the tree (s).
    pub generate_s: f64,
    /// The first full copy into the empty replica (s).
    pub first_copy_s: f64,
    /// fsjournal's `batch_delay_ms`; lsyncd's `delay` is the same in seconds.
    pub batch_delay_ms: u64,
    /// Change-set sizes (files).
    pub ks: Vec<u64>,
    /// Files in the capture burst and the writer-overhead workload.
    pub burst_files: u64,
    pub overhead_files: u64,
}

/// Start-up of one tool in one run. Times are from the spawn (s).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Startup {
    pub tool: String,
    pub run: u32,
    /// Files and directories in the tree at this start.
    #[serde(default)]
    pub tree_files: u64,
    #[serde(default)]
    pub tree_dirs: u64,
    /// Until every change in the tree is captured (fsjournal: "capture
    /// armed"; inotifywait: "Watches established."; lsyncd: its startup
    /// rsync begins, every watch placed).
    pub tracking_s: f64,
    /// Until the replica is known equal (fsjournal: "full sync done";
    /// lsyncd: "Startup … finished."); none for inotifywait.
    pub ready_s: Option<f64>,
    /// Other log milestones (label → s).
    pub milestones: BTreeMap<String, f64>,
    /// `SUnreclaim` growth from before the spawn to ready (KiB).
    pub slab_unreclaim_kib: i64,
    /// `SReclaimable` growth (KiB): dentries and inodes the walk pulled in.
    pub slab_reclaim_kib: i64,
    /// VmRSS when ready (KiB).
    pub rss_kib: u64,
    /// RssAnon when ready (KiB): VmRSS without mapped files and bpf maps.
    #[serde(default)]
    pub rss_anon_kib: u64,
    /// VmHWM at the end of the tool's session (KiB).
    pub peak_rss_kib: u64,
}

/// Time from the end of a change set to "replica equal to source".
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SyncTime {
    pub tool: String,
    pub run: u32,
    /// Requested change-set size (files).
    pub k: u64,
    /// Files actually changed (new builds come whole).
    pub changed: u64,
    /// Time to write the change set (s).
    pub write_s: f64,
    /// Seconds from the change set's end to replica = source (for rsync:
    /// one `rsync -a --delete` run).
    pub seconds: f64,
    /// Touched files equal by rsync's quick check (size, mtime seconds)
    /// whose mtime still differs in the nanoseconds.
    #[serde(default)]
    pub mtime_ns_differs: u64,
    /// Differences left when the wait gave up (empty: converged).
    pub residual: Vec<String>,
    /// Over the rsync daemon: bytes that crossed the loopback meanwhile
    /// (both directions: file lists, checksums, data; daemon.rs); none for
    /// a local target.
    #[serde(default)]
    pub wire_bytes: Option<u64>,
    /// Over the rsync daemon: file data among them (each file's `%b`).
    #[serde(default)]
    pub data_bytes: Option<u64>,
}

/// The largest job directory renamed: until the replica is equal, and
/// what the replica's disk wrote meanwhile (`measure/rename.rs`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RenameTime {
    pub tool: String,
    pub run: u32,
    /// The job's regular files and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// From the rename to replica = source (rsync: one full run) (s).
    pub seconds: f64,
    /// KiB the replica's ext4 image wrote meanwhile.
    pub written_kib: u64,
    /// Over the rsync daemon: bytes that crossed, and file data among
    /// them (see [`SyncTime::wire_bytes`]).
    #[serde(default)]
    pub wire_bytes: Option<u64>,
    #[serde(default)]
    pub data_bytes: Option<u64>,
}

/// A change set of `k` files written while fsjournal was stopped, then the
/// agent started again: its backlog (eBPF: what the pinned programs kept;
/// fanotify: the ctime gap scan) pushed by the cost model's full rsync or
/// as file lists (`measure.rs`, `backlog`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Backlog {
    pub tool: String,
    pub run: u32,
    pub k: u64,
    /// Files actually changed.
    pub changed: u64,
    /// From the restart to replica = source (s).
    pub seconds: f64,
    /// `status`'s last push strategy then ("full push", "file lists").
    pub strategy: String,
    /// Over the rsync daemon: bytes that crossed, file data among them.
    pub wire_bytes: Option<u64>,
    pub data_bytes: Option<u64>,
}

/// Change → replica latency of single small new files.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub tool: String,
    pub run: u32,
    /// Each sample (ms), in order taken.
    pub samples_ms: Vec<f64>,
}

/// A burst of creates from one or more writers, journaled by fsjournal.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Throughput {
    pub tool: String,
    pub run: u32,
    pub files: u64,
    /// Writer threads sharing the files, each in a directory of its own
    /// (1 in results taken before it was recorded).
    #[serde(default = "one")]
    pub writers: u32,
    /// The writer's time for the creates (s).
    pub writer_s: f64,
    /// From the burst's start to the last journal growth (s).
    pub journal_s: f64,
    /// Journal records added (`last_seq` growth).
    pub records: u64,
    /// Kernel events the agent read, changes it journaled (agent counters).
    pub events: u64,
    pub journaled: u64,
    /// eBPF: events dropped (ring buffer and spill map full); fanotify: 0.
    pub dropped: u64,
    /// eBPF: events spilled to the DIRTY map.
    pub spilled: u64,
    /// Rescan markers written (losses turned into recursive pushes).
    pub rescans: u64,
    /// From the writer's end until nothing is pending (s).
    pub replicated_s: f64,
    /// Journal directory size after the burst (bytes) and its last_seq then.
    pub journal_bytes: u64,
    pub journal_seq: u64,
    /// Agent VmRSS after the burst (KiB).
    pub rss_kib: u64,
    /// Agent RssAnon after the burst (KiB).
    #[serde(default)]
    pub rss_anon_kib: u64,
}

/// One tracker started on one tree of the start-up sweep (`sweep.rs`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SweepPoint {
    pub tool: String,
    /// The tree: files and directories.
    pub files: u64,
    pub dirs: u64,
    /// From the spawn until it tracks the tree: fsjournal `capture armed`,
    /// inotifywait `Watches established.` (s).
    pub tracking_s: f64,
    /// fsjournal: from the spawn until the kernel captures (mark placed,
    /// programs attached), when the log says (s).
    pub live_s: Option<f64>,
    /// VmRSS once tracking (KiB).
    pub rss_kib: u64,
}

/// A backlog of creates queued while the agent was stopped, then journaled
/// at full speed (see `measure/drain.rs`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Drain {
    pub tool: String,
    pub run: u32,
    pub files: u64,
    /// Journal records added (`last_seq` growth).
    pub records: u64,
    /// From the agent's continue to the last journal growth (s).
    pub drain_s: f64,
    /// The agent's CPU time meanwhile, all threads (s).
    pub agent_cpu_s: f64,
    /// eBPF events lost (ring buffer and spill map full); fanotify: 0.
    pub dropped: u64,
    /// Rescan markers written (a fanotify queue overflow, eBPF drops).
    pub rescans: u64,
}

/// The writer-overhead workload: create, write 100 bytes, close, unlink.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Overhead {
    /// "none" or the tool running meanwhile.
    pub tool: String,
    pub run: u32,
    pub files: u64,
    pub seconds: f64,
}

/// The median of `values` (mean of the middle two when even); none if empty.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// The `p`-th percentile (0–100) of `values`, nearest rank.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// Entries that belong to one tool.
fn one() -> u32 {
    1
}

pub trait Tool {
    fn tool(&self) -> &str;
}

macro_rules! tool {
    ($($t:ty),*) => {$(impl Tool for $t {
        fn tool(&self) -> &str {
            &self.tool
        }
    })*};
}
tool!(Backlog, Startup, SweepPoint, SyncTime, Latency, Throughput, Drain, Overhead);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }
}
