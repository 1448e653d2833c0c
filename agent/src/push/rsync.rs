//! Runs the real `rsync` binary: we never re-implement its transfer.
//!
//! Three invocations (flags from rsync(1)):
//! - incremental: `-a --ignore-times --from0 --files-from=- --delete-missing-args --force`.
//!   `--files-from` implies `-R` and `-d` but not `-r`, so each listed entry
//!   is sent alone (its implied parent directories get their attributes
//!   too; a listed `.` or `DIR/` also sends the directory's children); a
//!   listed path that no longer exists is deleted on the receiver, a whole
//!   directory with `--force`.
//! - contents: the same list mode plus `-d --delete`, for directories listed
//!   as `DIR/`: their direct children are copied and children the source no
//!   longer has are deleted, without recursing (entries removed while
//!   nothing captured); also the root as `.` when a contents or subtree
//!   run adds or removes one of its entries (see [`Lists::of_source`]).
//! - subtree: the same list mode plus `-r --delete`, for directories that
//!   moved in, directories deleted or renamed away (made again at the same
//!   path before the push, they lose what the old one held), and rescan
//!   markers: the subtree is made equal.
//! - full: `-a --delete --force -- SRC/ DEST/`, the whole root; before it, the
//!   same with `--dry-run --stats` (full preview) counts what it would delete.
//!
//! Every run ends its options with `--` before the two operands, so no
//! path or target string is ever read as an option.
//!
//! Exit 0 and 24 ("some files vanished before they could be transferred":
//! their deletion is already in the journal) count as success.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Span;

use super::{history, process, progress};
use crate::config::SyncConfig;
use crate::journal::Scope;
use crate::target::Target;

/// How much of rsync's stderr is kept for the error message (bytes).
const STDERR_TAIL: usize = 2048;

/// Which kind of rsync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Listed entries only, non-recursive: the run of the paths whose
    /// scope is [`Scope::Entry`] (named `incremental` in metrics and
    /// `status`, as it always was).
    Entries,
    /// Listed directories (`DIR/`) and their direct children, with `--delete`.
    Contents,
    /// Listed entries and everything below them, with `--delete`.
    Subtree,
    /// The whole root, with `--delete`.
    Full,
    /// The cost model's push of the whole root (push/cost.rs): [`Mode::Full`]
    /// with rsync's quick check at nanosecond resolution
    /// (`--modify-window=-1`, rsync ≥ 3.2 on both sides), so that a
    /// same-size rewrite within the second of the last push is sent.
    FullPush,
    /// What [`Mode::Full`] would do, not done (`--dry-run --stats`): the
    /// safety interlock reads how much it would delete (push/interlock.rs).
    FullPreview,
    /// Listed entries and everything below them compared, not copied
    /// (`-n`), with one itemized line per difference on stdout.
    Verify,
    /// The whole root compared, not copied, one itemized line per
    /// difference on stdout (`fsjournal verify`).
    VerifyAll,
    /// Listed entries of one renamed directory, non-recursive and with no
    /// `--delete`, sent with the directory's old place on the target as
    /// `--link-dest`: unchanged files become hard links there, so no file
    /// data crosses (see [`seed_command`] and `push/renames.rs`).
    Seed,
}

