//! The `fsjournal` binary: the agent (`run`) and the journal inspection CLI.

mod capture;
mod cli;
mod config;
mod daemon;
mod filter;
mod journal;
mod metrics;
mod push;
mod requests;
mod target_status;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cli.log));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Json => logs.json().init(),
        cli::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let result = match cli.command {
        Command::Run(args) => args
            .config()
            .and_then(|config| daemon::run(config, args.config.as_deref()))
            .and_then(|exit| match exit {
                daemon::Exit::Stopped => Ok(()),
                daemon::Exit::Reload => Err(daemon::reexec()),
            }),
        other => cli::dispatch(other),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fsjournal: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
