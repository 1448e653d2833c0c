//! The agent's configuration: one TOML file, or the same structure built from
//! `fsjournal run --source DIR --dest TARGET`.
//!
//! Every error names the file, the line and the key, and says what was
//! expected (see [`ConfigError`]). Semantic checks (the source exists and is a
//! directory, the target parses, the password file is private) run at load
//! time, so a bad file never starts an agent that would later lose changes.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::filter::Excludes;
use crate::target::{self, Target};

mod paths;

use paths::{Node, Role};

/// Default journal directory (RocksDB database).
pub const DEFAULT_JOURNAL_DIR: &str = "/var/lib/fsjournal";

/// A configuration problem, located in its file.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: key `{key}`: {message}")]
pub struct ConfigError {
    /// The configuration file (or `<command line>`).
    pub file: String,
    /// 1-based line of the offending value (0 when unknown).
    pub line: usize,
    /// Dotted path of the key, e.g. `sync[0].batch_max_files`.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Every problem found in one configuration, one per line when displayed.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// A semantic problem: the value's span, its dotted key, the message.
type Problem = (Option<Range<usize>>, String, String);

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the journal lives and how long its log is kept.
    #[serde(default)]
    pub journal: JournalConfig,
    /// How changes are captured.
    #[serde(default)]
    pub capture: CaptureConfig,
    /// The Prometheus endpoint (off unless an address is given).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Limits shared by every target's pushes.
    #[serde(default)]
    pub push: PushConfig,
    /// One entry per (source tree, target) pair, each with its own cursor.
    /// Absent (the package's commented default) is not a parse error but
    /// the check's "at least one [[sync]] table is required".
    #[serde(default)]
    pub sync: Vec<SyncConfig>,
}

/// `[journal]`: the RocksDB journal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Database directory; must not lie inside a source tree.
    pub path: PathBuf,
    /// Keep at most this many records in the inspection log (records).
    pub retention_records: u64,
    /// Drop inspection-log records older than this (hours).
    pub retention_hours: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            path: PathBuf::from(DEFAULT_JOURNAL_DIR),
            retention_records: 1_000_000,
            retention_hours: 24 * 7,
        }
    }
}

/// Which capture backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// Best available backend: eBPF, else fanotify.
    Auto,
    /// eBPF: the VFS-hook rung (fexit) where the kernel has BPF trampolines,
    /// else the tracepoint rung (kernels 6.13 and later).
    Ebpf,
    /// fanotify with a filesystem-wide mark and FID reporting.
    Fanotify,
}

/// `[capture]`: change capture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Backend selection.
    pub backend: BackendChoice,
    /// Pause between two reads of the event queue (ms): lets the kernel
    /// merge repeated events and wakes the agent once per batch, not per event.
    pub read_interval_ms: u64,
    /// Raise `/proc/sys/fs/fanotify/max_queued_events` to at least this many
    /// events before creating a group (0 = leave the kernel's value alone).
    pub max_queued_events: u64,
    /// Size of the eBPF ring buffer (bytes, a power of two ≥ 4096): at
    /// 40 bytes an event, 32 MiB holds about 800,000 events between drains.
    pub ring_buffer_bytes: u32,
    /// Inodes the eBPF programs can hold when the ring buffer is full
    /// (entries, about 40 bytes of kernel memory each); only when these are
    /// full too is an event lost (and a rescan needed).
    pub dirty_inodes: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            backend: BackendChoice::Auto,
            read_interval_ms: 5,
            max_queued_events: 1 << 20,
            ring_buffer_bytes: 32 << 20,
            dirty_inodes: 1 << 16,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint (`metrics.rs`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served (`IP:PORT`, e.g. `127.0.0.1:9464`);
    /// `None`: no endpoint.
    #[serde(deserialize_with = "socket_address")]
    pub address: Option<SocketAddr>,
}

/// `[push]`: limits over all targets together.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// At most this many rsync runs at once over all targets (runs, ≥ 1):
    /// each reads the source disk and holds a connection; the others wait
    /// for a slot, their changes kept in the journal.
    pub max_parallel: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig { max_parallel: 4 }
    }
}

/// Deserializes `IP:PORT`, saying what was expected on failure.
fn socket_address<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "`{text}`: expected IP:PORT, e.g. 127.0.0.1:9464 (loopback) or [::1]:9464"
        ))
    })
}

