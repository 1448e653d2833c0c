//! The VFS-hook rung: fexit programs on the VFS entry points every change
//! to a file goes through, for kernels without the `timestamp` tracepoints
//! (before 6.13: Debian 12's 6.1, Debian 13's 6.12, Ubuntu, RHEL). Each
//! program runs after its function returned, and only a call that succeeded
//! sends anything: the same (dev, ino, generation) records as the
//! tracepoint rung, for the changed inode and, for a change to a directory's
//! entries, for the directory (whose ctime the kernel moved too), so the
//! agent resolves both rungs' records one way.
//!
//! Which program catches what:
//! - content: `vfs_write` (write, pwrite), `vfs_writev` (writev, pwritev:
//!   where the kernel kept it out of line), `vfs_iter_write` (splice to a
//!   file, loop and overlayfs), `vfs_copy_file_range`, `vfs_fallocate`, and
//!   `file_update_time`, which the page-fault path of a shared writable
//!   mapping calls (`*_page_mkwrite`) and io_uring's writes reach through
//!   the filesystem's `write_iter`;
//! - metadata: `notify_change` (chmod, chown, utimes, truncate and
//!   ftruncate, O_TRUNC), `vfs_setxattr`, `vfs_removexattr`, `vfs_set_acl`
//!   (6.2 and later: POSIX ACLs no longer pass `vfs_setxattr`);
//! - names: `vfs_open` with `FMODE_CREATED` (open with O_CREAT that created
//!   the file), `vfs_mkdir`, `vfs_mknod`, `vfs_symlink`, `vfs_link`,
//!   `vfs_unlink`, `vfs_rmdir`, `vfs_rename` (also RENAME_EXCHANGE and a
//!   rename over an existing entry).
//!
//! Missed: a store through a shared mapping to a page that is already
//! dirty and writable (no fault, no hook; it is caught at the page's next
//! write fault after writeback, and fanotify misses it too), and changes
//! made without the VFS (a block device written underneath, a network
//! filesystem's other clients).
//!
//! Kernel struct offsets come from the running kernel's BTF through the
//! read-only globals below (see `fsjournal_common::vfs_hooks::MEMBERS`).

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes,
};
use aya_ebpf::macros::{fentry, fexit, map};
use aya_ebpf::maps::{LruHashMap, PerCpuArray};
use aya_ebpf::programs::{FEntryContext, FExitContext};
use fsjournal_common::vfs_hooks::{FMODE_CREATED, HOOKS};
use fsjournal_common::{hook, NAME_BYTES};

use crate::{send, send_rename, Rename, ROOTS};

/// Per task (`pid_tgid`), the old name of the rename it is doing, from
/// [`fe_vfs_rename`] to [`fx_vfs_rename`]: after `d_move` the moved dentry
/// carries its new name, and the old one may be freed. Least recently used
/// entries go first (a task killed between the two programs leaves one).
#[map]
static RENAMING: LruHashMap<u64, [u8; NAME_BYTES]> = LruHashMap::with_max_entries(4096, 0);

/// Per CPU, room to read a name into before it is copied to `RENAMING` (the
/// BPF stack is 512 bytes).
#[map]
static NAME_SCRATCH: PerCpuArray<[u8; NAME_BYTES]> = PerCpuArray::with_max_entries(1, 0);

/// How many ancestors [`in_roots`] looks at before it lets a record through
/// for the agent to judge (a path 64 directories deep below its
/// filesystem's root).
const MAX_DEPTH: u32 = 64;

