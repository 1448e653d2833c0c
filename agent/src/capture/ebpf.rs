//! The eBPF backend: kernel programs report (dev, ino, generation) of
//! every inode whose content, metadata or entries changed; userspace turns
//! that into a path with `open_by_handle_at`.
//!
//! The attach ladder: rung 1 is the VFS-hook rung (`vfs_hooks.rs`: fexit
//! programs on `vfs_write`, `notify_change`, `vfs_rename`, ..., with struct
//! offsets read from the running kernel's BTF), for kernels with BPF
//! trampolines (Debian's 6.1 and 6.12, and every kernel before 6.13); rung
//! 2 is the tracepoint rung (`timestamp:ctime_ns_xchg` and
//! `timestamp:ctime_xchg_skip`, kernels 6.13 and later, and the only eBPF
//! rung where trampolines are refused, as on this project's VM); rung 3 is
//! fanotify, which `auto` falls back to when this module cannot arm
//! (programs not built, bpffs/tracefs missing, both rungs refused, a
//! filesystem whose file handles we cannot build — tmpfs among them: its
//! handles decode only for inodes that were exported before). Both eBPF
//! rungs send the same records into the same maps, so everything below the
//! attach step is one code path.
//!
//! From inode to change: a file becomes an entry push. A directory's ctime
//! moves when an entry in it is created, deleted or renamed: such a
//! directory becomes a *contents* push (`-d --delete`: deletions reach the
//! target without knowing the deleted names), and one that was renamed or
//! moved in a *subtree* push. How a drain tells the two apart
//! ([`DirectoryJudge`]) depends on the rung: the VFS-hook rung sends a
//! rename record (the moved inode, its old directory and old name, from an
//! fentry/fexit pair on `vfs_rename`) for every rename, directories and
//! files alike, which the journal keeps as a rename; the tracepoint rung's
//! records carry no kind, so a directory index (built by one walk at
//! start) remembers where every directory was, and a directory found
//! anywhere else moved. An inode that is already gone (ESTALE) is skipped:
//! its directory's ctime moved as well. When the ring buffer is full, the programs keep the
//! inode in a bounded hash map (`capture.dirty_inodes`) that is drained with
//! it; only when that is full too is an event lost, counted, and turned into
//! a rescan of every root. A change to a hard-linked file reaches all its
//! names in the root (see `hard_links.rs`).
//!
//! Coalescing happens in the kernel: a program skips an event while the
//! inode's previous event still waits unread (see `ebpf/programs`); each
//! drain tells the programs how far it has read (`DRAINED`) *before* it
//! resolves what it read, so every skipped change happened before the
//! resolution that covers it.
//!
//! Start-up order: the programs attach first. On the VFS-hook rung that is
//! all: capture is ready, whatever the tree's size. On the tracepoint rung
//! the directory index is then built by one walk of each root; whatever
//! happens during the walk waits in the ring buffer, and the first drain
//! judges its directories the way it judges a pinned backlog (the walk may
//! already have seen them at their new place).

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{FEntry, FExit, ProgramError, TracePoint};
use aya::{Ebpf, EbpfLoader};
use fsjournal_common::tracepoints::{self, Tracepoint};
use fsjournal_common::vfs_hooks::Hook;
use fsjournal_common::{counter, drained, ChangeKind, DirtyKey, InodeEvent, RenameEvent};

use super::dir_index::{entry_of, DirIndex};
use super::handle::{self, FileHandle};
use super::hard_links::HardLinks;
use super::vfs_hooks::{self, Plan};
use super::{Backend, Root, Sink, Stats};
use crate::config::CaptureConfig;
use crate::journal::{ArmTimes, Change, RootId, Scope};

/// The kernel-side object, embedded by build.rs (empty when not built).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fsjournal-ebpf.o"));

/// Maps pinned in bpffs, so that what the programs record while no agent
/// runs survives until the next one. A pin directory that lacks one of them
/// was left by an older fsjournal (or by a load that died half-way): it is
/// removed and the start closes the gap with a scan.
const PINNED_MAPS: [&str; 10] = [
    "EVENTS", "DIRTY", "DEVS", "ROOTS", "COUNTERS", "AGENT", "SEQ", "DRAINED", "LAST", "RENAMING",
];

/// How a filesystem lays out (ino, generation) in its file handles
/// (`encode_fh` in each filesystem's export operations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandleLayout {
    /// `FILEID_INO32_GEN`: u32 ino, u32 generation (ext4, xfs with 32-bit inodes).
    Ino32Gen,
    /// u64 ino, u32 generation (xfs `FILEID_INO64_GEN`).
    Ino64Gen,
}

impl HandleLayout {
    /// Recognises the layout from a known inode's handle.
    fn learn(handle: &FileHandle, ino: u64) -> Option<HandleLayout> {
        let b = handle.opaque();
        let u32_at = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().expect("4 bytes")) as u64;
        match b.len() {
            8 if u32_at(0) == ino => Some(HandleLayout::Ino32Gen),
            12 if u32_at(0) | (u32_at(4) << 32) == ino => Some(HandleLayout::Ino64Gen),
            _ => None,
        }
    }

    fn encode(self, handle_type: i32, ino: u64, generation: u32) -> FileHandle {
        let (lo, hi, generation) = (
            (ino as u32).to_ne_bytes(),
            ((ino >> 32) as u32).to_ne_bytes(),
            generation.to_ne_bytes(),
        );
        let bytes: Vec<u8> = match self {
            HandleLayout::Ino32Gen => [lo, generation].concat(),
            HandleLayout::Ino64Gen => [lo, hi, generation].concat(),
        };
        FileHandle::new(handle_type, &bytes)
    }
}

/// One tracked filesystem.
struct Filesystem {
    /// Device in the kernel's encoding, as the programs report it.
    kernel_dev: u32,
    mount_fd: OwnedFd,
    layout: HandleLayout,
    handle_type: i32,
    /// Where each known directory was last seen: a directory found elsewhere
    /// was renamed or moved in, and needs a subtree push.
    index: DirIndex,
    /// Names of hard-linked files, so a change through one reaches all.
    links: HardLinks,
}

