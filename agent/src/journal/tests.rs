//! Journal semantics on a real RocksDB in a temporary directory.

use fsjournal_common::ChangeKind;

use super::*;

fn change(path: &str, kind: ChangeKind) -> Change {
    Change {
        root: 0,
        path: path.as_bytes().to_vec(),
        kind,
        scope: Scope::Entry,
        ino: 7,
        pid: 42,
        comm: String::new(),
        renamed_from: None,
    }
}

fn paths(batch: &Batch) -> Vec<String> {
    batch
        .paths
        .iter()
        .map(|p| String::from_utf8_lossy(&p.path).into_owned())
        .collect()
}

fn open() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("j")).unwrap();
    assert_eq!(journal.register_root(Path::new("/src")).unwrap(), 0);
    (dir, journal)
}

#[test]
fn repeated_writes_to_one_path_coalesce_into_one_pending_entry() {
    let (_dir, journal) = open();
    journal
        .append(&[
            change("log", ChangeKind::Create),
            change("other", ChangeKind::Create),
        ])
        .unwrap();
    journal
        .append(&[change("log", ChangeKind::Modify)])
        .unwrap();
    let last = journal
        .append(&[change("log", ChangeKind::Modify)])
        .unwrap();
    assert_eq!(last, 4);
    let batch = journal.pending_batch(0, 0, 100).unwrap();
    assert_eq!(paths(&batch), ["other", "log"]);
    assert_eq!(batch.paths[1].seq, 4);
    assert_eq!(batch.high_seq, 4);
    // The inspection log keeps every record.
    let kinds: Vec<_> = journal
        .log_from(1, 10)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::Create,
            ChangeKind::Create,
            ChangeKind::Modify,
            ChangeKind::Modify
        ]
    );
}

#[test]
fn a_path_changed_while_its_batch_is_in_flight_stays_pending() {
    let (_dir, journal) = open();
    journal
        .append(&[
            change("a", ChangeKind::Create),
            change("b", ChangeKind::Create),
        ])
        .unwrap();
    let in_flight = journal.pending_batch(0, 0, 100).unwrap();
    journal.append(&[change("a", ChangeKind::Modify)]).unwrap();
    let state = TargetState {
        cursor: in_flight.high_seq,
        ..TargetState::default()
    };
    journal.save_target("t", &state).unwrap();
    assert_eq!(
        paths(&journal.pending_batch(0, state.cursor, 100).unwrap()),
        ["a"]
    );
}

#[test]
fn entries_are_trimmed_only_when_every_target_acknowledged_them() {
    let (_dir, journal) = open();
    journal
        .append(&[
            change("a", ChangeKind::Create),
            change("b", ChangeKind::Create),
        ])
        .unwrap();
    journal
        .save_target("slow", &TargetState::default())
        .unwrap();
    journal
        .save_target(
            "fast",
            &TargetState {
                cursor: 2,
                ..TargetState::default()
            },
        )
        .unwrap();
    assert_eq!(
        paths(&journal.pending_batch(0, 0, 100).unwrap()),
        ["a", "b"],
        "slow still needs both"
    );
    journal
        .save_target(
            "slow",
            &TargetState {
                cursor: 1,
                ..TargetState::default()
            },
        )
        .unwrap();
    assert_eq!(
        paths(&journal.pending_batch(0, 0, 100).unwrap()),
        ["b"],
        "a is acknowledged by both"
    );
    journal.forget_targets_except(&["fast"]).unwrap();
    journal
        .save_target(
            "fast",
            &TargetState {
                cursor: 2,
                ..TargetState::default()
            },
        )
        .unwrap();
    assert!(journal.pending_batch(0, 0, 100).unwrap().paths.is_empty());
}

#[test]
fn widest_scope_survives_coalescing_with_a_plain_change() {
    let (_dir, journal) = open();
    let mut moved_in = change("dir", ChangeKind::RenameTo);
    moved_in.scope = Scope::Subtree;
    journal
        .append(&[moved_in, change("dir", ChangeKind::Attrib)])
        .unwrap();
    let batch = journal.pending_batch(0, 0, 100).unwrap();
    assert_eq!(paths(&batch), ["dir"]);
    assert_eq!(batch.paths[0].scope, Scope::Subtree);
}

