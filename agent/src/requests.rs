//! Requests from the CLI to a running agent (`fsjournal resync`, `fsjournal
//! push`): one JSON file per request in `<journal>/requests/`, written
//! atomically (temporary name, then rename), taken by the agent within a
//! second and deleted once handed to the target's pusher. A request made
//! while no agent runs waits for the next start. Only root can write there
//! (the journal directory is mode 0700).

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
}

fn dir(journal: &Path) -> PathBuf {
    journal.join("requests")
}

/// Queues `request` for the agent of `journal`; returns the file written.
/// Errors: the journal directory does not exist or is not writable.
pub fn submit(journal: &Path, request: &Request) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(journal.is_dir(), "no journal at {}", journal.display());
    let dir = dir(journal);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let name = format!("{nanos}-{}", std::process::id());
    let (tmp, path) = (
        dir.join(format!(".{name}.tmp")),
        dir.join(format!("{name}.json")),
    );
    std::fs::write(&tmp, serde_json::to_vec(request)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot rename {}", tmp.display()))?;
    Ok(path)
}

/// Takes every queued request of `journal`, oldest first, deleting their
/// files. An unreadable request is logged and dropped.
pub fn take(journal: &Path) -> Vec<Request> {
    let Ok(entries) = std::fs::read_dir(dir(journal)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut requests = Vec::new();
    for file in files {
        match std::fs::read(&file)
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(serde_json::from_slice::<Request>(&b)?))
        {
            Ok(request) => requests.push(request),
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
            },
        };
        let second = Request {
            target: "a".into(),
            action: Action::PushNow,
        };
        submit(journal.path(), &first).unwrap();
        submit(journal.path(), &second).unwrap();
        assert_eq!(take(journal.path()), vec![first, second]);
        assert!(take(journal.path()).is_empty());
    }
}