/// Armed eBPF capture.
pub struct EbpfCapture {
    /// Owns the loaded programs and their links: dropping it detaches them.
    _ebpf: Ebpf,
    events: RingBuf<MapData>,
    /// Inodes spilled by the programs when the ring buffer was full.
    dirty: BpfHashMap<MapData, DirtyKey, u32>,
    counters: PerCpuArray<MapData, u64>,
    /// `[0]`: the pid the programs ignore (ours; 0 once we stop).
    agent: Array<MapData, u32>,
    /// Written by us, indexed by `fsjournal_common::drained`.
    drained: Array<MapData, u64>,
    /// The highest event index read so far (as written to `DRAINED`).
    drained_index: u64,
    filesystems: Vec<Filesystem>,
    /// The `DROPPED` count accounted for (rescanned, or covered by this
    /// start's gap scan); also in `DRAINED[DROPS]`.
    dropped_seen: u64,
    backlog_complete: bool,
    /// How the next drain tells a directory that moved.
    judge: DirectoryJudge,
    /// The attach ladder's outcome.
    ladder: String,
    /// When capture went live and when the index was ready.
    times: ArmTimes,
    /// Where the links are pinned: their pins are all that keeps the
    /// programs attached (see [`EbpfCapture::check_attached`]).
    pin_dir: PathBuf,
    /// The pin names of the attached rung's links.
    links: Vec<&'static str>,
}

/// Loads the object, reusing the maps pinned in `pin_dir` (or pinning new
/// ones), with the VFS-hook rung's struct offsets set (`globals`: none when
/// that rung was refused before loading).
fn load(
    pin_dir: &Path,
    config: &CaptureConfig,
    globals: &[(&'static str, u32)],
) -> anyhow::Result<Ebpf> {
    crate::private_dir::ensure(pin_dir, "eBPF pin directory")?;
    let mut loader = EbpfLoader::new();
    loader
        .map_max_entries("EVENTS", config.ring_buffer_bytes.get())
        .map_max_entries("DIRTY", config.dirty_inodes.get());
    for (global, offset) in globals {
        loader.override_global(global, offset, true);
    }
    for map in PINNED_MAPS {
        loader.map_pin_path(map, pin_dir.join(map));
    }
    loader
        .load(OBJECT)
        .context("the kernel refused the eBPF object")
}

/// Where the link of program (or tracepoint) `name` is pinned.
fn link_pin(pin_dir: &Path, name: &str) -> PathBuf {
    pin_dir.join(format!("link-{name}"))
}

/// Detaches pinned programs and frees pinned maps: removes `pin_dir`.
/// Nothing is captured afterwards until an agent starts.
pub fn unpin(pin_dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(pin_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", pin_dir.display()))
        }
        _ => Ok(()),
    }
}

/// Refuses pin directories another user could write (`private_dir.rs`):
/// they could plant the maps and links an agent adopts. `/sys/fs/bpf/fsjournal`
/// is created (mode 0700) when missing; `pin_dir` is only checked here
/// ([`load`] creates it).
fn check_pin_dirs(pin_dir: &Path) -> anyhow::Result<()> {
    if let Some(parent) = pin_dir.parent() {
        crate::private_dir::ensure(parent, "eBPF pin directory")?;
    }
    if std::fs::symlink_metadata(pin_dir).is_ok() {
        crate::private_dir::ensure(pin_dir, "eBPF pin directory")?;
    }
    Ok(())
}

/// The bpffs directory of a journal's pinned programs and maps.
pub fn pin_dir(journal_id: u64) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/fsjournal/{journal_id:016x}"))
}

/// `st_dev` (userspace encoding) → the kernel's `MAJOR << 20 | MINOR`.
fn kernel_dev(st_dev: u64) -> u32 {
    (libc::major(st_dev) << 20) | libc::minor(st_dev)
}

/// Whether `path` lies on a tmpfs (`statfs` f_type `TMPFS_MAGIC`).
fn is_tmpfs(path: &Path) -> anyhow::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: plain-old-data out-parameter, zeroed.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `fs` a valid out-pointer.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut fs) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statfs {}", path.display()));
    }
    Ok(fs.f_type == libc::TMPFS_MAGIC)
}

/// Mounts a pseudo filesystem at `target` unless something is mounted there.
fn ensure_mounted(fstype: &str, target: &str) -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(target))
    {
        return Ok(());
    }
    let (source, target_c, fstype_c) = (
        std::ffi::CString::new(fstype)?,
        std::ffi::CString::new(target)?,
        std::ffi::CString::new(fstype)?,
    );
    // SAFETY: NUL-terminated strings that outlive the call; no mount data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            fstype_c.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot mount {fstype} on {target}"));
    }
    tracing::info!(fstype, target, "mounted");
    Ok(())
}

/// Checks the compiled field offsets against the running kernel's format file.
fn check_format(category: &str, name: &str, fields: &[(&str, usize)]) -> anyhow::Result<()> {
    let path = format!("/sys/kernel/tracing/events/{category}/{name}/format");
    let format = std::fs::read_to_string(&path)
        .with_context(|| format!("tracepoint {category}:{name} is not available ({path})"))?;
    for (field, offset) in fields {
        let expected = format!(" {field};\toffset:{offset};");
        if !format.lines().any(|l| l.contains(&expected)) {
            bail!("{path}: field `{field}` is not at offset {offset} as the compiled program expects; refusing this rung");
        }
    }
    Ok(())
}

