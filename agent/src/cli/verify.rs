//! `fsjournal verify`: compares each source with its target now (rsync
//! `--dry-run --itemize-changes`, optionally `--checksum`) and lists what
//! differs; `--fix` asks the running agent to push those paths again. The
//! agent's rolling verification does the same a slice at a time.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::display_path;
use crate::config::Config;
use crate::push::rsync::{self, Mode};
use crate::push::verify::itemized_paths;
use crate::requests::{self, Action, Request};

/// Paths `--fix` resyncs one by one; more differences ask for a full sync.
const FIX_PATHS_MAX: usize = 1_000;
/// Differing paths printed per target.
const SHOWN_MAX: usize = 50;

/// Arguments of `fsjournal verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The agent's configuration file (sources, targets, credentials).
    #[arg(long, short, default_value = "/etc/fsjournal/fsjournal.toml")]
    config: PathBuf,
    /// Only this sync (default: every one).
    #[arg(long)]
    target: Option<String>,
    /// Compare contents by checksum, not size and mtime (reads every file on both sides).
    #[arg(long)]
    checksum: bool,
    /// Ask the running agent to push every differing path again.
    #[arg(long)]
    fix: bool,
}

/// Runs `fsjournal verify`; fails (non-zero exit) when a target differs.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let syncs: Vec<_> = config
        .sync
        .iter()
        .filter(|s| args.target.as_ref().is_none_or(|t| *t == s.name))
        .collect();
    anyhow::ensure!(
        !syncs.is_empty(),
        "no sync named `{}` in {}",
        args.target.unwrap_or_default(),
        args.config.display()
    );
    let mut differing = 0;
    for sync in syncs {
        let bar = indicatif::ProgressBar::new_spinner().with_message(format!(
            "comparing {} with {}",
            sync.source.get_ref().display(),
            sync.target.get_ref()
        ));
        bar.enable_steady_tick(Duration::from_millis(100));
        let mut cmd = rsync::command(sync, sync.source.get_ref(), Mode::VerifyAll);
        if args.checksum {
            cmd = rsync::with_option(cmd, "--checksum");
        }
        let itemized = rsync::run(cmd, &[], &AtomicBool::new(false))
            .with_context(|| format!("comparing target {}", sync.name))?;
        bar.finish_and_clear();
        let paths = itemized_paths(&itemized);
        println!("{}: {} differing path(s)", sync.name, paths.len());
        for path in paths.iter().take(SHOWN_MAX) {
            println!("  {}", display_path(path));
        }
        if paths.len() > SHOWN_MAX {
            println!("  … and {} more", paths.len() - SHOWN_MAX);
        }
        if args.fix && !paths.is_empty() {
            let actions: Vec<Action> = if paths.len() > FIX_PATHS_MAX {
                vec![Action::Resync {
                    path: None,
                    force: false,
                }]
            } else {
                paths
                    .iter()
                    .map(|p| Action::Resync {
                        path: Some(String::from_utf8_lossy(p).into_owned()),
                        force: false,
                    })
                    .collect()
            };
            for action in actions {
                requests::submit(
                    &config.journal.path,
                    &Request {
                        target: sync.name.clone(),
                        action,
                        reply: false,
                    },
                )?;
            }
            println!(
                "{}: resync requested; the running agent pushes it within a second",
                sync.name
            );
        }
        differing += paths.len();
    }
    anyhow::ensure!(
        differing == 0 || args.fix,
        "{differing} path(s) differ between sources and targets"
    );
    Ok(())
}
