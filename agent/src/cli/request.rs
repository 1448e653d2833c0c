//! `fsjournal resync` and `fsjournal push`: ask the running agent to act on
//! a target now (see `requests.rs`), and on a terminal (or with `--wait`)
//! wait with a spinner until it is done.

use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::JournalArgs;
use crate::journal::Journal;
use crate::presence;
use crate::requests::{self, Action, Reply, Request, RequestPath};

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
    /// Only this subtree: a path relative to the source (or absolute inside
    /// it) that exists there, without `..`; without it, a full sync.
    #[arg(long)]
    path: Option<PathBuf>,
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
        path: args
            .path
            .as_ref()
            .map(|p| RequestPath(p.as_os_str().as_bytes().to_vec())),
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
/// be read, a resync `--path` that names nothing inside a target's source
/// (see [`requests::subtree_under`]; nothing is queued then), a target that
/// could not carry the request out.
fn send(
    journal_args: &JournalArgs,
    target: Option<String>,
    action: Action,
    wait: bool,
) -> anyhow::Result<()> {
    let mut journal = journal_args.open()?;
    // Every request is checked before any is queued.
    let requests = per_target(&journal, target.as_deref(), &action)?;
    let pid = journal.agent_info()?.unwrap_or_default().pid;
    let running = presence::running_agent(journal.path(), pid).is_some();
    let wait = running && (wait || std::io::stdout().is_terminal());
    let mut queued = Vec::new();
    for TargetAction { target, action } in requests {
        let file = requests::submit(
            journal.path(),
            &Request {
                target: target.clone(),
                action: action.clone(),
                reply: wait,
            },
        )?;
        println!("{target}: {action:?} queued");
        queued.push(Queued { target, file });
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
    for Queued { target, file } in queued {
        let reply = await_reply(&mut journal, &file, &target, pid)?;
        println!("{target}: {}", reply.message);
        failed += usize::from(!reply.ok);
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} target(s) did not carry the request out"
    );
    Ok(())
}

/// One target's request, checked and ready to queue.
struct TargetAction {
    /// The target's (its sync's) name.
    target: String,
    /// What it is asked to do; a resync `--path` made root-relative.
    action: Action,
}

/// A request queued for a target.
struct Queued {
    /// The target's (its sync's) name.
    target: String,
    /// The request's file (see [`requests::submit`]).
    file: PathBuf,
}

/// `action` for `target`, or for every target of `journal`, each resync
/// `--path` made relative to the target's source. Errors: an unknown
/// target, a journal that cannot be read, a path that names nothing inside
/// a target's source.
fn per_target(
    journal: &Journal,
    target: Option<&str>,
    action: &Action,
) -> anyhow::Result<Vec<TargetAction>> {
    let states = journal.target_states()?;
    if let Some(name) = target {
        let known: Vec<&str> = states.iter().map(|(name, _)| name.as_str()).collect();
        anyhow::ensure!(
            known.contains(&name),
            "no target named `{name}` in {} (known: {})",
            journal.path().display(),
            known.join(", ")
        );
    }
    let roots = journal.roots()?;
    let mut actions = Vec::new();
    for (name, state) in &states {
        if target.is_some_and(|t| t != name) {
            continue;
        }
        let action = match action {
            Action::Resync {
                path: Some(path),
                force,
            } => {
                let source = roots.get(state.root as usize).ok_or_else(|| {
                    anyhow::anyhow!("target {name}: its source is missing from the journal")
                })?;
                Action::Resync {
                    path: Some(RequestPath(requests::subtree_under(
                        source,
                        path.as_path(),
                        true,
                    )?)),
                    force: *force,
                }
            }
            other => other.clone(),
        };
        actions.push(TargetAction {
            target: name.clone(),
            action,
        });
    }
    Ok(actions)
}