impl EbpfCapture {
    /// Loads and attaches the programs of the best rung for `roots`, then,
    /// on the tracepoint rung, builds the directory index (programs first:
    /// capture is live during the walk).
    ///
    /// Errors (each makes `auto` fall back to fanotify): the programs were
    /// not built (`cargo xtask build-ebpf`), bpffs/tracefs cannot be
    /// mounted, a tracepoint is missing or its format differs, the kernel
    /// refuses the programs, a root's filesystem has file handles of a
    /// layout we do not know, or a root cannot be walked.
    /// Maps and links are pinned under `pin_dir` (one directory per
    /// journal), so the programs keep capturing into the ring buffer while no
    /// agent runs; a later `arm` adopts them (see [`EbpfCapture::backlog_complete`]).
    pub fn arm(
        roots: &[Root],
        config: &CaptureConfig,
        pin_dir: &Path,
    ) -> anyhow::Result<EbpfCapture> {
        let started = std::time::Instant::now();
        ensure_loadable()?;
        let vfs = vfs_hooks::plan();
        let globals = vfs.as_ref().map(|p| p.globals.clone()).unwrap_or_default();
        let (mut filesystems, root_fs) = plan_filesystems(roots)?;
        reset_incomplete_pins(pin_dir)?;
        // Links of a previous agent still pinned: if they are those of the
        // rung attached below, their maps hold what happened while no agent ran.
        let pinned_before: HashSet<&str> = all_link_names()
            .filter(|name| link_pin(pin_dir, name).exists())
            .collect();
        let mut ebpf = match load(pin_dir, config, &globals) {
            Ok(ebpf) => ebpf,
            Err(e) if pin_dir.exists() => {
                tracing::warn!(error = %format!("{e:#}"), pins = %pin_dir.display(), "pinned eBPF state unusable; starting afresh");
                unpin(pin_dir)?;
                return EbpfCapture::arm(roots, config, pin_dir);
            }
            Err(e) => return Err(e),
        };
        let devices_tracked = track_devices(&mut ebpf, &filesystems)?;
        let every_root_tracked = track_roots(&mut ebpf, roots)? && devices_tracked;
        let (counters, mut drained) = take_counters(&mut ebpf)?;
        let drops = Drops::account(&counters, &mut drained)?;
        let drained_index = drained.get(&drained::INDEX, 0)?;
        // New programs attach before the old ones detach: no instant without capture.
        let rung = attach_ladder(&mut ebpf, pin_dir, vfs)?;
        let adopted = rung.links.iter().all(|name| pinned_before.contains(name));
        // Our own I/O (journal, logs) must not feed back; the old programs
        // share this pinned map, so they ignore us from now on too.
        let mut agent = Array::try_from(ebpf.take_map("AGENT").context("map AGENT")?)?;
        agent.set(0, std::process::id(), 0)?;
        let attached = started.elapsed();
        tracing::info!(
            rung = rung.kind.as_str(),
            filesystems = filesystems.len(),
            ring_buffer_bytes = config.ring_buffer_bytes.get(),
            pins = %pin_dir.display(),
            adopted,
            lost_while_down = drops.lost_while_down,
            ms = attached.as_millis() as u64,
            "eBPF capture attached"
        );
        let judge = rung.kind.judge();
        if let Err(e) = index_roots(&mut filesystems, roots, &root_fs, judge) {
            // The pinned programs stay attached (as after a stop): they
            // must not ignore a later process that gets our pid.
            agent.set(0, 0, 0)?;
            return Err(e);
        }
        let times = super::arm_times(attached, started.elapsed());
        let ladder = rung.ladder;
        tracing::info!(
            capture_attached_ms = times.attached_ms,
            index_ready_ms = times.index_ready_ms,
            ladder = %ladder,
            walked = judge != DirectoryJudge::RenameRecords,
            "eBPF capture ready"
        );
        let events = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS")?)?;
        let dirty = BpfHashMap::try_from(ebpf.take_map("DIRTY").context("map DIRTY")?)?;
        Ok(EbpfCapture {
            _ebpf: ebpf,
            events,
            dirty,
            counters,
            agent,
            drained,
            drained_index,
            filesystems,
            dropped_seen: drops.dropped,
            backlog_complete: adopted && drops.lost_while_down == 0 && every_root_tracked,
            judge,
            ladder,
            times,
            pin_dir: pin_dir.to_path_buf(),
            links: rung.links,
        })
    }

    /// Errors when a link pin is gone (`fsjournal unpin`, or its directory
    /// removed under a running agent): the programs are detached and
    /// nothing is captured any more. The capture loop then stops before
    /// this cycle's watermark is written, the agent exits non-zero, and the
    /// next start re-arms and closes the gap with a scan (the service
    /// manager restarts it).
    fn check_attached(&self) -> anyhow::Result<()> {
        match self
            .links
            .iter()
            .map(|name| link_pin(&self.pin_dir, name))
            .find(|pin| !pin.exists())
        {
            Some(pin) => bail!(
                "the eBPF programs were detached under the running agent ({} is gone: `fsjournal unpin`?): \
                 capture stopped; a restart re-arms it and scans the gap",
                pin.display()
            ),
            None => Ok(()),
        }
    }
    /// True when programs pinned by a previous agent were found still
    /// attached and lost nothing while no agent ran: their ring buffer holds
    /// every change since, and no gap scan is needed.
    pub fn backlog_complete(&self) -> bool {
        self.backlog_complete
    }

    /// The attach ladder's outcome: the rung in use, and the kernel's
    /// answer to the rung-1 probe.
    pub fn ladder(&self) -> &str {
        &self.ladder
    }

    /// When capture went live and when the directory index was complete.
    pub fn times(&self) -> ArmTimes {
        self.times
    }
}

/// Puts the filesystems' devices into the programs' `DEVS` map (see
/// [`track`]). True when every device was there already: only the roots of
/// devices the adopted programs were tracking can have a complete backlog.
fn track_devices(ebpf: &mut Ebpf, filesystems: &[Filesystem]) -> anyhow::Result<bool> {
    let wanted: HashSet<u32> = filesystems.iter().map(|fs| fs.kernel_dev).collect();
    track(ebpf, "DEVS", &wanted)
}

/// Makes the programs' hash map `name` hold exactly `wanted` (each key →
/// 1), adding the wanted keys before removing the others, so adopted
/// programs never filter a key still wanted. True when every wanted key
/// was there already.
fn track<K: aya::Pod + Eq + std::hash::Hash>(
    ebpf: &mut Ebpf,
    name: &str,
    wanted: &HashSet<K>,
) -> anyhow::Result<bool> {
    let mut map: BpfHashMap<_, K, u8> =
        BpfHashMap::try_from(ebpf.map_mut(name).with_context(|| format!("map {name}"))?)?;
    let tracked: HashSet<K> = map.keys().filter_map(Result::ok).collect();
    for key in wanted.difference(&tracked) {
        map.insert(key, 1, 0)?;
    }
    for key in tracked.difference(wanted) {
        map.remove(key)?;
    }
    Ok(wanted.is_subset(&tracked))
}

