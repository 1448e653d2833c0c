//! The report: `benchmarks.md` (tables of medians over the runs, ratios to
//! each measurement's anchor, the issues' goals met or missed) and SVG
//! plots (sync time vs K on log scales, latency CDF), drawn with plotters.
//!
//! The prose is written once, by hand, in `template.md` (and `micro.md`
//! for the micro-benchmarks); this code only computes what fills its
//! placeholders: figures of the run ([`figures`]), tables ([`tables`]),
//! goals with their verdicts ([`goals`]) and plots ([`plots`]). A section
//! whose data is absent disappears with its prose (see [`template`]).

mod format;
mod goals;
mod micro;
mod plots;
mod tables;
mod template;

use std::path::Path;

use anyhow::Context;

use super::measure::Destination;
use super::micro::Micro;
use super::results::{Machine, Results, Setup};
use plots::Drawn;
use template::Values;

pub use micro::sections as micro_sections;

/// The report's hand-written prose, with placeholders.
const TEMPLATE: &str = include_str!("template.md");
/// The hand-measured figures that came before the harness, kept as an appendix.
const FIRST_FIGURES: &str = include_str!("first-figures.md");
/// The agent's memory, measured by hand (docs/bench/agent-memory.sh, heaptrack), an appendix.
const MEMORY_FIGURES: &str = include_str!("memory-figures.md");

/// Scales whose run is published in a document of its own,
/// `docs/benchmarks-<scale>.md` with `docs/bench/<scale>/`, beside the
/// main (100k) report, whose goals it completes.
pub const LARGER_SCALES: [&str; 2] = ["1m", "5m"];

/// What a report shows besides its own run.
#[derive(Default)]
pub struct Extras<'a> {
    /// The results of `--micro`, if any (main report only).
    pub micro: Option<&'a Micro>,
    /// The run on the largest tree published (1m, 5m): the goals set on a
    /// 1M-file tree are judged on it, and the report links it.
    pub larger: Option<&'a Results>,
}

/// Writes `dir/benchmarks.md` and its plots; `link` prefixes the plots'
/// file names in the markdown (relative to where the markdown ends up).
/// A run at one of [`LARGER_SCALES`] gets no micro-benchmarks and no
/// appendices: those live in the main report.
///
/// Errors: a plot or the markdown cannot be written, or `template.md` and
/// this code disagree on a placeholder.
pub fn write(r: &Results, extras: &Extras, dir: &Path, link: &str) -> anyhow::Result<()> {
    let drawn = plots::plots(r, dir)?;
    let md = markdown(r, extras, &drawn, link)?;
    let path = dir.join("benchmarks.md");
    std::fs::write(&path, md).with_context(|| format!("cannot write {}", path.display()))
}

/// `template.md` filled with the run's figures, tables, goals and the
/// links to the plots that were `drawn`.
fn markdown(r: &Results, extras: &Extras, drawn: &Drawn, link: &str) -> anyhow::Result<String> {
    let main = !LARGER_SCALES.contains(&r.setup.scale.as_str());
    let micro = if main {
        micro::sections(extras.micro)?
    } else {
        String::new()
    };
    let plot = |drawn: bool, name: &str| {
        if drawn {
            format!("{link}{name}")
        } else {
            String::new()
        }
    };
    let mut values = figures(r);
    larger(&mut values, extras.larger);
    tables(&mut values, r, extras.larger);
    values
        .text("sweep-plot", plot(drawn.sweep, "startup-vs-size.svg"))
        .text("sync-plot", plot(drawn.sync, "sync-vs-k.svg"))
        .text("latency-plot", plot(drawn.cdf, "latency-cdf.svg"))
        .text("micro", micro)
        .flag("main", main)
        .text("first-figures", FIRST_FIGURES)
        .text("memory-figures", MEMORY_FIGURES);
    template::render("template.md", TEMPLATE, &values)
}

/// The generated tables and goals, by placeholder.
fn tables(values: &mut Values, r: &Results, larger: Option<&Results>) {
    values
        .text("startup-table", tables::startup(r))
        .text("sweep-table", tables::sweep(r))
        .text("sync-table:local", tables::sync(r, Destination::Local))
        .text("sync-table:daemon", tables::sync(r, Destination::Daemon))
        .text("rename-table", tables::renames(r))
        .text("backlog-table", tables::backlog(r))
        .text("latency-table", tables::latency(r))
        .text("throughput-table", tables::throughput(r))
        .text("drain-table", tables::drain(r))
        .text("overhead-table", tables::overhead(r))
        .text("goals:issue-5", goals::table(&goals::issue_5(r, larger)))
        .text("goals:issue-16", goals::table(&goals::issue_16(r, larger)))
        .text("notes", tables::notes(r));
}

