//! The command line (clap). Every inspection command opens the journal as a
//! read-only secondary instance, so it works while the agent runs;
//! `install`/`uninstall` write the service's files.

mod config_file;
mod generate;
mod health;
mod install;
mod log;
mod log_filter;
mod pending;
mod request;
mod status;
mod targets;
mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{BackendChoice, Config, DEFAULT_JOURNAL_DIR};
use crate::journal::Journal;
use crate::logs::LogFormat;

/// fsjournal: kernel-level change capture for hot backup of huge trees.
#[derive(Debug, Parser)]
#[command(version = env!("FSJOURNAL_VERSION"), about, long_about = None)]
pub struct Cli {
    /// Log filter for the agent's logs (tracing EnvFilter syntax; also RUST_LOG).
    #[arg(long, global = true, default_value = "info", env = "FSJOURNAL_LOG")]
    pub log: String,
    /// Log format: `text` (colours on a terminal) or `json` (one object per line, for journald or a collector).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: capture changes, journal them, push them to the targets.
    Run(RunArgs),
    /// Show backend, roots and, per target, cursor, pending paths, lag and last error.
    Status(status::StatusArgs),
    /// Print journal records in sequence order.
    Log(log::LogArgs),
    /// List the paths a target still has to receive.
    Pending(pending::PendingArgs),
    /// One line per target: target, source, cursor, pending paths, lag, full syncs, last push and error.
    Targets(targets::TargetsArgs),
    /// Ask the running agent to push a subtree (--path) or the whole root to a target again.
    Resync(request::ResyncArgs),
    /// Ask the running agent to push pending changes now, without waiting for the batch delay.
    Push(request::PushArgs),
    /// Compare sources with targets now and list what differs (--fix: push it again).
    Verify(verify::VerifyArgs),
    /// Check a configuration file, or print an annotated example.
    #[command(subcommand)]
    Config(config_file::ConfigCommand),
    /// Install the systemd unit, a first configuration (never overwritten) and the journal directory.
    Install(install::InstallArgs),
    /// Remove the systemd unit; keep configuration and journal unless --purge.
    Uninstall(install::UninstallArgs),
    /// Detach the eBPF programs a stopped agent left pinned (they keep
    /// capturing while no agent runs, until this or a reboot).
    Unpin(JournalArgs),
    /// Write man pages or shell completions (for packagers: `cargo xtask dist`).
    #[command(subcommand, hide = true)]
    Generate(generate::GenerateCommand),
}

/// `fsjournal run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, short, conflicts_with_all = ["source", "dest"])]
    pub config: Option<PathBuf>,
    /// Source directory to replicate (without --config).
    #[arg(long, requires = "dest")]
    pub source: Option<PathBuf>,
    /// Target: a local directory, rsync://[user@]host[:port]/module[/path] or [user@]host:path.
    #[arg(long, requires = "source")]
    pub dest: Option<String>,
    /// Journal directory (without --config).
    #[arg(long, conflicts_with = "config")]
    pub journal: Option<PathBuf>,
    /// Capture backend (overrides the configuration).
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
}

impl RunArgs {
    /// The configuration these arguments describe.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = match (&self.config, &self.source, &self.dest) {
            (Some(file), _, _) => Config::load(file)?,
            (None, Some(source), Some(dest)) => {
                Config::from_command_line(source.clone(), dest.clone(), self.journal.clone())?
            }
            _ => anyhow::bail!("give --config FILE, or --source DIR --dest TARGET"),
        };
        if let Some(backend) = self.backend {
            config.capture.backend = backend;
        }
        Ok(config)
    }
}

/// Where an inspection command finds the journal.
#[derive(Debug, Args)]
pub struct JournalArgs {
    /// Journal directory.
    #[arg(long, conflicts_with = "config")]
    pub journal: Option<PathBuf>,
    /// Read the journal path from this configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl JournalArgs {
    fn open(&self) -> anyhow::Result<Journal> {
        let path = match (&self.journal, &self.config) {
            (Some(path), _) => path.clone(),
            (None, Some(file)) => Config::load(file)?.journal.path,
            (None, None) => PathBuf::from(DEFAULT_JOURNAL_DIR),
        };
        Journal::open_reader(&path)
    }
}

/// Runs a subcommand other than `run`.
pub fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Status(args) => status::run(args),
        Command::Log(args) => log::run(args),
        Command::Pending(args) => pending::run(args),
        Command::Targets(args) => targets::run(args),
        Command::Resync(args) => request::resync(args),
        Command::Push(args) => request::push(args),
        Command::Verify(args) => verify::run(args),
        Command::Config(command) => config_file::run(command),
        Command::Install(args) => install::install(args),
        Command::Uninstall(args) => install::uninstall(args),
        Command::Generate(command) => generate::run(command),
        Command::Unpin(args) => unpin(&args.open()?),
        Command::Run(_) => unreachable!("run is handled by main"),
    }
}

