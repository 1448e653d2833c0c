//! The issues' goals as data: each one a measured figure, its threshold and
//! how they compare; [`table`] writes them with the verdict. The goals set
//! on a 1M-file tree are judged on the larger run when it measured them.

use super::super::measure::Destination;
use super::super::results::{median, RenameTime, Results, SweepPoint};
use super::format::FSJOURNAL;
use super::format::{capture_live, fmt_s, label, latency_percentile, med, mib, sync_seconds};

/// How a measured figure must stand to its threshold.
#[derive(Clone, Copy)]
pub enum Comparison {
    /// measured ≤ threshold
    AtMost,
    /// measured ≥ threshold
    AtLeast,
}

impl Comparison {
    /// Whether `measured` stands to `threshold` as it must.
    fn holds(self, measured: f64, threshold: f64) -> bool {
        match self {
            Comparison::AtMost => measured <= threshold,
            Comparison::AtLeast => measured >= threshold,
        }
    }
}

/// How a measured figure is written in the table.
#[derive(Clone, Copy)]
pub enum Unit {
    /// Seconds, in ms below 0.1 s.
    Seconds,
    /// Milliseconds, whole.
    Ms,
    /// A ratio "N×" with this many decimals.
    Times(usize),
    /// A percentage with this many decimals.
    Percent(usize),
    /// A signed percentage, one decimal (a slowdown).
    SignedPercent,
    /// MiB, one decimal.
    Mib,
    /// Records per second, whole.
    RecordsPerS,
}

impl Unit {
    /// `v` written in this unit.
    fn show(self, v: f64) -> String {
        match self {
            Unit::Seconds => fmt_s(Some(v)),
            Unit::Ms => format!("{v:.0} ms"),
            Unit::Times(d) => format!("{v:.d$}×"),
            Unit::Percent(d) => format!("{v:.d$} %"),
            Unit::SignedPercent => format!("{v:+.1} %"),
            Unit::Mib => format!("{v:.1} MiB"),
            Unit::RecordsPerS => format!("{v:.0} records/s"),
        }
    }
}

/// One goal judged on one measurement.
pub struct Goal {
    /// The goal as its issue sets it, with the tool (and target) judged.
    pub aim: String,
    /// The figure judged, in `unit`.
    pub measured: f64,
    /// How `measured` must stand to `threshold`.
    pub comparison: Comparison,
    /// What `measured` must reach, in `unit`.
    pub threshold: f64,
    /// How `measured` is written.
    pub unit: Unit,
    /// The measured column before the figure (e.g. "peak ").
    pub before: String,
    /// The measured column after the figure: how and where it was
    /// measured, including the scale of the run it was judged on when that
    /// is not this report's (e.g. " (0.21 s vs 13.0 s) at 1m").
    pub after: String,
    /// Further figures that must hold too: (measured, comparison, threshold).
    pub also: Vec<(f64, Comparison, f64)>,
}

impl Goal {
    /// A goal with nothing around its figure and no further condition.
    fn new(aim: String, measured: f64, comparison: Comparison, threshold: f64, unit: Unit) -> Goal {
        let (before, after, also) = (String::new(), String::new(), Vec::new());
        Goal {
            aim,
            measured,
            comparison,
            threshold,
            unit,
            before,
            after,
            also,
        }
    }

    /// With `after` after its figure.
    fn after(mut self, after: String) -> Goal {
        self.after = after;
        self
    }

    /// With `before` before its figure.
    fn before(mut self, before: &str) -> Goal {
        self.before = before.to_string();
        self
    }

    /// Whether the goal is met: its figure and every further one hold.
    pub fn met(&self) -> bool {
        self.comparison.holds(self.measured, self.threshold)
            && self.also.iter().all(|&(m, c, t)| c.holds(m, t))
    }
}

