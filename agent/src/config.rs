//! The agent's configuration: one TOML file, or the same structure built from
//! `fsjournal run --source DIR --dest TARGET`.
//!
//! It is read in two layers, as ripgrep reads its arguments: the file as
//! written (`config/raw.rs`, deserialized with each value's position), then
//! the checks (`config/validate.rs`), which collect every problem and build
//! the typed [`Config`] below: a parsed [`Target`], compiled [`Excludes`],
//! numbers in their range ([`NonZeroUsize`], [`Percent`], …). Nothing
//! downstream parses or checks a value again.
//!
//! Every error names the file, the line and the key, and says what was
//! expected (see [`ConfigError`]). Semantic checks (the source exists and is a
//! directory, the target parses, the password file is private, the paths do
//! not overlap: `config/paths.rs`) run at load time, so a bad file never
//! starts an agent that would later lose changes.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::filter::Excludes;
use crate::target::{self, Target};

mod paths;
mod raw;
mod validate;
mod values;

use paths::{Node, Role};
use raw::{Problem, RawConfig, RawJournal, RawSync};
pub use values::{Percent, Rate, RingBufferBytes};

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

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the journal lives and how long its log is kept.
    pub journal: JournalConfig,
    /// How changes are captured.
    pub capture: CaptureConfig,
    /// The Prometheus endpoint (off unless an address is given).
    pub metrics: MetricsConfig,
    /// Limits shared by every target's pushes.
    pub push: PushConfig,
    /// One entry per (source tree, target) pair, each with its own cursor;
    /// at least one.
    pub sync: Vec<SyncConfig>,
}

/// `[journal]`: the RocksDB journal.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Database directory; does not lie inside a source tree.
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
#[derive(Debug, Clone)]
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
    pub ring_buffer_bytes: RingBufferBytes,
    /// Inodes the eBPF programs can hold when the ring buffer is full
    /// (entries, about 40 bytes of kernel memory each); only when these are
    /// full too is an event lost (and a rescan needed).
    pub dirty_inodes: NonZeroU32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            backend: BackendChoice::Auto,
            read_interval_ms: 5,
            max_queued_events: 1 << 20,
            ring_buffer_bytes: RingBufferBytes::DEFAULT,
            dirty_inodes: DEFAULT_DIRTY_INODES,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint (`metrics.rs`).
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served (`IP:PORT`, e.g. `127.0.0.1:9464`);
    /// `None`: no endpoint.
    pub address: Option<SocketAddr>,
}

/// `[push]`: limits over all targets together.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// At most this many rsync runs at once over all targets (runs): each
    /// reads the source disk and holds a connection; the others wait for a
    /// slot, their changes kept in the journal.
    pub max_parallel: NonZeroUsize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            max_parallel: DEFAULT_MAX_PARALLEL,
        }
    }
}

