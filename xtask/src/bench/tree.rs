//! A Jenkins-home-shaped tree, deterministic from a seed, and the change
//! sets applied to it.
//!
//! Shape: `jobs/<job>/config.xml`, `jobs/<job>/builds/<n>/{build.xml, log,
//! changelog.xml, archive/…}`, `workspace/<job>/src/…`, `plugins/<p>/…`.
//! Sizes follow capped Pareto distributions (most files a few KiB, a few
//! build logs and archived artifacts MiBs), about 10 KiB a file on average.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Builds per job at generation.
const BUILDS_PER_JOB: u32 = 110;
/// Workspace files per job.
const WORKSPACE_FILES: u32 = 40;

/// One job of the model.
#[derive(Debug, Clone)]
struct Job {
    /// Directory name below `jobs/`.
    name: String,
    /// Build numbers present, oldest first.
    builds: std::collections::VecDeque<u32>,
    /// Next build number.
    next: u32,
}

/// What the generator made, and what the change sets since did: enough to
/// pick real paths to change without walking the tree.
pub struct Tree {
    /// Root directory (a mount point).
    pub root: PathBuf,
    jobs: Vec<Job>,
    rng: StdRng,
    /// Text the file contents are cut from (1 MiB).
    filler: Vec<u8>,
    /// Files and directories generated, and their bytes.
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    renames: u32,
    /// Files get their size with `set_len` (sparse, no data written): a
    /// tree of the same shape for measurements that read no contents.
    sparse: bool,
}

/// A size (bytes) from a Pareto distribution with minimum `lo` and shape
/// `alpha`, capped at `hi`.
fn pareto(rng: &mut StdRng, lo: f64, alpha: f64, hi: f64) -> usize {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (lo / u.powf(1.0 / alpha)).min(hi) as usize
}

impl Tree {
    /// Generates about `files` files below `root` from `seed`.
    pub fn generate(root: &Path, files: u64, seed: u64) -> anyhow::Result<Tree> {
        Tree::generate_as(root, files, seed, false)
    }

    /// [`Tree::generate`] with sparse files: the same directories, names
    /// and sizes, no data (about 2 KiB of disk per file instead of 10).
    pub fn generate_sparse(root: &Path, files: u64, seed: u64) -> anyhow::Result<Tree> {
        Tree::generate_as(root, files, seed, true)
    }

    fn generate_as(root: &Path, files: u64, seed: u64, sparse: bool) -> anyhow::Result<Tree> {
        let mut rng = StdRng::seed_from_u64(seed);
        let words: [&[u8]; 8] = [
            b"[INFO] ",
            b"Building ",
            b"module ",
            b"jar ",
            b"SUCCESS ",
            b"test ",
            b"0.42s ",
            b"\n",
        ];
        let mut filler = Vec::with_capacity(1 << 20);
        while filler.len() < 1 << 20 {
            filler.extend_from_slice(words[rng.random_range(0..words.len())]);
        }
        let mut tree = Tree {
            root: root.to_path_buf(),
            jobs: Vec::new(),
            rng,
            filler,
            files: 0,
            dirs: 0,
            bytes: 0,
            renames: 0,
            sparse,
        };
        // Per job: config.xml, 110 builds of about 4 files, 40 workspace files.
        let per_job = 1 + u64::from(BUILDS_PER_JOB) * 4 + u64::from(WORKSPACE_FILES);
        let jobs = (files * 97 / 100 / per_job).max(2);
        for j in 0..jobs {
            let name = format!("job-{j:05}");
            tree.write_config(&format!("jobs/{name}/config.xml"))?;
            let mut job = Job {
                name: name.clone(),
                builds: Default::default(),
                next: 1,
            };
            for _ in 0..BUILDS_PER_JOB {
                let n = job.next;
                job.next += 1;
                tree.write_build(&name, n)?;
                job.builds.push_back(n);
            }
            for f in 0..WORKSPACE_FILES {
                let size = pareto(&mut tree.rng, 500.0, 1.5, 1e6);
                tree.write_file(
                    &format!("workspace/{name}/src/m{}/File{f}.java", f % 4),
                    size,
                )?;
            }
            tree.jobs.push(job);
        }
        // Plugins: the remaining 3 % of the files, three each.
        for p in 0..(files * 3 / 100 / 3).max(1) {
            let size = pareto(&mut tree.rng, 20e3, 1.2, 8e6);
            tree.write_file(&format!("plugins/plugin-{p:04}.jpi"), size)?;
            tree.write_file(&format!("plugins/plugin-{p:04}/META-INF/MANIFEST.MF"), 300)?;
            tree.write_file(
                &format!("plugins/plugin-{p:04}/WEB-INF/lib/plugin-{p:04}.jar"),
                size / 2,
            )?;
        }
        tree.dirs = count_dirs(root);
        Ok(tree)
    }