impl Mode {
    /// Its name in the run metrics' `mode` label and in `status`'s push in
    /// flight: `incremental`, `contents`, `subtree`, `full`, `fullpush`,
    /// `fullpreview`, `verify`, `verifyall`, `seed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Entries => "incremental",
            Mode::Contents => "contents",
            Mode::Subtree => "subtree",
            Mode::Full => "full",
            Mode::FullPush => "fullpush",
            Mode::FullPreview => "fullpreview",
            Mode::Verify => "verify",
            Mode::VerifyAll => "verifyall",
            Mode::Seed => "seed",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl prometheus_client::encoding::EncodeLabelValue for Mode {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// A failed rsync run.
#[derive(Debug, thiserror::Error)]
pub enum RsyncError {
    /// rsync could not be started (not installed?).
    #[error("cannot run rsync: {0}")]
    Spawn(std::io::Error),
    /// rsync exited with a failure code.
    #[error("rsync exit {code} ({meaning}): {stderr}")]
    Exit {
        /// rsync's exit code.
        code: i32,
        /// rsync(1)'s description of the code.
        meaning: &'static str,
        /// The end of rsync's stderr.
        stderr: String,
        /// Paths named in its error lines (exit 23 only), unescaped; see
        /// [`named_paths`].
        named: Vec<Vec<u8>>,
    },
    /// rsync was killed by a signal, or by us at shutdown.
    #[error("rsync was interrupted")]
    Interrupted,
}

/// rsync(1) "EXIT VALUES", or what its `stderr` says when that is more
/// telling: a full target disk surfaces as exit 10, 11, 12 or 23 depending
/// on where the write failed.
fn meaning(code: i32, stderr: &[u8]) -> &'static str {
    let says = |what: &[u8]| stderr.windows(what.len()).any(|w| w == what);
    if says(b"No space left on device") || says(b"Disk quota exceeded") {
        return "the target's disk is full (No space left on device)";
    }
    match code {
        1 => "syntax or usage error",
        2 => "protocol incompatibility",
        3 => "errors selecting input/output files, dirs",
        5 => "error starting client-server protocol (authentication?)",
        10 => "error in socket I/O (target unreachable?)",
        11 => "error in file I/O",
        12 => "error in rsync protocol data stream",
        23 => "partial transfer due to error",
        30 => "timeout in data send/receive",
        35 => "timeout waiting for daemon connection",
        _ => "see rsync(1) EXIT VALUES",
    }
}

/// The rsync command line for `mode`, from `source` to the sync's target.
pub fn command(sync: &SyncConfig, source: &Path, mode: Mode) -> Command {
    let mut cmd = options(sync, mode);
    let mut source_arg = source.as_os_str().to_owned();
    source_arg.push("/");
    operands(
        &mut cmd,
        [source_arg, sync.target.rsync_destination().into()],
    );
    cmd
}

/// The [`Mode::Seed`] run for a directory renamed to root-relative `to`
/// (raw bytes, not empty) whose old place on the target is root-relative
/// `from`: from `SOURCE/to/` to `TARGET/to/`, with
/// `--link-dest=../…/from`. rsync(1): a relative `--link-dest` DIR "is
/// relative to the destination directory"; a daemon accepts it as long as
/// it stays inside the module (measured with rsync 3.5.0, chroot or not).
/// The target's parent of `to` must exist (rsync creates one level only).
pub fn seed_command(sync: &SyncConfig, source: &Path, from: &[u8], to: &[u8]) -> Command {
    let mut cmd = options(sync, Mode::Seed);
    let depth = to.split(|&b| b == b'/').count();
    let mut link_dest = b"--link-dest=".to_vec();
    link_dest.extend(b"../".repeat(depth));
    link_dest.extend_from_slice(from);
    cmd.arg(OsStr::from_bytes(&link_dest));
    let mut source_arg = source.join(OsStr::from_bytes(to)).into_os_string();
    source_arg.push("/");
    let mut dest = sync.target.rsync_destination().into_bytes();
    dest.extend_from_slice(to);
    dest.push(b'/');
    operands(&mut cmd, [source_arg, OsString::from_vec(dest)]);
    cmd
}

/// Every option of a `mode` run (no operands): connection, mode (see
/// [`mode_options`]), then the sync's own (see [`sync_options`]).
fn options(sync: &SyncConfig, mode: Mode) -> Command {
    let mut cmd = connection(sync);
    cmd.arg("-a").arg("--numeric-ids");
    cmd.args(mode_options(mode));
    cmd.args(sync_options(sync, mode));
    cmd
}

/// The options that make a run of `mode` what it is (rsync(1); the
/// invocations in this module's documentation).
fn mode_options(mode: Mode) -> &'static [&'static str] {
    match mode {
        // --ignore-times: capture saw each listed file change; rsync's quick
        // check (size + mtime) would skip a same-size change whose mtime was
        // set back (touch -r, cp -p, tar -x). The delta algorithm still sends
        // only what differs.
        Mode::Entries => &[
            "--ignore-times",
            "--from0",
            "--files-from=-",
            "--delete-missing-args",
            "--force",
        ],
        Mode::Contents => &[
            "-d",
            "--delete",
            "--from0",
            "--files-from=-",
            "--delete-missing-args",
            "--force",
        ],
        Mode::Subtree => &[
            "-r",
            "--delete",
            "--from0",
            "--files-from=-",
            "--delete-missing-args",
            "--force",
        ],
        Mode::Full => &["--delete", "--force"],
        Mode::FullPush => &["--delete", "--force", "--modify-window=-1"],
        Mode::FullPreview => &["--delete", "--force", "--dry-run", "--stats"],
        Mode::VerifyAll => &["--delete", "--dry-run", "--out-format=%i %n"],
        Mode::Seed => &["--from0", "--files-from=-"],
        Mode::Verify => &[
            "-r",
            "--delete",
            "--dry-run",
            "--out-format=%i %n",
            "--from0",
            "--files-from=-",
            "--delete-missing-args",
        ],
    }
}