/// The goals as a table with their verdicts.
pub fn table(goals: &[Goal]) -> String {
    let mut md = String::from("| goal | measured | |\n| --- | --- | --- |");
    for g in goals {
        let verdict = if g.met() { "**met**" } else { "**missed**" };
        let shown = g.unit.show(g.measured);
        md += &format!(
            "\n| {} | {}{shown}{} | {verdict} |",
            g.aim, g.before, g.after
        );
    }
    md
}

/// Issue 5's goals; `larger`: a run on a larger tree, where the goals set
/// on a 1M-file tree (50× faster than full-scan rsync, RSS) are judged
/// when it measured them.
pub fn issue_5(r: &Results, larger: Option<&Results>) -> Vec<Goal> {
    // The larger run when it measured what `has` asks for, else this one.
    let judged_on = |has: fn(&Results) -> bool| larger.filter(|l| has(l)).unwrap_or(r);
    let sync_run = judged_on(|l| l.sync.iter().any(|s| s.tool == "rsync" && s.k == 1000));
    let rss_run = judged_on(|l| !l.startup.is_empty());
    let mut goals: Vec<Goal> = FSJOURNAL.iter().filter_map(|t| start_goal(r, t)).collect();
    goals.extend(
        FSJOURNAL
            .iter()
            .filter_map(|t| fifty_times_goal(sync_run, t)),
    );
    goals.extend(FSJOURNAL.iter().filter_map(|t| latency_goal(r, t)));
    goals.extend(FSJOURNAL.iter().filter_map(|t| capture_goal(r, t)));
    goals.extend(overhead_goal(r));
    goals.extend(FSJOURNAL.iter().filter_map(|t| rss_goal(rss_run, t)));
    goals
}

/// Start tracking ≤ 0.1 s, flat in tree size: judged on the largest tree
/// of the sweep, else on this run's start-up (flatness not measured).
/// Tracking starts when the kernel captures: from then on no change is
/// missed (inotifywait's equivalent: every watch placed).
fn start_goal(r: &Results, tool: &str) -> Option<Goal> {
    let aim = format!("start tracking ≤ 0.1 s, flat in tree size ({tool})");
    let swept: Vec<_> = r.sweep.iter().filter(|p| p.tool == tool).collect();
    let small = swept.iter().min_by_key(|p| p.files);
    let large = swept.iter().max_by_key(|p| p.files);
    if let (Some(small), Some(large)) = (small, large) {
        if small.files < large.files {
            let live = |p: &SweepPoint| p.live_s.unwrap_or(p.tracking_s);
            let (ts, tl) = (fmt_s(Some(small.tracking_s)), fmt_s(Some(large.tracking_s)));
            let before = format!(
                "capture live {} at {} files, ",
                fmt_s(Some(live(small))),
                small.files
            );
            let after = format!(
                " at {} files (`capture armed`, pushes can start: {ts} and {tl})",
                large.files
            );
            let goal = Goal::new(aim, live(large), Comparison::AtMost, 0.1, Unit::Seconds);
            return Some(goal.before(&before).after(after));
        }
    }
    let live = med(&r.startup, tool, capture_live)?;
    let tracking = fmt_s(Some(med(&r.startup, tool, |s| s.tracking_s)?));
    let scale = &r.setup.scale;
    let after =
        format!(" at {scale}, pushes can start {tracking} (one tree size: flatness not measured)");
    let goal = Goal::new(aim, live, Comparison::AtMost, 0.1, Unit::Seconds);
    Some(goal.before("capture live ").after(after))
}

/// 1,000 changes replicated ≥ 50× faster than full-scan rsync, on `run`.
fn fifty_times_goal(run: &Results, tool: &str) -> Option<Goal> {
    let rsync = sync_seconds(run, "rsync", 1000)?;
    let own = sync_seconds(run, tool, 1000)?;
    let aim = format!(
        "1,000 changes replicated ≥ 50× faster than full-scan rsync, 1M-file tree ({tool})"
    );
    let after = format!(
        " ({} vs {}) at {}",
        fmt_s(Some(own)),
        fmt_s(Some(rsync)),
        run.setup.scale
    );
    Some(Goal::new(aim, rsync / own, Comparison::AtLeast, 50.0, Unit::Times(1)).after(after))
}

