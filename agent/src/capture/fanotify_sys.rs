//! A thin layer over the fanotify(7) syscalls and its FID-mode event format,
//! on `libc` alone.
//!
//! Why not a crate: `fanotify-rs` 0.3 assumes fixed-size events and knows no
//! FID records; nix 0.31 can init and mark but its `read_events` drops the
//! info records. Here events are walked by `event_len` and info records by
//! `hdr.len`, as fanotify(7) "Reading fanotify events" prescribes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::handle::FileHandle;

/// Group flags: notification class, FID reporting with directory handle +
/// name and the child's handle on directory-entry events
/// (`FAN_REPORT_DFID_NAME_TARGET`, Linux ≥ 5.17).
const INIT_FLAGS: u32 = libc::FAN_CLASS_NOTIF
    | libc::FAN_CLOEXEC
    | libc::FAN_NONBLOCK
    | libc::FAN_REPORT_DFID_NAME_TARGET;

/// Events every backup needs, for files and (`FAN_ONDIR`) directories.
const BASE_MASK: u64 = libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_MODIFY
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_ATTRIB
    | libc::FAN_DELETE_SELF
    | libc::FAN_MOVE_SELF
    | libc::FAN_ONDIR;

/// Renames as one event carrying both sides (`FAN_RENAME`, Linux ≥ 5.17).
/// `FAN_MOVED_FROM`/`FAN_MOVED_TO` carry no cookie, so they are only the
/// fallback for kernels that refuse `FAN_RENAME`.
pub const RENAME_MASK: u64 = libc::FAN_RENAME;
/// The pre-5.17 way of reporting renames.
pub const MOVED_MASK: u64 = libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO;

/// One name in a directory: the directory's handle and the entry name
/// (`.` for an event on the directory itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryName {
    /// Handle of the directory.
    pub dir: FileHandle,
    /// The entry's name (raw bytes, no NUL).
    pub name: Vec<u8>,
}

/// One decoded fanotify event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// `FAN_*` bits (merged events carry several).
    pub mask: u64,
    /// Process (tgid) that caused it.
    pub pid: i32,
    /// `FAN_EVENT_INFO_TYPE_FID`: the object itself.
    pub object: Option<FileHandle>,
    /// `FAN_EVENT_INFO_TYPE_DFID_NAME` (or `DFID`, with an empty name).
    pub entry: Option<DirEntryName>,
    /// `FAN_EVENT_INFO_TYPE_OLD_DFID_NAME`: a rename's old side.
    pub old: Option<DirEntryName>,
    /// `FAN_EVENT_INFO_TYPE_NEW_DFID_NAME`: a rename's new side.
    pub new: Option<DirEntryName>,
}

/// A fanotify group with a filesystem-wide mark.
pub struct Group {
    fd: OwnedFd,
    /// The mask in force (with `RENAME_MASK` or, on old kernels, `MOVED_MASK`).
    pub mask: u64,
}

impl Group {
    /// Creates a group and marks the whole filesystem holding `path`
    /// (`FAN_MARK_FILESYSTEM`; `FAN_MARK_MOUNT` cannot carry directory-entry
    /// events: EINVAL).
    ///
    /// Errors: `EPERM` without CAP_SYS_ADMIN; `EINVAL` from a kernel older
    /// than 5.17 for the flags; `EXDEV` for a btrfs subvolume or an overlayfs
    /// without `nfs_export=on`; `ENODEV`/`EOPNOTSUPP` for filesystems that
    /// cannot encode file handles.
    pub fn watch_filesystem(path: &Path) -> io::Result<Group> {
        // SAFETY: plain syscall with constant flags.
        let fd =
            unsafe { libc::fanotify_init(INIT_FLAGS, (libc::O_RDONLY | libc::O_LARGEFILE) as u32) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fanotify_init returned a new descriptor that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let c_path =
            std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        let mark = |mask: u64| {
            // SAFETY: `fd` is a fanotify group and `c_path` is NUL-terminated.
            let rc = unsafe {
                libc::fanotify_mark(
                    fd.as_raw_fd(),
                    libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                    mask,
                    libc::AT_FDCWD,
                    c_path.as_ptr(),
                )
            };
            if rc == 0 {
                Ok(mask)
            } else {
                Err(io::Error::last_os_error())
            }
        };
        let mask = match mark(BASE_MASK | RENAME_MASK) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => mark(BASE_MASK | MOVED_MASK)?,
            other => other?,
        };
        Ok(Group { fd, mask })
    }

