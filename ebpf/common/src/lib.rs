//! Types shared between fsjournal's kernel-side capture programs and its
//! userspace agent.
//!
//! Everything here is `#[repr(C)]` / `#[repr(u8)]` and `no_std`, so the same
//! definitions compile for `bpfel-unknown-none` (the eBPF programs, a later
//! backend) and for the agent, which reads them out of a ring buffer. The
//! fanotify backend produces the same [`ChangeKind`] values, so the journal
//! never needs to know which backend saw a change.
#![no_std]

/// What happened to a path, as recorded in one journal record.
///
/// One byte on the wire (`#[repr(u8)]`); the values are part of the journal's
/// on-disk format and must never be renumbered.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// A directory entry appeared (file, directory, symlink, device, fifo, hard link).
    Create = 1,
    /// File content changed (write, truncate, close after write).
    Modify = 2,
    /// Metadata changed: mode, owner, times, xattrs, link count.
    Attrib = 3,
    /// A directory entry disappeared (unlink, rmdir).
    Delete = 4,
    /// The old name of a rename.
    RenameFrom = 5,
    /// The new name of a rename.
    RenameTo = 6,
    /// Capture lost track of this subtree (queue overflow, unresolvable
    /// event): the subtree must be compared with the target recursively.
    Rescan = 7,
}

impl ChangeKind {
    /// All kinds, in their on-disk numbering order.
    pub const ALL: [ChangeKind; 7] = [
        ChangeKind::Create,
        ChangeKind::Modify,
        ChangeKind::Attrib,
        ChangeKind::Delete,
        ChangeKind::RenameFrom,
        ChangeKind::RenameTo,
        ChangeKind::Rescan,
    ];

    /// Decodes the on-disk byte; `None` for a value no version ever wrote.
    pub fn from_u8(value: u8) -> Option<ChangeKind> {
        ChangeKind::ALL
            .into_iter()
            .find(|kind| *kind as u8 == value)
    }

    /// Lower-case name used by the CLI and in JSON output (`rename-from`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Modify => "modify",
            ChangeKind::Attrib => "attrib",
            ChangeKind::Delete => "delete",
            ChangeKind::RenameFrom => "rename-from",
            ChangeKind::RenameTo => "rename-to",
            ChangeKind::Rescan => "rescan",
        }
    }
}

/// One inode change seen by a kernel-side program, as written to the ring
/// buffer `EVENTS` (48 bytes, native endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InodeEvent {
    /// Inode number.
    pub ino: u64,
    /// Device in the kernel's encoding (`MAJOR << 20 | MINOR`, not `st_dev`).
    pub dev: u32,
    /// Inode generation: with `ino`, the file handle on ext4, xfs and tmpfs.
    pub generation: u32,
    /// Process (tgid) that made the change.
    pub tgid: u32,
    /// The hook that saw it: one of [`hook`].
    pub hook: u32,
    /// The task's `comm`, NUL-padded.
    pub comm: [u8; 16],
    /// Position of this event among all events sent (from 1, one `SEQ`
    /// counter shared by every CPU): what the agent reports back in
    /// `DRAINED` once it has read it.
    pub index: u64,
}

/// Longest name a [`RenameEvent`] carries, its NUL included (`NAME_MAX` + 1).
pub const NAME_BYTES: usize = 256;

/// A rename seen by the VFS-hook rung, as written to the ring buffer
/// `EVENTS` (320 bytes; the agent tells it from an [`InodeEvent`] by its
/// length). `inode` is the moved inode, now at its new place; the old place
/// is `old_name` in the directory `(old_dir_ino, old_dir_generation)` on
/// the same device. A rename record is never coalesced; one that does not
/// fit in the ring buffer is counted as dropped (a rescan), since a spilled
/// inode would lose its old name.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenameEvent {
    /// The moved inode, as any record names it.
    pub inode: InodeEvent,
    /// Inode number of the directory it left.
    pub old_dir_ino: u64,
    /// Generation of the directory it left.
    pub old_dir_generation: u32,
    /// Zero.
    pub padding: u32,
    /// Its old name, NUL-terminated; empty when the kernel side could not
    /// read it (the agent then pushes the new place whole, as for a
    /// directory moved in from outside the roots).
    pub old_name: [u8; NAME_BYTES],
}

/// Values of [`InodeEvent::hook`].
pub mod hook {
    /// Tracepoint `timestamp:ctime_ns_xchg` (a multigrain ctime update).
    pub const CTIME_NS_XCHG: u32 = 1;
    /// Tracepoint `timestamp:ctime_xchg_skip` (a ctime update that raced another).
    pub const CTIME_XCHG_SKIP: u32 = 2;
    /// A VFS-hook program (the fexit rung): 16 + its position in
    /// [`vfs_hooks::HOOKS`](super::vfs_hooks::HOOKS).
    pub const VFS_FIRST: u32 = 16;
}

