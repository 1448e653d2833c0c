//! The cost model: when is one full `rsync -a --delete` of the root cheaper
//! than pushing the pending paths as file lists?
//!
//! A file list costs per listed path (about 63 µs a path on the 100k-file
//! bench tree, `--ignore-times` delta included: K = 100,000 took 6.3 s);
//! a full scan costs per entry of the tree (about 2.2 s for its 157k
//! entries when nothing changed, 5.2 s with 100,000 files to send:
//! docs/benchmarks.md, section 2). The two meet when the pending paths are
//! about a third of the tree's entries, hence the default
//! `full_push_percent = 30`.
//!
//! The tree's size is read as the source filesystem's used inodes
//! (`statvfs`, O(1)): never fewer than the tree's entries, so the full push
//! is chosen too rarely (a small root on a big filesystem), never too often.
//! The full push uses rsync's quick check (size and mtime) like a full sync:
//! a change that keeps a file's size and sets its mtime back to the
//! target's value is the one kind it does not see (the file lists'
//! `--ignore-times` would); rolling verification compares checksums.

/// True when `pending` paths are at least `percent` % of `used_inodes`
/// (the source filesystem's entries). `percent` 0, or a filesystem that
/// counts no inodes (`used_inodes` 0), never chooses the full push.
pub fn full_push_pays(percent: u8, pending: u64, used_inodes: u64) -> bool {
    percent > 0 && used_inodes > 0 && pending * 100 >= u64::from(percent) * used_inodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_of_the_tree_pays_for_a_full_push_by_default() {
        assert!(full_push_pays(30, 100_000, 157_000));
        assert!(!full_push_pays(30, 10_000, 157_000));
        assert!(!full_push_pays(0, 157_000, 157_000), "0 = never");
        assert!(!full_push_pays(30, 10, 0), "btrfs counts no inodes");
    }
}