/// The programs' `COUNTERS` and `DRAINED` maps, taken out of `ebpf`.
fn take_counters(
    ebpf: &mut Ebpf,
) -> anyhow::Result<(PerCpuArray<MapData, u64>, Array<MapData, u64>)> {
    let counters = PerCpuArray::try_from(ebpf.take_map("COUNTERS").context("map COUNTERS")?)?;
    let drained = Array::try_from(ebpf.take_map("DRAINED").context("map DRAINED")?)?;
    Ok((counters, drained))
}

/// The `DROPPED` count at start, and how much of it happened while no
/// agent read.
struct Drops {
    /// `DROPPED` summed over CPUs (events), now accounted for.
    dropped: u64,
    /// Drops beyond the count the last agent accounted for (events).
    lost_while_down: u64,
}

impl Drops {
    /// Reads the count and records it as accounted for in `DRAINED[DROPS]`
    /// (never reset: a drop from now on raises the count past it and
    /// becomes a rescan; drops while down are covered by this start's gap
    /// scan).
    fn account(
        counters: &PerCpuArray<MapData, u64>,
        drained: &mut Array<MapData, u64>,
    ) -> anyhow::Result<Drops> {
        let dropped = sum(counters, counter::DROPPED);
        let lost_while_down = dropped.saturating_sub(drained.get(&drained::DROPS, 0)?);
        drained.set(drained::DROPS, dropped, 0)?;
        Ok(Drops {
            dropped,
            lost_while_down,
        })
    }
}

/// Puts each root's directory, `[ino, kernel dev]`, into the programs'
/// `ROOTS` map (the VFS-hook rung's in-kernel filter; see [`track`]). True
/// when every root was there already: only then can an adopted backlog be
/// complete.
fn track_roots(ebpf: &mut Ebpf, roots: &[Root]) -> anyhow::Result<bool> {
    let mut wanted = HashSet::new();
    for root in roots {
        let meta = std::fs::metadata(&root.path)
            .with_context(|| format!("cannot stat root {}", root.path.display()))?;
        wanted.insert([meta.ino(), kernel_dev(meta.dev()) as u64]);
    }
    track(ebpf, "ROOTS", &wanted)
}

/// Registers each root in its filesystem's directory index, and walks it
/// unless `judge` needs no index (the VFS-hook rung).
///
/// Errors: a root cannot be opened or walked.
fn index_roots(
    filesystems: &mut [Filesystem],
    roots: &[Root],
    root_fs: &[usize],
    judge: DirectoryJudge,
) -> anyhow::Result<()> {
    for (root, &fs) in roots.iter().zip(root_fs) {
        let index = &mut filesystems[fs].index;
        let excludes = root.excludes.clone();
        let indexed = if judge == DirectoryJudge::RenameRecords {
            index.register_root(root.id, &root.path, excludes).map(drop)
        } else {
            index.add_root(root.id, &root.path, excludes)
        };
        indexed.with_context(|| format!("cannot index root {}", root.path.display()))?;
        tracing::info!(root = %root.path.display(), directories = index.len(), "root indexed");
    }
    Ok(())
}

/// A `COUNTERS` entry since the pinned maps were created, summed over CPUs
/// (events; 0 if unreadable).
fn sum(counters: &PerCpuArray<MapData, u64>, index: u32) -> u64 {
    counters
        .get(&index, 0)
        .map_or(0, |values| values.iter().sum())
}

/// The filesystems under `roots`, with empty directory indexes, and for
/// each root the position of its filesystem.
///
/// Errors: a root cannot be stat'ed, lies on tmpfs, or its filesystem's
/// file handles are of a layout we do not know.
fn plan_filesystems(roots: &[Root]) -> anyhow::Result<(Vec<Filesystem>, Vec<usize>)> {
    let mut filesystems: Vec<Filesystem> = Vec::new();
    let mut root_fs = Vec::new();
    for root in roots {
        let meta = std::fs::metadata(&root.path)
            .with_context(|| format!("cannot stat root {}", root.path.display()))?;
        let kernel_dev = kernel_dev(meta.dev());
        if let Some(position) = filesystems
            .iter()
            .position(|fs| fs.kernel_dev == kernel_dev)
        {
            root_fs.push(position);
            continue;
        }
        if is_tmpfs(&root.path)? {
            bail!(
                "{} is on tmpfs, whose file handles decode only after they were exported (shmem_fh_to_dentry): \
                 the eBPF rungs cannot name its inodes",
                root.path.display()
            );
        }
        let (root_handle, _) = handle::handle_of(&root.path)
            .with_context(|| format!("cannot read the file handle of {}", root.path.display()))?;
        let layout = HandleLayout::learn(&root_handle, meta.ino()).with_context(|| {
            format!(
                "unknown file-handle layout on the filesystem of {} ({root_handle:?})",
                root.path.display()
            )
        })?;
        filesystems.push(Filesystem {
            kernel_dev,
            mount_fd: handle::open_dir(&root.path)?,
            layout,
            handle_type: root_handle.handle_type(),
            index: DirIndex::default(),
            links: HardLinks::default(),
        });
        root_fs.push(filesystems.len() - 1);
    }
    Ok((filesystems, root_fs))
}

/// Errors unless programs can be loaded at all: they were built into this
/// binary, and bpffs and tracefs are (or could be) mounted.
fn ensure_loadable() -> anyhow::Result<()> {
    if OBJECT.is_empty() {
        bail!("the eBPF programs were not built into this binary: run `cargo xtask build-ebpf`, then rebuild");
    }
    ensure_mounted("bpf", "/sys/fs/bpf")?;
    ensure_mounted("tracefs", "/sys/kernel/tracing")
}

