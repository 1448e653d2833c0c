//! fsjournal's kernel-side capture programs: the tracepoint rung, and the
//! VFS-hook rung in `vfs.rs`.
//!
//! Two classic tracepoints fire whenever the kernel moves an inode's ctime
//! on a multigrain filesystem (ext4, xfs, btrfs, tmpfs): every write,
//! truncate, chmod/chown, utimes, xattr change, link, unlink, rename, create
//! (on the new inode and on its directory). Their records carry dev, ino and
//! generation as plain fields (stable `format` files, no struct reads, so no
//! kernel offsets are compiled in beyond the tracepoint field offsets, which
//! the agent checks against the running kernel's format files before
//! loading). See docs/ebpf-research.md for what fires when, and what is
//! missed.
//!
//! Filtering happens here: only devices in `DEVS` pass, never the agent's
//! own process. Events go to the `EVENTS` ring buffer without a wake-up
//! (`BPF_RB_NO_WAKEUP`): the agent drains it on its own schedule. When the
//! ring buffer is full the inode goes to the `DIRTY` hash map instead
//! (`COUNTERS[SPILLED]`); only when that is full too is the event lost
//! (`COUNTERS[DROPPED]`), which the agent turns into a rescan.
//!
//! Coalescing: each event sent carries an index from one shared counter
//! (`SEQ`), and `LAST` remembers, per inode, the index of its last event
//! sent. The agent writes the highest index it has read into `DRAINED`
//! before it resolves what it read. An event whose inode's last event lies
//! above `DRAINED` is skipped (`COUNTERS[COALESCED]`): that earlier event is
//! still unread, or read but not yet resolved, and resolving it (an `open` by
//! handle and a `stat`, after this change) covers this change too. A busy
//! file thus costs one ring-buffer record per agent drain, and while no agent
//! runs, one in all.
//!
//! Two rungs share these maps and `send`: the tracepoint programs below
//! (kernels 6.13 and later) and the VFS-hook programs of `vfs.rs` (fexit;
//! kernels whose BPF trampolines work, 6.1 and 6.12 among them). The agent
//! attaches one rung or the other, never both.
#![no_std]
#![no_main]
// `AtomicU64::fetch_add` is not offered on bpfel-unknown-none (no
// compare-and-swap); the intrinsic compiles to BPF's atomic fetch-and-add.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use core::intrinsics::{atomic_xadd, AtomicOrdering};
use core::ptr::addr_of_mut;

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes,
};
use aya_ebpf::macros::{map, tracepoint};
use aya_ebpf::maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::TracePointContext;

mod vfs;
use fsjournal_common::tracepoints::{self, Tracepoint};
use fsjournal_common::{
    coalesce_key, counter, drained, hook, CoalesceKey, DirtyKey, InodeEvent, RenameEvent,
};

/// `BPF_RB_NO_WAKEUP` from `include/uapi/linux/bpf.h`.
const BPF_RB_NO_WAKEUP: u64 = 1;

/// Events to userspace (size set by the agent at load time).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 25, 0);

/// Tracked devices (kernel dev_t encoding) → 1.
#[map]
static DEVS: HashMap<u32, u8> = HashMap::with_max_entries(64, 0);

/// The roots' directories, `[ino, dev]` (dev in the kernel's encoding) → 1:
/// the VFS-hook rung sends only what lies below one of them (set by the
/// agent at start).
#[map]
static ROOTS: HashMap<[u64; 2], u8> = HashMap::with_max_entries(256, 0);

/// Inodes whose events did not fit in the ring buffer (set by the agent at
/// load time): a bounded spill-over, drained with the ring buffer, so a burst
/// or a long stop loses nothing until this fills up too.
#[map]
static DIRTY: HashMap<DirtyKey, u32> = HashMap::with_max_entries(1 << 16, 0);

/// Per-CPU counters, indexed by `fsjournal_common::counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// `[0]`: the running agent's tgid, whose own I/O must not feed back; 0
/// while no agent runs (set by the agent at start and at a clean stop, so a
/// process that reuses a stopped agent's pid is never filtered).
#[map]
static AGENT: Array<u32> = Array::with_max_entries(1, 0);

/// `[0]`: the index of the last event sent (events are numbered from 1).
#[map]
static SEQ: Array<u64> = Array::with_max_entries(1, 0);

/// Written by the agent, indexed by `fsjournal_common::drained`: the highest
/// event index it has read, and the drops it has accounted for.
#[map]
static DRAINED: Array<u64> = Array::with_max_entries(drained::COUNT, 0);

/// Per inode ([`CoalesceKey`]), the index of its last event sent. Least
/// recently used inodes are forgotten: their next event is sent.
#[map]
static LAST: LruHashMap<CoalesceKey, u64> = LruHashMap::with_max_entries(1 << 16, 0);

#[tracepoint]
pub fn ctime_ns_xchg(ctx: TracePointContext) -> u32 {
    record(&ctx, &tracepoints::CTIME_NS_XCHG, hook::CTIME_NS_XCHG)
}

#[tracepoint]
pub fn ctime_xchg_skip(ctx: TracePointContext) -> u32 {
    record(&ctx, &tracepoints::CTIME_XCHG_SKIP, hook::CTIME_XCHG_SKIP)
}

#[inline(always)]
fn bump(index: u32) {
    if let Some(count) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot, only this CPU writes it.
        unsafe { *count += 1 };
    }
}