/// The link to the run on a larger tree, when there is one.
fn larger(values: &mut Values, larger: Option<&Results>) {
    let (scale, files, runs) = larger.map_or_else(Default::default, |l| {
        let s = &l.setup;
        (s.scale.clone(), s.files.to_string(), s.runs.to_string())
    });
    values
        .text("larger_scale", scale)
        .text("larger_files", files)
        .text("larger_runs", runs);
}

/// The run's single figures: machine, set-up, workload sizes.
fn figures(r: &Results) -> Values {
    let mut v = Values::default();
    machine(&mut v, &r.machine);
    setup(&mut v, &r.setup);
    v.text("duration_s", format!("{:.0}", r.duration_s));
    v
}

/// Where the run ran: machine and tool versions.
fn machine(v: &mut Values, m: &Machine) {
    let rsync = m.rsync.split_whitespace().collect::<Vec<_>>().join(" ");
    v.text("nproc", m.nproc.to_string())
        .text(
            "mem_gib",
            format!("{:.0}", m.mem_total_kib as f64 / 1048576.0),
        )
        .text("os", &m.os)
        .text("kernel", &m.kernel)
        .text("fsjournal", &m.fsjournal)
        .text("commit", &m.commit)
        .text("rsync", rsync)
        .text("lsyncd", m.lsyncd.trim_start_matches("Version: "))
        .text("inotifywait", &m.inotifywait);
}

/// What the run measured on: tree, runs, batching, workload sizes.
fn setup(v: &mut Values, s: &Setup) {
    let json = if LARGER_SCALES.contains(&s.scale.as_str()) {
        format!("{}/results.json", s.scale)
    } else {
        "results.json".into()
    };
    let quick = s.scale.starts_with("quick");
    v.text("results_json", json)
        .text("runs", s.runs.to_string())
        .text("scale", &s.scale)
        .text("scale_arg", if quick { "100k --quick" } else { &s.scale })
        .text("files", s.files.to_string())
        .text("dirs", s.dirs.to_string())
        .text("mib", format!("{:.0}", s.bytes as f64 / 1048576.0))
        .text("seed", s.seed.to_string())
        .text("generate_s", format!("{:.0}", s.generate_s))
        .text("batch_delay_ms", s.batch_delay_ms.to_string())
        .text(
            "batch_delay_s",
            (s.batch_delay_ms as f64 / 1000.0).to_string(),
        )
        .text("first_copy_s", format!("{:.1}", s.first_copy_s))
        .text("burst_files", s.burst_files.to_string())
        .text("overhead_files", s.overhead_files.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::Overhead;

    #[test]
    fn a_run_without_data_keeps_only_the_sections_that_always_show() {
        let md = markdown(
            &Results::default(),
            &Extras::default(),
            &Drawn::default(),
            "",
        )
        .unwrap();
        assert!(md.starts_with("# Benchmarks\n"));
        for gone in [
            "### Start-up against",
            "### Over an rsync daemon",
            "### A renamed job",
            "### A backlog",
            "### Draining",
            "![",
        ] {
            assert!(!md.contains(gone), "{gone} shown without data");
        }
        assert!(md.contains("## 5. Writer overhead"));
        assert!(md.contains("Not run: `cargo xtask bench --micro --publish`."));
        assert!(md.contains("did not converge:\n\n- none\n\nNot measured yet"));
        assert!(md.contains("## Appendix: agent memory"));
    }

    #[test]
    fn a_larger_run_has_no_micro_benchmarks_nor_appendices_and_links_its_plots() {
        let mut r = Results::default();
        r.setup.scale = "1m".into();
        let drawn = Drawn {
            sync: true,
            ..Drawn::default()
        };
        let md = markdown(&r, &Extras::default(), &drawn, "bench/1m/").unwrap();
        assert!(md.contains("from `docs/bench/1m/results.json`"));
        assert!(md.contains("\n![sync time vs K](bench/1m/sync-vs-k.svg)\n"));
        assert!(!md.contains("Micro-benchmarks") && !md.contains("Appendix"));
    }

    #[test]
    fn the_writer_goal_is_judged_on_the_overhead_rows() {
        let mut r = Results::default();
        for (tool, seconds) in [("none", 10.0), ("fsjournal-ebpf", 10.4)] {
            let tool = tool.to_string();
            r.overhead.push(Overhead {
                tool,
                seconds,
                ..Overhead::default()
            });
        }
        let md = markdown(&r, &Extras::default(), &Drawn::default(), "").unwrap();
        assert!(md.contains("| writer slowdown ≤ 5 % with eBPF capture | +4.0 % | **met** |"));
    }
}