/// The sync's own options for a run of `mode`, in this order: its
/// `-H`/`-X`/`-A`, history (the backup directory only on runs that
/// change the target), bandwidth limit, excludes and its `rsync_args`.
fn sync_options(sync: &SyncConfig, mode: Mode) -> Vec<String> {
    let mut args = Vec::new();
    for (wanted, flag) in [
        (sync.hard_links, "-H"),
        (sync.xattrs, "-X"),
        (sync.acls, "-A"),
    ] {
        if wanted {
            args.push(flag.to_string());
        }
    }
    if sync.history_days > 0 {
        args.extend(history::filter_args());
        if !matches!(mode, Mode::Verify | Mode::VerifyAll | Mode::FullPreview) {
            args.extend(history::backup_args());
        }
    }
    if let Some(rate) = &sync.bwlimit {
        args.push(format!("--bwlimit={rate}"));
    }
    // The very patterns capture filters with (see filter.rs).
    args.extend(
        sync.exclude_patterns()
            .iter()
            .map(|p| format!("--exclude={p}")),
    );
    args.extend(sync.rsync_args.iter().cloned());
    args
}

/// Ends `cmd`'s options with `--` and adds `operands` (source, then
/// destination): whatever a path or target string holds, rsync never reads
/// it as an option (`--dest=--rsh=…` would otherwise run a command).
/// Options added later must go through [`with_option`].
pub fn operands(cmd: &mut Command, operands: [OsString; 2]) {
    cmd.arg("--").args(operands);
}

/// `cmd` with `option` added before its `--` (or at the end when it has
/// none), program, environment and working directory kept.
pub fn with_option(cmd: Command, option: impl AsRef<OsStr>) -> Command {
    let mut args: Vec<OsString> = cmd.get_args().map(OsStr::to_owned).collect();
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    args.insert(at, option.as_ref().to_owned());
    let mut rebuilt = Command::new(cmd.get_program());
    rebuilt.args(args);
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => rebuilt.env(key, value),
            None => rebuilt.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        rebuilt.current_dir(dir);
    }
    rebuilt
}

/// `rsync` with the sync's connection options: I/O timeout (`--timeout`),
/// connect timeout (`--contimeout` for a daemon, ssh's `ConnectTimeout` for
/// a remote shell, with `ServerAlive*` probes bounding a silent ssh peer like
/// `--timeout` bounds rsync's), daemon password file, remote shell. The
/// timeouts default by target kind (`push/target.rs`).
pub fn connection(sync: &SyncConfig) -> Command {
    let mut cmd = Command::new("rsync");
    let io_timeout = sync.io_timeout();
    let connect_timeout = sync.connect_timeout();
    if io_timeout > 0 {
        cmd.arg(format!("--timeout={io_timeout}"));
    }
    if let Some(password_file) = &sync.password_file {
        let mut arg = OsString::from("--password-file=");
        arg.push(password_file);
        cmd.arg(arg);
    }
    let target = &sync.target;
    if matches!(target, Target::Daemon(_)) && sync.ssh_command.is_none() && connect_timeout > 0 {
        cmd.arg(format!("--contimeout={connect_timeout}"));
    }
    let shell = match (&sync.ssh_command, target) {
        (Some(shell), _) => Some(shell.clone()),
        (None, Target::Ssh(_)) => Some("ssh".to_string()),
        (None, _) => None,
    };
    if let Some(shell) = shell {
        cmd.arg("-e")
            .arg(with_ssh_timeouts(&shell, io_timeout, connect_timeout));
    }
    cmd
}