/// Sends the record of the inode a tracepoint's record names.
#[inline(always)]
fn record(ctx: &TracePointContext, tracepoint: &Tracepoint, hook: u32) -> u32 {
    // SAFETY: offsets inside the tracepoint record, checked by the agent.
    let (Ok(dev), Ok(ino), Ok(generation)) = (
        unsafe { ctx.read_at::<u32>(tracepoint.dev) },
        unsafe { ctx.read_at::<u64>(tracepoint.ino) },
        unsafe { ctx.read_at::<u32>(tracepoint.generation) },
    ) else {
        return 0;
    };
    send(dev, ino, generation, hook, || true);
    0
}

/// The filters every record passes first: a tracked device, not the
/// agent's own process. Counts the record as seen, and as filtered when it
/// fails; the sender's tgid when it passes.
#[inline(always)]
fn admitted(dev: u32) -> Option<u32> {
    bump(counter::SEEN);
    // SAFETY: a map lookup; the value is not kept.
    if unsafe { DEVS.get(dev) }.is_none() {
        bump(counter::FILTERED);
        return None;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if AGENT.get(0).is_some_and(|agent| *agent == tgid) {
        bump(counter::FILTERED);
        return None;
    }
    Some(tgid)
}

/// The next event index (from 1, one counter shared by every CPU).
#[inline(always)]
fn next_index() -> Option<u64> {
    let seq = SEQ.get_ptr_mut(0)?;
    // SAFETY: an array slot shared by every CPU, only ever updated atomically.
    // SeqCst, not Relaxed: LLVM 22 compiles a relaxed fetch-and-add whose
    // result is used to BPF's XADD without BPF_FETCH and reuses the addend
    // as the "result" (every event numbered 2).
    Some(unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(seq, 1) } + 1)
}

/// The record of one inode, as every rung sends it.
#[inline(always)]
fn inode_event(
    dev: u32,
    ino: u64,
    generation: u32,
    tgid: u32,
    hook: u32,
    index: u64,
) -> InodeEvent {
    InodeEvent {
        ino,
        dev,
        generation,
        tgid,
        hook,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        index,
    }
}

/// Filters, coalesces and sends one inode's record: shared by both rungs.
/// `in_roots` is asked last, only about a record that would be sent: the
/// VFS-hook rung walks the dentry's ancestry there (the tracepoint rung has
/// no dentry and passes `|| true`).
#[inline(always)]
pub(crate) fn send(
    dev: u32,
    ino: u64,
    generation: u32,
    hook: u32,
    in_roots: impl FnOnce() -> bool,
) {
    let Some(tgid) = admitted(dev) else { return };
    let key = coalesce_key(ino, dev, generation);
    let drained = DRAINED.get(drained::INDEX).copied().unwrap_or(0);
    // SAFETY: a map lookup; the value is copied.
    if unsafe { LAST.get(key) }.is_some_and(|last| *last > drained) {
        bump(counter::COALESCED);
        return;
    }
    if !in_roots() {
        bump(counter::FILTERED);
        return;
    }
    let Some(index) = next_index() else { return };
    let event = inode_event(dev, ino, generation, tgid, hook, index);
    match EVENTS.output::<InodeEvent>(&event, BPF_RB_NO_WAKEUP) {
        Ok(()) => {
            // Only an event in the ring buffer may hold later ones back.
            let _ = LAST.insert(key, index, 0);
            bump(counter::SENT)
        }
        Err(_) => match DIRTY.insert([ino, dev as u64], generation, 0) {
            Ok(()) => bump(counter::SPILLED),
            Err(_) => bump(counter::DROPPED),
        },
    }
}

/// One rename, as the VFS-hook rung sends it: the moved inode
/// (`dev`, `ino`, `generation`), the directory it left (same device) and
/// its old name, read from `old_name` (a NUL-terminated kernel string).
pub(crate) struct Rename {
    pub dev: u32,
    pub ino: u64,
    pub generation: u32,
    pub old_dir_ino: u64,
    pub old_dir_generation: u32,
    pub old_name: u64,
}

/// Filters and sends a [`RenameEvent`], never coalesced (the old name is
/// in no later record). One that does not fit in the ring buffer counts as
/// dropped: the agent rescans.
#[inline(always)]
pub(crate) fn send_rename(rename: &Rename, hook: u32, in_roots: impl FnOnce() -> bool) {
    let Some(tgid) = admitted(rename.dev) else {
        return;
    };
    if !in_roots() {
        bump(counter::FILTERED);
        return;
    }
    let Some(index) = next_index() else { return };
    let Some(mut entry) = EVENTS.reserve::<RenameEvent>(0) else {
        bump(counter::DROPPED);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at the reserved, exclusively owned record;
    // every field is written before it is submitted.
    unsafe {
        addr_of_mut!((*event).inode).write(inode_event(
            rename.dev,
            rename.ino,
            rename.generation,
            tgid,
            hook,
            index,
        ));
        addr_of_mut!((*event).old_dir_ino).write(rename.old_dir_ino);
        addr_of_mut!((*event).old_dir_generation).write(rename.old_dir_generation);
        addr_of_mut!((*event).padding).write(0);
        let name = &mut *addr_of_mut!((*event).old_name);
        name[0] = 0;
        if rename.old_name != 0 {
            let _ = bpf_probe_read_kernel_str_bytes(rename.old_name as *const u8, name);
        }
    }
    entry.submit(BPF_RB_NO_WAKEUP);
    bump(counter::SENT);
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
