//! The Prometheus endpoint (`[metrics] address`): `GET /metrics` answers in
//! the OpenMetrics text format, built afresh on every scrape from the
//! capture counters, the journal (the same target figures as
//! `fsjournal status`) and the pushers' rsync run metrics (`push/runs.rs`).
//! A fixed pool of threads with bounded connections and client deadlines
//! (`metrics/server.rs`), no state of its own. Other paths answer 404.

mod server;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::capture::Stats;
use crate::journal::Journal;
use crate::push::runs::Runs;
use crate::target_status;
use server::Response;

/// The OpenMetrics text format's content type (Prometheus accepts it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the per-target families: `{target="…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TargetLabels {
    /// The sync's name.
    target: String,
}

/// Labels of the kernel counter family: `{counter="…"}`, one of
/// [`crate::journal::KernelCounters::named`]'s names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CounterLabels {
    counter: &'static str,
}

/// A gauge family of whole numbers, by target.
type TargetGauge = Family<TargetLabels, Gauge<u64, AtomicU64>>;
/// A gauge family of seconds, by target.
type TargetSeconds = Family<TargetLabels, Gauge<f64, AtomicU64>>;

/// A bound, not yet serving endpoint: binding early makes a taken port an
/// error at start, before capture is armed.
pub struct Endpoint {
    listener: TcpListener,
    address: SocketAddr,
}

impl Endpoint {
    /// Listens on `address`; an address other than loopback is accepted
    /// with a warning (anyone who reaches it reads the metrics: the source
    /// paths' target names, the backlog). Errors: the address cannot be
    /// bound (in use, not local, no permission).
    pub fn bind(address: SocketAddr) -> anyhow::Result<Endpoint> {
        let listener = server::bind(address)
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {address}: {e}"))?;
        if !address.ip().is_loopback() {
            tracing::warn!(
                %address,
                "metrics endpoint listens beyond loopback: any host that reaches it reads the targets' state; prefer 127.0.0.1 behind a scraper, or firewall the port"
            );
        }
        Ok(Endpoint { listener, address })
    }

    /// Serves scrapes until `stop` is set, on a bounded pool of threads
    /// (`metrics/server.rs`); the returned thread ends after them.
    pub fn serve(
        self,
        journal: Arc<Journal>,
        stats: Arc<Stats>,
        runs: Arc<Runs>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<JoinHandle<()>> {
        tracing::info!(
            address = %self.address,
            workers = server::WORKERS,
            queue = server::QUEUE,
            "serving metrics at /metrics"
        );
        let handler = move |request: &server::Request| answer(request, &journal, &stats, &runs);
        Ok(server::serve(self.listener, handler, stop)?)
    }
}

/// Answers one request: the metrics for `GET /metrics`, 404 otherwise.
fn answer(request: &server::Request, journal: &Journal, stats: &Stats, runs: &Runs) -> Response {
    if request.method != "GET" || request.path != "/metrics" {
        return server::plain(404, "not found: GET /metrics\n");
    }
    match render(journal, stats, runs) {
        Ok(body) => Response {
            status: 200,
            content_type: CONTENT_TYPE,
            body,
        },
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "metrics endpoint: cannot read the journal");
            server::plain(500, &format!("cannot read the journal: {e:#}\n"))
        }
    }
}

