//! The persistent change journal: one RocksDB database.
//!
//! Column families:
//! - `log`: `seq → LogRecord`, every change in sequence order, trimmed by
//!   retention (count, age). For inspection only; pushing never reads it.
//! - `pending`: `root ‖ path → PendingEntry`, one entry per path that some
//!   target may still need: repeated changes to a path *coalesce* here.
//! - `by_seq`: `seq → root ‖ path`, the pending entries in sequence order
//!   (only each path's latest sequence number is present).
//! - `targets`: `name → TargetState`, the acknowledged cursor per target.
//! - `meta`: journal id, next sequence number, root table, agent info.
//!
//! Durability: every append and every acknowledgement is one `WriteBatch`
//! written with `sync = true` (WAL fsync), so a record is on disk before the
//! call returns, and a cursor moves atomically with the trimming it allows.
//! A pending entry is deleted only once every target's cursor has passed its
//! sequence number. See docs/architecture.md, "Crash safety".

mod options;
mod records;

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, WriteBatch, WriteOptions, DB};

pub use records::*;

const CF_LOG: &str = "log";
const CF_PENDING: &str = "pending";
const CF_BY_SEQ: &str = "by_seq";
const CF_TARGETS: &str = "targets";
const CF_META: &str = "meta";
/// [`Rename`]s by sequence number. A new column family, not a format change:
/// an older journal simply has none yet.
const CF_RENAMES: &str = "renames";
const COLUMN_FAMILIES: [&str; 6] = [
    CF_LOG, CF_PENDING, CF_BY_SEQ, CF_TARGETS, CF_META, CF_RENAMES,
];

/// Every column family with its tuned options (`options.rs`), sharing one
/// block cache: the agent and the CLI's reader open the journal alike.
fn column_families() -> impl Iterator<Item = ColumnFamilyDescriptor> {
    let cache = options::block_cache();
    COLUMN_FAMILIES
        .iter()
        .map(move |name| ColumnFamilyDescriptor::new(*name, options::cf_options(name, &cache)))
}

const META_JOURNAL_ID: &[u8] = b"journal_id";
const META_NEXT_SEQ: &[u8] = b"next_seq";
const META_ROOTS: &[u8] = b"roots";
/// The running agent's [`AgentInfo`]. It is rewritten by every start and
/// read only to show the agent: a change of its fields renames the key
/// (an older agent's record is then ignored) instead of bumping
/// [`JOURNAL_FORMAT`], which would cost every target a full sync.
const META_AGENT: &[u8] = b"agent-2";
const META_WATERMARK: &[u8] = b"watermark";
const META_FORMAT: &[u8] = b"format";