/// Checks the pin directories under `pin_dir` (see [`check_pin_dirs`]) and
/// removes pinned state that lacks maps this version needs (an older
/// fsjournal, or a load that died half-way): the gap scan then covers the
/// downtime. Errors: a pin directory is unsafe, or cannot be removed.
fn reset_incomplete_pins(pin_dir: &Path) -> anyhow::Result<()> {
    check_pin_dirs(pin_dir)?;
    if pin_dir.exists() && !PINNED_MAPS.iter().all(|m| pin_dir.join(m).exists()) {
        tracing::warn!(pins = %pin_dir.display(), "pinned eBPF state lacks maps this version needs (an older fsjournal, or a load that died half-way); starting afresh, the gap scan covers the downtime");
        unpin(pin_dir)?;
    }
    Ok(())
}

/// Which rung of the attach ladder is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RungKind {
    /// Rung 1: fexit programs on the VFS entry points (`vfs_hooks.rs`).
    VfsHooks,
    /// Rung 2: the `timestamp:ctime_ns_xchg` and `timestamp:ctime_xchg_skip` tracepoints.
    Tracepoint,
}

impl RungKind {
    /// Its name in the logs: `vfs-hooks`, `tracepoint`.
    fn as_str(self) -> &'static str {
        match self {
            RungKind::VfsHooks => "vfs-hooks",
            RungKind::Tracepoint => "tracepoint",
        }
    }

    /// How a drain judges directories on this rung: the VFS-hook rung's
    /// rename records say which directories moved (no index is walked, so
    /// pushes can start at once on any tree size); the tracepoint rung
    /// starts from the backlog judgement while its index is walked.
    fn judge(self) -> DirectoryJudge {
        match self {
            RungKind::VfsHooks => DirectoryJudge::RenameRecords,
            RungKind::Tracepoint => DirectoryJudge::Backlog,
        }
    }
}

impl std::fmt::Display for RungKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rung the ladder attached.
struct Rung {
    /// Which rung it is.
    kind: RungKind,
    /// The pin names of its links.
    links: Vec<&'static str>,
    /// The ladder string: the rung in use and why better ones were refused.
    ladder: String,
}

/// Every link pin name either rung uses.
fn all_link_names() -> impl Iterator<Item = &'static str> {
    tracepoints::ALL
        .iter()
        .map(|tp| tp.name)
        .chain(fsjournal_common::vfs_hooks::HOOKS.iter().map(|h| h.program))
}

/// Attaches the best rung this kernel accepts: the VFS-hook rung (fexit),
/// else the tracepoint rung; then detaches whatever links of the other rung
/// an earlier agent left pinned. Errors name both refusals (`auto` then
/// falls back to fanotify).
fn attach_ladder(
    ebpf: &mut Ebpf,
    pin_dir: &Path,
    vfs: anyhow::Result<Plan>,
) -> anyhow::Result<Rung> {
    let vfs_refusal =
        match vfs.and_then(|plan| attach_vfs_hooks(ebpf, pin_dir, &plan).map(|()| plan)) {
            Ok(plan) => {
                let links = plan.links();
                unpin_links_except(pin_dir, &links)?;
                return Ok(Rung {
                    kind: RungKind::VfsHooks,
                    links,
                    ladder: format!("eBPF VFS-hook rung: {}", plan.describe()),
                });
            }
            Err(e) => format!("{e:#}"),
        };
    let mut attach_tracepoints = || -> anyhow::Result<()> {
        for tp in &tracepoints::ALL {
            check_format(tp.category, tp.name, &tp.fields())?;
        }
        for Tracepoint { category, name, .. } in &tracepoints::ALL {
            pin_link(pin_dir, name, attach_tracepoint(ebpf, category, name)?)?;
        }
        Ok(())
    };
    if let Err(e) = attach_tracepoints() {
        bail!("VFS-hook rung refused: {vfs_refusal}; tracepoint rung refused: {e:#}");
    }
    let links = tracepoints::ALL
        .iter()
        .map(|tp| tp.name)
        .collect::<Vec<_>>();
    unpin_links_except(pin_dir, &links)?;
    Ok(Rung {
        kind: RungKind::Tracepoint,
        links,
        ladder: format!("eBPF tracepoint rung; VFS-hook rung refused: {vfs_refusal}"),
    })
}

/// Attaches and pins every program of `plan`; on a refusal, detaches those
/// it attached (the kernel that refused one will refuse the rung).
fn attach_vfs_hooks(ebpf: &mut Ebpf, pin_dir: &Path, plan: &Plan) -> anyhow::Result<()> {
    let btf = aya::Btf::from_sys_fs().context("cannot read the kernel's BTF")?;
    for hook in &plan.hooks {
        let attached =
            attach_hook(ebpf, &btf, hook).and_then(|link| pin_link(pin_dir, hook.program, link));
        if let Err(e) = attached {
            unpin_links(pin_dir, &plan.links())?;
            return Err(e);
        }
    }
    Ok(())
}

/// Loads fexit (or fentry) program `hook` against the kernel's BTF (as
/// parsed by aya) and attaches it; the link, for pinning. Errors carry the
/// kernel's answer (`BPF_PROG_LOAD`: EPERM where trampolines are refused).
fn attach_hook(ebpf: &mut Ebpf, btf: &aya::Btf, hook: &Hook) -> anyhow::Result<FdLink> {
    let program = ebpf
        .program_mut(hook.program)
        .with_context(|| format!("program {} missing from the object", hook.program))?;
    let kind = if hook.entry { "fentry" } else { "fexit" };
    let loaded = if hook.entry {
        let program: &mut FEntry = program.try_into()?;
        program
            .load(hook.function, btf)
            .map_err(explain_load_error)
            .and_then(|()| {
                let link = program.attach()?;
                Ok(program.take_link(link)?.into())
            })
    } else {
        let program: &mut FExit = program.try_into()?;
        program
            .load(hook.function, btf)
            .map_err(explain_load_error)
            .and_then(|()| {
                let link = program.attach()?;
                Ok(program.take_link(link)?.into())
            })
    };
    loaded.with_context(|| format!("loading and attaching {kind}/{}", hook.function))
}