/// `shell` with ssh(1)'s `-o ConnectTimeout=…`, `-o ServerAliveInterval=…`
/// and `-o ServerAliveCountMax=3` appended when its program is `ssh` (ssh
/// takes the first value given for an option, so the operator's own `-o`
/// in `ssh_command` wins); another program is left as written. A silent
/// server is dropped after three unanswered probes a quarter of the I/O
/// timeout apart.
fn with_ssh_timeouts(shell: &str, io_timeout: u64, connect_timeout: u64) -> String {
    let program = shell.split_whitespace().next().unwrap_or("");
    if Path::new(program).file_name() != Some(OsStr::new("ssh")) {
        return shell.to_string();
    }
    let mut shell = shell.to_string();
    if connect_timeout > 0 {
        shell.push_str(&format!(" -o ConnectTimeout={connect_timeout}"));
    }
    if io_timeout > 0 {
        let interval = (io_timeout / 4).max(1);
        shell.push_str(&format!(
            " -o ServerAliveInterval={interval} -o ServerAliveCountMax=3"
        ));
    }
    shell
}

/// The paths of one push split into the rsync runs that carry them, each
/// listed string with the index of the path it came from.
pub struct Lists {
    runs: [(Mode, Vec<Listed>); 3],
}

/// A string listed for rsync, and the index of the path it came from.
pub type Listed = (Vec<u8>, usize);

/// What `lstat` finds at a pushed path on the source, as [`Lists`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnSource {
    /// Something is there (or it could not be read: rsync will say why).
    Present,
    /// Nothing is there (`ENOENT`): the push deletes it on the target.
    Missing,
    /// A component above it is no longer a directory (`ENOTDIR`).
    BelowANonDirectory,
}

impl Lists {
    /// Lists root-relative `paths` of `source` (`""` is the root) by
    /// scope: entries as they are, contents as `DIR/` (`-d` then takes the
    /// directory's children), subtrees as they are, and the root as `.`
    /// when it or an entry of it changed.
    ///
    /// The root needs its own listing: rsync gives implied parent
    /// directories their attributes, never the root, so a run that adds or
    /// removes a direct entry of the root leaves the root's mtime at the
    /// time of that run unless `.` is listed in it or in a later run (a
    /// listed `.` also compares the root's direct children, as
    /// `--files-from` implies `-d`). Runs go entries, contents, subtrees;
    /// `.` goes into the entries run, or into the contents run (`-d
    /// --delete`) when a direct entry of the root is contents- or
    /// subtree-scoped (a directory renamed in or away, or deleted and made
    /// again): the contents run then makes the root's children and mtime
    /// right after the entries run, and the subtree run below it no longer
    /// adds or removes any of them. A root pushed whole (contents or
    /// subtree) is `.` in its own run.
    ///
    /// A path below an entry of `source` that is no longer a directory
    /// (`lstat` fails with `ENOTDIR`: a directory replaced by a file or a
    /// symlink since the path changed) is left out. rsync's
    /// `--delete-missing-args` takes only `ENOENT` for missing; `ENOTDIR`
    /// is a sender error (exit 23) that would hold the path and fail it
    /// again at every retry. Nothing is lost: the entry stopped being a
    /// directory after the path changed, so its own change is pending in
    /// this push or a later one, and pushing it replaces the whole
    /// directory on the target (`--force`, `--delete`).
    ///
    /// A contents- or subtree-scoped path that no longer exists (`ENOENT`:
    /// a directory deleted, typically an old Jenkins build rotated away)
    /// goes into the entries run: all a run can do with it is delete it on
    /// the target (`--delete-missing-args` with `--force` deletes a whole
    /// directory there, as the subtree run did), so a push that only
    /// deletes directories no longer costs a second rsync run (on a remote
    /// target, a second connection). Should the directory be made again
    /// after this `lstat`, its making was journaled after the batch was
    /// read and is pushed with a later batch.
    pub fn of_source<'a>(
        source: &Path,
        paths: impl IntoIterator<Item = (&'a [u8], Scope)>,
    ) -> Lists {
        use std::os::unix::ffi::OsStrExt;
        Lists::keeping(paths, |path| {
            match std::fs::symlink_metadata(source.join(std::ffi::OsStr::from_bytes(path))) {
                Ok(_) => OnSource::Present,
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    tracing::debug!(path = %String::from_utf8_lossy(path), "not listed: an entry above it is no longer a directory");
                    OnSource::BelowANonDirectory
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => OnSource::Missing,
                // Unreadable: rsync says why, and the path is held.
                Err(_) => OnSource::Present,
            }
        })
    }

