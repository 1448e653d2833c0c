//! How the report writes its figures, and the medians its tables and goals
//! share.

use super::super::results::{median, percentile, Results, Startup, Tool};

/// Tools in table order.
pub const TOOLS: [&str; 5] = [
    "fsjournal-ebpf",
    "fsjournal-fanotify",
    "lsyncd",
    "inotifywait",
    "rsync",
];

/// fsjournal's two capture backends, the tools the goals judge.
pub const FSJOURNAL: [&str; 2] = ["fsjournal-ebpf", "fsjournal-fanotify"];

pub use super::super::measure::{label, DAEMON};

/// When fsjournal's kernel capture went live (s after the spawn): its
/// milestone, else when it tracked the tree.
pub fn capture_live(s: &Startup) -> f64 {
    ["eBPF capture attached", "fanotify filesystem mark placed"]
        .iter()
        .find_map(|m| s.milestones.get(*m).copied())
        .unwrap_or(s.tracking_s)
}

/// Median of `f` over the entries of `tool`.
pub fn med<T: Tool>(items: &[T], tool: &str, f: impl Fn(&T) -> f64) -> Option<f64> {
    median(items.iter().filter(|i| i.tool() == tool).map(f))
}

/// Median seconds of `tool`'s change sets of `k` files in `run`.
pub fn sync_seconds(run: &Results, tool: &str, k: u64) -> Option<f64> {
    median(
        run.sync
            .iter()
            .filter(|s| s.tool == tool && s.k == k)
            .map(|s| s.seconds),
    )
}

/// Every latency sample (ms) of `tool`, all runs pooled.
pub fn latency_samples(r: &Results, tool: &str) -> Vec<f64> {
    r.latency
        .iter()
        .filter(|l| l.tool == tool)
        .flat_map(|l| l.samples_ms.clone())
        .collect()
}

/// The `q`th percentile of `tool`'s latency samples (ms).
pub fn latency_percentile(r: &Results, tool: &str, q: f64) -> Option<f64> {
    percentile(&latency_samples(r, tool), q)
}

/// Seconds in the unit that suits them: ms below 0.1 s; "—" when absent.
pub fn fmt_s(v: Option<f64>) -> String {
    match v {
        Some(v) if v < 0.1 => format!("{:.1} ms", v * 1000.0),
        Some(v) if v < 10.0 => format!("{v:.2} s"),
        Some(v) => format!("{v:.1} s"),
        None => "—".into(),
    }
}

/// KiB as MiB, one decimal.
pub fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

/// A file count, absent (0) in results taken before it was recorded.
pub fn files(n: Option<f64>) -> String {
    n.filter(|n| *n > 0.0)
        .map_or("—".into(), |n| format!("{:.0}k files", n / 1000.0))
}

/// RssAnon, absent (0) in results taken before it was recorded.
pub fn anon(kib: Option<f64>) -> String {
    kib.filter(|k| *k > 0.0).map_or("—".into(), mib)
}

/// Bytes as decimal megabytes, one decimal; "—" when absent.
pub fn mb(bytes: Option<f64>) -> String {
    bytes.map_or("—".into(), |b| format!("{:.1}", b / 1e6))
}