// Byte offsets of kernel struct members, set by the agent before load from
// the running kernel's BTF (names: fsjournal_common::vfs_hooks::MEMBERS).
#[no_mangle]
static OFF_FILE_INODE: u32 = 0;
#[no_mangle]
static OFF_FILE_DENTRY: u32 = 0;
#[no_mangle]
static OFF_FILE_MODE: u32 = 0;
#[no_mangle]
static OFF_DENTRY_PARENT: u32 = 0;
#[no_mangle]
static OFF_DENTRY_INODE: u32 = 0;
#[no_mangle]
static OFF_DENTRY_NAME: u32 = 0;
#[no_mangle]
static OFF_INODE_INO: u32 = 0;
#[no_mangle]
static OFF_INODE_SB: u32 = 0;
#[no_mangle]
static OFF_INODE_GENERATION: u32 = 0;
#[no_mangle]
static OFF_SB_DEV: u32 = 0;
#[no_mangle]
static OFF_RENAME_OLD_DIR: u32 = 0;
#[no_mangle]
static OFF_RENAME_OLD_DENTRY: u32 = 0;
#[no_mangle]
static OFF_RENAME_NEW_DIR: u32 = 0;
#[no_mangle]
static OFF_RENAME_NEW_DENTRY: u32 = 0;
#[no_mangle]
static OFF_RENAME_FLAGS: u32 = 0;

/// `RENAME_EXCHANGE` from `include/uapi/linux/fs.h`.
const RENAME_EXCHANGE: u32 = 1 << 1;

/// An offset global (a volatile read: the value is set at load time).
#[inline(always)]
fn offset(global: &u32) -> u64 {
    // SAFETY: a read of a global of this object.
    unsafe { core::ptr::read_volatile(global) as u64 }
}

/// The pointer at `base + offset` (0 when unreadable or `base` is null).
#[inline(always)]
fn pointer(base: u64, global: &u32) -> u64 {
    if base == 0 {
        return 0;
    }
    // SAFETY: bpf_probe_read_kernel checks the address.
    unsafe { bpf_probe_read_kernel((base + offset(global)) as *const u64) }.unwrap_or(0)
}

/// The `u32` at `base + offset` (0 when unreadable).
#[inline(always)]
fn word(base: u64, global: &u32) -> u32 {
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel((base + offset(global)) as *const u32) }.unwrap_or(0)
}

/// Sends the record of one `struct inode *` (nothing for a null pointer),
/// if `dentry` (one of its names, or of a directory below which it was
/// changed; 0 when there is none) lies below a root.
#[inline(always)]
fn send_inode(inode: u64, dentry: u64, hook: u32) {
    let Some((dev, ino, generation)) = identity(inode) else {
        return;
    };
    send(dev, ino, generation, hook, || {
        dentry == 0 || in_roots(dentry, dev)
    });
}

/// `(dev, ino, generation)` of a `struct inode *`: what every record names
/// (`None` for a null pointer or an unreadable inode).
#[inline(always)]
fn identity(inode: u64) -> Option<(u32, u64, u32)> {
    if inode == 0 {
        return None;
    }
    let sb = pointer(inode, &OFF_INODE_SB);
    if sb == 0 {
        return None;
    }
    let ino = ino_of(inode)?;
    Some((
        word(sb, &OFF_SB_DEV),
        ino,
        word(inode, &OFF_INODE_GENERATION),
    ))
}

/// Sends the record of a `struct dentry *`'s inode, filtered by its own
/// ancestry.
#[inline(always)]
fn send_dentry(dentry: u64, hook: u32) {
    send_inode(dentry_inode(dentry), dentry, hook);
}

/// The inode number of a `struct inode *`.
#[inline(always)]
fn ino_of(inode: u64) -> Option<u64> {
    // SAFETY: bpf_probe_read_kernel checks the address.
    unsafe { bpf_probe_read_kernel((inode + offset(&OFF_INODE_INO)) as *const u64) }.ok()
}

/// Whether `dentry` or one of its ancestors (through `d_parent`, within its
/// filesystem) is a root's directory: `ROOTS` holds `[ino, dev]` of each.
/// A path deeper than [`MAX_DEPTH`] is let through for the agent to judge.
#[inline(always)]
fn in_roots(dentry: u64, dev: u32) -> bool {
    let mut current = dentry;
    for _ in 0..MAX_DEPTH {
        let inode = dentry_inode(current);
        if inode != 0 {
            if let Some(ino) = ino_of(inode) {
                // SAFETY: a map lookup; the value is not kept.
                if unsafe { ROOTS.get([ino, dev as u64]) }.is_some() {
                    return true;
                }
            }
        }
        let parent = pointer(current, &OFF_DENTRY_PARENT);
        if parent == 0 || parent == current {
            return false;
        }
        current = parent;
    }
    true
}

