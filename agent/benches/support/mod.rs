//! What the footprint benches (`journal_footprint.rs`,
//! `dir_index_footprint.rs`) share. They are not criterion benches: RSS is
//! a per-process figure, so each scenario runs in a fresh child process of
//! the bench's own executable and prints one JSON line.

use std::process::Command;

/// The scenario a child process runs.
const SCENARIO_ENV: &str = "FSJ_FOOTPRINT_SCENARIO";
/// The scenario's size (its meaning is the bench's).
const SIZE_ENV: &str = "FSJ_FOOTPRINT_SIZE";

/// In a child: runs `run(scenario, size)` for the scenario the parent
/// asked for. In the parent: starts one child per scenario, with `size`
/// `full` under `cargo bench` (a `--bench` argument), else `small` (`cargo
/// test` runs benches once in test mode); panics if one fails.
pub fn run_scenarios(scenarios: &[&str], full: u64, small: u64, run: fn(&str, u64)) {
    if let Ok(scenario) = std::env::var(SCENARIO_ENV) {
        let size = std::env::var(SIZE_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("scenario size");
        return run(&scenario, size);
    }
    let size = if std::env::args().any(|a| a == "--bench") {
        full
    } else {
        small
    };
    let exe = std::env::current_exe().expect("own executable");
    for scenario in scenarios {
        let status = Command::new(&exe)
            .env(SCENARIO_ENV, scenario)
            .env(SIZE_ENV, size.to_string())
            .status()
            .expect("run a scenario");
        assert!(status.success(), "scenario {scenario} failed: {status}");
    }
}

/// A field of /proc/self/status (`VmRSS:`, `VmHWM:`), in KiB.
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("read /proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("field in /proc/self/status")
}
