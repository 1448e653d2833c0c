//! The journal's column families as types: each [`Table`] owns its name,
//! its key codec and its value codec, so that no caller spells a key's
//! bytes or a record's decoding; meta records are named by [`MetaKey`].
//! [`Writes`] gathers one atomic batch of them for [`super::Journal::write`].
//!
//! These codecs *are* the on-disk format: keys are big-endian so that
//! RocksDB's bytewise order is sequence order, values are postcard-encoded
//! serde records (positional: a field change needs a
//! [`super::JOURNAL_FORMAT`] bump). `tests.rs` pins key bytes to literals.

use rocksdb::{WriteBatch, DB};
use serde::{de::DeserializeOwned, Serialize};

use super::records::{LogRecord, PendingEntry, Rename, RootId, Seq, TargetState};

/// One column family: its name, and how its keys and values are encoded.
///
/// Decoding takes the bytes RocksDB hands out (owned), so that a key or a
/// value that is itself raw bytes ([`PendingKey`]) is kept without a copy.
pub(super) trait Table {
    /// Column family name (created at open, see [`COLUMN_FAMILIES`]).
    const CF: &'static str;
    /// What a value is called when it is corrupt ("corrupt {WHAT} in journal").
    const WHAT: &'static str;
    /// What a key names, as callers pass it.
    type Key: ?Sized + ToOwned;
    /// The record stored under a key.
    type Value;

    /// The key's bytes.
    fn key(key: &Self::Key) -> impl AsRef<[u8]> + '_;
    /// A stored key. Errors: the bytes are not this table's key (corrupt).
    fn parse_key(bytes: Box<[u8]>) -> anyhow::Result<OwnedKey<Self>>;
    /// The value's bytes.
    fn value(value: &Self::Value) -> impl AsRef<[u8]> + '_;
    /// A stored value. Errors: the bytes do not decode (corrupt).
    fn parse_value(bytes: Box<[u8]>) -> anyhow::Result<Self::Value>;
}

/// A key of table `T` as decoded from the database (`Seq`, `String`, …).
pub(super) type OwnedKey<T> = <<T as Table>::Key as ToOwned>::Owned;

/// Name of the meta column family (keys: [`MetaKey`]; values: postcard,
/// one type per key).
pub(super) const META: &str = "meta";

/// Every column family, in the order they are opened.
pub(super) const COLUMN_FAMILIES: [&str; 6] = [
    Log::CF,
    Pending::CF,
    BySeq::CF,
    Targets::CF,
    META,
    Renames::CF,
];

/// `log`: `seq → LogRecord`, every change in sequence order, trimmed by
/// retention (count, age). For inspection only; pushing never reads it.
pub(super) struct Log;

impl Table for Log {
    const CF: &'static str = "log";
    const WHAT: &'static str = "log record";
    type Key = Seq;
    type Value = LogRecord;

    fn key(seq: &Seq) -> impl AsRef<[u8]> + '_ {
        seq_key(*seq)
    }
    fn parse_key(bytes: Box<[u8]>) -> anyhow::Result<Seq> {
        parse_seq(&bytes)
    }
    fn value(record: &LogRecord) -> impl AsRef<[u8]> + '_ {
        encode(record)
    }
    fn parse_value(bytes: Box<[u8]>) -> anyhow::Result<LogRecord> {
        decode(&bytes, Self::WHAT)
    }
}

/// `pending`: `root ‖ path → PendingEntry`, one entry per path that some
/// target may still need: repeated changes to a path *coalesce* here.
pub(super) struct Pending;

impl Table for Pending {
    const CF: &'static str = "pending";
    const WHAT: &'static str = "pending entry";
    type Key = PendingKey;
    type Value = PendingEntry;

    fn key(key: &PendingKey) -> impl AsRef<[u8]> + '_ {
        &key.0
    }
    fn parse_key(bytes: Box<[u8]>) -> anyhow::Result<PendingKey> {
        PendingKey::parse(bytes)
    }
    fn value(entry: &PendingEntry) -> impl AsRef<[u8]> + '_ {
        encode(entry)
    }
    fn parse_value(bytes: Box<[u8]>) -> anyhow::Result<PendingEntry> {
        decode(&bytes, Self::WHAT)
    }
}

/// `by_seq`: `seq → root ‖ path`, the pending entries in sequence order
/// (only each path's latest sequence number is present). The value is the
/// entry's [`PendingKey`], raw.
pub(super) struct BySeq;

