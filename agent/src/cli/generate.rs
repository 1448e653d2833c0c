//! `fsjournal generate man|completions` (hidden): the man pages and shell
//! completions a package ships, written from the real clap definitions so
//! they never drift from `--help`. `cargo xtask dist` runs it on the release
//! binary.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, Subcommand};
use clap_complete::Shell;

use super::Cli;

/// `fsjournal generate …`.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Man pages (roff, section 1): fsjournal.1 and one page per visible
    /// subcommand, fsjournal-status.1, fsjournal-config-check.1, … into DIR.
    Man {
        /// Output directory (created when missing).
        dir: PathBuf,
    },
    /// The completion script of SHELL into DIR (`fsjournal.bash`, `_fsjournal`, `fsjournal.fish`, …).
    Completions {
        /// The shell.
        shell: Shell,
        /// Output directory (created when missing).
        dir: PathBuf,
    },
}

/// Runs a `generate` subcommand and prints each file it wrote. Errors: the
/// directory cannot be created or written.
pub fn run(command: GenerateCommand) -> anyhow::Result<()> {
    let (dir, shell) = match command {
        GenerateCommand::Man { dir } => (dir, None),
        GenerateCommand::Completions { shell, dir } => (dir, Some(shell)),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = match shell {
        None => man_pages(&dir),
        Some(shell) => completions(shell, &dir).map(|file| vec![file]),
    }
    .with_context(|| format!("cannot write into {}", dir.display()))?;
    for file in written {
        println!("{}", file.display());
    }
    Ok(())
}

/// Writes the man pages (clap_mangen's `generate_to`: hidden subcommands
/// such as this one get none) and returns their paths, sorted.
fn man_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    clap_mangen::generate_to(Cli::command(), dir)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}

/// Writes the completion script of `shell` and returns its path.
fn completions(shell: Shell, dir: &Path) -> std::io::Result<PathBuf> {
    clap_complete::generate_to(shell, &mut Cli::command(), "fsjournal", dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for page in [
            "fsjournal.1",
            "fsjournal-run.1",
            "fsjournal-status.1",
            "fsjournal-config-check.1",
        ] {
            assert!(names.iter().any(|n| n == page), "{page} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
        let main = std::fs::read_to_string(dir.path().join("fsjournal.1")).unwrap();
        assert!(main.contains(".TH fsjournal 1"), "{main}");
        assert!(
            main.contains("fsjournal\\-status(1)"),
            "SEE ALSO lists the subcommands"
        );
    }

    #[test]
    fn completions_name_the_subcommands() {
        let dir = tempfile::tempdir().unwrap();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let file = completions(shell, dir.path()).unwrap();
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.contains("resync"), "{shell}: {}", file.display());
        }
    }

    /// The metric names in the queries of the dashboard the package ships
    /// (the `expr`, `query` and `definition` strings).
    fn dashboard_metrics() -> std::collections::BTreeSet<String> {
        fn walk(
            value: &serde_json::Value,
            key: &str,
            names: &mut std::collections::BTreeSet<String>,
        ) {
            match value {
                serde_json::Value::String(text)
                    if ["expr", "query", "definition"].contains(&key) =>
                {
                    for (at, _) in text.match_indices("fsjournal_") {
                        let name: String = text[at..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        names.insert(name);
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, key, names)),
                serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, k, names)),
                _ => {}
            }
        }
        let text = include_str!("../../../packaging/grafana-dashboard.json");
        let dashboard: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut names = std::collections::BTreeSet::new();
        walk(&dashboard, "", &mut names);
        names
    }

    /// The series names a scrape of an agent holds: each `# TYPE` line's
    /// family with the suffixes of its type (OpenMetrics: counters
    /// `_total`, histograms `_bucket`, `_sum`, `_count`).
    fn exported_series(scrape: &str) -> std::collections::BTreeSet<String> {
        let mut series = std::collections::BTreeSet::new();
        for line in scrape.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let (name, kind) = rest.split_once(' ').unwrap();
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            series.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        }
        series
    }

    #[test]
    fn grafana_dashboard_queries_only_metrics_the_agent_exports() {
        // An agent with one target that ran rsync once: every family
        // has a member (empty families are not rendered).
        let dir = tempfile::tempdir().unwrap();
        let journal = crate::journal::Journal::open(&dir.path().join("journal")).unwrap();
        let root = journal.register_root(dir.path()).unwrap();
        let state = crate::journal::TargetState {
            root,
            ..Default::default()
        };
        journal.save_target("standby", &state).unwrap();
        let stats = crate::capture::Stats::default();
        let runs = crate::push::runs::Runs::new(1);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let true_cmd = std::process::Command::new("true");
        let mode = crate::push::rsync::Mode::Entries;
        runs.run(&journal, "standby", mode, true_cmd, &[], &stop, None)
            .unwrap();
        let scrape = crate::metrics::render(&journal, &stats, &runs).unwrap();
        let exported = exported_series(&scrape);
        let used = dashboard_metrics();
        for family in [
            "fsjournal_target_lag_seconds",
            "fsjournal_target_pending_paths",
            "fsjournal_rsync_runs_total",
            "fsjournal_rsync_run_seconds_bucket",
            "fsjournal_events_captured_total",
            "fsjournal_kernel_events_total",
            "fsjournal_rescans_total",
        ] {
            assert!(used.contains(family), "the dashboard shows no {family}");
        }
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the dashboard queries {unknown:?}, which the agent does not export; it exports {exported:?}"
        );
    }
}