/// `[[sync]]`: one source tree pushed to one target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Unique name; keys the target's cursor in the journal.
    pub name: String,
    /// Source directory (absolute).
    pub source: Spanned<PathBuf>,
    /// Local directory, `rsync://[user@]host[:port]/module[/path]` or
    /// `[user@]host:path` (ssh).
    pub target: Spanned<String>,
    /// rsync daemon password file (must be mode 0600 or stricter).
    #[serde(default)]
    pub password_file: Option<Spanned<PathBuf>>,
    /// Remote shell for ssh targets (rsync `-e`), e.g. `ssh -p 2222`.
    #[serde(default)]
    pub ssh_command: Option<String>,
    /// At most this many paths per rsync run (paths).
    #[serde(default = "default_batch_max_files")]
    pub batch_max_files: usize,
    /// At most about this many bytes per rsync run (bytes, the sizes of the
    /// listed paths when the batch is made; 0 = no limit): bounds what a
    /// failed run has to send again. A single larger file goes alone.
    #[serde(default)]
    pub batch_max_bytes: u64,
    /// Wait this long after the oldest unpushed change before pushing (ms).
    #[serde(default = "default_batch_delay_ms")]
    pub batch_delay_ms: u64,
    /// Upper bound of the retry backoff after a failed push (ms).
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// rsync's I/O timeout (`--timeout`, s; 0 = none): a run with no byte
    /// from the other side for about 1.5 times this fails and is retried.
    /// `None`: by target kind (see [`SyncConfig::io_timeout`]). Also read
    /// under its former name `timeout_s`.
    #[serde(default, alias = "timeout_s")]
    pub io_timeout_s: Option<u64>,
    /// Connect timeout (s; 0 = none): rsync `--contimeout` for a daemon,
    /// ssh `-o ConnectTimeout` for a remote shell; unused for a local
    /// directory. `None`: [`target::CONNECT_TIMEOUT_S`].
    #[serde(default)]
    pub connect_timeout_s: Option<u64>,
    /// Bandwidth limit of each rsync run to this target (`--bwlimit`):
    /// KiB/s, or a number with rsync's suffix `K`, `M` or `G` (`"10M"`).
    #[serde(default)]
    pub bwlimit: Option<Spanned<String>>,
    /// Extra arguments appended to every rsync run (e.g. `--checksum`).
    #[serde(default)]
    pub rsync_args: Vec<String>,
    /// rsync-style exclude patterns (`workspace/**`, `*.tmp`, `/cache`): not
    /// journaled, not pushed, kept out of full syncs (see `filter.rs`).
    #[serde(default)]
    pub exclude: Option<Spanned<Vec<String>>>,
    /// Hold a path back until it has not changed for this long (ms; 0 = push
    /// at the batch delay): a file still being written (a growing build log)
    /// is copied once it is quiet, not at every batch.
    #[serde(default)]
    pub settle_ms: u64,
    /// Never hold a changing path back longer than this (ms), so the replica
    /// of a file written without pause still trails it by a bounded time.
    #[serde(default = "default_settle_max_ms")]
    pub settle_max_ms: u64,
    /// Preserve hard links among the files of one rsync run (`-H`). Links
    /// whose names are pushed in different runs arrive as separate copies.
    #[serde(default)]
    pub hard_links: bool,
    /// Preserve extended attributes (`-X`; the target must support them).
    #[serde(default)]
    pub xattrs: bool,
    /// Preserve POSIX ACLs (`-A`; implies matching users on the target).
    #[serde(default)]
    pub acls: bool,
    /// Compare one slice of the tree with the target this often (s; 0 =
    /// never): `rsync --dry-run --itemize-changes`, pushing any difference no
    /// journaled change explains (drift).
    #[serde(default = "default_verify_interval_s")]
    pub verify_interval_s: u64,
    /// Slices the tree is cut into for rolling verification: the whole tree
    /// is compared every `verify_interval_s × verify_slices` seconds.
    #[serde(default = "default_verify_slices")]
    pub verify_slices: u32,
    /// Shell command (`sh -c`) run before each full sync of this target;
    /// its failure is logged, and the full sync goes ahead.
    #[serde(default)]
    pub before_full_sync: Option<String>,
    /// Shell command (`sh -c`) run after each confirmed push, with the
    /// pushed root-relative paths NUL-separated on stdin and `FSJ_SYNC`,
    /// `FSJ_TARGET`, `FSJ_SOURCE`, `FSJ_PATHS` (count) in its environment
    /// (like sersync's command plugin); its failure is logged.
    #[serde(default)]
    pub after_push: Option<String>,
    /// A hook running longer than this is killed (s).
    #[serde(default = "default_hook_timeout_s")]
    pub hook_timeout_s: u64,
    /// Keep what pushes overwrite or delete on the target for this many days
    /// under `.fsjournal-history/<YYYY-MM-DD>/` (days; 0 = keep nothing).
    #[serde(default)]
    pub history_days: u32,
    /// A full sync that would delete more than this share of the target's
    /// entries (percent, 0–100; 100 = no limit) is refused until the
    /// operator confirms it with `fsjournal resync --force`: rsync
    /// `--max-delete`'s idea, as a share, measured by a dry run first.
    #[serde(default = "default_max_delete_percent")]
    pub max_delete_percent: u8,
    /// The cost model: when the pending paths reach this share of the
    /// entries of the source's filesystem (percent of its used inodes,
    /// `statvfs`; 0 = never), one `rsync -a --delete` of the whole root
    /// replaces the file lists, which would be slower (push/cost.rs).
    #[serde(default = "default_full_push_percent")]
    pub full_push_percent: u8,
    /// rsync runs at once for one batch to this target (runs, ≥ 1): each
    /// run's list is cut into parts that share no directory
    /// (push/split.rs); `[push] max_parallel` still bounds all runs.
    #[serde(default = "default_parallel_transfers")]
    pub parallel_transfers: usize,
}

