//! Operator requests to one target (`fsjournal resync`, `fsjournal push`;
//! see `requests.rs`), carried out by its pusher, and answered once what
//! they asked for reached the target, when the CLI waits for a reply.

use super::hold;
use super::reason::FullSyncReason;
use super::Pusher;
use crate::journal::{now_ms, HeldPath, HoldReason, Scope, Seq, TargetState};
use crate::requests::{subtree_under, Action, Ticket};

/// Requests carried out whose answer waits for a push.
#[derive(Default)]
pub(super) struct Awaiting(Vec<Awaited>);

struct Awaited {
    ticket: Ticket,
    /// Answered once the cursor reaches this (the journal's newest record
    /// when the request was taken).
    until_seq: Seq,
    /// A resynced subtree: answered once it is no longer held.
    path: Option<Vec<u8>>,
}

impl Pusher {
    /// Carries out the operator's requests; true when one asked to push
    /// what is pending without waiting for the batch delay. A resync of a
    /// path outside the source (`..`, absolute elsewhere, through a
    /// symbolic link) is refused and answered as failed.
    pub(super) fn handle_requests(
        &self,
        state: &mut TargetState,
        awaiting: &mut Awaiting,
    ) -> anyhow::Result<bool> {
        let tickets = std::mem::take(&mut *self.inbox.lock().expect("inbox lock"));
        let mut flush = false;
        for ticket in tickets {
            tracing::info!(target = self.name(), action = ?ticket.action, "operator request");
            let until_seq = self.journal.last_seq();
            match &ticket.action {
                Action::Resync { path: None, force } => {
                    self.resync_all(state, &ticket, *force)?;
                    continue;
                }
                Action::Resync {
                    path: Some(path), ..
                } => {
                    // The CLI checked it too; a request file may come from elsewhere.
                    let path = match subtree_under(&self.source, path.as_path(), false) {
                        Ok(path) => path,
                        Err(e) => {
                            let error = format!("{e:#}");
                            tracing::warn!(target = self.name(), %error, "resync request refused");
                            ticket.answer(false, error);
                            continue;
                        }
                    };
                    hold::hold(
                        state,
                        HeldPath {
                            path: path.clone(),
                            scope: Scope::Subtree,
                            since_ms: now_ms(),
                            not_before_ms: 0,
                            reason: HoldReason::Requested,
                        },
                    );
                    awaiting.0.push(Awaited {
                        ticket,
                        until_seq,
                        path: Some(path),
                    });
                }
                Action::PushNow => {
                    flush = true;
                    awaiting.0.push(Awaited {
                        ticket,
                        until_seq,
                        path: None,
                    });
                }
            }
        }
        Ok(flush)
    }

    /// `fsjournal resync` of the whole root (`force`: `--force`, which
    /// confirms the source as it is now and overrides the deletion
    /// interlocks): a full sync now, `ticket` answered with its outcome.
    /// Errors: the journal cannot be written.
    fn resync_all(
        &self,
        state: &mut TargetState,
        ticket: &Ticket,
        force: bool,
    ) -> anyhow::Result<()> {
        if force {
            self.confirm_source()?;
        }
        let reason = match (state.full_sync_needed.take(), force) {
            (Some(owed), true) => FullSyncReason::Confirmed { owed },
            (_, true) => FullSyncReason::RequestedForce,
            (_, false) => FullSyncReason::Requested,
        };
        state.full_sync_needed = Some(reason.to_string());
        self.journal.save_target(self.name(), state)?;
        let before = state.full_syncs;
        self.full_sync(state, force)?;
        if state.full_syncs > before {
            ticket.answer(true, "full sync done".into());
        } else if self.stopping() {
            ticket.answer(
                false,
                "the agent is stopping: the full sync is owed and runs at its next start".into(),
            );
        } else {
            let refused = state.last_error.clone().unwrap_or_default();
            ticket.answer(
                false,
                format!("the full sync is owed but was refused: {refused}"),
            );
        }
        Ok(())
    }

    /// The operator's `resync --force`: the source's filesystem as it is
    /// now is the one to replicate (recorded as the root's identity).
    fn confirm_source(&self) -> anyhow::Result<()> {
        let current = crate::host::identity(&self.source)?;
        if self.journal.root_identity(self.root)?.as_ref() != Some(&current) {
            tracing::warn!(target = self.name(), source = %self.source.display(), identity = ?current, "the operator confirmed the source's filesystem: recorded");
            self.journal.save_root_identity(self.root, &current)?;
        }
        Ok(())
    }

    /// Answers the awaited requests whose changes the target now has (or
    /// refused: a resynced subtree held after an exit 23).
    pub(super) fn answer_reached(&self, state: &TargetState, awaiting: &mut Awaiting) {
        awaiting.0.retain(|awaited| {
            let held = awaited
                .path
                .as_ref()
                .and_then(|path| state.held.iter().find(|h| &h.path == path));
            match held.map(|h| h.reason) {
                Some(HoldReason::Failed(_)) => {
                    let error = state.last_error.clone().unwrap_or_default();
                    awaited.ticket.answer(false, error);
                    false
                }
                Some(_) => true,
                None if state.cursor < awaited.until_seq => true,
                None => {
                    let message = match state.held.len() {
                        0 => "pushed; the target has every change".to_string(),
                        n => format!("pushed; {n} paths still held (settling or refused: see fsjournal status)"),
                    };
                    awaited.ticket.answer(true, message);
                    false
                }
            }
        });
    }
}
