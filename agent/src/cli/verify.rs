//! `fsjournal verify`: compares each source with its target now (rsync
//! `--dry-run --itemize-changes`, optionally `--checksum`) and lists what
//! differs; `--fix` asks the agent to push those paths again. The
//! agent's rolling verification does the same a slice at a time.
//!
//! `--fix` never pushes by itself: a push outside the agent would bypass its
//! cursor, its held paths and its safety checks. With no agent running, the
//! requests are queued in the journal and carried out when the agent
//! starts; `verify` says so and exits non-zero, since the targets still
//! differ.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::display_path;
use crate::config::{Config, SyncConfig};
use crate::journal::Journal;
use crate::push::rsync::{self, Mode};
use crate::push::verify::itemized_paths;
use crate::requests::{self, Action, Request, RequestPath};

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
    /// Ask the agent to push every differing path again (with no agent
    /// running: queued for its next start, and the exit status is non-zero).
    #[arg(long)]
    fix: bool,
}

/// Runs `fsjournal verify`; fails (non-zero exit) when a target differs,
/// unless `--fix` handed the differences to a running agent.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let agent_running = args.fix && agent_runs(&config.journal.path);
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
        let paths = differences(sync, args.checksum)?;
        print_differences(sync, &paths);
        if args.fix && !paths.is_empty() {
            request_fix(&config.journal.path, sync, &paths, agent_running)?;
        }
        differing += paths.len();
    }
    anyhow::ensure!(
        differing == 0 || agent_running,
        "{differing} path(s) differ between sources and targets{}",
        if args.fix {
            " (queued for the agent's next start: `systemctl start fsjournal`)"
        } else {
            ""
        }
    );
    Ok(())
}

/// The root-relative paths (raw bytes) that differ between `sync`'s source
/// and its target now, compared by size and mtime or, with `checksum`, by
/// content; a spinner shows on a terminal meanwhile. Errors: rsync failed.
fn differences(sync: &SyncConfig, checksum: bool) -> anyhow::Result<Vec<Vec<u8>>> {
    let bar = indicatif::ProgressBar::new_spinner().with_message(format!(
        "comparing {} with {}",
        sync.source.display(),
        sync.target
    ));
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut cmd = rsync::command(sync, &sync.source, Mode::VerifyAll);
    if checksum {
        cmd = rsync::with_option(cmd, "--checksum");
    }
    let itemized = rsync::run(cmd, &[], &AtomicBool::new(false))
        .with_context(|| format!("comparing target {}", sync.name))?;
    bar.finish_and_clear();
    Ok(itemized_paths(&itemized))
}

/// Prints how many `paths` of `sync` differ and the first [`SHOWN_MAX`].
fn print_differences(sync: &SyncConfig, paths: &[Vec<u8>]) {
    println!("{}: {} differing path(s)", sync.name, paths.len());
    for path in paths.iter().take(SHOWN_MAX) {
        println!("  {}", display_path(path));
    }
    if paths.len() > SHOWN_MAX {
        println!("  … and {} more", paths.len() - SHOWN_MAX);
    }
}

/// Queues, in the journal at `journal`, a resync of each differing path of
/// `sync` (a full sync beyond [`FIX_PATHS_MAX`]) and says when it will be
/// carried out: within a second with `agent_running`, else at the next start.
fn request_fix(
    journal: &Path,
    sync: &SyncConfig,
    paths: &[Vec<u8>],
    agent_running: bool,
) -> anyhow::Result<()> {
    let actions: Vec<Action> = if paths.len() > FIX_PATHS_MAX {
        vec![Action::Resync {
            path: None,
            force: false,
        }]
    } else {
        paths
            .iter()
            .map(|p| Action::Resync {
                path: Some(RequestPath(p.clone())),
                force: false,
            })
            .collect()
    };
    for action in actions {
        requests::submit(
            journal,
            &Request {
                target: sync.name.clone(),
                action,
                reply: false,
            },
        )?;
    }
    if agent_running {
        println!(
            "{}: resync requested; the running agent pushes it within a second",
            sync.name
        );
    } else {
        println!(
            "{}: resync requested, but no agent is running: nothing was pushed now; \
             the request is queued in {} and pushed when the agent starts",
            sync.name,
            requests::dir(journal).display()
        );
    }
    Ok(())
}

/// Whether an agent runs on the journal at `journal` (none when the
/// journal cannot be read).
fn agent_runs(journal: &Path) -> bool {
    Journal::open_reader(journal)
        .and_then(|j| crate::presence::agent_of(&j))
        .is_ok_and(|pid| pid.is_some())
}
