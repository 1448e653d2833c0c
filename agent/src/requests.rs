//! Requests from the CLI to a running agent (`fsjournal resync`, `fsjournal
//! push`): one JSON file per request in `<journal>/requests/`, written
//! atomically (temporary name, then rename), taken by the agent within a
//! second and deleted once handed to the target's pusher. A request made
//! while no agent runs waits for the next start. Only root can write there
//! (the journal directory and `requests/` are the agent user's, not
//! writable by others: `private_dir.rs`), and the agent takes only regular
//! files of its own user that others cannot write; anything else is
//! removed with a warning naming it and its owner.
//!
//! A request that asks for a reply gets one when it is carried out: the
//! pusher writes `<name>.reply` (a [`Reply`]) beside where the request was,
//! which the waiting CLI reads and deletes.

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A path in a request, relative to the source or absolute inside it: any
/// bytes, as Linux names are. In JSON it is a string when it is UTF-8 (as
/// every version wrote it), else `{"bytes": [..]}`, so `resync --path` and
/// `verify --fix` carry any name intact.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestPath(pub Vec<u8>);

impl RequestPath {
    /// The path as the filesystem takes it.
    pub fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.0))
    }
}

impl From<&str> for RequestPath {
    fn from(path: &str) -> RequestPath {
        RequestPath(path.as_bytes().to_vec())
    }
}

impl std::fmt::Debug for RequestPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_path())
    }
}

/// The two JSON forms of a [`RequestPath`].
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RequestPathForm<'a> {
    Text(std::borrow::Cow<'a, str>),
    Bytes { bytes: std::borrow::Cow<'a, [u8]> },
}

impl Serialize for RequestPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => RequestPathForm::Text(text.into()),
            Err(_) => RequestPathForm::Bytes {
                bytes: self.0.as_slice().into(),
            },
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RequestPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RequestPath, D::Error> {
        Ok(match RequestPathForm::deserialize(deserializer)? {
            RequestPathForm::Text(text) => RequestPath(text.into_owned().into_bytes()),
            RequestPathForm::Bytes { bytes } => RequestPath(bytes.into_owned()),
        })
    }
}

/// What a target is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Push `path` (root-relative, `None` = the whole root, a full sync)
    /// recursively with `--delete`, whatever the journal says.
    Resync {
        /// The subtree, or `None` for the whole root.
        path: Option<RequestPath>,
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

/// The directory of `journal`'s requests: `<journal>/requests`.
pub fn dir(journal: &Path) -> PathBuf {
    journal.join("requests")
}

/// Queues `request` for the agent of `journal`; returns the file written.
/// Errors: the journal directory does not exist or is not writable, or
/// `requests/` is not the agent user's alone (see `private_dir.rs`).
/// See [`reply_path`] for where the reply arrives.
pub fn submit(journal: &Path, request: &Request) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(journal.is_dir(), "no journal at {}", journal.display());
    let dir = dir(journal);
    crate::private_dir::ensure(&dir, "requests directory")?;
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
/// The file is mode 0600, as [`take`] requires.
fn write_atomically(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?
        .write_all(&serde_json::to_vec(value)?)?;
    std::fs::rename(&tmp, path)
}

/// Reads the request in `file` if the agent's user alone could have
/// written it (see [`take`]); `None` after warning about one it may not
/// trust. The checks are made on the opened file (`O_NOFOLLOW`, `fstat`),
/// so the file cannot be swapped between check and read.
///
/// Errors: the file cannot be read or is not a request.
fn read_trusted(file: &Path) -> anyhow::Result<Option<Request>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file);
    let (mut handle, meta) = match opened {
        Ok(handle) => {
            let meta = handle.metadata()?;
            (Some(handle), meta)
        }
        // ELOOP: a symbolic link, which O_NOFOLLOW refused to open.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => (None, std::fs::symlink_metadata(file)?),
        Err(e) => return Err(e.into()),
    };
    if let Some(problem) = crate::private_dir::untrusted_file(&meta) {
        tracing::warn!(
            file = %file.display(),
            owner_uid = meta.uid(),
            mode = %format!("{:04o}", meta.mode() & 0o7777),
            "request refused and removed: {problem}; only a regular file of the agent's user (root), \
             not writable by group or others, is taken"
        );
        return Ok(None);
    }
    let mut bytes = Vec::new();
    handle
        .as_mut()
        .expect("a regular file was opened")
        .read_to_end(&mut bytes)?;
    Ok(Some(serde_json::from_slice(&bytes)?))
}

