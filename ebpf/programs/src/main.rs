//! fsjournal's kernel-side capture programs: the tracepoint rung.
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
#![no_std]
#![no_main]

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid};
use aya_ebpf::macros::{map, tracepoint};
use aya_ebpf::maps::{Array, HashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::TracePointContext;
use fsjournal_common::{counter, hook, DirtyKey, InodeEvent};

/// `BPF_RB_NO_WAKEUP` from `include/uapi/linux/bpf.h`.
const BPF_RB_NO_WAKEUP: u64 = 1;

/// Field offsets in the tracepoint records (bytes), from
/// `/sys/kernel/tracing/events/timestamp/*/format`; the agent refuses to load
/// when the running kernel's format files disagree.
const DEV_OFFSET: usize = 8;
const INO_OFFSET: usize = 16;
const CTIME_NS_XCHG_GEN_OFFSET: usize = 24;
const CTIME_XCHG_SKIP_GEN_OFFSET: usize = 36;

/// Events to userspace (size set by the agent at load time).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 25, 0);

/// Tracked devices (kernel dev_t encoding) → 1.
#[map]
static DEVS: HashMap<u32, u8> = HashMap::with_max_entries(64, 0);

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

#[tracepoint]
pub fn ctime_ns_xchg(ctx: TracePointContext) -> u32 {
    record(&ctx, CTIME_NS_XCHG_GEN_OFFSET, hook::CTIME_NS_XCHG)
}

#[tracepoint]
pub fn ctime_xchg_skip(ctx: TracePointContext) -> u32 {
    record(&ctx, CTIME_XCHG_SKIP_GEN_OFFSET, hook::CTIME_XCHG_SKIP)
}

#[inline(always)]
fn bump(index: u32) {
    if let Some(count) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot, only this CPU writes it.
        unsafe { *count += 1 };
    }
}

#[inline(always)]
fn record(ctx: &TracePointContext, generation_offset: usize, hook: u32) -> u32 {
    bump(counter::SEEN);
    // SAFETY: offsets inside the tracepoint record, checked by the agent.
    let Ok(dev) = (unsafe { ctx.read_at::<u32>(DEV_OFFSET) }) else { return 0 };
    // SAFETY: a map lookup; the value is not kept.
    if unsafe { DEVS.get(dev) }.is_none() {
        bump(counter::FILTERED);
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if AGENT.get(0).is_some_and(|agent| *agent == tgid) {
        bump(counter::FILTERED);
        return 0;
    }
    // SAFETY: as above.
    let (Ok(ino), Ok(generation)) = (unsafe { ctx.read_at::<u64>(INO_OFFSET) }, unsafe { ctx.read_at::<u32>(generation_offset) }) else {
        return 0;
    };
    let event = InodeEvent { ino, dev, generation, tgid, hook, comm: bpf_get_current_comm().unwrap_or([0; 16]) };
    match EVENTS.output::<InodeEvent>(&event, BPF_RB_NO_WAKEUP) {
        Ok(()) => bump(counter::SENT),
        Err(_) => match DIRTY.insert(&[ino, dev as u64], &generation, 0) {
            Ok(()) => bump(counter::SPILLED),
            Err(_) => bump(counter::DROPPED),
        },
    }
    0
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