/// The metrics text (OpenMetrics; counters get their `_total` suffix from
/// the encoder). Errors: a journal read failed.
pub fn render(journal: &Journal, stats: &Stats, runs: &Runs) -> anyhow::Result<String> {
    let mut registry = Registry::default();
    runs.register(&mut registry);
    register_capture(&mut registry, stats);
    register_journal(&mut registry, journal);
    TargetFamilies::collect(journal)?.register(&mut registry);
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// The agent's and its capture's metrics, from `stats`.
fn register_capture(registry: &mut Registry, stats: &Stats) {
    let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
    registry.register(
        "fsjournal_agent_up",
        "1 while the agent serves this endpoint",
        gauge(1),
    );
    registry.register(
        "fsjournal_events_captured",
        "Kernel events the capture backend read since the agent started",
        count(load(&stats.events)),
    );
    registry.register(
        "fsjournal_events_journaled",
        "Changes written to the journal since the agent started",
        count(load(&stats.journaled)),
    );
    registry.register(
        "fsjournal_rescans",
        "Capture losses turned into a recursive push (rescan) since the agent started",
        count(load(&stats.rescans)),
    );
    let kernel = Family::<CounterLabels, Counter>::default();
    for (counter, count) in stats.kernel_counters().named() {
        kernel
            .get_or_create(&CounterLabels { counter })
            .inc_by(count);
    }
    registry.register(
        "fsjournal_kernel_events",
        "eBPF programs' event counters since they were loaded (0 with fanotify)",
        kernel,
    );
}

/// The journal's own metrics: its newest sequence number and its size.
fn register_journal(registry: &mut Registry, journal: &Journal) {
    registry.register(
        "fsjournal_journal_last_seq",
        "Sequence number of the newest journal record",
        gauge(journal.last_seq()),
    );
    registry.register(
        "fsjournal_journal_size_bytes",
        "Size of the journal directory's files (bytes)",
        gauge(directory_size(journal.path())),
    );
}

/// The per-target families, one member per target (the figures of
/// `fsjournal status`, `target_status.rs`).
#[derive(Default)]
struct TargetFamilies {
    pending: TargetGauge,
    pending_bytes: TargetGauge,
    lag: TargetSeconds,
    cursor: TargetGauge,
    full_syncs: Family<TargetLabels, Counter>,
    failures: TargetGauge,
    in_flight: TargetSeconds,
}

impl TargetFamilies {
    /// Every target's figures as the journal has them now. Errors: a
    /// journal read failed.
    fn collect(journal: &Journal) -> anyhow::Result<TargetFamilies> {
        let families = TargetFamilies::default();
        for target in target_status::collect(journal)? {
            let labels = TargetLabels {
                target: target.name.clone(),
            };
            families.pending.get_or_create(&labels).set(target.pending);
            families
                .pending_bytes
                .get_or_create(&labels)
                .set(target.pending_bytes);
            families
                .lag
                .get_or_create(&labels)
                .set(target.lag_ms as f64 / 1000.0);
            families
                .cursor
                .get_or_create(&labels)
                .set(target.state.cursor);
            families
                .full_syncs
                .get_or_create(&labels)
                .inc_by(target.state.full_syncs);
            families
                .failures
                .get_or_create(&labels)
                .set(u64::from(target.state.consecutive_failures));
            families.in_flight.get_or_create(&labels).set(
                target
                    .push_in_flight
                    .map_or(0.0, |run| run.age_ms as f64 / 1000.0),
            );
        }
        Ok(families)
    }

    /// Adds the families to `registry`, with their names and help texts.
    fn register(self, registry: &mut Registry) {
        registry.register(
            "fsjournal_target_pending_paths",
            "Paths the target still has to receive",
            self.pending,
        );
        registry.register(
            "fsjournal_target_pending_bytes",
            "Size of the pending paths in the source now (bytes; estimated past 100,000 paths)",
            self.pending_bytes,
        );
        registry.register(
            "fsjournal_target_lag_seconds",
            "Age of the target's oldest unpushed change (seconds, 0 when in sync)",
            self.lag,
        );
        registry.register(
            "fsjournal_target_cursor",
            "Highest sequence number the target has confirmed",
            self.cursor,
        );
        registry.register(
            "fsjournal_target_full_syncs",
            "Full syncs of the target, ever",
            self.full_syncs,
        );
        registry.register(
            "fsjournal_target_consecutive_failures",
            "Failed pushes to the target since its last success",
            self.failures,
        );
        registry.register(
            "fsjournal_target_push_in_flight_seconds",
            "Age of the target's rsync run in progress (seconds, 0 when none runs)",
            self.in_flight,
        );
    }
}

fn gauge(value: u64) -> Gauge<u64, AtomicU64> {
    let gauge = Gauge::<u64, AtomicU64>::default();
    gauge.set(value);
    gauge
}

fn count(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

/// Total size of the regular files directly in `dir` (bytes; a RocksDB
/// directory is flat: SST files, WAL, manifest). 0 if it cannot be read.
fn directory_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use fsjournal_common::{counter, ChangeKind};

    use super::*;
    use crate::journal::{Change, Scope, TargetState};

    #[test]
    fn scrape_names_every_metric_with_its_value() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal")).unwrap();
        let root = journal.register_root(dir.path()).unwrap();
        std::fs::write(dir.path().join("a"), "hello").unwrap();
        let state = TargetState {
            root,
            full_syncs: 2,
            consecutive_failures: 4,
            ..TargetState::default()
        };
        journal.save_target("standby", &state).unwrap();
        let change = Change {
            root,
            path: b"a".to_vec(),
            kind: ChangeKind::Create,
            scope: Scope::Entry,
            ino: 1,
            pid: 1,
            comm: String::new(),
            renamed_from: None,
        };
        journal.append(&[change]).unwrap();
        let stats = Stats::default();
        stats.journaled.store(42, Ordering::Relaxed);
        stats.kernel[counter::DROPPED as usize].store(3, Ordering::Relaxed);
        stats.kernel[counter::COALESCED as usize].store(7, Ordering::Relaxed);
        let text = render(&journal, &stats, &Runs::new(1)).unwrap();
        for line in [
            "fsjournal_agent_up 1",
            "fsjournal_events_journaled_total 42",
            "fsjournal_events_captured_total 0",
            "fsjournal_kernel_events_total{counter=\"dropped\"} 3",
            "fsjournal_kernel_events_total{counter=\"coalesced\"} 7",
            "fsjournal_journal_last_seq 1",
            "fsjournal_target_pending_paths{target=\"standby\"} 1",
            "fsjournal_target_pending_bytes{target=\"standby\"} 5",
            "fsjournal_target_cursor{target=\"standby\"} 0",
            "fsjournal_target_full_syncs_total{target=\"standby\"} 2",
            "fsjournal_target_consecutive_failures{target=\"standby\"} 4",
            "fsjournal_target_push_in_flight_seconds{target=\"standby\"} 0.0",
            "# TYPE fsjournal_target_lag_seconds gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("fsjournal_target_lag_seconds{target=\"standby\"} ")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("fsjournal_journal_size_bytes ") && !l.ends_with(" 0")),
            "{text}"
        );
    }
}
