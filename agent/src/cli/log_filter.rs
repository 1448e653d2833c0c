//! Which records `fsjournal log` prints: a range (`--since`, `--until`, by
//! sequence number or time) and a selection (`--path` globs, `--kind`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use clap::builder::TypedValueParser;
use fsjournal_common::ChangeKind;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::journal::{now_ms, LogRecord, Seq};

/// One end of a range of records: a sequence number or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A sequence number (a cursor).
    Seq(Seq),
    /// A time (ms since the Unix epoch), compared with each record's journal time.
    Time(u64),
}

impl Bound {
    /// Parses `1200` (a sequence number), `2025-06-01T12:00:00Z` (RFC 3339,
    /// UTC; `2025-06-01 12:00:00` too) or a duration before `now_ms`
    /// (`90s`, `10m`, `2h 30m`, `1day`). Errors: none of these, with examples.
    pub fn parse(text: &str, now_ms: u64) -> Result<Bound, String> {
        if let Ok(seq) = text.parse::<Seq>() {
            return Ok(Bound::Seq(seq));
        }
        if let Ok(time) = humantime::parse_rfc3339_weak(text) {
            let ms = time
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            return Ok(Bound::Time(ms));
        }
        match humantime::parse_duration(text) {
            Ok(ago) => Ok(Bound::Time(now_ms.saturating_sub(ago.as_millis() as u64))),
            Err(_) => Err(format!(
                "`{text}`: expected a sequence number (1200), a UTC time (2025-06-01T12:00:00Z) or a duration ago (10m, 2h)"
            )),
        }
    }
}

/// clap value parser for [`Bound`], relative to the current time.
pub fn parse_bound(text: &str) -> Result<Bound, String> {
    Bound::parse(text, now_ms())
}

/// clap value parser for a `--path` glob: `*` and `?` stay within one path
/// component, `**` crosses them (`jobs/*/config.xml`, `jobs/**/log`).
pub fn parse_glob(text: &str) -> Result<Glob, String> {
    GlobBuilder::new(text)
        .literal_separator(true)
        .build()
        .map_err(|e| e.to_string())
}

/// clap value parser for `--kind`: the journal's kind names (`create`,
/// `modify`, `attrib`, `delete`, `rename-from`, `rename-to`, `rescan`).
pub fn kind_parser() -> impl TypedValueParser<Value = ChangeKind> {
    clap::builder::PossibleValuesParser::new(ChangeKind::ALL.map(ChangeKind::name)).map(|name| {
        ChangeKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .expect("a possible value is a kind name")
    })
}

/// The records to print.
#[derive(Debug, Default)]
pub struct Filter {
    since: Option<Bound>,
    until: Option<Bound>,
    paths: Option<GlobSet>,
    kinds: Vec<ChangeKind>,
}

/// After `--until TIME` has passed, records may still arrive stamped before
/// it for this long (a record is stamped, then written): `--follow` waits (ms).
const LATE_RECORD_MS: u64 = 1_000;

impl Filter {
    /// A filter from the command line's values. Errors: the globs do not
    /// combine (they were each valid, so this should not happen).
    pub fn new(
        since: Option<Bound>,
        until: Option<Bound>,
        paths: &[Glob],
        kinds: Vec<ChangeKind>,
    ) -> anyhow::Result<Filter> {
        let paths = match paths {
            [] => None,
            globs => {
                let mut set = GlobSetBuilder::new();
                for glob in globs {
                    set.add(glob.clone());
                }
                Some(set.build()?)
            }
        };
        Ok(Filter {
            since,
            until,
            paths,
            kinds,
        })
    }

    /// The first sequence number worth reading.
    pub fn first_seq(&self) -> Seq {
        match self.since {
            Some(Bound::Seq(seq)) => seq + 1,
            _ => 1,
        }
    }

    /// Agent starts at or after this time are printed (0: all); `None`: from
    /// the first record printed on (`--since SEQ`).
    pub fn starts_from(&self) -> Option<u64> {
        match self.since {
            None => Some(0),
            Some(Bound::Time(t)) => Some(t),
            Some(Bound::Seq(_)) => None,
        }
    }

    /// Agent starts are printed among the records only when every record
    /// is (no `--path`, no `--kind`).
    pub fn shows_starts(&self) -> bool {
        self.paths.is_none() && self.kinds.is_empty()
    }

    /// The record comes before `--since`.
    pub fn before_range(&self, seq: Seq, record: &LogRecord) -> bool {
        match self.since {
            Some(Bound::Seq(since)) => seq <= since,
            Some(Bound::Time(since)) => record.time_ms < since,
            None => false,
        }
    }

    /// The record comes after `--until`: nothing later is printed.
    pub fn after_range(&self, seq: Seq, record: &LogRecord) -> bool {
        match self.until {
            Some(Bound::Seq(until)) => seq > until,
            Some(Bound::Time(until)) => record.time_ms > until,
            None => false,
        }
    }

