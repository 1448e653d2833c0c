//! The journal's record types (its on-disk format, with the key and value
//! codecs of `tables.rs`).
//!
//! Values are postcard-encoded serde structs: positional, so a change of
//! a stored record's fields needs a [`super::JOURNAL_FORMAT`] bump.

use fsjournal_common::{counter, ChangeKind};
use serde::{Deserialize, Serialize};

/// Journal sequence number: 1 for the first record, strictly increasing,
/// never reused (like an NTFS USN or a Lustre changelog index).
pub type Seq = u64;

/// Index of a source root in the journal's root table (`meta/roots`).
pub type RootId = u32;

/// How much of a path the target must be brought in line with. Coalesced
/// changes keep the widest scope.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Scope {
    /// The entry itself: copied if it exists, deleted on the target if not.
    #[default]
    Entry,
    /// The directory and its direct children, deleting children the source
    /// no longer has (a directory whose entries changed while nothing
    /// captured: rsync `-d --delete`).
    Contents,
    /// Everything below the path (a directory moved in, a rescan marker, a
    /// directory deleted or renamed away: rsync `-r --delete`). On a
    /// directory's departure it makes a directory made again at the path
    /// before the push lose what the old one held (coalescing keeps it).
    Subtree,
}

impl Scope {
    /// Lower-case name for the CLI and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Entry => "entry",
            Scope::Contents => "contents",
            Scope::Subtree => "subtree",
        }
    }
}

/// One change as capture hands it to [`super::Journal::append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The root the path lies in.
    pub root: RootId,
    /// Path relative to the root, raw bytes (any byte but NUL; `""` is the
    /// root itself, components separated by `/`).
    pub path: Vec<u8>,
    /// What happened.
    pub kind: ChangeKind,
    /// How much of the path the target needs.
    pub scope: Scope,
    /// Inode number of the object, 0 when unknown (deletes, rescans).
    pub ino: u64,
    /// Process (tgid) that made the change, 0 when unknown.
    pub pid: u32,
    /// That process's `comm`, empty when unknown (fanotify does not say).
    pub comm: String,
    /// For the new name of a rename capture saw whole (both names in the
    /// same root, neither excluded): the old path. The journal keeps it as
    /// a [`Rename`] that the pusher replays on the target.
    pub renamed_from: Option<Vec<u8>>,
}

impl Change {
    /// A rescan marker: `path` (`""` for the whole root) and everything
    /// below it is pushed with `--delete` (a loss capture knows of: an
    /// overflow, an unresolvable event, changes dropped while the journal
    /// could not be written).
    pub fn rescan(root: RootId, path: Vec<u8>) -> Change {
        Change {
            root,
            path,
            kind: ChangeKind::Rescan,
            scope: Scope::Subtree,
            ino: 0,
            pid: 0,
            comm: String::new(),
            renamed_from: None,
        }
    }
}

/// A rename capture saw whole (column family `renames`, keyed by the
/// sequence number of the change that carries the new name). Both paths
/// stay pending as well: the pusher replays the rename on the target first
/// (`push/renames.rs`) so that the push of the new path finds the data
/// already there, and the pushes of both paths make the target right
/// whatever the replay did (docs/architecture.md, "Renames on the target").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    /// The root both paths lie in.
    pub root: RootId,
    /// The old path, relative to the root (raw bytes).
    pub from: Vec<u8>,
    /// The new path, relative to the root (raw bytes).
    pub to: Vec<u8>,
}

impl Rename {
    /// The rename `change` carries, if capture saw it whole.
    pub fn of(change: &Change) -> Option<Rename> {
        let from = change.renamed_from.as_ref()?;
        Some(Rename {
            root: change.root,
            from: from.clone(),
            to: change.path.clone(),
        })
    }
}

/// One entry of the sequence-ordered inspection log (column family `log`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Root the path lies in.
    pub root: RootId,
    /// Path relative to the root (raw bytes).
    pub path: Vec<u8>,
    /// [`ChangeKind`] as its on-disk byte.
    pub kind: u8,
    /// Copied from [`Change::scope`].
    pub scope: Scope,
    /// Inode number, 0 when unknown.
    pub ino: u64,
    /// Writer's pid, 0 when unknown.
    pub pid: u32,
    /// Writer's `comm`, empty when unknown.
    pub comm: String,
    /// When the agent journaled it (ms since the Unix epoch).
    pub time_ms: u64,
}

