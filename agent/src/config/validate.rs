//! From the file as written (`raw.rs`) to the configuration the agent uses
//! (`config.rs`): the high layer's constructor. Every check runs and every
//! problem is collected at the position of its value, so that one `config
//! check` lists them all; only a configuration without problems becomes a
//! [`Config`]. The checks that look at the machine (the source is a
//! directory, the password file is private, the paths do not overlap) run
//! here too, so a bad file never starts an agent that would later lose
//! changes.

use std::collections::HashSet;
use std::num::{NonZeroU32, NonZeroUsize};
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use toml::Spanned;

use super::paths::{self, Node, Role};
use super::raw::{Problem, RawCapture, RawConfig, RawJournal, RawSync};
use super::values::{Percent, Rate, RingBufferBytes};
use super::{CaptureConfig, Config, JournalConfig, MetricsConfig, PushConfig, SyncConfig};
use crate::filter::Excludes;
use crate::target::Target;

/// Checks `raw` and builds the configuration from it; `place` says where a
/// path of the graph (see `paths.rs`) was written, for the message of a
/// clash reported at its other end. Errors: every problem, in the order of
/// the checks (global keys, then each `[[sync]]`, then the path graph).
pub fn config(raw: RawConfig, place: &dyn Fn(&Node) -> String) -> Result<Config, Vec<Problem>> {
    let mut problems = Problems::default();
    let raw_syncs = at_least_one_sync(raw.sync, &mut problems);
    let ring = problems.optional(
        "capture.ring_buffer_bytes".into(),
        raw.capture.ring_buffer_bytes.as_ref(),
        RingBufferBytes::DEFAULT,
        |&bytes| RingBufferBytes::new(bytes),
    );
    let max_parallel = problems.optional(
        "push.max_parallel".into(),
        raw.push.max_parallel.as_ref(),
        super::DEFAULT_MAX_PARALLEL,
        |&runs| at_least_one(NonZeroUsize::new(runs), "rsync runs"),
    );
    let dirty_inodes = problems.optional(
        "capture.dirty_inodes".into(),
        raw.capture.dirty_inodes.as_ref(),
        super::DEFAULT_DIRTY_INODES,
        |&inodes| at_least_one(NonZeroU32::new(inodes), "inodes"),
    );
    let journal = journal(&raw.journal);
    let journal_span = raw.journal.path.as_ref().map(Spanned::span);
    let mut graph = vec![Node::new(
        Role::Journal,
        "journal.path".into(),
        journal_span,
        &journal.path,
    )];
    let syncs = syncs(&raw_syncs, &mut graph, &mut problems);
    problems.0.extend(path_problems(&graph, place));
    let config = || {
        Some(Config {
            journal,
            capture: capture(&raw.capture, ring?, dirty_inodes?),
            metrics: MetricsConfig {
                address: raw.metrics.address,
            },
            push: PushConfig {
                max_parallel: max_parallel?,
            },
            sync: syncs?,
        })
    };
    problems.finish(config())
}

/// The `[[sync]]` tables, of which there must be at least one (the
/// problem is recorded at `sync = []`, or at line 0 when none is written).
fn at_least_one_sync(raw: Option<Spanned<Vec<RawSync>>>, problems: &mut Problems) -> Vec<RawSync> {
    let (span, syncs) = match raw {
        Some(syncs) => (Some(syncs.span()), syncs.into_inner()),
        None => (None, Vec::new()),
    };
    if syncs.is_empty() {
        let message = "at least one [[sync]] table is required";
        problems.push(span, "sync".into(), message.into());
    }
    syncs
}