/// Loads and attaches tracepoint program `name`; the link, for pinning.
fn attach_tracepoint(ebpf: &mut Ebpf, category: &str, name: &str) -> anyhow::Result<FdLink> {
    let program: &mut TracePoint = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name}"))?
        .try_into()?;
    program
        .load()
        .map_err(explain_load_error)
        .with_context(|| format!("loading {name}"))?;
    let link_id = program
        .attach(category, name)
        .with_context(|| format!("attaching {category}:{name}"))?;
    program
        .take_link(link_id)?
        .try_into()
        .context("this kernel has no BPF perf links to pin")
}

/// Pins `link` as `link-<name>`, and only then detaches the link an
/// earlier agent pinned there (at no instant is nothing attached).
fn pin_link(pin_dir: &Path, name: &str, link: FdLink) -> anyhow::Result<()> {
    let (pin, fresh) = (
        link_pin(pin_dir, name),
        pin_dir.join(format!("link-{name}-new")),
    ); // bpffs refuses dots in names
    let _ = std::fs::remove_file(&fresh);
    link.pin(&fresh)
        .with_context(|| format!("pinning {}", fresh.display()))?;
    if pin.exists() {
        drop(PinnedLink::from_pin(&pin)?.unpin()?);
    }
    std::fs::rename(&fresh, &pin)
        .with_context(|| format!("renaming {} in bpffs", fresh.display()))?;
    Ok(())
}

/// Detaches the pinned links of `names` (those that exist).
fn unpin_links(pin_dir: &Path, names: &[&str]) -> anyhow::Result<()> {
    for name in names {
        let pin = link_pin(pin_dir, name);
        if pin.exists() {
            drop(PinnedLink::from_pin(&pin)?.unpin()?);
        }
    }
    Ok(())
}

/// Detaches every pinned link of either rung but `keep`.
fn unpin_links_except(pin_dir: &Path, keep: &[&str]) -> anyhow::Result<()> {
    let others: Vec<&str> = all_link_names().filter(|n| !keep.contains(n)).collect();
    unpin_links(pin_dir, &others)
}

/// A program load error as one line: the `BPF_PROG_LOAD` error and the
/// verifier's log when it wrote one (EPERM with an empty log: this kernel
/// refuses BPF trampolines).
fn explain_load_error(error: ProgramError) -> anyhow::Error {
    match error {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let log = log.trim();
            if log.is_empty() {
                anyhow::anyhow!("BPF_PROG_LOAD: {io_error}")
            } else {
                anyhow::anyhow!("BPF_PROG_LOAD: {io_error}; verifier: {log}")
            }
        }
        e => anyhow::Error::new(e),
    }
}

impl Backend for EbpfCapture {
    fn wait(&mut self, _timeout: Duration) {
        // Programs write without wake-ups (BPF_RB_NO_WAKEUP): the capture
        // loop's read interval is the schedule.
    }

    fn drain(&mut self, sink: &mut Sink, stats: &Stats) -> anyhow::Result<()> {
        self.check_attached()?;
        let mut read = self.read_events(stats)?;
        self.read_spilled(&mut read.inodes);
        let mut rescan = self.account_counters(stats)?;
        for fs in &mut self.filesystems {
            rescan |= fs.resolve(&read, self.judge, sink)?;
        }
        if self.judge == DirectoryJudge::Backlog {
            self.judge = DirectoryJudge::Index;
        }
        if rescan {
            for root in self.filesystems.iter().flat_map(|fs| fs.index.root_ids()) {
                stats.rescans.fetch_add(1, Ordering::Relaxed);
                sink.changes().push(Change::rescan(root, Vec::new()));
            }
        }
        Ok(())
    }
}

/// `(kernel dev, ino)`: an inode as the records name it.
type InodeKey = (u32, u64);

/// One inode a drain read: its generation and the last process that
/// changed it (pid 0 and no comm for a spilled inode).
#[derive(Clone, Copy)]
struct Seen {
    generation: u32,
    tgid: u32,
    comm: [u8; 16],
}

/// Where a renamed inode was, from a rename record (VFS-hook rung): its
/// old directory's `(ino, generation)` and its old name (empty: unknown).
struct OldPlace {
    dir_ino: u64,
    dir_generation: u32,
    name: Vec<u8>,
}

/// What one drain read: each inode once, and the first old place of each
/// inode that rename records named (the place the target still has).
#[derive(Default)]
struct Read {
    inodes: HashMap<InodeKey, Seen>,
    renames: HashMap<InodeKey, OldPlace>,
}

/// A NUL-padded kernel string (a name, a `comm`) without its padding.
fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

/// A ring-buffer record read as `T`, when it is at least that long. `T` is
/// one of the plain-integer records of `fsjournal_common`, which the
/// programs write whole; `read_unaligned` copes with the ring buffer's
/// 8-byte record alignment.
fn read_record<T: Copy>(item: &[u8]) -> Option<T> {
    // SAFETY: `item` holds at least `size_of::<T>()` bytes, and every bit
    // pattern is a valid `InodeEvent` or `RenameEvent`.
    (item.len() >= std::mem::size_of::<T>())
        .then(|| unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) })
}

impl EbpfCapture {
    /// Reads the ring buffer out, then tells the programs how far it read
    /// (`DRAINED`): a change they skip from now on until the next drain is
    /// covered by this drain's resolution (or, for an event still unread,
    /// by the next drain's).
    fn read_events(&mut self, stats: &Stats) -> anyhow::Result<Read> {
        let mut read = Read::default();
        let mut read_up_to = self.drained_index;
        while let Some(item) = self.events.next() {
            let Some(event) = read_record::<InodeEvent>(&item) else {
                continue;
            };
            let key = (event.dev, event.ino);
            if let Some(rename) = read_record::<RenameEvent>(&item) {
                read.renames.entry(key).or_insert_with(|| OldPlace {
                    dir_ino: rename.old_dir_ino,
                    dir_generation: rename.old_dir_generation,
                    name: until_nul(&rename.old_name).to_vec(),
                });
            }
            stats.events.fetch_add(1, Ordering::Relaxed);
            read_up_to = read_up_to.max(event.index);
            let seen = Seen {
                generation: event.generation,
                tgid: event.tgid,
                comm: event.comm,
            };
            read.inodes.insert(key, seen);
        }
        if read_up_to > self.drained_index {
            self.drained.set(drained::INDEX, read_up_to, 0)?;
            self.drained_index = read_up_to;
        }
        Ok(read)
    }

