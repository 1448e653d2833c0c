//! The report's SVG plots, drawn with plotters: sync time vs K and start-up
//! vs tree size on log scales, the latency CDF.

use std::path::Path;

use plotters::prelude::*;

use super::super::results::Results;
use super::format::{latency_samples, sync_seconds};

/// Colour of a tool in the plots.
fn colour(tool: &str) -> RGBColor {
    match tool {
        "fsjournal-ebpf" => RGBColor(0x1f, 0x77, 0xb4),
        "fsjournal-fanotify" => RGBColor(0x2c, 0xa0, 0x2c),
        "lsyncd" => RGBColor(0xff, 0x7f, 0x0e),
        _ => RGBColor(0xd6, 0x27, 0x28),
    }
}

/// Which plots were drawn (each needs data).
#[derive(Default)]
pub struct Drawn {
    /// `sync-vs-k.svg`
    pub sync: bool,
    /// `latency-cdf.svg`
    pub cdf: bool,
    /// `startup-vs-size.svg`
    pub sweep: bool,
}

/// Draws the plots there is data for into `dir`.
pub fn plots(r: &Results, dir: &Path) -> anyhow::Result<Drawn> {
    let sync = sync_plot(r, &dir.join("sync-vs-k.svg"))
        .map_err(|e| anyhow::anyhow!("sync-vs-k.svg: {e}"))?;
    let cdf = cdf_plot(r, &dir.join("latency-cdf.svg"))
        .map_err(|e| anyhow::anyhow!("latency-cdf.svg: {e}"))?;
    let sweep = sweep_plot(r, &dir.join("startup-vs-size.svg"))
        .map_err(|e| anyhow::anyhow!("startup-vs-size.svg: {e}"))?;
    Ok(Drawn { sync, cdf, sweep })
}

/// Sync time vs K per tool, on log scales; false without data.
fn sync_plot(r: &Results, path: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let series: Vec<(&str, Vec<(f64, f64)>)> =
        ["fsjournal-ebpf", "fsjournal-fanotify", "lsyncd", "rsync"]
            .into_iter()
            .map(|tool| {
                let points = r
                    .setup
                    .ks
                    .iter()
                    .filter_map(|&k| sync_seconds(r, tool, k).map(|s| (k as f64, s)));
                (tool, points.collect())
            })
            .collect();
    log_log_plot(
        path,
        &format!("Change set → replica equal ({} files)", r.setup.files),
        "changed files K",
        series,
    )
}

/// Start-up vs tree size per tool, on log scales; false without data.
fn sweep_plot(r: &Results, path: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let series: Vec<(&str, Vec<(f64, f64)>)> =
        ["fsjournal-ebpf", "fsjournal-fanotify", "inotifywait"]
            .into_iter()
            .map(|tool| {
                let points = r
                    .sweep
                    .iter()
                    .filter(|p| p.tool == tool)
                    .map(|p| (p.files as f64, p.tracking_s))
                    .collect();
                (tool, points)
            })
            .collect();
    log_log_plot(
        path,
        "Start tracking vs tree size (cold cache)",
        "files in the tree",
        series,
    )
}

/// The series with points, each y at least 1 ms (a log scale has no 0).
fn drawable(series: Vec<(&str, Vec<(f64, f64)>)>) -> Vec<(&str, Vec<(f64, f64)>)> {
    series
        .into_iter()
        .filter(|(_, points)| !points.is_empty())
        .map(|(tool, points)| {
            (
                tool,
                points.into_iter().map(|(x, y)| (x, y.max(1e-3))).collect(),
            )
        })
        .collect()
}

/// (xmin, xmax, ymin, ymax) over every point, xmax at least 10; `None`
/// when there is no point.
fn bounds(series: &[(&str, Vec<(f64, f64)>)]) -> Option<(f64, f64, f64, f64)> {
    if series.is_empty() {
        return None;
    }
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, 10.0f64, f64::MAX, 0.0f64);
    for &(x, y) in all {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    Some((xmin, xmax, ymin, ymax))
}

/// Lines with dots on log-log axes, one per (tool, points) with points;
/// false when there is nothing to draw.
fn log_log_plot(
    path: &Path,
    caption: &str,
    x_desc: &str,
    series: Vec<(&str, Vec<(f64, f64)>)>,
) -> Result<bool, Box<dyn std::error::Error>> {
    let series = drawable(series);
    let Some((xmin, xmax, ymin, ymax)) = bounds(&series) else {
        return Ok(false);
    };
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (xmin / 2.0..xmax * 2.0).log_scale(),
            (ymin / 2.0..ymax * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("seconds")
        .draw()?;
    for (tool, points) in series {
        let c = colour(tool);
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
            .label(if tool == "rsync" {
                "full-scan rsync"
            } else {
                tool
            })
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(true)
}

/// Each plotted tool's latency samples (ms), sorted; tools without any left out.
fn sorted_samples(r: &Results) -> Vec<(&'static str, Vec<f64>)> {
    ["fsjournal-ebpf", "fsjournal-fanotify", "lsyncd"]
        .into_iter()
        .map(|tool| {
            let mut s = latency_samples(r, tool);
            s.sort_by(f64::total_cmp);
            (tool, s)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

/// The latency CDF of fsjournal and lsyncd; false when nothing was sampled.
fn cdf_plot(r: &Results, path: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let series = sorted_samples(r);
    if series.is_empty() {
        return Ok(false);
    }
    let xmax = series
        .iter()
        .filter_map(|(_, s)| s.last().copied())
        .fold(0.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Change → replica latency, batch delay {} ms",
                r.setup.batch_delay_ms
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("ms")
        .y_desc("fraction of writes")
        .draw()?;
    for (tool, s) in series {
        let c = colour(tool);
        let n = s.len() as f64;
        let points: Vec<(f64, f64)> = s
            .iter()
            .enumerate()
            .flat_map(|(i, &v)| [(v, i as f64 / n), (v, (i + 1) as f64 / n)])
            .collect();
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))?
            .label(tool)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(true)
}