/// Waits with a spinner for the reply to the `request` file and takes it,
/// across a SIGHUP re-exec of the agent (pid `pid`). Errors: the agent
/// stopped before replying (the request stays queued or owed), or restarted
/// after taking it ([`Restarts`]), or the reply cannot be read.
fn await_reply(
    journal: &mut Journal,
    request: &Path,
    target: &str,
    pid: u32,
) -> anyhow::Result<Reply> {
    let path = requests::reply_path(request);
    let mut agent = presence::Watch::new(journal.path(), pid);
    let mut restarts = Restarts::new(journal);
    let bar = indicatif::ProgressBar::new_spinner()
        .with_message(format!("{target}: waiting for the agent to push it"));
    bar.enable_steady_tick(Duration::from_millis(100));
    let reply = loop {
        if let Ok(bytes) = std::fs::read(&path) {
            let _ = std::fs::remove_file(&path);
            break serde_json::from_slice::<Reply>(&bytes)
                .map_err(|e| anyhow::anyhow!("unreadable reply {}: {e}", path.display()));
        }
        if agent.gone() {
            break Err(anyhow::anyhow!(
                "{target}: the agent stopped before it was done; the next start carries it out"
            ));
        }
        if restarts.lost(journal, request) {
            break Err(anyhow::anyhow!(
                "{target}: the agent restarted (reload) after taking the request, before it was done: ask again"
            ));
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    };
    bar.finish_and_clear();
    reply
}

/// Notices a request lost to a SIGHUP re-exec: taken (its file deleted) by
/// the agent that ran, which then restarted (the start time in its
/// `AgentInfo` changed) before answering; the request went with the old
/// process. A request the restarted agent takes is not lost: a start is
/// recorded before the agent takes requests (`daemon.rs`).
struct Restarts {
    /// Start time of the agent last seen (ms since the Unix epoch).
    started_ms: u64,
    /// Start time of the agent that took the request, once it was taken.
    taken_by: Option<u64>,
}

impl Restarts {
    fn new(journal: &Journal) -> Restarts {
        Restarts {
            started_ms: started_ms(journal),
            taken_by: None,
        }
    }

    /// Whether the `request` (its file) was lost; reads the journal again.
    fn lost(&mut self, journal: &mut Journal, request: &Path) -> bool {
        if journal.catch_up().is_ok() {
            self.started_ms = started_ms(journal);
        }
        match self.taken_by {
            Some(taker) => taker != self.started_ms,
            None => {
                if !request.exists() {
                    self.taken_by = Some(self.started_ms);
                }
                false
            }
        }
    }
}

/// The recorded agent's start time, 0 if none or unreadable.
fn started_ms(journal: &Journal) -> u64 {
    journal
        .agent_info()
        .ok()
        .flatten()
        .map_or(0, |a| a.started_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::AgentInfo;

    fn start(journal: &Journal, started_ms: u64) {
        let info = AgentInfo {
            started_ms,
            ..AgentInfo::default()
        };
        journal.save_agent_info(&info).unwrap();
    }

    #[test]
    fn a_request_is_lost_only_when_taken_before_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let agent = Journal::open(&dir.path().join("journal")).unwrap();
        start(&agent, 1);
        let mut reader = Journal::open_reader(agent.path()).unwrap();
        let request = dir.path().join("request.json");

        // Not taken yet when the agent restarts: the new one takes it.
        std::fs::write(&request, "{}").unwrap();
        let mut restarts = Restarts::new(&reader);
        start(&agent, 2);
        assert!(!restarts.lost(&mut reader, &request));
        std::fs::remove_file(&request).unwrap();
        assert!(
            !restarts.lost(&mut reader, &request),
            "taken by the new agent"
        );
        assert!(!restarts.lost(&mut reader, &request));

        // Taken, then the agent restarts before answering: lost.
        std::fs::write(&request, "{}").unwrap();
        let mut restarts = Restarts::new(&reader);
        std::fs::remove_file(&request).unwrap();
        assert!(
            !restarts.lost(&mut reader, &request),
            "taken, still working"
        );
        start(&agent, 3);
        assert!(restarts.lost(&mut reader, &request));
    }
}
