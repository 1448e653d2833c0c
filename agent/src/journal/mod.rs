//! The persistent change journal: one RocksDB database.
//!
//! Column families, each a type in `tables.rs` with its key and value
//! codecs (the records are in `records.rs`):
//! - `log`: `seq → LogRecord`, every change in sequence order, trimmed by
//!   retention (count, age). For inspection only; pushing never reads it.
//! - `pending`: `root ‖ path → PendingEntry`, one entry per path that some
//!   target may still need: repeated changes to a path *coalesce* here.
//! - `by_seq`: `seq → root ‖ path`, the pending entries in sequence order
//!   (only each path's latest sequence number is present).
//! - `targets`: `name → TargetState`, the acknowledged cursor per target.
//! - `renames`: `seq → Rename`, the renames capture saw whole.
//! - `meta`: journal id, next sequence number, root table, agent info…,
//!   named by `MetaKey`.
//!
//! Durability: every write goes through [`Journal::write`] as one atomic
//! batch. Every append and every acknowledgement is written with
//! `sync = true` (WAL fsync), so a record is on disk before the call
//! returns, and a cursor moves atomically with the trimming it allows; the
//! few meta records that are not fsynced are listed at `put_meta`.
//! A pending entry is deleted only once every target's cursor has passed its
//! sequence number. See docs/architecture.md, "Crash safety".

mod options;
mod records;
mod tables;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, WriteOptions, DB};

pub use records::*;
use tables::{BySeq, Log, MetaKey, OwnedKey, Pending, PendingKey, Renames, Table, Targets, Writes};

/// Every column family with its tuned options (`options.rs`), sharing one
/// block cache: the agent and the CLI's reader open the journal alike.
fn column_families() -> impl Iterator<Item = ColumnFamilyDescriptor> {
    let cache = options::block_cache();
    tables::COLUMN_FAMILIES
        .iter()
        .map(move |name| ColumnFamilyDescriptor::new(*name, options::cf_options(name, &cache)))
}

/// Version of the on-disk format (records.rs, tables.rs). Values are
/// positional (postcard): any change to a record's fields must bump it, and
/// an agent refuses a journal of another version rather than misread it.
pub const JOURNAL_FORMAT: u32 = 2;

/// Start records kept in the journal.
pub const STARTS_KEPT: usize = 20;

/// Retention of the inspection log.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Keep at most this many records.
    pub records: u64,
    /// Keep records younger than this (ms).
    pub max_age_ms: u64,
}

/// State only the writer touches, under one lock: appends, acknowledgements
/// and trimming must not interleave (an append re-keys a path that a trim
/// might otherwise delete).
struct Writer {
    next_seq: Seq,
    log_first: Seq,
    /// Every `by_seq` entry at or below this was trimmed (skips tombstones).
    trimmed_through: Seq,
}

/// Whether [`Journal::write`] fsyncs the WAL before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// On disk when the call returns: changes, cursors, trims.
    Synced,
    /// On disk once the next synced write returns (RocksDB's WAL is one
    /// ordered log): only the meta records [`Journal::put_meta`] lists.
    Deferred,
}

/// An open journal: the agent's read-write primary, or a CLI reader.
pub struct Journal {
    db: DB,
    path: PathBuf,
    journal_id: u64,
    writer: Mutex<Writer>,
    appended: Condvar,
    /// Set at shutdown ([`Journal::wake_waiters`]): writes that fail are no
    /// longer retried.
    closing: std::sync::atomic::AtomicBool,
    /// Keeps a reader's secondary-instance directory alive.
    _secondary: Option<tempfile::TempDir>,
}

/// How often a reader opens the journal again when a compaction of the
/// running agent deleted a table file under it (see [`Journal::open_reader`]).
const READER_OPEN_ATTEMPTS: u32 = 10;

impl Journal {
    /// Opens (creating if needed) the journal at `path` for writing; only one
    /// process may do so at a time (RocksDB's LOCK file). The directory and
    /// its `requests/` are created mode 0700, or, when they exist, must be
    /// owned by the agent's user and not writable by group or others
    /// (`private_dir.rs`; they are never chmod'ed).
    ///
    /// Errors: a directory fails that rule or cannot be created, another
    /// agent holds the journal, or the database is corrupt.
    pub fn open(path: &Path) -> anyhow::Result<Journal> {
        crate::private_dir::ensure(path, "journal directory")?;
        crate::private_dir::ensure(&crate::requests::dir(path), "requests directory")?;
        let db = DB::open_cf_descriptors(&options::db_options(), path, column_families())
            .with_context(|| {
                format!(
                    "cannot open journal {} (is another agent running?)",
                    path.display()
                )
            })?;
        Journal::from_db(db, path, None, true)
    }