    /// [`Lists::of_source`]'s listing of `paths` as `on_source` finds them
    /// (the indexes still count every path; the root is never looked at).
    fn keeping<'a>(
        paths: impl IntoIterator<Item = (&'a [u8], Scope)>,
        on_source: impl Fn(&[u8]) -> OnSource,
    ) -> Lists {
        let mut runs = [
            (Mode::Entries, Vec::new()),
            (Mode::Contents, Vec::new()),
            (Mode::Subtree, Vec::new()),
        ];
        // The first path that changed the root or one of its entries, and
        // whether a contents or subtree run touches the root's entries.
        let (mut root_changed, mut root_wide, mut root_whole) = (None, false, false);
        for (i, (path, scope)) in paths.into_iter().enumerate() {
            let scope = match path.is_empty() {
                true => scope,
                false => match on_source(path) {
                    OnSource::BelowANonDirectory => continue,
                    OnSource::Missing => Scope::Entry,
                    OnSource::Present => scope,
                },
            };
            let run = match scope {
                Scope::Entry => 0,
                Scope::Contents => 1,
                Scope::Subtree => 2,
            };
            if !path.contains(&b'/') {
                root_changed.get_or_insert(i);
                root_wide |= scope != Scope::Entry;
            }
            let listed = match (scope, path.is_empty()) {
                (Scope::Entry, true) => continue,
                (Scope::Entry, false) => path.to_vec(),
                (Scope::Contents, true) | (Scope::Subtree, true) => {
                    root_whole = true;
                    b".".to_vec()
                }
                (Scope::Contents, false) => [path, b"/"].concat(),
                (Scope::Subtree, false) => path.to_vec(),
            };
            runs[run].1.push((listed, i));
        }
        if let (Some(i), false) = (root_changed, root_whole) {
            let run = if root_wide { 1 } else { 0 };
            runs[run].1.insert(0, (b".".to_vec(), i));
        }
        Lists { runs }
    }

    /// The non-empty runs, in order: entries, contents, subtrees.
    pub fn by_mode(&self) -> impl Iterator<Item = (Mode, &[Listed])> {
        self.runs
            .iter()
            .filter(|(_, list)| !list.is_empty())
            .map(|(mode, list)| (*mode, list.as_slice()))
    }

    /// How many strings are listed in `mode`'s run.
    pub fn count(&self, mode: Mode) -> usize {
        self.runs
            .iter()
            .find(|(m, _)| *m == mode)
            .map_or(0, |(_, list)| list.len())
    }
}

/// Deletes the day directories older than the sync's `history_days` from
/// the target (`push/history.rs`): an rsync of an empty directory onto the
/// history directory with `--delete`, protecting the days kept. Errors are
/// logged: an old day kept a little longer loses nothing.
/// Killed early once `stop` is set (shutdown).
pub fn prune_history(sync: &SyncConfig, stop: &AtomicBool) {
    let Ok(empty) = tempfile::tempdir() else {
        return;
    };
    let mut cmd = connection(sync);
    cmd.args(["-r", "--delete"]);
    cmd.args(history::kept_days_filters(sync.history_days));
    let mut empty_dir = empty.path().as_os_str().to_owned();
    empty_dir.push("/");
    let destination = format!(
        "{}{}/",
        sync.target.rsync_destination(),
        history::HISTORY_DIR
    );
    operands(&mut cmd, [empty_dir, destination.into()]);
    match run(cmd, &[], stop) {
        Ok(_) => tracing::info!(target = %sync.name, days = sync.history_days, "history pruned"),
        Err(e) => {
            tracing::warn!(target = %sync.name, error = %e, "cannot prune the history on the target")
        }
    }
}

/// Runs `cmd`, feeding `list` NUL-separated on stdin (list modes), and waits;
/// returns rsync's stdout (itemized changes in [`Mode::Verify`]).
/// Killed early (→ [`RsyncError::Interrupted`]) once `stop` is set.
pub fn run(cmd: Command, list: &[&[u8]], stop: &AtomicBool) -> Result<Vec<u8>, RsyncError> {
    run_showing(cmd, list, stop, None)
}

