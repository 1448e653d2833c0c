//! A seeded random churn generator: every kind of change a backup must
//! carry, in random order and places, on the real filesystem.
//!
//! Deterministic from its seed for a given starting tree: entries are picked
//! by a random walk over sorted directory listings, so the generator keeps no
//! model of the tree that could drift from the truth. The seed is printed
//! when a generator is made, so a failing run can be replayed
//! (`FSJ_CHURN_SEED=…`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::append;

/// Operations a [`Churn`] makes, with their relative weights: mostly what a
/// Jenkins home sees (new files, growing logs, temp-file-then-rename-over),
/// some structural changes (renames, `rm -rf`), and the rare odd ones.
const OPERATIONS: &[(Op, u32)] = &[
    (Op::Create, 20),
    (Op::Append, 15),
    (Op::Overwrite, 8),
    (Op::Truncate, 4),
    (Op::Chmod, 5),
    (Op::SetMtimeBack, 3),
    (Op::RenameFile, 6),
    (Op::RenameDir, 3),
    (Op::RemoveTree, 2),
    (Op::Unlink, 6),
    (Op::MkdirDeep, 5),
    (Op::ReplaceByRename, 8),
    (Op::HardLink, 2),
    (Op::Symlink, 4),
];

/// One kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new file (0–8 KiB, sometimes 64 KiB).
    Create,
    /// Bytes appended to a file (a growing build log).
    Append,
    /// A file rewritten in place (`O_TRUNC`).
    Overwrite,
    /// A file truncated to a shorter length.
    Truncate,
    /// A new mode on a file or directory.
    Chmod,
    /// Same size, new bytes, mtime set back to its old value (`cp -p`,
    /// `tar -x`): rsync's quick check alone would miss it.
    SetMtimeBack,
    /// A file renamed, possibly into another directory.
    RenameFile,
    /// A directory with its contents renamed, possibly to another parent.
    RenameDir,
    /// `rm -rf` of a directory.
    RemoveTree,
    /// A file or symlink removed.
    Unlink,
    /// `mkdir -p a/b/c` with a file at the bottom.
    MkdirDeep,
    /// Temp file written, then renamed over an existing file (how Jenkins
    /// writes `config.xml`).
    ReplaceByRename,
    /// A second name for a file.
    HardLink,
    /// A symlink (relative, possibly dangling).
    Symlink,
}

/// A seeded churn generator over one tree.
pub struct Churn {
    root: PathBuf,
    rng: StdRng,
    seed: u64,
    next_name: u64,
    /// Operations made so far.
    pub done: u64,
}