impl LogRecord {
    /// The log record of `change`, journaled at `time_ms` (ms since the
    /// Unix epoch).
    pub fn of(change: &Change, time_ms: u64) -> LogRecord {
        LogRecord {
            root: change.root,
            path: change.path.clone(),
            kind: change.kind as u8,
            scope: change.scope,
            ino: change.ino,
            pid: change.pid,
            comm: change.comm.clone(),
            time_ms,
        }
    }

    /// The decoded kind (`Rescan` for a byte a newer version wrote).
    pub fn kind(&self) -> ChangeKind {
        ChangeKind::from_u8(self.kind).unwrap_or(ChangeKind::Rescan)
    }
}

/// The coalesced state of one path that some target may still need
/// (column family `pending`, keyed by root id and path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEntry {
    /// Sequence number of the latest change to this path.
    pub seq: Seq,
    /// Kind of that latest change (its byte). Nothing reads it; it stays
    /// because values are positional: dropping it would change every
    /// entry's bytes and need a [`super::JOURNAL_FORMAT`] bump.
    pub kind: u8,
    /// The widest scope of the coalesced changes.
    pub scope: Scope,
    /// Time of the oldest change coalesced into this entry (ms since the
    /// Unix epoch): batch delay and lag are measured from it.
    pub time_ms: u64,
}

impl PendingEntry {
    /// The entry of `change`, numbered `seq` and journaled at `now` (ms
    /// since the Unix epoch), coalesced with the path's `previous` entry:
    /// the widest scope is kept, and the oldest change dates the entry (a
    /// file written continuously must not keep postponing its own push).
    pub fn coalesce(
        previous: Option<&PendingEntry>,
        change: &Change,
        seq: Seq,
        now: u64,
    ) -> PendingEntry {
        PendingEntry {
            seq,
            kind: change.kind as u8,
            scope: previous.map_or(change.scope, |p| p.scope.max(change.scope)),
            time_ms: previous.map_or(now, |p| p.time_ms),
        }
    }
}

/// One path handed to the pusher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPath {
    /// Sequence number of the path's latest change.
    pub seq: Seq,
    /// Path relative to the root.
    pub path: Vec<u8>,
    /// How much of it to push.
    pub scope: Scope,
    /// Time of the oldest change coalesced into it (ms since the Unix epoch).
    pub time_ms: u64,
}

/// A batch of pending paths for one target, in sequence order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The paths, at most the requested count.
    pub paths: Vec<PendingPath>,
    /// Acknowledging this batch moves the cursor here: every sequence number
    /// up to it was examined (other roots' entries are skipped, not missed).
    pub high_seq: Seq,
    /// More pending entries follow `high_seq`.
    pub truncated: bool,
}

impl Batch {
    /// Keeps the longest prefix of the paths whose sizes (`size_of`, bytes)
    /// sum to at most `max_bytes`, and always the first path (a file larger
    /// than the limit still has to go). The cursor then stops just before
    /// the first path left out, which stays pending for the next batch.
    pub fn limit_bytes(&mut self, max_bytes: u64, mut size_of: impl FnMut(&[u8]) -> u64) {
        let mut total = 0u64;
        let keep = self
            .paths
            .iter()
            .position(|p| {
                total = total.saturating_add(size_of(&p.path));
                total > max_bytes
            })
            .map_or(self.paths.len(), |over| over.max(1));
        if keep < self.paths.len() {
            self.high_seq = self.paths[keep].seq - 1;
            self.paths.truncate(keep);
            self.truncated = true;
        }
    }
}

