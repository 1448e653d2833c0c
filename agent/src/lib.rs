//! The fsjournal agent as a library: the `fsjournal` binary (`main.rs`) is
//! [`main`], and the criterion benches (`agent/benches/`) reach the journal
//! and the capture internals they measure through the public modules.
//!
//! Only what the benches need is public; the rest stays private to the crate.

pub mod capture;
mod cli;
mod config;
mod daemon;
mod filter;
mod host;
pub mod journal;
mod logs;
mod metrics;
mod presence;
mod private_dir;
mod push;
mod requests;
mod target;
mod target_status;

use clap::Parser;

use crate::cli::{Cli, Command};

/// The `fsjournal` command line: parses the arguments, sets up logging, runs
/// the agent (`run`) or a CLI command. Errors are printed to stderr and give
/// a failing exit status.
pub fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
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
        other => {
            quiet_on_closed_pipe();
            cli::dispatch(other)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fsjournal: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Lets a CLI command whose reader went away (`fsjournal status | head -4`)
/// end quietly, killed by SIGPIPE like `cat` or `ls` (exit 141 in a shell),
/// instead of panicking in `println!` with "failed printing to stdout:
/// Broken pipe": Rust ignores SIGPIPE by default, so every write to a
/// closed pipe fails with EPIPE. Only for the CLI: the agent (`run`) keeps
/// ignoring it, as an rsync or hook child that exits early must not kill
/// it. The CLI writes to no child's stdin (`verify` lists nothing on it).
fn quiet_on_closed_pipe() {
    // SAFETY: restores the default disposition of one signal; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Caps glibc's malloc at two arenas (it makes up to 8 per core, one per
/// thread that meets contention). The agent's threads (capture, pushers,
/// RocksDB's flushes and compactions) each kept freed memory in their own
/// arena: after a 10⁶-file burst, 74 MiB of RSS with the default, 65–67
/// MiB with two (docs/benchmarks.md, "Appendix: agent memory"). Must run before
/// any thread starts.
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a tunable; no thread allocates concurrently yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