/// Sends the record of a `struct file *`'s inode, filtered by the ancestry
/// of the dentry it was opened through.
#[inline(always)]
fn send_file(file: u64, hook: u32) {
    send_inode(file_inode(file), pointer(file, &OFF_FILE_DENTRY), hook);
}

/// The inode of a `struct dentry *` (0 for a negative dentry).
#[inline(always)]
fn dentry_inode(dentry: u64) -> u64 {
    pointer(dentry, &OFF_DENTRY_INODE)
}

/// The inode of a `struct file *`.
#[inline(always)]
fn file_inode(file: u64) -> u64 {
    pointer(file, &OFF_FILE_INODE)
}

/// The `n`th argument (0-based) of the hooked function.
#[inline(always)]
fn arg(ctx: &FExitContext, n: usize) -> u64 {
    ctx.arg::<u64>(n)
}

/// Hook `n` of `fsjournal_common::vfs_hooks::HOOKS` returned success: 0
/// from a function returning `int` (read as 32 bits: the upper half of the
/// register is not part of an `int`), a byte count above 0 from one
/// returning `ssize_t`. The return value follows the function's arguments
/// in an fexit context; the agent has checked both numbers against the
/// kernel's BTF.
#[inline(always)]
fn succeeded(ctx: &FExitContext, n: usize) -> bool {
    let hook = HOOKS[n];
    if hook.returns == 8 {
        ctx.arg::<i64>(hook.args) > 0
    } else {
        ctx.arg::<i32>(hook.args) == 0
    }
}

/// The record kind of program `n` of `fsjournal_common::vfs_hooks::HOOKS`.
const fn vfs(n: usize) -> u32 {
    hook::VFS_FIRST + n as u32
}

#[fexit(function = "vfs_write")]
pub fn fx_vfs_write(ctx: FExitContext) -> i32 {
    // ssize_t vfs_write(struct file *, const char __user *, size_t, loff_t *)
    if succeeded(&ctx, 0) {
        send_file(arg(&ctx, 0), vfs(0));
    }
    0
}

#[fexit(function = "vfs_writev")]
pub fn fx_vfs_writev(ctx: FExitContext) -> i32 {
    // ssize_t vfs_writev(struct file *, const struct iovec __user *, unsigned long, loff_t *, rwf_t)
    if succeeded(&ctx, 1) {
        send_file(arg(&ctx, 0), vfs(1));
    }
    0
}

#[fexit(function = "vfs_iter_write")]
pub fn fx_vfs_iter_write(ctx: FExitContext) -> i32 {
    // ssize_t vfs_iter_write(struct file *, struct iov_iter *, loff_t *, rwf_t)
    if succeeded(&ctx, 2) {
        send_file(arg(&ctx, 0), vfs(2));
    }
    0
}

#[fexit(function = "vfs_copy_file_range")]
pub fn fx_vfs_copy_file_range(ctx: FExitContext) -> i32 {
    // ssize_t vfs_copy_file_range(struct file *in, loff_t, struct file *out, loff_t, size_t, unsigned int)
    if succeeded(&ctx, 3) {
        send_file(arg(&ctx, 2), vfs(3));
    }
    0
}

#[fexit(function = "vfs_fallocate")]
pub fn fx_vfs_fallocate(ctx: FExitContext) -> i32 {
    // int vfs_fallocate(struct file *, int mode, loff_t offset, loff_t len)
    if succeeded(&ctx, 4) {
        send_file(arg(&ctx, 0), vfs(4));
    }
    0
}

#[fexit(function = "file_update_time")]
pub fn fx_file_update_time(ctx: FExitContext) -> i32 {
    // int file_update_time(struct file *)
    if succeeded(&ctx, 5) {
        send_file(arg(&ctx, 0), vfs(5));
    }
    0
}