    /// Opens the journal read-only, as a RocksDB secondary instance, so it
    /// works while the agent holds the primary. Call [`Journal::catch_up`]
    /// to see newer writes.
    pub fn open_reader(path: &Path) -> anyhow::Result<Journal> {
        if !path.join("CURRENT").exists() {
            bail!(
                "no journal at {} (has `fsjournal run` ever run with this journal path?)",
                path.display()
            );
        }
        let secondary = tempfile::Builder::new()
            .prefix("fsjournal-reader")
            .tempdir()?;
        // The agent may compact between our reading its MANIFEST and opening
        // the table files it lists, deleting one of them (IO error, "No such
        // file or directory"): read the MANIFEST again.
        let mut attempt = 0;
        let db = loop {
            match DB::open_cf_descriptors_as_secondary(
                &options::reader_options(),
                path,
                secondary.path(),
                column_families(),
            ) {
                Ok(db) => break db,
                Err(e)
                    if attempt < READER_OPEN_ATTEMPTS
                        && e.kind() == rocksdb::ErrorKind::IOError
                        && e.to_string().contains("No such file or directory") =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(20 * attempt as u64));
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e))
                        .with_context(|| format!("cannot read journal {}", path.display()))
                }
            }
        };
        Journal::from_db(db, path, Some(secondary), false)
    }

    fn from_db(
        db: DB,
        path: &Path,
        secondary: Option<tempfile::TempDir>,
        writable: bool,
    ) -> anyhow::Result<Journal> {
        let mut journal = Journal {
            db,
            path: path.to_path_buf(),
            journal_id: 0,
            writer: Mutex::new(Writer {
                next_seq: 1,
                log_first: 1,
                trimmed_through: 0,
            }),
            appended: Condvar::new(),
            closing: Default::default(),
            _secondary: secondary,
        };
        journal.load_meta(writable)?;
        Ok(journal)
    }

    /// Reads the journal id and the sequence numbers, creating the format
    /// version and the journal id of a new journal when `writable`.
    fn load_meta(&mut self, writable: bool) -> anyhow::Result<()> {
        let is_new = self.get_meta::<u64>(MetaKey::JournalId)?.is_none();
        self.check_format(is_new, writable)?;
        let journal_id = match self.get_meta(MetaKey::JournalId)? {
            Some(id) => id,
            None if writable => {
                let id = fresh_journal_id();
                self.put_meta(MetaKey::JournalId, &id)?;
                id
            }
            None => 0,
        };
        let next_seq = self.get_meta(MetaKey::NextSeq)?.unwrap_or(1);
        let log_first = self.scan::<Log>(None).next().and_then(Result::ok);
        self.journal_id = journal_id;
        *self.writer.get_mut().expect("writer lock") = Writer {
            next_seq,
            log_first: log_first.map_or(next_seq, |(seq, _)| seq),
            trimmed_through: 0,
        };
        Ok(())
    }

    /// Errors: the journal has another [`JOURNAL_FORMAT`] (none recorded
    /// means 0, unless the journal is new: a writer then records ours).
    fn check_format(&self, is_new: bool, writable: bool) -> anyhow::Result<()> {
        let format: u32 = match self.get_meta(MetaKey::Format)? {
            Some(format) => format,
            None if is_new && writable => {
                self.put_meta(MetaKey::Format, &JOURNAL_FORMAT)?;
                JOURNAL_FORMAT
            }
            None if is_new => JOURNAL_FORMAT,
            None => 0,
        };
        if format != JOURNAL_FORMAT {
            bail!(
                "journal {} has format version {format}, this fsjournal reads version {JOURNAL_FORMAT}: \
                 move the journal away and start again (each target then gets one full sync)",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Refreshes a reader with the primary's latest writes.
    pub fn catch_up(&mut self) -> anyhow::Result<()> {
        self.db.try_catch_up_with_primary()?;
        self.load_meta(false)
    }

    /// Directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a CLI reader (a secondary instance), not the agent's
    /// primary that holds the journal's lock.
    pub fn is_reader(&self) -> bool {
        self._secondary.is_some()
    }

    /// Random id chosen when the journal was created; a cursor from another
    /// journal id is meaningless (Watchman's "fresh instance").
    pub fn journal_id(&self) -> u64 {
        self.journal_id
    }

    /// Highest sequence number assigned so far (0 for an empty journal).
    pub fn last_seq(&self) -> Seq {
        self.writer.lock().expect("writer lock").next_seq - 1
    }

    /// First sequence number still in the inspection log.
    pub fn log_first_seq(&self) -> Seq {
        self.writer.lock().expect("writer lock").log_first
    }

    /// An empty batch, for [`Journal::write`].
    fn writes(&self) -> Writes<'_> {
        Writes::new(&self.db)
    }

    /// Writes `writes` atomically, and durably unless `durability` says
    /// otherwise: every write of the journal goes through here.
    fn write(&self, writes: Writes<'_>, durability: Durability) -> anyhow::Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(durability == Durability::Synced);
        self.db
            .write_opt(writes.into_batch(), &opts)
            .with_context(|| format!("journal write to {} failed", self.path.display()))
    }

    /// Writes one meta record *without* an fsync of its own. RocksDB's WAL
    /// is one ordered log, and a synced write fsyncs everything before it,
    /// so such a record is durable once the next synced [`Journal::write`]
    /// returns (within a capture cycle while the agent runs). Only records
    /// whose loss in a power cut before then costs nothing go this way: the
    /// format version and journal id of a new journal (an empty journal is
    /// created again), the root table (roots are registered again at every
    /// start, in the configuration's order), a root's filesystem identity
    /// (missing: the gap is not trusted, a full sync runs), the start
    /// records, the agent info, the push in flight and the push strategy
    /// (only `status` reads them).
    fn put_meta<V: serde::Serialize>(&self, key: MetaKey, value: &V) -> anyhow::Result<()> {
        let mut writes = self.writes();
        writes.put_meta(key, value);
        self.write(writes, Durability::Deferred)
    }

    /// Deletes one meta record, not fsynced either (see [`Journal::put_meta`]).
    fn delete_meta(&self, key: MetaKey) -> anyhow::Result<()> {
        let mut writes = self.writes();
        writes.delete_meta(key);
        self.write(writes, Durability::Deferred)
    }

    /// The meta record `key`, decoded; `None` when it was never written.
    /// Errors: the read failed, or the record is corrupt.
    fn get_meta<V: serde::de::DeserializeOwned>(&self, key: MetaKey) -> anyhow::Result<Option<V>> {
        self.db
            .get_cf(tables::cf(&self.db, tables::META), key.bytes())?
            .map(|bytes| tables::decode(&bytes, key.what()))
            .transpose()
    }

    /// The record under `key` in table `T`; `None` when there is none.
    /// Errors: the read failed, or the record is corrupt.
    fn get<T: Table>(&self, key: &T::Key) -> anyhow::Result<Option<T::Value>> {
        self.db
            .get_cf(tables::cf(&self.db, T::CF), T::key(key))?
            .map(|bytes| T::parse_value(bytes.into_boxed_slice()))
            .transpose()
    }

    /// The records of table `T` in key order, from `from` (included) or
    /// from the first. One iterator is one snapshot of the table. Each item
    /// errs when the read failed or the record is corrupt.
    fn scan<T: Table>(
        &self,
        from: Option<&T::Key>,
    ) -> impl Iterator<Item = anyhow::Result<(OwnedKey<T>, T::Value)>> + '_ {
        let start = from.map(|key| T::key(key).as_ref().to_vec());
        let mode = match &start {
            Some(start) => IteratorMode::From(start, Direction::Forward),
            None => IteratorMode::Start,
        };
        self.db
            .iterator_cf(tables::cf(&self.db, T::CF), mode)
            .map(|item| {
                let (key, value) = item?;
                Ok((T::parse_key(key)?, T::parse_value(value)?))
            })
    }

    /// The root table: index = [`RootId`], value = absolute path.
    pub fn roots(&self) -> anyhow::Result<Vec<PathBuf>> {
        use std::os::unix::ffi::OsStringExt;
        let raw: Vec<Vec<u8>> = self.get_meta(MetaKey::Roots)?.unwrap_or_default();
        Ok(raw
            .into_iter()
            .map(|p| PathBuf::from(std::ffi::OsString::from_vec(p)))
            .collect())
    }

    /// The id of `root`, adding it to the root table when new.
    pub fn register_root(&self, root: &Path) -> anyhow::Result<RootId> {
        use std::os::unix::ffi::OsStrExt;
        let _writer = self.writer.lock().expect("writer lock");
        let mut roots = self.roots()?;
        if let Some(id) = roots.iter().position(|r| r == root) {
            return Ok(id as RootId);
        }
        roots.push(root.to_path_buf());
        let raw: Vec<&[u8]> = roots.iter().map(|r| r.as_os_str().as_bytes()).collect();
        self.put_meta(MetaKey::Roots, &raw)?;
        Ok((roots.len() - 1) as RootId)
    }

    /// Appends changes in one durable batch: each gets the next sequence
    /// number and a log record, and replaces its path's pending entry
    /// (coalescing; the widest scope is kept: a directory's subtree-scoped
    /// deletion followed by a create at the same path stays a subtree
    /// push, which removes what the old directory held — see
    /// docs/architecture.md, "Journal: RocksDB").
    ///
    /// Returns the last sequence number assigned. Errors: the write failed
    /// (disk full, I/O error); nothing of the batch is then on disk.
    pub fn append(&self, changes: &[Change]) -> anyhow::Result<Seq> {
        self.append_batch(changes, None, false)
    }

    /// As [`Journal::append`], and the capture watermark moves to
    /// `watermark_ms` in the same batch: capture vouches that every change
    /// made before it is in. `clean_stop` marks the last append of a clean
    /// stop (see [`Watermark::clean_stop`]).
    pub fn append_with_watermark(
        &self,
        changes: &[Change],
        watermark_ms: u64,
        clean_stop: bool,
    ) -> anyhow::Result<Seq> {
        self.append_batch(changes, Some(watermark_ms), clean_stop)
    }

    /// The one write path of changes: [`Journal::append`] and
    /// [`Journal::append_with_watermark`].
    fn append_batch(
        &self,
        changes: &[Change],
        watermark_ms: Option<u64>,
        clean_stop: bool,
    ) -> anyhow::Result<Seq> {
        let mut writer = self.writer.lock().expect("writer lock");
        if changes.is_empty() && watermark_ms.is_none() {
            return Ok(writer.next_seq - 1);
        }
        let mut writes = self.writes();
        let next_seq = self.stage_changes(&mut writes, changes, writer.next_seq)?;
        writes.put_meta(MetaKey::NextSeq, &next_seq);
        if let Some(time_ms) = watermark_ms {
            let watermark = Watermark {
                time_ms,
                boot_id: crate::host::boot_id(),
                clean_stop,
            };
            writes.put_meta(MetaKey::Watermark, &watermark);
        }
        self.write(writes, Durability::Synced)?;
        writer.next_seq = next_seq;
        drop(writer);
        self.appended.notify_all();
        Ok(next_seq - 1)
    }

    /// Adds to `writes` each change's log record, its coalesced pending
    /// entry (re-keyed in `by_seq`) and its rename, numbered from `seq` on.
    /// Returns the next sequence number. Errors: a pending entry cannot be
    /// read.
    fn stage_changes(
        &self,
        writes: &mut Writes,
        changes: &[Change],
        mut seq: Seq,
    ) -> anyhow::Result<Seq> {
        let now = now_ms();
        // Entries re-keyed earlier in this batch are not yet visible in the DB.
        let mut in_batch: HashMap<PendingKey, PendingEntry> = HashMap::new();
        for change in changes {
            writes.put::<Log>(&seq, &LogRecord::of(change, now));
            let key = PendingKey::new(change.root, &change.path);
            let previous = match in_batch.remove(&key) {
                Some(entry) => Some(entry),
                None => self.get::<Pending>(&key)?,
            };
            if let Some(previous) = &previous {
                writes.delete::<BySeq>(&previous.seq);
            }
            let entry = PendingEntry::coalesce(previous.as_ref(), change, seq, now);
            writes.put::<Pending>(&key, &entry);
            writes.put::<BySeq>(&seq, &key);
            if let Some(rename) = Rename::of(change) {
                writes.put::<Renames>(&seq, &rename);
            }
            in_batch.insert(key, entry);
            seq += 1;
        }
        Ok(seq)
    }

    /// Blocks until an append happens after `seen` or `timeout` passes;
    /// returns the last sequence number.
    pub fn wait_for_append(&self, seen: Seq, timeout: Duration) -> Seq {
        let writer = self.writer.lock().expect("writer lock");
        let (writer, _) = self
            .appended
            .wait_timeout_while(writer, timeout, |w| w.next_seq - 1 <= seen)
            .expect("writer lock");
        writer.next_seq - 1
    }

    /// Wakes every [`Journal::wait_for_append`] caller, and ends the retries
    /// of [`Journal::save_target`] (used at shutdown).
    pub fn wake_waiters(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _writer = self.writer.lock().expect("writer lock");
        self.appended.notify_all();
    }

    /// Up to `max` pending paths of `root` with sequence numbers after
    /// `cursor`, oldest first.
    pub fn pending_batch(&self, root: RootId, cursor: Seq, max: usize) -> anyhow::Result<Batch> {
        let mut batch = Batch {
            high_seq: cursor,
            ..Batch::default()
        };
        for item in self.scan::<BySeq>(Some(&(cursor + 1))) {
            let (seq, key) = item?;
            if batch.paths.len() == max {
                batch.truncated = true;
                break;
            }
            batch.high_seq = seq;
            if key.root() != root {
                continue;
            }
            // Read the live entry: a concurrent append may have re-keyed it to a
            // newer sequence number, which then stays pending on its own.
            let Some(entry) = self.get::<Pending>(&key)? else {
                continue;
            };
            batch.paths.push(PendingPath {
                seq,
                path: key.path().to_vec(),
                scope: entry.scope,
                time_ms: entry.time_ms,
            });
        }
        Ok(batch)
    }

    /// The renames of `root` journaled after `cursor` up to `high_seq`
    /// (a batch's [`Batch::high_seq`]), in sequence order.
    pub fn renames(&self, root: RootId, cursor: Seq, high_seq: Seq) -> anyhow::Result<Vec<Rename>> {
        let mut renames = Vec::new();
        for item in self.scan::<Renames>(Some(&(cursor + 1))) {
            let (seq, rename) = item?;
            if seq > high_seq {
                break;
            }
            if rename.root == root {
                renames.push(rename);
            }
        }
        Ok(renames)
    }

    /// Number of pending paths of `root` after `cursor`, and the time of the
    /// oldest one (ms since the Unix epoch); `each_path` sees every pending
    /// root-relative path, in sequence order.
    ///
    /// Reads keys only (no path is copied, one entry is decoded): `status`,
    /// `targets` and every metrics scrape call it, on backlogs of millions.
    pub fn pending_summary(
        &self,
        root: RootId,
        cursor: Seq,
        mut each_path: impl FnMut(&[u8]),
    ) -> anyhow::Result<(u64, Option<u64>)> {
        let (mut count, mut oldest) = (0, None);
        // One iterator is one snapshot: each sequence key here has its live
        // pending entry (re-keying deletes the old key in the same write).
        for item in self.scan::<BySeq>(Some(&(cursor + 1))) {
            let (_, key) = item?;
            if key.root() != root {
                continue;
            }
            each_path(key.path());
            if count == 0 {
                oldest = self.get::<Pending>(&key)?.map(|entry| entry.time_ms);
            }
            count += 1;
        }
        Ok((count, oldest))
    }

    /// Whether `path` of `root` has a change after `cursor` still pending.
    pub fn is_pending(&self, root: RootId, path: &[u8], cursor: Seq) -> anyhow::Result<bool> {
        let entry = self.get::<Pending>(&PendingKey::new(root, path))?;
        Ok(entry.is_some_and(|entry| entry.seq > cursor))
    }

    /// The stored state of target `name`.
    pub fn target_state(&self, name: &str) -> anyhow::Result<Option<TargetState>> {
        self.get::<Targets>(name)
    }

    /// Every target's state, by name.
    pub fn target_states(&self) -> anyhow::Result<Vec<(String, TargetState)>> {
        self.scan::<Targets>(None).collect()
    }

    /// Stores `state` for target `name`, and in the same atomic batch trims
    /// the pending entries that every target has now acknowledged (sequence
    /// number ≤ the minimum cursor over all targets).
    ///
    /// A write that fails with an I/O error (disk full) is retried every
    /// second until it succeeds or the journal is closing: the pusher waits
    /// instead of ending the agent. Errors: any other failure, or an I/O
    /// error at shutdown.
    pub fn save_target(&self, name: &str, state: &TargetState) -> anyhow::Result<()> {
        let mut last_report: Option<std::time::Instant> = None;
        loop {
            let error = match self.save_target_once(name, state) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let io = error
                .downcast_ref::<rocksdb::Error>()
                .is_some_and(|e| e.kind() == rocksdb::ErrorKind::IOError);
            if !io || self.closing.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(error);
            }
            // Logged at once, then every 30 s: the journal writer logs the same state.
            if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                last_report = Some(std::time::Instant::now());
                tracing::error!(target = name, error = %format!("{error:#}"), "journal_write_error: cannot record the target's cursor; retrying every second");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn save_target_once(&self, name: &str, state: &TargetState) -> anyhow::Result<()> {
        let mut writer = self.writer.lock().expect("writer lock");
        let mut writes = self.writes();
        writes.put::<Targets>(name, state);
        let others = self
            .target_states()?
            .into_iter()
            .filter(|(n, _)| n != name)
            .map(|(_, s)| s.cursor);
        let min_cursor = others.fold(state.cursor, Seq::min);
        self.trim_acknowledged(&mut writes, writer.trimmed_through, min_cursor)?;
        self.write(writes, Durability::Synced)?;
        writer.trimmed_through = writer.trimmed_through.max(min_cursor);
        Ok(())
    }

    /// Removes the state of targets no longer configured, so their cursors
    /// stop holding back trimming. Returns the names forgotten.
    pub fn forget_targets_except(&self, keep: &[&str]) -> anyhow::Result<Vec<String>> {
        let _writer = self.writer.lock().expect("writer lock");
        let mut writes = self.writes();
        let mut forgotten = Vec::new();
        for (name, _) in self.target_states()? {
            if !keep.contains(&name.as_str()) {
                writes.delete::<Targets>(&name);
                forgotten.push(name);
            }
        }
        self.write(writes, Durability::Synced)?;
        Ok(forgotten)
    }

    /// Adds to `writes` the deletion of what every target acknowledged
    /// since the last trim (sequence numbers after `trimmed_through` up to
    /// `min_cursor`): renames, `by_seq` keys, and the pending entries not
    /// re-keyed since.
    fn trim_acknowledged(
        &self,
        writes: &mut Writes,
        trimmed_through: Seq,
        min_cursor: Seq,
    ) -> anyhow::Result<()> {
        if min_cursor > trimmed_through {
            writes.delete_range::<Renames>(&(trimmed_through + 1), &(min_cursor + 1));
        }
        for item in self.scan::<BySeq>(Some(&(trimmed_through + 1))) {
            let (seq, key) = item?;
            if seq > min_cursor {
                break;
            }
            writes.delete::<BySeq>(&seq);
            if self
                .get::<Pending>(&key)?
                .is_some_and(|entry| entry.seq == seq)
            {
                writes.delete::<Pending>(&key);
            }
        }
        Ok(())
    }

    /// Drops inspection-log records beyond the retention (count and age).
    /// Pending entries are never dropped by retention.
    pub fn apply_retention(&self, retention: Retention) -> anyhow::Result<()> {
        let mut writer = self.writer.lock().expect("writer lock");
        let mut first = writer
            .log_first
            .max(writer.next_seq.saturating_sub(retention.records));
        let oldest_kept_ms = now_ms().saturating_sub(retention.max_age_ms);
        for item in self.scan::<Log>(Some(&first)) {
            let (seq, record) = item?;
            if record.time_ms >= oldest_kept_ms {
                break;
            }
            first = seq + 1;
        }
        if first > writer.log_first {
            let mut writes = self.writes();
            writes.delete_range::<Log>(&writer.log_first, &first);
            self.write(writes, Durability::Synced)?;
            writer.log_first = first;
        }
        Ok(())
    }

    /// When the change with sequence number `seq` was journaled (ms since the
    /// Unix epoch); `None` once retention dropped its log record.
    pub fn change_time_ms(&self, seq: Seq) -> anyhow::Result<Option<u64>> {
        Ok(self.get::<Log>(&seq)?.map(|record| record.time_ms))
    }

    /// Up to `limit` log records with sequence numbers ≥ `from`, in order.
    pub fn log_from(&self, from: Seq, limit: usize) -> anyhow::Result<Vec<(Seq, LogRecord)>> {
        self.scan::<Log>(Some(&from)).take(limit).collect()
    }

    /// The capture watermark; `None` for a journal no capture ever wrote to.
    pub fn watermark(&self) -> anyhow::Result<Option<Watermark>> {
        self.get_meta(MetaKey::Watermark)
    }

    /// The recorded filesystem identity of a root.
    pub fn root_identity(&self, root: RootId) -> anyhow::Result<Option<FsIdentity>> {
        self.get_meta(MetaKey::Identity(root))
    }

    /// Records a root's filesystem identity.
    pub fn save_root_identity(&self, root: RootId, identity: &FsIdentity) -> anyhow::Result<()> {
        self.put_meta(MetaKey::Identity(root), identity)
    }

    /// Marks every target of `root` as owing a full sync for `reason`;
    /// returns how many targets that concerned.
    pub fn require_full_sync(&self, root: RootId, reason: &str) -> anyhow::Result<usize> {
        let mut count = 0;
        for (name, mut state) in self.target_states()? {
            if state.root == root {
                state.full_sync_needed = Some(reason.to_string());
                state.cursor = self.last_seq();
                self.save_target(&name, &state)?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Appends a start record, keeping the last [`STARTS_KEPT`]; a record
    /// with the same start time as the last one replaces it (progress).
    pub fn record_start(&self, record: &StartRecord) -> anyhow::Result<()> {
        let mut starts = self.starts()?;
        if starts
            .last()
            .is_some_and(|last| last.time_ms == record.time_ms)
        {
            starts.pop();
        }
        starts.push(record.clone());
        let excess = starts.len().saturating_sub(STARTS_KEPT);
        starts.drain(..excess);
        self.put_meta(MetaKey::Starts, &starts)
    }

    /// The recorded starts, oldest first.
    pub fn starts(&self) -> anyhow::Result<Vec<StartRecord>> {
        Ok(self.get_meta(MetaKey::Starts)?.unwrap_or_default())
    }

    /// Stores the running agent's self-description.
    pub fn save_agent_info(&self, info: &AgentInfo) -> anyhow::Result<()> {
        self.put_meta(MetaKey::Agent, info)
    }

    /// The last agent's self-description, if any agent ever ran.
    pub fn agent_info(&self) -> anyhow::Result<Option<AgentInfo>> {
        self.get_meta(MetaKey::Agent)
    }

    /// Records the rsync run now in flight for `target`, or with `None`
    /// that it ended. Not fsynced: only `status` reads it.
    pub fn save_push_in_flight(
        &self,
        target: &str,
        run: Option<&PushInFlight>,
    ) -> anyhow::Result<()> {
        let key = MetaKey::PushInFlight(target);
        match run {
            Some(run) => self.put_meta(key, run),
            None => self.delete_meta(key),
        }
    }

    /// The rsync run recorded in flight for `target`, if any (see
    /// [`PushInFlight`] for a record left by a killed agent).
    pub fn push_in_flight(&self, target: &str) -> anyhow::Result<Option<PushInFlight>> {
        self.get_meta(MetaKey::PushInFlight(target))
    }

    /// Records how `target`'s last push went. Not fsynced: only `status`
    /// reads it.
    pub fn save_push_strategy(&self, target: &str, strategy: &PushStrategy) -> anyhow::Result<()> {
        self.put_meta(MetaKey::Strategy(target), strategy)
    }

    /// How `target`'s last push went, if one was recorded.
    pub fn push_strategy(&self, target: &str) -> anyhow::Result<Option<PushStrategy>> {
        self.get_meta(MetaKey::Strategy(target))
    }
}

/// A journal id that differs between two creations of a journal.
fn fresh_journal_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_ms());
    hasher.write_u32(std::process::id());
    hasher.finish().max(1)
}

#[cfg(test)]
mod tests;
