//! `fsjournal install|uninstall`: the systemd unit, a first configuration
//! and the journal directory, so that a host goes from a binary to a
//! running service with a few commands. Both are idempotent; an operator's
//! configuration is never overwritten, and removed only with `--purge`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use super::config_file::EXAMPLE;
use crate::config::DEFAULT_JOURNAL_DIR;
use crate::journal::Journal;

/// The unit for packagers, with `ExecStart` rewritten at install.
const UNIT: &str = include_str!("../../../packaging/fsjournal.service");

/// Where the unit goes, below the install root.
const UNIT_PATH: &str = "etc/systemd/system/fsjournal.service";

/// The link `systemctl enable` makes for the unit's `WantedBy=multi-user.target`.
const ENABLED_LINK: &str = "etc/systemd/system/multi-user.target.wants/fsjournal.service";

/// Default configuration file of the service.
const DEFAULT_CONFIG: &str = "/etc/fsjournal/fsjournal.toml";

/// Where the service lives: shared by `install` and `uninstall`.
#[derive(Debug, Args)]
pub struct Layout {
    /// Work below this directory instead of `/` (a system image, a test).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Configuration file the service runs with (absolute, as the installed
    /// system sees it); `uninstall --purge` removes it.
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Journal directory: created with mode 0700 and named in a new
    /// configuration; `uninstall --purge` removes it.
    #[arg(long, default_value = DEFAULT_JOURNAL_DIR)]
    journal: PathBuf,
}

/// The unit, configuration and journal paths of a [`Layout`], below its root.
struct Paths {
    unit: PathBuf,
    config: PathBuf,
    journal: PathBuf,
}

impl Layout {
    /// Errors: `--config` or `--journal` is relative.
    fn paths(&self) -> anyhow::Result<Paths> {
        Ok(Paths {
            unit: self.root.join(UNIT_PATH),
            config: under(&self.root, &self.config, "--config")?,
            journal: under(&self.root, &self.journal, "--journal")?,
        })
    }
}

/// Arguments of `fsjournal install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    layout: Layout,
}

/// Arguments of `fsjournal uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    layout: Layout,
    /// Also remove the configuration file and the journal (each target then
    /// needs a full sync if fsjournal is installed again).
    #[arg(long)]
    purge: bool,
}

/// `path` (absolute on the installed system) below `root`. Errors: `path`
/// is relative.
fn under(root: &Path, path: &Path, what: &str) -> anyhow::Result<PathBuf> {
    match path.strip_prefix("/") {
        Ok(relative) => Ok(root.join(relative)),
        Err(_) => bail!("{what} {} must be an absolute path", path.display()),
    }
}

/// One `ExecStart` argument: `%` doubled (systemd specifiers), quoted when
/// it holds a space, quote or backslash (systemd.service(5), "Command lines").
fn unit_argument(path: &Path) -> String {
    let text = path.display().to_string().replace('%', "%%");
    if text.contains([' ', '\t', '"', '\'', '\\']) {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        text
    }
}

/// The unit file for `binary` running with `config`.
fn unit_text(binary: &Path, config: &Path) -> String {
    let exec = format!(
        "ExecStart={} run --config {}",
        unit_argument(binary),
        unit_argument(config)
    );
    let lines: Vec<&str> = UNIT
        .lines()
        .map(|line| {
            if line.starts_with("ExecStart=") {
                exec.as_str()
            } else {
                line
            }
        })
        .collect();
    lines.join("\n") + "\n"
}

/// The annotated example with its journal path set to `journal`.
fn config_text(journal: &Path) -> String {
    let quoted = toml::Value::String(journal.display().to_string()).to_string();
    EXAMPLE.replacen(
        &format!("path = \"{DEFAULT_JOURNAL_DIR}\""),
        &format!("path = {quoted}"),
        1,
    )
}

fn create_parent(path: &Path) -> anyhow::Result<()> {
    let parent = path
        .parent()
        .expect("an installed file has a parent directory");
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))
}