fn default_batch_max_files() -> usize {
    10_000
}
fn default_batch_delay_ms() -> u64 {
    1_000
}
fn default_retry_max_ms() -> u64 {
    60_000
}
fn default_settle_max_ms() -> u64 {
    60_000
}
fn default_verify_interval_s() -> u64 {
    300
}
fn default_verify_slices() -> u32 {
    12
}
fn default_hook_timeout_s() -> u64 {
    60
}
fn default_max_delete_percent() -> u8 {
    50
}
fn default_full_push_percent() -> u8 {
    60
}
fn default_parallel_transfers() -> usize {
    1
}

impl SyncConfig {
    /// A sync with every optional key at its default.
    pub fn new(name: &str, source: PathBuf, target: String) -> SyncConfig {
        SyncConfig {
            name: name.to_string(),
            source: Spanned::new(0..0, source),
            target: Spanned::new(0..0, target),
            password_file: None,
            ssh_command: None,
            batch_max_files: default_batch_max_files(),
            batch_max_bytes: 0,
            batch_delay_ms: default_batch_delay_ms(),
            retry_max_ms: default_retry_max_ms(),
            io_timeout_s: None,
            connect_timeout_s: None,
            bwlimit: None,
            rsync_args: Vec::new(),
            exclude: None,
            settle_ms: 0,
            settle_max_ms: default_settle_max_ms(),
            hard_links: false,
            xattrs: false,
            acls: false,
            verify_interval_s: default_verify_interval_s(),
            verify_slices: default_verify_slices(),
            before_full_sync: None,
            after_push: None,
            hook_timeout_s: default_hook_timeout_s(),
            history_days: 0,
            max_delete_percent: default_max_delete_percent(),
            full_push_percent: default_full_push_percent(),
            parallel_transfers: default_parallel_transfers(),
        }
    }

    /// The exclude patterns as written (empty when none).
    pub fn exclude_patterns(&self) -> &[String] {
        self.exclude
            .as_ref()
            .map_or(&[][..], |e| e.get_ref().as_slice())
    }

    /// The compiled exclude list (validated at load time, so this cannot fail later).
    pub fn excludes(&self) -> Excludes {
        Excludes::new(self.exclude_patterns()).expect("excludes validated at load")
    }

    /// The parsed target (validated at load time, so this cannot fail later).
    pub fn target(&self) -> Target {
        Target::parse(self.target.get_ref()).expect("target validated at load")
    }

