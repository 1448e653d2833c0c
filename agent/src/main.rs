//! The `fsjournal` binary: the agent (`run`) and the journal inspection CLI.

mod capture;
mod cli;
mod config;
mod daemon;
mod filter;
mod journal;
mod logs;
mod metrics;
mod push;
mod requests;
mod target_status;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logs::init(&cli.log, cli.log_format);
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
