//! `fsjournal resync` and `fsjournal push`: ask the running agent to act on
//! a target now (see `requests.rs`).

use clap::Args;

use super::JournalArgs;
use crate::requests::{self, Action, Request};

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
}

/// Arguments of `fsjournal push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The sync to push (default: every target of the journal).
    #[arg(long)]
    target: Option<String>,
}

/// Runs `fsjournal resync`.
pub fn resync(args: ResyncArgs) -> anyhow::Result<()> {
    let action = Action::Resync {
        path: args.path.clone(),
    };
    send(&args.journal, args.target, action)
}

/// Runs `fsjournal push`.
pub fn push(args: PushArgs) -> anyhow::Result<()> {
    send(&args.journal, args.target, Action::PushNow)
}

/// Queues `action` for `target` (or every known target) and says when it
/// will happen. Errors: an unknown target, a journal that cannot be read.
fn send(journal_args: &JournalArgs, target: Option<String>, action: Action) -> anyhow::Result<()> {
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
    for target in targets {
        requests::submit(
            journal.path(),
            &Request {
                target: target.clone(),
                action: action.clone(),
            },
        )?;
        println!("{target}: {action:?} queued");
    }
    let running = super::status::is_running(journal.agent_info()?.unwrap_or_default().pid);
    println!(
        "{}",
        if running {
            "the running agent takes it within a second"
        } else {
            "no agent is running: it is taken at the next start"
        }
    );
    Ok(())
}