    /// rsync's I/O timeout (s; 0 = none): `io_timeout_s`, else
    /// [`target::REMOTE_IO_TIMEOUT_S`] for a daemon or remote shell and
    /// [`target::LOCAL_IO_TIMEOUT_S`] for a local directory.
    pub fn io_timeout(&self) -> u64 {
        self.io_timeout_s
            .unwrap_or_else(|| self.target().default_io_timeout_s())
    }

    /// The connect timeout (s; 0 = none): `connect_timeout_s`, else
    /// [`target::CONNECT_TIMEOUT_S`].
    pub fn connect_timeout(&self) -> u64 {
        self.connect_timeout_s.unwrap_or(target::CONNECT_TIMEOUT_S)
    }
}

impl Config {
    /// Reads and validates a TOML file.
    ///
    /// Errors: unreadable file, TOML syntax, unknown or mistyped key, or a
    /// semantic problem; each as a [`ConfigError`] with file, line and key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        Ok(Config::parse(&text, &path.display().to_string())?)
    }

    /// Parses and validates TOML text; `file` names it in errors. A syntax
    /// or type error stops parsing (one error); semantic checks report every
    /// problem.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
        let located = |(span, key, message): Problem| ConfigError {
            file: file.to_string(),
            line: span
                .or_else(|| key_span(text, &key))
                .map_or(0, |s| line_of(text, s.start)),
            key,
            message,
        };
        let deserializer = toml::de::Deserializer::parse(text).map_err(|e| {
            ConfigErrors(vec![located((
                e.span(),
                String::new(),
                e.message().to_string(),
            ))])
        })?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            ConfigErrors(vec![located((
                inner.span(),
                key,
                inner.message().to_string(),
            ))])
        })?;
        let journal_span = toml::from_str::<JournalSpan>(text)
            .ok()
            .and_then(|s| s.journal.path.map(|p| p.span()));
        let place = |node: &Node| {
            let line = node.span.clone().map_or(0, |s| line_of(text, s.start));
            format!("{file}:{line}: key `{}`", node.key)
        };
        let mut problems = config.validate();
        problems.extend(config.path_problems(journal_span, &place));
        if !problems.is_empty() {
            return Err(ConfigErrors(problems.into_iter().map(located).collect()));
        }
        Ok(config)
    }

    /// The configuration of `fsjournal run --source DIR --dest TARGET`.
    pub fn from_command_line(
        source: PathBuf,
        dest: String,
        journal: Option<PathBuf>,
    ) -> Result<Config, ConfigErrors> {
        let mut config = Config {
            journal: JournalConfig::default(),
            capture: CaptureConfig::default(),
            metrics: MetricsConfig::default(),
            push: PushConfig::default(),
            sync: vec![SyncConfig::new("default", source, dest)],
        };
        let journal_given = journal.is_some();
        if let Some(journal) = journal {
            config.journal.path = journal;
        }
        let place = |node: &Node| match node.role {
            Role::Journal if !journal_given => "the default of --journal".to_string(),
            _ => option_of(&node.key),
        };
        let mut problems = config.validate();
        problems.extend(config.path_problems(None, &place));
        if !problems.is_empty() {
            let errors = problems.into_iter().map(|(_, key, message)| ConfigError {
                file: "<command line>".into(),
                line: 0,
                key: option_of(&key),
                message,
            });
            return Err(ConfigErrors(errors.collect()));
        }
        Ok(config)
    }

    /// The journal, the sources and the local targets, as a path graph
    /// (see `config/paths.rs`) whose overlaps are problems, each reported at
    /// one end and naming the other end's `place`.
    fn path_problems(
        &self,
        journal_span: Option<Range<usize>>,
        place: &dyn Fn(&Node) -> String,
    ) -> Vec<Problem> {
        let mut nodes = vec![Node::new(
            Role::Journal,
            "journal.path".into(),
            journal_span,
            &self.journal.path,
        )];
        for (i, sync) in self.sync.iter().enumerate() {
            let source = sync.source.get_ref();
            let key = |k: &str| format!("sync[{i}].{k}");
            nodes.push(Node::new(
                Role::Source,
                key("source"),
                Some(sync.source.span()),
                source,
            ));
            if let Ok(Target::Local(dir)) = Target::parse(sync.target.get_ref()) {
                nodes.push(Node::new(
                    Role::Target,
                    key("target"),
                    Some(sync.target.span()),
                    &dir,
                ));
            }
        }
        paths::clashes(&nodes)
            .iter()
            .map(|clash| {
                let at = &nodes[clash.at];
                let message = paths::describe(&nodes, clash, place);
                (at.span.clone(), at.key.clone(), message)
            })
            .collect()
    }

    /// Semantic checks: every problem, each with the value's span and dotted key.
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.sync.is_empty() {
            problems.push((
                None,
                "sync".into(),
                "at least one [[sync]] table is required".into(),
            ));
        }
        let ring = self.capture.ring_buffer_bytes;
        if ring < 4096 || !ring.is_power_of_two() {
            problems.push((
                None,
                "capture.ring_buffer_bytes".into(),
                format!("{ring}: expected a power of two >= 4096 (bytes)"),
            ));
        }
        if self.push.max_parallel == 0 {
            problems.push((
                None,
                "push.max_parallel".into(),
                "expected a number of rsync runs >= 1".into(),
            ));
        }
        if self.capture.dirty_inodes == 0 {
            problems.push((
                None,
                "capture.dirty_inodes".into(),
                "expected a number of inodes >= 1".into(),
            ));
        }
        let mut names = HashSet::new();
        for (i, sync) in self.sync.iter().enumerate() {
            problems.extend(sync.problems(i, &mut names));
        }
        problems
    }
}