/// Version of the on-disk format (records.rs). Values are positional
/// (postcard): any change to a record's fields must bump it, and an agent
/// refuses a journal of another version rather than misread it.
pub const JOURNAL_FORMAT: u32 = 2;
const META_STARTS: &[u8] = b"starts";
/// `push/<target>`: the target's [`PushInFlight`], while rsync runs.
const META_PUSH_PREFIX: &str = "push/";
/// Meta key prefix of each target's [`PushStrategy`].
const META_STRATEGY_PREFIX: &str = "strategy/";

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

    fn load_meta(&mut self, writable: bool) -> anyhow::Result<()> {
        let is_new = self.db.get_cf(self.cf(CF_META), META_JOURNAL_ID)?.is_none();
        let format: u32 = match self.get_meta(META_FORMAT, "format version")? {
            Some(format) => format,
            None if is_new && writable => {
                self.put_meta(META_FORMAT, &encode(&JOURNAL_FORMAT))?;
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
        let journal_id = match self.get_meta(META_JOURNAL_ID, "journal id")? {
            Some(id) => id,
            None if writable => {
                let id = fresh_journal_id();
                self.put_meta(META_JOURNAL_ID, &encode(&id))?;
                id
            }
            None => 0,
        };
        let next_seq = self
            .get_meta(META_NEXT_SEQ, "next sequence number")?
            .unwrap_or(1);
        let log_first = self.first_key(CF_LOG).unwrap_or(next_seq);
        self.journal_id = journal_id;
        *self.writer.get_mut().expect("writer lock") = Writer {
            next_seq,
            log_first,
            trimmed_through: 0,
        };
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

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    fn first_key(&self, cf: &str) -> Option<Seq> {
        self.db
            .iterator_cf(self.cf(cf), IteratorMode::Start)
            .next()
            .and_then(Result::ok)
            .map(|(k, _)| seq_from_key(&k))
    }

    /// Writes `batch` atomically and durably (the WAL fsynced): changes,
    /// cursors and trims go through here.
    fn write(&self, batch: WriteBatch) -> anyhow::Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db
            .write_opt(batch, &opts)
            .with_context(|| format!("journal write to {} failed", self.path.display()))
    }

    /// Writes one meta record *without* an fsync of its own. RocksDB's WAL
    /// is one ordered log, and a synced write fsyncs everything before it,
    /// so such a record is durable once the next [`Journal::write`]
    /// returns (within a capture cycle while the agent runs). Only records
    /// whose loss in a power cut before then costs nothing go this way: the
    /// format version and journal id of a new journal (an empty journal is
    /// created again), the root table (roots are registered again at every
    /// start, in the configuration's order), a root's filesystem identity
    /// (missing: the gap is not trusted, a full sync runs), the start
    /// records, the agent info, the push in flight and the push strategy
    /// (only `status` reads them).
    fn put_meta(&self, key: impl AsRef<[u8]>, value: &[u8]) -> anyhow::Result<()> {
        self.db
            .put_cf(self.cf(CF_META), key, value)
            .with_context(|| format!("journal write to {} failed", self.path.display()))
    }

    /// The meta record `key`, decoded; `None` when it was never written.
    /// Errors: the read failed, or the record is corrupt (`what` names it).
    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
        what: &str,
    ) -> anyhow::Result<Option<T>> {
        self.db
            .get_cf(self.cf(CF_META), key)?
            .map(|bytes| decode(&bytes, what))
            .transpose()
    }

    /// The root table: index = [`RootId`], value = absolute path.
    pub fn roots(&self) -> anyhow::Result<Vec<PathBuf>> {
        use std::os::unix::ffi::OsStringExt;
        let raw: Vec<Vec<u8>> = self.get_meta(META_ROOTS, "root table")?.unwrap_or_default();
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
        self.put_meta(META_ROOTS, &encode(&raw))?;
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
        let now = now_ms();
        let (log, pending, by_seq) = (self.cf(CF_LOG), self.cf(CF_PENDING), self.cf(CF_BY_SEQ));
        let mut batch = WriteBatch::default();
        // Entries re-keyed earlier in this batch are not yet visible in the DB.
        let mut in_batch: std::collections::HashMap<Vec<u8>, PendingEntry> =
            std::collections::HashMap::new();
        let mut seq = writer.next_seq;
        for change in changes {
            let record = LogRecord {
                root: change.root,
                path: change.path.clone(),
                kind: change.kind as u8,
                scope: change.scope,
                ino: change.ino,
                pid: change.pid,
                comm: change.comm.clone(),
                time_ms: now,
            };
            batch.put_cf(log, seq_key(seq), encode(&record));
            let key = pending_key(change.root, &change.path);
            let previous = match in_batch.get(&key) {
                Some(entry) => Some(entry.clone()),
                None => self
                    .db
                    .get_cf(pending, &key)?
                    .map(|b| decode::<PendingEntry>(&b, "pending entry"))
                    .transpose()?,
            };
            let (mut scope, mut time_ms) = (change.scope, now);
            if let Some(previous) = previous {
                batch.delete_cf(by_seq, seq_key(previous.seq));
                scope = scope.max(previous.scope);
                // The oldest coalesced change dates the entry: a file written
                // continuously must not keep postponing its own push.
                time_ms = previous.time_ms;
            }
            let entry = PendingEntry {
                seq,
                kind: change.kind as u8,
                scope,
                time_ms,
            };
            batch.put_cf(pending, &key, encode(&entry));
            batch.put_cf(by_seq, seq_key(seq), &key);
            if let Some(from) = &change.renamed_from {
                let rename = Rename {
                    root: change.root,
                    from: from.clone(),
                    to: change.path.clone(),
                };
                batch.put_cf(self.cf(CF_RENAMES), seq_key(seq), encode(&rename));
            }
            in_batch.insert(key, entry);
            seq += 1;
        }
        batch.put_cf(self.cf(CF_META), META_NEXT_SEQ, encode(&seq));
        if let Some(time_ms) = watermark_ms {
            let watermark = Watermark {
                time_ms,
                boot_id: crate::host::boot_id(),
                clean_stop,
            };
            batch.put_cf(self.cf(CF_META), META_WATERMARK, encode(&watermark));
        }
        self.write(batch)?;
        writer.next_seq = seq;
        drop(writer);
        self.appended.notify_all();
        Ok(seq - 1)
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
        let start = seq_key(cursor + 1);
        for item in self.db.iterator_cf(
            self.cf(CF_BY_SEQ),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (seq_bytes, key) = item?;
            if batch.paths.len() == max {
                batch.truncated = true;
                break;
            }
            let seq = seq_from_key(&seq_bytes);
            batch.high_seq = seq;
            let (entry_root, path) = split_pending_key(&key);
            if entry_root != root {
                continue;
            }
            // Read the live entry: a concurrent append may have re-keyed it to a
            // newer sequence number, which then stays pending on its own.
            let Some(bytes) = self.db.get_cf(self.cf(CF_PENDING), &key)? else {
                continue;
            };
            let entry: PendingEntry = decode(&bytes, "pending entry")?;
            batch.paths.push(PendingPath {
                seq,
                path: path.to_vec(),
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
        for item in self.db.iterator_cf(
            self.cf(CF_RENAMES),
            IteratorMode::From(&seq_key(cursor + 1), Direction::Forward),
        ) {
            let (seq_bytes, bytes) = item?;
            if seq_from_key(&seq_bytes) > high_seq {
                break;
            }
            let rename: Rename = decode(&bytes, "rename")?;
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
        let start = seq_key(cursor + 1);
        // One iterator is one snapshot: each sequence key here has its live
        // pending entry (re-keying deletes the old key in the same write).
        for item in self.db.iterator_cf(
            self.cf(CF_BY_SEQ),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (_, key) = item?;
            let (key_root, path) = split_pending_key(&key);
            if key_root != root {
                continue;
            }
            each_path(path);
            if count == 0 {
                if let Some(bytes) = self.db.get_cf(self.cf(CF_PENDING), &key)? {
                    oldest = Some(decode::<PendingEntry>(&bytes, "pending entry")?.time_ms);
                }
            }
            count += 1;
        }
        Ok((count, oldest))
    }

    /// Whether `path` of `root` has a change after `cursor` still pending.
    pub fn is_pending(&self, root: RootId, path: &[u8], cursor: Seq) -> anyhow::Result<bool> {
        let Some(bytes) = self
            .db
            .get_cf(self.cf(CF_PENDING), pending_key(root, path))?
        else {
            return Ok(false);
        };
        Ok(decode::<PendingEntry>(&bytes, "pending entry")?.seq > cursor)
    }

    /// The stored state of target `name`.
    pub fn target_state(&self, name: &str) -> anyhow::Result<Option<TargetState>> {
        self.db
            .get_cf(self.cf(CF_TARGETS), name)?
            .map(|b| decode(&b, "target state"))
            .transpose()
    }

    /// Every target's state, by name.
    pub fn target_states(&self) -> anyhow::Result<Vec<(String, TargetState)>> {
        let mut states = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_TARGETS), IteratorMode::Start)
        {
            let (name, bytes) = item?;
            states.push((
                String::from_utf8_lossy(&name).into_owned(),
                decode(&bytes, "target state")?,
            ));
        }
        Ok(states)
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
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_TARGETS), name, encode(state));
        let others = self
            .target_states()?
            .into_iter()
            .filter(|(n, _)| n != name)
            .map(|(_, s)| s.cursor);
        let min_cursor = others.fold(state.cursor, Seq::min);
        self.trim_acknowledged(&mut batch, writer.trimmed_through, min_cursor)?;
        self.write(batch)?;
        writer.trimmed_through = writer.trimmed_through.max(min_cursor);
        Ok(())
    }

    /// Removes the state of targets no longer configured, so their cursors
    /// stop holding back trimming. Returns the names forgotten.
    pub fn forget_targets_except(&self, keep: &[&str]) -> anyhow::Result<Vec<String>> {
        let _writer = self.writer.lock().expect("writer lock");
        let mut batch = WriteBatch::default();
        let mut forgotten = Vec::new();
        for (name, _) in self.target_states()? {
            if !keep.contains(&name.as_str()) {
                batch.delete_cf(self.cf(CF_TARGETS), name.as_bytes());
                forgotten.push(name);
            }
        }
        self.write(batch)?;
        Ok(forgotten)
    }

    fn trim_acknowledged(
        &self,
        batch: &mut WriteBatch,
        trimmed_through: Seq,
        min_cursor: Seq,
    ) -> anyhow::Result<()> {
        let (pending, by_seq) = (self.cf(CF_PENDING), self.cf(CF_BY_SEQ));
        let start = seq_key(trimmed_through + 1);
        if min_cursor > trimmed_through {
            batch.delete_range_cf(self.cf(CF_RENAMES), &start, &seq_key(min_cursor + 1));
        }
        for item in self
            .db
            .iterator_cf(by_seq, IteratorMode::From(&start, Direction::Forward))
        {
            let (seq_bytes, key) = item?;
            let seq = seq_from_key(&seq_bytes);
            if seq > min_cursor {
                break;
            }
            batch.delete_cf(by_seq, &seq_bytes);
            let current = self
                .db
                .get_cf(pending, &key)?
                .map(|b| decode::<PendingEntry>(&b, "pending entry"))
                .transpose()?;
            if current.is_some_and(|entry| entry.seq == seq) {
                batch.delete_cf(pending, &key);
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
        for item in self.db.iterator_cf(
            self.cf(CF_LOG),
            IteratorMode::From(&seq_key(first), Direction::Forward),
        ) {
            let (key, bytes) = item?;
            if decode::<LogRecord>(&bytes, "log record")?.time_ms >= oldest_kept_ms {
                break;
            }
            first = seq_from_key(&key) + 1;
        }
        if first > writer.log_first {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(self.cf(CF_LOG), seq_key(writer.log_first), seq_key(first));
            self.write(batch)?;
            writer.log_first = first;
        }
        Ok(())
    }

    /// When the change with sequence number `seq` was journaled (ms since the
    /// Unix epoch); `None` once retention dropped its log record.
    pub fn change_time_ms(&self, seq: Seq) -> anyhow::Result<Option<u64>> {
        let Some(bytes) = self.db.get_cf(self.cf(CF_LOG), seq_key(seq))? else {
            return Ok(None);
        };
        Ok(Some(decode::<LogRecord>(&bytes, "log record")?.time_ms))
    }

    /// Up to `limit` log records with sequence numbers ≥ `from`, in order.
    pub fn log_from(&self, from: Seq, limit: usize) -> anyhow::Result<Vec<(Seq, LogRecord)>> {
        let start = seq_key(from);
        let iter = self.db.iterator_cf(
            self.cf(CF_LOG),
            IteratorMode::From(&start, Direction::Forward),
        );
        iter.take(limit)
            .map(|item| {
                let (key, bytes) = item?;
                Ok((seq_from_key(&key), decode(&bytes, "log record")?))
            })
            .collect()
    }

    /// The capture watermark; `None` for a journal no capture ever wrote to.
    pub fn watermark(&self) -> anyhow::Result<Option<Watermark>> {
        self.get_meta(META_WATERMARK, "watermark")
    }

    /// The recorded filesystem identity of a root.
    pub fn root_identity(&self, root: RootId) -> anyhow::Result<Option<FsIdentity>> {
        let key = format!("identity/{root}");
        self.get_meta(key, "filesystem identity")
    }

    /// Records a root's filesystem identity.
    pub fn save_root_identity(&self, root: RootId, identity: &FsIdentity) -> anyhow::Result<()> {
        self.put_meta(format!("identity/{root}"), &encode(identity))
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
        self.put_meta(META_STARTS, &encode(&starts))
    }

    /// The recorded starts, oldest first.
    pub fn starts(&self) -> anyhow::Result<Vec<StartRecord>> {
        Ok(self
            .get_meta(META_STARTS, "start records")?
            .unwrap_or_default())
    }

    /// Stores the running agent's self-description.
    pub fn save_agent_info(&self, info: &AgentInfo) -> anyhow::Result<()> {
        self.put_meta(META_AGENT, &encode(info))
    }

    /// The last agent's self-description, if any agent ever ran.
    pub fn agent_info(&self) -> anyhow::Result<Option<AgentInfo>> {
        self.get_meta(META_AGENT, "agent info")
    }

    /// Records the rsync run now in flight for `target`, or with `None`
    /// that it ended. Not fsynced: only `status` reads it.
    pub fn save_push_in_flight(
        &self,
        target: &str,
        run: Option<&PushInFlight>,
    ) -> anyhow::Result<()> {
        let key = format!("{META_PUSH_PREFIX}{target}");
        match run {
            Some(run) => self.put_meta(key, &encode(run))?,
            None => self.db.delete_cf(self.cf(CF_META), key)?,
        }
        Ok(())
    }

    /// The rsync run recorded in flight for `target`, if any (see
    /// [`PushInFlight`] for a record left by a killed agent).
    pub fn push_in_flight(&self, target: &str) -> anyhow::Result<Option<PushInFlight>> {
        self.get_meta(format!("{META_PUSH_PREFIX}{target}"), "push in flight")
    }

    /// Records how `target`'s last push went. Not fsynced: only `status`
    /// reads it.
    pub fn save_push_strategy(&self, target: &str, strategy: &PushStrategy) -> anyhow::Result<()> {
        let key = format!("{META_STRATEGY_PREFIX}{target}");
        self.put_meta(key, &encode(strategy))
    }

    /// How `target`'s last push went, if one was recorded.
    pub fn push_strategy(&self, target: &str) -> anyhow::Result<Option<PushStrategy>> {
        self.get_meta(format!("{META_STRATEGY_PREFIX}{target}"), "push strategy")
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
