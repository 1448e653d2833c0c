//! RocksDB tuning of the journal: a memory budget that stays flat however
//! large the journal grows (issue 5: agent RSS ≤ 64 MiB).
//!
//! RocksDB's defaults give each column family its own 64 MiB memtable (two
//! while one flushes) and its own 32 MiB block cache, and keep write-ahead
//! logs until 4 × the memtables' total (2.5 GiB here) before forcing a
//! flush: a burst of 10⁶ records peaked at 190 MiB of RSS and left 172 MB of
//! WAL on disk. Here every column family shares one memtable budget and one
//! block cache, and the WAL is capped so that old logs are flushed and
//! deleted early. Figures: docs/benchmarks.md, section 7 and "Appendix:
//! agent memory".

use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options};

use super::tables::{Log, Pending, Table};

/// All memtables of all column families together (bytes): past it, the
/// oldest memtable is flushed.
const MEMTABLE_BUDGET: usize = 16 << 20;
/// One column family's memtable (bytes), flushed when full.
const WRITE_BUFFER_SIZE: usize = 4 << 20;
/// The shared block cache of data blocks (bytes).
const BLOCK_CACHE: usize = 8 << 20;
/// Write-ahead logs kept before the column families holding the oldest are
/// flushed (bytes).
const MAX_TOTAL_WAL: u64 = 64 << 20;

/// The database-wide options of a journal opened for writing: the
/// reader's memtable budget, plus creation and the WAL cap.
pub(super) fn db_options() -> Options {
    let mut opts = reader_options();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_total_wal_size(MAX_TOTAL_WAL);
    opts
}

/// The database-wide options of a read-only (secondary) journal, as the
/// CLI opens it: the WAL it replays fills memtables within the same budget
/// as the agent's, instead of RocksDB's 64 MiB per column family.
pub(super) fn reader_options() -> Options {
    let mut opts = Options::default();
    opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
    opts
}

/// The options of column family `name`; `cache` is shared by all of them.
///
/// Only `pending` has a bloom filter: `append` looks up every changed path
/// there, mostly paths with no entry yet, which the filter answers (about
/// 1.2 MB per 10⁶ pending paths, held outside the cache). The other column
/// families are read in key order, where a filter does not help. Only `log`,
/// the largest and the least read, is compressed (LZ4): `pending` and
/// `by_seq` are read on every batch. Index blocks stay with their table
/// readers (about 0.5 MB per 10⁶ records): in the shared cache, with the
/// filter, they made a 10⁶-record burst 3–4 × slower.
pub(super) fn cf_options(name: &str, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    let mut opts = Options::default();
    opts.set_write_buffer_size(WRITE_BUFFER_SIZE);
    if name == Pending::CF {
        table.set_bloom_filter(10.0, false);
    }
    opts.set_compression_type(if name == Log::CF {
        DBCompressionType::Lz4
    } else {
        DBCompressionType::None
    });
    opts.set_block_based_table_factory(&table);
    opts
}

/// The block cache the column families share.
pub(super) fn block_cache() -> Cache {
    Cache::new_lru_cache(BLOCK_CACHE)
}