impl SyncConfig {
    /// The problems of the `i`th `[[sync]]` table; `names` holds the names
    /// of the tables before it (a name must be unique).
    fn problems(&self, i: usize, names: &mut HashSet<String>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let key = |k: &str| format!("sync[{i}].{k}");
        if self.name.is_empty()
            || self.name.contains(['/', '\0'])
            || !names.insert(self.name.clone())
        {
            problems.push((
                None,
                key("name"),
                format!(
                    "`{}` must be a unique, non-empty name without `/`",
                    self.name
                ),
            ));
        }
        let source = self.source.get_ref();
        if let Err(message) = check_source(source) {
            problems.push((Some(self.source.span()), key("source"), message));
        }
        match Target::parse(self.target.get_ref()) {
            Err(message) => problems.push((Some(self.target.span()), key("target"), message)),
            Ok(Target::Local(dir)) if !dir.is_dir() && !dir.parent().is_some_and(Path::is_dir) => {
                problems.push((
                    Some(self.target.span()),
                    key("target"),
                    format!(
                        "{}: neither it nor its parent directory exists (rsync creates only the last component)",
                        dir.display()
                    ),
                ));
            }
            Ok(_) => {}
        }
        if let Some(Err(message)) = self
            .password_file
            .as_ref()
            .map(|f| check_private_file(f.get_ref()))
        {
            problems.push((
                self.password_file.as_ref().map(Spanned::span),
                key("password_file"),
                message,
            ));
        }
        if let Some(Err(message)) = self.exclude.as_ref().map(|e| Excludes::new(e.get_ref())) {
            problems.push((
                self.exclude.as_ref().map(Spanned::span),
                key("exclude"),
                message,
            ));
        }
        if let Some(Err(message)) = self.bwlimit.as_ref().map(|b| check_rate(b.get_ref())) {
            problems.push((
                self.bwlimit.as_ref().map(Spanned::span),
                key("bwlimit"),
                message,
            ));
        }
        if self.verify_slices == 0 {
            problems.push((
                None,
                key("verify_slices"),
                "expected a number of slices >= 1".into(),
            ));
        }
        if self.batch_max_files == 0 {
            problems.push((
                None,
                key("batch_max_files"),
                "expected a number of paths >= 1".into(),
            ));
        }
        if self.parallel_transfers == 0 {
            problems.push((
                None,
                key("parallel_transfers"),
                "expected a number of rsync runs >= 1".into(),
            ));
        }
        if self.full_push_percent > 100 {
            problems.push((
                None,
                key("full_push_percent"),
                format!("{}: expected a share of the source's entries from 0 to 100 (percent; 0 = never)", self.full_push_percent),
            ));
        }
        if self.max_delete_percent > 100 {
            problems.push((
                None,
                key("max_delete_percent"),
                format!(
                    "{}: expected a share of the target from 0 to 100 (percent; 100 = no limit)",
                    self.max_delete_percent
                ),
            ));
        }
        problems
    }
}