/// `[[sync]]`: one source tree pushed to one target.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Unique name, not empty, without `/`; keys the target's cursor in the
    /// journal.
    pub name: String,
    /// Source directory (absolute, an existing directory at load time;
    /// canonical once the agent registered it).
    pub source: PathBuf,
    /// Where the sync pushes to, parsed from the `target` string: a local
    /// directory, `rsync://[user@]host[:port]/module[/path]` or
    /// `[user@]host:path` (ssh). Shown as written (its `Display`).
    pub target: Target,
    /// rsync daemon password file (mode 0600 or stricter, owned by root).
    pub password_file: Option<PathBuf>,
    /// Remote shell for ssh targets (rsync `-e`), e.g. `ssh -p 2222`.
    pub ssh_command: Option<String>,
    /// At most this many paths per rsync run (paths).
    pub batch_max_files: NonZeroUsize,
    /// At most about this many bytes per rsync run (bytes, the sizes of the
    /// listed paths when the batch is made; 0 = no limit): bounds what a
    /// failed run has to send again. A single larger file goes alone.
    pub batch_max_bytes: u64,
    /// Wait this long after the oldest unpushed change before pushing (ms).
    pub batch_delay_ms: u64,
    /// Upper bound of the retry backoff after a failed push (ms).
    pub retry_max_ms: u64,
    /// rsync's I/O timeout (`--timeout`, s; 0 = none): a run with no byte
    /// from the other side for about 1.5 times this fails and is retried.
    /// `None`: by target kind (see [`SyncConfig::io_timeout`]). Also read
    /// under its former name `timeout_s`.
    pub io_timeout_s: Option<u64>,
    /// Connect timeout (s; 0 = none): rsync `--contimeout` for a daemon,
    /// ssh `-o ConnectTimeout` for a remote shell; unused for a local
    /// directory. `None`: [`target::CONNECT_TIMEOUT_S`].
    pub connect_timeout_s: Option<u64>,
    /// Bandwidth limit of each rsync run to this target (`--bwlimit`):
    /// KiB/s, or a number with rsync's suffix `K`, `M` or `G` (`"10M"`).
    pub bwlimit: Option<Rate>,
    /// Extra arguments appended to every rsync run (e.g. `--checksum`).
    pub rsync_args: Vec<String>,
    /// The compiled `exclude` patterns, rsync-style (`workspace/**`,
    /// `*.tmp`, `/cache`): not journaled, not pushed, kept out of full
    /// syncs (see `filter.rs`). Empty when none.
    pub excludes: Excludes,
    /// Hold a path back until it has not changed for this long (ms; 0 = push
    /// at the batch delay): a file still being written (a growing build log)
    /// is copied once it is quiet, not at every batch.
    pub settle_ms: u64,
    /// Never hold a changing path back longer than this (ms), so the replica
    /// of a file written without pause still trails it by a bounded time.
    pub settle_max_ms: u64,
    /// Preserve hard links among the files of one rsync run (`-H`). Links
    /// whose names are pushed in different runs arrive as separate copies.
    pub hard_links: bool,
    /// Preserve extended attributes (`-X`; the target must support them).
    pub xattrs: bool,
    /// Preserve POSIX ACLs (`-A`; implies matching users on the target).
    pub acls: bool,
    /// Compare one slice of the tree with the target this often (s; 0 =
    /// never): `rsync --dry-run --itemize-changes`, pushing any difference no
    /// journaled change explains (drift).
    pub verify_interval_s: u64,
    /// Slices the tree is cut into for rolling verification: the whole tree
    /// is compared every `verify_interval_s × verify_slices` seconds.
    pub verify_slices: NonZeroU32,
    /// Shell command (`sh -c`) run before each full sync of this target;
    /// its failure is logged, and the full sync goes ahead.
    pub before_full_sync: Option<String>,
    /// Shell command (`sh -c`) run after each confirmed push, with the
    /// pushed root-relative paths NUL-separated on stdin and `FSJ_SYNC`,
    /// `FSJ_TARGET`, `FSJ_SOURCE`, `FSJ_PATHS` (count) in its environment
    /// (like sersync's command plugin); its failure is logged.
    pub after_push: Option<String>,
    /// A hook running longer than this is killed (s).
    pub hook_timeout_s: u64,
    /// Keep what pushes overwrite or delete on the target for this many days
    /// under `.fsjournal-history/<YYYY-MM-DD>/` (days; 0 = keep nothing).
    pub history_days: u32,
    /// A full sync that would delete more than this share of the target's
    /// entries (100 = no limit) is refused until the operator confirms it
    /// with `fsjournal resync --force`: rsync `--max-delete`'s idea, as a
    /// share, measured by a dry run first.
    pub max_delete_percent: Percent,
    /// The cost model: when a backlog (journaled at start, or quiet for
    /// 5 s) of more than one batch reaches this share of the entries of the
    /// source's filesystem (of its used inodes, `statvfs`; 0 = never), one
    /// `rsync -a --delete` of the whole root replaces the file lists, which
    /// would be slower (push/cost.rs).
    pub full_push_percent: Percent,
    /// rsync runs at once for one batch to this target (runs): each run's
    /// list is cut into parts that share no directory (push/split.rs);
    /// `[push] max_parallel` still bounds all runs. With `hard_links`, one
    /// run: rsync `-H` pairs an inode's names only inside one run.
    pub parallel_transfers: NonZeroUsize,
}