/// p99 change → replica ≤ batch delay + 250 ms.
fn latency_goal(r: &Results, tool: &str) -> Option<Goal> {
    let p99 = latency_percentile(r, tool, 99.0)?;
    let bound = r.setup.batch_delay_ms as f64 + 250.0;
    let aim = format!("p99 change→replica ≤ batch delay + 250 ms = {bound:.0} ms ({tool})");
    Some(Goal::new(aim, p99, Comparison::AtMost, bound, Unit::Ms))
}

/// ≥ 300k events/s journaled, nothing lost: a drained backlog measures
/// capture alone; a live burst is bounded by its writer.
fn capture_goal(r: &Results, tool: &str) -> Option<Goal> {
    let (tp, dr) = (&r.throughput, &r.drain);
    let (rate, how) = med(dr, tool, |x| x.records as f64 / x.drain_s)
        .map(|rate| (rate, "draining a queued backlog"))
        .or_else(|| {
            med(tp, tool, |x| x.records as f64 / x.journal_s)
                .map(|rate| (rate, "a live burst, bounded by its writers"))
        })?;
    let lost = med(tp, tool, |x| x.dropped as f64).unwrap_or(0.0)
        + med(dr, tool, |x| x.dropped as f64).unwrap_or(0.0);
    let aim = format!("≥ 300k events/s journaled on 2 cores, nothing lost ({tool})");
    let mut goal = Goal::new(aim, rate, Comparison::AtLeast, 300_000.0, Unit::RecordsPerS);
    goal.also.push((lost, Comparison::AtMost, 0.0));
    Some(goal.after(format!(" ({how}), {lost:.0} dropped")))
}

/// Writer slowdown ≤ 5 % with eBPF capture (and with the agent paused: the
/// programs alone, shown, not judged).
fn overhead_goal(r: &Results) -> Option<Goal> {
    let none = med(&r.overhead, "none", |o| o.seconds)?;
    let ebpf = med(&r.overhead, "fsjournal-ebpf", |o| o.seconds)?;
    let paused = med(&r.overhead, "fsjournal-ebpf, agent paused", |o| o.seconds);
    let after = paused.map_or(String::new(), |p| {
        let slow = (p / none - 1.0) * 100.0;
        format!(" ({slow:+.1} % with the agent paused: the programs alone)")
    });
    let aim = "writer slowdown ≤ 5 % with eBPF capture".to_string();
    let slow = (ebpf / none - 1.0) * 100.0;
    Some(Goal::new(aim, slow, Comparison::AtMost, 5.0, Unit::SignedPercent).after(after))
}

/// Agent RSS ≤ 64 MiB on a 1M-file tree: the peak at start-up on `run`.
fn rss_goal(run: &Results, tool: &str) -> Option<Goal> {
    let peak = med(&run.startup, tool, |s| s.peak_rss_kib as f64)? / 1024.0;
    let aim = format!("agent RSS ≤ 64 MiB on a 1M-file tree, flat ({tool})");
    let after = format!(
        " at {} (the start-up sweep gives RSS at each size)",
        run.setup.scale
    );
    Some(
        Goal::new(aim, peak, Comparison::AtMost, 64.0, Unit::Mib)
            .before("peak ")
            .after(after),
    )
}

/// Issue 16's goals on each target kind measured: a renamed job sends
/// ≤ 1 % of its bytes, K = 100,000 is at least as fast as full-scan rsync
/// (aim 2×), K = 1,000 on the 1M-file tree (`larger` at 1m) ≥ 100× faster.
pub fn issue_16(r: &Results, larger: Option<&Results>) -> Vec<Goal> {
    let at_1m = larger.filter(|l| l.setup.scale == "1m");
    let mut goals = Vec::new();
    for destination in [Destination::Local, Destination::Daemon] {
        for tool in FSJOURNAL {
            goals.extend(rename_goal(r, tool, destination));
            goals.extend(faster_goal(r, tool, destination, 100_000));
            goals.extend(at_1m.and_then(|l| faster_goal(l, tool, destination, 1000)));
        }
    }
    goals
}

