//! Sections 6 and 7 of the report, the micro-benchmarks (`micro.md` around
//! two tables); also written alone as `micro.md` by `--micro`.

use super::super::micro::Micro;
use super::template::{render, Values};

/// The hand-written prose of the micro-benchmark sections.
const TEMPLATE: &str = include_str!("micro.md");

/// The micro-benchmark sections; say how to produce them when `micro` is
/// `None`.
///
/// Errors: `micro.md` and this code disagree on a placeholder.
pub fn sections(micro: Option<&Micro>) -> anyhow::Result<String> {
    let mut values = Values::default();
    values.flag("measured", micro.is_some());
    let m = micro.map_or_else(Default::default, |m| {
        (m.commit.clone(), benches(m), footprint(m))
    });
    values
        .text("commit", m.0)
        .text("bench-table", m.1)
        .text("footprint-table", m.2);
    render("micro.md", TEMPLATE, &values)
}

/// A duration in ns, in the unit that suits it.
fn time(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.1} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

/// A rate per second.
fn rate(per_s: f64) -> String {
    match per_s {
        r if r >= 1e6 => format!("{:.2} M/s", r / 1e6),
        r if r >= 1e3 => format!("{:.0} k/s", r / 1e3),
        r => format!("{r:.0} /s"),
    }
}

/// Criterion's benchmarks: time per iteration, interval, throughput.
fn benches(m: &Micro) -> String {
    let mut md = String::from("| benchmark | time per iteration | 95 % interval | elements per iteration | throughput |\n| --- | --- | --- | --- | --- |");
    for b in &m.benches {
        let throughput = if b.elements > 0 {
            rate(b.elements as f64 / (b.ns / 1e9))
        } else {
            "—".into()
        };
        md += &format!(
            "\n| `{}` | {} | {} – {} | {} | {throughput} |",
            b.id,
            time(b.ns),
            time(b.ns_low),
            time(b.ns_high),
            b.elements
        );
    }
    md
}

/// The journal's memory and size over each burst scenario.
fn footprint(m: &Micro) -> String {
    let mut md = String::from("| scenario | records | time | records/s | RSS before | peak RSS | RSS at end | journal after each tenth (MB) |\n| --- | --- | --- | --- | --- | --- | --- | --- |");
    for f in &m.footprint {
        let sizes: Vec<String> = f
            .journal_bytes
            .iter()
            .map(|(_, bytes)| format!("{:.0}", *bytes as f64 / 1e6))
            .collect();
        md += &format!(
            "\n| {} | {} | {:.1} s | {} | {:.1} MiB | **{:.1} MiB** | {:.1} MiB | {} |",
            f.scenario,
            f.records,
            f.seconds,
            rate(f.records as f64 / f.seconds),
            f.rss_before_kib as f64 / 1024.0,
            f.peak_rss_kib as f64 / 1024.0,
            f.rss_kib as f64 / 1024.0,
            sizes.join(", ")
        );
    }
    md
}