/// What the journal remembers about one target (column family `targets`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    /// Root this target replicates.
    pub root: RootId,
    /// The target string it was configured with; a change invalidates the cursor.
    pub target: String,
    /// [`super::Journal::journal_id`] the cursor belongs to.
    pub journal_id: u64,
    /// The exclude patterns in force when the cursor was valid: content
    /// excluded then was never journaled, so a change means a full sync.
    pub excludes: Vec<String>,
    /// Highest sequence number whose changes the target has confirmed.
    pub cursor: Seq,
    /// Set while a full sync is owed (the reason); cleared when it succeeded.
    pub full_sync_needed: Option<String>,
    /// Full syncs done for this target, ever.
    pub full_syncs: u64,
    /// Why the last full sync was needed.
    pub last_full_sync_reason: Option<String>,
    /// End of the last push attempt (ms since the Unix epoch, 0 = never).
    pub last_push_ms: u64,
    /// The last push attempt's error, `None` after a success.
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// Paths pushed incrementally, ever (paths).
    pub pushed_paths: u64,
    /// Paths this target holds back past its cursor: still being written
    /// (settle time) or refused by the target (retried with backoff). Saved
    /// with the cursor in one write, so acknowledging a batch never loses them.
    pub held: Vec<HeldPath>,
    /// End of the last rolling verification (ms since the Unix epoch, 0 = never).
    pub last_verify_ms: u64,
    /// The slice the next rolling verification compares (0-based).
    pub verify_slice: u32,
    /// Entries compared by rolling verification, ever (top-level units of
    /// the slices, each with everything below it).
    pub verified_units: u64,
    /// Differences rolling verification found that no journaled change
    /// explained (paths), ever: each is pushed, and each is a capture or
    /// target problem worth a look.
    pub drift_found: u64,
}

impl TargetState {
    /// Held paths the target refused (rsync exit 23), retried with backoff.
    pub fn refused_paths(&self) -> usize {
        self.held
            .iter()
            .filter(|h| matches!(h.reason, HoldReason::Failed(_)))
            .count()
    }
}

/// Why a target holds a path back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldReason {
    /// Changed less than `settle_ms` ago: probably still being written.
    Settling,
    /// rsync named it in an error (exit 23) this many times in a row.
    Failed(u32),
    /// Rolling verification found it different on the target.
    Drift,
    /// An operator asked for it (`fsjournal resync --path`).
    Requested,
}

/// A path a target pushes later (see [`TargetState::held`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPath {
    /// Path relative to the root.
    pub path: Vec<u8>,
    /// How much of it to push.
    pub scope: Scope,
    /// Time of its oldest unpushed change (ms since the Unix epoch): lag is
    /// measured from it.
    pub since_ms: u64,
    /// Not pushed before this time (ms since the Unix epoch).
    pub not_before_ms: u64,
    /// Why it is held.
    pub reason: HoldReason,
}

/// When arming made capture live, and when the directory index was complete
/// (ms since arming began). Capture goes live first: changes made during the
/// index walk are captured, not missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmTimes {
    /// Programs attached / fanotify marks placed (ms).
    pub attached_ms: u64,
    /// Directory index built: one walk of every root (ms).
    pub index_ready_ms: u64,
}

/// The running agent's self-description (meta key `agent`), read by `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Process id of the agent.
    pub pid: u32,
    /// Start time (ms since the Unix epoch).
    pub started_ms: u64,
    /// Capture backend in use (`ebpf`, `fanotify`).
    pub backend: String,
    /// The attach ladder's outcome: the rung in use, and why better rungs were refused.
    pub capture_detail: String,
    /// Kernel events the backend read since start (events).
    pub events: u64,
    /// Changes it journaled since start (changes; fewer than events: merged
    /// and coalesced events, paths outside the roots).
    pub journaled: u64,
    /// fanotify queue overflows and other capture losses turned into rescans since start.
    pub rescans: u64,
    /// eBPF programs' counters since their pinned maps were created (they
    /// outlive agents: a restart adopts them). Zero with fanotify.
    pub kernel_events: KernelCounters,
    /// When this start's capture went live and its directory index was
    /// ready (ms since arming began).
    pub arm_times: ArmTimes,
    /// Agent version.
    pub version: String,
}