/// The tracepoint rung's contract: the two tracepoints its programs attach
/// to, and the byte offsets of the record fields they read, as in
/// `/sys/kernel/tracing/events/timestamp/*/format` on 6.13 and later. The
/// programs read at these offsets; the agent checks them against the
/// running kernel's format files before loading and refuses the rung on a
/// mismatch.
pub mod tracepoints {
    /// One tracepoint: its category and name, and where its record holds
    /// `dev` (u32, the kernel's encoding), `ino` (u64) and `gen` (u32).
    #[derive(Clone, Copy, Debug)]
    pub struct Tracepoint {
        pub category: &'static str,
        pub name: &'static str,
        pub dev: usize,
        pub ino: usize,
        pub generation: usize,
    }

    impl Tracepoint {
        /// `(format field name, byte offset)` of every field read.
        pub const fn fields(&self) -> [(&'static str, usize); 3] {
            [
                ("dev", self.dev),
                ("ino", self.ino),
                ("gen", self.generation),
            ]
        }
    }

    /// `timestamp:ctime_ns_xchg` (a multigrain ctime update).
    pub const CTIME_NS_XCHG: Tracepoint = Tracepoint {
        category: "timestamp",
        name: "ctime_ns_xchg",
        dev: 8,
        ino: 16,
        generation: 24,
    };

    /// `timestamp:ctime_xchg_skip` (a ctime update that raced another).
    pub const CTIME_XCHG_SKIP: Tracepoint = Tracepoint {
        category: "timestamp",
        name: "ctime_xchg_skip",
        dev: 8,
        ino: 16,
        generation: 36,
    };

    /// Both, in attach order.
    pub const ALL: [Tracepoint; 2] = [CTIME_NS_XCHG, CTIME_XCHG_SKIP];
}

/// The VFS-hook rung's contract: which kernel functions its fexit programs
/// hook, and which kernel struct members they read.
///
/// Struct layouts differ between kernel versions and builds, so the
/// programs carry no compiled-in offsets: each member below is a read-only
/// global of the object (a `u32`, the byte offset), which the agent resolves
/// from the running kernel's BTF (`/sys/kernel/btf/vmlinux`) and sets before
/// loading. A member missing from the BTF refuses the rung; nothing is ever
/// read at a guessed offset.
pub mod vfs_hooks {
    /// One fexit program: its name in the object, the kernel function it
    /// hooks, whether the rung can do without it (a function that a kernel
    /// inlined away or does not have: `vfs_set_acl` before 6.2), and the
    /// prototype the program assumes: the number of arguments (the return
    /// value follows them in an fexit context) and the return value's width
    /// in bytes (4: `int`, 8: `ssize_t`). The agent compares both with the
    /// kernel's BTF and refuses a function whose prototype differs. `entry`
    /// marks the one fentry program (it runs before the function: the old
    /// name of a rename is gone once `d_move` ran).
    #[derive(Clone, Copy, Debug)]
    pub struct Hook {
        pub program: &'static str,
        pub function: &'static str,
        pub required: bool,
        pub args: usize,
        pub returns: usize,
        pub entry: bool,
    }

    const fn hook(
        program: &'static str,
        function: &'static str,
        required: bool,
        args: usize,
        returns: usize,
    ) -> Hook {
        Hook {
            program,
            function,
            required,
            args,
            returns,
            entry: false,
        }
    }

    /// Every program of the rung, in [`hook::VFS_FIRST`](super::hook::VFS_FIRST) order.
    /// What each catches is said at its program in `ebpf/programs/src/vfs.rs`.
    pub const HOOKS: [Hook; 19] = [
        hook("fx_vfs_write", "vfs_write", true, 4, 8),
        hook("fx_vfs_writev", "vfs_writev", false, 5, 8),
        hook("fx_vfs_iter_write", "vfs_iter_write", false, 4, 8),
        hook("fx_vfs_copy_file_range", "vfs_copy_file_range", false, 6, 8),
        hook("fx_vfs_fallocate", "vfs_fallocate", true, 4, 4),
        hook("fx_file_update_time", "file_update_time", true, 1, 4),
        hook("fx_notify_change", "notify_change", true, 4, 4),
        hook("fx_vfs_setxattr", "vfs_setxattr", true, 6, 4),
        hook("fx_vfs_removexattr", "vfs_removexattr", true, 3, 4),
        hook("fx_vfs_set_acl", "vfs_set_acl", false, 4, 4),
        hook("fx_vfs_open", "vfs_open", true, 2, 4),
        hook("fx_vfs_mkdir", "vfs_mkdir", true, 4, 4),
        hook("fx_vfs_mknod", "vfs_mknod", true, 5, 4),
        hook("fx_vfs_symlink", "vfs_symlink", true, 4, 4),
        hook("fx_vfs_link", "vfs_link", true, 5, 4),
        hook("fx_vfs_unlink", "vfs_unlink", true, 4, 4),
        hook("fx_vfs_rmdir", "vfs_rmdir", true, 3, 4),
        hook("fx_vfs_rename", "vfs_rename", true, 1, 4),
        Hook {
            entry: true,
            ..hook("fe_vfs_rename", "vfs_rename", true, 1, 4)
        },
    ];