    /// Writes `size` bytes of text to `rel` (parents created).
    fn write_file(&mut self, rel: &str, size: usize) -> anyhow::Result<()> {
        let path = self.root.join(rel);
        let parent = path.parent().expect("below the root");
        if !parent.exists() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        if self.sparse {
            file.set_len(size as u64)
                .with_context(|| format!("cannot size {}", path.display()))?;
        }
        let mut left = size;
        while left > 0 {
            let n = left.min(self.filler.len());
            let start = self.rng.random_range(0..=self.filler.len() - n);
            // Sparse: the random draws still happen, so the tree is the same.
            if !self.sparse {
                file.write_all(&self.filler[start..start + n])
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            left -= n;
        }
        self.files += 1;
        self.bytes += size as u64;
        Ok(())
    }

    fn write_config(&mut self, rel: &str) -> anyhow::Result<()> {
        let size = pareto(&mut self.rng, 1500.0, 2.0, 64e3);
        self.write_file(rel, size)
    }

    /// One build: build.xml, log, changelog.xml, 0–2 archived artifacts.
    /// Returns its files (relative paths).
    fn write_build(&mut self, job: &str, n: u32) -> anyhow::Result<Vec<String>> {
        let dir = format!("jobs/{job}/builds/{n}");
        let mut made = Vec::new();
        let sizes = [
            ("build.xml", pareto(&mut self.rng, 600.0, 2.0, 64e3)),
            ("log", pareto(&mut self.rng, 500.0, 1.1, 8e6)),
            ("changelog.xml", pareto(&mut self.rng, 200.0, 2.0, 16e3)),
        ];
        for (name, size) in sizes {
            made.push(format!("{dir}/{name}"));
            self.write_file(&format!("{dir}/{name}"), size)?;
        }
        for a in 0..self.rng.random_range(0..=2) {
            let size = pareto(&mut self.rng, 4e3, 1.05, 16e6);
            made.push(format!("{dir}/archive/target/app-{a}.jar"));
            self.write_file(&format!("{dir}/archive/target/app-{a}.jar"), size)?;
        }
        Ok(made)
    }

    /// Applies a change set of about `k` changed files, shared out by
    /// files: 40 % appends to build logs, 25 % in new builds, 25 % in
    /// deleted oldest builds (so the tree keeps its size from one set to
    /// the next), 10 % config.xml rewritten through a temporary file and a
    /// rename; then one job directory is renamed. Returns the paths whose
    /// replica must match the source (files written, directories deleted or
    /// renamed away, the renamed job's config.xml) and the files changed.
    pub fn change_set(&mut self, k: u64) -> anyhow::Result<(BTreeSet<String>, u64)> {
        let mut touched = BTreeSet::new();
        let mut changed = 0u64;
        // Files left to change per kind: appends, new builds, deletions, configs.
        let mut budget = [k * 4 / 10, k / 4, k / 4, k / 10];
        budget[0] += k - budget.iter().sum::<u64>();
        let mut misses = 0;
        while budget.iter().any(|&b| b > 0) && misses < 10_000 {
            let j = self.rng.random_range(0..self.jobs.len());
            let job = self.jobs[j].name.clone();
            let kind = self.rng.random_range(0..4);
            if budget[kind] == 0 {
                continue;
            }
            let files = match kind {
                0 => {
                    let Some(&b) = self.pick_build(j) else {
                        misses += 1;
                        continue;
                    };
                    let rel = format!("jobs/{job}/builds/{b}/log");
                    let path = self.root.join(&rel);
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&path)
                        .with_context(|| format!("cannot append to {}", path.display()))?;
                    let n = self.rng.random_range(80..2000);
                    f.write_all(&self.filler[..n])
                        .with_context(|| format!("cannot append to {}", path.display()))?;
                    touched.insert(rel);
                    1
                }
                1 => {
                    let n = self.jobs[j].next;
                    self.jobs[j].next += 1;
                    let made = self.write_build(&job, n)?;
                    self.jobs[j].builds.push_back(n);
                    let files = made.len() as u64;
                    touched.extend(made);
                    files
                }
                2 => {
                    if self.jobs[j].builds.len() < 10 {
                        misses += 1;
                        continue;
                    }
                    let b = self.jobs[j].builds.pop_front().expect("checked");
                    let rel = format!("jobs/{job}/builds/{b}");
                    let path = self.root.join(&rel);
                    let files = count_files(&path);
                    std::fs::remove_dir_all(&path)
                        .with_context(|| format!("cannot delete {}", path.display()))?;
                    touched.insert(rel);
                    files
                }
                _ => {
                    let rel = format!("jobs/{job}/config.xml");
                    let tmp = self.root.join(format!("jobs/{job}/config.xml.tmp"));
                    let size = pareto(&mut self.rng, 1500.0, 2.0, 64e3);
                    std::fs::write(&tmp, &self.filler[..size])
                        .with_context(|| format!("cannot write {}", tmp.display()))?;
                    std::fs::rename(&tmp, self.root.join(&rel))
                        .with_context(|| format!("cannot rename {}", tmp.display()))?;
                    touched.insert(rel);
                    touched.insert(format!("jobs/{job}/config.xml.tmp"));
                    1
                }
            };
            budget[kind] = budget[kind].saturating_sub(files);
            changed += files;
        }
        let j = self.rng.random_range(0..self.jobs.len());
        self.renames += 1;
        let old = self.jobs[j].name.clone();
        let base = old.split("-r").next().unwrap_or(&old).to_string();
        let new = format!("{base}-r{}", self.renames);
        let (from, to) = (
            self.root.join(format!("jobs/{old}")),
            self.root.join(format!("jobs/{new}")),
        );
        std::fs::rename(&from, &to)
            .with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))?;
        self.jobs[j].name = new.clone();
        touched.insert(format!("jobs/{old}"));
        touched.insert(format!("jobs/{new}/config.xml"));
        if let Some(b) = self.jobs[j].builds.back() {
            touched.insert(format!("jobs/{new}/builds/{b}/log"));
        }
        Ok((touched, changed))
    }

    fn pick_build(&mut self, j: usize) -> Option<&u32> {
        let builds = &self.jobs[j].builds;
        if builds.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..builds.len());
        builds.get(i)
    }

    /// A path for a new small file in an existing build directory (the
    /// latency probe), `i` making it unique.
    pub fn probe_path(&mut self, i: u64) -> String {
        let j = self.rng.random_range(0..self.jobs.len());
        let b = self.jobs[j].builds.back().copied().unwrap_or(0);
        let job = &self.jobs[j].name;
        if b == 0 {
            format!("jobs/{job}/probe-{i}")
        } else {
            format!("jobs/{job}/builds/{b}/probe-{i}")
        }
    }
}

/// Files (anything but directories) and directories below `dir`.
pub fn count(dir: &Path) -> (u64, u64) {
    (count_files(dir), count_dirs(dir))
}

/// Regular files below `dir`, recursively.
fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => count_files(&e.path()),
                _ => 1,
            })
            .sum()
    })
}

/// Directories below `dir` (itself excluded), recursively.
fn count_dirs(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| 1 + count_dirs(&e.path()))
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file below `dir` with its size, sorted.
    fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
                    out.push((rel, e.metadata().unwrap().len()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn same_seed_same_tree_and_change_set() {
        let base = std::env::temp_dir().join(format!("xtask-tree-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        let mut trees = Vec::new();
        for dir in [&a, &b] {
            std::fs::create_dir_all(dir).unwrap();
            let mut tree = Tree::generate(dir, 1500, 7).unwrap();
            let (touched, changed) = tree.change_set(50).unwrap();
            assert!(changed >= 50, "{changed} files changed");
            trees.push((tree.files, touched));
        }
        assert_eq!(trees[0], trees[1]);
        assert_eq!(listing(&a), listing(&b));
        assert!(listing(&a).iter().any(|(p, _)| p.starts_with("plugins")));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
