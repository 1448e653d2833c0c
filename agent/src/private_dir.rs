//! Directories and files only the agent's user may write: the journal, its
//! `requests/` directory, the eBPF pin directories, and the request files.
//! Whoever can write there steers the agent (a request makes it resync a
//! whole target) or reads every changed path it records.
//!
//! A directory the agent creates is made mode 0700. A directory that
//! already exists is checked, never changed: a shared directory (mode 1777)
//! or one another user made is refused with what is wrong and how to fix
//! it, instead of being chmod'ed and filled beside other users' files. The
//! rule is OpenSSH's `StrictModes` (sshd_config(5)): owned by the user,
//! not writable by group or others.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use anyhow::{bail, Context};

/// Mode bits that let another user write: group and others write.
const FOREIGN_WRITE: u32 = 0o022;

/// The agent's effective user id (`geteuid(2)`).
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Makes sure `path` is a directory only the agent's user can write.
/// Missing, it is created with mode 0700 (parents as needed, with the
/// default mode). Present, it must be a directory (a symlink to one is
/// followed) owned by the agent's effective user and not writable by group
/// or others; it is left exactly as it is. `what` names it in errors
/// ("journal directory").
///
/// Errors: it exists and fails the rule (the message says how to fix it),
/// or it cannot be created or examined.
pub fn ensure(path: &Path, what: &str) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) => check(path, &meta, what),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path, what),
        Err(e) => Err(e).with_context(|| format!("cannot examine {what} {}", path.display())),
    }
}

fn create(path: &Path, what: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        // Made by someone else in the meantime: judge it like any other.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("cannot examine {what} {}", path.display()))?;
            check(path, &meta, what)
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {what} {}", path.display())),
    }
}

/// Checks an existing directory's metadata against the rule of [`ensure`].
fn check(path: &Path, meta: &std::fs::Metadata, what: &str) -> anyhow::Result<()> {
    let euid = euid();
    let mode = meta.mode() & 0o7777;
    let problem = if !meta.is_dir() {
        "is not a directory".to_string()
    } else if meta.uid() != euid {
        format!(
            "is owned by uid {}, not by the agent's user (uid {euid})",
            meta.uid()
        )
    } else if mode & FOREIGN_WRITE != 0 {
        format!("has mode {mode:04o}: group or others can write to it")
    } else {
        return Ok(());
    };
    let owner = if euid == 0 {
        "root:root".to_string()
    } else {
        euid.to_string()
    };
    bail!(
        "{what} {path} {problem}; another user could read what the agent records or make it resync. \
         The agent leaves it as it is: fix it with `chown {owner} {path} && chmod 0700 {path}`, \
         or choose another path",
        path = path.display()
    )
}

/// Why a file may not be trusted as written by the agent's user, from its
/// own metadata (`lstat` or `fstat`): not a regular file, owned by another
/// user, or writable by group or others. `None`: it may.
pub fn untrusted_file(meta: &std::fs::Metadata) -> Option<String> {
    let mode = meta.mode() & 0o7777;
    if meta.file_type().is_symlink() {
        Some("a symbolic link".to_string())
    } else if !meta.is_file() {
        Some("not a regular file".to_string())
    } else if meta.uid() != euid() {
        Some(format!("owned by uid {}", meta.uid()))
    } else if mode & FOREIGN_WRITE != 0 {
        Some(format!("mode {mode:04o}, writable by group or others"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_missing_directory_is_created_private() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("a/journal");
        ensure(&dir, "journal directory").unwrap();
        let meta = std::fs::metadata(&dir).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o077, 0, "mode {:o}", meta.mode());
        ensure(&dir, "journal directory").expect("its own directory passes");
    }

    #[test]
    fn a_shared_directory_is_refused_and_left_as_it_is() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let error = format!("{:#}", ensure(&dir, "journal directory").unwrap_err());
        assert!(error.contains("has mode 1777"), "{error}");
        assert!(error.contains("chmod 0700"), "{error}");
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o1777);
    }

    #[test]
    fn a_file_in_the_way_is_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let file = scratch.path().join("journal");
        std::fs::write(&file, "x").unwrap();
        let error = format!("{:#}", ensure(&file, "journal directory").unwrap_err());
        assert!(error.contains("is not a directory"), "{error}");
    }
}