#[fexit(function = "notify_change")]
pub fn fx_notify_change(ctx: FExitContext) -> i32 {
    // int notify_change(idmap, struct dentry *, struct iattr *, struct inode **)
    if succeeded(&ctx, 6) {
        send_dentry(arg(&ctx, 1), vfs(6));
    }
    0
}

#[fexit(function = "vfs_setxattr")]
pub fn fx_vfs_setxattr(ctx: FExitContext) -> i32 {
    // int vfs_setxattr(idmap, struct dentry *, const char *, const void *, size_t, int)
    if succeeded(&ctx, 7) {
        send_dentry(arg(&ctx, 1), vfs(7));
    }
    0
}

#[fexit(function = "vfs_removexattr")]
pub fn fx_vfs_removexattr(ctx: FExitContext) -> i32 {
    // int vfs_removexattr(idmap, struct dentry *, const char *)
    if succeeded(&ctx, 8) {
        send_dentry(arg(&ctx, 1), vfs(8));
    }
    0
}

#[fexit(function = "vfs_set_acl")]
pub fn fx_vfs_set_acl(ctx: FExitContext) -> i32 {
    // int vfs_set_acl(idmap, struct dentry *, const char *, struct posix_acl *)
    if succeeded(&ctx, 9) {
        send_dentry(arg(&ctx, 1), vfs(9));
    }
    0
}

#[fexit(function = "vfs_open")]
pub fn fx_vfs_open(ctx: FExitContext) -> i32 {
    // int vfs_open(const struct path *, struct file *): the file and its
    // directory, when this open created it.
    let file = arg(&ctx, 1);
    if succeeded(&ctx, 10) && word(file, &OFF_FILE_MODE) & FMODE_CREATED != 0 {
        let dentry = pointer(file, &OFF_FILE_DENTRY);
        send_dentry(pointer(dentry, &OFF_DENTRY_PARENT), vfs(10));
        send_file(file, vfs(10));
    }
    0
}

/// Hook `n`, `int vfs_*(idmap, struct inode *dir, struct dentry *, ...)`,
/// succeeded: the directory and the new (or remaining) inode.
#[inline(always)]
fn entry_changed(ctx: &FExitContext, n: usize) {
    let hook = vfs(n);
    if succeeded(ctx, n) {
        let dentry = arg(ctx, 2);
        send_inode(arg(ctx, 1), pointer(dentry, &OFF_DENTRY_PARENT), hook);
        send_dentry(dentry, hook);
    }
}

#[fexit(function = "vfs_mkdir")]
pub fn fx_vfs_mkdir(ctx: FExitContext) -> i32 {
    // int vfs_mkdir(idmap, struct inode *, struct dentry *, umode_t)
    entry_changed(&ctx, 11);
    0
}

#[fexit(function = "vfs_mknod")]
pub fn fx_vfs_mknod(ctx: FExitContext) -> i32 {
    // int vfs_mknod(idmap, struct inode *, struct dentry *, umode_t, dev_t)
    entry_changed(&ctx, 12);
    0
}

#[fexit(function = "vfs_symlink")]
pub fn fx_vfs_symlink(ctx: FExitContext) -> i32 {
    // int vfs_symlink(idmap, struct inode *, struct dentry *, const char *)
    entry_changed(&ctx, 13);
    0
}

#[fexit(function = "vfs_link")]
pub fn fx_vfs_link(ctx: FExitContext) -> i32 {
    // int vfs_link(struct dentry *old, idmap, struct inode *dir, struct dentry *new, struct inode **)
    if succeeded(&ctx, 14) {
        let new = arg(&ctx, 3);
        send_inode(arg(&ctx, 2), pointer(new, &OFF_DENTRY_PARENT), vfs(14));
        send_inode(dentry_inode(arg(&ctx, 0)), new, vfs(14));
    }
    0
}

#[fexit(function = "vfs_unlink")]
pub fn fx_vfs_unlink(ctx: FExitContext) -> i32 {
    // int vfs_unlink(idmap, struct inode *dir, struct dentry *, struct inode **):
    // the directory, and the inode when other names keep it (its link count moved).
    entry_changed(&ctx, 15);
    0
}