// The defaults of the keys that have a range, shared by the typed
// configuration and `validate.rs` (which applies them to keys not written);
// each `expect` runs at compile time.
const DEFAULT_DIRTY_INODES: NonZeroU32 = NonZeroU32::new(1 << 16).expect("not zero");
const DEFAULT_MAX_PARALLEL: NonZeroUsize = NonZeroUsize::new(4).expect("not zero");
const DEFAULT_BATCH_MAX_FILES: NonZeroUsize = NonZeroUsize::new(10_000).expect("not zero");
const DEFAULT_VERIFY_SLICES: NonZeroU32 = NonZeroU32::new(12).expect("not zero");
const DEFAULT_PARALLEL_TRANSFERS: NonZeroUsize = NonZeroUsize::new(2).expect("not zero");
const DEFAULT_MAX_DELETE_PERCENT: Percent = Percent::new(50).expect("at most 100");
const DEFAULT_FULL_PUSH_PERCENT: Percent = Percent::new(20).expect("at most 100");

impl SyncConfig {
    /// A sync of `source` to `target` with every optional key at its
    /// default, as if the table named only these three. The values are
    /// taken as they are: a configuration read from a file or the command
    /// line is checked ([`Config::parse`], [`Config::from_command_line`]).
    pub fn new(name: &str, source: PathBuf, target: Target) -> SyncConfig {
        SyncConfig {
            name: name.to_string(),
            source,
            target,
            password_file: None,
            ssh_command: None,
            batch_max_files: DEFAULT_BATCH_MAX_FILES,
            batch_max_bytes: 0,
            batch_delay_ms: 1_000,
            retry_max_ms: 60_000,
            io_timeout_s: None,
            connect_timeout_s: None,
            bwlimit: None,
            rsync_args: Vec::new(),
            excludes: Excludes::default(),
            settle_ms: 0,
            settle_max_ms: 60_000,
            hard_links: false,
            xattrs: false,
            acls: false,
            verify_interval_s: 300,
            verify_slices: DEFAULT_VERIFY_SLICES,
            before_full_sync: None,
            after_push: None,
            hook_timeout_s: 60,
            history_days: 0,
            max_delete_percent: DEFAULT_MAX_DELETE_PERCENT,
            full_push_percent: DEFAULT_FULL_PUSH_PERCENT,
            parallel_transfers: DEFAULT_PARALLEL_TRANSFERS,
        }
    }

    /// The exclude patterns as written (empty when none).
    pub fn exclude_patterns(&self) -> &[String] {
        self.excludes.patterns()
    }

    /// rsync's I/O timeout (s; 0 = none): `io_timeout_s`, else
    /// [`target::REMOTE_IO_TIMEOUT_S`] for a daemon or remote shell and
    /// [`target::LOCAL_IO_TIMEOUT_S`] for a local directory.
    pub fn io_timeout(&self) -> u64 {
        self.io_timeout_s
            .unwrap_or_else(|| self.target.default_io_timeout_s())
    }

    /// The connect timeout (s; 0 = none): `connect_timeout_s`, else
    /// [`target::CONNECT_TIMEOUT_S`].
    pub fn connect_timeout(&self) -> u64 {
        self.connect_timeout_s.unwrap_or(target::CONNECT_TIMEOUT_S)
    }
}

