//! Facts about the machine and its filesystems that several stages read:
//! this boot's id and a root's filesystem identity. It sits below every
//! stage (capture, journal and push all ask it), so none of them imports
//! another against the data flow to learn them.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Identity of a root's filesystem (meta key `identity/<root>`): a
/// mismatch means the gap since the watermark cannot be trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsIdentity {
    /// `statvfs` f_fsid (derived from the filesystem UUID on ext4/xfs/btrfs).
    pub fsid: u64,
    /// Inode number of the root directory.
    pub root_ino: u64,
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), empty when unreadable.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The identity of the filesystem holding `root`: `statvfs` f_fsid (from the
/// filesystem UUID on ext4/xfs/btrfs; a new value for every tmpfs mount) and
/// the root directory's inode. A source whose filesystem is not mounted shows
/// the identity of the filesystem below its mount point instead.
///
/// Errors: `root` cannot be reached (`statvfs` or `stat` fails).
pub fn identity(root: &Path) -> anyhow::Result<FsIdentity> {
    let vfs = statvfs(root)?;
    let root_ino = std::fs::metadata(root)
        .with_context(|| format!("stat {}", root.display()))?
        .ino();
    Ok(FsIdentity {
        fsid: vfs.f_fsid as u64,
        root_ino,
    })
}

/// Inodes in use on the filesystem holding `path` (`statvfs` f_files −
/// f_ffree): at least the number of entries of any tree on it (hard links
/// aside); 0 where the filesystem does not count inodes (btrfs).
///
/// Errors: `statvfs` fails.
pub fn used_inodes(path: &Path) -> anyhow::Result<u64> {
    let vfs = statvfs(path)?;
    Ok((vfs.f_files as u64).saturating_sub(vfs.f_ffree as u64))
}

fn statvfs(path: &Path) -> anyhow::Result<libc::statvfs> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `vfs` is a valid out-pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut vfs) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statvfs {}", path.display()));
    }
    Ok(vfs)
}
