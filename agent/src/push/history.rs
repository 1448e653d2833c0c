//! History on the target: with `history_days`, every file a push overwrites
//! or deletes is kept under `.fsjournal-history/<YYYY-MM-DD>/` in the
//! target (rsync `--backup --backup-dir`), and day directories older than
//! `history_days` are pruned, like the `keep_history_backup_days` of the
//! inotify+rsync scripts fsjournal replaces. The history directory is
//! protected from `--delete` (rsync filter `P`), so neither pushes, full
//! syncs nor verification touch it.
//!
//! A pure builder of rsync arguments: `rsync::prune_history` runs the prune.

use std::time::{Duration, SystemTime};

/// The history directory, relative to the target directory.
pub const HISTORY_DIR: &str = ".fsjournal-history";

/// UTC date (`YYYY-MM-DD`) of `time`.
fn date(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()[..10].to_string()
}

/// Today's day directory (UTC).
pub fn today() -> String {
    date(SystemTime::now())
}

/// rsync arguments that keep the history directory out of every transfer
/// and deletion.
pub fn filter_args() -> [String; 1] {
    [format!("--filter=P /{HISTORY_DIR}/")]
}

/// rsync arguments that move what a push replaces or deletes into today's
/// day directory.
pub fn backup_args() -> [String; 2] {
    [
        "--backup".to_string(),
        format!("--backup-dir={HISTORY_DIR}/{}", today()),
    ]
}

/// rsync filters that protect the day directories of the last `days` days
/// (today included) from the `--delete` that prunes the history.
pub fn kept_days_filters(days: u32) -> Vec<String> {
    (0..u64::from(days))
        .map(|days_ago| {
            let day = SystemTime::now() - Duration::from_secs(days_ago * 86_400);
            format!("--filter=P /{}/", date(day))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_directories_are_utc_dates() {
        assert_eq!(
            date(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 365)),
            "1971-01-01"
        );
        assert_eq!(
            backup_args()[1],
            format!("--backup-dir=.fsjournal-history/{}", today())
        );
    }
}