/// Every `[[sync]]` table checked, its paths added to `graph`; `None`
/// when one has a problem (recorded).
fn syncs(
    raw: &[RawSync],
    graph: &mut Vec<Node>,
    problems: &mut Problems,
) -> Option<Vec<SyncConfig>> {
    let mut names = HashSet::new();
    let mut syncs = Vec::new();
    for (i, raw_sync) in raw.iter().enumerate() {
        let target = Target::parse(raw_sync.target.get_ref());
        graph.extend(graph_nodes(i, raw_sync, &target));
        syncs.push(sync(i, raw_sync, target, &mut names, problems));
    }
    syncs.into_iter().collect()
}

/// Problems found so far, in the order found.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, span: Option<Range<usize>>, key: String, message: String) {
        self.0.push(Problem { span, key, message });
    }

    /// `check` of a written value, or `None` with its problem recorded at
    /// the value.
    fn check<T, U>(
        &mut self,
        key: String,
        value: &Spanned<T>,
        check: impl FnOnce(&T) -> Result<U, String>,
    ) -> Option<U> {
        match check(value.get_ref()) {
            Ok(checked) => Some(checked),
            Err(message) => {
                self.push(Some(value.span()), key, message);
                None
            }
        }
    }

    /// [`Problems::check`] of a key that may be absent: `default` when it is.
    fn optional<T, U>(
        &mut self,
        key: String,
        value: Option<&Spanned<T>>,
        default: U,
        check: impl FnOnce(&T) -> Result<U, String>,
    ) -> Option<U> {
        match value {
            None => Some(default),
            Some(value) => self.check(key, value, check),
        }
    }

    /// The checked value when no problem was found, else every problem. A
    /// value is missing only where a problem was recorded.
    fn finish<T>(self, checked: Option<T>) -> Result<T, Vec<Problem>> {
        match checked {
            Some(checked) if self.0.is_empty() => Ok(checked),
            _ => Err(self.0),
        }
    }
}

/// `number` if it is not zero, else "expected a number of `what` >= 1".
fn at_least_one<N>(number: Option<N>, what: &str) -> Result<N, String> {
    number.ok_or_else(|| format!("expected a number of {what} >= 1"))
}

/// `percent` if it is at most 100, else "`percent`: expected a share of
/// `expected`".
fn share(percent: u8, expected: &str) -> Result<Percent, String> {
    Percent::new(percent).ok_or_else(|| format!("{percent}: expected a share of {expected}"))
}

/// `[journal]`, which has nothing to check on its own (its path is a node
/// of the graph).
fn journal(raw: &RawJournal) -> JournalConfig {
    let default = JournalConfig::default();
    JournalConfig {
        path: raw
            .path
            .as_ref()
            .map_or(default.path, |p| p.get_ref().clone()),
        retention_records: raw.retention_records.unwrap_or(default.retention_records),
        retention_hours: raw.retention_hours.unwrap_or(default.retention_hours),
    }
}

/// `[capture]` with its checked sizes.
fn capture(raw: &RawCapture, ring: RingBufferBytes, dirty_inodes: NonZeroU32) -> CaptureConfig {
    let default = CaptureConfig::default();
    CaptureConfig {
        backend: raw.backend.unwrap_or(default.backend),
        read_interval_ms: raw.read_interval_ms.unwrap_or(default.read_interval_ms),
        max_queued_events: raw.max_queued_events.unwrap_or(default.max_queued_events),
        ring_buffer_bytes: ring,
        dirty_inodes,
    }
}

