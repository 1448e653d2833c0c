//! `fsjournal config check|example`: validate a configuration without
//! running, or print an annotated one.

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Config;

/// The annotated example (also `examples/jenkins.toml`).
pub const EXAMPLE: &str = include_str!("../../../examples/jenkins.toml");

/// `fsjournal config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file without running; prints every problem as FILE:LINE: key `KEY`: message.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print an annotated example configuration (a Jenkins home to an rsync daemon).
    Example,
}

/// Runs a `config` subcommand. Errors: the file has problems (all listed).
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Example => print!("{EXAMPLE}"),
        ConfigCommand::Check { file } => {
            let config = Config::load(&file)?;
            println!(
                "{}: ok, journal {}",
                file.display(),
                config.journal.path.display()
            );
            for sync in &config.sync {
                println!(
                    "  sync {}: {} → {}",
                    sync.name,
                    sync.source.display(),
                    sync.target
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::EXAMPLE;
    use crate::config::Config;

    #[test]
    fn the_example_is_a_valid_configuration() {
        // The example's password file must be owned by root.
        if crate::private_dir::euid() != 0 {
            eprintln!("skipped: a password file owned by root needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "pw\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = EXAMPLE
            .replace("/var/lib/jenkins", dir.path().to_str().unwrap())
            .replace("/etc/fsjournal/standby.secret", secret.to_str().unwrap());
        let config = Config::parse(&text, "jenkins.toml").unwrap();
        let excludes = &config.sync[0].excludes;
        assert!(excludes.is_excluded(b"jobs/a/workspace/x"));
        assert!(
            excludes.is_excluded(b"jobs/a/atomic8419270617485271234tmp"),
            "Jenkins' AtomicFileWriter temporaries"
        );
        assert!(!excludes.is_excluded(b"jobs/a/config.xml"));
    }
}
