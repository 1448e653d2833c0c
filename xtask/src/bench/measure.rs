//! One session per tool and run: start it on a cold cache, then run the
//! measurements that apply to it, in the same order for every tool, then
//! stop it and bring the replica back to equal (untimed) for the next one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

mod backlog;
mod drain;
mod rename;

use super::daemon::{RsyncDaemon, Traffic};
use super::results::{Latency, Overhead, Results, Startup, SyncTime, Throughput};
use super::sys::{self, Proc};
use super::tools::{self, Agent};
use super::tree::Tree;

/// Where the tools push: the replica's directory itself, or the same
/// directory behind an `rsync --daemon` on 127.0.0.1 (daemon.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Destination {
    Local,
    Daemon,
}

/// A part of a run, for `--sections` (start-up is measured whenever a tool
/// starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Change → replica latency of single files.
    Latency,
    /// Change sets of K files (every K of the plan).
    Sync,
    /// The renamed job.
    Rename,
    /// A change set of the largest K written while the agent was stopped.
    Backlog,
    /// Capture bursts and the drain of a queued backlog.
    Capture,
    /// The writer-overhead workload (and inotifywait's start-up).
    Overhead,
    /// The start-up sweep over tree sizes.
    Sweep,
}

/// What to measure, from the command line.
pub struct Plan {
    /// The parts of each session that run.
    pub sections: Vec<Section>,
    /// Where the tools push; sessions over the daemon measure change sets
    /// and the renamed job only.
    pub destinations: Vec<Destination>,
    pub ks: Vec<u64>,
    pub latency_samples: u32,
    /// Pause between two latency samples (ms).
    pub latency_interval_ms: u64,
    pub burst_files: u64,
    /// Writer counts of the bursts (one burst each).
    pub burst_writers: Vec<u32>,
    pub overhead_files: u64,
    pub batch_delay_ms: u64,
}

impl Plan {
    /// Whether `section` runs.
    pub fn has(&self, section: Section) -> bool {
        self.sections.contains(&section)
    }
}

/// Suffix of a tool's name in sessions over the rsync daemon.
pub const DAEMON: &str = "@daemon";

/// `tool` as named in the results for `destination`: over the daemon,
/// `<tool>@daemon`.
pub fn label(tool: &str, destination: Destination) -> String {
    match destination {
        Destination::Local => tool.to_string(),
        Destination::Daemon => format!("{tool}{DAEMON}"),
    }
}

/// The tree, the replica, the agent binary and what was measured so far.
pub struct Bench {
    pub src: PathBuf,
    pub dst: PathBuf,
    /// Journals, configurations and logs.
    pub work: PathBuf,
    pub bin: PathBuf,
    pub tree: Tree,
    pub plan: Plan,
    pub results: Results,
    /// The rsync daemon serving `dst`, when a destination is `Daemon`.
    pub daemon: Option<RsyncDaemon>,
    probes: u64,
}