/// The `i`th `[[sync]]` table, its target already parsed; `names` holds
/// the names of the tables before it (a name must be unique). `None` when
/// it has a problem (recorded).
fn sync(
    i: usize,
    raw: &RawSync,
    target: Result<Target, String>,
    names: &mut HashSet<String>,
    problems: &mut Problems,
) -> Option<SyncConfig> {
    let key = |k: &str| format!("sync[{i}].{k}");
    let name = problems.check(key("name"), &raw.name, |name| unique_name(name, names));
    let source = problems.check(key("source"), &raw.source, |source| {
        check_source(source).map(|()| source.clone())
    });
    let target = problems.check(key("target"), &raw.target, |_| reachable(target));
    let password_file = problems.optional(
        key("password_file"),
        raw.password_file.as_ref(),
        None,
        |file| check_private_file(file).map(|()| Some(file.clone())),
    );
    let excludes = problems.optional(
        key("exclude"),
        raw.exclude.as_ref(),
        Excludes::default(),
        |patterns| Excludes::new(patterns),
    );
    let bwlimit = problems.optional(key("bwlimit"), raw.bwlimit.as_ref(), None, |rate| {
        Rate::new(rate).map(Some)
    });
    let limits = limits(&key, raw, problems);
    let checked = SyncConfig {
        password_file: password_file?,
        excludes: excludes?,
        bwlimit: bwlimit?,
        ..SyncConfig::new(&name?, source?, target?)
    };
    Some(with_unchecked_keys(raw, limits?.apply(checked)))
}

/// The numbers of a `[[sync]]` table that have a range.
struct Limits {
    verify_slices: NonZeroU32,
    batch_max_files: NonZeroUsize,
    parallel_transfers: NonZeroUsize,
    full_push_percent: Percent,
    max_delete_percent: Percent,
}

/// The checked numbers of a `[[sync]]` table (`key` makes a key of it
/// dotted); `None` when one is out of range (recorded).
fn limits(key: &dyn Fn(&str) -> String, raw: &RawSync, problems: &mut Problems) -> Option<Limits> {
    let verify_slices = problems.optional(
        key("verify_slices"),
        raw.verify_slices.as_ref(),
        super::DEFAULT_VERIFY_SLICES,
        |&n| at_least_one(NonZeroU32::new(n), "slices"),
    );
    let batch_max_files = problems.optional(
        key("batch_max_files"),
        raw.batch_max_files.as_ref(),
        super::DEFAULT_BATCH_MAX_FILES,
        |&n| at_least_one(NonZeroUsize::new(n), "paths"),
    );
    let parallel_transfers = problems.optional(
        key("parallel_transfers"),
        raw.parallel_transfers.as_ref(),
        super::DEFAULT_PARALLEL_TRANSFERS,
        |&n| at_least_one(NonZeroUsize::new(n), "rsync runs"),
    );
    let full_push_percent = problems.optional(
        key("full_push_percent"),
        raw.full_push_percent.as_ref(),
        super::DEFAULT_FULL_PUSH_PERCENT,
        |&p| share(p, "the source's entries from 0 to 100 (percent; 0 = never)"),
    );
    let max_delete_percent = problems.optional(
        key("max_delete_percent"),
        raw.max_delete_percent.as_ref(),
        super::DEFAULT_MAX_DELETE_PERCENT,
        |&p| share(p, "the target from 0 to 100 (percent; 100 = no limit)"),
    );
    Some(Limits {
        verify_slices: verify_slices?,
        batch_max_files: batch_max_files?,
        parallel_transfers: parallel_transfers?,
        full_push_percent: full_push_percent?,
        max_delete_percent: max_delete_percent?,
    })
}

impl Limits {
    fn apply(self, sync: SyncConfig) -> SyncConfig {
        SyncConfig {
            verify_slices: self.verify_slices,
            batch_max_files: self.batch_max_files,
            parallel_transfers: self.parallel_transfers,
            full_push_percent: self.full_push_percent,
            max_delete_percent: self.max_delete_percent,
            ..sync
        }
    }
}