    /// Reads as many events as fit in `buf` without blocking; `Ok(0)` when
    /// the queue is empty.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(0)
        } else {
            Err(err)
        }
    }

    /// The descriptor, for poll(2).
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Raises `/proc/sys/fs/fanotify/max_queued_events` to at least `events`
/// (the default queue holds 16384 events). Takes effect for groups created
/// afterwards.
pub fn raise_queue_limit(events: u64) -> io::Result<()> {
    const KNOB: &str = "/proc/sys/fs/fanotify/max_queued_events";
    let current: u64 = std::fs::read_to_string(KNOB)?.trim().parse().unwrap_or(0);
    if events > current {
        std::fs::write(KNOB, events.to_string())?;
    }
    Ok(())
}

fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([buf[at], buf[at + 1]])
}
fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

/// Decodes every event in `buf` (the bytes one `read` returned).
///
/// Layout, from `include/uapi/linux/fanotify.h`: `fanotify_event_metadata`
/// (`event_len` u32, `vers` u8, `reserved` u8, `metadata_len` u16, `mask`
/// u64, `fd` i32, `pid` i32), then info records, each a header (`info_type`
/// u8, `pad` u8, `len` u16), for FID types followed by `fsid` (8 bytes) and a
/// `file_handle` (`handle_bytes` u32, `handle_type` i32, bytes), and for the
/// `*_DFID_NAME` types a NUL-terminated name. A truncated or foreign record
/// ends decoding of that event; nothing reads past `event_len`.
pub fn parse_events(buf: &[u8]) -> Vec<Event> {
    const METADATA_LEN: usize = 24;
    let mut events = Vec::new();
    let mut at = 0;
    while at + METADATA_LEN <= buf.len() {
        let event_len = read_u32(buf, at) as usize;
        if event_len < METADATA_LEN || at + event_len > buf.len() {
            break;
        }
        let metadata_len = read_u16(buf, at + 6) as usize;
        let record = &buf[at..at + event_len];
        let mut event = Event {
            mask: u64::from_ne_bytes(record[8..16].try_into().expect("8 bytes")),
            pid: read_u32(record, 20) as i32,
            ..Event::default()
        };
        let mut info = metadata_len.max(METADATA_LEN);
        while info + 4 <= record.len() {
            let (info_type, len) = (record[info], read_u16(record, info + 2) as usize);
            if len < 4 || info + len > record.len() {
                break;
            }
            decode_info(&mut event, info_type, &record[info + 4..info + len]);
            info += len;
        }
        events.push(event);
        at += event_len;
    }
    events
}

/// Decodes one FID-style info record body (after the 4-byte header).
fn decode_info(event: &mut Event, info_type: u8, body: &[u8]) {
    // fsid (8 bytes), then struct file_handle.
    if body.len() < 16 {
        return;
    }
    let handle_bytes = read_u32(body, 8) as usize;
    let handle_type = read_u32(body, 12) as i32;
    let Some(bytes) = body.get(16..16 + handle_bytes) else {
        return;
    };
    let handle = FileHandle::new(handle_type, bytes);
    let name = || {
        let rest = &body[16 + handle_bytes..];
        rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())].to_vec()
    };
    match info_type {
        libc::FAN_EVENT_INFO_TYPE_FID => event.object = Some(handle),
        libc::FAN_EVENT_INFO_TYPE_DFID_NAME => {
            event.entry = Some(DirEntryName {
                dir: handle,
                name: name(),
            })
        }
        libc::FAN_EVENT_INFO_TYPE_DFID => {
            event.entry = Some(DirEntryName {
                dir: handle,
                name: Vec::new(),
            })
        }
        libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME => {
            event.old = Some(DirEntryName {
                dir: handle,
                name: name(),
            })
        }
        libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME => {
            event.new = Some(DirEntryName {
                dir: handle,
                name: name(),
            })
        }
        _ => {}
    }
}