/// [`run`], and with `progress`, rsync's `--info=progress2` lines shown on
/// that span's bar instead of returned (see `progress.rs`).
pub fn run_showing(
    mut cmd: Command,
    list: &[&[u8]],
    stop: &AtomicBool,
    progress: Option<Span>,
) -> Result<Vec<u8>, RsyncError> {
    if progress.is_some() {
        cmd = with_option(cmd, progress::RSYNC_OPTION);
    }
    cmd.stdin(if list.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    tracing::debug!(command = ?cmd, paths = list.len(), "rsync");
    let mut child = cmd.spawn().map_err(RsyncError::Spawn)?;
    let writer = process::feed(&mut child, list);
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            text
        })
    };
    let stdout = child.stdout.take().expect("stdout piped");
    let stdout = match progress {
        Some(span) => std::thread::spawn(move || {
            progress::follow(stdout, &span);
            Vec::new()
        }),
        None => read_all(Box::new(stdout)),
    };
    let reader = read_all(Box::new(child.stderr.take().expect("stderr piped")));
    let status = process::wait_or_kill(&mut child, || stop.load(Ordering::Relaxed));
    let _ = writer.join();
    let stdout = stdout.join().unwrap_or_default();
    let text = reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&text[text.len().saturating_sub(STDERR_TAIL)..])
        .trim()
        .to_string();
    match status.and_then(|s| s.code()) {
        Some(0) => Ok(stdout),
        Some(24) => {
            tracing::debug!(%stderr, "rsync: some files vanished during the transfer (exit 24)");
            Ok(stdout)
        }
        Some(code) => Err(RsyncError::Exit {
            code,
            meaning: meaning(code, &text),
            named: if code == 23 {
                named_paths(&text)
            } else {
                Vec::new()
            },
            stderr,
        }),
        None => Err(RsyncError::Interrupted),
    }
}

/// The paths quoted in rsync's error lines (`rsync: [receiver] rename
/// "/dst/d/.a.9W0Ggt" -> "d/a": Operation not permitted (1)`), with rsync's
/// `\#ooo` escapes of unprintable bytes decoded and temporary names
/// (`.NAME.XXXXXX`) mapped back to `NAME`. Absolute and relative forms are
/// both kept: the caller matches them against what it listed (a temporary name is
/// given as both).
pub fn named_paths(stderr: &[u8]) -> Vec<Vec<u8>> {
    let mut named = Vec::new();
    for line in stderr
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"rsync: "))
    {
        for quoted in line.split(|&b| b == b'"').skip(1).step_by(2) {
            let path = unescape(quoted);
            let slash = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
            let name = &path[slash..];
            // rsync's temporary file: "." + name + "." + 6 random characters.
            if name.len() > 8 && name[0] == b'.' && name[name.len() - 7] == b'.' {
                named.push([&path[..slash], &name[1..name.len() - 7]].concat());
            }
            named.push(path);
        }
    }
    named
}

/// Whether every error line in rsync's `stderr` comes from its sending side
/// (`rsync: [sender] …`): the source could not be read, the target is not
/// to blame. False when no line names a side.
pub fn sender_only(stderr: &str) -> bool {
    let mut sides = stderr
        .lines()
        .filter(|l| l.starts_with("rsync: "))
        .map(|l| l.starts_with("rsync: [sender]"))
        .peekable();
    sides.peek().is_some() && sides.all(|sender| sender)
}