impl Table for BySeq {
    const CF: &'static str = "by_seq";
    const WHAT: &'static str = "pending key";
    type Key = Seq;
    type Value = PendingKey;

    fn key(seq: &Seq) -> impl AsRef<[u8]> + '_ {
        seq_key(*seq)
    }
    fn parse_key(bytes: Box<[u8]>) -> anyhow::Result<Seq> {
        parse_seq(&bytes)
    }
    fn value(key: &PendingKey) -> impl AsRef<[u8]> + '_ {
        &key.0
    }
    fn parse_value(bytes: Box<[u8]>) -> anyhow::Result<PendingKey> {
        PendingKey::parse(bytes)
    }
}

/// `targets`: `name → TargetState`, the acknowledged cursor per target.
/// The key is the name's UTF-8 bytes.
pub(super) struct Targets;

impl Table for Targets {
    const CF: &'static str = "targets";
    const WHAT: &'static str = "target state";
    type Key = str;
    type Value = TargetState;

    fn key(name: &str) -> impl AsRef<[u8]> + '_ {
        name.as_bytes()
    }
    /// Lossy: names are written from `&str`, so only corruption loses bytes.
    fn parse_key(bytes: Box<[u8]>) -> anyhow::Result<String> {
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
    fn value(state: &TargetState) -> impl AsRef<[u8]> + '_ {
        encode(state)
    }
    fn parse_value(bytes: Box<[u8]>) -> anyhow::Result<TargetState> {
        decode(&bytes, Self::WHAT)
    }
}

/// `renames`: `seq → Rename`, keyed by the sequence number of the change
/// that carries the new name. A column family added later, not a format
/// change: an older journal simply has none yet.
pub(super) struct Renames;

impl Table for Renames {
    const CF: &'static str = "renames";
    const WHAT: &'static str = "rename";
    type Key = Seq;
    type Value = Rename;

    fn key(seq: &Seq) -> impl AsRef<[u8]> + '_ {
        seq_key(*seq)
    }
    fn parse_key(bytes: Box<[u8]>) -> anyhow::Result<Seq> {
        parse_seq(&bytes)
    }
    fn value(rename: &Rename) -> impl AsRef<[u8]> + '_ {
        encode(rename)
    }
    fn parse_value(bytes: Box<[u8]>) -> anyhow::Result<Rename> {
        decode(&bytes, Self::WHAT)
    }
}

/// The key of a pending path: root id (4 bytes, big-endian) then the path
/// bytes (no separator, no terminator). Also the value of [`BySeq`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PendingKey(Box<[u8]>);

impl PendingKey {
    /// The key of `path` (root-relative, raw bytes) in `root`.
    pub(super) fn new(root: RootId, path: &[u8]) -> PendingKey {
        let mut key = Vec::with_capacity(4 + path.len());
        key.extend_from_slice(&root.to_be_bytes());
        key.extend_from_slice(path);
        PendingKey(key.into_boxed_slice())
    }

    /// Errors: fewer than 4 bytes (no root id).
    fn parse(bytes: Box<[u8]>) -> anyhow::Result<PendingKey> {
        anyhow::ensure!(bytes.len() >= 4, "corrupt pending key in journal");
        Ok(PendingKey(bytes))
    }

    /// The root the path lies in.
    pub(super) fn root(&self) -> RootId {
        let (root, _) = self
            .0
            .split_first_chunk()
            .expect("4 bytes, checked at parse");
        RootId::from_be_bytes(*root)
    }

    /// The path, relative to the root (raw bytes).
    pub(super) fn path(&self) -> &[u8] {
        &self.0[4..]
    }
}

