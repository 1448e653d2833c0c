//! Where the agent's logs go: stderr, as text (colours on a terminal) or
//! JSON lines, filtered by `--log` / `FSJOURNAL_LOG` / `RUST_LOG` (tracing's
//! `EnvFilter` syntax). A span created with an `indicatif.pb_show` field (a
//! full sync) gets a progress bar while it is entered (tracing-indicatif),
//! drawn only on a terminal; log lines are printed above it, never through it.

use std::io::IsTerminal;

use tracing_indicatif::filter::IndicatifFilter;
use tracing_indicatif::IndicatifLayer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// How the agent writes its logs (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

/// Installs the global subscriber. `directives` is used unless `RUST_LOG`
/// is set.
pub fn init(directives: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let bars = IndicatifLayer::new();
    let lines = fmt::layer().with_writer(bars.get_stderr_writer());
    let lines = match format {
        LogFormat::Json => lines.json().boxed(),
        LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(bars.with_filter(IndicatifFilter::new(false)))
        .init();
}

/// Whether progress bars would be seen: stderr is a terminal.
pub fn shows_progress() -> bool {
    std::io::stderr().is_terminal()
}