    /// Adds each spilled inode, then deletes it: a program that spills it
    /// again in between re-adds it, and it is resolved now either way.
    fn read_spilled(&mut self, inodes: &mut HashMap<InodeKey, Seen>) {
        let spilled: Vec<DirtyKey> = self.dirty.keys().filter_map(Result::ok).collect();
        for key in spilled {
            if let Ok(generation) = self.dirty.get(&key, 0) {
                inodes.entry((key[1] as u32, key[0])).or_insert(Seen {
                    generation,
                    tgid: 0,
                    comm: [0; 16],
                });
            }
            let _ = self.dirty.remove(&key);
        }
    }

    /// Publishes the programs' counters; true when events were dropped
    /// since the last drain (a rescan of every root).
    fn account_counters(&mut self, stats: &Stats) -> anyhow::Result<bool> {
        let counts: [u64; counter::COUNT as usize] =
            std::array::from_fn(|index| sum(&self.counters, index as u32));
        for (total, count) in stats.kernel.iter().zip(counts) {
            total.store(count, Ordering::Relaxed);
        }
        let dropped = counts[counter::DROPPED as usize];
        if dropped <= self.dropped_seen {
            return Ok(false);
        }
        tracing::warn!(
            lost = dropped - self.dropped_seen,
            "eBPF ring buffer was full: events were lost; rescanning every root"
        );
        self.dropped_seen = dropped;
        self.drained.set(drained::DROPS, dropped, 0)?;
        Ok(true)
    }
}

/// The backlog judgement of a changed directory at `path` (`rel` in its
/// root): a subtree when its parent is among the drain's `changed_dirs`
/// too (it may have moved), else its contents.
fn backlog_scope(path: &Path, rel: &[u8], changed_dirs: &HashSet<PathBuf>) -> Scope {
    let parent_changed = !rel.is_empty() && path.parent().is_some_and(|p| changed_dirs.contains(p));
    if parent_changed {
        Scope::Subtree
    } else {
        Scope::Contents
    }
}

/// A changed inode opened by its handle.
struct Opened {
    key: InodeKey,
    path: PathBuf,
    meta: std::fs::Metadata,
    handle: FileHandle,
    seen: Seen,
}

/// How a drain tells a directory whose entries changed (a contents push)
/// from one that was created, renamed or moved in (a subtree push).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DirectoryJudge {
    /// The kernel sends a rename record for every rename (the VFS-hook
    /// rung): a directory without one had its entries changed. No directory
    /// index is needed, so none is walked.
    RenameRecords,
    /// The directory index, built by a walk at start (the tracepoint rung,
    /// whose records carry no kind): a directory found away from where the
    /// index saw it moved.
    Index,
    /// As `Index`, for records from before the index was complete (an
    /// adopted backlog, what happened during the walk): the walk may have
    /// seen a moved directory at its new place, so a directory whose parent
    /// changed too may have moved.
    Backlog,
}

impl Drop for EbpfCapture {
    /// The pinned programs keep capturing after we stop: they must not
    /// ignore a process that later gets our pid.
    fn drop(&mut self) {
        if let Err(e) = self.agent.set(0, 0, 0) {
            tracing::error!(error = %e, "cannot clear the agent's pid in the pinned eBPF programs");
        }
    }
}

impl Filesystem {
    /// Turns this filesystem's inodes of one drain into changes for `sink`.
    /// True when a changed inode could not be placed (a rescan).
    /// Errors: the journal writer stopped.
    fn resolve(
        &mut self,
        read: &Read,
        judge: DirectoryJudge,
        sink: &mut Sink,
    ) -> anyhow::Result<bool> {
        let mut found = self.open_changed(&read.inodes);
        // Parents first, so a renamed directory is re-linked before its children are judged.
        found.sort_by_key(|o| o.path.as_os_str().len());
        let changed_dirs: HashSet<PathBuf> = match judge {
            DirectoryJudge::Backlog => found
                .iter()
                .filter(|o| o.meta.is_dir())
                .map(|o| o.path.clone())
                .collect(),
            _ => HashSet::new(),
        };
        let mut unplaced = false;
        for opened in found {
            let Some((root, rel)) = self.place(&opened, &mut unplaced) else {
                continue;
            };
            let (scope, renamed_from) = match judge {
                DirectoryJudge::RenameRecords => self.recorded_scope(read, &opened, root, &rel),
                DirectoryJudge::Backlog if opened.meta.is_dir() => {
                    (backlog_scope(&opened.path, &rel, &changed_dirs), None)
                }
                _ if opened.meta.is_dir() => {
                    self.directory_scope(root, &rel, &opened.path, opened.handle.clone())
                }
                _ => (Scope::Entry, None),
            };
            self.push_changes(sink, &opened, root, rel, scope, renamed_from);
            sink.hand_over_if_full()?;
        }
        Ok(unplaced)
    }

    /// Where `opened` lies: its root and path relative to it, `None` when
    /// it lies in no root or is excluded. A file opened by handle may come
    /// back with a disconnected dentry (its path reads as "/" or a stale
    /// name): then it cannot be placed, and may lie in a root, which sets
    /// `unplaced` (logged once per drain).
    fn place(&self, opened: &Opened, unplaced: &mut bool) -> Option<(RootId, Vec<u8>)> {
        let placed = self
            .index
            .relative_to_root(&opened.path)
            .filter(|(root, rel)| !self.index.is_excluded(*root, rel));
        if placed.is_none() {
            let stable = std::fs::symlink_metadata(&opened.path)
                .is_ok_and(|m| m.ino() == opened.meta.ino() && m.dev() == opened.meta.dev());
            if !stable && !*unplaced {
                tracing::warn!(ino = opened.meta.ino(), path = %opened.path.display(), "a changed inode has no usable path; rescanning every root");
                *unplaced = true;
            }
        }
        placed
    }