/// Seconds of a duration.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Bench {
    pub fn new(
        src: PathBuf,
        dst: PathBuf,
        work: PathBuf,
        bin: PathBuf,
        tree: Tree,
        plan: Plan,
        results: Results,
    ) -> Self {
        Bench {
            src,
            dst,
            work,
            bin,
            tree,
            plan,
            results,
            daemon: None,
            probes: 0,
        }
    }

    /// Where `destination` is, as the tools' target string.
    fn target(&self, destination: Destination) -> String {
        match (destination, &self.daemon) {
            (Destination::Daemon, Some(daemon)) => daemon.url.clone(),
            _ => format!("{}/", self.dst.display()),
        }
    }

    /// The daemon's traffic so far, when `destination` is the daemon.
    fn traffic(&self, destination: Destination) -> Option<Traffic> {
        match destination {
            Destination::Daemon => self.daemon.as_ref().map(RsyncDaemon::traffic),
            Destination::Local => None,
        }
    }

    /// The daemon's traffic since `before` (see [`RsyncDaemon::traffic_since`]).
    fn traffic_since(&self, before: Option<Traffic>) -> Option<Traffic> {
        Some(self.daemon.as_ref()?.traffic_since(before?))
    }

    /// All sessions of run `run`.
    pub fn run(&mut self, run: u32) -> anyhow::Result<()> {
        sys::check_interrupted()?;
        if self.plan.has(Section::Overhead) {
            eprintln!("bench: run {run}: writer overhead with no tracker");
            self.overhead("none", run, None)?;
        }
        for destination in self.plan.destinations.clone() {
            self.run_to(run, destination)?;
        }
        Ok(())
    }

    /// The sessions of run `run` pushing to `destination`.
    fn run_to(&mut self, run: u32, destination: Destination) -> anyhow::Result<()> {
        let to = match destination {
            Destination::Local => "",
            Destination::Daemon => " over an rsync daemon",
        };
        for backend in ["ebpf", "fanotify"] {
            self.fsjournal(backend, run, destination)
                .with_context(|| format!("fsjournal ({backend}){to}, run {run}"))?;
            self.reconcile()?;
        }
        if destination == Destination::Local && self.plan.has(Section::Overhead) {
            self.inotifywait(run)
                .with_context(|| format!("inotifywait, run {run}"))?;
        }
        self.lsyncd(run, destination)
            .with_context(|| format!("lsyncd{to}, run {run}"))?;
        self.reconcile()?;
        self.full_scan(run, destination)
            .with_context(|| format!("full-scan rsync{to}, run {run}"))?;
        self.reconcile()
    }

    /// Makes the replica equal again (untimed) and checks it is.
    fn reconcile(&mut self) -> anyhow::Result<()> {
        tools::reconcile(&self.src, &self.dst)?;
        let diff = tools::differences(&self.src, &self.dst)?;
        if !diff.is_empty() {
            bail!(
                "replica still differs after a full rsync: {:?}",
                &diff[..diff.len().min(5)]
            );
        }
        Ok(())
    }

    /// A cold-cache start: the tree's size (files, directories), then
    /// (SUnreclaim, SReclaimable) after dropping the caches.
    fn cold_start(&self) -> anyhow::Result<((u64, u64), (u64, u64))> {
        sys::check_interrupted()?;
        let size = super::tree::count(&self.src);
        sys::drop_caches()?;
        Ok((size, sys::slab_kib()))
    }

    #[allow(clippy::too_many_arguments)]
    fn startup(
        tool: &str,
        run: u32,
        size: (u64, u64),
        proc: &Proc,
        before: (u64, u64),
        tracking: Duration,
        ready: Option<Duration>,
        milestones: &[&str],
    ) -> Startup {
        let after = sys::slab_kib();
        let mut found = BTreeMap::new();
        for m in milestones {
            if let Some(at) = proc.line_time(m) {
                found.insert(m.to_string(), secs(at));
            }
        }
        let startup = Startup {
            tool: tool.into(),
            run,
            tree_files: size.0,
            tree_dirs: size.1,
            tracking_s: secs(tracking),
            ready_s: ready.map(secs),
            milestones: found,
            slab_unreclaim_kib: after.0 as i64 - before.0 as i64,
            slab_reclaim_kib: after.1 as i64 - before.1 as i64,
            rss_kib: proc.rss().rss,
            rss_anon_kib: proc.rss().anon,
            peak_rss_kib: 0,
        };
        eprintln!(
            "bench: {tool}: tracking after {:.3} s, ready after {}, SUnreclaim {:+} KiB, RSS {} KiB",
            startup.tracking_s,
            startup.ready_s.map_or("-".into(), |r| format!("{r:.2} s")),
            startup.slab_unreclaim_kib,
            startup.rss_kib
        );
        startup
    }

    fn fsjournal(
        &mut self,
        backend: &str,
        run: u32,
        destination: Destination,
    ) -> anyhow::Result<()> {
        let tool = label(&format!("fsjournal-{backend}"), destination);
        eprintln!("bench: run {run}: {tool}");
        let (size, before) = self.cold_start()?;
        let name = tool.replace('@', "-");
        let target = self.target(destination);
        let mut agent = Agent::start(
            &self.bin,
            backend,
            name.trim_start_matches("fsjournal-"),
            &self.src,
            &target,
            &self.work,
            self.plan.batch_delay_ms,
        )?;
        let long = Duration::from_secs(1800);
        let tracking = agent.proc.wait_line("capture armed", long)?;
        let ready = agent.proc.wait_line("full sync done", long)?;
        let milestones = [
            "eBPF capture attached",
            "eBPF capture ready",
            "fanotify filesystem mark placed",
            "root armed",
        ];
        let mut startup = Self::startup(
            &tool,
            run,
            size,
            &agent.proc,
            before,
            tracking,
            Some(ready),
            &milestones,
        );
        let status = agent.status()?;
        if status["backend"].as_str() != Some(backend) {
            bail!(
                "fsjournal status says backend {} (wanted {backend}): {}",
                status["backend"],
                status["capture_detail"]
            );
        }
        let local = destination == Destination::Local;
        if local && self.plan.has(Section::Latency) {
            self.latency(&tool, run)?;
        }
        agent.wait_pending_zero(long)?;
        self.change_sets(&tool, run, destination)?;
        agent.wait_pending_zero(long)?;
        if self.plan.has(Section::Rename) {
            self.rename_job(&tool, run, destination)?;
        }
        if self.plan.has(Section::Backlog) {
            self.backlog(&tool, run, destination, &mut agent)?;
        }
        if local {
            self.capture_and_overhead(&tool, run, backend, &agent)?;
            startup.peak_rss_kib = agent.proc.rss().peak;
            self.results.startup.push(startup);
        }
        // A fresh journal's full sync is announced with warnings: expected here.
        let expected = ["no capture watermark", "no cursor in the journal"];
        for line in agent.proc.lines_with(&[" WARN ", " ERROR "]) {
            if !expected.iter().any(|e| line.contains(e)) {
                self.note(format!("{tool} run {run}: {line}"));
            }
        }
        Ok(())
    }

    /// Every change set of the plan, when the sync section runs.
    fn change_sets(
        &mut self,
        tool: &str,
        run: u32,
        destination: Destination,
    ) -> anyhow::Result<()> {
        if self.plan.has(Section::Sync) {
            for k in self.plan.ks.clone() {
                self.change_sync(tool, run, k, destination)?;
            }
        }
        Ok(())
    }

    /// The bursts, the drain and the writer overhead of one fsjournal session.
    fn capture_and_overhead(
        &mut self,
        tool: &str,
        run: u32,
        backend: &str,
        agent: &Agent,
    ) -> anyhow::Result<()> {
        if self.plan.has(Section::Capture) {
            for writers in self.plan.burst_writers.clone() {
                self.burst(tool, run, agent, writers)?;
            }
            self.drain(tool, run, agent)?;
        }
        if self.plan.has(Section::Overhead) {
            self.overhead(tool, run, Some(agent))?;
            if backend == "ebpf" {
                self.overhead_paused(tool, run, agent)?;
            }
        }
        Ok(())
    }

    fn inotifywait(&mut self, run: u32) -> anyhow::Result<()> {
        eprintln!("bench: run {run}: inotifywait -r -m");
        let (size, before) = self.cold_start()?;
        let mut proc = tools::inotifywait(&self.src, &self.work)?;
        let tracking = proc.wait_line("Watches established.", Duration::from_secs(1800))?;
        let mut startup =
            Self::startup("inotifywait", run, size, &proc, before, tracking, None, &[]);
        self.overhead("inotifywait", run, None)?;
        startup.peak_rss_kib = proc.rss().peak;
        self.results.startup.push(startup);
        Ok(())
    }

    fn lsyncd(&mut self, run: u32, destination: Destination) -> anyhow::Result<()> {
        let tool = label("lsyncd", destination);
        eprintln!("bench: run {run}: {tool}");
        let (size, before) = self.cold_start()?;
        let delay_s = self.plan.batch_delay_ms as f64 / 1000.0;
        let target = self.target(destination);
        let mut proc = tools::lsyncd(&self.src, &target, &self.work, delay_s)?;
        let long = Duration::from_secs(1800);
        let tracking = proc.wait_line("recursive startup rsync", long)?;
        let ready = proc.wait_line("finished.", long)?;
        let mut startup =
            Self::startup(&tool, run, size, &proc, before, tracking, Some(ready), &[]);
        let local = destination == Destination::Local;
        if local && self.plan.has(Section::Latency) {
            self.latency(&tool, run)?;
        }
        self.change_sets(&tool, run, destination)?;
        if self.plan.has(Section::Rename) {
            self.rename_job(&tool, run, destination)?;
        }
        if local {
            startup.peak_rss_kib = proc.rss().peak;
            self.results.startup.push(startup);
        }
        for line in proc.lines_with(&["Error", "error"]) {
            self.note(format!("{tool} run {run}: {line}"));
        }
        Ok(())
    }

    /// The anchor: the same change sets, each followed by one full rsync.
    fn full_scan(&mut self, run: u32, destination: Destination) -> anyhow::Result<()> {
        let tool = label("rsync", destination);
        eprintln!("bench: run {run}: full-scan {tool}");
        let target = self.target(destination);
        for k in self.plan.ks.clone() {
            if !self.plan.has(Section::Sync) {
                break;
            }
            let start = Instant::now();
            let (_, changed) = self.tree.change_set(k)?;
            let write_s = secs(start.elapsed());
            let traffic = self.traffic(destination);
            let seconds = tools::full_rsync_to(&self.src, &target)?;
            let traffic = self.traffic_since(traffic);
            eprintln!("bench: {tool} K={k}: {seconds:.2} s{}", bytes_note(traffic));
            self.results.sync.push(SyncTime {
                tool: tool.clone(),
                run,
                k,
                changed,
                write_s,
                seconds,
                wire_bytes: traffic.map(|t| t.wire),
                data_bytes: traffic.map(|t| t.data),
                ..Default::default()
            });
        }
        if self.plan.has(Section::Rename) {
            self.rename_job(&tool, run, destination)?;
        }
        Ok(())
    }

    /// One change set of `k` files, then the wait for the replica.
    fn change_sync(
        &mut self,
        tool: &str,
        run: u32,
        k: u64,
        destination: Destination,
    ) -> anyhow::Result<()> {
        sys::check_interrupted()?;
        let traffic = self.traffic(destination);
        let start = Instant::now();
        let (touched, changed) = self.tree.change_set(k)?;
        let write_s = secs(start.elapsed());
        let since = Instant::now();
        let timeout = Duration::from_secs(300) + Duration::from_millis(5 * k);
        let done = tools::wait_replica(&self.src, &self.dst, &touched, since, timeout)?;
        let seconds = done.seconds;
        let traffic = self.traffic_since(traffic);
        eprintln!("bench: {tool} K={k} ({changed} files): replica equal {seconds:.2} s after the change set (written in {write_s:.2} s){}", bytes_note(traffic));
        self.note_unconverged(tool, run, &format!("K={k}"), &done);
        if !done.mtime_ns_differs.is_empty() {
            self.note(format!(
                "{tool} run {run} K={k}: {} replicated files have the right size and second but another sub-second mtime (invisible to rsync's quick check), e.g. {:?}",
                done.mtime_ns_differs.len(),
                &done.mtime_ns_differs[..done.mtime_ns_differs.len().min(3)]
            ));
        }
        if !done.residual.is_empty() || !done.mtime_ns_differs.is_empty() {
            self.reconcile()?;
        }
        self.results.sync.push(SyncTime {
            tool: tool.into(),
            run,
            k,
            changed,
            write_s,
            seconds,
            mtime_ns_differs: done.mtime_ns_differs.len() as u64,
            residual: done.residual,
            wire_bytes: traffic.map(|t| t.wire),
            data_bytes: traffic.map(|t| t.data),
        });
        Ok(())
    }

    /// Single small new files at a steady rate; per file, the time until
    /// the replica has it (polled every 2 ms).
    fn latency(&mut self, tool: &str, run: u32) -> anyhow::Result<()> {
        let mut samples = Vec::new();
        for _ in 0..self.plan.latency_samples {
            self.probes += 1;
            let rel = self.tree.probe_path(self.probes);
            let body = format!("probe {}\n", self.probes);
            let start = Instant::now();
            std::fs::write(self.src.join(&rel), &body)
                .with_context(|| format!("cannot write {}", self.src.join(&rel).display()))?;
            let replica = self.dst.join(&rel);
            loop {
                sys::check_interrupted()?;
                if std::fs::metadata(&replica).is_ok_and(|m| m.len() == body.len() as u64) {
                    break;
                }
                if start.elapsed() > Duration::from_secs(60) {
                    bail!(
                        "{} did not reach the replica within 60 s",
                        replica.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            samples.push(start.elapsed().as_secs_f64() * 1000.0);
            let interval = Duration::from_millis(self.plan.latency_interval_ms);
            std::thread::sleep(interval.saturating_sub(start.elapsed()));
        }
        let p50 = super::results::percentile(&samples, 50.0).unwrap_or(0.0);
        eprintln!(
            "bench: {tool}: latency p50 {p50:.0} ms over {} samples",
            samples.len()
        );
        self.results.latency.push(Latency {
            tool: tool.into(),
            run,
            samples_ms: samples,
        });
        Ok(())
    }

    /// A burst of creates of one-byte files from `writers` threads of this
    /// process, each in a directory of its own; journal growth polled
    /// through `fsjournal status --json`.
    fn burst(&mut self, tool: &str, run: u32, agent: &Agent, writers: u32) -> anyhow::Result<()> {
        let n = self.plan.burst_files;
        let counters = |s: &serde_json::Value| {
            let k = |name: &str| s["kernel_events"][name].as_u64().unwrap_or(0);
            let f = |name: &str| s[name].as_u64().unwrap_or(0);
            [
                f("last_seq"),
                f("events"),
                f("journaled"),
                f("rescans"),
                k("dropped"),
                k("spilled"),
            ]
        };
        std::thread::sleep(Duration::from_millis(1200)); // agent counters are saved each second
        let before = counters(&agent.status()?);
        let dir = self.src.join(format!("burst-{tool}-{run}-{writers}w"));
        let start = Instant::now();
        create_in_parallel(&dir, n, writers)?;
        let writer = start.elapsed();
        let (mut seq, mut last_growth) = (before[0], start.elapsed());
        loop {
            sys::check_interrupted()?;
            let now_seq = agent.status()?["last_seq"].as_u64().unwrap_or(0);
            if now_seq != seq {
                seq = now_seq;
                last_growth = start.elapsed();
            } else if start.elapsed() > last_growth + Duration::from_millis(1500) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let pending = agent.wait_pending_zero(Duration::from_secs(1800))?;
        let replicated = (start.elapsed() - writer).max(pending);
        std::thread::sleep(Duration::from_millis(1200));
        let after = counters(&agent.status()?);
        let copied = sys::file_count(&self.dst.join(dir.file_name().expect("named")));
        if copied != n {
            self.note(format!(
                "{tool} run {run}: burst of {n} creates by {writers} writer(s): the replica has {copied}"
            ));
        }
        let t = Throughput {
            tool: tool.into(),
            run,
            files: n,
            writers,
            writer_s: secs(writer),
            journal_s: secs(last_growth),
            records: after[0] - before[0],
            events: after[1] - before[1],
            journaled: after[2] - before[2],
            rescans: after[3] - before[3],
            dropped: after[4] - before[4],
            spilled: after[5] - before[5],
            replicated_s: secs(replicated),
            journal_bytes: sys::dir_bytes(&agent.journal),
            journal_seq: after[0],
            rss_kib: agent.proc.rss().rss,
            rss_anon_kib: agent.proc.rss().anon,
        };
        eprintln!(
            "bench: {tool}: burst of {n} by {writers} writer(s): writers {:.2} s, {} records in {:.2} s ({:.0}/s), dropped {}, rescans {}, replicated {:.2} s after the writer",
            t.writer_s, t.records, t.journal_s, t.records as f64 / t.journal_s, t.dropped, t.rescans, t.replicated_s
        );
        self.results.throughput.push(t);
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
        agent.wait_pending_zero(Duration::from_secs(1800))?;
        Ok(())
    }

    /// The writer-overhead workload, timed, while `tool` runs.
    fn overhead(&mut self, tool: &str, run: u32, agent: Option<&Agent>) -> anyhow::Result<()> {
        let n = self.plan.overhead_files;
        let dir = self
            .src
            .join(format!("overhead-{}-{run}", tool.replace([',', ' '], "")));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let seconds = create_write_unlink(&dir, n)?;
        std::fs::remove_dir(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        eprintln!("bench: {tool}: writer overhead workload ({n} files): {seconds:.2} s");
        self.results.overhead.push(Overhead {
            tool: tool.into(),
            run,
            files: n,
            seconds,
        });
        if let Some(agent) = agent {
            agent.wait_pending_zero(Duration::from_secs(600))?;
        }
        Ok(())
    }

    /// The writer-overhead workload while the eBPF agent is stopped
    /// (SIGSTOP): what the kernel-side programs alone cost the writer (they
    /// coalesce while nothing reads); recorded as `<tool>, agent paused`.
    fn overhead_paused(&mut self, tool: &str, run: u32, agent: &Agent) -> anyhow::Result<()> {
        agent.proc.signal(libc::SIGSTOP)?;
        let measured = self.overhead(&format!("{tool}, agent paused"), run, None);
        agent.proc.signal(libc::SIGCONT)?;
        measured?;
        agent.wait_pending_zero(Duration::from_secs(600))?;
        Ok(())
    }

    /// Notes a wait for the replica that gave up (its differences left)
    /// or whose first full check still found something once the touched
    /// paths were equal.
    fn note_unconverged(&mut self, tool: &str, run: u32, what: &str, done: &tools::Converged) {
        let left = &done.residual;
        if !left.is_empty() {
            self.note(format!(
                "{tool} run {run} {what}: replica not equal after {:.0} s; {} differences, e.g. {:?}",
                done.seconds,
                left.len(),
                &left[..left.len().min(3)]
            ));
        }
        let lines = &done.beyond_touched;
        if !lines.is_empty() {
            self.note(format!(
                "{tool} run {run} {what}: the touched paths were equal before the rest of the replica; the first full check found {} difference(s), e.g. {:?}",
                lines.len(),
                &lines[..lines.len().min(3)]
            ));
        }
    }

    fn note(&mut self, note: String) {
        eprintln!("bench: note: {note}");
        if self.results.notes.len() < 200 && !self.results.notes.contains(&note) {
            self.results.notes.push(note);
        }
    }
}

/// ", N bytes over the wire (M of file data)" when the daemon counted.
fn bytes_note(traffic: Option<Traffic>) -> String {
    traffic.map_or(String::new(), |t| {
        format!(", {} bytes over the wire ({} of file data)", t.wire, t.data)
    })
}

/// Creates `n` one-byte files under `dir` from `writers` threads, writer
/// `w` in `dir/w<w>`.
fn create_in_parallel(dir: &Path, n: u64, writers: u32) -> anyhow::Result<()> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..writers)
            .map(|w| {
                scope.spawn(move || -> anyhow::Result<()> {
                    let own = dir.join(format!("w{w}"));
                    std::fs::create_dir_all(&own)
                        .with_context(|| format!("cannot create {}", own.display()))?;
                    for i in (w as u64..n).step_by(writers as usize) {
                        let path = own.join(format!("f{i}"));
                        std::fs::File::create(&path)
                            .and_then(|mut f| f.write_all(b"x"))
                            .with_context(|| format!("cannot write {}", path.display()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        threads
            .into_iter()
            .try_for_each(|t| t.join().expect("writer thread panicked"))
    })
}

/// Creates, writes 100 bytes to, closes and unlinks `n` files in `dir`;
/// the time it took (s).
fn create_write_unlink(dir: &Path, n: u64) -> anyhow::Result<f64> {
    let body = [b'o'; 100];
    let start = Instant::now();
    for i in 0..n {
        let path = dir.join(format!("f{i}"));
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&body))
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::remove_file(&path).with_context(|| format!("cannot unlink {}", path.display()))?;
    }
    Ok(start.elapsed().as_secs_f64())
}