/// `[journal] path`'s span, read beside the configuration (whose
/// `JournalConfig.path` is a plain path) to name its line in errors.
#[derive(Deserialize)]
struct JournalSpan {
    #[serde(default)]
    journal: JournalPathSpan,
}

#[derive(Default, Deserialize)]
struct JournalPathSpan {
    path: Option<Spanned<PathBuf>>,
}

/// The `fsjournal run` option a key comes from without `--config`.
fn option_of(key: &str) -> String {
    key.replace("journal.path", "--journal")
        .replace("sync[0].source", "--source")
        .replace("sync[0].target", "--dest")
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

/// A rate as rsync's `--bwlimit` takes it: a number (KiB/s) with an
/// optional fraction and unit suffix (`K`, `M`, `G`, optionally followed by
/// `B` or `iB`), e.g. `500`, `1.5M`, `10MiB`; rsync(1) "--bwlimit".
fn check_rate(rate: &str) -> Result<(), String> {
    let digits_end = rate
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rate.len());
    let (number, suffix) = rate.split_at(digits_end);
    let number_ok = number.parse::<f64>().is_ok_and(|n| n > 0.0);
    let suffix_ok = suffix.is_empty()
        || suffix.len() <= 3
            && suffix.starts_with(['K', 'M', 'G', 'k', 'm', 'g'])
            && ["", "B", "b", "iB", "ib"].contains(&&suffix[1..]);
    if number_ok && suffix_ok {
        Ok(())
    } else {
        Err(format!(
            "`{rate}`: expected a rate > 0 in KiB/s, or with a suffix K, M or G (e.g. \"500\", \"10M\")"
        ))
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where the value of `key` is written in `text`: `key` as problems name
/// it, dotted with array indexes (`capture.ring_buffer_bytes`,
/// `sync[1].verify_slices`). `None` when the key is not written (its
/// default was used) or the text does not parse. Semantic checks run on
/// the deserialized values, which keep no position; this finds it again.
fn key_span(text: &str, key: &str) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let document = DeTable::parse(text).ok()?;
    let mut table: Option<&DeTable> = Some(document.get_ref());
    let mut span = None;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((name, index)) => (
                name,
                Some(index.trim_end_matches(']').parse::<usize>().ok()?),
            ),
            None => (part, None),
        };
        let (_, value) = table?.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
        let value = match (value.get_ref(), index) {
            (DeValue::Array(items), Some(index)) => items.get(index)?,
            (_, None) => value,
            _ => return None,
        };
        span = Some(value.span());
        table = match value.get_ref() {
            DeValue::Table(inner) => Some(inner),
            _ => None,
        };
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first error of a configuration that must not parse.
    fn parse_err(text: &str) -> ConfigError {
        Config::parse(text, "test.toml").unwrap_err().0.remove(0)
    }

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, "test.toml")
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let config = parse(
            "[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"rsync://u@127.0.0.1:873/m/p\"\n",
        )
        .unwrap();
        assert_eq!(config.journal.path, PathBuf::from(DEFAULT_JOURNAL_DIR));
        assert_eq!(config.sync[0].batch_max_files, 10_000);
        assert_eq!(config.sync[0].batch_delay_ms, 1_000);
        assert_eq!(config.capture.backend, BackendChoice::Auto);
    }

    #[test]
    fn mistyped_value_names_file_line_and_key() {
        let err = parse_err("[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"/srv/x\"\nbatch_max_files = \"many\"\n");
        assert_eq!(
            (err.file.as_str(), err.line, err.key.as_str()),
            ("test.toml", 5, "sync[0].batch_max_files")
        );
        assert!(
            err.to_string()
                .starts_with("test.toml:5: key `sync[0].batch_max_files`:"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_refused_with_its_line() {
        let err = parse_err("[journal]\npath = \"/var/lib/x\"\nretension = 3\n[[sync]]\nname=\"a\"\nsource=\"/tmp\"\ntarget=\"/srv\"\n");
        assert_eq!(err.line, 3, "{err}");
        assert!(err.message.contains("retension"), "{err}");
    }

    #[test]
    fn missing_source_names_its_line() {
        let err = parse_err(
            "[[sync]]\nname = \"a\"\nsource = \"/does/not/exist\"\ntarget = \"/srv/x\"\n",
        );
        assert_eq!((err.line, err.key.as_str()), (3, "sync[0].source"));
    }

    #[test]
    fn password_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "pw\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"rsync://u@h/m\"\npassword_file = \"{}\"\n",
            secret.display()
        );
        let err = parse_err(&text);
        assert_eq!((err.line, err.key.as_str()), (5, "sync[0].password_file"));
        assert!(err.message.contains("0644"), "{err}");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        parse(&text).unwrap();
    }

    #[test]
    fn bad_exclude_pattern_names_its_line() {
        let err = parse_err("[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"/srv/x\"\nexclude = [\"*.tmp\", \"dir/\"]\n");
        assert_eq!((err.line, err.key.as_str()), (5, "sync[0].exclude"));
        assert!(err.message.contains("dir/"), "{err}");
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let errors = parse("[[sync]]\nname = \"a\"\nsource = \"relative\"\ntarget = \"nowhere\"\nbatch_max_files = 0\n").unwrap_err();
        let keys: Vec<_> = errors.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert_eq!(
            keys,
            [
                (3, "sync[0].source"),
                (4, "sync[0].target"),
                (5, "sync[0].batch_max_files")
            ]
        );
        assert_eq!(errors.to_string().lines().count(), 3);
    }

    #[test]
    fn metrics_address_is_optional_and_must_be_ip_and_port() {
        let sync = "[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"/srv/x\"\n";
        assert_eq!(parse(sync).unwrap().metrics.address, None);
        let on = parse(&format!("[metrics]\naddress = \"127.0.0.1:9464\"\n{sync}")).unwrap();
        assert_eq!(
            on.metrics.address,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        let err = parse_err(&format!("[metrics]\naddress = \"localhost\"\n{sync}"));
        assert_eq!(
            (err.line, err.key.as_str()),
            (2, "metrics.address"),
            "{err}"
        );
        assert!(err.message.contains("expected IP:PORT"), "{err}");
    }

    #[test]
    fn journal_inside_a_source_is_refused() {
        let err = parse_err("[journal]\npath = \"/tmp/j\"\n[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"/srv/x\"\n");
        assert_eq!(err.key, "sync[0].source");
    }

    /// A scratch directory (canonical) with `dirs` created in it.
    fn tree(dirs: &[&str]) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let root = root.display().to_string();
        (dir, root)
    }

    #[test]
    fn a_target_inside_its_source_through_dotdot_is_refused_naming_both() {
        let (_dir, r) = tree(&["src", "other"]);
        let err = parse_err(&format!(
            "[journal]\npath = \"{r}/j\"\n[[sync]]\nname = \"a\"\nsource = \"{r}/src\"\ntarget = \"{r}/other/../src/replica\"\n"
        ));
        assert_eq!((err.line, err.key.as_str()), (6, "sync[0].target"), "{err}");
        assert!(
            err.message.starts_with(&format!(
                "target {r}/other/../src/replica (resolves to {r}/src/replica) lies inside source {r}/src (test.toml:5: key `sync[0].source`)"
            )),
            "{err}"
        );
    }

    #[test]
    fn syncs_feeding_each_other_and_nested_sources_are_refused() {
        let (_dir, r) = tree(&["a/inner", "b"]);
        let sync = |name: &str, source: &str, target: &str| {
            format!(
                "[[sync]]\nname = \"{name}\"\nsource = \"{r}/{source}\"\ntarget = \"{target}\"\n"
            )
        };
        let crossed = format!(
            "[journal]\npath = \"{r}/j\"\n{}{}",
            sync("one", "a", &format!("{r}/b")),
            sync("two", "b", &format!("{r}/a/"))
        );
        let errors = parse(&crossed).unwrap_err();
        let found: Vec<_> = errors.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert_eq!(found, [(10, "sync[1].target"), (6, "sync[0].target")]);
        assert!(
            errors.0[1]
                .message
                .contains("test.toml:9: key `sync[1].source`"),
            "{errors}"
        );
        let nested = format!(
            "[journal]\npath = \"{r}/j\"\n{}{}{}",
            sync("one", "a", "rsync://h/m"),
            sync("two", "a/inner", "rsync://h/n"),
            sync("three", "a", "rsync://h/o")
        );
        let errors = parse(&nested).unwrap_err();
        let found: Vec<_> = errors.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert_eq!(
            found,
            [(9, "sync[1].source"), (9, "sync[1].source")],
            "{errors}"
        );
        assert!(
            errors.0[0].message.contains("sources must not nest"),
            "{errors}"
        );
    }

    #[test]
    fn a_journal_inside_a_target_names_its_own_line() {
        let (_dir, r) = tree(&["src", "b"]);
        let err = parse_err(&format!(
            "[journal]\npath = \"{r}/b/journal\"\n[[sync]]\nname = \"a\"\nsource = \"{r}/src\"\ntarget = \"{r}/b\"\n"
        ));
        assert_eq!(err.key, "sync[0].target", "{err}");
        assert!(
            err.message.contains(&format!(
                "contains the journal {r}/b/journal (test.toml:2: key `journal.path`)"
            )),
            "{err}"
        );
    }

    #[test]
    fn the_command_line_names_its_options() {
        let (_dir, r) = tree(&["src"]);
        let errors = Config::from_command_line(
            PathBuf::from(format!("{r}/src")),
            format!("{r}/src/replica"),
            Some(PathBuf::from(format!("{r}/j"))),
        )
        .unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].key, "--dest");
        assert!(
            errors.0[0]
                .message
                .contains(&format!("source {r}/src (--source)")),
            "{errors}"
        );
        let errors = Config::from_command_line(
            PathBuf::from(format!("{r}/src")),
            "--rsh=touch:x".into(),
            None,
        )
        .unwrap_err();
        assert_eq!(errors.0[0].key, "--dest");
        assert!(errors.0[0].message.contains("starts with `-`"), "{errors}");
    }

    #[test]
    fn timeouts_default_by_target_kind_and_read_the_former_key() {
        let sync = |target: &str, extra: &str| {
            let text = format!(
                "[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"{target}\"\n{extra}"
            );
            parse(&text).unwrap().sync.remove(0)
        };
        let daemon = sync("rsync://h/m", "");
        assert_eq!((daemon.io_timeout(), daemon.connect_timeout()), (20, 10));
        assert_eq!(sync("/srv/x", "").io_timeout(), 120);
        assert_eq!(sync("h:/srv", "timeout_s = 45\n").io_timeout(), 45);
        let set = sync("h:/srv", "io_timeout_s = 0\nconnect_timeout_s = 3\n");
        assert_eq!((set.io_timeout(), set.connect_timeout()), (0, 3));
    }

    #[test]
    fn password_file_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "pw\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&secret, Some(65534), None).unwrap();
        let err = parse_err(&format!(
            "[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"rsync://u@h/m\"\npassword_file = \"{}\"\n",
            secret.display()
        ));
        assert_eq!((err.line, err.key.as_str()), (5, "sync[0].password_file"));
        assert!(
            err.message.contains("owned by uid 65534")
                && err
                    .message
                    .contains("must be owned by root when running as root")
                && err.message.contains("chown root"),
            "{err}"
        );
    }

    #[test]
    fn bwlimit_takes_rsyncs_rates_and_names_the_line_of_a_bad_one() {
        let sync = |rate: &str| {
            format!("[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"/srv/x\"\nbwlimit = \"{rate}\"\n")
        };
        for good in ["500", "1.5M", "10m", "2G", "800KiB", "3MB"] {
            assert!(parse(&sync(good)).is_ok(), "{good}");
        }
        for bad in ["", "fast", "0", "10T", "-5", "10MiBs"] {
            let err = parse_err(&sync(bad));
            assert_eq!(
                (err.line, err.key.as_str()),
                (5, "sync[0].bwlimit"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn push_parallelism_defaults_to_four_and_must_be_positive() {
        let sync = "[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"/srv/x\"\n";
        assert_eq!(parse(sync).unwrap().push.max_parallel, 4);
        let err = parse_err(&format!("[push]\nmax_parallel = 0\n{sync}"));
        assert_eq!(err.key, "push.max_parallel", "{err}");
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn numeric_problems_name_their_line() {
        let text = "[capture]\nring_buffer_bytes = 1000\n[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"/srv/x\"\nverify_slices = 0\n";
        let errors = parse(text).unwrap_err().0;
        let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert_eq!(
            found,
            [
                (2, "capture.ring_buffer_bytes"),
                (7, "sync[0].verify_slices")
            ],
            "{text}"
        );
    }
}