    /// Adds to `sink` the change of `opened` at `rel` in `root`, and one
    /// per other name a regular file has in the root (hard links), all with
    /// `scope`; a change with `renamed_from` is a rename to `rel`.
    fn push_changes(
        &mut self,
        sink: &mut Sink,
        opened: &Opened,
        root: RootId,
        rel: Vec<u8>,
        scope: Scope,
        renamed_from: Option<Vec<u8>>,
    ) {
        let others = if opened.meta.is_file() {
            let root_path = self
                .index
                .root_path(root)
                .expect("the root of a resolved path");
            self.links.other_names(root, root_path, &rel, &opened.meta)
        } else {
            Vec::new()
        };
        let comm = until_nul(&opened.seen.comm);
        let change = Change {
            root,
            path: rel,
            kind: if renamed_from.is_some() {
                ChangeKind::RenameTo
            } else {
                ChangeKind::Modify
            },
            scope,
            ino: opened.meta.ino(),
            pid: opened.seen.tgid,
            comm: String::from_utf8_lossy(comm).into_owned(),
            renamed_from,
        };
        let out = sink.changes();
        out.extend(others.into_iter().map(|path| Change {
            path,
            renamed_from: None,
            ..change.clone()
        }));
        out.push(change);
    }

    /// Opens each of this filesystem's `inodes` by handle. An inode that is
    /// gone (ESTALE), or deleted but still open or cached (no name left,
    /// its path would read as "/" and cost a rescan), is skipped: its
    /// directory's record covers it.
    fn open_changed(&self, inodes: &HashMap<InodeKey, Seen>) -> Vec<Opened> {
        let mut found = Vec::new();
        for (&key, &seen) in inodes
            .iter()
            .filter(|((dev, _), _)| *dev == self.kernel_dev)
        {
            let handle = self.layout.encode(self.handle_type, key.1, seen.generation);
            match handle::current_path(&self.mount_fd, &handle) {
                Ok((_, meta)) if meta.nlink() == 0 => {
                    tracing::trace!(ino = key.1, "inode deleted since the event");
                }
                Ok((path, meta)) => found.push(Opened {
                    key,
                    path,
                    meta,
                    handle,
                    seen,
                }),
                Err(e) => {
                    tracing::trace!(ino = key.1, generation = seen.generation, error = %e, "inode not resolved")
                }
            }
        }
        found
    }

    /// The VFS-hook rung's judgement: a directory with a rename record
    /// moved (a subtree push), any other had its entries changed; a file is
    /// an entry push. The second value is the old path when the record's
    /// old place lies in the same root, not excluded: the rename the
    /// journal keeps (for a file too).
    fn recorded_scope(
        &self,
        read: &Read,
        opened: &Opened,
        root: RootId,
        rel: &[u8],
    ) -> (Scope, Option<Vec<u8>>) {
        let old = read.renames.get(&opened.key);
        let renamed_from = old
            .and_then(|old| self.old_path(old, root))
            .filter(|old| old.as_slice() != rel);
        let scope = match (opened.meta.is_dir(), old.is_some()) {
            (true, true) => Scope::Subtree,
            (true, false) => Scope::Contents,
            (false, _) => Scope::Entry,
        };
        (scope, renamed_from)
    }

    /// The root-relative path a rename record's old place names, when it
    /// lies in `root` and is not excluded. The old directory is found by
    /// its handle *now*: had it moved since, this is a wrong guess, which
    /// the guarded replay on the target (`push/renames.rs`) turns into
    /// bytes sent again, never into a wrong replica.
    fn old_path(&self, old: &OldPlace, root: RootId) -> Option<Vec<u8>> {
        if old.name.is_empty() {
            return None;
        }
        let handle = self
            .layout
            .encode(self.handle_type, old.dir_ino, old.dir_generation);
        let (dir, _) = handle::current_path(&self.mount_fd, &handle).ok()?;
        let (old_root, path) = entry_of(self.index.relative_to_root(&dir)?, &old.name);
        (old_root == root && !self.index.is_excluded(root, &path)).then_some(path)
    }

    /// A directory whose ctime moved: where the index last saw it, its
    /// entries changed (a contents pass); anywhere else it was created,
    /// renamed or moved in (a subtree push), and the index learns its place.
    /// The second value is its old path when it was renamed within `root`
    /// (the index knew it there): the rename the journal keeps.
    fn directory_scope(
        &mut self,
        root: RootId,
        rel: &[u8],
        path: &Path,
        handle: FileHandle,
    ) -> (Scope, Option<Vec<u8>>) {
        let known = self.index.dir_path(&handle);
        if known.as_ref().is_some_and(|(r, p)| *r == root && p == rel) {
            return (Scope::Contents, None);
        }
        if let (Some(parent), Some(name)) = (
            path.parent().and_then(|p| handle::handle_of(p).ok()),
            path.file_name(),
        ) {
            use std::os::unix::ffi::OsStrExt;
            self.index.link(handle.clone(), &parent.0, name.as_bytes());
        }
        let renamed_from = match known {
            Some((known_root, old))
                if known_root == root && !old.is_empty() && !self.index.is_excluded(root, &old) =>
            {
                Some(old)
            }
            Some(_) => None,
            None => {
                self.index.index_subtree(root, path, handle);
                None
            }
        };
        (Scope::Subtree, renamed_from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_layouts_round_trip() {
        for layout in [HandleLayout::Ino32Gen, HandleLayout::Ino64Gen] {
            let ino = if layout == HandleLayout::Ino32Gen {
                1234
            } else {
                (7 << 32) | 1234
            };
            let handle = layout.encode(1, ino, 99);
            assert_eq!(
                HandleLayout::learn(&handle, ino),
                Some(layout),
                "{layout:?}"
            );
        }
    }

    #[test]
    fn kernel_dev_encoding_matches_the_tracepoints() {
        // 254:0 is st_dev 0xfe00 and the kernel's 0x0fe00000 (docs/ebpf-research.md).
        assert_eq!(kernel_dev(0xfe00), 0x0fe0_0000);
    }
}