#[fexit(function = "vfs_rmdir")]
pub fn fx_vfs_rmdir(ctx: FExitContext) -> i32 {
    // int vfs_rmdir(idmap, struct inode *dir, struct dentry *)
    if succeeded(&ctx, 16) {
        send_inode(
            arg(&ctx, 1),
            pointer(arg(&ctx, 2), &OFF_DENTRY_PARENT),
            vfs(16),
        );
    }
    0
}

#[fentry(function = "vfs_rename")]
pub fn fe_vfs_rename(ctx: FEntryContext) -> i32 {
    // int vfs_rename(struct renamedata *): before the rename, keep the
    // moved dentry's name for fx_vfs_rename (on a tracked device only).
    let rd = ctx.arg::<u64>(0);
    let moved = pointer(rd, &OFF_RENAME_OLD_DENTRY);
    let sb = pointer(pointer(rd, &OFF_RENAME_OLD_DIR), &OFF_INODE_SB);
    // SAFETY: a map lookup; the value is not kept.
    if moved == 0 || sb == 0 || unsafe { crate::DEVS.get(word(sb, &OFF_SB_DEV)) }.is_none() {
        return 0;
    }
    let name = pointer(moved, &OFF_DENTRY_NAME);
    let Some(scratch) = NAME_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    if name == 0 {
        return 0;
    }
    // SAFETY: a per-CPU slot, used only within this program run.
    let scratch = unsafe { &mut *scratch };
    // SAFETY: bpf_probe_read_kernel_str checks the address.
    if unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, scratch) }.is_ok() {
        let _ = RENAMING.insert(bpf_get_current_pid_tgid(), scratch, 0);
    }
    0
}

#[fexit(function = "vfs_rename")]
pub fn fx_vfs_rename(ctx: FExitContext) -> i32 {
    // int vfs_rename(struct renamedata *): both directories, and a rename
    // record of the moved inode (its old name kept by fe_vfs_rename) and,
    // for RENAME_EXCHANGE, of the other one, which left the new directory
    // under the moved one's new name (after d_move the dentries still point
    // at the inodes they named).
    let task = bpf_get_current_pid_tgid();
    if succeeded(&ctx, 17) {
        let rd = arg(&ctx, 0);
        let (moved, other) = (
            pointer(rd, &OFF_RENAME_OLD_DENTRY),
            pointer(rd, &OFF_RENAME_NEW_DENTRY),
        );
        let (old_dir, new_dir) = (
            pointer(rd, &OFF_RENAME_OLD_DIR),
            pointer(rd, &OFF_RENAME_NEW_DIR),
        );
        // After d_move the moved dentry hangs below the new directory. The
        // old directory's dentry is no longer at hand (a plain rename leaves
        // the target below the new one too): it passes on its device alone,
        // and the agent places it.
        send_inode(old_dir, 0, vfs(17));
        send_inode(new_dir, pointer(moved, &OFF_DENTRY_PARENT), vfs(17));
        let old_name = RENAMING.get_ptr(task).map_or(0, |name| name as u64);
        send_moved(moved, old_dir, old_name);
        if word(rd, &OFF_RENAME_FLAGS) & RENAME_EXCHANGE != 0 {
            send_moved(other, new_dir, pointer(moved, &OFF_DENTRY_NAME));
        }
    }
    let _ = RENAMING.remove(task);
    0
}

/// Sends the rename record of `dentry`'s inode, which left directory
/// `old_dir` (a `struct inode *`) where it was named `old_name` (a kernel
/// string; 0 when unknown), filtered by its new ancestry.
#[inline(always)]
fn send_moved(dentry: u64, old_dir: u64, old_name: u64) {
    let (Some((dev, ino, generation)), Some((_, old_dir_ino, old_dir_generation))) =
        (identity(dentry_inode(dentry)), identity(old_dir))
    else {
        return;
    };
    let rename = Rename {
        dev,
        ino,
        generation,
        old_dir_ino,
        old_dir_generation,
        old_name,
    };
    send_rename(&rename, vfs(17), || in_roots(dentry, dev));
}