/// A record of the meta column family. Each names its value type; the key
/// bytes are ASCII and must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MetaKey<'a> {
    /// `journal_id`: the journal's random id (`u64`).
    JournalId,
    /// `next_seq`: the next sequence number to assign ([`Seq`]).
    NextSeq,
    /// `roots`: the root table, index = [`RootId`] (`Vec<Vec<u8>>`, raw paths).
    Roots,
    /// `agent-2`: the running agent's [`super::AgentInfo`]. It is rewritten
    /// by every start and read only to show the agent: a change of its
    /// fields renames the key (an older agent's record is then ignored)
    /// instead of bumping [`super::JOURNAL_FORMAT`], which would cost every
    /// target a full sync.
    Agent,
    /// `watermark`: the capture [`super::Watermark`].
    Watermark,
    /// `format`: the on-disk format version (`u32`, [`super::JOURNAL_FORMAT`]).
    Format,
    /// `starts`: the last [`super::STARTS_KEPT`] [`super::StartRecord`]s.
    Starts,
    /// `identity/<root>` (root id in decimal): the root's [`super::FsIdentity`].
    Identity(RootId),
    /// `push/<target>`: the target's [`super::PushInFlight`], while rsync runs.
    PushInFlight(&'a str),
    /// `strategy/<target>`: the target's last [`super::PushStrategy`].
    Strategy(&'a str),
}

impl MetaKey<'_> {
    /// The key's bytes.
    pub(super) fn bytes(self) -> Vec<u8> {
        match self {
            MetaKey::JournalId => b"journal_id".to_vec(),
            MetaKey::NextSeq => b"next_seq".to_vec(),
            MetaKey::Roots => b"roots".to_vec(),
            MetaKey::Agent => b"agent-2".to_vec(),
            MetaKey::Watermark => b"watermark".to_vec(),
            MetaKey::Format => b"format".to_vec(),
            MetaKey::Starts => b"starts".to_vec(),
            MetaKey::Identity(root) => format!("identity/{root}").into_bytes(),
            MetaKey::PushInFlight(target) => format!("push/{target}").into_bytes(),
            MetaKey::Strategy(target) => format!("strategy/{target}").into_bytes(),
        }
    }

    /// What the record is called when it is corrupt.
    pub(super) fn what(self) -> &'static str {
        match self {
            MetaKey::JournalId => "journal id",
            MetaKey::NextSeq => "next sequence number",
            MetaKey::Roots => "root table",
            MetaKey::Agent => "agent info",
            MetaKey::Watermark => "watermark",
            MetaKey::Format => "format version",
            MetaKey::Starts => "start records",
            MetaKey::Identity(_) => "filesystem identity",
            MetaKey::PushInFlight(_) => "push in flight",
            MetaKey::Strategy(_) => "push strategy",
        }
    }
}

/// One atomic batch of typed writes, applied by [`super::Journal::write`].
pub(super) struct Writes<'j> {
    db: &'j DB,
    batch: WriteBatch,
}

impl<'j> Writes<'j> {
    /// An empty batch for `db`.
    pub(super) fn new(db: &'j DB) -> Writes<'j> {
        Writes {
            db,
            batch: WriteBatch::default(),
        }
    }

    /// Stores `value` under `key` in table `T`.
    pub(super) fn put<T: Table>(&mut self, key: &T::Key, value: &T::Value) {
        let cf = cf(self.db, T::CF);
        self.batch.put_cf(cf, T::key(key), T::value(value));
    }

    /// Deletes `key` from table `T`.
    pub(super) fn delete<T: Table>(&mut self, key: &T::Key) {
        self.batch.delete_cf(cf(self.db, T::CF), T::key(key));
    }

    /// Deletes the keys of table `T` from `from` (included) to `to` (excluded).
    pub(super) fn delete_range<T: Table>(&mut self, from: &T::Key, to: &T::Key) {
        let cf = cf(self.db, T::CF);
        self.batch.delete_range_cf(cf, T::key(from), T::key(to));
    }

    /// Stores meta record `key` (postcard).
    pub(super) fn put_meta<V: Serialize>(&mut self, key: MetaKey, value: &V) {
        self.batch
            .put_cf(cf(self.db, META), key.bytes(), encode(value));
    }

    /// Deletes meta record `key`.
    pub(super) fn delete_meta(&mut self, key: MetaKey) {
        self.batch.delete_cf(cf(self.db, META), key.bytes());
    }

    /// The RocksDB batch, to write.
    pub(super) fn into_batch(self) -> WriteBatch {
        self.batch
    }
}

/// The handle of column family `name` (all are created at open).
pub(super) fn cf<'d>(db: &'d DB, name: &str) -> &'d rocksdb::ColumnFamily {
    db.cf_handle(name).expect("column family created at open")
}

/// Big-endian key of a sequence number (8 bytes).
fn seq_key(seq: Seq) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Decodes a [`seq_key`]. Errors: not 8 bytes (corrupt).
fn parse_seq(key: &[u8]) -> anyhow::Result<Seq> {
    let bytes = key
        .try_into()
        .map_err(|_| anyhow::anyhow!("corrupt sequence key in journal ({} bytes)", key.len()))?;
    Ok(Seq::from_be_bytes(bytes))
}

/// Encodes a value (postcard cannot fail on these types).
fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("postcard encoding of a journal record")
}

/// Decodes a value, naming what was corrupt on failure.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> anyhow::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| anyhow::anyhow!("corrupt {what} in journal: {e}"))
}