#[test]
fn batches_are_bounded_and_skip_other_roots_without_missing_them() {
    let (_dir, journal) = open();
    journal.register_root(Path::new("/other")).unwrap();
    let mut other = change("x", ChangeKind::Create);
    other.root = 1;
    journal
        .append(&[
            change("a", ChangeKind::Create),
            other,
            change("b", ChangeKind::Create),
            change("c", ChangeKind::Create),
        ])
        .unwrap();
    let first = journal.pending_batch(0, 0, 2).unwrap();
    assert_eq!(
        (paths(&first), first.high_seq, first.truncated),
        (vec!["a".into(), "b".into()], 3, true)
    );
    let second = journal.pending_batch(0, first.high_seq, 2).unwrap();
    assert_eq!(
        (paths(&second), second.high_seq, second.truncated),
        (vec!["c".into()], 4, false)
    );
    assert_eq!(paths(&journal.pending_batch(1, 0, 10).unwrap()), ["x"]);
    // The summary counts the same paths as the batches, per root.
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let (count, oldest) = journal
        .pending_summary(0, 0, |p| seen.push(p.to_vec()))
        .unwrap();
    assert_eq!((count, oldest), (3, Some(first.paths[0].time_ms)));
    assert_eq!(seen, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(
        journal
            .pending_summary(0, first.high_seq, |_| {})
            .unwrap()
            .0,
        1
    );
    assert_eq!(journal.pending_summary(1, 0, |_| {}).unwrap().0, 1);
}

#[test]
fn journal_survives_reopen_and_readers_see_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let id = {
        let journal = Journal::open(&path).unwrap();
        journal.register_root(Path::new("/src")).unwrap();
        journal.append(&[change("a", ChangeKind::Create)]).unwrap();
        journal.journal_id()
    };
    let journal = Journal::open(&path).unwrap();
    assert_eq!((journal.journal_id(), journal.last_seq()), (id, 1));
    let mut reader = Journal::open_reader(&path).unwrap();
    journal.append(&[change("b", ChangeKind::Create)]).unwrap();
    reader.catch_up().unwrap();
    assert_eq!(reader.last_seq(), 2);
    assert_eq!(reader.roots().unwrap(), [PathBuf::from("/src")]);
    assert_eq!(paths(&reader.pending_batch(0, 0, 10).unwrap()), ["a", "b"]);
}

#[test]
fn retention_trims_the_log_but_never_pending_entries() {
    let (_dir, journal) = open();
    for name in ["a", "b", "c", "d"] {
        journal.append(&[change(name, ChangeKind::Create)]).unwrap();
    }
    journal
        .apply_retention(Retention {
            records: 2,
            max_age_ms: u64::MAX,
        })
        .unwrap();
    assert_eq!(journal.log_first_seq(), 3);
    assert_eq!(journal.log_from(0, 10).unwrap().len(), 2);
    assert_eq!(journal.pending_batch(0, 0, 10).unwrap().paths.len(), 4);
}

#[test]
fn a_journal_of_another_format_version_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    {
        let journal = Journal::open(&path).unwrap();
        journal
            .put_meta(MetaKey::Format, &(JOURNAL_FORMAT + 1))
            .unwrap();
    }
    let err = Journal::open(&path).err().expect("refused").to_string();
    assert!(
        err.contains("format version") && err.contains("move the journal away"),
        "{err}"
    );
    assert!(Journal::open_reader(&path).is_err());
}

#[test]
fn a_byte_limit_keeps_a_prefix_and_the_cursor_stops_before_the_first_path_left_out() {
    let batch = || Batch {
        paths: [(3, "a"), (5, "b"), (9, "c")]
            .into_iter()
            .map(|(seq, path)| PendingPath {
                seq,
                path: path.as_bytes().to_vec(),
                scope: Scope::Entry,
                time_ms: 0,
            })
            .collect(),
        high_seq: 12,
        truncated: false,
    };
    let size = |path: &[u8]| match path {
        b"a" => 40,
        b"b" => 50,
        _ => 1_000,
    };
    let limited = |max| {
        let mut b = batch();
        b.limit_bytes(max, size);
        (
            b.paths.iter().map(|p| p.path.clone()).collect::<Vec<_>>(),
            b.high_seq,
            b.truncated,
        )
    };
    assert_eq!(limited(100), (vec![b"a".to_vec(), b"b".to_vec()], 8, true));
    assert_eq!(
        limited(10),
        (vec![b"a".to_vec()], 4, true),
        "the first path always goes"
    );
    assert_eq!(
        limited(10_000),
        (vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], 12, false)
    );
}

#[test]
fn a_directory_made_again_after_its_deletion_keeps_the_deletions_subtree_scope() {
    let (_dir, journal) = open();
    let mut gone = change("dir", ChangeKind::Delete);
    gone.scope = Scope::Subtree;
    let mut renamed_away = change("moved", ChangeKind::RenameFrom);
    renamed_away.scope = Scope::Subtree;
    journal.append(&[gone, renamed_away]).unwrap();
    // Made again, in a later capture cycle, with new entries and a chmod.
    journal
        .append(&[
            change("dir", ChangeKind::Create),
            change("dir/new", ChangeKind::Create),
            change("moved", ChangeKind::Create),
            change("dir", ChangeKind::Attrib),
        ])
        .unwrap();
    let batch = journal.pending_batch(0, 0, 100).unwrap();
    assert_eq!(paths(&batch), ["dir/new", "moved", "dir"]);
    let scopes: Vec<Scope> = batch.paths.iter().map(|p| p.scope).collect();
    assert_eq!(scopes, [Scope::Entry, Scope::Subtree, Scope::Subtree]);
}