/// `sync` with the keys that have no check set as written (a key not
/// written keeps `sync`'s default).
fn with_unchecked_keys(raw: &RawSync, sync: SyncConfig) -> SyncConfig {
    SyncConfig {
        ssh_command: raw.ssh_command.clone(),
        batch_max_bytes: raw.batch_max_bytes.unwrap_or(sync.batch_max_bytes),
        batch_delay_ms: raw.batch_delay_ms.unwrap_or(sync.batch_delay_ms),
        retry_max_ms: raw.retry_max_ms.unwrap_or(sync.retry_max_ms),
        io_timeout_s: raw.io_timeout_s,
        connect_timeout_s: raw.connect_timeout_s,
        rsync_args: raw.rsync_args.clone().unwrap_or_default(),
        settle_ms: raw.settle_ms.unwrap_or(sync.settle_ms),
        settle_max_ms: raw.settle_max_ms.unwrap_or(sync.settle_max_ms),
        hard_links: raw.hard_links.unwrap_or(sync.hard_links),
        xattrs: raw.xattrs.unwrap_or(sync.xattrs),
        acls: raw.acls.unwrap_or(sync.acls),
        verify_interval_s: raw.verify_interval_s.unwrap_or(sync.verify_interval_s),
        before_full_sync: raw.before_full_sync.clone(),
        after_push: raw.after_push.clone(),
        hook_timeout_s: raw.hook_timeout_s.unwrap_or(sync.hook_timeout_s),
        history_days: raw.history_days.unwrap_or(sync.history_days),
        ..sync
    }
}

/// A sync's name: unique, not empty, without `/` (it names files and the
/// target's cursor).
fn unique_name(name: &str, names: &mut HashSet<String>) -> Result<String, String> {
    if name.is_empty() || name.contains(['/', '\0']) || !names.insert(name.to_string()) {
        return Err(format!(
            "`{name}` must be a unique, non-empty name without `/`"
        ));
    }
    Ok(name.to_string())
}

/// A source must be an existing directory, written absolute.
fn check_source(source: &Path) -> Result<(), String> {
    if !source.is_absolute() {
        return Err("expected an absolute path".into());
    }
    match std::fs::metadata(source) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err("is not a directory".into()),
        Err(e) => Err(format!("{}: {e}", source.display())),
    }
}

/// A parsed target; a local directory must exist or have a parent that
/// does (rsync creates only the last component).
fn reachable(target: Result<Target, String>) -> Result<Target, String> {
    match target? {
        Target::Local(dir) if !dir.is_dir() && !dir.parent().is_some_and(Path::is_dir) => Err(format!(
            "{}: neither it nor its parent directory exists (rsync creates only the last component)",
            dir.display()
        )),
        target => Ok(target),
    }
}

/// A secret file must exist, be readable, be private (no group/other bits)
/// and be owned by root, as rsync itself demands of `--password-file` when
/// run as root (authenticate.c: "password file must be owned by root when
/// running as root"); the agent runs as root.
fn check_private_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.uid() != 0 {
        return Err(format!(
            "{} is owned by uid {}, not root: rsync, run as root by the agent, refuses it (\"password file must be owned by root when running as root\") and every push would fail; chown root {}",
            path.display(),
            meta.uid(),
            path.display()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {mode:04o}; expected 0600 or stricter (chmod 600)",
            path.display()
        ));
    }
    std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// The `i`th sync's paths in the graph: its source, and its target when
/// that is a local directory.
fn graph_nodes(i: usize, raw: &RawSync, target: &Result<Target, String>) -> Vec<Node> {
    let key = |k: &str| format!("sync[{i}].{k}");
    let mut nodes = vec![Node::new(
        Role::Source,
        key("source"),
        Some(raw.source.span()),
        raw.source.get_ref(),
    )];
    if let Ok(Target::Local(dir)) = target {
        nodes.push(Node::new(
            Role::Target,
            key("target"),
            Some(raw.target.span()),
            dir,
        ));
    }
    nodes
}

/// The overlaps of the path graph (see `paths.rs`), each reported at one
/// end and naming the other end's `place`.
fn path_problems(nodes: &[Node], place: &dyn Fn(&Node) -> String) -> Vec<Problem> {
    paths::clashes(nodes)
        .iter()
        .map(|clash| {
            let at = &nodes[clash.at];
            Problem {
                span: at.span.clone(),
                key: at.key.clone(),
                message: paths::describe(nodes, clash, place),
            }
        })
        .collect()
}