/// The eBPF programs' per-CPU counters, summed (events), by name. Stored
/// by position (postcard, as the `[u64; 6]` it replaced): the fields are in
/// `fsjournal_common::counter` index order, which must not change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCounters {
    /// Hook invocations.
    pub seen: u64,
    /// Records written to the ring buffer.
    pub sent: u64,
    /// Records on another device or below no root, or by the agent itself.
    pub filtered: u64,
    /// Records lost: ring buffer and spill map full, or a rename record
    /// that did not fit (each a rescan).
    pub dropped: u64,
    /// Records kept in the spill map while the ring buffer was full.
    pub spilled: u64,
    /// Records skipped: the inode's previous record was still unread.
    pub coalesced: u64,
}

impl KernelCounters {
    /// From the counters in `fsjournal_common::counter` index order.
    pub fn from_indexed(values: [u64; counter::COUNT as usize]) -> KernelCounters {
        let [seen, sent, filtered, dropped, spilled, coalesced] = values;
        KernelCounters {
            seen,
            sent,
            filtered,
            dropped,
            spilled,
            coalesced,
        }
    }

    /// Each counter with its name (a metric label, a status word).
    pub fn named(&self) -> [(&'static str, u64); counter::COUNT as usize] {
        [
            ("seen", self.seen),
            ("sent", self.sent),
            ("filtered", self.filtered),
            ("dropped", self.dropped),
            ("spilled", self.spilled),
            ("coalesced", self.coalesced),
        ]
    }
}

/// The capture watermark (meta key `watermark`): every change made before
/// `time_ms` is in the journal. Written in the same batch as the changes it
/// covers, about once a second while capture runs and at a clean stop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Capture complete up to here (ms since the Unix epoch).
    pub time_ms: u64,
    /// `/proc/sys/kernel/random/boot_id` when it was written.
    pub boot_id: String,
    /// Written by a clean stop, after the last drain was journaled: nothing
    /// taken from the kernel was left unjournaled. False after a crash.
    pub clean_stop: bool,
}

/// Identity of a root's filesystem, stored under meta key `identity/<root>`
/// (defined with the other host facts).
pub use crate::host::FsIdentity;

/// How one agent start closed the gap since the previous watermark
/// (meta key `starts`, the last [`super::STARTS_KEPT`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRecord {
    /// Start time (ms since the Unix epoch).
    pub time_ms: u64,
    /// Boot id at start.
    pub boot_id: String,
    /// Time since the previous watermark (ms); `None` for a new journal.
    pub gap_ms: Option<u64>,
    /// The machine rebooted since the previous watermark.
    pub rebooted: bool,
    /// How the gap was closed: `ctime gap scan`, or `full sync (reason)`, per root.
    pub method: String,
    /// Entries the gap scan journaled.
    pub entries: u64,
    /// Entries the gap scan examined (lstat'ed).
    pub walked: u64,
    /// The gap is still being closed (a scan in progress).
    pub in_progress: bool,
    /// Time spent closing the gap (ms).
    pub ms: u64,
}

/// Wall-clock time in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How a target's last push went (meta key `strategy/<target>`), for
/// `status`: the batched file lists, or the cost model's one full rsync
/// (`push/cost.rs`), and why. Not fsynced: only `status` reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushStrategy {
    /// When the push ended (ms since the Unix epoch).
    pub time_ms: u64,
    /// `file lists` or `full rsync`.
    pub strategy: String,
    /// Why, with the figures that decided it.
    pub why: String,
}

/// An rsync run in progress for one target (meta key `push/<target>`),
/// written when it starts and removed when it ends, so that the CLI can
/// show a push that hangs (a target that accepts and never answers) next
/// to an older error. A record left by an agent that was killed names a pid
/// that no longer holds the journal: readers ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushInFlight {
    /// The agent running it.
    pub pid: u32,
    /// When rsync started (ms since the Unix epoch).
    pub started_ms: u64,
    /// Which run: `incremental`, `contents`, `subtree`, `full`, `verify`.
    pub mode: String,
    /// Paths listed on its stdin (0 for a full sync).
    pub paths: u64,
    /// The command line, arguments separated by spaces (an argument with
    /// a space or a quote in it is single-quoted).
    pub command: String,
}
