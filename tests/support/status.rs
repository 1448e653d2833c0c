//! `fsjournal status --json` as the tests read it: a mirror of the document
//! `agent/src/cli/status.rs` prints, written out here rather than borrowed
//! from the agent, so that a renamed, removed or added key fails the tests
//! (`deny_unknown_fields` on every object) instead of reading as null.

use serde::Deserialize;

/// The status document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// Journal directory.
    pub journal: String,
    /// Journal id (16 hex digits).
    pub journal_id: String,
    /// Highest sequence number assigned.
    pub last_seq: u64,
    /// Oldest sequence number still in the inspection log.
    pub log_first_seq: u64,
    /// Whether an agent holds the journal open.
    pub agent_running: bool,
    /// The lock holder's pid, else the last recorded one (0: none ever ran).
    pub agent_pid: u32,
    /// Capture backend of the last agent (`ebpf`, `fanotify`).
    pub backend: String,
    /// The attach ladder's outcome.
    pub capture_detail: String,
    /// Kernel events the last agent read since its start.
    pub events: u64,
    /// Changes it journaled since its start.
    pub journaled: u64,
    /// Rescan markers it wrote since its start.
    pub rescans: u64,
    /// The eBPF programs' counters (events).
    pub kernel_events: KernelEvents,
    /// When capture went live and the directory index was ready (ms).
    pub arm_times: ArmTimes,
    /// Agent uptime (ms), 0 when not running.
    pub uptime_ms: u64,
    /// Source roots.
    pub roots: Vec<String>,
    /// One entry per target, by name.
    pub targets: Vec<Target>,
    /// Capture watermark (ms since the Unix epoch).
    pub watermark_ms: Option<u64>,
    /// Recent agent starts, oldest first.
    pub starts: Vec<Start>,
    /// The verdict.
    pub health: Health,
}

impl Status {
    /// The first target; panics when the journal has none yet.
    pub fn target(&self) -> &Target {
        self.targets.first().expect("a target in the status")
    }

    /// The first target, `None` before the agent recorded one (for polls).
    pub fn first_target(&self) -> Option<&Target> {
        self.targets.first()
    }

    /// The last start record; panics when there is none.
    pub fn last_start(&self) -> &Start {
        self.starts.last().expect("a start record in the status")
    }
}

/// The eBPF programs' per-CPU counters, summed (events).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelEvents {
    /// Hook invocations.
    pub seen: u64,
    /// Records written to the ring buffer.
    pub sent: u64,
    /// Records on another device, below no root, or by the agent itself.
    pub filtered: u64,
    /// Records lost (each a rescan).
    pub dropped: u64,
    /// Records kept in the spill map while the ring buffer was full.
    pub spilled: u64,
    /// Records skipped: the inode's previous record was still unread.
    pub coalesced: u64,
}

/// When arming made capture live, and when the directory index was
/// complete (ms since arming began).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmTimes {
    /// Programs attached / fanotify marks placed (ms).
    pub attached_ms: u64,
    /// Directory index built (ms).
    pub index_ready_ms: u64,
}

/// The health verdict.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// No problem found.
    pub ok: bool,
    /// Each problem, in words.
    pub problems: Vec<String>,
}

/// One target: what the journal owes it and its stored state, in one flat
/// object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Sync name.
    pub name: String,
    /// Source root path.
    pub root_path: String,
    /// Paths still to push, held ones included.
    pub pending: u64,
    /// Their size in the source now (bytes).
    pub pending_bytes: u64,
    /// `pending_bytes` is extrapolated.
    pub pending_bytes_estimated: bool,
    /// Age of the oldest unpushed change (ms).
    pub lag_ms: u64,
    /// The rsync run in progress, if any.
    pub push_in_flight: Option<PushInFlight>,
    /// How the last push went.
    pub last_strategy: Option<Strategy>,
    /// Root id in the journal's root table.
    pub root: u32,
    /// The configured target string.
    pub target: String,
    /// Journal id the cursor belongs to.
    pub journal_id: u64,
    /// Exclude patterns in force.
    pub excludes: Vec<String>,
    /// Highest acknowledged sequence number.
    pub cursor: u64,
    /// Why a full sync is owed, while one is.
    pub full_sync_needed: Option<String>,
    /// Full syncs done, ever.
    pub full_syncs: u64,
    /// Why the last full sync was needed.
    pub last_full_sync_reason: Option<String>,
    /// End of the last push attempt (ms since the Unix epoch, 0 = never).
    pub last_push_ms: u64,
    /// The last push attempt's error, `None` after a success.
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// Paths pushed incrementally, ever.
    pub pushed_paths: u64,
    /// Paths held back past the cursor.
    pub held: Vec<Held>,
    /// End of the last rolling verification (ms since the Unix epoch).
    pub last_verify_ms: u64,
    /// The slice the next rolling verification compares.
    pub verify_slice: u32,
    /// Entries compared by rolling verification, ever.
    pub verified_units: u64,
    /// Differences rolling verification found, ever (paths).
    pub drift_found: u64,
}

impl Target {
    /// `last_error`, or `""` after a success (for `contains` checks).
    pub fn error(&self) -> &str {
        self.last_error.as_deref().unwrap_or_default()
    }
}

/// A push in flight: the run and how long it has been going.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushInFlight {
    /// Time since rsync started (ms).
    pub age_ms: u64,
    /// The agent running it.
    pub pid: u32,
    /// When rsync started (ms since the Unix epoch).
    pub started_ms: u64,
    /// `incremental`, `contents`, `subtree`, `full`, `verify`.
    pub mode: String,
    /// Paths listed on its stdin.
    pub paths: u64,
    /// The command line.
    pub command: String,
}

/// How a target's last push went.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    /// When the push ended (ms since the Unix epoch).
    pub time_ms: u64,
    /// `file lists` or `full rsync`.
    pub strategy: String,
    /// Why, with figures.
    pub why: String,
}

/// A path a target pushes later.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    /// Path relative to the root (raw bytes, a JSON array of numbers).
    pub path: Vec<u8>,
    /// How much of it to push.
    pub scope: Scope,
    /// Time of its oldest unpushed change (ms since the Unix epoch).
    pub since_ms: u64,
    /// Not pushed before this time (ms since the Unix epoch).
    pub not_before_ms: u64,
    /// Why it is held.
    pub reason: HoldReason,
}

/// How much of a path a push covers (serde's enum names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Scope {
    /// The entry itself.
    Entry,
    /// The directory and its direct children.
    Contents,
    /// Everything below the path.
    Subtree,
}

/// Why a target holds a path back (serde's enum names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HoldReason {
    /// Still being written.
    Settling,
    /// Refused by the target this many times in a row.
    Failed(u32),
    /// Rolling verification found it different.
    Drift,
    /// An operator asked for it.
    Requested,
}

/// How one agent start closed the gap since the previous watermark.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// Start time (ms since the Unix epoch).
    pub time_ms: u64,
    /// Boot id at start.
    pub boot_id: String,
    /// Time since the previous watermark (ms); `None` for a new journal.
    pub gap_ms: Option<u64>,
    /// The machine rebooted since the previous watermark.
    pub rebooted: bool,
    /// How the gap was closed (`ctime gap scan`, `pinned eBPF backlog`, …).
    pub method: String,
    /// Entries the gap scan journaled.
    pub entries: u64,
    /// Entries the gap scan examined.
    pub walked: u64,
    /// The gap is still being closed.
    pub in_progress: bool,
    /// Time spent closing the gap (ms).
    pub ms: u64,
}