/// The target kind, as the goals name it.
fn target(destination: Destination) -> &'static str {
    match destination {
        Destination::Local => "local target",
        Destination::Daemon => "rsync daemon",
    }
}

/// A renamed job: ≤ 1 % of its size crosses; locally what the replica's
/// disk wrote, over the daemon the file data sent.
fn rename_goal(r: &Results, tool: &str, destination: Destination) -> Option<Goal> {
    let name = label(tool, destination);
    let rows: Vec<&RenameTime> = r.renames.iter().filter(|x| x.tool == name).collect();
    let (data, what) = match destination {
        Destination::Local => (
            median(rows.iter().map(|x| x.written_kib as f64 * 1024.0)),
            "the replica's disk wrote",
        ),
        Destination::Daemon => (
            median(rows.iter().filter_map(|x| x.data_bytes.map(|b| b as f64))),
            "file data sent",
        ),
    };
    let (data, job) = (data?, median(rows.iter().map(|x| x.bytes as f64))?);
    let share = data / job.max(1.0) * 100.0;
    let aim = format!(
        "a renamed job: ≤ 1 % of its size crosses ({tool}, {})",
        target(destination)
    );
    let after = format!(" ({} of {})", mib(data / 1024.0), mib(job / 1024.0));
    let goal = Goal::new(aim, share, Comparison::AtMost, 1.0, Unit::Percent(2));
    Some(goal.before(&format!("{what} ")).after(after))
}

/// K = 100,000 at least as fast as full-scan rsync (on this run), or
/// K = 1,000 ≥ 100× faster (on the 1M-file run).
fn faster_goal(run: &Results, tool: &str, destination: Destination, k: u64) -> Option<Goal> {
    let rsync = sync_seconds(run, &label("rsync", destination), k)?;
    let own = sync_seconds(run, &label(tool, destination), k)?;
    let to = target(destination);
    let (aim, threshold, unit) = if k == 100_000 {
        let aim = format!("K = 100,000 at least as fast as full-scan rsync, aim 2× ({tool}, {to})");
        (aim, 1.0, Unit::Times(2))
    } else {
        let aim = format!(
            "K = 1,000 on the 1M-file tree ≥ 100× faster than full-scan rsync ({tool}, {to})"
        );
        (aim, 100.0, Unit::Times(0))
    };
    let after = format!(" ({} vs {})", fmt_s(Some(own)), fmt_s(Some(rsync)));
    Some(Goal::new(aim, rsync / own, Comparison::AtLeast, threshold, unit).after(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(measured: f64, comparison: Comparison) -> Goal {
        Goal::new("aim".into(), measured, comparison, 5.0, Unit::Ms)
    }

    #[test]
    fn a_goal_is_met_at_its_threshold_and_missed_past_it() {
        assert!(goal(5.0, Comparison::AtMost).met());
        assert!(!goal(5.1, Comparison::AtMost).met());
        assert!(goal(5.0, Comparison::AtLeast).met());
        assert!(!goal(4.9, Comparison::AtLeast).met());
    }

    #[test]
    fn a_goal_is_missed_when_a_further_figure_fails() {
        let mut g = goal(1.0, Comparison::AtMost);
        g.also.push((3.0, Comparison::AtMost, 0.0));
        assert!(!g.met());
        let md = table(&[g.before("p99 ").after(" here".into())]);
        assert_eq!(
            md,
            "| goal | measured | |\n| --- | --- | --- |\n| aim | p99 1 ms here | **missed** |"
        );
    }
}