    /// One struct member the programs read: the object's global that holds
    /// its byte offset, the struct, and the member (a dotted path for a
    /// member of an embedded struct).
    #[derive(Clone, Copy, Debug)]
    pub struct Member {
        pub global: &'static str,
        pub strukt: &'static str,
        pub member: &'static str,
    }

    const fn member(global: &'static str, strukt: &'static str, member: &'static str) -> Member {
        Member {
            global,
            strukt,
            member,
        }
    }

    /// Every member the programs read.
    pub const MEMBERS: [Member; 15] = [
        member("OFF_FILE_INODE", "file", "f_inode"),
        member("OFF_FILE_DENTRY", "file", "f_path.dentry"),
        member("OFF_FILE_MODE", "file", "f_mode"),
        member("OFF_DENTRY_PARENT", "dentry", "d_parent"),
        member("OFF_DENTRY_INODE", "dentry", "d_inode"),
        member("OFF_DENTRY_NAME", "dentry", "d_name.name"),
        member("OFF_INODE_INO", "inode", "i_ino"),
        member("OFF_INODE_SB", "inode", "i_sb"),
        member("OFF_INODE_GENERATION", "inode", "i_generation"),
        member("OFF_SB_DEV", "super_block", "s_dev"),
        member("OFF_RENAME_OLD_DIR", "renamedata", "old_dir"),
        member("OFF_RENAME_OLD_DENTRY", "renamedata", "old_dentry"),
        member("OFF_RENAME_NEW_DIR", "renamedata", "new_dir"),
        member("OFF_RENAME_NEW_DENTRY", "renamedata", "new_dentry"),
        member("OFF_RENAME_FLAGS", "renamedata", "flags"),
    ];

    /// `FMODE_CREATED` (`include/linux/fs.h`, bit 20 from 5.0 through at
    /// least 6.12): `file->f_mode` says the open created the file.
    pub const FMODE_CREATED: u32 = 1 << 20;
}

/// Indexes of the per-CPU `COUNTERS` array (events).
pub mod counter {
    /// Hook invocations.
    pub const SEEN: u32 = 0;
    /// Events written to the ring buffer.
    pub const SENT: u32 = 1;
    /// Events on an untracked device or by the agent itself.
    pub const FILTERED: u32 = 2;
    /// Events lost because the ring buffer was full and so was `DIRTY`, and
    /// rename records that did not fit in the ring buffer.
    pub const DROPPED: u32 = 3;
    /// Events that did not fit in the ring buffer and were kept in `DIRTY`.
    pub const SPILLED: u32 = 4;
    /// Events not sent because an earlier event of the same inode still
    /// waited unread in the ring buffer (see [`CoalesceKey`]).
    pub const COALESCED: u32 = 5;
    /// Number of counters.
    pub const COUNT: u32 = 6;
}

/// Slots of the `DRAINED` array, written by the agent (`u64` each).
pub mod drained {
    /// The highest [`InodeEvent::index`](super::InodeEvent::index) the agent
    /// has read out of the ring buffer, written *before* it resolves the
    /// inodes it read: an event with a higher index may still be unread, or
    /// read and about to be resolved.
    pub const INDEX: u32 = 0;
    /// The `DROPPED` count (summed over CPUs) that the agent has accounted
    /// for: turned into a rescan, or covered by a gap scan at start. Drops
    /// beyond it happened while no agent was reading.
    pub const DROPS: u32 = 1;
    /// Number of slots.
    pub const COUNT: u32 = 2;
}

/// Key of the `LAST` map (the index of each inode's last event sent):
/// `[ino, dev | generation << 32]`, dev in the kernel's encoding. The
/// generation is part of the key so that a reused inode number never
/// inherits another inode's pending event.
///
/// A program skips an event (counted as `COALESCED`) when the inode's last
/// event has an index above `DRAINED[INDEX]`: that event is still unread in
/// the ring buffer, or read but not yet resolved, and the agent resolves
/// (opens and stats) the inode after it reads it, so it sees this change
/// too.
pub type CoalesceKey = [u64; 2];

/// The [`CoalesceKey`] of an inode.
pub fn coalesce_key(ino: u64, dev: u32, generation: u32) -> CoalesceKey {
    [ino, dev as u64 | (generation as u64) << 32]
}

/// Key of the `DIRTY` map (the inodes whose events did not fit in the ring
/// buffer): `[ino, dev]`, dev in the kernel's encoding; the value is the
/// inode's generation.
pub type DirtyKey = [u64; 2];

#[cfg(test)]
mod tests {
    use super::ChangeKind;

    #[test]
    fn inode_event_has_the_layout_the_ring_buffer_reader_expects() {
        assert_eq!(core::mem::size_of::<super::InodeEvent>(), 48);
        assert_eq!(core::mem::align_of::<super::InodeEvent>(), 8);
        assert_eq!(core::mem::size_of::<super::RenameEvent>(), 320);
    }

    #[test]
    fn every_kind_round_trips_through_its_byte() {
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::from_u8(kind as u8), Some(kind));
        }
        assert_eq!(ChangeKind::from_u8(0), None);
        assert_eq!(ChangeKind::from_u8(8), None);
    }
}
