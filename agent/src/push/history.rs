//! History on the target: with `history_days`, every file a push overwrites
//! or deletes is kept under `.fsjournal-history/<YYYY-MM-DD>/` in the
//! target (rsync `--backup --backup-dir`), and day directories older than
//! `history_days` are pruned, like the `keep_history_backup_days` of the
//! inotify+rsync scripts fsjournal replaces. The history directory is
//! protected from `--delete` (rsync filter `P`), so neither pushes, full
//! syncs nor verification touch it.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use super::rsync;
use crate::config::SyncConfig;

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

/// Deletes the day directories older than the sync's `history_days` from
/// the target: an rsync of an empty directory onto the history directory
/// with `--delete`, protecting the days kept. Errors are logged: an old day
/// kept a little longer loses nothing.
/// Killed early once `stop` is set (shutdown).
pub fn prune(sync: &SyncConfig, stop: &AtomicBool) {
    let Ok(empty) = tempfile::tempdir() else {
        return;
    };
    let mut cmd = rsync::connection(sync);
    cmd.args(["-r", "--delete"]);
    for days_ago in 0..u64::from(sync.history_days) {
        let day = SystemTime::now() - Duration::from_secs(days_ago * 86_400);
        cmd.arg(format!("--filter=P /{}/", date(day)));
    }
    let mut empty_dir = empty.path().as_os_str().to_owned();
    empty_dir.push("/");
    let history = format!("{}{HISTORY_DIR}/", sync.target().rsync_destination());
    rsync::operands(&mut cmd, [empty_dir, history.into()]);
    match rsync::run(cmd, &[], stop) {
        Ok(_) => tracing::info!(target = %sync.name, days = sync.history_days, "history pruned"),
        Err(e) => {
            tracing::warn!(target = %sync.name, error = %e, "cannot prune the history on the target")
        }
    }
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