impl Churn {
    /// A generator over `root`, seeded from `FSJ_CHURN_SEED` or the clock.
    pub fn new(root: &Path) -> Churn {
        let seed = std::env::var("FSJ_CHURN_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("churn seed {seed} (replay with FSJ_CHURN_SEED={seed})");
        Churn {
            root: root.to_path_buf(),
            rng: StdRng::seed_from_u64(seed),
            seed,
            next_name: 0,
            done: 0,
        }
    }

    /// Makes `ops` random changes spread evenly over about `duration`.
    pub fn run(&mut self, ops: u64, duration: Duration) {
        let start = Instant::now();
        for i in 0..ops {
            self.step();
            let due = duration.mul_f64((i + 1) as f64 / ops as f64);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }

    /// Runs [`Churn::run`] on a thread; [`Churning::join`] waits for it.
    pub fn spawn(mut self, ops: u64, duration: Duration) -> Churning {
        let seed = self.seed;
        let thread = std::thread::spawn(move || {
            self.run(ops, duration);
            self
        });
        Churning { thread, ops, seed }
    }

    /// One random change.
    pub fn step(&mut self) {
        let total: u32 = OPERATIONS.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.random_range(0..total);
        let op = OPERATIONS
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    return true;
                }
                pick -= w;
                false
            })
            .map(|(op, _)| *op)
            .unwrap();
        // An operation without a suitable entry (no file yet) is skipped.
        if self.apply(op).is_some() {
            self.done += 1;
        }
    }

    fn apply(&mut self, op: Op) -> Option<()> {
        match op {
            Op::Create => {
                let dir = self.pick_dir();
                let path = dir.join(self.name());
                let len = self.size();
                std::fs::write(path, self.bytes(len)).ok()
            }
            Op::Append => {
                let file = self.pick_file()?;
                let text = format!("line {} of a growing log\n", self.rng.random::<u32>());
                if std::fs::symlink_metadata(&file).ok()?.len() > 256 << 10 {
                    return Some(()); // keep logs bounded; still a chosen op
                }
                append(&file, &text);
                Some(())
            }
            Op::Overwrite => {
                let file = self.pick_file()?;
                let len = self.size();
                std::fs::write(file, self.bytes(len)).ok()
            }
            Op::Truncate => {
                let file = self.pick_file()?;
                let len = std::fs::metadata(&file).ok()?.len();
                let keep = self.rng.random_range(0..=len);
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(file)
                    .ok()?
                    .set_len(keep)
                    .ok()
            }
            Op::Chmod => {
                let (path, mode) = if self.rng.random_bool(0.3) {
                    (
                        self.pick_subdir()?,
                        [0o755, 0o750, 0o700][self.rng.random_range(0..3)],
                    )
                } else {
                    (
                        self.pick_file()?,
                        [0o644, 0o600, 0o755, 0o640][self.rng.random_range(0..4)],
                    )
                };
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).ok()
            }
            Op::SetMtimeBack => {
                let file = self.pick_file()?;
                let meta = std::fs::metadata(&file).ok()?;
                let bytes = self.bytes(meta.len() as usize);
                std::fs::write(&file, bytes).ok()?;
                std::fs::File::options()
                    .write(true)
                    .open(&file)
                    .ok()?
                    .set_modified(meta.modified().ok()?)
                    .ok()
            }
            Op::RenameFile => {
                let file = self.pick_file()?;
                let to = self.pick_dir().join(self.name());
                std::fs::rename(file, to).ok()
            }
            Op::RenameDir => {
                let dir = self.pick_subdir()?;
                let parent = self.pick_dir();
                if parent.starts_with(&dir) {
                    return None; // cannot move a directory into itself
                }
                std::fs::rename(dir, parent.join(self.name())).ok()
            }
            Op::RemoveTree => {
                let dir = self.pick_subdir()?;
                std::fs::remove_dir_all(dir).ok()
            }
            Op::Unlink => {
                let entry = self.pick_entry(false)?;
                if std::fs::symlink_metadata(&entry).ok()?.is_dir() {
                    return None;
                }
                std::fs::remove_file(entry).ok()
            }
            Op::MkdirDeep => {
                let mut dir = self.pick_dir();
                for _ in 0..self.rng.random_range(1..5) {
                    dir = dir.join(self.name());
                }
                std::fs::create_dir_all(&dir).ok()?;
                let len = self.size();
                std::fs::write(dir.join(self.name()), self.bytes(len)).ok()
            }
            Op::ReplaceByRename => {
                let file = self.pick_file()?;
                let mut tmp = file.clone().into_os_string();
                tmp.push(".tmp");
                let len = self.size();
                std::fs::write(&tmp, self.bytes(len)).ok()?;
                std::fs::rename(tmp, file).ok()
            }
            Op::HardLink => {
                let file = self.pick_file()?;
                let link = self.pick_dir().join(self.name());
                std::fs::hard_link(file, link).ok()
            }
            Op::Symlink => {
                let dir = self.pick_dir();
                let target =
                    ["../x", "builds/1", "log", "no such target"][self.rng.random_range(0..4)];
                symlink(target, dir.join(self.name())).ok()
            }
        }
    }

    /// A fresh name: plain, with a space, with a newline, or with a
    /// non-UTF-8 byte.
    fn name(&mut self) -> OsString {
        self.next_name += 1;
        let n = self.next_name;
        match self.rng.random_range(0..10) {
            0 => OsString::from(format!("with space {n}")),
            1 => OsString::from(format!("new\nline{n}")),
            2 => OsString::from_vec([format!("latin1-{n}-").as_bytes(), &[0xe9]].concat()),
            3 => OsString::from(format!("build-{n}.log")),
            _ => OsString::from(format!("f{n}")),
        }
    }

    fn size(&mut self) -> usize {
        if self.rng.random_bool(0.05) {
            64 << 10
        } else {
            self.rng.random_range(0..8192)
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut data = vec![0u8; len];
        self.rng.fill(&mut data[..]);
        data
    }

    /// A random directory (the root included) by a random walk.
    fn pick_dir(&mut self) -> PathBuf {
        let mut dir = self.root.clone();
        for _ in 0..8 {
            let subdirs = self.children(&dir, |m| m.is_dir());
            if subdirs.is_empty() || self.rng.random_bool(0.3) {
                break;
            }
            dir = subdirs[self.rng.random_range(0..subdirs.len())].clone();
        }
        dir
    }

    /// A random directory below the root (not the root).
    fn pick_subdir(&mut self) -> Option<PathBuf> {
        let dir = self.pick_dir();
        (dir != self.root).then_some(dir)
    }

    /// A random regular file.
    fn pick_file(&mut self) -> Option<PathBuf> {
        let entry = self.pick_entry(true)?;
        std::fs::symlink_metadata(&entry)
            .ok()?
            .is_file()
            .then_some(entry)
    }

    /// A random non-directory entry; `files_only` skips symlinks.
    fn pick_entry(&mut self, files_only: bool) -> Option<PathBuf> {
        for _ in 0..4 {
            let dir = self.pick_dir();
            let entries =
                self.children(&dir, |m| if files_only { m.is_file() } else { !m.is_dir() });
            if !entries.is_empty() {
                return Some(entries[self.rng.random_range(0..entries.len())].clone());
            }
        }
        None
    }

    /// Children of `dir` whose metadata (not followed) passes `keep`, sorted
    /// so that a seed replays the same choices.
    fn children(&self, dir: &Path, keep: impl Fn(&std::fs::Metadata) -> bool) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.metadata().is_ok_and(|m| keep(&m)))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }
}

/// A [`Churn`] running on its own thread.
pub struct Churning {
    thread: std::thread::JoinHandle<Churn>,
    ops: u64,
    /// The generator's seed, for failure messages.
    pub seed: u64,
}

impl Churning {
    /// Waits for the churn to end; asserts that it made at least half of its
    /// operations (the rest found no suitable entry), so a test cannot pass
    /// on a generator that did nothing.
    pub fn join(self) -> Churn {
        let churn = self.thread.join().unwrap();
        assert!(
            churn.done >= self.ops / 2,
            "seed {}: the generator made only {} of {} operations",
            self.seed,
            churn.done,
            self.ops
        );
        churn
    }
}