/// The root-relative subtree that a resync's `--path` names under `source`
/// (an absolute, canonical root): `path` is relative to the source, or
/// absolute inside it; `.` components and slashes at either end are dropped.
/// With `must_exist`, something (a dangling symbolic link included) must
/// be there: the CLI asks that of the operator, while the agent also takes
/// paths the source no longer has (`verify --fix` sends them so that the
/// target deletes them, rsync `--delete-missing-args`).
///
/// Errors: `path` is absolute outside `source`, has a `..` component, names
/// the source itself, leads out of it through a symbolic link on the way,
/// or (with `must_exist`) names nothing.
pub fn subtree_under(source: &Path, given: &Path, must_exist: bool) -> anyhow::Result<Vec<u8>> {
    use std::path::Component;
    let path = given.display();
    let relative = if given.is_absolute() {
        given.strip_prefix(source).map_err(|_| {
            anyhow::anyhow!(
                "--path {path} is outside the source {}: give a path inside it, absolute or relative to it",
                source.display()
            )
        })?
    } else {
        given
    };
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            _ => anyhow::bail!(
                "--path {path} contains `..`: give the subtree relative to the source {} without `..`",
                source.display()
            ),
        }
    }
    anyhow::ensure!(
        !parts.is_empty(),
        "--path {path} names the source {} itself: leave --path out for a full sync",
        source.display()
    );
    let subtree: PathBuf = parts.iter().collect();
    let full = source.join(&subtree);
    // A symbolic link on the way (not the last component, which rsync sends
    // as a link) would take the push out of the source.
    if let Some(parent) = full.parent() {
        if let (Ok(real), Ok(real_source)) = (parent.canonicalize(), source.canonicalize()) {
            anyhow::ensure!(
                real.starts_with(&real_source),
                "--path {path} leads out of the source through a symbolic link: {} is {}",
                parent.display(),
                real.display()
            );
        }
    }
    anyhow::ensure!(
        !must_exist || std::fs::symlink_metadata(&full).is_ok(),
        "--path {path}: nothing at {} (check the spelling; `fsjournal verify --fix` also removes \
         from the target what the source no longer has)",
        full.display()
    );
    Ok(subtree.into_os_string().into_vec())
}

/// Where the reply to the request queued as `request_file` arrives.
pub fn reply_path(request_file: &Path) -> PathBuf {
    request_file.with_extension("reply")
}

/// Takes every queued request of `journal`, oldest first, deleting their
/// files: (target, ticket) pairs. An unreadable request is logged and
/// dropped; so is one that is not a regular file of the agent's user, not
/// writable by group or others (a symbolic link is never followed): the
/// warning names the file, its owner and what is wrong.
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
        match read_trusted(&file) {
            Ok(None) => {}
            Ok(Some(request)) => requests.push((
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

    #[test]
    fn requests_the_agent_may_not_trust_are_removed_untaken() {
        use std::os::unix::fs::PermissionsExt;
        let journal = tempfile::tempdir().unwrap();
        let request = Request {
            target: "a".into(),
            action: Action::PushNow,
            reply: true,
        };
        let good = submit(journal.path(), &request).unwrap();
        let json = serde_json::to_vec(&request).unwrap();
        let open = dir(journal.path()).join("1-open.json");
        std::fs::write(&open, &json).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
        let elsewhere = journal.path().join("elsewhere.json");
        std::fs::write(&elsewhere, &json).unwrap();
        let link = dir(journal.path()).join("2-link.json");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();

        let taken = take(journal.path());
        assert_eq!(taken.len(), 1, "{taken:?}");
        assert_eq!(taken[0].1.reply_to, Some(reply_path(&good)));
        assert!(
            !open.exists() && link.symlink_metadata().is_err(),
            "refused files are removed"
        );
        assert!(elsewhere.exists(), "a link's target is never touched");
    }

    #[test]
    fn a_request_path_keeps_any_bytes_and_reads_the_old_string_form() {
        let odd = RequestPath(b"jobs/caf\xe9".to_vec());
        let json = serde_json::to_string(&odd).unwrap();
        assert_eq!(json, r#"{"bytes":[106,111,98,115,47,99,97,102,233]}"#);
        assert_eq!(serde_json::from_str::<RequestPath>(&json).unwrap(), odd);
        let plain = serde_json::to_string(&RequestPath::from("jobs/a")).unwrap();
        assert_eq!(plain, r#""jobs/a""#, "UTF-8 stays a string, as before");
        assert_eq!(
            serde_json::from_str::<RequestPath>(&plain).unwrap(),
            RequestPath::from("jobs/a")
        );
    }

    #[test]
    fn a_resync_path_must_stay_inside_the_source() {
        let scratch = tempfile::tempdir().unwrap();
        let source = scratch.path().canonicalize().unwrap().join("src");
        std::fs::create_dir_all(source.join("jobs/a")).unwrap();
        std::os::unix::fs::symlink("/etc", source.join("out")).unwrap();
        let absolute = format!("{}/jobs/a/", source.display());
        for (path, expected) in [
            ("jobs/a", "jobs/a"),
            ("./jobs//a/", "jobs/a"),
            (absolute.as_str(), "jobs/a"),
            ("out", "out"),
        ] {
            assert_eq!(
                subtree_under(&source, Path::new(path), true).unwrap(),
                expected.as_bytes(),
                "{path}"
            );
        }
        assert_eq!(
            subtree_under(&source, Path::new("gone"), false).unwrap(),
            b"gone"
        );
        for (path, must_exist, expected) in [
            ("../outside", false, "contains `..`"),
            ("jobs/../../outside", false, "contains `..`"),
            ("/etc", false, "is outside the source"),
            ("", false, "names the source"),
            (".", false, "names the source"),
            ("out/passwd", false, "through a symbolic link"),
            ("gone", true, "nothing at"),
        ] {
            let error = format!(
                "{:#}",
                subtree_under(&source, Path::new(path), must_exist).unwrap_err()
            );
            assert!(error.contains(expected), "{path}: {error}");
        }
    }
}
