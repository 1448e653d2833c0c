//! `fsjournal resync` and `fsjournal push`: ask the running agent to act on
//! a target now (see `requests.rs`), and on a terminal (or with `--wait`)
//! wait with a spinner until it is done.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::JournalArgs;
use crate::requests::{self, Action, Reply, Request};

/// How often a waiting CLI looks for the reply and the agent (ms).
const POLL_MS: u64 = 200;

/// Arguments of `fsjournal resync`.
#[derive(Debug, Args)]
pub struct ResyncArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The sync to resync (default: every target of the journal).
    #[arg(long)]
    target: Option<String>,
    /// Only this subtree (relative to the source); without it, a full sync.
    #[arg(long)]
    path: Option<String>,
    /// Confirm a full sync that a safety interlock refused: the source's
    /// filesystem changed, its root is empty, or the sync would delete more
    /// than `max_delete_percent` of the target (`fsjournal status` says which).
    #[arg(long, conflicts_with = "path")]
    force: bool,
    /// Wait until the agent has pushed it (the default on a terminal).
    #[arg(long)]
    wait: bool,
}

/// Arguments of `fsjournal push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The sync to push (default: every target of the journal).
    #[arg(long)]
    target: Option<String>,
    /// Wait until the agent has pushed it (the default on a terminal).
    #[arg(long)]
    wait: bool,
}

/// Runs `fsjournal resync`.
pub fn resync(args: ResyncArgs) -> anyhow::Result<()> {
    let action = Action::Resync {
        path: args.path.clone(),
        force: args.force,
    };
    send(&args.journal, args.target, action, args.wait)
}

/// Runs `fsjournal push`.
pub fn push(args: PushArgs) -> anyhow::Result<()> {
    send(&args.journal, args.target, Action::PushNow, args.wait)
}

/// Queues `action` for `target` (or every known target) and says when it
/// will happen; with `wait` (or on a terminal) and a running agent, waits
/// for each target's reply. Errors: an unknown target, a journal that cannot
/// be read, a target that could not carry the request out.
fn send(
    journal_args: &JournalArgs,
    target: Option<String>,
    action: Action,
    wait: bool,
) -> anyhow::Result<()> {
    let journal = journal_args.open()?;
    let known: Vec<String> = journal
        .target_states()?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let targets = match target {
        Some(name) if known.contains(&name) => vec![name],
        Some(name) => anyhow::bail!(
            "no target named `{name}` in {} (known: {})",
            journal.path().display(),
            known.join(", ")
        ),
        None => known,
    };
    let pid = journal.agent_info()?.unwrap_or_default().pid;
    let running = super::status::is_running(pid);
    let wait = running && (wait || std::io::stdout().is_terminal());
    let mut queued: Vec<(String, PathBuf)> = Vec::new();
    for target in targets {
        let file = requests::submit(
            journal.path(),
            &Request {
                target: target.clone(),
                action: action.clone(),
                reply: wait,
            },
        )?;
        println!("{target}: {action:?} queued");
        queued.push((target, file));
    }
    if !wait {
        println!(
            "{}",
            if running {
                "the running agent takes it within a second"
            } else {
                "no agent is running: it is taken at the next start"
            }
        );
        return Ok(());
    }
    let mut failed = 0;
    for (target, file) in queued {
        let reply = await_reply(&requests::reply_path(&file), &target, pid)?;
        println!("{target}: {}", reply.message);
        failed += usize::from(!reply.ok);
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} target(s) did not carry the request out"
    );
    Ok(())
}

/// Waits with a spinner for the reply at `path` and takes it. Errors: the
/// agent (pid `pid`) stopped before replying (the request stays queued or
/// owed), or the reply cannot be read.
fn await_reply(path: &Path, target: &str, pid: u32) -> anyhow::Result<Reply> {
    let bar = indicatif::ProgressBar::new_spinner()
        .with_message(format!("{target}: waiting for the agent to push it"));
    bar.enable_steady_tick(Duration::from_millis(100));
    let reply = loop {
        if let Ok(bytes) = std::fs::read(path) {
            let _ = std::fs::remove_file(path);
            break serde_json::from_slice::<Reply>(&bytes)
                .map_err(|e| anyhow::anyhow!("unreadable reply {}: {e}", path.display()));
        }
        if !super::status::is_running(pid) {
            break Err(anyhow::anyhow!(
                "{target}: the agent stopped before it was done; the next start carries it out"
            ));
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    };
    bar.finish_and_clear();
    reply
}