/// Events encoded as the kernel lays them out, for the unit tests and the
/// criterion benches (`agent/benches/capture.rs`) of [`parse_events`].
#[doc(hidden)]
pub mod synthetic {
    /// One FID info record as the kernel lays it out (fsid, handle, optional name).
    pub fn info(info_type: u8, handle: &[u8], name: Option<&[u8]>) -> Vec<u8> {
        let mut body = vec![0u8; 8]; // fsid
        body.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
        body.extend_from_slice(&1i32.to_ne_bytes());
        body.extend_from_slice(handle);
        if let Some(name) = name {
            body.extend_from_slice(name);
            body.push(0);
        }
        while !(body.len() + 4).is_multiple_of(4) {
            body.push(0);
        }
        let mut record = vec![info_type, 0];
        record.extend_from_slice(&((body.len() + 4) as u16).to_ne_bytes());
        record.extend(body);
        record
    }

    /// One event: metadata (pid 77, no fd), then its info records.
    pub fn event(mask: u64, infos: &[Vec<u8>]) -> Vec<u8> {
        let len = 24 + infos.iter().map(Vec::len).sum::<usize>();
        let mut out = Vec::new();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&[3, 0]);
        out.extend_from_slice(&24u16.to_ne_bytes());
        out.extend_from_slice(&mask.to_ne_bytes());
        out.extend_from_slice(&(-1i32).to_ne_bytes());
        out.extend_from_slice(&77i32.to_ne_bytes());
        for i in infos {
            out.extend_from_slice(i);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::synthetic::{event, info};

    #[test]
    fn decodes_variable_length_events_with_names_and_renames() {
        let mut buf = event(
            libc::FAN_CREATE,
            &[
                info(
                    libc::FAN_EVENT_INFO_TYPE_DFID_NAME,
                    b"dirA",
                    Some(b"new file"),
                ),
                info(libc::FAN_EVENT_INFO_TYPE_FID, b"obj1", None),
            ],
        );
        buf.extend(event(
            libc::FAN_RENAME | libc::FAN_ONDIR,
            &[
                info(libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, b"dirA", Some(b"a")),
                info(
                    libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME,
                    b"dirBBBBB",
                    Some(b"b\xff"),
                ),
                info(libc::FAN_EVENT_INFO_TYPE_FID, b"obj2", None),
            ],
        ));
        let events = parse_events(&buf);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].pid, 77);
        assert_eq!(
            events[0].entry,
            Some(DirEntryName {
                dir: FileHandle::new(1, b"dirA"),
                name: b"new file".to_vec()
            })
        );
        assert_eq!(events[0].object, Some(FileHandle::new(1, b"obj1")));
        assert_eq!(events[1].mask, libc::FAN_RENAME | libc::FAN_ONDIR);
        assert_eq!(events[1].old.as_ref().unwrap().name, b"a");
        assert_eq!(
            events[1].new.as_ref().unwrap(),
            &DirEntryName {
                dir: FileHandle::new(1, b"dirBBBBB"),
                name: b"b\xff".to_vec()
            }
        );
    }

    #[test]
    fn a_truncated_buffer_yields_only_whole_events() {
        let whole = event(
            libc::FAN_MODIFY,
            &[info(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, b"d", Some(b"f"))],
        );
        let mut buf = whole.clone();
        buf.extend_from_slice(&whole[..whole.len() - 3]);
        assert_eq!(parse_events(&buf).len(), 1);
    }
}
