//! Requests from the CLI to a running agent (`fsjournal resync`, `fsjournal
//! push`): one JSON file per request in `<journal>/requests/`, written
//! atomically (temporary name, then rename), taken by the agent within a
//! second and deleted once handed to the target's pusher. A request made
//! while no agent runs waits for the next start. Only root can write there
//! (the journal directory is mode 0700).
//!
//! A request that asks for a reply gets one when it is carried out: the
//! pusher writes `<name>.reply` (a [`Reply`]) beside where the request was,
//! which the waiting CLI reads and deletes.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What a target is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Push `path` (root-relative, `None` = the whole root, a full sync)
    /// recursively with `--delete`, whatever the journal says.
    Resync {
        /// The subtree, or `None` for the whole root.
        path: Option<String>,
        /// The operator confirms a full sync that a safety interlock
        /// refused (`--force`: another filesystem, an empty root, many
        /// deletions; see push/interlock.rs).
        #[serde(default)]
        force: bool,
    },
    /// Push what is pending now, without waiting for the batch delay.
    PushNow,
}

/// One request for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Sync name.
    pub target: String,
    /// What to do.
    pub action: Action,
    /// The CLI waits for a [`Reply`].
    #[serde(default)]
    pub reply: bool,
}

/// A request as the agent takes it: the action, and where to reply when
/// the request asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// What to do.
    pub action: Action,
    /// Where the [`Reply`] goes, if one is awaited.
    pub reply_to: Option<PathBuf>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Carried out.
    pub ok: bool,
    /// What happened, for the operator.
    pub message: String,
}

impl Ticket {
    /// Writes the reply, if one is awaited (atomically, like a request). A
    /// failure is logged: the CLI then waits until interrupted.
    pub fn answer(&self, ok: bool, message: String) {
        let Some(path) = &self.reply_to else { return };
        if let Err(e) = write_atomically(path, &Reply { ok, message }) {
            tracing::error!(reply = %path.display(), error = %e, "cannot reply to a request");
        }
    }
}

/// A reply older than this was abandoned by its CLI and is deleted.
const STALE_REPLY: std::time::Duration = std::time::Duration::from_secs(3600);

fn dir(journal: &Path) -> PathBuf {
    journal.join("requests")
}

/// Queues `request` for the agent of `journal`; returns the file written.
/// Errors: the journal directory does not exist or is not writable.
/// See [`reply_path`] for where the reply arrives.
pub fn submit(journal: &Path, request: &Request) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(journal.is_dir(), "no journal at {}", journal.display());
    let dir = dir(journal);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let path = dir.join(format!("{nanos}-{}.json", std::process::id()));
    write_atomically(&path, request).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Writes `value` as JSON to `path` through a hidden temporary name beside
/// it and a rename, so that a reader sees the whole file or none (and
/// [`take`], which reads `*.json`, never a partial request).
fn write_atomically(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(value)?)?;
    std::fs::rename(&tmp, path)
}

/// Where the reply to the request queued as `request_file` arrives.
pub fn reply_path(request_file: &Path) -> PathBuf {
    request_file.with_extension("reply")
}

/// Takes every queued request of `journal`, oldest first, deleting their
/// files: (target, ticket) pairs. An unreadable request is logged and dropped.
pub fn take(journal: &Path) -> Vec<(String, Ticket)> {
    let Ok(entries) = std::fs::read_dir(dir(journal)) else {
        return Vec::new();
    };
    let paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    // Replies nobody waited for to the end (the CLI was interrupted).
    for stale in paths.iter().filter(|p| {
        p.extension().is_some_and(|e| e == "reply")
            && std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > STALE_REPLY)
    }) {
        let _ = std::fs::remove_file(stale);
    }
    let mut files: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut requests = Vec::new();
    for file in files {
        match std::fs::read(&file)
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(serde_json::from_slice::<Request>(&b)?))
        {
            Ok(request) => requests.push((
                request.target,
                Ticket {
                    action: request.action,
                    reply_to: request.reply.then(|| reply_path(&file)),
                },
            )),
            Err(e) => {
                tracing::error!(file = %file.display(), error = %format!("{e:#}"), "unreadable request dropped")
            }
        }
        let _ = std::fs::remove_file(&file);
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_taken_once_in_order() {
        let journal = tempfile::tempdir().unwrap();
        let first = Request {
            target: "a".into(),
            action: Action::Resync {
                path: Some("jobs/x".into()),
                force: false,
            },
            reply: false,
        };
        let second = Request {
            target: "b".into(),
            action: Action::PushNow,
            reply: true,
        };
        submit(journal.path(), &first).unwrap();
        let second_file = submit(journal.path(), &second).unwrap();
        let taken = take(journal.path());
        assert_eq!(
            taken,
            vec![
                (
                    "a".to_string(),
                    Ticket {
                        action: first.action,
                        reply_to: None
                    }
                ),
                (
                    "b".to_string(),
                    Ticket {
                        action: second.action,
                        reply_to: Some(reply_path(&second_file))
                    }
                ),
            ]
        );
        assert!(take(journal.path()).is_empty());
        taken[1].1.answer(true, "pushed".into());
        let reply: Reply =
            serde_json::from_slice(&std::fs::read(reply_path(&second_file)).unwrap()).unwrap();
        assert_eq!(
            reply,
            Reply {
                ok: true,
                message: "pushed".into()
            }
        );
        assert!(take(journal.path()).is_empty(), "a reply is not a request");
    }
}
