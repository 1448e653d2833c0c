//! File handles: the kernel's stable names for inodes (see
//! name_to_handle_at(2) and open_by_handle_at(2)). fanotify in FID mode
//! reports objects and directories as handles; the directory index keys on
//! them.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Bytes of the largest handle we ask for (`MAX_HANDLE_SZ` in the kernel).
const MAX_HANDLE_SZ: usize = 128;

/// An opaque file handle: `handle_type` (4 bytes, native endian) followed by
/// `f_handle` bytes, exactly as fanotify reports it in a FID info record.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileHandle(Vec<u8>);

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileHandle(")?;
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

impl FileHandle {
    /// Builds a handle from its type and opaque bytes.
    pub fn new(handle_type: i32, bytes: &[u8]) -> FileHandle {
        let mut raw = Vec::with_capacity(4 + bytes.len());
        raw.extend_from_slice(&handle_type.to_ne_bytes());
        raw.extend_from_slice(bytes);
        FileHandle(raw)
    }

    /// The handle type (`FILEID_*` in include/linux/exportfs.h).
    pub fn handle_type(&self) -> i32 {
        i32::from_ne_bytes(self.0[..4].try_into().expect("handle has a type"))
    }

    /// The opaque bytes (`f_handle` of `struct file_handle`, without its
    /// type).
    pub fn opaque(&self) -> &[u8] {
        &self.0[4..]
    }

    /// The type and the opaque bytes, as one slice: the handle's identity
    /// (the directory index hashes and stores it).
    pub fn typed_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// The handle and mount id of `path` (not following a final symlink).
///
/// Errors: as name_to_handle_at(2), e.g. `ENOENT`, `EOPNOTSUPP` on a
/// filesystem that cannot export handles.
pub fn handle_of(path: &Path) -> io::Result<(FileHandle, i32)> {
    #[repr(C)]
    struct RawHandle {
        handle_bytes: u32,
        handle_type: i32,
        f_handle: [u8; MAX_HANDLE_SZ],
    }
    let path = c_path(path)?;
    let mut raw = RawHandle {
        handle_bytes: MAX_HANDLE_SZ as u32,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `raw` is a file_handle with room for MAX_HANDLE_SZ bytes and
    // `path` is NUL-terminated; both outlive the call.
    let rc = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            path.as_ptr(),
            (&mut raw as *mut RawHandle).cast(),
            &mut mount_id,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((
        FileHandle::new(raw.handle_type, &raw.f_handle[..raw.handle_bytes as usize]),
        mount_id,
    ))
}

/// Opens the object behind `handle` with `O_PATH` on the filesystem of
/// `mount_fd` and returns its current path (from `/proc/self/fd`) and its
/// metadata (`fstat`).
///
/// Errors: `ESTALE` when the inode is gone; `ENOENT` if it has no path.
pub fn current_path(
    mount_fd: &OwnedFd,
    handle: &FileHandle,
) -> io::Result<(PathBuf, std::fs::Metadata)> {
    let bytes = handle.opaque();
    let mut raw = vec![0u8; 8 + bytes.len()];
    raw[..4].copy_from_slice(&(bytes.len() as u32).to_ne_bytes());
    raw[4..8].copy_from_slice(&handle.handle_type().to_ne_bytes());
    raw[8..].copy_from_slice(bytes);
    // SAFETY: `raw` is laid out as struct file_handle with handle_bytes set
    // to the length of the trailing bytes; it outlives the call.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            raw.as_mut_ptr().cast(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_by_handle_at returned a new descriptor that we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    if path.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(io::Error::from_raw_os_error(libc::ESTALE));
    }
    let meta = std::fs::File::from(fd).metadata()?;
    Ok((path, meta))
}

/// Opens directory `path` read-only, for use as `mount_fd` (open_by_handle_at
/// refuses an `O_PATH` descriptor there: EBADF).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let path = c_path(path)?;
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a new descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_resolves_back_to_the_renamed_directory() {
        // open_by_handle_at(2) needs CAP_DAC_READ_SEARCH.
        if crate::private_dir::euid() != 0 {
            eprintln!("skipped: open_by_handle_at needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let (handle, _) = handle_of(&a).unwrap();
        let b = dir.path().join("b");
        std::fs::rename(&a, &b).unwrap();
        let mount_fd = open_dir(dir.path()).unwrap();
        let (path, meta) = current_path(&mount_fd, &handle).unwrap();
        assert_eq!((path, meta.is_dir()), (b.canonicalize().unwrap(), true));
        assert_eq!(handle_of(&b).unwrap().0, handle);
    }
}