    /// An agent start at `time_ms`, after every record read so far (the
    /// newest is `last_seq`), may still lie within `--until`.
    pub fn admits_later_start(&self, time_ms: u64, last_seq: Seq) -> bool {
        match self.until {
            Some(Bound::Seq(until)) => last_seq < until,
            Some(Bound::Time(until)) => time_ms <= until,
            None => true,
        }
    }

    /// Nothing journaled from now on can be within `--until`: `--follow` ends.
    pub fn range_ended(&self, last_seq: Seq, now_ms: u64) -> bool {
        match self.until {
            Some(Bound::Seq(until)) => last_seq >= until,
            Some(Bound::Time(until)) => now_ms > until.saturating_add(LATE_RECORD_MS),
            None => false,
        }
    }

    /// The record matches `--path` (any glob, against its root-relative
    /// path; the root itself is `.`) and `--kind` (any kind).
    pub fn selects(&self, record: &LogRecord) -> bool {
        let path: &[u8] = if record.path.is_empty() {
            b"."
        } else {
            &record.path
        };
        self.paths
            .as_ref()
            .is_none_or(|set| set.is_match(Path::new(OsStr::from_bytes(path))))
            && (self.kinds.is_empty() || self.kinds.contains(&record.kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Scope;

    fn record(path: &str, kind: ChangeKind, time_ms: u64) -> LogRecord {
        LogRecord {
            root: 0,
            path: path.into(),
            kind: kind as u8,
            scope: Scope::Entry,
            ino: 0,
            pid: 0,
            comm: String::new(),
            time_ms,
        }
    }

    #[test]
    fn bounds_are_sequence_numbers_times_or_durations_ago() {
        assert_eq!(Bound::parse("1200", 0), Ok(Bound::Seq(1200)));
        assert_eq!(
            Bound::parse("2025-06-01T12:00:00Z", 0),
            Ok(Bound::Time(1_748_779_200_000))
        );
        assert_eq!(
            Bound::parse("2025-06-01 12:00:00", 0),
            Ok(Bound::Time(1_748_779_200_000))
        );
        assert_eq!(Bound::parse("10m", 1_000_000), Ok(Bound::Time(400_000)));
        assert!(Bound::parse("yesterday", 0)
            .unwrap_err()
            .contains("expected a sequence number"));
    }

    #[test]
    fn path_globs_stay_within_a_component_and_kinds_select() {
        let globs = [parse_glob("jobs/*/config.xml").unwrap()];
        let filter = Filter::new(
            None,
            None,
            &globs,
            vec![ChangeKind::Modify, ChangeKind::Create],
        )
        .unwrap();
        assert!(filter.selects(&record("jobs/a/config.xml", ChangeKind::Modify, 0)));
        assert!(!filter.selects(&record("jobs/a/config.xml", ChangeKind::Delete, 0)));
        assert!(!filter.selects(&record("jobs/a/b/config.xml", ChangeKind::Create, 0)));
        assert!(!filter.selects(&record("config.xml", ChangeKind::Create, 0)));
        assert!(!filter.shows_starts());
        let root = Filter::new(None, None, &[parse_glob(".").unwrap()], Vec::new()).unwrap();
        assert!(root.selects(&record("", ChangeKind::Rescan, 0)));
    }

    #[test]
    fn ranges_bound_by_sequence_number_or_time() {
        let by_seq =
            Filter::new(Some(Bound::Seq(10)), Some(Bound::Seq(20)), &[], Vec::new()).unwrap();
        assert_eq!(by_seq.first_seq(), 11);
        let r = record("a", ChangeKind::Create, 5_000);
        assert!(by_seq.before_range(10, &r) && !by_seq.before_range(11, &r));
        assert!(!by_seq.after_range(20, &r) && by_seq.after_range(21, &r));
        assert!(by_seq.range_ended(20, 0) && !by_seq.range_ended(19, u64::MAX));

        let by_time = Filter::new(
            Some(Bound::Time(5_000)),
            Some(Bound::Time(6_000)),
            &[],
            Vec::new(),
        )
        .unwrap();
        assert_eq!(
            (by_time.first_seq(), by_time.starts_from()),
            (1, Some(5_000))
        );
        assert!(by_time.before_range(99, &record("a", ChangeKind::Create, 4_999)));
        assert!(!by_time.before_range(1, &r) && !by_time.after_range(1, &r));
        assert!(by_time.after_range(1, &record("a", ChangeKind::Create, 6_001)));
        assert!(by_time.admits_later_start(6_000, 0) && !by_time.admits_later_start(6_001, 0));
        assert!(!by_time.range_ended(0, 6_500) && by_time.range_ended(0, 7_001));
    }
}