impl Config {
    /// Reads and checks a TOML file.
    ///
    /// Errors: unreadable file, TOML syntax, unknown or mistyped key, or a
    /// semantic problem; each as a [`ConfigError`] with file, line and key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        Ok(Config::parse(&text, &path.display().to_string())?)
    }

    /// Parses and checks TOML text; `file` names it in errors. A syntax or
    /// type error stops parsing (one error); semantic checks report every
    /// problem, each at the line of its value (line 0 for a key not
    /// written, such as a missing `[[sync]]`).
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
        let located = |problem: Problem| ConfigError {
            file: file.to_string(),
            line: problem.span.map_or(0, |s| line_of(text, s.start)),
            key: problem.key,
            message: problem.message,
        };
        let raw = RawConfig::parse(text).map_err(|p| ConfigErrors(vec![located(p)]))?;
        let place = |node: &Node| {
            let line = node.span.clone().map_or(0, |s| line_of(text, s.start));
            format!("{file}:{line}: key `{}`", node.key)
        };
        validate::config(raw, &place)
            .map_err(|problems| ConfigErrors(problems.into_iter().map(located).collect()))
    }

    /// The configuration of `fsjournal run --source DIR --dest TARGET`
    /// (`journal`: `--journal`, else [`DEFAULT_JOURNAL_DIR`]), checked as a
    /// file would be. Errors: every problem, at file `<command line>`, line
    /// 0, each key named by its option (`--source`, `--dest`, `--journal`).
    pub fn from_command_line(
        source: PathBuf,
        dest: String,
        journal: Option<PathBuf>,
    ) -> Result<Config, ConfigErrors> {
        let journal_given = journal.is_some();
        let raw = RawConfig {
            journal: RawJournal {
                path: journal.map(|path| Spanned::new(0..0, path)),
                ..RawJournal::default()
            },
            sync: Some(Spanned::new(
                0..0,
                vec![RawSync::unwritten("default", source, dest)],
            )),
            ..RawConfig::default()
        };
        let place = |node: &Node| match node.role {
            Role::Journal if !journal_given => "the default of --journal".to_string(),
            _ => option_of(&node.key),
        };
        validate::config(raw, &place).map_err(|problems| {
            let errors = problems.into_iter().map(|problem| ConfigError {
                file: "<command line>".into(),
                line: 0,
                key: option_of(&problem.key),
                message: problem.message,
            });
            ConfigErrors(errors.collect())
        })
    }
}

/// The `fsjournal run` option a key comes from without `--config`.
fn option_of(key: &str) -> String {
    key.replace("journal.path", "--journal")
        .replace("sync[0].source", "--source")
        .replace("sync[0].target", "--dest")
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

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
        assert_eq!(config.sync[0].batch_max_files.get(), 10_000);
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
        // A password file must be owned by root (validate.rs).
        if crate::private_dir::euid() != 0 {
            eprintln!("skipped: a password file owned by root needs root");
            return;
        }
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
        assert_eq!(parse(sync).unwrap().push.max_parallel.get(), 4);
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

    #[test]
    fn a_file_becomes_the_typed_values_the_agent_uses() {
        let config = parse("[capture]\nring_buffer_bytes = 8192\n[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"rsync://u@h/m\"\nexclude = [\"*.tmp\"]\nbwlimit = \"10M\"\nmax_delete_percent = 100\n").unwrap();
        assert_eq!(config.capture.ring_buffer_bytes.get(), 8192);
        let sync = &config.sync[0];
        assert_eq!(sync.target, Target::Daemon("rsync://u@h/m".into()));
        assert_eq!(sync.target.to_string(), "rsync://u@h/m");
        assert!(sync.excludes.is_excluded(b"a/b.tmp"));
        assert_eq!(sync.exclude_patterns(), ["*.tmp"]);
        assert_eq!(
            sync.bwlimit.as_ref().map(ToString::to_string),
            Some("10M".into())
        );
        assert_eq!(sync.max_delete_percent.get(), 100);
        assert_eq!(sync.full_push_percent.get(), 20);
    }

    #[test]
    fn a_mistyped_or_out_of_range_value_of_a_later_sync_names_its_own_key() {
        let sync = |extra: &str| {
            format!("[[sync]]\nname = \"a\"\nsource = \"/tmp\"\ntarget = \"/srv/a\"\n[[sync]]\nname = \"b\"\nsource = \"/tmp\"\ntarget = \"/srv/b\"\n{extra}")
        };
        let err = parse_err(&sync("verify_slices = \"x\"\n"));
        assert_eq!(
            (err.line, err.key.as_str()),
            (9, "sync[1].verify_slices"),
            "{err}"
        );
        let err = parse_err(&sync("full_push_percent = 101\n"));
        assert_eq!(
            (err.line, err.key.as_str()),
            (9, "sync[1].full_push_percent"),
            "{err}"
        );
        assert!(err.message.starts_with("101: expected a share"), "{err}");
    }
}