/// Runs `fsjournal install`. Errors: a path is relative, or a file or
/// directory cannot be written.
pub fn install(args: InstallArgs) -> anyhow::Result<()> {
    let binary = std::env::current_exe().context("cannot find this binary's path")?;
    let args = args.layout;
    let Paths {
        unit: unit_path,
        config: config_path,
        journal: journal_path,
    } = args.paths()?;

    let unit = unit_text(&binary, &args.config);
    let previous = std::fs::read_to_string(&unit_path).ok();
    if previous.as_deref() != Some(unit.as_str()) {
        create_parent(&unit_path)?;
        std::fs::write(&unit_path, &unit)
            .with_context(|| format!("cannot write {}", unit_path.display()))?;
    }
    match previous {
        None => println!("wrote    {}", unit_path.display()),
        Some(text) if text == unit => println!("kept     {} (up to date)", unit_path.display()),
        Some(_) => println!(
            "replaced {} (it differed from this version's unit)",
            unit_path.display()
        ),
    }

    if config_path.exists() {
        println!(
            "kept     {} (an existing configuration is never overwritten)",
            config_path.display()
        );
    } else {
        create_parent(&config_path)?;
        std::fs::write(&config_path, config_text(&args.journal))
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        println!(
            "wrote    {} (the annotated example: edit sources and targets)",
            config_path.display()
        );
    }

    std::fs::create_dir_all(&journal_path)
        .with_context(|| format!("cannot create journal directory {}", journal_path.display()))?;
    std::fs::set_permissions(
        &journal_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .with_context(|| format!("cannot set mode 0700 on {}", journal_path.display()))?;
    println!("journal  {} (mode 0700)", journal_path.display());

    let (bin, config) = (binary.display(), args.config.display());
    println!("\nnext:");
    println!("  ${{EDITOR:-vi}} {config}");
    println!("  {bin} config check {config}");
    println!("  systemctl daemon-reload && systemctl enable --now fsjournal");
    println!("  {bin} status --config {config}");
    Ok(())
}

/// Runs `fsjournal uninstall`. Errors: a path is relative, a file cannot be
/// removed, or (`--purge`) the journal directory does not look like a journal.
pub fn uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    let (purge, args) = (args.purge, args.layout);
    let Paths {
        unit: unit_path,
        config: config_path,
        journal: journal_path,
    } = args.paths()?;
    if purge && journal_path.join("CURRENT").exists() {
        if args.root == Path::new("/") {
            release_journal(&journal_path)?;
        }
    } else if purge && journal_path.exists() && journal_path.read_dir()?.next().is_some() {
        bail!(
            "{} does not look like an fsjournal journal (no RocksDB CURRENT file): not removed",
            journal_path.display()
        );
    }

    // What `systemctl disable` removes; it refuses once the unit file is gone.
    let link = args.root.join(ENABLED_LINK);
    if link.is_symlink() {
        std::fs::remove_file(&link).with_context(|| format!("cannot remove {}", link.display()))?;
        println!("removed  {}", link.display());
    }
    if remove_file(&unit_path)? {
        println!("removed  {}", unit_path.display());
    } else {
        println!("no unit  {} (already uninstalled)", unit_path.display());
    }

    if purge {
        if remove_file(&config_path)? {
            println!("removed  {}", config_path.display());
            // Its directory too, when nothing else is in it.
            let _ = std::fs::remove_dir(config_path.parent().expect("a file has a parent"));
        }
        if journal_path.exists() {
            std::fs::remove_dir_all(&journal_path)
                .with_context(|| format!("cannot remove {}", journal_path.display()))?;
            println!("removed  {}", journal_path.display());
        }
    } else {
        println!(
            "kept     {} and {} (--purge removes them)",
            config_path.display(),
            journal_path.display()
        );
    }
    println!("\nif the service still runs: systemctl stop fsjournal && systemctl daemon-reload");
    if !purge {
        println!("a stopped eBPF agent's programs keep capturing until: fsjournal unpin --journal {} (or a reboot)", args.journal.display());
    }
    Ok(())
}

/// Before a purge on the live system: refuses while an agent runs on the
/// journal, and detaches the eBPF programs pinned for it (their pins are
/// named by its id, which the purge forgets). Errors: an agent runs, or
/// the journal or the pins cannot be read.
fn release_journal(journal_path: &Path) -> anyhow::Result<()> {
    let journal = Journal::open_reader(journal_path)?;
    if let Some(pid) = crate::presence::agent_of(&journal)? {
        bail!(
            "an agent (pid {pid}) runs on {}: stop it first (systemctl disable --now fsjournal)",
            journal_path.display()
        );
    }
    crate::capture::unpin(&crate::capture::pin_dir(journal.journal_id()))
}

/// Removes a file; `false` if it was not there.
fn remove_file(path: &Path) -> anyhow::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_runs_this_binary_with_the_configuration() {
        let unit = unit_text(
            Path::new("/opt/fsj/bin/fsjournal"),
            Path::new("/etc/fsj/a b.toml"),
        );
        let exec: Vec<&str> = unit
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect();
        assert_eq!(
            exec,
            ["ExecStart=/opt/fsj/bin/fsjournal run --config \"/etc/fsj/a b.toml\""]
        );
        assert!(unit.lines().any(|l| l == "Restart=on-failure"), "{unit}");
        assert_eq!(unit_argument(Path::new("/x/50%")), "/x/50%%");
    }

    #[test]
    fn new_configuration_names_the_journal() {
        let text = config_text(Path::new("/srv/fsjournal"));
        assert!(
            text.lines().any(|l| l == "path = \"/srv/fsjournal\""),
            "{text}"
        );
        assert!(!text.contains(DEFAULT_JOURNAL_DIR), "{text}");
    }
}