/// Runs `fsjournal unpin`: detaches the eBPF programs pinned for a stopped
/// agent. Errors: an agent runs on the journal (its capture would stop
/// without it noticing, and the watermark would keep claiming "complete"),
/// or the pins cannot be removed.
fn unpin(journal: &Journal) -> anyhow::Result<()> {
    if let Some(pid) = crate::presence::agent_of(journal)? {
        anyhow::bail!(
            "an agent (pid {pid}) runs on {}: its capture uses these programs; \
             stop the agent first (systemctl stop fsjournal), then unpin",
            journal.path().display()
        );
    }
    let pins = crate::capture::pin_dir(journal.journal_id());
    crate::capture::unpin(&pins)?;
    println!(
        "unpinned {}: nothing is captured until an agent starts",
        pins.display()
    );
    Ok(())
}

/// A root-relative path for people and JSON, escaped so that it reads back
/// to the exact bytes (the tests' `parse_display_path`) and stays on one line: UTF-8
/// as is, except a backslash, written `\\`, and control characters
/// (newline, tab, …), written `\xNN` like bytes that are not UTF-8; `.` for
/// the root itself. A file named with the byte 0xFF shows as `bad\xff`, one
/// literally named `bad\xff` as `bad\\xff`.
pub fn display_path(path: &[u8]) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u8)),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// The exact bytes of a path for JSON consumers when [`display_path`]'s
/// string is not the name itself (bytes that are not UTF-8, a backslash,
/// a control character); `None` when it is. JSON output carries it as
/// `path_bytes`, an array of numbers (docs/operations.md).
pub fn exact_path(path: &[u8]) -> Option<Vec<u8>> {
    let plain = std::str::from_utf8(path)
        .is_ok_and(|s| !s.chars().any(|c| c == '\\' || c.is_ascii_control()));
    (!plain).then(|| path.to_vec())
}

/// How an agent start closed the gap since the previous watermark, in
/// words: `5.0s, after a reboot, closed by ctime gap scan (2 entries, 812ms)`,
/// or how far a scan still in progress got.
pub fn describe_gap(start: &crate::journal::StartRecord) -> String {
    let gap = start
        .gap_ms
        .map_or_else(|| "none (new journal)".to_string(), human_ms);
    let reboot = if start.rebooted {
        ", after a reboot"
    } else {
        ""
    };
    if start.in_progress {
        format!(
            "{gap}{reboot}, {} in progress: {} entries walked, {} found so far",
            start.method, start.walked, start.entries
        )
    } else {
        format!(
            "{gap}{reboot}, closed by {} ({} entries, {})",
            start.method,
            start.entries,
            human_ms(start.ms)
        )
    }
}

/// Human form of a duration in ms: `850ms`, `12s`, `3m05s`, `2h04m`.
pub fn human_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}s", ms / 1000),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// How long before `now` a time was (both ms since the Unix epoch): `12s ago`,
/// or `never` for 0.
pub fn ago(now: u64, time_ms: u64) -> String {
    match time_ms {
        0 => "never".into(),
        t => format!("{} ago", human_ms(now.saturating_sub(t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a [`display_path`] string back to its bytes (`.` is the root,
    /// empty). `None` for a string `display_path` never writes (a lone
    /// backslash, a bad `\x` escape).
    fn parse_display_path(text: &str) -> Option<Vec<u8>> {
        if text == "." {
            return Some(Vec::new());
        }
        let mut out = Vec::with_capacity(text.len());
        let mut rest = text.as_bytes();
        while let Some((&first, tail)) = rest.split_first() {
            if first != b'\\' {
                out.push(first);
                rest = tail;
                continue;
            }
            match tail {
                [b'\\', tail @ ..] => {
                    out.push(b'\\');
                    rest = tail;
                }
                [b'x', hi, lo, tail @ ..] => {
                    let hex = std::str::from_utf8(&[*hi, *lo]).ok()?.to_owned();
                    out.push(u8::from_str_radix(&hex, 16).ok()?);
                    rest = tail;
                }
                _ => return None,
            }
        }
        Some(out)
    }

    #[test]
    fn paths_keep_every_byte_visible() {
        assert_eq!(display_path(b""), ".");
        assert_eq!(display_path("jobs/ä b".as_bytes()), "jobs/ä b");
        assert_eq!(display_path(b"bad\xff\xfename"), "bad\\xff\\xfename");
        assert_eq!(display_path(br"bad\xff"), r"bad\\xff");
    }

    #[test]
    fn displayed_paths_read_back_to_their_exact_bytes() {
        for path in [
            &b""[..],
            b"plain/name",
            "jobs/ä b".as_bytes(),
            b"bad\xff",
            br"bad\xff",
            br"a\\b\",
            b"\xc3\x28\\x41",
            b"two\nlines\t",
        ] {
            let shown = display_path(path);
            assert_eq!(parse_display_path(&shown).as_deref(), Some(path), "{shown}");
            assert_eq!(
                exact_path(path).is_some(),
                std::str::from_utf8(path)
                    .map_or(true, |s| s.contains('\\') || s.contains(['\n', '\t'])),
                "{shown}"
            );
        }
        assert_ne!(display_path(b"bad\xff"), display_path(br"bad\xff"));
        assert_eq!(display_path(b"two\nlines"), r"two\x0alines");
        assert_eq!(parse_display_path(r"lone\"), None);
        assert_eq!(parse_display_path(r"bad\xzz"), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(12_400), "12s");
        assert_eq!(human_ms(185_000), "3m05s");
        assert_eq!(human_ms(7_440_000), "2h04m");
        assert_eq!(ago(10_000, 0), "never");
        assert_eq!(ago(10_000, 8_000), "2s ago");
    }
}