/// Decodes rsync's `\#ooo` (octal) escapes.
pub fn unescape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let octal = text
            .get(i..i + 5)
            .filter(|t| t.starts_with(b"\\#") && t[2..].iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(t) => {
                out.push((t[2] - b'0') * 64 + (t[3] - b'0') * 8 + (t[4] - b'0'));
                i += 5;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{
        command, connection, named_paths, with_option, Listed, Lists, Mode, OnSource, Scope,
    };
    use crate::config::{Rate, SyncConfig};
    use crate::target::Target;
    use std::path::Path;

    /// A sync of `/src` to `target` (a valid target string).
    fn sync_to(target: &str) -> SyncConfig {
        SyncConfig::new("t", "/src".into(), Target::parse(target).unwrap())
    }

    #[test]
    fn a_mode_is_named_as_the_metrics_and_status_always_named_it() {
        for (mode, name) in [
            (Mode::Entries, "incremental"),
            (Mode::Contents, "contents"),
            (Mode::Subtree, "subtree"),
            (Mode::Full, "full"),
            (Mode::FullPush, "fullpush"),
            (Mode::FullPreview, "fullpreview"),
            (Mode::Verify, "verify"),
            (Mode::VerifyAll, "verifyall"),
            (Mode::Seed, "seed"),
        ] {
            assert_eq!(mode.as_str(), name);
        }
    }

    #[test]
    fn bwlimit_and_connection_options_reach_every_mode_before_the_source() {
        let mut sync = sync_to("rsync://u@h/m");
        sync.bwlimit = Some(Rate::new("50M").unwrap());
        sync.io_timeout_s = Some(30);
        for mode in [Mode::Entries, Mode::Full, Mode::Verify] {
            let args: Vec<String> = command(&sync, "/src".as_ref(), mode)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let at = |arg: &str| args.iter().position(|a| a == arg);
            assert!(
                at("--bwlimit=50M").is_some() && at("--bwlimit=50M") < at("/src/"),
                "{mode:?}: {args:?}"
            );
            assert!(at("--timeout=30").is_some(), "{mode:?}: {args:?}");
            assert_eq!(
                args.last().map(String::as_str),
                Some("rsync://u@h/m/"),
                "{args:?}"
            );
        }
    }

    fn args(cmd: &std::process::Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn operands_follow_a_double_dash_in_every_mode() {
        let mut sync = sync_to("/srv/replica");
        sync.rsync_args = vec!["--checksum".into()];
        for mode in [
            Mode::Entries,
            Mode::Contents,
            Mode::Subtree,
            Mode::Full,
            Mode::FullPreview,
            Mode::Verify,
            Mode::VerifyAll,
        ] {
            let cmd = with_option(command(&sync, "/src".as_ref(), mode), "--info=progress2");
            let args = args(&cmd);
            assert_eq!(
                args[args.len() - 3..],
                ["--", "/src/", "/srv/replica/"],
                "{mode:?}: {args:?}"
            );
            assert_eq!(args.iter().filter(|a| *a == "--").count(), 1);
            assert!(args.contains(&"--info=progress2".to_string()), "{args:?}");
        }
    }

    #[test]
    fn timeouts_fit_the_target_kind() {
        let daemon = sync_to("rsync://u@h/m");
        let daemon_args = args(&connection(&daemon));
        assert!(
            daemon_args.contains(&"--timeout=20".to_string())
                && daemon_args.contains(&"--contimeout=10".to_string())
                && !daemon_args.contains(&"-e".to_string()),
            "{daemon_args:?}"
        );

        let mut ssh = sync_to("root@standby:/srv");
        let args_of = |sync: &SyncConfig| args(&connection(sync));
        assert_eq!(
            args_of(&ssh),
            [
                "--timeout=20",
                "-e",
                "ssh -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3"
            ]
        );
        ssh.ssh_command = Some("/usr/bin/ssh -p 2222".into());
        ssh.io_timeout_s = Some(0);
        ssh.connect_timeout_s = Some(3);
        assert_eq!(
            args_of(&ssh),
            ["-e", "/usr/bin/ssh -p 2222 -o ConnectTimeout=3"]
        );
        ssh.ssh_command = Some("my-wrapper --x".into());
        assert_eq!(
            args_of(&ssh),
            ["-e", "my-wrapper --x"],
            "not ssh: as written"
        );

        let local = sync_to("/srv/r");
        assert_eq!(args_of(&local), ["--timeout=120"]);
    }

    #[test]
    fn the_root_is_listed_when_it_or_an_entry_of_it_changed() {
        let listed = |paths: &[(&[u8], Scope)]| -> Vec<(Mode, Vec<Vec<u8>>)> {
            let lists = Lists::keeping(paths.iter().copied(), |_| OnSource::Present);
            lists
                .by_mode()
                .map(|(mode, list)| (mode, list.iter().map(|(p, _)| p.clone()).collect()))
                .collect()
        };
        assert_eq!(
            listed(&[(b"top", Scope::Entry), (b"a/b", Scope::Entry)]),
            vec![(
                Mode::Entries,
                vec![b".".to_vec(), b"top".to_vec(), b"a/b".to_vec()]
            )]
        );
        // A subtree run that adds or removes an entry of the root comes
        // after the entries run: the root goes into the contents run.
        assert_eq!(
            listed(&[(b"a/b", Scope::Entry), (b"moved-in", Scope::Subtree)]),
            vec![
                (Mode::Entries, vec![b"a/b".to_vec()]),
                (Mode::Contents, vec![b".".to_vec()]),
                (Mode::Subtree, vec![b"moved-in".to_vec()])
            ]
        );
        assert_eq!(
            listed(&[(b"d/e", Scope::Subtree)]),
            vec![(Mode::Subtree, vec![b"d/e".to_vec()])]
        );
        assert_eq!(
            listed(&[(b"", Scope::Entry)]),
            vec![(Mode::Entries, vec![b".".to_vec()])]
        );
        assert_eq!(
            listed(&[(b"", Scope::Subtree)]),
            vec![(Mode::Subtree, vec![b".".to_vec()])]
        );
        assert_eq!(
            listed(&[(b"d", Scope::Contents), (b"d/e/f", Scope::Entry)]),
            vec![
                (Mode::Entries, vec![b"d/e/f".to_vec()]),
                (Mode::Contents, vec![b".".to_vec(), b"d/".to_vec()])
            ]
        );
        assert_eq!(
            listed(&[(b"", Scope::Contents), (b"new", Scope::Subtree)]),
            vec![
                (Mode::Contents, vec![b".".to_vec()]),
                (Mode::Subtree, vec![b"new".to_vec()])
            ]
        );
    }

    /// The runs [`Lists::of_source`] makes of `paths` below `source`.
    fn runs_of_source(source: &Path, paths: [(&[u8], Scope); 4]) -> Vec<(Mode, Vec<Listed>)> {
        Lists::of_source(source, paths)
            .by_mode()
            .map(|(mode, list)| (mode, list.to_vec()))
            .collect()
    }

    #[test]
    fn a_deleted_directory_is_deleted_by_the_entries_run() {
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(source.path().join("jobs/a/builds/2")).unwrap();
        let paths: [(&[u8], Scope); 4] = [
            (b"jobs/a/builds/1", Scope::Subtree),
            (b"jobs/a/builds/2", Scope::Subtree),
            (b"jobs/b", Scope::Contents),
            (b"gone", Scope::Subtree),
        ];
        let listed = runs_of_source(source.path(), paths);
        // The root's entry `gone` is deleted in the entries run, so the
        // root is listed there, not in a contents run of its own.
        assert_eq!(
            listed,
            vec![
                (
                    Mode::Entries,
                    vec![
                        (b".".to_vec(), 3),
                        (b"jobs/a/builds/1".to_vec(), 0),
                        (b"jobs/b".to_vec(), 2),
                        (b"gone".to_vec(), 3),
                    ]
                ),
                (Mode::Subtree, vec![(b"jobs/a/builds/2".to_vec(), 1)]),
            ]
        );
    }

    #[test]
    fn paths_below_an_entry_that_is_no_longer_a_directory_are_not_listed() {
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("was-dir"), "a file now").unwrap();
        std::fs::create_dir(source.path().join("dir")).unwrap();
        let paths: [(&[u8], Scope); 4] = [
            (b"was-dir/old", Scope::Entry),
            (b"dir/gone", Scope::Entry),
            (b"was-dir/sub/deeper", Scope::Subtree),
            (b"was-dir", Scope::Subtree),
        ];
        let listed = runs_of_source(source.path(), paths);
        assert_eq!(
            listed,
            vec![
                (Mode::Entries, vec![(b"dir/gone".to_vec(), 1)]),
                (Mode::Contents, vec![(b".".to_vec(), 3)]),
                (Mode::Subtree, vec![(b"was-dir".to_vec(), 3)]),
            ]
        );
    }

    #[test]
    fn the_sending_side_is_blamed_only_when_it_alone_complained() {
        let sender = "rsync: [sender] opendir \"/src/sub\" failed: Permission denied (13)\nrsync error: some files/attrs were not transferred (code 23)\n";
        let both = "rsync: [sender] opendir \"/src/sub\" failed: Permission denied (13)\nrsync: [receiver] mkstemp \"/dst/x\" failed: Read-only file system (30)\n";
        assert!(super::sender_only(sender));
        assert!(!super::sender_only(both));
        assert!(!super::sender_only(
            "rsync error: unexplained error (code 23)\n"
        ));
    }

    #[test]
    fn error_lines_name_their_paths() {
        let stderr = b"rsync: [receiver] rename \"/dst/d/.a.9W0Ggt\" -> \"d/a\": Operation not permitted (1)\n\
rsync: [sender] send_files failed to open \"/src/new\\#012line\\#351\": Permission denied (13)\n\
rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]\n";
        let named = named_paths(stderr);
        let expected: Vec<&[u8]> = vec![
            b"/dst/d/a",
            b"/dst/d/.a.9W0Ggt",
            b"d/a",
            b"/src/new\nline\xe9",
        ];
        assert_eq!(named, expected);
    }
}