#[test]
fn renames_are_kept_in_order_for_their_batch_and_trimmed_with_it() {
    let (_dir, journal) = open();
    let renamed = |from: &str, to: &str| Change {
        renamed_from: Some(from.as_bytes().to_vec()),
        ..change(to, ChangeKind::RenameTo)
    };
    journal
        .append(&[
            change("jobs/foo", ChangeKind::RenameFrom),
            renamed("jobs/foo", "jobs/bar"),
            change("jobs/bar/log", ChangeKind::Modify),
            renamed("jobs/bar", "jobs/baz"),
        ])
        .unwrap();
    let names = |cursor, high| -> Vec<(String, String)> {
        journal
            .renames(0, cursor, high)
            .unwrap()
            .into_iter()
            .map(|r| {
                let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
                (text(r.from), text(r.to))
            })
            .collect()
    };
    assert_eq!(
        names(0, 4),
        [
            ("jobs/foo".into(), "jobs/bar".into()),
            ("jobs/bar".into(), "jobs/baz".into())
        ]
    );
    assert_eq!(names(0, 3).len(), 1, "only the batch's own renames");
    assert!(
        journal.renames(1, 0, 4).unwrap().is_empty(),
        "another root's"
    );
    // Both names stay pending beside the rename record.
    assert_eq!(
        paths(&journal.pending_batch(0, 0, 100).unwrap()),
        ["jobs/foo", "jobs/bar", "jobs/bar/log", "jobs/baz"]
    );
    journal
        .save_target(
            "standby",
            &TargetState {
                cursor: 2,
                ..TargetState::default()
            },
        )
        .unwrap();
    assert_eq!(names(0, 4), [("jobs/bar".into(), "jobs/baz".into())]);
}

/// The codecs are the on-disk format: a change to any of these bytes makes
/// existing journals unreadable (or misread) without a [`JOURNAL_FORMAT`] bump.
#[test]
fn keys_and_values_keep_their_on_disk_bytes() {
    use tables::{BySeq, Log, MetaKey, Pending, PendingKey, Renames, Table, Targets};
    let seq: [u8; 8] = [0, 0, 0, 0, 0, 0, 1, 2];
    assert_eq!(Log::key(&258).as_ref(), seq);
    assert_eq!(BySeq::key(&258).as_ref(), seq);
    assert_eq!(Renames::key(&258).as_ref(), seq);
    let key = PendingKey::new(0x0102_0304, b"a/b");
    assert_eq!(Pending::key(&key).as_ref(), b"\x01\x02\x03\x04a/b");
    assert_eq!(BySeq::value(&key).as_ref(), b"\x01\x02\x03\x04a/b");
    assert_eq!(Targets::key("standby").as_ref(), b"standby");
    let meta = [
        (MetaKey::JournalId, &b"journal_id"[..]),
        (MetaKey::NextSeq, b"next_seq"),
        (MetaKey::Roots, b"roots"),
        (MetaKey::Agent, b"agent-2"),
        (MetaKey::Watermark, b"watermark"),
        (MetaKey::Format, b"format"),
        (MetaKey::Starts, b"starts"),
        (MetaKey::Identity(3), b"identity/3"),
        (MetaKey::PushInFlight("standby"), b"push/standby"),
        (MetaKey::Strategy("standby"), b"strategy/standby"),
    ];
    for (key, bytes) in meta {
        assert_eq!(key.bytes(), bytes, "{key:?}");
    }
    // postcard: varint seq 300, kind byte, scope variant index, varint time.
    let entry = PendingEntry {
        seq: 300,
        kind: ChangeKind::Modify as u8,
        scope: Scope::Subtree,
        time_ms: 5,
    };
    let bytes = [0xac, 0x02, ChangeKind::Modify as u8, 2, 5];
    assert_eq!(Pending::value(&entry).as_ref(), bytes);
    assert_eq!(Pending::parse_value(bytes.into()).unwrap(), entry);
}

#[test]
fn stored_keys_decode_to_what_was_encoded_and_short_ones_are_corrupt() {
    use tables::{BySeq, Pending, Table, Targets};
    let seq = BySeq::parse_key(Box::new([0, 0, 0, 0, 0, 0, 1, 2])).unwrap();
    assert_eq!(seq, 258);
    let key = Pending::parse_key(b"\x00\x00\x00\x07dir/f".to_vec().into()).unwrap();
    assert_eq!((key.root(), key.path()), (7, &b"dir/f"[..]));
    assert_eq!(
        Targets::parse_key(b"standby".to_vec().into()).unwrap(),
        "standby"
    );
    assert!(BySeq::parse_key(Box::new([1, 2, 3])).is_err());
    assert!(Pending::parse_key(Box::new([0, 0, 7])).is_err());
}
